//! The SQLite store: the embedded default.
//!
//! Two files. The ledger file holds accounts, the append-only transfer log and rejections, in
//! WAL mode with `synchronous=FULL`, so a commit is durable when it returns. Its transfers are
//! keyed by their timestamp (the rowid), so a batch appends.
//!
//! Per-account history and lookups by reference need indexes whose inserts land at random
//! places; in SQLite each such insert dirties a page that the commit then writes whole to the
//! WAL (measured: 8x slower commits). So those indexes live in a second, derived file (see
//! [`crate::history`]) that [`Store::maintain`] fills from the log on its own connection and
//! thread, never in the writer's way. A read combines the history up to its watermark with a
//! scan of the short tail after it. The history can always be rebuilt from the log.

use crate::history::{Chunk, History};
use crate::rows::{
    AccountRow, REJECTION_COLUMNS, RejectionRow, TRANSFER_COLUMNS, TransferRow, balances_from_row,
    corrupt, id_bytes, id_from_bytes,
};
use crate::{PAGE_LEN_MAX, Store, StoreError, TransferRecord, Upkeep};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::Path;
use zhifu_ledger::{
    Account, AccountId, Balances, BatchOutput, Known, Prior, Reference, Rejection, Transfer,
    TransferId, TransferKind,
};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_ledger.sql")),
    (
        2,
        include_str!("../migrations/sqlite/0002_p2p_transfers.sql"),
    ),
];

/// Brings the ledger file at `path` up to date without opening a whole store: the wallet
/// reads the ledger's `p2p_transfers` and may open before the engine does.
pub(crate) fn migrate_ledger_file(path: &Path) -> Result<(), StoreError> {
    if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(directory)
            .map_err(|e| StoreError::Open(format!("{}: {e}", directory.display())))?;
    }
    migrate(&mut open_wal(path, "FULL")?, MIGRATIONS)
}

/// How long a connection waits for another one's lock before it reports an error.
const BUSY_TIMEOUT_MS: u64 = 5_000;
/// SQLite's page cache per connection, in KiB (negative `cache_size` means KiB). Small: the
/// writer only appends, and re-reads are served by the operating system's page cache.
const CACHE_KIB: i64 = 8 * 1024;
/// WAL pages after which a commit checkpoints by itself. Upkeep checkpoints in the background
/// long before (without blocking the writer); this is only the bound if upkeep falls behind.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: i64 = 65_536;
/// Transfers indexed per step of upkeep, as one run of the history. Only full chunks become
/// runs, so every run of a level has the same size and a level's runs are contiguous in time;
/// the price is that reads scan up to this many recent transfers that are not indexed yet.
const INDEX_CHUNK_ROWS: i64 = 10_000;

/// A ledger file and its history file, through one connection each. The history file is only
/// ever written by [`Store::maintain`], so the ledger's writer never waits for it.
pub struct SqliteStore {
    connection: Connection,
    history: History,
    index_chunk_rows: i64,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_index_chunk(path, INDEX_CHUNK_ROWS)
    }

    /// Opens the store with history runs of another size: for tests that exercise the
    /// history's merges without writing millions of transfers.
    #[doc(hidden)]
    pub fn open_with_index_chunk(
        path: &Path,
        index_chunk_rows: i64,
    ) -> Result<SqliteStore, StoreError> {
        assert!(index_chunk_rows > 0);
        if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(directory)
                .map_err(|e| StoreError::Open(format!("{}: {e}", directory.display())))?;
        }
        // The ledger is the truth: every commit is durable (FULL). The history is derived, so it
        // never fsyncs (its fsyncs would queue behind and in front of the ledger's on the same
        // disk); a history damaged by a power cut is thrown away and rebuilt from the log.
        let connection = open_wal(path, "FULL")?;
        let mut history_path = path.as_os_str().to_owned();
        history_path.push("-history");
        let history = History::open(
            Path::new(&history_path),
            // As many entries per step as a chunk brings (two accounts and a reference each).
            3 * index_chunk_rows as usize,
            |path| open_wal(path, "OFF"),
        )?;
        let mut store = SqliteStore {
            connection,
            history,
            index_chunk_rows,
        };
        store.migrate()?;
        store.check_history()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        migrate(&mut self.connection, MIGRATIONS)
    }

    /// A history that claims more than the ledger holds belongs to another ledger file (a
    /// restored backup, say): start it again from nothing.
    fn check_history(&mut self) -> Result<(), StoreError> {
        if self.history.indexed_through()? > self.timestamp_last_ns()? {
            self.history.reset()?;
        }
        Ok(())
    }
}

/// Applies the embedded migrations this file has not seen yet, in one transaction.
pub(crate) fn migrate(
    connection: &mut Connection,
    migrations: &[(i64, &str)],
) -> Result<(), StoreError> {
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS zhifu_migrations (version INTEGER PRIMARY KEY)",
    )?;
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (version, sql) in migrations {
        let applied: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM zhifu_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if !applied {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO zhifu_migrations (version) VALUES (?1)",
                [version],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Writes the wallet's records of a batch's transfers, in the batch's transaction.
fn commit_records(
    tx: &rusqlite::Transaction<'_>,
    records: &[&TransferRecord],
) -> Result<(), StoreError> {
    for record in records {
        match record {
            TransferRecord::P2pMade(row) => {
                let amount = i64::try_from(row.amount_minor)
                    .map_err(|_| StoreError::Corrupt("amount out of range".into()))?;
                // Its transfer is in the log by now (this batch, or an earlier one for a retry).
                tx.prepare_cached(
                    "INSERT INTO p2p_transfers (timestamp_ns, transfer_id, payer_id, payee_id, \
                     amount_minor, created_ms, expires_ms, state, arrives_ms) \
                     SELECT timestamp_ns, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 FROM transfers WHERE id = ?1 \
                     ON CONFLICT (timestamp_ns) DO NOTHING",
                )?
                .execute(params![
                    record_transfer_id(&row.transfer_id)?,
                    row.transfer_id,
                    row.payer_id,
                    row.payee_id,
                    amount,
                    row.created_ms,
                    row.expires_ms,
                    row.state,
                    row.arrives_ms
                ])?;
            }
            TransferRecord::P2pResolved { transfer_id, state } => {
                tx.prepare_cached(
                    "UPDATE p2p_transfers SET state = ?2 \
                     WHERE timestamp_ns = (SELECT timestamp_ns FROM transfers WHERE id = ?1)",
                )?
                .execute(params![record_transfer_id(transfer_id)?, state])?;
            }
        }
    }
    Ok(())
}

/// The log's key of the transfer a record names by its decimal id.
fn record_transfer_id(decimal: &str) -> Result<[u8; 16], StoreError> {
    p2p_transfer_key(decimal)
        .ok_or_else(|| StoreError::Corrupt(format!("a record names no transfer id: {decimal}")))
}

/// The key in the log (`transfers.id`) of a transfer between people, from its decimal id as
/// the wallet shows it; `None` for text that names no transfer.
pub(crate) fn p2p_transfer_key(decimal: &str) -> Option<[u8; 16]> {
    let id = TransferId::new(decimal.parse().ok()?)?;
    Some(id_bytes(id))
}

/// Copies a WAL back into its database file from a connection other than the writer's.
/// PASSIVE never waits for the writer, nor makes it wait. Under steady load it never copies
/// the last frame (the writer has appended more by then), and SQLite starts a log over only
/// after a checkpoint that copied it all, so a busy log grows to the writer's own checkpoint at
/// [`WAL_AUTOCHECKPOINT_PAGES`]. Tried and not kept (2026-12-02): a RESTART checkpoint past
/// 4,096 frames, waiting at most 2 ms for readers. The ledger's log stayed at 32–65 MB instead
/// of 270 MB, but at 80 % of the maximum rate p50 rose from 3–4.5 ms to 4–12 ms and p99 from
/// 20–27 ms to 30–54 ms (alternating runs against builds without it).
pub(crate) fn checkpoint_beside_writer(connection: &Connection) -> Result<(), StoreError> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    Ok(())
}

/// How long a connection sleeps between two tries of a lock another one holds. SQLite's own
/// busy timeout sleeps 1, 2, 5, 10 ms and more between tries, so a writer held up for a moment
/// slept on for milliseconds after the lock was free.
const BUSY_SLEEP_US: u64 = 100;
/// SQLite's busy handler for every connection to the ledger's and the wallet's files: wait
/// for a lock [`BUSY_TIMEOUT_MS`] in all, in short sleeps.
pub(crate) fn wait_for_lock(tries: i32) -> bool {
    if i64::from(tries) >= (BUSY_TIMEOUT_MS * 1_000 / BUSY_SLEEP_US) as i64 {
        return false;
    }
    std::thread::sleep(std::time::Duration::from_micros(BUSY_SLEEP_US));
    true
}

fn open_wal(path: &Path, synchronous: &str) -> Result<Connection, StoreError> {
    let mut connection = Connection::open(path)?;
    connection.busy_handler(Some(wait_for_lock))?;
    let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if mode != "wal" {
        return Err(StoreError::Open(format!(
            "{}: journal mode is {mode}, not wal",
            path.display()
        )));
    }
    connection.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous}; PRAGMA cache_size = -{CACHE_KIB}; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};"
    ))?;
    connection.set_prepared_statement_cache_capacity(32);
    Ok(connection)
}

fn transfer_row(row: &Row<'_>) -> rusqlite::Result<TransferRow> {
    Ok(TransferRow {
        timestamp_ns: row.get(0)?,
        id: row.get(1)?,
        kind: row.get(2)?,
        debit_account_id: row.get(3)?,
        credit_account_id: row.get(4)?,
        amount_minor: row.get(5)?,
        pending_id: row.get(6)?,
        timeout_ms: row.get(7)?,
        code: row.get(8)?,
        reference: row.get(9)?,
        flags: row.get(10)?,
        debit_balances: [row.get(11)?, row.get(12)?, row.get(13)?, row.get(14)?],
        credit_balances: [row.get(15)?, row.get(16)?, row.get(17)?, row.get(18)?],
    })
}

fn rejection_row(row: &Row<'_>) -> rusqlite::Result<RejectionRow> {
    Ok(RejectionRow {
        id: row.get(0)?,
        kind: row.get(1)?,
        debit_account_id: row.get(2)?,
        credit_account_id: row.get(3)?,
        amount_minor: row.get(4)?,
        pending_id: row.get(5)?,
        timeout_ms: row.get(6)?,
        code: row.get(7)?,
        reference: row.get(8)?,
        flags: row.get(9)?,
        result: row.get(10)?,
        timestamp_ns: row.get(11)?,
    })
}

fn account_row(r: &Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        id: r.get(0)?,
        currency: r.get(1)?,
        kind: r.get(2)?,
        rule: r.get(3)?,
        overdraft_limit_minor: r.get(4)?,
        closed: r.get(5)?,
    })
}

fn account_id_sql(id: AccountId) -> i64 {
    i64::try_from(id.get()).expect("account ids fit i64")
}

/// An account's static row and, once found, its latest transfer: `(timestamp, on debit side)`.
struct AccountScan {
    row: AccountRow,
    latest: Option<(i64, bool)>,
}

impl SqliteStore {
    fn balances_at(&self, timestamp_ns: i64, debit_side: bool) -> Result<Balances, StoreError> {
        let sql = if debit_side {
            "SELECT dr_debits_pending, dr_debits_posted, dr_credits_pending, dr_credits_posted FROM transfers WHERE timestamp_ns = ?1"
        } else {
            "SELECT cr_debits_pending, cr_debits_posted, cr_credits_pending, cr_credits_posted FROM transfers WHERE timestamp_ns = ?1"
        };
        let values: [i64; 4] = self
            .connection
            .prepare_cached(sql)?
            .query_row([timestamp_ns], |r| {
                Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])
            })?;
        balances_from_row(values)
    }

    /// Finds each account's latest transfer: in the history (for every account when `all`,
    /// a full scan for start-up), then in the tail after the history's watermark.
    fn find_latest(
        &self,
        scans: &mut HashMap<i64, AccountScan>,
        all: bool,
    ) -> Result<(), StoreError> {
        let (indexed, latest) = if all {
            self.history.latest_every()?
        } else {
            let ids: Vec<i64> = scans.keys().copied().collect();
            self.history.latest(&ids)?
        };
        for (id, timestamp_ns) in latest {
            if let Some(scan) = scans.get_mut(&id) {
                scan.latest = Some((timestamp_ns, false));
            }
        }
        // The history knows when, the log knows on which side.
        let mut side = self
            .connection
            .prepare_cached("SELECT debit_account_id FROM transfers WHERE timestamp_ns = ?1")?;
        for (id, scan) in scans.iter_mut() {
            if let Some((ts, _)) = scan.latest {
                let debit: i64 = side.query_row([ts], |r| r.get(0))?;
                scan.latest = Some((ts, debit == *id));
            }
        }
        let mut tail = self.connection.prepare_cached(
            "SELECT timestamp_ns, debit_account_id, credit_account_id FROM transfers WHERE timestamp_ns > ?1 ORDER BY timestamp_ns",
        )?;
        let mut rows = tail.query([indexed])?;
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            for (column, debit_side) in [(1, true), (2, false)] {
                if let Some(scan) = scans.get_mut(&row.get::<_, i64>(column)?) {
                    scan.latest = Some((ts, debit_side));
                }
            }
        }
        Ok(())
    }

    fn finish_scan(&self, scan: AccountScan) -> Result<Account, StoreError> {
        let balances = match scan.latest {
            Some((ts, debit_side)) => self.balances_at(ts, debit_side)?,
            None => Balances::default(),
        };
        scan.row.into_account(balances)
    }

    fn query_transfers(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Transfer>, StoreError> {
        let mut statement = self.connection.prepare_cached(sql)?;
        let rows = statement.query_map(params, transfer_row)?;
        rows.map(|row| row?.into_transfer()).collect()
    }

    /// Transfers by their timestamps, in the order given.
    fn transfers_at(&self, timestamps: &[i64]) -> Result<Vec<Transfer>, StoreError> {
        let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE timestamp_ns = ?1");
        let mut statement = self.connection.prepare_cached(&sql)?;
        timestamps
            .iter()
            .map(|ts| statement.query_row([ts], transfer_row)?.into_transfer())
            .collect()
    }

    fn commit_rows(tx: &rusqlite::Transaction<'_>, batch: &BatchOutput) -> Result<(), StoreError> {
        let mut insert_account = tx.prepare_cached(
            "INSERT INTO accounts (id, currency, kind, rule, overdraft_limit_minor, closed) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for account in &batch.accounts_opened {
            let r = AccountRow::from_account(account);
            insert_account.execute(params![
                r.id,
                r.currency,
                r.kind,
                r.rule,
                r.overdraft_limit_minor,
                r.closed
            ])?;
        }
        let mut close = tx.prepare_cached("UPDATE accounts SET closed = 1 WHERE id = ?1")?;
        for id in &batch.accounts_closed {
            close.execute([account_id_sql(*id)])?;
        }
        let mut insert_transfer = tx.prepare_cached(&format!(
            "INSERT INTO transfers ({TRANSFER_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        ))?;
        for transfer in &batch.transfers {
            let r = TransferRow::from_transfer(transfer);
            let [d0, d1, d2, d3] = r.debit_balances;
            let [c0, c1, c2, c3] = r.credit_balances;
            insert_transfer.execute(params![
                r.timestamp_ns,
                r.id,
                r.kind,
                r.debit_account_id,
                r.credit_account_id,
                r.amount_minor,
                r.pending_id,
                r.timeout_ms,
                r.code,
                r.reference,
                r.flags,
                d0,
                d1,
                d2,
                d3,
                c0,
                c1,
                c2,
                c3
            ])?;
        }
        let mut insert_rejection = tx.prepare_cached(&format!(
            "INSERT INTO rejections ({REJECTION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        ))?;
        for rejection in &batch.rejections {
            let r = RejectionRow::from_rejection(rejection);
            insert_rejection.execute(params![
                r.id,
                r.kind,
                r.debit_account_id,
                r.credit_account_id,
                r.amount_minor,
                r.pending_id,
                r.timeout_ms,
                r.code,
                r.reference,
                r.flags,
                r.result,
                r.timestamp_ns
            ])?;
        }
        Ok(())
    }

    /// Reads the next chunk of the log after `indexed`: account and reference entries, sorted,
    /// and the range of time it covers; `None` until a whole chunk has been written.
    fn read_chunk(&self, indexed: i64) -> Result<Option<Chunk>, StoreError> {
        let waiting: i64 = self.connection.query_row(
            "SELECT count(*) FROM (SELECT 1 FROM transfers WHERE timestamp_ns > ?1 LIMIT ?2)",
            params![indexed, self.index_chunk_rows],
            |r| r.get(0),
        )?;
        if waiting < self.index_chunk_rows {
            return Ok(None);
        }
        let mut statement = self.connection.prepare_cached(
            "SELECT timestamp_ns, debit_account_id, credit_account_id, reference FROM transfers \
             WHERE timestamp_ns > ?1 ORDER BY timestamp_ns LIMIT ?2",
        )?;
        let mut rows = statement.query(params![indexed, self.index_chunk_rows])?;
        let (mut accounts, mut references, mut first, mut last) =
            (Vec::new(), Vec::new(), None, indexed);
        while let Some(row) = rows.next()? {
            last = row.get(0)?;
            first.get_or_insert(last);
            accounts.push((row.get(1)?, last));
            accounts.push((row.get(2)?, last));
            if let Some(reference) = row.get::<_, Option<String>>(3)? {
                references.push((reference, last));
            }
        }
        // Sorted, the inserts walk each index once from left to right.
        accounts.sort_unstable();
        references.sort_unstable();
        Ok(first.map(|first_timestamp_ns| Chunk {
            accounts,
            references,
            first_timestamp_ns,
            last_timestamp_ns: last,
        }))
    }
}

impl Store for SqliteStore {
    fn load_accounts(
        &mut self,
        ids: &[AccountId],
        out: &mut Vec<Account>,
    ) -> Result<(), StoreError> {
        let mut scans = HashMap::with_capacity(ids.len());
        let mut statement = self
            .connection
            .prepare_cached("SELECT id, currency, kind, rule, overdraft_limit_minor, closed FROM accounts WHERE id = ?1")?;
        for id in ids {
            if let Some(row) = statement
                .query_row([account_id_sql(*id)], account_row)
                .optional()?
            {
                scans.insert(row.id, AccountScan { row, latest: None });
            }
        }
        drop(statement);
        if scans.is_empty() {
            return Ok(());
        }
        self.find_latest(&mut scans, false)?;
        for (_, scan) in scans {
            out.push(self.finish_scan(scan)?);
        }
        Ok(())
    }

    fn load_known(&mut self, ids: &[TransferId], prior: &mut Prior) -> Result<(), StoreError> {
        for id in ids {
            if let Some(transfer) = self.transfer(*id)? {
                prior.known.insert(*id, Known::Applied(transfer));
            } else if let Some(rejection) = self.rejection(*id)? {
                prior.known.insert(*id, Known::Rejected(rejection));
            }
        }
        Ok(())
    }

    fn load_resolutions(
        &mut self,
        pending_ids: &[TransferId],
        prior: &mut Prior,
    ) -> Result<(), StoreError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT kind FROM transfers WHERE pending_id = ?1")?;
        for id in pending_ids {
            let kind: Option<i64> = statement
                .query_row([id_bytes(*id)], |r| r.get(0))
                .optional()?;
            if let Some(kind) = kind {
                let kind = u8::try_from(kind)
                    .ok()
                    .and_then(TransferKind::from_code)
                    .ok_or_else(|| corrupt("kind"))?;
                prior.resolutions.insert(*id, kind);
            }
        }
        Ok(())
    }

    fn load_pendings_open(&mut self) -> Result<Vec<Transfer>, StoreError> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers p WHERE kind = 2 \
             AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = p.id)"
        );
        self.query_transfers(&sql, [])
    }

    fn timestamp_last_ns(&mut self) -> Result<i64, StoreError> {
        Ok(self.connection.query_row(
            "SELECT coalesce(max(timestamp_ns), 0) FROM transfers",
            [],
            |r| r.get(0),
        )?)
    }

    fn scan_ids(&mut self, f: &mut dyn FnMut(TransferId)) -> Result<u64, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT id FROM transfers UNION ALL SELECT id FROM rejections")?;
        let mut rows = statement.query([])?;
        let mut count = 0;
        while let Some(row) = rows.next()? {
            f(id_from_bytes(&row.get::<_, [u8; 16]>(0)?)?);
            count += 1;
        }
        Ok(count)
    }

    fn commit(
        &mut self,
        batch: &BatchOutput,
        records: &[&TransferRecord],
    ) -> Result<(), StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        SqliteStore::commit_rows(&tx, batch)?;
        commit_records(&tx, records)?;
        tx.commit()?;
        Ok(())
    }

    fn transfer(&mut self, id: TransferId) -> Result<Option<Transfer>, StoreError> {
        let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?1");
        Ok(self.query_transfers(&sql, [id_bytes(id)])?.pop())
    }

    fn rejection(&mut self, id: TransferId) -> Result<Option<Rejection>, StoreError> {
        let sql = format!("SELECT {REJECTION_COLUMNS} FROM rejections WHERE id = ?1");
        let row = self
            .connection
            .prepare_cached(&sql)?
            .query_row([id_bytes(id)], rejection_row)
            .optional()?;
        row.map(RejectionRow::into_rejection).transpose()
    }

    fn transfers_by_reference(
        &mut self,
        reference: &Reference,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX);
        let (indexed, timestamps) = self
            .history
            .reference_timestamps(reference.as_str(), limit)?;
        let mut transfers = self.transfers_at(&timestamps)?;
        if transfers.len() < limit {
            let sql = format!(
                "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE timestamp_ns > ?1 AND reference = ?2 ORDER BY timestamp_ns LIMIT ?3"
            );
            transfers.extend(self.query_transfers(
                &sql,
                params![
                    indexed,
                    reference.as_str(),
                    (limit - transfers.len()) as i64
                ],
            )?);
        }
        Ok(transfers)
    }

    fn account_transfers(
        &mut self,
        id: AccountId,
        before_timestamp_ns: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX);
        let before = before_timestamp_ns.unwrap_or(i64::MAX);
        let account = account_id_sql(id);
        let (indexed, history) = self.history.account_timestamps(account, before, limit)?;
        // Newest first: the tail that is not indexed yet, then the history.
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE timestamp_ns > ?1 AND timestamp_ns < ?2 \
             AND (debit_account_id = ?3 OR credit_account_id = ?3) ORDER BY timestamp_ns DESC LIMIT ?4"
        );
        let mut transfers =
            self.query_transfers(&sql, params![indexed, before, account, limit as i64])?;
        let left = limit - transfers.len();
        transfers.extend(self.transfers_at(&history[..left.min(history.len())])?);
        Ok(transfers)
    }

    fn scan_accounts(&mut self, f: &mut dyn FnMut(Account)) -> Result<(), StoreError> {
        let mut scans = HashMap::new();
        {
            let mut statement = self.connection.prepare(
                "SELECT id, currency, kind, rule, overdraft_limit_minor, closed FROM accounts",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let row = account_row(row)?;
                scans.insert(row.id, AccountScan { row, latest: None });
            }
        }
        self.find_latest(&mut scans, true)?;
        for (_, scan) in scans {
            f(self.finish_scan(scan)?);
        }
        Ok(())
    }

    fn upkeep_lag(&mut self) -> Result<u64, StoreError> {
        let indexed = self.history.indexed_through()?;
        let lag: i64 = self.connection.query_row(
            "SELECT count(*) FROM transfers WHERE timestamp_ns > ?1",
            [indexed],
            |r| r.get(0),
        )?;
        // The last partial chunk stays in the tail by design; it is not work left to do.
        Ok(u64::try_from(lag - lag % self.index_chunk_rows).unwrap_or(0))
    }

    fn maintain_log(&mut self) -> Result<Upkeep, StoreError> {
        // Copies the ledger's WAL back into its file here, beside the writer, instead of in
        // one of its commits (which would stall every caller of that batch).
        checkpoint_beside_writer(&self.connection)?;
        Ok(Upkeep::Idle)
    }

    fn maintain(&mut self) -> Result<Upkeep, StoreError> {
        // One new run and one step of compaction at most: each step is bounded and short.
        let indexed = self.history.indexed_through()?;
        let chunk = self.read_chunk(indexed)?;
        if let Some(chunk) = &chunk {
            self.history.add_run(chunk)?;
        }
        let compacted = self.history.compact()?;
        Ok(if chunk.is_some() || compacted {
            Upkeep::Busy
        } else {
            Upkeep::Idle
        })
    }
}
