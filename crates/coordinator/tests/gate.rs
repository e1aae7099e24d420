//! The coordinator in-process, against fake checkers the test controls: the gate follows the
//! checkers' results, an unreachable checker makes its stage UNKNOWN, the Gate API's codes,
//! watching, history paging and verification, HTTP, metrics and readiness.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use funnelgate_coordinator::Coordinator;
use funnelgate_proto::pb;

fn codes(d: &pb::GateDecision) -> Vec<String> {
    d.reasons.iter().map(|r| r.code.clone()).collect()
}

fn stage_health(d: &pb::GateDecision, stage: &str) -> Option<pb::StageHealth> {
    d.stages
        .iter()
        .find(|s| s.stage == stage)
        .and_then(|s| pb::StageHealth::try_from(s.health).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_follows_the_checkers_and_the_api_answers() {
    let crm = FakeChecker::start("crm").await;
    let mut esp = FakeChecker::start("esp").await;
    crm.set_value("leads", 5.0); // below fail_below 10: FAIL
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &[&crm, &esp],
        vec![two_stage_funnel("acme")],
        &db_in(dir.path()),
    );
    let coordinator = Coordinator::spawn(config, HashMap::new()).await.unwrap();
    let mut client = gate_client(coordinator.grpc_url()).await;

    // Watch from the start: the first message is the current decision.
    let mut watch = client
        .watch_gate(pb::WatchGateRequest {
            funnel: "acme".into(),
            view: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap().decision.unwrap();
    assert_eq!(first.funnel, "acme");
    let watched = tokio::spawn(async move {
        let mut seen = vec![first];
        while let Ok(Some(msg)) = watch.message().await {
            let d = msg.decision.unwrap();
            let open = d.state == pb::GateState::Open as i32;
            seen.push(d);
            if open {
                break;
            }
        }
        seen
    });

    // CLOSED: crm fails, and it is the lowest failing stage.
    let closed = wait_state(&mut client, "acme", pb::GateState::Closed).await;
    assert_eq!(closed.blocking_stage, "crm");
    assert_eq!(closed.allowed_rollout_percent, 0);
    assert!(
        codes(&closed).contains(&"STAGE_FAILING".to_string()),
        "{closed:#?}"
    );
    assert_eq!(stage_health(&closed, "crm"), Some(pb::StageHealth::Failing));

    // HOLD: crm only warns.
    crm.set_value("leads", 30.0);
    let hold = wait_state(&mut client, "acme", pb::GateState::Hold).await;
    assert_eq!(hold.allowed_rollout_percent, 5, "the pilot share");
    assert_eq!(hold.blocking_stage, "crm");

    // OPEN: everything healthy for one evaluation and 1s.
    crm.set_value("leads", 100.0);
    let open = wait_state(&mut client, "acme", pb::GateState::Open).await;
    assert_eq!(open.allowed_rollout_percent, 10, "the first ramp step");
    assert_eq!(open.phase, pb::Phase::Operate as i32);
    assert!(
        open.sequence > 0 && open.config_hash.len() == 64,
        "{open:#?}"
    );
    assert!(
        open.stages.iter().all(|s| s.probes.is_empty()),
        "compact view has no probe results"
    );

    // The watcher saw CLOSED, then HOLD, then OPEN, in that order, each change once.
    let seen = tokio::time::timeout(WAIT, watched).await.unwrap().unwrap();
    let states: Vec<i32> = seen.iter().map(|d| d.state).collect();
    let closed_at = states
        .iter()
        .position(|s| *s == pb::GateState::Closed as i32)
        .unwrap();
    let hold_at = closed_at
        + states[closed_at..]
            .iter()
            .position(|s| *s == pb::GateState::Hold as i32)
            .unwrap();
    assert!(
        states[hold_at..].contains(&(pb::GateState::Open as i32)),
        "CLOSED, then HOLD, then OPEN: {states:?}"
    );
    let seqs: Vec<u64> = seen.iter().map(|d| d.sequence).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "changes only, in order: {seqs:?}"
    );

    // Full view carries probe results.
    let full = client
        .get_gate(pb::GetGateRequest {
            funnel: "acme".into(),
            view: pb::GateView::Full as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    let crm_stage = full.stages.iter().find(|s| s.stage == "crm").unwrap();
    assert_eq!(crm_stage.probes[0].id, "leads");
    assert_eq!(crm_stage.probes[0].value, Some(100.0));

    // Status codes.
    let err = client
        .get_gate(pb::GetGateRequest {
            funnel: "nope".into(),
            view: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(
        err.message().contains("`nope`") && err.message().contains("ListFunnels"),
        "{}",
        err.message()
    );
    for bad in ["", "Bad Name", "-x"] {
        let err = client
            .get_gate(pb::GetGateRequest {
                funnel: bad.into(),
                view: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad:?}: {err:?}");
    }
    let err = client
        .get_gate(pb::GetGateRequest {
            funnel: "acme".into(),
            view: 7,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client
        .watch_gate(pb::WatchGateRequest {
            funnel: "nope".into(),
            view: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    // ListFunnels and Explain.
    let funnels = client
        .list_funnels(pb::ListFunnelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .funnels;
    assert_eq!(funnels.len(), 1);
    assert_eq!(
        (funnels[0].funnel.as_str(), funnels[0].state),
        ("acme", pb::GateState::Open as i32)
    );
    let explained = client
        .explain(pb::ExplainRequest {
            funnel: "acme".into(),
            sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        explained.explanation[0].starts_with("funnel `acme`: gate OPEN with 10%"),
        "{:?}",
        explained.explanation
    );
    assert!(
        explained
            .explanation
            .iter()
            .any(|l| l.starts_with("stage 1/2 `crm`: HEALTHY")),
        "{:?}",
        explained.explanation
    );
    assert!(
        explained
            .explanation
            .iter()
            .any(|l| l.contains("probe `leads` (sql)")),
        "{:?}",
        explained.explanation
    );
    let policy: serde_json::Value = serde_json::from_str(&explained.policy_json).unwrap();
    assert_eq!(policy["name"], "acme");
    let stored = client
        .explain(pb::ExplainRequest {
            funnel: "acme".into(),
            sequence: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.decision.unwrap().sequence, 1);
    let err = client
        .explain(pb::ExplainRequest {
            funnel: "acme".into(),
            sequence: 9999,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    // HTTP.
    let http = coordinator.http_addr();
    let (status, body) = http_get(http, "/v1/funnels/acme/gate").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["state"], "OPEN");
    assert_eq!(json["allowed_rollout_percent"], 10);
    assert_eq!(json["config_hash"].as_str().unwrap().len(), 64);
    assert!(json["sequence"].as_u64().unwrap() > 0);
    assert!(json["stages"][0].get("probes").is_none(), "{body}");
    let (status, body) = http_get(http, "/v1/funnels/acme/gate?view=full").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["stages"][0]["probes"][0]["id"], "leads");
    let (status, body) = http_get(http, "/v1/funnels/nope/gate").await;
    assert_eq!(status, 404);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "NOT_FOUND");
    assert!(json["error"]["message"].as_str().unwrap().contains("nope"));
    let (status, _) = http_get(http, "/v1/funnels/acme/gate?view=everything").await;
    assert_eq!(status, 400);
    let (status, body) = http_get(http, "/v1/funnels").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["funnels"][0]["funnel"], "acme");
    assert_eq!(json["funnels"][0]["state"], "OPEN");
    assert_eq!(http_get(http, "/healthz").await.0, 200);
    let (status, body) = http_get(http, "/v2/nothing").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"NOT_FOUND\""), "{body}");
    assert_eq!(
        http_get(http, "/readyz").await.0,
        200,
        "every stage was checked"
    );
    let (status, metrics) = http_get(http, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        r#"funnelgate_gate_state{funnel="acme",state="OPEN"} 1"#,
        r#"funnelgate_gate_state{funnel="acme",state="CLOSED"} 0"#,
        r#"funnelgate_gate_allowed_rollout_percent{funnel="acme"} 10"#,
        r#"funnelgate_stage_health{funnel="acme",stage="crm",health="HEALTHY"} 1"#,
        r#"funnelgate_watchers 0"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in\n{metrics}"
        );
    }
    for name in [
        "funnelgate_checks_total{stage=\"crm\",outcome=\"ok\"}",
        "funnelgate_check_duration_seconds_bucket",
        "funnelgate_decision_changes_total{funnel=\"acme\"}",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }

    // The esp checker dies: its stage becomes UNKNOWN, naming the checker, and the gate holds.
    esp.kill().await;
    let endpoint = esp.endpoint();
    let unknown = wait_for("esp to be UNKNOWN", WAIT, || {
        let mut c = client.clone();
        async move {
            get_gate(&mut c, "acme")
                .await
                .filter(|d| stage_health(d, "esp") == Some(pb::StageHealth::Unknown))
        }
    })
    .await;
    assert_eq!(unknown.state, pb::GateState::Hold as i32, "{unknown:#?}");
    assert_eq!(unknown.blocking_stage, "esp");
    let reason = unknown
        .reasons
        .iter()
        .find(|r| r.code == "UNREACHABLE")
        .expect("an UNREACHABLE reason");
    assert_eq!(reason.stage, "esp");
    assert!(
        reason.message.contains(&format!("esp at {endpoint}")),
        "{}",
        reason.message
    );
    assert!(reason.message.contains("UNREACHABLE"), "{}", reason.message);

    // History: newest first, paged, contiguous, verified.
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_decisions(pb::ListDecisionsRequest {
                funnel: "acme".into(),
                page_size: 2,
                page_token: token.clone(),
                verify: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.decisions.len() <= 2);
        assert!(page.chain_valid.is_none(), "not verified unless asked");
        all.extend(page.decisions);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let seqs: Vec<u64> = all.iter().map(|r| r.sequence).collect();
    let expected: Vec<u64> = (1..=seqs[0]).rev().collect();
    assert_eq!(seqs, expected, "newest first, nothing missing");
    assert!(
        seqs.len() >= 4,
        "initial, CLOSED, HOLD, OPEN, UNKNOWN: {seqs:?}"
    );
    assert!(
        all.windows(2).all(|w| w[0].prev_hash == w[1].hash),
        "the pages chain together"
    );
    assert!(all.iter().all(|r| r.kind == "decision"));
    let verified = client
        .list_decisions(pb::ListDecisionsRequest {
            funnel: "acme".into(),
            page_size: 0,
            page_token: String::new(),
            verify: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verified.chain_valid, Some(true), "{}", verified.chain_error);
    assert!(verified.chain_length >= seqs.len() as u64);
    let err = client
        .list_decisions(pb::ListDecisionsRequest {
            funnel: "acme".into(),
            page_size: 2,
            page_token: "garbage".into(),
            verify: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    coordinator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_errors_timeouts_and_bad_reports_make_the_stage_unknown() {
    let crm = FakeChecker::start("crm").await;
    crm.set_mode(Mode::Hang);
    let funnel = funnelgate_core::FunnelPolicy {
        name: "solo".into(),
        stages: vec![stage("crm", "1s", vec![leads_probe()])],
        gate: fast_gate(),
    };
    let mut config = config(&[&crm], vec![funnel], "sqlite::memory:");
    config.checkers.get_mut("crm").unwrap().timeout = funnelgate_core::HumanDuration::from_secs(1);
    let coordinator = Coordinator::spawn(config, HashMap::new()).await.unwrap();
    let mut client = gate_client(coordinator.grpc_url()).await;

    let reason_with = |needle: &'static str| {
        let client = client.clone();
        async move {
            wait_for(needle, WAIT, || {
                let mut c = client.clone();
                async move {
                    let d = get_gate(&mut c, "solo").await?;
                    d.reasons
                        .iter()
                        .find(|r| r.code == "UNREACHABLE" && r.message.contains(needle))
                        .cloned()
                        .map(|r| (d, r))
                }
            })
            .await
        }
    };

    let (d, r) = reason_with("TIMEOUT").await;
    assert_eq!(stage_health(&d, "crm"), Some(pb::StageHealth::Unknown));
    assert!(r.message.contains("no answer within 1s"), "{}", r.message);
    assert_ne!(d.state, pb::GateState::Open as i32);
    // the first check happened (it failed, but the gate could decide): ready
    assert_eq!(http_get(coordinator.http_addr(), "/readyz").await.0, 200);

    crm.set_mode(Mode::Error(
        tonic::Code::Internal,
        "warehouse on fire".into(),
    ));
    let (_, r) = reason_with("CHECKER_ERROR").await;
    assert!(r.message.contains("warehouse on fire"), "{}", r.message);

    crm.set_mode(Mode::WrongFunnel);
    let (_, r) = reason_with("invalid report").await;
    assert!(r.message.contains("someone-else"), "{}", r.message);

    crm.set_mode(Mode::Normal);
    wait_state(&mut client, "solo", pb::GateState::Open).await;
    coordinator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_are_bounded() {
    let crm = FakeChecker::start("crm").await;
    let funnel = funnelgate_core::FunnelPolicy {
        name: "solo".into(),
        stages: vec![stage("crm", "1s", vec![leads_probe()])],
        gate: fast_gate(),
    };
    let mut config = config(&[&crm], vec![funnel], "sqlite::memory:");
    config.coordinator.max_watchers = 1;
    let coordinator = Coordinator::spawn(config, HashMap::new()).await.unwrap();
    let mut client = gate_client(coordinator.grpc_url()).await;
    let mut first = client
        .watch_gate(pb::WatchGateRequest {
            funnel: "solo".into(),
            view: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(first.message().await.unwrap().is_some());
    let err = client
        .watch_gate(pb::WatchGateRequest {
            funnel: "solo".into(),
            view: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(
        err.message().contains("too many watchers"),
        "{}",
        err.message()
    );
    let (_, metrics) = http_get(coordinator.http_addr(), "/metrics").await;
    assert!(
        metrics.lines().any(|l| l == "funnelgate_watchers 1"),
        "{metrics}"
    );
    // closing the first stream frees the slot
    drop(first);
    let mut again = wait_for("a free watcher slot", WAIT, || {
        let mut c = client.clone();
        async move {
            c.watch_gate(pb::WatchGateRequest {
                funnel: "solo".into(),
                view: 2,
            })
            .await
            .ok()
        }
    })
    .await
    .into_inner();
    let d = again.message().await.unwrap().unwrap().decision.unwrap();
    assert_eq!(d.funnel, "solo");

    // shutdown ends open streams with UNAVAILABLE instead of hanging the drain
    let ended = tokio::spawn(async move {
        loop {
            match again.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status.code()),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(15), coordinator.shutdown())
        .await
        .unwrap()
        .unwrap();
    let code = tokio::time::timeout(WAIT, ended).await.unwrap().unwrap();
    assert!(
        matches!(code, Some(tonic::Code::Unavailable) | None),
        "{code:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_size_limit_is_resource_exhausted() {
    let crm = FakeChecker::start("crm").await;
    let funnel = funnelgate_core::FunnelPolicy {
        name: "solo".into(),
        stages: vec![stage("crm", "1s", vec![leads_probe()])],
        gate: fast_gate(),
    };
    let config = config(&[&crm], vec![funnel], "sqlite::memory:");
    let coordinator = Coordinator::spawn(config, HashMap::new()).await.unwrap();
    let mut client = gate_client(coordinator.grpc_url()).await;
    // 100 KiB: over the 64 KiB request limit
    let err = client
        .get_gate(pb::GetGateRequest {
            funnel: "x".repeat(100 * 1024),
            view: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("too large"), "{}", err.message());
    // a request under the limit is still answered normally
    let err = client
        .get_gate(pb::GetGateRequest {
            funnel: "x".repeat(1024),
            view: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    coordinator.shutdown().await.unwrap();
}
