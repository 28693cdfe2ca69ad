-- The wallet's own file beside the ledger: people and their sessions. Kept apart from the
-- ledger file so that a sign-up never waits for (or delays) the ledger's single writer.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    -- HMAC of the phone number under the server key: lookups without storing the number.
    phone_lookup BLOB NOT NULL UNIQUE,
    phone_masked TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE sessions (
    -- SHA-256 of the bearer token: a stolen table opens no session.
    token_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    expires_ms INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
