-- Payment PINs: a keyed hash with its per-user salt, and the lockout state, which must survive
-- restarts.
CREATE TABLE pins (
    user_id INTEGER PRIMARY KEY REFERENCES users (id),
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    failures INTEGER NOT NULL,
    locked_until_ms INTEGER
);
