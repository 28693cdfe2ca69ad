//! Money in from a bound card (top-up) and out to one (withdrawal), SPEC §3. The bank is asked first; the ledger posts
//! only what the bank did. Both steps are keyed by the caller's idempotency key, so a retry,
//! a crash or a lost answer never moves money twice, and an unknown outcome is settled by
//! asking the bank, never by guessing.

use super::chart::{
    BANK_SETTLEMENT, CODE_TOP_UP, CODE_WITHDRAWAL, CODE_WITHDRAWAL_FEE, FEE_INCOME,
    wallet_account_id,
};
use super::fees::WithdrawalQuote;
use crate::bank::{Bank, BankError, Outcome};
use sha2::Digest;
use std::fmt;
use zhifu_ledger::{AccountId, NewTransfer, Reference, TransferCode, TransferId, TransferOp};
use zhifu_store::{CardRow, Engine, EngineError};

/// The most one top-up may bring: 50,000.00 yuan (configurable later; bounds the bank call).
pub const TOP_UP_MAX_MINOR: u64 = 5_000_000;

/// A caller's idempotency key: 1 to 48 visible ASCII characters.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Option<IdempotencyKey> {
        let valid = (1..=48).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
        valid.then(|| IdempotencyKey(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug)]
pub enum FundingError {
    AmountInvalid,
    Bank(BankError),
    /// The bank has not answered and does not know the request yet: retry with the same key.
    Processing,
    /// The key was used before for a different request.
    KeyReused,
    Ledger(TransferCode),
    Engine(EngineError),
}

impl FundingError {
    pub fn code(&self) -> &'static str {
        match self {
            FundingError::AmountInvalid => "AMOUNT_INVALID",
            FundingError::Bank(e) => e.code(),
            FundingError::Processing => "PROCESSING",
            FundingError::KeyReused => "IDEMPOTENCY_KEY_REUSED",
            FundingError::Ledger(code) => code.as_str(),
            FundingError::Engine(e) => e.code(),
        }
    }
}

impl fmt::Display for FundingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FundingError::AmountInvalid => {
                write!(f, "a top-up is between 0.01 and {} yuan", TOP_UP_MAX_MINOR / 100)
            }
            FundingError::Bank(e) => e.fmt(f),
            FundingError::Processing => f.write_str(
                "the bank has not answered yet; send the same request with the same Idempotency-Key again",
            ),
            FundingError::KeyReused => {
                f.write_str("this Idempotency-Key was used for a different request")
            }
            FundingError::Ledger(code) => write!(f, "the ledger refused the transfer: {}", code.as_str()),
            FundingError::Engine(e) => write!(f, "the ledger is unavailable: {e}"),
        }
    }
}

impl std::error::Error for FundingError {}

/// A completed top-up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TopUp {
    pub transfer_id: TransferId,
    pub amount_minor: u64,
}

/// Pulls `amount_minor` from the card into the person's wallet.
pub fn top_up(
    bank: &dyn Bank,
    engine: &Engine,
    user_id: i64,
    card: &CardRow,
    amount_minor: u64,
    key: &IdempotencyKey,
) -> Result<TopUp, FundingError> {
    assert_eq!(
        card.user_id, user_id,
        "the caller checked that the card is the person's"
    );
    if amount_minor == 0 || amount_minor > TOP_UP_MAX_MINOR {
        return Err(FundingError::AmountInvalid);
    }
    let transfer_id = derived_transfer_id("top-up", user_id, key);
    let bank_key = format!("topup-{:032x}", transfer_id.get());
    match bank.debit(&card.token, amount_minor, &bank_key) {
        Ok(()) => {}
        Err(BankError::Timeout) => match bank.outcome(&bank_key) {
            Outcome::Done => {}
            Outcome::Failed => return Err(FundingError::Bank(BankError::Declined)),
            Outcome::Unknown => return Err(FundingError::Processing),
        },
        // The same key for another amount or card: the bank refuses before moving anything.
        Err(BankError::Declined) if key_reused(bank, &bank_key) => {
            return Err(FundingError::KeyReused);
        }
        Err(e) => return Err(FundingError::Bank(e)),
    }
    let transfer = NewTransfer {
        id: transfer_id,
        op: TransferOp::Posted {
            debit_account_id: AccountId::new(BANK_SETTLEMENT).expect("a chart id"),
            credit_account_id: wallet_account_id(user_id),
            amount_minor,
        },
        code: CODE_TOP_UP,
        reference: Reference::parse(&format!("top-up:{}", key.as_str())),
        linked: false,
    };
    let codes = engine
        .create_transfers(vec![transfer])
        .map_err(FundingError::Engine)?;
    match codes.as_slice() {
        [TransferCode::Ok | TransferCode::Exists] => Ok(TopUp {
            transfer_id,
            amount_minor,
        }),
        [TransferCode::ExistsWithDifferentPayload] => Err(FundingError::KeyReused),
        [code] => Err(FundingError::Ledger(*code)),
        _ => unreachable!("one transfer, one code"),
    }
}

/// A declined operation whose key the bank already knows was another request under that key.
fn key_reused(bank: &dyn Bank, bank_key: &str) -> bool {
    bank.outcome(bank_key) == Outcome::Done
}

/// The ledger id for one person's request under one key: the same request always maps to the
/// same transfer, so the ledger itself refuses to post it twice.
pub fn derived_transfer_id(purpose: &str, user_id: i64, key: &IdempotencyKey) -> TransferId {
    let digest = sha2::Sha256::new()
        .chain_update(purpose.as_bytes())
        .chain_update([0])
        .chain_update(user_id.to_be_bytes())
        .chain_update(key.as_str().as_bytes())
        .finalize();
    let raw = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes")) >> 1;
    TransferId::new(raw.max(1)).expect("below 2^127 and not zero")
}

/// A completed withdrawal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Withdrawal {
    pub transfer_id: TransferId,
    pub quote: WithdrawalQuote,
}

/// Pays `quote.amount_minor` out to the card and charges `quote.fee_minor` to fee income.
///
/// The money is first held in the ledger (pending transfers without a timeout: a withdrawal
/// the bank may have paid must never be returned by a clock), then the bank is asked to pay,
/// then the holds are posted if it did and voided if it did not. When nobody knows yet, the
/// holds stay and the same request settles them later. On an error other than
/// [`FundingError::Processing`] nothing has moved and the caller gives the quota share back.
pub fn withdraw(
    bank: &dyn Bank,
    engine: &Engine,
    user_id: i64,
    card: &CardRow,
    quote: WithdrawalQuote,
    key: &IdempotencyKey,
) -> Result<Withdrawal, FundingError> {
    assert_eq!(
        card.user_id, user_id,
        "the caller checked that the card is the person's"
    );
    assert_eq!(quote.debit_minor, quote.amount_minor + quote.fee_minor);
    if quote.amount_minor == 0 || quote.amount_minor > WITHDRAWAL_MAX_MINOR {
        return Err(FundingError::AmountInvalid);
    }
    let ids = WithdrawalIds::new(user_id, key);
    hold(engine, user_id, &quote, &ids, key)?;
    let bank_key = format!("withdrawal-{:032x}", ids.hold.get());
    let paid = match bank.credit(&card.token, quote.amount_minor, &bank_key) {
        Ok(()) => Ok(()),
        Err(BankError::Timeout) => match bank.outcome(&bank_key) {
            Outcome::Done => Ok(()),
            Outcome::Failed => Err(BankError::Declined),
            Outcome::Unknown => return Err(FundingError::Processing),
        },
        Err(e) => Err(e),
    };
    match settle(engine, &quote, &ids, paid.is_ok()) {
        Ok(()) => {}
        // The bank has answered and will answer the same again: the hold waits for a retry
        // or the reconciler, which settle it the same way.
        Err(FundingError::Engine(_)) => return Err(FundingError::Processing),
        Err(e) => return Err(e),
    }
    paid.map_err(FundingError::Bank)?;
    Ok(Withdrawal {
        transfer_id: ids.hold,
        quote,
    })
}

/// The most one withdrawal may pay out: 50,000.00 yuan.
pub const WITHDRAWAL_MAX_MINOR: u64 = 5_000_000;

/// Every ledger id a withdrawal uses, derived from its key.
struct WithdrawalIds {
    hold: TransferId,
    fee_hold: TransferId,
    settle: TransferId,
    fee_settle: TransferId,
}

impl WithdrawalIds {
    fn new(user_id: i64, key: &IdempotencyKey) -> WithdrawalIds {
        WithdrawalIds {
            hold: derived_transfer_id("withdrawal hold", user_id, key),
            fee_hold: derived_transfer_id("withdrawal fee hold", user_id, key),
            settle: derived_transfer_id("withdrawal settle", user_id, key),
            fee_settle: derived_transfer_id("withdrawal fee settle", user_id, key),
        }
    }
}

fn hold(
    engine: &Engine,
    user_id: i64,
    quote: &WithdrawalQuote,
    ids: &WithdrawalIds,
    key: &IdempotencyKey,
) -> Result<(), FundingError> {
    let wallet = wallet_account_id(user_id);
    let pending = |id, credit: u64, amount_minor, code| NewTransfer {
        id,
        op: TransferOp::Pending {
            debit_account_id: wallet,
            credit_account_id: AccountId::new(credit).expect("a chart id"),
            amount_minor,
            timeout_ms: 0,
        },
        code,
        reference: Reference::parse(&format!("withdrawal:{}", key.as_str())),
        linked: false,
    };
    let mut transfers = vec![pending(
        ids.hold,
        BANK_SETTLEMENT,
        quote.amount_minor,
        CODE_WITHDRAWAL,
    )];
    if quote.fee_minor > 0 {
        transfers[0].linked = true;
        transfers.push(pending(
            ids.fee_hold,
            FEE_INCOME,
            quote.fee_minor,
            CODE_WITHDRAWAL_FEE,
        ));
    }
    let codes = engine
        .create_transfers(transfers)
        .map_err(FundingError::Engine)?;
    if codes
        .iter()
        .all(|c| matches!(c, TransferCode::Ok | TransferCode::Exists))
    {
        return Ok(());
    }
    if codes.contains(&TransferCode::ExistsWithDifferentPayload) {
        return Err(FundingError::KeyReused);
    }
    let cause = codes
        .iter()
        .copied()
        .find(|c| *c != TransferCode::LinkedEventFailed)
        .unwrap_or(TransferCode::LinkedEventFailed);
    Err(FundingError::Ledger(cause))
}

/// Posts the holds (paid) or voids them (not paid), both as one linked chain.
fn settle(
    engine: &Engine,
    quote: &WithdrawalQuote,
    ids: &WithdrawalIds,
    paid: bool,
) -> Result<(), FundingError> {
    let op = |pending_id| match paid {
        true => TransferOp::PostPending {
            pending_id,
            amount_minor: None,
        },
        false => TransferOp::VoidPending { pending_id },
    };
    let resolve = |id, pending_id, code| NewTransfer {
        id,
        op: op(pending_id),
        code,
        reference: None,
        linked: false,
    };
    let mut transfers = vec![resolve(ids.settle, ids.hold, CODE_WITHDRAWAL)];
    if quote.fee_minor > 0 {
        transfers[0].linked = true;
        transfers.push(resolve(ids.fee_settle, ids.fee_hold, CODE_WITHDRAWAL_FEE));
    }
    let codes = engine
        .create_transfers(transfers)
        .map_err(FundingError::Engine)?;
    match codes
        .iter()
        .all(|c| matches!(c, TransferCode::Ok | TransferCode::Exists))
    {
        true => Ok(()),
        // Settled the other way by an earlier attempt would be a bug: the bank's answer for a
        // key never changes.
        false => Err(FundingError::Ledger(codes[0])),
    }
}
