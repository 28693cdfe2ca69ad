//! `zhifu serve`: the HTTP server on the ledger engine.
//!
//! This is the edge: it alone speaks HTTP, JSON and HTML. Every error leaves through
//! [`ApiError`], which maps a stable code to a status in one place (SPEC §10), and every response
//! carries a `Request-Id`.

use crate::api::error::ApiError;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use zhifu_domain::acquiring::console::ConsoleTokens;
use zhifu_domain::acquiring::orders::{OrderPolicy, Orders};
use zhifu_domain::acquiring::platform_keys::PlatformKeys;
use zhifu_domain::acquiring::recovery;
use zhifu_domain::acquiring::signature::Verifier;
use zhifu_domain::bank::{BankMode, SimulatedBank};
use zhifu_domain::wallet::pay_codes::{PayCodePolicy, PayCodes};
use zhifu_domain::wallet::people::People;
use zhifu_domain::wallet::receive_codes::{ReceiveCodePolicy, ReceiveCodes};
use zhifu_domain::wallet::reconcile;
use zhifu_ledger::AccountCode;
use zhifu_store::{Engine, EngineConfig, StoreConfig, SystemClock};

#[derive(clap::Args)]
pub struct Args {
    /// Where the embedded SQLite files live (created if missing).
    #[arg(long, default_value = "zhifu-data")]
    data_dir: PathBuf,
    /// Use this PostgreSQL database instead of SQLite.
    #[arg(long, env = "ZHIFU_DATABASE_URL")]
    database_url: Option<String>,
    /// With --database-url: the schema to work in (created if missing), so that several
    /// institutions or test servers can share one database.
    #[arg(long, requires = "database_url")]
    database_schema: Option<String>,
    /// Address to listen on; port 0 picks a free one (the chosen URL is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How the built-in simulated bank behaves: normal, fail, timeout_after_work or
    /// timeout_before_work (to exercise every failure path).
    #[arg(long, default_value = "normal", value_parser = parse_bank_mode)]
    bank_mode: BankMode,
    /// Seed a small world to click through: demo people with balances, a card, a PIN.
    #[arg(long)]
    demo: bool,
    /// The token for operator calls (`/api/v1/operator/…`); without it, one is derived from
    /// the server's secret and written to `<data-dir>/operator.token`.
    #[arg(long, env = "ZHIFU_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
    /// A withdrawal whose bank outcome is still unsettled after this long is finished by the
    /// reconciler (the same request again: the bank pays at most once), which looks this often.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    reconcile_after_ms: u64,
    /// The hour (0–23, China Standard Time) from which the day's settlement runs: merchants
    /// are paid what was settled before that day's 00:00 (T+1).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=23))]
    settlement_hour: u8,
    /// PEM file of certificate authorities trusted for merchants' https `notify_url`s besides
    /// the system's (an operator's private CA, or a test's).
    #[arg(long)]
    notify_ca_file: Option<PathBuf>,
}

fn parse_bank_mode(text: &str) -> Result<BankMode, String> {
    BankMode::parse(text).ok_or_else(|| {
        "expected normal, fail, timeout_after_work or timeout_before_work".to_owned()
    })
}

/// How long a log-in lasts.
const SESSION_TTL_MS: i64 = 12 * 3_600_000;

/// What every handler may use: one allocation shared by every request, so that handing it to
/// a handler or a blocking task is one reference count, not a copy of every key and cache
/// handle (which was about 2 % of the server's CPU per request).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    engine: Arc<Engine>,
    store_name: &'static str,
    /// Synchronous and short (one Argon2id hash at most): called on the blocking pool
    /// ([`AppState::with_people`]), by reference from the shared state.
    people: People,
    /// A read connection to the ledger (balances, statements), also on the blocking pool.
    reader: Arc<Mutex<Box<dyn zhifu_store::Store>>>,
    bank: Arc<SimulatedBank>,
    operator_token: Arc<str>,
    pay_codes: PayCodes,
    receive_codes: ReceiveCodes,
    /// Verifies the merchant API's signed requests.
    verifier: Verifier,
    /// The platform's keys, which sign the merchant API's responses.
    platform_keys: Arc<PlatformKeys>,
    orders: Orders,
    console_tokens: ConsoleTokens,
    /// Wakes the notification deliverer when an event was written.
    notifier: Arc<tokio::sync::Notify>,
}

impl AppState {
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub fn platform_keys(&self) -> Arc<PlatformKeys> {
        self.platform_keys.clone()
    }

    pub fn pay_codes(&self) -> &PayCodes {
        &self.pay_codes
    }

    pub fn console_tokens(&self) -> &ConsoleTokens {
        &self.console_tokens
    }

    pub fn orders(&self) -> &Orders {
        &self.orders
    }

    /// Tells the deliverer that an event may be due now (it also looks every second).
    pub fn wake_notifier(&self) {
        self.notifier.notify_one();
    }

    pub fn notifier(&self) -> Arc<tokio::sync::Notify> {
        self.notifier.clone()
    }

    pub fn receive_codes(&self) -> &ReceiveCodes {
        &self.receive_codes
    }

    pub fn operator_token(&self) -> &str {
        &self.operator_token
    }

    pub fn now_ms(&self) -> i64 {
        zhifu_store::Clock::now_ns(&SystemClock) / 1_000_000
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn people(&self) -> &People {
        &self.people
    }

    pub fn engine_shared(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    pub fn bank(&self) -> Arc<SimulatedBank> {
        self.bank.clone()
    }

    pub fn withdrawal_policy(&self) -> zhifu_domain::wallet::fees::WithdrawalPolicy {
        zhifu_domain::wallet::fees::WithdrawalPolicy::default()
    }

    /// Runs `f` on the blocking pool with the ledger's read connection.
    pub async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn zhifu_store::Store) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let mut reader = reader
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            f(reader.as_mut())
        })
        .await
        .map_err(|_| ApiError::Internal)
    }

    /// The ledger's read connection, from a thread that may block (the reconciler).
    pub fn reader_blocking(&self) -> std::sync::MutexGuard<'_, Box<dyn zhifu_store::Store>> {
        self.reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The people service, from a thread that may block (start-up, the demo seed).
    pub fn people_blocking(&self) -> People {
        self.people.clone()
    }

    /// Runs `f` on the blocking pool with the people service.
    pub async fn with_people<T: Send + 'static>(
        &self,
        f: impl FnOnce(&People) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || f(&state.people))
            .await
            .map_err(|_| ApiError::Internal)
    }
}

/// Randomness from the operating system's generator (ChaCha, reseeded), for tokens.
pub struct OsRandom(rand::rngs::ThreadRng);

impl OsRandom {
    pub fn new() -> OsRandom {
        OsRandom(rand::rng())
    }
}

impl zhifu_domain::Random for OsRandom {
    fn below(&mut self, bound: u64) -> u64 {
        rand::RngExt::random_range(&mut self.0, 0..bound)
    }

    fn fill(&mut self, bytes: &mut [u8]) {
        rand::Rng::fill_bytes(&mut self.0, bytes);
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // First: a bad `--notify-ca-file` stops the start before any store is opened.
    let notify_client = crate::api::notify::client(args.notify_ca_file.as_deref())?;
    let config = match args.database_url {
        Some(url) => StoreConfig::Postgres {
            url,
            schema: args.database_schema,
        },
        None => StoreConfig::Sqlite {
            path: args.data_dir.join("ledger.sqlite"),
        },
    };
    let secret = server_secret(&args.data_dir)?;
    // The wallet first: on SQLite its opening moves an older version's transfer rows into the
    // ledger's file, which must not wait behind (nor hold up) the engine's writer.
    let people = People::open(&config, &secret, SESSION_TTL_MS)?;
    let engine = Arc::new(Engine::start(
        &config,
        Arc::new(SystemClock),
        EngineConfig::default(),
    )?);
    let opened = engine.open_accounts(zhifu_domain::wallet::chart::institution_accounts())?;
    anyhow::ensure!(
        opened
            .iter()
            .all(|c| matches!(c, AccountCode::Ok | AccountCode::Exists)),
        "the institution's ledger accounts exist with other fields: {opened:?}"
    );
    let state = AppState(Arc::new(Shared {
        engine: engine.clone(),
        store_name: config.name(),
        people,
        reader: Arc::new(Mutex::new(config.open()?)),
        bank: Arc::new(SimulatedBank::new(&zhifu_domain::derive_key(
            &secret,
            "simulated bank",
        ))),
        operator_token: operator_token(args.operator_token, &args.data_dir, &secret)?.into(),
        pay_codes: PayCodes::new(&secret, PayCodePolicy::default()),
        receive_codes: ReceiveCodes::new(&secret, ReceiveCodePolicy::default()),
        verifier: Verifier::new(),
        platform_keys: Arc::new(crate::api::merchant_signing::load_platform_keys(
            &args.data_dir,
        )?),
        orders: Orders::new(&secret, OrderPolicy::default()),
        console_tokens: ConsoleTokens::new(&secret),
        notifier: Arc::new(tokio::sync::Notify::new()),
    }));
    state.bank.set_mode(args.bank_mode);
    // Before the first request: an order that a crash left unpaid over a posted chain must be
    // recorded before anyone can pay it again.
    // The reconciler's own ledger connection: its passes read the ledger for many orders,
    // and must not hold up the requests' reader meanwhile.
    let mut reconciler_ledger = config.open()?;
    recover_orders_at_start(&state, reconciler_ledger.as_mut())?;
    if args.demo {
        crate::demo::seed(&state)?;
    }
    let reconciler = Reconciler::start(
        &state,
        reconciler_ledger,
        args.reconcile_after_ms,
        args.settlement_hour,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        // Tests and scripts read this line to find the port.
        println!(
            "zhifu serve: listening on http://{}/",
            listener.local_addr()?
        );
        if args.demo {
            crate::demo::print_console_link(&state, &format!("http://{}/", listener.local_addr()?));
        }
        let deliverer = tokio::spawn(crate::api::notify::deliver(state.clone(), notify_client));
        axum::serve(listener, app(state.clone()))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        deliverer.abort();
        anyhow::Ok(())
    })?;
    // The stores' connections are dropped here, outside the runtime: the PostgreSQL client
    // runs a runtime of its own, which must not be dropped from async code. Tasks that still
    // hold the state (connections closing, the aborted deliverer) go with the runtime first,
    // so that the last holder is this thread; dropped the other way round, a task dropped
    // during the runtime's shutdown could hold the last one, and the process would panic.
    reconciler.stop();
    drop(runtime);
    drop(state);
    // The server has stopped taking requests; the engine commits what is queued, then stops.
    drop(engine);
    // Whoever started us may have stopped reading; that is no reason to fail on the way out.
    let _ = writeln!(std::io::stdout(), "zhifu serve: stopped");
    Ok(())
}

fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(crate::web::home))
        .route("/status", get(home))
        .route(
            "/login",
            get(crate::web::login_page).post(crate::web::log_in),
        )
        .route("/logout", post(crate::web::log_out))
        .route("/wallet", get(crate::web::wallet_page))
        .route("/wallet/statement.csv", get(crate::web::statement_export))
        .route(
            "/signup",
            get(crate::web::signup_page).post(crate::web::sign_up),
        )
        .route(
            "/transfer",
            get(crate::web::transfer_page).post(crate::web::transfer),
        )
        .route(
            "/transfers/{id}/{action}",
            post(crate::web::resolve_transfer),
        )
        .route(
            "/verify",
            get(crate::web::verify_page).post(crate::web::verify),
        )
        .route(
            "/topup",
            get(crate::web::topup_page).post(crate::web::top_up),
        )
        .route("/cards", post(crate::web::bind_card))
        .route("/pin", get(crate::web::pin_page).post(crate::web::set_pin))
        .route(
            "/withdraw",
            get(crate::web::withdraw_page).post(crate::web::withdraw),
        )
        .route(
            "/red-packets",
            get(crate::web::red_packet_page).post(crate::web::send_red_packet),
        )
        .route("/r/{id}", get(crate::web::grab_page).post(crate::web::grab))
        .route("/receive", get(crate::web::codes::receive_page))
        .route("/pay/{reference}", get(crate::web::codes::pay_order_page))
        .route("/merchant-payments", get(crate::web::codes::awaiting_page))
        .route(
            "/merchant-payments/{id}/confirm",
            post(crate::web::codes::confirm),
        )
        .route("/console", get(crate::web::console::dashboard))
        .route("/console/login", get(crate::web::console::log_in))
        .route("/console/logout", post(crate::web::console::log_out))
        .route(
            "/console/cashier",
            get(crate::web::console::cashier).post(crate::web::console::charge),
        )
        .route("/console/orders", get(crate::web::console::orders))
        .route("/console/orders/{id}", get(crate::web::console::order))
        .route(
            "/console/orders/{id}/refunds",
            post(crate::web::console::refund),
        )
        .route("/console/bills", get(crate::web::console::bills))
        .route(
            "/console/bills/trade.csv",
            get(crate::web::console::trade_csv),
        )
        .route(
            "/console/bills/fund-flow.csv",
            get(crate::web::console::fund_flow_csv),
        )
        .route("/console/developer", get(crate::web::console::developer))
        .route(
            "/console/notifications/{id}/resend",
            post(crate::web::console::resend),
        )
        .route("/receipts/{id}", get(crate::web::receipt_page))
        .route("/pay-code", get(crate::web::codes::pay_code_page))
        .route(
            "/scan",
            get(crate::web::codes::scan_page)
                .post(crate::web::codes::read_code)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::web::codes::PHOTO_BYTES_MAX + 64 * 1024,
                )),
        )
        .route("/scan/pay", post(crate::web::codes::pay_code))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/users", post(crate::api::people::sign_up))
        .route("/api/v1/sessions", post(crate::api::people::log_in))
        .route(
            "/api/v1/sessions/current",
            delete(crate::api::people::log_out),
        )
        .route("/api/v1/me", get(crate::api::people::me))
        .route("/api/v1/pin", put(crate::api::people::set_pin))
        .route("/api/v1/pin/check", post(crate::api::people::check_pin))
        .route("/api/v1/verification", post(crate::api::funding::verify))
        .route(
            "/api/v1/cards",
            post(crate::api::funding::bind_card).get(crate::api::funding::cards),
        )
        .route(
            "/api/v1/cards/{token}",
            delete(crate::api::funding::unbind_card),
        )
        .route("/api/v1/top-ups", post(crate::api::funding::top_up))
        .route("/api/v1/withdrawals", post(crate::api::funding::withdraw))
        .route(
            "/api/v1/transfers",
            post(crate::api::transfers::send).get(crate::api::transfers::list),
        )
        .route("/api/v1/red-packets", post(crate::api::red_packets::send))
        .route(
            "/api/v1/red-packets/{id}/grab",
            post(crate::api::red_packets::grab),
        )
        .route(
            "/api/v1/transfers/{id}/cancel",
            post(crate::api::transfers::cancel),
        )
        .route(
            "/api/v1/transfers/{id}/accept",
            post(crate::api::transfers::accept),
        )
        .route(
            "/api/v1/transfers/{id}/return",
            post(crate::api::transfers::give_back),
        )
        .route(
            "/api/v1/withdrawals/quote",
            get(crate::api::funding::withdrawal_quote),
        )
        .route(
            "/api/v1/operator/bank",
            get(crate::api::operator::bank).put(crate::api::operator::set_bank),
        )
        .route("/api/v1/receive-code", get(crate::api::codes::receive_code))
        .route(
            "/api/v1/receive-code/payments",
            post(crate::api::codes::pay_receive_code),
        )
        .route("/api/v1/pay-codes", post(crate::api::codes::issue_pay_code))
        .route("/api/v1/pay-devices", post(crate::api::codes::enrol_device))
        .route(
            "/api/v1/operator/pay-codes/redeem",
            post(crate::api::codes::redeem_pay_code),
        )
        .route(
            "/api/v1/operator/merchants",
            post(crate::api::merchants::create),
        )
        .route(
            "/api/v1/operator/merchants/{id}/keys",
            post(crate::api::merchants::register_key),
        )
        .route(
            "/api/v1/operator/merchants/{id}/keys/{serial}",
            delete(crate::api::merchants::revoke_key),
        )
        .route(
            "/api/v1/merchant-payments",
            post(crate::api::orders::pay_merchant),
        )
        .route(
            "/api/v1/merchant-payments/awaiting",
            get(crate::api::orders::awaiting),
        )
        .route(
            "/api/v1/merchant-payments/{id}/confirm",
            post(crate::api::orders::confirm),
        )
        .route(
            "/api/v1/operator/merchants/{id}/settlement-card",
            put(crate::api::settlement::set_card),
        )
        .route(
            "/api/v1/operator/merchants/{id}/console-link",
            post(crate::api::merchants::operator_console_link),
        )
        .route(
            "/api/v1/operator/settlements",
            post(crate::api::settlement::run),
        )
        .route("/api/v1/wallet", get(crate::api::wallet::balance))
        .route("/api/v1/receipts/{id}", get(crate::api::wallet::receipt))
        .route(
            "/api/v1/wallet/statement",
            get(crate::api::wallet::statement),
        )
        .route(
            "/api/v1/wallet/statement.csv",
            get(crate::api::wallet::statement_export),
        )
        .merge(crate::openapi::explorer())
        .merge(merchant_api(state.clone()))
        .fallback(not_found)
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// The signed merchant API (`docs/merchant-api.md`): every request verified except the one for
/// the platform's public keys (a client needs them before it can verify anything), every
/// response signed.
/// Paths are whole, not nested, so that the layers see the path and query as sent.
fn merchant_api(state: AppState) -> Router<AppState> {
    use crate::api::{bills, merchant_signing, merchants, orders, settlement};
    let signed = Router::new()
        .route("/merchant/v1/merchants/me", get(merchants::me))
        .route("/merchant/v1/keys", post(merchants::add_own_key))
        .route(
            "/merchant/v1/sub-merchants",
            post(merchants::onboard_sub_merchant),
        )
        .route("/merchant/v1/orders/native", post(orders::create_native))
        .route(
            "/merchant/v1/orders/in-wallet",
            post(orders::create_in_wallet),
        )
        .route("/merchant/v1/orders/pay-code", post(orders::pay_code))
        .route(
            "/merchant/v1/orders/out-trade-no/{out_trade_no}",
            get(orders::by_out_trade_no),
        )
        .route(
            "/merchant/v1/orders/out-trade-no/{out_trade_no}/close",
            post(orders::close),
        )
        .route(
            "/merchant/v1/orders/out-trade-no/{out_trade_no}/reverse",
            post(orders::reverse),
        )
        .route(
            "/merchant/v1/orders/out-trade-no/{out_trade_no}/qr.png",
            get(orders::qr_png),
        )
        .route(
            "/merchant/v1/orders/id/{transaction_id}",
            get(orders::by_transaction_id),
        )
        .route("/merchant/v1/refunds", post(orders::refund))
        .route(
            "/merchant/v1/refunds/{out_refund_no}",
            get(orders::refund_by_out_refund_no),
        )
        .route("/merchant/v1/static-code", get(orders::static_code))
        .route("/merchant/v1/balance", get(orders::balance))
        .route("/merchant/v1/settlements", get(settlement::of_merchant))
        .route("/merchant/v1/console-links", post(merchants::console_link))
        .route("/merchant/v1/notify-key", post(orders::rotate_notify_key))
        .route("/merchant/v1/notifications", get(orders::notification_log))
        .route(
            "/merchant/v1/notifications/{id}/resend",
            post(orders::resend_notification),
        )
        .route("/merchant/v1/bills/trade", get(bills::trade_bill))
        .route("/merchant/v1/bills/fund-flow", get(bills::fund_flow_bill))
        .route("/merchant/v1", any(merchants::not_found))
        .route("/merchant/v1/{*rest}", any(merchants::not_found))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            merchant_signing::verify_requests,
        ));
    Router::new()
        .route("/merchant/v1/platform-keys", get(merchants::platform_keys))
        .merge(signed)
        .layer(middleware::from_fn_with_state(
            state,
            merchant_signing::sign_responses,
        ))
}

/// The server's secret (32 random bytes in `<data-dir>/secret.key`, readable by its owner
/// only), made on first start. Keys for lookups and signatures derive from it.
fn server_secret(data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("secret.key");
    match std::fs::read(&path) {
        Ok(secret) if secret.len() >= 32 => return Ok(secret),
        Ok(_) => anyhow::bail!("{} is shorter than 32 bytes", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    }
    std::fs::create_dir_all(data_dir)?;
    let mut secret = vec![0u8; 32];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut secret);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(&path)?.write_all(&secret)?;
    Ok(secret)
}

/// A thread that finishes withdrawals nobody settled (`zhifu_domain::wallet::reconcile`).
struct Reconciler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Reconciler {
    fn start(
        state: &AppState,
        mut ledger: Box<dyn zhifu_store::Store>,
        after_ms: u64,
        settlement_hour: u8,
    ) -> Reconciler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stopping, state) = (stop.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            // Short naps, so that stopping never waits a whole period.
            let nap = std::time::Duration::from_millis(after_ms.min(100));
            let mut next_ms = state.now_ms() + after_ms as i64;
            // The last cut-off this process settled; settlements still waiting for the bank are
            // taken up by every run, so the run repeats until none is left.
            let mut settled_cutoff_ms = i64::MIN;
            // Orders expiring before this were looked at by start-up or an earlier pass.
            let mut orders_checked_ms = state.now_ms();
            while !stopping.load(Ordering::Relaxed) {
                std::thread::sleep(nap);
                let now_ms = state.now_ms();
                if now_ms < next_ms {
                    continue;
                }
                next_ms = now_ms + after_ms as i64;
                let people = state.people_blocking();
                let bank = state.bank();
                let started_ms_max = now_ms - after_ms as i64;
                match reconcile::pass(&people, bank.as_ref(), state.engine(), started_ms_max) {
                    Ok(pass) if pass == reconcile::Pass::default() => {}
                    Ok(pass) => eprintln!(
                        "zhifu serve: reconciled withdrawals: {} paid, {} declined, {} still open",
                        pass.paid, pass.declined, pass.still_open
                    ),
                    Err(e) => {
                        eprintln!("zhifu serve: reconciling withdrawals failed: {}", e.code())
                    }
                }
                let expired = orders_checked_ms..now_ms;
                let limit = recovery::PASS_ORDERS_MAX;
                match recover_orders(&state, ledger.as_mut(), expired, limit, started_ms_max) {
                    Ok(pass) if pass.orders_done() => orders_checked_ms = now_ms,
                    // Stopped at its limit: the next pass resumes there.
                    Ok(pass) => {
                        if let Some(resume_ms) = pass.orders_resume_ms {
                            orders_checked_ms = resume_ms;
                        }
                    }
                    Err(e) => eprintln!("zhifu serve: recovering orders failed: {}", e.code()),
                }
                settle_if_due(&state, &mut settled_cutoff_ms, settlement_hour, now_ms);
            }
        });
        Reconciler { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Before the first request: every unpaid order that has not expired (any of them could be
/// paid again) and those expired within the look-back are checked against the ledger, and
/// refunds cut short are finished (`zhifu_domain::acquiring::recovery`).
fn recover_orders_at_start(
    state: &AppState,
    ledger: &mut dyn zhifu_store::Store,
) -> anyhow::Result<()> {
    let now_ms = state.now_ms();
    let unexpired = now_ms..i64::MAX;
    let pass = recover_orders(
        state,
        ledger,
        unexpired,
        recovery::STARTUP_UNEXPIRED_MAX,
        now_ms,
    )
    .map_err(|e| anyhow::anyhow!("recovering orders failed: {}", e.code()))?;
    anyhow::ensure!(
        pass.orders_done(),
        "{} unpaid orders could not be checked against the ledger; not serving until they are",
        pass.orders_failed
    );
    let expired = now_ms - recovery::STARTUP_LOOKBACK_MS..now_ms;
    recover_orders(state, ledger, expired, recovery::PASS_ORDERS_MAX, i64::MIN)
        .map_err(|e| anyhow::anyhow!("recovering orders failed: {}", e.code()))?;
    Ok(())
}

/// Records payments the ledger holds for unpaid orders expiring in `expiring`, and finishes
/// refunds `PROCESSING` since `refunds_created_ms_max`.
fn recover_orders(
    state: &AppState,
    ledger: &mut dyn zhifu_store::Store,
    expiring: std::ops::Range<i64>,
    orders_max: usize,
    refunds_created_ms_max: i64,
) -> Result<recovery::Pass, zhifu_domain::acquiring::orders::OrderError> {
    let people = state.people_blocking();
    let pass = recovery::pass(
        state.orders(),
        &people,
        state.engine(),
        ledger,
        expiring,
        orders_max,
        refunds_created_ms_max,
        state.now_ms(),
    )?;
    if pass.is_news() {
        eprintln!(
            "zhifu serve: recovered orders: {} payments recorded, {} further payment chains \
             without an order, {} orders not checked ({} to resume), {} refunds finished, {} \
             refused by the ledger, {} still processing",
            pass.payments_recorded,
            pass.payments_unmatched,
            pass.orders_failed,
            pass.orders_resume_ms.map_or(0, |_| 1),
            pass.refunds_finished,
            pass.refunds_forgotten,
            pass.refunds_still_processing
        );
    }
    Ok(pass)
}

/// Runs the day's settlement once it is `settlement_hour` in Shanghai, and again while some
/// settlement is still waiting for the bank.
fn settle_if_due(state: &AppState, settled_cutoff_ms: &mut i64, settlement_hour: u8, now_ms: i64) {
    let cutoff_ms = zhifu_domain::time::shanghai_day_start_ms(now_ms);
    if now_ms < cutoff_ms + i64::from(settlement_hour) * 3_600_000
        || *settled_cutoff_ms == cutoff_ms
    {
        return;
    }
    let people = state.people_blocking();
    let (engine, bank) = (state.engine_shared(), state.bank());
    let mut ledger = state.reader_blocking();
    let ledger = ledger.as_mut();
    match zhifu_domain::acquiring::settlement::run(
        &people,
        &engine,
        ledger,
        bank.as_ref(),
        cutoff_ms,
        now_ms,
    ) {
        Ok(report) => {
            let waiting = report
                .settlements
                .iter()
                .any(|row| row.state == zhifu_domain::acquiring::settlement::PROCESSING);
            if !waiting {
                *settled_cutoff_ms = cutoff_ms;
            }
            if !report.settlements.is_empty() {
                eprintln!(
                    "zhifu serve: settlement: {} merchants, {} still waiting for the bank",
                    report.settlements.len(),
                    usize::from(waiting)
                );
            }
        }
        Err(e) => eprintln!("zhifu serve: settlement failed: {}", e.code()),
    }
}

/// The operator's token: given, or derived from the secret and written where the operator
/// (the owner of the data directory) can read it. Never printed.
fn operator_token(
    given: Option<String>,
    data_dir: &std::path::Path,
    secret: &[u8],
) -> anyhow::Result<String> {
    if let Some(token) = given {
        anyhow::ensure!(
            token.len() >= 16 && token.bytes().all(|b| b.is_ascii_graphic()),
            "--operator-token must be at least 16 visible ASCII characters"
        );
        return Ok(token);
    }
    let token: String = zhifu_domain::derive_key(secret, "operator token")
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let path = data_dir.join("operator.token");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(&path)?.write_all(token.as_bytes())?;
    Ok(token)
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Numbers every response so that a support request can name the one that went wrong, and
/// logs one JSON line per request on stderr. The line names the route's template
/// (`/api/v1/cards/{token}`), never the path itself or its query, so no id, token or amount
/// reaches the log.
async fn request_id(request: Request, next: Next) -> Response {
    static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);
    let id = format!(
        "{:08x}-{:x}",
        std::process::id(),
        NEXT_REQUEST.fetch_add(1, Ordering::Relaxed)
    );
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(unmatched)", |path| path.as_str())
        .to_owned();
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("request-id", value);
    }
    let line = serde_json::json!({
        "at_ms": zhifu_store::Clock::now_ns(&SystemClock) / 1_000_000,
        "request_id": id,
        "method": method.as_str(),
        "route": route,
        "status": response.status().as_u16(),
        "ms": (started.elapsed().as_secs_f64() * 1e3 * 1e3).round() / 1e3,
    });
    // One write per line: stderr is unbuffered, and writing the value piece by piece made a
    // system call per token.
    let mut text = line.to_string();
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
    response
}

async fn home(State(state): State<AppState>) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>zhifu</title></head><body><h1>zhifu 支付</h1>\
         <p>The ledger is running on {}. The web wallet is at <a href=\"/\">/</a>; the wallet API answers under <code>/api/v1</code>.</p>\
         <p><a href=\"/swagger-ui/\">API explorer</a> · <a href=\"/openapi.json\">OpenAPI document</a> · \
         <a href=\"/healthz\">health</a> · <a href=\"/metrics\">metrics</a></p></body></html>",
        state.store_name
    ))
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Prometheus text format, written by hand: a handful of counters needs no exporter.
async fn metrics(State(state): State<AppState>) -> Response {
    let stats = state.engine.stats();
    let mut body = String::new();
    let counters = [
        (
            "zhifu_ledger_batches_total",
            "Batches committed by the ledger writer.",
            &stats.batches,
        ),
        (
            "zhifu_ledger_transfers_total",
            "Transfers committed, expiries included.",
            &stats.transfers,
        ),
        (
            "zhifu_ledger_commit_failures_total",
            "Batch commits that failed.",
            &stats.commit_failures,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(body, "# HELP {name} {help}\n# TYPE {name} counter");
        let _ = writeln!(body, "{name} {}", value.load(Ordering::Relaxed));
    }
    let gauges = [
        (
            "zhifu_ledger_commit_seconds_max",
            "The slowest commit so far.",
            &stats.commit_us_max,
        ),
        (
            "zhifu_ledger_batch_seconds_max",
            "The slowest batch so far.",
            &stats.batch_us_max,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(body, "# HELP {name} {help}\n# TYPE {name} gauge");
        let seconds = value.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(body, "{name} {seconds}");
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}
