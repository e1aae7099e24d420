//! The notification outbox on both databases (SQLite file and a fresh PostgreSQL database):
//! a change is queued once however often it is offered (deduplicated by sink, funnel and
//! sequence), the cursor moves in the same transaction, retries wait for their time, and a
//! delivered row is never due again — also after reopening the store (a restart).

#![allow(clippy::unwrap_used)]

mod pgdb;

use funnelgate_coordinator::config::DatabaseLocation;
use funnelgate_coordinator::notify::event::Change;
use funnelgate_coordinator::notify::outbox::{Counts, Outbox};
use funnelgate_coordinator::{SqlStore, Store};
use funnelgate_core::GateState;

fn change(seq: u64) -> Change {
    Change {
        id: format!("acme:{seq}:0123456789abcdef"),
        funnel: "acme".into(),
        sequence: seq,
        kind: "decision".into(),
        recorded_at: "2026-12-07T00:00:00Z".into(),
        state: GateState::Closed,
        previous_state: Some(GateState::Open),
        allowed_rollout_percent: 0,
        blocking_stage: Some("crm".into()),
        previous_blocking_stage: None,
        phase: "build".into(),
        actor: None,
        reason: None,
        reasons: vec!["crm: broken".into()],
        fix_first: Vec::new(),
    }
}

async fn exercise(location: DatabaseLocation) {
    let store = SqlStore::open(&location).await.unwrap();
    let outbox = Outbox::new(store.pool().clone());
    assert_eq!(outbox.cursor("hook", "acme").await.unwrap(), None);
    outbox.enqueue("hook", "acme", &[], 3, 1_000).await.unwrap();
    assert_eq!(outbox.cursor("hook", "acme").await.unwrap(), Some(3));
    // Offered twice (a crash between enqueueing and moving on): queued once.
    outbox
        .enqueue("hook", "acme", &[change(4), change(5)], 5, 1_000)
        .await
        .unwrap();
    outbox
        .enqueue("hook", "acme", &[change(4), change(5)], 5, 1_000)
        .await
        .unwrap();
    assert_eq!(outbox.cursor("hook", "acme").await.unwrap(), Some(5));
    let due = outbox.due("hook", 1_000, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|p| p.seq).collect::<Vec<_>>(),
        vec![4, 5],
        "oldest first, once each"
    );
    assert_eq!(due[0].change, change(4));
    // Other sinks have their own rows.
    assert!(outbox.due("slack", 1_000, 10).await.unwrap().is_empty());

    // 4 fails and waits; 5 is delivered.
    outbox
        .retry_at("hook", "acme", 4, "answered 503", 5_000)
        .await
        .unwrap();
    outbox
        .finish("hook", "acme", 5, true, None, 1_100)
        .await
        .unwrap();
    assert!(outbox.due("hook", 4_999, 10).await.unwrap().is_empty());
    let later = outbox.due("hook", 5_000, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!((later[0].seq, later[0].attempts), (4, 1));
    assert_eq!(
        outbox.counts("hook").await.unwrap(),
        Counts {
            pending: 1,
            failed: 0,
            delivered: 1
        }
    );
    store.close().await;

    // A restart: the same rows, nothing delivered is due again.
    let store = SqlStore::open(&location).await.unwrap();
    let outbox = Outbox::new(store.pool().clone());
    let due = outbox.due("hook", 10_000, 10).await.unwrap();
    assert_eq!(due.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![4]);
    outbox
        .finish("hook", "acme", 4, false, Some("gave up"), 10_000)
        .await
        .unwrap();
    assert!(outbox.due("hook", 99_000, 10).await.unwrap().is_empty());
    assert_eq!(outbox.counts("hook").await.unwrap().failed, 1);
    store.close().await;
}

#[tokio::test]
async fn the_outbox_dedupes_retries_and_survives_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exercise(DatabaseLocation::File(dir.path().join("outbox.db"))).await;
}

#[tokio::test]
async fn the_outbox_dedupes_retries_and_survives_a_restart_on_postgres() {
    let db = pgdb::PgDb::create("outbox").await;
    exercise(DatabaseLocation::Postgres(db.url.clone())).await;
}
