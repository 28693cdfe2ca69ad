//! Withdrawals whose outcome nobody settled.
//!
//! A withdrawal holds the money, asks the bank, then settles the hold. When the bank does not
//! answer and never saw the request, or the ledger fails after the bank answered, the caller
//! is told `PROCESSING` and may retry with the same key; this module finishes the ones nobody
//! retries. It does exactly what the retry would do — the same holds, the same bank key, the
//! same settlement — so the bank pays at most once and the hold is posted or voided once,
//! however often either runs.

use super::fees::WithdrawalQuote;
use super::funding::{FundingError, IdempotencyKey, Withdrawal, withdraw};
use super::people::{People, PeopleError};
use crate::bank::Bank;
use zhifu_store::{CardRow, Engine, WithdrawalRow};

/// Open withdrawals looked at in one pass; the next pass takes the rest.
pub const PASS_LEN_MAX: usize = 256;

/// Records a withdrawal before its bank call, so that it can be found if nobody settles it.
pub fn open(
    people: &People,
    user_id: i64,
    key: &IdempotencyKey,
    card_token: &str,
    quote: &WithdrawalQuote,
    now_ms: i64,
) -> Result<(), PeopleError> {
    people.withdrawal_open(WithdrawalRow {
        key: format!("{user_id}:{}", key.as_str()),
        user_id,
        withdrawal_key: key.as_str().to_owned(),
        card_token: card_token.to_owned(),
        amount_minor: quote.amount_minor,
        fee_minor: quote.fee_minor,
        free_minor: quote.free_minor,
        started_ms: now_ms,
        state: "open".into(),
    })
}

/// Records what became of a withdrawal: paid, or declined with its quota share given back;
/// still pending, or another request under a used key, changes nothing.
pub fn conclude(
    people: &People,
    user_id: i64,
    key: &IdempotencyKey,
    result: &Result<Withdrawal, FundingError>,
) -> Result<(), PeopleError> {
    let record_key = format!("{user_id}:{}", key.as_str());
    match result {
        Ok(_) => people.withdrawal_close(&record_key, "paid"),
        // The key belongs to an earlier withdrawal, which this request must not touch.
        Err(FundingError::Processing | FundingError::KeyReused) => Ok(()),
        // Nothing moved: the holds were refused or voided.
        Err(_) => {
            people.release_withdrawal_quota(user_id, key.as_str())?;
            people.withdrawal_close(&record_key, "declined")
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Pass {
    pub paid: u32,
    pub declined: u32,
    pub still_open: u32,
}

/// Finishes the withdrawals open since `started_ms_max` or earlier, oldest first.
pub fn pass(
    people: &People,
    bank: &dyn Bank,
    engine: &Engine,
    started_ms_max: i64,
) -> Result<Pass, PeopleError> {
    let mut done = Pass::default();
    for row in people.withdrawals_open(started_ms_max, PASS_LEN_MAX)? {
        let Some(key) = IdempotencyKey::parse(&row.withdrawal_key) else {
            unreachable!("only parsed keys are recorded");
        };
        let card = CardRow {
            user_id: row.user_id,
            token: row.card_token.clone(),
            bank: String::new(),
            last_four: String::new(),
            bound_ms: 0,
        };
        let result = withdraw(bank, engine, row.user_id, &card, quote_of(&row), &key);
        conclude(people, row.user_id, &key, &result)?;
        match result {
            Ok(_) => done.paid += 1,
            Err(FundingError::Processing) => done.still_open += 1,
            Err(_) => done.declined += 1,
        }
    }
    Ok(done)
}

/// The quote the withdrawal was made with (the holds' amounts derive from it).
fn quote_of(row: &WithdrawalRow) -> WithdrawalQuote {
    WithdrawalQuote {
        amount_minor: row.amount_minor,
        free_minor: row.free_minor,
        charged_minor: row.amount_minor.saturating_sub(row.free_minor),
        fee_minor: row.fee_minor,
        debit_minor: row.amount_minor + row.fee_minor,
        free_quota_left_after_minor: 0,
    }
}
