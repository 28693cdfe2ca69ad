//! `zhifu bench ledger`: transfers per second through the engine on a fresh temporary
//! database, its latency at half that rate, and (with `--baseline`) a naive ledger on the same
//! store in the same run, so that every figure is also a ratio.

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use zhifu_ledger::{
    AccountId, AccountKind, BalanceRule, Currency, NewAccount, NewTransfer, TransferCode,
    TransferId, TransferOp,
};
use zhifu_store::naive::{NaiveLoad, run_naive};
use zhifu_store::{Engine, EngineConfig, PostgresStore, StoreConfig, SystemClock};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// sqlite or postgres.
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
    store: String,
    /// PostgreSQL server; a fresh schema is created in it and dropped afterwards. Defaults to
    /// the PG* environment variables (as pg_virtualenv sets them).
    #[arg(long)]
    database_url: Option<String>,
    /// Wallet accounts (each funded before the clock starts).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(2..=10_000_000))]
    accounts: u64,
    /// Transfers in the throughput phase.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    transfers: u64,
    /// Share of transfers that credit one hot account (a big merchant).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    hot_percent: u8,
    /// Concurrent callers of the engine.
    #[arg(long, default_value_t = 1_024, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    clients: u64,
    /// Transfers per request (1: every transfer is its own call, as one payment per HTTP request).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=8_190))]
    request_size: u64,
    /// Seconds of the latency phase, run at half the measured maximum rate.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
    paced_seconds: u64,
    /// Also run the naive ledger (one transaction per transfer, 8 clients) on the same store.
    #[arg(long)]
    baseline: bool,
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    baseline_seconds: u64,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    baseline_clients: u64,
}

/// Every wallet starts with this much, so that no benchmark transfer is refused for funds.
const WALLET_FUNDING_MINOR: u64 = 1_000_000_000;
const OPERATOR: u64 = 1;
/// The hot account: the first wallet.
const HOT: u64 = 2;
const SETUP_REQUEST_LEN: u64 = 8_000;

/// A temporary database that is removed when dropped.
pub(crate) enum TempStore {
    Sqlite {
        config: StoreConfig,
        _directory: tempfile::TempDir,
    },
    Postgres {
        config: StoreConfig,
        url: String,
        schema: String,
    },
}

impl TempStore {
    pub(crate) fn create(store: &str, database_url: Option<&str>) -> anyhow::Result<TempStore> {
        if store == "sqlite" {
            let directory = tempfile::Builder::new().prefix("zhifu-bench-").tempdir()?;
            let config = StoreConfig::Sqlite {
                path: directory.path().join("ledger.sqlite"),
            };
            return Ok(TempStore::Sqlite {
                config,
                _directory: directory,
            });
        }
        let url = database_url.map(str::to_owned).or_else(PostgresStore::url_from_env).context(
            "--store postgres needs --database-url, or PGHOST etc. in the environment (pg_virtualenv sets them)",
        )?;
        let schema = format!("zhifu_bench_{:012x}", rand::random::<u64>() >> 16);
        let config = StoreConfig::Postgres {
            url: url.clone(),
            schema: Some(schema.clone()),
        };
        Ok(TempStore::Postgres {
            config,
            url,
            schema,
        })
    }

    pub(crate) fn config(&self) -> &StoreConfig {
        match self {
            TempStore::Sqlite { config, .. } | TempStore::Postgres { config, .. } => config,
        }
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        if let TempStore::Postgres { url, schema, .. } = self
            && let Ok(mut store) = PostgresStore::open(url, None)
        {
            let _ = store
                .client()
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let store = TempStore::create(&args.store, args.database_url.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let engine = Arc::new(Engine::start(
        store.config(),
        Arc::new(SystemClock),
        EngineConfig::default(),
    )?);
    println!(
        "zhifu bench ledger: {} store, {} accounts, {} transfers, {}% hot, {} clients, {} per request",
        store.config().name(),
        args.accounts,
        args.transfers,
        args.hot_percent,
        args.clients,
        args.request_size
    );
    setup(&engine, args.accounts)?;
    // Before any load runs, the process holds little besides the engine's resident state.
    let rss_mib_after_setup = rss_mib(Rss::Now);
    println!(
        "  state       {rss_mib_after_setup:.0} MiB resident after loading {} accounts",
        args.accounts
    );
    let batches_before = engine.stats().batches.load(Ordering::Relaxed);
    let load = Load::new(&args);
    let saturated = runtime.block_on(drive(
        engine.clone(),
        load.clone(),
        args.clients,
        args.transfers.div_ceil(load.request_size),
        Pace::Saturate,
    ))?;
    let batches = engine.stats().batches.load(Ordering::Relaxed) - batches_before;
    let transfers_per_s = saturated.transfers as f64 / saturated.seconds;
    println!(
        "  throughput  {:>10.0} transfers/s  ({} in {:.2} s, {} batches of {:.0} on average, saturated p99 {:.2} ms)",
        transfers_per_s,
        saturated.transfers,
        saturated.seconds,
        batches,
        saturated.transfers as f64 / batches.max(1) as f64,
        saturated.latency_ms(0.99)
    );
    let paced_requests_per_s = (transfers_per_s / 2.0 / load.request_size as f64).max(1.0);
    engine.stats().commit_us_max.store(0, Ordering::Relaxed);
    engine.stats().batch_us_max.store(0, Ordering::Relaxed);
    let paced = runtime.block_on(drive(
        engine.clone(),
        load,
        args.clients,
        (paced_requests_per_s * args.paced_seconds as f64).max(1.0) as u64,
        Pace::RequestsPerSecond(paced_requests_per_s),
    ))?;
    println!(
        "  latency     p50 {:.2} ms  p99 {:.2} ms  at {:.0} transfers/s (half the maximum)",
        paced.latency_ms(0.50),
        paced.latency_ms(0.99),
        paced.transfers as f64 / paced.seconds
    );
    let paced_commit_ms_max = engine.stats().commit_us_max.load(Ordering::Relaxed) as f64 / 1e3;
    let paced_batch_ms_max = engine.stats().batch_us_max.load(Ordering::Relaxed) as f64 / 1e3;
    println!(
        "              slowest commit {paced_commit_ms_max:.2} ms, slowest batch {paced_batch_ms_max:.2} ms in that phase"
    );
    let rss_mib_max = rss_mib(Rss::Peak);
    println!("  memory      {rss_mib_max:.0} MiB resident at most (engine, caches and all)");
    let (history_lag, catch_up_seconds) = wait_for_upkeep(store.config())?;
    if history_lag > 0 {
        println!(
            "  history     {history_lag} transfers not yet indexed after the load; indexed in {catch_up_seconds:.2} s after it \
             (upkeep runs at idle priority)"
        );
    }
    drop(engine);
    let baseline_transfers_per_s = if args.baseline {
        Some(baseline(&store, &args)?)
    } else {
        None
    };
    if let Some(baseline) = baseline_transfers_per_s {
        println!(
            "  naive       {baseline:>10.0} transfers/s  -> engine is {:.1}x",
            transfers_per_s / baseline
        );
    }
    let report = serde_json::json!({
        "store": store.config().name(),
        "transfers": saturated.transfers,
        "seconds": round3(saturated.seconds),
        "transfers_per_s": transfers_per_s.round(),
        "latency_ms_p50": round3(paced.latency_ms(0.50)),
        "latency_ms_p99": round3(paced.latency_ms(0.99)),
        "hot_percent": args.hot_percent,
        "baseline_transfers_per_s": baseline_transfers_per_s.map(f64::round),
        "speedup": baseline_transfers_per_s.map(|b| round3(transfers_per_s / b)),
        "accounts": args.accounts,
        "clients": args.clients,
        "request_size": args.request_size,
        "transfers_per_batch": round3(saturated.transfers as f64 / batches.max(1) as f64),
        "saturated_latency_ms_p99": round3(saturated.latency_ms(0.99)),
        "paced_transfers_per_s": (paced.transfers as f64 / paced.seconds).round(),
        "paced_commit_ms_max": round3(paced_commit_ms_max),
        "paced_batch_ms_max": round3(paced_batch_ms_max),
        "rss_mib_max": rss_mib_max.round(),
        "rss_mib_after_setup": rss_mib_after_setup.round(),
        "history_lag_transfers": history_lag,
        "history_catch_up_seconds": round3(catch_up_seconds),
    });
    println!("{report}");
    Ok(())
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn account_id(n: u64) -> AccountId {
    AccountId::new(n).expect("benchmark account ids are valid")
}

/// Opens the operator and the wallets and funds every wallet; not timed.
fn setup(engine: &Engine, accounts: u64) -> anyhow::Result<()> {
    let bar = progress("setup", accounts * 2);
    let wallet = |id| NewAccount {
        id: account_id(id),
        currency: Currency::CNY,
        kind: AccountKind::ConsumerWallet,
        rule: BalanceRule::NO_OVERDRAFT,
    };
    let operator = NewAccount {
        id: account_id(OPERATOR),
        currency: Currency::CNY,
        kind: AccountKind::Operator,
        rule: BalanceRule::Unbounded,
    };
    engine.open_accounts(vec![operator])?;
    let wallets_last = accounts + 1;
    for chunk_start in (2..=wallets_last).step_by(SETUP_REQUEST_LEN as usize) {
        let chunk_end = (chunk_start + SETUP_REQUEST_LEN - 1).min(wallets_last);
        let codes = engine.open_accounts((chunk_start..=chunk_end).map(wallet).collect())?;
        if codes.iter().any(|c| *c != zhifu_ledger::AccountCode::Ok) {
            bail!("opening accounts failed: {codes:?}");
        }
        let funding = (chunk_start..=chunk_end)
            .map(|id| posted(u128::from(id), OPERATOR, id, WALLET_FUNDING_MINOR))
            .collect();
        check_codes(&engine.create_transfers(funding)?)?;
        bar.inc((chunk_end - chunk_start + 1) * 2);
    }
    bar.finish_and_clear();
    Ok(())
}

fn posted(id: u128, debit: u64, credit: u64, amount_minor: u64) -> NewTransfer {
    NewTransfer {
        id: TransferId::new(id).expect("benchmark transfer ids are valid"),
        op: TransferOp::Posted {
            debit_account_id: account_id(debit),
            credit_account_id: account_id(credit),
            amount_minor,
        },
        code: 1,
        reference: None,
        linked: false,
    }
}

fn check_codes(codes: &[TransferCode]) -> anyhow::Result<()> {
    match codes.iter().find(|c| **c != TransferCode::Ok) {
        Some(code) => bail!("a benchmark transfer was refused: {code}"),
        None => Ok(()),
    }
}

fn progress(label: &str, length: u64) -> ProgressBar {
    let bar = ProgressBar::new(length);
    let style =
        ProgressStyle::with_template("  {prefix:<10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template");
    bar.set_style(style.progress_chars("=> "));
    bar.set_prefix(label.to_owned());
    bar
}

/// What the generated transfers look like, shared by all clients.
#[derive(Clone)]
struct Load {
    next_id: Arc<AtomicU64>,
    wallets: u64,
    hot_percent: u8,
    request_size: u64,
}

impl Load {
    fn new(args: &Args) -> Load {
        // Funding used ids up to the number of accounts; the measured transfers come after.
        Load {
            next_id: Arc::new(AtomicU64::new(1 << 40)),
            wallets: args.accounts,
            hot_percent: args.hot_percent,
            request_size: args.request_size,
        }
    }

    fn request(&self, rng: &mut impl rand::Rng) -> Vec<NewTransfer> {
        (0..self.request_size)
            .map(|_| {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let credit = if rng.random_range(0..100u8) < self.hot_percent {
                    HOT
                } else {
                    2 + rng.random_range(0..self.wallets)
                };
                let mut debit = 2 + rng.random_range(0..self.wallets);
                if debit == credit {
                    debit = 2 + (debit - 1) % self.wallets;
                }
                posted(u128::from(id), debit, credit, rng.random_range(1..=100))
            })
            .collect()
    }
}

struct Phase {
    transfers: u64,
    seconds: f64,
    /// Microseconds from submission (or, paced, from the scheduled moment) to the answer.
    latencies_us: Vec<u32>,
}

impl Phase {
    fn latency_ms(&self, quantile: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_us.len() - 1) as f64 * quantile).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }
}

fn finish_phase(transfers: u64, seconds: f64, latencies: Vec<Vec<u32>>) -> Phase {
    let mut latencies_us: Vec<u32> = latencies.into_iter().flatten().collect();
    latencies_us.sort_unstable();
    Phase {
        transfers,
        seconds,
        latencies_us,
    }
}

/// A generator that can move between threads with its task (the thread-local one cannot).
fn task_rng() -> rand::rngs::StdRng {
    rand::SeedableRng::from_rng(&mut rand::rng())
}

fn elapsed_us(since: Instant) -> u32 {
    u32::try_from(since.elapsed().as_micros()).unwrap_or(u32::MAX)
}

/// When requests are sent.
#[derive(Clone, Copy)]
enum Pace {
    /// Closed loop: each caller submits as soon as its previous answer came; the maximum
    /// rate. Latency counts from submission.
    Saturate,
    /// Open loop: request `n` is due at `n / rate` whatever the answers, and its latency counts
    /// from that moment, so a stall shows up in the figures instead of slowing the load down.
    RequestsPerSecond(f64),
}

/// `clients` callers take the `requests` in turn, each request its own call. No task per
/// request: the load generator shares the machine with the engine and must stay cheap.
async fn drive(
    engine: Arc<Engine>,
    load: Load,
    clients: u64,
    requests: u64,
    pace: Pace,
) -> anyhow::Result<Phase> {
    let label = match pace {
        Pace::Saturate => "transfers",
        Pace::RequestsPerSecond(_) => "paced",
    };
    let bar = progress(label, requests * load.request_size);
    let next_slot = Arc::new(AtomicU64::new(0));
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (engine, load, next_slot, bar) =
                (engine.clone(), load.clone(), next_slot.clone(), bar.clone());
            tokio::spawn(async move {
                let mut rng = task_rng();
                let mut latencies = Vec::new();
                loop {
                    let slot = next_slot.fetch_add(1, Ordering::Relaxed);
                    if slot >= requests {
                        break;
                    }
                    let due = match pace {
                        Pace::Saturate => tokio::time::Instant::now(),
                        Pace::RequestsPerSecond(rate) => {
                            let due = started + Duration::from_secs_f64(slot as f64 / rate);
                            tokio::time::sleep_until(due).await;
                            due
                        }
                    };
                    let request = load.request(&mut rng);
                    check_codes(&engine.create_transfers_async(request).await?)?;
                    latencies.push(elapsed_us(due.into_std()));
                    bar.inc(load.request_size);
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(finish_phase(
        requests * load.request_size,
        seconds,
        latencies,
    ))
}

fn baseline(store: &TempStore, args: &Args) -> anyhow::Result<f64> {
    let load = NaiveLoad {
        accounts: args.accounts,
        hot_percent: args.hot_percent,
        clients: args.baseline_clients as usize,
        duration: Duration::from_secs(args.baseline_seconds),
        balance_initial_minor: WALLET_FUNDING_MINOR as i64,
    };
    let report = run_naive(store.config(), load)?;
    if report.failures > report.transfers / 100 {
        eprintln!(
            "  note: {} naive transactions failed (lock waits, deadlocks)",
            report.failures
        );
    }
    Ok(report.transfers as f64 / report.seconds)
}

/// How far the derived history index is behind once the load stops, and how long the
/// engine's idle-priority upkeep takes to close the gap.
fn wait_for_upkeep(config: &StoreConfig) -> anyhow::Result<(u64, f64)> {
    let mut reader = config.open()?;
    let lag = reader.upkeep_lag()?;
    let started = Instant::now();
    let bar = progress("indexing", lag);
    loop {
        let left = reader.upkeep_lag()?;
        bar.set_position(lag.saturating_sub(left));
        if left == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the history index is still {left} transfers behind after 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bar.finish_and_clear();
    Ok((lag, started.elapsed().as_secs_f64()))
}

#[derive(Clone, Copy)]
enum Rss {
    Now,
    Peak,
}

/// The process's resident memory, now or at its peak, from /proc (Linux; 0 elsewhere).
fn rss_mib(which: Rss) -> f64 {
    let field = match which {
        Rss::Now => "VmRSS:",
        Rss::Peak => "VmHWM:",
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0);
    kib / 1024.0
}
