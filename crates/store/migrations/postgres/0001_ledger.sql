-- Accounts: what they are. Their balances are read from their latest transfer.
CREATE TABLE accounts (
    id BIGINT PRIMARY KEY,
    currency TEXT NOT NULL,
    kind SMALLINT NOT NULL,
    rule SMALLINT NOT NULL,
    overdraft_limit_minor BIGINT NOT NULL,
    closed BOOLEAN NOT NULL DEFAULT FALSE
);

-- Transfers: append-only, in the engine's strictly increasing timestamp order. Each row
-- carries both accounts' balances right after it.
CREATE TABLE transfers (
    timestamp_ns BIGINT PRIMARY KEY,
    id BYTEA NOT NULL UNIQUE,
    kind SMALLINT NOT NULL,
    debit_account_id BIGINT NOT NULL,
    credit_account_id BIGINT NOT NULL,
    amount_minor BIGINT NOT NULL,
    pending_id BYTEA,
    timeout_ms BIGINT NOT NULL,
    code INTEGER NOT NULL,
    reference TEXT,
    flags SMALLINT NOT NULL,
    dr_debits_pending BIGINT NOT NULL,
    dr_debits_posted BIGINT NOT NULL,
    dr_credits_pending BIGINT NOT NULL,
    dr_credits_posted BIGINT NOT NULL,
    cr_debits_pending BIGINT NOT NULL,
    cr_debits_posted BIGINT NOT NULL,
    cr_credits_pending BIGINT NOT NULL,
    cr_credits_posted BIGINT NOT NULL
);
CREATE INDEX transfers_debit ON transfers (debit_account_id, timestamp_ns);
CREATE INDEX transfers_credit ON transfers (credit_account_id, timestamp_ns);
CREATE INDEX transfers_reference ON transfers (reference) WHERE reference IS NOT NULL;
CREATE INDEX transfers_pending_id ON transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX transfers_pending ON transfers (timestamp_ns) WHERE kind = 2;

-- Rejections that depend on the ledger's state, kept so that a retry gets the first answer.
CREATE TABLE rejections (
    id BYTEA PRIMARY KEY,
    kind SMALLINT NOT NULL,
    debit_account_id BIGINT,
    credit_account_id BIGINT,
    amount_minor BIGINT,
    pending_id BYTEA,
    timeout_ms BIGINT NOT NULL,
    code INTEGER NOT NULL,
    reference TEXT,
    flags SMALLINT NOT NULL,
    result SMALLINT NOT NULL,
    timestamp_ns BIGINT NOT NULL
);
