//! A Bloom filter over every transfer id the ledger holds.
//!
//! Nearly every id a batch brings is new. The filter answers "certainly new" for those without
//! a database read; only a "maybe" (a real retry, or about 1 % false positives) is looked up.
//!
//! The filter grows without ever stopping the writer: when its newest generation is full, a
//! new one twice as large takes the inserts, and a lookup asks every generation. (Rebuilding
//! one larger filter from storage instead stalled the writer for a scan of every id: 260 ms at
//! two million ids, and growing with the ledger.) Each generation adds about 1 % of false
//! positives; a restart folds them all into one.

use zhifu_ledger::TransferId;

/// Bits per id: 10 bits with 7 probes give about 1 % false positives.
const BITS_PER_ID: usize = 10;
const PROBES: u64 = 7;
pub(crate) const CAPACITY_MIN: usize = 1 << 20;

pub(crate) struct IdFilter {
    /// Oldest first; only the last one takes inserts. Never empty.
    generations: Vec<Generation>,
}

impl IdFilter {
    pub fn with_capacity(capacity: usize) -> IdFilter {
        IdFilter {
            generations: vec![Generation::with_capacity(capacity)],
        }
    }

    pub fn insert(&mut self, id: TransferId) {
        let newest = self.generations.last().expect("never empty");
        if newest.is_full() {
            let capacity = newest.capacity.saturating_mul(2);
            self.generations.push(Generation::with_capacity(capacity));
        }
        self.generations.last_mut().expect("never empty").insert(id);
    }

    pub fn may_contain(&self, id: TransferId) -> bool {
        self.generations.iter().rev().any(|g| g.may_contain(id))
    }
}

struct Generation {
    bits: Vec<u64>,
    bit_count: u64,
    ids_count: usize,
    capacity: usize,
}

impl Generation {
    fn with_capacity(capacity: usize) -> Generation {
        let capacity = capacity.max(CAPACITY_MIN);
        let words = (capacity * BITS_PER_ID).div_ceil(64);
        Generation {
            bits: vec![0; words],
            bit_count: words as u64 * 64,
            ids_count: 0,
            capacity,
        }
    }

    /// Past its capacity the false-positive rate climbs.
    fn is_full(&self) -> bool {
        self.ids_count >= self.capacity
    }

    fn insert(&mut self, id: TransferId) {
        let (h1, h2) = hashes(id);
        for probe in 0..PROBES {
            let bit = h1.wrapping_add(probe.wrapping_mul(h2)) % self.bit_count;
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        self.ids_count += 1;
    }

    fn may_contain(&self, id: TransferId) -> bool {
        let (h1, h2) = hashes(id);
        (0..PROBES).all(|probe| {
            let bit = h1.wrapping_add(probe.wrapping_mul(h2)) % self.bit_count;
            self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }
}

/// Two independent 64-bit hashes of the id (SplitMix64 finalisers), for double hashing.
fn hashes(id: TransferId) -> (u64, u64) {
    let raw = id.get();
    let high = (raw >> 64) as u64;
    let low = raw as u64;
    (
        mix(low ^ mix(high)),
        mix(high ^ mix(low).rotate_left(32)) | 1,
    )
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let mut filter = IdFilter::with_capacity(CAPACITY_MIN);
        let id = |n: u128| TransferId::new(n).unwrap();
        for n in 1..=100_000u128 {
            filter.insert(id(n));
        }
        assert!((1..=100_000u128).all(|n| filter.may_contain(id(n))));
        let false_positives = (100_001..=200_000u128)
            .filter(|n| filter.may_contain(id(*n)))
            .count();
        assert!(
            false_positives < 1_000,
            "{false_positives} false positives of 100,000"
        );
    }

    #[test]
    fn grows_by_generations_without_losing_ids() {
        let mut filter = IdFilter::with_capacity(0);
        let id = |n: u128| TransferId::new(n).unwrap();
        let ids_count = 3 * CAPACITY_MIN as u128 + 17;
        for n in 1..=ids_count {
            filter.insert(id(n));
        }
        assert_eq!(filter.generations.len(), 3, "1 Mi, 2 Mi, then 4 Mi");
        assert!((1..=ids_count).all(|n| filter.may_contain(id(n))));
        let false_positives = (ids_count + 1..=ids_count + 100_000)
            .filter(|n| filter.may_contain(id(*n)))
            .count();
        assert!(
            false_positives < 3_000,
            "{false_positives} false positives of 100,000"
        );
    }
}
