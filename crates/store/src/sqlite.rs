//! The SQLite store: the embedded default. WAL mode with `synchronous=FULL`, so a commit is
//! durable when it returns; readers run beside the one writer.

use crate::rows::{
    AccountRow, REJECTION_COLUMNS, RejectionRow, TRANSFER_COLUMNS, TransferRow, corrupt, id_bytes,
    id_from_bytes,
};
use crate::{PAGE_LEN_MAX, Store, StoreError, latest_balances};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use std::path::Path;
use zhifu_ledger::{
    Account, AccountId, Balances, BatchOutput, Known, Prior, Reference, Rejection, Transfer,
    TransferId, TransferKind,
};

const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/sqlite/0001_ledger.sql"))];

/// How long a connection waits for another one's lock before it reports an error.
const BUSY_TIMEOUT_MS: u64 = 5_000;
/// SQLite's page cache per connection, in KiB (negative `cache_size` means KiB).
const CACHE_KIB: i64 = 64 * 1024;

pub struct SqliteStore {
    connection: Connection,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(directory)
                .map_err(|e| StoreError::Open(format!("{}: {e}", directory.display())))?;
        }
        let connection = Connection::open(path)?;
        connection.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
        let mode: String =
            connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if mode != "wal" {
            return Err(StoreError::Open(format!("journal mode is {mode}, not wal")));
        }
        connection.execute_batch(&format!(
            "PRAGMA synchronous = FULL; PRAGMA cache_size = -{CACHE_KIB}; PRAGMA temp_store = MEMORY;"
        ))?;
        connection.set_prepared_statement_cache_capacity(32);
        let mut store = SqliteStore { connection };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS zhifu_migrations (version INTEGER PRIMARY KEY)",
        )?;
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (version, sql) in MIGRATIONS {
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

    /// The connection, for the benchmark's naive baseline tables in the same database.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.connection
    }
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

fn account_id_sql(id: AccountId) -> i64 {
    i64::try_from(id.get()).expect("account ids fit i64")
}

impl SqliteStore {
    fn balances_at(&self, timestamp_ns: i64, side: &str) -> Result<(i64, Balances), StoreError> {
        let sql = format!(
            "SELECT {side}_debits_pending, {side}_debits_posted, {side}_credits_pending, {side}_credits_posted \
             FROM transfers WHERE timestamp_ns = ?1"
        );
        let values: [i64; 4] = self
            .connection
            .prepare_cached(&sql)?
            .query_row([timestamp_ns], |r| {
                Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])
            })?;
        Ok((timestamp_ns, crate::rows::balances_from_row(values)?))
    }

    fn load_account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT id, currency, kind, rule, overdraft_limit_minor, closed, \
               (SELECT max(timestamp_ns) FROM transfers WHERE debit_account_id = accounts.id), \
               (SELECT max(timestamp_ns) FROM transfers WHERE credit_account_id = accounts.id) \
             FROM accounts WHERE id = ?1",
        )?;
        let found = statement
            .query_row([account_id_sql(id)], |r| {
                let row = AccountRow {
                    id: r.get(0)?,
                    currency: r.get(1)?,
                    kind: r.get(2)?,
                    rule: r.get(3)?,
                    overdraft_limit_minor: r.get(4)?,
                    closed: r.get(5)?,
                };
                Ok((
                    row,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                ))
            })
            .optional()?;
        let Some((row, debit_ts, credit_ts)) = found else {
            return Ok(None);
        };
        // Only the later of the two latest rows holds the current balances.
        let balances = match (debit_ts, credit_ts) {
            (Some(d), Some(c)) if d > c => latest_balances(Some(self.balances_at(d, "dr")?), None),
            (_, Some(c)) => latest_balances(None, Some(self.balances_at(c, "cr")?)),
            (Some(d), None) => latest_balances(Some(self.balances_at(d, "dr")?), None),
            (None, None) => Balances::default(),
        };
        row.into_account(balances).map(Some)
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
}

impl Store for SqliteStore {
    fn load_accounts(
        &mut self,
        ids: &[AccountId],
        out: &mut Vec<Account>,
    ) -> Result<(), StoreError> {
        for id in ids {
            if let Some(account) = self.load_account(*id)? {
                out.push(account);
            }
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

    fn commit(&mut self, batch: &BatchOutput) -> Result<(), StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
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
        }
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
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE reference = ?1 ORDER BY timestamp_ns LIMIT ?2"
        );
        self.query_transfers(
            &sql,
            params![reference.as_str(), limit.min(PAGE_LEN_MAX) as i64],
        )
    }

    fn account_transfers(
        &mut self,
        id: AccountId,
        before_timestamp_ns: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE timestamp_ns IN ( \
               SELECT timestamp_ns FROM (SELECT timestamp_ns FROM transfers WHERE debit_account_id = ?1 \
                 AND timestamp_ns < ?2 ORDER BY timestamp_ns DESC LIMIT ?3) \
               UNION \
               SELECT timestamp_ns FROM (SELECT timestamp_ns FROM transfers WHERE credit_account_id = ?1 \
                 AND timestamp_ns < ?2 ORDER BY timestamp_ns DESC LIMIT ?3)) \
             ORDER BY timestamp_ns DESC LIMIT ?3"
        );
        let before = before_timestamp_ns.unwrap_or(i64::MAX);
        self.query_transfers(
            &sql,
            params![account_id_sql(id), before, limit.min(PAGE_LEN_MAX) as i64],
        )
    }

    fn scan_accounts(&mut self, f: &mut dyn FnMut(Account)) -> Result<(), StoreError> {
        let ids: Vec<i64> = {
            let mut statement = self
                .connection
                .prepare("SELECT id FROM accounts ORDER BY id")?;
            statement
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for raw in ids {
            let id = u64::try_from(raw)
                .ok()
                .and_then(AccountId::new)
                .ok_or_else(|| corrupt("account id"))?;
            f(self
                .load_account(id)?
                .ok_or_else(|| corrupt("account vanished"))?);
        }
        Ok(())
    }
}
