//! The coordinator and a checker that dies or was never up, through the real binary: a checker
//! that is down does not stop the coordinator, and a `kill -9`'d checker holds the gate within
//! seconds (seen on the `WatchGate` stream, not by polling on a schedule). Also: a config error
//! from an environment variable names the variable, and an oversized request is
//! RESOURCE_EXHAUSTED.

use std::time::Duration;

use funnelgate_e2e::{Cluster, cli, gate_client, state, wait_decision};
use funnelgate_proto::pb;
use tokio::time::Instant;
use tonic::Code;

const MINUTE: Duration = Duration::from_secs(60);

/// One funnel whose probes always pass, checked only once a minute: anything noticed faster
/// than that was noticed by the liveness watch, not by the schedule.
fn slow_funnel(db: &str) -> String {
    let mut s = String::from(
        "[[funnels]]\nname = \"shop\"\n[funnels.gate]\nopen_after = \"0s\"\nopen_after_evaluations = 1\n",
    );
    for stage in funnelgate_e2e::STAGES {
        s.push_str(&format!(
            "[[funnels.stages]]\nname = \"{stage}\"\ninterval = \"60s\"\nstale_after = \"5m\"\nunknown_grace = \"15m\"\n\
             [[funnels.stages.probes]]\nid = \"{stage}-rows\"\nkind = \"sql\"\nthresholds = {{ fail_below = 1 }}\n\
             params = {{ sqlite_path = \"{db}\", query = \"SELECT count(*) FROM workflows\" }}\n"
        ));
    }
    s
}

async fn slow_cluster(env: Vec<(String, String)>, down_at_start: Option<&str>) -> Cluster {
    let mut c = Cluster::checkers(tempfile::tempdir().unwrap())
        .await
        .unwrap();
    crate::quickstart_files(c.dir.path(), &c.grpc, &c.http).await;
    let db = c.dir.path().join("warehouse.db").display().to_string();
    c.env = env;
    c.write_config("", &slow_funnel(&db)).unwrap();
    if let Some(stage) = down_at_start {
        c.checkers.get_mut(stage).unwrap().kill().unwrap();
    }
    c.start_coordinator().await.unwrap();
    c
}

/// Read `stream` until a decision satisfies `pred` (bounded by `timeout`).
async fn next_matching(
    stream: &mut tonic::Streaming<pb::WatchGateResponse>,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&pb::GateDecision) -> bool,
) -> pb::GateDecision {
    let mut last = None;
    let found = tokio::time::timeout(timeout, async {
        while let Some(msg) = stream.message().await.unwrap() {
            if let Some(d) = msg.decision {
                if pred(&d) {
                    return Some(d);
                }
                last = Some(d);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(d)) => d,
        _ => panic!("no decision {what} within {timeout:?}; last: {last:#?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checker_killed_with_sigkill_holds_the_gate_within_seconds() {
    let mut c = slow_cluster(Vec::new(), None).await;
    let mut client = gate_client(&c.grpc).await.unwrap();
    let mut stream = client
        .watch_gate(pb::WatchGateRequest {
            funnel: "shop".into(),
            view: pb::GateView::Compact as i32,
        })
        .await
        .unwrap()
        .into_inner();
    next_matching(&mut stream, MINUTE, "OPEN", |d| {
        state(d) == pb::GateState::Open
    })
    .await;

    c.checkers.get_mut("esp").unwrap().kill().unwrap();
    let killed = Instant::now();
    // the next check is a minute away: only the health watch can see this in seconds
    let hold = next_matching(&mut stream, Duration::from_secs(15), "HOLD", |d| {
        state(d) == pb::GateState::Hold
    })
    .await;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(10), "held after {took:?}");
    assert_eq!(hold.blocking_stage, "esp", "{hold:#?}");
    assert!(
        hold.reasons
            .iter()
            .any(|r| r.stage == "esp" && r.code == "UNREACHABLE"),
        "{hold:#?}"
    );

    // it comes back on the same address: recovered without waiting for the schedule
    let addr = c.checker_addrs["esp"].clone();
    c.start_checker("esp", &addr).await.unwrap();
    next_matching(&mut stream, Duration::from_secs(30), "OPEN again", |d| {
        state(d) == pb::GateState::Open
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checker_down_at_start_does_not_stop_the_coordinator() {
    // startup_timeout from the environment: 1s instead of the file's 20s
    let env = vec![(
        "FUNNELGATE__COORDINATOR__STARTUP_TIMEOUT".to_string(),
        "1s".to_string(),
    )];
    let mut c = slow_cluster(env, Some("automation")).await;
    let hold = wait_decision(
        &c.grpc,
        "shop",
        MINUTE,
        "HOLD with automation unreachable",
        |d| {
            d.reasons
                .iter()
                .any(|r| r.stage == "automation" && r.code == "UNREACHABLE")
        },
    )
    .await
    .unwrap();
    assert_eq!(state(&hold), pb::GateState::Hold, "{hold:#?}");
    assert!(
        !c.coordinator.as_mut().unwrap().has_exited(),
        "the coordinator keeps running"
    );

    let addr = c.checker_addrs["automation"].clone();
    c.start_checker("automation", &addr).await.unwrap();
    wait_decision(&c.grpc, "shop", MINUTE, "OPEN once it is up", |d| {
        state(d) == pb::GateState::Open
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn config_errors_from_the_environment_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let grpc = funnelgate_e2e::free_addr();
    let http = funnelgate_e2e::free_addr();
    crate::quickstart_files(dir.path(), &grpc, &http).await;
    let file = dir.path().join("funnelgate.toml").display().to_string();
    let r = cli(
        &["config", "validate", &file],
        &[("FUNNELGATE__COORDINATOR__MAX_WATCHERS", "lots")],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 64, "{r:?}");
    assert!(
        r.stderr.contains(
            "environment variable FUNNELGATE__COORDINATOR__MAX_WATCHERS: coordinator.max_watchers:"
        ),
        "{r:?}"
    );
    assert!(!r.stderr.contains(&file), "not the file: {r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_request_is_resource_exhausted() {
    let c = slow_cluster(Vec::new(), None).await;
    let mut client = gate_client(&c.grpc).await.unwrap();
    let err = client
        .get_gate(pb::GetGateRequest {
            funnel: "x".repeat(200 * 1024),
            view: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
}
