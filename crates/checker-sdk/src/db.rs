//! The one SQL layer of the checkers: read-only sessions on PostgreSQL, MySQL/MariaDB or SQLite,
//! taken from sqlx's own connection pools (one [`sqlx::Pool`] per database URL, kept by
//! [`DbPools`]). The SDK's `sql` probe and the CRM checker's warehouse kinds both use it.
//!
//! - read-only is enforced by the database, not by parsing SQL: every session is a transaction
//!   begun `READ ONLY` (PostgreSQL also connects with `default_transaction_read_only = on`),
//!   SQLite files are opened read-only with `query_only`; a session is always rolled back, so a
//!   `SET` in one probe's query cannot leak into the next lease of the same connection
//! - statement timeout = the probe's timeout (`SET LOCAL statement_timeout` on PostgreSQL,
//!   `max_execution_time` on MySQL, `max_statement_time` on MariaDB, a progress handler on
//!   SQLite), re-applied on every lease
//! - connection errors are probe errors naming the target (`postgres db:5432/crm: cannot
//!   connect: Connection refused`), never credentials: sqlx's pool retries a refused connection
//!   silently until its deadline and then says only "pool timed out", so when a lease is slow
//!   one direct connection attempt finds out why
//! - pools: at most 2 connections per URL, closed after 60 s idle, at most 256 URLs (the least
//!   recently used pool is dropped beyond that)

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlConnection, MySqlDatabaseError};
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Database, Pool, Transaction};

use crate::probe::{ProbeContext, ProbeError};

/// Connections kept per database URL.
pub const MAX_CONNECTIONS_PER_URL: u32 = 2;
/// Idle connections older than this are closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Distinct database URLs kept (beyond it the least recently used pool is dropped).
pub const MAX_POOLS: usize = 256;
/// How long a lease may take before one direct connection attempt asks the server why.
const DIAGNOSE_AFTER: Duration = Duration::from_millis(500);

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

/// The backend a URL names by its scheme.
pub fn backend_of(url: &str) -> Option<Backend> {
    let scheme = url.split(':').next()?.to_ascii_lowercase();
    match scheme.as_str() {
        "postgres" | "postgresql" => Some(Backend::Postgres),
        "mysql" | "mariadb" => Some(Backend::MySql),
        "sqlite" => Some(Backend::Sqlite),
        _ => None,
    }
}

/// A `url` param: a known scheme, a host, and no password (that belongs in a secret).
pub fn check_url_param(u: &str) -> Result<(), String> {
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

/// The forms a password may take in a message: as given and percent-encoded.
pub fn secret_forms(password: &str) -> Vec<String> {
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

/// `text` with every string of `hide` (two characters or longer) replaced by `***`.
pub fn scrub(text: &str, hide: &[String]) -> String {
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

/// `postgres db:5432/crm`, `mysql db:default port/crm`, `sqlite path/to.db`: never credentials.
pub fn label_of(dsn: &str) -> String {
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

/// A database to open: its connection options, a label for messages and the strings (a
/// password, a secret URL) to keep out of every message.
#[derive(Clone)]
pub struct Target {
    /// Identifies the pool; may contain credentials, so it never leaves this module.
    key: String,
    options: TargetOptions,
    label: String,
    hide: Vec<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum TargetOptions {
    Postgres(PgConnectOptions),
    MySql(MySqlConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl Target {
    /// An SQLite file, opened read-only.
    pub fn sqlite_path(path: &str) -> Target {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .pragma("query_only", "ON")
            .disable_statement_logging();
        Target {
            key: format!("sqlite-path:{path}"),
            options: TargetOptions::Sqlite(opts),
            label: format!("sqlite {path}"),
            hide: Vec::new(),
        }
    }

    /// A connection URL (`postgres://`, `postgresql://`, `mysql://`, `mariadb://`, `sqlite:`).
    /// A bad URL is a params error that never echoes the URL's password.
    pub fn parse(dsn: &str) -> Result<Target, ProbeError> {
        let mut hide = Vec::new();
        if let Ok(u) = reqwest::Url::parse(dsn)
            && let Some(p) = u.password()
        {
            hide.extend(secret_forms(p));
            if let Ok(decoded) = percent_decode(p) {
                hide.extend(secret_forms(&decoded));
            }
        }
        let label = label_of(dsn);
        let bad = |e: sqlx::Error| {
            ProbeError::params(format!(
                "{label}: invalid database url: {}",
                scrub(&e.to_string(), &hide)
            ))
        };
        let options = match backend_of(dsn) {
            Some(Backend::Postgres) => TargetOptions::Postgres(
                PgConnectOptions::from_str(dsn)
                    .map_err(bad)?
                    .application_name("funnelgate")
                    .options([("default_transaction_read_only", "on")])
                    .disable_statement_logging(),
            ),
            Some(Backend::MySql) => {
                let dsn = match dsn.get(..8) {
                    Some(s) if s.eq_ignore_ascii_case("mariadb:") => {
                        format!("mysql:{}", &dsn[8..])
                    }
                    _ => dsn.to_string(),
                };
                TargetOptions::MySql(
                    MySqlConnectOptions::from_str(&dsn)
                        .map_err(bad)?
                        .timezone(Some("+00:00".to_string()))
                        .disable_statement_logging(),
                )
            }
            Some(Backend::Sqlite) => TargetOptions::Sqlite(
                SqliteConnectOptions::from_str(dsn)
                    .map_err(bad)?
                    .read_only(true)
                    .pragma("query_only", "ON")
                    .disable_statement_logging(),
            ),
            None => {
                return Err(ProbeError::params(
                    "the database url must start with postgres://, postgresql://, mysql://, mariadb:// or sqlite:",
                ));
            }
        };
        Ok(Target {
            key: dsn.to_string(),
            options,
            label,
            hide,
        })
    }

    /// The database a probe names: `url` (without a password; the probe's `secret`, if named,
    /// is the password), `sqlite_path`, or, with neither, the probe's `secret` holding the whole
    /// URL with credentials.
    pub fn resolve(
        ctx: &ProbeContext,
        url: Option<&str>,
        sqlite_path: Option<&str>,
    ) -> Result<Target, ProbeError> {
        match (url, sqlite_path) {
            (Some(_), Some(_)) => Err(ProbeError::params("set `url` or `sqlite_path`, not both")),
            (None, Some(p)) => {
                if ctx.spec.secret.is_some() {
                    return Err(ProbeError::params("an sqlite database takes no `secret`"));
                }
                if p.trim().is_empty() {
                    return Err(ProbeError::params("`sqlite_path` must not be empty"));
                }
                Ok(Target::sqlite_path(p))
            }
            (Some(u), None) => {
                check_url_param(u).map_err(ProbeError::params)?;
                let Some(name) = &ctx.spec.secret else {
                    return Target::parse(u);
                };
                if backend_of(u) == Some(Backend::Sqlite) {
                    return Err(ProbeError::params("an sqlite database takes no `secret`"));
                }
                let password = ctx.secrets.get(name)?;
                let password = password.expose_secret();
                let mut parsed = reqwest::Url::parse(u)
                    .map_err(|e| ProbeError::params(format!("`url`: {e}")))?;
                parsed
                    .set_password(Some(password))
                    .map_err(|_| ProbeError::params("`url` cannot take a password"))?;
                let hide = secret_forms(password);
                let mut t = Target::parse(parsed.as_str()).map_err(|e| scrub_error(e, &hide))?;
                t.hide.extend(hide);
                Ok(t)
            }
            (None, None) => {
                let Some(name) = &ctx.spec.secret else {
                    return Err(ProbeError::params(
                        "no database given: set `url` (without a password), `sqlite_path`, or name a `secret` holding the connection URL",
                    ));
                };
                let dsn = ctx.secrets.get(name)?;
                let dsn = dsn.expose_secret().trim().to_string();
                match Target::parse(&dsn) {
                    Ok(mut t) => {
                        t.hide.push(dsn);
                        Ok(t)
                    }
                    // The URL is secret: say what is wrong without echoing it.
                    Err(_) => Err(ProbeError::permanent(format!(
                        "secret `{name}` is not a database URL (expected postgres://, mysql://, mariadb:// or sqlite:)"
                    ))),
                }
            }
        }
    }

    /// `postgres db:5432/crm`: for messages and evidence.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The database family.
    pub fn backend(&self) -> Backend {
        match self.options {
            TargetOptions::Postgres(_) => Backend::Postgres,
            TargetOptions::MySql(_) => Backend::MySql,
            TargetOptions::Sqlite(_) => Backend::Sqlite,
        }
    }
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// How a session is set up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// Read and compare timestamps in UTC (PostgreSQL `SET LOCAL TimeZone = 'UTC'`; MySQL
    /// connections always use `+00:00`).
    pub utc: bool,
}

#[derive(Clone)]
enum PoolHandle {
    Postgres(Pool<Postgres>),
    /// With whether the server is MariaDB (its timeout variable differs), found on first use.
    MySql(Pool<MySql>, Arc<OnceLock<bool>>),
    Sqlite(Pool<Sqlite>),
}

/// sqlx pools per database URL. Probes built by one factory share one `DbPools`.
#[derive(Default)]
pub struct DbPools {
    by_url: Mutex<HashMap<String, (PoolHandle, u64)>>,
    tick: AtomicU64,
}

impl std::fmt::Debug for DbPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbPools")
            .field("pools", &lock(&self.by_url).len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn pool_options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(MAX_CONNECTIONS_PER_URL)
        .min_connections(0)
        .idle_timeout(IDLE_TIMEOUT)
        // Bounded by the probe's own timeout in `begin`; this is only a backstop.
        .acquire_timeout(Duration::from_secs(600))
}

impl DbPools {
    /// New, empty pools.
    pub fn new() -> DbPools {
        DbPools::default()
    }

    /// How many databases have a pool.
    pub fn len(&self) -> usize {
        lock(&self.by_url).len()
    }

    /// Whether no database has a pool yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, target: &Target) -> PoolHandle {
        let tick = self.tick.fetch_add(1, Ordering::Relaxed);
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
        let handle = match &target.options {
            TargetOptions::Postgres(o) => {
                PoolHandle::Postgres(pool_options().connect_lazy_with(o.clone()))
            }
            TargetOptions::MySql(o) => PoolHandle::MySql(
                pool_options().connect_lazy_with(o.clone()),
                Arc::new(OnceLock::new()),
            ),
            TargetOptions::Sqlite(o) => {
                PoolHandle::Sqlite(pool_options().connect_lazy_with(o.clone()))
            }
        };
        map.insert(target.key.clone(), (handle.clone(), tick));
        handle
    }

    /// A read-only session on `target` whose statements are bounded by `timeout`. Close it with
    /// [`Session::close`]; a session dropped early is rolled back by the pool.
    pub async fn open(
        &self,
        target: &Target,
        timeout: Duration,
        options: SessionOptions,
    ) -> Result<Session, ProbeError> {
        let label = target.label.clone();
        let fail = |e: sqlx::Error| scrub_error(db_error(e, &label, timeout), &target.hide);
        let ms = timeout.as_millis().max(1);
        let tx = match self.get(target) {
            PoolHandle::Postgres(pool) => {
                let mut tx = begin(&pool, Some("BEGIN READ ONLY"), timeout, target).await?;
                let mut setup = format!("SET LOCAL statement_timeout = {ms}");
                if options.utc {
                    setup.push_str("; SET LOCAL TimeZone = 'UTC'");
                }
                sqlx::raw_sql(AssertSqlSafe(setup))
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
                Tx::Postgres(tx)
            }
            PoolHandle::MySql(pool, mariadb) => {
                let mut tx =
                    begin(&pool, Some("START TRANSACTION READ ONLY"), timeout, target).await?;
                let is_mariadb = match mariadb.get() {
                    Some(m) => *m,
                    None => {
                        let version: String = sqlx::query_scalar("SELECT VERSION()")
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(fail)?;
                        *mariadb.get_or_init(|| version.to_ascii_lowercase().contains("mariadb"))
                    }
                };
                // Session variables are re-set on every lease: a previous query cannot undo them.
                let limit = if is_mariadb {
                    format!(
                        "SET SESSION max_statement_time = {:.3}",
                        timeout.as_secs_f64().max(0.001)
                    )
                } else {
                    format!("SET SESSION max_execution_time = {ms}")
                };
                sqlx::raw_sql(AssertSqlSafe(limit))
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
                Tx::MySql(tx)
            }
            PoolHandle::Sqlite(pool) => {
                let mut tx = begin(&pool, None, timeout, target).await?;
                {
                    let deadline = std::time::Instant::now() + timeout;
                    let mut handle = tx.lock_handle().await.map_err(fail)?;
                    // Interrupts a statement (SQLITE_INTERRUPT) once the timeout has passed.
                    handle.set_progress_handler(1000, move || std::time::Instant::now() < deadline);
                }
                Tx::Sqlite(tx)
            }
        };
        Ok(Session {
            tx,
            label: target.label.clone(),
            hide: target.hide.clone(),
            timeout,
        })
    }
}

/// Lease a connection from `pool` and begin a transaction, within `timeout`. When the lease is
/// slow, one direct connection attempt runs beside it: the pool retries a refused connection
/// until its deadline and would then report only "pool timed out", losing the reason.
async fn begin<DB: Database>(
    pool: &Pool<DB>,
    statement: Option<&'static str>,
    timeout: Duration,
    target: &Target,
) -> Result<Transaction<'static, DB>, ProbeError> {
    let options = pool.connect_options();
    let work = async {
        let lease = async {
            match statement {
                Some(s) => pool.begin_with(s).await,
                None => pool.begin().await,
            }
        };
        tokio::pin!(lease);
        tokio::select! {
            r = &mut lease => return r,
            () = tokio::time::sleep(DIAGNOSE_AFTER) => {}
        }
        tokio::select! {
            r = &mut lease => r,
            direct = options.connect() => match direct {
                Err(e) => Err(e),
                Ok(c) => {
                    // The server accepts connections: the pool is busy, keep waiting for it.
                    let _ = c.close().await;
                    lease.await
                }
            },
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r.map_err(|e| scrub_error(db_error(e, &target.label, timeout), &target.hide)),
        Err(_) => Err(ProbeError::transient(format!(
            "{}: cannot connect: no connection within {}",
            target.label,
            funnelgate_core::time::format_duration(timeout)
        ))),
    }
}

enum Tx {
    Postgres(Transaction<'static, Postgres>),
    MySql(Transaction<'static, MySql>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// The connection of a session, by backend, for running statements.
pub enum Conn<'a> {
    /// PostgreSQL (inside the session's read-only transaction).
    Postgres(&'a mut PgConnection),
    /// MySQL or MariaDB (inside the session's read-only transaction).
    MySql(&'a mut MySqlConnection),
    /// SQLite (read-only file).
    Sqlite(&'a mut SqliteConnection),
}

/// An open read-only session: a pooled connection inside a read-only transaction with the
/// statement timeout set. Always rolled back.
pub struct Session {
    tx: Tx,
    label: String,
    hide: Vec<String>,
    timeout: Duration,
}

impl Session {
    /// `postgres db:5432/crm`: for messages and evidence.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The database family.
    pub fn backend(&self) -> Backend {
        match self.tx {
            Tx::Postgres(_) => Backend::Postgres,
            Tx::MySql(_) => Backend::MySql,
            Tx::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The connection, to run statements on.
    pub fn conn(&mut self) -> Conn<'_> {
        match &mut self.tx {
            Tx::Postgres(tx) => Conn::Postgres(tx),
            Tx::MySql(tx) => Conn::MySql(tx),
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
        }
    }

    /// A database error as a probe error naming this session's target, never credentials.
    pub fn error(&self, e: sqlx::Error) -> ProbeError {
        scrub_error(db_error(e, &self.label, self.timeout), &self.hide)
    }

    /// A probe error about this target (a row that cannot be used, …), with any secret removed.
    pub fn permanent(&self, message: impl std::fmt::Display) -> ProbeError {
        scrub_error(
            ProbeError::permanent(format!("{}: {message}", self.label)),
            &self.hide,
        )
    }

    /// Whether `query` runs, telling "no such table/column" (`Ok(false)`) apart from other
    /// failures. It runs in a savepoint, so a failure leaves the session usable.
    pub async fn runs(&mut self, query: &str) -> Result<bool, ProbeError> {
        macro_rules! attempt {
            ($tx:expr) => {
                async {
                    let mut sp = Connection::begin(&mut **$tx).await?;
                    let r = sqlx::query(AssertSqlSafe(query.to_string()))
                        .fetch_all(&mut *sp)
                        .await
                        .map(|_| ());
                    sp.rollback().await?;
                    Ok::<_, sqlx::Error>(r)
                }
                .await
            };
        }
        let outcome = match &mut self.tx {
            Tx::Postgres(tx) => attempt!(tx),
            Tx::MySql(tx) => attempt!(tx),
            Tx::Sqlite(tx) => attempt!(tx),
        };
        match outcome {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) if is_undefined_object(&e) => Ok(false),
            Ok(Err(e)) | Err(e) => Err(self.error(e)),
        }
    }

    /// End the session: roll back (nothing was written) and give the connection back. Errors
    /// are ignored: a connection that cannot roll back is closed by the pool.
    pub async fn close(self) {
        match self.tx {
            Tx::Postgres(tx) => {
                let _ = tx.rollback().await;
            }
            Tx::MySql(tx) => {
                let _ = tx.rollback().await;
            }
            Tx::Sqlite(mut tx) => {
                if let Ok(mut h) = tx.lock_handle().await {
                    h.remove_progress_handler();
                }
                let _ = tx.rollback().await;
            }
        }
    }
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

/// A database error as a probe error that names the target, never the credentials: I/O and
/// server-busy errors are transient, a statement timeout, a write attempt, bad credentials
/// and anything else permanent.
pub fn db_error(e: sqlx::Error, label: &str, timeout: Duration) -> ProbeError {
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
        sqlx::Error::PoolTimedOut => {
            ProbeError::transient(format!("{label}: cannot connect: timed out"))
        }
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
                    _ if msg.contains("interrupted") => timed_out(),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn url_params_must_not_carry_passwords() {
        assert!(check_url_param("postgres://reader@db:5432/crm").is_ok());
        assert!(check_url_param("mariadb://reader@db/crm").is_ok());
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
    fn labels_never_hold_credentials() {
        assert_eq!(
            label_of("postgres://u:pw@db:5432/crm"),
            "postgres db:5432/crm"
        );
        assert_eq!(
            label_of("mariadb://u:pw@db/crm"),
            "mysql db:default port/crm"
        );
        assert_eq!(label_of("sqlite:///tmp/x.db?mode=ro"), "sqlite /tmp/x.db");
    }

    #[test]
    fn scrubbing_hides_passwords_in_both_forms() {
        let hide = secret_forms("p@ss word");
        let text = "failed for postgres://u:p%40ss%20word@h/ and p@ss word";
        assert_eq!(scrub(text, &hide), "failed for postgres://u:***@h/ and ***");
    }

    #[test]
    fn a_bad_url_never_echoes_its_password() {
        let e = Target::parse("postgres://u:s3cret@db:notaport/crm").unwrap_err();
        assert!(!e.message.contains("s3cret"), "{e}");
        let t = Target::parse("mariadb://u@db:3306/crm").unwrap();
        assert_eq!(t.backend(), Backend::MySql);
        assert_eq!(t.label(), "mysql db:3306/crm");
    }

    #[test]
    fn pools_are_kept_per_url_and_bounded() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pools = DbPools::new();
            let a = Target::parse("postgres://u@db:5432/a").unwrap();
            pools.get(&a);
            pools.get(&a);
            assert_eq!(pools.len(), 1);
            for i in 0..MAX_POOLS + 3 {
                pools.get(&Target::parse(&format!("postgres://u@db:5432/d{i}")).unwrap());
            }
            assert_eq!(pools.len(), MAX_POOLS);
        });
    }
}
