//! Settlement (SPEC §5): a daily run pays each merchant's settled funds to its bank card.
//!
//! **T+1.** The run for cut-off C (00:00 China Standard Time of day D) pays what the merchant's
//! account held available at C: payments of the days before, net of fees, refunds and earlier
//! settlements, and never more than it holds now (a refund after C may have taken some).
//! Money paid on day D waits for the next run.
//!
//! **Once per merchant and cut-off.** The settlement row (merchant, cut-off) is written first;
//! the ledger holds the amount (a pending transfer from the merchant's account to the
//! institution's bank account), then the bank is asked to pay the card under a key made of the
//! merchant and the cut-off. The bank's yes posts the hold, its no voids it; no answer leaves
//! the row `PROCESSING`, and every later run asks the bank what became of that key, so a lost
//! answer neither loses nor repeats a payout. Ids and keys are derived, so running again, or
//! after a crash at any step, continues where the last run stopped.

use super::merchants::{self, MerchantError, MerchantId};
use crate::bank::{Bank, BankError, Holder, Outcome};
use crate::wallet::chart::{BANK_SETTLEMENT, merchant_account_id};
use crate::wallet::identity::CardNumber;
use crate::wallet::people::People;
use sha2::Digest;
use zhifu_ledger::{AccountId, BalanceRule, NewTransfer, TransferCode, TransferId, TransferOp};
use zhifu_store::{Engine, EngineError, SettlementCard, SettlementRow, Store, StoreError};

/// The ledger's business code of a settlement's hold and its release.
pub const CODE_SETTLEMENT: u16 = 13;
/// Merchants settled per run at most (pages of the merchant list); a larger deployment runs
/// more often, and the rest waits for the next run.
const MERCHANTS_PER_RUN_MAX: usize = 100_000;

pub const PROCESSING: &str = "PROCESSING";
pub const SUCCESS: &str = "SUCCESS";
pub const FAILED: &str = "FAILED";

#[derive(Debug)]
pub enum SettlementError {
    Merchant(MerchantError),
    Bank(BankError),
    Engine(EngineError),
    Ledger(TransferCode),
    Store(StoreError),
}

impl SettlementError {
    pub fn code(&self) -> &'static str {
        match self {
            SettlementError::Merchant(e) => e.code(),
            SettlementError::Bank(e) => e.code(),
            SettlementError::Engine(e) => e.code(),
            SettlementError::Ledger(code) => code.as_str(),
            SettlementError::Store(_) => "STORE_UNAVAILABLE",
        }
    }
}

impl std::fmt::Display for SettlementError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettlementError::Merchant(e) => e.fmt(f),
            SettlementError::Bank(e) => e.fmt(f),
            SettlementError::Engine(e) => e.fmt(f),
            SettlementError::Ledger(code) => write!(f, "the ledger refused: {}", code.as_str()),
            SettlementError::Store(_) => f.write_str("storage is unavailable; try again shortly"),
        }
    }
}

impl std::error::Error for SettlementError {}

impl From<StoreError> for SettlementError {
    fn from(e: StoreError) -> SettlementError {
        SettlementError::Store(e)
    }
}

impl From<EngineError> for SettlementError {
    fn from(e: EngineError) -> SettlementError {
        SettlementError::Engine(e)
    }
}

/// What a run did.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Report {
    pub cutoff_ms: i64,
    /// Settlements of this cut-off, as they stand after the run.
    pub settlements: Vec<SettlementRow>,
    /// Merchants with a card and nothing to pay this time.
    pub nothing_due: u32,
    /// Settlements of earlier cut-offs that were waiting for the bank and are now finished.
    pub resolved: u32,
}

/// Binds the merchant's payout card at the bank (the four-element check of its legal
/// representative); only the bank's token, the bank and the last four digits are kept.
pub fn set_card(
    people: &People,
    bank: &dyn Bank,
    merchant_id: MerchantId,
    card: &CardNumber,
    holder: &Holder<'_>,
) -> Result<SettlementCard, SettlementError> {
    merchants::merchant(people, merchant_id).map_err(SettlementError::Merchant)?;
    let bound = bank
        .bind_card(card, holder)
        .map_err(SettlementError::Bank)?;
    let card = SettlementCard {
        token: bound.token,
        bank: bound.bank,
        last_four: bound.last_four,
    };
    let (id, stored) = (merchant_id.get(), card.clone());
    people
        .db()
        .write_plain(move |s| s.merchant_settlement_card_set(id, &stored))?;
    Ok(card)
}

pub fn card(
    people: &People,
    merchant_id: MerchantId,
) -> Result<Option<SettlementCard>, StoreError> {
    people
        .db()
        .read(|s| s.merchant_settlement_card(merchant_id.get()))
}

/// The merchant's settlements, newest first.
pub fn of_merchant(
    people: &People,
    merchant_id: MerchantId,
    limit: usize,
) -> Result<Vec<SettlementRow>, StoreError> {
    people
        .db()
        .read(|s| s.settlements_of_merchant(merchant_id.get(), i64::MAX, limit))
}

/// Runs the settlement of `cutoff_ms` for every merchant with a card, and finishes earlier
/// settlements still waiting for the bank. `ledger` reads balances (a read connection).
pub fn run(
    people: &People,
    engine: &Engine,
    ledger: &mut dyn Store,
    bank: &dyn Bank,
    cutoff_ms: i64,
    now_ms: i64,
) -> Result<Report, SettlementError> {
    let mut report = Report {
        cutoff_ms,
        ..Report::default()
    };
    for waiting in people.db().read(|s| s.settlements_processing(1_000))? {
        if waiting.cutoff_ms != cutoff_ms
            && continue_settlement(people, engine, bank, &waiting, now_ms)? != PROCESSING
        {
            report.resolved += 1;
        }
    }
    let mut after_id = 0;
    let mut seen = 0;
    while seen < MERCHANTS_PER_RUN_MAX {
        let ids = people
            .db()
            .read(|s| s.merchants_settling(after_id, zhifu_store::PAGE_LEN_MAX))?;
        let Some(&last) = ids.last() else { break };
        after_id = last;
        seen += ids.len();
        for id in ids {
            match settle_merchant(people, engine, ledger, bank, id, cutoff_ms, now_ms)? {
                Some(row) => report.settlements.push(row),
                None => report.nothing_due += 1,
            }
        }
    }
    Ok(report)
}

/// One merchant's settlement of this cut-off: made if due, continued if waiting, as it
/// stands after; None when nothing was due.
fn settle_merchant(
    people: &People,
    engine: &Engine,
    ledger: &mut dyn Store,
    bank: &dyn Bank,
    merchant_id: i64,
    cutoff_ms: i64,
    now_ms: i64,
) -> Result<Option<SettlementRow>, SettlementError> {
    let existing = people
        .db()
        .read(|s| s.settlements_of_merchant(merchant_id, cutoff_ms + 1, 1))?
        .into_iter()
        .find(|row| row.cutoff_ms == cutoff_ms);
    let row = match existing {
        Some(row) => row,
        None => {
            let amount_minor = due_minor(ledger, merchant_id, cutoff_ms)?;
            let Some(card) = people
                .db()
                .read(|s| s.merchant_settlement_card(merchant_id))?
            else {
                return Ok(None);
            };
            if amount_minor == 0 {
                return Ok(None);
            }
            let row = SettlementRow {
                merchant_id,
                cutoff_ms,
                amount_minor,
                card_token: card.token,
                state: PROCESSING.into(),
                created_ms: now_ms,
                finished_ms: None,
            };
            people
                .db()
                .write_plain(move |s| s.settlement_insert(&row))?
        }
    };
    if row.state != PROCESSING {
        return Ok(Some(row));
    }
    let state = continue_settlement(people, engine, bank, &row, now_ms)?;
    let finished_ms = (state != PROCESSING).then_some(now_ms);
    Ok(Some(SettlementRow {
        state: state.into(),
        finished_ms,
        ..row
    }))
}

/// What the merchant may be paid for this cut-off: what its account held available at the
/// cut-off, and never more than it holds available now.
fn due_minor(ledger: &mut dyn Store, merchant_id: i64, cutoff_ms: i64) -> Result<u64, StoreError> {
    let account = merchant_account_id(merchant_id);
    let available = |balances: zhifu_ledger::Balances| {
        u64::try_from(balances.available_minor(BalanceRule::NO_OVERDRAFT).max(0)).unwrap_or(0)
    };
    let Some(now) = zhifu_store::balance(ledger, account)? else {
        return Ok(0);
    };
    let at_cutoff = zhifu_store::statement(
        ledger,
        account,
        Some(cutoff_ms.saturating_mul(1_000_000)),
        1,
    )?
    .first()
    .map_or(0, |entry| available(entry.balances_after));
    Ok(at_cutoff.min(available(now.balances)))
}

fn derived_id(purpose: &str, merchant_id: i64, cutoff_ms: i64) -> TransferId {
    let digest = sha2::Sha256::new()
        .chain_update(purpose.as_bytes())
        .chain_update([0])
        .chain_update(merchant_id.to_be_bytes())
        .chain_update(cutoff_ms.to_be_bytes())
        .finalize();
    let raw = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes")) >> 1;
    TransferId::new(raw.max(1)).expect("below 2^127 and not zero")
}

/// The bank's key for a settlement: one per merchant and cut-off.
pub fn bank_key(merchant_id: i64, cutoff_ms: i64) -> String {
    format!("settle-{merchant_id}-{cutoff_ms}")
}

/// Takes a `PROCESSING` settlement as far as it goes now: the hold, the bank, the release or
/// the return. Returns the state it is left in.
fn continue_settlement(
    people: &People,
    engine: &Engine,
    bank: &dyn Bank,
    row: &SettlementRow,
    now_ms: i64,
) -> Result<&'static str, SettlementError> {
    let hold_id = derived_id("settlement hold", row.merchant_id, row.cutoff_ms);
    let hold = NewTransfer {
        id: hold_id,
        op: TransferOp::Pending {
            debit_account_id: merchant_account_id(row.merchant_id),
            credit_account_id: AccountId::new(BANK_SETTLEMENT).expect("a chart id"),
            amount_minor: row.amount_minor,
            timeout_ms: 0,
        },
        code: CODE_SETTLEMENT,
        reference: None,
        linked: false,
    };
    match one(engine, hold)? {
        code if code.is_success() => {}
        // A refund took the money between the run's reading and its hold: nothing is paid.
        TransferCode::ExceedsBalance => return finish(people, row, FAILED, now_ms),
        code => return Err(SettlementError::Ledger(code)),
    }
    let key = bank_key(row.merchant_id, row.cutoff_ms);
    let paid = match bank.outcome(&key) {
        Outcome::Done => true,
        Outcome::Failed => false,
        Outcome::Unknown => match bank.credit(&row.card_token, row.amount_minor, &key) {
            Ok(()) => true,
            Err(BankError::Timeout) => return Ok(PROCESSING),
            Err(_) => false,
        },
    };
    let resolve = NewTransfer {
        id: derived_id("settlement release", row.merchant_id, row.cutoff_ms),
        op: match paid {
            true => TransferOp::PostPending {
                pending_id: hold_id,
                amount_minor: None,
            },
            false => TransferOp::VoidPending {
                pending_id: hold_id,
            },
        },
        code: CODE_SETTLEMENT,
        reference: None,
        linked: false,
    };
    match one(engine, resolve)? {
        code if code.is_success() => {}
        code => return Err(SettlementError::Ledger(code)),
    }
    finish(people, row, if paid { SUCCESS } else { FAILED }, now_ms)
}

fn one(engine: &Engine, transfer: NewTransfer) -> Result<TransferCode, SettlementError> {
    let codes = engine.create_transfers(vec![transfer])?;
    Ok(codes[0])
}

fn finish(
    people: &People,
    row: &SettlementRow,
    state: &'static str,
    now_ms: i64,
) -> Result<&'static str, SettlementError> {
    let (merchant_id, cutoff_ms) = (row.merchant_id, row.cutoff_ms);
    people
        .db()
        .write_plain(move |s| s.settlement_finish(merchant_id, cutoff_ms, state, now_ms))?;
    Ok(state)
}
