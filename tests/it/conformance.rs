//! The official MCP conformance suite (`tests/conformance/run.sh`, pinned in
//! `tests/conformance/package.json`) against `emcee serve --fixtures conformance`:
//! all 32 server scenarios must pass. The script installs the suite and Node 22 itself.

use std::process::Command;

#[test]
fn official_conformance_suite_passes_every_scenario() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/run.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_emcee"))
        .output()
        .expect("run tests/conformance/run.sh (needs bash, npm)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "conformance failed\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("conformance: 32 scenarios passed, 0 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Total: ") && stdout.contains(" passed, 0 failed"),
        "{stdout}"
    );
}
