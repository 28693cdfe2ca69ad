//! `zhifu bench pay`: consumers pay one merchant with pay-code orders through the signed
//! merchant API over HTTP, against a `zhifu serve` that it starts (or one given with `--url`
//! and `--operator-token`).
//!
//! Each order is what a shop's till does after the consumer showed a code: the consumer's
//! wallet fetches a fresh one-time pay code (`POST /api/v1/pay-codes`, on the same connection,
//! not timed), then the till submits it with an Ed25519-signed
//! `POST /merchant/v1/orders/pay-code` (timed): code redeemed, limits checked, the payment, the
//! fee and the notification written, the response signed. Consumers pay 12.34 yuan each time,
//! at most 10 times each (a consumer's PIN-free payments per day), so the run needs
//! `--users` × 10 ≥ the orders it makes.
//!
//! Like `zhifu bench api` it measures in one run: the ceiling (`GET /healthz`), the maximum
//! order rate, and latency at 80 % of it, paced open-loop. A second reference, measured in the
//! same run, is the rate of the cheapest signed call (`GET /merchant/v1/balance`): its
//! signature verified, its nonce written, its response signed, which every order pays too.
//! Then it checks the money: the merchant's unsettled balance must be exactly the orders'
//! amounts minus their fees.
//!
//! `--orders N` instead submits exactly N orders at once over the connections, each one twice
//! (a till retrying the same `out_trade_no` and code), and checks that every order was paid
//! exactly once: the acceptance test of 5,000 concurrent pay-code payments.
//!
//! The last line is one JSON object with the figures.

use crate::bench_api::{
    Connection, Person, PhaseResult, Request, Server, address_of, round2, run_phase, set_up_people,
};
use anyhow::{Context, bail, ensure};
use base64ct::Encoding;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use zhifu_domain::acquiring::keys::KeyAlgorithm;
use zhifu_domain::acquiring::orders::fee_minor;
use zhifu_domain::acquiring::platform_keys::PlatformKey;
use zhifu_domain::acquiring::signature::request_message;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A running server to measure instead of starting one (needs --operator-token).
    #[arg(long)]
    url: Option<String>,
    /// The operator token of the server given with --url (to onboard the merchant).
    #[arg(long, env = "ZHIFU_OPERATOR_TOKEN")]
    operator_token: Option<String>,
    /// The store of the server it starts: sqlite or postgres.
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
    store: String,
    /// PostgreSQL server for `--store postgres`; defaults to the PG* environment variables.
    #[arg(long)]
    database_url: Option<String>,
    /// Consumers (each signed up, verified, given a card and topped up through the API first).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(2..=20_000))]
    users: u64,
    /// Keep-alive connections, each with one order in flight.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    connections: u64,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Instead of the timed phases: exactly this many orders at once, each submitted twice.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=200_000))]
    orders: Option<u64>,
}

/// What each order costs the consumer: 12.34 yuan, a fee of 7 fen at 0.6 %.
const ORDER_MINOR: u64 = 1_234;
const DISCOUNT_RATE_BPS: u32 = 60;
/// A consumer's PIN-free pay-code payments per day (the policy's default).
const USES_PER_CONSUMER_MAX: u64 = 10;
const KEY_SERIAL: &str = "bench-ed25519";

pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        args.connections <= args.users,
        "--connections may not exceed --users"
    );
    let (server, operator_token) = match (&args.url, &args.operator_token) {
        (Some(url), Some(token)) => (Server::Given(address_of(url)?), token.clone()),
        (Some(_), None) => bail!("--url needs --operator-token (or ZHIFU_OPERATOR_TOKEN)"),
        (None, _) => {
            let token = format!("bench-operator-{:032x}", rand::random::<u128>());
            let args_extra = ["--operator-token", token.as_str()];
            let server = Server::start(&args.store, args.database_url.as_deref(), &args_extra)?;
            (server, token)
        }
    };
    let address = server.address().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let figures = runtime.block_on(measure(&args, &address, &operator_token))?;
    drop(server);
    println!("{figures}");
    Ok(())
}

/// The merchant the consumers pay, and how it signs.
struct Till {
    merchant_id: i64,
    key: PlatformKey,
    nonces: AtomicU64,
    run_salt: u32,
}

impl Till {
    fn authorization(&self, method: &str, path: &str, body: &str) -> String {
        let timestamp = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs())
        .to_string();
        let nonce = format!(
            "bench{:08x}{:016x}",
            self.run_salt,
            self.nonces.fetch_add(1, Ordering::Relaxed)
        );
        let message = request_message(method, path, &timestamp, &nonce, body.as_bytes());
        format!(
            "ZHIFU-ED25519 mchid=\"{}\",serial_no=\"{KEY_SERIAL}\",timestamp=\"{timestamp}\",\
             nonce_str=\"{nonce}\",signature=\"{}\"",
            self.merchant_id,
            self.key.sign_base64(&message)
        )
    }

    /// `GET /merchant/v1/balance`, signed: the cheapest signed call.
    fn balance_request(&self) -> Request {
        let path = "/merchant/v1/balance";
        let mut request = Request::get(path);
        request.authorization = Some(self.authorization("GET", path, ""));
        request
    }

    fn order(&self, out_trade_no: &str, auth_code: &str) -> Request {
        let body = format!(
            r#"{{"out_trade_no":"{out_trade_no}","description":"Bench tea","amount_minor":{ORDER_MINOR},"auth_code":"{auth_code}"}}"#
        );
        let path = "/merchant/v1/orders/pay-code";
        let mut request = Request::post(path, &body);
        request.authorization = Some(self.authorization("POST", path, &body));
        request
    }
}

async fn set_up_till(address: &str, operator_token: &str, run_salt: u32) -> anyhow::Result<Till> {
    let mut http = Connection::open(address).await?;
    let body = format!(
        r#"{{"name":"Bench tea house {run_salt}","discount_rate_bps":{DISCOUNT_RATE_BPS}}}"#
    );
    let mut request = Request::post("/api/v1/operator/merchants", &body);
    request.token = Some(operator_token.to_owned());
    let merchant = http.expect(201, request).await?;
    let merchant_id = merchant["merchant_id"].as_i64().context("a merchant id")?;
    let pem = PlatformKey::generate_pkcs8_pem(KeyAlgorithm::Ed25519)?;
    let key = PlatformKey::from_pkcs8_pem(KeyAlgorithm::Ed25519, &pem)?;
    let registration = serde_json::json!({
        "serial": KEY_SERIAL,
        "algorithm": "Ed25519",
        "public_key": key.public_key_pem(),
    })
    .to_string();
    let path: &'static str =
        Box::leak(format!("/api/v1/operator/merchants/{merchant_id}/keys").into_boxed_str());
    let mut request = Request::post(path, &registration);
    request.token = Some(operator_token.to_owned());
    http.expect(201, request).await?;
    Ok(Till {
        merchant_id,
        key,
        nonces: AtomicU64::new(0),
        run_salt,
    })
}

async fn measure(
    args: &Args,
    address: &str,
    operator_token: &str,
) -> anyhow::Result<serde_json::Value> {
    let run_salt = rand::random::<u32>() % 10_000;
    let started = Instant::now();
    let people = Arc::new(set_up_people(address, args.users, run_salt).await?);
    let till = Arc::new(set_up_till(address, operator_token, run_salt).await?);
    eprintln!(
        "bench pay: {} consumers and a merchant ready in {:.1} s",
        people.len(),
        started.elapsed().as_secs_f64()
    );
    let next_consumer = Arc::new(AtomicU64::new(0));
    if let Some(orders) = args.orders {
        return exactly_once(args, address, &people, &till, orders).await;
    }
    let phase = Duration::from_secs(args.seconds);
    let machine_before = MachineCpu::read();
    let ceiling = run_phase(address, args.connections, phase, None, |_, _, _| {
        Request::get("/healthz")
    })
    .await?;
    let ceiling_busy_cores = MachineCpu::busy_cores_since(machine_before);
    eprintln!("bench pay: ceiling {:.0}/s", ceiling.rate_per_s);
    let floor = OrderFloor::measure(&till.key, ceiling.rate_per_s, ceiling_busy_cores);
    // A second reference: the cheapest signed call (the signature verified, its nonce written,
    // the balance read, the response signed), what every order pays before its own work.
    let signing_till = till.clone();
    let signed_call = run_phase(address, args.connections, phase, None, move |_, _, _| {
        signing_till.balance_request()
    })
    .await?;
    ensure!(
        signed_call.failures == 0,
        "signed calls were refused; the figure would not be theirs"
    );
    eprintln!("bench pay: signed calls {:.0}/s", signed_call.rate_per_s);
    let shared = (&people, &till, &next_consumer);
    // Each consumer pays without the PIN up to 10 times a day: the saturated phase may use
    // half of those payments, the paced phase the rest.
    let uses = args.users * USES_PER_CONSUMER_MAX;
    let max = order_phase(address, args.connections, phase, None, uses / 2, shared).await?;
    eprintln!(
        "bench pay: orders {:.0}/s ({} refused)",
        max.result.rate_per_s, max.result.failures
    );
    let paced_rate = (max.result.rate_per_s * 0.8).max(1.0);
    // The same total rate over more connections, as in `bench api` (see there): paced over
    // the saturated phase's K connections, one order in flight each, a connection that fell
    // behind its schedule never caught up, and the client's own queue was measured.
    let paced_connections = args
        .users
        .min(args.connections * crate::bench_api::PACED_CONNECTIONS_FACTOR);
    let paced = order_phase(
        address,
        paced_connections,
        phase,
        Some(paced_rate),
        uses,
        shared,
    )
    .await?;
    ensure!(
        !paced.result.latencies_us.is_empty(),
        "no order was left for the paced phase: raise --users"
    );
    eprintln!(
        "bench pay: at {:.0}/s: p50 {:.2} ms, p99 {:.2} ms",
        paced.result.rate_per_s,
        paced.result.percentile_ms(0.50),
        paced.result.percentile_ms(0.99)
    );
    ensure!(
        max.result.failures == 0 && paced.result.failures == 0,
        "orders were refused; the figures would not be payments"
    );
    let paid = max.paid + paced.paid;
    let balance_minor = merchant_balance(address, &till).await?;
    let expected_minor = paid * (ORDER_MINOR - fee_minor(ORDER_MINOR, DISCOUNT_RATE_BPS));
    ensure!(
        balance_minor == expected_minor,
        "the merchant holds {balance_minor} fen, not the {expected_minor} its {paid} orders paid net of fees"
    );
    Ok(serde_json::json!({
        "orders_per_s": max.result.rate_per_s.round(),
        "latency_ms_p50": round2(paced.result.percentile_ms(0.50)),
        "latency_ms_p99": round2(paced.result.percentile_ms(0.99)),
        "ceiling_per_s": ceiling.rate_per_s.round(),
        "orders_share_of_ceiling": round2(max.result.rate_per_s / ceiling.rate_per_s),
        "signed_call_per_s": signed_call.rate_per_s.round(),
        "orders_share_of_signed_call": round2(max.result.rate_per_s / signed_call.rate_per_s),
        "ed25519_sign_us": round2(floor.sign_us),
        "ed25519_verify_us": round2(floor.verify_us),
        "orders_share_of_ceiling_max": floor.share_of_ceiling_max.map(round2),
        "paced_per_s": paced.result.rate_per_s.round(),
        "orders_paid": paid,
        "merchant_balance_minor": balance_minor,
        "users": args.users,
        "connections": args.connections,
        "paced_connections": paced_connections,
        "seconds": args.seconds,
        "store": if args.url.is_some() { "given" } else { args.store.as_str() },
    }))
}

/// The least CPU an order can cost here, measured in the run, and so the highest share of the
/// ceiling that orders could reach even if everything else they do (the order's logic, its
/// rows, the ledger chain, the commits) were free. An order is two HTTP requests, each at
/// least a ceiling request's CPU (client and server; the ceiling phase's busy cores over its
/// rate), the order and the consumer's code fetch, and three Ed25519 operations: the
/// client signs the request, the server verifies it and signs its answer.
struct OrderFloor {
    sign_us: f64,
    verify_us: f64,
    /// None where the machine's CPU time cannot be read (not Linux).
    share_of_ceiling_max: Option<f64>,
}

impl OrderFloor {
    const ROUNDS: usize = 5;
    const OPERATIONS_PER_ROUND: u32 = 400;

    fn measure(key: &PlatformKey, ceiling_per_s: f64, busy_cores: Option<f64>) -> OrderFloor {
        let message = request_message(
            "POST",
            "/merchant/v1/orders/pay-code",
            "1",
            "n",
            &[b'x'; 300],
        );
        let signature = key.sign_base64(&message);
        let signature = base64ct::Base64::decode_vec(&signature).unwrap_or_default();
        let sign_us = median_us(|| {
            std::hint::black_box(key.sign_base64(std::hint::black_box(&message)));
        });
        let verify_us = median_us(|| {
            let verified = key.public_key().verifies(&message, &signature);
            assert!(verified, "the till's own signature verifies");
        });
        let cores = cores();
        let share_of_ceiling_max = busy_cores.map(|busy| {
            let request_us = busy * 1e6 / ceiling_per_s;
            let order_us = 2.0 * request_us + 2.0 * sign_us + verify_us;
            cores * 1e6 / order_us / ceiling_per_s
        });
        OrderFloor {
            sign_us,
            verify_us,
            share_of_ceiling_max,
        }
    }
}

/// The median over [`OrderFloor::ROUNDS`] rounds of one operation's time, in microseconds.
fn median_us(mut operation: impl FnMut()) -> f64 {
    let mut rounds = [0.0; OrderFloor::ROUNDS];
    for round in &mut rounds {
        let started = Instant::now();
        for _ in 0..OrderFloor::OPERATIONS_PER_ROUND {
            operation();
        }
        *round =
            started.elapsed().as_secs_f64() * 1e6 / f64::from(OrderFloor::OPERATIONS_PER_ROUND);
    }
    rounds.sort_by(f64::total_cmp);
    rounds[OrderFloor::ROUNDS / 2]
}

/// The machine's CPU time so far (all processes), from `/proc/stat`: busy and total ticks.
#[derive(Clone, Copy)]
struct MachineCpu {
    busy_ticks: u64,
    total_ticks: u64,
}

impl MachineCpu {
    fn read() -> Option<MachineCpu> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|field| field.parse::<u64>().ok())
            .collect::<Option<Vec<_>>>()?;
        // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
        let idle = ticks.get(3)? + ticks.get(4)?;
        let total: u64 = ticks.iter().take(8).sum();
        Some(MachineCpu {
            busy_ticks: total - idle,
            total_ticks: total,
        })
    }

    /// How many cores were busy on average since `before`.
    fn busy_cores_since(before: Option<MachineCpu>) -> Option<f64> {
        let (before, after) = (before?, MachineCpu::read()?);
        let total = after.total_ticks.checked_sub(before.total_ticks)?;
        let busy = after.busy_ticks.checked_sub(before.busy_ticks)?;
        (total > 0).then(|| busy as f64 / total as f64 * cores())
    }
}

/// The machine's cores, as the floor counts them.
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

struct OrderPhase {
    result: PhaseResult,
    paid: u64,
}

/// Like `run_phase`, with a consumer's code fetched before each order (not timed).
async fn order_phase(
    address: &str,
    connections: u64,
    length: Duration,
    rate_per_s: Option<f64>,
    sequence_end: u64,
    (people, till, next_consumer): (&Arc<Vec<Person>>, &Arc<Till>, &Arc<AtomicU64>),
) -> anyhow::Result<OrderPhase> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let exhausted = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..connections {
        let mut http = Connection::open(address).await?;
        let (people, till, next, stop, done, exhausted) = (
            people.clone(),
            till.clone(),
            next_consumer.clone(),
            stop.clone(),
            done.clone(),
            exhausted.clone(),
        );
        let interval = rate_per_s.map(|rate| Duration::from_secs_f64(connections as f64 / rate));
        tasks.push(tokio::spawn(async move {
            let (mut latencies_us, mut failures, mut paid) = (Vec::new(), 0u64, 0u64);
            let mut next_at = interval
                .map(|i| Instant::now() + i.mul_f64(connection as f64 / connections as f64));
            while !stop.load(Ordering::Relaxed) {
                let sequence = next.fetch_add(1, Ordering::Relaxed);
                let consumer = &people[(sequence % people.len() as u64) as usize];
                if sequence >= sequence_end {
                    // The consumers have used this phase's share of the day's PIN-free
                    // payments: the phase ends here, measured over the time it ran, rather
                    // than paying with the PIN.
                    exhausted.notify_one();
                    break;
                }
                // The consumer shows the code before the till is due to submit it: the code's
                // fetch is not part of the order's time.
                let code = pay_code(&mut http, consumer).await?;
                let scheduled = match (next_at, interval) {
                    (Some(at), Some(interval)) => {
                        tokio::time::sleep_until(at.into()).await;
                        next_at = Some(at + interval);
                        at
                    }
                    _ => Instant::now(),
                };
                let out_trade_no = format!("B{}-{sequence}", till.run_salt);
                let (status, body) = http.send(&till.order(&out_trade_no, &code)).await?;
                latencies_us
                    .push(u32::try_from(scheduled.elapsed().as_micros()).unwrap_or(u32::MAX));
                match status == 200 && body_state(&body) == Some("SUCCESS".into()) {
                    true => paid += 1,
                    false => failures += 1,
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok((latencies_us, failures, paid))
        }));
    }
    tokio::select! {
        () = tokio::time::sleep(length) => {}
        () = exhausted.notified() => eprintln!(
            "bench pay: the phase's share of the consumers' PIN-free payments (--users × 10 in \
             all) ran out after {:.2} s: it is measured over that time; raise --users for \
             full phases",
            started.elapsed().as_secs_f64()
        ),
    }
    let counted = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut phase = OrderPhase {
        result: PhaseResult {
            rate_per_s: counted as f64 / elapsed.as_secs_f64(),
            failures: 0,
            latencies_us: Vec::new(),
        },
        paid: 0,
    };
    for task in tasks {
        let (latencies_us, failures, paid) = task.await??;
        phase.result.latencies_us.extend(latencies_us);
        phase.result.failures += failures;
        phase.paid += paid;
    }
    phase.result.latencies_us.sort_unstable();
    Ok(phase)
}

fn body_state(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value["trade_state"].as_str().map(str::to_owned)
}

async fn pay_code(http: &mut Connection, consumer: &Person) -> anyhow::Result<String> {
    let mut request = Request::post("/api/v1/pay-codes", "");
    request.token = Some(consumer.token.clone());
    let issued = http.expect(201, request).await?;
    Ok(issued["code"].as_str().context("a pay code")?.to_owned())
}

async fn merchant_balance(address: &str, till: &Till) -> anyhow::Result<u64> {
    let mut http = Connection::open(address).await?;
    let balance = http.expect(200, till.balance_request()).await?;
    balance["unsettled_minor"]
        .as_u64()
        .context("a balance in fen")
}

/// Exactly `orders` orders over the connections at once, each submitted twice with the same
/// `out_trade_no` and code; every one must be paid once, and the merchant's balance must be
/// their amounts net of fees to the fen.
async fn exactly_once(
    args: &Args,
    address: &str,
    people: &Arc<Vec<Person>>,
    till: &Arc<Till>,
    orders: u64,
) -> anyhow::Result<serde_json::Value> {
    ensure!(
        orders <= args.users * USES_PER_CONSUMER_MAX,
        "--orders may be at most --users × 10"
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let mut http = Connection::open(address).await?;
        let (people, till, next) = (people.clone(), till.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut paid, mut mismatched) = (0u64, 0u64);
            loop {
                let sequence = next.fetch_add(1, Ordering::Relaxed);
                if sequence >= orders {
                    break;
                }
                let consumer = &people[(sequence % people.len() as u64) as usize];
                let code = pay_code(&mut http, consumer).await?;
                let out_trade_no = format!("X{}-{sequence}", till.run_salt);
                let (first_status, first) = http.send(&till.order(&out_trade_no, &code)).await?;
                let (again_status, again) = http.send(&till.order(&out_trade_no, &code)).await?;
                let id = |body: &[u8]| -> Option<String> {
                    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
                    value["transaction_id"].as_str().map(str::to_owned)
                };
                if first_status == 200 && body_state(&first) == Some("SUCCESS".into()) {
                    paid += 1;
                }
                if again_status != first_status || id(&first) != id(&again) {
                    mismatched += 1;
                }
            }
            anyhow::Ok((paid, mismatched))
        }));
    }
    let (mut paid, mut mismatched) = (0, 0);
    for task in tasks {
        let (p, m) = task.await??;
        paid += p;
        mismatched += m;
    }
    let elapsed = started.elapsed();
    let balance_minor = merchant_balance(address, till).await?;
    let expected_minor = orders * (ORDER_MINOR - fee_minor(ORDER_MINOR, DISCOUNT_RATE_BPS));
    ensure!(paid == orders, "{paid} of {orders} orders were paid");
    ensure!(
        mismatched == 0,
        "{mismatched} retries answered differently from the first try"
    );
    ensure!(
        balance_minor == expected_minor,
        "the merchant holds {balance_minor} fen, not {expected_minor}"
    );
    Ok(serde_json::json!({
        "orders": orders,
        "orders_paid_once": paid,
        "retries_answered_alike": orders - mismatched,
        "merchant_balance_minor": balance_minor,
        "expected_balance_minor": expected_minor,
        "seconds": round2(elapsed.as_secs_f64()),
        "connections": args.connections,
        "store": if args.url.is_some() { "given" } else { args.store.as_str() },
    }))
}
