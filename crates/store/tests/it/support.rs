//! Fresh stores for tests: a SQLite file in a temporary directory, or a PostgreSQL schema of
//! its own that is dropped afterwards.

use std::sync::Arc;
use zhifu_ledger::{
    AccountId, AccountKind, BalanceRule, Currency, NewAccount, NewTransfer, TransferId, TransferOp,
};
use zhifu_store::{Clock, Engine, EngineConfig, PostgresStore, Store, StoreConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestStore {
    pub config: StoreConfig,
    _directory: Option<tempfile::TempDir>,
    schema: Option<String>,
}

impl TestStore {
    pub fn new(backend: Backend) -> TestStore {
        match backend {
            Backend::Sqlite => {
                let directory = tempfile::tempdir().expect("temporary directory");
                let path = directory.path().join("ledger.sqlite");
                TestStore {
                    config: StoreConfig::Sqlite { path },
                    _directory: Some(directory),
                    schema: None,
                }
            }
            Backend::Postgres => {
                let url = PostgresStore::url_from_env()
                    .expect("PostgreSQL: set PGHOST or ZHIFU_TEST_DATABASE_URL");
                let schema = format!("t_{:016x}", rand::random::<u64>());
                let config = StoreConfig::Postgres {
                    url,
                    schema: Some(schema.clone()),
                };
                TestStore {
                    config,
                    _directory: None,
                    schema: Some(schema),
                }
            }
        }
    }

    pub fn open(&self) -> Box<dyn Store> {
        self.config.open().expect("open store")
    }

    pub fn engine(&self, clock: Arc<dyn Clock>) -> Engine {
        Engine::start(&self.config, clock, EngineConfig::default()).expect("start engine")
    }

    /// Every account with its stored balances, sorted by id; asserts conservation.
    pub fn accounts(&self) -> Vec<zhifu_ledger::Account> {
        let mut accounts = Vec::new();
        self.open()
            .scan_accounts(&mut |a| accounts.push(a))
            .expect("scan accounts");
        zhifu_ledger::check_conservation(accounts.iter()).expect("conservation");
        accounts.sort_by_key(|a| a.id);
        accounts
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let (Some(schema), StoreConfig::Postgres { url, .. }) = (&self.schema, &self.config)
            && let Ok(mut store) = PostgresStore::open(url, None)
        {
            let _ = store
                .client()
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

pub const CNY: Currency = Currency::CNY;

pub fn aid(n: u64) -> AccountId {
    AccountId::new(n).unwrap()
}

pub fn tid(n: u128) -> TransferId {
    TransferId::new(n).unwrap()
}

pub fn account(id: u64, kind: AccountKind, rule: BalanceRule) -> NewAccount {
    NewAccount {
        id: aid(id),
        currency: CNY,
        kind,
        rule,
    }
}

pub fn posted(id: u128, debit: u64, credit: u64, amount_minor: u64) -> NewTransfer {
    NewTransfer {
        id: tid(id),
        op: TransferOp::Posted {
            debit_account_id: aid(debit),
            credit_account_id: aid(credit),
            amount_minor,
        },
        code: 1,
        reference: None,
        linked: false,
    }
}

pub fn pending(
    id: u128,
    debit: u64,
    credit: u64,
    amount_minor: u64,
    timeout_ms: u64,
) -> NewTransfer {
    NewTransfer {
        id: tid(id),
        op: TransferOp::Pending {
            debit_account_id: aid(debit),
            credit_account_id: aid(credit),
            amount_minor,
            timeout_ms,
        },
        code: 2,
        reference: None,
        linked: false,
    }
}

/// Opens account 1 (operator, unbounded) and wallets 2..=n (no overdraft).
pub fn open_operator_and_wallets(engine: &Engine, wallets_last: u64) {
    let mut accounts = vec![account(1, AccountKind::Operator, BalanceRule::Unbounded)];
    accounts.extend(
        (2..=wallets_last)
            .map(|id| account(id, AccountKind::ConsumerWallet, BalanceRule::NO_OVERDRAFT)),
    );
    let codes = engine.open_accounts(accounts).unwrap();
    assert!(
        codes.iter().all(|c| *c == zhifu_ledger::AccountCode::Ok),
        "{codes:?}"
    );
}
