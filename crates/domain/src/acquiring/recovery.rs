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
//!   the chain's payer, fee and commission, and the merchant is notified. Start-up passes look
//!   at every unpaid order that has not expired, or expired within [`STARTUP_LOOKBACK_MS`].
//! - **Refunds.** A refund `PROCESSING` for longer than a request takes has its chain posted
//!   again (the ids are its own, so the money moves once) and is finished, or forgotten when
//!   the ledger refuses it (nothing moved).

use super::orders::{OrderError, Orders};
use crate::wallet::people::{People, PeopleError};
use std::ops::Range;
use zhifu_store::{Engine, Store};

/// How far back a start-up pass looks for orders that expired unpaid: a process down for
/// longer than this leaves the older ones to a retry of the payment.
pub const STARTUP_LOOKBACK_MS: i64 = 7 * 24 * 3_600_000;
/// Orders or refunds read per page.
const PAGE_LEN: usize = 256;
/// Orders looked at per pass at most; the next pass takes up the rest only for refunds, so a
/// deployment with more unpaid orders than this per window runs passes more often.
const PASS_ORDERS_MAX: usize = 100_000;
const PASS_REFUNDS_MAX: usize = 10_000;

/// What one pass did.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Pass {
    pub orders_looked_at: u32,
    pub payments_recorded: u32,
    pub refunds_finished: u32,
    pub refunds_forgotten: u32,
    pub refunds_still_processing: u32,
}

impl Pass {
    /// Whether the pass changed anything or left something open (worth a log line).
    pub fn is_news(&self) -> bool {
        self.payments_recorded
            + self.refunds_finished
            + self.refunds_forgotten
            + self.refunds_still_processing
            > 0
    }
}

/// Looks at the unpaid orders expiring in `expiring` and the refunds `PROCESSING` since
/// `refunds_created_ms_max` or earlier.
pub fn pass(
    orders: &Orders,
    people: &People,
    engine: &Engine,
    ledger: &mut dyn Store,
    expiring: Range<i64>,
    refunds_created_ms_max: i64,
    now_ms: i64,
) -> Result<Pass, OrderError> {
    let mut done = Pass::default();
    let mut after_id = 0;
    'pages: loop {
        let page = people
            .db()
            .read(|s| s.orders_unpaid_expiring(expiring.start, expiring.end, after_id, PAGE_LEN))?;
        for order in &page {
            if done.orders_looked_at as usize >= PASS_ORDERS_MAX {
                break 'pages;
            }
            done.orders_looked_at += 1;
            if orders.record_ledger_payment(people, ledger, order.id, now_ms)? {
                done.payments_recorded += 1;
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE_LEN => after_id = last.id,
            _ => break,
        }
    }
    let mut after_id = 0;
    let mut refunds_looked_at = 0;
    loop {
        let page = people
            .db()
            .read(|s| s.refunds_processing(refunds_created_ms_max, after_id, PAGE_LEN))?;
        for refund in &page {
            refunds_looked_at += 1;
            match orders.finish_processing_refund(people, engine, refund, now_ms) {
                Ok(finished) if finished.state == super::orders::PROCESSING => {
                    done.refunds_still_processing += 1
                }
                Ok(_) => done.refunds_finished += 1,
                Err(OrderError::Engine(_) | OrderError::People(PeopleError::Store(_))) => {
                    done.refunds_still_processing += 1
                }
                Err(_) => done.refunds_forgotten += 1,
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE_LEN && refunds_looked_at < PASS_REFUNDS_MAX => {
                after_id = last.id
            }
            _ => break,
        }
    }
    Ok(done)
}
