-- Delayed arrival (2 h or 24 h, chosen by the payer): until arrives_ms the payer can cancel and
-- the payee cannot accept. Real-time transfers arrive when they are sent.
ALTER TABLE p2p_transfers ADD COLUMN arrives_ms INTEGER;
UPDATE p2p_transfers SET arrives_ms = created_ms WHERE arrives_ms IS NULL;
