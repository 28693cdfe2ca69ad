//! The zhifu ledger core: double-entry bookkeeping in integer minor units.
//!
//! # Overview
//! - [`Money`] and [`Currency`]: amounts as `i64` minor units; text only at the edges.
//! - [`Account`]: a currency, a [`AccountKind`], a [`BalanceRule`] and four running totals
//!   ([`Balances`]): debits and credits, pending and posted.
//! - [`NewTransfer`]: what a client asks for ([`TransferOp`]: posted, pending, post, void),
//!   identified by a client-chosen [`TransferId`], the idempotency key.
//! - [`Ledger`]: the state machine. It applies accounts and transfers to in-memory state and
//!   fills a [`BatchOutput`] with the records to persist; every transfer gets a
//!   [`TransferCode`].
//!
//! **Architecture invariant:** this crate does no I/O, has no async and no serde. It is plain
//! data and rules, so that the engine, the simulator and the tests run the very same code.
//!
//! **Money invariant:** every transfer debits one account and credits another by the same
//! amount, so per currency the sum of debits equals the sum of credits, posted and pending.
//! It is asserted on every transfer, in release builds too.

mod account;
mod code;
mod ledger;
mod money;
mod transfer;

pub use account::{Account, AccountId, AccountKind, BalanceRule, Balances, NewAccount};
pub use code::{AccountCode, TransferCode};
pub use ledger::{BatchOutput, Known, Ledger, Prior, check_conservation, conservation_totals};
pub use money::{Currency, Money, MoneyError};
pub use transfer::{
    NewTransfer, REFERENCE_LEN_MAX, Reference, Rejection, TIMEOUT_MS_MAX, Transfer, TransferId,
    TransferKind, TransferOp,
};

#[cfg(test)]
mod tests;
