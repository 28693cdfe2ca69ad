-- Settlement (SPEC §5): each merchant's bank card for its payouts (the bank's token, never the
-- number), and one settlement per merchant and day: what it paid out, and how that went.
ALTER TABLE merchants ADD COLUMN settlement_card_token TEXT;
ALTER TABLE merchants ADD COLUMN settlement_card_bank TEXT;
ALTER TABLE merchants ADD COLUMN settlement_card_last_four TEXT;
CREATE TABLE merchant_settlements (
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    -- The cut-off: 00:00 China Standard Time of the day the settlement pays for the days
    -- before (T+1).
    cutoff_ms BIGINT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),
    card_token TEXT NOT NULL,
    -- `PROCESSING` (the bank's answer is awaited), `SUCCESS`, `FAILED`.
    state TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    PRIMARY KEY (merchant_id, cutoff_ms)
);
CREATE INDEX merchant_settlements_processing ON merchant_settlements (created_ms)
    WHERE state = 'PROCESSING';
