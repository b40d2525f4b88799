-- Reconciler: the operator feed kept in PostgreSQL, the feed's cursor, the daily runs and the continuous join's
-- state. Every table here is written and purged by the reconciler only.

-- The operator's report feed, one row per operator transactionId (idempotent upsert by the poller and the join).
-- `seen_at` is when the poller read the record: a later read of the same record wins, an older one never does.
CREATE TABLE operator_transactions (
    transaction_id          text PRIMARY KEY,
    operator_transaction_id text,
    player_id               text,
    type                    text,
    amount_cents            bigint      NOT NULL,
    currency                text        NOT NULL,
    status                  text        NOT NULL,
    original_transaction_id text,
    -- The operator's createdAt (the time its feed filters on); the read time when the operator sends none.
    created_at              timestamptz NOT NULL,
    seen_at                 timestamptz NOT NULL,
    record                  jsonb       NOT NULL
);
CREATE INDEX operator_transactions_created_idx ON operator_transactions (created_at);
CREATE INDEX operator_transactions_seen_idx ON operator_transactions (seen_at);

-- Where the feed poller stands: the window [window_from, window_to) it is paging and the operator's cursor in
-- it; `covered_to` is the end of the last window read to its last page (the report waits for it).
CREATE TABLE operator_feed_state (
    name        text PRIMARY KEY,
    window_from timestamptz NOT NULL,
    window_to   timestamptz NOT NULL,
    cursor      text,
    covered_to  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Daily date-range runs: the last successful day is the next run's starting point, whatever restarts happen.
CREATE TABLE reconciliation_runs (
    day         date PRIMARY KEY,
    status      text        NOT NULL CHECK (status IN ('OK', 'FAILED')),
    attempts    integer     NOT NULL DEFAULT 1,
    report      text,
    summary     jsonb,
    error       text,
    finished_at timestamptz NOT NULL DEFAULT now()
);

-- The continuous join: one row per operator id the streams touched. `open` maps each mismatch kind currently
-- reported for it to the eventId that opened it; `events` numbers its events (stable eventIds); `outbox` holds
-- events decided but not yet confirmed on Kafka (sent again after a crash, with the same eventIds).
CREATE TABLE reconciliation_join (
    operator_id   text PRIMARY KEY,
    ref_id        text,
    first_seen_at timestamptz NOT NULL,
    due_at        timestamptz NOT NULL,
    pending       boolean     NOT NULL DEFAULT true,
    open          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    events        integer     NOT NULL DEFAULT 0,
    outbox        jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconciliation_join_due_idx ON reconciliation_join (due_at) WHERE pending;
CREATE INDEX reconciliation_join_outbox_idx ON reconciliation_join (operator_id) WHERE outbox IS NOT NULL;
CREATE INDEX reconciliation_join_updated_idx ON reconciliation_join (updated_at);
