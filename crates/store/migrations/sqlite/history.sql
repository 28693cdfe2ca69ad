-- The derived history index, in a file of its own beside the ledger. It is rebuilt from the
-- ledger's transfers whenever it is missing or behind; losing it loses nothing.
CREATE TABLE IF NOT EXISTS account_entries (
    account_id INTEGER NOT NULL,
    timestamp_ns INTEGER NOT NULL,
    PRIMARY KEY (account_id, timestamp_ns)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reference_entries (
    reference TEXT NOT NULL,
    timestamp_ns INTEGER NOT NULL,
    PRIMARY KEY (reference, timestamp_ns)
) WITHOUT ROWID;
-- Every transfer with a timestamp up to this one is in the entries above.
CREATE TABLE IF NOT EXISTS indexed_through (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    timestamp_ns INTEGER NOT NULL
);
INSERT OR IGNORE INTO indexed_through (singleton, timestamp_ns) VALUES (1, 0);
