-- Withdrawals whose bank outcome is not settled yet. A row is written before the bank is
-- asked and closed when the ledger has settled it, so that a withdrawal nobody retries (the
-- bank never answered, or the ledger failed after the bank paid) is found and finished by the
-- reconciler instead of holding the person's money forever.
CREATE TABLE withdrawals (
    key TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    withdrawal_key TEXT NOT NULL,
    card_token TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    fee_minor BIGINT NOT NULL,
    free_minor BIGINT NOT NULL,
    started_ms BIGINT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX withdrawals_open ON withdrawals (state, started_ms);
