-- A person's listing of transfers between people finds them through their wallet's statement
-- (the ledger), so the rows need no index by payee, which cost every payment an index insert
-- in the ledger's commit (where these rows are written now, with their transfers).
DROP INDEX IF EXISTS p2p_by_payee;
