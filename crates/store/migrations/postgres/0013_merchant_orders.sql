-- Merchant orders, their refunds, and the outbox of notifications to merchants (SPEC §5).
--
-- An order is keyed by the merchant's `out_trade_no` (the idempotency key); `request_digest`
-- is a hash of what the merchant asked, so that a retry with another payload is told apart.
-- Amounts are fen. `refunded_minor` and `refund_count` sum the order's successful refunds, so
-- that the 50-refund and paid-amount caps are one row's check.
ALTER TABLE merchants ADD COLUMN notify_key TEXT;
CREATE TABLE merchant_orders (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    out_trade_no TEXT NOT NULL,
    -- `NATIVE`, `PAYCODE`, `INWALLET` or `STATIC`.
    kind TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    description TEXT NOT NULL,
    request_digest TEXT NOT NULL,
    -- `NOTPAY`, `USERPAYING`, `SUCCESS`, `REFUND`, `CLOSED`, `REVOKED`, `PAYERROR`.
    state TEXT NOT NULL,
    payer_id BIGINT REFERENCES users (id),
    -- Whether the payer confirmed with the PIN (pay-code orders may go without).
    pin_confirmed BIGINT NOT NULL DEFAULT 0,
    fee_minor BIGINT NOT NULL DEFAULT 0,
    commission_minor BIGINT NOT NULL DEFAULT 0,
    refunded_minor BIGINT NOT NULL DEFAULT 0,
    refund_count BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    paid_ms BIGINT,
    closed_ms BIGINT,
    UNIQUE (merchant_id, out_trade_no),
    CHECK (refunded_minor <= amount_minor)
);
CREATE INDEX merchant_orders_by_payer ON merchant_orders (payer_id, paid_ms)
    WHERE payer_id IS NOT NULL;
CREATE INDEX merchant_orders_by_merchant ON merchant_orders (merchant_id, created_ms);
CREATE TABLE merchant_refunds (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES merchant_orders (id),
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    out_refund_no TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    -- The part of the order's fee and commission this refund gave back.
    fee_minor BIGINT NOT NULL,
    commission_minor BIGINT NOT NULL,
    reason TEXT,
    -- `PROCESSING`, `SUCCESS`, `CLOSED`, `ABNORMAL`.
    state TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (merchant_id, out_refund_no)
);
CREATE INDEX merchant_refunds_by_order ON merchant_refunds (order_id);
CREATE INDEX merchant_refunds_by_merchant ON merchant_refunds (merchant_id, created_ms);
-- Events to deliver to a merchant's notify_url, at least once. `next_ms` is when the next
-- attempt is due (NULL once delivered or given up); each attempt is logged.
CREATE TABLE merchant_notifications (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    event_type TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_ms BIGINT,
    delivered_ms BIGINT
);
CREATE INDEX merchant_notifications_due ON merchant_notifications (next_ms)
    WHERE next_ms IS NOT NULL;
CREATE INDEX merchant_notifications_by_merchant ON merchant_notifications (merchant_id, id);
CREATE TABLE merchant_notification_attempts (
    notification_id BIGINT NOT NULL REFERENCES merchant_notifications (id),
    attempt BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    -- `200`, `500`, `timeout`, `refused`…: what the merchant's endpoint answered.
    outcome TEXT NOT NULL,
    PRIMARY KEY (notification_id, attempt)
);
