//! Puts memory.x (the LM3S6965's flash and RAM) on the linker's search path,
//! where cortex-m-rt's link.x includes it, and relinks when it changes.
//! The `-Tlink.x` and `-Tdefmt.x` arguments are in .cargo/config.toml.

use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    fs::copy(manifest.join("memory.x"), out.join("memory.x")).expect("copy memory.x into OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}
