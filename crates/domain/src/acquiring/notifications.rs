//! Notifications to merchants (SPEC §5): when each attempt is due, and how an event's resource
//! is sealed for the merchant.
//!
//! Events wait in a durable outbox (`merchant_notifications`), written in the same write as the
//! payment or refund they report, so an event is never lost and never invented. The edge's
//! deliverer POSTs each due event to the merchant's `notify_url`; a 2xx ends it, anything else
//! (an error status, a refused connection, no answer within the timeout) schedules the next
//! attempt by [`next_attempt_ms`]. Delivery is at least once: the merchant dedupes by event id.
//!
//! The resource (the order or refund as JSON) travels sealed with AES-256-GCM under the
//! merchant's notification key: a fresh 12-character nonce per attempt, and the associated
//! data naming the kind of resource. The body as a whole is signed by the platform, like every
//! response of the merchant API.

use super::merchants::{self, MerchantError, MerchantId};
use crate::wallet::people::People;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64ct::{Base64, Encoding};
use zhifu_store::{AttemptRow, NotificationRow, StoreError};

/// The waits after the 1st, 2nd, … failed attempt (SPEC §5): 15 retries, then the event is
/// given up and only the query endpoints and the console's resend are left.
pub const RETRY_DELAYS_MS: [i64; 15] = [
    15_000,
    15_000,
    30_000,
    3 * 60_000,
    10 * 60_000,
    20 * 60_000,
    30 * 60_000,
    30 * 60_000,
    30 * 60_000,
    60 * 60_000,
    3 * 3_600_000,
    3 * 3_600_000,
    3 * 3_600_000,
    6 * 3_600_000,
    6 * 3_600_000,
];

/// When the attempt after `attempts_made` failed ones is due, or None when none is left.
pub fn next_attempt_ms(attempts_made: u32, failed_at_ms: i64) -> Option<i64> {
    let index = usize::try_from(attempts_made).ok()?.checked_sub(1)?;
    RETRY_DELAYS_MS
        .get(index)
        .map(|delay_ms| failed_at_ms + delay_ms)
}

/// Length of a notification key: 32 ASCII characters, used as the 32 key bytes of AES-256
/// (as WeChat Pay's APIv3 key is), so that any client library takes it as it is.
pub const NOTIFY_KEY_LEN: usize = 32;
/// Length of a nonce: 12 ASCII characters, the 12 nonce bytes of GCM.
pub const NONCE_LEN: usize = 12;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A merchant's notification key. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct NotifyKey(String);

impl std::fmt::Debug for NotifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifyKey(<hidden>)")
    }
}

impl NotifyKey {
    pub fn parse(text: &str) -> Option<NotifyKey> {
        (text.len() == NOTIFY_KEY_LEN && text.bytes().all(|b| ALPHABET.contains(&b)))
            .then(|| NotifyKey(text.to_owned()))
    }

    pub fn generate() -> NotifyKey {
        NotifyKey(random_text(NOTIFY_KEY_LEN))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Random characters from the alphabet, without bias (rejection of bytes ≥ 248).
pub fn random_text(len: usize) -> String {
    let mut text = String::with_capacity(len);
    // Each round keeps about 97 % of its bytes; 64 rounds failing is beyond belief.
    for _ in 0..64 {
        let mut bytes = [0u8; 64];
        getrandom::fill(&mut bytes).expect("the OS gives random bytes");
        for byte in bytes {
            if text.len() == len {
                return text;
            }
            if usize::from(byte) < ALPHABET.len() * 4 {
                text.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
    }
    assert_eq!(text.len(), len, "the OS's random bytes are that skewed");
    text
}

/// The resource sealed: base64 of ciphertext and tag, as AES-256-GCM gives them.
pub fn seal(key: &NotifyKey, nonce: &str, associated_data: &str, plaintext: &[u8]) -> String {
    assert_eq!(nonce.len(), NONCE_LEN);
    let cipher = Aes256Gcm::new_from_slice(key.0.as_bytes()).expect("a 32-byte key");
    let nonce = aes_gcm::aead::Nonce::<Aes256Gcm>::try_from(nonce.as_bytes()).expect("12 bytes");
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: associated_data.as_bytes(),
            },
        )
        .expect("AES-GCM seals any message of sane length");
    Base64::encode_string(&sealed)
}

/// The plaintext, if `ciphertext` was sealed by [`seal`] with this key, nonce and associated
/// data. What a merchant does; here for the tests and the docs' example.
pub fn open(
    key: &NotifyKey,
    nonce: &str,
    associated_data: &str,
    ciphertext: &str,
) -> Option<Vec<u8>> {
    let sealed = Base64::decode_vec(ciphertext).ok()?;
    let cipher = Aes256Gcm::new_from_slice(key.0.as_bytes()).ok()?;
    let nonce = aes_gcm::aead::Nonce::<Aes256Gcm>::try_from(nonce.as_bytes()).ok()?;
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &sealed,
                aad: associated_data.as_bytes(),
            },
        )
        .ok()
}

/// The merchant's notification key, made on first use.
pub fn notify_key(people: &People, merchant_id: MerchantId) -> Result<NotifyKey, MerchantError> {
    merchants::merchant(people, merchant_id)?;
    let id = merchant_id.get();
    if let Some(key) = people.db().read(|s| s.merchant_notify_key(id))? {
        return NotifyKey::parse(&key).ok_or_else(|| {
            MerchantError::Store(zhifu_store::StoreError::Corrupt(
                "a malformed notify key".into(),
            ))
        });
    }
    rotate_notify_key(people, merchant_id)
}

/// A new notification key for the merchant, replacing the old one at once.
pub fn rotate_notify_key(
    people: &People,
    merchant_id: MerchantId,
) -> Result<NotifyKey, MerchantError> {
    merchants::merchant(people, merchant_id)?;
    let key = NotifyKey::generate();
    let (id, text) = (merchant_id.get(), key.0.clone());
    people
        .db()
        .write_plain(move |s| s.merchant_notify_key_set(id, &text))?;
    Ok(key)
}

/// An event due for delivery, with where to deliver it (None: the merchant has no
/// `notify_url`, so the attempt fails and is retried on the schedule, in case one is set).
#[derive(Clone, Debug)]
pub struct Due {
    pub notification: NotificationRow,
    pub notify_url: Option<String>,
}

/// At most this many events are handed out per call.
pub const DUE_BATCH_MAX: usize = 64;

/// The events whose next attempt is due at `now_ms`, most overdue first.
pub fn due(people: &People, now_ms: i64, limit: usize) -> Result<Vec<Due>, StoreError> {
    let limit = limit.min(DUE_BATCH_MAX);
    let notifications = people.db().read(|s| s.notifications_due(now_ms, limit))?;
    let mut urls: Vec<(i64, Option<String>)> = Vec::new();
    let mut out = Vec::with_capacity(notifications.len());
    for notification in notifications {
        let merchant_id = notification.merchant_id;
        let url = match urls.iter().find(|(id, _)| *id == merchant_id) {
            Some((_, url)) => url.clone(),
            None => {
                let url = people
                    .db()
                    .read(|s| s.merchant(merchant_id))?
                    .and_then(|merchant| merchant.notify_url);
                urls.push((merchant_id, url.clone()));
                url
            }
        };
        out.push(Due {
            notification,
            notify_url: url,
        });
    }
    Ok(out)
}

/// Logs an attempt at `now_ms` (`outcome`: the status the endpoint answered, or why there
/// was none) and schedules the next one unless the merchant acknowledged (2xx). Returns when
/// the next attempt is due, if any.
pub fn record_attempt(
    people: &People,
    notification: &NotificationRow,
    outcome: &str,
    acknowledged: bool,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let attempt = notification.attempts + 1;
    let next_ms = match acknowledged {
        true => None,
        false => next_attempt_ms(attempt, now_ms),
    };
    let row = AttemptRow {
        notification_id: notification.id,
        attempt,
        at_ms: now_ms,
        outcome: outcome.chars().take(64).collect(),
    };
    let delivered_ms = acknowledged.then_some(now_ms);
    people
        .db()
        // Quiet: nothing kept in memory reads notifications, and every payment makes one.
        .write_plain_quiet(move |s| s.notification_attempted(&row, next_ms, delivered_ms))?;
    Ok(next_ms)
}

/// Makes one of the merchant's events due again now (the console's resend); false when the
/// merchant has no such event.
pub fn resend(
    people: &People,
    merchant_id: MerchantId,
    id: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let merchant = merchant_id.get();
    people
        .db()
        .write_plain(move |s| s.notification_resend(merchant, id, now_ms))
}

/// The merchant's events, newest first below `before_id`, each with its attempts.
pub fn log(
    people: &People,
    merchant_id: MerchantId,
    before_id: i64,
    limit: usize,
) -> Result<Vec<(NotificationRow, Vec<AttemptRow>)>, StoreError> {
    let rows = people
        .db()
        .read(|s| s.notifications_of_merchant(merchant_id.get(), before_id, limit))?;
    rows.into_iter()
        .map(|row| {
            let attempts = people.db().read(|s| s.notification_attempts(row.id))?;
            Ok((row, attempts))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_the_specs_and_ends_after_fifteen_retries() {
        assert_eq!(next_attempt_ms(0, 0), None);
        assert_eq!(next_attempt_ms(1, 1_000), Some(16_000));
        assert_eq!(next_attempt_ms(2, 0), Some(15_000));
        assert_eq!(next_attempt_ms(3, 0), Some(30_000));
        assert_eq!(next_attempt_ms(4, 0), Some(180_000));
        assert_eq!(next_attempt_ms(15, 0), Some(6 * 3_600_000));
        assert_eq!(next_attempt_ms(16, 0), None);
        let total_ms: i64 = RETRY_DELAYS_MS.iter().sum();
        assert_eq!(total_ms, 24 * 3_600_000 + 4 * 60_000);
    }

    #[test]
    fn sealed_resources_open_only_with_the_same_key_nonce_and_associated_data() {
        let key = NotifyKey::generate();
        let sealed = seal(&key, "abcdefghijkl", "transaction", b"{\"a\":1}");
        assert_eq!(
            open(&key, "abcdefghijkl", "transaction", &sealed).unwrap(),
            b"{\"a\":1}"
        );
        assert!(open(&key, "abcdefghijkm", "transaction", &sealed).is_none());
        assert!(open(&key, "abcdefghijkl", "refund", &sealed).is_none());
        assert!(
            open(
                &NotifyKey::generate(),
                "abcdefghijkl",
                "transaction",
                &sealed
            )
            .is_none()
        );
        assert_eq!(format!("{key:?}"), "NotifyKey(<hidden>)");
        assert!(NotifyKey::parse(key.expose()).is_some());
        assert!(NotifyKey::parse("short").is_none());
    }
}
