//! The naive ledger the benchmark compares against: how a typical application writes one,
//! with one database transaction per transfer that updates both balance rows in place
//! (`UPDATE … SET balance = balance - x WHERE balance >= x`) and inserts the transfer, from a
//! few concurrent clients. Every transfer that touches a hot account queues on its row lock.

use crate::{PostgresStore, StoreConfig, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct NaiveReport {
    pub transfers: u64,
    pub seconds: f64,
    /// Transactions that failed (lock timeouts, deadlocks) and were not retried.
    pub failures: u64,
}

/// How the benchmark picks accounts: wallets `1..=accounts`; with probability `hot_percent`
/// the credit account is the hot one, account 1.
#[derive(Clone, Copy)]
pub struct NaiveLoad {
    pub accounts: u64,
    pub hot_percent: u8,
    pub clients: usize,
    pub duration: Duration,
    pub balance_initial_minor: i64,
}

const SQLITE_SCHEMA: &str = "
    DROP TABLE IF EXISTS naive_transfers; DROP TABLE IF EXISTS naive_accounts;
    CREATE TABLE naive_accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
    CREATE TABLE naive_transfers (id INTEGER PRIMARY KEY, debit_id INTEGER NOT NULL, credit_id INTEGER NOT NULL, amount INTEGER NOT NULL);";

const POSTGRES_SCHEMA: &str = "
    DROP TABLE IF EXISTS naive_transfers; DROP TABLE IF EXISTS naive_accounts;
    CREATE TABLE naive_accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL);
    CREATE TABLE naive_transfers (id BIGINT PRIMARY KEY, debit_id BIGINT NOT NULL, credit_id BIGINT NOT NULL, amount BIGINT NOT NULL);";

/// Creates the naive tables beside the ledger's, fills the accounts, and runs the load.
pub fn run_naive(config: &StoreConfig, load: NaiveLoad) -> Result<NaiveReport, StoreError> {
    setup(config, load)?;
    let next_id = Arc::new(AtomicU64::new(1));
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + load.duration;
    let clients: Vec<_> = (0..load.clients)
        .map(|client| {
            let (config, next_id, failures, done) = (
                config.clone(),
                next_id.clone(),
                failures.clone(),
                done.clone(),
            );
            std::thread::spawn(move || -> Result<(), StoreError> {
                let mut connection = NaiveConnection::open(&config)?;
                let mut picker = Picker::new(client as u64 + 1, load);
                while Instant::now() < deadline {
                    let (debit, credit, amount) = picker.next();
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    match connection.transfer(id, debit, credit, amount) {
                        Ok(true) => done.fetch_add(1, Ordering::Relaxed),
                        Ok(false) | Err(_) => failures.fetch_add(1, Ordering::Relaxed),
                    };
                }
                Ok(())
            })
        })
        .collect();
    for client in clients {
        client.join().expect("naive client panicked")?;
    }
    Ok(NaiveReport {
        transfers: done.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        failures: failures.load(Ordering::Relaxed),
    })
}

fn setup(config: &StoreConfig, load: NaiveLoad) -> Result<(), StoreError> {
    match NaiveConnection::open(config)? {
        NaiveConnection::Sqlite(mut connection) => {
            connection.execute_batch(SQLITE_SCHEMA)?;
            let tx = connection.transaction()?;
            {
                let mut insert =
                    tx.prepare("INSERT INTO naive_accounts (id, balance) VALUES (?1, ?2)")?;
                for id in 1..=load.accounts {
                    insert.execute(rusqlite::params![id as i64, load.balance_initial_minor])?;
                }
            }
            tx.commit()?;
        }
        NaiveConnection::Postgres(mut client) => {
            client.batch_execute(POSTGRES_SCHEMA)?;
            client.execute(
                "INSERT INTO naive_accounts (id, balance) SELECT g, $2 FROM generate_series(1::bigint, $1::bigint) AS g",
                &[&(load.accounts as i64), &load.balance_initial_minor],
            )?;
            client.batch_execute("VACUUM ANALYZE naive_accounts")?;
        }
    }
    Ok(())
}

enum NaiveConnection {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

impl NaiveConnection {
    fn open(config: &StoreConfig) -> Result<NaiveConnection, StoreError> {
        Ok(match config {
            StoreConfig::Sqlite { path } => {
                let connection = rusqlite::Connection::open(path)?;
                connection.busy_timeout(Duration::from_secs(10))?;
                connection
                    .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
                NaiveConnection::Sqlite(connection)
            }
            StoreConfig::Postgres { url, schema } => NaiveConnection::Postgres(
                PostgresStore::open(url, schema.as_deref())?.into_client(),
            ),
        })
    }

    /// One transfer in one transaction; `false` when the debit account lacks the funds.
    fn transfer(
        &mut self,
        id: u64,
        debit: u64,
        credit: u64,
        amount: i64,
    ) -> Result<bool, StoreError> {
        let (id, debit, credit) = (id as i64, debit as i64, credit as i64);
        match self {
            NaiveConnection::Sqlite(connection) => {
                // IMMEDIATE takes the write lock up front, as SQLite applications must to
                // avoid failing lock upgrades under concurrency.
                let tx = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let debited = tx.execute("UPDATE naive_accounts SET balance = balance - ?1 WHERE id = ?2 AND balance >= ?1", rusqlite::params![amount, debit])?;
                if debited == 0 {
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE naive_accounts SET balance = balance + ?1 WHERE id = ?2",
                    rusqlite::params![amount, credit],
                )?;
                tx.execute("INSERT INTO naive_transfers (id, debit_id, credit_id, amount) VALUES (?1, ?2, ?3, ?4)", rusqlite::params![id, debit, credit, amount])?;
                tx.commit()?;
            }
            NaiveConnection::Postgres(client) => {
                let mut tx = client.transaction()?;
                let debited = tx.execute("UPDATE naive_accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1", &[&amount, &debit])?;
                if debited == 0 {
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE naive_accounts SET balance = balance + $1 WHERE id = $2",
                    &[&amount, &credit],
                )?;
                tx.execute("INSERT INTO naive_transfers (id, debit_id, credit_id, amount) VALUES ($1, $2, $3, $4)", &[&id, &debit, &credit, &amount])?;
                tx.commit()?;
            }
        }
        Ok(true)
    }
}

/// A small deterministic generator (xorshift) so the baseline needs no RNG crate.
struct Picker {
    state: u64,
    load: NaiveLoad,
}

impl Picker {
    fn new(seed: u64, load: NaiveLoad) -> Picker {
        Picker {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            load,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn next(&mut self) -> (u64, u64, i64) {
        let accounts = self.load.accounts.max(2);
        let hot = self.next_u64() % 100 < u64::from(self.load.hot_percent);
        let credit = if hot {
            1
        } else {
            1 + self.next_u64() % accounts
        };
        let mut debit = 1 + self.next_u64() % accounts;
        if debit == credit {
            debit = debit % accounts + 1;
        }
        (debit, credit, 1 + (self.next_u64() % 100) as i64)
    }
}
