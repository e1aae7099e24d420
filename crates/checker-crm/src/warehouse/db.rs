//! One read-only database session per probe run, on PostgreSQL, MySQL/MariaDB or SQLite, and the
//! few SQL dialect differences the warehouse probes need (identifier quoting, timestamp
//! comparison, text casts, bind parameter markers).
//!
//! Read-only is enforced by the database: PostgreSQL and MySQL/MariaDB sessions are set
//! `READ ONLY`, SQLite files are opened read-only with `query_only`. Every statement is bounded
//! by the probe's timeout. Messages name the target (`postgres db:5432/crm`), never credentials.
//!
//! (The SDK's generic `sql` probe keeps its connection code private; this module is the CRM
//! checker's own, small, per-run equivalent.)

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use funnelgate_checker_sdk::{ProbeContext, ProbeError};
use secrecy::ExposeSecret;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};

use crate::time::Utc;

/// The database family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
    /// SQLite.
    Sqlite,
}

/// The backend a URL names.
pub fn backend_of(url: &str) -> Option<Backend> {
    let scheme = url.split(':').next()?.to_ascii_lowercase();
    match scheme.as_str() {
        "postgres" | "postgresql" => Some(Backend::Postgres),
        "mysql" | "mariadb" => Some(Backend::MySql),
        "sqlite" => Some(Backend::Sqlite),
        _ => None,
    }
}

/// A `url` param: a known scheme, no password (that belongs in the secret).
pub fn check_url_param(u: &str) -> Result<(), ProbeError> {
    let bad = |m: &str| ProbeError::params(format!("`url`: {m}"));
    match backend_of(u) {
        None => Err(bad(
            "must start with postgres://, postgresql://, mysql://, mariadb:// or sqlite:",
        )),
        Some(Backend::Sqlite) => Ok(()),
        Some(_) => {
            let url = reqwest::Url::parse(u).map_err(|e| bad(&e.to_string()))?;
            if url.password().is_some()
                || url
                    .query_pairs()
                    .any(|(k, _)| k.eq_ignore_ascii_case("password"))
            {
                return Err(bad(
                    "must not contain a password: put the password (or the whole url) in a secret named by the probe's `secret`",
                ));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(bad("needs a host"));
            }
            Ok(())
        }
    }
}

enum Inner {
    Pg(PgConnection),
    My(MySqlConnection),
    Lite(SqliteConnection),
}

/// An open, read-only session.
pub struct Db {
    inner: Inner,
    /// `postgres db:5432/crm` — for messages.
    pub label: String,
    /// The dialect.
    pub backend: Backend,
    hide: Vec<String>,
    timeout: Duration,
}

/// Where the connection comes from: `url` (the secret, if named, is its password), `sqlite_path`,
/// or the probe's secret holding the whole URL.
pub async fn connect(
    ctx: &ProbeContext,
    url: Option<&str>,
    sqlite_path: Option<&str>,
) -> Result<Db, ProbeError> {
    let timeout = ctx.timeout();
    let (dsn, password) = match (url, sqlite_path) {
        (Some(_), Some(_)) => {
            return Err(ProbeError::params("set `url` or `sqlite_path`, not both"));
        }
        (None, Some(path)) => return open_sqlite_path(path, timeout).await,
        (Some(u), None) => {
            let pw = match &ctx.spec.secret {
                Some(_) => Some(ctx.secret()?.expose_secret().to_string()),
                None => None,
            };
            (u.to_string(), pw)
        }
        (None, None) => {
            if ctx.spec.secret.is_none() {
                return Err(ProbeError::params(
                    "no database given: set `url` (without password), `sqlite_path`, or a `secret` holding the connection url",
                ));
            }
            (ctx.secret()?.expose_secret().to_string(), None)
        }
    };
    let mut hide: Vec<String> = Vec::new();
    if let Some(p) = &password {
        hide.push(p.clone());
    }
    if let Ok(u) = reqwest::Url::parse(&dsn)
        && let Some(p) = u.password()
    {
        hide.push(p.to_string());
    }
    let label = label_of(&dsn);
    let fail = |e: sqlx::Error| scrub_error(db_error(e, &label, timeout), &hide);
    let inner = match backend_of(&dsn) {
        Some(Backend::Postgres) => {
            let mut o = PgConnectOptions::from_str(&dsn).map_err(|e| {
                ProbeError::params(format!(
                    "{label}: invalid connection url: {}",
                    scrub(&e.to_string(), &hide)
                ))
            })?;
            if let Some(p) = &password {
                o = o.password(p);
            }
            let o = o
                .options([("default_transaction_read_only", "on"), ("TimeZone", "UTC")])
                .disable_statement_logging();
            let mut c = with_timeout(timeout, &label, o.connect())
                .await?
                .map_err(fail)?;
            let setup = format!("SET statement_timeout = {}", timeout.as_millis().max(1));
            sqlx::raw_sql(AssertSqlSafe(setup))
                .execute(&mut c)
                .await
                .map_err(fail)?;
            Inner::Pg(c)
        }
        Some(Backend::MySql) => {
            let dsn = if dsn.to_ascii_lowercase().starts_with("mariadb:") {
                format!("mysql:{}", &dsn["mariadb:".len()..])
            } else {
                dsn.clone()
            };
            let mut o = MySqlConnectOptions::from_str(&dsn).map_err(|e| {
                ProbeError::params(format!(
                    "{label}: invalid connection url: {}",
                    scrub(&e.to_string(), &hide)
                ))
            })?;
            if let Some(p) = &password {
                o = o.password(p);
            }
            let o = o
                .timezone(Some("+00:00".to_string()))
                .disable_statement_logging();
            let mut c = with_timeout(timeout, &label, o.connect())
                .await?
                .map_err(fail)?;
            sqlx::raw_sql("SET SESSION TRANSACTION READ ONLY")
                .execute(&mut c)
                .await
                .map_err(fail)?;
            let version: String = sqlx::query_scalar("SELECT VERSION()")
                .fetch_one(&mut c)
                .await
                .map_err(fail)?;
            let limit = if version.to_ascii_lowercase().contains("mariadb") {
                format!(
                    "SET SESSION max_statement_time = {:.3}",
                    timeout.as_secs_f64().max(0.001)
                )
            } else {
                format!(
                    "SET SESSION max_execution_time = {}",
                    timeout.as_millis().max(1)
                )
            };
            sqlx::raw_sql(AssertSqlSafe(limit))
                .execute(&mut c)
                .await
                .map_err(fail)?;
            Inner::My(c)
        }
        Some(Backend::Sqlite) => {
            let o = SqliteConnectOptions::from_str(&dsn)
                .map_err(|e| ProbeError::params(format!("{label}: invalid sqlite url: {e}")))?
                .read_only(true)
                .pragma("query_only", "ON")
                .disable_statement_logging();
            let c = with_timeout(timeout, &label, o.connect())
                .await?
                .map_err(fail)?;
            return finish_sqlite(c, label, timeout).await;
        }
        None => {
            return Err(ProbeError::params(
                "the connection url must start with postgres://, postgresql://, mysql://, mariadb:// or sqlite:",
            ));
        }
    };
    let backend = match inner {
        Inner::Pg(_) => Backend::Postgres,
        Inner::My(_) => Backend::MySql,
        Inner::Lite(_) => Backend::Sqlite,
    };
    Ok(Db {
        inner,
        label,
        backend,
        hide,
        timeout,
    })
}

async fn open_sqlite_path(path: &str, timeout: Duration) -> Result<Db, ProbeError> {
    let label = format!("sqlite {path}");
    let o = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .pragma("query_only", "ON")
        .disable_statement_logging();
    let c = with_timeout(timeout, &label, o.connect())
        .await?
        .map_err(|e| db_error(e, &label, timeout))?;
    finish_sqlite(c, label, timeout).await
}

async fn finish_sqlite(
    mut c: SqliteConnection,
    label: String,
    timeout: Duration,
) -> Result<Db, ProbeError> {
    {
        let deadline = std::time::Instant::now() + timeout;
        let mut handle = c
            .lock_handle()
            .await
            .map_err(|e| db_error(e, &label, timeout))?;
        // Interrupts a statement (SQLITE_INTERRUPT) once the probe's time is up.
        handle.set_progress_handler(1000, move || std::time::Instant::now() < deadline);
    }
    Ok(Db {
        inner: Inner::Lite(c),
        label,
        backend: Backend::Sqlite,
        hide: Vec::new(),
        timeout,
    })
}

async fn with_timeout<T>(
    timeout: Duration,
    label: &str,
    f: impl Future<Output = T>,
) -> Result<T, ProbeError> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| ProbeError::transient(format!("{label}: cannot connect: timed out")))
}

fn label_of(dsn: &str) -> String {
    match backend_of(dsn) {
        Some(Backend::Sqlite) => {
            let path = dsn.trim_start_matches("sqlite:").trim_start_matches("//");
            let path = path.split('?').next().unwrap_or(path);
            format!("sqlite {path}")
        }
        Some(b) => {
            let kind = if b == Backend::Postgres {
                "postgres"
            } else {
                "mysql"
            };
            match reqwest::Url::parse(dsn) {
                Ok(u) => format!(
                    "{kind} {}:{}{}",
                    u.host_str().unwrap_or("localhost"),
                    u.port()
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "default port".into()),
                    u.path()
                ),
                Err(_) => kind.to_string(),
            }
        }
        None => "database".to_string(),
    }
}

fn scrub(text: &str, hide: &[String]) -> String {
    let mut out = text.to_string();
    for h in hide.iter().filter(|h| h.len() >= 2) {
        out = out.replace(h.as_str(), "***");
    }
    out
}

fn scrub_error(mut e: ProbeError, hide: &[String]) -> ProbeError {
    e.message = scrub(&e.message, hide);
    e
}

/// Whether a database error says a table or column does not exist.
pub fn is_undefined_object(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    if let Some(my) = db.try_downcast_ref::<MySqlDatabaseError>() {
        return matches!(my.number(), 1054 | 1146);
    }
    let code: Option<Cow<'_, str>> = db.code();
    if matches!(code.as_deref(), Some("42703" | "42P01" | "3F000")) {
        return true;
    }
    let m = db.message();
    m.contains("no such column") || m.contains("no such table")
}

/// Turn a database error into a probe error naming the target, never credentials.
pub fn db_error(e: sqlx::Error, label: &str, timeout: Duration) -> ProbeError {
    let timed_out = || {
        ProbeError::permanent(format!(
            "{label}: query cancelled by the statement timeout of {}ms",
            timeout.as_millis()
        ))
    };
    match e {
        sqlx::Error::Io(io) => ProbeError::transient(format!("{label}: cannot connect: {io}")),
        sqlx::Error::Tls(t) => ProbeError::permanent(format!("{label}: tls: {t}")),
        sqlx::Error::PoolTimedOut => {
            ProbeError::transient(format!("{label}: cannot connect: timed out"))
        }
        sqlx::Error::Database(db) => {
            let msg = db.message().to_string();
            if let Some(my) = db.try_downcast_ref::<MySqlDatabaseError>() {
                return match my.number() {
                    1969 | 3024 | 1317 => timed_out(),
                    1040 | 1203 | 1205 | 1213 => ProbeError::transient(format!("{label}: {msg}")),
                    1044 | 1045 => {
                        ProbeError::permanent(format!("{label}: authentication failed: {msg}"))
                    }
                    _ => ProbeError::permanent(format!("{label}: {msg}")),
                };
            }
            let code: Option<Cow<'_, str>> = db.code();
            match code.as_deref().unwrap_or("") {
                "57014" => timed_out(),
                "28P01" | "28000" => {
                    ProbeError::permanent(format!("{label}: authentication failed: {msg}"))
                }
                "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "08006" | "08001"
                | "08004" => ProbeError::transient(format!("{label}: {msg}")),
                _ if label.starts_with("sqlite") && msg.contains("interrupted") => timed_out(),
                _ => ProbeError::permanent(format!("{label}: {msg}")),
            }
        }
        sqlx::Error::Protocol(p) => ProbeError::transient(format!("{label}: protocol error: {p}")),
        other => ProbeError::permanent(format!("{label}: {other}")),
    }
}

/// A statement with its string parameters, built for one dialect.
#[derive(Clone, Debug, Default)]
pub struct Sql {
    /// The statement text.
    pub text: String,
    /// Bound string parameters, in order.
    pub binds: Vec<String>,
}

/// The SQL differences between the three databases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialect(pub Backend);

impl Dialect {
    /// Quote a (possibly schema-qualified, already validated) identifier.
    pub fn ident(&self, name: &str) -> String {
        let q = if self.0 == Backend::MySql { '`' } else { '"' };
        name.split('.')
            .map(|p| format!("{q}{p}{q}"))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// An expression comparable with [`Dialect::ts_lit`] values.
    pub fn ts(&self, expr: &str) -> String {
        match self.0 {
            Backend::Sqlite => format!("julianday({expr})"),
            _ => expr.to_string(),
        }
    }

    /// A UTC instant as a literal comparable with [`Dialect::ts`] expressions.
    pub fn ts_lit(&self, t: Utc) -> String {
        let s = t.sql();
        match self.0 {
            Backend::Postgres => format!("CAST('{s}+00' AS TIMESTAMPTZ)"),
            Backend::MySql => format!("CAST('{s}' AS DATETIME(3))"),
            Backend::Sqlite => format!("julianday('{s}')"),
        }
    }

    /// An expression cast to text (decoded as a string whatever the column type).
    pub fn text(&self, expr: &str) -> String {
        match self.0 {
            Backend::MySql => format!("CAST({expr} AS CHAR)"),
            _ => format!("CAST({expr} AS TEXT)"),
        }
    }

    /// The `n`th (1-based) bind parameter marker (`$n` or `?`).
    pub fn bind_param(&self, n: usize) -> String {
        match self.0 {
            Backend::Postgres => format!("${n}"),
            _ => "?".to_string(),
        }
    }

    /// `expr IN (…)` over bound strings, appending the binds; `FALSE`-equivalent when empty.
    pub fn in_list(&self, expr: &str, values: &[String], binds: &mut Vec<String>) -> String {
        if values.is_empty() {
            return "1 = 0".to_string();
        }
        let ph: Vec<String> = values
            .iter()
            .map(|v| {
                binds.push(v.clone());
                self.bind_param(binds.len())
            })
            .collect();
        format!("{expr} IN ({})", ph.join(", "))
    }
}

impl Db {
    /// This session's dialect.
    pub fn dialect(&self) -> Dialect {
        Dialect(self.backend)
    }

    fn err(&self, e: sqlx::Error) -> ProbeError {
        scrub_error(db_error(e, &self.label, self.timeout), &self.hide)
    }

    /// Run a statement returning one row of integer counts.
    pub async fn counts(&mut self, q: &Sql) -> Result<Vec<i64>, ProbeError> {
        let rows = self.rows_raw(q, RowKind::Int).await?;
        let row = rows.into_iter().next().ok_or_else(|| {
            ProbeError::permanent(format!("{}: a count query returned no row", self.label))
        })?;
        row.into_iter()
            .map(|c| match c {
                Cell::Int(i) => Ok(i.unwrap_or(0)),
                Cell::Text(_) => Err(ProbeError::permanent(format!(
                    "{}: expected a count",
                    self.label
                ))),
            })
            .collect()
    }

    /// Run a statement whose columns are all text (see [`Dialect::text`]).
    pub async fn texts(&mut self, q: &Sql) -> Result<Vec<Vec<Option<String>>>, ProbeError> {
        let rows = self.rows_raw(q, RowKind::Text).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|c| match c {
                        Cell::Text(t) => t,
                        Cell::Int(i) => i.map(|i| i.to_string()),
                    })
                    .collect()
            })
            .collect())
    }

    /// Probe whether a statement runs, telling "no such table/column" apart from other failures.
    pub async fn exists(&mut self, q: &Sql) -> Result<bool, ProbeError> {
        let text = q.text.clone();
        let r = match &mut self.inner {
            Inner::Pg(c) => sqlx::query(AssertSqlSafe(text))
                .fetch_all(c)
                .await
                .map(|_| ()),
            Inner::My(c) => sqlx::query(AssertSqlSafe(text))
                .fetch_all(c)
                .await
                .map(|_| ()),
            Inner::Lite(c) => sqlx::query(AssertSqlSafe(text))
                .fetch_all(c)
                .await
                .map(|_| ()),
        };
        match r {
            Ok(()) => Ok(true),
            Err(e) if is_undefined_object(&e) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn rows_raw(&mut self, q: &Sql, kind: RowKind) -> Result<Vec<Vec<Cell>>, ProbeError> {
        tracing::debug!(target_db = %self.label, sql = %q.text, "warehouse query");
        macro_rules! run {
            ($conn:expr) => {{
                let mut query = sqlx::query(AssertSqlSafe(q.text.clone()));
                for b in &q.binds {
                    query = query.bind(b.clone());
                }
                match query.fetch_all($conn).await {
                    Ok(rows) => {
                        let mut out = Vec::with_capacity(rows.len());
                        for row in rows {
                            let mut cells = Vec::with_capacity(row.len());
                            for i in 0..row.len() {
                                let cell = match kind {
                                    RowKind::Int => Cell::Int(
                                        row.try_get::<Option<i64>, _>(i).map_err(|e| {
                                            ProbeError::permanent(format!(
                                                "{}: column {i}: {e}",
                                                self.label
                                            ))
                                        })?,
                                    ),
                                    RowKind::Text => Cell::Text(
                                        row.try_get::<Option<String>, _>(i).map_err(|e| {
                                            ProbeError::permanent(format!(
                                                "{}: column {i}: {e}",
                                                self.label
                                            ))
                                        })?,
                                    ),
                                };
                                cells.push(cell);
                            }
                            out.push(cells);
                        }
                        Ok(out)
                    }
                    Err(e) => Err(e),
                }
            }};
        }
        let r = match &mut self.inner {
            Inner::Pg(c) => run!(&mut *c),
            Inner::My(c) => run!(&mut *c),
            Inner::Lite(c) => run!(&mut *c),
        };
        r.map_err(|e| self.err(e))
    }

    /// Close the session (errors closing are ignored: nothing was written).
    pub async fn close(self) {
        let _ = match self.inner {
            Inner::Pg(c) => c.close().await,
            Inner::My(c) => c.close().await,
            Inner::Lite(c) => c.close().await,
        };
    }
}

#[derive(Clone, Copy)]
enum RowKind {
    Int,
    Text,
}

enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn url_params() {
        assert!(check_url_param("postgres://reader@db:5432/crm").is_ok());
        assert!(check_url_param("mariadb://reader@db/crm").is_ok());
        assert!(check_url_param("sqlite:crm.db").is_ok());
        assert!(check_url_param("postgres://reader:pw@db/crm").is_err());
        assert!(check_url_param("mysql://db/crm?password=x").is_err());
        assert!(check_url_param("oracle://db").is_err());
        assert_eq!(
            label_of("postgres://u:pw@db:5432/crm"),
            "postgres db:5432/crm"
        );
        assert_eq!(label_of("sqlite:///tmp/x.db?mode=ro"), "sqlite /tmp/x.db");
    }
}
