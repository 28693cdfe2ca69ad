//! `zhifu serve` starts on an empty data directory, answers, and stops cleanly.

use crate::support::Server;

#[test]
fn serves_health_metrics_and_a_page_then_stops_on_sigterm() {
    let server = Server::start();
    let health = server.get("/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert!(health.header("request-id").is_some_and(|id| !id.is_empty()));

    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("zhifu_ledger_batches_total "),
        "{}",
        metrics.body
    );

    let page = server.get("/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>zhifu"));

    let missing = server.get("/no/such/thing");
    assert_eq!(missing.status, 404);
    let error: serde_json::Value = serde_json::from_str(&missing.body).expect("a JSON error");
    assert_eq!(error["code"], "NOT_FOUND");

    let (status, printed) = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    assert!(printed.contains("zhifu serve: stopped"), "{printed:?}");
}

#[test]
fn malformed_requests_get_a_clear_error() {
    let server = Server::start();
    let response = server.request("GARBAGE\r\n\r\n");
    assert_eq!(response.status, 400);
    // The server is still there for the next caller.
    assert_eq!(server.get("/healthz").status, 200);
}
