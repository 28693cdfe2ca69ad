//! A plain, independent model of the ledger's rules, written for clarity rather than speed: a
//! linked chain runs on a copy of the whole state, which is kept or thrown away. The property
//! tests check that the engine on each store answers and ends exactly as this model does.

use std::collections::HashMap;
use zhifu_ledger::{
    AccountId, BalanceRule, Balances, Currency, NewAccount, NewTransfer, TIMEOUT_MS_MAX,
    TransferCode, TransferId, TransferOp,
};

const TOTAL_MAX: u64 = i64::MAX as u64;

#[derive(Clone)]
pub struct ModelAccount {
    pub currency: Currency,
    pub rule: BalanceRule,
    pub closed: bool,
    pub balances: Balances,
}

#[derive(Clone)]
struct Hold {
    debit: AccountId,
    credit: AccountId,
    amount: u64,
    expires_at_ns: Option<i64>,
}

#[derive(Clone, PartialEq)]
enum Resolution {
    Posted,
    Voided,
    Expired,
}

#[derive(Clone)]
enum Seen {
    Applied {
        request: NewTransfer,
        is_pending: bool,
    },
    Rejected {
        request: NewTransfer,
        code: TransferCode,
    },
}

#[derive(Clone, Default)]
struct State {
    accounts: HashMap<AccountId, ModelAccount>,
    seen: HashMap<TransferId, Seen>,
    holds: HashMap<TransferId, Hold>,
    resolved: HashMap<TransferId, Resolution>,
    /// The timestamp of the last transfer that was kept (what storage holds).
    timestamp_kept_ns: i64,
}

#[derive(Default)]
pub struct Model {
    state: State,
    /// Timestamps are not part of the rolled-back state: the engine never reuses one.
    timestamp_last_ns: i64,
}

impl Model {
    pub fn accounts(&self) -> &HashMap<AccountId, ModelAccount> {
        &self.state.accounts
    }

    pub fn open_account(&mut self, new: &NewAccount) {
        let account = ModelAccount {
            currency: new.currency,
            rule: new.rule,
            closed: false,
            balances: Balances::default(),
        };
        self.state.accounts.entry(new.id).or_insert(account);
    }

    fn next_timestamp(&mut self, now_ns: i64) -> i64 {
        self.timestamp_last_ns = now_ns.max(self.timestamp_last_ns + 1);
        self.state.timestamp_kept_ns = self.timestamp_last_ns;
        self.timestamp_last_ns
    }

    /// After a restart the engine continues from the last stored timestamp.
    pub fn restart(&mut self) {
        self.timestamp_last_ns = self.state.timestamp_kept_ns;
    }

    /// What the engine does at the start of every batch.
    pub fn expire(&mut self, now_ns: i64) {
        let mut due: Vec<(i64, TransferId)> = self
            .state
            .holds
            .iter()
            .filter_map(|(id, h)| {
                h.expires_at_ns
                    .filter(|at| *at <= now_ns)
                    .map(|at| (at, *id))
            })
            .collect();
        due.sort();
        for (_, id) in due {
            let hold = self.state.holds.remove(&id).unwrap();
            self.release(&hold, 0);
            self.state.resolved.insert(id, Resolution::Expired);
            self.next_timestamp(now_ns);
        }
    }

    pub fn create_transfers(&mut self, now_ns: i64, requests: &[NewTransfer]) -> Vec<TransferCode> {
        let mut codes = Vec::new();
        let mut start = 0;
        while start < requests.len() {
            let end = (start..requests.len())
                .find(|i| !requests[*i].linked)
                .unwrap_or(requests.len() - 1);
            let chain = &requests[start..=end];
            let before = self.state.clone();
            let mut failed = None;
            for (index, request) in chain.iter().enumerate() {
                let code = if index == chain.len() - 1 && request.linked {
                    TransferCode::LinkedChainOpen
                } else {
                    self.apply(now_ns, request)
                };
                if !matches!(code, TransferCode::Ok | TransferCode::Exists) {
                    failed = Some((index, code));
                    break;
                }
                codes.push(code);
            }
            if let Some((failed_index, failed_code)) = failed {
                self.state = before;
                codes.truncate(codes.len() - failed_index);
                for (index, request) in chain.iter().enumerate() {
                    let code = if index == failed_index {
                        failed_code
                    } else {
                        TransferCode::LinkedEventFailed
                    };
                    let payload_only = matches!(
                        code,
                        TransferCode::LinkedChainOpen
                            | TransferCode::AmountZero
                            | TransferCode::AmountTooLarge
                            | TransferCode::AccountsSame
                            | TransferCode::TimeoutTooLarge
                    );
                    if !payload_only && !self.state.seen.contains_key(&request.id) {
                        self.state.seen.insert(
                            request.id,
                            Seen::Rejected {
                                request: request.clone(),
                                code,
                            },
                        );
                    }
                    codes.push(code);
                }
            }
            start = end + 1;
        }
        codes
    }

    fn apply(&mut self, now_ns: i64, request: &NewTransfer) -> TransferCode {
        match self.state.seen.get(&request.id) {
            Some(Seen::Applied { request: first, .. }) => {
                return if first == request {
                    TransferCode::Exists
                } else {
                    TransferCode::ExistsWithDifferentPayload
                };
            }
            Some(Seen::Rejected {
                request: first,
                code,
            }) => {
                return if first == request {
                    *code
                } else {
                    TransferCode::ExistsWithDifferentPayload
                };
            }
            None => {}
        }
        let code = match request.op {
            TransferOp::Posted {
                debit_account_id,
                credit_account_id,
                amount_minor,
            } => self.move_money(debit_account_id, credit_account_id, amount_minor, None),
            TransferOp::Pending {
                debit_account_id,
                credit_account_id,
                amount_minor,
                timeout_ms,
            } => self.move_money(
                debit_account_id,
                credit_account_id,
                amount_minor,
                Some(timeout_ms),
            ),
            TransferOp::PostPending {
                pending_id,
                amount_minor,
            } => self.resolve(now_ns, pending_id, Some(amount_minor)),
            TransferOp::VoidPending { pending_id } => self.resolve(now_ns, pending_id, None),
        };
        if code == TransferCode::Ok {
            let timestamp_ns = self.next_timestamp(now_ns);
            if let TransferOp::Pending {
                debit_account_id,
                credit_account_id,
                amount_minor,
                timeout_ms,
            } = request.op
            {
                let expires_at_ns =
                    (timeout_ms > 0).then(|| timestamp_ns + timeout_ms as i64 * 1_000_000);
                let hold = Hold {
                    debit: debit_account_id,
                    credit: credit_account_id,
                    amount: amount_minor,
                    expires_at_ns,
                };
                self.state.holds.insert(request.id, hold);
            }
            let is_pending = matches!(request.op, TransferOp::Pending { .. });
            self.state.seen.insert(
                request.id,
                Seen::Applied {
                    request: request.clone(),
                    is_pending,
                },
            );
        }
        code
    }

    /// `pending_timeout_ms`: `None` for a posted transfer.
    fn move_money(
        &mut self,
        debit: AccountId,
        credit: AccountId,
        amount: u64,
        pending_timeout_ms: Option<u64>,
    ) -> TransferCode {
        let pending = pending_timeout_ms.is_some();
        if debit == credit {
            return TransferCode::AccountsSame;
        }
        if amount == 0 {
            return TransferCode::AmountZero;
        }
        if amount > TOTAL_MAX {
            return TransferCode::AmountTooLarge;
        }
        if pending_timeout_ms.is_some_and(|t| t > TIMEOUT_MS_MAX) {
            return TransferCode::TimeoutTooLarge;
        }
        let Some(d) = self.state.accounts.get(&debit).cloned() else {
            return TransferCode::DebitAccountNotFound;
        };
        let Some(c) = self.state.accounts.get(&credit).cloned() else {
            return TransferCode::CreditAccountNotFound;
        };
        if d.currency != c.currency {
            return TransferCode::CurrencyMismatch;
        }
        if d.closed {
            return TransferCode::DebitAccountClosed;
        }
        if c.closed {
            return TransferCode::CreditAccountClosed;
        }
        let (mut db, mut cb) = (d.balances, c.balances);
        let (d_total, c_total) = if pending {
            (&mut db.debits_pending_minor, &mut cb.credits_pending_minor)
        } else {
            (&mut db.debits_posted_minor, &mut cb.credits_posted_minor)
        };
        if u128::from(*d_total) + u128::from(amount) > u128::from(TOTAL_MAX)
            || u128::from(*c_total) + u128::from(amount) > u128::from(TOTAL_MAX)
        {
            return TransferCode::Overflow;
        }
        *d_total += amount;
        *c_total += amount;
        if !allowed(&db, d.rule) {
            return TransferCode::ExceedsBalance;
        }
        if !allowed(&cb, c.rule) {
            return TransferCode::ExceedsCredits;
        }
        self.state.accounts.get_mut(&debit).unwrap().balances = db;
        self.state.accounts.get_mut(&credit).unwrap().balances = cb;
        TransferCode::Ok
    }

    /// `post`: `None` voids; `Some(None)` posts fully; `Some(Some(x))` posts `x`.
    fn resolve(
        &mut self,
        now_ns: i64,
        pending_id: TransferId,
        post: Option<Option<u64>>,
    ) -> TransferCode {
        if let Some(Some(0)) = post {
            return TransferCode::AmountZero;
        }
        if let Some(Some(amount)) = post
            && amount > TOTAL_MAX
        {
            return TransferCode::AmountTooLarge;
        }
        let Some(hold) = self.state.holds.get(&pending_id).cloned() else {
            return match (
                self.state.seen.get(&pending_id),
                self.state.resolved.get(&pending_id),
            ) {
                (
                    Some(Seen::Applied {
                        is_pending: false, ..
                    }),
                    _,
                ) => TransferCode::PendingIdNotPending,
                (
                    Some(Seen::Applied {
                        is_pending: true, ..
                    }),
                    Some(Resolution::Posted),
                ) => TransferCode::PendingAlreadyPosted,
                (
                    Some(Seen::Applied {
                        is_pending: true, ..
                    }),
                    Some(Resolution::Voided),
                ) => TransferCode::PendingAlreadyVoided,
                (
                    Some(Seen::Applied {
                        is_pending: true, ..
                    }),
                    Some(Resolution::Expired),
                ) => TransferCode::PendingExpired,
                _ => TransferCode::PendingNotFound,
            };
        };
        if hold.expires_at_ns.is_some_and(|at| at <= now_ns) {
            return TransferCode::PendingExpired;
        }
        let posted = match post {
            Some(amount) => {
                let amount = amount.unwrap_or(hold.amount);
                if amount > hold.amount {
                    return TransferCode::PostAmountExceedsPending;
                }
                if self.state.accounts[&hold.debit].closed {
                    return TransferCode::DebitAccountClosed;
                }
                if self.state.accounts[&hold.credit].closed {
                    return TransferCode::CreditAccountClosed;
                }
                let d = self.state.accounts[&hold.debit]
                    .balances
                    .debits_posted_minor;
                let c = self.state.accounts[&hold.credit]
                    .balances
                    .credits_posted_minor;
                if u128::from(d) + u128::from(amount) > u128::from(TOTAL_MAX)
                    || u128::from(c) + u128::from(amount) > u128::from(TOTAL_MAX)
                {
                    return TransferCode::Overflow;
                }
                amount
            }
            None => 0,
        };
        self.state.holds.remove(&pending_id);
        self.release(&hold, posted);
        let resolution = if post.is_some() {
            Resolution::Posted
        } else {
            Resolution::Voided
        };
        self.state.resolved.insert(pending_id, resolution);
        TransferCode::Ok
    }

    fn release(&mut self, hold: &Hold, posted: u64) {
        let debit = &mut self.state.accounts.get_mut(&hold.debit).unwrap().balances;
        debit.debits_pending_minor -= hold.amount;
        debit.debits_posted_minor += posted;
        let credit = &mut self.state.accounts.get_mut(&hold.credit).unwrap().balances;
        credit.credits_pending_minor -= hold.amount;
        credit.credits_posted_minor += posted;
    }
}

fn allowed(b: &Balances, rule: BalanceRule) -> bool {
    let debits = u128::from(b.debits_posted_minor) + u128::from(b.debits_pending_minor);
    let credits = u128::from(b.credits_posted_minor) + u128::from(b.credits_pending_minor);
    match rule {
        BalanceRule::Unbounded => true,
        BalanceRule::DebitsWithinCredits {
            overdraft_limit_minor,
        } => debits <= u128::from(b.credits_posted_minor) + u128::from(overdraft_limit_minor),
        BalanceRule::CreditsWithinDebits => credits <= u128::from(b.debits_posted_minor),
    }
}
