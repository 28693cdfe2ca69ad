//! Merchants, service providers and sub-merchants (SPEC §5), and their API keys.
//!
//! - A **direct merchant** is onboarded by the operator.
//! - A **service provider** is a merchant of kind `service_provider`: becoming one is free and
//!   never exclusive in any region; it onboards **sub-merchants**, each of which belongs to
//!   that one provider and is paid itself (its money never settles to the provider).
//! - Each merchant uploads **public keys** (RSA-2048…4096 or Ed25519), each under a serial of
//!   its choosing; up to [`KEYS_ACTIVE_MAX`] are active at once so that a new key can be
//!   rolled out before the old one is revoked. A revoked serial is never reused.
//!
//! Every check that reads before it writes runs as one job of the wallet's single writer, so it
//! is atomic without locks (two uploads cannot both take the tenth key slot).

use super::keys::{KeyAlgorithm, KeyProblem, KeySerial, MerchantPublicKey};
use crate::wallet::people::People;
use std::fmt;
use zhifu_store::{MerchantKeyRow, MerchantRow, NewMerchant, StoreError, WalletStore};

/// A merchant's name as shown to payers: 1 to 64 characters, no control characters.
pub const NAME_CHARS_MAX: usize = 64;
/// The highest discount rate the operator or a provider may set: 10 % (1,000 basis points).
pub const DISCOUNT_RATE_BPS_MAX: u32 = 1_000;
pub const NOTIFY_URL_LEN_MAX: usize = 256;
/// Active keys per merchant: enough for any rotation, few enough to bound what a lookup meets.
pub const KEYS_ACTIVE_MAX: usize = 10;

/// A merchant's number: the `mchid` of the signed API. Positive.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct MerchantId(i64);

impl MerchantId {
    pub fn new(id: i64) -> Option<MerchantId> {
        (id > 0).then_some(MerchantId(id))
    }

    /// Decimal digits without a sign or leading zeros, as in `mchid="…"`.
    pub fn parse(text: &str) -> Option<MerchantId> {
        let canonical = (1..=19).contains(&text.len())
            && !text.starts_with('0')
            && text.bytes().all(|b| b.is_ascii_digit());
        canonical
            .then(|| text.parse().ok())
            .flatten()
            .and_then(MerchantId::new)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for MerchantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MerchantKind {
    Merchant,
    ServiceProvider,
}

impl MerchantKind {
    pub fn code(self) -> &'static str {
        match self {
            MerchantKind::Merchant => "merchant",
            MerchantKind::ServiceProvider => "service_provider",
        }
    }

    pub fn parse(code: &str) -> Option<MerchantKind> {
        match code {
            "merchant" => Some(MerchantKind::Merchant),
            "service_provider" => Some(MerchantKind::ServiceProvider),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Merchant {
    pub id: MerchantId,
    pub name: String,
    pub kind: MerchantKind,
    /// The provider that onboarded this sub-merchant.
    pub service_provider_id: Option<MerchantId>,
    /// 60 is 0.6 %.
    pub discount_rate_bps: u32,
    pub notify_url: Option<String>,
    pub created_ms: i64,
}

/// What onboarding asks for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Onboarding {
    pub name: String,
    pub kind: MerchantKind,
    pub discount_rate_bps: u32,
    pub notify_url: Option<String>,
}

/// A key as the merchant and the operator see it (never the key material).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyInfo {
    pub serial: KeySerial,
    pub algorithm: KeyAlgorithm,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// A key to register, as uploaded.
#[derive(Clone)]
pub struct NewKey {
    pub serial: String,
    pub algorithm: String,
    pub public_key_pem: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("serial", &self.serial)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub enum MerchantError {
    /// Neither `merchant` nor `service_provider`.
    KindInvalid,
    NameInvalid,
    DiscountRateInvalid,
    NotifyUrlInvalid,
    /// The named service provider does not exist or is not a service provider, or a service
    /// provider was to be placed under one.
    ServiceProviderInvalid,
    /// Only a service provider onboards sub-merchants.
    NotServiceProvider,
    MerchantNotFound,
    KeySerialInvalid,
    KeyAlgorithmInvalid,
    KeyInvalid(KeyProblem),
    /// The merchant has (or had) a key of this serial.
    KeySerialTaken,
    KeysTooMany,
    /// No active key of this serial.
    KeyNotFound,
    Store(StoreError),
}

impl MerchantError {
    pub fn code(&self) -> &'static str {
        match self {
            MerchantError::KindInvalid => "MERCHANT_KIND_INVALID",
            MerchantError::NameInvalid => "MERCHANT_NAME_INVALID",
            MerchantError::DiscountRateInvalid => "DISCOUNT_RATE_INVALID",
            MerchantError::NotifyUrlInvalid => "NOTIFY_URL_INVALID",
            MerchantError::ServiceProviderInvalid => "SERVICE_PROVIDER_INVALID",
            MerchantError::NotServiceProvider => "NOT_SERVICE_PROVIDER",
            MerchantError::MerchantNotFound => "MERCHANT_NOT_FOUND",
            MerchantError::KeySerialInvalid => "KEY_SERIAL_INVALID",
            MerchantError::KeyAlgorithmInvalid => "KEY_ALGORITHM_INVALID",
            MerchantError::KeyInvalid(_) => "KEY_INVALID",
            MerchantError::KeySerialTaken => "KEY_SERIAL_TAKEN",
            MerchantError::KeysTooMany => "KEYS_TOO_MANY",
            MerchantError::KeyNotFound => "KEY_NOT_FOUND",
            MerchantError::Store(_) => "STORE_UNAVAILABLE",
        }
    }
}

impl fmt::Display for MerchantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MerchantError::KindInvalid => f.write_str("kind is merchant or service_provider"),
            MerchantError::NameInvalid => write!(
                f,
                "name is 1 to {NAME_CHARS_MAX} characters, without control characters or \
                 surrounding spaces"
            ),
            MerchantError::DiscountRateInvalid => write!(
                f,
                "discount_rate_bps is 0 to {DISCOUNT_RATE_BPS_MAX} basis points (60 is 0.6 %)"
            ),
            MerchantError::NotifyUrlInvalid => write!(
                f,
                "notify_url is an http or https URL of at most {NOTIFY_URL_LEN_MAX} characters, \
                 without spaces, query or fragment"
            ),
            MerchantError::ServiceProviderInvalid => f.write_str(
                "service_provider_id must name a service provider, and a service provider \
                 belongs to no one",
            ),
            MerchantError::NotServiceProvider => {
                f.write_str("only a service provider onboards sub-merchants")
            }
            MerchantError::MerchantNotFound => f.write_str("no such merchant"),
            MerchantError::KeySerialInvalid => write!(
                f,
                "serial is 1 to {} characters of A-Z a-z 0-9 . _ -",
                super::keys::SERIAL_LEN_MAX
            ),
            MerchantError::KeyAlgorithmInvalid => f.write_str("algorithm is RSA-SHA256 or Ed25519"),
            MerchantError::KeyInvalid(problem) => problem.fmt(f),
            MerchantError::KeySerialTaken => {
                f.write_str("this merchant has had a key of this serial; choose another serial")
            }
            MerchantError::KeysTooMany => write!(
                f,
                "a merchant has at most {KEYS_ACTIVE_MAX} active keys; revoke one first"
            ),
            MerchantError::KeyNotFound => {
                f.write_str("the merchant has no active key of this serial")
            }
            MerchantError::Store(e) => write!(f, "storage failed: {e}"),
        }
    }
}

impl std::error::Error for MerchantError {}

impl From<StoreError> for MerchantError {
    fn from(e: StoreError) -> MerchantError {
        MerchantError::Store(e)
    }
}

/// Onboards a direct merchant or a service provider, or, with `service_provider_id`, a
/// sub-merchant of that provider (the operator's call).
pub fn onboard(
    people: &People,
    onboarding: &Onboarding,
    service_provider_id: Option<MerchantId>,
    now_ms: i64,
) -> Result<Merchant, MerchantError> {
    if service_provider_id.is_some() && onboarding.kind != MerchantKind::Merchant {
        return Err(MerchantError::ServiceProviderInvalid);
    }
    insert_merchant(
        people,
        onboarding,
        service_provider_id,
        MerchantError::ServiceProviderInvalid,
        now_ms,
    )
}

/// A service provider onboards a sub-merchant (the provider's signed call): always of kind
/// `merchant`, always its own.
pub fn onboard_sub_merchant(
    people: &People,
    provider_id: MerchantId,
    onboarding: &Onboarding,
    now_ms: i64,
) -> Result<Merchant, MerchantError> {
    let onboarding = Onboarding {
        kind: MerchantKind::Merchant,
        ..onboarding.clone()
    };
    insert_merchant(
        people,
        &onboarding,
        Some(provider_id),
        MerchantError::NotServiceProvider,
        now_ms,
    )
}

/// Checks the fields, then, in one writer job, that the provider (if any) is one, and inserts.
/// `not_a_provider` is the error when it is not: the operator named a wrong id, or a merchant
/// that is no provider called.
fn insert_merchant(
    people: &People,
    onboarding: &Onboarding,
    service_provider_id: Option<MerchantId>,
    not_a_provider: MerchantError,
    now_ms: i64,
) -> Result<Merchant, MerchantError> {
    check_onboarding(onboarding)?;
    let row = NewMerchant {
        name: onboarding.name.clone(),
        kind: onboarding.kind.code().to_owned(),
        service_provider_id: service_provider_id.map(MerchantId::get),
        discount_rate_bps: onboarding.discount_rate_bps,
        notify_url: onboarding.notify_url.clone(),
        created_ms: now_ms,
    };
    let inserted = people.db().write(move |s| {
        if let Some(provider_id) = row.service_provider_id {
            let is_provider = s
                .merchant(provider_id)?
                .is_some_and(|p| p.kind == MerchantKind::ServiceProvider.code());
            if !is_provider {
                return Ok(Err(not_a_provider));
            }
        }
        let id = s.merchant_insert(&row)?;
        Ok(Ok(s.merchant(id)?))
    })??;
    let row =
        inserted.ok_or_else(|| StoreError::Corrupt("an inserted merchant vanished".into()))?;
    merchant_from_row(row)
}

fn check_onboarding(onboarding: &Onboarding) -> Result<(), MerchantError> {
    let name = &onboarding.name;
    let name_ok = (1..=NAME_CHARS_MAX).contains(&name.chars().count())
        && name.trim() == name
        && !name.chars().any(char::is_control);
    if !name_ok {
        return Err(MerchantError::NameInvalid);
    }
    if onboarding.discount_rate_bps > DISCOUNT_RATE_BPS_MAX {
        return Err(MerchantError::DiscountRateInvalid);
    }
    if let Some(url) = &onboarding.notify_url
        && !notify_url_ok(url)
    {
        return Err(MerchantError::NotifyUrlInvalid);
    }
    Ok(())
}

/// An absolute http(s) URL with a host, no spaces, no query and no fragment (the event goes
/// in the body; WeChat Pay refuses a query in `notify_url` too). Plain http is allowed for
/// merchants on the operator's own network and for tests.
fn notify_url_ok(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else { return false };
    let host = rest.split('/').next().unwrap_or_default();
    url.len() <= NOTIFY_URL_LEN_MAX
        && !host.is_empty()
        && url.bytes().all(|b| b.is_ascii_graphic())
        && !url.contains(['?', '#'])
}

pub fn merchant(people: &People, id: MerchantId) -> Result<Merchant, MerchantError> {
    let row = people.db().read(|s| s.merchant(id.get()))?;
    merchant_from_row(row.ok_or(MerchantError::MerchantNotFound)?)
}

fn merchant_from_row(row: MerchantRow) -> Result<Merchant, MerchantError> {
    let corrupt = |what: &str| MerchantError::Store(StoreError::Corrupt(what.into()));
    Ok(Merchant {
        id: MerchantId::new(row.id).ok_or_else(|| corrupt("a merchant id"))?,
        name: row.name,
        kind: MerchantKind::parse(&row.kind).ok_or_else(|| corrupt("a merchant kind"))?,
        service_provider_id: row.service_provider_id.and_then(MerchantId::new),
        discount_rate_bps: row.discount_rate_bps,
        notify_url: row.notify_url,
        created_ms: row.created_ms,
    })
}

/// Registers a public key under a serial new to the merchant, if the merchant has fewer than
/// [`KEYS_ACTIVE_MAX`] active keys.
pub fn register_key(
    people: &People,
    merchant_id: MerchantId,
    key: &NewKey,
    now_ms: i64,
) -> Result<KeyInfo, MerchantError> {
    let serial = KeySerial::parse(&key.serial).ok_or(MerchantError::KeySerialInvalid)?;
    let algorithm =
        KeyAlgorithm::parse(&key.algorithm).ok_or(MerchantError::KeyAlgorithmInvalid)?;
    let public_key = MerchantPublicKey::parse(algorithm, &key.public_key_pem)
        .map_err(MerchantError::KeyInvalid)?;
    let row = MerchantKeyRow {
        merchant_id: merchant_id.get(),
        serial: serial.as_str().to_owned(),
        algorithm: algorithm.code().to_owned(),
        public_key_pem: public_key.to_pem(),
        created_ms: now_ms,
        revoked_ms: None,
    };
    people.db().write(move |s| insert_key(s, &row))??;
    Ok(KeyInfo {
        serial,
        algorithm,
        created_ms: now_ms,
        revoked_ms: None,
    })
}

fn insert_key(
    s: &mut dyn WalletStore,
    row: &MerchantKeyRow,
) -> Result<Result<(), MerchantError>, StoreError> {
    if s.merchant(row.merchant_id)?.is_none() {
        return Ok(Err(MerchantError::MerchantNotFound));
    }
    if s.merchant_keys_active(row.merchant_id)?.len() >= KEYS_ACTIVE_MAX {
        return Ok(Err(MerchantError::KeysTooMany));
    }
    Ok(match s.merchant_key_insert(row)? {
        true => Ok(()),
        false => Err(MerchantError::KeySerialTaken),
    })
}

/// Revokes an active key: from now on requests signed with it are refused (`KEY_UNKNOWN`).
pub fn revoke_key(
    people: &People,
    merchant_id: MerchantId,
    serial: &str,
    now_ms: i64,
) -> Result<KeyInfo, MerchantError> {
    let serial = KeySerial::parse(serial).ok_or(MerchantError::KeyNotFound)?;
    let (id, text) = (merchant_id.get(), serial.as_str().to_owned());
    let revoked = people.db().write(move |s| {
        if s.merchant(id)?.is_none() {
            return Ok(Err(MerchantError::MerchantNotFound));
        }
        if !s.merchant_key_revoke(id, &text, now_ms)? {
            return Ok(Err(MerchantError::KeyNotFound));
        }
        Ok(Ok(s.merchant_key(id, &text)?))
    })??;
    let row = revoked.ok_or_else(|| StoreError::Corrupt("a revoked key vanished".into()))?;
    key_info(row)
}

/// The merchant's active keys, oldest first.
pub fn active_keys(
    people: &People,
    merchant_id: MerchantId,
) -> Result<Vec<KeyInfo>, MerchantError> {
    let rows = people
        .db()
        .read(|s| s.merchant_keys_active(merchant_id.get()))?;
    rows.into_iter().map(key_info).collect()
}

fn key_info(row: MerchantKeyRow) -> Result<KeyInfo, MerchantError> {
    let corrupt = |what: &str| MerchantError::Store(StoreError::Corrupt(what.into()));
    Ok(KeyInfo {
        serial: KeySerial::parse(&row.serial).ok_or_else(|| corrupt("a key serial"))?,
        algorithm: KeyAlgorithm::parse(&row.algorithm).ok_or_else(|| corrupt("a key algorithm"))?,
        created_ms: row.created_ms,
        revoked_ms: row.revoked_ms,
    })
}
