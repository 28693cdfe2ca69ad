//! What every payment reads, kept in memory: who holds a session token, whose wallet a phone
//! opens, the payer's PIN row and real-name class, and what the payer has spent.
//!
//! Why: read from the database, these were a quarter of the server's CPU per payment (a
//! statement each, and the spending sum a scan of the payer's rows).
//!
//! Why it cannot go wrong: each entry remembers the wallet's write generation
//! ([`WalletDb::generation`](zhifu_store::WalletDb::generation)) it was read at and is trusted
//! only while the generation stays. Every write through the wallet's writer moves the
//! generation on, except quiet ones, and a quiet write is either harmless to every entry (a
//! new session, a new user) or updates what it changes itself. So a write nobody thought of
//! here empties the caches rather than leaving them stale.
//!
//! The rows of transfers between people are the exception: the ledger's writer commits them
//! with their transfers, outside the wallet's writer. Every answer to them goes through one
//! function, `p2p::answered`, which moves the generation on
//! ([`WalletDb::note_written_elsewhere`](zhifu_store::WalletDb::note_written_elsewhere)) after
//! every commit except one the caller counts in itself: a new transfer answered `ok`, whose
//! amount the caller adds to the payer's spending under the payer's person lock, the same
//! lock under which spending is read and cached.
//!
//! One server process per database: another process's writes do not move this generation.

use super::limits::{BalanceUsage, RealNameClass};
use super::people::Person;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use zhifu_store::PinRow;

/// Entries of one cache; a full cache is emptied and fills again, so memory stays bounded
/// without bookkeeping on every hit.
const ENTRIES_MAX: usize = 200_000;

/// One cache: each value with the generation it was read at.
pub(crate) struct Cache<K, V> {
    entries: Mutex<HashMap<K, (u64, V)>>,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    fn new() -> Cache<K, V> {
        Cache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value kept for `key` if it was read at `generation`, the current one.
    pub(crate) fn get(&self, key: &K, generation: u64) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((read_at, value)) if *read_at == generation => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value`, read from the records after `generation` was read.
    pub(crate) fn put(&self, key: K, generation: u64, value: V) {
        let mut entries = self.lock();
        if entries.len() >= ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(key, (generation, value));
    }

    /// Changes the value kept for `key`, if any, as the caller's own write changed it.
    pub(crate) fn update(&self, key: &K, change: impl FnOnce(&mut V)) {
        if let Some((_, value)) = self.lock().get_mut(key) {
            change(value);
        }
    }

    pub(crate) fn forget(&self, key: &K) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (u64, V)>> {
        // A panic while holding the lock cannot leave a half-written entry behind.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A live session as cached: who, and until when.
#[derive(Clone)]
pub(crate) struct SessionEntry {
    pub(crate) person: Person,
    pub(crate) expires_ms: i64,
}

/// What a payer has spent, as the limits see it, valid for a span of time: the windows it was
/// summed over (since opening, this year, today) and until the first counted hold expires.
#[derive(Clone, Copy)]
pub(crate) struct Spending {
    pub(crate) windows_ms: [i64; 3],
    pub(crate) read_ms: i64,
    /// From this instant on, a hold counted here has expired and the sums are smaller.
    pub(crate) valid_until_ms: i64,
    pub(crate) usage: BalanceUsage,
}

impl Spending {
    /// Whether these sums are the ones a read at `now_ms`, over `windows_ms`, would give.
    pub(crate) fn holds_at(&self, windows_ms: [i64; 3], now_ms: i64) -> bool {
        self.windows_ms == windows_ms && self.read_ms <= now_ms && now_ms < self.valid_until_ms
    }

    /// Adds a payment made now, in all three windows; a hold stops counting at its expiry.
    pub(crate) fn add(&mut self, amount_minor: u64, expiry_ms: Option<i64>) {
        let usage = &mut self.usage;
        usage.since_opening_minor = usage.since_opening_minor.saturating_add(amount_minor);
        usage.this_year_minor = usage.this_year_minor.saturating_add(amount_minor);
        usage.today_minor = usage.today_minor.saturating_add(amount_minor);
        if let Some(expiry_ms) = expiry_ms {
            self.valid_until_ms = self.valid_until_ms.min(expiry_ms);
        }
    }
}

/// The caches of one [`People`](super::people::People).
pub(crate) struct Hot {
    /// By the SHA-256 of the token.
    pub(crate) sessions: Cache<Vec<u8>, SessionEntry>,
    /// By the phone's lookup HMAC; a phone never changes owner.
    pub(crate) users_by_phone: Cache<Vec<u8>, i64>,
    pub(crate) pins: Cache<i64, PinRow>,
    pub(crate) classes: Cache<i64, RealNameClass>,
    /// Read and written only under the person's lock.
    pub(crate) spending: Cache<i64, Spending>,
}

impl Hot {
    pub(crate) fn new() -> Hot {
        Hot {
            sessions: Cache::new(),
            users_by_phone: Cache::new(),
            pins: Cache::new(),
            classes: Cache::new(),
            spending: Cache::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_read_at_an_older_generation_is_not_trusted() {
        let cache: Cache<i64, u64> = Cache::new();
        cache.put(1, 7, 100);
        assert_eq!(cache.get(&1, 7), Some(100));
        assert_eq!(cache.get(&1, 8), None, "a write happened since");
        assert_eq!(cache.get(&1, 7), None, "and the stale entry is gone");
    }

    #[test]
    fn spending_holds_within_its_windows_until_the_first_hold_expires() {
        let windows = [i64::MIN, 1_000, 2_000];
        let mut spending = Spending {
            windows_ms: windows,
            read_ms: 2_500,
            valid_until_ms: 9_000,
            usage: BalanceUsage::default(),
        };
        assert!(spending.holds_at(windows, 2_500));
        assert!(!spending.holds_at(windows, 2_499), "a clock set back");
        assert!(
            !spending.holds_at([i64::MIN, 1_000, 3_000], 3_000),
            "a new day"
        );
        spending.add(50, Some(4_000));
        assert_eq!(spending.usage.today_minor, 50);
        assert_eq!(spending.usage.since_opening_minor, 50);
        assert!(spending.holds_at(windows, 3_999));
        assert!(!spending.holds_at(windows, 4_000), "the new hold went back");
    }
}
