//! Codes over HTTP: a person's receive code paid at once within the static-code cap, one-time
//! pay codes spent on first use, and a device's offline codes.

use crate::funding::{PIN, balance_minor, ready_to_pay, top_up};
use crate::support::Server;
use crate::wallet::signed_up;

fn verified(server: &Server, phone: &str) -> String {
    let token = signed_up(server, phone);
    let id = zhifu_domain::wallet::identity::make::id_number("11010519800101077");
    let body = format!(r#"{{"name":"李四","id_number":"{id}"}}"#);
    let verified = server.send("POST", "/api/v1/verification", &body, Some(&token));
    assert_eq!(verified.status, 200, "{}", verified.body);
    token
}

#[test]
fn a_receive_code_is_paid_at_once_within_the_static_cap() {
    let server = Server::start();
    let (alice, card) = ready_to_pay(&server);
    assert_eq!(
        top_up(&server, &alice, Some("in"), &card, 100_000, PIN).status,
        201
    );
    let bob = verified(&server, "13900000002");
    let pay = |key: &str, body: &str| {
        server.send_keyed(
            "POST",
            "/api/v1/receive-code/payments",
            &alice,
            Some(key),
            body,
        )
    };

    // Bob's code asks for 300.00; Alice pays it; it is Bob's at once, once per key.
    let code = server.send(
        "GET",
        "/api/v1/receive-code?amount_minor=30000",
        "",
        Some(&bob),
    );
    assert_eq!(code.status, 200, "{}", code.body);
    let payload = code.json()["payload"].as_str().unwrap().to_owned();
    assert!(
        payload.starts_with("000201") && payload.contains("5406300.00"),
        "{payload}"
    );
    let body = format!(r#"{{"payload":"{payload}","pin":"{PIN}"}}"#);
    let paid = pay("scan-1", &body);
    assert_eq!(paid.status, 201, "{}", paid.body);
    assert_eq!(paid.json()["state"], "accepted");
    assert_eq!(
        pay("scan-1", &body).json()["transfer_id"],
        paid.json()["transfer_id"]
    );
    assert_eq!(balance_minor(&server, &bob), 30_000);

    // The open code: Alice enters the amount. 200.00 more reaches the 500.00 cap; 0.01 is over.
    let open = server
        .send("GET", "/api/v1/receive-code", "", Some(&bob))
        .json()["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    let amount =
        |minor: u64| format!(r#"{{"payload":"{open}","amount_minor":{minor},"pin":"{PIN}"}}"#);
    assert_eq!(pay("scan-2", &amount(20_000)).status, 201);
    let capped = pay("scan-3", &amount(1));
    assert_eq!(
        (capped.status, capped.code()),
        (403, "LIMIT_STATIC_CODE_DAILY".into())
    );

    // Ugly input: a damaged code, no amount, a wrong PIN, a person's own code, bad JSON.
    let damaged = format!("{}X", &open[..open.len() - 1]);
    let body = format!(r#"{{"payload":"{damaged}","amount_minor":100,"pin":"{PIN}"}}"#);
    assert_eq!(pay("scan-4", &body).code(), "BAD_CRC");
    let body = format!(r#"{{"payload":"{open}","pin":"{PIN}"}}"#);
    assert_eq!(pay("scan-5", &body).code(), "AMOUNT_MISSING");
    let body = format!(r#"{{"payload":"{open}","amount_minor":100,"pin":"111111"}}"#);
    assert_eq!(pay("scan-6", &body).status, 403);
    let own = server
        .send("GET", "/api/v1/receive-code", "", Some(&alice))
        .json()["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = format!(r#"{{"payload":"{own}","amount_minor":100,"pin":"{PIN}"}}"#);
    assert_eq!(pay("scan-7", &body).code(), "PAYEE_IS_PAYER");
    assert_eq!(pay("scan-8", r#"{"payload":1}"#).status, 422);
    let unverified = signed_up(&server, "13900000003");
    let refused = server.send("GET", "/api/v1/receive-code", "", Some(&unverified));
    assert_eq!(
        (refused.status, refused.code()),
        (403, "RECIPIENT_UNVERIFIED".into())
    );
    assert_eq!(balance_minor(&server, &bob), 50_000);
    assert_eq!(balance_minor(&server, &alice), 50_000);
}

#[test]
fn pay_codes_are_spent_on_first_use_online_and_offline() {
    let server = Server::start();
    let operator = server.operator_token();
    let alice = verified(&server, "13900000001");
    let me = server.send("GET", "/api/v1/me", "", Some(&alice)).json()["user_id"].clone();
    let redeem = |code: &str, token: &str| {
        let body = format!(r#"{{"code":"{code}","redeemer":"shop-1"}}"#);
        server.send(
            "POST",
            "/api/v1/operator/pay-codes/redeem",
            &body,
            Some(token),
        )
    };

    let issued = server.send("POST", "/api/v1/pay-codes", "", Some(&alice));
    assert_eq!(issued.status, 201, "{}", issued.body);
    let code = issued.json()["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 18);
    assert_eq!(redeem(&code, &alice).status, 401, "a person cannot redeem");
    let redeemed = redeem(&code, &operator);
    assert_eq!(
        (redeemed.status, redeemed.json()["user_id"].clone()),
        (200, me.clone())
    );
    let again = redeem(&code, &operator);
    assert_eq!((again.status, again.code()), (409, "PAY_CODE_SPENT".into()));
    let other = format!("28{}", &code[2..]);
    assert_eq!(
        redeem(&other, &operator).code(),
        "PAY_CODE_OTHER_INSTITUTION"
    );
    assert_eq!(redeem("12345", &operator).code(), "PAY_CODE_MALFORMED");
    assert!(!server.log().contains(&code), "a pay code reached the log");

    // A device makes its codes offline; the server recognises them, once.
    let device = server
        .send("POST", "/api/v1/pay-devices", "", Some(&alice))
        .json();
    let secret: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&device["secret_hex"].as_str().unwrap()[i..i + 2], 16).unwrap())
        .collect();
    let step_ms = device["step_ms"].as_i64().unwrap();
    let now_ms = std::time::UNIX_EPOCH.elapsed().unwrap().as_millis() as i64;
    let offline = zhifu_domain::wallet::pay_codes::offline_code(
        device["prefix"].as_str().unwrap(),
        device["device_no"].as_u64().unwrap(),
        &secret,
        now_ms / step_ms,
    );
    assert_eq!(redeem(&offline, &operator).json()["user_id"], me);
    assert_eq!(redeem(&offline, &operator).code(), "PAY_CODE_SPENT");
}

/// `POST /scan` with a picture, as the page's form sends it.
fn upload(server: &Server, token: &str, picture: &[u8]) -> crate::support::Response {
    let boundary = "zhifu-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"code.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(picture);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut raw = format!(
        "POST /scan HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nCookie: zhifu_session={token}; zhifu_lang=en\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        server.address,
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    server.request_bytes(&raw)
}

#[test]
fn a_picture_of_a_code_is_read_and_a_non_picture_refused() {
    let server = Server::start();
    let alice = verified(&server, "13900000011");
    let bob = verified(&server, "13900000012");
    let payload = server
        .send(
            "GET",
            "/api/v1/receive-code?amount_minor=888",
            "",
            Some(&bob),
        )
        .json()["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    let png =
        zhifu_qr_image::render_png(&payload, zhifu_qr_image::RenderOptions::default()).unwrap();
    let read = upload(&server, &alice, &png);
    assert_eq!(read.status, 200, "{}", read.body);
    assert!(read.body.contains("id=\"payee\""), "{}", read.body);
    assert!(read.body.contains("¥8.88"), "{}", read.body);

    let refused = upload(&server, &alice, b"this is not a picture");
    assert_eq!(refused.status, 200);
    assert!(
        refused.body.contains("This picture cannot be read"),
        "{}",
        refused.body
    );
}
