//! zhifu's business rules above the ledger.
//!
//! This crate decides what is allowed and how money is split, charged and limited; it moves
//! money only through the ledger engine, and knows nothing of HTTP, JSON or HTML (the edge
//! crate does). Rules that need time or randomness take them as arguments ([`Random`]), so a
//! seeded simulation can replay them.
//!
//! - [`wallet`]: the consumer wallet (SPEC §3): identities and real-name classes, sign-up and
//!   sessions, the payment PIN and its lockout, real-name verification, cards, top-up,
//!   withdrawal fees, red packets.
//! - [`acquiring`]: merchant acquiring (SPEC §5): merchants, service providers and
//!   sub-merchants, their API keys, and the signed merchant API's request verification and
//!   response signing.
//! - [`bank`]: the banks behind wallets, and the simulated one.

pub mod acquiring;
pub mod bank;
pub mod time;
pub mod wallet;

/// Randomness behind a small trait: production draws from the operating system, tests and
/// simulations from a seed.
pub trait Random {
    /// A uniform draw from `0..bound`; `bound` is at least 1.
    fn below(&mut self, bound: u64) -> u64;

    /// Fills `bytes`; for secrets (session tokens) the source must be cryptographically
    /// secure.
    fn fill(&mut self, bytes: &mut [u8]);
}

/// A key of its own for each use of the server's secret (HMAC-SHA-256 of a label).
pub fn derive_key(secret: &[u8], label: &str) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"zhifu key v1\0");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().to_vec()
}
