//! Transfers between people over HTTP: held, accepted, returned, and the refusals.

use crate::support::Server;
use crate::wallet::signed_up;

const PIN: &str = "802514";

/// Signs up, sets the PIN, verifies (with a distinct ID per person) and, when asked, tops up.
pub(crate) fn person(server: &Server, phone: &str, id_number: &str, top_up_minor: u64) -> String {
    let token = signed_up(server, phone);
    let pin = format!(r#"{{"password":"long enough password","pin":"{PIN}"}}"#);
    assert_eq!(
        server.send("PUT", "/api/v1/pin", &pin, Some(&token)).status,
        204
    );
    let verification = format!(r#"{{"name":"王五","id_number":"{id_number}"}}"#);
    assert_eq!(
        server
            .send("POST", "/api/v1/verification", &verification, Some(&token))
            .status,
        200
    );
    if top_up_minor > 0 {
        // A card of the person's own: the bank knows each card's holder.
        let card = zhifu_domain::wallet::identity::make::card_number(&format!("622202{phone}"));
        let binding = format!(
            r#"{{"card_number":"{card}","name":"王五","id_number":"{id_number}","phone":"{phone}"}}"#
        );
        let bound = server.send("POST", "/api/v1/cards", &binding, Some(&token));
        assert_eq!(bound.status, 201, "{}", bound.body);
        let card_token = bound.json()["token"].as_str().unwrap().to_owned();
        let body = format!(
            r#"{{"card_token":"{card_token}","amount_minor":{top_up_minor},"pin":"{PIN}"}}"#
        );
        let topped = keyed(server, "POST", "/api/v1/top-ups", &token, "fund", &body);
        assert_eq!(topped.status, 201, "{}", topped.body);
    }
    token
}

fn keyed(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    key: &str,
    body: &str,
) -> crate::support::Response {
    server.send_keyed(method, path, token, Some(key), body)
}

fn balance(server: &Server, token: &str) -> (i64, i64) {
    let wallet = server.send("GET", "/api/v1/wallet", "", Some(token)).json();
    (
        wallet["balance_minor"].as_i64().unwrap(),
        wallet["available_minor"].as_i64().unwrap(),
    )
}

#[test]
fn a_transfer_waits_for_its_payee() {
    let server = Server::start();
    let alice = person(&server, "13812345678", "11010519491231002X", 50_000);
    let bob = person(&server, "13912345678", "110105200002291235", 0);
    let send = |key: &str, amount: u64, to: &str| {
        let body = format!(r#"{{"to_phone":"{to}","amount_minor":{amount},"pin":"{PIN}"}}"#);
        keyed(&server, "POST", "/api/v1/transfers", &alice, key, &body)
    };
    let sent = send("t1", 12_000, "13912345678");
    assert_eq!(sent.status, 201, "{}", sent.body);
    assert_eq!(sent.json()["state"], "held");
    assert_eq!(balance(&server, &alice), (50_000, 38_000));
    let id = sent.json()["transfer_id"].as_str().unwrap().to_owned();
    let listed = server
        .send("GET", "/api/v1/transfers", "", Some(&bob))
        .json();
    assert_eq!(listed["transfers"][0]["direction"], "received");
    assert_eq!(balance(&server, &bob), (0, 0));

    let accepted = server.send(
        "POST",
        &format!("/api/v1/transfers/{id}/accept"),
        "",
        Some(&bob),
    );
    assert_eq!(
        (accepted.status, accepted.json()["state"].as_str()),
        (200, Some("accepted"))
    );
    assert_eq!(balance(&server, &bob), (12_000, 12_000));

    // Receipts: each side sees the other masked; nobody else sees it at all.
    let statement = server
        .send("GET", "/api/v1/wallet/statement", "", Some(&alice))
        .json();
    let entries = statement["entries"].as_array().unwrap();
    let paid = entries
        .iter()
        .find(|e| e["amount_minor"] == -12_000)
        .expect("the accepted transfer");
    let paid_id = paid["transfer_id"].as_str().unwrap();
    let receipt = server.send(
        "GET",
        &format!("/api/v1/receipts/{paid_id}"),
        "",
        Some(&alice),
    );
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    assert_eq!(receipt.json()["counterparty"], "139****5678");
    let theirs = server.send(
        "GET",
        &format!("/api/v1/receipts/{paid_id}"),
        "",
        Some(&bob),
    );
    assert_eq!(theirs.json()["counterparty"], "138****5678");
    assert_eq!(theirs.json()["amount_minor"], 12_000);
    let top_up = entries.iter().find(|e| e["code"] == 1).expect("the top-up");
    let top_up_id = top_up["transfer_id"].as_str().unwrap();
    let mine = server.send(
        "GET",
        &format!("/api/v1/receipts/{top_up_id}"),
        "",
        Some(&alice),
    );
    assert_eq!(mine.json()["counterparty"], "bank card");
    let not_bobs = server.send(
        "GET",
        &format!("/api/v1/receipts/{top_up_id}"),
        "",
        Some(&bob),
    );
    assert_eq!(
        (not_bobs.status, not_bobs.code()),
        (404, "NOT_FOUND".into())
    );
    assert_eq!(
        server
            .send("GET", "/api/v1/receipts/not-a-number", "", Some(&bob))
            .status,
        404
    );

    let again = server.send(
        "POST",
        &format!("/api/v1/transfers/{id}/return"),
        "",
        Some(&bob),
    );
    assert_eq!(
        (again.status, again.code()),
        (409, "TRANSFER_NOT_HELD".into())
    );

    let second = send("t2", 3_000, "13912345678").json()["transfer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A retry from a payer who paid a moment ago (in memory, so it starts on the request's own
    // task) is told what the first try did.
    let retried = send("t2", 3_000, "13912345678");
    assert_eq!(
        (retried.status, retried.json()["transfer_id"].as_str()),
        (201, Some(second.as_str())),
        "{}",
        retried.body
    );
    let by_payer = server.send(
        "POST",
        &format!("/api/v1/transfers/{second}/accept"),
        "",
        Some(&alice),
    );
    assert_eq!(
        (by_payer.status, by_payer.code()),
        (404, "TRANSFER_NOT_FOUND".into())
    );
    assert_eq!(
        server
            .send(
                "POST",
                &format!("/api/v1/transfers/{second}/return"),
                "",
                Some(&bob)
            )
            .status,
        200
    );
    assert_eq!(balance(&server, &alice), (38_000, 38_000));

    for (key, amount, to, status, code) in [
        ("t3", 100, "13812345678", 422, "PAYEE_IS_PAYER"),
        ("t3", 100, "13700000000", 404, "PAYEE_NOT_FOUND"),
        ("t3", 0, "13912345678", 422, "AMOUNT_INVALID"),
        ("t3", 38_001, "13912345678", 422, "EXCEEDS_BALANCE"),
        ("t1", 99, "13912345678", 409, "IDEMPOTENCY_KEY_REUSED"),
    ] {
        let refused = send(key, amount, to);
        assert_eq!(
            (refused.status, refused.code()),
            (status, code.into()),
            "{key} {amount} {to}"
        );
    }
    // Delayed arrival: cancelled by the payer inside the window; an unknown arrival refused.
    let body =
        format!(r#"{{"to_phone":"13912345678","amount_minor":500,"pin":"{PIN}","arrival":"2h"}}"#);
    let delayed = keyed(&server, "POST", "/api/v1/transfers", &alice, "t5", &body);
    assert_eq!(
        (delayed.status, delayed.json()["state"].as_str()),
        (201, Some("scheduled")),
        "{}",
        delayed.body
    );
    let delayed_id = delayed.json()["transfer_id"].as_str().unwrap().to_owned();
    let early = server.send(
        "POST",
        &format!("/api/v1/transfers/{delayed_id}/accept"),
        "",
        Some(&bob),
    );
    assert_eq!(
        (early.status, early.code()),
        (409, "TRANSFER_NOT_YET_ARRIVED".into())
    );
    let cancelled = server.send(
        "POST",
        &format!("/api/v1/transfers/{delayed_id}/cancel"),
        "",
        Some(&alice),
    );
    assert_eq!(
        (cancelled.status, cancelled.json()["state"].as_str()),
        (200, Some("cancelled"))
    );
    let body =
        format!(r#"{{"to_phone":"13912345678","amount_minor":500,"pin":"{PIN}","arrival":"1h"}}"#);
    let refused = keyed(&server, "POST", "/api/v1/transfers", &alice, "t6", &body);
    assert_eq!(
        (refused.status, refused.code()),
        (422, "ARRIVAL_INVALID".into())
    );

    signed_up(&server, "13600000000");
    let refused = send("t4", 100, "13600000000");
    assert_eq!(
        (refused.status, refused.code()),
        (403, "RECIPIENT_UNVERIFIED".into())
    );
    assert_eq!(
        balance(&server, &alice),
        (38_000, 38_000),
        "no refusal moved money"
    );
}
