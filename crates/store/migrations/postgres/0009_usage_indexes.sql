-- Every balance payment sums what its payer sent this year and today (the class limits): an
-- index that holds every column of that sum answers it without visiting the table, and the
-- red packets a person sent are found without scanning everyone's.
DROP INDEX p2p_by_payer;
CREATE INDEX p2p_by_payer ON p2p_transfers (payer_id, created_ms, state, expires_ms, amount_minor);
CREATE INDEX red_packets_by_sender ON red_packets (sender_id, created_ms);
