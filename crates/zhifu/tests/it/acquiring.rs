//! Merchant acquiring end to end, written as a merchant would write its integration: a client
//! that signs with its RSA key creates a native order, a wallet user pays it, the merchant's own
//! HTTP listener receives the notification, verifies the platform's signature and opens the
//! sealed resource, then the client queries the order, refunds twice and downloads the bill.
//! Then pay-code orders (paid at once, `USERPAYING` until the PIN, reversed), static codes, bad
//! input, and what a merchant must never see.

use crate::funding::{PIN, balance_minor, ready_to_pay, top_up};
use crate::merchant::{Merchant, PlatformKeys, key_body, onboard, operator, rsa_key};
use crate::support::{Response, Server};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64ct::{Base64, Encoding};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the payer's wallet was set up with, none of which a merchant may ever see.
const PAYER_SECRETS: [&str; 4] = [
    "13812345678",
    "11010519491231002X",
    "6222021234567890128",
    PIN,
];

/// A merchant's notification endpoint: answers each POST with the next scripted status (then
/// 200), and keeps what it received.
struct Listener {
    url: String,
    received: Arc<Mutex<Vec<Response>>>,
}

impl Listener {
    fn start(statuses: Vec<u16>) -> Listener {
        Listener::serve(statuses, None)
    }

    /// The endpoint over https, with a certificate for 127.0.0.1 from the test CA
    /// (`tests/it/tls`), which a server trusts only when started with `--notify-ca-file` naming `ca.pem`.
    fn start_tls(statuses: Vec<u16>) -> Listener {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        crate::support::install_tls_provider();
        let certificates = CertificateDer::pem_file_iter(tls_fixture("merchant.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(tls_fixture("merchant-key.pem")).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .unwrap();
        Listener::serve(statuses, Some(Arc::new(config)))
    }

    fn serve(statuses: Vec<u16>, tls: Option<Arc<rustls::ServerConfig>>) -> Listener {
        let socket = TcpListener::bind("127.0.0.1:0").unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}/zhifu/notify", socket.local_addr().unwrap());
        let received: Arc<Mutex<Vec<Response>>> = Arc::default();
        let kept = received.clone();
        std::thread::spawn(move || {
            let mut statuses = statuses.into_iter();
            for stream in socket.incoming() {
                let Ok(stream) = stream else { return };
                let status = statuses.next().unwrap_or(200);
                // A handshake the client breaks off (an untrusted certificate) is no delivery.
                let delivery = match &tls {
                    None => answer(stream, status),
                    Some(config) => {
                        let connection = rustls::ServerConnection::new(config.clone()).unwrap();
                        answer(rustls::StreamOwned::new(connection, stream), status)
                    }
                };
                if let Some(delivery) = delivery {
                    kept.lock().unwrap().push(delivery);
                }
            }
        });
        Listener { url, received }
    }

    /// Waits (up to `timeout`) until `count` deliveries arrived.
    fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Response> {
        let start = Instant::now();
        loop {
            let received = self.received.lock().unwrap();
            if received.len() >= count || start.elapsed() > timeout {
                return received
                    .iter()
                    .map(|r| Response {
                        status: r.status,
                        headers: r.headers.clone(),
                        body: r.body.clone(),
                    })
                    .collect();
            }
            drop(received);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Reads one POST from `stream` and answers it with `status`; None if the client went away
/// before its request was whole.
fn answer(stream: impl Read + Write, status: u16) -> Option<Response> {
    let mut reader = BufReader::new(stream);
    let mut headers = Vec::new();
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(0, |(_, value)| value.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let stream = reader.get_mut();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.flush();
    Some(Response {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    })
}

/// A file of the test CA's (`tests/it/tls/README.md`).
fn tls_fixture(name: &str) -> String {
    format!("{}/tests/it/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// An RSA merchant with this notify URL, and its notification key.
fn rsa_merchant(server: &Server, notify_url: &str, provider: Option<i64>) -> (Merchant, String) {
    let provider = provider.map_or(String::new(), |id| {
        format!(r#","service_provider_id":{id}"#)
    });
    let id = onboard(
        server,
        &format!(
            r#"{{"name":"Noodle bar","discount_rate_bps":60,"notify_url":"{notify_url}"{provider}}}"#
        ),
    );
    let key = rsa_key(0);
    let path = format!("/api/v1/operator/merchants/{id}/keys");
    let registered = operator(server, "POST", &path, &key_body("rsa-1", &key));
    assert_eq!(registered.status, 201, "{}", registered.body);
    let merchant = Merchant::new(id, "rsa-1", key);
    let notify_key = merchant.call(server, "POST", "/merchant/v1/notify-key", "");
    assert_eq!(notify_key.status, 200, "{}", notify_key.body);
    let notify_key = notify_key.json()["notify_key"].as_str().unwrap().to_owned();
    assert_eq!(notify_key.len(), 32);
    (merchant, notify_key)
}

/// Opens a notification's resource as the docs say: AES-256-GCM, the key's 32 ASCII bytes,
/// the nonce's 12, the associated data; ciphertext and tag in base64.
fn open_resource(notification: &serde_json::Value, notify_key: &str) -> serde_json::Value {
    let resource = &notification["resource"];
    assert_eq!(resource["algorithm"], "AEAD_AES_256_GCM");
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(notify_key.as_bytes()).unwrap();
    let nonce = resource["nonce"].as_str().unwrap().as_bytes();
    let sealed = Base64::decode_vec(resource["ciphertext"].as_str().unwrap()).unwrap();
    let plain = cipher
        .decrypt(
            &aes_gcm::aead::Nonce::<aes_gcm::Aes256Gcm>::try_from(nonce).unwrap(),
            Payload {
                msg: &sealed,
                aad: resource["associated_data"].as_str().unwrap().as_bytes(),
            },
        )
        .expect("the resource opens with the merchant's key");
    serde_json::from_slice(&plain).unwrap()
}

/// Today in China Standard Time, as bills are cut: `YYYY-MM-DD`.
fn shanghai_today() -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let days = (now_ms + 8 * 3_600_000).div_euclid(86_400_000);
    let (year, month, day) = zhifu_domain::time::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

fn assert_private(text: &str) {
    for secret in PAYER_SECRETS {
        assert!(
            !text.contains(secret),
            "a payer's secret in what a merchant sees: {text}"
        );
    }
}

#[test]
fn a_merchant_integrates_native_orders_notifications_refunds_and_bills() {
    // The merchant's endpoint is https, as real ones are, with a certificate from a CA that
    // the operator told the server to trust.
    let server = Server::start_with_args(&["--notify-ca-file", &tls_fixture("ca.pem")]);
    let platform = PlatformKeys::fetch(&server);
    let listener = Listener::start_tls(vec![]);
    let (shop, notify_key) = rsa_merchant(&server, &listener.url, None);
    let (payer, card) = ready_to_pay(&server);
    assert_eq!(
        top_up(&server, &payer, Some("in"), &card, 100_000, PIN).status,
        201
    );

    // The merchant creates a native order and gets its code.
    let body = r#"{"out_trade_no":"T20261201-0001","description":"Beef noodles","amount_minor":12345,"currency":"CNY"}"#;
    let created = shop.call(&server, "POST", "/merchant/v1/orders/native", body);
    assert_eq!(created.status, 201, "{}", created.body);
    platform.assert_signed(&created, "ZHIFU-RSA-SHA256");
    let order = created.json();
    assert_eq!(order["trade_state"], "NOTPAY");
    let code_url = order["code_url"].as_str().unwrap().to_owned();
    assert!(
        code_url.starts_with("000201") && code_url.contains("123.45"),
        "{code_url}"
    );
    // The same request again is the same order.
    let again = shop.call(&server, "POST", "/merchant/v1/orders/native", body);
    assert_eq!(again.json()["transaction_id"], order["transaction_id"]);

    // The wallet scans and pays it.
    let pay = format!(r#"{{"code":"{code_url}","pin":"{PIN}"}}"#);
    let paid = server.send_keyed(
        "POST",
        "/api/v1/merchant-payments",
        &payer,
        Some("pay-1"),
        &pay,
    );
    assert_eq!(paid.status, 201, "{}", paid.body);
    assert_eq!(paid.json()["trade_state"], "SUCCESS");
    assert_eq!(paid.json()["merchant_name"], "Noodle bar");
    let retried = server.send_keyed(
        "POST",
        "/api/v1/merchant-payments",
        &payer,
        Some("pay-1"),
        &pay,
    );
    assert_eq!(
        retried.json()["transaction_id"],
        paid.json()["transaction_id"]
    );
    assert_eq!(balance_minor(&server, &payer), 100_000 - 12_345);

    // The notification: signed by the platform, sealed for the merchant.
    let deliveries = listener.wait_for(1, Duration::from_secs(10));
    assert_eq!(deliveries.len(), 1, "one notification delivered");
    let notification = &deliveries[0];
    platform.assert_signed(notification, "ZHIFU-RSA-SHA256");
    assert_private(&notification.body);
    let event = notification.json();
    assert_eq!(event["event_type"], "TRANSACTION.SUCCESS");
    let resource = open_resource(&event, &notify_key);
    assert_eq!(resource["out_trade_no"], "T20261201-0001");
    assert_eq!(resource["trade_state"], "SUCCESS");
    assert_eq!(resource["amount_minor"], 12_345);
    let pseudonym = resource["payer"].as_str().unwrap().to_owned();
    assert!(
        pseudonym.starts_with('u') && pseudonym.len() == 25,
        "{pseudonym}"
    );

    // The merchant queries, by its number and by zhifu's.
    let query = shop.call(
        &server,
        "GET",
        "/merchant/v1/orders/out-trade-no/T20261201-0001",
        "",
    );
    platform.assert_signed(&query, "ZHIFU-RSA-SHA256");
    let queried = query.json();
    assert_eq!(
        (
            queried["trade_state"].as_str(),
            queried["fee_minor"].as_i64()
        ),
        (Some("SUCCESS"), Some(74))
    );
    let transaction_id = queried["transaction_id"].as_str().unwrap().to_owned();
    let by_id = shop.call(
        &server,
        "GET",
        &format!("/merchant/v1/orders/id/{transaction_id}"),
        "",
    );
    assert_eq!(by_id.json()["out_trade_no"], "T20261201-0001");

    // Two partial refunds; a third above what is left is refused.
    let refund = |no: &str, amount: u64| {
        let body = format!(
            r#"{{"out_trade_no":"T20261201-0001","out_refund_no":"{no}","amount_minor":{amount},"reason":"cold soup"}}"#
        );
        shop.call(&server, "POST", "/merchant/v1/refunds", &body)
    };
    let first = refund("R1", 2_000);
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(
        (
            first.json()["status"].as_str(),
            first.json()["fee_minor"].as_i64()
        ),
        (Some("SUCCESS"), Some(12))
    );
    assert_eq!(
        refund("R1", 2_000).json()["refund_id"],
        first.json()["refund_id"]
    );
    assert_eq!(refund("R2", 3_000).status, 201);
    let over = refund("R3", 7_346);
    assert_eq!(
        (over.status, over.code()),
        (422, "REFUND_EXCEEDS_PAID".into())
    );
    assert_eq!(balance_minor(&server, &payer), 100_000 - 12_345 + 5_000);
    let refunded = shop.call(&server, "GET", "/merchant/v1/refunds/R2", "");
    assert_eq!(refunded.json()["amount_minor"], 3_000);
    let refund_events = listener.wait_for(3, Duration::from_secs(10));
    assert_eq!(refund_events.len(), 3);
    let refund_resource = open_resource(&refund_events[2].json(), &notify_key);
    assert_eq!(refund_resource["status"], "SUCCESS");

    // The bill: today's payment and both refunds, a summary row, and its digest.
    let bill = shop.call(
        &server,
        "GET",
        &format!("/merchant/v1/bills/trade?date={}", shanghai_today()),
        "",
    );
    assert_eq!(bill.status, 200, "{}", bill.body);
    platform.assert_signed(&bill, "ZHIFU-RSA-SHA256");
    let digest: String = <sha2::Sha256 as sha2::Digest>::digest(bill.body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(bill.header("zhifu-bill-sha256"), Some(digest.as_str()));
    let lines: Vec<&str> = bill.body.lines().collect();
    assert_eq!(lines.len(), 6, "{}", bill.body);
    assert!(
        lines[1].contains(",SUCCESS,123.45,0.74,") && lines[1].contains(&pseudonym),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(",REFUND,") && lines[2].contains(",20.00,0.12,"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[5], "1,123.45,50.00,0.44,yes");
    assert_private(&bill.body);
    let flows = shop.call(
        &server,
        "GET",
        &format!("/merchant/v1/bills/fund-flow?date={}", shanghai_today()),
        "",
    );
    let last = flows.body.lines().last().unwrap().to_owned();
    // In 123.45 + fees back 0.30; out 0.74 + 50.00: net 73.01.
    assert_eq!(last, "6,123.75,50.74,73.01,yes", "{}", flows.body);

    // Bad input changes nothing.
    let bad = |body: &str| shop.call(&server, "POST", "/merchant/v1/orders/native", body);
    let other_amount =
        r#"{"out_trade_no":"T20261201-0001","description":"Beef noodles","amount_minor":1}"#;
    assert_eq!(bad(other_amount).code(), "OUT_TRADE_NO_REUSED");
    assert_eq!(
        bad(r#"{"out_trade_no":"x","description":"d","amount_minor":1,"currency":"USD"}"#).code(),
        "CURRENCY_UNSUPPORTED"
    );
    assert_eq!(
        bad(r#"{"out_trade_no":"x","description":"d","amount_minor":0}"#).code(),
        "AMOUNT_INVALID"
    );
    assert_eq!(
        bad(r#"{"out_trade_no":"x","description":"d","amount_minor":-5}"#).status,
        422
    );
    assert_eq!(
        bad(r#"{"out_trade_no":"x","description":"d","amount_minor":100000000000}"#).code(),
        "AMOUNT_INVALID"
    );
    assert_eq!(
        bad(r#"{"out_trade_no":"has space","description":"d","amount_minor":1}"#).code(),
        "OUT_TRADE_NO_INVALID"
    );
    assert_eq!(
        bad(r#"{"out_trade_no":"x","description":"","amount_minor":1}"#).code(),
        "DESCRIPTION_INVALID"
    );
    assert_eq!(
        bad(r#"{"out_trade_no":"x","description":"d","amount_minor":1,"extra":1}"#).status,
        422
    );
    assert_eq!(bad("{").code(), "JSON_MALFORMED");
    let unpaid = bad(r#"{"out_trade_no":"T2","description":"d","amount_minor":100}"#);
    assert_eq!(unpaid.status, 201);
    let closed = shop.call(
        &server,
        "POST",
        "/merchant/v1/orders/out-trade-no/T2/close",
        "",
    );
    assert_eq!(closed.json()["trade_state"], "CLOSED");
    let code = unpaid.json()["code_url"].as_str().unwrap().to_owned();
    let pay = format!(r#"{{"code":"{code}","pin":"{PIN}"}}"#);
    let refused = server.send_keyed(
        "POST",
        "/api/v1/merchant-payments",
        &payer,
        Some("pay-2"),
        &pay,
    );
    assert_eq!(
        (refused.status, refused.code()),
        (409, "ORDER_CLOSED".into())
    );
    let closed_refund = r#"{"out_trade_no":"T2","out_refund_no":"R9","amount_minor":1}"#;
    assert_eq!(
        shop.call(&server, "POST", "/merchant/v1/refunds", closed_refund)
            .code(),
        "ORDER_NOT_PAID"
    );
    let both =
        r#"{"out_trade_no":"T2","transaction_id":"1","out_refund_no":"R9","amount_minor":1}"#;
    assert_eq!(
        shop.call(&server, "POST", "/merchant/v1/refunds", both)
            .code(),
        "ORDER_NAME_INVALID"
    );
    assert_eq!(
        shop.call(&server, "GET", "/merchant/v1/orders/out-trade-no/nope", "")
            .code(),
        "ORDER_NOT_FOUND"
    );
    assert_eq!(
        shop.call(
            &server,
            "GET",
            "/merchant/v1/bills/trade?date=2026-02-30",
            ""
        )
        .code(),
        "QUERY_INVALID"
    );
    assert_eq!(balance_minor(&server, &payer), 100_000 - 12_345 + 5_000);

    // Another merchant sees none of it.
    let (stranger, _) = rsa_merchant(&server, &listener.url, None);
    let peek = stranger.call(
        &server,
        "GET",
        &format!("/merchant/v1/orders/id/{transaction_id}"),
        "",
    );
    assert_eq!(peek.code(), "ORDER_NOT_FOUND");
    assert_private(&query.body);

    // The ledger still balances: the engine checks conservation when it starts again.
    let server = server.restart();
    assert_eq!(balance_minor(&server, &payer), 100_000 - 12_345 + 5_000);
}

/// An https endpoint whose certificate chains to no root the server trusts gets nothing: the
/// delivery log says why (`tls: …`), and the event stays due for its retries.
#[test]
fn notifications_never_go_to_an_https_endpoint_the_server_cannot_trust() {
    let server = Server::start();
    let listener = Listener::start_tls(vec![]);
    let (shop, _) = rsa_merchant(&server, &listener.url, None);
    let (payer, card) = ready_to_pay(&server);
    assert_eq!(
        top_up(&server, &payer, Some("in"), &card, 10_000, PIN).status,
        201
    );
    let body =
        r#"{"out_trade_no":"TLS-1","description":"Tea","amount_minor":800,"currency":"CNY"}"#;
    let created = shop.call(&server, "POST", "/merchant/v1/orders/native", body);
    assert_eq!(created.status, 201, "{}", created.body);
    let code_url = created.json()["code_url"].as_str().unwrap().to_owned();
    let pay = format!(r#"{{"code":"{code_url}","pin":"{PIN}"}}"#);
    let paid = server.send_keyed("POST", "/api/v1/merchant-payments", &payer, Some("p"), &pay);
    assert_eq!(paid.status, 201, "{}", paid.body);
    // The first attempt runs at once; wait until it is in the log.
    let started = Instant::now();
    let attempt = loop {
        let log = shop.call(&server, "GET", "/merchant/v1/notifications", "");
        assert_eq!(log.status, 200, "{}", log.body);
        let attempts = log.json()["notifications"][0]["attempts"].clone();
        if let Some(first) = attempts.as_array().and_then(|a| a.first()) {
            break first.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no attempt logged: {}",
            log.body
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let outcome = attempt["outcome"].as_str().unwrap();
    assert!(
        outcome.starts_with("tls: ") && outcome.contains("UnknownIssuer"),
        "{attempt}"
    );
    assert!(listener.wait_for(1, Duration::from_millis(200)).is_empty());
}

#[test]
fn pay_code_orders_pay_at_once_wait_for_the_pin_above_1000_yuan_and_reverse() {
    let server = Server::start();
    let listener = Listener::start(vec![]);
    let (shop, _) = rsa_merchant(&server, &listener.url, None);
    let (payer, card) = ready_to_pay(&server);
    assert_eq!(
        top_up(&server, &payer, Some("in"), &card, 500_000, PIN).status,
        201
    );
    let pay_code = || {
        let issued = server.send("POST", "/api/v1/pay-codes", "", Some(&payer));
        assert_eq!(issued.status, 201, "{}", issued.body);
        issued.json()["code"].as_str().unwrap().to_owned()
    };
    let order = |no: &str, amount: u64, code: &str| {
        let body = format!(
            r#"{{"out_trade_no":"{no}","description":"Coffee","amount_minor":{amount},"auth_code":"{code}"}}"#
        );
        shop.call(&server, "POST", "/merchant/v1/orders/pay-code", &body)
    };

    // 25.00: paid at once, no PIN. The same request again answers the same, the code spent.
    let code = pay_code();
    let paid = order("P1", 2_500, &code);
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.json()["trade_state"], "SUCCESS");
    assert_eq!(
        order("P1", 2_500, &code).json()["transaction_id"],
        paid.json()["transaction_id"]
    );
    let spent = order("P1b", 2_500, &code);
    assert_eq!((spent.status, spent.code()), (409, "PAY_CODE_SPENT".into()));
    assert_eq!(balance_minor(&server, &payer), 500_000 - 2_500);

    // The static code: the payer enters the amount (within today's one-factor limit).
    let static_code = shop.call(&server, "GET", "/merchant/v1/static-code", "");
    let code = static_code.json()["code_url"].as_str().unwrap().to_owned();
    let pay = |amount: Option<u64>, key: &str| {
        let amount = amount.map_or(String::new(), |a| format!(r#","amount_minor":{a}"#));
        let body = format!(r#"{{"code":"{code}","pin":"{PIN}"{amount}}}"#);
        server.send_keyed(
            "POST",
            "/api/v1/merchant-payments",
            &payer,
            Some(key),
            &body,
        )
    };
    assert_eq!(pay(None, "s1").code(), "AMOUNT_MISSING");
    let paid = pay(Some(880), "s2");
    assert_eq!(paid.status, 201, "{}", paid.body);
    assert_eq!(
        pay(Some(880), "s2").json()["transaction_id"],
        paid.json()["transaction_id"]
    );
    assert_eq!(balance_minor(&server, &payer), 500_000 - 2_500 - 880);
    // 1,000.01 yuan: USERPAYING until the payer confirms with the PIN.
    let waiting = order("P2", 100_001, &pay_code());
    assert_eq!(
        waiting.json()["trade_state"],
        "USERPAYING",
        "{}",
        waiting.body
    );
    let awaiting = server.send(
        "GET",
        "/api/v1/merchant-payments/awaiting",
        "",
        Some(&payer),
    );
    let orders = awaiting.json()["orders"].as_array().unwrap().clone();
    assert_eq!(orders.len(), 1);
    let id = orders[0]["transaction_id"].as_str().unwrap().to_owned();
    let confirm = |pin: &str| {
        server.send(
            "POST",
            &format!("/api/v1/merchant-payments/{id}/confirm"),
            &format!(r#"{{"pin":"{pin}"}}"#),
            Some(&payer),
        )
    };
    assert_eq!(confirm("111111").status, 403);
    let confirmed = confirm(PIN);
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(confirmed.json()["trade_state"], "SUCCESS");
    let queried = shop.call(&server, "GET", "/merchant/v1/orders/out-trade-no/P2", "");
    assert_eq!(queried.json()["trade_state"], "SUCCESS");
    assert_eq!(
        balance_minor(&server, &payer),
        500_000 - 2_500 - 880 - 100_001
    );

    // The merchant did not learn the outcome of P1 and reverses it: refunded, REVOKED.
    let reversed = shop.call(
        &server,
        "POST",
        "/merchant/v1/orders/out-trade-no/P1/reverse",
        "",
    );
    assert_eq!(
        reversed.json()["trade_state"],
        "REVOKED",
        "{}",
        reversed.body
    );
    assert_eq!(balance_minor(&server, &payer), 500_000 - 880 - 100_001);
    // An unpaid native order cannot be reversed.
    let native = r#"{"out_trade_no":"N1","description":"d","amount_minor":100}"#;
    assert_eq!(
        shop.call(&server, "POST", "/merchant/v1/orders/native", native)
            .status,
        201
    );
    let refused = shop.call(
        &server,
        "POST",
        "/merchant/v1/orders/out-trade-no/N1/reverse",
        "",
    );
    assert_eq!(refused.code(), "ORDER_NOT_REVERSIBLE");
    // A made-up pay code.
    assert_eq!(order("P3", 100, "190000000000000000").status, 404);
    assert_eq!(order("P4", 100, "12345").code(), "PAY_CODE_MALFORMED");

    let server = server.restart();
    assert_eq!(balance_minor(&server, &payer), 500_000 - 880 - 100_001);
}

#[test]
fn one_pay_code_submitted_by_many_orders_at_once_pays_exactly_once() {
    let server = Server::start();
    let listener = Listener::start(vec![]);
    let (shop, _) = rsa_merchant(&server, &listener.url, None);
    let (payer, card) = ready_to_pay(&server);
    assert_eq!(
        top_up(&server, &payer, Some("in"), &card, 100_000, PIN).status,
        201
    );
    let issued = server.send("POST", "/api/v1/pay-codes", "", Some(&payer));
    let code = issued.json()["code"].as_str().unwrap().to_owned();
    let paid = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for attempt in 0..8 {
            let (server, shop, code, paid) = (&server, &shop, &code, &paid);
            scope.spawn(move || {
                let body = format!(
                    r#"{{"out_trade_no":"M{attempt}","description":"Tea","amount_minor":101,"auth_code":"{code}"}}"#
                );
                let answer = shop.call(server, "POST", "/merchant/v1/orders/pay-code", &body);
                paid.lock().unwrap().push((answer.status, answer.code()));
            });
        }
    });
    let paid = paid.into_inner().unwrap();
    assert_eq!(
        paid.iter().filter(|(status, _)| *status == 200).count(),
        1,
        "{paid:?}"
    );
    assert!(
        paid.iter()
            .all(|(status, code)| *status == 200 || code == "PAY_CODE_SPENT"),
        "{paid:?}"
    );
    assert_eq!(balance_minor(&server, &payer), 100_000 - 101);
    let server = server.restart();
    assert_eq!(balance_minor(&server, &payer), 100_000 - 101);
}

/// Consumers pay orders in a stream while the server is killed (`kill -9`); another starts on
/// the same data. Whatever was in flight, the merchant's takings are exactly the orders that
/// say `SUCCESS`, net of their fees, and each consumer paid exactly those of its orders: no
/// payment the ledger holds is left under an order that says it is unpaid (recovery reads
/// the ledger before the first request), none is recorded twice, and every paid order is
/// paid once. A retry with the same key after the restart answers as before.
#[test]
fn payments_cut_short_by_kill_9_are_each_recorded_once_after_the_restart() {
    const PAYERS: usize = 6;
    const ORDERS_PER_PAYER: usize = 30;
    let server = Server::start();
    let (shop, _) = rsa_merchant(&server, "http://127.0.0.1:9/notify", None);
    let payers: Vec<String> = (0..PAYERS)
        .map(|index| {
            let id_number = zhifu_domain::wallet::identity::make::id_number(&format!(
                "11010519800{}0100{index}",
                1 + index % 9
            ));
            crate::transfers::person(&server, &format!("1380000100{index}"), &id_number, 100_000)
        })
        .collect();
    let mut orders = Vec::new();
    for index in 0..PAYERS * ORDERS_PER_PAYER {
        let no = format!("K{index}");
        let body = format!(
            r#"{{"out_trade_no":"{no}","description":"Dumplings","amount_minor":{},"currency":"CNY"}}"#,
            1_000 + index
        );
        let created = shop.call(&server, "POST", "/merchant/v1/orders/native", &body);
        assert_eq!(created.status, 201, "{}", created.body);
        orders.push((no, created.json()["code_url"].as_str().unwrap().to_owned()));
    }
    // Each payer pays its orders one after another, a connection refused or cut ends its run.
    let address = server.address.clone();
    let paid_before_kill = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for (index, payer) in payers.iter().enumerate() {
            let (orders, address, paid) = (&orders, &address, &paid_before_kill);
            scope.spawn(move || {
                for (no, code) in orders.iter().skip(index).step_by(PAYERS) {
                    let body = format!(r#"{{"code":"{code}","pin":"{PIN}"}}"#);
                    match try_keyed_post(address, "/api/v1/merchant-payments", payer, no, &body) {
                        Some(201) => {
                            paid.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Some(status) => panic!("payment {no} answered {status}"),
                        None => return,
                    }
                }
            });
        }
        // Kill once the stream is well under way, with payments in flight.
        let deadline = Instant::now() + Duration::from_secs(60);
        while paid_before_kill.load(std::sync::atomic::Ordering::Relaxed) < PAYERS * 5 {
            assert!(Instant::now() < deadline, "payments do not go through");
            std::thread::sleep(Duration::from_millis(2));
        }
        server.kill_now();
    });
    let paid_before_kill = paid_before_kill.into_inner();
    let server = server.crash_and_restart();

    let (mut takings_minor, mut paid_orders) = (0, 0);
    let mut spent_minor = vec![0; PAYERS];
    for (index, (no, code)) in orders.iter().enumerate() {
        let path = format!("/merchant/v1/orders/out-trade-no/{no}");
        let order = shop.call(&server, "GET", &path, "").json();
        match order["trade_state"].as_str().unwrap() {
            "SUCCESS" => {
                let amount = order["amount_minor"].as_i64().unwrap();
                takings_minor += amount - order["fee_minor"].as_i64().unwrap();
                spent_minor[index % PAYERS] += amount;
                paid_orders += 1;
                // The payer's retry with the same key is the same payment.
                let body = format!(r#"{{"code":"{code}","pin":"{PIN}"}}"#);
                let retried = server.send_keyed(
                    "POST",
                    "/api/v1/merchant-payments",
                    &payers[index % PAYERS],
                    Some(no),
                    &body,
                );
                assert_eq!(retried.status, 201, "{}", retried.body);
                assert_eq!(retried.json()["transaction_id"], order["transaction_id"]);
            }
            "NOTPAY" => {}
            other => panic!("order {no} is {other}"),
        }
    }
    assert!(
        paid_orders >= paid_before_kill,
        "{paid_orders} orders paid, {paid_before_kill} were answered"
    );
    let balance = shop.call(&server, "GET", "/merchant/v1/balance", "");
    assert_eq!(balance.json()["unsettled_minor"], takings_minor);
    for (payer, spent) in payers.iter().zip(spent_minor) {
        assert_eq!(balance_minor(&server, payer), 100_000 - spent);
    }
}

/// A keyed POST that tolerates a server that is gone: the status, or `None`.
fn try_keyed_post(address: &str, path: &str, token: &str, key: &str, body: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nIdempotency-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

/// The same flow from an independent client in Python (`clients/python/merchant_flow.py`),
/// written from `docs/merchant-api.md` with the `cryptography` package, its notifications
/// received over https: proof that the docs are enough. CI installs Python's `cryptography` (`.ci/run`).
#[test]
fn a_python_client_written_from_the_docs_completes_the_merchant_flow() {
    use std::process::{Command, Stdio};
    // The client's notification endpoint serves https (Python's `ssl`), like the Rust one.
    let server = Server::start_with_args(&["--notify-ca-file", &tls_fixture("ca.pem")]);
    let (payer, card) = ready_to_pay(&server);
    assert_eq!(
        top_up(&server, &payer, Some("in"), &card, 100_000, PIN).status,
        201
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../clients/python/merchant_flow.py"
    );
    let mut client = Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", server.address))
        .arg(server.operator_token())
        .args([tls_fixture("merchant.pem"), tls_fixture("merchant-key.pem")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (CI installs it with python3-cryptography)");
    let mut stdout = BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let code = line
        .trim()
        .strip_prefix("CODE ")
        .unwrap_or_else(|| panic!("the client printed {line:?}"))
        .to_owned();
    let pay = format!(r#"{{"code":"{code}","pin":"{PIN}"}}"#);
    let paid = server.send_keyed(
        "POST",
        "/api/v1/merchant-payments",
        &payer,
        Some("py"),
        &pay,
    );
    assert_eq!(paid.status, 201, "{}", paid.body);
    writeln!(client.stdin.take().unwrap(), "PAID").unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = client.wait().unwrap();
    assert!(
        status.success() && rest.trim_end().ends_with("OK"),
        "the client said: {rest}"
    );
    assert_eq!(balance_minor(&server, &payer), 100_000 - 8_888 + 1_888);
}

#[test]
fn the_operator_binds_payout_cards_and_runs_settlements_that_merchants_see() {
    let server = Server::start();
    let listener = Listener::start(vec![]);
    let (shop, _) = rsa_merchant(&server, &listener.url, None);
    let id = zhifu_domain::wallet::identity::make::id_number("11010519700101001");
    let card = zhifu_domain::wallet::identity::make::card_number("622202999988887777");
    let body = format!(
        r#"{{"card_number":"{card}","name":"王五","id_number":"{id}","phone":"13700000001"}}"#
    );
    let path = format!("/api/v1/operator/merchants/{}/settlement-card", shop.id);
    let bound = operator(&server, "PUT", &path, &body);
    assert_eq!(bound.status, 200, "{}", bound.body);
    assert_eq!(bound.json()["last_four"], card[card.len() - 4..]);
    assert!(!bound.body.contains(&card));
    // Bad cards, unknown merchants, no token: refused.
    let bad = body.replace(&card, "6222021234567890120");
    assert_eq!(
        operator(&server, "PUT", &path, &bad).code(),
        "CARD_NUMBER_CHECKSUM"
    );
    let unknown = operator(
        &server,
        "PUT",
        "/api/v1/operator/merchants/999/settlement-card",
        &body,
    );
    assert_eq!(unknown.code(), "MERCHANT_NOT_FOUND");
    assert_eq!(server.send("PUT", &path, &body, None).status, 401);

    // Money paid today waits for tomorrow's cut-off: today's run has nothing to pay.
    let (payer, payer_card) = ready_to_pay(&server);
    assert_eq!(
        top_up(&server, &payer, Some("in"), &payer_card, 10_000, PIN).status,
        201
    );
    let order = r#"{"out_trade_no":"S1","description":"Tea","amount_minor":500}"#;
    let code = shop
        .call(&server, "POST", "/merchant/v1/orders/native", order)
        .json()["code_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let pay = format!(r#"{{"code":"{code}","pin":"{PIN}"}}"#);
    let paid = server.send_keyed("POST", "/api/v1/merchant-payments", &payer, Some("s"), &pay);
    assert_eq!(paid.status, 201, "{}", paid.body);
    let run = operator(&server, "POST", "/api/v1/operator/settlements", "{}");
    assert_eq!(run.status, 200, "{}", run.body);
    assert_eq!(run.json()["nothing_due"], 1);
    assert_eq!(run.json()["settlements"].as_array().unwrap().len(), 0);
    let future = operator(
        &server,
        "POST",
        "/api/v1/operator/settlements",
        r#"{"date":"2999-01-01"}"#,
    );
    assert_eq!(future.code(), "QUERY_INVALID");
    let seen = shop.call(&server, "GET", "/merchant/v1/settlements", "");
    assert_eq!(seen.json()["card"]["last_four"], card[card.len() - 4..]);
    assert_eq!(seen.json()["settlements"].as_array().unwrap().len(), 0);
    let balance = shop.call(&server, "GET", "/merchant/v1/balance", "");
    assert_eq!(balance.json()["unsettled_minor"], 500 - 3);
}

#[test]
fn the_console_opens_from_a_link_and_charges_refunds_and_shows_the_day() {
    let server = Server::start();
    let listener = Listener::start(vec![500]);
    let (shop, _) = rsa_merchant(&server, &listener.url, None);
    // No session: the console says how to get one.
    let signed_out = server.get("/console");
    assert_eq!(signed_out.status, 401);
    assert!(
        signed_out.body.contains("console link"),
        "{}",
        signed_out.body
    );
    // A signed call gives a link; opening it gives a session cookie for /console.
    let link = shop.call(&server, "POST", "/merchant/v1/console-links", "");
    assert_eq!(link.status, 200, "{}", link.body);
    let url = link.json()["url"].as_str().unwrap().to_owned();
    let opened = server.get(&url);
    assert_eq!(opened.status, 303, "{}", opened.body);
    let cookie = opened
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(server.get(&url.replace("token=", "token=x")).status == 401);
    let page = |method: &str, path: &str, form: &str| {
        server.request(&format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nCookie: {cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            server.address,
            form.len()
        ))
    };
    let dashboard = page("GET", "/console", "");
    assert_eq!(dashboard.status, 200);
    assert!(dashboard.body.contains("Noodle bar") && dashboard.body.contains("id=\"by-hour\""));

    // The cashier charges 18.80 with a QR code: the order's page shows it and reloads itself.
    let charged = page("POST", "/console/cashier", "amount=18.80&auth_code=");
    assert_eq!(charged.status, 303, "{}", charged.body);
    let order_path = charged.header("location").unwrap().to_owned();
    let order = page("GET", &order_path, "");
    assert!(
        order.body.contains("<svg") && order.header("refresh").is_some(),
        "{}",
        order.body
    );
    assert!(order.body.contains("NOTPAY"));
    let transaction_id = order_path.rsplit('/').next().unwrap().to_owned();
    let queried = shop.call(
        &server,
        "GET",
        &format!("/merchant/v1/orders/id/{transaction_id}"),
        "",
    );
    let code = queried.json()["trade_state"].as_str().unwrap().to_owned();
    assert_eq!(code, "NOTPAY");
    // A customer pays it (the code as the QR carries it).
    let out_trade_no = queried.json()["out_trade_no"].as_str().unwrap().to_owned();
    let (payer, card) = ready_to_pay(&server);
    assert_eq!(
        top_up(&server, &payer, Some("in"), &card, 10_000, PIN).status,
        201
    );
    let native = shop.call(
        &server,
        "GET",
        &format!("/merchant/v1/orders/out-trade-no/{out_trade_no}"),
        "",
    );
    assert_eq!(native.status, 200);
    let svg_payload = {
        // The console's QR encodes the same payload the API's code_url would.
        let created = shop.call(
            &server,
            "POST",
            "/merchant/v1/orders/native",
            r#"{"out_trade_no":"API-1","description":"Noodle bar","amount_minor":1880}"#,
        );
        created.json()["code_url"].as_str().unwrap().to_owned()
    };
    let pay = format!(r#"{{"code":"{svg_payload}","pin":"{PIN}"}}"#);
    let paid = server.send_keyed(
        "POST",
        "/api/v1/merchant-payments",
        &payer,
        Some("c1"),
        &pay,
    );
    assert_eq!(paid.status, 201, "{}", paid.body);

    // A pay code typed at the till.
    let issued = server.send("POST", "/api/v1/pay-codes", "", Some(&payer));
    let auth = issued.json()["code"].as_str().unwrap().to_owned();
    let charged = page(
        "POST",
        "/console/cashier",
        &format!("amount=2.50&auth_code={auth}"),
    );
    assert_eq!(charged.status, 200);
    assert!(charged.body.contains("SUCCESS"), "{}", charged.body);

    // Orders of the day, filtered; refund from an order's page, once per form.
    let listed = page("GET", "/console/orders?state=SUCCESS", "");
    assert!(
        listed.body.contains("API-1") && !listed.body.contains(&out_trade_no),
        "{}",
        listed.body
    );
    let api_order = shop.call(&server, "GET", "/merchant/v1/orders/out-trade-no/API-1", "");
    let id = api_order.json()["transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let form = "amount=8.80&reason=cold&key=console-test-1";
    assert_eq!(
        page("POST", &format!("/console/orders/{id}/refunds"), form).status,
        303
    );
    assert_eq!(
        page("POST", &format!("/console/orders/{id}/refunds"), form).status,
        303
    );
    let refunded = shop.call(&server, "GET", "/merchant/v1/orders/out-trade-no/API-1", "");
    assert_eq!(refunded.json()["refunded_minor"], 880);
    let too_much = page(
        "POST",
        &format!("/console/orders/{id}/refunds"),
        "amount=11&reason=&key=k2",
    );
    assert!(too_much.body.contains("exceed"), "{}", too_much.body);

    // The dashboard counts today's sales; the bills download; the delivery log resends.
    let dashboard = page("GET", "/console", "");
    assert!(dashboard.body.contains("21.30"), "{}", dashboard.body);
    let bill = page(
        "GET",
        &format!("/console/bills/trade.csv?date={}", shanghai_today()),
        "",
    );
    assert_eq!(bill.status, 200);
    assert!(bill.body.contains("API-1"));
    assert_private(&bill.body);
    assert_private(&dashboard.body);
    let developer = page("GET", "/console/developer", "");
    assert!(
        developer.body.contains("rsa-1") && developer.body.contains("TRANSACTION.SUCCESS"),
        "{}",
        developer.body
    );
    let log = shop.call(&server, "GET", "/merchant/v1/notifications", "");
    let first = log.json()["notifications"][0]["notification_id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        page(
            "POST",
            &format!("/console/notifications/{first}/resend"),
            ""
        )
        .status,
        303
    );
    // Another merchant's order is not found from this console.
    let (other, _) = rsa_merchant(&server, &listener.url, None);
    let theirs = other.call(
        &server,
        "POST",
        "/merchant/v1/orders/native",
        r#"{"out_trade_no":"X","description":"d","amount_minor":1}"#,
    );
    let theirs = theirs.json()["transaction_id"].as_str().unwrap().to_owned();
    assert_eq!(
        page("GET", &format!("/console/orders/{theirs}"), "").status,
        404
    );
    assert_eq!(page("POST", "/console/logout", "").status, 303);
}
