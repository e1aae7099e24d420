//! Builders shared by the engine's unit tests.
#![allow(clippy::unwrap_used)]

pub(crate) use crate::decision::{
    GateDecision, GateState, Override, Phase, Readiness, ReasonCode, StageHealth,
};
pub(crate) use crate::model::{
    CheckFailure, ProbeResult, ProbeStatus, Severity, StageReport, badness,
};
pub(crate) use crate::policy::{FunnelPolicy, GatePolicy, OnUnknown, ProbeSpec, StagePolicy};
pub(crate) use crate::time::{HumanDuration, Timestamp};

pub(crate) use super::{Engine, EngineError, Outcome};

pub(crate) const T0: i64 = 1_714_564_800_000;

pub(crate) fn at(secs: i64) -> Timestamp {
    Timestamp(T0 + secs * 1000)
}

pub(crate) fn mins(m: i64) -> Timestamp {
    at(m * 60)
}

pub(crate) fn stage(name: &str, probes: &[&str]) -> StagePolicy {
    let mut s = StagePolicy::new(name);
    s.stale_after = HumanDuration::from_secs(30 * 86_400);
    s.probes = probes.iter().map(|id| ProbeSpec::new(*id, "sql")).collect();
    s
}

/// Opens on the first all-healthy evaluation; ramp 10 → 25 → 50 → 100, one hour a step.
pub(crate) fn fast_gate() -> GatePolicy {
    GatePolicy {
        open_after: HumanDuration::from_secs(0),
        open_after_evaluations: 1,
        ..GatePolicy::default()
    }
}

pub(crate) fn funnel(stages: Vec<StagePolicy>) -> FunnelPolicy {
    FunnelPolicy {
        name: "acme".into(),
        stages,
        gate: fast_gate(),
    }
}

/// crm (a, b, c, d) → automation (e, f) → esp (g).
pub(crate) fn three_stages() -> FunnelPolicy {
    funnel(vec![
        stage("crm", &["a", "b", "c", "d"]),
        stage("automation", &["e", "f"]),
        stage("esp", &["g"]),
    ])
}

pub(crate) fn res(id: &str, status: ProbeStatus) -> ProbeResult {
    ProbeResult {
        id: id.into(),
        kind: "sql".into(),
        status,
        value: None,
        unit: String::new(),
        threshold: None,
        badness: if matches!(status, ProbeStatus::Pass | ProbeStatus::Skipped) {
            0.0
        } else {
            1.0
        },
        message: String::new(),
        observed_at: Timestamp(T0),
        duration_ms: 1,
        sample_size: None,
        window: None,
        evidence: Default::default(),
        steps: Vec::new(),
    }
}

pub(crate) fn val(id: &str, status: ProbeStatus, value: f64, threshold: f64) -> ProbeResult {
    ProbeResult {
        value: Some(value),
        threshold: Some(threshold),
        badness: if status == ProbeStatus::Pass {
            0.0
        } else {
            badness(value, threshold)
        },
        ..res(id, status)
    }
}

pub(crate) fn report(stage: &str, results: Vec<ProbeResult>, when: Timestamp) -> StageReport {
    StageReport {
        funnel: "acme".into(),
        stage: stage.into(),
        results,
        checked_at: when,
        duration_ms: 5,
        checker: stage.into(),
        failure: None,
    }
}

pub(crate) fn passing(policy: &FunnelPolicy, stage: &str, when: Timestamp) -> StageReport {
    let sp = &policy.stages[policy.stage_index(stage).unwrap()];
    report(
        stage,
        sp.probes
            .iter()
            .map(|p| res(&p.id, ProbeStatus::Pass))
            .collect(),
        when,
    )
}

/// A passing report with some results replaced.
pub(crate) fn with(
    policy: &FunnelPolicy,
    stage: &str,
    when: Timestamp,
    replace: Vec<ProbeResult>,
) -> StageReport {
    let mut r = passing(policy, stage, when);
    for new in replace {
        if let Some(slot) = r.results.iter_mut().find(|x| x.id == new.id) {
            *slot = new;
        }
    }
    r
}

pub(crate) fn engine(policy: &FunnelPolicy) -> Engine {
    let mut e = Engine::new();
    e.upsert_funnel(policy.clone(), at(0)).unwrap();
    e
}

/// Apply a passing report for every stage at `when`; returns the last outcome.
pub(crate) fn all_pass(e: &mut Engine, policy: &FunnelPolicy, when: Timestamp) -> Outcome {
    let mut last = None;
    for s in &policy.stages {
        last = Some(
            e.apply_report(passing(policy, &s.name, when), when)
                .unwrap(),
        );
    }
    last.unwrap()
}

pub(crate) fn codes(d: &GateDecision) -> Vec<ReasonCode> {
    d.reasons.iter().map(|r| r.code).collect()
}

pub(crate) fn health(d: &GateDecision) -> Vec<StageHealth> {
    d.stages.iter().map(|s| s.health).collect()
}

pub(crate) fn readiness(d: &GateDecision) -> Vec<Readiness> {
    d.stages.iter().map(|s| s.readiness).collect()
}

pub(crate) fn with_proof() -> FunnelPolicy {
    let mut p = three_stages();
    let mut proof = ProbeSpec::new("lead-to-customer", "sql");
    proof.proof = true;
    p.stages[0].probes.push(proof);
    p
}

pub(crate) fn ov(state: GateState, until: Timestamp) -> Override {
    Override {
        state,
        actor: "alice".into(),
        reason: "black friday launch".into(),
        until,
        created_at: at(0),
        percent: None,
    }
}
