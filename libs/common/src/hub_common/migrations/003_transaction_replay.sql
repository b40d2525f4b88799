-- When an SRE replayed a transaction (`hubctl tx replay`): the ledger's deadlines count from here, not from
-- created_at, so a replayed WIN is retried for a full deadline again.
ALTER TABLE transactions ADD COLUMN replayed_at timestamptz;
