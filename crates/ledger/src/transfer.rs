//! Transfers: the only way money moves.

use crate::account::{AccountId, Balances};
use std::fmt;
use std::num::NonZeroU128;

/// A transfer id, chosen by the client: it is the idempotency key.
///
/// Client ids are `1..2^127`. Ids with the top bit set belong to the engine, which derives the
/// id of an expiry from the id of the pending transfer it voids, so the two spaces never meet.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(NonZeroU128);

const ENGINE_ID_BIT: u128 = 1 << 127;

impl TransferId {
    /// A client id; `None` for zero and for the engine's half of the id space.
    pub fn new(raw: u128) -> Option<TransferId> {
        if raw & ENGINE_ID_BIT != 0 {
            return None;
        }
        NonZeroU128::new(raw).map(TransferId)
    }

    /// Any stored id, engine ids included (reading back from storage).
    pub fn from_stored(raw: u128) -> Option<TransferId> {
        NonZeroU128::new(raw).map(TransferId)
    }

    pub fn get(self) -> u128 {
        self.0.get()
    }

    /// The id of the engine's void that expires the pending transfer `self`.
    pub fn expiry_id(self) -> TransferId {
        assert!(self.0.get() & ENGINE_ID_BIT == 0, "expiry of an engine id");
        TransferId(NonZeroU128::new(self.0.get() | ENGINE_ID_BIT).expect("nonzero"))
    }

    /// Parses 32 hexadecimal digits, with or without the dashes of a UUID.
    pub fn parse_hex(text: &str) -> Option<TransferId> {
        let digits: String = text.chars().filter(|c| *c != '-').collect();
        if digits.len() != 32 || text.len() > 36 {
            return None;
        }
        u128::from_str_radix(&digits, 16)
            .ok()
            .and_then(TransferId::new)
    }
}

impl fmt::Debug for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{:032x}", self.0)
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A business reference (an order number, a refund number): 1 to 64 printable ASCII
/// characters without spaces. Transfers can be found by it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reference(Box<str>);

pub const REFERENCE_LEN_MAX: usize = 64;

impl Reference {
    pub fn parse(text: &str) -> Option<Reference> {
        let valid_len = (1..=REFERENCE_LEN_MAX).contains(&text.len());
        let valid_bytes = text.bytes().all(|b| b.is_ascii_graphic());
        (valid_len && valid_bytes).then(|| Reference(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest a pending transfer may wait: a year and a day (refund windows are 365 days).
pub const TIMEOUT_MS_MAX: u64 = 366 * 24 * 3600 * 1000;

/// What a client asks the ledger to do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TransferOp {
    /// Move money now.
    Posted {
        debit_account_id: AccountId,
        credit_account_id: AccountId,
        amount_minor: u64,
    },
    /// Reserve money; it is posted or voided later, or voided by the engine after the timeout
    /// (`timeout_ms == 0`: no timeout).
    Pending {
        debit_account_id: AccountId,
        credit_account_id: AccountId,
        amount_minor: u64,
        timeout_ms: u64,
    },
    /// Post a pending transfer, fully (`None`) or partially; the rest is released.
    PostPending {
        pending_id: TransferId,
        amount_minor: Option<u64>,
    },
    /// Release a pending transfer.
    VoidPending { pending_id: TransferId },
}

/// One transfer in a request. `linked` chains it to the next transfer of the same request: a
/// chain succeeds or fails as a whole.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewTransfer {
    pub id: TransferId,
    pub op: TransferOp,
    /// What the transfer is for, chosen by the domain (payment, refund, fee, …).
    pub code: u16,
    pub reference: Option<Reference>,
    pub linked: bool,
}

/// How a stored transfer changed balances. Stored by [`TransferKind::code`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TransferKind {
    Posted,
    Pending,
    PostPending,
    VoidPending,
    /// The engine voided a pending transfer whose timeout passed.
    Expiry,
}

impl TransferKind {
    pub fn code(self) -> u8 {
        match self {
            TransferKind::Posted => 1,
            TransferKind::Pending => 2,
            TransferKind::PostPending => 3,
            TransferKind::VoidPending => 4,
            TransferKind::Expiry => 5,
        }
    }

    pub fn from_code(code: u8) -> Option<TransferKind> {
        Some(match code {
            1 => TransferKind::Posted,
            2 => TransferKind::Pending,
            3 => TransferKind::PostPending,
            4 => TransferKind::VoidPending,
            5 => TransferKind::Expiry,
            _ => return None,
        })
    }
}

/// A transfer as the ledger recorded it: the request, the accounts and amount it resolved to,
/// when it happened, and both accounts' balances right after it (which makes statements and
/// crash recovery a read, not a replay).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transfer {
    pub id: TransferId,
    pub kind: TransferKind,
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    /// For a post: the amount posted. For a void or expiry: the amount released.
    pub amount_minor: u64,
    pub pending_id: Option<TransferId>,
    pub timeout_ms: u64,
    pub code: u16,
    pub reference: Option<Reference>,
    pub linked: bool,
    /// A post that asked for the full pending amount (kept so a retry compares equal).
    pub post_full: bool,
    /// Assigned by the engine, strictly increasing across the ledger: the global order.
    pub timestamp_ns: i64,
    pub debit_balances_after: Balances,
    pub credit_balances_after: Balances,
}

impl Transfer {
    /// The request this transfer answered, rebuilt from the record.
    pub fn request(&self) -> NewTransfer {
        let op = match self.kind {
            TransferKind::Posted => TransferOp::Posted {
                debit_account_id: self.debit_account_id,
                credit_account_id: self.credit_account_id,
                amount_minor: self.amount_minor,
            },
            TransferKind::Pending => TransferOp::Pending {
                debit_account_id: self.debit_account_id,
                credit_account_id: self.credit_account_id,
                amount_minor: self.amount_minor,
                timeout_ms: self.timeout_ms,
            },
            TransferKind::PostPending => TransferOp::PostPending {
                pending_id: self.pending_id.expect("post has a pending id"),
                amount_minor: (!self.post_full).then_some(self.amount_minor),
            },
            TransferKind::VoidPending | TransferKind::Expiry => TransferOp::VoidPending {
                pending_id: self.pending_id.expect("void has a pending id"),
            },
        };
        NewTransfer {
            id: self.id,
            op,
            code: self.code,
            reference: self.reference.clone(),
            linked: self.linked,
        }
    }

    /// When a pending transfer times out; `None` for other kinds and for no timeout.
    pub fn expires_at_ns(&self) -> Option<i64> {
        if self.kind != TransferKind::Pending || self.timeout_ms == 0 {
            return None;
        }
        let timeout_ns = i64::try_from(self.timeout_ms)
            .ok()?
            .checked_mul(1_000_000)?;
        Some(self.timestamp_ns.saturating_add(timeout_ns))
    }
}

/// A transfer that was refused because of the ledger's state at the time (not enough balance,
/// unknown account, …). It is kept so that a retry of the same id gets the same answer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rejection {
    pub request: NewTransfer,
    pub result: crate::TransferCode,
    pub timestamp_ns: i64,
}
