//! The store's integration tests: one binary, one module per concern. Every test in `suite`,
//! `properties` and `crash` runs on both stores through [`on_both_stores!`]; `history` is the
//! SQLite history index against its log; `wallet` the wallet's records and `merchant` merchant
//! acquiring's, on both stores.

mod crash;
mod history;
mod merchant;
mod model;
mod properties;
mod suite;
mod support;
mod wallet;

/// Makes `sqlite::NAME` and `postgres::NAME` tests that call `NAME(Backend)`. Without a
/// PostgreSQL server configured, the PostgreSQL ones are reported as ignored, with the reason.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name($crate::support::Backend::Sqlite) })*
        }
        mod postgres {
            $(
                #[test]
                #[cfg_attr(not(zhifu_postgres), ignore = "SKIPPED: no PostgreSQL; run under pg_virtualenv or set ZHIFU_TEST_DATABASE_URL")]
                fn $name() { super::$name($crate::support::Backend::Postgres) }
            )*
        }
    };
}
