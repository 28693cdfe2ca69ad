//! Merchant acquiring (SPEC §5): how shops get paid: who the merchants are, how they talk to
//! zhifu, their orders and refunds, and the notifications they receive.
//!
//! - [`console`]: password-free access to the merchant console, by signed short-lived tokens.
//! - [`merchants`]: direct merchants, service providers and their sub-merchants; the public
//!   keys merchants sign with, registered under serials, several active for rotation.
//! - [`keys`]: the two signature algorithms (RSA-SHA256, Ed25519), serials, and the checks a
//!   public key must pass.
//! - [`signature`]: the signed API: the `Authorization` header's grammar, the signed messages,
//!   and [`signature::Verifier`], which accepts a request or says why not with a stable code.
//! - [`platform_keys`]: the platform's own keys, which sign every response.
//! - [`orders`]: native, in-wallet, pay-code and static-code orders, their payment with fees
//!   and commission, closing, reversal and refunds.
//! - [`notifications`]: the outbox's retry schedule and the sealing of event resources.
//! - [`recovery`]: payments and refunds that a crash cut in two, finished from the ledger.
//! - [`settlement`]: the daily T+1 payout of each merchant's settled funds to its bank card.
//!
//! The records live beside the wallet's (`zhifu_store::MerchantStore`, through the wallet's
//! `WalletDb`), so the services take the [`crate::wallet::people::People`] that owns it.

pub mod console;
pub mod keys;
pub mod merchants;
pub mod notifications;
pub mod orders;
pub mod platform_keys;
pub mod recovery;
pub mod settlement;
pub mod signature;

#[cfg(test)]
mod order_tests;
#[cfg(test)]
mod tests;
