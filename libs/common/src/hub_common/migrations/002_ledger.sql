-- Ledger: the operator budget shared by every replica (and the gateway), and refund tombstones.

-- One row per budget: the lock every grant takes (SELECT ... FOR UPDATE), and the shared Retry-After pause.
CREATE TABLE operator_budget (
    name         text PRIMARY KEY,
    paused_until timestamptz
);
INSERT INTO operator_budget (name) VALUES ('operator');

-- Sliding-window log: one row per granted operator call. At most `rate` rows fall in any window (see
-- hub_common.operator.budget for the proof); rows older than the window are deleted while granting.
CREATE TABLE operator_budget_grants (
    id         bigserial PRIMARY KEY,
    name       text        NOT NULL REFERENCES operator_budget (name),
    priority   smallint    NOT NULL,
    granted_at timestamptz NOT NULL
);
CREATE INDEX operator_budget_grants_name_at_idx ON operator_budget_grants (name, granted_at);

-- Each waiting process's most urgent waiting priority: a BET waits while a WIN/REFUND waits anywhere.
-- Rows not refreshed for a few seconds belong to a dead process and are ignored.
CREATE TABLE operator_budget_waiters (
    name      text        NOT NULL REFERENCES operator_budget (name),
    waiter_id uuid        NOT NULL,
    priority  smallint    NOT NULL,
    seen_at   timestamptz NOT NULL,
    PRIMARY KEY (name, waiter_id)
);

-- A REFUND of a bet the Hub never saw: a later BET with that refId is rejected BET_ALREADY_REFUNDED.
CREATE TABLE refund_tombstones (
    ref_id                text PRIMARY KEY,
    refund_transaction_id uuid        NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now()
);

-- A BET cancelled after its deadline: the compensating REFUND is retried until the operator confirms it.
CREATE TABLE ledger_compensations (
    transaction_id          uuid PRIMARY KEY REFERENCES transactions (id) ON DELETE CASCADE,
    operator_transaction_id text        NOT NULL UNIQUE,
    request                 jsonb       NOT NULL,
    status                  text        NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED')),
    attempts                integer     NOT NULL DEFAULT 0,
    last_error              text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_compensations_pending_idx ON ledger_compensations (created_at) WHERE status = 'PENDING';
