-- Payment PINs (see the SQLite twin).
CREATE TABLE pins (
    user_id BIGINT PRIMARY KEY REFERENCES users (id),
    salt BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    failures INTEGER NOT NULL,
    locked_until_ms BIGINT
);
