//! The SQLite history index against the plain log: with tiny runs, every step of upkeep
//! (new runs, merges up to the top level, a restart, a damaged file) must leave statements,
//! balances and lookups by reference exactly as a scan of the log gives them.

use crate::support::{Backend, TestStore, aid, open_operator_and_wallets, posted};
use rand::{RngExt, SeedableRng};
use std::path::PathBuf;
use std::sync::Arc;
use zhifu_ledger::{Reference, TransferCode};
use zhifu_store::{
    SqliteStore, StatementEntry, Store, StoreConfig, SystemClock, Upkeep, balance, statement,
};

const WALLETS_LAST: u64 = 30;
const REFERENCES: u64 = 40;
const TRANSFERS: u128 = 2_500;

/// What every read gives for this ledger: each account's statement (paged), its balance,
/// and each reference's transfers.
#[derive(PartialEq, Eq, Debug)]
struct Reads {
    statements: Vec<Vec<StatementEntry>>,
    balances: Vec<i128>,
    by_reference: Vec<Vec<u128>>,
}

fn read_everything(store: &mut dyn Store) -> Reads {
    let mut reads = Reads {
        statements: Vec::new(),
        balances: Vec::new(),
        by_reference: Vec::new(),
    };
    for account in 1..=WALLETS_LAST {
        let mut entries = Vec::new();
        let mut cursor = None;
        loop {
            let page = statement(store, aid(account), cursor, 7).unwrap();
            let Some(last) = page.last() else { break };
            cursor = Some(last.timestamp_ns);
            entries.extend(page);
        }
        reads.statements.push(entries);
        let account = balance(store, aid(account))
            .unwrap()
            .expect("account exists");
        reads.balances.push(account.balances.posted_net_minor());
    }
    for n in 0..REFERENCES {
        let reference = Reference::parse(&format!("ref-{n}")).unwrap();
        let transfers = store.transfers_by_reference(&reference, 1_000).unwrap();
        reads
            .by_reference
            .push(transfers.iter().map(|t| t.id.get()).collect());
    }
    reads
}

fn write_ledger(store: &TestStore) {
    let engine = store.engine(Arc::new(SystemClock));
    open_operator_and_wallets(&engine, WALLETS_LAST);
    let funding: Vec<_> = (2..=WALLETS_LAST)
        .map(|w| posted(w as u128, 1, w, 1_000_000))
        .collect();
    assert!(
        engine
            .create_transfers(funding)
            .unwrap()
            .iter()
            .all(|c| *c == TransferCode::Ok)
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut n = 1_000u128;
    while n < 1_000 + TRANSFERS {
        let batch: Vec<_> = (0..50)
            .map(|_| {
                n += 1;
                let debit = rng.random_range(2..=WALLETS_LAST);
                let credit =
                    2 + (debit - 2 + rng.random_range(1..WALLETS_LAST - 1)) % (WALLETS_LAST - 1);
                let mut transfer = posted(n, debit, credit, rng.random_range(1..500));
                transfer.reference = Reference::parse(&format!("ref-{}", n as u64 % REFERENCES));
                transfer
            })
            .collect();
        assert!(
            engine
                .create_transfers(batch)
                .unwrap()
                .iter()
                .all(|c| *c == TransferCode::Ok)
        );
    }
}

fn ledger_path(store: &TestStore) -> PathBuf {
    match &store.config {
        StoreConfig::Sqlite { path } => path.clone(),
        StoreConfig::Postgres { .. } => unreachable!("SQLite only"),
    }
}

#[test]
fn history_runs_and_merges_match_the_log() {
    let store = TestStore::new(Backend::Sqlite);
    write_ledger(&store);
    let path = ledger_path(&store);
    // Fewer transfers than one default run: every read comes from the log's tail.
    let from_log = read_everything(store.open().as_mut());
    assert_eq!(
        from_log.statements.iter().map(Vec::len).sum::<usize>(),
        2 * (TRANSFERS as usize + WALLETS_LAST as usize - 1)
    );

    // Runs of 3 transfers: 800-odd runs, merged a few entries at a time through every level
    // up to the top, read from between steps, and cut off by restarts.
    let mut tiny = SqliteStore::open_with_index_chunk(&path, 3).unwrap();
    let mut steps = 0;
    while tiny.maintain().unwrap() == Upkeep::Busy {
        steps += 1;
        assert!(steps < 100_000, "upkeep must finish");
        if steps % 97 == 0 {
            assert_eq!(
                read_everything(&mut tiny),
                from_log,
                "after {steps} steps of upkeep"
            );
        }
        if steps % 1_000 == 500 {
            tiny = SqliteStore::open_with_index_chunk(&path, 3).unwrap();
        }
    }
    assert!(
        steps > 2_000,
        "merges and garbage collection took {steps} steps: sliced"
    );
    assert_eq!(read_everything(&mut tiny), from_log, "caught up");
    assert_eq!(tiny.upkeep_lag().unwrap(), 0);
    drop(tiny);

    // The default store reads the same runs after a restart.
    assert_eq!(
        read_everything(store.open().as_mut()),
        from_log,
        "after a restart"
    );

    // A damaged history file is rebuilt from the log, and reads never notice.
    let mut history = path.as_os_str().to_owned();
    history.push("-history");
    std::fs::write(&history, b"not a database at all, not even close to one").unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut file = history.clone();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    assert_eq!(
        read_everything(store.open().as_mut()),
        from_log,
        "after the history was damaged"
    );
}
