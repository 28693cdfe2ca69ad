//! The payment PIN (SPEC §3): six digits, separate from the login password, never trivial,
//! checked against a keyed hash, and locked out after repeated failures on an escalating
//! schedule whose state the caller persists.
//!
//! Why a keyed hash and not a slow one: a six-digit PIN has only a million values, so no
//! hashing cost protects a leaked hash; the server-held key and the lockout do. HMAC-SHA-256
//! costs microseconds, so a PIN check never limits payment throughput.

use hmac::{KeyInit, Mac};
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PinError {
    /// Not exactly six digits.
    Format,
    /// Easy to guess: one digit repeated, a run like 123456, a short pattern repeated.
    Trivial,
    /// The same as the login password.
    EqualsPassword,
    /// Too many wrong PINs; payments with a PIN are refused until then (ms since the epoch).
    Locked { until_ms: i64 },
    /// The PIN does not match.
    Wrong { failures: u32 },
}

impl PinError {
    pub fn code(self) -> &'static str {
        match self {
            PinError::Format => "PIN_FORMAT",
            PinError::Trivial => "PIN_TRIVIAL",
            PinError::EqualsPassword => "PIN_EQUALS_PASSWORD",
            PinError::Locked { .. } => "PIN_LOCKED",
            PinError::Wrong { .. } => "PIN_WRONG",
        }
    }
}

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinError::Format => f.write_str("a payment PIN is exactly six digits"),
            PinError::Trivial => f.write_str(
                "this PIN is too easy to guess (repeated digits, a sequence or a repeated pattern)",
            ),
            PinError::EqualsPassword => {
                f.write_str("the payment PIN must differ from the login password")
            }
            PinError::Locked { .. } => {
                f.write_str("too many wrong PINs; payments are locked for a while")
            }
            PinError::Wrong { failures } => write!(f, "wrong PIN ({failures} in a row)"),
        }
    }
}

impl std::error::Error for PinError {}

/// A PIN that passed the rules for a new PIN. Its digits never appear in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin([u8; 6]);

impl Pin {
    /// The rules for setting or changing a PIN.
    pub fn parse_new(text: &str, login_password: &str) -> Result<Pin, PinError> {
        let pin = Pin::parse(text)?;
        if is_trivial(&pin.0) {
            return Err(PinError::Trivial);
        }
        if text == login_password {
            return Err(PinError::EqualsPassword);
        }
        Ok(pin)
    }

    /// The format alone: for checking a PIN someone enters to pay.
    pub fn parse(text: &str) -> Result<Pin, PinError> {
        let bytes: [u8; 6] = text.as_bytes().try_into().map_err(|_| PinError::Format)?;
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(PinError::Format);
        }
        Ok(Pin(bytes))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(******)")
    }
}

/// One digit repeated; a run up or down (012345, 987654); a pattern of one to three digits
/// repeated (121212, 123123).
fn is_trivial(digits: &[u8; 6]) -> bool {
    let steps: Vec<i16> = digits
        .windows(2)
        .map(|w| i16::from(w[1]) - i16::from(w[0]))
        .collect();
    let run = steps.iter().all(|&s| s == 1) || steps.iter().all(|&s| s == -1);
    let repeats = |period: usize| (period..6).all(|i| digits[i] == digits[i - period]);
    run || repeats(1) || repeats(2) || repeats(3)
}

/// Computes and checks PIN hashes: HMAC-SHA-256 under a server key, over a per-user salt and
/// the digits.
#[derive(Clone)]
pub struct PinHasher {
    key: Vec<u8>,
}

pub const PIN_HASH_LEN: usize = 32;

impl PinHasher {
    pub fn new(key: &[u8]) -> PinHasher {
        assert!(key.len() >= 32, "a PIN key has at least 256 bits");
        PinHasher { key: key.to_vec() }
    }

    pub fn hash(&self, pin: &Pin, salt: &[u8]) -> [u8; PIN_HASH_LEN] {
        self.mac(pin, salt).finalize().into_bytes().into()
    }

    /// Constant time in the hash compared.
    pub fn matches(&self, pin: &Pin, salt: &[u8], hash: &[u8]) -> bool {
        self.mac(pin, salt).verify_slice(hash).is_ok()
    }

    fn mac(&self, pin: &Pin, salt: &[u8]) -> hmac::Hmac<sha2::Sha256> {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(&(salt.len() as u64).to_be_bytes());
        mac.update(salt);
        mac.update(&pin.0);
        mac
    }
}

impl fmt::Debug for PinHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinHasher { key: <secret> }")
    }
}

/// How long each failure in a row locks the PIN (configurable; SPEC §3 defaults).
#[derive(Clone, Debug)]
pub struct LockoutPolicy {
    /// Failures in a row that cost nothing but the count.
    pub failures_free: u32,
    /// The lock after failure `failures_free + 1`, `+ 2`, …; past the end, the last step grows
    /// by `step_after_last_ms` per failure.
    pub steps_ms: Vec<u64>,
    pub step_after_last_ms: u64,
}

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;

impl Default for LockoutPolicy {
    /// 5 wrong → 5 min, 6th → 10 min, 7th → 30 min, 8th → 1 h, 9th → 24 h, then +24 h each.
    fn default() -> LockoutPolicy {
        LockoutPolicy {
            failures_free: 4,
            steps_ms: vec![
                5 * MINUTE_MS,
                10 * MINUTE_MS,
                30 * MINUTE_MS,
                HOUR_MS,
                24 * HOUR_MS,
            ],
            step_after_last_ms: 24 * HOUR_MS,
        }
    }
}

impl LockoutPolicy {
    /// The lock that the `failures`-th failure in a row starts, if any.
    pub fn lock_ms(&self, failures: u32) -> Option<u64> {
        let step = failures.checked_sub(self.failures_free + 1)? as usize;
        let last = *self.steps_ms.last()?;
        Some(match self.steps_ms.get(step) {
            Some(&lock_ms) => lock_ms,
            None => {
                let beyond = (step + 1 - self.steps_ms.len()) as u64;
                last.saturating_add(beyond.saturating_mul(self.step_after_last_ms))
            }
        })
    }
}

/// What is remembered of a user's PIN attempts; it must survive restarts.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PinAttempts {
    pub failures: u32,
    pub locked_until_ms: Option<i64>,
}

impl PinAttempts {
    /// Refuses while locked.
    pub fn check_unlocked(&self, now_ms: i64) -> Result<(), PinError> {
        match self.locked_until_ms {
            Some(until_ms) if now_ms < until_ms => Err(PinError::Locked { until_ms }),
            _ => Ok(()),
        }
    }

    /// The state after one more wrong PIN.
    pub fn after_failure(self, now_ms: i64, policy: &LockoutPolicy) -> PinAttempts {
        let failures = self.failures.saturating_add(1);
        let locked_until_ms = policy
            .lock_ms(failures)
            .map(|lock_ms| now_ms.saturating_add(i64::try_from(lock_ms).unwrap_or(i64::MAX)));
        PinAttempts {
            failures,
            locked_until_ms,
        }
    }

    /// A right PIN resets everything.
    pub fn after_success(self) -> PinAttempts {
        PinAttempts::default()
    }
}
