//! The reference pages in `docs/probes/crm/` are generated from the crate (the kind table, the
//! measures' default thresholds, the params' doc comments via their JSON Schema) and this test
//! fails when they drift. Regenerate with:
//!
//! ```text
//! FUNNELGATE_BLESS=1 cargo test -p funnelgate-checker-crm --test docs
//! ```

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use funnelgate_checker_crm::measure::ThresholdSource;
use funnelgate_checker_crm::warehouse::{COLUMNS, TABLES};
use funnelgate_checker_crm::{KindDoc, Measure, VENDORS, kind_docs, omissions};
use funnelgate_core::Thresholds;
use serde_json::{Value, json};

const GENERATED: &str = "<!-- Generated from crates/checker-crm (kind table, measures, params doc comments). Edit those, then run\n     FUNNELGATE_BLESS=1 cargo test -p funnelgate-checker-crm --test docs -->";

fn docs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/probes/crm")
}

fn vendor_name(v: &str) -> &'static str {
    match v {
        "hubspot" => "HubSpot",
        "salesforce" => "Salesforce",
        "pipedrive" => "Pipedrive",
        _ => "Warehouse (PostgreSQL, MySQL/MariaDB, SQLite)",
    }
}

fn secret_name(v: &str) -> &'static str {
    match v {
        "hubspot" => "HUBSPOT_TOKEN",
        "salesforce" => "SALESFORCE",
        "pipedrive" => "PIPEDRIVE_TOKEN",
        _ => "WAREHOUSE_PASSWORD",
    }
}

/// Minimal params for the examples.
fn example_params(kind: &str) -> Value {
    if kind.starts_with("salesforce.") {
        json!({ "instance_url": "https://acme.my.salesforce.com" })
    } else if kind.starts_with("warehouse.") {
        json!({ "url": "postgres://crm_reader@warehouse.internal:5432/crm" })
    } else if kind == "pipedrive.owner_assignment" {
        json!({ "unassigned_owner_ids": ["1"] })
    } else {
        json!({})
    }
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        serde_json::to_string(k).unwrap()
    }
}

/// A JSON value as a TOML inline value.
fn toml(v: &Value) -> String {
    match v {
        Value::Null => "\"\"".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => serde_json::to_string(s).unwrap(),
        Value::Array(a) => format!("[{}]", a.iter().map(toml).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            if o.is_empty() {
                "{}".into()
            } else {
                format!(
                    "{{ {} }}",
                    o.iter()
                        .map(|(k, v)| format!("{} = {}", toml_key(k), toml(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        }
    }
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        x.to_string()
    }
}

fn thresholds_toml(t: &Thresholds) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("warn_above", t.warn_above),
        ("fail_above", t.fail_above),
        ("warn_below", t.warn_below),
        ("fail_below", t.fail_below),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k} = {}", num(v)));
        }
    }
    if parts.is_empty() {
        "{}".into()
    } else {
        format!("{{ {} }}", parts.join(", "))
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn type_of(p: &Value, defs: &Value) -> String {
    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        let def = &defs[name];
        if let Some(variants) = def.get("oneOf").and_then(Value::as_array) {
            return variants
                .iter()
                .filter_map(|v| v["const"].as_str())
                .map(|c| format!("`\"{c}\"`"))
                .collect::<Vec<_>>()
                .join(" or ");
        }
        if let Some(props) = def.get("properties").and_then(Value::as_object) {
            return format!(
                "table {{ {} }}",
                props.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        return name.to_string();
    }
    let ty = match &p["type"] {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    };
    match ty.as_str() {
        "array" => format!("list of {}", type_of(&p["items"], defs)),
        "object" => format!("table of {}", type_of(&p["additionalProperties"], defs)),
        "integer" => "integer".into(),
        "number" => "number".into(),
        other => other.to_string(),
    }
}

fn params_table(schema: &Value) -> String {
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = String::from("| param | type | default | meaning |\n|---|---|---|---|\n");
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, p) in props {
        let default = if required.contains(&name.as_str()) {
            "required".to_string()
        } else {
            match p.get("default") {
                Some(Value::Null) | None => "—".to_string(),
                Some(d) => format!("`{}`", toml(d).replace('|', "\\|")),
            }
        };
        let mut desc = one_line(p["description"].as_str().unwrap_or(""));
        if let Some(r) = p.get("$ref").and_then(Value::as_str)
            && let Some(variants) = defs[r.rsplit('/').next().unwrap_or(r)]
                .get("oneOf")
                .and_then(Value::as_array)
        {
            for v in variants {
                let _ = write!(
                    desc,
                    " `\"{}\"`: {}",
                    v["const"].as_str().unwrap_or(""),
                    one_line(v["description"].as_str().unwrap_or(""))
                );
            }
        }
        let _ = writeln!(
            out,
            "| `{name}` | {} | {default} | {desc} |",
            type_of(&p, &defs)
        );
    }
    if let Some(rf) = defs
        .get("RequiredField")
        .and_then(|d| d["properties"].as_object())
    {
        out.push_str("\nEach `required` entry:\n\n| field | type | meaning |\n|---|---|---|\n");
        for (name, p) in rf {
            let _ = writeln!(
                out,
                "| `{name}` | {} | {} |",
                type_of(p, &defs),
                one_line(p["description"].as_str().unwrap_or(""))
            );
        }
    }
    out
}

fn example(doc: &KindDoc) -> String {
    let m = doc.measure;
    let mut out = String::from("```toml\n[[funnels.stages.probes]]\n");
    let _ = writeln!(out, "id = \"{}\"", doc.kind.replace(['.', '_'], "-"));
    let _ = writeln!(out, "kind = \"{}\"", doc.kind);
    let _ = writeln!(out, "secret = \"{}\"", secret_name(doc.vendor));
    if m.is_proof() {
        out.push_str("proof = true\nmin_sample = 30\n");
    }
    if matches!(
        m,
        Measure::LeadConversionRates | Measure::SpeedToLead | Measure::Duplicates
    ) {
        out.push_str("timeout = \"60s\"\n");
    }
    let t = m.default_thresholds();
    if !t.is_empty() {
        let _ = writeln!(out, "thresholds = {}", thresholds_toml(&t));
    }
    let params = example_params(doc.kind);
    if params.as_object().is_some_and(|o| !o.is_empty()) {
        let _ = writeln!(out, "params = {}", toml(&params));
    }
    out.push_str("```\n");
    out
}

fn thresholds_section(m: Measure) -> String {
    let t = m.default_thresholds();
    let (source, why) = m.threshold_source();
    let label = match source {
        ThresholdSource::Heuristic => {
            "`heuristic` (a starting point to tune, not a vendor or industry rule)"
        }
        ThresholdSource::Definition => "by definition of the measure",
    };
    let mut out = String::new();
    if t.is_empty() {
        out.push_str("None on the value: the probe judges itself (its `verdict`).\n\n");
    } else {
        let _ = writeln!(out, "`thresholds = {}` — {label}.\n", thresholds_toml(&t));
    }
    let _ = writeln!(out, "{why}.\n");
    out.push_str(
        "The runner applies the thresholds written on the probe spec, so copy these (or your own) into \
         it; `funnelgate_checker_crm::default_thresholds(kind)` returns them as data.\n",
    );
    out
}

fn page(doc: &KindDoc, schema: &Value) -> String {
    let m = doc.measure;
    let mut out = String::new();
    let _ = writeln!(out, "# Probe kind `{}`\n\n{GENERATED}\n", doc.kind);
    let _ = writeln!(
        out,
        "Catalogue **{}** ({}) · vendor **{}** · unit `{}` · stage `crm` · [all CRM kinds](README.md)\n",
        m.catalogue_id(),
        m.title(),
        vendor_name(doc.vendor),
        m.unit()
    );
    let _ = writeln!(out, "{}\n", m.why());
    let _ = writeln!(
        out,
        "## What it measures\n\n**Value** (`{}`): {}.\n",
        m.unit(),
        m.value_meaning()
    );
    if m.is_proof() {
        out.push_str(
            "**Conversion proof**: with `proof = true` and `min_sample = N` the result is NO_DATA, never PASS, \
             while the sample (reported as `sample_size`, with the `window` it covers) is below N; a sample of \
             zero is NO_DATA from the probe itself.\n\n",
        );
    }
    let _ = writeln!(out, "## Default thresholds\n\n{}", thresholds_section(m));
    let _ = writeln!(out, "## Params\n\n{}", params_table(schema));
    let _ = writeln!(
        out,
        "## Permissions\n\n{}.\n",
        doc.permissions.trim_end_matches('.')
    );
    let _ = writeln!(
        out,
        "## Calls\n\n**API version**: {}.\n\n{}.\n",
        doc.api.trim_end_matches('.'),
        doc.calls.trim_end_matches('.')
    );
    let _ = writeln!(out, "## Notes\n\n{}\n", doc.notes);
    let _ = write!(out, "## Example\n\n{}", example(doc));
    out
}

fn readme(docs: &[KindDoc]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# CRM checker probe kinds\n\n{GENERATED}\n");
    out.push_str(
        "The `crm` checker (`funnelgate checker crm`) measures the bottom of the funnel, the part closest to \
         the sale, so it is the stage the gate leans on most. It offers the measures C1–C10 of the probe \
         catalogue for HubSpot, Salesforce and Pipedrive, and the same measures as ready-made SQL over a \
         warehouse copy of the CRM, plus the generic `sql`, `http` and `prometheus` kinds every checker has \
         ([sql](../sql.md)).\n\n\
         One kind per (vendor, measure): `Describe` lists exactly what each vendor can answer, and a \
         configuration naming a kind the checker does not offer (e.g. `pipedrive.speed_to_lead`) is rejected \
         at start-up with the list of supported kinds.\n\n",
    );
    out.push_str("## Kinds\n\n| # | measure | unit |");
    for v in VENDORS {
        let _ = write!(out, " {v} |");
    }
    out.push_str("\n|---|---|---|");
    for _ in VENDORS {
        out.push_str("---|");
    }
    out.push('\n');
    for m in Measure::ALL {
        let _ = write!(
            out,
            "| {} | {} | `{}` |",
            m.catalogue_id(),
            m.title(),
            m.unit()
        );
        for v in VENDORS {
            let kind = format!("{v}.{}", m.suffix());
            if docs.iter().any(|d| d.kind == kind) {
                let _ = write!(out, " [`{kind}`]({kind}.md) |");
            } else {
                out.push_str(" — (see below) |");
            }
        }
        out.push('\n');
    }
    out.push_str("\nC11 (form-to-CRM latency) and C12 (consent fields) are not offered yet: C11 needs the canary lead \
                  (DESIGN.md 1b), C12 rests on `unverified` vendor endpoints.\n\n");

    out.push_str(
        "## Default thresholds\n\n| # | value | default thresholds | source |\n|---|---|---|---|\n",
    );
    for m in Measure::ALL {
        let t = m.default_thresholds();
        let (source, _) = m.threshold_source();
        let th = if t.is_empty() {
            "judged by the probe (verdict)".to_string()
        } else {
            format!("`{}`", thresholds_toml(&t))
        };
        let src = match source {
            ThresholdSource::Heuristic => "`heuristic`",
            ThresholdSource::Definition => "definition",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {th} | {src} |",
            m.catalogue_id(),
            m.value_meaning()
        );
    }
    out.push_str(
        "\n`heuristic` thresholds are starting points a team tunes, not facts. The runner applies the \
         thresholds written on each probe spec; `funnelgate_checker_crm::default_thresholds(kind)` returns the \
         defaults as data for config examples and generators.\n\n",
    );

    out.push_str(
        "## Conversion proof\n\n\
         `*.lead_to_revenue_linkage` (C5) and `*.lead_conversion_rates` (C6) can be marked `proof = true` \
         (DESIGN.md section 1): they do not count toward the stage's health, and the gate caps at HOLD until \
         they PASS. They report the sample they judged on (`sample_size`: deals won in the window for C5, \
         entrants into the first stage for C6) and the `window`; with `min_sample = N` the runner reports \
         NO_DATA below N, and an empty window is NO_DATA from the probe itself — never PASS.\n\n",
    );

    out.push_str(
        "## Credentials\n\n\
         Every vendor kind names a `secret`; the checker reads `FUNNELGATE_SECRET_<NAME>` or a file `<NAME>` in \
         its secrets directory. Secrets never appear in config, errors or logs.\n\n\
         | vendor | the secret holds |\n|---|---|\n\
         | HubSpot | a private-app access token (sent as `Authorization: Bearer`) |\n\
         | Salesforce | an access (session) token, or JSON `{\"client_id\": …, \"client_secret\": …, \"refresh_token\": …}` for the refresh-token flow: `POST {login_url or instance_url}/services/oauth2/token` with `grant_type=refresh_token`, the access token cached per app and refresh token and refreshed once on 401 |\n\
         | Pipedrive | a personal API token (sent in the `x-api-token` header, never in the URL), or with `auth = \"oauth\"` an OAuth access token |\n\
         | Warehouse | the database password when `url` names the user, or the whole connection URL when neither `url` nor `sqlite_path` is set |\n\n",
    );

    out.push_str(
        "## Budgets and rate limits\n\n\
         - **HubSpot** (date-based API, `api_version`, default `2026-09`): every reply's \
         `X-HubSpot-RateLimit-Daily` / `-Daily-Remaining` is read (private apps and service keys); OAuth apps get \
         no daily headers, so with `credential = \"oauth\"` the day's usage is read once per run from \
         `GET /account-info/{version}/api-usage/daily/private-apps`. Once less than `daily_reserve_percent` \
         (default 10%) of the day's budget is left the probe stops with ERROR \"daily budget nearly exhausted\", \
         so a check never starves the team's own syncs. Every call is paced to half the account's burst limit \
         (`burst_per_10s`, default 100 per 10 s, the Free/Starter limit) and follows \
         `X-HubSpot-RateLimit-Remaining` / `-Interval-Milliseconds`; searches are also paced \
         (`search_interval_ms`, default 200 ms: HubSpot allows about five per second) and paged 200 at a time; \
         a search query stops at 10,000 results, so counts use search `total`s (`limit=1`) and record scans cap \
         at `max_records` ≤ 10,000, saying so in the message when the cap is reached.\n\
         - **Salesforce**: `Sforce-Limit-Info: api-usage=used/max` (the org's rolling 24-hour API request \
         allocation) is read on every reply with the same reserve, and remembered per org for 15 minutes \
         across probe runs, so once the org is under the reserve the next run stops before its first call. \
         Salesforce publishes no per-second limit for the REST API but counts concurrent long-running \
         requests per org (25 in production, 5 in Developer Edition and trial orgs): a checker keeps at most \
         5 calls in flight per org, however many Salesforce probes run at once. Queries page through `nextRecordsUrl` up to `max_records`; aggregate queries return at most \
         2,000 groups.\n\
         - **Pipedrive** (API v2; v1 only for `users/me`, the field lists and the Leads Inbox): v2 lists page \
         by cursor (`next_cursor`, 500 per call), v1 lists by `start`; both newest first, stopping at the \
         window's start or `max_records`. Calls are paced to half of the smallest published burst limit (20 \
         requests per 2 s) and follow `x-ratelimit-remaining` / `x-ratelimit-reset`.\n\
         - **All vendors, retries**: one policy (the SDK's `retry` module). `Retry-After` is honoured in both \
         forms (seconds and HTTP-date), else a vendor's `x-ratelimit-reset`; a 429 without either (HubSpot's \
         search often sends none) and 5xx or connection failures back off briefly and exponentially (250 ms, \
         doubling, capped at 4 s, ±50% jitter), at most three retries, and only while the wait fits in the \
         probe's remaining time; a longer wait ends the run with a transient ERROR carrying `retry_after` for \
         the runner.\n\n\
         ## A spent API budget (one verdict for every vendor)\n\n\
         When the vendor says the account's API budget is spent — Salesforce 403 `REQUEST_LIMIT_EXCEEDED`, \
         HubSpot's 429 with `policyName` `DAILY` or a daily remaining of 0, Pipedrive's 429 with \
         `x-daily-requests-left: 0` — every integration that feeds the funnel has stopped. So:\n\n\
         - the `*.auth_and_quota` kind (C1) is **FAIL with value 0**, whatever its thresholds;\n\
         - every other kind is **ERROR** (\"the account's API request budget is exhausted\"), never retried: \
         it cannot measure, and what cannot be measured never counts as healthy.\n\n",
    );

    out.push_str(
        "## When a probe cannot measure (ERROR)\n\n\
         Each failure is its own message naming the vendor and the call: 401 (the token was rejected: expired, \
         revoked or wrong — for `*.auth_and_quota` this is FAIL, since working credentials are what it \
         measures), 403 (missing permission, naming the scope: HubSpot's `requiredGranularScopes`, otherwise the \
         scope the call needs), 404 (wrong portal, object or API version), 429 (rate limited, with the wait), \
         5xx (the vendor is failing), timeout, a connection failure, malformed or truncated JSON, and an empty \
         account where the measure needs data to exist (no pipelines, no properties). An empty *window* (no new \
         contacts, no won deals) is NO_DATA, not ERROR. Database failures name the target \
         (`postgres db:5432/crm`), never credentials.\n\n",
    );

    out.push_str("## What a vendor cannot answer\n\n| kind | why it is not offered |\n|---|---|\n");
    for o in omissions() {
        let _ = writeln!(
            out,
            "| `{}.{}` | {} |",
            o.vendor,
            o.measure.suffix(),
            one_line(o.reason)
        );
    }
    out.push('\n');

    out.push_str(
        "## Warehouse tables\n\n\
         The `warehouse.*` kinds read these tables (logical name → default table). Override names per probe \
         with `tables = { contacts = \"crm.hubspot_contacts\" }` and `columns = { \"contacts.created_at\" = \
         \"createdate\" }`. Timestamps are UTC: `timestamptz`/`timestamp` in PostgreSQL, `DATETIME` in \
         MySQL/MariaDB, ISO-8601 text (`YYYY-MM-DD HH:MM:SS`) in SQLite. Sessions are read-only; grant the \
         probe's user `SELECT` only.\n\n| logical table | default name |\n|---|---|\n",
    );
    for (l, t) in TABLES {
        let _ = writeln!(out, "| `{l}` | `{t}` |");
    }
    out.push_str("\n| column | holds |\n|---|---|\n");
    for (c, what) in COLUMNS {
        let _ = writeln!(out, "| `{c}` | {what} |");
    }
    out.push_str(
        "\nPostgreSQL shape (MySQL/MariaDB: `DATETIME(3)` and `TINYINT(1)`; SQLite: `TEXT` and `INTEGER`):\n\n```sql\n\
         CREATE TABLE crm_contacts (id BIGINT PRIMARY KEY, email TEXT, created_at TIMESTAMPTZ NOT NULL,\n  \
         original_source TEXT, owner_id TEXT, first_touch_at TIMESTAMPTZ);\n\
         CREATE TABLE crm_deals (id BIGINT PRIMARY KEY, contact_id BIGINT, amount NUMERIC, created_at TIMESTAMPTZ,\n  \
         closed_at TIMESTAMPTZ, is_won BOOLEAN, is_closed BOOLEAN, source TEXT, pipeline_id TEXT, stage_id TEXT);\n\
         CREATE TABLE crm_deal_stages (id TEXT PRIMARY KEY, pipeline_id TEXT, label TEXT, display_order INTEGER,\n  \
         probability NUMERIC, is_closed BOOLEAN, is_won BOOLEAN);\n\
         CREATE TABLE crm_activities (id BIGINT PRIMARY KEY, contact_id BIGINT, occurred_at TIMESTAMPTZ);\n\
         CREATE TABLE crm_lifecycle_events (contact_id BIGINT, stage TEXT, entered_at TIMESTAMPTZ);\n```\n\n",
    );

    out.push_str("## Example: a CRM stage on HubSpot\n\n```toml\n");
    out.push_str(EXAMPLE_STAGE);
    out.push_str("```\n");
    out
}

/// The example stage (also checked to parse and build below).
const EXAMPLE_STAGE: &str = r#"[[funnels.stages]]
name = "crm"
interval = "5m"

[[funnels.stages.probes]]
id = "hubspot-access"
kind = "hubspot.auth_and_quota"
secret = "HUBSPOT_TOKEN"
thresholds = { warn_below = 20 }

[[funnels.stages.probes]]
id = "crm-fields"
kind = "hubspot.required_properties"
secret = "HUBSPOT_TOKEN"
thresholds = { fail_above = 0 }
params = { required = [
  { object = "contacts", name = "email", types = ["string"] },
  { object = "contacts", name = "hs_analytics_source", types = ["enumeration"], options = ["PAID_SEARCH", "PAID_SOCIAL"] },
  { object = "contacts", name = "utm_campaign" },
  { object = "deals", name = "amount", types = ["number"] },
] }

[[funnels.stages.probes]]
id = "deal-pipeline"
kind = "hubspot.pipeline_shape"
secret = "HUBSPOT_TOKEN"
thresholds = { fail_above = 0 }

[[funnels.stages.probes]]
id = "leads-attributed"
kind = "hubspot.source_attribution_coverage"
secret = "HUBSPOT_TOKEN"
thresholds = { warn_below = 90, fail_below = 70 }
params = { window_days = 30 }

[[funnels.stages.probes]]
id = "leads-routed"
kind = "hubspot.owner_assignment"
secret = "HUBSPOT_TOKEN"
thresholds = { warn_above = 5 }

[[funnels.stages.probes]]
id = "speed-to-lead"
kind = "hubspot.speed_to_lead"
secret = "HUBSPOT_TOKEN"
severity = "advisory"
timeout = "60s"
thresholds = { warn_above = 1, fail_above = 24 }

[[funnels.stages.probes]]
id = "won-deals-traced-to-source"
kind = "hubspot.lead_to_revenue_linkage"
secret = "HUBSPOT_TOKEN"
proof = true
min_sample = 30
timeout = "60s"
thresholds = { warn_below = 30, fail_below = 1 }
params = { window_days = 90 }

# The same measures from a warehouse copy of the CRM (password in FUNNELGATE_SECRET_WAREHOUSE_PASSWORD).
[[funnels.stages.probes]]
id = "crm-duplicates"
kind = "warehouse.duplicates"
secret = "WAREHOUSE_PASSWORD"
thresholds = { warn_above = 2, fail_above = 10 }
params = { url = "postgres://crm_reader@warehouse.internal:5432/crm", tables = { contacts = "hubspot.contacts" } }
"#;

fn expected_files() -> BTreeMap<String, String> {
    let reg = support::registry();
    let docs = kind_docs();
    let mut files = BTreeMap::new();
    for d in &docs {
        let schema = reg.get(d.kind).unwrap().params_schema();
        files.insert(format!("{}.md", d.kind), page(d, &schema));
    }
    files.insert("README.md".into(), readme(&docs));
    files
}

#[test]
fn reference_pages_match_the_code() {
    let dir = docs_dir();
    let files = expected_files();
    if std::env::var("FUNNELGATE_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "md")
                && !files.contains_key(p.file_name().unwrap().to_str().unwrap())
            {
                std::fs::remove_file(p).unwrap();
            }
        }
        for (name, text) in &files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let mut stale = Vec::new();
    for (name, text) in &files {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(on_disk) if &on_disk == text => {}
            _ => stale.push(name.clone()),
        }
    }
    assert!(
        stale.is_empty(),
        "docs/probes/crm is out of date ({}); regenerate with FUNNELGATE_BLESS=1 cargo test -p funnelgate-checker-crm --test docs",
        stale.join(", ")
    );
}

/// The TOML examples parse, and every probe in them builds with the checker's registry.
#[test]
fn examples_parse_and_build() {
    let reg = funnelgate_checker_crm::registry();
    let mut snippets: Vec<String> = vec![EXAMPLE_STAGE.to_string()];
    for d in kind_docs() {
        snippets.push(
            example(&d)
                .trim_start_matches("```toml\n")
                .trim_end_matches("```\n")
                .to_string(),
        );
    }
    for s in snippets {
        let table: toml::Table = toml::from_str(&s).unwrap_or_else(|e| panic!("{e}\n{s}"));
        let mut probes = Vec::new();
        collect_probes(&serde_json::to_value(&table).unwrap(), &mut probes);
        assert!(!probes.is_empty(), "no probe in\n{s}");
        for json in probes {
            let params = json.get("params").cloned().unwrap_or(json!({}));
            let kind = json["kind"].as_str().unwrap();
            reg.build(kind, &params)
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            let spec: Result<funnelgate_core::ProbeSpec, _> = serde_json::from_value(json.clone());
            spec.unwrap_or_else(|e| panic!("{kind}: not a probe spec: {e}"));
        }
    }
}

/// Every table with a `kind` key.
fn collect_probes(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(o) if o.contains_key("kind") => out.push(v.clone()),
        Value::Object(o) => o.values().for_each(|x| collect_probes(x, out)),
        Value::Array(a) => a.iter().for_each(|x| collect_probes(x, out)),
        _ => {}
    }
}
