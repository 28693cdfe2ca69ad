//! Goal: every transfer acknowledged before a `kill -9` is in storage exactly once afterwards,
//! with the wallet rows that came with it (`TransferRecord`), and no money appeared or
//! vanished. Method: this test binary starts itself as a child process
//! that runs a load (several threads, one hot account, retries of earlier rounds' ids) and
//! prints each acknowledgement; the parent kills it at a random moment, 20 times per store,
//! and after each kill checks the store against what was acknowledged.

use crate::support::{Backend, TestStore, open_operator_and_wallets, posted, tid};
use rand::RngExt;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zhifu_ledger::TransferCode;
use zhifu_store::{
    Engine, EngineConfig, NewUser, P2pRow, StoreConfig, SystemClock, TransferRecord, statement,
};

const ROUNDS: u64 = 20;
const WALLETS_LAST: u64 = 12;
const HOT_ACCOUNT: u64 = 2;
/// Ids of round `r` are `r * ROUND_IDS + n`.
const ROUND_IDS: u128 = 10_000_000;
/// A child that was never killed stops by itself after this long.
const CHILD_SECONDS_MAX: u64 = 30;
/// The worker whose requests carry a transfer-between-people row for each transfer; it pays
/// into an account of its own, so that the rows can be summed against that account.
const RECORDING_WORKER: u128 = 2;
const RECORDED_ACCOUNT: u64 = WALLETS_LAST + 1;
/// The people those rows name (the first two made: ids 1 and 2).
const PAYER_ID: i64 = 1;
const PAYEE_ID: i64 = 2;

fn crash_recovery(backend: Backend) {
    let store = TestStore::new(backend);
    {
        let engine = store.engine(Arc::new(SystemClock));
        open_operator_and_wallets(&engine, RECORDED_ACCOUNT);
    }
    let mut wallet = store.config.open_wallet().unwrap();
    for (phone, expected_id) in [(b"payer", PAYER_ID), (b"payee", PAYEE_ID)] {
        let person = NewUser {
            phone_lookup: phone.to_vec(),
            phone_masked: "138****0000".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            created_ms: 1,
        };
        assert_eq!(wallet.user_create(&person).unwrap(), Some(expected_id));
    }
    drop(wallet);
    let mut rng = rand::rng();
    for round in 1..=ROUNDS {
        let acknowledged = run_child_and_kill(&store.config, round, rng.random_range(50..400));
        assert!(
            !acknowledged.is_empty(),
            "round {round}: the child acknowledged nothing before the kill"
        );
        check_after_crash(&store, round, &acknowledged);
    }
}

/// Starts the child, lets it acknowledge for `run_ms` after its first acknowledgement, kills
/// it with SIGKILL, and returns every `(id, amount)` it acknowledged.
fn run_child_and_kill(config: &StoreConfig, round: u64, run_ms: u64) -> Vec<(u128, u64)> {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([
        "crash::crash_child_entry",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ]);
    command.env("ZHIFU_CRASH_ROUND", round.to_string());
    match config {
        StoreConfig::Sqlite { path } => command.env("ZHIFU_CRASH_SQLITE", path),
        StoreConfig::Postgres { url, schema } => command
            .env("ZHIFU_CRASH_POSTGRES", url)
            .env("ZHIFU_CRASH_SCHEMA", schema.as_deref().unwrap()),
    };
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start child");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            assert!(
                !line.starts_with("BAD "),
                "round {round}: the child got a wrong answer: {line}"
            );
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (id, amount) = rest.split_once(' ').unwrap();
                if sender
                    .send((id.parse::<u128>().unwrap(), amount.parse::<u64>().unwrap()))
                    .is_err()
                {
                    break;
                }
            }
        }
    });
    let first = receiver.recv_timeout(Duration::from_secs(20));
    let mut acknowledged =
        vec![first.expect("first acknowledgement (or the child reported a wrong answer)")];
    std::thread::sleep(Duration::from_millis(run_ms));
    child.kill().expect("kill -9");
    child.wait().unwrap();
    reader.join().expect("the child answered only OK or EXISTS");
    acknowledged.extend(receiver.try_iter());
    acknowledged
}

fn check_after_crash(store: &TestStore, round: u64, acknowledged: &[(u128, u64)]) {
    let accounts = store.accounts(); // asserts conservation
    let mut reader = store.open();
    let mut wallet = store.config.open_wallet().unwrap();
    for (id, amount) in acknowledged {
        let transfer = reader.transfer(tid(*id)).unwrap();
        let transfer =
            transfer.unwrap_or_else(|| panic!("round {round}: acknowledged transfer {id} lost"));
        assert_eq!(transfer.amount_minor, *amount);
        if worker_of(*id) == RECORDING_WORKER {
            let row = wallet.p2p(&id.to_string()).unwrap();
            assert_eq!(
                row,
                Some(row_of(*id, *amount)),
                "round {round}: the row of acknowledged transfer {id}"
            );
        }
    }
    // Every row has its transfer and every transfer its row: the rows (all the payer's, all
    // accepted) add up to what the recording worker's transfers paid into its account.
    let rows_minor = wallet
        .balance_spent(PAYER_ID, [i64::MIN; 3], 0)
        .unwrap()
        .sums_minor[0];
    let recorded = accounts
        .iter()
        .find(|a| a.id.get() == RECORDED_ACCOUNT)
        .unwrap();
    assert_eq!(
        i128::from(rows_minor),
        recorded.balances.posted_net_minor(),
        "round {round}: rows and transfers of the recording worker"
    );
    // The hot account's balance is exactly the sum of its statement: nothing counted twice.
    let hot = accounts.iter().find(|a| a.id.get() == HOT_ACCOUNT).unwrap();
    let (mut net, mut cursor, mut pages) = (0i128, None, 0);
    loop {
        let page = statement(reader.as_mut(), hot.id, cursor, 1000).unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(last.timestamp_ns);
        net += page
            .iter()
            .map(|e| {
                if e.side == zhifu_store::Side::Credit {
                    e.amount_minor as i128
                } else {
                    -(e.amount_minor as i128)
                }
            })
            .sum::<i128>();
        pages += 1;
        assert!(pages < 10_000, "statement does not end");
    }
    assert_eq!(net, hot.balances.posted_net_minor(), "round {round}");
}

/// The child's side: runs only when started by [`run_child_and_kill`].
#[test]
fn crash_child_entry() {
    let Ok(round) = std::env::var("ZHIFU_CRASH_ROUND") else {
        return;
    };
    let round: u128 = round.parse().unwrap();
    let config = match std::env::var("ZHIFU_CRASH_SQLITE") {
        Ok(path) => StoreConfig::Sqlite { path: path.into() },
        Err(_) => StoreConfig::Postgres {
            url: std::env::var("ZHIFU_CRASH_POSTGRES").unwrap(),
            schema: std::env::var("ZHIFU_CRASH_SCHEMA").ok(),
        },
    };
    let engine =
        Arc::new(Engine::start(&config, Arc::new(SystemClock), EngineConfig::default()).unwrap());
    let deadline = Instant::now() + Duration::from_secs(CHILD_SECONDS_MAX);
    let workers: Vec<_> = (0..4u128)
        .map(|worker| {
            let engine = engine.clone();
            std::thread::spawn(move || child_load(&engine, round, worker, deadline))
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
}

/// Each round's marker transfer has the same payload every time, so a later round can retry it.
fn marker(round: u128) -> zhifu_ledger::NewTransfer {
    posted(round * ROUND_IDS + ROUND_IDS - 1, 1, 3, 1)
}

fn worker_of(id: u128) -> u128 {
    (id % ROUND_IDS) / (ROUND_IDS / 8)
}

fn row_of(id: u128, amount_minor: u64) -> P2pRow {
    P2pRow {
        transfer_id: id.to_string(),
        payer_id: PAYER_ID,
        payee_id: PAYEE_ID,
        amount_minor,
        created_ms: 1,
        arrives_ms: 1,
        expires_ms: 1,
        state: "accepted".into(),
    }
}

fn child_load(engine: &Engine, round: u128, worker: u128, deadline: Instant) {
    let mut rng = rand::rng();
    let mut n = 0u128;
    while Instant::now() < deadline {
        let batch_len = rng.random_range(1..64u128);
        let mut transfers = Vec::new();
        for _ in 0..batch_len {
            n += 1;
            let amount = rng.random_range(1..1000u64);
            let id = round * ROUND_IDS + worker * (ROUND_IDS / 8) + n;
            transfers.push(if worker == 0 {
                posted(id, 1, HOT_ACCOUNT, amount)
            } else if worker == RECORDING_WORKER {
                posted(id, 1, RECORDED_ACCOUNT, amount)
            } else {
                posted(id, 1, rng.random_range(3..=WALLETS_LAST), amount)
            });
        }
        // Retries of this and the previous round's marker: OK the first time it lands, EXISTS
        // after, never a second movement of money.
        if worker == 1 {
            transfers.push(marker(round));
            transfers.push(marker(round - 1));
        }
        let records = match worker {
            RECORDING_WORKER => transfers
                .iter()
                .map(|transfer| match transfer.op {
                    zhifu_ledger::TransferOp::Posted { amount_minor, .. } => {
                        TransferRecord::P2pMade(row_of(transfer.id.get(), amount_minor))
                    }
                    _ => unreachable!("the load posts"),
                })
                .collect(),
            _ => Vec::new(),
        };
        let codes = engine
            .create_transfers_recorded(transfers.clone(), records)
            .unwrap();
        let mut stdout = std::io::stdout().lock();
        for (transfer, code) in transfers.iter().zip(codes) {
            if !matches!(code, TransferCode::Ok | TransferCode::Exists) {
                writeln!(stdout, "BAD {} {code}", transfer.id.get()).unwrap();
            }
            if code == TransferCode::Ok
                && let zhifu_ledger::TransferOp::Posted { amount_minor, .. } = transfer.op
            {
                writeln!(stdout, "ACK {} {amount_minor}", transfer.id.get()).unwrap();
            }
        }
        stdout.flush().unwrap();
    }
}

crate::on_both_stores!(crash_recovery);
