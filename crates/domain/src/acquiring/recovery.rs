//! Payments and refunds that a crash cut in two, finished from the ledger.
//!
//! A payment posts its chain in the ledger, then writes the order's row; a refund writes its
//! row (`PROCESSING`), posts its chain, then marks the row `SUCCESS`. The ledger and the
//! records commit separately, so a process that stops in between leaves an order that says
//! `NOTPAY` over money the merchant holds, or a refund still `PROCESSING`. A retry with the
//! same key finishes either; this pass finishes the ones nobody retries, doing what the
//! retry would do.
//!
//! - **Payments.** An order is looked at once it can no longer be paid (it expired, or the
//!   process starts, when any unpaid order may have been mid-payment): its chain is found by
//!   the order's ledger reference, and when there is one the order is recorded `SUCCESS` with
//!   the chain's payer, fee and commission, and the merchant is notified. At start-up, before
//!   the first request, every unpaid order that has not expired is looked at first (any of
//!   them could be paid again), then those that expired within [`STARTUP_LOOKBACK_MS`].
//! - **Refunds.** A refund `PROCESSING` for longer than a request takes has its chain posted
//!   again (the ids are its own, so the money moves once) and is finished, or forgotten when
//!   the ledger refuses it (nothing moved).

use super::orders::{OrderError, Orders, PROCESSING};
use crate::wallet::people::People;
use std::ops::Range;
use zhifu_store::{Engine, Store};

/// How far back a start-up pass looks for orders that expired unpaid: a process down for
/// longer than this leaves the older ones to a retry of the payment.
pub const STARTUP_LOOKBACK_MS: i64 = 7 * 24 * 3_600_000;
/// Orders looked at by one periodic pass at most; the next pass resumes where it stopped.
pub const PASS_ORDERS_MAX: usize = 100_000;
/// Orders that have not expired looked at by the start-up pass at most: all of them in any
/// real deployment (each can still be paid, so each must be looked at before the first
/// request).
pub const STARTUP_UNEXPIRED_MAX: usize = 10_000_000;
/// Orders or refunds read per page.
const PAGE_LEN: usize = 256;
const PASS_REFUNDS_MAX: usize = 10_000;

/// What one pass did.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Pass {
    pub orders_looked_at: u32,
    pub payments_recorded: u32,
    /// Further payment chains under an order already paid in the ledger: money the merchant
    /// holds with no order to show for it.
    pub payments_unmatched: u32,
    /// Orders that could not be looked at (a store or ledger error); the next pass tries again.
    pub orders_failed: u32,
    /// Set when the pass stopped at its limit: the expiry to resume from.
    pub orders_resume_ms: Option<i64>,
    pub refunds_finished: u32,
    pub refunds_forgotten: u32,
    pub refunds_still_processing: u32,
}

impl Pass {
    /// Whether the pass changed anything or left something open (worth a log line).
    pub fn is_news(&self) -> bool {
        self.payments_recorded
            + self.payments_unmatched
            + self.orders_failed
            + self.refunds_finished
            + self.refunds_forgotten
            + self.refunds_still_processing
            > 0
            || self.orders_resume_ms.is_some()
    }

    /// Whether every order of the window was looked at: the window is done.
    pub fn orders_done(&self) -> bool {
        self.orders_failed == 0 && self.orders_resume_ms.is_none()
    }
}

/// Looks at up to `orders_max` unpaid orders expiring in `expiring`, soonest first, and the
/// refunds `PROCESSING` since `refunds_created_ms_max` or earlier. An order or refund that
/// fails is counted and the pass goes on; only an unreadable list of them ends it early.
#[allow(clippy::too_many_arguments)]
pub fn pass(
    orders: &Orders,
    people: &People,
    engine: &Engine,
    ledger: &mut dyn Store,
    expiring: Range<i64>,
    orders_max: usize,
    refunds_created_ms_max: i64,
    now_ms: i64,
) -> Result<Pass, OrderError> {
    let mut done = Pass::default();
    let (recorded, failed) = orders.record_unrecorded(people, ledger, now_ms);
    done.payments_recorded += recorded;
    done.orders_failed += failed;
    record_payments(
        orders, people, ledger, expiring, orders_max, now_ms, &mut done,
    )?;
    finish_refunds(
        orders,
        people,
        engine,
        refunds_created_ms_max,
        now_ms,
        &mut done,
    )?;
    Ok(done)
}

fn record_payments(
    orders: &Orders,
    people: &People,
    ledger: &mut dyn Store,
    expiring: Range<i64>,
    orders_max: usize,
    now_ms: i64,
    done: &mut Pass,
) -> Result<(), OrderError> {
    let mut after = (i64::MIN, 0);
    loop {
        let page = people
            .db()
            .read(|s| s.orders_unpaid_expiring(expiring.start, expiring.end, after, PAGE_LEN))?;
        for order in &page {
            if done.orders_looked_at as usize >= orders_max {
                done.orders_resume_ms = Some(order.expires_ms);
                return Ok(());
            }
            done.orders_looked_at += 1;
            match orders.record_ledger_payment(people, ledger, order.id, now_ms) {
                Ok(Some(payment)) => {
                    done.payments_recorded += 1;
                    done.payments_unmatched += payment.extra_chains;
                }
                Ok(None) => {}
                Err(_) => done.orders_failed += 1,
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE_LEN => after = (last.expires_ms, last.id),
            _ => return Ok(()),
        }
    }
}

fn finish_refunds(
    orders: &Orders,
    people: &People,
    engine: &Engine,
    refunds_created_ms_max: i64,
    now_ms: i64,
    done: &mut Pass,
) -> Result<(), OrderError> {
    let (mut after_id, mut looked_at) = (0, 0);
    loop {
        let page = people
            .db()
            .read(|s| s.refunds_processing(refunds_created_ms_max, after_id, PAGE_LEN))?;
        for refund in &page {
            looked_at += 1;
            match orders.finish_processing_refund(people, engine, refund, now_ms) {
                Ok(finished) if finished.state == PROCESSING => done.refunds_still_processing += 1,
                Ok(_) => done.refunds_finished += 1,
                // The ledger refused the chain: the refund was forgotten, nothing moved.
                Err(OrderError::MerchantBalanceShort | OrderError::Ledger(_)) => {
                    done.refunds_forgotten += 1
                }
                // Anything else (a store or engine error): still there for the next pass.
                Err(_) => done.refunds_still_processing += 1,
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE_LEN && looked_at < PASS_REFUNDS_MAX => {
                after_id = last.id
            }
            _ => return Ok(()),
        }
    }
}
