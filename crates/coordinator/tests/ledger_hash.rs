//! Ledger hashing: RFC 8785 (hash scheme 2) verified by an independent implementation (Python's
//! `rfc8785` and standard library), and ledgers written under the original scheme 1 still verify
//! after the upgrade, with new entries continuing their chain.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use funnelgate_coordinator::canonical::canonical_json;
use funnelgate_coordinator::store::{
    EntryKind, GENESIS_HASH, HashScheme, NewEntry, SqliteStore, Store, entry_hash,
};
use funnelgate_core::Timestamp;
use serde_json::json;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("FUNNELGATE_PYTHON") {
        return PathBuf::from(p);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&repo)
        .unwrap_or(repo)
        .join(".venv/bin/python")
}

fn entry(i: i64, payload: serde_json::Value) -> NewEntry {
    NewEntry {
        funnel: "acme".into(),
        kind: EntryKind::Decision,
        recorded_at: Timestamp::from_millis(1_700_000_000_000 + i),
        config_hash: "c0ffee".into(),
        payload,
    }
}

/// Payloads that differ between naive and RFC 8785 canonical forms: non-BMP keys (UTF-16
/// sorting), floats in exponent ranges, escapes.
fn tricky_payloads() -> Vec<serde_json::Value> {
    vec![
        json!({"decision": {"state": "OPEN", "share": 12.5}, "evidence": []}),
        json!({"\u{fb33}": 1, "\u{1f600}": 2, "\u{e9}": "caf\u{e9}", "ctl": "\u{1}\t\n\"\\/"}),
        json!({"big": 1e21, "small": 1e-7, "third": 0.333_333_333_333_333_3, "neg": -0.0, "int": 9_007_199_254_740_991_i64}),
        json!({"nested": [{"b": [1, 2, {"z": null, "a": true}]}, "x"], "reason": "override: ops \u{2014} incident"}),
    ]
}

#[tokio::test]
async fn python_rfc8785_verifies_a_ledger_and_finds_a_tampered_entry() {
    let py = python();
    assert!(
        py.exists(),
        "the python virtualenv is missing: {} does not exist (create it with `python3 -m venv .venv && .venv/bin/pip install -r scripts/python-requirements.txt`, or set FUNNELGATE_PYTHON)",
        py.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open_file(&path).await.unwrap();
    for (i, p) in tricky_payloads().into_iter().enumerate() {
        let e = store.append(entry(i as i64, p)).await.unwrap();
        assert_eq!(e.hash_scheme, HashScheme::Jcs);
    }
    assert!(store.verify("acme").await.unwrap().valid);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/verify_ledger.py");
    let run = |path: PathBuf| {
        let out = std::process::Command::new(&py)
            .arg(&script)
            .arg("sqlite")
            .arg(&path)
            .arg("acme")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    store.close().await;
    let (ok, text) = run(path.clone());
    assert!(ok, "python could not verify the ledger: {text}");
    assert_eq!(text.trim(), "ok 4");

    // Python agrees with funnelgate about a modified entry.
    let store = SqliteStore::open_file(&path).await.unwrap();
    sqlx::query("DROP TRIGGER ledger_no_update")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE ledger SET payload = replace(payload, '12.5', '13') WHERE seq = 1")
        .execute(store.pool())
        .await
        .unwrap();
    let report = store.verify("acme").await.unwrap();
    assert!(
        report
            .first_error
            .as_deref()
            .unwrap()
            .starts_with("entry 1:"),
        "{report:?}"
    );
    store.close().await;
    let (ok, text) = run(path);
    assert!(!ok);
    assert!(text.starts_with("entry 1:"), "{text}");
}

#[test]
fn scheme_two_hashes_the_documented_bytes() {
    // The exact input of a scheme 2 hash, spelled out: a fixed vector for other implementations.
    let payload = json!({"b": 0.5, "a": "\u{e9}"});
    let hash = entry_hash(
        HashScheme::Jcs,
        GENESIS_HASH,
        "acme",
        1,
        EntryKind::Phase,
        Timestamp::from_millis(1_700_000_000_000),
        "c0ffee",
        &payload,
    )
    .unwrap();
    let bytes = format!(
        "{GENESIS_HASH}\n{{\"config_hash\":\"c0ffee\",\"funnel\":\"acme\",\"kind\":\"phase\",\"payload\":{{\"a\":\"\u{e9}\",\"b\":0.5}},\"recorded_at\":1700000000000,\"seq\":1,\"v\":2}}"
    );
    assert_eq!(
        hash,
        funnelgate_coordinator::canonical::sha256_hex(bytes.as_bytes())
    );
}

#[tokio::test]
async fn scheme_one_ledgers_keep_verifying_and_continue_under_scheme_two() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_file(dir.path().join("old.db"))
        .await
        .unwrap();
    // Two entries exactly as a pre-JCS funnelgate wrote them (hash_scheme defaults to 1).
    let mut prev = GENESIS_HASH.to_string();
    for seq in 1..=2_u64 {
        let payload = json!({"decision": {"state": "HOLD", "ratio": 0.1 * seq as f64}});
        let at = Timestamp::from_millis(1_600_000_000_000 + seq as i64);
        let hash = entry_hash(
            HashScheme::Legacy,
            &prev,
            "acme",
            seq,
            EntryKind::Decision,
            at,
            "old",
            &payload,
        )
        .unwrap();
        sqlx::query("INSERT INTO ledger (funnel, seq, kind, recorded_at, config_hash, payload, prev_hash, hash) VALUES ('acme', ?1, 'decision', ?2, 'old', ?3, ?4, ?5)")
            .bind(seq as i64)
            .bind(at.as_millis())
            .bind(canonical_json(&payload))
            .bind(&prev)
            .bind(&hash)
            .execute(store.pool())
            .await
            .unwrap();
        prev = hash;
    }
    let old = store.get("acme", 2).await.unwrap().unwrap();
    assert_eq!(old.hash_scheme, HashScheme::Legacy);
    let new = store
        .append(entry(3, json!({"decision": {"state": "OPEN"}})))
        .await
        .unwrap();
    assert_eq!(new.seq, 3);
    assert_eq!(new.prev_hash, old.hash);
    assert_eq!(new.hash_scheme, HashScheme::Jcs);
    let report = store.verify("acme").await.unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.length, 3);

    // The scheme is bound into the hash: relabelling an entry's scheme breaks it there.
    sqlx::query("DROP TRIGGER ledger_no_update")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE ledger SET hash_scheme = 1 WHERE seq = 3")
        .execute(store.pool())
        .await
        .unwrap();
    let error = store.verify("acme").await.unwrap().first_error.unwrap();
    assert!(error.starts_with("entry 3: stored hash"), "{error}");
}
