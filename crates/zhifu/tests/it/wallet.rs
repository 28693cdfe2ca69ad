//! A new person's wallet: an empty balance and statement, and the ugly queries.

use crate::support::Server;

/// Signs someone up and logs them in; returns the session token.
pub fn signed_up(server: &Server, phone: &str) -> String {
    let body = format!(r#"{{"phone":"{phone}","password":"long enough password"}}"#);
    let created = server.send("POST", "/api/v1/users", &body, None);
    assert_eq!(created.status, 201, "{}", created.body);
    let session = server.send("POST", "/api/v1/sessions", &body, None);
    assert_eq!(session.status, 201, "{}", session.body);
    session.json()["token"].as_str().unwrap().to_owned()
}

#[test]
fn a_new_wallet_is_empty() {
    let server = Server::start();
    let token = signed_up(&server, "13812345678");
    let wallet = server.send("GET", "/api/v1/wallet", "", Some(&token));
    assert_eq!(wallet.status, 200, "{}", wallet.body);
    let wallet = wallet.json();
    assert_eq!(
        (
            &wallet["currency"],
            &wallet["balance_minor"],
            &wallet["balance"]
        ),
        (&"CNY".into(), &0.into(), &"0.00".into())
    );
    let statement = server.send("GET", "/api/v1/wallet/statement?limit=5", "", Some(&token));
    assert_eq!(statement.status, 200, "{}", statement.body);
    assert_eq!(statement.json()["entries"], serde_json::json!([]));
    assert!(statement.json()["next"].is_null());

    for query in ["?limit=abc", "?before=yesterday", "?color=red", "?limit=-1"] {
        let refused = server.send(
            "GET",
            &format!("/api/v1/wallet/statement{query}"),
            "",
            Some(&token),
        );
        assert_eq!(
            (refused.status, refused.code()),
            (400, "QUERY_INVALID".into()),
            "{query}"
        );
    }
    let anonymous = server.send("GET", "/api/v1/wallet", "", None);
    assert_eq!(anonymous.status, 401);
}

#[test]
fn the_statement_filters_by_kind_and_direction_across_pages() {
    use crate::funding::{PIN, ready_to_pay, top_up};
    let server = Server::start();
    let (token, card) = ready_to_pay(&server);
    for n in 0..5 {
        let key = format!("in-{n}");
        assert_eq!(
            top_up(&server, &token, Some(&key), &card, 1_000 + n, PIN).status,
            201
        );
    }
    let bob = signed_up(&server, "13900000021");
    let id = zhifu_domain::wallet::identity::make::id_number("11010519800101088");
    let body = format!(r#"{{"name":"王五","id_number":"{id}"}}"#);
    assert_eq!(
        server
            .send("POST", "/api/v1/verification", &body, Some(&bob))
            .status,
        200
    );
    for n in 0..3 {
        let body = format!(
            r#"{{"to_phone":"13900000021","amount_minor":{},"pin":"{PIN}"}}"#,
            100 + n
        );
        let sent = server.send_keyed(
            "POST",
            "/api/v1/transfers",
            &token,
            Some(&format!("out-{n}")),
            &body,
        );
        assert_eq!(sent.status, 201, "{}", sent.body);
    }
    let page = |query: &str| {
        let got = server.send(
            "GET",
            &format!("/api/v1/wallet/statement{query}"),
            "",
            Some(&token),
        );
        assert_eq!(got.status, 200, "{query}: {}", got.body);
        got.json()
    };
    let top_ups = page("?kind=top_up&limit=2");
    assert_eq!(top_ups["entries"].as_array().unwrap().len(), 2);
    assert!(
        top_ups["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "top_up")
    );
    let mut seen = 2;
    let mut next = top_ups["next"].as_str().map(str::to_owned);
    while let Some(cursor) = next {
        let more = page(&format!("?kind=top_up&limit=2&before={cursor}"));
        seen += more["entries"].as_array().unwrap().len();
        next = more["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 5);
    let out = page("?direction=out");
    let amounts: Vec<_> = out["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["amount_minor"].as_i64().unwrap())
        .collect();
    assert_eq!(
        amounts,
        [-102, -101, -100],
        "held transfers show as money out"
    );
    assert_eq!(
        page("?kind=transfer&direction=in")["entries"],
        serde_json::json!([])
    );
    assert_eq!(page("?kind=red_packet")["entries"], serde_json::json!([]));
    for query in ["?kind=bribe", "?direction=sideways"] {
        let refused = server.send(
            "GET",
            &format!("/api/v1/wallet/statement{query}"),
            "",
            Some(&token),
        );
        assert_eq!(
            (refused.status, refused.code()),
            (400, "QUERY_INVALID".into()),
            "{query}"
        );
    }
}
