//! Operator actions: overrides and phase need a token of an operator (not a viewer), are
//! validated, recorded before they are acknowledged, and survive a restart on the same database.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::*;
use funnelgate_coordinator::Coordinator;
use funnelgate_coordinator::config::{OperatorConfig, Role};
use funnelgate_proto::pb;
use funnelgate_proto::pb::gate_service_client::GateServiceClient;
use tonic::transport::Channel;

fn env() -> HashMap<String, String> {
    HashMap::from([
        (
            "FUNNELGATE_SECRET_ALICE_TOKEN".to_string(),
            "alice-s3cret".to_string(),
        ),
        (
            "FUNNELGATE_SECRET_BOB_TOKEN".to_string(),
            "bob-s3cret".to_string(),
        ),
    ])
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

fn set_override(
    funnel: &str,
    state: pb::GateState,
    reason: &str,
    ttl_seconds: u64,
) -> pb::SetOverrideRequest {
    pb::SetOverrideRequest {
        funnel: funnel.into(),
        state: state as i32,
        reason: reason.into(),
        ttl_seconds,
        percent: None,
    }
}

async fn code_of(
    client: &mut GateServiceClient<Channel>,
    message: pb::SetOverrideRequest,
    token: Option<&str>,
) -> tonic::Code {
    client
        .set_override(with_token(message, token))
        .await
        .unwrap_err()
        .code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_need_an_operator_token_and_survive_a_restart() {
    let crm = FakeChecker::start("crm").await;
    let esp = FakeChecker::start("esp").await;
    crm.set_value("leads", 5.0); // FAIL: the gate closes
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        &[&crm, &esp],
        vec![two_stage_funnel("acme")],
        &db_in(dir.path()),
    );
    cfg.auth.operators = vec![
        OperatorConfig {
            name: "alice".into(),
            token_secret: "ALICE_TOKEN".into(),
            role: Role::Operator,
        },
        OperatorConfig {
            name: "bob".into(),
            token_secret: "BOB_TOKEN".into(),
            role: Role::Viewer,
        },
    ];
    let coordinator = Coordinator::spawn(cfg.clone(), env()).await.unwrap();
    let mut client = gate_client(coordinator.grpc_url()).await;
    wait_state(&mut client, "acme", pb::GateState::Closed).await;

    let open = || {
        set_override(
            "acme",
            pb::GateState::Open,
            "launch day: CRM fix verified by hand",
            3600,
        )
    };
    assert_eq!(
        code_of(&mut client, open(), None).await,
        tonic::Code::Unauthenticated
    );
    assert_eq!(
        code_of(&mut client, open(), Some("not-a-token")).await,
        tonic::Code::Unauthenticated
    );
    let err = client
        .set_override(with_token(open(), Some("bob-s3cret")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message().contains("`bob` has role viewer"),
        "{}",
        err.message()
    );
    let alice = Some("alice-s3cret");
    for (bad, why) in [
        (set_override("acme", pb::GateState::Open, "x", 0), "ttl 0"),
        (
            set_override("acme", pb::GateState::Open, "x", 604_801),
            "ttl over 7 days",
        ),
        (set_override("acme", pb::GateState::Hold, "x", 60), "HOLD"),
        (
            set_override("acme", pb::GateState::Unspecified, "x", 60),
            "no state",
        ),
        (
            set_override("acme", pb::GateState::Open, "   ", 60),
            "no reason",
        ),
        (set_override("", pb::GateState::Open, "x", 60), "no funnel"),
    ] {
        assert_eq!(
            code_of(&mut client, bad, alice).await,
            tonic::Code::InvalidArgument,
            "{why}"
        );
    }
    assert_eq!(
        code_of(
            &mut client,
            set_override("nope", pb::GateState::Open, "x", 60),
            alice
        )
        .await,
        tonic::Code::NotFound
    );
    let phase = pb::SetPhaseRequest {
        funnel: "acme".into(),
        phase: pb::Phase::Build as i32,
        reason: "replatforming".into(),
    };
    let err = client
        .set_phase(with_token(phase.clone(), Some("bob-s3cret")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    // alice forces it open: acknowledged with the overridden decision
    let decision = client
        .set_override(with_token(open(), alice))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(decision.state, pb::GateState::Open as i32);
    assert_eq!(
        decision.underlying_state,
        pb::GateState::Closed as i32,
        "the override never hides the health"
    );
    let ov = decision.r#override.clone().unwrap();
    assert_eq!(
        (ov.actor.as_str(), ov.state),
        ("alice", pb::GateState::Open as i32)
    );
    assert_eq!(decision.reasons[0].code, "OVERRIDDEN");
    let override_seq = decision.sequence;
    let decision = client
        .set_phase(with_token(phase, alice))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(decision.phase, pb::Phase::Build as i32);

    coordinator.shutdown().await.unwrap();

    // A new coordinator on the same database: the override is still in force at once.
    let coordinator = Coordinator::spawn(cfg.clone(), env()).await.unwrap();
    let mut client = gate_client(coordinator.grpc_url()).await;
    let restored = get_gate(&mut client, "acme").await.unwrap();
    assert_eq!(restored.state, pb::GateState::Open as i32, "{restored:#?}");
    let ov = restored.r#override.clone().unwrap();
    assert_eq!(ov.actor, "alice");
    assert_eq!(ov.reason, "launch day: CRM fix verified by hand");
    assert_eq!(restored.phase, pb::Phase::Build as i32);
    // the checks keep running underneath, and the override still holds the gate open
    let checks_at_restart = crm.checks();
    wait_for("crm to be checked again after the restart", WAIT, || {
        let more = crm.checks() > checks_at_restart;
        async move { more.then_some(()) }
    })
    .await;
    let underlying = get_gate(&mut client, "acme").await.unwrap();
    assert_eq!(underlying.underlying_state, pb::GateState::Closed as i32);
    assert_eq!(underlying.state, pb::GateState::Open as i32);

    // the history holds the override and the phase change, and the chain verifies
    let history = client
        .list_decisions(pb::ListDecisionsRequest {
            funnel: "acme".into(),
            page_size: 1000,
            page_token: String::new(),
            verify: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.chain_valid, Some(true), "{}", history.chain_error);
    let record = history
        .decisions
        .iter()
        .find(|r| r.sequence == override_seq)
        .unwrap();
    assert_eq!(record.kind, "override");
    assert!(history.decisions.iter().any(|r| r.kind == "phase"));

    // clearing is audited too, and clearing twice is a precondition failure
    let clear = pb::ClearOverrideRequest {
        funnel: "acme".into(),
        reason: String::new(),
    };
    assert_eq!(
        client
            .clear_override(clear.clone())
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );
    let cleared = client
        .clear_override(with_token(clear.clone(), alice))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert!(cleared.r#override.is_none());
    assert_eq!(cleared.state, pb::GateState::Closed as i32);
    let err = client
        .clear_override(with_token(clear, alice))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let last = client
        .list_decisions(pb::ListDecisionsRequest {
            funnel: "acme".into(),
            page_size: 1,
            page_token: String::new(),
            verify: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.decisions[0].kind, "override_cleared");

    coordinator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_operators_anyone_may_override_as_anonymous() {
    let crm = FakeChecker::start("crm").await;
    let esp = FakeChecker::start("esp").await;
    let cfg = config(
        &[&crm, &esp],
        vec![two_stage_funnel("acme")],
        "sqlite::memory:",
    );
    let coordinator = Coordinator::spawn(cfg, HashMap::new()).await.unwrap();
    let mut client = gate_client(coordinator.grpc_url()).await;
    let decision = client
        .set_override(set_override(
            "acme",
            pb::GateState::Closed,
            "freeze for black friday",
            60,
        ))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(decision.state, pb::GateState::Closed as i32);
    assert_eq!(decision.r#override.unwrap().actor, "anonymous");
    coordinator.shutdown().await.unwrap();
}
