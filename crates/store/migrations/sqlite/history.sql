-- The derived history index, in a file of its own beside the ledger. It is rebuilt from the
-- ledger's transfers whenever it is missing, behind or of another version; losing it loses
-- nothing.
--
-- It is a small log-structured merge tree: each step of upkeep writes the entries of the next
-- chunk of the log as one new sorted run (appended at the right edge of the B-trees, since
-- `run` leads every key), and runs of one level are merged into one run of the next. Runs
-- cover disjoint, contiguous ranges of time.
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY,
    level INTEGER NOT NULL,
    first_timestamp_ns INTEGER NOT NULL,
    last_timestamp_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS account_entries (
    run INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    timestamp_ns INTEGER NOT NULL,
    PRIMARY KEY (run, account_id, timestamp_ns)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reference_entries (
    run INTEGER NOT NULL,
    reference TEXT NOT NULL,
    timestamp_ns INTEGER NOT NULL,
    PRIMARY KEY (run, reference, timestamp_ns)
) WITHOUT ROWID;
-- Runs whose entries are no longer read (merged away, or a merge cut off by a restart) and
-- are being deleted a slice at a time.
CREATE TABLE IF NOT EXISTS garbage (
    run INTEGER PRIMARY KEY
);
-- Every transfer with a timestamp up to this one is in the runs above.
CREATE TABLE IF NOT EXISTS indexed_through (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    timestamp_ns INTEGER NOT NULL
);
INSERT OR IGNORE INTO indexed_through (singleton, timestamp_ns) VALUES (1, 0);
