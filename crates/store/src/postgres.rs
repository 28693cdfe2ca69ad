//! The PostgreSQL store, for production. A batch is written with binary `COPY` in one
//! transaction and read with one `= ANY($1)` query per kind of fact, so a batch costs a few
//! round trips whatever its size. Plain SQL only: no extensions, no advisory locks, so the
//! schema also runs on PostgreSQL-compatible distributed databases.

use crate::rows::{
    AccountRow, REJECTION_COLUMNS, RejectionRow, TRANSFER_COLUMNS, TransferRow, corrupt, id_bytes,
    id_from_bytes,
};
use crate::{PAGE_LEN_MAX, Store, StoreError, TransferRecord};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Row};
use zhifu_ledger::{
    Account, AccountId, BatchOutput, Known, Prior, Reference, Rejection, Transfer, TransferId,
    TransferKind,
};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_ledger.sql")),
    (2, include_str!("../migrations/postgres/0002_wallet.sql")),
    (3, include_str!("../migrations/postgres/0003_pins.sql")),
    (
        4,
        include_str!("../migrations/postgres/0004_identities_cards.sql"),
    ),
    (
        5,
        include_str!("../migrations/postgres/0005_quota_uses.sql"),
    ),
    (
        6,
        include_str!("../migrations/postgres/0006_p2p_transfers.sql"),
    ),
    (
        7,
        include_str!("../migrations/postgres/0007_red_packets.sql"),
    ),
    (8, include_str!("../migrations/postgres/0008_p2p_delay.sql")),
    (
        9,
        include_str!("../migrations/postgres/0009_usage_indexes.sql"),
    ),
    (
        10,
        include_str!("../migrations/postgres/0010_withdrawals.sql"),
    ),
    (
        11,
        include_str!("../migrations/postgres/0011_pay_codes.sql"),
    ),
    (
        12,
        include_str!("../migrations/postgres/0012_merchants.sql"),
    ),
    (
        13,
        include_str!("../migrations/postgres/0013_merchant_orders.sql"),
    ),
    (
        14,
        include_str!("../migrations/postgres/0014_settlements.sql"),
    ),
    (
        15,
        include_str!("../migrations/postgres/0015_order_recovery.sql"),
    ),
    (
        16,
        include_str!("../migrations/postgres/0016_refund_finished.sql"),
    ),
    (
        17,
        include_str!("../migrations/postgres/0017_p2p_no_payee_index.sql"),
    ),
];

pub struct PostgresStore {
    client: Client,
}

impl PostgresStore {
    /// Connects to `url` (a `postgres://` URL or `key=value` pairs). With `schema`, creates
    /// that schema if needed and works inside it.
    pub fn open(url: &str, schema: Option<&str>) -> Result<PostgresStore, StoreError> {
        let mut client = Client::connect(url, NoTls)?;
        if let Some(schema) = schema {
            let valid = !schema.is_empty()
                && schema.len() <= 63
                && schema
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(StoreError::Open(format!(
                    "schema name {schema:?} must be [a-z0-9_]{{1,63}}"
                )));
            }
            client.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
            ))?;
        }
        let mut store = PostgresStore { client };
        store.migrate()?;
        Ok(store)
    }

    /// A connection string from `ZHIFU_TEST_DATABASE_URL`, or from the libpq variables
    /// (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`) that `pg_virtualenv` sets.
    pub fn url_from_env() -> Option<String> {
        if let Ok(url) = std::env::var("ZHIFU_TEST_DATABASE_URL") {
            return Some(url);
        }
        let host = std::env::var("PGHOST").ok()?;
        let mut parts = vec![format!("host={host}")];
        for (variable, key) in [
            ("PGPORT", "port"),
            ("PGUSER", "user"),
            ("PGPASSWORD", "password"),
            ("PGDATABASE", "dbname"),
        ] {
            if let Ok(value) = std::env::var(variable) {
                parts.push(format!("{key}={value}"));
            }
        }
        Some(parts.join(" "))
    }

    /// The connection, for the benchmark's naive baseline and for dropping test schemas.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The connection, already inside the store's schema.
    pub fn into_client(self) -> Client {
        self.client
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.client.batch_execute(
            "CREATE TABLE IF NOT EXISTS zhifu_migrations (version BIGINT PRIMARY KEY)",
        )?;
        let mut tx = self.client.transaction()?;
        // Serialises concurrent migrators without advisory locks.
        tx.batch_execute("LOCK TABLE zhifu_migrations IN EXCLUSIVE MODE")?;
        for (version, sql) in MIGRATIONS {
            let applied = tx
                .query_opt(
                    "SELECT 1 FROM zhifu_migrations WHERE version = $1",
                    &[version],
                )?
                .is_some();
            if !applied {
                tx.batch_execute(sql)?;
                tx.execute(
                    "INSERT INTO zhifu_migrations (version) VALUES ($1)",
                    &[version],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn query_transfers(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Transfer>, StoreError> {
        let rows = self.client.query(sql, params)?;
        rows.iter()
            .map(|row| transfer_row(row)?.into_transfer())
            .collect()
    }
}

fn bytes16(row: &Row, index: usize) -> Result<[u8; 16], StoreError> {
    let bytes: &[u8] = row.try_get(index)?;
    bytes.try_into().map_err(|_| corrupt("id is not 16 bytes"))
}

fn bytes16_opt(row: &Row, index: usize) -> Result<Option<[u8; 16]>, StoreError> {
    let bytes: Option<&[u8]> = row.try_get(index)?;
    bytes
        .map(|b| b.try_into().map_err(|_| corrupt("id is not 16 bytes")))
        .transpose()
}

fn transfer_row(row: &Row) -> Result<TransferRow, StoreError> {
    let int = |index: usize| -> Result<i64, StoreError> { Ok(row.try_get::<_, i64>(index)?) };
    Ok(TransferRow {
        timestamp_ns: int(0)?,
        id: bytes16(row, 1)?,
        kind: i64::from(row.try_get::<_, i16>(2)?),
        debit_account_id: int(3)?,
        credit_account_id: int(4)?,
        amount_minor: int(5)?,
        pending_id: bytes16_opt(row, 6)?,
        timeout_ms: int(7)?,
        code: i64::from(row.try_get::<_, i32>(8)?),
        reference: row.try_get(9)?,
        flags: i64::from(row.try_get::<_, i16>(10)?),
        debit_balances: [int(11)?, int(12)?, int(13)?, int(14)?],
        credit_balances: [int(15)?, int(16)?, int(17)?, int(18)?],
    })
}

fn rejection_row(row: &Row) -> Result<RejectionRow, StoreError> {
    Ok(RejectionRow {
        id: bytes16(row, 0)?,
        kind: i64::from(row.try_get::<_, i16>(1)?),
        debit_account_id: row.try_get(2)?,
        credit_account_id: row.try_get(3)?,
        amount_minor: row.try_get(4)?,
        pending_id: bytes16_opt(row, 5)?,
        timeout_ms: row.try_get(6)?,
        code: i64::from(row.try_get::<_, i32>(7)?),
        reference: row.try_get(8)?,
        flags: i64::from(row.try_get::<_, i16>(9)?),
        result: i64::from(row.try_get::<_, i16>(10)?),
        timestamp_ns: row.try_get(11)?,
    })
}

fn small(value: i64) -> i16 {
    i16::try_from(value).expect("small codes fit i16")
}

fn int4(value: i64) -> i32 {
    i32::try_from(value).expect("business codes fit i32")
}

/// Accounts with the balances of their latest transfer, one query for the whole batch.
const LOAD_ACCOUNTS_SQL: &str = "SELECT a.id, a.currency, a.kind, a.rule, a.overdraft_limit_minor, a.closed, \
       d.timestamp_ns, d.dr_debits_pending, d.dr_debits_posted, d.dr_credits_pending, d.dr_credits_posted, \
       c.timestamp_ns, c.cr_debits_pending, c.cr_debits_posted, c.cr_credits_pending, c.cr_credits_posted \
     FROM accounts a \
     LEFT JOIN LATERAL (SELECT * FROM transfers t WHERE t.debit_account_id = a.id ORDER BY timestamp_ns DESC LIMIT 1) d ON true \
     LEFT JOIN LATERAL (SELECT * FROM transfers t WHERE t.credit_account_id = a.id ORDER BY timestamp_ns DESC LIMIT 1) c ON true \
     WHERE a.id = ANY($1)";

fn account_from_row(row: &Row) -> Result<Account, StoreError> {
    let account_row = AccountRow {
        id: row.try_get(0)?,
        currency: row.try_get(1)?,
        kind: i64::from(row.try_get::<_, i16>(2)?),
        rule: i64::from(row.try_get::<_, i16>(3)?),
        overdraft_limit_minor: row.try_get(4)?,
        closed: row.try_get(5)?,
    };
    let side = |first: usize| -> Result<Option<(i64, zhifu_ledger::Balances)>, StoreError> {
        let Some(timestamp_ns) = row.try_get::<_, Option<i64>>(first)? else {
            return Ok(None);
        };
        let values = [
            row.try_get(first + 1)?,
            row.try_get(first + 2)?,
            row.try_get(first + 3)?,
            row.try_get(first + 4)?,
        ];
        Ok(Some((
            timestamp_ns,
            crate::rows::balances_from_row(values)?,
        )))
    };
    let balances = crate::latest_balances(side(6)?, side(11)?);
    account_row.into_account(balances)
}

impl Store for PostgresStore {
    fn load_accounts(
        &mut self,
        ids: &[AccountId],
        out: &mut Vec<Account>,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let raw: Vec<i64> = ids
            .iter()
            .map(|id| i64::try_from(id.get()).expect("fits"))
            .collect();
        for row in self.client.query(LOAD_ACCOUNTS_SQL, &[&raw])? {
            out.push(account_from_row(&row)?);
        }
        Ok(())
    }

    fn load_known(&mut self, ids: &[TransferId], prior: &mut Prior) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let raw: Vec<[u8; 16]> = ids.iter().map(|id| id_bytes(*id)).collect();
        let slices: Vec<&[u8]> = raw.iter().map(|b| b.as_slice()).collect();
        let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ANY($1)");
        for transfer in self.query_transfers(&sql, &[&slices])? {
            prior.known.insert(transfer.id, Known::Applied(transfer));
        }
        let sql = format!("SELECT {REJECTION_COLUMNS} FROM rejections WHERE id = ANY($1)");
        for row in self.client.query(&sql, &[&slices])? {
            let rejection = rejection_row(&row)?.into_rejection()?;
            prior
                .known
                .insert(rejection.request.id, Known::Rejected(rejection));
        }
        Ok(())
    }

    fn load_resolutions(
        &mut self,
        pending_ids: &[TransferId],
        prior: &mut Prior,
    ) -> Result<(), StoreError> {
        if pending_ids.is_empty() {
            return Ok(());
        }
        let raw: Vec<[u8; 16]> = pending_ids.iter().map(|id| id_bytes(*id)).collect();
        let slices: Vec<&[u8]> = raw.iter().map(|b| b.as_slice()).collect();
        for row in self.client.query(
            "SELECT pending_id, kind FROM transfers WHERE pending_id = ANY($1)",
            &[&slices],
        )? {
            let pending_id = id_from_bytes(&bytes16(&row, 0)?)?;
            let kind = u8::try_from(row.try_get::<_, i16>(1)?)
                .ok()
                .and_then(TransferKind::from_code)
                .ok_or_else(|| corrupt("kind"))?;
            prior.resolutions.insert(pending_id, kind);
        }
        Ok(())
    }

    fn load_pendings_open(&mut self) -> Result<Vec<Transfer>, StoreError> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers p WHERE kind = 2 \
             AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = p.id)"
        );
        self.query_transfers(&sql, &[])
    }

    fn timestamp_last_ns(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .client
            .query_one("SELECT coalesce(max(timestamp_ns), 0) FROM transfers", &[])?
            .try_get(0)?)
    }

    fn scan_ids(&mut self, f: &mut dyn FnMut(TransferId)) -> Result<u64, StoreError> {
        let mut count = 0;
        let mut rows = self.client.query_raw(
            "SELECT id FROM transfers UNION ALL SELECT id FROM rejections",
            std::iter::empty::<i64>(),
        )?;
        while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            f(id_from_bytes(&bytes16(&row, 0)?)?);
            count += 1;
        }
        Ok(count)
    }

    fn commit(
        &mut self,
        batch: &BatchOutput,
        records: &[&TransferRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        if !batch.accounts_opened.is_empty() {
            let sink = tx.copy_in("COPY accounts (id, currency, kind, rule, overdraft_limit_minor, closed) FROM STDIN BINARY")?;
            let types = [
                Type::INT8,
                Type::TEXT,
                Type::INT2,
                Type::INT2,
                Type::INT8,
                Type::BOOL,
            ];
            let mut writer = BinaryCopyInWriter::new(sink, &types);
            for account in &batch.accounts_opened {
                let r = AccountRow::from_account(account);
                writer.write(&[
                    &r.id,
                    &r.currency,
                    &small(r.kind),
                    &small(r.rule),
                    &r.overdraft_limit_minor,
                    &r.closed,
                ])?;
            }
            writer.finish()?;
        }
        for id in &batch.accounts_closed {
            tx.execute(
                "UPDATE accounts SET closed = TRUE WHERE id = $1",
                &[&i64::try_from(id.get()).expect("fits")],
            )?;
        }
        if !batch.transfers.is_empty() {
            let sink = tx.copy_in(&format!(
                "COPY transfers ({TRANSFER_COLUMNS}) FROM STDIN BINARY"
            ))?;
            let mut types = vec![
                Type::INT8,
                Type::BYTEA,
                Type::INT2,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::BYTEA,
                Type::INT8,
                Type::INT4,
                Type::TEXT,
                Type::INT2,
            ];
            types.extend([Type::INT8; 8]);
            let mut writer = BinaryCopyInWriter::new(sink, &types);
            for transfer in &batch.transfers {
                let r = TransferRow::from_transfer(transfer);
                let pending_id = r.pending_id.as_ref().map(|b| b.as_slice());
                let [d0, d1, d2, d3] = r.debit_balances;
                let [c0, c1, c2, c3] = r.credit_balances;
                writer.write(&[
                    &r.timestamp_ns,
                    &r.id.as_slice(),
                    &small(r.kind),
                    &r.debit_account_id,
                    &r.credit_account_id,
                    &r.amount_minor,
                    &pending_id,
                    &r.timeout_ms,
                    &int4(r.code),
                    &r.reference,
                    &small(r.flags),
                    &d0,
                    &d1,
                    &d2,
                    &d3,
                    &c0,
                    &c1,
                    &c2,
                    &c3,
                ])?;
            }
            writer.finish()?;
        }
        if !batch.rejections.is_empty() {
            let sink = tx.copy_in(&format!(
                "COPY rejections ({REJECTION_COLUMNS}) FROM STDIN BINARY"
            ))?;
            let types = [
                Type::BYTEA,
                Type::INT2,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::BYTEA,
                Type::INT8,
                Type::INT4,
                Type::TEXT,
                Type::INT2,
                Type::INT2,
                Type::INT8,
            ];
            let mut writer = BinaryCopyInWriter::new(sink, &types);
            for rejection in &batch.rejections {
                let r = RejectionRow::from_rejection(rejection);
                let pending_id = r.pending_id.as_ref().map(|b| b.as_slice());
                writer.write(&[
                    &r.id.as_slice(),
                    &small(r.kind),
                    &r.debit_account_id,
                    &r.credit_account_id,
                    &r.amount_minor,
                    &pending_id,
                    &r.timeout_ms,
                    &int4(r.code),
                    &r.reference,
                    &small(r.flags),
                    &small(r.result),
                    &r.timestamp_ns,
                ])?;
            }
            writer.finish()?;
        }
        commit_records(&mut tx, records)?;
        tx.commit()?;
        Ok(())
    }

    fn transfer(&mut self, id: TransferId) -> Result<Option<Transfer>, StoreError> {
        let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = $1");
        Ok(self
            .query_transfers(&sql, &[&id_bytes(id).as_slice()])?
            .pop())
    }

    fn rejection(&mut self, id: TransferId) -> Result<Option<Rejection>, StoreError> {
        let sql = format!("SELECT {REJECTION_COLUMNS} FROM rejections WHERE id = $1");
        let row = self.client.query_opt(&sql, &[&id_bytes(id).as_slice()])?;
        row.map(|row| rejection_row(&row)?.into_rejection())
            .transpose()
    }

    fn transfers_by_reference(
        &mut self,
        reference: &Reference,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE reference = $1 ORDER BY timestamp_ns LIMIT $2"
        );
        self.query_transfers(
            &sql,
            &[&reference.as_str(), &(limit.min(PAGE_LEN_MAX) as i64)],
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
               SELECT timestamp_ns FROM (SELECT timestamp_ns FROM transfers WHERE debit_account_id = $1 \
                 AND timestamp_ns < $2 ORDER BY timestamp_ns DESC LIMIT $3) AS d \
               UNION \
               SELECT timestamp_ns FROM (SELECT timestamp_ns FROM transfers WHERE credit_account_id = $1 \
                 AND timestamp_ns < $2 ORDER BY timestamp_ns DESC LIMIT $3) AS c) \
             ORDER BY timestamp_ns DESC LIMIT $3"
        );
        let account = i64::try_from(id.get()).expect("fits");
        let before = before_timestamp_ns.unwrap_or(i64::MAX);
        self.query_transfers(
            &sql,
            &[&account, &before, &(limit.min(PAGE_LEN_MAX) as i64)],
        )
    }

    fn scan_accounts(&mut self, f: &mut dyn FnMut(Account)) -> Result<(), StoreError> {
        let ids: Vec<i64> = self
            .client
            .query("SELECT id FROM accounts ORDER BY id", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for chunk in ids.chunks(PAGE_LEN_MAX) {
            for row in self.client.query(LOAD_ACCOUNTS_SQL, &[&chunk])? {
                f(account_from_row(&row)?);
            }
        }
        Ok(())
    }
}

/// Writes the wallet's records of a batch's transfers, in the batch's transaction: one
/// statement per kind, whatever the batch's size (a statement per row would be a round trip
/// per payment).
fn commit_records(
    tx: &mut postgres::Transaction<'_>,
    records: &[&TransferRecord],
) -> Result<(), StoreError> {
    let mut made = P2pColumns::default();
    let mut resolved: Vec<(&str, &str)> = Vec::new();
    for record in records {
        match record {
            TransferRecord::P2pMade(row) => made.push(row)?,
            TransferRecord::P2pResolved { transfer_id, state } => {
                resolved.push((transfer_id, state));
            }
        }
    }
    if !made.transfer_ids.is_empty() {
        tx.execute(
            "INSERT INTO p2p_transfers (transfer_id, payer_id, payee_id, amount_minor, created_ms, \
             expires_ms, state, arrives_ms) \
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], \
             $6::int8[], $7::text[], $8::int8[]) ON CONFLICT (transfer_id) DO NOTHING",
            &[
                &made.transfer_ids,
                &made.payer_ids,
                &made.payee_ids,
                &made.amounts_minor,
                &made.created_ms,
                &made.expires_ms,
                &made.states,
                &made.arrives_ms,
            ],
        )?;
    }
    // Row by row, in order: resolutions are rare next to payments, and of two of one transfer
    // in a batch (a retry) the later must win.
    for (transfer_id, state) in resolved {
        tx.execute(
            "UPDATE p2p_transfers SET state = $2 WHERE transfer_id = $1",
            &[&transfer_id, &state],
        )?;
    }
    Ok(())
}

/// The rows of a batch's new transfers between people, column by column (for `unnest`).
#[derive(Default)]
struct P2pColumns<'a> {
    transfer_ids: Vec<&'a str>,
    payer_ids: Vec<i64>,
    payee_ids: Vec<i64>,
    amounts_minor: Vec<i64>,
    created_ms: Vec<i64>,
    expires_ms: Vec<i64>,
    states: Vec<&'a str>,
    arrives_ms: Vec<i64>,
}

impl<'a> P2pColumns<'a> {
    fn push(&mut self, row: &'a crate::P2pRow) -> Result<(), StoreError> {
        self.amounts_minor.push(
            i64::try_from(row.amount_minor)
                .map_err(|_| StoreError::Corrupt("amount out of range".into()))?,
        );
        self.transfer_ids.push(&row.transfer_id);
        self.payer_ids.push(row.payer_id);
        self.payee_ids.push(row.payee_id);
        self.created_ms.push(row.created_ms);
        self.expires_ms.push(row.expires_ms);
        self.states.push(&row.state);
        self.arrives_ms.push(row.arrives_ms);
        Ok(())
    }
}
