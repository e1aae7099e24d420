//! Durable state: the append-only, hash-chained ledger of decisions and operator actions, the
//! latest stage report per funnel and stage, and the engine's per-funnel snapshot.
//!
//! [`Store`] is the interface the coordinator uses; [`sql::SqlStore`] implements it on SQLite
//! (embedded, one process) and PostgreSQL (replicas with leader election, see
//! [`crate::leader`]) through one code path. Nothing above this module knows which database it
//! talks to.

pub mod sql;

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use funnelgate_core::{FunnelSnapshot, StageReport, Timestamp};
use serde::{Deserialize, Serialize};

use crate::canonical::{CanonicalError, canonical_json, jcs, sha256_hex};

pub use sql::{Backend, Fence, SqlStore, SqliteStore, StoreOptions, redact_url};

/// `prev_hash` of a funnel's first ledger entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a ledger entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The gate decision changed (payload: the decision and the stage reports it was based on).
    Decision,
    /// An operator forced the gate (payload: the override, the actor, the resulting decision).
    Override,
    /// An override was removed by an operator or expired.
    OverrideCleared,
    /// An operator changed the funnel's phase.
    Phase,
}

impl EntryKind {
    /// Stored form.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::Decision => "decision",
            EntryKind::Override => "override",
            EntryKind::OverrideCleared => "override_cleared",
            EntryKind::Phase => "phase",
        }
    }

    /// Parse the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        [
            EntryKind::Decision,
            EntryKind::Override,
            EntryKind::OverrideCleared,
            EntryKind::Phase,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry to append; the store assigns `seq`, `prev_hash` and `hash`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEntry {
    /// Funnel the entry belongs to (each funnel has its own chain).
    pub funnel: String,
    /// What it records.
    pub kind: EntryKind,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// [`crate::Config::hash`] of the configuration in force.
    pub config_hash: String,
    /// The decision, its evidence and, for operator actions, who and why.
    pub payload: serde_json::Value,
}

/// How a ledger entry's hash is computed. Stored with every entry, so ledgers written before a
/// scheme change keep verifying; new entries always use [`HashScheme::CURRENT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashScheme {
    /// Scheme 1 (entries written before RFC 8785 was adopted):
    /// `sha256_hex(prev_hash + "\n" + C(body))` where `C` is [`crate::canonical::canonical_json`]
    /// (keys sorted by Rust string order, serde_json number and string forms) and `body` is
    /// `{"config_hash", "funnel", "kind", "payload", "recorded_at", "seq"}`.
    Legacy,
    /// Scheme 2: `sha256_hex(prev_hash + "\n" + JCS(body))` where `JCS` is RFC 8785 and `body` is
    /// `{"config_hash": str, "funnel": str, "kind": str, "payload": object,
    /// "recorded_at": unix millis, "seq": int, "v": 2}`; `sha256_hex` is lower-case hex and the
    /// string is hashed as UTF-8. Any language's JCS implementation can recompute it
    /// (`crates/coordinator/tests/verify_ledger.py` does, with Python's `rfc8785`).
    Jcs,
}

impl HashScheme {
    /// The scheme new entries use.
    pub const CURRENT: HashScheme = HashScheme::Jcs;

    /// Stored form.
    pub const fn version(self) -> i64 {
        match self {
            HashScheme::Legacy => 1,
            HashScheme::Jcs => 2,
        }
    }

    /// Parse the stored form.
    pub fn from_version(v: i64) -> Option<Self> {
        match v {
            1 => Some(HashScheme::Legacy),
            2 => Some(HashScheme::Jcs),
            _ => None,
        }
    }
}

/// A stored ledger entry.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerEntry {
    /// Funnel the entry belongs to.
    pub funnel: String,
    /// 1-based position in the funnel's chain.
    pub seq: u64,
    /// What it records.
    pub kind: EntryKind,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// Configuration hash in force.
    pub config_hash: String,
    /// The recorded content.
    pub payload: serde_json::Value,
    /// Hash of the previous entry ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// How `hash` is computed.
    pub hash_scheme: HashScheme,
    /// [`entry_hash`] of this entry.
    pub hash: String,
}

/// The hash of an entry with this content and predecessor, under `scheme`.
#[allow(clippy::too_many_arguments)]
pub fn entry_hash(
    scheme: HashScheme,
    prev_hash: &str,
    funnel: &str,
    seq: u64,
    kind: EntryKind,
    recorded_at: Timestamp,
    config_hash: &str,
    payload: &serde_json::Value,
) -> Result<String, CanonicalError> {
    let mut body = serde_json::json!({
        "funnel": funnel,
        "seq": seq,
        "kind": kind.as_str(),
        "recorded_at": recorded_at.as_millis(),
        "config_hash": config_hash,
        "payload": payload,
    });
    let text = match scheme {
        HashScheme::Legacy => canonical_json(&body),
        HashScheme::Jcs => {
            if let Some(map) = body.as_object_mut() {
                map.insert("v".into(), HashScheme::Jcs.version().into());
            }
            jcs(&body)?
        }
    };
    Ok(sha256_hex(format!("{prev_hash}\n{text}").as_bytes()))
}

/// Result of re-checking a funnel's whole chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every entry's hash matches its content and its predecessor, and no entry is missing.
    pub valid: bool,
    /// Entries checked.
    pub length: u64,
    /// The first broken entry and why, when not valid.
    pub first_error: Option<String>,
}

/// Store failures. Every message names the database and says what failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be opened or is not usable (corrupt, unwritable, wrong format).
    #[error("cannot open database `{path}`: {reason}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong and what to check.
        reason: String,
    },
    /// Migrations failed.
    #[error("cannot migrate database `{path}`: {reason}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A query failed.
    #[error("database `{path}`: {op}: {source}")]
    Query {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// This process no longer (or not yet) leads: the write was refused in its transaction.
    #[error("database `{path}`: write refused: this replica writes under leadership term {term} but the current term is {}", current.map_or_else(|| "unknown (not the leader)".to_string(), |c| c.to_string()))]
    Fenced {
        /// The database.
        path: PathBuf,
        /// The term this replica holds (0: none).
        term: i64,
        /// The term in the database, when read.
        current: Option<i64>,
    },
    /// Stored data cannot be decoded.
    #[error("database `{path}`: {what}: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which record.
        what: String,
        /// Why it cannot be read.
        reason: String,
    },
}

/// Durable state of the coordinator. Implementations must make an acknowledged write durable
/// (survive a process crash) before returning.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Append an entry to its funnel's chain and return it with `seq` and hashes filled in.
    async fn append(&self, entry: NewEntry) -> Result<LedgerEntry, StoreError> {
        self.append_with_state(entry, None).await
    }

    /// Append an entry and, in the same transaction, save the funnel's snapshot: a reader (a
    /// follower) never sees a decision without the state that produced it.
    async fn append_with_state(
        &self,
        entry: NewEntry,
        snapshot: Option<&FunnelSnapshot>,
    ) -> Result<LedgerEntry, StoreError>;

    /// Entries of a funnel, newest first, with `seq < before` when given, at most `limit`.
    async fn list(
        &self,
        funnel: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError>;

    /// One entry.
    async fn get(&self, funnel: &str, seq: u64) -> Result<Option<LedgerEntry>, StoreError>;

    /// The newest entry of a funnel (of `kind`, when given).
    async fn last(
        &self,
        funnel: &str,
        kind: Option<EntryKind>,
    ) -> Result<Option<LedgerEntry>, StoreError>;

    /// Recompute a funnel's whole chain.
    async fn verify(&self, funnel: &str) -> Result<VerifyReport, StoreError>;

    /// Save the engine's snapshot of a funnel and the stage reports it holds (latest per stage).
    async fn save_state(&self, snapshot: &FunnelSnapshot) -> Result<(), StoreError>;

    /// The saved snapshot of a funnel.
    async fn load_state(&self, funnel: &str) -> Result<Option<FunnelSnapshot>, StoreError>;

    /// The latest stored report of every stage of a funnel.
    async fn latest_reports(&self, funnel: &str) -> Result<Vec<StageReport>, StoreError>;

    /// Funnels that have a ledger, sorted.
    async fn funnels(&self) -> Result<Vec<String>, StoreError>;

    /// Entries of a funnel with `seq > after`, oldest first, at most `limit`.
    async fn since(
        &self,
        funnel: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError>;

    /// Flush and close; later calls fail.
    async fn close(&self);
}
