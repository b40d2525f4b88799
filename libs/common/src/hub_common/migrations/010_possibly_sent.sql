-- After PostgreSQL was restored from a backup, `hubctl recovery apply` marks every transaction that was open
-- (admitted, no outcome) in the Hub's journal or in the restored database: the operator may have applied it after
-- the backup, although the restored row says it was never sent (attempts 0, or no row at all). While this is set,
-- the ledger asks the operator first (GET by the operator id) and decides nothing that assumes the transaction was
-- never sent (a BET's useful life, the rules that finish without the operator); it counts the deadline from here.
-- Cleared when the operator answers that it has no record; a transaction the operator's record finished keeps it
-- (recovery doubted it). NULL: no such doubt (every row in normal operation).
ALTER TABLE transactions ADD COLUMN possibly_sent_at timestamptz;
