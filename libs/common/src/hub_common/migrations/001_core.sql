-- Core tables. Names and columns follow the runbook so its SQL runs unchanged.

CREATE TABLE transactions (
    id                      uuid PRIMARY KEY,
    client_id               text        NOT NULL,
    -- Globally unique: it is the transactionId the operator sees, and the operator has one id space.
    ref_id                  text        NOT NULL UNIQUE,
    type                    text        NOT NULL CHECK (type IN ('BET', 'WIN', 'REFUND')),
    player_id               text        NOT NULL,
    amount_cents            bigint      NOT NULL CHECK (amount_cents >= 0),
    currency                char(3)     NOT NULL,
    round_id                text,
    game_id                 text,
    original_ref_id         text,
    round_closed            boolean     NOT NULL DEFAULT false,
    metadata                jsonb       NOT NULL DEFAULT '{}'::jsonb,
    request_hash            text        NOT NULL,
    status                  text        NOT NULL DEFAULT 'PENDING'
                            CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'REJECTED', 'FAILED')),
    reason                  text,
    error_code              text,
    balance_cents           bigint,
    operator_transaction_id text,
    correlation_id          text,
    attempts                integer     NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    completed_at            timestamptz
);
CREATE INDEX transactions_status_created_idx ON transactions (status, created_at);
CREATE INDEX transactions_created_idx ON transactions (created_at);
CREATE INDEX transactions_player_idx ON transactions (player_id, created_at);
CREATE INDEX transactions_original_ref_idx ON transactions (original_ref_id) WHERE original_ref_id IS NOT NULL;
CREATE INDEX transactions_round_idx ON transactions (player_id, round_id) WHERE round_id IS NOT NULL;

CREATE TABLE idempotency_keys (
    id              uuid PRIMARY KEY,
    key             text        NOT NULL,
    -- The RGS client id: keys are scoped per client.
    scope           text        NOT NULL,
    request_hash    text        NOT NULL,
    status          text        NOT NULL DEFAULT 'PROCESSING' CHECK (status IN ('PROCESSING', 'COMPLETED')),
    transaction_id  uuid        REFERENCES transactions (id) ON DELETE CASCADE,
    response_status integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    UNIQUE (scope, key)
);
CREATE INDEX idempotency_keys_transaction_idx ON idempotency_keys (transaction_id);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
CREATE INDEX idempotency_keys_status_created_idx ON idempotency_keys (status, created_at);

-- Result events waiting to be published to hub.transactions: written in the same database transaction as
-- the state change, so a crash between commit and produce loses nothing.
CREATE TABLE event_outbox (
    id           bigserial PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    topic        text        NOT NULL,
    key          text,
    value        bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX event_outbox_unpublished_idx ON event_outbox (id) WHERE published_at IS NULL;

-- Webhook deliveries to the RGS, one row per result event (id = eventId).
CREATE TABLE webhook_outbox (
    id             uuid PRIMARY KEY,
    transaction_id uuid        REFERENCES transactions (id) ON DELETE SET NULL,
    client_id      text        NOT NULL,
    event_type     text        NOT NULL,
    payload        jsonb       NOT NULL,
    status         text        NOT NULL DEFAULT 'PENDING'
                   CHECK (status IN ('PENDING', 'PROCESSING', 'DELIVERED', 'FAILED', 'DEAD_LETTER')),
    retry_count    integer     NOT NULL DEFAULT 0,
    next_retry_at  timestamptz,
    last_error     text,
    attempts       jsonb       NOT NULL DEFAULT '[]'::jsonb,
    correlation_id text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    delivered_at   timestamptz
);
CREATE INDEX webhook_outbox_status_created_idx ON webhook_outbox (status, created_at);
CREATE INDEX webhook_outbox_transaction_idx ON webhook_outbox (transaction_id);
CREATE INDEX webhook_outbox_delivered_idx ON webhook_outbox (delivered_at) WHERE status = 'DELIVERED';

-- Append-only audit of every financial change and every manual intervention.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    entity      text        NOT NULL,
    entity_id   text        NOT NULL,
    action      text        NOT NULL,
    actor       text        NOT NULL,
    before      jsonb,
    after       jsonb,
    reason      text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id, at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
