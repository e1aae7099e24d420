//! The embedded store: one SQLite file in WAL mode (`synchronous=NORMAL`, foreign keys on, a
//! busy timeout), migrated at open, proven writable at open. A file that is not a database, is
//! corrupt or cannot be written is a startup error naming the file — never a silent reset.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use funnelgate_core::{FunnelSnapshot, StageReport, Timestamp};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{
    EntryKind, GENESIS_HASH, HashScheme, LedgerEntry, NewEntry, Store, StoreError, VerifyReport,
    entry_hash,
};
use crate::canonical::jcs;
use crate::config::DatabaseLocation;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Make SQLite's terse messages say what to check.
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
    } else {
        text
    }
}

impl SqliteStore {
    /// Open (creating if missing) and migrate the database at `location`.
    pub async fn open(location: &DatabaseLocation) -> Result<Self, StoreError> {
        let (options, path, pool_options) = match location {
            DatabaseLocation::InMemory => (
                SqliteConnectOptions::from_str("sqlite::memory:").map_err(|e| {
                    StoreError::Open {
                        path: PathBuf::from(":memory:"),
                        reason: e.to_string(),
                    }
                })?,
                PathBuf::from(":memory:"),
                // Every in-memory connection is its own database: keep exactly one, forever.
                SqlitePoolOptions::new()
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
                    SqliteConnectOptions::new()
                        .filename(path)
                        .create_if_missing(true),
                    path.clone(),
                    SqlitePoolOptions::new().max_connections(4),
                )
            }
        };
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = pool_options
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                reason: explain_open_error(&e),
            })?;
        // Reading the schema fails on a file that is not a database even when opening did not.
        sqlx::query("SELECT count(*) FROM sqlite_master")
            .fetch_one(&pool)
            .await
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                reason: explain_open_error(&e),
            })?;
        MIGRATOR.run(&pool).await.map_err(|e| {
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
        sqlx::query("INSERT INTO meta (key, value) VALUES ('last_open', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(now_millis().to_string())
            .execute(&pool)
            .await
            .map_err(|e| StoreError::Open { path: path.clone(), reason: explain_open_error(&e) })?;
        Ok(SqliteStore { pool, path })
    }

    /// Open a file database.
    pub async fn open_file(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open(&DatabaseLocation::File(path.as_ref().to_path_buf())).await
    }

    /// The database file (`:memory:` for an in-memory database).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying pool (tests use it to tamper with rows).
    pub fn pool(&self) -> &SqlitePool {
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

    fn decode_entry(&self, row: &SqliteRow) -> Result<LedgerEntry, StoreError> {
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
            seq: raw.seq as u64,
            kind,
            recorded_at: Timestamp::from_millis(raw.recorded_at),
            config_hash: raw.config_hash,
            payload,
            prev_hash: raw.prev_hash,
            hash: raw.hash,
        })
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
    fn from_row(row: &SqliteRow) -> Result<Self, sqlx::Error> {
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
    &h[..h.len().min(12)]
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, entry: NewEntry) -> Result<LedgerEntry, StoreError> {
        // IMMEDIATE takes the write lock up front: the read of the chain head and the insert
        // cannot interleave with another writer.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.query_err("begin append"))?;
        let head =
            sqlx::query("SELECT seq, hash FROM ledger WHERE funnel = ?1 ORDER BY seq DESC LIMIT 1")
                .bind(&entry.funnel)
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
                (seq as u64 + 1, hash)
            }
            None => (1, GENESIS_HASH.to_string()),
        };
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
        .map_err(|e| self.corrupt(format!("new entry of funnel `{}`", entry.funnel), e))?;
        let payload_text = jcs(&entry.payload)
            .map_err(|e| self.corrupt(format!("new entry of funnel `{}`", entry.funnel), e))?;
        sqlx::query(
            "INSERT INTO ledger (funnel, seq, kind, recorded_at, config_hash, payload, prev_hash, hash_scheme, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .bind(&entry.funnel)
        .bind(seq as i64)
        .bind(entry.kind.as_str())
        .bind(entry.recorded_at.as_millis())
        .bind(&entry.config_hash)
        .bind(payload_text)
        .bind(&prev_hash)
        .bind(HashScheme::CURRENT.version())
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .map_err(self.query_err("append ledger entry"))?;
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
        let rows = sqlx::query(
            "SELECT funnel, seq, kind, recorded_at, config_hash, payload, prev_hash, hash_scheme, hash FROM ledger \
             WHERE funnel = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        )
            .bind(funnel)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(self.query_err("list ledger"))?;
        rows.iter().map(|r| self.decode_entry(r)).collect()
    }

    async fn get(&self, funnel: &str, seq: u64) -> Result<Option<LedgerEntry>, StoreError> {
        let row = sqlx::query("SELECT funnel, seq, kind, recorded_at, config_hash, payload, prev_hash, hash_scheme, hash FROM ledger WHERE funnel = ?1 AND seq = ?2")
            .bind(funnel)
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
            Some(kind) => sqlx::query("SELECT funnel, seq, kind, recorded_at, config_hash, payload, prev_hash, hash_scheme, hash FROM ledger WHERE funnel = ?1 AND kind = ?2 ORDER BY seq DESC LIMIT 1")
                .bind(funnel)
                .bind(kind.as_str())
                .fetch_optional(&self.pool)
                .await,
            None => sqlx::query("SELECT funnel, seq, kind, recorded_at, config_hash, payload, prev_hash, hash_scheme, hash FROM ledger WHERE funnel = ?1 ORDER BY seq DESC LIMIT 1")
                .bind(funnel)
                .fetch_optional(&self.pool)
                .await,
        }
        .map_err(self.query_err("read last ledger entry"))?;
        row.as_ref().map(|r| self.decode_entry(r)).transpose()
    }

    async fn verify(&self, funnel: &str) -> Result<VerifyReport, StoreError> {
        use futures::TryStreamExt;
        let mut rows = sqlx::query("SELECT funnel, seq, kind, recorded_at, config_hash, payload, prev_hash, hash_scheme, hash FROM ledger WHERE funnel = ?1 ORDER BY seq ASC")
            .bind(funnel)
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
            let raw = match RawEntry::from_row(&row) {
                Ok(raw) => raw,
                Err(e) => {
                    first_error = Some(format!("entry {expected_seq}: unreadable row: {e}"));
                    continue;
                }
            };
            let seq = raw.seq;
            if seq != expected_seq as i64 {
                first_error = Some(if seq > expected_seq as i64 {
                    format!("entry {expected_seq} is missing (the next stored entry is {seq})")
                } else {
                    format!("entry {seq} appears out of order (expected entry {expected_seq})")
                });
                continue;
            }
            if raw.prev_hash != prev_hash {
                first_error = Some(if seq == 1 {
                    format!(
                        "entry 1: prev_hash {} is not the genesis hash (entries before it were removed or it was rewritten)",
                        short(&raw.prev_hash)
                    )
                } else {
                    format!(
                        "entry {seq}: prev_hash {} does not match the hash {} of entry {} (entry {} was rewritten or entry {seq} was modified)",
                        short(&raw.prev_hash),
                        short(&prev_hash),
                        seq - 1,
                        seq - 1
                    )
                });
                continue;
            }
            let kind = match EntryKind::parse(&raw.kind) {
                Some(k) => k,
                None => {
                    first_error = Some(format!(
                        "entry {seq}: unknown kind `{}` (the entry was modified)",
                        raw.kind
                    ));
                    continue;
                }
            };
            let payload: serde_json::Value = match serde_json::from_str(&raw.payload) {
                Ok(p) => p,
                Err(e) => {
                    first_error = Some(format!(
                        "entry {seq}: payload is not valid JSON ({e}): the entry was modified"
                    ));
                    continue;
                }
            };
            let Some(scheme) = HashScheme::from_version(raw.hash_scheme) else {
                first_error = Some(format!(
                    "entry {seq}: unknown hash scheme {} (the entry was modified)",
                    raw.hash_scheme
                ));
                continue;
            };
            let recomputed = match entry_hash(
                scheme,
                &prev_hash,
                &raw.funnel,
                seq as u64,
                kind,
                Timestamp::from_millis(raw.recorded_at),
                &raw.config_hash,
                &payload,
            ) {
                Ok(h) => h,
                Err(e) => {
                    first_error = Some(format!("entry {seq}: {e}"));
                    continue;
                }
            };
            if recomputed != raw.hash {
                first_error = Some(format!(
                    "entry {seq}: stored hash {} does not match its content (recomputed {}): the entry was modified",
                    short(&raw.hash),
                    short(&recomputed)
                ));
                continue;
            }
            prev_hash = raw.hash;
            expected_seq += 1;
        }
        Ok(VerifyReport {
            valid: first_error.is_none(),
            length,
            first_error,
        })
    }

    async fn save_state(&self, snapshot: &FunnelSnapshot) -> Result<(), StoreError> {
        let json = serde_json::to_string(snapshot)
            .map_err(|e| self.corrupt(format!("snapshot of funnel `{}`", snapshot.funnel), e))?;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.query_err("begin save state"))?;
        sqlx::query(
            "INSERT INTO engine_state (funnel, updated_at, snapshot) VALUES (?1, ?2, ?3) \
             ON CONFLICT (funnel) DO UPDATE SET updated_at = excluded.updated_at, snapshot = excluded.snapshot",
        )
        .bind(&snapshot.funnel)
        .bind(now_millis())
        .bind(json)
        .execute(&mut *tx)
        .await
        .map_err(self.query_err("save engine state"))?;
        for report in &snapshot.last_reports {
            let json = serde_json::to_string(report).map_err(|e| {
                self.corrupt(format!("report of `{}/{}`", report.funnel, report.stage), e)
            })?;
            sqlx::query(
                "INSERT INTO stage_reports (funnel, stage, checked_at, report) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (funnel, stage) DO UPDATE SET checked_at = excluded.checked_at, report = excluded.report",
            )
            .bind(&snapshot.funnel)
            .bind(&report.stage)
            .bind(report.checked_at.as_millis())
            .bind(json)
            .execute(&mut *tx)
            .await
            .map_err(self.query_err("save stage report"))?;
        }
        tx.commit()
            .await
            .map_err(self.query_err("commit engine state"))?;
        Ok(())
    }

    async fn load_state(&self, funnel: &str) -> Result<Option<FunnelSnapshot>, StoreError> {
        let row = sqlx::query("SELECT snapshot FROM engine_state WHERE funnel = ?1")
            .bind(funnel)
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
        let rows = sqlx::query("SELECT report FROM stage_reports WHERE funnel = ?1 ORDER BY stage")
            .bind(funnel)
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

    async fn close(&self) {
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(path = %self.path.display(), %error, "cannot checkpoint the database before closing");
        }
        self.pool.close().await;
    }
}
