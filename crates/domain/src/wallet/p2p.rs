//! Transfers between people (转账, SPEC §3). The money is held in the ledger as a pending
//! transfer from the payer's wallet to the payee's, with a 24-hour timeout: the payee accepts
//! (the ledger posts it) or returns it (the ledger voids it), and if neither happens the
//! ledger's own expiry returns it, also after a restart. No timer lives outside the ledger.

use super::chart::{CODE_P2P, CODE_RECEIVE_CODE, wallet_account_id};
use super::funding::{IdempotencyKey, derived_transfer_id};
use super::identity::Phone;
use super::limits::{BalanceUsage, LimitError, LimitPolicy, RealNameClass};
use super::people::{People, PeopleError};
use std::fmt;
use zhifu_ledger::{NewTransfer, TransferCode, TransferId, TransferKind, TransferOp};
use zhifu_store::{Engine, EngineError, P2pRow, Store, TransferRecord};

/// How long a transfer waits for its payee.
pub const HOLD_MS: i64 = 24 * 3_600_000;
/// When a transfer reaches its payee (SPEC §3): at once, or after an anti-fraud window in which
/// the payer can cancel it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arrival {
    Now,
    In2Hours,
    In24Hours,
}

impl Arrival {
    pub fn parse(text: &str) -> Option<Arrival> {
        Some(match text {
            "now" => Arrival::Now,
            "2h" => Arrival::In2Hours,
            "24h" => Arrival::In24Hours,
            _ => return None,
        })
    }

    fn delay_ms(self) -> i64 {
        match self {
            Arrival::Now => 0,
            Arrival::In2Hours => 2 * 3_600_000,
            Arrival::In24Hours => 24 * 3_600_000,
        }
    }
}

/// The most one transfer may send: the class limits bound it further.
pub const TRANSFER_MAX_MINOR: u64 = 5_000_000;

#[derive(Debug)]
pub enum P2pError {
    AmountInvalid,
    PayeeNotFound,
    PayeeIsPayer,
    Limit(LimitError),
    KeyReused,
    NotFound,
    /// Accepted, returned, cancelled or expired already.
    NotHeld,
    /// Delayed arrival: the payee can accept only once it has arrived.
    NotYetArrived,
    /// Delayed arrival: the payer can cancel only before it arrives.
    AlreadyArrived,
    Ledger(TransferCode),
    Engine(EngineError),
    People(PeopleError),
}

impl P2pError {
    pub fn code(&self) -> &'static str {
        match self {
            P2pError::AmountInvalid => "AMOUNT_INVALID",
            P2pError::PayeeNotFound => "PAYEE_NOT_FOUND",
            P2pError::PayeeIsPayer => "PAYEE_IS_PAYER",
            P2pError::Limit(e) => e.code(),
            P2pError::KeyReused => "IDEMPOTENCY_KEY_REUSED",
            P2pError::NotFound => "TRANSFER_NOT_FOUND",
            P2pError::NotHeld => "TRANSFER_NOT_HELD",
            P2pError::NotYetArrived => "TRANSFER_NOT_YET_ARRIVED",
            P2pError::AlreadyArrived => "TRANSFER_ALREADY_ARRIVED",
            P2pError::Ledger(code) => code.as_str(),
            P2pError::Engine(e) => e.code(),
            P2pError::People(e) => e.code(),
        }
    }
}

impl fmt::Display for P2pError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            P2pError::AmountInvalid => {
                write!(
                    f,
                    "a transfer is between 0.01 and {} yuan",
                    TRANSFER_MAX_MINOR / 100
                )
            }
            P2pError::PayeeNotFound => f.write_str("nobody has a wallet with this phone number"),
            P2pError::PayeeIsPayer => f.write_str("you cannot transfer to yourself"),
            P2pError::Limit(e) => e.fmt(f),
            P2pError::KeyReused => {
                f.write_str("this Idempotency-Key was used for a different transfer")
            }
            P2pError::NotFound => f.write_str("no such transfer to you"),
            P2pError::NotHeld => {
                f.write_str("this transfer was accepted, returned, cancelled or has expired")
            }
            P2pError::NotYetArrived => f.write_str("this transfer has not arrived yet"),
            P2pError::AlreadyArrived => {
                f.write_str("this transfer has arrived; only its payee can return it now")
            }
            P2pError::Ledger(TransferCode::ExceedsBalance) => {
                f.write_str("your balance is not enough for this transfer")
            }
            P2pError::Ledger(code) => {
                write!(f, "the ledger refused the transfer: {}", code.as_str())
            }
            P2pError::Engine(e) => write!(f, "the ledger is unavailable: {e}"),
            P2pError::People(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for P2pError {}

impl From<PeopleError> for P2pError {
    fn from(e: PeopleError) -> P2pError {
        P2pError::People(e)
    }
}

impl From<zhifu_store::StoreError> for P2pError {
    fn from(e: zhifu_store::StoreError) -> P2pError {
        P2pError::People(PeopleError::Store(e))
    }
}

/// A transfer between people as asked for: who pays whom how much, and when it arrives.
pub struct SendOrder<'a> {
    pub payer_id: i64,
    pub payee_phone: &'a Phone,
    pub amount_minor: u64,
    pub arrival: Arrival,
    pub key: &'a IdempotencyKey,
    pub now_ms: i64,
}

/// Sends the order's amount from the payer to whoever has its payee's phone, held until
/// accepted. Runs under the payer's person lock, so the limits hold against concurrent
/// payments.
pub fn send(
    people: &People,
    engine: &Engine,
    limits: &LimitPolicy,
    order: SendOrder<'_>,
) -> Result<P2pRow, P2pError> {
    check_amount(&order)?;
    let payee_id = people
        .user_id_by_phone(order.payee_phone)?
        .ok_or(P2pError::PayeeNotFound)?;
    check_payee(&order, payee_id)?;
    let payer = people.lock_person(order.payer_id);
    let payee_can_receive = people.class(payee_id)?.can_receive();
    let (class, usage) = people.payer_standing(&payer, order.now_ms)?;
    let standing = Standing {
        payee_can_receive,
        class,
        usage,
    };
    let hold = match plan_hold(limits, &order, payee_id, standing) {
        Ok(hold) => hold,
        // A retry is told what its first try did, even where the checks would refuse it now
        // (the first try counts against the limits): the refusal looks for it first.
        Err(refusal) => {
            return match people.db().read(|s| s.p2p(&hold_id(&order).1))? {
                Some(existing) => same_transfer(existing, payee_id, order.amount_minor),
                None => Err(refusal),
            };
        }
    };
    let PlannedHold { transfer, row } = hold;
    let made = TransferRecord::P2pMade(row.clone());
    let answer = engine.create_transfers_recorded(vec![transfer], vec![made]);
    let codes = answered(people, answer, Counted::IfMadeNow)?;
    match codes.as_slice() {
        [TransferCode::Ok] => {}
        // A retry: the row its first try wrote (or, from an older version, this one).
        [TransferCode::Exists] => {
            let existing = people.db().read(|s| s.p2p(&row.transfer_id))?;
            return same_transfer(existing.unwrap_or(row), payee_id, order.amount_minor);
        }
        codes => return Err(refused_by_ledger(codes)),
    }
    people.note_spent(&payer, row.amount_minor, Some(row.expires_ms));
    Ok(row)
}

/// [`send`] for a task, for a payer the edge found in memory with the right PIN
/// ([`People::pin_right_in_memory`]): it awaits the person lock and the ledger's answer, and
/// reads nothing but memory. `Ok(None)` where it would have to read first: the payee, a class
/// or the payer's spending is not in memory, the limits refuse (a refusal may answer a retry,
/// which takes a read), or the ledger already has the transfer (a retry, whose first try's row
/// takes a read). Nothing was written then, or nothing the blocking [`send`] will not answer
/// as a retry: the caller goes that way with the same order.
///
/// Run it to completion (spawn it): dropped while the ledger commits its hold, it would not
/// count the payment in the payer's spending.
pub async fn send_from_memory(
    people: &People,
    engine: &Engine,
    limits: &LimitPolicy,
    order: SendOrder<'_>,
) -> Result<Option<P2pRow>, P2pError> {
    check_amount(&order)?;
    let Some(payee_id) = people.user_id_by_phone_in_memory(order.payee_phone) else {
        return Ok(None);
    };
    check_payee(&order, payee_id)?;
    let payer = people.lock_person_async(order.payer_id).await;
    let Some(payee_class) = people.class_in_memory(payee_id) else {
        return Ok(None);
    };
    let Some((class, usage)) = people.payer_standing_in_memory(&payer, order.now_ms) else {
        return Ok(None);
    };
    let standing = Standing {
        payee_can_receive: payee_class.can_receive(),
        class,
        usage,
    };
    let Ok(hold) = plan_hold(limits, &order, payee_id, standing) else {
        return Ok(None);
    };
    let PlannedHold { transfer, row } = hold;
    let made = TransferRecord::P2pMade(row.clone());
    let answer = engine
        .create_transfers_recorded_async(vec![transfer], vec![made])
        .await;
    let codes = answered(people, answer, Counted::IfMadeNow)?;
    match codes.as_slice() {
        [TransferCode::Ok] => {}
        [TransferCode::Exists] => return Ok(None),
        codes => return Err(refused_by_ledger(codes)),
    }
    people.note_spent(&payer, row.amount_minor, Some(row.expires_ms));
    Ok(Some(row))
}

fn check_amount(order: &SendOrder<'_>) -> Result<(), P2pError> {
    match order.amount_minor == 0 || order.amount_minor > TRANSFER_MAX_MINOR {
        true => Err(P2pError::AmountInvalid),
        false => Ok(()),
    }
}

fn check_payee(order: &SendOrder<'_>, payee_id: i64) -> Result<(), P2pError> {
    match payee_id == order.payer_id {
        true => Err(P2pError::PayeeIsPayer),
        false => Ok(()),
    }
}

/// What the checks under the payer's lock go by.
struct Standing {
    payee_can_receive: bool,
    class: RealNameClass,
    usage: BalanceUsage,
}

/// The hold a send submits, with the row that commits with it.
struct PlannedHold {
    transfer: NewTransfer,
    row: P2pRow,
}

/// The ledger's id of the order's hold, and that id as the API shows it.
fn hold_id(order: &SendOrder<'_>) -> (TransferId, String) {
    let transfer_id = derived_transfer_id("p2p", order.payer_id, order.key);
    (transfer_id, transfer_id.get().to_string())
}

/// The hold the limits let through, or their refusal.
fn plan_hold(
    limits: &LimitPolicy,
    order: &SendOrder<'_>,
    payee_id: i64,
    standing: Standing,
) -> Result<PlannedHold, P2pError> {
    if !standing.payee_can_receive {
        return Err(P2pError::Limit(LimitError::RecipientUnverified));
    }
    // The PIN is one factor.
    limits
        .check_balance_payment(standing.class, 1, standing.usage, order.amount_minor)
        .map_err(P2pError::Limit)?;
    let (transfer_id, id_text) = hold_id(order);
    let (now_ms, delay_ms) = (order.now_ms, order.arrival.delay_ms());
    let row = P2pRow {
        transfer_id: id_text,
        payer_id: order.payer_id,
        payee_id,
        amount_minor: order.amount_minor,
        created_ms: now_ms,
        arrives_ms: now_ms + delay_ms,
        expires_ms: now_ms + delay_ms + HOLD_MS,
        state: "held".into(),
    };
    let transfer = NewTransfer {
        id: transfer_id,
        op: TransferOp::Pending {
            debit_account_id: wallet_account_id(order.payer_id),
            credit_account_id: wallet_account_id(payee_id),
            amount_minor: order.amount_minor,
            timeout_ms: (delay_ms + HOLD_MS) as u64,
        },
        code: CODE_P2P,
        reference: None,
        linked: false,
    };
    Ok(PlannedHold { transfer, row })
}

/// Why the ledger did not make one transfer between people, other than `ok` and `exists`.
fn refused_by_ledger(codes: &[TransferCode]) -> P2pError {
    match codes {
        [TransferCode::ExistsWithDifferentPayload] => P2pError::KeyReused,
        [code] => P2pError::Ledger(*code),
        _ => unreachable!("one transfer, one code"),
    }
}

/// Whether the caller counts the change a request's rows make in the wallet's caches itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Counted {
    /// A new transfer answered `ok` is added to its payer's spending by the caller, under the
    /// payer's lock; any other answer (a retry of one an older version made without its row,
    /// an engine error that may hide a commit) is not.
    IfMadeNow,
    Never,
}

/// Submits transfers with their rows and takes the answer through [`answered`].
fn create_recorded(
    people: &People,
    engine: &Engine,
    transfers: Vec<NewTransfer>,
    records: Vec<TransferRecord>,
    counted: Counted,
) -> Result<Vec<TransferCode>, P2pError> {
    answered(
        people,
        engine.create_transfers_recorded(transfers, records),
        counted,
    )
}

/// The ledger's answer to transfers submitted with rows; every such answer passes here. The
/// ledger's writer commits those rows, not the wallet's, so nothing moves the wallet's
/// generation for them: unless the caller counts the change itself, the caches are told here
/// to read again, whatever the answer.
fn answered(
    people: &People,
    answer: Result<Vec<TransferCode>, EngineError>,
    counted: Counted,
) -> Result<Vec<TransferCode>, P2pError> {
    let made_now = matches!(&answer, Ok(codes) if codes.iter().all(|c| *c == TransferCode::Ok));
    if !(counted == Counted::IfMadeNow && made_now) {
        people.db().note_written_elsewhere();
    }
    answer.map_err(P2pError::Engine)
}

/// Ledger entries of a person's wallet that a listing of their transfers looks through.
pub const LISTING_ENTRIES_SCANNED_MAX: usize = 2 * zhifu_store::PAGE_LEN_MAX;

/// Which of a person's transfers between people (receive-code payments included) a listing
/// shows, sent and received, newest first: the ids of the newest `limit` among the last
/// [`LISTING_ENTRIES_SCANNED_MAX`] entries of their wallet's statement; [`rows_of`] reads
/// them. Found through the ledger, not through an index of the rows by payee, which cost every
/// payment one more random page in its commit (about a quarter of the bytes written per
/// payment, measured). Two steps, so that the ledger's reader is not held while the wallet's
/// rows are read.
pub fn transfer_ids_of(
    ledger: &mut dyn Store,
    user_id: i64,
    limit: usize,
) -> Result<Vec<String>, P2pError> {
    let account = wallet_account_id(user_id);
    let (mut ids, mut scanned, mut before) = (Vec::new(), 0, None);
    while ids.len() < limit && scanned < LISTING_ENTRIES_SCANNED_MAX {
        let page_len = zhifu_store::PAGE_LEN_MAX.min(LISTING_ENTRIES_SCANNED_MAX - scanned);
        let page = zhifu_store::statement(ledger, account, before, page_len)?;
        let Some(last) = page.last() else { break };
        before = Some(last.timestamp_ns);
        scanned += page.len();
        ids.extend(
            page.iter()
                .filter(|entry| makes_a_transfer(entry.code, entry.kind))
                .map(|entry| entry.transfer_id.get().to_string())
                .take(limit - ids.len()),
        );
    }
    Ok(ids)
}

/// The rows of these transfers, in the same order (one made by an older version that lost its
/// row in a crash is left out).
pub fn rows_of(people: &People, transfer_ids: &[String]) -> Result<Vec<P2pRow>, P2pError> {
    let mut rows = Vec::with_capacity(transfer_ids.len());
    for id in transfer_ids {
        rows.extend(people.db().read(|s| s.p2p(id))?);
    }
    Ok(rows)
}

/// Whether a ledger entry is the one that made a transfer between people (the hold, or a
/// receive-code payment), not its acceptance, return or expiry.
fn makes_a_transfer(code: u16, kind: TransferKind) -> bool {
    matches!(
        (code, kind),
        (CODE_P2P, TransferKind::Pending) | (CODE_RECEIVE_CODE, TransferKind::Posted)
    )
}

/// The transfer an earlier try with the same key made, if it is the same transfer.
fn same_transfer(existing: P2pRow, payee_id: i64, amount_minor: u64) -> Result<P2pRow, P2pError> {
    match existing.payee_id == payee_id && existing.amount_minor == amount_minor {
        true => Ok(existing),
        false => Err(P2pError::KeyReused),
    }
}

/// Submits one transfer between people with its records: done (now or by an earlier try with
/// the same key), or why not. The caller counts nothing itself: the caches read again.
pub(crate) fn create_one(
    people: &People,
    engine: &Engine,
    transfer: NewTransfer,
    records: Vec<TransferRecord>,
) -> Result<(), P2pError> {
    match create_recorded(people, engine, vec![transfer], records, Counted::Never)?.as_slice() {
        [TransferCode::Ok | TransferCode::Exists] => Ok(()),
        codes => Err(refused_by_ledger(codes)),
    }
}

/// The payee takes the money (`accept`) or sends it back (`!accept`).
pub fn resolve(
    people: &People,
    engine: &Engine,
    payee_id: i64,
    transfer_id: &str,
    accept: bool,
    now_ms: i64,
) -> Result<P2pRow, P2pError> {
    let row = people
        .db()
        .read(|s| s.p2p(transfer_id))?
        .filter(|row| row.payee_id == payee_id)
        .ok_or(P2pError::NotFound)?;
    let target = if accept { "accepted" } else { "returned" };
    if row.state == target {
        return Ok(row);
    }
    if row.state != "held" {
        return Err(P2pError::NotHeld);
    }
    if now_ms < row.arrives_ms {
        return Err(P2pError::NotYetArrived);
    }
    // Past its time it is shown as returned and counts no more against the payer's limits,
    // even in the moment before the ledger's own expiry voids it: it goes back now.
    if accept && now_ms >= row.expires_ms {
        void_or_post(people, engine, row, transfer_id, false, "returned")?;
        return Err(P2pError::NotHeld);
    }
    void_or_post(people, engine, row, transfer_id, accept, target)
}

/// The payer takes back a delayed transfer before it arrives.
pub fn cancel(
    people: &People,
    engine: &Engine,
    payer_id: i64,
    transfer_id: &str,
    now_ms: i64,
) -> Result<P2pRow, P2pError> {
    let row = people
        .db()
        .read(|s| s.p2p(transfer_id))?
        .filter(|row| row.payer_id == payer_id)
        .ok_or(P2pError::NotFound)?;
    if row.state == "cancelled" {
        return Ok(row);
    }
    if row.state != "held" {
        return Err(P2pError::NotHeld);
    }
    if now_ms >= row.arrives_ms {
        return Err(P2pError::AlreadyArrived);
    }
    void_or_post(people, engine, row, transfer_id, false, "cancelled")
}

fn void_or_post(
    people: &People,
    engine: &Engine,
    mut row: P2pRow,
    transfer_id: &str,
    accept: bool,
    target: &'static str,
) -> Result<P2pRow, P2pError> {
    let payee_id = row.payee_id;
    // Accept, return and cancel of one transfer, one at a time.
    let _serial = people.lock_person(row.payer_id);
    let pending_id =
        zhifu_ledger::TransferId::new(transfer_id.parse().map_err(|_| P2pError::NotFound)?)
            .ok_or(P2pError::NotFound)?;
    let purpose = if accept { "p2p accept" } else { "p2p return" };
    let resolution_key = IdempotencyKey::parse(transfer_id).ok_or(P2pError::NotFound)?;
    let resolution = NewTransfer {
        id: derived_transfer_id(purpose, payee_id, &resolution_key),
        op: match accept {
            true => TransferOp::PostPending {
                pending_id,
                amount_minor: None,
            },
            false => TransferOp::VoidPending { pending_id },
        },
        code: CODE_P2P,
        reference: None,
        linked: false,
    };
    let resolved = TransferRecord::P2pResolved {
        transfer_id: transfer_id.to_owned(),
        state: target,
    };
    // Whatever the answer, the row may have changed: cached spending sums must be read again,
    // accepting included (an accepted transfer counts for good where a held one stopped
    // counting at its expiry, and a sum read just after that expiry must not be trusted now).
    let codes = create_recorded(
        people,
        engine,
        vec![resolution],
        vec![resolved],
        Counted::Never,
    )?;
    match codes.as_slice() {
        [TransferCode::Ok | TransferCode::Exists] => {}
        // The ledger's clock sent it back already. The row stays held, which past its
        // expiry is shown and counted as returned.
        [TransferCode::PendingExpired] => return Err(P2pError::NotHeld),
        // An accept after a return or cancel (those two share one void, so the later of
        // them is a retry of the earlier, `exists`, and its row's state wins).
        [TransferCode::PendingAlreadyVoided] => return Err(P2pError::NotHeld),
        [code] => return Err(P2pError::Ledger(*code)),
        _ => unreachable!("one transfer, one code"),
    }
    row.state = target.into();
    Ok(row)
}

/// What a listing shows: a delayed transfer before it arrives is scheduled; a held one past
/// its time has gone back by itself.
pub fn shown_state(row: &P2pRow, now_ms: i64) -> &str {
    match row.state.as_str() {
        "held" if now_ms < row.arrives_ms => "scheduled",
        "held" if now_ms >= row.expires_ms => "returned",
        state => state,
    }
}
