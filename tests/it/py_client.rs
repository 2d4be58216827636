//! Interoperability: the official MCP Python SDK (a real third-party client, `mcp` from PyPI,
//! pinned with all its dependencies in `tests/clients/python/requirements.txt`) drives
//! `emcee stdio` and `emcee serve` (Streamable HTTP) through `tests/clients/python/check.py`.
//! Three SDK clients per transport: `auto` (must negotiate 2026-07-28 via `server/discover`),
//! pinned to 2026-07-28, and `legacy` (the 2025-11-25 `initialize` handshake); each lists
//! tools, calls `echo`, reads a resource and gets a prompt.
//!
//! Needs `python3` with the `venv` module and `ensurepip` (Debian: `python3` and
//! `python3-venv`) on PATH. The test creates `tests/clients/python/.venv` itself (and recreates
//! it when its `mcp` differs from the pin or `requirements.txt` changed) with `python3 -m venv`
//! and `pip install -r requirements.txt`, which needs PyPI (or a mirror pip is configured for).
//! A missing `python3` or `venv` is a test failure, never a silent skip.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{bin, describe, drain, scrub_env, Server};

/// Serializes creating the venv if both tests need it at once.
static VENV_SETUP: Mutex<()> = Mutex::new(());

/// Upper bound for `python3 -m venv` and for one `python -c` probe.
const VENV_TIMEOUT: Duration = Duration::from_secs(120);
/// Upper bound for `pip install -r requirements.txt` (downloads from PyPI).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// Upper bound for one `check.py` run (the script has its own 30 s hard timeout).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// A copy of the `requirements.txt` a venv was installed from, kept inside the venv; written
/// only after a successful install, so a changed pin list or an interrupted install rebuilds.
const STAMP: &str = "emcee-requirements.txt";

const INSTALL_HINT: &str = "the Python SDK interop tests need python3 with the venv module and \
                            ensurepip on PATH (Debian: apt-get install python3 python3-venv)";

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clients")
        .join("python")
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// SIGKILL the process group `child` leads (it and anything it spawned, such as the
/// `emcee stdio` the SDK starts), if any of it is still alive.
#[cfg(unix)]
fn kill_group(child: &Child) {
    // Fails (ESRCH) when the whole group is gone already, which is the normal case.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(not(unix))]
fn kill_group(child: &Child) {
    let _ = child;
}

/// Run `cmd` (stdin closed, output captured) in its own process group, killing the group if
/// it outlives `timeout` and once it has exited, so nothing it started outlives it. The
/// flag is true if it was killed for running too long; `Err` if it could not be spawned.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> std::io::Result<(Output, bool)> {
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait()? {
            break (status, false);
        }
        if Instant::now() >= deadline {
            kill_group(&child);
            // Fails only if it exited meanwhile; wait() reaps it either way.
            let _ = child.kill();
            break (child.wait()?, true);
        }
        thread::sleep(Duration::from_millis(20));
    };
    kill_group(&child);
    let output = Output {
        status,
        stdout: stdout.join().expect("stdout reader thread panicked"),
        stderr: stderr.join().expect("stderr reader thread panicked"),
    };
    Ok((output, timed_out))
}

/// A command for a Python interpreter, without environment that would make it import
/// modules from outside the venv.
fn python_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env("PYTHONNOUSERSITE", "1");
    cmd
}

/// Run `cmd`, which must succeed within `timeout`; panic naming `what` otherwise.
fn run_ok(cmd: &mut Command, what: &str, timeout: Duration, hint: &str) -> Output {
    let (output, timed_out) =
        run_bounded(cmd, timeout).unwrap_or_else(|e| panic!("failed to run `{what}`: {e}; {hint}"));
    assert!(
        !timed_out,
        "`{what}` did not finish within {timeout:?} and was killed\n{}",
        describe(&output)
    );
    assert!(
        output.status.success(),
        "`{what}` failed; {hint}\n{}",
        describe(&output)
    );
    output
}

/// The `mcp==X` pin in `requirements.txt`.
fn pinned_mcp(requirements: &str) -> String {
    requirements
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .find_map(|line| {
            let (name, pin) = line.split_once("==")?;
            name.trim()
                .eq_ignore_ascii_case("mcp")
                .then(|| pin.trim().to_owned())
        })
        .expect("tests/clients/python/requirements.txt has no `mcp==VERSION` line")
}

/// The `mcp` version installed for `python`, or `None` if it has none or does not run.
fn installed_mcp(python: &Path) -> Option<String> {
    let (output, timed_out) = run_bounded(
        python_command(python).args([
            "-c",
            "import importlib.metadata as m; print(m.version('mcp'))",
        ]),
        VENV_TIMEOUT,
    )
    .ok()?;
    (!timed_out && output.status.success())
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Make sure `tests/clients/python/.venv` holds exactly `requirements.txt` (creating or
/// recreating it if not) and return its Python.
fn ensure_venv() -> PathBuf {
    let _guard = VENV_SETUP
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = python_dir();
    let requirements_path = dir.join("requirements.txt");
    let requirements = fs::read_to_string(&requirements_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", requirements_path.display()));
    let pin = pinned_mcp(&requirements);
    let venv = dir.join(".venv");
    let python = venv_python(&venv);
    let stamp = venv.join(STAMP);
    let stamped = fs::read_to_string(&stamp).is_ok_and(|text| text == requirements);
    if stamped && python.is_file() && installed_mcp(&python).as_deref() == Some(pin.as_str()) {
        return python;
    }

    let started = Instant::now();
    let version = run_ok(
        python_command("python3").arg("--version"),
        "python3 --version",
        VENV_TIMEOUT,
        INSTALL_HINT,
    );
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    run_ok(
        python_command("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .current_dir(&dir),
        "python3 -m venv --clear tests/clients/python/.venv",
        VENV_TIMEOUT,
        &format!("{INSTALL_HINT} ({version})"),
    );
    run_ok(
        python_command(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-q"])
            .args(["-r", "requirements.txt"])
            .current_dir(&dir),
        "pip install --disable-pip-version-check -q -r requirements.txt",
        INSTALL_TIMEOUT,
        "pip must reach PyPI (or a configured mirror) and find every pinned version for this \
         Python",
    );
    let installed = installed_mcp(&python);
    assert_eq!(
        installed.as_deref(),
        Some(pin.as_str()),
        "pip install succeeded but the venv's mcp is not the pinned one"
    );
    fs::write(&stamp, &requirements)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", stamp.display()));
    eprintln!(
        "py_client: created {} ({version}, mcp {pin}) in {:.1?}",
        venv.display(),
        started.elapsed()
    );
    python
}

/// Run `check.py <args...>` with the venv's `python` and return the reason it did not pass:
/// it timed out, exited non-zero, reported a failed check, or did not end with
/// `python-sdk <kind> client: N checks passed`.
fn run_check(python: &Path, kind: &str, args: &[&OsStr]) -> Result<(), String> {
    let dir = python_dir();
    let script = dir.join("check.py");
    assert!(script.is_file(), "missing {}", script.display());
    // The SDK may spawn `emcee stdio` itself: it inherits a scrubbed environment.
    let mut cmd = python_command(python);
    scrub_env(&mut cmd)
        .arg(&script)
        .arg(kind)
        .args(args)
        .current_dir(&dir);
    let (output, timed_out) = run_bounded(&mut cmd, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("failed to run {} check.py: {e}", python.display()));
    if timed_out {
        return Err(format!(
            "check.py {kind} did not finish within {CLIENT_TIMEOUT:?} and was killed\n{}",
            describe(&output)
        ));
    }
    if !output.status.success() {
        return Err(format!("check.py {kind} failed\n{}", describe(&output)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let banner = format!("python-sdk {kind} client: ");
    let passed = lines
        .last()
        .and_then(|last| last.strip_prefix(&banner))
        .and_then(|rest| rest.strip_suffix(" checks passed"))
        .and_then(|n| n.parse::<u32>().ok());
    let stray = lines[..lines.len().saturating_sub(1)]
        .iter()
        .any(|line| !line.starts_with("PASS  "));
    if passed.unwrap_or(0) == 0 || stray {
        return Err(format!(
            "check.py {kind} exited 0 but its stdout is not only PASS lines followed by \
             `{banner}N checks passed`\n{}",
            describe(&output)
        ));
    }
    Ok(())
}

/// `check.py stdio`: the SDK spawns `emcee stdio --data-dir DIR --fixtures conformance`.
#[test]
fn python_sdk_client_negotiates_2026_07_28_over_stdio() {
    let python = ensure_venv();
    let data_dir = tempfile::tempdir().expect("failed to create a temporary data dir");
    let args = [OsStr::new(bin()), data_dir.path().as_os_str()];
    if let Err(reason) = run_check(&python, "stdio", &args) {
        panic!("{reason}");
    }
}

/// `check.py http` against `emcee serve --bind 127.0.0.1:0 --fixtures conformance`.
#[test]
fn python_sdk_client_negotiates_2026_07_28_over_http() {
    let python = ensure_venv();
    let server = Server::start(&["--fixtures", "conformance"]);
    let url = server.url();
    let result = run_check(&python, "http", &[OsStr::new(&url)]);
    let logs = server.logs();
    // Kills and reaps `emcee serve`.
    drop(server);
    if let Err(reason) = result {
        panic!("{reason}\n--- emcee serve stderr ---\n{logs}");
    }
}
