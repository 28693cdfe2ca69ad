//! zhifu's ledger storage and its single writer.
//!
//! # Overview
//! - [`Store`]: what the engine and the queries need from a database. Two implementations,
//!   [`SqliteStore`] (the default: a file, nothing to install) and [`PostgresStore`], pass one
//!   shared test suite.
//! - [`Engine`]: one writer thread per ledger. Callers from any thread or task submit requests
//!   into a bounded queue; the writer takes what is queued as one batch, prefetches what the
//!   batch touches, applies it with [`zhifu_ledger::Ledger`], commits it in one transaction and
//!   only then answers every caller.
//! - [`Clock`]: the engine's time, real or driven by a test.
//! - [`WalletStore`], [`MerchantStore`] and [`OrderStore`]: the wallet's and merchant acquiring's records
//!   outside the ledger, used through [`WalletDb`].
//!
//! **Storage shape.** Transfers are append-only rows that carry both accounts' balances right
//! after the transfer. A batch is therefore a set of inserts: no account row is updated per
//! transfer, so a hot account costs what a cold one does, and recovery reads an account's
//! balances from its latest row instead of replaying history.

mod clock;
mod engine;
mod filter;
mod history;
mod merchant;
pub mod naive;
mod orders;
mod pg_client;
mod postgres;
mod replier;
mod rows;
mod sqlite;
mod wallet;
mod wallet_db;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{Engine, EngineConfig, EngineError};
pub use merchant::{MerchantKeyRow, MerchantRow, MerchantStore, NewMerchant};
pub use orders::{
    AttemptRow, NotificationRow, OrderRow, OrderStore, RefundRow, SettlementCard, SettlementRow,
};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use wallet::{
    BalanceSpent, CardRow, IdentityRow, NewUser, P2pRow, PinRow, RedPacketRow, SessionRow,
    ShareRow, SqliteWalletStore, TransferRecord, UserRow, WalletStore, WithdrawalRow,
};
pub use wallet_db::{BatchStep, WalletDb};

use std::path::PathBuf;
use zhifu_ledger::{
    Account, AccountId, Balances, BatchOutput, Prior, Reference, Rejection, Transfer, TransferId,
    TransferKind,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot open the store: {0}")]
    Open(String),
}

/// The most rows one query returns: bounds memory on every read path.
pub const PAGE_LEN_MAX: usize = 1000;

/// What the engine and the read side need from a database.
///
/// Every method is a short synchronous call: the engine runs on its own thread, and async
/// callers reach reads through a blocking pool.
pub trait Store: Send {
    /// The accounts among `ids` that exist, each with its balances after its latest transfer.
    fn load_accounts(
        &mut self,
        ids: &[AccountId],
        out: &mut Vec<Account>,
    ) -> Result<(), StoreError>;
    /// Adds to `prior.known` every stored transfer or rejection among `ids`.
    fn load_known(&mut self, ids: &[TransferId], prior: &mut Prior) -> Result<(), StoreError>;
    /// Adds to `prior.resolutions` how each of `pending_ids` was posted, voided or expired.
    fn load_resolutions(
        &mut self,
        pending_ids: &[TransferId],
        prior: &mut Prior,
    ) -> Result<(), StoreError>;
    /// Every pending transfer that is not yet resolved (start-up).
    fn load_pendings_open(&mut self) -> Result<Vec<Transfer>, StoreError>;
    /// The greatest transfer timestamp stored, or 0.
    fn timestamp_last_ns(&mut self) -> Result<i64, StoreError>;
    /// Calls `f` on every stored transfer and rejection id; returns how many there were.
    fn scan_ids(&mut self, f: &mut dyn FnMut(TransferId)) -> Result<u64, StoreError>;
    /// Writes one batch, with the wallet's records of its transfers, in one transaction and
    /// returns only once it is durable.
    fn commit(
        &mut self,
        batch: &BatchOutput,
        records: &[&TransferRecord],
    ) -> Result<(), StoreError>;

    fn transfer(&mut self, id: TransferId) -> Result<Option<Transfer>, StoreError>;
    fn rejection(&mut self, id: TransferId) -> Result<Option<Rejection>, StoreError>;
    /// Transfers with this business reference, oldest first, at most `limit`.
    fn transfers_by_reference(
        &mut self,
        reference: &Reference,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError>;
    /// The account's transfers strictly before `before_timestamp_ns` (all when `None`),
    /// newest first, at most `limit`: one page of its statement.
    fn account_transfers(
        &mut self,
        id: AccountId,
        before_timestamp_ns: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError>;
    /// Calls `f` on every account with its balances: the engine's start-up, audits and
    /// conservation checks.
    fn scan_accounts(&mut self, f: &mut dyn FnMut(Account)) -> Result<(), StoreError>;

    /// Does a bounded step of background upkeep (building derived indexes), off the commit
    /// path; the engine runs it on a thread and connection of its own.
    fn maintain(&mut self) -> Result<Upkeep, StoreError> {
        Ok(Upkeep::Never)
    }

    /// Does a bounded step of upkeep of the log itself (SQLite: copying its write-ahead file
    /// back), on a thread of its own, every 100 milliseconds.
    fn maintain_log(&mut self) -> Result<Upkeep, StoreError> {
        Ok(Upkeep::Never)
    }

    /// Transfers that upkeep has yet to index (reads still see them, by a slower path). A
    /// store may leave a short tail unindexed by design; that tail is not counted.
    fn upkeep_lag(&mut self) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// What a step of [`Store::maintain`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Upkeep {
    /// Did some work; there is more to do.
    Busy,
    /// Caught up.
    Idle,
    /// This store needs no upkeep.
    Never,
}

/// Which database, and where.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// A SQLite file, created with its directory if missing.
    Sqlite { path: PathBuf },
    /// A PostgreSQL database; `schema`, when given, is created and used (tests isolate
    /// themselves this way).
    Postgres { url: String, schema: Option<String> },
}

impl StoreConfig {
    /// Opens a connection and brings the schema up to date.
    pub fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            StoreConfig::Sqlite { path } => Box::new(SqliteStore::open(path)?),
            StoreConfig::Postgres { url, schema } => {
                Box::new(PostgresStore::open(url, schema.as_deref())?)
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            StoreConfig::Sqlite { .. } => "sqlite",
            StoreConfig::Postgres { .. } => "postgres",
        }
    }
}

/// Which side of a transfer an account was on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Debit,
    Credit,
}

/// One line of an account's statement.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StatementEntry {
    pub transfer_id: TransferId,
    pub timestamp_ns: i64,
    pub kind: TransferKind,
    pub side: Side,
    pub amount_minor: u64,
    pub counterparty_account_id: AccountId,
    pub code: u16,
    pub reference: Option<Reference>,
    pub balances_after: Balances,
}

impl StatementEntry {
    pub fn from_transfer(account_id: AccountId, transfer: Transfer) -> StatementEntry {
        let (side, counterparty_account_id, balances_after) =
            if transfer.debit_account_id == account_id {
                (
                    Side::Debit,
                    transfer.credit_account_id,
                    transfer.debit_balances_after,
                )
            } else {
                assert_eq!(transfer.credit_account_id, account_id);
                (
                    Side::Credit,
                    transfer.debit_account_id,
                    transfer.credit_balances_after,
                )
            };
        StatementEntry {
            transfer_id: transfer.id,
            timestamp_ns: transfer.timestamp_ns,
            kind: transfer.kind,
            side,
            amount_minor: transfer.amount_minor,
            counterparty_account_id,
            code: transfer.code,
            reference: transfer.reference,
            balances_after,
        }
    }
}

/// One page of an account's statement, newest first. Pass the last entry's timestamp as
/// `before_timestamp_ns` to get the next page.
pub fn statement(
    store: &mut dyn Store,
    account_id: AccountId,
    before_timestamp_ns: Option<i64>,
    limit: usize,
) -> Result<Vec<StatementEntry>, StoreError> {
    let transfers =
        store.account_transfers(account_id, before_timestamp_ns, limit.min(PAGE_LEN_MAX))?;
    Ok(transfers
        .into_iter()
        .map(|t| StatementEntry::from_transfer(account_id, t))
        .collect())
}

/// The current balances of one account, read from storage.
pub fn balance(
    store: &mut dyn Store,
    account_id: AccountId,
) -> Result<Option<Account>, StoreError> {
    let mut accounts = Vec::with_capacity(1);
    store.load_accounts(&[account_id], &mut accounts)?;
    Ok(accounts.pop())
}

/// Like [`statement`], but every page until the account's first transfer (tests, exports).
pub fn statement_all(
    store: &mut dyn Store,
    account_id: AccountId,
    pages_max: usize,
) -> Result<Vec<StatementEntry>, StoreError> {
    let mut entries: Vec<StatementEntry> = Vec::new();
    for _ in 0..pages_max {
        let page = statement(
            store,
            account_id,
            entries.last().map(|e| e.timestamp_ns),
            PAGE_LEN_MAX,
        )?;
        if page.is_empty() {
            break;
        }
        entries.extend(page);
    }
    Ok(entries)
}

/// Of two "latest transfer" rows of an account, one per side, the balances of the later one.
pub(crate) fn latest_balances(
    debit_side: Option<(i64, Balances)>,
    credit_side: Option<(i64, Balances)>,
) -> Balances {
    match (debit_side, credit_side) {
        (Some((debit_ts, debit)), Some((credit_ts, credit))) => {
            if debit_ts > credit_ts {
                debit
            } else {
                credit
            }
        }
        (Some((_, balances)), None) | (None, Some((_, balances))) => balances,
        (None, None) => Balances::default(),
    }
}
