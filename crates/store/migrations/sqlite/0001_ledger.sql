-- Accounts: what they are. Their balances are read from their latest transfer.
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    currency TEXT NOT NULL,
    kind INTEGER NOT NULL,
    rule INTEGER NOT NULL,
    overdraft_limit_minor INTEGER NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0
);

-- Transfers: append-only. The timestamp is the engine's strictly increasing order and the
-- rowid, so inserts append. Each row carries both accounts' balances right after it.
CREATE TABLE transfers (
    timestamp_ns INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    debit_account_id INTEGER NOT NULL,
    credit_account_id INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    pending_id BLOB,
    timeout_ms INTEGER NOT NULL,
    code INTEGER NOT NULL,
    reference TEXT,
    flags INTEGER NOT NULL,
    dr_debits_pending INTEGER NOT NULL,
    dr_debits_posted INTEGER NOT NULL,
    dr_credits_pending INTEGER NOT NULL,
    dr_credits_posted INTEGER NOT NULL,
    cr_debits_pending INTEGER NOT NULL,
    cr_debits_posted INTEGER NOT NULL,
    cr_credits_pending INTEGER NOT NULL,
    cr_credits_posted INTEGER NOT NULL
);
-- No per-account or per-reference index here: those take random inserts, which in SQLite
-- dirty a page each and cost a full WAL frame per page on every commit (4x slower measured).
-- They live in the derived history file instead (see history.sql), written off the commit path.
CREATE INDEX transfers_pending_id ON transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX transfers_pending ON transfers (kind) WHERE kind = 2;

-- Rejections that depend on the ledger's state, kept so that a retry gets the first answer.
CREATE TABLE rejections (
    id BLOB PRIMARY KEY,
    kind INTEGER NOT NULL,
    debit_account_id INTEGER,
    credit_account_id INTEGER,
    amount_minor INTEGER,
    pending_id BLOB,
    timeout_ms INTEGER NOT NULL,
    code INTEGER NOT NULL,
    reference TEXT,
    flags INTEGER NOT NULL,
    result INTEGER NOT NULL,
    timestamp_ns INTEGER NOT NULL
) WITHOUT ROWID;
