//! Coordinator and checkers as separate processes: transitions as data changes, a killed
//! checker, a coordinator restart, SIGTERM, status codes.

use std::time::Duration;

use funnelgate_e2e::{Cluster, cli, gate_client, state, wait_decision};
use funnelgate_proto::pb;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::quickstart_cluster;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn gate_goes_closed_hold_open_as_the_warehouse_is_fixed() {
    let c = quickstart_cluster().await;
    let closed = wait_decision(
        &c.grpc,
        "acme",
        MINUTE,
        "CLOSED after every stage was checked",
        |d| state(d) == pb::GateState::Closed && d.stages.iter().all(|s| s.checked_at.is_some()),
    )
    .await
    .unwrap();
    // Bottom-up: the lowest failing stage blocks, and its items come first.
    assert_eq!(closed.blocking_stage, "crm");
    assert_eq!(
        closed.remediation.first().map(|r| r.stage.as_str()),
        Some("crm"),
        "{closed:#?}"
    );
    let order: Vec<usize> = closed
        .remediation
        .iter()
        .map(|r| {
            funnelgate_e2e::STAGES
                .iter()
                .position(|s| *s == r.stage)
                .unwrap()
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "remediation is not bottom-up: {order:?}"
    );
    assert!(
        closed
            .reasons
            .iter()
            .any(|r| r.code == "STAGE_FAILING" && r.stage == "crm")
    );

    let d = c.dir.path().display().to_string();
    let fix = cli(&["quickstart", "fix", &d], &[]).await.unwrap();
    assert_eq!(fix.code, 0, "{fix:?}");

    let hold = wait_decision(&c.grpc, "acme", MINUTE, "HOLD (soaking)", |d| {
        state(d) == pb::GateState::Hold
    })
    .await
    .unwrap();
    assert!(
        hold.reasons.iter().any(|r| r.code == "SOAKING"),
        "{hold:#?}"
    );
    assert_eq!(hold.allowed_rollout_percent, 5);

    // `gate wait` follows WatchGate until the gate opens.
    let server = c.server_url();
    let waited = cli(
        &[
            "gate",
            "wait",
            "acme",
            "--until",
            "open",
            "--timeout",
            "2m",
            "--server",
            &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(waited.code, 0, "{waited:?}");
    assert!(waited.stdout.contains("acme: OPEN"), "{waited:?}");
    let open = wait_decision(&c.grpc, "acme", MINUTE, "OPEN", |d| {
        state(d) == pb::GateState::Open
    })
    .await
    .unwrap();
    assert_eq!(open.allowed_rollout_percent, 10, "the first ramp step");
    assert_eq!(open.phase, pb::Phase::Operate as i32);
}

/// A small funnel whose probes always pass (one sql probe per stage on the quickstart
/// warehouse), with short staleness and grace windows.
fn passing_funnel(name: &str, db: &str, grace: &str) -> String {
    let mut s = format!(
        "[[funnels]]\nname = \"{name}\"\n[funnels.gate]\nopen_after = \"0s\"\nopen_after_evaluations = 1\n"
    );
    for stage in funnelgate_e2e::STAGES {
        s.push_str(&format!(
            "[[funnels.stages]]\nname = \"{stage}\"\ninterval = \"1s\"\nstale_after = \"3s\"\nunknown_grace = \"{grace}\"\n\
             [[funnels.stages.probes]]\nid = \"{stage}-{name}-rows\"\nkind = \"sql\"\nthresholds = {{ fail_below = 1 }}\n\
             params = {{ sqlite_path = \"{db}\", query = \"SELECT count(*) FROM workflows\" }}\n"
        ));
    }
    s
}

async fn passing_cluster(grace: &str, auth: &str, env: Vec<(String, String)>) -> Cluster {
    let mut c = Cluster::checkers(tempfile::tempdir().unwrap())
        .await
        .unwrap();
    crate::quickstart_files(c.dir.path(), &c.grpc, &c.http).await;
    let db = c.dir.path().join("warehouse.db").display().to_string();
    c.env = env;
    c.write_config(
        "",
        &format!("{auth}\n{}", passing_funnel("shop", &db, grace)),
    )
    .unwrap();
    c.start_coordinator().await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_checker_holds_the_gate_then_closes_it_past_the_grace() {
    let mut c = passing_cluster("8s", "", Vec::new()).await;
    wait_decision(&c.grpc, "shop", MINUTE, "OPEN", |d| {
        state(d) == pb::GateState::Open
    })
    .await
    .unwrap();

    c.checkers.get_mut("esp").unwrap().kill().unwrap();

    let hold = wait_decision(
        &c.grpc,
        "shop",
        MINUTE,
        "HOLD because esp is unknown",
        |d| state(d) == pb::GateState::Hold,
    )
    .await
    .unwrap();
    assert_eq!(hold.blocking_stage, "esp", "{hold:#?}");
    assert!(
        hold.reasons
            .iter()
            .any(|r| r.stage == "esp" && (r.code == "UNREACHABLE" || r.code == "STALE")),
        "no reason names the esp checker: {hold:#?}"
    );
    assert_eq!(hold.allowed_rollout_percent, 5);

    let closed = wait_decision(&c.grpc, "shop", MINUTE, "CLOSED past the grace", |d| {
        state(d) == pb::GateState::Closed
    })
    .await
    .unwrap();
    assert_eq!(closed.blocking_stage, "esp");
    assert!(
        closed
            .reasons
            .iter()
            .any(|r| r.stage == "esp" && r.code == "UNKNOWN_GRACE_EXCEEDED"),
        "{closed:#?}"
    );

    // The checker comes back: the gate recovers.
    let addr = c.checker_addrs["esp"].clone();
    c.start_checker("esp", &addr).await.unwrap();
    wait_decision(&c.grpc, "shop", MINUTE, "OPEN again", |d| {
        state(d) == pb::GateState::Open
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn coordinator_restart_keeps_history_and_the_active_override() {
    let mut c = passing_cluster("15m", "", Vec::new()).await;
    wait_decision(&c.grpc, "shop", MINUTE, "OPEN", |d| {
        state(d) == pb::GateState::Open
    })
    .await
    .unwrap();
    let server = c.server_url();
    let r = cli(
        &[
            "gate",
            "override",
            "shop",
            "--state",
            "closed",
            "--reason",
            "pricing page rewrite",
            "--ttl",
            "2h",
            "--server",
            &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    let before = cli(
        &[
            "gate", "history", "shop", "--all", "-o", "json", "--server", &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(before.code, 0, "{before:?}");
    let before: serde_json::Value = serde_json::from_str(&before.stdout).unwrap();
    let n_before = before["decisions"].as_array().unwrap().len();
    assert!(n_before >= 2, "{before}");

    // A `gate wait` started now must ride out the restart (its stream drops, it reconnects).
    let waiter = {
        let server = server.clone();
        tokio::spawn(async move {
            cli(
                &[
                    "gate",
                    "wait",
                    "shop",
                    "--until",
                    "open",
                    "--timeout",
                    "3m",
                    "--interval",
                    "1s",
                    "--server",
                    &server,
                ],
                &[],
            )
            .await
        })
    };
    // SIGTERM: clean exit, then a new coordinator on the same database.
    let coord = c.coordinator.as_mut().unwrap();
    coord.terminate().unwrap();
    let status = coord.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(
        status.success(),
        "coordinator exit: {status:?}\n{}",
        coord.output()
    );
    c.start_coordinator().await.unwrap();

    let d = wait_decision(
        &c.grpc,
        "shop",
        MINUTE,
        "CLOSED by the restored override over an OPEN gate",
        |d| state(d) == pb::GateState::Closed && d.underlying_state == pb::GateState::Open as i32,
    )
    .await
    .unwrap();
    let o = d
        .r#override
        .as_ref()
        .expect("override survives the restart");
    assert_eq!(o.reason, "pricing page rewrite");

    let after = cli(
        &[
            "gate", "history", "shop", "--all", "--verify", "-o", "json", "--server", &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(after.code, 0, "{after:?}");
    let after: serde_json::Value = serde_json::from_str(&after.stdout).unwrap();
    assert!(
        after["decisions"].as_array().unwrap().len() >= n_before,
        "{after}"
    );
    assert_eq!(after["chain_valid"], true, "{after}");
    // The oldest entries are the same ones.
    let oldest =
        |v: &serde_json::Value| v["decisions"].as_array().unwrap().last().unwrap()["hash"].clone();
    assert_eq!(oldest(&before), oldest(&after));

    // Clearing the override opens the gate: the waiter, reconnected, sees it.
    let token: &[(&str, &str)] = &[];
    let r = cli(
        &[
            "gate",
            "clear-override",
            "shop",
            "--reason",
            "done",
            "--server",
            &server,
        ],
        token,
    )
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    let waited = tokio::time::timeout(MINUTE, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(waited.code, 0, "{waited:?}");
    assert!(
        waited.stderr.contains("reconnecting"),
        "the wait did not see the stream drop: {waited:?}"
    );

    // Tamper with a stored entry while the coordinator is down: `history --verify` exits 14.
    let coord = c.coordinator.as_mut().unwrap();
    coord.terminate().unwrap();
    assert!(
        coord
            .wait_exit(Duration::from_secs(30))
            .await
            .unwrap()
            .success()
    );
    let db = c.dir.path().join("funnelgate.db");
    let tamper = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n\
                  c.execute('DROP TRIGGER ledger_no_update')\n\
                  c.execute(\"UPDATE ledger SET payload = replace(payload, 'pricing page rewrite', 'nothing to see') WHERE funnel = 'shop'\")\n\
                  c.commit()\n";
    let out = tokio::process::Command::new(crate::python::python())
        .args(["-c", tamper])
        .arg(&db)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.start_coordinator().await.unwrap();
    let broken = cli(
        &["gate", "history", "shop", "--verify", "--server", &server],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(broken.code, 14, "{broken:?}");
    assert!(broken.stdout.contains("hash chain broken"), "{broken:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_flips_readiness_and_exits_cleanly() {
    let mut c = passing_cluster("15m", "", Vec::new()).await;
    let ch = funnelgate_e2e::channel(&c.grpc).await.unwrap();
    let mut health = HealthClient::new(ch);
    let mut stream = health
        .watch(HealthCheckRequest {
            service: "funnelgate.v1.GateService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let coord = c.coordinator.as_mut().unwrap();
    coord.terminate().unwrap();
    let mut flipped = false;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(20), stream.next()).await
    {
        if msg.status == ServingStatus::NotServing as i32 {
            flipped = true;
            break;
        }
    }
    assert!(flipped, "health never reported NOT_SERVING during shutdown");
    let status = coord.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(
        status.success(),
        "coordinator exit: {status:?}\n{}",
        coord.output()
    );

    // A checker also stops cleanly on SIGTERM.
    let crm = c.checkers.get_mut("crm").unwrap();
    crm.terminate().unwrap();
    let status = crm.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(
        status.success(),
        "checker exit: {status:?}\n{}",
        crm.output()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_the_right_status_codes() {
    let auth = "[[auth.operators]]\nname = \"alice\"\ntoken_secret = \"ALICE_TOKEN\"\n\n\
                [[auth.operators]]\nname = \"val\"\ntoken_secret = \"VAL_TOKEN\"\nrole = \"viewer\"\n";
    let env = vec![
        (
            "FUNNELGATE_SECRET_ALICE_TOKEN".to_string(),
            "alice-secret-token".to_string(),
        ),
        (
            "FUNNELGATE_SECRET_VAL_TOKEN".to_string(),
            "val-secret-token".to_string(),
        ),
    ];
    let c = passing_cluster("15m", auth, env).await;
    let mut g = gate_client(&c.grpc).await.unwrap();

    let get = |f: &str| pb::GetGateRequest {
        funnel: f.into(),
        view: 0,
    };
    assert_eq!(
        g.get_gate(get("nope")).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        g.get_gate(get("Not A Funnel")).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(
        g.get_gate(get("")).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(
        g.get_gate(get("shop"))
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap()
            .funnel,
        "shop"
    );

    let ov = || pb::SetOverrideRequest {
        funnel: "shop".into(),
        state: pb::GateState::Closed as i32,
        reason: "test".into(),
        ttl_seconds: 60,
        percent: None,
    };
    let with_token = |msg: pb::SetOverrideRequest, token: &str| {
        let mut req = tonic::Request::new(msg);
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        req
    };
    assert_eq!(
        g.set_override(ov()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(
        g.set_override(with_token(ov(), "wrong"))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        g.set_override(with_token(ov(), "val-secret-token"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let zero_ttl = pb::SetOverrideRequest {
        ttl_seconds: 0,
        ..ov()
    };
    assert_eq!(
        g.set_override(with_token(zero_ttl, "alice-secret-token"))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let open_state = pb::SetOverrideRequest {
        state: pb::GateState::Hold as i32,
        ..ov()
    };
    assert_eq!(
        g.set_override(with_token(open_state, "alice-secret-token"))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let ok = g
        .set_override(with_token(ov(), "alice-secret-token"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.decision.unwrap().r#override.unwrap().actor, "alice");

    // The CLI maps the same statuses to exit codes.
    let server = c.server_url();
    let r = cli(
        &["gate", "clear-override", "shop", "--server", &server],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 77, "{r:?}");
    assert!(r.stderr.contains("--token"), "{r:?}");
    let r = cli(
        &["gate", "clear-override", "shop", "--server", &server],
        &[("FUNNELGATE_TOKEN", "alice-secret-token")],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    let r = cli(&["gate", "status", "nope", "--server", &server], &[])
        .await
        .unwrap();
    assert_eq!(r.code, 13, "{r:?}");
}

/// `psql` against the test PostgreSQL (fails loudly when it is not reachable).
async fn psql(url: &str, sql: &str) {
    let out = tokio::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .await
        .expect(
            "psql is needed for the PostgreSQL warehouse test (Debian package postgresql-client)",
        );
    assert!(
        out.status.success(),
        "psql failed against {url} (is PostgreSQL running? scripts/test.sh starts it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn warehouse_on_postgresql_drives_the_gate() {
    let url = std::env::var("FUNNELGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let schema = format!(
        "fg_e2e_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    );
    psql(
        &url,
        &format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.contacts (id int PRIMARY KEY, owner text); \
             INSERT INTO {schema}.contacts SELECT i, CASE WHEN i % 2 = 0 THEN 'dana' END FROM generate_series(1, 50) i;"
        ),
    )
    .await;

    let mut c = Cluster::checkers(tempfile::tempdir().unwrap())
        .await
        .unwrap();
    let mut body = "[[funnels]]\nname = \"pg\"\n[funnels.gate]\nopen_after = \"0s\"\nopen_after_evaluations = 1\n".to_string();
    for stage in funnelgate_e2e::STAGES {
        body.push_str(&format!(
            "[[funnels.stages]]\nname = \"{stage}\"\ninterval = \"1s\"\nstale_after = \"30s\"\n\
             [[funnels.stages.probes]]\nid = \"{stage}-owned\"\nkind = \"sql\"\nthresholds = {{ fail_below = 90 }}\n\
             params = {{ url = \"{url}\", unit = \"percent\", query = \"SELECT 100.0 * count(owner) / count(*), count(*) FROM {schema}.contacts\" }}\n"
        ));
    }
    c.write_config("", &body).unwrap();
    c.start_coordinator().await.unwrap();

    let closed = wait_decision(
        &c.grpc,
        "pg",
        MINUTE,
        "CLOSED on half-owned contacts",
        |d| state(d) == pb::GateState::Closed && !d.remediation.is_empty(),
    )
    .await
    .unwrap();
    assert_eq!(closed.remediation[0].probe, "crm-owned");
    assert_eq!(closed.remediation[0].value, Some(50.0));

    psql(
        &url,
        &format!("UPDATE {schema}.contacts SET owner = 'lee' WHERE owner IS NULL"),
    )
    .await;
    wait_decision(
        &c.grpc,
        "pg",
        MINUTE,
        "OPEN once every contact has an owner",
        |d| state(d) == pb::GateState::Open,
    )
    .await
    .unwrap();
    psql(&url, &format!("DROP SCHEMA {schema} CASCADE")).await;
}
