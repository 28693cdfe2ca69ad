//! Sets `cfg(zhifu_node_interop)` when the interop harness's npm package is installed
//! (`npm ci --prefix crates/codes/tests/interop`), so that the interop test runs there and is
//! reported as ignored, with the command to run, where it is not. The crate itself still does
//! no I/O: this only looks for a folder at build time.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(zhifu_node_interop)");
    // The folder that holds node_modules always exists, so watching it notices `npm ci`
    // creating node_modules without re-running this script on every build while it is absent
    // (a missing path counts as changed). Watching node_modules itself notices its removal
    // and a reinstall.
    println!("cargo::rerun-if-changed=tests/interop");
    let installed = Path::new("tests/interop/node_modules/promptparse");
    if Path::new("tests/interop/node_modules").is_dir() {
        println!("cargo::rerun-if-changed=tests/interop/node_modules");
    }
    if installed.is_dir() {
        println!("cargo::rustc-cfg=zhifu_node_interop");
    }
}
