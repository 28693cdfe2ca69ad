-- The lifetime free withdrawal quota is per person (per ID number), shared by all of that
-- person's accounts: each withdrawal records how much of it it used, under its key, so that a
-- retry reuses its own share and a failed withdrawal gives it back.
CREATE TABLE quota_uses (
    key TEXT PRIMARY KEY,
    id_lookup BYTEA NOT NULL,
    free_minor BIGINT NOT NULL,
    released BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX quota_uses_by_person ON quota_uses (id_lookup);
