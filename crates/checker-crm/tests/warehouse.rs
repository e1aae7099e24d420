//! Warehouse kinds against the real PostgreSQL and MariaDB on this machine and SQLite, seeded with
//! data whose right answers are known. Every test uses its own schema/table names.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use funnelgate_checker_crm::time::Utc;
use funnelgate_checker_sdk::ProbeErrorKind;
use funnelgate_core::{Measurement, ProbeStatus};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection};

const T: Duration = Duration::from_secs(20);

fn postgres_url() -> String {
    std::env::var("FUNNELGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn mysql_url() -> String {
    std::env::var("FUNNELGATE_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Pg,
    My,
    Lite,
}

/// Column types and literals per database.
struct Ddl {
    kind: Kind,
    now: Utc,
}

impl Ddl {
    fn ts_type(&self) -> &'static str {
        match self.kind {
            Kind::Pg => "TIMESTAMPTZ",
            Kind::My => "DATETIME(3)",
            Kind::Lite => "TEXT",
        }
    }
    fn bool_type(&self) -> &'static str {
        match self.kind {
            Kind::Pg => "BOOLEAN",
            Kind::My => "TINYINT(1)",
            Kind::Lite => "INTEGER",
        }
    }
    fn text_type(&self) -> &'static str {
        match self.kind {
            Kind::My => "VARCHAR(255)",
            _ => "TEXT",
        }
    }
    /// A timestamp `hours` before now (negative: after).
    fn at(&self, hours: f64) -> String {
        let t = Utc(self.now.0 - (hours * 3_600_000.0) as i64).sql();
        match self.kind {
            Kind::Pg => format!("'{t}+00'"),
            _ => format!("'{t}'"),
        }
    }
    fn b(&self, v: bool) -> &'static str {
        match (self.kind, v) {
            (Kind::Pg, true) => "TRUE",
            (Kind::Pg, false) => "FALSE",
            (_, true) => "1",
            (_, false) => "0",
        }
    }
}

fn s(v: Option<&str>) -> String {
    v.map(|v| format!("'{}'", v.replace('\'', "''")))
        .unwrap_or_else(|| "NULL".into())
}

/// The seed statements; `t(name)` gives the (qualified) table name. `created_col` renames
/// `contacts.created_at` (to test column overrides).
fn seed_sql(d: &Ddl, t: &dyn Fn(&str) -> String, created_col: &str) -> Vec<String> {
    let (ts, bo, tx) = (d.ts_type(), d.bool_type(), d.text_type());
    let mut out = vec![
        format!(
            "CREATE TABLE {} (id BIGINT PRIMARY KEY, email {tx}, {created_col} {ts} NOT NULL, original_source {tx}, owner_id {tx}, first_touch_at {ts})",
            t("crm_contacts")
        ),
        format!(
            "CREATE TABLE {} (id BIGINT PRIMARY KEY, contact_id BIGINT, amount DECIMAL(12,2), created_at {ts}, closed_at {ts}, is_won {bo}, is_closed {bo}, source {tx}, pipeline_id {tx}, stage_id {tx})",
            t("crm_deals")
        ),
        format!(
            "CREATE TABLE {} (id {tx}, pipeline_id {tx}, label {tx}, display_order INTEGER, probability DECIMAL(5,2), is_closed {bo}, is_won {bo})",
            t("crm_deal_stages")
        ),
        format!(
            "CREATE TABLE {} (id BIGINT PRIMARY KEY, contact_id BIGINT, occurred_at {ts})",
            t("crm_activities")
        ),
        format!(
            "CREATE TABLE {} (contact_id BIGINT, stage {tx}, entered_at {ts})",
            t("crm_lifecycle_events")
        ),
    ];
    // Contacts 1–10 created 48h ago, 11 ten minutes ago, 12 sixty days ago.
    type Contact<'a> = (i64, Option<&'a str>, f64, Option<&'a str>, Option<&'a str>);
    let contacts: [Contact; 12] = [
        (1, Some("a@acme.io"), 48.0, Some("google"), Some("u1")),
        (2, Some("A@ACME.IO "), 48.0, Some("google"), Some("u1")),
        (3, Some("b@acme.io"), 48.0, Some("google"), Some("u1")),
        (4, Some("info@acme.io"), 48.0, Some("google"), Some("u1")),
        (5, Some("bad-email"), 48.0, Some("google"), Some("u1")),
        (6, Some("c@example.com"), 48.0, Some("google"), Some("u1")),
        (7, Some("d@acme.io"), 48.0, None, Some("u1")),
        (8, Some("e@acme.io"), 48.0, Some(""), Some("u1")),
        (9, None, 48.0, Some("Unknown"), None),
        (
            10,
            Some("f@acme.io"),
            48.0,
            Some("newsletter"),
            Some("queue"),
        ),
        (11, Some("g@acme.io"), 10.0 / 60.0, None, None),
        (12, Some("b@acme.io"), 24.0 * 60.0, None, None),
    ];
    for (id, email, age, source, owner) in contacts {
        let touch = if id <= 10 {
            d.at(age - 4.0)
        } else {
            "NULL".into()
        };
        out.push(format!(
            "INSERT INTO {} (id, email, {created_col}, original_source, owner_id, first_touch_at) VALUES ({id}, {}, {}, {}, {}, {touch})",
            t("crm_contacts"),
            s(email),
            d.at(age),
            s(source),
            s(owner)
        ));
    }
    // First activities after creation: c1 +1h, c2 +3h, c3 +0.5h (and +5h), c4 +2h (and one
    // before creation, ignored), c5 +4h, c6 +6h, c7 +8h; none for c8–c11.
    let acts: [(i64, f64); 9] = [
        (1, 47.0),
        (2, 45.0),
        (3, 47.5),
        (3, 43.0),
        (4, 49.0),
        (4, 46.0),
        (5, 44.0),
        (6, 42.0),
        (7, 40.0),
    ];
    for (i, (c, at)) in acts.iter().enumerate() {
        out.push(format!(
            "INSERT INTO {} (id, contact_id, occurred_at) VALUES ({}, {c}, {})",
            t("crm_activities"),
            i + 1,
            d.at(*at)
        ));
    }
    // Deals: won in 90 days: d1 (contact sourced), d2 (deal sourced), d3 (contact "Unknown"),
    // d4 (no contact, blank source); d5 won 200 days ago; d6 lost.
    type Deal<'a> = (i64, Option<i64>, f64, bool, Option<&'a str>);
    let deals: [Deal; 6] = [
        (1, Some(1), 5.0, true, None),
        (2, Some(7), 10.0, true, Some("partner")),
        (3, Some(9), 20.0, true, None),
        (4, None, 30.0, true, Some("")),
        (5, Some(1), 200.0, true, None),
        (6, Some(2), 3.0, false, Some("google")),
    ];
    for (id, contact, closed_days, won, source) in deals {
        out.push(format!(
            "INSERT INTO {} (id, contact_id, amount, created_at, closed_at, is_won, is_closed, source, pipeline_id, stage_id) VALUES ({id}, {}, 1000, {}, {}, {}, {}, {}, 'p1', 'won')",
            t("crm_deals"),
            contact.map(|c| c.to_string()).unwrap_or_else(|| "NULL".into()),
            d.at(closed_days * 24.0 + 240.0),
            d.at(closed_days * 24.0),
            d.b(won),
            d.b(true),
            s(source)
        ));
    }
    let stages: [(&str, &str, &str, i64, &str, bool, bool); 6] = [
        ("new", "p1", "New", 0, "0.1", false, false),
        ("demo", "p1", "Demo", 1, "0.5", false, false),
        ("won", "p1", "Won", 2, "1.0", true, true),
        ("lost", "p1", "Lost", 3, "0", true, false),
        ("a", "p2", "Call", 0, "0.7", false, false),
        ("b", "p2", "Offer", 1, "0.3", false, false),
    ];
    for (id, p, label, order, prob, closed, won) in stages {
        out.push(format!(
            "INSERT INTO {} (id, pipeline_id, label, display_order, probability, is_closed, is_won) VALUES ('{id}', '{p}', '{label}', {order}, {prob}, {}, {})",
            t("crm_deal_stages"),
            d.b(closed),
            d.b(won)
        ));
    }
    // 30 leads entered 20 days ago, 15 of them became mql 18 days ago, nobody a customer.
    for i in 0..30 {
        out.push(format!(
            "INSERT INTO {} (contact_id, stage, entered_at) VALUES ({}, 'lead', {})",
            t("crm_lifecycle_events"),
            1000 + i,
            d.at(480.0)
        ));
        if i < 15 {
            out.push(format!(
                "INSERT INTO {} (contact_id, stage, entered_at) VALUES ({}, 'mql', {})",
                t("crm_lifecycle_events"),
                1000 + i,
                d.at(432.0)
            ));
        }
    }
    out
}

async fn wh(
    kind: &str,
    base: &Value,
    extra: Value,
) -> Result<Measurement, funnelgate_checker_sdk::ProbeError> {
    let mut p = base.clone();
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    support::run(kind, p, &[], T).await
}

/// Every warehouse kind on a seeded database gives the known answers.
async fn check_known_answers(base: Value) {
    let r = wh("warehouse.required_properties", &base, json!({}))
        .await
        .unwrap();
    assert_eq!((r.value, r.verdict), (Some(0.0), None), "{}", r.message);
    let r = wh(
        "warehouse.required_properties",
        &base,
        json!({ "required": [{ "object": "contacts", "name": "utm_campaign" }, { "object": "contacts", "name": "email" }, { "object": "no_such_table_here", "name": "x" }] }),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(2.0), "{}", r.message);
    assert!(
        r.message.contains("contacts.utm_campaign") && r.message.contains("no_such_table_here.x"),
        "{}",
        r.message
    );

    let r = wh("warehouse.pipeline_shape", &base, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (r.value, r.verdict),
        (Some(1.0), Some(ProbeStatus::Warn)),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("`p2` has no closed-won stage"),
        "{}",
        r.message
    );
    let r = wh(
        "warehouse.pipeline_shape",
        &base,
        json!({ "pipelines": ["p1"] }),
    )
    .await
    .unwrap();
    assert_eq!((r.value, r.verdict), (Some(0.0), None), "{}", r.message);

    let r = wh("warehouse.source_attribution_coverage", &base, json!({}))
        .await
        .unwrap();
    // In 30 days: contacts 1–11; known source: 1–6 and 10.
    assert_eq!(
        (r.value.map(|v| (v * 100.0).round() / 100.0), r.sample_size),
        (Some(63.64), Some(11)),
        "{}",
        r.message
    );

    let r = wh("warehouse.lead_to_revenue_linkage", &base, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(2.0), Some(4)),
        "{}",
        r.message
    );
    let r = wh(
        "warehouse.lead_to_revenue_linkage",
        &base,
        json!({ "window_days": 1 }),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.verdict, r.sample_size),
        (Some(ProbeStatus::NoData), Some(0)),
        "{}",
        r.message
    );

    let r = wh(
        "warehouse.lead_conversion_rates",
        &base,
        json!({ "stages": ["lead", "mql", "customer"] }),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.value, r.sample_size, r.verdict),
        (Some(0.0), Some(30), None),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("lead→mql 50% (15 of 30)"),
        "{}",
        r.message
    );
    let r = wh(
        "warehouse.lead_conversion_rates",
        &base,
        json!({ "stages": ["lead", "mql", "customer"], "min_entrants": 10 }),
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail), "{}", r.message);

    let r = wh("warehouse.speed_to_lead", &base, json!({}))
        .await
        .unwrap();
    assert_eq!(r.sample_size, Some(11));
    assert!(
        (r.value.unwrap() - 4.0).abs() < 0.01,
        "{:?} {}",
        r.value,
        r.message
    );
    let r = wh(
        "warehouse.speed_to_lead",
        &base,
        json!({ "first_touch": "column", "max_records": 5 }),
    )
    .await
    .unwrap();
    assert_eq!(r.sample_size, Some(5));
    assert!(r.message.contains("record cap"), "{}", r.message);

    let r = wh(
        "warehouse.owner_assignment",
        &base,
        json!({ "unassigned_owner_ids": ["queue"] }),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(20.0), Some(10)),
        "{}",
        r.message
    );
    let r = wh("warehouse.owner_assignment", &base, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(10.0), "{}", r.message);

    let r = wh("warehouse.duplicates", &base, json!({})).await.unwrap();
    assert_eq!(r.sample_size, Some(11));
    assert!(
        (r.value.unwrap() - 200.0 / 11.0).abs() < 1e-6,
        "{:?} {}",
        r.value,
        r.message
    );
    let r = wh("warehouse.duplicates", &base, json!({ "window_days": 30 }))
        .await
        .unwrap();
    assert!(
        (r.value.unwrap() - 10.0).abs() < 1e-6,
        "{:?} {}",
        r.value,
        r.message
    );

    let r = wh("warehouse.email_validity", &base, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(30.0), Some(10)),
        "{}",
        r.message
    );
}

fn pg_url_with_schema(schema: &str) -> (Value, impl Fn(&str) -> String) {
    let schema = schema.to_string();
    let names = json!({
        "contacts": format!("{schema}.crm_contacts"), "deals": format!("{schema}.crm_deals"),
        "deal_stages": format!("{schema}.crm_deal_stages"), "activities": format!("{schema}.crm_activities"),
        "lifecycle_events": format!("{schema}.crm_lifecycle_events"),
    });
    (
        json!({ "url": postgres_url(), "tables": names }),
        move |t: &str| format!("{schema}.{t}"),
    )
}

#[tokio::test]
async fn postgres_known_answers() {
    let url = postgres_url();
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {url} is not reachable (set FUNNELGATE_TEST_POSTGRES_URL): {e}")
    });
    let schema = unique("fg_crm");
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut c)
        .await
        .unwrap();
    let (base, t) = pg_url_with_schema(&schema);
    let d = Ddl {
        kind: Kind::Pg,
        now: Utc::now(),
    };
    for stmt in seed_sql(&d, &t, "created_at") {
        sqlx::raw_sql(AssertSqlSafe(stmt.clone()))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    check_known_answers(base.clone()).await;

    // A read-only session: the database refuses writes even if a query tried.
    let e = wh(
        "warehouse.duplicates",
        &base,
        json!({ "tables": { "contacts": format!("{schema}.no_such_table") } }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent);
    assert!(
        e.message.contains("postgres 127.0.0.1:5432/test") && e.message.contains("no_such_table"),
        "{e}"
    );
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_password_comes_from_the_secret_and_never_shows() {
    let role = unique("fg_crm_reader");
    let url = postgres_url();
    let mut c = sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is not reachable: {e}"));
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'right-horse-battery'"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    let mut u = reqwest::Url::parse(&url).unwrap();
    u.set_username(&role).unwrap();
    let params = json!({ "url": u.to_string() });
    // Trust auth on this machine may accept any password; either way the secret never shows.
    let secret = "wrong-horse-battery-staple";
    let r = support::run("warehouse.duplicates", params, &[("WAREHOUSE", secret)], T).await;
    match r {
        Ok(m) => assert!(!m.message.contains(secret)),
        Err(e) => assert!(!e.message.contains(secret), "{e}"),
    }
    sqlx::raw_sql(AssertSqlSafe(format!("DROP ROLE {role}")))
        .execute(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn mariadb_known_answers() {
    let url = mysql_url();
    let mut c = sqlx::MySqlConnection::connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!("MariaDB/MySQL at {url} is not reachable (set FUNNELGATE_TEST_MYSQL_URL): {e}")
        });
    let prefix = unique("fg_crm");
    let t = {
        let prefix = prefix.clone();
        move |name: &str| format!("{prefix}_{name}")
    };
    let tables = json!({
        "contacts": t("crm_contacts"), "deals": t("crm_deals"), "deal_stages": t("crm_deal_stages"),
        "activities": t("crm_activities"), "lifecycle_events": t("crm_lifecycle_events"),
    });
    let d = Ddl {
        kind: Kind::My,
        now: Utc::now(),
    };
    for stmt in seed_sql(&d, &t, "created_at") {
        sqlx::raw_sql(AssertSqlSafe(stmt.clone()))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    check_known_answers(json!({ "url": url.replace("mysql://", "mariadb://"), "tables": tables }))
        .await;
    for name in [
        "crm_contacts",
        "crm_deals",
        "crm_deal_stages",
        "crm_activities",
        "crm_lifecycle_events",
    ] {
        sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE {}", t(name))))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sqlite_known_answers_with_a_renamed_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let d = Ddl {
        kind: Kind::Lite,
        now: Utc::now(),
    };
    for stmt in seed_sql(&d, &|t: &str| t.to_string(), "createdate") {
        sqlx::raw_sql(AssertSqlSafe(stmt.clone()))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    c.close().await.unwrap();
    let base = json!({ "sqlite_path": path.display().to_string(), "columns": { "contacts.created_at": "createdate" } });
    check_known_answers(base.clone()).await;
    let base_url = json!({ "url": format!("sqlite:{}", path.display()), "columns": { "contacts.created_at": "createdate" } });
    let r = wh("warehouse.duplicates", &base_url, json!({}))
        .await
        .unwrap();
    assert_eq!(r.sample_size, Some(11));
    // Without the override the documented column is missing: a specific error.
    let e = wh(
        "warehouse.source_attribution_coverage",
        &json!({ "sqlite_path": path.display().to_string() }),
        json!({}),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("created_at"), "{e}");
}

#[tokio::test]
async fn unreachable_database_and_bad_params_are_errors() {
    let e = wh(
        "warehouse.duplicates",
        &json!({ "url": "postgres://reader@127.0.0.1:1/crm" }),
        json!({}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Transient);
    assert!(
        e.message.contains("postgres 127.0.0.1:1/crm") && e.message.contains("cannot connect"),
        "{e}"
    );
    let reg = support::registry();
    for bad in [
        json!({ "url": "postgres://reader:secret@db/crm" }),
        json!({ "url": "oracle://db/crm" }),
        json!({ "tables": { "contacts": "x; DROP TABLE y" } }),
        json!({ "tables": { "leads": "x" } }),
        json!({ "columns": { "contacts.created_at": "a b" } }),
        json!({ "columns": { "contacts.nope": "a" } }),
    ] {
        let e = reg
            .build("warehouse.duplicates", &bad)
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        assert_eq!(e.kind, ProbeErrorKind::InvalidParams, "{bad}: {e}");
    }
    let e = support::run("warehouse.duplicates", json!({}), &[], T)
        .await
        .unwrap_err();
    assert!(e.message.contains("no database given"), "{e}");
}
