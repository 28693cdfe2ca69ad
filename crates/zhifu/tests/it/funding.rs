//! Verify, bind a card, top up: the money-in path over HTTP, and its failures.

use crate::support::Server;
use crate::wallet::signed_up;

const PHONE: &str = "13812345678";
const ID_NUMBER: &str = "11010519491231002X";
/// A UnionPay-like number that passes Luhn.
const CARD: &str = "6222021234567890128";
pub(crate) const PIN: &str = "802514";

/// Signs up, sets the PIN, verifies and binds the card; returns (token, card token).
pub(crate) fn ready_to_pay(server: &Server) -> (String, String) {
    let token = signed_up(server, PHONE);
    let pin = format!(r#"{{"password":"long enough password","pin":"{PIN}"}}"#);
    assert_eq!(
        server.send("PUT", "/api/v1/pin", &pin, Some(&token)).status,
        204
    );
    let verification = format!(r#"{{"name":"张三","id_number":"{ID_NUMBER}"}}"#);
    let verified = server.send("POST", "/api/v1/verification", &verification, Some(&token));
    assert_eq!(
        (verified.status, verified.json()["class"].as_str()),
        (200, Some("I")),
        "{}",
        verified.body
    );
    let binding = format!(
        r#"{{"card_number":"{CARD}","name":"张三","id_number":"{ID_NUMBER}","phone":"{PHONE}"}}"#
    );
    let bound = server.send("POST", "/api/v1/cards", &binding, Some(&token));
    assert_eq!(bound.status, 201, "{}", bound.body);
    assert_eq!(bound.json()["last_four"], "0128");
    (token, bound.json()["token"].as_str().unwrap().to_owned())
}

pub(crate) fn top_up(
    server: &Server,
    token: &str,
    key: Option<&str>,
    card: &str,
    amount: u64,
    pin: &str,
) -> crate::support::Response {
    let body = format!(r#"{{"card_token":"{card}","amount_minor":{amount},"pin":"{pin}"}}"#);
    server.send_keyed("POST", "/api/v1/top-ups", token, key, &body)
}

pub(crate) fn balance_minor(server: &Server, token: &str) -> i64 {
    server.send("GET", "/api/v1/wallet", "", Some(token)).json()["balance_minor"]
        .as_i64()
        .unwrap()
}

#[test]
fn top_up_from_a_bound_card_once_per_key() {
    let server = Server::start();
    let (token, card) = ready_to_pay(&server);
    let first = top_up(&server, &token, Some("order-1"), &card, 10_000, PIN);
    assert_eq!(first.status, 201, "{}", first.body);
    let again = top_up(&server, &token, Some("order-1"), &card, 10_000, PIN);
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(first.json()["transfer_id"], again.json()["transfer_id"]);
    assert_eq!(balance_minor(&server, &token), 10_000);
    let statement = server
        .send("GET", "/api/v1/wallet/statement", "", Some(&token))
        .json();
    assert_eq!(statement["entries"].as_array().unwrap().len(), 1);
    assert_eq!(statement["entries"][0]["balance_after_minor"], 10_000);
    let csv = server.send("GET", "/api/v1/wallet/statement.csv", "", Some(&token));
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(
        lines[0],
        "transfer_id,time,code,amount_minor,balance_after_minor,reference"
    );
    assert!(
        lines[1].ends_with(",1,10000,10000,\"top-up:order-1\""),
        "{}",
        lines[1]
    );
    assert_eq!(lines.len(), 2);

    for (key, card_token, amount, pin, status, code) in [
        (
            None,
            card.as_str(),
            100,
            PIN,
            400,
            "IDEMPOTENCY_KEY_INVALID",
        ),
        (
            Some("order-1"),
            card.as_str(),
            20_000,
            PIN,
            409,
            "IDEMPOTENCY_KEY_REUSED",
        ),
        (
            Some("order-2"),
            card.as_str(),
            0,
            PIN,
            422,
            "AMOUNT_INVALID",
        ),
        (
            Some("order-2"),
            card.as_str(),
            5_000_001,
            PIN,
            422,
            "AMOUNT_INVALID",
        ),
        (
            Some("order-2"),
            "simbank_nope",
            100,
            PIN,
            404,
            "CARD_NOT_FOUND",
        ),
        (
            Some("order-2"),
            card.as_str(),
            100,
            "000001",
            403,
            "PIN_WRONG",
        ),
    ] {
        let refused = top_up(&server, &token, key, card_token, amount, pin);
        assert_eq!(
            (refused.status, refused.code()),
            (status, code.into()),
            "{key:?} {amount}"
        );
    }
    let negative = server.send(
        "POST",
        "/api/v1/top-ups",
        &format!(r#"{{"card_token":"{card}","amount_minor":-5,"pin":"{PIN}"}}"#),
        Some(&token),
    );
    assert_eq!(
        negative.status, 400,
        "no key and a negative amount: the key is checked first"
    );
    assert_eq!(
        balance_minor(&server, &token),
        10_000,
        "no refusal moved money"
    );

    // Cards: listed, unbound, gone.
    let cards = server.send("GET", "/api/v1/cards", "", Some(&token)).json();
    assert_eq!(cards["cards"][0]["bank"], "Simulated Bank");
    assert_eq!(
        server
            .send("DELETE", &format!("/api/v1/cards/{card}"), "", Some(&token))
            .status,
        204
    );
    assert_eq!(
        server
            .send("DELETE", &format!("/api/v1/cards/{card}"), "", Some(&token))
            .status,
        404
    );
    let unbound = top_up(&server, &token, Some("order-3"), &card, 100, PIN);
    assert_eq!(
        (unbound.status, unbound.code()),
        (404, "CARD_NOT_FOUND".into())
    );

    // No card number, ID number or PIN in the log.
    let log = server.log();
    for secret in [CARD, ID_NUMBER, PIN, PHONE] {
        assert!(!log.contains(secret), "the log shows {secret}");
    }
}

#[test]
fn binding_needs_the_verified_person() {
    let server = Server::start();
    let token = signed_up(&server, PHONE);
    let binding = |id: &str, phone: &str, card: &str| {
        format!(r#"{{"card_number":"{card}","name":"张三","id_number":"{id}","phone":"{phone}"}}"#)
    };
    let early = server.send(
        "POST",
        "/api/v1/cards",
        &binding(ID_NUMBER, PHONE, CARD),
        Some(&token),
    );
    assert_eq!(
        (early.status, early.code()),
        (403, "IDENTITY_REQUIRED".into())
    );
    let verification = format!(r#"{{"name":"张三","id_number":"{ID_NUMBER}"}}"#);
    assert_eq!(
        server
            .send("POST", "/api/v1/verification", &verification, Some(&token))
            .status,
        200
    );
    let other_id = "110105194912310021";
    for (body, status, code) in [
        (
            binding("11010519491231003X", PHONE, CARD),
            422,
            "ID_NUMBER_CHECK_DIGIT",
        ),
        (
            binding(ID_NUMBER, "13900000000", CARD),
            422,
            "IDENTITY_MISMATCH",
        ),
        (
            binding(ID_NUMBER, PHONE, "6222021234567890123"),
            422,
            "CARD_NUMBER_CHECKSUM",
        ),
        (
            format!(r#"{{"name":"张三","id_number":"{other_id}"}}"#),
            422,
            "JSON_INVALID",
        ),
    ] {
        let refused = server.send("POST", "/api/v1/cards", &body, Some(&token));
        assert_eq!(
            (refused.status, refused.code()),
            (status, code.into()),
            "{body}"
        );
    }
    let renamed = server.send(
        "POST",
        "/api/v1/verification",
        r#"{"name":"李四","id_number":"110105200002291235"}"#,
        Some(&token),
    );
    assert_eq!(
        (renamed.status, renamed.code()),
        (422, "IDENTITY_MISMATCH".into()),
        "a verified real name cannot change"
    );
}

#[test]
fn a_lost_bank_answer_is_settled_by_asking_the_bank() {
    let server = Server::start_with_args(&["--bank-mode", "timeout_after_work"]);
    let (token, card) = ready_to_pay(&server);
    let topped = top_up(&server, &token, Some("order-1"), &card, 2_500, PIN);
    assert_eq!(topped.status, 201, "{}", topped.body);
    assert_eq!(topped.json()["amount_minor"], 2_500);
    assert_eq!(
        top_up(&server, &token, Some("order-1"), &card, 2_500, PIN).status,
        201
    );
    assert_eq!(balance_minor(&server, &token), 2_500);

    let server = Server::start_with_args(&["--bank-mode", "timeout_before_work"]);
    let (token, card) = ready_to_pay(&server);
    let pending = top_up(&server, &token, Some("order-1"), &card, 2_500, PIN);
    assert_eq!((pending.status, pending.code()), (202, "PROCESSING".into()));
    assert_eq!(balance_minor(&server, &token), 0);

    let server = Server::start_with_args(&["--bank-mode", "fail"]);
    let (token, card) = ready_to_pay(&server);
    let declined = top_up(&server, &token, Some("order-1"), &card, 2_500, PIN);
    assert_eq!(
        (declined.status, declined.code()),
        (422, "BANK_DECLINED".into())
    );
    assert_eq!(balance_minor(&server, &token), 0);
}

fn withdraw(
    server: &Server,
    token: &str,
    key: &str,
    card: &str,
    amount: u64,
) -> crate::support::Response {
    let body = format!(r#"{{"card_token":"{card}","amount_minor":{amount},"pin":"{PIN}"}}"#);
    server.send_keyed("POST", "/api/v1/withdrawals", token, Some(key), &body)
}

#[test]
fn withdrawals_show_their_fee_and_pay_out_once() {
    let server = Server::start();
    let (token, card) = ready_to_pay(&server);
    assert_eq!(
        top_up(&server, &token, Some("in"), &card, 200_000, PIN).status,
        201
    );
    let quote = server.send(
        "GET",
        "/api/v1/withdrawals/quote?amount_minor=150000",
        "",
        Some(&token),
    );
    assert_eq!(quote.status, 200, "{}", quote.body);
    assert_eq!(
        (
            quote.json()["fee_minor"].as_u64(),
            quote.json()["debit_minor"].as_u64()
        ),
        (Some(50), Some(150_050))
    );
    let done = withdraw(&server, &token, "out-1", &card, 150_000);
    assert_eq!(done.status, 201, "{}", done.body);
    assert_eq!(
        withdraw(&server, &token, "out-1", &card, 150_000).json()["transfer_id"],
        done.json()["transfer_id"]
    );
    assert_eq!(balance_minor(&server, &token), 200_000 - 150_050);
    let broke = withdraw(&server, &token, "out-2", &card, 60_000);
    assert_eq!(
        (broke.status, broke.code()),
        (422, "EXCEEDS_BALANCE".into())
    );
    assert_eq!(balance_minor(&server, &token), 49_950);
}

#[test]
fn a_declined_withdrawal_moves_nothing_and_gives_the_quota_back() {
    let server = Server::start_with_args(&["--bank-mode", "fail"]);
    let token = signed_up(&server, PHONE);
    let pin = format!(r#"{{"password":"long enough password","pin":"{PIN}"}}"#);
    assert_eq!(
        server.send("PUT", "/api/v1/pin", &pin, Some(&token)).status,
        204
    );
    let verification = format!(r#"{{"name":"张三","id_number":"{ID_NUMBER}"}}"#);
    assert_eq!(
        server
            .send("POST", "/api/v1/verification", &verification, Some(&token))
            .status,
        200
    );
    let binding = format!(
        r#"{{"card_number":"{CARD}","name":"张三","id_number":"{ID_NUMBER}","phone":"{PHONE}"}}"#
    );
    let card = server
        .send("POST", "/api/v1/cards", &binding, Some(&token))
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The bank declines everything, so the wallet is empty: the ledger refuses first.
    let refused = withdraw(&server, &token, "out-1", &card, 100);
    assert_eq!(
        (refused.status, refused.code()),
        (422, "EXCEEDS_BALANCE".into())
    );
    let quote = server.send(
        "GET",
        "/api/v1/withdrawals/quote?amount_minor=100000",
        "",
        Some(&token),
    );
    assert_eq!(
        quote.json()["free_minor"],
        100_000,
        "the whole quota is still there"
    );
}

#[test]
fn the_operator_switches_the_bank_while_the_server_runs() {
    let server = Server::start();
    let operator = server.operator_token();
    let set_bank =
        |token: &str, body: &str| server.send("PUT", "/api/v1/operator/bank", body, Some(token));
    let (token, card) = ready_to_pay(&server);

    // Only the operator token opens the operator's calls: not a person's session, not a guess.
    for wrong in [token.as_str(), "0123456789abcdef0123456789abcdef"] {
        let refused = set_bank(wrong, r#"{"mode":"fail"}"#);
        assert_eq!(
            (refused.status, refused.code()),
            (401, "OPERATOR_UNAUTHORIZED".into())
        );
    }
    let refused = server.get("/api/v1/operator/bank");
    assert_eq!(refused.status, 401);
    let invalid = set_bank(&operator, r#"{"mode":"sometimes"}"#);
    assert_eq!(
        (invalid.status, invalid.code()),
        (422, "BANK_MODE_INVALID".into())
    );
    let shown = server.send("GET", "/api/v1/operator/bank", "", Some(&operator));
    assert_eq!(
        (shown.status, shown.json()["mode"].as_str()),
        (200, Some("normal"))
    );

    // The bank stops answering before it does anything: the top-up is pending, nothing moved.
    let set = set_bank(&operator, r#"{"mode":"timeout_before_work"}"#);
    assert_eq!(
        (set.status, set.json()["mode"].as_str()),
        (200, Some("timeout_before_work"))
    );
    let pending = top_up(&server, &token, Some("order-1"), &card, 2_500, PIN);
    assert_eq!((pending.status, pending.code()), (202, "PROCESSING".into()));
    assert_eq!(balance_minor(&server, &token), 0);

    // The bank is back: the same request, retried, settles it once.
    assert_eq!(set_bank(&operator, r#"{"mode":"normal"}"#).status, 200);
    for _ in 0..2 {
        let done = top_up(&server, &token, Some("order-1"), &card, 2_500, PIN);
        assert_eq!(done.status, 201, "{}", done.body);
    }
    assert_eq!(balance_minor(&server, &token), 2_500);
    assert!(
        !server.log().contains(&operator),
        "the operator token reached the log"
    );
}

#[test]
fn a_withdrawal_nobody_retries_is_finished_by_the_reconciler() {
    let server = Server::start_with_args(&["--reconcile-after-ms", "300"]);
    let operator = server.operator_token();
    let set_bank = |mode: &str| {
        let body = format!(r#"{{"mode":"{mode}"}}"#);
        let set = server.send("PUT", "/api/v1/operator/bank", &body, Some(&operator));
        assert_eq!(set.status, 200, "{}", set.body);
    };
    let (token, card) = ready_to_pay(&server);
    assert_eq!(
        top_up(&server, &token, Some("in"), &card, 200_000, PIN).status,
        201
    );
    let wallet = || {
        server
            .send("GET", "/api/v1/wallet", "", Some(&token))
            .json()
    };

    // The bank never sees the request: the money is held, the caller told to wait.
    set_bank("timeout_before_work");
    let pending = withdraw(&server, &token, "out-1", &card, 150_000);
    assert_eq!((pending.status, pending.code()), (202, "PROCESSING".into()));
    assert_eq!(wallet()["available_minor"], 200_000 - 150_050);
    assert_eq!(wallet()["balance_minor"], 200_000);

    // Nobody retries; once the bank is back, the reconciler sends the same request and settles.
    set_bank("normal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wallet()["balance_minor"] != 200_000 - 150_050 {
        assert!(
            std::time::Instant::now() < deadline,
            "never reconciled: {}",
            wallet()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(wallet()["available_minor"], 200_000 - 150_050);
    assert!(
        server.log().contains("reconciled withdrawals: 1 paid"),
        "{}",
        server.log()
    );

    // A late retry by the caller finds it done: paid once, nothing moves again.
    let retried = withdraw(&server, &token, "out-1", &card, 150_000);
    assert_eq!(retried.status, 201, "{}", retried.body);
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert_eq!(wallet()["balance_minor"], 200_000 - 150_050);
    assert_eq!(wallet()["available_minor"], 200_000 - 150_050);
}
