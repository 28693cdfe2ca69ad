//! The signed merchant API (SPEC §5, `docs/merchant-api.md`): requests signed by the
//! merchant, responses signed by the platform.
//!
//! A request carries
//! `Authorization: ZHIFU-RSA-SHA256 mchid="…",serial_no="…",timestamp="…",nonce_str="…",signature="…"`
//! (or `ZHIFU-ED25519 …`), the signature being over
//! `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`. [`Verifier::verify_request`] accepts it
//! when the header parses strictly, the key is the merchant's and active, the scheme is the
//! key's, the timestamp is within ±5 minutes, the signature verifies, and the nonce is new for
//! the merchant, in that order; the first check that fails names the error.
//!
//! A refused request changes nothing: in particular its nonce is not consumed, so that nobody
//! can spend a merchant's nonces with requests that do not verify. The nonce of a verified
//! request is consumed whatever the endpoint then answers.

use super::keys::{KeyAlgorithm, KeySerial, MerchantPublicKey};
use super::merchants::MerchantId;
use crate::wallet::people::People;
use base64ct::{Base64, Encoding};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use zhifu_store::StoreError;

/// The longest `Authorization` value read: the longest valid one (RSA-4096, longest serial and
/// nonce) is under 1,000 bytes.
pub const AUTHORIZATION_LEN_MAX: usize = 2048;
/// How far a request's timestamp may be from the server's clock, either way.
pub const TIMESTAMP_SKEW_MS_MAX: i64 = 5 * 60_000;
/// How long an accepted nonce is remembered: a request stamped 5 minutes ahead of the server
/// stays acceptable until 10 minutes after it was seen.
pub const NONCE_MEMORY_MS: i64 = 2 * TIMESTAMP_SKEW_MS_MAX;
/// Nonces: 16 to 64 of `A–Z a–z 0–9 - _`; 16 random characters are ~95 bits.
pub const NONCE_LEN_MIN: usize = 16;
pub const NONCE_LEN_MAX: usize = 64;
/// Timestamps: unix seconds in at most 12 digits.
const TIMESTAMP_DIGITS_MAX: usize = 12;
/// The longest signature accepted: RSA-4096 is 512 bytes.
const SIGNATURE_BYTES_MAX: usize = 512;
/// How often, at most, accepted nonces past [`NONCE_MEMORY_MS`] are purged.
const NONCE_PURGE_EVERY_MS: i64 = 60_000;

#[derive(Debug)]
pub enum SignatureError {
    /// No `Authorization` header.
    Missing,
    /// The header is not of the grammar; the reason is for the developer.
    Malformed(&'static str),
    MerchantUnknown,
    /// No such serial for the merchant, or it was revoked.
    KeyUnknown,
    /// The scheme is not the key's algorithm.
    SchemeMismatch,
    TimestampSkewed,
    NonceReused,
    /// The signature does not verify over the request as received.
    Invalid,
    Store(StoreError),
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing => "SIGNATURE_MISSING",
            SignatureError::Malformed(_) => "SIGNATURE_MALFORMED",
            SignatureError::MerchantUnknown => "MERCHANT_UNKNOWN",
            SignatureError::KeyUnknown => "KEY_UNKNOWN",
            SignatureError::SchemeMismatch => "SCHEME_MISMATCH",
            SignatureError::TimestampSkewed => "TIMESTAMP_SKEWED",
            SignatureError::NonceReused => "NONCE_REUSED",
            SignatureError::Invalid => "SIGNATURE_INVALID",
            SignatureError::Store(_) => "STORE_UNAVAILABLE",
        }
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::Missing => f.write_str(
                "sign the request: Authorization: ZHIFU-RSA-SHA256 or ZHIFU-ED25519 \
                 mchid=\"…\",serial_no=\"…\",timestamp=\"…\",nonce_str=\"…\",signature=\"…\"",
            ),
            SignatureError::Malformed(reason) => {
                write!(f, "the Authorization header is malformed: {reason}")
            }
            SignatureError::MerchantUnknown => f.write_str("no merchant has this mchid"),
            SignatureError::KeyUnknown => {
                f.write_str("the merchant has no active key of this serial_no")
            }
            SignatureError::SchemeMismatch => {
                f.write_str("the scheme is not the algorithm of the key named by serial_no")
            }
            SignatureError::TimestampSkewed => f.write_str(
                "timestamp is more than 5 minutes from the server's clock; check your clock",
            ),
            SignatureError::NonceReused => {
                f.write_str("this nonce_str was used already; sign every request with a new one")
            }
            SignatureError::Invalid => f.write_str(
                "the signature does not verify over METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n",
            ),
            SignatureError::Store(e) => write!(f, "storage failed: {e}"),
        }
    }
}

impl std::error::Error for SignatureError {}

impl From<StoreError> for SignatureError {
    fn from(e: StoreError) -> SignatureError {
        SignatureError::Store(e)
    }
}

/// A parsed `Authorization` header. `Debug` leaves the signature out.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization {
    pub algorithm: KeyAlgorithm,
    pub merchant_id: MerchantId,
    pub serial: KeySerial,
    /// As sent: it is signed as text.
    pub timestamp: String,
    pub timestamp_s: i64,
    pub nonce: String,
    pub signature: Vec<u8>,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("algorithm", &self.algorithm)
            .field("merchant_id", &self.merchant_id)
            .field("serial", &self.serial)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

const PARAMETERS: [&str; 5] = ["mchid", "serial_no", "timestamp", "nonce_str", "signature"];

impl Authorization {
    /// Parses `SCHEME SP param *( "," *SP param )`, `param = name "=" DQUOTE *char DQUOTE`:
    /// each of the five parameters exactly once, in any order, always quoted, nothing else.
    pub fn parse(header: &str) -> Result<Authorization, SignatureError> {
        use SignatureError::Malformed;
        if header.len() > AUTHORIZATION_LEN_MAX {
            return Err(Malformed("longer than 2048 bytes"));
        }
        let (scheme, parameters) = header
            .split_once(' ')
            .ok_or(Malformed("expected a scheme, a space and the parameters"))?;
        let algorithm = KeyAlgorithm::from_scheme(scheme).ok_or(Malformed(
            "the scheme is neither ZHIFU-RSA-SHA256 nor ZHIFU-ED25519",
        ))?;
        let [mchid, serial, timestamp, nonce, signature] = split_parameters(parameters)?;
        let merchant_id =
            MerchantId::parse(mchid).ok_or(Malformed("mchid is not a merchant number"))?;
        let serial = KeySerial::parse(serial).ok_or(Malformed("serial_no is not a key serial"))?;
        let timestamp_s = parse_timestamp(timestamp)?;
        check_nonce(nonce)?;
        let signature = decode_signature(signature)?;
        Ok(Authorization {
            algorithm,
            merchant_id,
            serial,
            timestamp: timestamp.to_owned(),
            timestamp_s,
            nonce: nonce.to_owned(),
            signature,
        })
    }
}

/// The five values in the order of [`PARAMETERS`].
fn split_parameters(text: &str) -> Result<[&str; 5], SignatureError> {
    use SignatureError::Malformed;
    let mut values: [Option<&str>; 5] = [None; 5];
    let mut rest = text;
    loop {
        let (name, after_name) = rest
            .split_once('=')
            .ok_or(Malformed("expected name=\"value\""))?;
        let slot = PARAMETERS
            .iter()
            .position(|known| *known == name)
            .ok_or(Malformed("an unknown parameter, or stray characters"))?;
        let quoted = after_name
            .strip_prefix('"')
            .ok_or(Malformed("every value is in double quotes"))?;
        let (value, after_value) = quoted
            .split_once('"')
            .ok_or(Malformed("a value's closing quote is missing"))?;
        if values[slot].replace(value).is_some() {
            return Err(Malformed("a parameter appears twice"));
        }
        if after_value.is_empty() {
            break;
        }
        rest = after_value
            .strip_prefix(',')
            .ok_or(Malformed("parameters are separated by commas"))?
            .trim_start_matches(' ');
    }
    let [Some(a), Some(b), Some(c), Some(d), Some(e)] = values else {
        return Err(Malformed(
            "mchid, serial_no, timestamp, nonce_str and signature are all required",
        ));
    };
    Ok([a, b, c, d, e])
}

fn parse_timestamp(text: &str) -> Result<i64, SignatureError> {
    let digits = (1..=TIMESTAMP_DIGITS_MAX).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| text.parse().ok())
        .flatten()
        .ok_or(SignatureError::Malformed(
            "timestamp is unix seconds in decimal digits",
        ))
}

fn check_nonce(nonce: &str) -> Result<(), SignatureError> {
    let ok = (NONCE_LEN_MIN..=NONCE_LEN_MAX).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match ok {
        true => Ok(()),
        false => Err(SignatureError::Malformed(
            "nonce_str is 16 to 64 characters of A-Z a-z 0-9 - _",
        )),
    }
}

/// Standard base64 with its `=` padding, nothing else (RFC 4648 §4, canonical).
fn decode_signature(text: &str) -> Result<Vec<u8>, SignatureError> {
    let malformed = SignatureError::Malformed("signature is not standard padded base64");
    if text.is_empty() || text.len() > SIGNATURE_BYTES_MAX.div_ceil(3) * 4 {
        return Err(malformed);
    }
    Base64::decode_vec(text).map_err(|_| malformed)
}

/// What a request's signature covers: `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`, with the
/// path and query exactly as sent and the body's exact bytes (empty for a GET).
pub fn request_message(
    method: &str,
    path_and_query: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut message = Vec::with_capacity(
        method.len() + path_and_query.len() + timestamp.len() + nonce.len() + body.len() + 5,
    );
    for line in [
        method.as_bytes(),
        path_and_query.as_bytes(),
        timestamp.as_bytes(),
        nonce.as_bytes(),
        body,
    ] {
        message.extend_from_slice(line);
        message.push(b'\n');
    }
    message
}

/// What a response's signature covers: `TIMESTAMP\nNONCE\nBODY\n` (an empty body leaves the
/// last line empty).
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    for line in [timestamp.as_bytes(), nonce.as_bytes(), body] {
        message.extend_from_slice(line);
        message.push(b'\n');
    }
    message
}

/// Parsed public keys kept beside their stored PEM, at most this many.
const PARSED_KEYS_MAX: usize = 4_096;

/// Verifies signed requests. Cheap to clone; clones share when nonces were last purged and
/// the keys they parsed.
#[derive(Clone, Default)]
pub struct Verifier {
    nonces_purged_ms: Arc<AtomicI64>,
    parsed_keys: Arc<Mutex<ParsedKeys>>,
}

/// Public keys as parsed, by the PEM they were parsed from. The row is still read for every
/// request (a revoked or replaced key is refused at once, with nothing to invalidate); only the
/// parsing, which for Ed25519 decompresses a curve point, is saved.
#[derive(Default)]
struct ParsedKeys {
    by_pem: HashMap<String, MerchantPublicKey>,
}

impl ParsedKeys {
    fn get(&self, pem: &str, algorithm: KeyAlgorithm) -> Option<MerchantPublicKey> {
        let key = self.by_pem.get(pem)?;
        (key.algorithm() == algorithm).then(|| key.clone())
    }

    fn insert(&mut self, pem: &str, key: &MerchantPublicKey) {
        // Bounded: past the cap it starts over (keys are few; this only guards memory).
        if self.by_pem.len() >= PARSED_KEYS_MAX {
            self.by_pem.clear();
        }
        self.by_pem.insert(pem.to_owned(), key.clone());
    }
}

impl Verifier {
    pub fn new() -> Verifier {
        Verifier::default()
    }

    /// The merchant that signed this request, if it is accepted (see the module's doc for the
    /// checks and their order). Blocking: it reads the key and records the nonce.
    pub fn verify_request(
        &self,
        people: &People,
        method: &str,
        path_and_query: &str,
        authorization: Option<&str>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<MerchantId, SignatureError> {
        let authorization = Authorization::parse(authorization.ok_or(SignatureError::Missing)?)?;
        let key = self.merchant_key(people, &authorization)?;
        if key.algorithm() != authorization.algorithm {
            return Err(SignatureError::SchemeMismatch);
        }
        let skew_ms = now_ms.abs_diff(authorization.timestamp_s.saturating_mul(1000));
        if skew_ms > TIMESTAMP_SKEW_MS_MAX as u64 {
            return Err(SignatureError::TimestampSkewed);
        }
        let message = request_message(
            method,
            path_and_query,
            &authorization.timestamp,
            &authorization.nonce,
            body,
        );
        if !key.verifies(&message, &authorization.signature) {
            return Err(SignatureError::Invalid);
        }
        self.consume_nonce(
            people,
            authorization.merchant_id,
            authorization.nonce,
            now_ms,
        )?;
        Ok(authorization.merchant_id)
    }

    /// Records the nonce if it is new, in one writer job (check and record are one statement),
    /// purging expired nonces first when a purge is due.
    fn consume_nonce(
        &self,
        people: &People,
        merchant_id: MerchantId,
        nonce: String,
        now_ms: i64,
    ) -> Result<(), SignatureError> {
        let last = self.nonces_purged_ms.load(Ordering::Relaxed);
        let purge = now_ms - last >= NONCE_PURGE_EVERY_MS
            && self
                .nonces_purged_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        // Quiet: nothing kept in memory reads nonces. Without a purge, one statement (no
        // savepoint needed): every merchant call makes this write.
        let db = people.db();
        let merchant_id = merchant_id.get();
        let fresh = if purge {
            db.write_plain_quiet(move |s| {
                s.merchant_nonces_purge(now_ms - NONCE_MEMORY_MS)?;
                s.merchant_nonce_record(merchant_id, &nonce, now_ms)
            })?
        } else {
            db.write_statement_quiet(move |s| s.merchant_nonce_record(merchant_id, &nonce, now_ms))?
        };
        match fresh {
            true => Ok(()),
            false => Err(SignatureError::NonceReused),
        }
    }

    /// The active key the header names, or why there is none.
    fn merchant_key(
        &self,
        people: &People,
        authorization: &Authorization,
    ) -> Result<MerchantPublicKey, SignatureError> {
        let (merchant_id, serial) = (
            authorization.merchant_id.get(),
            authorization.serial.as_str(),
        );
        let row = people.db().read(|s| {
            let key = s.merchant_key(merchant_id, serial)?;
            let merchant_exists = key.is_some() || s.merchant(merchant_id)?.is_some();
            Ok((key, merchant_exists))
        })?;
        let row = match row {
            (_, false) => return Err(SignatureError::MerchantUnknown),
            (Some(row), true) if row.revoked_ms.is_none() => row,
            (_, true) => return Err(SignatureError::KeyUnknown),
        };
        let corrupt = || SignatureError::Store(StoreError::Corrupt("a stored merchant key".into()));
        let algorithm = KeyAlgorithm::parse(&row.algorithm).ok_or_else(corrupt)?;
        let parsed_keys = || self.parsed_keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = parsed_keys().get(&row.public_key_pem, algorithm) {
            return Ok(key);
        }
        let key =
            MerchantPublicKey::parse(algorithm, &row.public_key_pem).map_err(|_| corrupt())?;
        parsed_keys().insert(&row.public_key_pem, &key);
        Ok(key)
    }
}
