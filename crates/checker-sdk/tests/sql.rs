//! The `sql` probe against the real PostgreSQL and MariaDB on this machine and SQLite files:
//! known answers, NULL, zero and two rows, writes rejected, statement timeouts, connection and
//! authentication failures that never echo a password.
//!
//! Servers: `FUNNELGATE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! and `FUNNELGATE_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`). The tests fail
//! when a server is unreachable.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{run, run_direct, secrets, spec};
use funnelgate_checker_sdk::ProbeErrorKind;
use funnelgate_core::{ProbeSpec, ProbeStatus, Thresholds};
use serde_json::json;
use sqlx::{Connection, Executor};

fn postgres_url() -> String {
    std::env::var("FUNNELGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn mysql_url() -> String {
    std::env::var("FUNNELGATE_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), rand::random::<u32>())
}

fn sql(id: &str, params: serde_json::Value) -> ProbeSpec {
    spec(id, "sql", params, Duration::from_secs(10))
}

/// Ten leads, four won, amounts 10..=100.
const SEED: &[(i32, bool, i32)] = &[
    (1, true, 10),
    (2, false, 20),
    (3, true, 30),
    (4, false, 40),
    (5, false, 50),
    (6, true, 60),
    (7, false, 70),
    (8, false, 80),
    (9, true, 90),
    (10, false, 100),
];

async fn seed_postgres(schema: &str) {
    let mut c = sqlx::PgConnection::connect(&postgres_url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} must be reachable for these tests: {e}",
                postgres_url()
            )
        });
    let mut ddl = format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.leads (id int primary key, won boolean not null, amount numeric(10,2) not null); INSERT INTO {schema}.leads VALUES "
    );
    ddl.push_str(
        &SEED
            .iter()
            .map(|(i, w, a)| format!("({i}, {w}, {a})"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    c.execute(sqlx::AssertSqlSafe(ddl))
        .await
        .expect("seed postgres");
}

async fn drop_postgres(schema: &str) {
    let mut c = sqlx::PgConnection::connect(&postgres_url())
        .await
        .expect("connect");
    c.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await
        .expect("drop schema");
}

async fn seed_mysql(table: &str) {
    let mut c = sqlx::MySqlConnection::connect(&mysql_url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "MariaDB/MySQL at {} must be reachable for these tests: {e}",
                mysql_url()
            )
        });
    c.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id int primary key, won boolean not null, amount decimal(10,2) not null)"
    )))
    .await
    .expect("create table");
    let rows = SEED
        .iter()
        .map(|(i, w, a)| format!("({i}, {w}, {a})"))
        .collect::<Vec<_>>()
        .join(", ");
    c.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} VALUES {rows}"
    )))
    .await
    .expect("seed mysql");
}

async fn drop_mysql(table: &str) {
    let mut c = sqlx::MySqlConnection::connect(&mysql_url())
        .await
        .expect("connect");
    c.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .await
        .expect("drop table");
}

/// The answers every back end must give on the seeded table.
async fn known_answers(url_params: serde_json::Value, table: &str, win_rate_sql: &str) {
    let with = |q: String| {
        let mut p = url_params.clone();
        p["query"] = json!(q);
        p
    };

    // A rate with its sample size, judged against thresholds.
    let mut s = sql(
        "win-rate",
        with(format!("{win_rate_sql}, count(*) FROM {table}")),
    );
    s.params["unit"] = json!("percent");
    s.params["window"] = json!("30d");
    s.thresholds = Thresholds {
        warn_below: Some(50.0),
        fail_below: Some(30.0),
        ..Default::default()
    };
    let r = run(s.clone(), secrets(&[])).await;
    assert_eq!(r.status, ProbeStatus::Warn, "{}", r.message);
    assert_eq!(r.value, Some(40.0));
    assert_eq!(r.sample_size, Some(10));
    assert_eq!(r.unit, "percent");
    assert_eq!(r.window.map(|w| w.to_string()).as_deref(), Some("30d"));
    assert!(
        r.message.starts_with("40.0% below warn threshold 50.0; "),
        "{}",
        r.message
    );
    assert!(r.message.ends_with("(sample of 10)"), "{}", r.message);

    // min_sample above the sample: NO_DATA.
    s.min_sample = Some(25);
    let r = run(s, secrets(&[])).await;
    assert_eq!(r.status, ProbeStatus::NoData, "{}", r.message);
    assert!(
        r.message.starts_with("sample of 10 below the minimum 25; "),
        "{}",
        r.message
    );

    // Integers, decimals, floats and booleans.
    for (q, want) in [
        (format!("SELECT count(*) FROM {table}"), 10.0),
        (format!("SELECT sum(amount) FROM {table}"), 550.0),
        (format!("SELECT avg(amount) FROM {table} WHERE won"), 47.5),
        (format!("SELECT max(amount) / 8 FROM {table}"), 12.5),
        ("SELECT 1 = 1".to_string(), 1.0),
        ("SELECT 1 = 0".to_string(), 0.0),
        ("SELECT -0.0001".to_string(), -0.0001),
    ] {
        // Thresholds every value here passes: the loop checks decoding, not judging.
        let mut s = sql("q", with(q.clone()));
        s.thresholds = funnelgate_core::Thresholds {
            fail_below: Some(-1.0),
            ..Default::default()
        };
        let r = run(s, secrets(&[])).await;
        assert_eq!(r.value, Some(want), "{q}: {}", r.message);
        assert_eq!(r.status, ProbeStatus::Pass, "{q}: {}", r.message);
    }

    // NULL and zero rows: NO_DATA. Two rows, three columns, text: ERROR.
    let r = run(
        sql(
            "null",
            with(format!("SELECT max(amount) FROM {table} WHERE id > 100")),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::NoData, "{}", r.message);
    assert!(r.message.contains("query returned NULL"), "{}", r.message);
    let r = run(
        sql(
            "none",
            with(format!("SELECT amount FROM {table} WHERE id > 100")),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::NoData, "{}", r.message);
    assert!(
        r.message.contains("query returned no rows"),
        "{}",
        r.message
    );
    let r = run(
        sql(
            "two",
            with(format!("SELECT amount FROM {table} WHERE id <= 2")),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::Error, "{}", r.message);
    assert!(r.message.contains("more than one row"), "{}", r.message);
    let r = run(sql("cols", with("SELECT 1, 2, 3".into())), secrets(&[])).await;
    assert!(
        r.message.contains("query returned 3 columns"),
        "{}",
        r.message
    );
    let r = run(sql("text", with("SELECT 'forty'".into())), secrets(&[])).await;
    assert_eq!(r.status, ProbeStatus::Error);
    assert!(
        r.message.contains("expected a number or a boolean"),
        "{}",
        r.message
    );
    let r = run(sql("neg-sample", with("SELECT 1, -5".into())), secrets(&[])).await;
    assert!(
        r.message.contains("expected a non-negative integer"),
        "{}",
        r.message
    );

    // A syntax error is a permanent ERROR carrying the database's message.
    let e = run_direct(sql("syntax", with("SELEC 1".into())), secrets(&[]))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent, "{e}");
}

/// Writes are refused by the database, and the data is unchanged.
async fn writes_rejected(
    url_params: serde_json::Value,
    statements: &[String],
    count_query: String,
) {
    for stmt in statements {
        let mut p = url_params.clone();
        p["query"] = json!(stmt);
        let e = run_direct(sql("write", p), secrets(&[])).await.unwrap_err();
        assert!(
            e.message.contains("read-only")
                || e.message.contains("readonly")
                || e.message.contains("read only"),
            "{stmt}: {e}"
        );
    }
    let mut p = url_params;
    p["query"] = json!(count_query);
    let r = run(sql("count", p), secrets(&[])).await;
    assert_eq!(r.value, Some(10.0), "the table is unchanged: {}", r.message);
}

#[tokio::test]
async fn postgres() {
    let schema = unique("fg_sdk_pg");
    seed_postgres(&schema).await;
    let params = json!({"url": postgres_url()});
    let table = format!("{schema}.leads");
    known_answers(
        params.clone(),
        &table,
        "SELECT count(*) FILTER (WHERE won) * 100.0 / count(*)",
    )
    .await;
    writes_rejected(
        params.clone(),
        &[
            format!("INSERT INTO {table} VALUES (11, true, 1) RETURNING 1"),
            format!("UPDATE {table} SET amount = 0 RETURNING 1"),
            format!("CREATE TABLE {schema}.evil AS SELECT 1"),
        ],
        format!("SELECT count(*) FROM {table}"),
    )
    .await;

    // The statement timeout is the probe's timeout: the server cancels the query.
    let s = spec(
        "sleepy",
        "sql",
        json!({"url": postgres_url(), "query": "SELECT 1 FROM pg_sleep(5)"}),
        Duration::from_secs(1),
    );
    let e = run_direct(s, secrets(&[])).await.unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent);
    assert!(
        e.message
            .contains("query cancelled by the statement timeout of 1s"),
        "{e}"
    );
    // The connection is still good afterwards.
    let r = run(
        sql("after", json!({"url": postgres_url(), "query": "SELECT 2"})),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.value, Some(2.0), "{}", r.message);

    // Numeric edge cases through the binary protocol.
    for (q, want) in [
        ("SELECT 12345.678::numeric", 12345.678),
        ("SELECT 0::numeric", 0.0),
        ("SELECT 1e20::numeric", 1e20),
    ] {
        let r = run(
            sql("n", json!({"url": postgres_url(), "query": q})),
            secrets(&[]),
        )
        .await;
        assert_eq!(r.value, Some(want), "{q}: {}", r.message);
    }
    let r = run(
        sql(
            "nan",
            json!({"url": postgres_url(), "query": "SELECT 'NaN'::numeric"}),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::Error);
    assert!(r.message.contains("NaN"), "{}", r.message);

    drop_postgres(&schema).await;
}

#[tokio::test]
async fn postgres_credentials_and_connection_errors() {
    // A password in `url` is refused at build time, without echoing it.
    let r = run(
        sql(
            "pw",
            json!({"url": "postgres://postgres:hunter2@127.0.0.1:5432/test", "query": "SELECT 1"}),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::Error);
    assert!(
        r.message.contains("must not contain a password"),
        "{}",
        r.message
    );
    assert!(!r.message.contains("hunter2"), "{}", r.message);

    // The whole URL from a secret: works, and a failure never echoes the password.
    let base = reqwest::Url::parse(&postgres_url()).expect("postgres url");
    let mut with_pw = base.clone();
    with_pw
        .set_password(Some("s3cret-pw-value"))
        .expect("password");
    let mut s = sql("dsn", json!({"query": "SELECT 7"}));
    s.secret = Some("WAREHOUSE_DSN".into());
    let r = run(s.clone(), secrets(&[("WAREHOUSE_DSN", with_pw.as_str())])).await;
    assert_eq!(r.value, Some(7.0), "{}", r.message);
    assert!(!format!("{r:?}").contains("s3cret-pw-value"));

    let mut missing_db = with_pw.clone();
    missing_db.set_path("/no_such_database_fg");
    let e = run_direct(
        s.clone(),
        secrets(&[("WAREHOUSE_DSN", missing_db.as_str())]),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("no_such_database_fg"), "{e}");
    assert!(!e.message.contains("s3cret-pw-value"), "{e}");

    // `url` without a password plus a secret holding only the password.
    let mut s = sql(
        "pw-secret",
        json!({"url": base.as_str(), "query": "SELECT 8"}),
    );
    s.secret = Some("WAREHOUSE_PASSWORD".into());
    let r = run(s, secrets(&[("WAREHOUSE_PASSWORD", "only-the-password")])).await;
    assert_eq!(r.value, Some(8.0), "{}", r.message);

    // A secret that is not a URL: said so, without echoing it.
    let mut s = sql("junk", json!({"query": "SELECT 1"}));
    s.secret = Some("JUNK".into());
    let e = run_direct(s, secrets(&[("JUNK", "host=db password=zz-top-secret")]))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("secret `JUNK` is not a database URL"),
        "{e}"
    );
    assert!(!e.message.contains("zz-top-secret"), "{e}");

    // Connection refused: transient, names the host and port, never the password.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let mut s = sql("refused", json!({"query": "SELECT 1"}));
    s.secret = Some("DOWN_DSN".into());
    let dsn = format!("postgres://postgres:pw-never-shown@127.0.0.1:{port}/test");
    let e = run_direct(s, secrets(&[("DOWN_DSN", &dsn)]))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Transient, "{e}");
    assert!(
        e.message
            .contains(&format!("postgres 127.0.0.1:{port}/test: cannot connect")),
        "{e}"
    );
    assert!(!e.message.contains("pw-never-shown"), "{e}");

    // Neither url, sqlite_path nor secret.
    let r = run(sql("nothing", json!({"query": "SELECT 1"})), secrets(&[])).await;
    assert!(
        r.message
            .contains("set `url` (without a password), `sqlite_path`, or name a `secret`"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn mariadb() {
    let table = unique("fg_sdk_my");
    seed_mysql(&table).await;
    let params = json!({"url": mysql_url()});
    known_answers(params.clone(), &table, "SELECT sum(won) * 100.0 / count(*)").await;
    writes_rejected(
        params.clone(),
        &[
            format!("INSERT INTO {table} VALUES (11, true, 1)"),
            format!("UPDATE {table} SET amount = 0"),
            format!("DELETE FROM {table}"),
        ],
        format!("SELECT count(*) FROM {table}"),
    )
    .await;

    // A session change made by one query does not leak into the next: still read-only.
    let r = run(
        sql(
            "undo",
            json!({"url": mysql_url(), "query": "SET SESSION TRANSACTION READ WRITE"}),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::NoData, "{}", r.message);
    writes_rejected(
        params.clone(),
        &[format!("INSERT INTO {table} VALUES (12, true, 1)")],
        format!("SELECT count(*) FROM {table}"),
    )
    .await;

    // The statement timeout is the probe's timeout.
    let s = spec(
        "sleepy",
        "sql",
        json!({"url": mysql_url(), "query": format!("SELECT count(*) FROM {table} WHERE SLEEP(5) = 0")}),
        Duration::from_secs(1),
    );
    let e = run_direct(s, secrets(&[])).await.unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent, "{e}");
    assert!(
        e.message
            .contains("query cancelled by the statement timeout of 1s"),
        "{e}"
    );

    // A bad password: permanent, and never echoed.
    let mut bad = reqwest::Url::parse(&mysql_url()).expect("mysql url");
    bad.set_password(Some("wrong-pw-4242")).expect("password");
    let mut s = sql("auth", json!({"query": "SELECT 1"}));
    s.secret = Some("MY_DSN".into());
    let e = run_direct(s, secrets(&[("MY_DSN", bad.as_str())]))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent, "{e}");
    assert!(
        e.message.contains("authentication failed") || e.message.contains("Access denied"),
        "{e}"
    );
    assert!(!e.message.contains("wrong-pw-4242"), "{e}");

    // `mariadb://` is accepted as well.
    let maria = mysql_url().replacen("mysql://", "mariadb://", 1);
    let r = run(
        sql("scheme", json!({"url": maria, "query": "SELECT 3"})),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.value, Some(3.0), "{}", r.message);

    drop_mysql(&table).await;
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warehouse.db");
    {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut c = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .expect("create sqlite");
        c.execute("CREATE TABLE leads (id integer primary key, won boolean not null, amount real not null)")
            .await
            .expect("create table");
        let rows = SEED
            .iter()
            .map(|(i, w, a)| format!("({i}, {}, {a})", u8::from(*w)))
            .collect::<Vec<_>>()
            .join(", ");
        c.execute(sqlx::AssertSqlSafe(format!(
            "INSERT INTO leads VALUES {rows}"
        )))
        .await
        .expect("seed");
        c.close().await.expect("close");
    }
    let path_str = path.to_str().expect("utf-8 path").to_string();
    let by_path = json!({"sqlite_path": path_str});
    known_answers(
        by_path.clone(),
        "leads",
        "SELECT sum(won) * 100.0 / count(*)",
    )
    .await;
    writes_rejected(
        by_path.clone(),
        &[
            "INSERT INTO leads VALUES (11, 1, 1) RETURNING 1".into(),
            "DELETE FROM leads RETURNING 1".into(),
        ],
        "SELECT count(*) FROM leads".into(),
    )
    .await;

    // The same through a `sqlite:` URL.
    let by_url = json!({"url": format!("sqlite:{path_str}?mode=ro")});
    let mut p = by_url.clone();
    p["query"] = json!("SELECT count(*) FROM leads");
    let r = run(sql("url", p), secrets(&[])).await;
    assert_eq!(r.value, Some(10.0), "{}", r.message);

    // A runaway query is interrupted at the probe's timeout.
    let s = spec(
        "runaway",
        "sql",
        json!({"sqlite_path": path_str, "query": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"}),
        Duration::from_secs(1),
    );
    let e = run_direct(s, secrets(&[])).await.unwrap_err();
    assert!(
        e.message
            .contains("query cancelled by the statement timeout of 1s"),
        "{e}"
    );

    // A missing file is not created.
    let missing = dir.path().join("missing.db");
    let r = run(
        sql(
            "missing",
            json!({"sqlite_path": missing.to_str().expect("utf-8"), "query": "SELECT 1"}),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::Error, "{}", r.message);
    assert!(
        !missing.exists(),
        "a read-only probe never creates a database"
    );
}

/// Sessions come from sqlx's pool: the connection is reused between runs, yet a setting one
/// query makes does not leak into the next (every session is a rolled-back read-only
/// transaction), and a query cancelled by the statement timeout leaves the pool usable.
#[tokio::test]
async fn pooled_sessions_are_reused_and_isolated() {
    let runner = common::runner(secrets(&[]));
    let judged = |id: &str, query: &str, timeout: Duration| {
        let mut s = spec(
            id,
            "sql",
            json!({"url": postgres_url(), "query": query}),
            timeout,
        );
        s.thresholds = Thresholds {
            fail_above: Some(0.5),
            ..Default::default()
        };
        s
    };
    // Sets a session-level (not LOCAL) variable; the sample column is the backend's pid. A
    // connection goes back to the pool a moment after its session closes, so sequential runs
    // may use either of the (at most 2) pooled connections: set it on them, then read it back.
    let mut pids = std::collections::BTreeSet::new();
    for i in 0..4 {
        let r = runner
            .run_one(judged(
                &format!("set{i}"),
                "SELECT length(set_config('fg.leak', 'x', false)) - 1, pg_backend_pid()",
                Duration::from_secs(10),
            ))
            .await;
        assert_eq!(r.value, Some(0.0), "{}", r.message);
        pids.insert(r.sample_size.expect("pid"));
    }
    let read = judged(
        "read",
        "SELECT (coalesce(current_setting('fg.leak', true), '') = 'x')::int, pg_backend_pid()",
        Duration::from_secs(10),
    );
    for _ in 0..4 {
        let r = runner.run_one(read.clone()).await;
        assert_eq!(
            r.value,
            Some(0.0),
            "the setting did not leak: {}",
            r.message
        );
        assert_eq!(r.status, ProbeStatus::Pass, "{}", r.message);
        pids.insert(r.sample_size.expect("pid"));
    }
    assert!(
        pids.len() <= 2,
        "at most 2 pooled connections per url, saw backends {pids:?}"
    );

    // A statement timeout on the pooled connection, then the pool still serves the next run.
    let r = runner
        .run_one(judged(
            "sleepy",
            "SELECT 0 FROM pg_sleep(3)",
            Duration::from_millis(500),
        ))
        .await;
    assert_eq!(r.status, ProbeStatus::Error, "{}", r.message);
    let r = runner.run_one(read).await;
    assert_eq!(r.status, ProbeStatus::Pass, "{}", r.message);
    assert_eq!(r.value, Some(0.0), "{}", r.message);
}
