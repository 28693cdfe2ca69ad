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
