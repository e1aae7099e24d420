-- What the Acme team did to fix its funnel, bottom-up (the order funnelgate's remediation list
-- gives). Applied with `funnelgate quickstart fix DIR`.

-- crm: route every unassigned lead to a rep, and recover attribution for imported leads from the
-- import file's campaign column.
UPDATE contacts SET owner = CASE id % 4 WHEN 0 THEN 'dana' WHEN 1 THEN 'lee' WHEN 2 THEN 'sam' ELSE 'noor' END
WHERE owner IS NULL;
UPDATE contacts SET utm_source = 'partner-list', utm_medium = 'referral', utm_campaign = 'spring-launch'
WHERE utm_source IS NULL;
UPDATE deals SET amount = 1500 WHERE amount IS NULL;

-- automation: switch the MQL hand-off back on; the nurture workflow's stuck queue was restarted.
UPDATE workflows SET enabled = 1, last_run_at = datetime('now', '-5 minutes') WHERE name = 'mql-handoff';
UPDATE workflows SET last_run_at = datetime('now', '-10 minutes') WHERE name = 'lead-nurture';

-- esp: the purchased list is suppressed and its sends are excluded from sender metrics.
DELETE FROM email_events WHERE campaign = 'cold-list-import';

-- analytics: the goal tag is back on the thank-you page; completions since then are recorded.
INSERT INTO goal_completions (session_id, goal, completed_at)
SELECT id, 'demo_request', datetime(started_at, '+3 minutes')
FROM web_sessions WHERE id % 25 = 0;
