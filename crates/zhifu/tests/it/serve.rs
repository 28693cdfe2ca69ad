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

    let page = server.get("/status");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>zhifu"));
    let home = server.get("/");
    assert_eq!(
        (home.status, home.header("location")),
        (303, Some("/login"))
    );

    let missing = server.get("/no/such/thing");
    assert_eq!(missing.status, 404);
    let error: serde_json::Value = serde_json::from_str(&missing.body).expect("a JSON error");
    assert_eq!(error["code"], "NOT_FOUND");

    // One JSON line per request on stderr, naming the route's template, not the path.
    let log = server.log();
    let line = log
        .lines()
        .find(|line| line.contains("\"route\":\"/healthz\""))
        .expect("a log line for /healthz");
    let entry: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(
        (entry["method"].as_str(), entry["status"].as_u64()),
        (Some("GET"), Some(200))
    );
    assert!(
        entry["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert!(
        log.contains("\"route\":\"(unmatched)\""),
        "the 404 is logged without its path"
    );
    assert!(!log.contains("/no/such/thing"));

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

#[test]
fn the_demo_world_is_there_once_however_often_it_is_seeded() {
    let server = Server::start_with_args(&["--demo"]);
    let log_in = |server: &Server, phone: &str| {
        let body = format!(r#"{{"phone":"{phone}","password":"zhifu-demo"}}"#);
        let session = server.send("POST", "/api/v1/sessions", &body, None);
        assert_eq!(session.status, 201, "{}", session.body);
        session.json()["token"].as_str().unwrap().to_owned()
    };
    let balance = |server: &Server, token: &str| {
        server.send("GET", "/api/v1/wallet", "", Some(token)).json()["balance_minor"].as_i64()
    };
    let token = log_in(&server, "13800000001");
    assert_eq!(balance(&server, &token), Some(100_000));
    let server = server.restart_with_args(&["--demo"]);
    let token = log_in(&server, "13800000001");
    assert_eq!(
        balance(&server, &token),
        Some(100_000),
        "seeding again adds nothing"
    );
    log_in(&server, "13800000002");
    log_in(&server, "13800000003");
}

#[test]
fn publishes_its_openapi_document_and_every_api_route_is_in_it() {
    let server = Server::start();
    let served = server.get("/openapi.json");
    assert_eq!(served.status, 200);
    let served: serde_json::Value = serde_json::from_str(&served.body).expect("JSON");
    let kept: serde_json::Value =
        serde_json::from_str(include_str!("../../src/openapi.json")).expect("JSON");
    assert_eq!(served, kept);
    assert_eq!(kept["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));

    // The routes the server registers, read from its source: each `.route("/api/v1/…", m(…)`
    // with its methods must be a documented operation, and the document has nothing else.
    let source = include_str!("../../src/serve.rs");
    let mut registered = Vec::new();
    for (index, _) in source.match_indices(".route(") {
        let rest = &source[index..];
        let call = &rest[..rest.find("\n        .").unwrap_or(rest.len())];
        let Some(path) = call.split('"').nth(1).filter(|p| p.starts_with("/api/v1")) else {
            continue;
        };
        for method in ["get", "post", "put", "delete", "patch"] {
            if call.contains(&format!("{method}(")) {
                registered.push(format!("{method} {path}"));
            }
        }
    }
    let mut documented = Vec::new();
    for (path, item) in kept["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if path.starts_with("/api/v1") && method != "parameters" {
                documented.push(format!("{method} {path}"));
            }
        }
    }
    registered.sort();
    documented.sort();
    assert!(registered.len() > 20, "{registered:?}");
    assert_eq!(registered, documented);

    let explorer = server.get("/swagger-ui/");
    assert_eq!(explorer.status, 200);
    assert!(explorer.body.contains("swagger-ui"), "{}", explorer.body);
}

/// A `--notify-ca-file` that cannot be read, or holds no certificate, stops the start with a
/// message naming the file: a server that silently trusted no CA would fail every delivery.
#[test]
fn a_notify_ca_file_without_a_certificate_stops_the_start() {
    let data = tempfile::tempdir().unwrap();
    let empty = data.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let missing = data.path().join("missing.pem");
    for (file, says) in [(&empty, "no PEM certificate"), (&missing, "cannot read")] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_zhifu"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path().join("data"))
            .arg("--notify-ca-file")
            .arg(file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(
            stderr.contains(says) && stderr.contains(&*file.to_string_lossy()),
            "{stderr}"
        );
    }
}
