-- Red packets (红包). The split is drawn when the packet is sent and stored share by share;
-- grabbing claims the lowest unclaimed share. Each share is a pending ledger transfer from the
-- sender with a 24 h timeout, so unclaimed shares go back by themselves.
CREATE TABLE red_packets (
    packet_id TEXT PRIMARY KEY,
    sender_id BIGINT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    shares INTEGER NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE red_packet_shares (
    packet_id TEXT NOT NULL REFERENCES red_packets (packet_id),
    share_index INTEGER NOT NULL,
    amount_minor BIGINT NOT NULL,
    grabber_id BIGINT REFERENCES users (id),
    grabbed_ms BIGINT,
    PRIMARY KEY (packet_id, share_index)
);
-- One share per person per packet, whatever the application does.
CREATE UNIQUE INDEX red_packet_one_per_person ON red_packet_shares (packet_id, grabber_id);
