//! Merchant orders, refunds and the notification outbox (SPEC §5), beside the wallet's records
//! and reached through the same [`crate::WalletDb`]: [`OrderStore`] is a supertrait of
//! [`crate::WalletStore`].
//!
//! Each method is one statement, so that it is atomic inside a writer's batch and outside one;
//! the rules (which state may follow which, the refund caps, the retry schedule) live in
//! `zhifu-domain`, and the conditional updates here are how it applies them race-free.

use crate::wallet::{PostgresWalletStore, SqliteWalletStore};
use crate::{PAGE_LEN_MAX, StoreError};
use rusqlite::{OptionalExtension, params};

/// A merchant order. `id` is zhifu's transaction number; the rest is as the merchant asked
/// and as the payment went.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OrderRow {
    /// Zero in a row to insert: the store assigns it.
    pub id: i64,
    pub merchant_id: i64,
    pub out_trade_no: String,
    pub kind: String,
    pub amount_minor: u64,
    pub description: String,
    pub request_digest: String,
    pub state: String,
    pub payer_id: Option<i64>,
    pub pin_confirmed: bool,
    pub fee_minor: u64,
    pub commission_minor: u64,
    pub refunded_minor: u64,
    pub refund_count: u32,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub paid_ms: Option<i64>,
    pub closed_ms: Option<i64>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RefundRow {
    /// Zero in a row to insert.
    pub id: i64,
    pub order_id: i64,
    pub merchant_id: i64,
    pub out_refund_no: String,
    pub amount_minor: u64,
    pub fee_minor: u64,
    pub commission_minor: u64,
    pub reason: Option<String>,
    pub state: String,
    pub created_ms: i64,
    /// When it left `PROCESSING` (None before): its `success_time`, and the day of its bill.
    pub finished_ms: Option<i64>,
}

impl RefundRow {
    /// When it succeeded; None while `PROCESSING` or if it ended otherwise.
    pub fn success_ms(&self) -> Option<i64> {
        self.finished_ms.filter(|_| self.state == "SUCCESS")
    }
}

/// An event for a merchant's `notify_url`. `resource` is the plaintext JSON that delivery
/// encrypts with the merchant's key at each attempt.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NotificationRow {
    /// Zero in a row to insert.
    pub id: i64,
    pub event_id: String,
    pub merchant_id: i64,
    pub event_type: String,
    pub resource: String,
    pub created_ms: i64,
    pub attempts: u32,
    pub next_ms: Option<i64>,
    pub delivered_ms: Option<i64>,
}

/// One delivery attempt, as the console's log shows it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AttemptRow {
    pub notification_id: i64,
    pub attempt: u32,
    pub at_ms: i64,
    pub outcome: String,
}

/// A merchant's payout card, as the bank tokenized it.
#[derive(Clone, PartialEq, Eq)]
pub struct SettlementCard {
    pub token: String,
    pub bank: String,
    pub last_four: String,
}

impl std::fmt::Debug for SettlementCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettlementCard")
            .field("bank", &self.bank)
            .field("last_four", &self.last_four)
            .finish_non_exhaustive()
    }
}

/// One merchant's settlement for one cut-off.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SettlementRow {
    pub merchant_id: i64,
    pub cutoff_ms: i64,
    pub amount_minor: u64,
    pub card_token: String,
    pub state: String,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
}

pub trait OrderStore {
    /// Stores a new order unless the merchant has one of this `out_trade_no`; returns the
    /// stored row either way (compare its digest to tell a retry from a reuse).
    fn order_insert(&mut self, order: &OrderRow) -> Result<OrderRow, StoreError>;
    fn order(&mut self, id: i64) -> Result<Option<OrderRow>, StoreError>;
    fn order_by_out_trade_no(
        &mut self,
        merchant_id: i64,
        out_trade_no: &str,
    ) -> Result<Option<OrderRow>, StoreError>;
    /// Writes the order's state, payer, fees, refund sums and times, if its state is still
    /// `from_state`; false (nothing written) when it is not.
    fn order_update(&mut self, order: &OrderRow, from_state: &str) -> Result<bool, StoreError>;
    /// The merchant's orders created in `[from_ms, to_ms)`, by id, after `after_id`.
    fn orders_created_between(
        &mut self,
        merchant_id: i64,
        from_ms: i64,
        to_ms: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<OrderRow>, StoreError>;
    /// The merchant's orders paid in `[from_ms, to_ms)`, by id, after `after_id`.
    fn orders_paid_between(
        &mut self,
        merchant_id: i64,
        from_ms: i64,
        to_ms: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<OrderRow>, StoreError>;
    /// Orders waiting for this payer's PIN (`USERPAYING`), oldest first.
    fn orders_awaiting_payer(&mut self, payer_id: i64) -> Result<Vec<OrderRow>, StoreError>;
    /// How many pay-code orders the payer paid without the PIN since `since_ms`.
    fn orders_without_pin_since(&mut self, payer_id: i64, since_ms: i64)
    -> Result<u32, StoreError>;

    /// Orders that may hold a payment the ledger has and the row does not (`NOTPAY`,
    /// `USERPAYING`, `CLOSED`) expiring in `[from_ms, to_ms)`, by expiry then id, after the
    /// `(expires_ms, id)` cursor `after` (`(i64::MIN, 0)` for the first page).
    fn orders_unpaid_expiring(
        &mut self,
        from_ms: i64,
        to_ms: i64,
        after: (i64, i64),
        limit: usize,
    ) -> Result<Vec<OrderRow>, StoreError>;

    /// Stores a refund unless the merchant has one of this `out_refund_no`; returns the stored
    /// row either way.
    fn refund_insert(&mut self, refund: &RefundRow) -> Result<RefundRow, StoreError>;
    /// Moves a `PROCESSING` refund to `state` at `finished_ms`; false when it is not
    /// `PROCESSING` (any more).
    fn refund_finish(&mut self, id: i64, state: &str, finished_ms: i64)
    -> Result<bool, StoreError>;
    /// Forgets a `PROCESSING` refund whose chain the ledger refused: nothing moved. (The
    /// ledger keeps the refusal under the refund's ids, so the same request is refused alike.)
    /// False when it is not `PROCESSING`.
    fn refund_forget(&mut self, id: i64) -> Result<bool, StoreError>;
    /// Refunds still `PROCESSING` made before `created_ms_max`, by id, after `after_id`.
    fn refunds_processing(
        &mut self,
        created_ms_max: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<RefundRow>, StoreError>;
    fn refund_by_out_refund_no(
        &mut self,
        merchant_id: i64,
        out_refund_no: &str,
    ) -> Result<Option<RefundRow>, StoreError>;
    fn refunds_of_order(&mut self, order_id: i64) -> Result<Vec<RefundRow>, StoreError>;
    /// The merchant's refunds that succeeded in `[from_ms, to_ms)` (by `finished_ms`), by id,
    /// after `after_id`.
    fn refunds_between(
        &mut self,
        merchant_id: i64,
        from_ms: i64,
        to_ms: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<RefundRow>, StoreError>;

    fn notification_insert(&mut self, notification: &NotificationRow) -> Result<(), StoreError>;
    /// Notifications whose next attempt is due at `now_ms`, most overdue first.
    fn notifications_due(
        &mut self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<NotificationRow>, StoreError>;
    /// Logs an attempt and schedules the next one (`next_ms`, None to stop); `delivered_ms`
    /// when the merchant acknowledged it.
    fn notification_attempted(
        &mut self,
        attempt: &AttemptRow,
        next_ms: Option<i64>,
        delivered_ms: Option<i64>,
    ) -> Result<(), StoreError>;
    fn notification(&mut self, id: i64) -> Result<Option<NotificationRow>, StoreError>;
    /// The merchant's notifications, newest first, below `before_id`.
    fn notifications_of_merchant(
        &mut self,
        merchant_id: i64,
        before_id: i64,
        limit: usize,
    ) -> Result<Vec<NotificationRow>, StoreError>;
    fn notification_attempts(
        &mut self,
        notification_id: i64,
    ) -> Result<Vec<AttemptRow>, StoreError>;
    /// Makes the notification due again at `now_ms` (a resend from the console).
    fn notification_resend(
        &mut self,
        merchant_id: i64,
        id: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    fn merchant_settlement_card_set(
        &mut self,
        merchant_id: i64,
        card: &SettlementCard,
    ) -> Result<(), StoreError>;
    fn merchant_settlement_card(
        &mut self,
        merchant_id: i64,
    ) -> Result<Option<SettlementCard>, StoreError>;
    /// Merchants with a settlement card, by id, after `after_id`.
    fn merchants_settling(&mut self, after_id: i64, limit: usize) -> Result<Vec<i64>, StoreError>;
    /// Stores the settlement unless the merchant has one for this cut-off; returns the stored
    /// row either way.
    fn settlement_insert(&mut self, row: &SettlementRow) -> Result<SettlementRow, StoreError>;
    /// Ends a `PROCESSING` settlement; false when it was not processing.
    fn settlement_finish(
        &mut self,
        merchant_id: i64,
        cutoff_ms: i64,
        state: &str,
        finished_ms: i64,
    ) -> Result<bool, StoreError>;
    /// The merchant's settlements, newest first, with a cut-off before `before_ms`.
    fn settlements_of_merchant(
        &mut self,
        merchant_id: i64,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<SettlementRow>, StoreError>;
    /// Settlements still waiting for the bank, oldest first.
    fn settlements_processing(&mut self, limit: usize) -> Result<Vec<SettlementRow>, StoreError>;

    /// The merchant's key for encrypting notifications (hex), if it has one.
    fn merchant_notify_key(&mut self, merchant_id: i64) -> Result<Option<String>, StoreError>;
    fn merchant_notify_key_set(
        &mut self,
        merchant_id: i64,
        key_hex: &str,
    ) -> Result<(), StoreError>;
}

const ORDER_COLUMNS: &str = "id, merchant_id, out_trade_no, kind, amount_minor, description, \
     request_digest, state, payer_id, pin_confirmed, fee_minor, commission_minor, \
     refunded_minor, refund_count, created_ms, expires_ms, paid_ms, closed_ms";
const REFUND_COLUMNS: &str = "id, order_id, merchant_id, out_refund_no, amount_minor, \
     fee_minor, commission_minor, reason, state, created_ms, finished_ms";
const SETTLEMENT_COLUMNS: &str =
    "merchant_id, cutoff_ms, amount_minor, card_token, state, created_ms, finished_ms";
const NOTIFICATION_COLUMNS: &str = "id, event_id, merchant_id, event_type, resource, \
     created_ms, attempts, next_ms, delivered_ms";
const ATTEMPTS_COLUMNS: &str = "notification_id, attempt, at_ms, outcome";

fn to_i64(minor: u64) -> Result<i64, StoreError> {
    i64::try_from(minor).map_err(|_| StoreError::Corrupt("an amount beyond i64".into()))
}

fn to_u64(value: i64) -> rusqlite::Result<u64> {
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, value))
}

fn order_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderRow> {
    Ok(OrderRow {
        id: r.get(0)?,
        merchant_id: r.get(1)?,
        out_trade_no: r.get(2)?,
        kind: r.get(3)?,
        amount_minor: to_u64(r.get(4)?)?,
        description: r.get(5)?,
        request_digest: r.get(6)?,
        state: r.get(7)?,
        payer_id: r.get(8)?,
        pin_confirmed: r.get(9)?,
        fee_minor: to_u64(r.get(10)?)?,
        commission_minor: to_u64(r.get(11)?)?,
        refunded_minor: to_u64(r.get(12)?)?,
        refund_count: r.get(13)?,
        created_ms: r.get(14)?,
        expires_ms: r.get(15)?,
        paid_ms: r.get(16)?,
        closed_ms: r.get(17)?,
    })
}

fn refund_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<RefundRow> {
    Ok(RefundRow {
        id: r.get(0)?,
        order_id: r.get(1)?,
        merchant_id: r.get(2)?,
        out_refund_no: r.get(3)?,
        amount_minor: to_u64(r.get(4)?)?,
        fee_minor: to_u64(r.get(5)?)?,
        commission_minor: to_u64(r.get(6)?)?,
        reason: r.get(7)?,
        state: r.get(8)?,
        created_ms: r.get(9)?,
        finished_ms: r.get(10)?,
    })
}

fn notification_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<NotificationRow> {
    Ok(NotificationRow {
        id: r.get(0)?,
        event_id: r.get(1)?,
        merchant_id: r.get(2)?,
        event_type: r.get(3)?,
        resource: r.get(4)?,
        created_ms: r.get(5)?,
        attempts: r.get(6)?,
        next_ms: r.get(7)?,
        delivered_ms: r.get(8)?,
    })
}

fn settlement_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<SettlementRow> {
    Ok(SettlementRow {
        merchant_id: r.get(0)?,
        cutoff_ms: r.get(1)?,
        amount_minor: to_u64(r.get(2)?)?,
        card_token: r.get(3)?,
        state: r.get(4)?,
        created_ms: r.get(5)?,
        finished_ms: r.get(6)?,
    })
}

fn settlement_postgres(r: &postgres::Row) -> Result<SettlementRow, StoreError> {
    Ok(SettlementRow {
        merchant_id: r.get(0),
        cutoff_ms: r.get(1),
        amount_minor: pg_u64(r, 2)?,
        card_token: r.get(3),
        state: r.get(4),
        created_ms: r.get(5),
        finished_ms: r.get(6),
    })
}

fn attempt_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<AttemptRow> {
    Ok(AttemptRow {
        notification_id: r.get(0)?,
        attempt: r.get(1)?,
        at_ms: r.get(2)?,
        outcome: r.get(3)?,
    })
}

impl OrderStore for SqliteWalletStore {
    fn order_insert(&mut self, order: &OrderRow) -> Result<OrderRow, StoreError> {
        self.connection
            .prepare_cached(
                "INSERT INTO merchant_orders (merchant_id, out_trade_no, kind, amount_minor, \
                 description, request_digest, state, payer_id, created_ms, expires_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (merchant_id, out_trade_no) DO NOTHING",
            )?
            .execute(params![
                order.merchant_id,
                order.out_trade_no,
                order.kind,
                to_i64(order.amount_minor)?,
                order.description,
                order.request_digest,
                order.state,
                order.payer_id,
                order.created_ms,
                order.expires_ms
            ])?;
        self.order_by_out_trade_no(order.merchant_id, &order.out_trade_no)?
            .ok_or_else(|| StoreError::Corrupt("an order vanished after its insert".into()))
    }

    fn order(&mut self, id: i64) -> Result<Option<OrderRow>, StoreError> {
        Ok(self
            .connection
            .prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS} FROM merchant_orders WHERE id = ?1"
            ))?
            .query_row([id], order_sqlite)
            .optional()?)
    }

    fn order_by_out_trade_no(
        &mut self,
        merchant_id: i64,
        out_trade_no: &str,
    ) -> Result<Option<OrderRow>, StoreError> {
        Ok(self
            .connection
            .prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS} FROM merchant_orders \
                 WHERE merchant_id = ?1 AND out_trade_no = ?2"
            ))?
            .query_row(params![merchant_id, out_trade_no], order_sqlite)
            .optional()?)
    }

    fn order_update(&mut self, order: &OrderRow, from_state: &str) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .prepare_cached(
                "UPDATE merchant_orders SET state = ?3, payer_id = ?4, pin_confirmed = ?5, \
                 fee_minor = ?6, commission_minor = ?7, refunded_minor = ?8, refund_count = ?9, \
                 paid_ms = ?10, closed_ms = ?11 WHERE id = ?1 AND state = ?2",
            )?
            .execute(params![
                order.id,
                from_state,
                order.state,
                order.payer_id,
                order.pin_confirmed,
                to_i64(order.fee_minor)?,
                to_i64(order.commission_minor)?,
                to_i64(order.refunded_minor)?,
                order.refund_count,
                order.paid_ms,
                order.closed_ms
            ])?;
        Ok(changed > 0)
    }

    fn orders_created_between(
        &mut self,
        merchant_id: i64,
        from_ms: i64,
        to_ms: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<OrderRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM merchant_orders WHERE merchant_id = ?1 \
             AND created_ms >= ?2 AND created_ms < ?3 AND id > ?4 ORDER BY id LIMIT ?5"
        ))?;
        let rows = statement
            .query_map(
                params![merchant_id, from_ms, to_ms, after_id, limit],
                order_sqlite,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn orders_paid_between(
        &mut self,
        merchant_id: i64,
        from_ms: i64,
        to_ms: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<OrderRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM merchant_orders WHERE merchant_id = ?1 \
             AND paid_ms >= ?2 AND paid_ms < ?3 AND id > ?4 ORDER BY id LIMIT ?5"
        ))?;
        let rows = statement
            .query_map(
                params![merchant_id, from_ms, to_ms, after_id, limit],
                order_sqlite,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn orders_awaiting_payer(&mut self, payer_id: i64) -> Result<Vec<OrderRow>, StoreError> {
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM merchant_orders WHERE payer_id = ?1 \
             AND state = 'USERPAYING' ORDER BY id LIMIT {PAGE_LEN_MAX}"
        ))?;
        let rows = statement
            .query_map([payer_id], order_sqlite)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn orders_without_pin_since(
        &mut self,
        payer_id: i64,
        since_ms: i64,
    ) -> Result<u32, StoreError> {
        Ok(self
            .connection
            .prepare_cached(
                "SELECT count(*) FROM merchant_orders WHERE payer_id = ?1 AND paid_ms >= ?2 \
                 AND kind = 'PAYCODE' AND pin_confirmed = 0",
            )?
            .query_row(params![payer_id, since_ms], |r| r.get(0))?)
    }

    fn orders_unpaid_expiring(
        &mut self,
        from_ms: i64,
        to_ms: i64,
        after: (i64, i64),
        limit: usize,
    ) -> Result<Vec<OrderRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM merchant_orders \
             WHERE state IN ('NOTPAY', 'USERPAYING', 'CLOSED') \
             AND expires_ms >= ?1 AND expires_ms < ?2 \
             AND (expires_ms > ?3 OR (expires_ms = ?3 AND id > ?4)) \
             ORDER BY expires_ms, id LIMIT ?5"
        ))?;
        let rows = statement
            .query_map(
                params![from_ms, to_ms, after.0, after.1, limit],
                order_sqlite,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn refund_finish(
        &mut self,
        id: i64,
        state: &str,
        finished_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .prepare_cached(
                "UPDATE merchant_refunds SET state = ?2, finished_ms = ?3 \
                 WHERE id = ?1 AND state = 'PROCESSING'",
            )?
            .execute(params![id, state, finished_ms])?;
        Ok(changed > 0)
    }

    fn refund_forget(&mut self, id: i64) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .prepare_cached("DELETE FROM merchant_refunds WHERE id = ?1 AND state = 'PROCESSING'")?
            .execute([id])?;
        Ok(changed > 0)
    }

    fn refunds_processing(
        &mut self,
        created_ms_max: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<RefundRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {REFUND_COLUMNS} FROM merchant_refunds WHERE state = 'PROCESSING' \
             AND created_ms <= ?1 AND id > ?2 ORDER BY id LIMIT ?3"
        ))?;
        let rows = statement
            .query_map(params![created_ms_max, after_id, limit], refund_sqlite)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn refund_insert(&mut self, refund: &RefundRow) -> Result<RefundRow, StoreError> {
        self.connection
            .prepare_cached(
                "INSERT INTO merchant_refunds (order_id, merchant_id, out_refund_no, \
                 amount_minor, fee_minor, commission_minor, reason, state, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (merchant_id, out_refund_no) DO NOTHING",
            )?
            .execute(params![
                refund.order_id,
                refund.merchant_id,
                refund.out_refund_no,
                to_i64(refund.amount_minor)?,
                to_i64(refund.fee_minor)?,
                to_i64(refund.commission_minor)?,
                refund.reason,
                refund.state,
                refund.created_ms
            ])?;
        self.refund_by_out_refund_no(refund.merchant_id, &refund.out_refund_no)?
            .ok_or_else(|| StoreError::Corrupt("a refund vanished after its insert".into()))
    }

    fn refund_by_out_refund_no(
        &mut self,
        merchant_id: i64,
        out_refund_no: &str,
    ) -> Result<Option<RefundRow>, StoreError> {
        Ok(self
            .connection
            .prepare_cached(&format!(
                "SELECT {REFUND_COLUMNS} FROM merchant_refunds \
                 WHERE merchant_id = ?1 AND out_refund_no = ?2"
            ))?
            .query_row(params![merchant_id, out_refund_no], refund_sqlite)
            .optional()?)
    }

    fn refunds_of_order(&mut self, order_id: i64) -> Result<Vec<RefundRow>, StoreError> {
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {REFUND_COLUMNS} FROM merchant_refunds WHERE order_id = ?1 ORDER BY id"
        ))?;
        let rows = statement
            .query_map([order_id], refund_sqlite)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn refunds_between(
        &mut self,
        merchant_id: i64,
        from_ms: i64,
        to_ms: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<RefundRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {REFUND_COLUMNS} FROM merchant_refunds WHERE merchant_id = ?1 \
             AND state = 'SUCCESS' AND finished_ms >= ?2 AND finished_ms < ?3 AND id > ?4 \
             ORDER BY id LIMIT ?5"
        ))?;
        let rows = statement
            .query_map(
                params![merchant_id, from_ms, to_ms, after_id, limit],
                refund_sqlite,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn notification_insert(&mut self, n: &NotificationRow) -> Result<(), StoreError> {
        self.connection
            .prepare_cached(
                "INSERT INTO merchant_notifications (event_id, merchant_id, event_type, \
                 resource, created_ms, attempts, next_ms) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6) \
                 ON CONFLICT (event_id) DO NOTHING",
            )?
            .execute(params![
                n.event_id,
                n.merchant_id,
                n.event_type,
                n.resource,
                n.created_ms,
                n.next_ms
            ])?;
        Ok(())
    }

    fn notifications_due(
        &mut self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM merchant_notifications \
             WHERE next_ms IS NOT NULL AND next_ms <= ?1 ORDER BY next_ms LIMIT ?2"
        ))?;
        let rows = statement
            .query_map(params![now_ms, limit], notification_sqlite)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn notification_attempted(
        &mut self,
        attempt: &AttemptRow,
        next_ms: Option<i64>,
        delivered_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let tx = self.connection.savepoint()?;
        tx.execute(
            "INSERT INTO merchant_notification_attempts (notification_id, attempt, at_ms, \
             outcome) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![
                attempt.notification_id,
                attempt.attempt,
                attempt.at_ms,
                attempt.outcome
            ],
        )?;
        tx.execute(
            "UPDATE merchant_notifications SET attempts = max(attempts, ?2), next_ms = ?3, \
             delivered_ms = coalesce(delivered_ms, ?4) WHERE id = ?1",
            params![
                attempt.notification_id,
                attempt.attempt,
                next_ms,
                delivered_ms
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn notification(&mut self, id: i64) -> Result<Option<NotificationRow>, StoreError> {
        Ok(self
            .connection
            .prepare_cached(&format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM merchant_notifications WHERE id = ?1"
            ))?
            .query_row([id], notification_sqlite)
            .optional()?)
    }

    fn notifications_of_merchant(
        &mut self,
        merchant_id: i64,
        before_id: i64,
        limit: usize,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM merchant_notifications WHERE merchant_id = ?1 \
             AND id < ?2 ORDER BY id DESC LIMIT ?3"
        ))?;
        let rows = statement
            .query_map(params![merchant_id, before_id, limit], notification_sqlite)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn notification_attempts(
        &mut self,
        notification_id: i64,
    ) -> Result<Vec<AttemptRow>, StoreError> {
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {ATTEMPTS_COLUMNS} FROM merchant_notification_attempts \
             WHERE notification_id = ?1 ORDER BY attempt"
        ))?;
        let rows = statement
            .query_map([notification_id], attempt_sqlite)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn notification_resend(
        &mut self,
        merchant_id: i64,
        id: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .prepare_cached(
                "UPDATE merchant_notifications SET next_ms = ?3 \
                 WHERE id = ?1 AND merchant_id = ?2",
            )?
            .execute(params![id, merchant_id, now_ms])?;
        Ok(changed > 0)
    }

    fn merchant_settlement_card_set(
        &mut self,
        merchant_id: i64,
        card: &SettlementCard,
    ) -> Result<(), StoreError> {
        self.connection
            .prepare_cached(
                "UPDATE merchants SET settlement_card_token = ?2, settlement_card_bank = ?3, \
                 settlement_card_last_four = ?4 WHERE id = ?1",
            )?
            .execute(params![merchant_id, card.token, card.bank, card.last_four])?;
        Ok(())
    }

    fn merchant_settlement_card(
        &mut self,
        merchant_id: i64,
    ) -> Result<Option<SettlementCard>, StoreError> {
        let row = self
            .connection
            .prepare_cached(
                "SELECT settlement_card_token, settlement_card_bank, settlement_card_last_four \
                 FROM merchants WHERE id = ?1",
            )?
            .query_row([merchant_id], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .optional()?;
        Ok(match row {
            Some((Some(token), Some(bank), Some(last_four))) => Some(SettlementCard {
                token,
                bank,
                last_four,
            }),
            _ => None,
        })
    }

    fn merchants_settling(&mut self, after_id: i64, limit: usize) -> Result<Vec<i64>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let mut statement = self.connection.prepare_cached(
            "SELECT id FROM merchants WHERE settlement_card_token IS NOT NULL AND id > ?1 \
             ORDER BY id LIMIT ?2",
        )?;
        let rows = statement
            .query_map(params![after_id, limit], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(rows)
    }

    fn settlement_insert(&mut self, row: &SettlementRow) -> Result<SettlementRow, StoreError> {
        self.connection
            .prepare_cached(
                "INSERT INTO merchant_settlements (merchant_id, cutoff_ms, amount_minor, \
                 card_token, state, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (merchant_id, cutoff_ms) DO NOTHING",
            )?
            .execute(params![
                row.merchant_id,
                row.cutoff_ms,
                to_i64(row.amount_minor)?,
                row.card_token,
                row.state,
                row.created_ms
            ])?;
        Ok(self
            .connection
            .prepare_cached(&format!(
                "SELECT {SETTLEMENT_COLUMNS} FROM merchant_settlements \
                 WHERE merchant_id = ?1 AND cutoff_ms = ?2"
            ))?
            .query_row(params![row.merchant_id, row.cutoff_ms], settlement_sqlite)?)
    }

    fn settlement_finish(
        &mut self,
        merchant_id: i64,
        cutoff_ms: i64,
        state: &str,
        finished_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .prepare_cached(
                "UPDATE merchant_settlements SET state = ?3, finished_ms = ?4 \
                 WHERE merchant_id = ?1 AND cutoff_ms = ?2 AND state = 'PROCESSING'",
            )?
            .execute(params![merchant_id, cutoff_ms, state, finished_ms])?;
        Ok(changed > 0)
    }

    fn settlements_of_merchant(
        &mut self,
        merchant_id: i64,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<SettlementRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {SETTLEMENT_COLUMNS} FROM merchant_settlements WHERE merchant_id = ?1 \
             AND cutoff_ms < ?2 ORDER BY cutoff_ms DESC LIMIT ?3"
        ))?;
        let rows = statement
            .query_map(params![merchant_id, before_ms, limit], settlement_sqlite)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn settlements_processing(&mut self, limit: usize) -> Result<Vec<SettlementRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {SETTLEMENT_COLUMNS} FROM merchant_settlements WHERE state = 'PROCESSING' \
             ORDER BY created_ms LIMIT ?1"
        ))?;
        let rows = statement
            .query_map([limit], settlement_sqlite)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn merchant_notify_key(&mut self, merchant_id: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .connection
            .prepare_cached("SELECT notify_key FROM merchants WHERE id = ?1")?
            .query_row([merchant_id], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    fn merchant_notify_key_set(
        &mut self,
        merchant_id: i64,
        key_hex: &str,
    ) -> Result<(), StoreError> {
        self.connection
            .prepare_cached("UPDATE merchants SET notify_key = ?2 WHERE id = ?1")?
            .execute(params![merchant_id, key_hex])?;
        Ok(())
    }
}

fn pg_u64(r: &postgres::Row, index: usize) -> Result<u64, StoreError> {
    u64::try_from(r.get::<_, i64>(index))
        .map_err(|_| StoreError::Corrupt("a negative amount".into()))
}

fn pg_u32(r: &postgres::Row, index: usize) -> Result<u32, StoreError> {
    u32::try_from(r.get::<_, i64>(index))
        .map_err(|_| StoreError::Corrupt("a count out of range".into()))
}

fn order_postgres(r: &postgres::Row) -> Result<OrderRow, StoreError> {
    Ok(OrderRow {
        id: r.get(0),
        merchant_id: r.get(1),
        out_trade_no: r.get(2),
        kind: r.get(3),
        amount_minor: pg_u64(r, 4)?,
        description: r.get(5),
        request_digest: r.get(6),
        state: r.get(7),
        payer_id: r.get(8),
        pin_confirmed: r.get::<_, i64>(9) != 0,
        fee_minor: pg_u64(r, 10)?,
        commission_minor: pg_u64(r, 11)?,
        refunded_minor: pg_u64(r, 12)?,
        refund_count: pg_u32(r, 13)?,
        created_ms: r.get(14),
        expires_ms: r.get(15),
        paid_ms: r.get(16),
        closed_ms: r.get(17),
    })
}

fn refund_postgres(r: &postgres::Row) -> Result<RefundRow, StoreError> {
    Ok(RefundRow {
        id: r.get(0),
        order_id: r.get(1),
        merchant_id: r.get(2),
        out_refund_no: r.get(3),
        amount_minor: pg_u64(r, 4)?,
        fee_minor: pg_u64(r, 5)?,
        commission_minor: pg_u64(r, 6)?,
        reason: r.get(7),
        state: r.get(8),
        created_ms: r.get(9),
        finished_ms: r.get(10),
    })
}

fn notification_postgres(r: &postgres::Row) -> Result<NotificationRow, StoreError> {
    Ok(NotificationRow {
        id: r.get(0),
        event_id: r.get(1),
        merchant_id: r.get(2),
        event_type: r.get(3),
        resource: r.get(4),
        created_ms: r.get(5),
        attempts: pg_u32(r, 6)?,
        next_ms: r.get(7),
        delivered_ms: r.get(8),
    })
}

fn attempt_postgres(r: &postgres::Row) -> Result<AttemptRow, StoreError> {
    Ok(AttemptRow {
        notification_id: r.get(0),
        attempt: pg_u32(r, 1)?,
        at_ms: r.get(2),
        outcome: r.get(3),
    })
}

impl OrderStore for PostgresWalletStore {
    fn order_insert(&mut self, order: &OrderRow) -> Result<OrderRow, StoreError> {
        self.client.execute(
            "INSERT INTO merchant_orders (merchant_id, out_trade_no, kind, amount_minor, \
             description, request_digest, state, payer_id, created_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (merchant_id, out_trade_no) DO NOTHING",
            &[
                &order.merchant_id,
                &order.out_trade_no,
                &order.kind,
                &to_i64(order.amount_minor)?,
                &order.description,
                &order.request_digest,
                &order.state,
                &order.payer_id,
                &order.created_ms,
                &order.expires_ms,
            ],
        )?;
        self.order_by_out_trade_no(order.merchant_id, &order.out_trade_no)?
            .ok_or_else(|| StoreError::Corrupt("an order vanished after its insert".into()))
    }

    fn order(&mut self, id: i64) -> Result<Option<OrderRow>, StoreError> {
        let row = self.client.query_opt(
            &format!("SELECT {ORDER_COLUMNS} FROM merchant_orders WHERE id = $1"),
            &[&id],
        )?;
        row.as_ref().map(order_postgres).transpose()
    }

    fn order_by_out_trade_no(
        &mut self,
        merchant_id: i64,
        out_trade_no: &str,
    ) -> Result<Option<OrderRow>, StoreError> {
        let row = self.client.query_opt(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM merchant_orders \
                 WHERE merchant_id = $1 AND out_trade_no = $2"
            ),
            &[&merchant_id, &out_trade_no],
        )?;
        row.as_ref().map(order_postgres).transpose()
    }

    fn order_update(&mut self, order: &OrderRow, from_state: &str) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "UPDATE merchant_orders SET state = $3, payer_id = $4, pin_confirmed = $5, \
             fee_minor = $6, commission_minor = $7, refunded_minor = $8, refund_count = $9, \
             paid_ms = $10, closed_ms = $11 WHERE id = $1 AND state = $2",
            &[
                &order.id,
                &from_state,
                &order.state,
                &order.payer_id,
                &i64::from(order.pin_confirmed),
                &to_i64(order.fee_minor)?,
                &to_i64(order.commission_minor)?,
                &to_i64(order.refunded_minor)?,
                &i64::from(order.refund_count),
                &order.paid_ms,
                &order.closed_ms,
            ],
        )?;
        Ok(changed > 0)
    }

    fn orders_created_between(
        &mut self,
        merchant_id: i64,
        from_ms: i64,
        to_ms: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<OrderRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let rows = self.client.query(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM merchant_orders WHERE merchant_id = $1 \
                 AND created_ms >= $2 AND created_ms < $3 AND id > $4 ORDER BY id LIMIT $5"
            ),
            &[&merchant_id, &from_ms, &to_ms, &after_id, &limit],
        )?;
        rows.iter().map(order_postgres).collect()
    }

    fn orders_paid_between(
        &mut self,
        merchant_id: i64,
        from_ms: i64,
        to_ms: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<OrderRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let rows = self.client.query(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM merchant_orders WHERE merchant_id = $1 \
                 AND paid_ms >= $2 AND paid_ms < $3 AND id > $4 ORDER BY id LIMIT $5"
            ),
            &[&merchant_id, &from_ms, &to_ms, &after_id, &limit],
        )?;
        rows.iter().map(order_postgres).collect()
    }

    fn orders_awaiting_payer(&mut self, payer_id: i64) -> Result<Vec<OrderRow>, StoreError> {
        let rows = self.client.query(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM merchant_orders WHERE payer_id = $1 \
                 AND state = 'USERPAYING' ORDER BY id LIMIT {PAGE_LEN_MAX}"
            ),
            &[&payer_id],
        )?;
        rows.iter().map(order_postgres).collect()
    }

    fn orders_without_pin_since(
        &mut self,
        payer_id: i64,
        since_ms: i64,
    ) -> Result<u32, StoreError> {
        let row = self.client.query_one(
            "SELECT count(*) FROM merchant_orders WHERE payer_id = $1 AND paid_ms >= $2 \
             AND kind = 'PAYCODE' AND pin_confirmed = 0",
            &[&payer_id, &since_ms],
        )?;
        pg_u32(&row, 0)
    }

    fn orders_unpaid_expiring(
        &mut self,
        from_ms: i64,
        to_ms: i64,
        after: (i64, i64),
        limit: usize,
    ) -> Result<Vec<OrderRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let rows = self.client.query(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM merchant_orders \
                 WHERE state IN ('NOTPAY', 'USERPAYING', 'CLOSED') \
                 AND expires_ms >= $1 AND expires_ms < $2 \
                 AND (expires_ms > $3 OR (expires_ms = $3 AND id > $4)) \
                 ORDER BY expires_ms, id LIMIT $5"
            ),
            &[&from_ms, &to_ms, &after.0, &after.1, &limit],
        )?;
        rows.iter().map(order_postgres).collect()
    }

    fn refund_finish(
        &mut self,
        id: i64,
        state: &str,
        finished_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "UPDATE merchant_refunds SET state = $2, finished_ms = $3 \
             WHERE id = $1 AND state = 'PROCESSING'",
            &[&id, &state, &finished_ms],
        )?;
        Ok(changed > 0)
    }

    fn refund_forget(&mut self, id: i64) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "DELETE FROM merchant_refunds WHERE id = $1 AND state = 'PROCESSING'",
            &[&id],
        )?;
        Ok(changed > 0)
    }

    fn refunds_processing(
        &mut self,
        created_ms_max: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<RefundRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let rows = self.client.query(
            &format!(
                "SELECT {REFUND_COLUMNS} FROM merchant_refunds WHERE state = 'PROCESSING' \
                 AND created_ms <= $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[&created_ms_max, &after_id, &limit],
        )?;
        rows.iter().map(refund_postgres).collect()
    }

    fn refund_insert(&mut self, refund: &RefundRow) -> Result<RefundRow, StoreError> {
        self.client.execute(
            "INSERT INTO merchant_refunds (order_id, merchant_id, out_refund_no, \
             amount_minor, fee_minor, commission_minor, reason, state, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (merchant_id, out_refund_no) DO NOTHING",
            &[
                &refund.order_id,
                &refund.merchant_id,
                &refund.out_refund_no,
                &to_i64(refund.amount_minor)?,
                &to_i64(refund.fee_minor)?,
                &to_i64(refund.commission_minor)?,
                &refund.reason,
                &refund.state,
                &refund.created_ms,
            ],
        )?;
        self.refund_by_out_refund_no(refund.merchant_id, &refund.out_refund_no)?
            .ok_or_else(|| StoreError::Corrupt("a refund vanished after its insert".into()))
    }

    fn refund_by_out_refund_no(
        &mut self,
        merchant_id: i64,
        out_refund_no: &str,
    ) -> Result<Option<RefundRow>, StoreError> {
        let row = self.client.query_opt(
            &format!(
                "SELECT {REFUND_COLUMNS} FROM merchant_refunds \
                 WHERE merchant_id = $1 AND out_refund_no = $2"
            ),
            &[&merchant_id, &out_refund_no],
        )?;
        row.as_ref().map(refund_postgres).transpose()
    }

    fn refunds_of_order(&mut self, order_id: i64) -> Result<Vec<RefundRow>, StoreError> {
        let rows = self.client.query(
            &format!(
                "SELECT {REFUND_COLUMNS} FROM merchant_refunds WHERE order_id = $1 ORDER BY id"
            ),
            &[&order_id],
        )?;
        rows.iter().map(refund_postgres).collect()
    }

    fn refunds_between(
        &mut self,
        merchant_id: i64,
        from_ms: i64,
        to_ms: i64,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<RefundRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let rows = self.client.query(
            &format!(
                "SELECT {REFUND_COLUMNS} FROM merchant_refunds WHERE merchant_id = $1 \
                 AND state = 'SUCCESS' AND finished_ms >= $2 AND finished_ms < $3 AND id > $4 \
                 ORDER BY id LIMIT $5"
            ),
            &[&merchant_id, &from_ms, &to_ms, &after_id, &limit],
        )?;
        rows.iter().map(refund_postgres).collect()
    }

    fn notification_insert(&mut self, n: &NotificationRow) -> Result<(), StoreError> {
        self.client.execute(
            "INSERT INTO merchant_notifications (event_id, merchant_id, event_type, \
             resource, created_ms, attempts, next_ms) VALUES ($1, $2, $3, $4, $5, 0, $6) \
             ON CONFLICT (event_id) DO NOTHING",
            &[
                &n.event_id,
                &n.merchant_id,
                &n.event_type,
                &n.resource,
                &n.created_ms,
                &n.next_ms,
            ],
        )?;
        Ok(())
    }

    fn notifications_due(
        &mut self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let rows = self.client.query(
            &format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM merchant_notifications \
                 WHERE next_ms IS NOT NULL AND next_ms <= $1 ORDER BY next_ms LIMIT $2"
            ),
            &[&now_ms, &limit],
        )?;
        rows.iter().map(notification_postgres).collect()
    }

    fn notification_attempted(
        &mut self,
        attempt: &AttemptRow,
        next_ms: Option<i64>,
        delivered_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        // One statement: atomic inside the writer's batch and outside one.
        self.client.execute(
            "WITH logged AS (INSERT INTO merchant_notification_attempts (notification_id, \
             attempt, at_ms, outcome) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING) \
             UPDATE merchant_notifications SET attempts = greatest(attempts, $2), \
             next_ms = $5, delivered_ms = coalesce(delivered_ms, $6) WHERE id = $1",
            &[
                &attempt.notification_id,
                &i64::from(attempt.attempt),
                &attempt.at_ms,
                &attempt.outcome,
                &next_ms,
                &delivered_ms,
            ],
        )?;
        Ok(())
    }

    fn notification(&mut self, id: i64) -> Result<Option<NotificationRow>, StoreError> {
        let row = self.client.query_opt(
            &format!("SELECT {NOTIFICATION_COLUMNS} FROM merchant_notifications WHERE id = $1"),
            &[&id],
        )?;
        row.as_ref().map(notification_postgres).transpose()
    }

    fn notifications_of_merchant(
        &mut self,
        merchant_id: i64,
        before_id: i64,
        limit: usize,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let rows = self.client.query(
            &format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM merchant_notifications \
                 WHERE merchant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ),
            &[&merchant_id, &before_id, &limit],
        )?;
        rows.iter().map(notification_postgres).collect()
    }

    fn notification_attempts(
        &mut self,
        notification_id: i64,
    ) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = self.client.query(
            &format!(
                "SELECT {ATTEMPTS_COLUMNS} FROM merchant_notification_attempts \
                 WHERE notification_id = $1 ORDER BY attempt"
            ),
            &[&notification_id],
        )?;
        rows.iter().map(attempt_postgres).collect()
    }

    fn notification_resend(
        &mut self,
        merchant_id: i64,
        id: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "UPDATE merchant_notifications SET next_ms = $3 WHERE id = $1 AND merchant_id = $2",
            &[&id, &merchant_id, &now_ms],
        )?;
        Ok(changed > 0)
    }

    fn merchant_settlement_card_set(
        &mut self,
        merchant_id: i64,
        card: &SettlementCard,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE merchants SET settlement_card_token = $2, settlement_card_bank = $3, \
             settlement_card_last_four = $4 WHERE id = $1",
            &[&merchant_id, &card.token, &card.bank, &card.last_four],
        )?;
        Ok(())
    }

    fn merchant_settlement_card(
        &mut self,
        merchant_id: i64,
    ) -> Result<Option<SettlementCard>, StoreError> {
        let row = self.client.query_opt(
            "SELECT settlement_card_token, settlement_card_bank, settlement_card_last_four \
             FROM merchants WHERE id = $1",
            &[&merchant_id],
        )?;
        Ok(row.and_then(|r| {
            Some(SettlementCard {
                token: r.get::<_, Option<String>>(0)?,
                bank: r.get::<_, Option<String>>(1)?,
                last_four: r.get::<_, Option<String>>(2)?,
            })
        }))
    }

    fn merchants_settling(&mut self, after_id: i64, limit: usize) -> Result<Vec<i64>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let rows = self.client.query(
            "SELECT id FROM merchants WHERE settlement_card_token IS NOT NULL AND id > $1 \
             ORDER BY id LIMIT $2",
            &[&after_id, &limit],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn settlement_insert(&mut self, row: &SettlementRow) -> Result<SettlementRow, StoreError> {
        self.client.execute(
            "INSERT INTO merchant_settlements (merchant_id, cutoff_ms, amount_minor, \
             card_token, state, created_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (merchant_id, cutoff_ms) DO NOTHING",
            &[
                &row.merchant_id,
                &row.cutoff_ms,
                &to_i64(row.amount_minor)?,
                &row.card_token,
                &row.state,
                &row.created_ms,
            ],
        )?;
        let stored = self.client.query_one(
            &format!(
                "SELECT {SETTLEMENT_COLUMNS} FROM merchant_settlements \
                 WHERE merchant_id = $1 AND cutoff_ms = $2"
            ),
            &[&row.merchant_id, &row.cutoff_ms],
        )?;
        settlement_postgres(&stored)
    }

    fn settlement_finish(
        &mut self,
        merchant_id: i64,
        cutoff_ms: i64,
        state: &str,
        finished_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "UPDATE merchant_settlements SET state = $3, finished_ms = $4 \
             WHERE merchant_id = $1 AND cutoff_ms = $2 AND state = 'PROCESSING'",
            &[&merchant_id, &cutoff_ms, &state, &finished_ms],
        )?;
        Ok(changed > 0)
    }

    fn settlements_of_merchant(
        &mut self,
        merchant_id: i64,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<SettlementRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let rows = self.client.query(
            &format!(
                "SELECT {SETTLEMENT_COLUMNS} FROM merchant_settlements WHERE merchant_id = $1 \
                 AND cutoff_ms < $2 ORDER BY cutoff_ms DESC LIMIT $3"
            ),
            &[&merchant_id, &before_ms, &limit],
        )?;
        rows.iter().map(settlement_postgres).collect()
    }

    fn settlements_processing(&mut self, limit: usize) -> Result<Vec<SettlementRow>, StoreError> {
        let limit = limit.min(PAGE_LEN_MAX) as i64;
        let rows = self.client.query(
            &format!(
                "SELECT {SETTLEMENT_COLUMNS} FROM merchant_settlements WHERE state = 'PROCESSING' \
                 ORDER BY created_ms LIMIT $1"
            ),
            &[&limit],
        )?;
        rows.iter().map(settlement_postgres).collect()
    }

    fn merchant_notify_key(&mut self, merchant_id: i64) -> Result<Option<String>, StoreError> {
        let row = self.client.query_opt(
            "SELECT notify_key FROM merchants WHERE id = $1",
            &[&merchant_id],
        )?;
        Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
    }

    fn merchant_notify_key_set(
        &mut self,
        merchant_id: i64,
        key_hex: &str,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE merchants SET notify_key = $2 WHERE id = $1",
            &[&merchant_id, &key_hex],
        )?;
        Ok(())
    }
}
