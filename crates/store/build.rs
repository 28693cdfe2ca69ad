//! Marks the PostgreSQL half of the test suite as runnable when a server is configured, so
//! that without one those tests show up as ignored, with the reason, instead of passing silently.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(zhifu_postgres)");
    println!("cargo::rerun-if-env-changed=ZHIFU_TEST_DATABASE_URL");
    println!("cargo::rerun-if-env-changed=PGHOST");
    if std::env::var_os("ZHIFU_TEST_DATABASE_URL").is_some() || std::env::var_os("PGHOST").is_some()
    {
        println!("cargo::rustc-cfg=zhifu_postgres");
    }
}
