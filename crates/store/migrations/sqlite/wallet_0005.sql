-- Transfers between people (转账). The ledger holds the money (a pending transfer with a 24 h
-- timeout) and is the truth about it; this row says who sent what to whom and what the payee
-- did, for listings and for the payer's balance-payment limits.
CREATE TABLE p2p_transfers (
    transfer_id TEXT PRIMARY KEY,
    payer_id INTEGER NOT NULL REFERENCES users (id),
    payee_id INTEGER NOT NULL REFERENCES users (id),
    amount_minor INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    -- held, accepted or returned; a held one past expires_ms has returned by itself.
    state TEXT NOT NULL
);
CREATE INDEX p2p_by_payer ON p2p_transfers (payer_id, created_ms);
CREATE INDEX p2p_by_payee ON p2p_transfers (payee_id, created_ms);
