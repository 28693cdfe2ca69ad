//! The ledger state machine: applies requests to in-memory account state and says what to
//! persist. It never does I/O; the engine prefetches what a batch needs and persists the output.

use crate::account::{Account, AccountId, Balances, NewAccount};
use crate::code::{AccountCode, TransferCode};
use crate::money::Currency;
use crate::transfer::{
    NewTransfer, Rejection, TIMEOUT_MS_MAX, Transfer, TransferId, TransferKind, TransferOp,
};
use std::collections::{BTreeSet, HashMap};

/// What storage already holds for an id that a batch mentions.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Known {
    Applied(Transfer),
    Rejected(Rejection),
    /// Created earlier in the current batch: an index into [`BatchOutput::transfers`].
    InBatch(usize),
}

/// Facts about transfer ids that the engine prefetched for one batch. The ledger adds to it as
/// the batch creates transfers, so that a duplicate id within the batch is caught too.
#[derive(Default, Debug)]
pub struct Prior {
    pub known: HashMap<TransferId, Known>,
    /// How each pending transfer that is no longer open was resolved.
    pub resolutions: HashMap<TransferId, TransferKind>,
}

impl Prior {
    pub fn clear(&mut self) {
        self.known.clear();
        self.resolutions.clear();
    }
}

/// Everything one batch asks storage to write, in one transaction.
#[derive(Default, Debug)]
pub struct BatchOutput {
    pub accounts_opened: Vec<Account>,
    pub accounts_closed: Vec<AccountId>,
    pub transfers: Vec<Transfer>,
    pub rejections: Vec<Rejection>,
}

impl BatchOutput {
    pub fn is_empty(&self) -> bool {
        self.accounts_opened.is_empty()
            && self.accounts_closed.is_empty()
            && self.transfers.is_empty()
            && self.rejections.is_empty()
    }

    pub fn clear(&mut self) {
        self.accounts_opened.clear();
        self.accounts_closed.clear();
        self.transfers.clear();
        self.rejections.clear();
    }
}

#[derive(Clone, Copy, Debug)]
struct OpenPending {
    debit_account_id: AccountId,
    credit_account_id: AccountId,
    amount_minor: u64,
    expires_at_ns: Option<i64>,
}

/// What a linked chain changed, so that a failure can put it back.
#[derive(Default)]
struct Undo {
    accounts_before: Vec<Account>,
    pendings_added: Vec<TransferId>,
    pendings_removed: Vec<(TransferId, OpenPending)>,
    known_added: Vec<TransferId>,
    resolutions_added: Vec<TransferId>,
    transfers_len: usize,
}

/// The in-memory state of one ledger: the accounts the engine has loaded (all accounts a batch
/// touches are loaded before it runs) and every open pending transfer.
#[derive(Default)]
pub struct Ledger {
    accounts: HashMap<AccountId, Account>,
    pendings_open: HashMap<TransferId, OpenPending>,
    expiries: BTreeSet<(i64, TransferId)>,
    timestamp_last_ns: i64,
    undo: Undo,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    pub fn account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(&id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn accounts_cached_count(&self) -> usize {
        self.accounts.len()
    }

    /// Puts an account read from storage into the cache.
    pub fn cache_account(&mut self, account: Account) {
        assert!(
            account.balances.obey(account.rule),
            "stored account breaks its rule: {account:?}"
        );
        self.accounts.insert(account.id, account);
    }

    /// Restores an open pending transfer read from storage (at start-up).
    pub fn restore_pending(&mut self, transfer: &Transfer) {
        assert_eq!(transfer.kind, TransferKind::Pending);
        self.insert_pending(transfer);
        self.observe_timestamp(transfer.timestamp_ns);
    }

    /// Makes every later timestamp greater than `timestamp_ns` (the last one in storage).
    pub fn observe_timestamp(&mut self, timestamp_ns: i64) {
        self.timestamp_last_ns = self.timestamp_last_ns.max(timestamp_ns);
    }

    /// The two accounts of an open pending transfer, for the engine's prefetch.
    pub fn pending_accounts(&self, id: TransferId) -> Option<(AccountId, AccountId)> {
        self.pendings_open
            .get(&id)
            .map(|p| (p.debit_account_id, p.credit_account_id))
    }

    pub fn pendings_open_count(&self) -> usize {
        self.pendings_open.len()
    }

    /// The earliest moment at which a pending transfer expires.
    pub fn expiry_next_ns(&self) -> Option<i64> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// The pending transfers that expire at or before `now_ns`, at most `count_max`; the engine
    /// prefetches their accounts before calling [`Ledger::expire_due`].
    pub fn expiries_due(
        &self,
        now_ns: i64,
        count_max: usize,
    ) -> impl Iterator<Item = TransferId> + '_ {
        self.expiries
            .iter()
            .take_while(move |(at, _)| *at <= now_ns)
            .take(count_max)
            .map(|(_, id)| *id)
    }

    pub fn open_accounts(
        &mut self,
        requests: &[NewAccount],
        out: &mut BatchOutput,
    ) -> Vec<AccountCode> {
        requests
            .iter()
            .map(|request| self.open_account(request, out))
            .collect()
    }

    fn open_account(&mut self, request: &NewAccount, out: &mut BatchOutput) -> AccountCode {
        if let crate::BalanceRule::DebitsWithinCredits {
            overdraft_limit_minor,
        } = request.rule
            && overdraft_limit_minor > i64::MAX as u64
        {
            return AccountCode::OverdraftLimitTooLarge;
        }
        if let Some(existing) = self.accounts.get(&request.id) {
            return if existing.same_fields(request) {
                AccountCode::Exists
            } else {
                AccountCode::ExistsWithDifferentFields
            };
        }
        let account = Account::open(*request);
        self.accounts.insert(account.id, account);
        out.accounts_opened.push(account);
        AccountCode::Ok
    }

    pub fn close_account(&mut self, id: AccountId, out: &mut BatchOutput) -> AccountCode {
        let Some(account) = self.accounts.get_mut(&id) else {
            return AccountCode::NotFound;
        };
        if account.closed {
            return AccountCode::AlreadyClosed;
        }
        let b = account.balances;
        if b.posted_net_minor() != 0 || b.debits_pending_minor != 0 || b.credits_pending_minor != 0
        {
            return AccountCode::BalanceNotZero;
        }
        account.closed = true;
        out.accounts_closed.push(id);
        AccountCode::Ok
    }

    /// Voids pending transfers whose timeout passed, at most `count_max` of them (a bound on the
    /// work done per batch; the rest waits for the next batch). Returns how many expired.
    pub fn expire_due(
        &mut self,
        now_ns: i64,
        count_max: usize,
        prior: &mut Prior,
        out: &mut BatchOutput,
    ) -> usize {
        let due: Vec<TransferId> = self.expiries_due(now_ns, count_max).collect();
        for pending_id in &due {
            let pending = self.pendings_open[pending_id];
            let expiry = NewTransfer {
                id: pending_id.expiry_id(),
                op: TransferOp::VoidPending {
                    pending_id: *pending_id,
                },
                code: 0,
                reference: None,
                linked: false,
            };
            let code = self.resolve_pending(
                now_ns,
                &expiry,
                *pending_id,
                pending,
                TransferKind::Expiry,
                prior,
                out,
            );
            assert_eq!(code, TransferCode::Ok, "an expiry cannot fail");
        }
        self.undo = Undo::default();
        due.len()
    }

    /// Applies transfers in order. Each linked chain succeeds or fails as a whole.
    pub fn create_transfers(
        &mut self,
        now_ns: i64,
        requests: &[NewTransfer],
        prior: &mut Prior,
        out: &mut BatchOutput,
    ) -> Vec<TransferCode> {
        let mut codes = Vec::with_capacity(requests.len());
        let mut chain_start = 0;
        while chain_start < requests.len() {
            let chain_end = requests[chain_start..]
                .iter()
                .position(|r| !r.linked)
                .map_or(requests.len() - 1, |offset| chain_start + offset);
            let chain = &requests[chain_start..=chain_end];
            self.apply_chain(now_ns, chain, prior, out, &mut codes);
            chain_start = chain_end + 1;
        }
        assert_eq!(codes.len(), requests.len());
        codes
    }

    fn apply_chain(
        &mut self,
        now_ns: i64,
        chain: &[NewTransfer],
        prior: &mut Prior,
        out: &mut BatchOutput,
        codes: &mut Vec<TransferCode>,
    ) {
        self.undo = Undo {
            transfers_len: out.transfers.len(),
            ..Undo::default()
        };
        let chain_open = chain.last().is_some_and(|r| r.linked);
        let codes_start = codes.len();
        let mut failure = None;
        for (index, request) in chain.iter().enumerate() {
            let code = if chain_open && index == chain.len() - 1 {
                TransferCode::LinkedChainOpen
            } else {
                self.apply_one(now_ns, request, prior, out)
            };
            codes.push(code);
            if !code.is_success() {
                failure = Some(index);
                break;
            }
        }
        let Some(failed_index) = failure else { return };
        // A transfer that fails changes nothing, so its code stands; the rest of the chain
        // is undone and reported as failed with it.
        let failed_code = codes[codes_start + failed_index];
        self.rollback(prior, out);
        codes.truncate(codes_start);
        for (index, request) in chain.iter().enumerate() {
            let code = if index == failed_index {
                failed_code
            } else {
                TransferCode::LinkedEventFailed
            };
            self.record_rejection(now_ns, request, code, prior, out);
            codes.push(code);
        }
    }

    /// Keeps a state-dependent rejection so that a retry gets the same answer. Payload-only
    /// rejections are not kept (the same payload fails the same way), nor are answers about an
    /// id that exists already.
    fn record_rejection(
        &mut self,
        now_ns: i64,
        request: &NewTransfer,
        code: TransferCode,
        prior: &mut Prior,
        out: &mut BatchOutput,
    ) {
        assert!(!code.is_success());
        if code.depends_on_payload_only() || prior.known.contains_key(&request.id) {
            return;
        }
        let rejection = Rejection {
            request: request.clone(),
            result: code,
            timestamp_ns: now_ns,
        };
        prior
            .known
            .insert(request.id, Known::Rejected(rejection.clone()));
        out.rejections.push(rejection);
    }

    fn rollback(&mut self, prior: &mut Prior, out: &mut BatchOutput) {
        let undo = std::mem::take(&mut self.undo);
        for account in undo.accounts_before.into_iter().rev() {
            self.accounts.insert(account.id, account);
        }
        // Resolved pendings come back first: one the chain both added and resolved is then
        // open again, and the loop after removes it like every other it added.
        for (id, pending) in undo.pendings_removed {
            if let Some(at) = pending.expires_at_ns {
                self.expiries.insert((at, id));
            }
            self.pendings_open.insert(id, pending);
        }
        for id in undo.pendings_added {
            let pending = self
                .pendings_open
                .remove(&id)
                .expect("added pending is open");
            if let Some(at) = pending.expires_at_ns {
                self.expiries.remove(&(at, id));
            }
        }
        for id in undo.known_added {
            prior.known.remove(&id);
        }
        for id in undo.resolutions_added {
            prior.resolutions.remove(&id);
        }
        out.transfers.truncate(undo.transfers_len);
    }

    fn apply_one(
        &mut self,
        now_ns: i64,
        request: &NewTransfer,
        prior: &mut Prior,
        out: &mut BatchOutput,
    ) -> TransferCode {
        if let Some(known) = prior.known.get(&request.id) {
            return replay(known, request, out);
        }
        if let Some(code) = validate_payload(request) {
            return code;
        }
        match request.op {
            TransferOp::Posted {
                debit_account_id,
                credit_account_id,
                amount_minor,
            } => self.move_money(
                now_ns,
                request,
                TransferKind::Posted,
                debit_account_id,
                credit_account_id,
                amount_minor,
                prior,
                out,
            ),
            TransferOp::Pending {
                debit_account_id,
                credit_account_id,
                amount_minor,
                ..
            } => self.move_money(
                now_ns,
                request,
                TransferKind::Pending,
                debit_account_id,
                credit_account_id,
                amount_minor,
                prior,
                out,
            ),
            TransferOp::PostPending { pending_id, .. } | TransferOp::VoidPending { pending_id } => {
                let pending = match self.find_open_pending(now_ns, pending_id, prior, out) {
                    Ok(pending) => pending,
                    Err(code) => return code,
                };
                let kind = match request.op {
                    TransferOp::PostPending { .. } => TransferKind::PostPending,
                    _ => TransferKind::VoidPending,
                };
                self.resolve_pending(now_ns, request, pending_id, pending, kind, prior, out)
            }
        }
    }

    fn find_open_pending(
        &self,
        now_ns: i64,
        pending_id: TransferId,
        prior: &Prior,
        out: &BatchOutput,
    ) -> Result<OpenPending, TransferCode> {
        if let Some(pending) = self.pendings_open.get(&pending_id) {
            if pending.expires_at_ns.is_some_and(|at| at <= now_ns) {
                return Err(TransferCode::PendingExpired);
            }
            return Ok(*pending);
        }
        // A resolution proves the id was a pending transfer; it may have been made in this
        // very batch (by an expiry), after the engine's prefetch.
        match prior.resolutions.get(&pending_id) {
            Some(TransferKind::PostPending) => return Err(TransferCode::PendingAlreadyPosted),
            Some(TransferKind::Expiry) => return Err(TransferCode::PendingExpired),
            Some(_) => return Err(TransferCode::PendingAlreadyVoided),
            None => {}
        }
        let kind = match prior.known.get(&pending_id) {
            None | Some(Known::Rejected(_)) => return Err(TransferCode::PendingNotFound),
            Some(Known::Applied(transfer)) => transfer.kind,
            Some(Known::InBatch(index)) => out.transfers[*index].kind,
        };
        if kind == TransferKind::Pending {
            debug_assert!(
                false,
                "engine did not prefetch the resolution of {pending_id:?}"
            );
            return Err(TransferCode::PendingNotFound);
        }
        Err(TransferCode::PendingIdNotPending)
    }

    /// The two accounts of a new transfer, checked for existence, currency and closure.
    fn accounts_for(
        &self,
        debit_account_id: AccountId,
        credit_account_id: AccountId,
    ) -> Result<(Account, Account), TransferCode> {
        let debit = *self
            .accounts
            .get(&debit_account_id)
            .ok_or(TransferCode::DebitAccountNotFound)?;
        let credit = *self
            .accounts
            .get(&credit_account_id)
            .ok_or(TransferCode::CreditAccountNotFound)?;
        if debit.currency != credit.currency {
            return Err(TransferCode::CurrencyMismatch);
        }
        if debit.closed {
            return Err(TransferCode::DebitAccountClosed);
        }
        if credit.closed {
            return Err(TransferCode::CreditAccountClosed);
        }
        Ok((debit, credit))
    }

    #[allow(clippy::too_many_arguments)]
    fn move_money(
        &mut self,
        now_ns: i64,
        request: &NewTransfer,
        kind: TransferKind,
        debit_account_id: AccountId,
        credit_account_id: AccountId,
        amount_minor: u64,
        prior: &mut Prior,
        out: &mut BatchOutput,
    ) -> TransferCode {
        let (debit, credit) = match self.accounts_for(debit_account_id, credit_account_id) {
            Ok(pair) => pair,
            Err(code) => return code,
        };
        let pending = kind == TransferKind::Pending;
        let Some(debit_after) = add_debit(debit.balances, amount_minor, pending) else {
            return TransferCode::Overflow;
        };
        let Some(credit_after) = add_credit(credit.balances, amount_minor, pending) else {
            return TransferCode::Overflow;
        };
        if !debit_after.obey(debit.rule) {
            return TransferCode::ExceedsBalance;
        }
        if !credit_after.obey(credit.rule) {
            return TransferCode::ExceedsCredits;
        }
        let transfer = self.record(
            now_ns,
            request,
            kind,
            debit_account_id,
            credit_account_id,
            amount_minor,
            debit_after,
            credit_after,
        );
        if pending {
            self.insert_pending(&transfer);
            self.undo.pendings_added.push(transfer.id);
        }
        self.push_transfer(transfer, prior, out);
        TransferCode::Ok
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve_pending(
        &mut self,
        now_ns: i64,
        request: &NewTransfer,
        pending_id: TransferId,
        pending: OpenPending,
        kind: TransferKind,
        prior: &mut Prior,
        out: &mut BatchOutput,
    ) -> TransferCode {
        let debit = self.accounts[&pending.debit_account_id];
        let credit = self.accounts[&pending.credit_account_id];
        let (amount_minor, post_full) = match request.op {
            TransferOp::PostPending {
                amount_minor: Some(amount_minor),
                ..
            } => (amount_minor, false),
            TransferOp::PostPending {
                amount_minor: None, ..
            } => (pending.amount_minor, true),
            _ => (pending.amount_minor, false),
        };
        let posting = kind == TransferKind::PostPending;
        if posting {
            if amount_minor > pending.amount_minor {
                return TransferCode::PostAmountExceedsPending;
            }
            if debit.closed {
                return TransferCode::DebitAccountClosed;
            }
            if credit.closed {
                return TransferCode::CreditAccountClosed;
            }
        }
        let posted_minor = if posting { amount_minor } else { 0 };
        let Some(debit_after) = release_debit(debit.balances, pending.amount_minor, posted_minor)
        else {
            return TransferCode::Overflow;
        };
        let Some(credit_after) =
            release_credit(credit.balances, pending.amount_minor, posted_minor)
        else {
            return TransferCode::Overflow;
        };
        // Releasing a reservation never tightens a rule: a failure here is a bug, not input.
        assert!(
            debit_after.obey(debit.rule) && credit_after.obey(credit.rule),
            "release broke a rule"
        );
        let mut transfer = self.record(
            now_ns,
            request,
            kind,
            debit.id,
            credit.id,
            amount_minor,
            debit_after,
            credit_after,
        );
        transfer.post_full = post_full;
        self.remove_pending(pending_id);
        prior.resolutions.insert(pending_id, kind);
        self.undo.resolutions_added.push(pending_id);
        self.push_transfer(transfer, prior, out);
        TransferCode::Ok
    }

    /// Builds the record and moves both accounts to their new balances.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        now_ns: i64,
        request: &NewTransfer,
        kind: TransferKind,
        debit_account_id: AccountId,
        credit_account_id: AccountId,
        amount_minor: u64,
        debit_after: Balances,
        credit_after: Balances,
    ) -> Transfer {
        self.set_balances(debit_account_id, debit_after);
        self.set_balances(credit_account_id, credit_after);
        self.timestamp_last_ns = now_ns.max(self.timestamp_last_ns + 1);
        let (pending_id, timeout_ms) = match request.op {
            TransferOp::Pending { timeout_ms, .. } => (None, timeout_ms),
            TransferOp::PostPending { pending_id, .. } | TransferOp::VoidPending { pending_id } => {
                (Some(pending_id), 0)
            }
            TransferOp::Posted { .. } => (None, 0),
        };
        Transfer {
            id: request.id,
            kind,
            debit_account_id,
            credit_account_id,
            amount_minor,
            pending_id,
            timeout_ms,
            code: request.code,
            reference: request.reference.clone(),
            linked: request.linked,
            post_full: false,
            timestamp_ns: self.timestamp_last_ns,
            debit_balances_after: debit_after,
            credit_balances_after: credit_after,
        }
    }

    fn set_balances(&mut self, id: AccountId, balances: Balances) {
        let account = self.accounts.get_mut(&id).expect("account checked before");
        self.undo.accounts_before.push(*account);
        account.balances = balances;
    }

    fn push_transfer(&mut self, transfer: Transfer, prior: &mut Prior, out: &mut BatchOutput) {
        assert_conserves(&transfer);
        prior
            .known
            .insert(transfer.id, Known::InBatch(out.transfers.len()));
        self.undo.known_added.push(transfer.id);
        out.transfers.push(transfer);
    }

    fn insert_pending(&mut self, transfer: &Transfer) {
        let pending = OpenPending {
            debit_account_id: transfer.debit_account_id,
            credit_account_id: transfer.credit_account_id,
            amount_minor: transfer.amount_minor,
            expires_at_ns: transfer.expires_at_ns(),
        };
        if let Some(at) = pending.expires_at_ns {
            self.expiries.insert((at, transfer.id));
        }
        self.pendings_open.insert(transfer.id, pending);
    }

    fn remove_pending(&mut self, id: TransferId) {
        let pending = self.pendings_open.remove(&id).expect("pending is open");
        if let Some(at) = pending.expires_at_ns {
            self.expiries.remove(&(at, id));
        }
        self.undo.pendings_removed.push((id, pending));
    }
}

/// The answer to an id the ledger has seen before.
fn replay(known: &Known, request: &NewTransfer, out: &BatchOutput) -> TransferCode {
    match known {
        Known::Applied(transfer) if transfer.request() == *request => TransferCode::Exists,
        Known::InBatch(index) if out.transfers[*index].request() == *request => {
            TransferCode::Exists
        }
        Known::Rejected(rejection) if rejection.request == *request => rejection.result,
        _ => TransferCode::ExistsWithDifferentPayload,
    }
}

/// Rejections that follow from the payload alone.
fn validate_payload(request: &NewTransfer) -> Option<TransferCode> {
    let amount_minor = match request.op {
        TransferOp::Posted {
            debit_account_id,
            credit_account_id,
            amount_minor,
        }
        | TransferOp::Pending {
            debit_account_id,
            credit_account_id,
            amount_minor,
            ..
        } => {
            if debit_account_id == credit_account_id {
                return Some(TransferCode::AccountsSame);
            }
            Some(amount_minor)
        }
        TransferOp::PostPending { amount_minor, .. } => amount_minor,
        TransferOp::VoidPending { .. } => None,
    };
    match amount_minor {
        Some(0) => return Some(TransferCode::AmountZero),
        Some(amount) if amount > i64::MAX as u64 => return Some(TransferCode::AmountTooLarge),
        _ => {}
    }
    if let TransferOp::Pending { timeout_ms, .. } = request.op
        && timeout_ms > TIMEOUT_MS_MAX
    {
        return Some(TransferCode::TimeoutTooLarge);
    }
    None
}

/// Every running total stays within `i64::MAX`, so that storage keeps it as a `BIGINT`.
fn checked_total(value: u64, amount_minor: u64) -> Option<u64> {
    value
        .checked_add(amount_minor)
        .filter(|total| *total <= i64::MAX as u64)
}

fn add_debit(mut balances: Balances, amount_minor: u64, pending: bool) -> Option<Balances> {
    let total = if pending {
        &mut balances.debits_pending_minor
    } else {
        &mut balances.debits_posted_minor
    };
    *total = checked_total(*total, amount_minor)?;
    Some(balances)
}

fn add_credit(mut balances: Balances, amount_minor: u64, pending: bool) -> Option<Balances> {
    let total = if pending {
        &mut balances.credits_pending_minor
    } else {
        &mut balances.credits_posted_minor
    };
    *total = checked_total(*total, amount_minor)?;
    Some(balances)
}

fn release_debit(
    mut balances: Balances,
    pending_minor: u64,
    posted_minor: u64,
) -> Option<Balances> {
    balances.debits_pending_minor = balances
        .debits_pending_minor
        .checked_sub(pending_minor)
        .expect("pending is held");
    balances.debits_posted_minor = checked_total(balances.debits_posted_minor, posted_minor)?;
    Some(balances)
}

fn release_credit(
    mut balances: Balances,
    pending_minor: u64,
    posted_minor: u64,
) -> Option<Balances> {
    balances.credits_pending_minor = balances
        .credits_pending_minor
        .checked_sub(pending_minor)
        .expect("pending is held");
    balances.credits_posted_minor = checked_total(balances.credits_posted_minor, posted_minor)?;
    Some(balances)
}

/// A transfer moves the same amount out of one account and into the other. This stays on in
/// release builds: a ledger that creates or loses money must stop, not carry on.
fn assert_conserves(transfer: &Transfer) {
    assert_ne!(transfer.debit_account_id, transfer.credit_account_id);
    assert!(transfer.amount_minor > 0 && transfer.amount_minor <= i64::MAX as u64);
    assert!(
        transfer.debit_balances_after.within_bigint()
            && transfer.credit_balances_after.within_bigint()
    );
}

/// Per currency, the sums over `accounts` of posted debits and credits, and of pending ones.
/// Conservation holds when each pair is equal; [`check_conservation`] says which is not.
pub fn conservation_totals<'a>(
    accounts: impl Iterator<Item = &'a Account>,
) -> HashMap<Currency, [u128; 4]> {
    let mut totals: HashMap<Currency, [u128; 4]> = HashMap::new();
    for account in accounts {
        let b = account.balances;
        let sums = totals.entry(account.currency).or_default();
        sums[0] += u128::from(b.debits_posted_minor);
        sums[1] += u128::from(b.credits_posted_minor);
        sums[2] += u128::from(b.debits_pending_minor);
        sums[3] += u128::from(b.credits_pending_minor);
    }
    totals
}

/// Checks that, per currency, all debits equal all credits, posted and pending alike.
pub fn check_conservation<'a>(accounts: impl Iterator<Item = &'a Account>) -> Result<(), String> {
    for (
        currency,
        [
            debits_posted,
            credits_posted,
            debits_pending,
            credits_pending,
        ],
    ) in conservation_totals(accounts)
    {
        if debits_posted != credits_posted || debits_pending != credits_pending {
            return Err(format!(
                "{currency}: posted debits {debits_posted} vs credits {credits_posted}, \
                 pending debits {debits_pending} vs credits {credits_pending}"
            ));
        }
    }
    Ok(())
}
