//! One-time pay codes (付款码, SPEC §3): 18 digits that the wallet shows and a merchant scans.
//!
//! A code is the institution's two-digit prefix and sixteen digits that carry nothing about
//! the person. Two kinds share the format, told apart by the first of the sixteen:
//!
//! - **online** (`0`–`4`): fifteen random digits the server issued; only a keyed hash is kept.
//!   Showing a new code spends the person's older ones.
//! - **offline** (`5`–`9`): a device number of seven digits (`5000000`–`9999999`, random,
//!   pseudonymous) and nine digits derived from the device's secret and the time step, as a
//!   phone without network computes them. The secret is derived from the server's key and the
//!   device number, so the server keeps no secret per device.
//!
//! Every code is valid for the TTL (default 60 s: an offline code for its time step of half
//! the TTL and the one after) and is **spent on first use, even when that use fails**. Wrong
//! guesses are counted per redeemer: past the limit in a window, its redemptions are refused.

use super::people::{People, PeopleError};
use crate::{Random, derive_key};
use hmac::{KeyInit, Mac};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use zhifu_store::{StoreError, WalletStore};

/// Digits in a pay code.
pub const PAY_CODE_LEN: usize = 18;
/// The lowest offline device number; online codes start with a digit below its first.
const DEVICE_NO_MIN: u64 = 5_000_000;
const DEVICE_NO_MAX: u64 = 9_999_999;
/// Redeemers remembered by the guess limiter; when full it forgets them all (bounded memory;
/// a forgetful window only ever lets a few more guesses through, never a payment).
const REDEEMERS_LEN_MAX: usize = 10_000;

#[derive(Clone, Debug)]
pub struct PayCodePolicy {
    /// Two digits that say which institution issued a code.
    pub prefix: String,
    pub ttl_ms: i64,
    /// Wrong codes one redeemer may present per window before it is refused.
    pub guesses_max: u32,
    pub guess_window_ms: i64,
}

impl Default for PayCodePolicy {
    fn default() -> PayCodePolicy {
        PayCodePolicy {
            prefix: "19".into(),
            ttl_ms: 60_000,
            guesses_max: 10,
            guess_window_ms: 60_000,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PayCodeError {
    /// Not 18 digits.
    Malformed,
    /// Another institution's prefix: its wallet must be asked, through the switch.
    OtherInstitution,
    /// Never issued, or derived with another secret or for another time.
    Unknown,
    Spent,
    Expired,
    /// This redeemer presented too many wrong codes lately.
    RateLimited,
}

impl PayCodeError {
    pub fn code(self) -> &'static str {
        match self {
            PayCodeError::Malformed => "PAY_CODE_MALFORMED",
            PayCodeError::OtherInstitution => "PAY_CODE_OTHER_INSTITUTION",
            PayCodeError::Unknown => "PAY_CODE_UNKNOWN",
            PayCodeError::Spent => "PAY_CODE_SPENT",
            PayCodeError::Expired => "PAY_CODE_EXPIRED",
            PayCodeError::RateLimited => "PAY_CODE_RATE_LIMITED",
        }
    }
}

impl fmt::Display for PayCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PayCodeError::Malformed => "a pay code is 18 digits",
            PayCodeError::OtherInstitution => "the pay code was issued by another institution",
            PayCodeError::Unknown => "no such pay code",
            PayCodeError::Spent => "the pay code was used already; ask for a new one",
            PayCodeError::Expired => "the pay code has expired; ask for a new one",
            PayCodeError::RateLimited => "too many wrong pay codes; wait a minute",
        })
    }
}

impl std::error::Error for PayCodeError {}

/// Why a redemption failed: the code, or the store.
#[derive(Debug)]
pub enum RedeemError {
    Code(PayCodeError),
    People(PeopleError),
}

impl From<PeopleError> for RedeemError {
    fn from(e: PeopleError) -> RedeemError {
        RedeemError::People(e)
    }
}

impl From<zhifu_store::StoreError> for RedeemError {
    fn from(e: zhifu_store::StoreError) -> RedeemError {
        RedeemError::People(PeopleError::Store(e))
    }
}

impl From<PayCodeError> for RedeemError {
    fn from(e: PayCodeError) -> RedeemError {
        RedeemError::Code(e)
    }
}

/// A code to show, and until when it is good.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCode {
    pub code: String,
    pub expires_ms: i64,
}

impl fmt::Debug for IssuedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A live code pays: it stays out of logs.
        write!(
            f,
            "IssuedCode {{ code: \"…\", expires_ms: {} }}",
            self.expires_ms
        )
    }
}

/// An enrolled device: its number and the secret it derives codes from (shown once).
#[derive(Clone, PartialEq, Eq)]
pub struct Device {
    pub device_no: u64,
    pub secret: Vec<u8>,
    pub step_ms: i64,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Device {{ device_no: {}, secret: \"…\" }}",
            self.device_no
        )
    }
}

/// Issues and redeems pay codes. Cheap to clone.
#[derive(Clone)]
pub struct PayCodes {
    key: Arc<[u8]>,
    policy: PayCodePolicy,
    /// Wrong codes per redeemer: (window start, count).
    guesses: Arc<Mutex<HashMap<String, (i64, u32)>>>,
}

impl PayCodes {
    pub fn new(secret: &[u8], policy: PayCodePolicy) -> PayCodes {
        assert!(
            policy.prefix.len() == 2 && policy.prefix.bytes().all(|b| b.is_ascii_digit()),
            "the institution prefix is two digits"
        );
        assert!(
            policy.ttl_ms >= 2_000,
            "a code lives long enough to be scanned"
        );
        PayCodes {
            key: derive_key(secret, "pay codes").into(),
            policy,
            guesses: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn policy(&self) -> &PayCodePolicy {
        &self.policy
    }

    /// A new online code for the person; their older codes are spent.
    pub fn issue(
        &self,
        people: &People,
        user_id: i64,
        random: &mut dyn Random,
        now_ms: i64,
    ) -> Result<IssuedCode, PeopleError> {
        let first = random.below(5);
        let rest = random.below(1_000_000_000_000_000);
        let code = format!("{}{first}{rest:015}", self.policy.prefix);
        assert_eq!(code.len(), PAY_CODE_LEN);
        let lookup = self.lookup(&code);
        let expires_ms = now_ms + self.policy.ttl_ms;
        // Quiet: nothing kept in memory reads pay codes.
        people
            .db()
            .write_plain_quiet(move |s| s.pay_code_issue(&lookup, user_id, now_ms, expires_ms))?;
        Ok(IssuedCode { code, expires_ms })
    }

    /// Enrols a device of the person's for offline codes; the secret is shown once.
    pub fn enrol_device(
        &self,
        people: &People,
        user_id: i64,
        random: &mut dyn Random,
        now_ms: i64,
    ) -> Result<Device, PeopleError> {
        // A free number in a few draws: the space has five million.
        for _ in 0..16 {
            let device_no = DEVICE_NO_MIN + random.below(DEVICE_NO_MAX - DEVICE_NO_MIN + 1);
            let number = device_no as i64;
            if people
                .db()
                .write_plain(move |s| s.pay_device_insert(number, user_id, now_ms))?
            {
                return Ok(Device {
                    device_no,
                    secret: self.device_secret(device_no),
                    step_ms: self.step_ms(),
                });
            }
        }
        // Sixteen taken numbers in a row: the space is nearly full, a state to fix by hand.
        Err(PeopleError::Store(zhifu_store::StoreError::Corrupt(
            "no free pay device number in 16 draws".into(),
        )))
    }

    /// Redeems a scanned code for `redeemer` (a merchant, a terminal): whose it is. The code
    /// is spent by this call, whatever the caller does next.
    pub fn redeem(
        &self,
        people: &People,
        code: &str,
        redeemer: &str,
        now_ms: i64,
    ) -> Result<i64, RedeemError> {
        self.redeem_and(people, code, redeemer, now_ms, |_, _| Ok(()))
            .map(|(payer_id, ())| payer_id)
    }

    /// Redeems a scanned code like [`PayCodes::redeem`] and records what it pays for with
    /// `record` (given the payer): for an online code in the same write, so that a payment
    /// waits for one commit, not two in a row, and the code is spent exactly when its use is
    /// recorded. Written quietly (see [`zhifu_store::WalletDb::write_quiet`]): `record` must
    /// not change anything that [`People`] keeps in memory, such as what a payer has spent.
    pub fn redeem_and<T: Send + 'static>(
        &self,
        people: &People,
        code: &str,
        redeemer: &str,
        now_ms: i64,
        record: impl FnOnce(&mut dyn WalletStore, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<(i64, T), RedeemError> {
        if code.len() != PAY_CODE_LEN || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PayCodeError::Malformed.into());
        }
        if !code.starts_with(&self.policy.prefix) {
            return Err(PayCodeError::OtherInstitution.into());
        }
        self.check_guesses(redeemer, now_ms)?;
        let result = match code.as_bytes()[2] {
            b'0'..=b'4' => self.redeem_online(people, code, now_ms, record),
            _ => self
                .redeem_offline(people, code, now_ms)
                .and_then(|payer_id| {
                    let recorded = people.db().write_plain(move |s| record(s, payer_id))?;
                    Ok((payer_id, recorded))
                }),
        };
        if let Err(RedeemError::Code(PayCodeError::Unknown)) = result {
            self.count_guess(redeemer, now_ms);
        }
        result
    }

    fn redeem_online<T: Send + 'static>(
        &self,
        people: &People,
        code: &str,
        now_ms: i64,
        record: impl FnOnce(&mut dyn WalletStore, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<(i64, T), RedeemError> {
        let lookup = self.lookup(code);
        // Kept whatever it finds: a code used too late is spent by that failed use too.
        let taken = people.db().write_plain_quiet(move |s| {
            let Some(row) = s.pay_code_take(&lookup, now_ms)? else {
                return Ok(Err(PayCodeError::Unknown));
            };
            Ok(match row.spent_ms {
                Some(_) => Err(PayCodeError::Spent),
                None if now_ms >= row.expires_ms => Err(PayCodeError::Expired),
                None => Ok((row.user_id, record(s, row.user_id)?)),
            })
        })?;
        Ok(taken?)
    }

    fn redeem_offline(&self, people: &People, code: &str, now_ms: i64) -> Result<i64, RedeemError> {
        let device_no: u64 = code[2..9].parse().map_err(|_| PayCodeError::Malformed)?;
        let number = device_no as i64;
        let owner = people
            .db()
            .read(|s| s.pay_device_owner(number))?
            .ok_or(PayCodeError::Unknown)?;
        let step_now = now_ms.div_euclid(self.step_ms());
        let secret = self.device_secret(device_no);
        // This step's code or the one before: a code shown at the end of a step still has
        // half a TTL to be scanned. Older steps are expired, not unknown, if they match.
        let step = (step_now - 3..=step_now)
            .rev()
            .find(|&step| offline_code(&self.policy.prefix, device_no, &secret, step) == code)
            .ok_or(PayCodeError::Unknown)?;
        if step < step_now - 1 {
            return Err(PayCodeError::Expired.into());
        }
        match people
            .db()
            .write_plain(move |s| s.pay_device_step_spend(number, step))?
        {
            true => Ok(owner),
            false => Err(PayCodeError::Spent.into()),
        }
    }

    fn check_guesses(&self, redeemer: &str, now_ms: i64) -> Result<(), PayCodeError> {
        let guesses = self.guesses.lock().unwrap_or_else(|p| p.into_inner());
        match guesses.get(redeemer) {
            Some(&(start_ms, count))
                if now_ms < start_ms + self.policy.guess_window_ms
                    && count >= self.policy.guesses_max =>
            {
                Err(PayCodeError::RateLimited)
            }
            _ => Ok(()),
        }
    }

    fn count_guess(&self, redeemer: &str, now_ms: i64) {
        let mut guesses = self.guesses.lock().unwrap_or_else(|p| p.into_inner());
        if guesses.len() >= REDEEMERS_LEN_MAX && !guesses.contains_key(redeemer) {
            guesses.clear();
        }
        let entry = guesses.entry(redeemer.to_owned()).or_insert((now_ms, 0));
        if now_ms >= entry.0 + self.policy.guess_window_ms {
            *entry = (now_ms, 0);
        }
        entry.1 += 1;
    }

    fn step_ms(&self) -> i64 {
        self.policy.ttl_ms / 2
    }

    fn lookup(&self, code: &str) -> Vec<u8> {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn device_secret(&self, device_no: u64) -> Vec<u8> {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(b"device\0");
        mac.update(&device_no.to_be_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// The code a device shows in time step `step` (`now_ms / step_ms`): the prefix, the device
/// number and nine digits of HMAC-SHA256(secret, step), truncated as HOTP does (RFC 4226).
/// What a phone computes offline; the server computes the same to check it.
pub fn offline_code(prefix: &str, device_no: u64, secret: &[u8], step: i64) -> String {
    assert!((DEVICE_NO_MIN..=DEVICE_NO_MAX).contains(&device_no));
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let word = u32::from_be_bytes(digest[offset..offset + 4].try_into().expect("4 bytes"));
    let digits = (word & 0x7fff_ffff) % 1_000_000_000;
    format!("{prefix}{device_no:07}{digits:09}")
}
