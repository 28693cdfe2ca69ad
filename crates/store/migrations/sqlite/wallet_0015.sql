-- When a refund finished: bills and `success_time` count a refund on the day it succeeded,
-- which is later than its request when recovery finished it after a crash. Earlier rows
-- finished when they were requested (that was the rule), so that is their time.
ALTER TABLE merchant_refunds ADD COLUMN finished_ms INTEGER;
UPDATE merchant_refunds SET finished_ms = created_ms WHERE state <> 'PROCESSING';
DROP INDEX merchant_refunds_by_merchant;
CREATE INDEX merchant_refunds_finished ON merchant_refunds (merchant_id, finished_ms);
