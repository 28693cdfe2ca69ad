//! The signed merchant API over HTTP, tested as a merchant would use it: a client that signs
//! with its RSA key and one that signs with Ed25519 (written here from `docs/merchant-api.md`,
//! not from the server's code), every response checked against the platform keys fetched from
//! `/merchant/v1/platform-keys`; the signature matrix; key rotation; service providers and
//! their sub-merchants; and the operator's calls that set merchants up.

use crate::support::{Response, Server};
use base64ct::{Base64, Encoding};
use ed25519_dalek::Signer;
use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::pkcs8::LineEnding;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A merchant's private key.
pub(crate) enum PrivateKey {
    Rsa(Box<rsa::PrivateKey>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl PrivateKey {
    fn scheme(&self) -> &'static str {
        match self {
            PrivateKey::Rsa(_) => "ZHIFU-RSA-SHA256",
            PrivateKey::Ed25519(_) => "ZHIFU-ED25519",
        }
    }

    fn algorithm(&self) -> &'static str {
        match self {
            PrivateKey::Rsa(_) => "RSA-SHA256",
            PrivateKey::Ed25519(_) => "Ed25519",
        }
    }

    fn public_pem(&self) -> String {
        match self {
            PrivateKey::Rsa(key) => key.to_public_key().to_public_key_pem(LineEnding::LF),
            PrivateKey::Ed25519(key) => key.verifying_key().to_public_key_pem(LineEnding::LF),
        }
        .unwrap()
    }

    fn sign(&self, message: &[u8]) -> String {
        let signature = match self {
            PrivateKey::Rsa(key) => key.pkcs1v15_sign::<rsa::sha2::Sha256>(message).unwrap(),
            PrivateKey::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
        };
        Base64::encode_string(&signature)
    }
}

/// Two RSA-2048 keys, made once per test run (key generation is the slow part).
pub(crate) fn rsa_key(index: usize) -> PrivateKey {
    static KEYS: OnceLock<Vec<rsa::PrivateKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        (0..2)
            .map(|_| rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap())
            .collect()
    });
    PrivateKey::Rsa(Box::new(keys[index].clone()))
}

pub(crate) fn ed25519_key(seed: u8) -> PrivateKey {
    PrivateKey::Ed25519(Box::new(ed25519_dalek::SigningKey::from_bytes(&[seed; 32])))
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fresh nonce per request: unique within the test run.
fn nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "n{:016x}{:08x}",
        rand::random::<u64>(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One request as the client builds it; each field can be spoiled for the matrix.
#[derive(Clone)]
struct Signed {
    method: &'static str,
    target: String,
    body: String,
    timestamp: String,
    nonce: String,
}

impl Signed {
    fn new(method: &'static str, target: &str, body: &str) -> Signed {
        Signed {
            method,
            target: target.into(),
            body: body.into(),
            timestamp: now_s().to_string(),
            nonce: nonce(),
        }
    }

    /// `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`, as the docs define it.
    fn message(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}\n",
            self.method, self.target, self.timestamp, self.nonce, self.body
        )
    }
}

pub(crate) struct Merchant {
    pub(crate) id: i64,
    serial: String,
    key: PrivateKey,
}

impl Merchant {
    pub(crate) fn new(id: i64, serial: &str, key: PrivateKey) -> Merchant {
        Merchant {
            id,
            serial: serial.into(),
            key,
        }
    }

    fn authorization(&self, request: &Signed) -> String {
        format!(
            "{} mchid=\"{}\",serial_no=\"{}\",timestamp=\"{}\",nonce_str=\"{}\",signature=\"{}\"",
            self.key.scheme(),
            self.id,
            self.serial,
            request.timestamp,
            request.nonce,
            self.key.sign(request.message().as_bytes())
        )
    }

    pub(crate) fn call(
        &self,
        server: &Server,
        method: &'static str,
        target: &str,
        body: &str,
    ) -> Response {
        let request = Signed::new(method, target, body);
        send(server, &request, Some(&self.authorization(&request)))
    }
}

/// Sends `request` with this `Authorization` value (or none), byte for byte.
fn send(server: &Server, request: &Signed, authorization: Option<&str>) -> Response {
    let authorization = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    server.request(&format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{authorization}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        request.method,
        request.target,
        server.address,
        request.body.len(),
        request.body
    ))
}

/// The platform's public keys by serial, fetched as a merchant does.
pub(crate) struct PlatformKeys(Vec<(String, String, String)>);

impl PlatformKeys {
    pub(crate) fn fetch(server: &Server) -> PlatformKeys {
        let response = server.get("/merchant/v1/platform-keys");
        assert_eq!(response.status, 200, "{}", response.body);
        let keys = response.json()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| {
                let text = |name: &str| key[name].as_str().unwrap().to_owned();
                (text("serial"), text("signature_type"), text("public_key"))
            })
            .collect();
        let keys = PlatformKeys(keys);
        keys.assert_signed(&response, "ZHIFU-ED25519");
        keys
    }

    /// The response carries `Zhifu-*` headers whose signature verifies over
    /// `TIMESTAMP\nNONCE\nBODY\n` under the platform key they name, of the expected type.
    pub(crate) fn assert_signed(&self, response: &Response, signature_type: &str) {
        let header = |name: &str| {
            response
                .header(name)
                .unwrap_or_else(|| panic!("no {name} on {} {}", response.status, response.body))
        };
        assert_eq!(header("zhifu-signature-type"), signature_type);
        let timestamp: i64 = header("zhifu-timestamp").parse().unwrap();
        assert!(
            (timestamp - now_s()).abs() <= 60,
            "the server's clock is ours"
        );
        let (_, kind, pem) = self
            .0
            .iter()
            .find(|(serial, ..)| serial == header("zhifu-serial"))
            .expect("a platform key of this serial");
        assert_eq!(kind, signature_type);
        let message = format!(
            "{}\n{}\n{}\n",
            header("zhifu-timestamp"),
            header("zhifu-nonce"),
            response.body
        );
        let signature = Base64::decode_vec(header("zhifu-signature")).unwrap();
        let verified = match signature_type {
            "ZHIFU-RSA-SHA256" => rsa::PublicKey::from_public_key_pem(pem)
                .unwrap()
                .pkcs1v15_verify::<rsa::sha2::Sha256>(message.as_bytes(), &signature)
                .is_ok(),
            _ => ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                .unwrap()
                .verify_strict(
                    message.as_bytes(),
                    &ed25519_dalek::Signature::from_slice(&signature).unwrap(),
                )
                .is_ok(),
        };
        assert!(verified, "the response's signature verifies: {message:?}");
    }
}

/// The operator onboards a merchant (`kind`, with a provider or not) and returns its id.
pub(crate) fn onboard(server: &Server, body: &str) -> i64 {
    let created = operator(server, "POST", "/api/v1/operator/merchants", body);
    assert_eq!(created.status, 201, "{}", created.body);
    created.json()["merchant_id"].as_i64().unwrap()
}

pub(crate) fn operator(server: &Server, method: &str, path: &str, body: &str) -> Response {
    server.send(method, path, body, Some(&server.operator_token()))
}

pub(crate) fn key_body(serial: &str, key: &PrivateKey) -> String {
    serde_json::json!({
        "serial": serial,
        "algorithm": key.algorithm(),
        "public_key": key.public_pem(),
    })
    .to_string()
}

/// A merchant onboarded by the operator with `key` registered under `serial`.
fn merchant(server: &Server, kind: &str, serial: &str, key: PrivateKey) -> Merchant {
    let id = onboard(
        server,
        &format!(r#"{{"name":"Shop {serial}","kind":"{kind}","discount_rate_bps":60}}"#),
    );
    let path = format!("/api/v1/operator/merchants/{id}/keys");
    let registered = operator(server, "POST", &path, &key_body(serial, &key));
    assert_eq!(registered.status, 201, "{}", registered.body);
    Merchant {
        id,
        serial: serial.into(),
        key,
    }
}

fn active_serials(server: &Server, merchant: &Merchant) -> Vec<String> {
    let me = merchant.call(server, "GET", "/merchant/v1/merchants/me", "");
    assert_eq!(me.status, 200, "{}", me.body);
    me.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["serial"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn rsa_and_ed25519_merchants_get_answers_signed_by_the_platform() {
    let server = Server::start();
    let platform = PlatformKeys::fetch(&server);
    assert_eq!(platform.0.len(), 2);
    let rsa_shop = merchant(&server, "merchant", "rsa-1", rsa_key(0));
    let ed_shop = merchant(&server, "merchant", "ed-1", ed25519_key(1));
    for (shop, signature_type) in [(&rsa_shop, "ZHIFU-RSA-SHA256"), (&ed_shop, "ZHIFU-ED25519")] {
        let me = shop.call(&server, "GET", "/merchant/v1/merchants/me", "");
        assert_eq!(me.status, 200, "{}", me.body);
        platform.assert_signed(&me, signature_type);
        let record = me.json();
        assert_eq!(record["merchant_id"], shop.id);
        assert_eq!(record["kind"], "merchant");
        assert_eq!(record["discount_rate_bps"], 60);
        assert_eq!(record["service_provider_id"], serde_json::Value::Null);
        assert_eq!(record["keys"][0]["serial"], shop.serial.as_str());
        assert_eq!(record["keys"][0]["algorithm"], shop.key.algorithm());
        assert_eq!(record["keys"][0]["revoked_at"], serde_json::Value::Null);
        // A query string is signed like the rest of the target.
        let with_query = shop.call(
            &server,
            "GET",
            "/merchant/v1/merchants/me?lang=zh%20CN&x=1",
            "",
        );
        assert_eq!(with_query.status, 200, "{}", with_query.body);
    }
    // The platform's keys outlive a restart (they sign what merchants already verify).
    let serials: Vec<String> = platform.0.iter().map(|k| k.0.clone()).collect();
    let server = server.restart();
    let again: Vec<String> = PlatformKeys::fetch(&server)
        .0
        .into_iter()
        .map(|k| k.0)
        .collect();
    assert_eq!(again, serials);
}

#[test]
fn the_signature_matrix_refuses_with_stable_codes_and_changes_nothing() {
    let server = Server::start();
    let platform = PlatformKeys::fetch(&server);
    let shop = merchant(&server, "merchant", "rsa-1", rsa_key(0));
    let ed_shop = merchant(&server, "merchant", "ed-1", ed25519_key(3));
    let revoked = operator(
        &server,
        "POST",
        &format!("/api/v1/operator/merchants/{}/keys", shop.id),
        &key_body("rsa-old", &rsa_key(1)),
    );
    assert_eq!(revoked.status, 201, "{}", revoked.body);
    let path = format!("/api/v1/operator/merchants/{}/keys/rsa-old", shop.id);
    assert_eq!(operator(&server, "DELETE", &path, "").status, 200);

    // Every attempt registers a key: a refused one must not.
    let new_key = key_body("never", &ed25519_key(9));
    let base = Signed::new("POST", "/merchant/v1/keys", &new_key);
    let good = shop.authorization(&base);
    let impostor = Merchant {
        key: rsa_key(1),
        ..clone_of(&shop)
    };
    let revoked_signer = Merchant {
        key: rsa_key(1),
        serial: "rsa-old".into(),
        ..clone_of(&shop)
    };
    let unknown_serial = Merchant {
        serial: "rsa-9".into(),
        ..clone_of(&shop)
    };
    let unknown_merchant = Merchant {
        id: shop.id + 1000,
        ..clone_of(&shop)
    };
    let wrong_scheme = Merchant {
        serial: "ed-1".into(),
        id: ed_shop.id,
        ..clone_of(&shop)
    };
    let spoiled = |change: fn(&mut Signed)| {
        let mut sent = base.clone();
        change(&mut sent);
        sent
    };
    let skewed = |seconds: i64| Signed {
        timestamp: (now_s() + seconds).to_string(),
        ..base.clone()
    };
    let cases: Vec<(&str, Signed, Option<String>, &str)> = vec![
        (
            "wrong key",
            base.clone(),
            Some(impostor.authorization(&base)),
            "SIGNATURE_INVALID",
        ),
        (
            "unknown serial",
            base.clone(),
            Some(unknown_serial.authorization(&base)),
            "KEY_UNKNOWN",
        ),
        (
            "revoked serial",
            base.clone(),
            Some(revoked_signer.authorization(&base)),
            "KEY_UNKNOWN",
        ),
        (
            "unknown merchant",
            base.clone(),
            Some(unknown_merchant.authorization(&base)),
            "MERCHANT_UNKNOWN",
        ),
        (
            "wrong scheme for the key",
            base.clone(),
            Some(wrong_scheme.authorization(&base)),
            "SCHEME_MISMATCH",
        ),
        (
            "changed body",
            spoiled(|s| s.body = s.body.replace("never", "nevex")),
            Some(good.clone()),
            "SIGNATURE_INVALID",
        ),
        (
            "changed path",
            spoiled(|s| s.target = "/merchant/v1/sub-merchants".into()),
            Some(good.clone()),
            "SIGNATURE_INVALID",
        ),
        (
            "added query",
            spoiled(|s| s.target.push_str("?x=1")),
            Some(good.clone()),
            "SIGNATURE_INVALID",
        ),
        (
            "6 minutes ahead",
            skewed(360),
            Some(shop.authorization(&skewed(360))),
            "TIMESTAMP_SKEWED",
        ),
        (
            "6 minutes behind",
            skewed(-360),
            Some(shop.authorization(&skewed(-360))),
            "TIMESTAMP_SKEWED",
        ),
        ("missing header", base.clone(), None, "SIGNATURE_MISSING"),
        (
            "missing parameter",
            base.clone(),
            Some(drop_parameter(&good, "nonce_str")),
            "SIGNATURE_MALFORMED",
        ),
        (
            "duplicated parameter",
            base.clone(),
            Some(good.replacen("mchid=", &format!("mchid=\"{}\",mchid=", shop.id), 1)),
            "SIGNATURE_MALFORMED",
        ),
        (
            "unquoted parameter",
            base.clone(),
            Some(good.replace(
                &format!("mchid=\"{}\"", shop.id),
                &format!("mchid={}", shop.id),
            )),
            "SIGNATURE_MALFORMED",
        ),
        (
            "bad base64",
            base.clone(),
            Some(good.replace("signature=\"", "signature=\"*")),
            "SIGNATURE_MALFORMED",
        ),
        (
            "unknown scheme",
            base.clone(),
            Some(good.replace("ZHIFU-RSA-SHA256", "WECHATPAY2-SHA256-RSA2048")),
            "SIGNATURE_MALFORMED",
        ),
        (
            "a bearer token",
            base.clone(),
            Some(format!("Bearer {}", server.operator_token())),
            "SIGNATURE_MALFORMED",
        ),
    ];
    for (case, sent, authorization, code) in cases {
        let refused = send(&server, &sent, authorization.as_deref());
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (401, code),
            "{case}: {}",
            refused.body
        );
        // Refusals are signed too, in the scheme the request named (Ed25519 when none).
        let scheme = match authorization.as_deref() {
            Some(value) if value.starts_with("ZHIFU-ED25519") => "ZHIFU-ED25519",
            Some(value) if value.starts_with("ZHIFU-RSA-SHA256") => "ZHIFU-RSA-SHA256",
            _ => "ZHIFU-ED25519",
        };
        platform.assert_signed(&refused, scheme);
    }
    assert_eq!(
        active_serials(&server, &shop),
        ["rsa-1"],
        "no refused request registered a key"
    );

    // The refusals spent no nonce: the base request, sent as signed, is accepted once.
    let accepted = send(&server, &base, Some(&good));
    assert_eq!(accepted.status, 201, "{}", accepted.body);
    platform.assert_signed(&accepted, "ZHIFU-RSA-SHA256");
    let replayed = send(&server, &base, Some(&good));
    assert_eq!(
        (replayed.status, replayed.code().as_str()),
        (401, "NONCE_REUSED")
    );
    assert_eq!(active_serials(&server, &shop), ["rsa-1", "never"]);

    // Oversized bodies are refused before anything is verified.
    let big = Signed::new("POST", "/merchant/v1/keys", &"x".repeat(64 * 1024 + 1));
    let too_large = send(&server, &big, Some(&shop.authorization(&big)));
    assert_eq!(
        (too_large.status, too_large.code().as_str()),
        (413, "BODY_TOO_LARGE")
    );
    platform.assert_signed(&too_large, "ZHIFU-RSA-SHA256");

    // Nothing signed or secret reached the log: no key, no signature.
    let log = server.log();
    assert!(
        !log.contains("KEY-----") && !log.contains("signature=\""),
        "{log}"
    );
    assert!(!log.contains(&good[good.len() - 40..]), "{log}");
}

fn clone_of(merchant: &Merchant) -> Merchant {
    let key = match &merchant.key {
        PrivateKey::Rsa(key) => PrivateKey::Rsa(key.clone()),
        PrivateKey::Ed25519(key) => PrivateKey::Ed25519(key.clone()),
    };
    Merchant {
        id: merchant.id,
        serial: merchant.serial.clone(),
        key,
    }
}

/// The header without one `name="…"` parameter.
fn drop_parameter(header: &str, name: &str) -> String {
    let start = header.find(&format!("{name}=\"")).unwrap();
    let end = start + header[start..].find("\",").unwrap() + 2;
    format!("{}{}", &header[..start], &header[end..])
}

#[test]
fn keys_rotate_with_two_active_then_the_revoked_one_is_refused() {
    let server = Server::start();
    let platform = PlatformKeys::fetch(&server);
    let old = merchant(&server, "merchant", "ed-2026", ed25519_key(5));
    // The new key is registered with a request signed by the old one.
    let new = Merchant {
        serial: "rsa-2027".into(),
        key: rsa_key(0),
        ..clone_of(&old)
    };
    let added = old.call(
        &server,
        "POST",
        "/merchant/v1/keys",
        &key_body("rsa-2027", &new.key),
    );
    assert_eq!(added.status, 201, "{}", added.body);
    platform.assert_signed(&added, "ZHIFU-ED25519");
    assert_eq!(added.json()["algorithm"], "RSA-SHA256");
    // Both sign, meanwhile.
    for signer in [&old, &new] {
        let me = signer.call(&server, "GET", "/merchant/v1/merchants/me", "");
        assert_eq!(me.status, 200, "{}", me.body);
    }
    assert_eq!(active_serials(&server, &new), ["ed-2026", "rsa-2027"]);
    // A serial is never taken twice, and a bad key is refused, signed.
    let taken = new.call(
        &server,
        "POST",
        "/merchant/v1/keys",
        &key_body("ed-2026", &ed25519_key(6)),
    );
    assert_eq!(
        (taken.status, taken.code().as_str()),
        (409, "KEY_SERIAL_TAKEN")
    );
    platform.assert_signed(&taken, "ZHIFU-RSA-SHA256");
    let bad = serde_json::json!({"serial": "x", "algorithm": "Ed25519", "public_key": "nope"});
    let refused = new.call(&server, "POST", "/merchant/v1/keys", &bad.to_string());
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (422, "KEY_INVALID")
    );

    let path = format!("/api/v1/operator/merchants/{}/keys/ed-2026", old.id);
    let revoked = operator(&server, "DELETE", &path, "");
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(revoked.json()["revoked_at"].is_string());
    let refused = old.call(&server, "GET", "/merchant/v1/merchants/me", "");
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (401, "KEY_UNKNOWN")
    );
    assert_eq!(active_serials(&server, &new), ["rsa-2027"]);
}

#[test]
fn service_providers_onboard_their_sub_merchants_over_the_signed_api() {
    let server = Server::start();
    let platform = PlatformKeys::fetch(&server);
    let provider = merchant(&server, "service_provider", "sp-1", ed25519_key(7));
    let shop = merchant(&server, "merchant", "shop-1", ed25519_key(8));
    let body = concat!(
        r#"{"name":"Noodle bar","discount_rate_bps":38,"#,
        r#""notify_url":"https://noodles.example/zhifu"}"#
    );
    let created = provider.call(&server, "POST", "/merchant/v1/sub-merchants", body);
    assert_eq!(created.status, 201, "{}", created.body);
    platform.assert_signed(&created, "ZHIFU-ED25519");
    let sub = created.json();
    assert_eq!(sub["service_provider_id"], provider.id);
    assert_eq!(sub["kind"], "merchant");
    assert_eq!(sub["discount_rate_bps"], 38);
    assert_eq!(sub["notify_url"], "https://noodles.example/zhifu");

    let not_provider = shop.call(&server, "POST", "/merchant/v1/sub-merchants", body);
    assert_eq!(
        (not_provider.status, not_provider.code().as_str()),
        (403, "NOT_SERVICE_PROVIDER")
    );
    for (bad, status, code) in [
        (
            r#"{"name":"","discount_rate_bps":38}"#,
            422,
            "MERCHANT_NAME_INVALID",
        ),
        (
            r#"{"name":"X","discount_rate_bps":5000}"#,
            422,
            "DISCOUNT_RATE_INVALID",
        ),
        (
            r#"{"name":"X","discount_rate_bps":38,"notify_url":"ftp://x"}"#,
            422,
            "NOTIFY_URL_INVALID",
        ),
        (
            r#"{"name":"X","discount_rate_bps":38,"kind":"service_provider"}"#,
            422,
            "JSON_INVALID",
        ),
        (r#"{"name":"X""#, 400, "JSON_MALFORMED"),
    ] {
        let refused = provider.call(&server, "POST", "/merchant/v1/sub-merchants", bad);
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (status, code),
            "{bad}"
        );
        platform.assert_signed(&refused, "ZHIFU-ED25519");
    }
    // The operator can place a sub-merchant under a provider too, never under a merchant.
    let by_operator = onboard(
        &server,
        &format!(
            r#"{{"name":"Tea house","discount_rate_bps":60,"service_provider_id":{}}}"#,
            provider.id
        ),
    );
    assert!(by_operator > 0);
    let under_shop = operator(
        &server,
        "POST",
        "/api/v1/operator/merchants",
        &format!(
            r#"{{"name":"Tea house","discount_rate_bps":60,"service_provider_id":{}}}"#,
            shop.id
        ),
    );
    assert_eq!(
        (under_shop.status, under_shop.code().as_str()),
        (422, "SERVICE_PROVIDER_INVALID")
    );
}

#[test]
fn unknown_merchant_paths_need_a_signature_and_answer_signed() {
    let server = Server::start();
    let platform = PlatformKeys::fetch(&server);
    let shop = merchant(&server, "merchant", "ed-1", ed25519_key(2));
    let root = server.get("/merchant/v1");
    assert_eq!(
        (root.status, root.code().as_str()),
        (401, "SIGNATURE_MISSING")
    );
    platform.assert_signed(&root, "ZHIFU-ED25519");
    let unsigned = server.get("/merchant/v1/orders");
    assert_eq!(
        (unsigned.status, unsigned.code().as_str()),
        (401, "SIGNATURE_MISSING")
    );
    platform.assert_signed(&unsigned, "ZHIFU-ED25519");
    let signed = shop.call(&server, "GET", "/merchant/v1/orders", "");
    assert_eq!((signed.status, signed.code().as_str()), (404, "NOT_FOUND"));
    platform.assert_signed(&signed, "ZHIFU-ED25519");
    let wrong_method = shop.call(&server, "DELETE", "/merchant/v1/merchants/me", "");
    assert_eq!(wrong_method.status, 405);
    platform.assert_signed(&wrong_method, "ZHIFU-ED25519");
}

#[test]
fn the_operator_onboards_merchants_and_manages_their_keys() {
    let server = Server::start();
    let unauthorized = server.send(
        "POST",
        "/api/v1/operator/merchants",
        r#"{"name":"X","discount_rate_bps":60}"#,
        None,
    );
    assert_eq!(
        (unauthorized.status, unauthorized.code().as_str()),
        (401, "OPERATOR_UNAUTHORIZED")
    );
    let created = operator(
        &server,
        "POST",
        "/api/v1/operator/merchants",
        r#"{"name":"Corner shop","discount_rate_bps":60,"notify_url":"https://shop.example/n"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let shop = created.json();
    assert_eq!(shop["kind"], "merchant");
    assert_eq!(shop["notify_url"], "https://shop.example/n");
    let id = shop["merchant_id"].as_i64().unwrap();
    for (body, status, code) in [
        (
            r#"{"name":"X","discount_rate_bps":60,"kind":"bank"}"#,
            422,
            "MERCHANT_KIND_INVALID",
        ),
        (
            r#"{"name":"X","discount_rate_bps":-1}"#,
            422,
            "JSON_INVALID",
        ),
        (r#"{"name":"X"}"#, 422, "JSON_INVALID"),
        (
            r#"{"name":"X","discount_rate_bps":60,"service_provider_id":0}"#,
            422,
            "SERVICE_PROVIDER_INVALID",
        ),
    ] {
        let refused = operator(&server, "POST", "/api/v1/operator/merchants", body);
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (status, code),
            "{body}"
        );
    }

    let keys = format!("/api/v1/operator/merchants/{id}/keys");
    let key = ed25519_key(4);
    let registered = operator(&server, "POST", &keys, &key_body("k-1", &key));
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.json()["algorithm"], "Ed25519");
    let small = rsa::PrivateKey::new(&mut getrandom::SysRng, 1024).unwrap();
    let small = serde_json::json!({
        "serial": "rsa-small",
        "algorithm": "RSA-SHA256",
        "public_key": small.to_public_key().to_public_key_pem(LineEnding::LF).unwrap(),
    });
    for (path, body, status, code) in [
        (keys.clone(), key_body("k-1", &key), 409, "KEY_SERIAL_TAKEN"),
        (keys.clone(), small.to_string(), 422, "KEY_INVALID"),
        (
            keys.clone(),
            key_body("k 2", &key),
            422,
            "KEY_SERIAL_INVALID",
        ),
        (
            keys.clone(),
            key_body("k-2", &key).replace("Ed25519", "ECDSA"),
            422,
            "KEY_ALGORITHM_INVALID",
        ),
        (
            "/api/v1/operator/merchants/999999/keys".into(),
            key_body("k-1", &key),
            404,
            "MERCHANT_NOT_FOUND",
        ),
        (
            "/api/v1/operator/merchants/abc/keys".into(),
            key_body("k-1", &key),
            404,
            "MERCHANT_NOT_FOUND",
        ),
    ] {
        let refused = operator(&server, "POST", &path, &body);
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (status, code),
            "{path} {body}"
        );
    }
    for serial in 2..=10 {
        let more = operator(
            &server,
            "POST",
            &keys,
            &key_body(&format!("k-{serial}"), &key),
        );
        assert_eq!(more.status, 201, "{}", more.body);
    }
    let eleventh = operator(&server, "POST", &keys, &key_body("k-11", &key));
    assert_eq!(
        (eleventh.status, eleventh.code().as_str()),
        (409, "KEYS_TOO_MANY")
    );

    let revoke = |serial: &str| operator(&server, "DELETE", &format!("{keys}/{serial}"), "");
    let revoked = revoke("k-1");
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.json()["serial"], "k-1");
    assert_eq!(
        (revoke("k-1").status, revoke("k-1").code().as_str()),
        (404, "KEY_NOT_FOUND")
    );
    assert_eq!(
        operator(&server, "POST", &keys, &key_body("k-11", &key)).status,
        201,
        "a revoked key frees its slot"
    );
}
