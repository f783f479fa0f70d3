//! Builds the browser build (`web/`, the library compiled to WebAssembly) when the command line is
//! built, so that `digitnn web` and `digitnn serve` can write and serve it.
//!
//! The wasm module is built by a second `cargo` run, for `wasm32-unknown-unknown` in release, in
//! its own target directory (`target/web`), and copied to `OUT_DIR/digitnn.wasm`, which
//! `src/cli/web.rs` embeds. Where the target is not installed, the tool is built without the page
//! (`digitnn web` then says how to get it) and a warning says so; any other failure fails the
//! build. The library alone (`default-features = false`: the Python package, the wasm build
//! itself) builds nothing here.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(digitnn_no_web)");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_CLI").is_none() || std::env::var("TARGET").is_ok_and(|t| t == TARGET) {
        return;
    }
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    for input in [
        "src",
        "models/numbers.safetensors",
        "models/lines.safetensors",
        "Cargo.toml",
        "web/src",
        "web/Cargo.toml",
        "web/Cargo.lock",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(input).display());
    }
    println!("cargo::rerun-if-changed={}", root.join("web/.cargo/config.toml").display());
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    if !target_installed(&rustc) {
        println!(
            "cargo::warning=the {TARGET} target is not installed, so this digitnn has no browser build \
             (`digitnn web` will say so): `rustup target add {TARGET}`, then build again"
        );
        println!("cargo::rustc-cfg=digitnn_no_web");
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let wasm = build_web(&root);
    std::fs::copy(&wasm, out.join("digitnn.wasm")).expect("copying the wasm module into OUT_DIR");
}

/// Whether the standard library for the wasm target is in this toolchain's sysroot.
fn target_installed(rustc: &std::ffi::OsStr) -> bool {
    let Ok(output) = Command::new(rustc).args(["--print", "sysroot"]).output() else { return false };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Path::new(&sysroot).join("lib/rustlib").join(TARGET).join("lib").is_dir()
}

/// Runs `cargo build --release` in `web/` (whose `.cargo/config.toml` names the target and turns
/// SIMD128 on) and returns the module's path.
fn build_web(root: &Path) -> PathBuf {
    let target_dir = root.join("target/web");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root.join("web"))
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    // The outer build's flags (a sanitizer's, say) are for this machine's target, not wasm's; the
    // inner build takes its own from web/.cargo/config.toml.
    for flags in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET"]
    {
        command.env_remove(flags);
    }
    let output = command.output().expect("running cargo for the browser build");
    if !output.status.success() {
        panic!("the browser build (web/) failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
    target_dir.join(TARGET).join("release/digitnn_web.wasm")
}
