-- Client isolation: refIds are unique per RGS client, not across clients, and the operator id is stored.
--
-- `operator_id` is the transactionId the Hub sends to the operator, derived once at admission from
-- (client_id, ref_id) by hub_common.operator.ids.operator_id and read from here ever after (ledger, hubctl,
-- the reconciler's join). Rows admitted before this migration were sent under their refId, which stays their
-- operator id: a retry, a resolve or a reconciliation of such a row keeps using the id the operator knows.
ALTER TABLE transactions ADD COLUMN operator_id text;
UPDATE transactions SET operator_id = ref_id;
ALTER TABLE transactions ALTER COLUMN operator_id SET NOT NULL;
CREATE UNIQUE INDEX transactions_operator_id_key ON transactions (operator_id);
-- A writer from before this migration (an old pod during a rollout or after a rollback) inserts no operator id: it
-- sends the transaction under its refId, so that is its operator id. Current code always sets it (WHEN: the
-- function is not even called then).
CREATE FUNCTION transactions_legacy_operator_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.operator_id := NEW.ref_id;
    RETURN NEW;
END $$;
CREATE TRIGGER transactions_legacy_operator_id BEFORE INSERT ON transactions
    FOR EACH ROW WHEN (NEW.operator_id IS NULL) EXECUTE FUNCTION transactions_legacy_operator_id();

-- One client's refId no longer blocks another's. refId first: the runbook's and hubctl's lookups by refId alone
-- use the same index.
ALTER TABLE transactions DROP CONSTRAINT transactions_ref_id_key;
ALTER TABLE transactions ADD CONSTRAINT transactions_ref_client_key UNIQUE (ref_id, client_id);
-- The rules look a bet up by (originalRefId, client).
DROP INDEX transactions_original_ref_idx;
CREATE INDEX transactions_original_ref_client_idx ON transactions (original_ref_id, client_id)
    WHERE original_ref_id IS NOT NULL;

-- A tombstone blocks a later BET of the same client only.
ALTER TABLE refund_tombstones ADD COLUMN client_id text;
UPDATE refund_tombstones r SET client_id = t.client_id FROM transactions t WHERE t.id = r.refund_transaction_id;
-- Every tombstone has its refund row (transactions are never deleted); if one had none, SET NOT NULL stops the
-- migration rather than guess its client.
ALTER TABLE refund_tombstones ALTER COLUMN client_id SET NOT NULL;
ALTER TABLE refund_tombstones DROP CONSTRAINT refund_tombstones_pkey;
ALTER TABLE refund_tombstones ADD PRIMARY KEY (client_id, ref_id);
