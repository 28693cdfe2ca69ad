-- Real-name verification and bound cards. Neither the ID number nor the card number is kept:
-- the ID as a keyed lookup hash (one person, several accounts: the withdrawal quota is shared)
-- and a masked form; the card as the bank's token, its bank and last four digits. A card may
-- be bound by several accounts of its holder, once each.
CREATE TABLE identities (
    user_id INTEGER PRIMARY KEY REFERENCES users (id),
    class TEXT NOT NULL,
    name_masked TEXT NOT NULL,
    id_lookup BLOB NOT NULL,
    id_masked TEXT NOT NULL,
    verified_ms INTEGER NOT NULL
);
CREATE INDEX identities_by_id_lookup ON identities (id_lookup);
CREATE TABLE cards (
    token TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id),
    bank TEXT NOT NULL,
    last_four TEXT NOT NULL,
    bound_ms INTEGER NOT NULL,
    unbound_ms INTEGER,
    PRIMARY KEY (user_id, token)
);
