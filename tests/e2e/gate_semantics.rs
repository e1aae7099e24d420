//! Gate semantics seen through the real binary (DESIGN.md section 1, issue 9): warnings alone
//! hold at the pilot share, an OPEN override allows the share it was given, and a gate that has
//! not heard from every stage allows nothing and is never waited through.

use std::time::Duration;

use funnelgate_e2e::{Cluster, STAGES, cli, state, wait_decision};
use funnelgate_proto::pb;

const MINUTE: Duration = Duration::from_secs(60);

/// One funnel whose stages each run one sql probe on the quickstart warehouse, with
/// `thresholds` per stage (the warehouse has between 1 and 999 workflows).
fn funnel(name: &str, db: &str, thresholds: impl Fn(&str) -> &'static str) -> String {
    let mut s = format!(
        "[[funnels]]\nname = \"{name}\"\n[funnels.gate]\nopen_after = \"0s\"\nopen_after_evaluations = 1\n"
    );
    for stage in STAGES {
        s.push_str(&format!(
            "[[funnels.stages]]\nname = \"{stage}\"\ninterval = \"1s\"\nstale_after = \"30s\"\n\
             [[funnels.stages.probes]]\nid = \"{stage}-workflows\"\nkind = \"sql\"\nthresholds = {}\n\
             params = {{ sqlite_path = \"{db}\", query = \"SELECT count(*) FROM workflows\" }}\n",
            thresholds(stage)
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warn_only_stage_holds_at_the_pilot_share_and_an_open_override_reports_its_percent() {
    let mut c = Cluster::checkers(tempfile::tempdir().unwrap())
        .await
        .unwrap();
    crate::quickstart_files(c.dir.path(), &c.grpc, &c.http).await;
    let db = c.dir.path().join("warehouse.db").display().to_string();
    // `warned`: crm's only probe WARNs (a one-probe stage scores 50), the rest pass.
    // `ready`: everything passes.
    let mut body = funnel("warned", &db, |stage| {
        if stage == "crm" {
            "{ warn_below = 1000, fail_below = 1 }"
        } else {
            "{ fail_below = 1 }"
        }
    });
    body.push_str(&funnel("ready", &db, |_| "{ fail_below = 1 }"));
    c.write_config("", &body).unwrap();
    c.start_coordinator().await.unwrap();

    let warned = wait_decision(&c.grpc, "warned", MINUTE, "HOLD on a WARN", |d| {
        d.stages.iter().all(|s| s.checked_at.is_some())
            && d.stages[0].health == pb::StageHealth::Degraded as i32
    })
    .await
    .unwrap();
    assert_eq!(state(&warned), pb::GateState::Hold, "{warned:#?}");
    assert_eq!(warned.allowed_rollout_percent, 5, "the pilot share");
    assert_eq!(warned.blocking_stage, "crm");
    assert!(
        warned.reasons.iter().all(|r| r.code != "STAGE_FAILING"),
        "{warned:#?}"
    );
    let server = c.server_url();
    let r = cli(&["gate", "check", "warned", "--server", &server], &[])
        .await
        .unwrap();
    assert_eq!(r.code, 10, "a WARN holds, it does not close: {r:?}");
    // A pilot share is there: `wait --until not-closed` succeeds.
    let r = cli(
        &[
            "gate",
            "wait",
            "warned",
            "--until",
            "not-closed",
            "--timeout",
            "20s",
            "--server",
            &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        r.code, 10,
        "HOLD is not closed (exit code of the state): {r:?}"
    );
    assert!(!r.stderr.contains("timed out"), "{r:?}");

    // An OPEN override with --percent 25 allows exactly 25%, and says so.
    wait_decision(&c.grpc, "ready", MINUTE, "OPEN", |d| {
        state(d) == pb::GateState::Open
    })
    .await
    .unwrap();
    let r = cli(
        &[
            "gate",
            "override",
            "warned",
            "--state",
            "open",
            "--percent",
            "25",
            "--reason",
            "launch day",
            "--ttl",
            "1h",
            "-o",
            "json",
            "--server",
            &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["state"], "OPEN", "{v}");
    assert_eq!(v["underlying_state"], "HOLD", "{v}");
    assert_eq!(v["allowed_rollout_percent"], 25, "{v}");
    assert_eq!(v["override"]["percent"], 25, "{v}");
    assert_eq!(v["reasons"][0]["code"], "OVERRIDDEN", "{v}");
    let r = cli(
        &["gate", "check", "warned", "-o", "json", "--server", &server],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["allowed_rollout_percent"], 25, "{v}");

    // Without --percent: the first ramp step (10), not 100.
    let r = cli(
        &[
            "gate",
            "override",
            "ready",
            "--state",
            "open",
            "--reason",
            "launch day",
            "--ttl",
            "1h",
            "-o",
            "json",
            "--server",
            &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["allowed_rollout_percent"], 10, "{v}");
    assert_eq!(v["override"]["percent"], 10, "{v}");

    // Out of range, or with CLOSED: a usage error, nothing changed.
    for args in [
        &["--state", "open", "--percent", "0"][..],
        &["--state", "open", "--percent", "101"][..],
        &["--state", "closed", "--percent", "5"][..],
    ] {
        let mut all = vec!["gate", "override", "ready"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--reason", "x", "--ttl", "1h", "--server", &server]);
        let r = cli(&all, &[]).await.unwrap();
        assert_eq!(r.code, 64, "{args:?}: {r:?}");
    }
    let r = cli(
        &["gate", "check", "ready", "-o", "json", "--server", &server],
        &[],
    )
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["allowed_rollout_percent"], 10, "{v}");
}

/// `psql` against the test PostgreSQL (fails loudly when it is not reachable).
async fn psql(url: &str, sql: &str) {
    let out = tokio::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .await
        .expect("psql is needed for this test (Debian package postgresql-client)");
    assert!(
        out.status.success(),
        "psql failed against {url} (is PostgreSQL running? scripts/test.sh starts it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gate_awaiting_its_first_evidence_allows_nothing_and_is_never_waited_through() {
    let url = std::env::var("FUNNELGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    // The slow stage's query must really be slow (not a quick connection error).
    psql(&url, "SELECT 1").await;
    let mut c = Cluster::checkers(tempfile::tempdir().unwrap())
        .await
        .unwrap();
    crate::quickstart_files(c.dir.path(), &c.grpc, &c.http).await;
    let db = c.dir.path().join("warehouse.db").display().to_string();
    // esp's check outlasts the checker deadline (5s): it never completes during the test.
    let mut body = "[[funnels]]\nname = \"waiting\"\n[funnels.gate]\nopen_after = \"0s\"\nopen_after_evaluations = 1\n".to_string();
    for stage in STAGES {
        let params = if stage == "esp" {
            format!("{{ url = \"{url}\", query = \"SELECT 1.0 FROM pg_sleep(60)\" }}")
        } else {
            format!("{{ sqlite_path = \"{db}\", query = \"SELECT count(*) FROM workflows\" }}")
        };
        body.push_str(&format!(
            "[[funnels.stages]]\nname = \"{stage}\"\ninterval = \"10m\"\nstale_after = \"30m\"\nunknown_grace = \"30m\"\n\
             [[funnels.stages.probes]]\nid = \"{stage}-probe\"\nkind = \"sql\"\nthresholds = {{ fail_below = 1 }}\n\
             params = {params}\n"
        ));
    }
    c.write_config("", &body).unwrap();
    c.start_coordinator().await.unwrap();

    let d = wait_decision(
        &c.grpc,
        "waiting",
        MINUTE,
        "every stage but esp reported",
        |d| {
            d.stages
                .iter()
                .filter(|s| s.stage != "esp")
                .all(|s| s.checked_at.is_some() && s.health == pb::StageHealth::Healthy as i32)
        },
    )
    .await
    .unwrap();
    assert_eq!(state(&d), pb::GateState::Hold, "{d:#?}");
    assert_eq!(
        d.allowed_rollout_percent, 0,
        "no share before evidence: {d:#?}"
    );
    let awaiting = d
        .reasons
        .iter()
        .find(|r| r.code == "AWAITING_EVIDENCE")
        .unwrap_or_else(|| panic!("{d:#?}"));
    assert!(awaiting.message.contains("(esp)"), "{awaiting:?}");
    assert_eq!((awaiting.stage.as_str(), awaiting.probe.as_str()), ("", ""));

    let server = c.server_url();
    let r = cli(
        &[
            "gate", "check", "waiting", "-o", "json", "--server", &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 10, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["allowed_rollout_percent"], 0, "{v}");
    for until in ["not-closed", "open"] {
        let r = cli(
            &[
                "gate",
                "wait",
                "waiting",
                "--until",
                until,
                "--timeout",
                "3s",
                "--server",
                &server,
            ],
            &[],
        )
        .await
        .unwrap();
        assert_eq!(r.code, 10, "--until {until}: {r:?}");
        assert!(r.stderr.contains("timed out"), "--until {until}: {r:?}");
    }
}
