-- Notification outbox (issue 16). Rows are derived from the ledger after each entry is recorded:
-- `notify_cursor` remembers, per sink and funnel, the last ledger entry already turned into
-- outbox rows, and both are written in one transaction, so a restart neither loses a change
-- (the ledger is re-read from the cursor) nor enqueues it twice (UNIQUE (sink, funnel, seq)).
-- Delivery is at-least-once: `id` is the idempotency key receivers dedupe on (CloudEvents `id`).
CREATE TABLE notify_outbox (
    sink            TEXT   NOT NULL,
    funnel          TEXT   NOT NULL,
    seq             BIGINT NOT NULL,
    id              TEXT   NOT NULL,            -- <funnel>:<seq>:<hash prefix>
    change          TEXT   NOT NULL,            -- JSON of the change (notify::event::Change)
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,            -- unix milliseconds
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    PRIMARY KEY (sink, funnel, seq)
);
CREATE INDEX notify_outbox_due ON notify_outbox (sink, status, next_attempt_at);

CREATE TABLE notify_cursor (
    sink     TEXT   NOT NULL,
    funnel   TEXT   NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (sink, funnel)
);
