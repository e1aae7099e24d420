//! The store conformance suite: the same tests run against SQLite and a fresh PostgreSQL database
//! (hash chain, tamper evidence, append-only rules, state that survives reopening, fencing), plus
//! SQLite-only file handling (clear errors on corrupt or unwritable files).

#![allow(clippy::unwrap_used)]

mod pgdb;

use std::path::Path;

use funnelgate_coordinator::config::DatabaseLocation;
use funnelgate_coordinator::store::{
    Backend, EntryKind, GENESIS_HASH, NewEntry, SqlStore, SqliteStore, Store, StoreError,
};
use funnelgate_core::{FunnelSnapshot, ProbeResult, StageReport, Timestamp};
use serde_json::json;

fn entry(funnel: &str, i: u64, marker: &str) -> NewEntry {
    NewEntry {
        funnel: funnel.to_string(),
        kind: if i.is_multiple_of(3) {
            EntryKind::Override
        } else {
            EntryKind::Decision
        },
        recorded_at: Timestamp::from_millis(1_700_000_000_000 + i as i64),
        config_hash: "c0ffee".into(),
        payload: json!({"decision": {"state": "HOLD", "n": i, "ratio": 0.1 * i as f64}, "reason": format!("{marker}-{i:04}")}),
    }
}

/// One database of either kind, reopenable.
struct Db {
    dir: tempfile::TempDir,
    pg: Option<pgdb::PgDb>,
}

impl Db {
    async fn new(backend: Backend) -> Db {
        Db {
            dir: tempfile::tempdir().unwrap(),
            pg: match backend {
                Backend::Sqlite => None,
                Backend::Postgres => Some(pgdb::PgDb::create("store").await),
            },
        }
    }

    fn location(&self) -> DatabaseLocation {
        match &self.pg {
            None => DatabaseLocation::File(self.dir.path().join("store.db")),
            Some(pg) => DatabaseLocation::Postgres(pg.url.clone()),
        }
    }

    /// Open the database; on PostgreSQL take leadership term 1 so writes are allowed.
    async fn open(&self) -> SqlStore {
        let store = SqlStore::open(&self.location()).await.unwrap();
        if store.backend() == Backend::Postgres {
            sqlx::query("UPDATE leadership SET term = 1 WHERE id = 1 AND term < 1")
                .execute(store.pool())
                .await
                .unwrap();
            store.fence().set(1);
        }
        store
    }

    async fn filled(&self, funnel: &str, n: u64) -> SqlStore {
        let store = self.open().await;
        for i in 1..=n {
            let e = store.append(entry(funnel, i, "MARKER")).await.unwrap();
            assert_eq!(e.seq, i);
        }
        store
    }

    fn drop_trigger(&self, name: &str) -> String {
        match self.pg {
            None => format!("DROP TRIGGER {name}"),
            Some(_) => format!("DROP TRIGGER {name} ON ledger"),
        }
    }
}

async fn exec(store: &SqlStore, sql: String) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(store.pool())
        .await
        .map(|_| ())
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Db::new(funnelgate_coordinator::store::Backend::Sqlite).await).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Db::new(funnelgate_coordinator::store::Backend::Postgres).await).await
            })*
        }
    };
}

conformance!(
    chain_links_and_verifies,
    the_ledger_is_append_only,
    tampering_with_sql_is_reported_at_the_exact_entry,
    state_survives_reopening,
    concurrent_appends_keep_one_chain,
);

async fn chain_links_and_verifies(db: Db) {
    let store = db.filled("acme", 5).await;
    store.append(entry("other", 1, "X")).await.unwrap();

    let first = store.get("acme", 1).await.unwrap().unwrap();
    assert_eq!(first.prev_hash, GENESIS_HASH);
    let second = store.get("acme", 2).await.unwrap().unwrap();
    assert_eq!(
        second.prev_hash, first.hash,
        "each entry links to its predecessor"
    );
    assert_eq!(second.payload["decision"]["n"], 2);

    let report = store.verify("acme").await.unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.length, 5);
    assert_eq!(
        store.verify("other").await.unwrap().length,
        1,
        "each funnel has its own chain"
    );
    let empty = store.verify("nobody").await.unwrap();
    assert!(empty.valid && empty.length == 0);

    // newest first, paged below a sequence
    let page: Vec<u64> = store
        .list("acme", None, 2)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(page, vec![5, 4]);
    let page: Vec<u64> = store
        .list("acme", Some(4), 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(page, vec![3, 2, 1]);
    assert_eq!(
        store
            .last("acme", Some(EntryKind::Override))
            .await
            .unwrap()
            .unwrap()
            .seq,
        3
    );
    assert_eq!(store.last("acme", None).await.unwrap().unwrap().seq, 5);
    assert!(store.get("acme", 99).await.unwrap().is_none());
    assert_eq!(store.funnels().await.unwrap(), vec!["acme", "other"]);
    let tail: Vec<u64> = store
        .since("acme", 2, 2)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(tail, vec![3, 4], "oldest first after a sequence");
}

async fn the_ledger_is_append_only(db: Db) {
    let store = db.filled("acme", 2).await;
    let err = sqlx::query("UPDATE ledger SET payload = '{}' WHERE seq = 1")
        .execute(store.pool())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("DELETE FROM ledger WHERE seq = 2")
        .execute(store.pool())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(store.verify("acme").await.unwrap().valid);
}

async fn tampering_with_sql_is_reported_at_the_exact_entry(db: Db) {
    let store = db.filled("acme", 6).await;
    store.append(entry("other", 1, "X")).await.unwrap();
    exec(&store, db.drop_trigger("ledger_no_update"))
        .await
        .unwrap();
    sqlx::query("UPDATE ledger SET payload = replace(payload, 'HOLD', 'OPEN') WHERE funnel = 'acme' AND seq = 4")
        .execute(store.pool())
        .await
        .unwrap();
    let report = store.verify("acme").await.unwrap();
    assert!(!report.valid);
    assert_eq!(report.length, 6);
    let error = report.first_error.unwrap();
    assert!(error.starts_with("entry 4: stored hash"), "{error}");
    assert!(error.contains("modified"), "{error}");

    // a rewritten hash moves the break to the link of the next entry, still named precisely
    sqlx::query(
        "UPDATE ledger SET hash = 'ab' || substr(hash, 3) WHERE funnel = 'other' AND seq = 1",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let error = store.verify("other").await.unwrap().first_error.unwrap();
    assert!(error.starts_with("entry 1: "), "{error}");

    // a deleted entry is a gap
    exec(&store, db.drop_trigger("ledger_no_delete"))
        .await
        .unwrap();
    sqlx::query("DELETE FROM ledger WHERE funnel = 'acme' AND seq = 1")
        .execute(store.pool())
        .await
        .unwrap();
    let error = store.verify("acme").await.unwrap().first_error.unwrap();
    assert!(error.starts_with("entry 1 is missing"), "{error}");
}

#[tokio::test]
async fn editing_payload_bytes_in_a_copy_of_the_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("orig.db");
    let store = SqliteStore::open_file(&original).await.unwrap();
    for i in 1..=8 {
        store.append(entry("acme", i, "MARKER")).await.unwrap();
    }
    store.close().await;

    let mut bytes = std::fs::read(&original).unwrap();
    let needle = b"MARKER-0005";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("payload text is in the file");
    bytes[at..at + needle.len()].copy_from_slice(b"MARKER-0666");
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, &bytes).unwrap();

    let tampered = SqliteStore::open_file(&copy).await.unwrap();
    let report = tampered.verify("acme").await.unwrap();
    assert!(!report.valid);
    let error = report.first_error.unwrap();
    assert!(error.starts_with("entry 5: stored hash"), "{error}");

    let intact = SqliteStore::open_file(&original).await.unwrap();
    assert!(
        intact.verify("acme").await.unwrap().valid,
        "the original still verifies"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(
        &path,
        b"this is definitely not sqlite, just some bytes ".repeat(200),
    )
    .unwrap();
    let err = SqliteStore::open_file(&path).await.unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.contains("not a database") || err.contains("corrupt"),
        "{err}"
    );
    // never a silent reset: the file is untouched
    assert!(
        std::fs::read(&path)
            .unwrap()
            .starts_with(b"this is definitely not sqlite")
    );
}

#[tokio::test]
async fn an_unwritable_location_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // the "directory" is a regular file
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let path = file.join("funnelgate.db");
    let err = SqliteStore::open_file(&path).await.unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("cannot open database"), "{err}");

    // a directory where the file should be
    let err = SqliteStore::open_file(dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a directory"), "{err}");

    // a read-only directory (only enforced for non-root users; root bypasses permissions)
    use std::os::unix::fs::PermissionsExt;
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let enforced = std::fs::write(ro.join("probe"), b"x").is_err();
    let result = SqliteStore::open_file(ro.join("funnelgate.db")).await;
    if enforced {
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains(&ro.join("funnelgate.db").display().to_string()),
            "{err}"
        );
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();

    // a read-only file system (enforced for root too)
    let proc_path = Path::new("/proc/self/funnelgate-test.db");
    let err = SqliteStore::open_file(proc_path)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("/proc/self/funnelgate-test.db"), "{err}");
}

fn report(stage: &str, at: i64) -> StageReport {
    StageReport {
        funnel: "acme".into(),
        stage: stage.into(),
        results: vec![ProbeResult::error(
            "p1",
            "sql",
            "boom",
            Timestamp::from_millis(at),
        )],
        checked_at: Timestamp::from_millis(at),
        duration_ms: 12,
        checker: "fake".into(),
        failure: None,
    }
}

async fn state_survives_reopening(db: Db) {
    let snapshot = FunnelSnapshot {
        funnel: "acme".into(),
        last_reports: vec![report("crm", 1_000), report("esp", 2_000)],
        memory: json!({"phase": "operate", "healthy_evaluations": 3}),
    };
    {
        let store = db.open().await;
        assert!(store.load_state("acme").await.unwrap().is_none());
        store.save_state(&snapshot).await.unwrap();
        store.append(entry("acme", 1, "M")).await.unwrap();
        store.close().await;
    }
    let store = db.open().await;
    assert_eq!(
        store.load_state("acme").await.unwrap(),
        Some(snapshot.clone())
    );
    let reports = store.latest_reports("acme").await.unwrap();
    assert_eq!(reports, snapshot.last_reports);
    // appending continues the chain
    assert_eq!(store.append(entry("acme", 2, "M")).await.unwrap().seq, 2);
    assert!(store.verify("acme").await.unwrap().valid);

    // a newer report replaces the stored one
    let mut newer = snapshot.clone();
    newer.last_reports = vec![report("crm", 5_000)];
    store.save_state(&newer).await.unwrap();
    let reports = store.latest_reports("acme").await.unwrap();
    assert_eq!(
        reports
            .iter()
            .find(|r| r.stage == "crm")
            .unwrap()
            .checked_at,
        Timestamp::from_millis(5_000)
    );
}

#[tokio::test]
async fn in_memory_store_works() {
    let store = SqliteStore::open(&DatabaseLocation::InMemory)
        .await
        .unwrap();
    for i in 1..=3 {
        store.append(entry("acme", i, "M")).await.unwrap();
    }
    // the pool keeps its single connection: every query sees the same database
    for _ in 0..3 {
        assert_eq!(store.verify("acme").await.unwrap().length, 3);
    }
}

async fn concurrent_appends_keep_one_chain(db: Db) {
    let store = db.open().await;
    let mut tasks = Vec::new();
    for t in 0..4_u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                store.append(entry("acme", t * 100 + i, "C")).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = store.verify("acme").await.unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.length, 40);
}

/// PostgreSQL: a write under a term other than the current one is refused in its transaction
/// and leaves nothing behind; a store that never led cannot write at all.
#[tokio::test]
async fn postgres_writes_are_fenced_by_the_leadership_term() {
    let db = Db::new(Backend::Postgres).await;
    let leader = db.filled("acme", 2).await;
    let follower = SqlStore::open(&db.location()).await.unwrap();
    let err = follower.append(entry("acme", 3, "F")).await.unwrap_err();
    assert!(matches!(err, StoreError::Fenced { term: 0, .. }), "{err}");
    // a new leader takes term 2: the old one is deposed
    sqlx::query("UPDATE leadership SET term = 2 WHERE id = 1")
        .execute(follower.pool())
        .await
        .unwrap();
    follower.fence().set(2);
    let err = leader.append(entry("acme", 3, "OLD")).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Fenced {
                term: 1,
                current: Some(2),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("current term is 2"), "{err}");
    let err = leader
        .save_state(&FunnelSnapshot {
            funnel: "acme".into(),
            last_reports: vec![],
            memory: json!({}),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    assert_eq!(
        follower.append(entry("acme", 3, "NEW")).await.unwrap().seq,
        3
    );
    let report = follower.verify("acme").await.unwrap();
    assert!(report.valid && report.length == 3, "{report:?}");
}
