//! The store, on SQLite or PostgreSQL through one code path (sqlx's `Any` driver): the same
//! statements, the same hash chain, the same rules. Only opening differs (file pragmas vs.
//! connection URL, one migration set each) and, on PostgreSQL, every write checks the writer's
//! leadership term in its own transaction (see [`crate::leader`]).
//!
//! SQLite: one file in WAL mode, `synchronous = NORMAL` by default (`FULL` on request), foreign
//! keys on, a busy timeout; migrated and proven writable at open. A file that is not a database,
//! is corrupt or cannot be written is a startup error naming the file, never a silent reset.
//!
//! PostgreSQL: `postgres://…` with sqlx's URL options (`sslmode`, `sslrootcert`,
//! `sslcert`/`sslkey` for TLS, through rustls); each connection carries `application_name`
//! so an operator can tell replicas apart in `pg_stat_activity`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use funnelgate_core::{FunnelSnapshot, StageReport, Timestamp};
use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Connection, Executor, Row};

use super::{
    EntryKind, GENESIS_HASH, HashScheme, LedgerEntry, NewEntry, Store, StoreError, VerifyReport,
    entry_hash,
};
use crate::canonical::jcs;
use crate::config::DatabaseLocation;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a statement waits for a lock held by another connection (SQLite).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

const ENTRY_COLUMNS: &str =
    "funnel, seq, kind, recorded_at, config_hash, payload, prev_hash, hash_scheme, hash";

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (or memory).
    Sqlite,
    /// A PostgreSQL server (replicas, leader election).
    Postgres,
}

/// How to open a store beyond its location.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// SQLite `synchronous = FULL` (every commit survives power loss) instead of `NORMAL`.
    pub sqlite_synchronous_full: bool,
    /// PostgreSQL `application_name` of the store's connections.
    pub application_name: String,
    /// PostgreSQL `idle_in_transaction_session_timeout` of the store's connections: a writer
    /// paused inside a transaction (it holds the leadership row) is cut off after this long, so
    /// a new leader is never blocked by it.
    pub postgres_idle_in_transaction: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sqlite_synchronous_full: false,
            application_name: "funnelgate".into(),
            postgres_idle_in_transaction: None,
        }
    }
}

/// Which leadership term writes must carry. SQLite stores are unfenced (one process owns the
/// file); PostgreSQL stores start with no term and refuse writes until [`Fence::set`].
#[derive(Debug)]
pub struct Fence(AtomicI64);

const UNFENCED: i64 = -1;

impl Fence {
    /// Write under `term` from now on (0: refuse every write).
    pub fn set(&self, term: i64) {
        self.0.store(term, Ordering::SeqCst);
    }

    /// The term writes carry, if fenced.
    pub fn term(&self) -> Option<i64> {
        match self.0.load(Ordering::SeqCst) {
            UNFENCED => None,
            t => Some(t),
        }
    }
}

/// The store (see the module docs). `SqliteStore` is the same type.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// The file, or the URL without its password, for messages.
    path: PathBuf,
    url: Arc<str>,
    fence: Arc<Fence>,
}

/// The store on SQLite (kept name; the same type as [`SqlStore`]).
pub type SqliteStore = SqlStore;

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .field("path", &self.path)
            .finish()
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Make the database's terse messages say what to check.
fn explain_open_error(e: &sqlx::Error) -> String {
    let text = match e {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    };
    let lower = text.to_ascii_lowercase();
    if lower.contains("not a database") || lower.contains("malformed") {
        format!(
            "{text}: the file is corrupt or not a funnelgate SQLite database (restore it from a backup, or point `coordinator.database` elsewhere)"
        )
    } else if lower.contains("unable to open") {
        format!("{text}: check that the directory exists and is writable by this process")
    } else if lower.contains("readonly") || lower.contains("read-only") {
        format!("{text}: the database or its directory is read-only")
    } else if lower.contains("password authentication") || lower.contains("no pg_hba.conf") {
        format!("{text}: check the user, password and sslmode in the URL")
    } else if lower.contains("connection refused") {
        format!("{text}: is PostgreSQL running at the URL's host and port?")
    } else {
        text
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Per-connection SQLite settings: WAL, the configured durability, foreign keys, busy timeout.
async fn prepare_sqlite(conn: &mut sqlx::AnyConnection, full: bool) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA journal_mode = WAL").await?;
    if full {
        conn.execute("PRAGMA synchronous = FULL").await?;
    } else {
        conn.execute("PRAGMA synchronous = NORMAL").await?;
    }
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {}",
        BUSY_TIMEOUT.as_millis()
    )))
    .await?;
    Ok(())
}

/// Percent-encode what a SQLite URL path may not contain literally.
fn sqlite_url(path: &Path) -> String {
    let mut out = String::from("sqlite://");
    for c in path.display().to_string().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out.push_str("?mode=rwc");
    out
}

fn with_application_name(url: &str, name: &str) -> String {
    if url.contains("application_name=") {
        return url.to_string();
    }
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._:".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={name}")
}

impl SqlStore {
    /// Open (creating if missing) and migrate the database at `location` with default options.
    pub async fn open(location: &DatabaseLocation) -> Result<Self, StoreError> {
        Self::open_with(location, &StoreOptions::default()).await
    }

    /// Open (creating a SQLite file if missing) and migrate the database at `location`.
    pub async fn open_with(
        location: &DatabaseLocation,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, path, backend, pool_options) = match location {
            DatabaseLocation::InMemory => (
                "sqlite::memory:".to_string(),
                PathBuf::from(":memory:"),
                Backend::Sqlite,
                // Every in-memory connection is its own database: keep exactly one, forever.
                AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None),
            ),
            DatabaseLocation::File(path) => {
                if path.is_dir() {
                    return Err(StoreError::Open {
                        path: path.clone(),
                        reason: "this is a directory: `coordinator.database` must name a file"
                            .into(),
                    });
                }
                (
                    sqlite_url(path),
                    path.clone(),
                    Backend::Sqlite,
                    AnyPoolOptions::new().max_connections(4),
                )
            }
            DatabaseLocation::Postgres(url) => (
                with_application_name(url, &options.application_name),
                PathBuf::from(redact_url(url)),
                Backend::Postgres,
                AnyPoolOptions::new().max_connections(8),
            ),
        };
        let pool_options = pool_options.acquire_timeout(ACQUIRE_TIMEOUT);
        // One direct connection first: a bad file, refused connection or wrong password is a
        // clear error now, not a pool timeout later.
        let full = options.sqlite_synchronous_full;
        let open_err = |e: sqlx::Error| StoreError::Open {
            path: path.clone(),
            reason: explain_open_error(&e),
        };
        {
            let mut conn = sqlx::AnyConnection::connect(&url).await.map_err(open_err)?;
            if backend == Backend::Sqlite {
                prepare_sqlite(&mut conn, full).await.map_err(open_err)?;
                // Reading the schema fails on a file that is not a database even when opening
                // did not.
                sqlx::query("SELECT count(*) FROM sqlite_master")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(open_err)?;
            }
            conn.close().await.map_err(open_err)?;
        }
        let pool_options = if backend == Backend::Sqlite {
            pool_options.after_connect(move |conn, _| {
                Box::pin(async move { prepare_sqlite(conn, full).await })
            })
        } else if let Some(limit) = options.postgres_idle_in_transaction {
            let ms = limit.as_millis().max(1);
            pool_options.after_connect(move |conn, _| {
                Box::pin(async move {
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "SET idle_in_transaction_session_timeout = {ms}"
                    )))
                    .await
                    .map(|_| ())
                })
            })
        } else {
            pool_options
        };
        let pool = pool_options.connect(&url).await.map_err(open_err)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator.run(&pool).await.map_err(|e| {
            let reason = match &e {
                sqlx::migrate::MigrateError::Execute(inner) => explain_open_error(inner),
                other => other.to_string(),
            };
            StoreError::Migrate {
                path: path.clone(),
                reason,
            }
        })?;
        // Prove the database is writable now rather than at the first decision.
        sqlx::query("INSERT INTO meta (key, value) VALUES ('last_open', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(now_millis().to_string())
            .execute(&pool)
            .await
            .map_err(|e| StoreError::Open { path: path.clone(), reason: explain_open_error(&e) })?;
        let fence = Fence(AtomicI64::new(match backend {
            Backend::Sqlite => UNFENCED,
            Backend::Postgres => 0,
        }));
        Ok(SqlStore {
            pool,
            backend,
            path,
            url: Arc::from(url),
            fence: Arc::new(fence),
        })
    }

    /// Open a SQLite file database.
    pub async fn open_file(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open(&DatabaseLocation::File(path.as_ref().to_path_buf())).await
    }

    /// The database file (`:memory:` for an in-memory database; the URL without password for
    /// PostgreSQL).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection URL (with `application_name`; contains the password if the configured
    /// one did). Leader election opens its own session with it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The write fence (PostgreSQL: the leadership term writes carry).
    pub fn fence(&self) -> &Arc<Fence> {
        &self.fence
    }

    /// The underlying pool (tests use it to tamper with rows).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn query_err(&self, op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Query {
            path: self.path.clone(),
            op,
            source,
        }
    }

    fn corrupt(&self, what: String, reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what,
            reason: reason.to_string(),
        }
    }

    fn decode_entry(&self, row: &AnyRow) -> Result<LedgerEntry, StoreError> {
        let raw = RawEntry::from_row(row).map_err(|e| self.corrupt("ledger row".into(), e))?;
        let what = format!("ledger entry {} of funnel `{}`", raw.seq, raw.funnel);
        let kind = EntryKind::parse(&raw.kind)
            .ok_or_else(|| self.corrupt(what.clone(), format!("unknown kind `{}`", raw.kind)))?;
        let hash_scheme = HashScheme::from_version(raw.hash_scheme).ok_or_else(|| {
            self.corrupt(
                what.clone(),
                format!("unknown hash scheme {}", raw.hash_scheme),
            )
        })?;
        let payload = serde_json::from_str(&raw.payload).map_err(|e| self.corrupt(what, e))?;
        Ok(LedgerEntry {
            hash_scheme,
            funnel: raw.funnel,
            seq: u64::try_from(raw.seq).unwrap_or(0),
            kind,
            recorded_at: Timestamp::from_millis(raw.recorded_at),
            config_hash: raw.config_hash,
            payload,
            prev_hash: raw.prev_hash,
            hash: raw.hash,
        })
    }

    /// Begin a write transaction: SQLite takes the write lock up front (the chain head read and
    /// the insert cannot interleave with another writer); PostgreSQL checks, under a share lock
    /// on the leadership row, that this store still writes under the current term.
    async fn begin_write(
        &self,
        op: &'static str,
        lock: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        match self.backend {
            Backend::Sqlite => self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(self.query_err(op)),
            Backend::Postgres => {
                let mine = self.fence.term().unwrap_or(0);
                if mine <= 0 {
                    return Err(StoreError::Fenced {
                        path: self.path.clone(),
                        term: mine,
                        current: None,
                    });
                }
                let mut tx = self.pool.begin().await.map_err(self.query_err(op))?;
                let row = sqlx::query(lock)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(self.query_err("check leadership term"))?;
                let current: i64 = row
                    .try_get("term")
                    .map_err(self.query_err("check leadership term"))?;
                if current != mine {
                    return Err(StoreError::Fenced {
                        path: self.path.clone(),
                        term: mine,
                        current: Some(current),
                    });
                }
                Ok(tx)
            }
        }
    }

    /// Funnels that have a ledger, sorted.
    pub async fn funnels(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT funnel FROM ledger ORDER BY funnel")
            .fetch_all(&self.pool)
            .await
            .map_err(self.query_err("list funnels"))?;
        rows.iter()
            .map(|r| r.try_get("funnel").map_err(self.query_err("list funnels")))
            .collect()
    }

    /// Entries of a funnel with `seq > after`, oldest first, at most `limit` (followers catch
    /// up with this).
    pub async fn since(
        &self,
        funnel: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger WHERE funnel = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3"
        )))
        .bind(funnel.to_string())
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_err("read ledger tail"))?;
        rows.iter().map(|r| self.decode_entry(r)).collect()
    }
}

impl SqlStore {
    async fn write_state(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        snapshot: &FunnelSnapshot,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(snapshot)
            .map_err(|e| self.corrupt(format!("snapshot of funnel `{}`", snapshot.funnel), e))?;
        sqlx::query(
            "INSERT INTO engine_state (funnel, updated_at, snapshot) VALUES ($1, $2, $3) \
             ON CONFLICT (funnel) DO UPDATE SET updated_at = excluded.updated_at, snapshot = excluded.snapshot",
        )
        .bind(snapshot.funnel.clone())
        .bind(now_millis())
        .bind(json)
        .execute(&mut **tx)
        .await
        .map_err(self.query_err("save engine state"))?;
        for report in &snapshot.last_reports {
            let json = serde_json::to_string(report).map_err(|e| {
                self.corrupt(format!("report of `{}/{}`", report.funnel, report.stage), e)
            })?;
            sqlx::query(
                "INSERT INTO stage_reports (funnel, stage, checked_at, report) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (funnel, stage) DO UPDATE SET checked_at = excluded.checked_at, report = excluded.report",
            )
            .bind(snapshot.funnel.clone())
            .bind(report.stage.clone())
            .bind(report.checked_at.as_millis())
            .bind(json)
            .execute(&mut **tx)
            .await
            .map_err(self.query_err("save stage report"))?;
        }
        Ok(())
    }
}

/// A ledger row as stored, before any interpretation (verify must cope with garbage).
struct RawEntry {
    funnel: String,
    seq: i64,
    kind: String,
    recorded_at: i64,
    config_hash: String,
    payload: String,
    prev_hash: String,
    hash_scheme: i64,
    hash: String,
}

impl RawEntry {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(RawEntry {
            funnel: row.try_get("funnel")?,
            seq: row.try_get("seq")?,
            kind: row.try_get("kind")?,
            recorded_at: row.try_get("recorded_at")?,
            config_hash: row.try_get("config_hash")?,
            payload: row.try_get("payload")?,
            prev_hash: row.try_get("prev_hash")?,
            hash_scheme: row.try_get("hash_scheme")?,
            hash: row.try_get("hash")?,
        })
    }
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

#[async_trait]
impl Store for SqlStore {
    async fn append_with_state(
        &self,
        entry: NewEntry,
        snapshot: Option<&FunnelSnapshot>,
    ) -> Result<LedgerEntry, StoreError> {
        let mut tx = self
            .begin_write(
                "begin append",
                // appends to a chain serialise on the leadership row (one leader writes anyway)
                "SELECT term FROM leadership WHERE id = 1 FOR UPDATE",
            )
            .await?;
        let head =
            sqlx::query("SELECT seq, hash FROM ledger WHERE funnel = $1 ORDER BY seq DESC LIMIT 1")
                .bind(entry.funnel.clone())
                .fetch_optional(&mut *tx)
                .await
                .map_err(self.query_err("read chain head"))?;
        let (seq, prev_hash) = match head {
            Some(row) => {
                let seq: i64 = row
                    .try_get("seq")
                    .map_err(self.query_err("read chain head"))?;
                let hash: String = row
                    .try_get("hash")
                    .map_err(self.query_err("read chain head"))?;
                (u64::try_from(seq).unwrap_or(0) + 1, hash)
            }
            None => (1, GENESIS_HASH.to_string()),
        };
        let what = || format!("new entry of funnel `{}`", entry.funnel);
        let hash = entry_hash(
            HashScheme::CURRENT,
            &prev_hash,
            &entry.funnel,
            seq,
            entry.kind,
            entry.recorded_at,
            &entry.config_hash,
            &entry.payload,
        )
        .map_err(|e| self.corrupt(what(), e))?;
        let payload_text = jcs(&entry.payload).map_err(|e| self.corrupt(what(), e))?;
        // PostgreSQL also records the writer's term (audit: terms never decrease along a chain).
        let insert = match self.backend {
            Backend::Sqlite => {
                "INSERT INTO ledger (funnel, seq, kind, recorded_at, config_hash, payload, prev_hash, hash_scheme, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            }
            Backend::Postgres => {
                "INSERT INTO ledger (funnel, seq, kind, recorded_at, config_hash, payload, prev_hash, hash_scheme, hash, term) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            }
        };
        let query = sqlx::query(insert)
            .bind(entry.funnel.clone())
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(entry.kind.as_str())
            .bind(entry.recorded_at.as_millis())
            .bind(entry.config_hash.clone())
            .bind(payload_text)
            .bind(prev_hash.clone())
            .bind(HashScheme::CURRENT.version())
            .bind(hash.clone());
        let query = match self.backend {
            Backend::Sqlite => query,
            Backend::Postgres => query.bind(self.fence.term().unwrap_or(0)),
        };
        query
            .execute(&mut *tx)
            .await
            .map_err(self.query_err("append ledger entry"))?;
        if let Some(snapshot) = snapshot {
            self.write_state(&mut tx, snapshot).await?;
        }
        tx.commit()
            .await
            .map_err(self.query_err("commit ledger entry"))?;
        Ok(LedgerEntry {
            funnel: entry.funnel,
            seq,
            kind: entry.kind,
            recorded_at: entry.recorded_at,
            config_hash: entry.config_hash,
            payload: entry.payload,
            prev_hash,
            hash_scheme: HashScheme::CURRENT,
            hash,
        })
    }

    async fn list(
        &self,
        funnel: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger WHERE funnel = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        )))
        .bind(funnel.to_string())
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_err("list ledger"))?;
        rows.iter().map(|r| self.decode_entry(r)).collect()
    }

    async fn get(&self, funnel: &str, seq: u64) -> Result<Option<LedgerEntry>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger WHERE funnel = $1 AND seq = $2"
        )))
        .bind(funnel.to_string())
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query_err("read ledger entry"))?;
        row.as_ref().map(|r| self.decode_entry(r)).transpose()
    }

    async fn last(
        &self,
        funnel: &str,
        kind: Option<EntryKind>,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let row = match kind {
            Some(kind) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ENTRY_COLUMNS} FROM ledger WHERE funnel = $1 AND kind = $2 ORDER BY seq DESC LIMIT 1"
            )))
            .bind(funnel.to_string())
            .bind(kind.as_str())
            .fetch_optional(&self.pool)
            .await,
            None => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ENTRY_COLUMNS} FROM ledger WHERE funnel = $1 ORDER BY seq DESC LIMIT 1"
            )))
            .bind(funnel.to_string())
            .fetch_optional(&self.pool)
            .await,
        }
        .map_err(self.query_err("read last ledger entry"))?;
        row.as_ref().map(|r| self.decode_entry(r)).transpose()
    }

    async fn verify(&self, funnel: &str) -> Result<VerifyReport, StoreError> {
        use futures::TryStreamExt;
        let query =
            format!("SELECT {ENTRY_COLUMNS} FROM ledger WHERE funnel = $1 ORDER BY seq ASC");
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(funnel.to_string())
            .fetch(&self.pool);
        let mut expected_seq: u64 = 1;
        let mut prev_hash = GENESIS_HASH.to_string();
        let mut length = 0;
        let mut first_error = None;
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(self.query_err("verify ledger"))?
        {
            length += 1;
            if first_error.is_some() {
                continue;
            }
            first_error = check_link(&row, expected_seq, &prev_hash).err();
            if first_error.is_none() {
                prev_hash = row.try_get("hash").unwrap_or_default();
                expected_seq += 1;
            }
        }
        Ok(VerifyReport {
            valid: first_error.is_none(),
            length,
            first_error,
        })
    }

    async fn save_state(&self, snapshot: &FunnelSnapshot) -> Result<(), StoreError> {
        let mut tx = self
            .begin_write(
                "begin save state",
                "SELECT term FROM leadership WHERE id = 1 FOR SHARE",
            )
            .await?;
        self.write_state(&mut tx, snapshot).await?;
        tx.commit()
            .await
            .map_err(self.query_err("commit engine state"))?;
        Ok(())
    }

    async fn load_state(&self, funnel: &str) -> Result<Option<FunnelSnapshot>, StoreError> {
        let row = sqlx::query("SELECT snapshot FROM engine_state WHERE funnel = $1")
            .bind(funnel.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query_err("load engine state"))?;
        let Some(row) = row else { return Ok(None) };
        let text: String = row
            .try_get("snapshot")
            .map_err(self.query_err("load engine state"))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| self.corrupt(format!("engine state of funnel `{funnel}`"), e))
    }

    async fn latest_reports(&self, funnel: &str) -> Result<Vec<StageReport>, StoreError> {
        let rows = sqlx::query("SELECT report FROM stage_reports WHERE funnel = $1 ORDER BY stage")
            .bind(funnel.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(self.query_err("load stage reports"))?;
        rows.iter()
            .map(|row| {
                let text: String = row
                    .try_get("report")
                    .map_err(self.query_err("load stage reports"))?;
                serde_json::from_str(&text)
                    .map_err(|e| self.corrupt(format!("stage report of funnel `{funnel}`"), e))
            })
            .collect()
    }

    async fn funnels(&self) -> Result<Vec<String>, StoreError> {
        SqlStore::funnels(self).await
    }

    async fn since(
        &self,
        funnel: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        SqlStore::since(self, funnel, after, limit).await
    }

    async fn close(&self) {
        if self.backend == Backend::Sqlite
            && let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await
        {
            tracing::warn!(path = %self.path.display(), %error, "cannot checkpoint the database before closing");
        }
        self.pool.close().await;
    }
}

/// Check one stored row against the expected position and predecessor; `Err` names the first
/// thing wrong with it.
fn check_link(row: &AnyRow, expected_seq: u64, prev_hash: &str) -> Result<(), String> {
    let raw = RawEntry::from_row(row)
        .map_err(|e| format!("entry {expected_seq}: unreadable row: {e}"))?;
    let seq = raw.seq;
    let expected = i64::try_from(expected_seq).unwrap_or(i64::MAX);
    if seq != expected {
        return Err(if seq > expected {
            format!("entry {expected_seq} is missing (the next stored entry is {seq})")
        } else {
            format!("entry {seq} appears out of order (expected entry {expected_seq})")
        });
    }
    if raw.prev_hash != prev_hash {
        return Err(if seq == 1 {
            format!(
                "entry 1: prev_hash {} is not the genesis hash (entries before it were removed or it was rewritten)",
                short(&raw.prev_hash)
            )
        } else {
            format!(
                "entry {seq}: prev_hash {} does not match the hash {} of entry {} (entry {} was rewritten or entry {seq} was modified)",
                short(&raw.prev_hash),
                short(prev_hash),
                seq - 1,
                seq - 1
            )
        });
    }
    let kind = EntryKind::parse(&raw.kind).ok_or_else(|| {
        format!(
            "entry {seq}: unknown kind `{}` (the entry was modified)",
            raw.kind
        )
    })?;
    let payload: serde_json::Value = serde_json::from_str(&raw.payload).map_err(|e| {
        format!("entry {seq}: payload is not valid JSON ({e}): the entry was modified")
    })?;
    let scheme = HashScheme::from_version(raw.hash_scheme).ok_or_else(|| {
        format!(
            "entry {seq}: unknown hash scheme {} (the entry was modified)",
            raw.hash_scheme
        )
    })?;
    let recomputed = entry_hash(
        scheme,
        prev_hash,
        &raw.funnel,
        expected_seq,
        kind,
        Timestamp::from_millis(raw.recorded_at),
        &raw.config_hash,
        &payload,
    )
    .map_err(|e| format!("entry {seq}: {e}"))?;
    if recomputed != raw.hash {
        return Err(format!(
            "entry {seq}: stored hash {} does not match its content (recomputed {}): the entry was modified",
            short(&raw.hash),
            short(&recomputed)
        ));
    }
    Ok(())
}
