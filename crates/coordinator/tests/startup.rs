//! The coordinator refuses to start, serving nothing, when the configuration does not fit the
//! checkers (unsupported kinds, params against the published schema), an operator token is
//! missing, or the database is unusable — listing every problem. A checker that is down is not a
//! configuration problem: the coordinator starts, holds, and validates it when it answers.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use funnelgate_coordinator::config::{OperatorConfig, Role};
use funnelgate_coordinator::{Coordinator, CoordinatorError, bind, run};
use funnelgate_core::{FunnelPolicy, ProbeSpec};

async fn refuse(config: funnelgate_coordinator::Config, env: HashMap<String, String>) -> String {
    let listeners = bind(&config).await.unwrap();
    let (_, http) = listeners.local_addrs().unwrap();
    let result = tokio::time::timeout(WAIT, run(config, listeners, env, std::future::pending()))
        .await
        .unwrap();
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            CoordinatorError::InvalidConfig(_) | CoordinatorError::Store(_)
        ),
        "{err:?}"
    );
    // nothing was ever served on the bound port
    let refused = tokio::net::TcpStream::connect(http).await.is_err();
    assert!(refused, "the HTTP port is closed after a refused start");
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_kinds_and_bad_params_are_all_reported() {
    let crm = FakeChecker::start("crm").await;
    let mut unknown = ProbeSpec::new("pipelines", "hubspot.x");
    unknown.thresholds.fail_below = Some(1.0);
    let mut typo = leads_probe();
    typo.id = "typo".into();
    typo.params = serde_json::json!({"qeury": "select 1"});
    let funnel = FunnelPolicy {
        name: "acme".into(),
        stages: vec![stage("crm", "1s", vec![leads_probe(), unknown, typo])],
        gate: fast_gate(),
    };
    let config = config(&[&crm], vec![funnel], "sqlite::memory:");
    let message = refuse(config, HashMap::new()).await;
    assert!(
        message.starts_with("refusing to start: invalid configuration"),
        "{message}"
    );
    let expected = format!(
        "<config>: funnels[0].stages[0].probes[1].kind: checker `crm` at {} does not support probe kind `hubspot.x`; it supports: http, sql",
        crm.endpoint()
    );
    assert!(
        message.lines().any(|l| l == expected),
        "missing\n{expected}\nin\n{message}"
    );
    assert!(
        message.contains("funnels[0].stages[0].probes[2].params.qeury: unknown field `qeury`"),
        "{message}"
    );
    assert!(
        message.contains("funnels[0].stages[0].probes[2].params.query: required field is missing"),
        "{message}"
    );
}

fn reason_of<'a>(
    d: &'a funnelgate_proto::pb::GateDecision,
    stage: &str,
    code: &str,
) -> Option<&'a funnelgate_proto::pb::Reason> {
    d.reasons
        .iter()
        .find(|r| r.stage == stage && r.code == code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checker_that_is_down_at_start_does_not_stop_the_coordinator() {
    // a port that was free a moment ago: nothing listens there
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let crm = FakeChecker::start("crm").await;
    let mut config = config(&[&crm], vec![two_stage_funnel("acme")], "sqlite::memory:");
    let mut esp_cfg = funnelgate_coordinator::config::CheckerConfig::new(format!("http://{dead}"));
    esp_cfg.connect_timeout = funnelgate_core::HumanDuration::from_secs(1);
    config.checkers.insert("esp".into(), esp_cfg);
    // an hour between checks: recovery must not wait for the schedule
    config.funnels[0].stages[1].interval = funnelgate_core::HumanDuration::from_secs(3600);
    config.funnels[0].stages[1].stale_after = funnelgate_core::HumanDuration::from_secs(7200);
    config.coordinator.startup_timeout = funnelgate_core::HumanDuration::from_secs(1);
    let coordinator = Coordinator::spawn(config, HashMap::new()).await.unwrap();
    let mut client = gate_client(coordinator.grpc_url()).await;

    // it serves, and holds: the esp stage is UNKNOWN because its checker is unreachable
    let hold = wait_for("esp to be reported unreachable", WAIT, || {
        let mut client = client.clone();
        async move {
            get_gate(&mut client, "acme")
                .await
                .filter(|d| reason_of(d, "esp", "UNREACHABLE").is_some())
        }
    })
    .await;
    assert_eq!(
        hold.state,
        funnelgate_proto::pb::GateState::Hold as i32,
        "{hold:#?}"
    );
    let reason = reason_of(&hold, "esp", "UNREACHABLE").unwrap_or_else(|| panic!("{hold:#?}"));
    assert!(
        reason.message.contains(&dead.to_string()),
        "the reason names the checker's endpoint: {reason:#?}"
    );
    assert!(!coordinator.is_finished(), "still running");

    // the checker comes up: it is described, validated and checked without a restart
    let esp = FakeChecker::start_at("esp", dead, default_kinds()).await;
    wait_state(&mut client, "acme", funnelgate_proto::pb::GateState::Open).await;
    assert!(esp.checks() >= 1);
    coordinator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_checker_holds_the_gate_at_once_and_recovers_by_itself() {
    let crm = FakeChecker::start("crm").await;
    let mut esp = FakeChecker::start("esp").await;
    let addr = esp.addr;
    let mut config = config(
        &[&crm, &esp],
        vec![two_stage_funnel("acme")],
        "sqlite::memory:",
    );
    // an hour between checks: only the liveness watch can notice the loss this fast
    for s in &mut config.funnels[0].stages {
        s.interval = funnelgate_core::HumanDuration::from_secs(3600);
        s.stale_after = funnelgate_core::HumanDuration::from_secs(7200);
    }
    let coordinator = Coordinator::spawn(config, HashMap::new()).await.unwrap();
    let mut client = gate_client(coordinator.grpc_url()).await;
    wait_state(&mut client, "acme", funnelgate_proto::pb::GateState::Open).await;

    esp.kill().await;
    let lost = std::time::Instant::now();
    let hold = wait_state(&mut client, "acme", funnelgate_proto::pb::GateState::Hold).await;
    assert!(
        lost.elapsed() < Duration::from_secs(15),
        "noticed within seconds, not at the next check in an hour ({:?})",
        lost.elapsed()
    );
    assert!(
        reason_of(&hold, "esp", "UNREACHABLE").is_some(),
        "{hold:#?}"
    );

    let esp = FakeChecker::start_at("esp", addr, default_kinds()).await;
    wait_state(&mut client, "acme", funnelgate_proto::pb::GateState::Open).await;
    assert!(esp.checks() >= 1, "checked at once when it came back");
    coordinator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checker_that_first_answers_late_is_validated_then() {
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let crm = FakeChecker::start("crm").await;
    let mut config = config(&[&crm], vec![two_stage_funnel("acme")], "sqlite::memory:");
    config.checkers.insert(
        "esp".into(),
        funnelgate_coordinator::config::CheckerConfig::new(format!("http://{dead}")),
    );
    config.coordinator.startup_timeout = funnelgate_core::HumanDuration::from_secs(1);
    let coordinator = Coordinator::spawn(config, HashMap::new()).await.unwrap();
    let mut client = gate_client(coordinator.grpc_url()).await;
    wait_state(&mut client, "acme", funnelgate_proto::pb::GateState::Hold).await;

    // it comes up without the `http` kind the esp stage's probe needs
    let kinds: Vec<_> = default_kinds()
        .into_iter()
        .filter(|k| k.kind != "http")
        .collect();
    let esp = FakeChecker::start_at("esp", dead, kinds).await;
    let d = wait_for("the esp stage to be rejected", WAIT, || {
        let mut client = client.clone();
        async move {
            get_gate(&mut client, "acme").await.filter(|d| {
                reason_of(d, "esp", "UNREACHABLE")
                    .is_some_and(|r| r.message.contains("(CHECKER_ERROR)"))
            })
        }
    })
    .await;
    let reason = reason_of(&d, "esp", "UNREACHABLE").unwrap();
    assert!(
        reason
            .message
            .contains("does not support probe kind `http`"),
        "{reason:#?}"
    );
    assert_ne!(d.state, funnelgate_proto::pb::GateState::Open as i32);
    assert_eq!(esp.checks(), 0, "probes that do not fit are never sent");
    assert!(!coordinator.is_finished(), "a runtime fact, not an exit");
    coordinator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_problems_fail_fast_without_waiting_for_checkers() {
    let crm = FakeChecker::start("crm").await;
    let mut config = config(
        &[&crm],
        vec![two_stage_funnel("acme"), two_stage_funnel("acme")],
        "sqlite::memory:",
    );
    config.auth.operators = vec![OperatorConfig {
        name: "alice".into(),
        token_secret: "ALICE".into(),
        role: Role::Operator,
    }];
    let message = refuse(config, HashMap::new()).await;
    for needle in [
        "funnels[1].name: duplicate funnel `acme`",
        "funnels[0].stages[1].checker: stage `esp` uses checker `esp`, which has no [checkers.esp] entry (configured checkers: crm)",
        "auth.operators[0].token_secret: the token of operator `alice` is not set: set the environment variable FUNNELGATE_SECRET_ALICE",
    ] {
        assert!(message.contains(needle), "missing {needle} in\n{message}");
    }
    assert_eq!(crm.checks(), 0, "nothing was scheduled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_database_refuses_to_start_and_is_left_alone() {
    let crm = FakeChecker::start("crm").await;
    let esp = FakeChecker::start("esp").await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("funnelgate.db");
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let config = config(
        &[&crm, &esp],
        vec![two_stage_funnel("acme")],
        &db.display().to_string(),
    );
    let message = refuse(config, HashMap::new()).await;
    assert!(message.contains(&db.display().to_string()), "{message}");
    assert!(message.contains("not a database"), "{message}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        vec![0x5a; 8192],
        "never a silent reset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_handle_reports_a_refused_start() {
    let crm = FakeChecker::start("crm").await;
    let config = config(&[&crm], vec![two_stage_funnel("acme")], "sqlite::memory:");
    let coordinator = Coordinator::spawn(config, HashMap::new()).await.unwrap();
    let err = tokio::time::timeout(WAIT, coordinator.wait())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string().contains("funnels[0].stages[1].checker"),
        "{err}"
    );
}
