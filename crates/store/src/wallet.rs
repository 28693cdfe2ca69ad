//! The wallet's own records: people and their sessions, on SQLite (a `wallet.sqlite` file
//! beside the ledger's, so that a sign-up never contends with the ledger's writer) or on
//! PostgreSQL (tables beside the ledger's). Money is never here: balances live in the ledger.
//!
//! Secrets arrive already protected: the phone as a keyed lookup hash plus a masked form, the
//! password as an Argon2id PHC string, the session token as its SHA-256.

use crate::wallet_db::BatchStep;
use crate::{PostgresStore, StoreConfig, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/wallet_0001.sql")),
    (2, include_str!("../migrations/sqlite/wallet_0002.sql")),
    (3, include_str!("../migrations/sqlite/wallet_0003.sql")),
    (4, include_str!("../migrations/sqlite/wallet_0004.sql")),
    (5, include_str!("../migrations/sqlite/wallet_0005.sql")),
    (6, include_str!("../migrations/sqlite/wallet_0006.sql")),
    (7, include_str!("../migrations/sqlite/wallet_0007.sql")),
    (8, include_str!("../migrations/sqlite/wallet_0008.sql")),
    (9, include_str!("../migrations/sqlite/wallet_0009.sql")),
    (10, include_str!("../migrations/sqlite/wallet_0010.sql")),
    (11, include_str!("../migrations/sqlite/wallet_0011.sql")),
    (12, include_str!("../migrations/sqlite/wallet_0012.sql")),
    (13, include_str!("../migrations/sqlite/wallet_0013.sql")),
    (14, include_str!("../migrations/sqlite/wallet_0014.sql")),
    (15, include_str!("../migrations/sqlite/wallet_0015.sql")),
];

/// A person to create.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub phone_lookup: Vec<u8>,
    pub phone_masked: String,
    pub password_hash: String,
    pub created_ms: i64,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UserRow {
    pub id: i64,
    pub phone_lookup: Vec<u8>,
    pub phone_masked: String,
    pub password_hash: String,
    pub created_ms: i64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SessionRow {
    pub user_id: i64,
    pub expires_ms: i64,
}

/// A person's payment PIN: its keyed hash and the lockout state.
/// What [`WalletStore::balance_spent`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BalanceSpent {
    /// Paid since each of the three instants asked about.
    pub sums_minor: [u64; 3],
    /// The earliest expiry of a held transfer or an open red packet among what was counted:
    /// from then on the sums are smaller without any write.
    pub first_expiry_ms: Option<i64>,
}

impl BalanceSpent {
    fn from_row(sums: [i64; 3], first_expiry_ms: Option<i64>) -> BalanceSpent {
        BalanceSpent {
            sums_minor: sums.map(|sum| u64::try_from(sum).unwrap_or(0)),
            first_expiry_ms,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PinRow {
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
    pub failures: u32,
    pub locked_until_ms: Option<i64>,
}

/// What real-name verification established about a person.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IdentityRow {
    pub user_id: i64,
    /// `I`, `II` or `III`.
    pub class: String,
    pub name_masked: String,
    pub id_lookup: Vec<u8>,
    pub id_masked: String,
    pub verified_ms: i64,
}

/// A bank card bound to a wallet, known by the bank's token.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CardRow {
    pub user_id: i64,
    pub token: String,
    pub bank: String,
    pub last_four: String,
    pub bound_ms: i64,
}

/// A transfer between people, as the wallet lists it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct P2pRow {
    pub transfer_id: String,
    pub payer_id: i64,
    pub payee_id: i64,
    pub amount_minor: u64,
    pub created_ms: i64,
    /// Until then the payer may cancel and the payee cannot accept (delayed arrival).
    pub arrives_ms: i64,
    pub expires_ms: i64,
    pub state: String,
}

/// A wallet row whose truth is a transfer: the engine commits it in the same transaction as
/// the transfers it came with ([`Engine::create_transfers_recorded`](crate::Engine)), so that
/// a payment waits for one commit, not two in series, and the row can never be missing for a
/// transfer that was made (nor exist for one that was not). Written only if every transfer
/// of its request was applied now or before (`ok` or `exists`); both kinds are idempotent.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TransferRecord {
    /// A transfer between people was made; kept as it was first written if it exists.
    P2pMade(P2pRow),
    /// A transfer between people was accepted, returned or cancelled.
    P2pResolved {
        transfer_id: String,
        state: &'static str,
    },
}

/// A withdrawal from the moment the bank may be asked until the ledger has settled it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WithdrawalRow {
    /// `{user_id}:{withdrawal_key}`, as the quota share is keyed.
    pub key: String,
    pub user_id: i64,
    /// The caller's idempotency key, from which every ledger and bank id derives.
    pub withdrawal_key: String,
    pub card_token: String,
    pub amount_minor: u64,
    pub fee_minor: u64,
    pub free_minor: u64,
    pub started_ms: i64,
    /// `open`, then `paid` or `declined`.
    pub state: String,
}

/// A one-time pay code as kept: its keyed hash, whose it is, and when it was spent.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PayCodeRow {
    pub user_id: i64,
    pub issued_ms: i64,
    pub expires_ms: i64,
    pub spent_ms: Option<i64>,
}

/// A red packet as sent.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RedPacketRow {
    pub packet_id: String,
    pub sender_id: i64,
    /// `normal` or `lucky`.
    pub kind: String,
    pub total_minor: u64,
    pub shares: u32,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// One share of a red packet, and who grabbed it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ShareRow {
    pub index: u32,
    pub amount_minor: u64,
    pub grabber_id: Option<i64>,
    pub grabbed_ms: Option<i64>,
}

/// What the wallet needs to remember outside the ledger. Merchant acquiring's records share
/// its connections and its batching writer, hence the supertrait.
pub trait WalletStore: crate::MerchantStore + crate::OrderStore + Send {
    /// Brackets the batches of [`crate::WalletDb`]'s writer: a transaction per batch and a
    /// savepoint per job.
    fn batch_step(&mut self, step: BatchStep) -> Result<(), StoreError>;
    /// True where a statement that fails inside a transaction undoes its own changes and leaves
    /// the transaction usable (SQLite), so that a job of one statement needs no savepoint.
    /// PostgreSQL aborts the whole transaction instead.
    fn statement_undoes_itself(&self) -> bool {
        false
    }
    /// False when the batch's transaction has ended under the writer (SQLite rolls it back by
    /// itself after some errors); the writer then runs no further job in that batch.
    fn in_transaction(&self) -> bool {
        true
    }
    /// The new user's id, or `None` when the phone is taken (nothing is written then).
    fn user_create(&mut self, user: &NewUser) -> Result<Option<i64>, StoreError>;
    fn user_by_phone(&mut self, phone_lookup: &[u8]) -> Result<Option<UserRow>, StoreError>;
    fn user(&mut self, id: i64) -> Result<Option<UserRow>, StoreError>;
    fn session_create(
        &mut self,
        token_hash: &[u8],
        user_id: i64,
        expires_ms: i64,
    ) -> Result<(), StoreError>;
    fn session(&mut self, token_hash: &[u8]) -> Result<Option<SessionRow>, StoreError>;
    /// True when there was such a session.
    fn session_delete(&mut self, token_hash: &[u8]) -> Result<bool, StoreError>;
    /// Sets or replaces the PIN, clearing its failures.
    fn pin_set(&mut self, user_id: i64, salt: &[u8], hash: &[u8]) -> Result<(), StoreError>;
    fn pin(&mut self, user_id: i64) -> Result<Option<PinRow>, StoreError>;
    /// Records or raises a person's verified identity.
    fn identity_save(&mut self, identity: &IdentityRow) -> Result<(), StoreError>;
    fn identity(&mut self, user_id: i64) -> Result<Option<IdentityRow>, StoreError>;
    /// Binds a card; false when this wallet has it bound already.
    fn card_bind(&mut self, card: &CardRow) -> Result<bool, StoreError>;
    /// The wallet's bound cards, oldest first.
    fn cards(&mut self, user_id: i64) -> Result<Vec<CardRow>, StoreError>;
    /// False when the wallet had no such bound card.
    fn card_unbind(&mut self, user_id: i64, token: &str, now_ms: i64) -> Result<bool, StoreError>;
    /// The free withdrawal quota this person (by ID lookup) has used, failed withdrawals
    /// excluded.
    fn quota_used(&mut self, id_lookup: &[u8]) -> Result<u64, StoreError>;
    /// The share of the quota a withdrawal took under `key`, if it took one (released or not).
    fn quota_use(&mut self, key: &str) -> Result<Option<u64>, StoreError>;
    /// Records a withdrawal's share; false when the key has one already.
    fn quota_use_record(
        &mut self,
        key: &str,
        id_lookup: &[u8],
        free_minor: u64,
    ) -> Result<bool, StoreError>;
    /// Gives a failed withdrawal's share back.
    fn quota_use_release(&mut self, key: &str) -> Result<(), StoreError>;
    /// Records a withdrawal about to ask the bank; false when its key is recorded already.
    fn withdrawal_open(&mut self, row: &WithdrawalRow) -> Result<bool, StoreError>;
    /// Closes an open withdrawal as `paid` or `declined`.
    fn withdrawal_close(&mut self, key: &str, state: &str) -> Result<(), StoreError>;
    /// Open withdrawals started no later than `started_ms_max`, oldest first, at most `limit`.
    fn withdrawals_open(
        &mut self,
        started_ms_max: i64,
        limit: usize,
    ) -> Result<Vec<WithdrawalRow>, StoreError>;
    /// Records a new pay code and spends the person's older unspent ones (`issued_ms`).
    fn pay_code_issue(
        &mut self,
        lookup: &[u8],
        user_id: i64,
        issued_ms: i64,
        expires_ms: i64,
    ) -> Result<(), StoreError>;
    /// The code as it was before this call, and spent at `now_ms` if it was unspent: first
    /// use spends it, whatever comes of that use.
    fn pay_code_take(
        &mut self,
        lookup: &[u8],
        now_ms: i64,
    ) -> Result<Option<PayCodeRow>, StoreError>;
    /// False when the number is taken.
    fn pay_device_insert(
        &mut self,
        device_no: i64,
        user_id: i64,
        created_ms: i64,
    ) -> Result<bool, StoreError>;
    fn pay_device_owner(&mut self, device_no: i64) -> Result<Option<i64>, StoreError>;
    /// Spends a device's code of one time step; false when it was spent already.
    fn pay_device_step_spend(&mut self, device_no: i64, step: i64) -> Result<bool, StoreError>;
    fn static_code_payment_insert(
        &mut self,
        transfer_id: &str,
        payer_id: i64,
        amount_minor: u64,
        created_ms: i64,
    ) -> Result<bool, StoreError>;
    /// What the payer paid to static receive codes since `since_ms`.
    fn static_code_spent_since(&mut self, payer_id: i64, since_ms: i64) -> Result<u64, StoreError>;
    fn p2p(&mut self, transfer_id: &str) -> Result<Option<P2pRow>, StoreError>;
    /// Records a packet with its drawn shares, in one transaction; false when it exists.
    fn red_packet_insert(
        &mut self,
        packet: &RedPacketRow,
        shares_minor: &[u64],
    ) -> Result<bool, StoreError>;
    fn red_packet(&mut self, packet_id: &str) -> Result<Option<RedPacketRow>, StoreError>;
    fn red_packet_shares(&mut self, packet_id: &str) -> Result<Vec<ShareRow>, StoreError>;
    /// What the person paid from the balance since each of three instants, the first being
    /// the earliest: transfers accepted or still held at `now_ms`, and red packet
    /// shares grabbed or still open at `now_ms` (expired ones went back), merchant payments net
    /// of refunds. One statement, so that the limit check costs one scan of the person's rows,
    /// not one per window.
    fn balance_spent(
        &mut self,
        person_id: i64,
        since_ms: [i64; 3],
        now_ms: i64,
    ) -> Result<BalanceSpent, StoreError>;
    /// Gives the share to the grabber; false when someone has it already.
    fn red_packet_claim(
        &mut self,
        packet_id: &str,
        index: u32,
        grabber_id: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Records the lockout state after an attempt.
    fn pin_attempts_save(
        &mut self,
        user_id: i64,
        failures: u32,
        locked_until_ms: Option<i64>,
    ) -> Result<(), StoreError>;
}

impl StoreConfig {
    /// Opens the wallet's records for this deployment, to read (and in tests, to write).
    pub fn open_wallet(&self) -> Result<Box<dyn WalletStore>, StoreError> {
        self.open_wallet_as(WalletRole::Reader)
    }

    /// Opens the wallet's records for its one writer. On SQLite this connection does not see
    /// the ledger's file: a write transaction (BEGIN IMMEDIATE) would take the write lock of
    /// every attached file, and the ledger's has a writer of its own. So a writer's job cannot
    /// read the transfers between people there (`p2p`, `balance_spent` fail with "no such
    /// table"); read them on a read connection before the job.
    pub(crate) fn open_wallet_writer(&self) -> Result<Box<dyn WalletStore>, StoreError> {
        self.open_wallet_as(WalletRole::Writer)
    }

    fn open_wallet_as(&self, role: WalletRole) -> Result<Box<dyn WalletStore>, StoreError> {
        Ok(match self {
            StoreConfig::Sqlite { path } => {
                let store = SqliteWalletStore::open(&wallet_sqlite_path(path), path)?;
                if role == WalletRole::Writer {
                    store.connection.execute_batch("DETACH DATABASE ledger")?;
                }
                Box::new(store)
            }
            StoreConfig::Postgres { url, schema } => Box::new(PostgresWalletStore {
                client: crate::pg_client::CachedClient::new(
                    PostgresStore::open(url, schema.as_deref())?.into_client(),
                ),
                in_batch: false,
            }),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WalletRole {
    Reader,
    Writer,
}

pub struct SqliteWalletStore {
    pub(crate) connection: Connection,
}

/// The wallet's file, beside the ledger's.
fn wallet_sqlite_path(ledger_path: &Path) -> std::path::PathBuf {
    ledger_path.with_file_name("wallet.sqlite")
}

/// The log keeper's connection to the wallet's file (see `WalletDb`); `None` where the
/// database keeps its own log (PostgreSQL checkpoints in its own processes).
pub(crate) fn wallet_log_keeper(config: &StoreConfig) -> Result<Option<Connection>, StoreError> {
    match config {
        StoreConfig::Sqlite { path } => {
            let mut connection = Connection::open(wallet_sqlite_path(path))?;
            connection.busy_handler(Some(crate::sqlite::wait_for_lock))?;
            Ok(Some(connection))
        }
        StoreConfig::Postgres { .. } => Ok(None),
    }
}

impl SqliteWalletStore {
    /// Opens the wallet's file at `path`, attaching the ledger's file at `ledger_path` as
    /// `ledger` (the ledger's writer keeps the transfers between people there; see
    /// [`TransferRecord`]). Only the ledger's writer writes to that file.
    pub fn open(path: &Path, ledger_path: &Path) -> Result<SqliteWalletStore, StoreError> {
        if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(directory)
                .map_err(|e| StoreError::Open(format!("{}: {e}", directory.display())))?;
        }
        let mut connection = Connection::open(path)?;
        connection.busy_handler(Some(crate::sqlite::wait_for_lock))?;
        connection.execute_batch(
            // mmap: readers see the writer's pages without copying them in again after each
            // commit, which would otherwise empty their page caches. temp_store: the writer's
            // savepoint journals (one savepoint per job) stay in memory, not in temp files.
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA mmap_size = 268435456; PRAGMA temp_store = MEMORY;",
        )?;
        // The log keeper (WalletDb) checkpoints every 100 milliseconds; the writer does only at
        // the ledger's bound. SQLite's default (1,000 pages) put a whole checkpoint, with its
        // fsync, into one commit in every few dozen. Under steady load the keeper never copies
        // the last frame, so the log grows to the bound before the writer's own checkpoint lets
        // it start over (see `checkpoint_beside_writer`); a lower bound (16,384 pages, the file
        // cut back to 64 MiB) measured worse.
        connection.pragma_update(
            None,
            "wal_autocheckpoint",
            crate::sqlite::WAL_AUTOCHECKPOINT_PAGES,
        )?;
        crate::sqlite::migrate(&mut connection, SQLITE_MIGRATIONS)?;
        crate::sqlite::migrate_ledger_file(ledger_path)?;
        let ledger_path = ledger_path.to_str().ok_or_else(|| {
            StoreError::Open(format!("{}: not a UTF-8 path", ledger_path.display()))
        })?;
        connection.execute("ATTACH DATABASE ?1 AS ledger", [ledger_path])?;
        move_p2p_transfers_to_ledger(&connection)?;
        // One plan per statement, whatever its parameters: otherwise SQLite may re-plan a
        // cached statement on every new binding, which cost more than running it.
        connection.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        // Every statement of the wallet stays prepared.
        connection.set_prepared_statement_cache_capacity(96);
        Ok(SqliteWalletStore { connection })
    }
}

/// Moves the transfers between people that an older version kept in the wallet's own file
/// to the ledger's, where they are written now. Two transactions, each on one file, so that
/// a crash between them loses nothing: the copy is idempotent and is done again, and the old
/// table goes only once the ledger holds every row. (One transaction over both files is not
/// atomic across them in WAL mode, and SQLite commits the wallet's file first.)
fn move_p2p_transfers_to_ledger(connection: &Connection) -> Result<(), StoreError> {
    let old_table: bool = connection.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'p2p_transfers')",
        [],
        |r| r.get(0),
    )?;
    if !old_table {
        return Ok(());
    }
    let columns =
        "transfer_id, payer_id, payee_id, amount_minor, created_ms, expires_ms, state, arrives_ms";
    connection.execute_batch("BEGIN IMMEDIATE")?;
    match copy_p2p_rows_to_ledger(connection, columns) {
        Ok(()) => connection.execute_batch("COMMIT")?,
        Err(e) => {
            connection.execute_batch("ROLLBACK")?;
            return Err(e);
        }
    }
    connection.execute_batch("DROP TABLE main.p2p_transfers")?;
    Ok(())
}

/// Copies each old row to the ledger's table under its transfer's place in the log. A row
/// whose transfer the log does not hold stops the start: the wallet wrote a row only after
/// the ledger had made its transfer, so such a row means the files do not belong together.
fn copy_p2p_rows_to_ledger(connection: &Connection, columns: &str) -> Result<(), StoreError> {
    let mut rows = connection.prepare(&format!("SELECT {columns} FROM main.p2p_transfers"))?;
    let mut insert = connection.prepare(&format!(
        "INSERT INTO ledger.p2p_transfers (timestamp_ns, {columns}) \
         SELECT timestamp_ns, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 FROM ledger.transfers WHERE id = ?1 \
         ON CONFLICT (timestamp_ns) DO NOTHING"
    ))?;
    let mut cursor = rows.query([])?;
    while let Some(row) = cursor.next()? {
        let transfer_id: String = row.get(0)?;
        let key = crate::sqlite::p2p_transfer_key(&transfer_id);
        let in_log = match key {
            Some(key) => transfer_in_log(connection, key)?,
            None => false,
        };
        if !in_log {
            return Err(StoreError::Corrupt(format!(
                "the wallet holds a transfer between people that the ledger does not: {transfer_id}"
            )));
        }
        // A row copied before (a crash came before the old table was dropped) is left be.
        insert.execute(params![
            key,
            transfer_id,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, i64>(5)?,
            row.get::<_, String>(6)?,
            // Rows from before delayed arrival got theirs from wallet_0007.
            row.get::<_, i64>(7)?,
        ])?;
    }
    Ok(())
}

fn transfer_in_log(connection: &Connection, key: [u8; 16]) -> Result<bool, StoreError> {
    Ok(connection
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM ledger.transfers WHERE id = ?1)")?
        .query_row([key], |r| r.get(0))?)
}

fn user_row_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        phone_lookup: r.get(4)?,
        phone_masked: r.get(1)?,
        password_hash: r.get(2)?,
        created_ms: r.get(3)?,
    })
}

impl WalletStore for SqliteWalletStore {
    fn statement_undoes_itself(&self) -> bool {
        true
    }

    fn in_transaction(&self) -> bool {
        !self.connection.is_autocommit()
    }

    fn batch_step(&mut self, step: BatchStep) -> Result<(), StoreError> {
        // Cached statements: these run several times per payment, and parsing them each time
        // would cost more than the writes they bracket.
        let statements: &[&str] = match step {
            BatchStep::Begin => &["BEGIN IMMEDIATE"],
            BatchStep::JobStart => &["SAVEPOINT job"],
            BatchStep::JobKeep => &["RELEASE job"],
            BatchStep::JobUndo => &["ROLLBACK TO job", "RELEASE job"],
            BatchStep::Commit => &["COMMIT"],
            BatchStep::Rollback => &["ROLLBACK"],
        };
        for statement in statements {
            self.connection.prepare_cached(statement)?.execute([])?;
        }
        Ok(())
    }

    fn user_create(&mut self, user: &NewUser) -> Result<Option<i64>, StoreError> {
        let id = self
            .connection
            .prepare_cached(
                "INSERT INTO users (phone_lookup, phone_masked, password_hash, created_ms) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (phone_lookup) DO NOTHING RETURNING id",
            )?
            .query_row(
                params![
                    user.phone_lookup,
                    user.phone_masked,
                    user.password_hash,
                    user.created_ms
                ],
                |r| r.get(0),
            )
            .optional()?;
        Ok(id)
    }

    fn user_by_phone(&mut self, phone_lookup: &[u8]) -> Result<Option<UserRow>, StoreError> {
        Ok(self
            .connection
            .prepare_cached(
                "SELECT id, phone_masked, password_hash, created_ms, phone_lookup FROM users WHERE phone_lookup = ?1",
            )?
            .query_row([phone_lookup], user_row_sqlite)
            .optional()?)
    }

    fn user(&mut self, id: i64) -> Result<Option<UserRow>, StoreError> {
        Ok(self
            .connection
            .prepare_cached(
                "SELECT id, phone_masked, password_hash, created_ms, phone_lookup FROM users WHERE id = ?1",
            )?
            .query_row([id], user_row_sqlite)
            .optional()?)
    }

    fn session_create(
        &mut self,
        token_hash: &[u8],
        user_id: i64,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        self.connection
            .prepare_cached(
                "INSERT INTO sessions (token_hash, user_id, expires_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![token_hash, user_id, expires_ms])?;
        Ok(())
    }

    fn session(&mut self, token_hash: &[u8]) -> Result<Option<SessionRow>, StoreError> {
        Ok(self
            .connection
            .prepare_cached("SELECT user_id, expires_ms FROM sessions WHERE token_hash = ?1")?
            .query_row([token_hash], |r| {
                Ok(SessionRow {
                    user_id: r.get(0)?,
                    expires_ms: r.get(1)?,
                })
            })
            .optional()?)
    }

    fn session_delete(&mut self, token_hash: &[u8]) -> Result<bool, StoreError> {
        let deleted = self
            .connection
            .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
            .execute([token_hash])?;
        Ok(deleted > 0)
    }

    fn pin_set(&mut self, user_id: i64, salt: &[u8], hash: &[u8]) -> Result<(), StoreError> {
        self.connection
            .prepare_cached(
                "INSERT INTO pins (user_id, salt, hash, failures, locked_until_ms) VALUES (?1, ?2, ?3, 0, NULL) \
                 ON CONFLICT (user_id) DO UPDATE SET salt = excluded.salt, hash = excluded.hash, failures = 0, locked_until_ms = NULL",
            )?
            .execute(params![user_id, salt, hash])?;
        Ok(())
    }

    fn pin(&mut self, user_id: i64) -> Result<Option<PinRow>, StoreError> {
        Ok(self
            .connection
            .prepare_cached(
                "SELECT salt, hash, failures, locked_until_ms FROM pins WHERE user_id = ?1",
            )?
            .query_row([user_id], |r| {
                Ok(PinRow {
                    salt: r.get(0)?,
                    hash: r.get(1)?,
                    failures: r.get(2)?,
                    locked_until_ms: r.get(3)?,
                })
            })
            .optional()?)
    }

    fn pin_attempts_save(
        &mut self,
        user_id: i64,
        failures: u32,
        locked_until_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        self.connection
            .prepare_cached(
                "UPDATE pins SET failures = ?2, locked_until_ms = ?3 WHERE user_id = ?1",
            )?
            .execute(params![user_id, failures, locked_until_ms])?;
        Ok(())
    }

    fn identity_save(&mut self, identity: &IdentityRow) -> Result<(), StoreError> {
        self.connection
            .prepare_cached(
                "INSERT INTO identities (user_id, class, name_masked, id_lookup, id_masked, verified_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (user_id) DO UPDATE SET class = excluded.class, \
                 name_masked = excluded.name_masked, id_lookup = excluded.id_lookup, \
                 id_masked = excluded.id_masked, verified_ms = excluded.verified_ms",
            )?
            .execute(params![
                identity.user_id,
                identity.class,
                identity.name_masked,
                identity.id_lookup,
                identity.id_masked,
                identity.verified_ms
            ])?;
        Ok(())
    }

    fn identity(&mut self, user_id: i64) -> Result<Option<IdentityRow>, StoreError> {
        Ok(self
            .connection
            .prepare_cached(
                "SELECT user_id, class, name_masked, id_lookup, id_masked, verified_ms FROM identities WHERE user_id = ?1",
            )?
            .query_row([user_id], |r| {
                Ok(IdentityRow {
                    user_id: r.get(0)?,
                    class: r.get(1)?,
                    name_masked: r.get(2)?,
                    id_lookup: r.get(3)?,
                    id_masked: r.get(4)?,
                    verified_ms: r.get(5)?,
                })
            })
            .optional()?)
    }

    fn card_bind(&mut self, card: &CardRow) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .prepare_cached(
                "INSERT INTO cards (token, user_id, bank, last_four, bound_ms, unbound_ms) VALUES (?1, ?2, ?3, ?4, ?5, NULL) \
                 ON CONFLICT (user_id, token) DO UPDATE SET bound_ms = excluded.bound_ms, unbound_ms = NULL \
                 WHERE cards.unbound_ms IS NOT NULL",
            )?
            .execute(params![card.token, card.user_id, card.bank, card.last_four, card.bound_ms])?;
        Ok(changed > 0)
    }

    fn cards(&mut self, user_id: i64) -> Result<Vec<CardRow>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT user_id, token, bank, last_four, bound_ms FROM cards WHERE user_id = ?1 AND unbound_ms IS NULL \
             ORDER BY bound_ms, token",
        )?;
        let rows = statement.query_map([user_id], |r| {
            Ok(CardRow {
                user_id: r.get(0)?,
                token: r.get(1)?,
                bank: r.get(2)?,
                last_four: r.get(3)?,
                bound_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn card_unbind(&mut self, user_id: i64, token: &str, now_ms: i64) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .prepare_cached(
                "UPDATE cards SET unbound_ms = ?3 WHERE user_id = ?1 AND token = ?2 AND unbound_ms IS NULL",
            )?
            .execute(params![user_id, token, now_ms])?;
        Ok(changed > 0)
    }

    fn quota_used(&mut self, id_lookup: &[u8]) -> Result<u64, StoreError> {
        let used: i64 = self
            .connection
            .prepare_cached("SELECT coalesce(sum(free_minor), 0) FROM quota_uses WHERE id_lookup = ?1 AND released = 0")?
            .query_row([id_lookup], |r| r.get(0))?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    fn quota_use(&mut self, key: &str) -> Result<Option<u64>, StoreError> {
        let free: Option<i64> = self
            .connection
            .prepare_cached("SELECT free_minor FROM quota_uses WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        Ok(free.map(|f| u64::try_from(f).unwrap_or(0)))
    }

    fn quota_use_record(
        &mut self,
        key: &str,
        id_lookup: &[u8],
        free_minor: u64,
    ) -> Result<bool, StoreError> {
        let free = i64::try_from(free_minor)
            .map_err(|_| StoreError::Corrupt("quota share out of range".into()))?;
        let changed = self
            .connection
            .prepare_cached(
                "INSERT INTO quota_uses (key, id_lookup, free_minor) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO NOTHING",
            )?
            .execute(params![key, id_lookup, free])?;
        Ok(changed > 0)
    }

    fn quota_use_release(&mut self, key: &str) -> Result<(), StoreError> {
        self.connection
            .prepare_cached("UPDATE quota_uses SET released = 1 WHERE key = ?1")?
            .execute([key])?;
        Ok(())
    }

    fn withdrawal_open(&mut self, row: &WithdrawalRow) -> Result<bool, StoreError> {
        let [amount, fee, free] = minor_i64([row.amount_minor, row.fee_minor, row.free_minor])?;
        let changed = self
            .connection
            .prepare_cached(
                "INSERT INTO withdrawals (key, user_id, withdrawal_key, card_token, amount_minor, fee_minor, \
                 free_minor, started_ms, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (key) DO NOTHING",
            )?
            .execute(params![
                row.key,
                row.user_id,
                row.withdrawal_key,
                row.card_token,
                amount,
                fee,
                free,
                row.started_ms,
                row.state
            ])?;
        Ok(changed == 1)
    }

    fn withdrawal_close(&mut self, key: &str, state: &str) -> Result<(), StoreError> {
        self.connection
            .prepare_cached("UPDATE withdrawals SET state = ?2 WHERE key = ?1 AND state = 'open'")?
            .execute(params![key, state])?;
        Ok(())
    }

    fn withdrawals_open(
        &mut self,
        started_ms_max: i64,
        limit: usize,
    ) -> Result<Vec<WithdrawalRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .connection
            .prepare_cached(&format!(
                "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE state = 'open' AND started_ms <= ?1 \
                 ORDER BY started_ms, key LIMIT ?2"
            ))?
            .query_map(params![started_ms_max, limit], |r| {
                Ok(WithdrawalRow {
                    key: r.get(0)?,
                    user_id: r.get(1)?,
                    withdrawal_key: r.get(2)?,
                    card_token: r.get(3)?,
                    amount_minor: r.get::<_, i64>(4)? as u64,
                    fee_minor: r.get::<_, i64>(5)? as u64,
                    free_minor: r.get::<_, i64>(6)? as u64,
                    started_ms: r.get(7)?,
                    state: r.get(8)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn pay_code_issue(
        &mut self,
        lookup: &[u8],
        user_id: i64,
        issued_ms: i64,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        self.connection
            .prepare_cached(
                "UPDATE pay_codes SET spent_ms = ?2 WHERE user_id = ?1 AND spent_ms IS NULL",
            )?
            .execute(params![user_id, issued_ms])?;
        self.connection
            .prepare_cached(
                "INSERT INTO pay_codes (lookup, user_id, issued_ms, expires_ms, spent_ms) \
                 VALUES (?1, ?2, ?3, ?4, NULL)",
            )?
            .execute(params![lookup, user_id, issued_ms, expires_ms])?;
        Ok(())
    }

    fn pay_code_take(
        &mut self,
        lookup: &[u8],
        now_ms: i64,
    ) -> Result<Option<PayCodeRow>, StoreError> {
        let row = self
            .connection
            .prepare_cached(
                "SELECT user_id, issued_ms, expires_ms, spent_ms FROM pay_codes WHERE lookup = ?1",
            )?
            .query_row([lookup], |r| {
                Ok(PayCodeRow {
                    user_id: r.get(0)?,
                    issued_ms: r.get(1)?,
                    expires_ms: r.get(2)?,
                    spent_ms: r.get(3)?,
                })
            })
            .optional()?;
        if row.as_ref().is_some_and(|r| r.spent_ms.is_none()) {
            self.connection
                .prepare_cached("UPDATE pay_codes SET spent_ms = ?2 WHERE lookup = ?1")?
                .execute(params![lookup, now_ms])?;
        }
        Ok(row)
    }

    fn pay_device_insert(
        &mut self,
        device_no: i64,
        user_id: i64,
        created_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .prepare_cached(
                "INSERT INTO pay_devices (device_no, user_id, created_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (device_no) DO NOTHING",
            )?
            .execute(params![device_no, user_id, created_ms])?;
        Ok(changed == 1)
    }

    fn pay_device_owner(&mut self, device_no: i64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .connection
            .prepare_cached("SELECT user_id FROM pay_devices WHERE device_no = ?1")?
            .query_row([device_no], |r| r.get(0))
            .optional()?)
    }

    fn pay_device_step_spend(&mut self, device_no: i64, step: i64) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .prepare_cached(
                "INSERT INTO pay_device_steps (device_no, step) VALUES (?1, ?2) \
                 ON CONFLICT (device_no, step) DO NOTHING",
            )?
            .execute(params![device_no, step])?;
        Ok(changed == 1)
    }

    fn static_code_payment_insert(
        &mut self,
        transfer_id: &str,
        payer_id: i64,
        amount_minor: u64,
        created_ms: i64,
    ) -> Result<bool, StoreError> {
        let [amount] = minor_i64([amount_minor])?;
        let changed = self
            .connection
            .prepare_cached(
                "INSERT INTO static_code_payments (transfer_id, payer_id, amount_minor, created_ms) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (transfer_id) DO NOTHING",
            )?
            .execute(params![transfer_id, payer_id, amount, created_ms])?;
        Ok(changed == 1)
    }

    fn static_code_spent_since(&mut self, payer_id: i64, since_ms: i64) -> Result<u64, StoreError> {
        let spent: i64 = self
            .connection
            .prepare_cached(
                "SELECT coalesce(sum(amount_minor), 0) FROM static_code_payments \
                 WHERE payer_id = ?1 AND created_ms >= ?2",
            )?
            .query_row(params![payer_id, since_ms], |r| r.get(0))?;
        Ok(u64::try_from(spent).unwrap_or(0))
    }

    fn p2p(&mut self, transfer_id: &str) -> Result<Option<P2pRow>, StoreError> {
        let Some(key) = crate::sqlite::p2p_transfer_key(transfer_id) else {
            return Ok(None);
        };
        // Through the log's id index: the row is keyed by its transfer's place in the log.
        Ok(self
            .connection
            .prepare_cached(&format!(
                "SELECT {P2P_COLUMNS} FROM ledger.p2p_transfers WHERE timestamp_ns = \
                 (SELECT timestamp_ns FROM ledger.transfers WHERE id = ?1)"
            ))?
            .query_row([key], p2p_row_sqlite)
            .optional()?)
    }

    fn balance_spent(
        &mut self,
        person_id: i64,
        since_ms: [i64; 3],
        now_ms: i64,
    ) -> Result<BalanceSpent, StoreError> {
        let (sums, first_expiry_ms) = self
            .connection
            .prepare_cached(BALANCE_SPENT_SQLITE)?
            .query_row(
                params![person_id, since_ms[0], since_ms[1], since_ms[2], now_ms],
                |r| Ok(([r.get(0)?, r.get(1)?, r.get(2)?], r.get(3)?)),
            )?;
        Ok(BalanceSpent::from_row(sums, first_expiry_ms))
    }

    fn red_packet_insert(
        &mut self,
        packet: &RedPacketRow,
        shares_minor: &[u64],
    ) -> Result<bool, StoreError> {
        // A savepoint, so that this is atomic inside a writer's batch and outside one.
        let tx = self.connection.savepoint()?;
        let inserted = tx.execute(
            "INSERT INTO red_packets (packet_id, sender_id, kind, total_minor, shares, created_ms, expires_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (packet_id) DO NOTHING",
            params![
                packet.packet_id,
                packet.sender_id,
                packet.kind,
                to_i64(packet.total_minor)?,
                packet.shares,
                packet.created_ms,
                packet.expires_ms
            ],
        )?;
        if inserted == 0 {
            return Ok(false);
        }
        for (index, amount_minor) in shares_minor.iter().enumerate() {
            tx.execute(
                "INSERT INTO red_packet_shares (packet_id, share_index, amount_minor) VALUES (?1, ?2, ?3)",
                params![packet.packet_id, index as i64, to_i64(*amount_minor)?],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn red_packet(&mut self, packet_id: &str) -> Result<Option<RedPacketRow>, StoreError> {
        Ok(self
            .connection
            .prepare_cached(
                "SELECT packet_id, sender_id, kind, total_minor, shares, created_ms, expires_ms FROM red_packets WHERE packet_id = ?1",
            )?
            .query_row([packet_id], |r| {
                Ok(RedPacketRow {
                    packet_id: r.get(0)?,
                    sender_id: r.get(1)?,
                    kind: r.get(2)?,
                    total_minor: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    shares: r.get(4)?,
                    created_ms: r.get(5)?,
                    expires_ms: r.get(6)?,
                })
            })
            .optional()?)
    }

    fn red_packet_shares(&mut self, packet_id: &str) -> Result<Vec<ShareRow>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT share_index, amount_minor, grabber_id, grabbed_ms FROM red_packet_shares WHERE packet_id = ?1 ORDER BY share_index",
        )?;
        let rows = statement.query_map([packet_id], |r| {
            Ok(ShareRow {
                index: r.get(0)?,
                amount_minor: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                grabber_id: r.get(2)?,
                grabbed_ms: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn red_packet_claim(
        &mut self,
        packet_id: &str,
        index: u32,
        grabber_id: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .prepare_cached(
                "UPDATE red_packet_shares SET grabber_id = ?3, grabbed_ms = ?4 \
                 WHERE packet_id = ?1 AND share_index = ?2 AND grabber_id IS NULL",
            )?
            .execute(params![packet_id, index, grabber_id, now_ms])?;
        Ok(changed > 0)
    }
}

pub struct PostgresWalletStore {
    pub(crate) client: crate::pg_client::CachedClient,
    /// Inside a writer's batch, whose per-job savepoint makes each job atomic.
    in_batch: bool,
}

fn user_row_postgres(row: &postgres::Row) -> UserRow {
    UserRow {
        id: row.get(0),
        phone_lookup: row.get(4),
        phone_masked: row.get(1),
        password_hash: row.get(2),
        created_ms: row.get(3),
    }
}

impl WalletStore for PostgresWalletStore {
    fn batch_step(&mut self, step: BatchStep) -> Result<(), StoreError> {
        self.client.batch_execute(match step {
            BatchStep::Begin => "BEGIN",
            BatchStep::JobStart => "SAVEPOINT job",
            BatchStep::JobKeep => "RELEASE SAVEPOINT job",
            BatchStep::JobUndo => "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job",
            BatchStep::Commit => "COMMIT",
            BatchStep::Rollback => "ROLLBACK",
        })?;
        self.in_batch = match step {
            BatchStep::Begin => true,
            BatchStep::Commit | BatchStep::Rollback => false,
            _ => self.in_batch,
        };
        Ok(())
    }

    fn user_create(&mut self, user: &NewUser) -> Result<Option<i64>, StoreError> {
        let row = self.client.query_opt(
            "INSERT INTO users (phone_lookup, phone_masked, password_hash, created_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (phone_lookup) DO NOTHING RETURNING id",
            &[
                &user.phone_lookup,
                &user.phone_masked,
                &user.password_hash,
                &user.created_ms,
            ],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    fn user_by_phone(&mut self, phone_lookup: &[u8]) -> Result<Option<UserRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT id, phone_masked, password_hash, created_ms, phone_lookup FROM users WHERE phone_lookup = $1",
            &[&phone_lookup],
        )?;
        Ok(row.as_ref().map(user_row_postgres))
    }

    fn user(&mut self, id: i64) -> Result<Option<UserRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT id, phone_masked, password_hash, created_ms, phone_lookup FROM users WHERE id = $1",
            &[&id],
        )?;
        Ok(row.as_ref().map(user_row_postgres))
    }

    fn session_create(
        &mut self,
        token_hash: &[u8],
        user_id: i64,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "INSERT INTO sessions (token_hash, user_id, expires_ms) VALUES ($1, $2, $3)",
            &[&token_hash, &user_id, &expires_ms],
        )?;
        Ok(())
    }

    fn session(&mut self, token_hash: &[u8]) -> Result<Option<SessionRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT user_id, expires_ms FROM sessions WHERE token_hash = $1",
            &[&token_hash],
        )?;
        Ok(row.map(|r| SessionRow {
            user_id: r.get(0),
            expires_ms: r.get(1),
        }))
    }

    fn session_delete(&mut self, token_hash: &[u8]) -> Result<bool, StoreError> {
        let deleted = self
            .client
            .execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])?;
        Ok(deleted > 0)
    }

    fn pin_set(&mut self, user_id: i64, salt: &[u8], hash: &[u8]) -> Result<(), StoreError> {
        self.client.execute(
            "INSERT INTO pins (user_id, salt, hash, failures, locked_until_ms) VALUES ($1, $2, $3, 0, NULL) \
             ON CONFLICT (user_id) DO UPDATE SET salt = excluded.salt, hash = excluded.hash, failures = 0, locked_until_ms = NULL",
            &[&user_id, &salt, &hash],
        )?;
        Ok(())
    }

    fn pin(&mut self, user_id: i64) -> Result<Option<PinRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT salt, hash, failures, locked_until_ms FROM pins WHERE user_id = $1",
            &[&user_id],
        )?;
        Ok(row.map(|r| PinRow {
            salt: r.get(0),
            hash: r.get(1),
            failures: u32::try_from(r.get::<_, i32>(2)).unwrap_or(u32::MAX),
            locked_until_ms: r.get(3),
        }))
    }

    fn pin_attempts_save(
        &mut self,
        user_id: i64,
        failures: u32,
        locked_until_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let failures = i32::try_from(failures).unwrap_or(i32::MAX);
        self.client.execute(
            "UPDATE pins SET failures = $2, locked_until_ms = $3 WHERE user_id = $1",
            &[&user_id, &failures, &locked_until_ms],
        )?;
        Ok(())
    }

    fn identity_save(&mut self, identity: &IdentityRow) -> Result<(), StoreError> {
        self.client.execute(
            "INSERT INTO identities (user_id, class, name_masked, id_lookup, id_masked, verified_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id) DO UPDATE SET class = excluded.class, \
             name_masked = excluded.name_masked, id_lookup = excluded.id_lookup, \
             id_masked = excluded.id_masked, verified_ms = excluded.verified_ms",
            &[
                &identity.user_id,
                &identity.class,
                &identity.name_masked,
                &identity.id_lookup,
                &identity.id_masked,
                &identity.verified_ms,
            ],
        )?;
        Ok(())
    }

    fn identity(&mut self, user_id: i64) -> Result<Option<IdentityRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT user_id, class, name_masked, id_lookup, id_masked, verified_ms FROM identities WHERE user_id = $1",
            &[&user_id],
        )?;
        Ok(row.map(|r| IdentityRow {
            user_id: r.get(0),
            class: r.get(1),
            name_masked: r.get(2),
            id_lookup: r.get(3),
            id_masked: r.get(4),
            verified_ms: r.get(5),
        }))
    }

    fn card_bind(&mut self, card: &CardRow) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "INSERT INTO cards (token, user_id, bank, last_four, bound_ms, unbound_ms) VALUES ($1, $2, $3, $4, $5, NULL) \
             ON CONFLICT (user_id, token) DO UPDATE SET bound_ms = excluded.bound_ms, unbound_ms = NULL \
             WHERE cards.unbound_ms IS NOT NULL",
            &[&card.token, &card.user_id, &card.bank, &card.last_four, &card.bound_ms],
        )?;
        Ok(changed > 0)
    }

    fn cards(&mut self, user_id: i64) -> Result<Vec<CardRow>, StoreError> {
        let rows = self.client.query(
            "SELECT user_id, token, bank, last_four, bound_ms FROM cards WHERE user_id = $1 AND unbound_ms IS NULL \
             ORDER BY bound_ms, token",
            &[&user_id],
        )?;
        Ok(rows
            .iter()
            .map(|r| CardRow {
                user_id: r.get(0),
                token: r.get(1),
                bank: r.get(2),
                last_four: r.get(3),
                bound_ms: r.get(4),
            })
            .collect())
    }

    fn card_unbind(&mut self, user_id: i64, token: &str, now_ms: i64) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "UPDATE cards SET unbound_ms = $3 WHERE user_id = $1 AND token = $2 AND unbound_ms IS NULL",
            &[&user_id, &token, &now_ms],
        )?;
        Ok(changed > 0)
    }

    fn quota_used(&mut self, id_lookup: &[u8]) -> Result<u64, StoreError> {
        let row = self.client.query_one(
            "SELECT CAST(coalesce(sum(free_minor), 0) AS BIGINT) FROM quota_uses WHERE id_lookup = $1 AND NOT released",
            &[&id_lookup],
        )?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    fn quota_use(&mut self, key: &str) -> Result<Option<u64>, StoreError> {
        let row = self
            .client
            .query_opt("SELECT free_minor FROM quota_uses WHERE key = $1", &[&key])?;
        Ok(row.map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
    }

    fn quota_use_record(
        &mut self,
        key: &str,
        id_lookup: &[u8],
        free_minor: u64,
    ) -> Result<bool, StoreError> {
        let free = i64::try_from(free_minor)
            .map_err(|_| StoreError::Corrupt("quota share out of range".into()))?;
        let changed = self.client.execute(
            "INSERT INTO quota_uses (key, id_lookup, free_minor) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
            &[&key, &id_lookup, &free],
        )?;
        Ok(changed > 0)
    }

    fn quota_use_release(&mut self, key: &str) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE quota_uses SET released = TRUE WHERE key = $1",
            &[&key],
        )?;
        Ok(())
    }

    fn withdrawal_open(&mut self, row: &WithdrawalRow) -> Result<bool, StoreError> {
        let [amount, fee, free] = minor_i64([row.amount_minor, row.fee_minor, row.free_minor])?;
        let changed = self.client.execute(
            "INSERT INTO withdrawals (key, user_id, withdrawal_key, card_token, amount_minor, fee_minor, \
             free_minor, started_ms, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (key) DO NOTHING",
            &[
                &row.key,
                &row.user_id,
                &row.withdrawal_key,
                &row.card_token,
                &amount,
                &fee,
                &free,
                &row.started_ms,
                &row.state,
            ],
        )?;
        Ok(changed == 1)
    }

    fn withdrawal_close(&mut self, key: &str, state: &str) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE withdrawals SET state = $2 WHERE key = $1 AND state = 'open'",
            &[&key, &state],
        )?;
        Ok(())
    }

    fn withdrawals_open(
        &mut self,
        started_ms_max: i64,
        limit: usize,
    ) -> Result<Vec<WithdrawalRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.client.query(
            &format!(
                "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE state = 'open' AND started_ms <= $1 \
                 ORDER BY started_ms, key LIMIT $2"
            ),
            &[&started_ms_max, &limit],
        )?;
        Ok(rows
            .iter()
            .map(|r| WithdrawalRow {
                key: r.get(0),
                user_id: r.get(1),
                withdrawal_key: r.get(2),
                card_token: r.get(3),
                amount_minor: r.get::<_, i64>(4) as u64,
                fee_minor: r.get::<_, i64>(5) as u64,
                free_minor: r.get::<_, i64>(6) as u64,
                started_ms: r.get(7),
                state: r.get(8),
            })
            .collect())
    }

    fn pay_code_issue(
        &mut self,
        lookup: &[u8],
        user_id: i64,
        issued_ms: i64,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE pay_codes SET spent_ms = $2 WHERE user_id = $1 AND spent_ms IS NULL",
            &[&user_id, &issued_ms],
        )?;
        self.client.execute(
            "INSERT INTO pay_codes (lookup, user_id, issued_ms, expires_ms, spent_ms) \
             VALUES ($1, $2, $3, $4, NULL)",
            &[&lookup, &user_id, &issued_ms, &expires_ms],
        )?;
        Ok(())
    }

    fn pay_code_take(
        &mut self,
        lookup: &[u8],
        now_ms: i64,
    ) -> Result<Option<PayCodeRow>, StoreError> {
        // Row-locked, so that two takes of one code cannot both find it unspent.
        let row = self
            .client
            .query_opt(
                "SELECT user_id, issued_ms, expires_ms, spent_ms FROM pay_codes WHERE lookup = $1 FOR UPDATE",
                &[&lookup],
            )?
            .map(|r| PayCodeRow {
                user_id: r.get(0),
                issued_ms: r.get(1),
                expires_ms: r.get(2),
                spent_ms: r.get(3),
            });
        if row.as_ref().is_some_and(|r| r.spent_ms.is_none()) {
            self.client.execute(
                "UPDATE pay_codes SET spent_ms = $2 WHERE lookup = $1",
                &[&lookup, &now_ms],
            )?;
        }
        Ok(row)
    }

    fn pay_device_insert(
        &mut self,
        device_no: i64,
        user_id: i64,
        created_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "INSERT INTO pay_devices (device_no, user_id, created_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (device_no) DO NOTHING",
            &[&device_no, &user_id, &created_ms],
        )?;
        Ok(changed == 1)
    }

    fn pay_device_owner(&mut self, device_no: i64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .client
            .query_opt(
                "SELECT user_id FROM pay_devices WHERE device_no = $1",
                &[&device_no],
            )?
            .map(|r| r.get(0)))
    }

    fn pay_device_step_spend(&mut self, device_no: i64, step: i64) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "INSERT INTO pay_device_steps (device_no, step) VALUES ($1, $2) \
             ON CONFLICT (device_no, step) DO NOTHING",
            &[&device_no, &step],
        )?;
        Ok(changed == 1)
    }

    fn static_code_payment_insert(
        &mut self,
        transfer_id: &str,
        payer_id: i64,
        amount_minor: u64,
        created_ms: i64,
    ) -> Result<bool, StoreError> {
        let [amount] = minor_i64([amount_minor])?;
        let changed = self.client.execute(
            "INSERT INTO static_code_payments (transfer_id, payer_id, amount_minor, created_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (transfer_id) DO NOTHING",
            &[&transfer_id, &payer_id, &amount, &created_ms],
        )?;
        Ok(changed == 1)
    }

    fn static_code_spent_since(&mut self, payer_id: i64, since_ms: i64) -> Result<u64, StoreError> {
        let row = self.client.query_one(
            "SELECT CAST(coalesce(sum(amount_minor), 0) AS BIGINT) FROM static_code_payments \
             WHERE payer_id = $1 AND created_ms >= $2",
            &[&payer_id, &since_ms],
        )?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    fn p2p(&mut self, transfer_id: &str) -> Result<Option<P2pRow>, StoreError> {
        let row = self.client.query_opt(
            &format!("SELECT {P2P_COLUMNS} FROM p2p_transfers WHERE transfer_id = $1"),
            &[&transfer_id],
        )?;
        Ok(row.as_ref().map(p2p_row_postgres))
    }

    fn balance_spent(
        &mut self,
        person_id: i64,
        since_ms: [i64; 3],
        now_ms: i64,
    ) -> Result<BalanceSpent, StoreError> {
        let row = self.client.query_one(
            BALANCE_SPENT_POSTGRES,
            &[
                &person_id,
                &since_ms[0],
                &since_ms[1],
                &since_ms[2],
                &now_ms,
            ],
        )?;
        let sums: [i64; 3] = [row.get(0), row.get(1), row.get(2)];
        Ok(BalanceSpent::from_row(sums, row.get(3)))
    }

    fn red_packet_insert(
        &mut self,
        packet: &RedPacketRow,
        shares_minor: &[u64],
    ) -> Result<bool, StoreError> {
        if self.in_batch {
            return insert_red_packet_postgres(self.client.raw(), packet, shares_minor);
        }
        let mut tx = self.client.raw().transaction()?;
        let inserted = insert_red_packet_postgres(&mut tx, packet, shares_minor)?;
        tx.commit()?;
        Ok(inserted)
    }

    fn red_packet(&mut self, packet_id: &str) -> Result<Option<RedPacketRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT packet_id, sender_id, kind, total_minor, shares, created_ms, expires_ms FROM red_packets WHERE packet_id = $1",
            &[&packet_id],
        )?;
        Ok(row.map(|r| RedPacketRow {
            packet_id: r.get(0),
            sender_id: r.get(1),
            kind: r.get(2),
            total_minor: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
            shares: u32::try_from(r.get::<_, i32>(4)).unwrap_or(0),
            created_ms: r.get(5),
            expires_ms: r.get(6),
        }))
    }

    fn red_packet_shares(&mut self, packet_id: &str) -> Result<Vec<ShareRow>, StoreError> {
        let rows = self.client.query(
            "SELECT share_index, amount_minor, grabber_id, grabbed_ms FROM red_packet_shares WHERE packet_id = $1 ORDER BY share_index",
            &[&packet_id],
        )?;
        Ok(rows
            .iter()
            .map(|r| ShareRow {
                index: u32::try_from(r.get::<_, i32>(0)).unwrap_or(0),
                amount_minor: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                grabber_id: r.get(2),
                grabbed_ms: r.get(3),
            })
            .collect())
    }

    fn red_packet_claim(
        &mut self,
        packet_id: &str,
        index: u32,
        grabber_id: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "UPDATE red_packet_shares SET grabber_id = $3, grabbed_ms = $4 \
             WHERE packet_id = $1 AND share_index = $2 AND grabber_id IS NULL",
            &[&packet_id, &(index as i32), &grabber_id, &now_ms],
        )?;
        Ok(changed > 0)
    }
}

/// The rows that took money from a person's balance and still have it: transfers accepted or
/// held (not yet expired), red packet shares grabbed or still open. `?1` person, `?2`..`?4` the
/// windows' starts, `?5` now.
const BALANCE_SPENT_SQLITE: &str = "SELECT coalesce(sum(amount_minor), 0), \
     coalesce(sum(CASE WHEN created_ms >= ?3 THEN amount_minor END), 0), \
     coalesce(sum(CASE WHEN created_ms >= ?4 THEN amount_minor END), 0), min(expiry_ms) FROM ( \
     SELECT amount_minor, created_ms, CASE WHEN state = 'held' THEN expires_ms END AS expiry_ms \
     FROM ledger.p2p_transfers WHERE payer_id = ?1 AND created_ms >= ?2 \
     AND (state = 'accepted' OR (state = 'held' AND expires_ms > ?5)) \
     UNION ALL SELECT s.amount_minor, p.created_ms, \
     CASE WHEN s.grabber_id IS NULL THEN p.expires_ms END FROM red_packets p \
     JOIN red_packet_shares s ON s.packet_id = p.packet_id \
     WHERE p.sender_id = ?1 AND p.created_ms >= ?2 AND (s.grabber_id IS NOT NULL OR p.expires_ms > ?5) \
     UNION ALL SELECT amount_minor - refunded_minor, paid_ms, NULL FROM merchant_orders \
     WHERE payer_id = ?1 AND paid_ms >= ?2)";

const BALANCE_SPENT_POSTGRES: &str = "SELECT CAST(coalesce(sum(amount_minor), 0) AS BIGINT), \
     CAST(coalesce(sum(CASE WHEN created_ms >= $3 THEN amount_minor END), 0) AS BIGINT), \
     CAST(coalesce(sum(CASE WHEN created_ms >= $4 THEN amount_minor END), 0) AS BIGINT), \
     min(expiry_ms) FROM ( \
     SELECT amount_minor, created_ms, CASE WHEN state = 'held' THEN expires_ms END AS expiry_ms \
     FROM p2p_transfers WHERE payer_id = $1 AND created_ms >= $2 \
     AND (state = 'accepted' OR (state = 'held' AND expires_ms > $5)) \
     UNION ALL SELECT s.amount_minor, p.created_ms, \
     CASE WHEN s.grabber_id IS NULL THEN p.expires_ms END FROM red_packets p \
     JOIN red_packet_shares s ON s.packet_id = p.packet_id \
     WHERE p.sender_id = $1 AND p.created_ms >= $2 AND (s.grabber_id IS NOT NULL OR p.expires_ms > $5) \
     UNION ALL SELECT amount_minor - refunded_minor, paid_ms, CAST(NULL AS BIGINT) FROM merchant_orders \
     WHERE payer_id = $1 AND paid_ms >= $2) AS spent";

const WITHDRAWAL_COLUMNS: &str = "key, user_id, withdrawal_key, card_token, amount_minor, fee_minor, \
     free_minor, started_ms, state";

/// Amounts as the databases store them; above `i64::MAX` is no amount zhifu ever moves.
fn minor_i64<const N: usize>(amounts: [u64; N]) -> Result<[i64; N], StoreError> {
    let mut out = [0i64; N];
    for (slot, amount) in out.iter_mut().zip(amounts) {
        *slot =
            i64::try_from(amount).map_err(|_| StoreError::Corrupt("amount out of range".into()))?;
    }
    Ok(out)
}

const P2P_COLUMNS: &str =
    "transfer_id, payer_id, payee_id, amount_minor, created_ms, expires_ms, state, arrives_ms";

fn insert_red_packet_postgres(
    client: &mut impl postgres::GenericClient,
    packet: &RedPacketRow,
    shares_minor: &[u64],
) -> Result<bool, StoreError> {
    let inserted = client.execute(
        "INSERT INTO red_packets (packet_id, sender_id, kind, total_minor, shares, created_ms, expires_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (packet_id) DO NOTHING",
        &[
            &packet.packet_id,
            &packet.sender_id,
            &packet.kind,
            &to_i64(packet.total_minor)?,
            &(packet.shares as i32),
            &packet.created_ms,
            &packet.expires_ms,
        ],
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    for (index, amount_minor) in shares_minor.iter().enumerate() {
        client.execute(
            "INSERT INTO red_packet_shares (packet_id, share_index, amount_minor) VALUES ($1, $2, $3)",
            &[&packet.packet_id, &(index as i32), &to_i64(*amount_minor)?],
        )?;
    }
    Ok(true)
}

fn p2p_row_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<P2pRow> {
    Ok(P2pRow {
        transfer_id: r.get(0)?,
        payer_id: r.get(1)?,
        payee_id: r.get(2)?,
        amount_minor: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        created_ms: r.get(4)?,
        expires_ms: r.get(5)?,
        state: r.get(6)?,
        arrives_ms: r.get(7)?,
    })
}

fn p2p_row_postgres(r: &postgres::Row) -> P2pRow {
    P2pRow {
        transfer_id: r.get(0),
        payer_id: r.get(1),
        payee_id: r.get(2),
        amount_minor: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
        created_ms: r.get(4),
        expires_ms: r.get(5),
        state: r.get(6),
        arrives_ms: r.get(7),
    }
}

fn to_i64(minor: u64) -> Result<i64, StoreError> {
    i64::try_from(minor).map_err(|_| StoreError::Corrupt("an amount beyond i64".into()))
}
