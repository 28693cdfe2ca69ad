-- Recovery of payments and refunds that a crash cut in two (the ledger's chain posted, the
-- order's row not yet written): the orders that may hold an unrecorded payment, by expiry,
-- and the refunds recorded before their chain and not yet finished.
CREATE INDEX merchant_orders_unpaid ON merchant_orders (expires_ms, id)
    WHERE state IN ('NOTPAY', 'USERPAYING', 'CLOSED');
CREATE INDEX merchant_refunds_processing ON merchant_refunds (id)
    WHERE state = 'PROCESSING';
