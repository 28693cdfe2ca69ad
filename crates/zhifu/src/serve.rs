//! `zhifu serve`: the HTTP server on the ledger engine.
//!
//! This is the edge: it alone speaks HTTP, JSON and HTML. Every error leaves through
//! [`ApiError`], which maps a stable code to a status in one place (SPEC §10), and every response
//! carries a `Request-Id`.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use zhifu_store::{Engine, EngineConfig, StoreConfig, SystemClock};

#[derive(clap::Args)]
pub struct Args {
    /// Where the embedded SQLite files live (created if missing).
    #[arg(long, default_value = "zhifu-data")]
    data_dir: PathBuf,
    /// Use this PostgreSQL database instead of SQLite.
    #[arg(long, env = "ZHIFU_DATABASE_URL")]
    database_url: Option<String>,
    /// Address to listen on; port 0 picks a free one (the chosen URL is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

/// What every handler may use.
#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    store_name: &'static str,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = match args.database_url {
        Some(url) => StoreConfig::Postgres { url, schema: None },
        None => StoreConfig::Sqlite {
            path: args.data_dir.join("ledger.sqlite"),
        },
    };
    let engine = Arc::new(Engine::start(
        &config,
        Arc::new(SystemClock),
        EngineConfig::default(),
    )?);
    let state = AppState {
        engine: engine.clone(),
        store_name: config.name(),
    };
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
        axum::serve(listener, app(state))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        anyhow::Ok(())
    })?;
    // The server has stopped taking requests; the engine commits what is queued, then stops.
    drop(engine);
    // Whoever started us may have stopped reading; that is no reason to fail on the way out.
    let _ = writeln!(std::io::stdout(), "zhifu serve: stopped");
    Ok(())
}

fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn(request_id))
        .with_state(state)
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

/// Numbers every response so that a support request can name the one that went wrong.
async fn request_id(request: Request, next: Next) -> Response {
    static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);
    let id = format!(
        "{:08x}-{:x}",
        std::process::id(),
        NEXT_REQUEST.fetch_add(1, Ordering::Relaxed)
    );
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

async fn home(State(state): State<AppState>) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>zhifu</title></head><body><h1>zhifu 支付</h1>\
         <p>The ledger is running on {}. The web wallet is being built.</p>\
         <p><a href=\"/healthz\">health</a> · <a href=\"/metrics\">metrics</a></p></body></html>",
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

/// Every error the API returns; the status for each code is decided here and nowhere else.
#[derive(Debug)]
enum ApiError {
    NotFound,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND", "no such resource"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let body = serde_json::json!({ "code": code, "message": message });
        (status, axum::Json(body)).into_response()
    }
}
