//! `sql`: one read-only query against PostgreSQL, MySQL/MariaDB or SQLite, returning one row:
//! the first column is the measured value, an optional second column the sample size.
//!
//! - value: integer, float, decimal/numeric or boolean (1.0/0.0); NULL → NO_DATA
//! - zero rows → NO_DATA; more than one row → ERROR; more than two columns → ERROR
//! - read-only is enforced by the database, not by parsing SQL: PostgreSQL runs the query in a
//!   `READ ONLY` transaction (and connects with `default_transaction_read_only = on`), MySQL and
//!   MariaDB in a `READ ONLY` session, SQLite opens the file read-only with `query_only`
//! - statement timeout = the probe's timeout (`statement_timeout`, `max_execution_time` on
//!   MySQL, `max_statement_time` on MariaDB, a progress handler on SQLite); a query cancelled by
//!   it is a permanent ERROR (retrying a query that outgrew its budget only loads the database)
//! - where the connection URL comes from: `url` (no password in it; the probe's `secret`, if
//!   named, is then the password), `sqlite_path`, or, with neither, the probe's `secret` holding
//!   the whole URL with credentials
//! - connections are kept per URL (at most 2 per URL, closed after 60 s idle)

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use funnelgate_core::{HumanDuration, Measurement, ProbeStatus};
use futures::TryStreamExt;
use schemars::JsonSchema;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlRow};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow, PgValueFormat};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, Column, ConnectOptions, Connection, Row, TypeInfo, ValueRef};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::probe::{Probe, ProbeContext, ProbeError, ProbeFactory, TypedFactory};

/// Probe kind name.
pub const KIND: &str = "sql";

/// Connections kept per database URL.
const MAX_CONNECTIONS_PER_URL: usize = 2;
/// Idle connections older than this are closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Distinct database URLs kept (beyond it the least recently used is dropped).
const MAX_POOLS: usize = 256;

/// Params of the `sql` probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlParams {
    /// One read-only query returning one row. First column: the measured value (number or
    /// boolean). Optional second column: the sample size (integer), checked against `min_sample`.
    pub query: String,
    /// Connection URL without a password: `postgres://reader@db:5432/crm`,
    /// `mysql://reader@db:3306/crm`, `mariadb://…`, or `sqlite:path/to.db`. The probe's `secret`,
    /// if named, is the password. Leave `url` and `sqlite_path` out to take the whole URL (with
    /// credentials) from the `secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Path of an SQLite database file, opened read-only (relative to the checker's working
    /// directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite_path: Option<String>,
    /// Unit of the value in reports, e.g. `percent`, `count`, `ratio`; default `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The time window the query covers, e.g. `30d`; shown with the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub window: Option<HumanDuration>,
}

/// The `sql` factory. Probes built by one factory share connections per database URL.
pub fn factory() -> impl ProbeFactory {
    let pools = Arc::new(Pools::default());
    TypedFactory::<SqlParams, _>::new(
        KIND,
        "one read-only SQL query returning one number (and optionally its sample size)",
        "value",
        move |p| Ok(Arc::new(SqlProbe::new(p, Arc::clone(&pools))?) as Arc<dyn Probe>),
    )
    .vendors(&["postgresql", "mysql", "mariadb", "sqlite"])
}

/// Where the connection URL comes from.
#[derive(Clone, Debug)]
enum Source {
    /// A URL without a password; the secret, if any, is the password.
    Url(String),
    /// An SQLite file.
    SqlitePath(String),
    /// The whole URL is the probe's secret.
    Secret,
}

/// A configured `sql` probe.
pub struct SqlProbe {
    params: SqlParams,
    source: Source,
    pools: Arc<Pools>,
}

impl SqlProbe {
    fn new(params: SqlParams, pools: Arc<Pools>) -> Result<SqlProbe, ProbeError> {
        let bad = |m: String| ProbeError::params(format!("params of `{KIND}`: {m}"));
        if params.query.trim().is_empty() {
            return Err(bad("`query` must not be empty".into()));
        }
        let source = match (&params.url, &params.sqlite_path) {
            (Some(_), Some(_)) => return Err(bad("set `url` or `sqlite_path`, not both".into())),
            (Some(u), None) => {
                check_url_param(u).map_err(bad)?;
                Source::Url(u.clone())
            }
            (None, Some(p)) if p.trim().is_empty() => {
                return Err(bad("`sqlite_path` must not be empty".into()));
            }
            (None, Some(p)) => Source::SqlitePath(p.clone()),
            (None, None) => Source::Secret,
        };
        Ok(SqlProbe {
            params,
            source,
            pools,
        })
    }

    /// The connection URL (possibly with credentials from the secret) and the strings to keep
    /// out of messages.
    fn connection(&self, ctx: &ProbeContext) -> Result<(Target, Vec<String>), ProbeError> {
        match &self.source {
            Source::SqlitePath(p) => {
                if ctx.spec.secret.is_some() {
                    return Err(ProbeError::params("an sqlite database takes no `secret`"));
                }
                Ok((Target::sqlite_path(p), Vec::new()))
            }
            Source::Url(u) => {
                let Some(name) = &ctx.spec.secret else {
                    return Target::parse(u).map(|t| (t, Vec::new()));
                };
                if backend_of(u) == Some(Backend::Sqlite) {
                    return Err(ProbeError::params("an sqlite database takes no `secret`"));
                }
                let password = ctx.secrets.get(name)?;
                let password = password.expose_secret();
                let mut url = reqwest::Url::parse(u)
                    .map_err(|e| ProbeError::params(format!("params of `{KIND}`: `url`: {e}")))?;
                url.set_password(Some(password)).map_err(|_| {
                    ProbeError::params(format!("params of `{KIND}`: `url` cannot take a password"))
                })?;
                let dsn = url.to_string();
                let hide = secret_forms(password);
                Target::parse(&dsn)
                    .map(|t| (t, hide.clone()))
                    .map_err(|e| scrub_error(e, &hide))
            }
            Source::Secret => {
                let Some(name) = &ctx.spec.secret else {
                    return Err(ProbeError::params(format!(
                        "params of `{KIND}`: set `url` (without a password), `sqlite_path`, or name a `secret` holding the connection URL"
                    )));
                };
                let dsn = ctx.secrets.get(name)?;
                let dsn = dsn.expose_secret().trim().to_string();
                let mut hide = vec![dsn.clone()];
                if let Some(pw) = reqwest::Url::parse(&dsn)
                    .ok()
                    .and_then(|u| u.password().map(str::to_string))
                {
                    hide.extend(secret_forms(&pw));
                }
                match Target::parse(&dsn) {
                    Ok(t) => Ok((t, hide)),
                    // The URL is secret: say what is wrong without echoing it.
                    Err(_) => Err(ProbeError::permanent(format!(
                        "secret `{name}` is not a database URL (expected postgres://, mysql://, mariadb:// or sqlite:)"
                    ))),
                }
            }
        }
    }
}

/// The forms a password may take in a message: as given and percent-encoded.
fn secret_forms(password: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !password.is_empty() {
        out.push(password.to_string());
        let mut u = reqwest::Url::parse("postgres://x@h/").ok();
        if let Some(url) = u.as_mut()
            && url.set_password(Some(password)).is_ok()
            && let Some(enc) = url.password()
            && enc != password
        {
            out.push(enc.to_string());
        }
    }
    out
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Postgres,
    MySql,
    Sqlite,
}

fn backend_of(url: &str) -> Option<Backend> {
    let scheme = url.split(':').next()?.to_ascii_lowercase();
    match scheme.as_str() {
        "postgres" | "postgresql" => Some(Backend::Postgres),
        "mysql" | "mariadb" => Some(Backend::MySql),
        "sqlite" => Some(Backend::Sqlite),
        _ => None,
    }
}

/// A `url` param may not carry a password: that belongs in a secret.
fn check_url_param(u: &str) -> Result<(), String> {
    match backend_of(u) {
        None => Err(
            "`url` must start with postgres://, postgresql://, mysql://, mariadb:// or sqlite:"
                .into(),
        ),
        Some(Backend::Sqlite) => Ok(()),
        Some(_) => {
            let url = reqwest::Url::parse(u).map_err(|e| format!("`url`: {e}"))?;
            let in_query = url
                .query_pairs()
                .any(|(k, _)| k.eq_ignore_ascii_case("password"));
            if url.password().is_some() || in_query {
                return Err(
                    "`url` must not contain a password: put the password (or the whole URL) in a secret and name it with the probe's `secret`"
                        .into(),
                );
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err("`url` needs a host".into());
            }
            Ok(())
        }
    }
}

/// A parsed connection target; `key` identifies its pool (it may contain credentials).
#[derive(Clone)]
struct Target {
    key: String,
    backend: TargetOptions,
    /// `postgres db:5432/crm`, never credentials.
    label: String,
}

#[derive(Clone)]
enum TargetOptions {
    Postgres(PgConnectOptions),
    MySql(MySqlConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl Target {
    fn sqlite_path(path: &str) -> Target {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .pragma("query_only", "ON")
            .disable_statement_logging();
        Target {
            key: format!("sqlite-path:{path}"),
            backend: TargetOptions::Sqlite(opts),
            label: format!("sqlite {path}"),
        }
    }

    fn parse(dsn: &str) -> Result<Target, ProbeError> {
        let label_of = |kind: &str| match reqwest::Url::parse(dsn) {
            Ok(u) => format!(
                "{kind} {}:{}{}",
                u.host_str().unwrap_or("localhost"),
                u.port()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "default port".into()),
                u.path()
            ),
            Err(_) => kind.to_string(),
        };
        let bad = |e: sqlx::Error| {
            ProbeError::params(format!("params of `{KIND}`: invalid database url: {e}"))
        };
        match backend_of(dsn) {
            Some(Backend::Postgres) => {
                let opts = PgConnectOptions::from_str(dsn)
                    .map_err(bad)?
                    .application_name("funnelgate")
                    .options([("default_transaction_read_only", "on")])
                    .disable_statement_logging();
                Ok(Target {
                    key: dsn.to_string(),
                    backend: TargetOptions::Postgres(opts),
                    label: label_of("postgres"),
                })
            }
            Some(Backend::MySql) => {
                let opts = MySqlConnectOptions::from_str(dsn)
                    .map_err(bad)?
                    .disable_statement_logging();
                Ok(Target {
                    key: dsn.to_string(),
                    backend: TargetOptions::MySql(opts),
                    label: label_of("mysql"),
                })
            }
            Some(Backend::Sqlite) => {
                let opts = SqliteConnectOptions::from_str(dsn)
                    .map_err(bad)?
                    .read_only(true)
                    .pragma("query_only", "ON")
                    .disable_statement_logging();
                let path = dsn.trim_start_matches("sqlite:").trim_start_matches("//");
                let path = path.split('?').next().unwrap_or(path);
                Ok(Target {
                    key: dsn.to_string(),
                    backend: TargetOptions::Sqlite(opts),
                    label: format!("sqlite {path}"),
                })
            }
            None => Err(ProbeError::params(format!(
                "params of `{KIND}`: the database url must start with postgres://, mysql://, mariadb:// or sqlite:"
            ))),
        }
    }
}

// ------------------------------------------------------------------ a tiny connection pool
//
// sqlx's `Pool` retries refused connections until its acquire timeout and then reports only
// "pool timed out", losing the reason; a probe must say "connection refused". This keeps a few
// idle connections per URL and connects directly otherwise.

struct MiniPool<C: Connection> {
    options: C::Options,
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<(C, std::time::Instant)>>,
    /// MySQL only: whether the server is MariaDB (their timeout variables differ).
    mariadb: OnceLock<bool>,
}

struct Lease<C: Connection> {
    conn: Option<C>,
    pool: Arc<MiniPool<C>>,
    _slot: OwnedSemaphorePermit,
}

impl<C: Connection> MiniPool<C> {
    fn new(options: C::Options) -> Arc<Self> {
        Arc::new(MiniPool {
            options,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_URL)),
            idle: Mutex::new(Vec::new()),
            mariadb: OnceLock::new(),
        })
    }

    async fn acquire(self: &Arc<Self>) -> Result<Lease<C>, sqlx::Error> {
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let popped = lock(&self.idle).pop();
            match popped {
                Some((c, since)) if since.elapsed() < IDLE_TIMEOUT => {
                    return Ok(Lease {
                        conn: Some(c),
                        pool: Arc::clone(self),
                        _slot: slot,
                    });
                }
                Some(_) => continue,
                None => break,
            }
        }
        let conn = C::connect_with(&self.options).await?;
        Ok(Lease {
            conn: Some(conn),
            pool: Arc::clone(self),
            _slot: slot,
        })
    }
}

impl<C: Connection> Lease<C> {
    fn conn(&mut self) -> Result<&mut C, sqlx::Error> {
        self.conn.as_mut().ok_or(sqlx::Error::PoolClosed)
    }

    /// Give the connection back for reuse (dropping a lease closes it instead).
    fn release(mut self) {
        if let Some(c) = self.conn.take() {
            let mut idle = lock(&self.pool.idle);
            idle.retain(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
            if idle.len() < MAX_CONNECTIONS_PER_URL {
                idle.push((c, std::time::Instant::now()));
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone)]
enum PoolHandle {
    Postgres(Arc<MiniPool<PgConnection>>),
    MySql(Arc<MiniPool<MySqlConnection>>),
    Sqlite(Arc<MiniPool<SqliteConnection>>),
}

/// Connection pools per database URL, shared by the probes of one factory.
#[derive(Default)]
struct Pools {
    by_url: Mutex<HashMap<String, (PoolHandle, u64)>>,
    tick: std::sync::atomic::AtomicU64,
}

impl Pools {
    fn get(&self, target: &Target) -> PoolHandle {
        let tick = self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut map = lock(&self.by_url);
        if let Some((p, used)) = map.get_mut(&target.key) {
            *used = tick;
            return p.clone();
        }
        if map.len() >= MAX_POOLS
            && let Some(k) = map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            map.remove(&k);
        }
        let handle = match &target.backend {
            TargetOptions::Postgres(o) => PoolHandle::Postgres(MiniPool::new(o.clone())),
            TargetOptions::MySql(o) => PoolHandle::MySql(MiniPool::new(o.clone())),
            TargetOptions::Sqlite(o) => PoolHandle::Sqlite(MiniPool::new(o.clone())),
        };
        map.insert(target.key.clone(), (handle.clone(), tick));
        handle
    }
}

// ------------------------------------------------------------------ running the query

/// What the query returned.
#[derive(Debug, PartialEq)]
enum Rows {
    Zero,
    One(Scalar),
    Many,
}

/// The decoded single row.
#[derive(Debug, PartialEq)]
struct Scalar {
    column: String,
    value: Option<f64>,
    sample: Option<u64>,
}

/// Why a run failed: a database error, or a row we cannot use.
enum Failure {
    Db(sqlx::Error),
    Shape(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Db(e)
    }
}

async fn first_two<R, S>(mut stream: S) -> Result<(Option<R>, bool), sqlx::Error>
where
    S: futures::Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let first = stream.try_next().await?;
    let more = if first.is_some() {
        stream.try_next().await?.is_some()
    } else {
        false
    };
    Ok((first, more))
}

async fn run_postgres(
    lease: &mut Lease<PgConnection>,
    query: &str,
    timeout: Duration,
) -> Result<Rows, Failure> {
    let conn = lease.conn()?;
    let mut tx = conn.begin().await?;
    let setup = format!(
        "SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {}",
        timeout.as_millis().max(1)
    );
    sqlx::raw_sql(AssertSqlSafe(setup))
        .execute(&mut *tx)
        .await?;
    let rows = {
        let stream = sqlx::query(AssertSqlSafe(query.to_string())).fetch(&mut *tx);
        first_two(stream).await?
    };
    let out = match rows {
        (None, _) => Rows::Zero,
        (Some(_), true) => Rows::Many,
        (Some(row), false) => Rows::One(decode_row(&row, decode_pg).map_err(Failure::Shape)?),
    };
    tx.rollback().await?;
    Ok(out)
}

async fn run_mysql(
    lease: &mut Lease<MySqlConnection>,
    query: &str,
    timeout: Duration,
) -> Result<Rows, Failure> {
    let mariadb = match lease.pool.mariadb.get() {
        Some(m) => *m,
        None => {
            let version: String = sqlx::query_scalar("SELECT VERSION()")
                .fetch_one(lease.conn()?)
                .await?;
            *lease
                .pool
                .mariadb
                .get_or_init(|| version.to_ascii_lowercase().contains("mariadb"))
        }
    };
    let conn = lease.conn()?;
    // Session settings are re-applied before every query: a previous query cannot undo them.
    sqlx::raw_sql("SET SESSION TRANSACTION READ ONLY")
        .execute(&mut *conn)
        .await?;
    let limit = if mariadb {
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
        .execute(&mut *conn)
        .await?;
    let rows = {
        let stream = sqlx::query(AssertSqlSafe(query.to_string())).fetch(&mut *conn);
        first_two(stream).await?
    };
    Ok(match rows {
        (None, _) => Rows::Zero,
        (Some(_), true) => Rows::Many,
        (Some(row), false) => Rows::One(decode_row(&row, decode_mysql).map_err(Failure::Shape)?),
    })
}

async fn run_sqlite(
    lease: &mut Lease<SqliteConnection>,
    query: &str,
    timeout: Duration,
) -> Result<Rows, Failure> {
    let conn = lease.conn()?;
    {
        let deadline = std::time::Instant::now() + timeout;
        let mut handle = conn.lock_handle().await?;
        // Interrupts the statement (SQLITE_INTERRUPT) once the timeout has passed.
        handle.set_progress_handler(1000, move || std::time::Instant::now() < deadline);
    }
    let rows = {
        let stream = sqlx::query(AssertSqlSafe(query.to_string())).fetch(&mut *conn);
        first_two(stream).await?
    };
    Ok(match rows {
        (None, _) => Rows::Zero,
        (Some(_), true) => Rows::Many,
        (Some(row), false) => Rows::One(decode_row(&row, decode_sqlite).map_err(Failure::Shape)?),
    })
}

/// Decode the value column and the optional sample-size column of a row.
fn decode_row<R: Row>(
    row: &R,
    decode: fn(&R, usize) -> Result<Option<f64>, String>,
) -> Result<Scalar, String> {
    let columns = row.columns();
    if columns.is_empty() || columns.len() > 2 {
        return Err(format!(
            "query returned {} columns, expected 1 (the value) or 2 (the value and the sample size)",
            columns.len()
        ));
    }
    let column = columns[0].name().to_string();
    let value = decode(row, 0).map_err(|e| format!("column `{column}`: {e}"))?;
    let sample = if columns.len() == 2 {
        let name = columns[1].name().to_string();
        match decode(row, 1).map_err(|e| format!("sample size column `{name}`: {e}"))? {
            None => None,
            Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u64::MAX as f64 => Some(n as u64),
            Some(n) => {
                return Err(format!(
                    "sample size column `{name}` is {n}, expected a non-negative integer"
                ));
            }
        }
    } else {
        None
    };
    Ok(Scalar {
        column,
        value,
        sample,
    })
}

fn unsupported(type_name: &str) -> String {
    format!("has type {type_name}, expected a number or a boolean")
}

fn decode_pg(row: &PgRow, i: usize) -> Result<Option<f64>, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(None);
    }
    let type_name = raw.type_info().name().to_string();
    let err = |e: sqlx::Error| e.to_string();
    let v = match type_name.as_str() {
        "INT2" => f64::from(row.try_get::<i16, _>(i).map_err(err)?),
        "INT4" => f64::from(row.try_get::<i32, _>(i).map_err(err)?),
        "INT8" => row.try_get::<i64, _>(i).map_err(err)? as f64,
        "FLOAT4" => f64::from(row.try_get::<f32, _>(i).map_err(err)?),
        "FLOAT8" => row.try_get::<f64, _>(i).map_err(err)?,
        "BOOL" => f64::from(u8::from(row.try_get::<bool, _>(i).map_err(err)?)),
        "OID" => f64::from(
            row.try_get::<sqlx::postgres::types::Oid, _>(i)
                .map_err(err)?
                .0,
        ),
        "NUMERIC" => match raw.format() {
            PgValueFormat::Binary => pg_numeric(raw.as_bytes().map_err(|e| e.to_string())?)?,
            PgValueFormat::Text => {
                let s = raw.as_str().map_err(|e| e.to_string())?;
                s.parse::<f64>()
                    .map_err(|_| format!("numeric value `{s}` is not a number"))?
            }
        },
        other => return Err(unsupported(other)),
    };
    Ok(Some(v))
}

/// PostgreSQL's binary NUMERIC: ndigits, weight, sign, dscale, then base-10000 digits.
fn pg_numeric(bytes: &[u8]) -> Result<f64, String> {
    let word = |i: usize| -> Result<u16, String> {
        bytes
            .get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "malformed numeric value".to_string())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(1)? as i16);
    let sign = word(2)?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("numeric value is NaN".into()),
        0xD000 | 0xF000 => return Err("numeric value is infinite".into()),
        _ => return Err("malformed numeric value".into()),
    }
    let mut digits = Vec::with_capacity(ndigits);
    for k in 0..ndigits {
        digits.push(i32::from(word(4 + k)?));
    }
    let digit = |idx: i32| -> i32 {
        if idx < 0 {
            0
        } else {
            digits.get(idx as usize).copied().unwrap_or(0)
        }
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for idx in 0..=weight {
            if idx == 0 {
                s.push_str(&digit(idx).to_string());
            } else {
                s.push_str(&format!("{:04}", digit(idx)));
            }
        }
    }
    s.push('.');
    let frac_groups = ndigits as i32 - weight - 1;
    for e in 1..=frac_groups.max(0) {
        s.push_str(&format!("{:04}", digit(weight + e)));
    }
    s.push('0');
    s.parse::<f64>()
        .map_err(|_| "malformed numeric value".to_string())
}

fn decode_mysql(row: &MySqlRow, i: usize) -> Result<Option<f64>, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(None);
    }
    let type_name = raw.type_info().name().to_string();
    let err = |e: sqlx::Error| e.to_string();
    let v = match type_name.as_str() {
        "BOOLEAN" => f64::from(u8::from(row.try_get::<bool, _>(i).map_err(err)?)),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
            row.try_get::<i64, _>(i).map_err(err)? as f64
        }
        t if t.ends_with(" UNSIGNED") => row.try_get::<u64, _>(i).map_err(err)? as f64,
        "FLOAT" => f64::from(row.try_get::<f32, _>(i).map_err(err)?),
        "DOUBLE" => row.try_get::<f64, _>(i).map_err(err)?,
        "DECIMAL" => {
            // DECIMAL arrives as its decimal text in both protocols.
            let s: String = row.try_get_unchecked(i).map_err(err)?;
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("decimal value `{s}` is not a number"))?
        }
        other => return Err(unsupported(other)),
    };
    Ok(Some(v))
}

fn decode_sqlite(row: &SqliteRow, i: usize) -> Result<Option<f64>, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(None);
    }
    let type_name = raw.type_info().name().to_string();
    let err = |e: sqlx::Error| e.to_string();
    let v = match type_name.as_str() {
        "INTEGER" | "BOOLEAN" => row.try_get::<i64, _>(i).map_err(err)? as f64,
        "REAL" | "NUMERIC" => row.try_get::<f64, _>(i).map_err(err)?,
        other => return Err(unsupported(other)),
    };
    Ok(Some(v))
}

/// Turn a database error into a probe error that names the target, never the credentials.
fn db_error(e: sqlx::Error, label: &str, timeout: Duration) -> ProbeError {
    let timed_out = || {
        ProbeError::permanent(format!(
            "{label}: query cancelled by the statement timeout of {}",
            funnelgate_core::time::format_duration(timeout)
        ))
    };
    let wrote = |msg: &str| {
        ProbeError::permanent(format!(
            "{label}: the query tried to write ({msg}); sql probes are read-only"
        ))
    };
    match e {
        sqlx::Error::Io(io) => ProbeError::transient(format!("{label}: cannot connect: {io}")),
        sqlx::Error::Tls(t) => ProbeError::permanent(format!("{label}: tls: {t}")),
        sqlx::Error::Database(db) => {
            let msg = db.message().to_string();
            if let Some(my) = db.try_downcast_ref::<MySqlDatabaseError>() {
                return match my.number() {
                    1792 | 1290 => wrote(&msg),
                    1969 | 3024 | 1317 => timed_out(),
                    1040 | 1203 | 1205 | 1213 => ProbeError::transient(format!("{label}: {msg}")),
                    1044 | 1045 => {
                        ProbeError::permanent(format!("{label}: authentication failed: {msg}"))
                    }
                    _ => ProbeError::permanent(format!("{label}: {msg}")),
                };
            }
            let code: Option<Cow<'_, str>> = db.code();
            let code = code.as_deref().unwrap_or("");
            if label.starts_with("sqlite") {
                let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(-1);
                return match primary {
                    9 => timed_out(),
                    8 => wrote(&msg),
                    5 | 6 => ProbeError::transient(format!("{label}: {msg}")),
                    _ => ProbeError::permanent(format!("{label}: {msg}")),
                };
            }
            match code {
                "57014" => timed_out(),
                "25006" => wrote(&msg),
                "28P01" | "28000" => {
                    ProbeError::permanent(format!("{label}: authentication failed: {msg}"))
                }
                "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "08006" | "08001"
                | "08004" => ProbeError::transient(format!("{label}: {msg}")),
                _ => ProbeError::permanent(format!("{label}: {msg}")),
            }
        }
        sqlx::Error::Protocol(p) => ProbeError::transient(format!("{label}: protocol error: {p}")),
        other => ProbeError::permanent(format!("{label}: {other}")),
    }
}

#[async_trait]
impl Probe for SqlProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let (target, hide) = self.connection(ctx)?;
        let timeout = ctx.timeout();
        let query = self.params.query.as_str();
        let label = target.label.clone();
        let result = match self.pools.get(&target) {
            PoolHandle::Postgres(pool) => match pool.acquire().await {
                Ok(mut lease) => {
                    let r = run_postgres(&mut lease, query, timeout).await;
                    finish(lease, &r);
                    r
                }
                Err(e) => Err(Failure::Db(e)),
            },
            PoolHandle::MySql(pool) => match pool.acquire().await {
                Ok(mut lease) => {
                    let r = run_mysql(&mut lease, query, timeout).await;
                    finish(lease, &r);
                    r
                }
                Err(e) => Err(Failure::Db(e)),
            },
            PoolHandle::Sqlite(pool) => match pool.acquire().await {
                Ok(mut lease) => {
                    let r = run_sqlite(&mut lease, query, timeout).await;
                    finish(lease, &r);
                    r
                }
                Err(e) => Err(Failure::Db(e)),
            },
        };
        let rows = match result {
            Ok(rows) => rows,
            Err(Failure::Db(e)) => return Err(scrub_error(db_error(e, &label, timeout), &hide)),
            Err(Failure::Shape(s)) => {
                return Err(scrub_error(
                    ProbeError::permanent(format!("{label}: {s}")),
                    &hide,
                ));
            }
        };
        let unit = self.params.unit.clone().unwrap_or_default();
        let mut m = match rows {
            Rows::Zero => Measurement::verdict(ProbeStatus::NoData, "query returned no rows"),
            Rows::Many => {
                return Err(ProbeError::permanent(format!(
                    "{label}: query returned more than one row, expected exactly one"
                )));
            }
            Rows::One(Scalar {
                column,
                value: None,
                sample,
            }) => {
                let mut m = Measurement::verdict(
                    ProbeStatus::NoData,
                    format!("query returned NULL (column `{column}`)"),
                );
                m.sample_size = sample;
                m
            }
            Rows::One(Scalar {
                column,
                value: Some(v),
                sample,
            }) => {
                let mut text = format!("{column} = {}", crate::runner::format_number(v));
                if let Some(n) = sample {
                    text.push_str(&format!(" (sample of {n})"));
                }
                let mut m = Measurement::value(v, unit.clone(), text);
                m.sample_size = sample;
                m
            }
        };
        m.unit = unit;
        m.window = self.params.window;
        Ok(m.with_evidence("database", label))
    }
}

/// Give the connection back unless it broke (an I/O or protocol error); a database error
/// leaves it usable (PostgreSQL's open transaction is rolled back on next use).
fn finish<C: Connection>(lease: Lease<C>, result: &Result<Rows, Failure>) {
    let reusable = match result {
        Ok(_) | Err(Failure::Shape(_)) => true,
        Err(Failure::Db(sqlx::Error::Database(_))) => true,
        Err(Failure::Db(_)) => false,
    };
    if reusable {
        lease.release();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn numeric(weight: i16, sign: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend((digits.len() as u16).to_be_bytes());
        b.extend(weight.to_be_bytes());
        b.extend(sign.to_be_bytes());
        b.extend(0u16.to_be_bytes());
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        b
    }

    #[test]
    fn pg_numeric_binary() {
        assert_eq!(pg_numeric(&numeric(-1, 0, &[6200])).unwrap(), 0.62);
        assert_eq!(pg_numeric(&numeric(1, 0, &[1, 2345])).unwrap(), 12345.0);
        assert_eq!(
            pg_numeric(&numeric(1, 0x4000, &[1, 2345, 6780])).unwrap(),
            -12345.678
        );
        assert_eq!(pg_numeric(&numeric(2, 0, &[7])).unwrap(), 700_000_000.0);
        assert_eq!(pg_numeric(&numeric(-2, 0, &[1])).unwrap(), 0.00000001);
        assert_eq!(pg_numeric(&numeric(0, 0, &[])).unwrap(), 0.0);
        assert!(
            pg_numeric(&numeric(0, 0xC000, &[]))
                .unwrap_err()
                .contains("NaN")
        );
        assert!(pg_numeric(&[0, 1]).is_err());
    }

    #[test]
    fn url_params_must_not_carry_passwords() {
        assert!(check_url_param("postgres://reader@db:5432/crm").is_ok());
        assert!(check_url_param("sqlite:warehouse.db?mode=ro").is_ok());
        let e = check_url_param("postgres://reader:hunter2@db/crm").unwrap_err();
        assert!(
            e.contains("must not contain a password") && !e.contains("hunter2"),
            "{e}"
        );
        assert!(check_url_param("mysql://reader@db/crm?password=x").is_err());
        assert!(
            check_url_param("oracle://db")
                .unwrap_err()
                .contains("must start with")
        );
    }

    #[test]
    fn scrubbing_hides_passwords_in_both_forms() {
        let hide = secret_forms("p@ss word");
        let text = "failed for postgres://u:p%40ss%20word@h/ and p@ss word";
        assert_eq!(scrub(text, &hide), "failed for postgres://u:***@h/ and ***");
    }
}
