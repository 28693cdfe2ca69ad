//! Marks the browser tests as runnable when Debian's Chromium is installed, so that without it
//! they show up as ignored, with the reason, instead of passing silently.

const CHROMIUM: &str = "/usr/bin/chromium";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(zhifu_chromium)");
    // The folder, not the file: a package keeps its files' old times, so installing Chromium
    // after a build would not look like a change of `/usr/bin/chromium`; the folder's own
    // time changes when an entry is added.
    println!("cargo::rerun-if-changed=/usr/bin");
    if std::path::Path::new(CHROMIUM).exists() {
        println!("cargo::rustc-cfg=zhifu_chromium");
    }
}
