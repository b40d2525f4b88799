-- Overload: a BET's useful life, who spends the operator budget, and the open work the gateway forecasts from.

-- The latest moment a BET may be sent to the operator (admission time + the gateway's useful life). A BET still
-- unsent then is REJECTED `BET_EXPIRED` instead of being sent late. NULL: no limit (WIN, REFUND, older rows).
ALTER TABLE transactions ADD COLUMN send_by timestamptz;

-- Which process spent each grant: `ledger` (transactions), `balance:<clientId>` (the gateway's balance reads),
-- `reconciler` (feed pages), `hubctl`. The gateway's forecast tells the ledger's share from the others', and each
-- client's balance reads are held to their share.
ALTER TABLE operator_budget_grants ADD COLUMN caller text NOT NULL DEFAULT '';

-- The open work ahead of a new transaction, counted by client and type every refresh of the gateway's forecast.
CREATE INDEX transactions_open_idx ON transactions (client_id, type) WHERE status IN ('PENDING', 'PROCESSING');
