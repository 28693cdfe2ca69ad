//! The one place where ledger types become database values and back. Both backends go
//! through these rows, so a column means the same thing in SQLite and PostgreSQL.

use crate::StoreError;
use zhifu_ledger::{
    Account, AccountId, AccountKind, BalanceRule, Balances, Currency, NewTransfer, Reference,
    Rejection, Transfer, TransferCode, TransferId, TransferKind, TransferOp,
};

pub(crate) const FLAG_LINKED: i64 = 1;
pub(crate) const FLAG_POST_FULL: i64 = 2;

pub(crate) fn id_bytes(id: TransferId) -> [u8; 16] {
    id.get().to_be_bytes()
}

pub(crate) fn id_from_bytes(bytes: &[u8]) -> Result<TransferId, StoreError> {
    let array: [u8; 16] = bytes
        .try_into()
        .map_err(|_| corrupt("transfer id is not 16 bytes"))?;
    TransferId::from_stored(u128::from_be_bytes(array))
        .ok_or_else(|| corrupt("transfer id is zero"))
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn account_id(raw: i64) -> Result<AccountId, StoreError> {
    u64::try_from(raw)
        .ok()
        .and_then(AccountId::new)
        .ok_or_else(|| corrupt("account id out of range"))
}

fn unsigned(raw: i64) -> Result<u64, StoreError> {
    u64::try_from(raw).map_err(|_| corrupt("negative amount or total"))
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).expect("the ledger keeps totals within i64::MAX")
}

fn reference(raw: Option<String>) -> Result<Option<Reference>, StoreError> {
    raw.map(|text| Reference::parse(&text).ok_or_else(|| corrupt("reference")))
        .transpose()
}

pub(crate) fn balances_to_row(b: &Balances) -> [i64; 4] {
    [
        signed(b.debits_pending_minor),
        signed(b.debits_posted_minor),
        signed(b.credits_pending_minor),
        signed(b.credits_posted_minor),
    ]
}

pub(crate) fn balances_from_row(values: [i64; 4]) -> Result<Balances, StoreError> {
    Ok(Balances {
        debits_pending_minor: unsigned(values[0])?,
        debits_posted_minor: unsigned(values[1])?,
        credits_pending_minor: unsigned(values[2])?,
        credits_posted_minor: unsigned(values[3])?,
    })
}

/// The column list of `transfers`, in [`TransferRow`] order.
pub(crate) const TRANSFER_COLUMNS: &str = "timestamp_ns, id, kind, debit_account_id, credit_account_id, \
    amount_minor, pending_id, timeout_ms, code, reference, flags, \
    dr_debits_pending, dr_debits_posted, dr_credits_pending, dr_credits_posted, \
    cr_debits_pending, cr_debits_posted, cr_credits_pending, cr_credits_posted";

pub(crate) struct TransferRow {
    pub timestamp_ns: i64,
    pub id: [u8; 16],
    pub kind: i64,
    pub debit_account_id: i64,
    pub credit_account_id: i64,
    pub amount_minor: i64,
    pub pending_id: Option<[u8; 16]>,
    pub timeout_ms: i64,
    pub code: i64,
    pub reference: Option<String>,
    pub flags: i64,
    pub debit_balances: [i64; 4],
    pub credit_balances: [i64; 4],
}

impl TransferRow {
    pub fn from_transfer(t: &Transfer) -> TransferRow {
        let flags =
            if t.linked { FLAG_LINKED } else { 0 } | if t.post_full { FLAG_POST_FULL } else { 0 };
        TransferRow {
            timestamp_ns: t.timestamp_ns,
            id: id_bytes(t.id),
            kind: i64::from(t.kind.code()),
            debit_account_id: signed(t.debit_account_id.get()),
            credit_account_id: signed(t.credit_account_id.get()),
            amount_minor: signed(t.amount_minor),
            pending_id: t.pending_id.map(id_bytes),
            timeout_ms: signed(t.timeout_ms),
            code: i64::from(t.code),
            reference: t.reference.as_ref().map(|r| r.as_str().to_owned()),
            flags,
            debit_balances: balances_to_row(&t.debit_balances_after),
            credit_balances: balances_to_row(&t.credit_balances_after),
        }
    }

    pub fn into_transfer(self) -> Result<Transfer, StoreError> {
        let kind = u8::try_from(self.kind)
            .ok()
            .and_then(TransferKind::from_code)
            .ok_or_else(|| corrupt("transfer kind"))?;
        Ok(Transfer {
            id: id_from_bytes(&self.id)?,
            kind,
            debit_account_id: account_id(self.debit_account_id)?,
            credit_account_id: account_id(self.credit_account_id)?,
            amount_minor: unsigned(self.amount_minor)?,
            pending_id: self
                .pending_id
                .map(|bytes| id_from_bytes(&bytes))
                .transpose()?,
            timeout_ms: unsigned(self.timeout_ms)?,
            code: u16::try_from(self.code).map_err(|_| corrupt("transfer code"))?,
            reference: reference(self.reference)?,
            linked: self.flags & FLAG_LINKED != 0,
            post_full: self.flags & FLAG_POST_FULL != 0,
            timestamp_ns: self.timestamp_ns,
            debit_balances_after: balances_from_row(self.debit_balances)?,
            credit_balances_after: balances_from_row(self.credit_balances)?,
        })
    }
}

/// The column list of `rejections`, in [`RejectionRow`] order.
pub(crate) const REJECTION_COLUMNS: &str = "id, kind, debit_account_id, credit_account_id, amount_minor, pending_id, timeout_ms, code, reference, flags, result, timestamp_ns";

pub(crate) struct RejectionRow {
    pub id: [u8; 16],
    pub kind: i64,
    pub debit_account_id: Option<i64>,
    pub credit_account_id: Option<i64>,
    pub amount_minor: Option<i64>,
    pub pending_id: Option<[u8; 16]>,
    pub timeout_ms: i64,
    pub code: i64,
    pub reference: Option<String>,
    pub flags: i64,
    pub result: i64,
    pub timestamp_ns: i64,
}

impl RejectionRow {
    pub fn from_rejection(r: &Rejection) -> RejectionRow {
        let request = &r.request;
        let mut row = RejectionRow {
            id: id_bytes(request.id),
            kind: 0,
            debit_account_id: None,
            credit_account_id: None,
            amount_minor: None,
            pending_id: None,
            timeout_ms: 0,
            code: i64::from(request.code),
            reference: request.reference.as_ref().map(|r| r.as_str().to_owned()),
            flags: if request.linked { FLAG_LINKED } else { 0 },
            result: i64::from(r.result.number()),
            timestamp_ns: r.timestamp_ns,
        };
        match request.op {
            TransferOp::Posted {
                debit_account_id,
                credit_account_id,
                amount_minor,
            } => {
                row.kind = i64::from(TransferKind::Posted.code());
                row.debit_account_id = Some(signed(debit_account_id.get()));
                row.credit_account_id = Some(signed(credit_account_id.get()));
                row.amount_minor = Some(signed_or_max(amount_minor));
            }
            TransferOp::Pending {
                debit_account_id,
                credit_account_id,
                amount_minor,
                timeout_ms,
            } => {
                row.kind = i64::from(TransferKind::Pending.code());
                row.debit_account_id = Some(signed(debit_account_id.get()));
                row.credit_account_id = Some(signed(credit_account_id.get()));
                row.amount_minor = Some(signed_or_max(amount_minor));
                row.timeout_ms = signed_or_max(timeout_ms);
            }
            TransferOp::PostPending {
                pending_id,
                amount_minor,
            } => {
                row.kind = i64::from(TransferKind::PostPending.code());
                row.pending_id = Some(id_bytes(pending_id));
                row.amount_minor = amount_minor.map(signed_or_max);
            }
            TransferOp::VoidPending { pending_id } => {
                row.kind = i64::from(TransferKind::VoidPending.code());
                row.pending_id = Some(id_bytes(pending_id));
            }
        }
        row
    }

    pub fn into_rejection(self) -> Result<Rejection, StoreError> {
        let kind = u8::try_from(self.kind)
            .ok()
            .and_then(TransferKind::from_code)
            .ok_or_else(|| corrupt("rejection kind"))?;
        let accounts = || -> Result<(AccountId, AccountId, u64), StoreError> {
            let debit = account_id(
                self.debit_account_id
                    .ok_or_else(|| corrupt("rejection debit"))?,
            )?;
            let credit = account_id(
                self.credit_account_id
                    .ok_or_else(|| corrupt("rejection credit"))?,
            )?;
            let amount = unsigned(
                self.amount_minor
                    .ok_or_else(|| corrupt("rejection amount"))?,
            )?;
            Ok((debit, credit, amount))
        };
        let pending = || {
            self.pending_id
                .as_ref()
                .ok_or_else(|| corrupt("rejection pending id"))
                .and_then(|b| id_from_bytes(b))
        };
        let op = match kind {
            TransferKind::Posted => {
                let (debit_account_id, credit_account_id, amount_minor) = accounts()?;
                TransferOp::Posted {
                    debit_account_id,
                    credit_account_id,
                    amount_minor,
                }
            }
            TransferKind::Pending => {
                let (debit_account_id, credit_account_id, amount_minor) = accounts()?;
                TransferOp::Pending {
                    debit_account_id,
                    credit_account_id,
                    amount_minor,
                    timeout_ms: unsigned(self.timeout_ms)?,
                }
            }
            TransferKind::PostPending => TransferOp::PostPending {
                pending_id: pending()?,
                amount_minor: self.amount_minor.map(unsigned).transpose()?,
            },
            TransferKind::VoidPending => TransferOp::VoidPending {
                pending_id: pending()?,
            },
            TransferKind::Expiry => return Err(corrupt("rejected expiry")),
        };
        let result = u16::try_from(self.result)
            .ok()
            .and_then(TransferCode::from_number)
            .ok_or_else(|| corrupt("result"))?;
        Ok(Rejection {
            request: NewTransfer {
                id: id_from_bytes(&self.id)?,
                op,
                code: u16::try_from(self.code).map_err(|_| corrupt("transfer code"))?,
                reference: reference(self.reference)?,
                linked: self.flags & FLAG_LINKED != 0,
            },
            result,
            timestamp_ns: self.timestamp_ns,
        })
    }
}

/// Stored rejections may carry out-of-range request values (that is why some were rejected);
/// payload-only rejections are never stored, so this clamp is never reached in practice.
fn signed_or_max(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) const RULE_UNBOUNDED: i64 = 0;
pub(crate) const RULE_DEBITS_WITHIN_CREDITS: i64 = 1;
pub(crate) const RULE_CREDITS_WITHIN_DEBITS: i64 = 2;

pub(crate) struct AccountRow {
    pub id: i64,
    pub currency: String,
    pub kind: i64,
    pub rule: i64,
    pub overdraft_limit_minor: i64,
    pub closed: bool,
}

impl AccountRow {
    pub fn from_account(a: &Account) -> AccountRow {
        let (rule, overdraft_limit_minor) = match a.rule {
            BalanceRule::Unbounded => (RULE_UNBOUNDED, 0),
            BalanceRule::DebitsWithinCredits {
                overdraft_limit_minor,
            } => (RULE_DEBITS_WITHIN_CREDITS, signed(overdraft_limit_minor)),
            BalanceRule::CreditsWithinDebits => (RULE_CREDITS_WITHIN_DEBITS, 0),
        };
        AccountRow {
            id: signed(a.id.get()),
            currency: a.currency.code().to_owned(),
            kind: i64::from(a.kind.code()),
            rule,
            overdraft_limit_minor,
            closed: a.closed,
        }
    }

    pub fn into_account(self, balances: Balances) -> Result<Account, StoreError> {
        let rule = match self.rule {
            RULE_UNBOUNDED => BalanceRule::Unbounded,
            RULE_DEBITS_WITHIN_CREDITS => BalanceRule::DebitsWithinCredits {
                overdraft_limit_minor: unsigned(self.overdraft_limit_minor)?,
            },
            RULE_CREDITS_WITHIN_DEBITS => BalanceRule::CreditsWithinDebits,
            _ => return Err(corrupt("balance rule")),
        };
        Ok(Account {
            id: account_id(self.id)?,
            currency: Currency::parse(&self.currency).map_err(|_| corrupt("currency"))?,
            kind: u16::try_from(self.kind)
                .ok()
                .and_then(AccountKind::from_code)
                .ok_or_else(|| corrupt("account kind"))?,
            rule,
            closed: self.closed,
            balances,
        })
    }
}
