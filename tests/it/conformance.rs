//! The official MCP conformance suite (`tests/conformance/run.sh`, pinned in
//! `tests/conformance/package.json`) against `emcee serve --fixtures conformance`, for
//! both eras: every 2025-11-25 scenario passes, and every 2026-07-28 scenario,
//! multi-round-trip requests and the `tasks-*` extension scenarios included (the
//! baseline `tests/conformance/expected-failures-2026-07-28.yaml` is empty).
//! The script installs the suite and Node 22 itself.

use std::process::Command;

use crate::harness::{bin, scrub_env};

/// Run `tests/conformance/run.sh` (against `url`, else a server the script starts
/// itself) and check that every scenario of both revisions passed; its stdout.
pub(crate) fn suite_passes_both_revisions(url: Option<&str>) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/run.sh");
    // The script starts `emcee serve` itself: it inherits a scrubbed environment.
    let mut cmd = Command::new("bash");
    scrub_env(&mut cmd).arg(script).arg(bin());
    if let Some(url) = url {
        cmd.env("CONFORMANCE_URL", url);
    }
    let out = cmd
        .output()
        .expect("run tests/conformance/run.sh (needs bash, npm)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let against = url.unwrap_or("one server");
    assert!(
        out.status.success(),
        "conformance against {against} failed\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("conformance 2025-11-25: 33 scenarios passed, 0 failed"),
        "{stdout}"
    );
    // 50 scenarios: 37 scored (the 14 input-required-result-* ones included) and 13
    // not scored (10 tasks-*, 3 others), all passing.
    assert!(
        stdout.contains("conformance 2026-07-28: 50 scenarios passed, 0 failed"),
        "{stdout}"
    );
    stdout
}

#[test]
fn official_conformance_suite_passes_both_eras() {
    let stdout = suite_passes_both_revisions(None);
    for required in [
        "✓ server-stateless:",
        "✓ caching:",
        "✓ tools-call-with-progress:",
        "✓ http-header-validation:",
        "✓ http-custom-header-server-validation:",
        "✓ json-schema-2020-12:",
        "✓ input-required-result-multi-round:",
        "✓ input-required-result-tampered-state:",
        "✓ input-required-result-non-tool-request:",
        "✓ tasks-lifecycle:",
        "✓ tasks-mrtr-input:",
        "✓ tasks-mrtr-composition:",
    ] {
        assert!(stdout.contains(required), "missing {required}\n{stdout}");
    }
}
