-- Transfers between people (转账), in the ledger's file: the ledger's writer commits each row
-- with the transfers it describes (one commit per payment, not one here and one in the
-- wallet's file). The ledger holds the money and is the truth about it; this row says who
-- sent what to whom and what the payee did, for listings and for the payer's limits. The
-- wallet reads it through its connections, which attach this file as `ledger`. Rows written
-- before by the wallet in its own file are moved here when the wallet opens.
--
-- Keyed by its transfer's place in the log (`transfers.timestamp_ns`), so that its rows append
-- like the log's, and found by transfer id through the log's own id index: an index of its own
-- on the (random) transfer id would put one more random page per payment into every commit
-- (measured: a quarter of the bytes the ledger wrote per payment, and 10-33 % of the rate).
CREATE TABLE p2p_transfers (
    timestamp_ns INTEGER PRIMARY KEY,
    -- The ledger's transfer id in decimal, as the API shows it.
    transfer_id TEXT NOT NULL,
    payer_id INTEGER NOT NULL,
    payee_id INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    -- held, accepted, returned or cancelled; a held one past expires_ms has returned by itself.
    state TEXT NOT NULL,
    -- Until then the payer may cancel and the payee cannot accept (delayed arrival).
    arrives_ms INTEGER NOT NULL
);
-- Every balance payment sums what its payer sent this year and today (the class limits): an
-- index that holds every column of that sum answers it without visiting the table. There is
-- no index by payee: a person's listing finds their transfers through their wallet's
-- statement (the ledger's history), and such an index cost a random page per payment.
CREATE INDEX p2p_by_payer ON p2p_transfers (payer_id, created_ms, state, expires_ms, amount_minor);
