-- funnelgate coordinator store on PostgreSQL, version 1 (the same tables and rules as the SQLite
-- store, plus leadership and change notifications for replicas).

-- Append-only, hash-chained history of every decision change and operator action, per funnel.
CREATE TABLE ledger (
    funnel      TEXT   NOT NULL,
    seq         BIGINT NOT NULL CHECK (seq >= 1),
    kind        TEXT   NOT NULL CHECK (kind IN ('decision', 'override', 'override_cleared', 'phase')),
    recorded_at BIGINT NOT NULL,            -- unix milliseconds
    config_hash TEXT   NOT NULL,
    payload     TEXT   NOT NULL,            -- RFC 8785 JSON
    prev_hash   TEXT   NOT NULL,
    hash        TEXT   NOT NULL,
    hash_scheme BIGINT NOT NULL DEFAULT 2 CHECK (hash_scheme IN (1, 2)),
    term        BIGINT NOT NULL DEFAULT 0,  -- leadership term of the writer (audit; not hashed)
    PRIMARY KEY (funnel, seq)
);

CREATE FUNCTION funnelgate_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only: % of an entry is not allowed', lower(TG_OP);
END
$$;

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
    FOR EACH ROW EXECUTE FUNCTION funnelgate_ledger_append_only();
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION funnelgate_ledger_append_only();

-- The latest report of every stage of every funnel.
CREATE TABLE stage_reports (
    funnel     TEXT   NOT NULL,
    stage      TEXT   NOT NULL,
    checked_at BIGINT NOT NULL,
    report     TEXT   NOT NULL,             -- JSON of funnelgate_core::StageReport
    PRIMARY KEY (funnel, stage)
);

-- The engine's memory of each funnel (phase, hysteresis, last reports, override).
CREATE TABLE engine_state (
    funnel     TEXT   PRIMARY KEY,
    updated_at BIGINT NOT NULL,
    snapshot   TEXT   NOT NULL              -- JSON of funnelgate_core::FunnelSnapshot
);

-- Small facts about the store itself.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Who leads. `term` grows by one at every takeover; every write checks it in its transaction,
-- so a deposed leader can never append.
CREATE TABLE leadership (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    term       BIGINT NOT NULL,
    leader     TEXT   NOT NULL,             -- node name
    address    TEXT   NOT NULL,             -- its advertised gRPC address
    renewed_at BIGINT NOT NULL              -- unix milliseconds of the last lease renewal
);
INSERT INTO leadership (id, term, leader, address, renewed_at) VALUES (1, 0, '', '', 0);

-- Replicas LISTEN on `funnelgate_changes`: `ledger <funnel> <seq>` and `state <funnel>`.
CREATE FUNCTION funnelgate_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'ledger' THEN
        PERFORM pg_notify('funnelgate_changes', 'ledger ' || NEW.funnel || ' ' || NEW.seq);
    ELSE
        PERFORM pg_notify('funnelgate_changes', 'state ' || NEW.funnel);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_notify AFTER INSERT ON ledger
    FOR EACH ROW EXECUTE FUNCTION funnelgate_notify_change();
CREATE TRIGGER engine_state_notify AFTER INSERT OR UPDATE ON engine_state
    FOR EACH ROW EXECUTE FUNCTION funnelgate_notify_change();
