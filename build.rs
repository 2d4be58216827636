//! Link options of the `emcee` binary in release builds on Linux.
//!
//! - Start-up code together (x86_64, where rustc links with LLD): the functions
//!   `emcee serve` and `emcee stdio` run until ready are listed in
//!   `src/bin/emcee/start-up.order`, and LLD places them first. The kernel maps
//!   code in 64 KiB windows around each page a process touches: start-up code
//!   spread over the binary made most of it resident (idle RSS 10.4 -> 6.4 MB).
//!   `benches/start-up-order.sh` writes the list; names it no longer finds
//!   (functions renamed or gone) are skipped, new ones land after.
//! - Stripped by the linker (`--strip-all`), not by the profile's `strip`, which
//!   would change every symbol's name: the list is taken from a build with its
//!   symbols (`EMCEE_KEEP_SYMBOLS=1`), whose names must be the shipped build's.
//!
//! A profile with debug info (`profiling`) is neither ordered nor stripped;
//! `EMCEE_NO_LINK_ORDER=1` leaves the order out (a linker other than LLD).

use std::env;

fn main() {
    let order = "src/bin/emcee/start-up.order";
    println!("cargo:rerun-if-changed={order}");
    println!("cargo:rerun-if-env-changed=EMCEE_KEEP_SYMBOLS");
    println!("cargo:rerun-if-env-changed=EMCEE_NO_LINK_ORDER");
    let release = env::var("PROFILE").as_deref() == Ok("release")
        && env::var("DEBUG").as_deref() == Ok("false");
    if !release || env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    if env::var_os("EMCEE_KEEP_SYMBOLS").is_none() {
        println!("cargo:rustc-link-arg-bin=emcee=-Wl,--strip-all");
    }
    // LLD is rustc's linker there since 1.90; GNU ld has no `--symbol-ordering-file`.
    let lld = env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu")
        && rustc_minor().is_some_and(|minor| minor >= 90);
    if lld && env::var_os("EMCEE_NO_LINK_ORDER").is_none() {
        if let Ok(dir) = env::var("CARGO_MANIFEST_DIR") {
            println!("cargo:rustc-link-arg-bin=emcee=-Wl,--symbol-ordering-file={dir}/{order}");
            println!("cargo:rustc-link-arg-bin=emcee=-Wl,--no-warn-symbol-ordering");
        }
    }
}

/// The minor version of the rustc building this (`1.N.x`).
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC")?;
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let version = String::from_utf8(out.stdout).ok()?;
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    version
        .split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}
