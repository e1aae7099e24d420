-- The "marketing warehouse" of Acme: what a team syncs nightly from its tools (CRM, marketing
-- automation, email service provider, web analytics) into one SQLite file. Dates are relative to
-- now, so the data is always fresh. `funnelgate quickstart init DIR` loads this into
-- DIR/warehouse.db; `funnelgate quickstart fix DIR` applies fix.sql.
--
-- It is broken on purpose, at every stage, the way real funnels are:
--   crm         many new leads have no owner and no utm_source (nobody follows up, no attribution)
--   automation  the MQL hand-off workflow is switched off; lead nurture has not run for 3 days
--   esp         a purchased list was mailed: 9% bounces, 0.5% spam complaints
--   analytics   the goal tag was removed from the thank-you page: no goal completions

CREATE TABLE contacts (
    id             INTEGER PRIMARY KEY,
    email          TEXT NOT NULL,
    source         TEXT NOT NULL,           -- form, import, chat, event
    utm_source     TEXT,
    utm_medium     TEXT,
    utm_campaign   TEXT,
    owner          TEXT,                    -- sales rep; NULL = unassigned
    lifecycle      TEXT NOT NULL,           -- lead, mql, sql, customer
    created_at     TEXT NOT NULL
);

CREATE TABLE deals (
    id          INTEGER PRIMARY KEY,
    contact_id  INTEGER NOT NULL REFERENCES contacts(id),
    stage       TEXT NOT NULL,              -- discovery, proposal, negotiation, closed
    amount      REAL,
    won         INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    close_date  TEXT
);

CREATE TABLE workflows (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    trigger      TEXT NOT NULL,
    enabled      INTEGER NOT NULL,
    last_run_at  TEXT
);

CREATE TABLE email_events (
    id           INTEGER PRIMARY KEY,
    campaign     TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    event        TEXT NOT NULL,             -- sent, delivered, bounced, complained, opened, clicked
    occurred_at  TEXT NOT NULL
);

CREATE TABLE web_sessions (
    id            INTEGER PRIMARY KEY,
    started_at    TEXT NOT NULL,
    landing_page  TEXT NOT NULL,
    utm_source    TEXT,
    utm_medium    TEXT
);

CREATE TABLE goal_completions (
    id            INTEGER PRIMARY KEY,
    session_id    INTEGER NOT NULL REFERENCES web_sessions(id),
    goal          TEXT NOT NULL,            -- demo_request, newsletter, pricing_view
    completed_at  TEXT NOT NULL
);

-- A counter 0..999 to generate rows from.
CREATE TEMP TABLE n (i INTEGER PRIMARY KEY);
WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 999)
INSERT INTO n SELECT i FROM c;

-- 200 contacts over the last 60 days: 120 from forms, 80 from a list import.
-- Form leads are attributed and owned; imported ones are neither (the bug).
INSERT INTO contacts (id, email, source, utm_source, utm_medium, utm_campaign, owner, lifecycle, created_at)
SELECT i + 1,
       'lead' || i || '@example.com',
       CASE WHEN i % 5 < 3 THEN 'form' ELSE 'import' END,
       CASE WHEN i % 5 < 3 THEN (CASE i % 3 WHEN 0 THEN 'google' WHEN 1 THEN 'linkedin' ELSE 'newsletter' END) END,
       CASE WHEN i % 5 < 3 THEN (CASE i % 3 WHEN 0 THEN 'cpc' WHEN 1 THEN 'paid-social' ELSE 'email' END) END,
       CASE WHEN i % 5 < 3 THEN 'spring-launch' END,
       CASE WHEN i % 5 < 3 THEN (CASE i % 4 WHEN 0 THEN 'dana' WHEN 1 THEN 'lee' WHEN 2 THEN 'sam' ELSE 'noor' END) END,
       CASE WHEN i % 10 = 0 THEN 'customer' WHEN i % 10 < 3 THEN 'sql' WHEN i % 10 < 6 THEN 'mql' ELSE 'lead' END,
       datetime('now', '-' || (i % 60) || ' days', '-' || (i % 24) || ' hours')
FROM n WHERE i < 200;

-- Deals for sales-qualified contacts and customers; customers' deals are won.
INSERT INTO deals (contact_id, stage, amount, won, created_at, close_date)
SELECT id,
       CASE WHEN lifecycle = 'customer' THEN 'closed' WHEN id % 3 = 0 THEN 'proposal' ELSE 'discovery' END,
       CASE WHEN id % 7 = 0 THEN NULL ELSE 1000 + (id % 9) * 750 END,
       CASE WHEN lifecycle = 'customer' THEN 1 ELSE 0 END,
       created_at,
       CASE WHEN lifecycle = 'customer' THEN datetime(created_at, '+14 days') END
FROM contacts WHERE lifecycle IN ('sql', 'customer');

INSERT INTO workflows (name, trigger, enabled, last_run_at) VALUES
    ('welcome',      'contact created',          1, datetime('now', '-2 hours')),
    ('lead-nurture', 'lifecycle = lead',         1, datetime('now', '-3 days')),
    ('mql-handoff',  'lead score >= 50',         0, datetime('now', '-40 days')),
    ('win-back',     'no activity for 90 days',  0, NULL);

-- Newsletter to opted-in contacts: 400 sends, healthy.
INSERT INTO email_events (campaign, recipient, event, occurred_at)
SELECT 'newsletter-w' || (i % 4), 'lead' || (i % 120) || '@example.com', 'sent', datetime('now', '-' || (i % 7) || ' days')
FROM n WHERE i < 400;
INSERT INTO email_events (campaign, recipient, event, occurred_at)
SELECT campaign, recipient, 'delivered', occurred_at FROM email_events WHERE event = 'sent' AND id % 100 <> 0;
INSERT INTO email_events (campaign, recipient, event, occurred_at)
SELECT campaign, recipient, 'bounced', occurred_at FROM email_events WHERE event = 'sent' AND id % 100 = 0;
INSERT INTO email_events (campaign, recipient, event, occurred_at)
SELECT campaign, recipient, 'opened', occurred_at FROM email_events WHERE event = 'delivered' AND id % 3 = 0;

-- The purchased list: 600 sends, 150 bounces, 12 spam complaints.
INSERT INTO email_events (campaign, recipient, event, occurred_at)
SELECT 'cold-list-import', 'prospect' || i || '@example.net', 'sent', datetime('now', '-' || (i % 5) || ' days')
FROM n WHERE i < 600;
INSERT INTO email_events (campaign, recipient, event, occurred_at)
SELECT campaign, recipient, CASE WHEN id % 4 = 0 THEN 'bounced' ELSE 'delivered' END, occurred_at
FROM email_events WHERE campaign = 'cold-list-import' AND event = 'sent';
INSERT INTO email_events (campaign, recipient, event, occurred_at)
SELECT campaign, recipient, 'complained', occurred_at
FROM email_events WHERE campaign = 'cold-list-import' AND event = 'delivered' AND id % 38 = 0;

-- 1000 web sessions over the last 7 days; 70% tagged with utm parameters.
INSERT INTO web_sessions (id, started_at, landing_page, utm_source, utm_medium)
SELECT i + 1,
       datetime('now', '-' || (i % 7) || ' days', '-' || (i % 24) || ' hours'),
       CASE i % 3 WHEN 0 THEN '/' WHEN 1 THEN '/pricing' ELSE '/demo' END,
       CASE WHEN i % 10 < 7 THEN (CASE i % 2 WHEN 0 THEN 'google' ELSE 'linkedin' END) END,
       CASE WHEN i % 10 < 7 THEN (CASE i % 2 WHEN 0 THEN 'cpc' ELSE 'paid-social' END) END
FROM n;

-- Goal completions: none in the last 7 days (the tag was removed), only older ones.
INSERT INTO goal_completions (session_id, goal, completed_at)
SELECT i + 1, 'demo_request', datetime('now', '-' || (10 + i % 20) || ' days')
FROM n WHERE i < 40;

DROP TABLE n;
