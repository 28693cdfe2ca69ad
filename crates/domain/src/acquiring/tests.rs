//! Merchant acquiring's rules at their edges: the documented worked example byte for byte, the
//! header grammar, which keys are accepted, onboarding, key rotation, and what a refused
//! request leaves behind (nothing).

use super::keys::{KeyAlgorithm, KeyProblem, KeySerial, MerchantPublicKey};
use super::merchants::{
    self, KEYS_ACTIVE_MAX, MerchantError, MerchantId, MerchantKind, NewKey, Onboarding,
};
use super::platform_keys::{PlatformKey, PlatformKeys};
use super::signature::{
    Authorization, SignatureError, Verifier, request_message, response_message,
};
use crate::wallet::people::People;
use base64ct::{Base64, Encoding};
use ed25519_dalek::Signer;
use ed25519_dalek::pkcs8::EncodePublicKey;
use zhifu_store::StoreConfig;

/// The key of RFC 8032 §7.1, test 1: public, so the docs can print its private half.
const RFC8032_SECRET: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];
/// What `docs/merchant-api.md` prints for it, and for its worked example.
const EXAMPLE_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
     MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n\
     -----END PUBLIC KEY-----\n";
const EXAMPLE_BODY: &str = r#"{"name":"Noodle bar","discount_rate_bps":60}"#;
const EXAMPLE_MESSAGE: &str = "POST\n/merchant/v1/sub-merchants\n1800000000\n\
     5K8264ILTKCH16CQ2502SI8ZNMTM67VS\n{\"name\":\"Noodle bar\",\"discount_rate_bps\":60}\n";
const EXAMPLE_SIGNATURE: &str =
    "ibhuFEVIra7n2JUd9mXi3kJHB8ZBWLsnm9NPrXESwJMZ02D4FTxJ0plFETuENmLlGKbPBb0//LBbJLgU1b9sDg==";
const EXAMPLE_NOW_MS: i64 = 1_800_000_000_000;
const EXAMPLE_RESPONSE_BODY: &str = r#"{"created_at":"2027-01-15T08:00:00.000Z","discount_rate_bps":60,"kind":"merchant","merchant_id":2,"name":"Noodle bar","notify_url":null,"service_provider_id":1}"#;
const EXAMPLE_RESPONSE_SIGNATURE: &str =
    "D9Hr1Q1rqidnrrBq1HeIHJU8fZKl1z7bm+zLpjT5AltaFb7AaTv16AooxgQwZJaBKmYA6pQdRMEH3AudSncmCQ==";

fn example_header() -> String {
    format!(
        "ZHIFU-ED25519 mchid=\"1\",serial_no=\"ed-2026-01\",timestamp=\"1800000000\",\
         nonce_str=\"5K8264ILTKCH16CQ2502SI8ZNMTM67VS\",signature=\"{EXAMPLE_SIGNATURE}\""
    )
}

fn people(directory: &tempfile::TempDir) -> People {
    let config = StoreConfig::Sqlite {
        path: directory.path().join("ledger.sqlite"),
    };
    People::open(&config, &[9; 32], 3_600_000).unwrap()
}

fn onboarding(name: &str, kind: MerchantKind) -> Onboarding {
    Onboarding {
        name: name.into(),
        kind,
        discount_rate_bps: 60,
        notify_url: Some("https://shop.example/notify".into()),
    }
}

fn new_key(serial: &str, algorithm: KeyAlgorithm, pem: &str) -> NewKey {
    NewKey {
        serial: serial.into(),
        algorithm: algorithm.code().into(),
        public_key_pem: pem.into(),
    }
}

fn ed25519_pem(key: &ed25519_dalek::SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap()
}

/// A merchant with the RFC 8032 key under `ed-2026-01`, as in the docs' example.
fn example_merchant(people: &People) -> MerchantId {
    let shop = merchants::onboard(
        people,
        &onboarding("Provider", MerchantKind::ServiceProvider),
        None,
        EXAMPLE_NOW_MS,
    )
    .unwrap();
    assert_eq!(
        shop.id.get(),
        1,
        "the docs' example is the store's first merchant"
    );
    let key = new_key("ed-2026-01", KeyAlgorithm::Ed25519, EXAMPLE_PUBLIC_KEY_PEM);
    merchants::register_key(people, shop.id, &key, EXAMPLE_NOW_MS).unwrap();
    shop.id
}

#[test]
fn the_docs_worked_example_signs_and_verifies_byte_for_byte() {
    let signing = ed25519_dalek::SigningKey::from_bytes(&RFC8032_SECRET);
    assert_eq!(ed25519_pem(&signing), EXAMPLE_PUBLIC_KEY_PEM);
    let message = request_message(
        "POST",
        "/merchant/v1/sub-merchants",
        "1800000000",
        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        EXAMPLE_BODY.as_bytes(),
    );
    assert_eq!(String::from_utf8(message.clone()).unwrap(), EXAMPLE_MESSAGE);
    let signature = Base64::encode_string(&signing.sign(&message).to_bytes());
    assert_eq!(signature, EXAMPLE_SIGNATURE);
    // The docs' example of a response's message, signed (for illustration) with the same key.
    let response = response_message(
        "1800000001",
        "9f3c2a7b1e4d5c6f8a0b1c2d3e4f5a6b",
        EXAMPLE_RESPONSE_BODY.as_bytes(),
    );
    assert_eq!(
        Base64::encode_string(&signing.sign(&response).to_bytes()),
        EXAMPLE_RESPONSE_SIGNATURE
    );

    let directory = tempfile::tempdir().unwrap();
    let people = people(&directory);
    let shop = example_merchant(&people);
    let verifier = Verifier::new();
    let verify = || {
        verifier.verify_request(
            &people,
            "POST",
            "/merchant/v1/sub-merchants",
            Some(&example_header()),
            EXAMPLE_BODY.as_bytes(),
            EXAMPLE_NOW_MS,
        )
    };
    assert_eq!(verify().unwrap(), shop);
    assert!(matches!(verify(), Err(SignatureError::NonceReused)));
}

#[test]
fn authorization_headers_parse_strictly() {
    let parsed = Authorization::parse(&example_header()).unwrap();
    assert_eq!(parsed.algorithm, KeyAlgorithm::Ed25519);
    assert_eq!(parsed.merchant_id, MerchantId::new(1).unwrap());
    assert_eq!(parsed.serial, KeySerial::parse("ed-2026-01").unwrap());
    assert_eq!(
        (parsed.timestamp.as_str(), parsed.timestamp_s),
        ("1800000000", 1_800_000_000)
    );
    assert_eq!(parsed.signature.len(), 64);
    assert!(
        !format!("{parsed:?}").contains(EXAMPLE_SIGNATURE),
        "no signature in Debug"
    );
    // Any order, and spaces after the commas.
    let reordered = format!(
        "ZHIFU-RSA-SHA256 signature=\"{EXAMPLE_SIGNATURE}\", nonce_str=\"0123456789abcdef\",  \
         timestamp=\"1\",serial_no=\"k\",mchid=\"42\""
    );
    assert_eq!(
        Authorization::parse(&reordered).unwrap().algorithm,
        KeyAlgorithm::RsaSha256
    );

    let good = example_header();
    let parameters = good.strip_prefix("ZHIFU-ED25519 ").unwrap();
    let malformed = [
        String::new(),
        "ZHIFU-ED25519".into(),
        format!("Bearer {parameters}"),
        format!("zhifu-ed25519 {parameters}"),
        format!("ZHIFU-ED25519  {parameters}"),
        format!("WECHATPAY2-SHA256-RSA2048 {parameters}"),
        good.replace("mchid=\"1\",", ""),
        good.replace("mchid=\"1\"", "mchid=\"1\",mchid=\"1\""),
        good.replace("mchid=\"1\"", "mchid=1"),
        good.replace("mchid=\"1\"", "mchid=\"01\""),
        good.replace("mchid=\"1\"", "mchid=\"-1\""),
        good.replace("mchid=\"1\"", "mchid=\"1\",extra=\"x\""),
        good.replace("mchid=\"1\",", "mchid=\"1\";"),
        good.replace("mchid=\"1\",", "mchid=\"1\" ,"),
        good.replace("mchid=\"1\"", "MCHID=\"1\""),
        format!("{good},"),
        format!("{good} "),
        good.replace("serial_no=\"ed-2026-01\"", "serial_no=\"\""),
        good.replace("serial_no=\"ed-2026-01\"", "serial_no=\"ed 2026\""),
        good.replace("1800000000", "+1800000000"),
        good.replace("1800000000", "1.8e9"),
        good.replace("1800000000", "1800000000000"),
        good.replace("5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "short"),
        good.replace(
            "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
            "5K8264ILTKCH16CQ2502SI8ZNMTM67V!",
        ),
        good.replace(EXAMPLE_SIGNATURE, &EXAMPLE_SIGNATURE.replace("==", "")),
        good.replace(EXAMPLE_SIGNATURE, &EXAMPLE_SIGNATURE.replace('/', "_")),
        good.replace(EXAMPLE_SIGNATURE, ""),
        good.replace(EXAMPLE_SIGNATURE, &"A".repeat(1200)),
        format!("{good}{}", " ".repeat(2048)),
    ];
    for header in malformed {
        assert!(
            matches!(
                Authorization::parse(&header),
                Err(SignatureError::Malformed(_))
            ),
            "{header:?}"
        );
    }
}

#[test]
fn public_keys_are_checked_before_they_are_registered() {
    let ed25519 = MerchantPublicKey::parse(KeyAlgorithm::Ed25519, EXAMPLE_PUBLIC_KEY_PEM).unwrap();
    assert_eq!(ed25519.to_pem(), EXAMPLE_PUBLIC_KEY_PEM);
    assert_eq!(format!("{ed25519:?}"), "Ed25519 public key");
    // Blank lines around the armour are fine; CRLF line endings too.
    let padded = format!("\n{}\n\n", EXAMPLE_PUBLIC_KEY_PEM.replace('\n', "\r\n"));
    assert!(MerchantPublicKey::parse(KeyAlgorithm::Ed25519, &padded).is_ok());

    let rsa_2048 = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap();
    let rsa_pem = rsa_2048
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let rsa = MerchantPublicKey::parse(KeyAlgorithm::RsaSha256, &rsa_pem).unwrap();
    assert_eq!(format!("{rsa:?}"), "RSA public key (2048 bits)");
    let rsa_1024 = rsa::PrivateKey::new(&mut getrandom::SysRng, 1024).unwrap();
    let small_pem = rsa_1024
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let pkcs1_pem = rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_pem(
        &rsa_2048.to_public_key(),
        rsa::pkcs8::LineEnding::LF,
    )
    .unwrap();
    // The identity point: every signature verifies under it.
    let weak = ed25519_dalek::VerifyingKey::from_bytes(&{
        let mut bytes = [0u8; 32];
        bytes[0] = 1;
        bytes
    })
    .unwrap()
    .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
    .unwrap();
    for (algorithm, pem, problem) in [
        (
            KeyAlgorithm::RsaSha256,
            small_pem.as_str(),
            KeyProblem::RsaSize { bits: 1024 },
        ),
        (
            KeyAlgorithm::RsaSha256,
            pkcs1_pem.as_str(),
            KeyProblem::NotSpkiPem,
        ),
        (
            KeyAlgorithm::RsaSha256,
            EXAMPLE_PUBLIC_KEY_PEM,
            KeyProblem::NotSpkiPem,
        ),
        (
            KeyAlgorithm::Ed25519,
            rsa_pem.as_str(),
            KeyProblem::NotSpkiPem,
        ),
        (
            KeyAlgorithm::Ed25519,
            weak.as_str(),
            KeyProblem::WeakEd25519,
        ),
        (KeyAlgorithm::Ed25519, "not a key", KeyProblem::NotSpkiPem),
        (
            KeyAlgorithm::Ed25519,
            &"A".repeat(5000),
            KeyProblem::NotSpkiPem,
        ),
    ] {
        assert_eq!(
            MerchantPublicKey::parse(algorithm, pem).map(|_| ()),
            Err(problem),
            "{algorithm:?}"
        );
    }
    for serial in ["", " k", "k/1", "k\"", "é", &"k".repeat(65)] {
        assert_eq!(KeySerial::parse(serial), None, "{serial:?}");
    }
    assert!(KeySerial::parse(&format!("PUB_KEY_ID_0.1-{}", "A".repeat(49))).is_some());
}

#[test]
fn merchants_providers_and_sub_merchants_are_onboarded_by_the_rules() {
    let directory = tempfile::tempdir().unwrap();
    let people = people(&directory);
    let now_ms = EXAMPLE_NOW_MS;
    let shop = merchants::onboard(
        &people,
        &onboarding("Corner shop", MerchantKind::Merchant),
        None,
        now_ms,
    )
    .unwrap();
    let provider = merchants::onboard(
        &people,
        &onboarding("Provider", MerchantKind::ServiceProvider),
        None,
        now_ms,
    )
    .unwrap();
    let noodles = merchants::onboard_sub_merchant(
        &people,
        provider.id,
        &onboarding("Noodle bar", MerchantKind::ServiceProvider),
        now_ms,
    )
    .unwrap();
    assert_eq!(
        noodles.kind,
        MerchantKind::Merchant,
        "a sub-merchant is a merchant"
    );
    assert_eq!(noodles.service_provider_id, Some(provider.id));
    assert_eq!(merchants::merchant(&people, noodles.id).unwrap(), noodles);
    let by_operator = merchants::onboard(
        &people,
        &onboarding("Tea house", MerchantKind::Merchant),
        Some(provider.id),
        now_ms,
    )
    .unwrap();
    assert_eq!(by_operator.service_provider_id, Some(provider.id));

    let refusals: Vec<(Result<_, MerchantError>, &str)> = vec![
        (
            merchants::onboard_sub_merchant(
                &people,
                shop.id,
                &onboarding("X", MerchantKind::Merchant),
                now_ms,
            ),
            "NOT_SERVICE_PROVIDER",
        ),
        (
            merchants::onboard_sub_merchant(
                &people,
                noodles.id,
                &onboarding("X", MerchantKind::Merchant),
                now_ms,
            ),
            "NOT_SERVICE_PROVIDER",
        ),
        (
            merchants::onboard(
                &people,
                &onboarding("X", MerchantKind::Merchant),
                Some(shop.id),
                now_ms,
            ),
            "SERVICE_PROVIDER_INVALID",
        ),
        (
            merchants::onboard(
                &people,
                &onboarding("X", MerchantKind::Merchant),
                MerchantId::new(999),
                now_ms,
            ),
            "SERVICE_PROVIDER_INVALID",
        ),
        (
            merchants::onboard(
                &people,
                &onboarding("X", MerchantKind::ServiceProvider),
                Some(provider.id),
                now_ms,
            ),
            "SERVICE_PROVIDER_INVALID",
        ),
    ];
    for (result, code) in refusals {
        assert_eq!(result.map(|_| ()).unwrap_err().code(), code);
    }
    let invalid = |change: fn(&mut Onboarding)| {
        let mut request = onboarding("Fine name", MerchantKind::Merchant);
        change(&mut request);
        merchants::onboard(&people, &request, None, now_ms)
            .unwrap_err()
            .code()
    };
    assert_eq!(invalid(|o| o.name = String::new()), "MERCHANT_NAME_INVALID");
    assert_eq!(
        invalid(|o| o.name = " padded".into()),
        "MERCHANT_NAME_INVALID"
    );
    assert_eq!(
        invalid(|o| o.name = "tab\there".into()),
        "MERCHANT_NAME_INVALID"
    );
    assert_eq!(
        invalid(|o| o.name = "面".repeat(65)),
        "MERCHANT_NAME_INVALID"
    );
    assert_eq!(
        invalid(|o| o.discount_rate_bps = 1_001),
        "DISCOUNT_RATE_INVALID"
    );
    for url in [
        "ftp://x/n",
        "https://",
        "https://x/n?a=1",
        "https://x/#f",
        "https://x/a b",
    ] {
        let mut request = onboarding("Fine name", MerchantKind::Merchant);
        request.notify_url = Some(url.into());
        let refused = merchants::onboard(&people, &request, None, now_ms).unwrap_err();
        assert_eq!(refused.code(), "NOTIFY_URL_INVALID", "{url}");
    }
    // Nothing refused was written: the next id follows the last accepted one.
    let next = merchants::onboard(
        &people,
        &onboarding("Next", MerchantKind::Merchant),
        None,
        now_ms,
    )
    .unwrap();
    assert_eq!(next.id.get(), by_operator.id.get() + 1);
    assert!(matches!(
        merchants::merchant(&people, MerchantId::new(999).unwrap()),
        Err(MerchantError::MerchantNotFound)
    ));
}

#[test]
fn keys_rotate_up_to_the_limit_and_revoked_serials_stay_taken() {
    let directory = tempfile::tempdir().unwrap();
    let people = people(&directory);
    let shop = example_merchant(&people);
    let key = |serial: &str| {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[serial.len() as u8; 32]);
        new_key(serial, KeyAlgorithm::Ed25519, &ed25519_pem(&signing))
    };
    for index in 1..KEYS_ACTIVE_MAX {
        merchants::register_key(&people, shop, &key(&format!("k{index}")), 1).unwrap();
    }
    let code = |result: Result<_, MerchantError>| result.map(|_| ()).unwrap_err().code();
    assert_eq!(
        code(merchants::register_key(&people, shop, &key("k11"), 2)),
        "KEYS_TOO_MANY"
    );
    assert_eq!(
        code(merchants::register_key(&people, shop, &key("k1"), 2)),
        "KEYS_TOO_MANY"
    );
    let revoked = merchants::revoke_key(&people, shop, "k1", 3).unwrap();
    assert_eq!(revoked.revoked_ms, Some(3));
    assert_eq!(
        code(merchants::revoke_key(&people, shop, "k1", 4)),
        "KEY_NOT_FOUND"
    );
    assert_eq!(
        code(merchants::revoke_key(&people, shop, "k/1", 4)),
        "KEY_NOT_FOUND"
    );
    assert_eq!(
        code(merchants::register_key(&people, shop, &key("k1"), 5)),
        "KEY_SERIAL_TAKEN"
    );
    merchants::register_key(&people, shop, &key("k11"), 5).unwrap();
    let active = merchants::active_keys(&people, shop).unwrap();
    assert_eq!(active.len(), KEYS_ACTIVE_MAX);
    assert!(active.iter().all(|k| k.serial.as_str() != "k1"));

    let nobody = MerchantId::new(999).unwrap();
    assert_eq!(
        code(merchants::register_key(&people, nobody, &key("k1"), 6)),
        "MERCHANT_NOT_FOUND"
    );
    assert_eq!(
        code(merchants::revoke_key(&people, nobody, "k1", 6)),
        "MERCHANT_NOT_FOUND"
    );
    let mut bad = key("bad");
    bad.algorithm = "ECDSA".into();
    assert_eq!(
        code(merchants::register_key(&people, shop, &bad, 6)),
        "KEY_ALGORITHM_INVALID"
    );
    bad = key("bad serial");
    assert_eq!(
        code(merchants::register_key(&people, shop, &bad, 6)),
        "KEY_SERIAL_INVALID"
    );
    assert!(
        !format!("{:?}", key("k")).contains("PUBLIC KEY"),
        "no PEM in Debug"
    );
}

#[test]
fn refused_requests_consume_no_nonce_and_name_the_first_failed_check() {
    let directory = tempfile::tempdir().unwrap();
    let people = people(&directory);
    let shop = example_merchant(&people);
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let verifier = Verifier::new();
    let verify = |header: &str, body: &str, now_ms: i64| {
        verifier
            .verify_request(
                &people,
                "POST",
                "/merchant/v1/sub-merchants",
                Some(header),
                body.as_bytes(),
                now_ms,
            )
            .map_err(|e| e.code())
    };
    let signed_by = |key: &ed25519_dalek::SigningKey| {
        let message = EXAMPLE_MESSAGE.as_bytes();
        example_header().replace(
            EXAMPLE_SIGNATURE,
            &Base64::encode_string(&key.sign(message).to_bytes()),
        )
    };
    let good = example_header();
    let skew_ms = super::signature::TIMESTAMP_SKEW_MS_MAX;
    for (header, body, now_ms, code) in [
        (
            signed_by(&stranger),
            EXAMPLE_BODY,
            EXAMPLE_NOW_MS,
            "SIGNATURE_INVALID",
        ),
        (good.clone(), "{}", EXAMPLE_NOW_MS, "SIGNATURE_INVALID"),
        (
            good.replace("mchid=\"1\"", "mchid=\"2\""),
            EXAMPLE_BODY,
            EXAMPLE_NOW_MS,
            "MERCHANT_UNKNOWN",
        ),
        (
            good.replace("ed-2026-01", "ed-2026-02"),
            EXAMPLE_BODY,
            EXAMPLE_NOW_MS,
            "KEY_UNKNOWN",
        ),
        (
            good.replace("ZHIFU-ED25519", "ZHIFU-RSA-SHA256"),
            EXAMPLE_BODY,
            EXAMPLE_NOW_MS,
            "SCHEME_MISMATCH",
        ),
        (
            good.clone(),
            EXAMPLE_BODY,
            EXAMPLE_NOW_MS + skew_ms + 1,
            "TIMESTAMP_SKEWED",
        ),
        (
            good.clone(),
            EXAMPLE_BODY,
            EXAMPLE_NOW_MS - skew_ms - 1,
            "TIMESTAMP_SKEWED",
        ),
    ] {
        assert_eq!(verify(&header, body, now_ms), Err(code), "{header}");
    }
    // Exactly 5 minutes off either way is still accepted; the nonce, untouched by every
    // refusal above, is consumed by the first acceptance.
    assert_eq!(
        verify(&good, EXAMPLE_BODY, EXAMPLE_NOW_MS + skew_ms),
        Ok(shop)
    );
    assert_eq!(
        verify(&good, EXAMPLE_BODY, EXAMPLE_NOW_MS - skew_ms),
        Err("NONCE_REUSED")
    );
    let missing = verifier.verify_request(&people, "GET", "/", None, b"", EXAMPLE_NOW_MS);
    assert!(matches!(missing, Err(SignatureError::Missing)));
    // A revoked key is unknown, though the verifier parsed and kept it above.
    merchants::revoke_key(&people, shop, "ed-2026-01", EXAMPLE_NOW_MS).unwrap();
    assert_eq!(
        verify(&good, EXAMPLE_BODY, EXAMPLE_NOW_MS),
        Err("KEY_UNKNOWN")
    );
}

#[test]
fn nonces_are_forgotten_only_after_they_could_no_longer_be_accepted() {
    let directory = tempfile::tempdir().unwrap();
    let people = people(&directory);
    example_merchant(&people);
    let verifier = Verifier::new();
    let memory_ms = super::signature::NONCE_MEMORY_MS;
    // Accepted at the earliest instant the timestamp allows; a replay at the latest instant
    // it allows is still refused, whatever purges ran in between.
    let seen_ms = EXAMPLE_NOW_MS - super::signature::TIMESTAMP_SKEW_MS_MAX;
    let verify = |now_ms: i64| {
        verifier
            .verify_request(
                &people,
                "POST",
                "/merchant/v1/sub-merchants",
                Some(&example_header()),
                EXAMPLE_BODY.as_bytes(),
                now_ms,
            )
            .map_err(|e| e.code())
    };
    assert!(verify(seen_ms).is_ok());
    assert_eq!(verify(seen_ms + memory_ms / 2), Err("NONCE_REUSED"));
    assert_eq!(verify(seen_ms + memory_ms), Err("NONCE_REUSED"));
    // A moment later the nonce may be purged: the timestamp that carried it is too old by then.
    assert_eq!(verify(seen_ms + memory_ms + 1), Err("TIMESTAMP_SKEWED"));
}

#[test]
fn platform_keys_sign_responses_that_their_public_keys_verify() {
    let ed25519_pem = PlatformKey::generate_pkcs8_pem(KeyAlgorithm::Ed25519).unwrap();
    let rsa_pem = PlatformKey::generate_pkcs8_pem(KeyAlgorithm::RsaSha256).unwrap();
    let keys = PlatformKeys::new(
        PlatformKey::from_pkcs8_pem(KeyAlgorithm::Ed25519, &ed25519_pem).unwrap(),
        PlatformKey::from_pkcs8_pem(KeyAlgorithm::RsaSha256, &rsa_pem).unwrap(),
    );
    assert!(PlatformKey::from_pkcs8_pem(KeyAlgorithm::RsaSha256, &ed25519_pem).is_err());
    assert!(PlatformKey::from_pkcs8_pem(KeyAlgorithm::Ed25519, &rsa_pem).is_err());
    for key in keys.all() {
        assert_eq!(key.serial().len(), 40);
        assert!(
            key.serial()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
        );
        let signed = keys.sign_response(key.algorithm(), 1_800_000_000, "abcdefghijklmnop", b"{}");
        assert_eq!(signed.serial, key.serial());
        assert_eq!(signed.signature_type, key.algorithm().scheme());
        let message = b"1800000000\nabcdefghijklmnop\n{}\n";
        let signature = Base64::decode_vec(&signed.signature).unwrap();
        let public = MerchantPublicKey::parse(key.algorithm(), &key.public_key_pem()).unwrap();
        assert!(public.verifies(message, &signature));
        assert!(!public.verifies(b"1800000000\nabcdefghijklmnop\n{ }\n", &signature));
        let shown = format!("{key:?} {signed:?} {keys:?}");
        assert!(
            !shown.contains("KEY-----") && !shown.contains(&signed.signature),
            "{shown}"
        );
    }
    assert_ne!(keys.all()[0].serial(), keys.all()[1].serial());
}
