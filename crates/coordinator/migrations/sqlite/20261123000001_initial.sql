-- funnelgate coordinator store, version 1.

-- Append-only, hash-chained history of every decision change and operator action, per funnel.
CREATE TABLE ledger (
    funnel      TEXT    NOT NULL,
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    kind        TEXT    NOT NULL CHECK (kind IN ('decision', 'override', 'override_cleared', 'phase')),
    recorded_at INTEGER NOT NULL,           -- unix milliseconds
    config_hash TEXT    NOT NULL,
    payload     TEXT    NOT NULL,           -- canonical JSON
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    PRIMARY KEY (funnel, seq)
) WITHOUT ROWID;

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'ledger is append-only: updating an entry is not allowed');
END;

CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'ledger is append-only: deleting an entry is not allowed');
END;

-- The latest report of every stage of every funnel.
CREATE TABLE stage_reports (
    funnel     TEXT    NOT NULL,
    stage      TEXT    NOT NULL,
    checked_at INTEGER NOT NULL,
    report     TEXT    NOT NULL,            -- JSON of funnelgate_core::StageReport
    PRIMARY KEY (funnel, stage)
) WITHOUT ROWID;

-- The engine's memory of each funnel (phase, hysteresis, last reports, override).
CREATE TABLE engine_state (
    funnel     TEXT    PRIMARY KEY NOT NULL,
    updated_at INTEGER NOT NULL,
    snapshot   TEXT    NOT NULL             -- JSON of funnelgate_core::FunnelSnapshot
) WITHOUT ROWID;

-- Small facts about the store itself (last open), also used to prove it is writable at start.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
