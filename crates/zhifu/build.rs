//! Marks the browser tests as runnable when Debian's Chromium is installed, so that without it
//! they show up as ignored, with the reason, instead of passing silently.

const CHROMIUM: &str = "/usr/bin/chromium";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(zhifu_chromium)");
    println!("cargo::rerun-if-changed={CHROMIUM}");
    if std::path::Path::new(CHROMIUM).exists() {
        println!("cargo::rustc-cfg=zhifu_chromium");
    }
}
