//! A lucky red packet grabbed by more people than it has shares, all at once, over HTTP.

use crate::support::Server;
use crate::wallet::signed_up;
use std::sync::Arc;
use zhifu_domain::wallet::identity::make;

const PIN: &str = "802514";

fn verified(server: &Server, phone: &str, n: u32) -> String {
    let token = signed_up(server, phone);
    let id = make::id_number(&format!("11010519800101{:03}", n));
    let body = format!(r#"{{"name":"赵六","id_number":"{id}"}}"#);
    let verified = server.send("POST", "/api/v1/verification", &body, Some(&token));
    assert_eq!(verified.status, 200, "{}", verified.body);
    token
}

fn keyed(
    server: &Server,
    path: &str,
    token: &str,
    key: &str,
    body: &str,
) -> crate::support::Response {
    server.send_keyed("POST", path, token, Some(key), body)
}

#[test]
fn exactly_as_many_winners_as_shares() {
    let server = Arc::new(Server::start());
    // The sender: PIN, a card, 200.00 yuan.
    let sender = verified(&server, "13800000000", 999);
    let pin = format!(r#"{{"password":"long enough password","pin":"{PIN}"}}"#);
    assert_eq!(
        server
            .send("PUT", "/api/v1/pin", &pin, Some(&sender))
            .status,
        204
    );
    let id = make::id_number("11010519800101999");
    let binding = format!(
        r#"{{"card_number":"6222021234567890128","name":"赵六","id_number":"{id}","phone":"13800000000"}}"#
    );
    let card = server.send("POST", "/api/v1/cards", &binding, Some(&sender));
    let card = card.json()["token"].as_str().unwrap().to_owned();
    let top_up = format!(r#"{{"card_token":"{card}","amount_minor":20000,"pin":"{PIN}"}}"#);
    assert_eq!(
        keyed(&server, "/api/v1/top-ups", &sender, "fund", &top_up).status,
        201
    );

    let send = |kind: &str, amount: u64, shares: u32, key: &str| {
        let body = format!(
            r#"{{"kind":"{kind}","amount_minor":{amount},"shares":{shares},"pin":"{PIN}"}}"#
        );
        keyed(&server, "/api/v1/red-packets", &sender, key, &body)
    };
    for (kind, amount, shares, status, code) in [
        ("lucky", 20_001, 10, 422, "RED_PACKET_TOO_LARGE"),
        ("lucky", 5, 10, 422, "RED_PACKET_SHARE_TOO_SMALL"),
        ("lucky", 100, 0, 422, "RED_PACKET_SHARES"),
        ("lucky", 100, 101, 422, "RED_PACKET_SHARES"),
        ("golden", 100, 1, 422, "RED_PACKET_KIND_INVALID"),
    ] {
        let refused = send(kind, amount, shares, "bad");
        assert_eq!(
            (refused.status, refused.code()),
            (status, code.into()),
            "{kind} {amount} {shares}"
        );
    }
    let sent = send("lucky", 10_000, 10, "packet-1");
    assert_eq!(sent.status, 201, "{}", sent.body);
    let packet = sent.json()["packet_id"].as_str().unwrap().to_owned();

    let grabbers: Vec<String> = (0..25)
        .map(|n| verified(&server, &format!("139{:08}", n), n))
        .collect();
    let threads: Vec<_> = grabbers
        .iter()
        .cloned()
        .map(|token| {
            let (server, packet) = (server.clone(), packet.clone());
            std::thread::spawn(move || {
                let response = server.send(
                    "POST",
                    &format!("/api/v1/red-packets/{packet}/grab"),
                    "",
                    Some(&token),
                );
                (token, response.status, response.body)
            })
        })
        .collect();
    let mut total = 0;
    let mut winners = 0;
    for thread in threads {
        let (token, status, body) = thread.join().unwrap();
        match status {
            200 => {
                let amount =
                    serde_json::from_str::<serde_json::Value>(&body).unwrap()["amount_minor"]
                        .as_i64()
                        .unwrap();
                let wallet = server
                    .send("GET", "/api/v1/wallet", "", Some(&token))
                    .json();
                assert_eq!(wallet["balance_minor"].as_i64(), Some(amount));
                total += amount;
                winners += 1;
            }
            409 => assert!(body.contains("RED_PACKET_SOLD_OUT"), "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!((winners, total), (10, 10_000));
    let sender_wallet = server
        .send("GET", "/api/v1/wallet", "", Some(&sender))
        .json();
    assert_eq!(sender_wallet["balance_minor"], 10_000);
}
