-- One-time pay codes (付款码) the wallet shows and a merchant scans. Only a keyed hash of
-- the code is kept: a leaked table gives no usable code. A code is spent on first use, even
-- when that use fails; showing a new code spends the person's older ones.
CREATE TABLE pay_codes (
    lookup BYTEA PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    issued_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    spent_ms BIGINT
);
CREATE INDEX pay_codes_unspent ON pay_codes (user_id) WHERE spent_ms IS NULL;
-- Devices that derive pay codes themselves, offline, from a secret and the time. The number
-- is pseudonymous (random, carries nothing about the person); the secret is derived from the
-- server's key and the number, so it is not stored.
CREATE TABLE pay_devices (
    device_no BIGINT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    created_ms BIGINT NOT NULL
);
-- A device's code for one time step, once used, is spent.
CREATE TABLE pay_device_steps (
    device_no BIGINT NOT NULL,
    step BIGINT NOT NULL,
    PRIMARY KEY (device_no, step)
);
-- Payments to a person's static receive-money code: they count against the payer's daily
-- static-code cap (PBoC grade D), apart from other transfers.
CREATE TABLE static_code_payments (
    transfer_id TEXT PRIMARY KEY,
    payer_id BIGINT NOT NULL REFERENCES users (id),
    amount_minor BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX static_code_payments_by_payer ON static_code_payments (payer_id, created_ms, amount_minor);
