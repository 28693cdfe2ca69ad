//! Sign-up, log-in, me and log-out over HTTP, with the ugly inputs.

use crate::support::Server;

const PHONE: &str = "13812345678";
const PASSWORD: &str = "correct horse battery";

#[test]
fn a_person_signs_up_logs_in_and_out() {
    let server = Server::start();
    let body = format!(r#"{{"phone":"{PHONE}","password":"{PASSWORD}"}}"#);
    let created = server.send("POST", "/api/v1/users", &body, None);
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.json()["phone_masked"], "138****5678");
    let again = server.send("POST", "/api/v1/users", &body, None);
    assert_eq!((again.status, again.code()), (409, "PHONE_TAKEN".into()));

    let wrong = server.send(
        "POST",
        "/api/v1/sessions",
        &format!(r#"{{"phone":"{PHONE}","password":"wrong horse battery"}}"#),
        None,
    );
    assert_eq!(
        (wrong.status, wrong.code()),
        (401, "CREDENTIALS_WRONG".into())
    );
    let session = server.send("POST", "/api/v1/sessions", &body, None);
    assert_eq!(session.status, 201, "{}", session.body);
    let token = session.json()["token"].as_str().unwrap().to_owned();
    assert!(
        session.json()["expires_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let me = server.send("GET", "/api/v1/me", "", Some(&token));
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["user_id"], created.json()["user_id"]);

    let nobody = server.send("GET", "/api/v1/me", "", None);
    assert_eq!(
        (nobody.status, nobody.code()),
        (401, "SESSION_MISSING".into())
    );
    let forged = server.send("GET", "/api/v1/me", "", Some(&"0".repeat(64)));
    assert_eq!(
        (forged.status, forged.code()),
        (401, "SESSION_INVALID".into())
    );

    assert_eq!(
        server
            .send("DELETE", "/api/v1/sessions/current", "", Some(&token))
            .status,
        204
    );
    let after = server.send("GET", "/api/v1/me", "", Some(&token));
    assert_eq!(
        (after.status, after.code()),
        (401, "SESSION_INVALID".into())
    );

    // Nothing secret reached the log.
    let log = server.log();
    for secret in [PHONE, PASSWORD, token.as_str()] {
        assert!(!log.contains(secret), "the log shows {secret}: {log}");
    }
}

#[test]
fn bad_sign_ups_get_clear_errors_and_create_nobody() {
    let server = Server::start();
    for (body, status, code) in [
        ("{", 400, "JSON_MALFORMED"),
        ("not json at all", 400, "JSON_MALFORMED"),
        (r#"{"phone":"13812345678"}"#, 422, "JSON_INVALID"),
        (
            r#"{"phone":13812345678,"password":"long enough"}"#,
            422,
            "JSON_INVALID",
        ),
        (
            r#"{"phone":"13812345678","password":"long enough","admin":true}"#,
            422,
            "JSON_INVALID",
        ),
        (
            r#"{"phone":"12345","password":"long enough"}"#,
            422,
            "PHONE_INVALID",
        ),
        (
            r#"{"phone":"13812345678","password":"short"}"#,
            422,
            "PASSWORD_TOO_SHORT",
        ),
    ] {
        let response = server.send("POST", "/api/v1/users", body, None);
        assert_eq!(
            (response.status, response.code()),
            (status, code.into()),
            "{body}"
        );
    }
    let untyped = server.request(&format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{{}}",
        server.address
    ));
    assert_eq!(
        (untyped.status, untyped.code()),
        (415, "CONTENT_TYPE_NOT_JSON".into())
    );
    // None of them created the account: the phone is still free.
    let created = server.send(
        "POST",
        "/api/v1/users",
        r#"{"phone":"13812345678","password":"long enough"}"#,
        None,
    );
    assert_eq!(created.status, 201, "{}", created.body);
}

#[test]
fn the_payment_pin_locks_out_and_the_lock_survives_a_restart() {
    let server = Server::start();
    let token = crate::wallet::signed_up(&server, PHONE);
    let set = |server: &Server, password: &str, pin: &str| {
        let body = format!(r#"{{"password":"{password}","pin":"{pin}"}}"#);
        server.send("PUT", "/api/v1/pin", &body, Some(&token))
    };
    let check = |server: &Server, pin: &str| {
        server.send(
            "POST",
            "/api/v1/pin/check",
            &format!(r#"{{"pin":"{pin}"}}"#),
            Some(&token),
        )
    };
    assert_eq!(check(&server, "802514").code(), "PIN_NOT_SET");
    assert_eq!(
        set(&server, "wrong password", "802514").code(),
        "PASSWORD_WRONG"
    );
    let trivial = set(&server, "long enough password", "111111");
    assert_eq!(
        (trivial.status, trivial.code()),
        (422, "PIN_TRIVIAL".into())
    );
    assert_eq!(set(&server, "long enough password", "802514").status, 204);
    assert_eq!(check(&server, "802514").status, 204);
    for _ in 0..5 {
        let wrong = check(&server, "000001");
        assert_eq!((wrong.status, wrong.code()), (403, "PIN_WRONG".into()));
    }
    let server = server.restart();
    let locked = check(&server, "802514");
    assert_eq!(
        (locked.status, locked.code()),
        (429, "PIN_LOCKED".into()),
        "{}",
        locked.body
    );
    assert!(locked.json()["detail"]["locked_until"].as_str().is_some());
    // A payment that meets the lock says the same, with the same detail.
    let body = r#"{"to_phone":"13912345678","amount_minor":100,"pin":"802514"}"#;
    let payment = server.send_keyed("POST", "/api/v1/transfers", &token, Some("pay-1"), body);
    assert_eq!(
        (payment.status, payment.code()),
        (429, "PIN_LOCKED".into()),
        "{}",
        payment.body
    );
    assert_eq!(payment.json()["detail"], locked.json()["detail"]);
    // Nothing about the PIN reached the log.
    assert!(!server.log().contains("802514"));
}
