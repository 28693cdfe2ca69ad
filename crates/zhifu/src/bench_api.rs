//! `zhifu bench api`: wallet-to-wallet payments over real HTTP, against a `zhifu serve` that it
//! starts on a fresh temporary store (or one given with `--url`).
//!
//! In one run it measures, over the same K keep-alive connections:
//! 1. the ceiling: `GET /healthz` as fast as the connections go (the HTTP stack alone);
//! 2. the maximum payment rate: `POST /api/v1/transfers` (PIN, limits, ledger, wallet row) as
//!    fast as they go;
//! 3. latency at 80 % of that maximum, paced open-loop: each request has a start time on a
//!    schedule, and its latency counts from then, so a stall is not hidden by the requests that
//!    were never sent meanwhile.
//!
//! The last line is one JSON object with the figures.

use crate::bench_ledger::TempStore;
use anyhow::{Context, bail, ensure};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use zhifu_domain::wallet::identity::make;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A running server to measure instead of starting one (its people are created anew).
    #[arg(long)]
    url: Option<String>,
    /// The store of the server it starts: sqlite or postgres.
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
    store: String,
    /// PostgreSQL server for `--store postgres`; defaults to the PG* environment variables.
    #[arg(long)]
    database_url: Option<String>,
    /// Verified people who pay each other (each is signed up, verified, given a card and
    /// topped up through the API before the clock starts).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(2..=1_000))]
    users: u64,
    /// Keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    connections: u64,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
}

const PASSWORD: &str = "bench-password-1";
const PIN: &str = "802514";
const NAME: &str = "测试";
/// Each person's wallet balance before the clock starts; payments are of 0.01 yuan.
const TOP_UP_MINOR: u64 = 100_000;
/// People set up at once (each costs two Argon2id hashes on the server).
const SETUP_PARALLEL: usize = 4;
/// How many times more connections the paced phase spreads its rate over (at most --users).
pub(crate) const PACED_CONNECTIONS_FACTOR: u64 = 4;
/// A response larger than this is an error, not something to buffer.
const RESPONSE_BYTES_MAX: usize = 1 << 20;

pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        args.connections <= args.users,
        "--connections may not exceed --users: each connection pays from its own people"
    );
    let server = match &args.url {
        Some(url) => Server::Given(address_of(url)?),
        None => Server::start(&args.store, args.database_url.as_deref(), &[])?,
    };
    let address = server.address().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let figures = runtime.block_on(measure(&args, &address))?;
    drop(server);
    println!("{figures}");
    Ok(())
}

async fn measure(args: &Args, address: &str) -> anyhow::Result<serde_json::Value> {
    let run_salt = rand::random::<u32>() % 10_000;
    let started = Instant::now();
    let people = set_up_people(address, args.users, run_salt).await?;
    eprintln!(
        "bench api: {} people ready in {:.1} s",
        people.len(),
        started.elapsed().as_secs_f64()
    );
    let people = Arc::new(people);
    let phase = Duration::from_secs(args.seconds);
    let ceiling = run_phase(address, args.connections, phase, None, |_, _, _| {
        Request::get("/healthz")
    })
    .await?;
    eprintln!("bench api: ceiling {:.0}/s", ceiling.rate_per_s);
    let pay = payment_request(people.clone(), format!("b{run_salt}-max"));
    let max = run_phase(address, args.connections, phase, None, pay).await?;
    eprintln!(
        "bench api: payments {:.0}/s ({} refused)",
        max.rate_per_s, max.failures
    );
    let paced_rate = (max.rate_per_s * 0.8).max(1.0);
    // New keys: the same keys again would be answered as retries of the first phase's
    // payments, and would measure those instead of payments.
    let pay = payment_request(people.clone(), format!("b{run_salt}-paced"));
    // More connections than the saturated phase, at the same total rate: with one request in
    // flight each, K connections paced at 80 % of what K did flat out have only a quarter of
    // a request's time in hand, and a connection that falls behind its schedule never catches
    // up, so the figure would measure the client's queue (p99 of seconds in a 60 s run).
    let paced_connections = args.users.min(args.connections * PACED_CONNECTIONS_FACTOR);
    let paced = run_phase(address, paced_connections, phase, Some(paced_rate), pay).await?;
    eprintln!(
        "bench api: at {:.0}/s: p50 {:.2} ms, p99 {:.2} ms",
        paced.rate_per_s,
        paced.percentile_ms(0.50),
        paced.percentile_ms(0.99)
    );
    ensure!(
        max.failures == 0 && paced.failures == 0,
        "payments were refused; the figures would not be payments"
    );
    Ok(serde_json::json!({
        "payments_per_s": max.rate_per_s.round(),
        "latency_ms_p50": round2(paced.percentile_ms(0.50)),
        "latency_ms_p99": round2(paced.percentile_ms(0.99)),
        "ceiling_per_s": ceiling.rate_per_s.round(),
        "payments_share_of_ceiling": round2(max.rate_per_s / ceiling.rate_per_s),
        "paced_per_s": paced.rate_per_s.round(),
        "max_latency_ms_p99": round2(max.percentile_ms(0.99)),
        "users": args.users,
        "connections": args.connections,
        "paced_connections": paced_connections,
        "seconds": args.seconds,
        "store": if args.url.is_some() { "given" } else { args.store.as_str() },
    }))
}

pub(crate) fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A payment from one of the connection's own people (so that no two connections wait for
/// the same payer's lock) to anyone else, under an idempotency key that starts with
/// `key_prefix`, unique to the phase.
fn payment_request(
    people: Arc<Vec<Person>>,
    key_prefix: String,
) -> impl Fn(u64, u64, u64) -> Request + Clone {
    move |connection, connections, sequence| {
        let own = people.len() as u64 / connections;
        let payer = (connection + connections * (sequence % own)) as usize;
        let payee = (payer + 1 + (sequence as usize * 7919) % (people.len() - 1)) % people.len();
        let body = format!(
            r#"{{"to_phone":"{}","amount_minor":1,"pin":"{PIN}"}}"#,
            people[payee].phone
        );
        Request {
            method: "POST",
            path: "/api/v1/transfers",
            token: Some(people[payer].token.clone()),
            key: Some(format!("{key_prefix}-{connection}-{sequence}")),
            authorization: None,
            body,
        }
    }
}

pub(crate) struct Person {
    pub(crate) phone: String,
    pub(crate) token: String,
}

pub(crate) async fn set_up_people(
    address: &str,
    users: u64,
    run_salt: u32,
) -> anyhow::Result<Vec<Person>> {
    let mut people = Vec::with_capacity(users as usize);
    let mut indexes = (0..users).collect::<Vec<_>>().into_iter();
    loop {
        let batch: Vec<u64> = indexes.by_ref().take(SETUP_PARALLEL).collect();
        if batch.is_empty() {
            break;
        }
        let tasks = batch.into_iter().map(|index| {
            let address = address.to_owned();
            tokio::spawn(async move { set_up_person(&address, index, run_salt).await })
        });
        for task in tasks.collect::<Vec<_>>() {
            people.push(task.await??);
        }
    }
    Ok(people)
}

/// Sign-up, log-in, PIN, real name, card, top-up: what a new user does, through the API.
async fn set_up_person(address: &str, index: u64, run_salt: u32) -> anyhow::Result<Person> {
    let mut http = Connection::open(address).await?;
    let phone = format!("15{run_salt:04}{index:05}");
    let credentials = format!(r#"{{"phone":"{phone}","password":"{PASSWORD}"}}"#);
    http.expect(201, Request::post("/api/v1/users", &credentials))
        .await?;
    let session = http
        .expect(201, Request::post("/api/v1/sessions", &credentials))
        .await?;
    let token = session["token"]
        .as_str()
        .context("a session has a token")?
        .to_owned();
    let authed = |mut request: Request| {
        request.token = Some(token.clone());
        request
    };
    let pin = format!(r#"{{"password":"{PASSWORD}","pin":"{PIN}"}}"#);
    let mut request = authed(Request::post("/api/v1/pin", &pin));
    request.method = "PUT";
    http.expect(204, request).await?;
    // Born 1980-01-01 plus `index` days: a distinct, valid ID number per person.
    let id_number = make::id_number(&format!("110105{}{:03}", birth_date(index), index % 1000));
    let verification = format!(r#"{{"name":"{NAME}","id_number":"{id_number}"}}"#);
    http.expect(
        200,
        authed(Request::post("/api/v1/verification", &verification)),
    )
    .await?;
    let card_number = make::card_number(&format!("622202{run_salt:04}{index:05}"));
    let binding = format!(
        r#"{{"card_number":"{card_number}","name":"{NAME}","id_number":"{id_number}","phone":"{phone}"}}"#
    );
    let card = http
        .expect(201, authed(Request::post("/api/v1/cards", &binding)))
        .await?;
    let card_token = card["token"].as_str().context("a card has a token")?;
    let top_up =
        format!(r#"{{"card_token":"{card_token}","amount_minor":{TOP_UP_MINOR},"pin":"{PIN}"}}"#);
    let mut request = authed(Request::post("/api/v1/top-ups", &top_up));
    request.key = Some(format!("setup-{run_salt}-{index}"));
    http.expect(201, request).await?;
    Ok(Person { phone, token })
}

/// `YYYYMMDD`, `days` after 1980-01-01.
fn birth_date(days: u64) -> String {
    let (year, month, day) =
        zhifu_domain::time::civil_from_days(3_652 + i64::try_from(days).unwrap_or(0));
    format!("{year:04}{month:02}{day:02}")
}

pub(crate) struct Request {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) token: Option<String>,
    pub(crate) key: Option<String>,
    /// A whole `Authorization` value (a merchant's signature), instead of a bearer token.
    pub(crate) authorization: Option<String>,
    pub(crate) body: String,
}

impl Request {
    pub(crate) fn get(path: &'static str) -> Request {
        Request {
            method: "GET",
            path,
            token: None,
            key: None,
            authorization: None,
            body: String::new(),
        }
    }

    pub(crate) fn post(path: &'static str, body: &str) -> Request {
        Request {
            method: "POST",
            path,
            token: None,
            key: None,
            authorization: None,
            body: body.to_owned(),
        }
    }
}

pub(crate) struct PhaseResult {
    pub(crate) rate_per_s: f64,
    pub(crate) failures: u64,
    pub(crate) latencies_us: Vec<u32>,
}

impl PhaseResult {
    pub(crate) fn percentile_ms(&self, quantile: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((self.latencies_us.len() - 1) as f64 * quantile).round() as usize;
        f64::from(self.latencies_us[rank]) / 1e3
    }
}

/// Runs `connections` loops for `length`, each sending `make(connection, connections,
/// sequence)`; paced at `rate_per_s` in all when given, else as fast as answers come.
pub(crate) async fn run_phase<F>(
    address: &str,
    connections: u64,
    length: Duration,
    rate_per_s: Option<f64>,
    make: F,
) -> anyhow::Result<PhaseResult>
where
    F: Fn(u64, u64, u64) -> Request + Clone + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for connection in 0..connections {
        let mut http = Connection::open(address).await?;
        let (make, stop, done) = (make.clone(), stop.clone(), done.clone());
        let interval = rate_per_s.map(|rate| Duration::from_secs_f64(connections as f64 / rate));
        tasks.push(tokio::spawn(async move {
            let mut latencies_us = Vec::new();
            let mut failures = 0u64;
            // Spread the paced connections over one interval.
            let mut next = interval
                .map(|i| Instant::now() + i.mul_f64(connection as f64 / connections as f64));
            let mut sequence = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let scheduled = match (next, interval) {
                    (Some(at), Some(interval)) => {
                        tokio::time::sleep_until(at.into()).await;
                        next = Some(at + interval);
                        at
                    }
                    _ => Instant::now(),
                };
                let request = make(connection, connections, sequence);
                sequence += 1;
                let (status, _) = http.send(&request).await?;
                latencies_us
                    .push(u32::try_from(scheduled.elapsed().as_micros()).unwrap_or(u32::MAX));
                if !(200..300).contains(&status) {
                    failures += 1;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok((latencies_us, failures))
        }));
    }
    tokio::time::sleep(length).await;
    let counted = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut result = PhaseResult {
        rate_per_s: counted as f64 / elapsed.as_secs_f64(),
        failures: 0,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let (latencies_us, failures) = task.await??;
        result.latencies_us.extend(latencies_us);
        result.failures += failures;
    }
    result.latencies_us.sort_unstable();
    Ok(result)
}

/// One keep-alive HTTP/1.1 connection: just enough client for JSON with a Content-Length.
pub(crate) struct Connection {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    pub(crate) async fn open(address: &str) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connect to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: BufReader::new(stream),
            host: address.to_owned(),
        })
    }

    /// Sends `request` and expects `status`, returning the JSON body.
    pub(crate) async fn expect(
        &mut self,
        status: u16,
        request: Request,
    ) -> anyhow::Result<serde_json::Value> {
        let (path, method) = (request.path, request.method);
        let (got, body) = self.send(&request).await?;
        let text = String::from_utf8_lossy(&body);
        ensure!(got == status, "{method} {path}: {got} {text}");
        if body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::from_slice(&body)?)
    }

    pub(crate) async fn send(&mut self, request: &Request) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            request.method,
            request.path,
            self.host,
            request.body.len()
        );
        if let Some(authorization) = &request.authorization {
            head.push_str(&format!("Authorization: {authorization}\r\n"));
        } else if let Some(token) = &request.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(key) = &request.key {
            head.push_str(&format!("Idempotency-Key: {key}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(&request.body);
        self.stream.get_mut().write_all(head.as_bytes()).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("not an HTTP status line: {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("the server closed the connection");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    bail!("chunked responses are not expected here");
                }
            }
        }
        ensure!(length <= RESPONSE_BYTES_MAX, "a response of {length} bytes");
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

pub(crate) fn address_of(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .context("--url takes http://host:port/")?;
    Ok(rest.trim_end_matches('/').to_owned())
}

/// The server under measurement: a child `zhifu serve` on a temporary store, or a given one.
pub(crate) enum Server {
    Started {
        child: Child,
        address: String,
        _store: TempStore,
        _data_dir: tempfile::TempDir,
    },
    Given(String),
}

impl Server {
    pub(crate) fn start(
        store: &str,
        database_url: Option<&str>,
        extra_args: &[&str],
    ) -> anyhow::Result<Server> {
        let temp_store = TempStore::create(store, database_url)?;
        let data_dir = tempfile::Builder::new()
            .prefix("zhifu-bench-api-")
            .tempdir()?;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(extra_args)
            .arg("--data-dir");
        match temp_store.config() {
            zhifu_store::StoreConfig::Sqlite { path } => {
                command.arg(path.parent().context("a directory")?);
            }
            zhifu_store::StoreConfig::Postgres { url, schema } => {
                command.arg(data_dir.path()).arg("--database-url").arg(url);
                if let Some(schema) = schema {
                    command.arg("--database-schema").arg(schema);
                }
            }
        }
        // The server logs a line per request; measuring includes writing it, not keeping it.
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let address = loop {
            let line = lines
                .next()
                .context("the server stopped before it listened")??;
            if let Some(rest) = line.strip_prefix("zhifu serve: listening on ") {
                break address_of(rest)?;
            }
        };
        // Keep draining what it prints so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Server::Started {
            child,
            address,
            _store: temp_store,
            _data_dir: data_dir,
        })
    }

    pub(crate) fn address(&self) -> &str {
        match self {
            Server::Started { address, .. } | Server::Given(address) => address,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Server::Started { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
