//! Property tests of the gate engine: random funnels (1–5 stages, 0–8 probes of random severity,
//! mode, weight, proof flag and missing-data policy) driven by random event sequences (reports
//! with random statuses, dropped and unknown results, late reports, unreachable checkers, ticks,
//! overrides, phase changes) with time moving forward.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use funnelgate_core::{
    CheckFailure, Engine, FunnelPolicy, GateDecision, GatePolicy, GateState, HumanDuration,
    OnUnknown, Outcome, Override, Phase, ProbeMode, ProbeResult, ProbeSpec, ProbeStatus, Readiness,
    ReasonCode, Severity, StageHealth, StagePolicy, StageReport, Timestamp,
};
use proptest::prelude::*;

const T0: i64 = 1_714_564_800_000;
const FUNNEL: &str = "prop";

// ------------------------------------------------------------------------------ generators

fn on_unknown() -> impl Strategy<Value = OnUnknown> {
    prop_oneof![3 => Just(OnUnknown::Hold), 1 => Just(OnUnknown::Fail)]
}

fn probe(stage: usize, index: usize) -> impl Strategy<Value = ProbeSpec> {
    (
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.1),
        1u32..4,
        prop::option::weighted(0.2, on_unknown()),
    )
        .prop_map(move |(advisory, observe, proof, weight, on_unknown)| {
            let mut p = ProbeSpec::new(format!("s{stage}-p{index}"), "sql");
            p.severity = if advisory {
                Severity::Advisory
            } else {
                Severity::Blocking
            };
            p.mode = if observe {
                ProbeMode::Observe
            } else {
                ProbeMode::Enforce
            };
            p.proof = proof;
            p.weight = f64::from(weight);
            p.on_unknown = on_unknown;
            p
        })
}

fn stage(index: usize) -> impl Strategy<Value = StagePolicy> {
    (
        0usize..=8,
        on_unknown(),
        prop::option::weighted(0.3, 0u32..=100),
        60u64..3_600,
        0u64..3_600,
    )
        .prop_flat_map(move |(n, on_unknown, min_score, stale, grace)| {
            let probes: Vec<_> = (0..n).map(|i| probe(index, i)).collect();
            probes.prop_map(move |probes| {
                let mut s = StagePolicy::new(format!("stage-{index}"));
                s.interval = HumanDuration::from_secs(60);
                s.stale_after = HumanDuration::from_secs(stale);
                s.unknown_grace = HumanDuration::from_secs(grace);
                s.on_unknown = on_unknown;
                s.min_score = min_score.map(f64::from);
                s.probes = probes;
                s
            })
        })
}

fn gate() -> impl Strategy<Value = GatePolicy> {
    (
        0u32..=10,
        prop_oneof![
            Just(vec![100]),
            Just(vec![10, 100]),
            Just(vec![10, 25, 50, 100]),
            Just(vec![20, 60, 100]),
        ],
        prop_oneof![Just(0u64), 60u64..7_200],
        prop_oneof![Just(0u64), 60u64..3_600],
        0u32..=4,
        1u32..=4,
        0u32..=20,
    )
        .prop_map(
            |(pilot, ramp, dwell, open_after, evals, close_after, broken)| GatePolicy {
                pilot_percent: pilot,
                ramp,
                ramp_dwell: HumanDuration::from_secs(dwell),
                open_after: HumanDuration::from_secs(open_after),
                open_after_evaluations: evals,
                close_after,
                especially_broken: f64::from(broken) / 10.0,
            },
        )
}

fn funnel() -> impl Strategy<Value = FunnelPolicy> {
    (1usize..=5, gate()).prop_flat_map(|(n, gate)| {
        let stages: Vec<_> = (0..n).map(stage).collect();
        stages.prop_map(move |stages| FunnelPolicy {
            name: FUNNEL.into(),
            stages,
            gate: gate.clone(),
        })
    })
}

fn status() -> impl Strategy<Value = ProbeStatus> {
    prop_oneof![
        8 => Just(ProbeStatus::Pass),
        1 => Just(ProbeStatus::Warn),
        1 => Just(ProbeStatus::Fail),
        1 => Just(ProbeStatus::Error),
        1 => Just(ProbeStatus::NoData),
        1 => Just(ProbeStatus::Skipped),
    ]
}

#[derive(Debug, Clone)]
struct GenResult {
    status: ProbeStatus,
    value: f64,
    threshold: f64,
    dropped: bool,
}

fn gen_result() -> impl Strategy<Value = GenResult> {
    (status(), 0u32..200, 1u32..150, prop::bool::weighted(0.05)).prop_map(
        |(status, value, threshold, dropped)| GenResult {
            status,
            value: f64::from(value) / 2.0,
            threshold: f64::from(threshold) / 2.0,
            dropped,
        },
    )
}

#[derive(Debug, Clone)]
enum Event {
    Report {
        stage: usize,
        results: Vec<GenResult>,
        lag_s: u32,
        extra: bool,
    },
    Unreachable {
        stage: usize,
    },
    Tick,
    Override {
        open: bool,
        for_s: u32,
        /// The share a forced OPEN allows (the first ramp step when not given).
        percent: Option<u32>,
    },
    ClearOverride,
    Phase(Phase),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        12 => (0usize..5, prop::collection::vec(gen_result(), 8), 0u32..120, prop::bool::weighted(0.1))
            .prop_map(|(stage, results, lag_s, extra)| Event::Report { stage, results, lag_s, extra }),
        1 => (0usize..5).prop_map(|stage| Event::Unreachable { stage }),
        3 => Just(Event::Tick),
        1 => (any::<bool>(), 1u32..7_200, prop::option::of(1u32..=100))
            .prop_map(|(open, for_s, percent)| Event::Override { open, for_s, percent: percent.filter(|_| open) }),
        1 => Just(Event::ClearOverride),
        1 => prop_oneof![Just(Phase::Build), Just(Phase::Operate)].prop_map(Event::Phase),
    ]
}

/// An event after `dt_s` seconds.
fn steps() -> impl Strategy<Value = Vec<(u32, Event)>> {
    prop::collection::vec(
        (prop_oneof![2 => 0u32..120, 1 => 120u32..1_800], event()),
        1..40,
    )
}

// ------------------------------------------------------------------------------ driving

fn ts(s: i64) -> Timestamp {
    Timestamp(T0 + s * 1000)
}

fn build_report(
    policy: &FunnelPolicy,
    stage: usize,
    results: &[GenResult],
    at: Timestamp,
    extra: bool,
) -> StageReport {
    let sp = &policy.stages[stage % policy.stages.len()];
    let mut out: Vec<ProbeResult> = sp
        .probes
        .iter()
        .zip(results)
        .filter(|(_, g)| !g.dropped)
        .map(|(p, g)| result(&p.id, g, at))
        .collect();
    if extra {
        out.push(result("not-in-policy", &results[0], at));
    }
    StageReport {
        funnel: FUNNEL.into(),
        stage: sp.name.clone(),
        results: out,
        checked_at: at,
        duration_ms: 3,
        checker: sp.name.clone(),
        failure: None,
    }
}

fn result(id: &str, g: &GenResult, at: Timestamp) -> ProbeResult {
    let judged = matches!(g.status, ProbeStatus::Warn | ProbeStatus::Fail);
    ProbeResult {
        steps: Vec::new(),
        id: id.into(),
        kind: "sql".into(),
        status: g.status,
        value: Some(g.value),
        unit: String::new(),
        threshold: judged.then_some(g.threshold),
        badness: match g.status {
            ProbeStatus::Pass | ProbeStatus::Skipped => 0.0,
            ProbeStatus::Warn | ProbeStatus::Fail => {
                (g.value - g.threshold).abs() / g.threshold.abs().max(1e-9)
            }
            _ => 1.0,
        },
        message: format!("measured {}", g.value),
        observed_at: at,
        duration_ms: 1,
        sample_size: None,
        window: None,
        evidence: Default::default(),
    }
}

fn passing(policy: &FunnelPolicy, stage: usize, at: Timestamp) -> StageReport {
    let pass = GenResult {
        status: ProbeStatus::Pass,
        value: 1.0,
        threshold: 1.0,
        dropped: false,
    };
    build_report(policy, stage, &vec![pass; 8], at, false)
}

/// Apply one event at `now`; returns the resulting decision.
fn apply(
    e: &mut Engine,
    policy: &FunnelPolicy,
    ev: &Event,
    now: Timestamp,
) -> std::sync::Arc<GateDecision> {
    apply_outcome(e, policy, ev, now).decision
}

/// Apply one event at `now`; returns the outcome.
fn apply_outcome(e: &mut Engine, policy: &FunnelPolicy, ev: &Event, now: Timestamp) -> Outcome {
    let n = policy.stages.len();
    let outcome = match ev {
        Event::Report {
            stage,
            results,
            lag_s,
            extra,
        } => {
            let at = now.sub(Duration::from_secs(u64::from(*lag_s)));
            e.apply_report(build_report(policy, *stage, results, at, *extra), now)
        }
        Event::Unreachable { stage } => {
            let sp = &policy.stages[stage % n];
            e.apply_report(
                StageReport {
                    funnel: FUNNEL.into(),
                    stage: sp.name.clone(),
                    results: vec![],
                    checked_at: now,
                    duration_ms: 30_000,
                    checker: sp.name.clone(),
                    failure: Some(CheckFailure {
                        code: "TIMEOUT".into(),
                        checker: sp.name.clone(),
                        message: "deadline exceeded".into(),
                    }),
                },
                now,
            )
        }
        Event::Tick => e.tick_funnel(FUNNEL, now),
        Event::Override {
            open,
            for_s,
            percent,
        } => e.set_override(
            FUNNEL,
            Override {
                state: if *open {
                    GateState::Open
                } else {
                    GateState::Closed
                },
                actor: "prop".into(),
                reason: "testing".into(),
                until: now.add(Duration::from_secs(u64::from(*for_s))),
                created_at: now,
                percent: *percent,
            },
            now,
        ),
        Event::ClearOverride => e.clear_override(FUNNEL, now),
        Event::Phase(p) => e.set_phase(FUNNEL, *p, now),
    };
    outcome.unwrap()
}

/// Run a sequence, calling `check(previous, current, now)` after every event.
fn run(
    policy: &FunnelPolicy,
    steps: &[(u32, Event)],
    mut check: impl FnMut(Option<&GateDecision>, &GateDecision, Timestamp) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let mut e = Engine::new();
    let first = e.upsert_funnel(policy.clone(), ts(0)).unwrap().decision;
    check(None, &first, ts(0))?;
    let mut prev = first;
    let mut t = 0i64;
    for (dt, ev) in steps {
        t += i64::from(*dt);
        let d = apply(&mut e, policy, ev, ts(t));
        check(Some(&prev), &d, ts(t))?;
        prev = d;
    }
    Ok(())
}

fn spec<'a>(policy: &'a FunnelPolicy, stage: usize, id: &str) -> Option<&'a ProbeSpec> {
    policy.stages[stage].probes.iter().find(|p| p.id == id)
}

fn stage_index(policy: &FunnelPolicy, name: &str) -> usize {
    policy.stage_index(name).unwrap()
}

/// Does a stage close the gate in this decision (FAILING, or UNKNOWN that fails or is past its
/// grace)?
fn closes(d: &GateDecision, i: usize) -> bool {
    let s = &d.stages[i];
    s.health == StageHealth::Failing
        || (s.health == StageHealth::Unknown
            && (s.on_unknown == OnUnknown::Fail
                || d.reasons.iter().any(|r| {
                    r.code == ReasonCode::UnknownGraceExceeded
                        && r.stage.as_deref() == Some(s.stage.as_str())
                })))
}

/// Is the gate waiting for its first evidence?
fn awaiting(d: &GateDecision) -> bool {
    d.reasons
        .iter()
        .any(|r| r.code == ReasonCode::AwaitingEvidence)
}

/// Is this remediation item part of what closes a CLOSED gate: an item of a closing stage
/// that makes it close (stage-level, a blocking FAIL, a blocking WARN under `min_score`, a
/// blocking ERROR/NO_DATA of an UNKNOWN stage)?
fn item_closes(p: &FunnelPolicy, d: &GateDecision, it: &funnelgate_core::RemediationItem) -> bool {
    if d.underlying_state != GateState::Closed {
        return false;
    }
    let i = stage_index(p, &it.stage);
    let s = &d.stages[i];
    // Nothing closes it but an UNKNOWN stage keeps a CLOSED gate closed: the UNKNOWN stages do.
    let held = s.health == StageHealth::Unknown && !(0..d.stages.len()).any(|k| closes(d, k));
    if !closes(d, i) && !held {
        return false;
    }
    if it.probe.is_empty() {
        return true;
    }
    let Some(ps) = spec(p, i, &it.probe) else {
        return false;
    };
    if ps.severity != Severity::Blocking || ps.proof {
        return false;
    }
    let score_fail = d.reasons.iter().any(|r| {
        r.code == ReasonCode::StageFailing
            && r.probe.is_none()
            && r.stage.as_deref() == Some(&s.stage)
    });
    match it.status {
        ProbeStatus::Fail => true,
        ProbeStatus::Warn => score_fail,
        _ => s.health == StageHealth::Unknown,
    }
}

fn anything_fails(d: &GateDecision) -> bool {
    d.stages.iter().any(|s| {
        s.health == StageHealth::Failing
            || (s.health == StageHealth::Unknown && s.on_unknown == OnUnknown::Fail)
    })
}

// ------------------------------------------------------------------------------ properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any counting blocking FAIL in a fresh report closes the gate at once (close_after = 1),
    /// and the blocking stage is the lowest closing stage.
    #[test]
    fn a_blocking_fail_closes_and_names_the_lowest_failing_stage(
        mut policy in funnel(), steps in steps()
    ) {
        policy.gate.close_after = 1;
        let p = policy.clone();
        run(&policy, &steps, |_, d, now| {
            let mut lowest_fail = None;
            for (i, (sp, s)) in p.stages.iter().zip(&d.stages).enumerate() {
                let fresh = s.checked_at.is_some_and(|c| now.since(c) <= sp.stale_after.get());
                let blocking_fail = fresh && s.probes.iter().any(|r| {
                    spec(&p, i, &r.id).is_some_and(|ps| {
                        ps.counts_for_health()
                            && ps.severity == Severity::Blocking
                            && r.status == ProbeStatus::Fail
                    })
                });
                if blocking_fail {
                    prop_assert_eq!(s.health, StageHealth::Failing);
                    lowest_fail.get_or_insert(i);
                }
            }
            if let Some(lf) = lowest_fail {
                prop_assert_eq!(d.underlying_state, GateState::Closed);
                let b = stage_index(&p, d.blocking_stage.as_deref().unwrap());
                prop_assert!(b <= lf);
                prop_assert!(closes(d, b));
                prop_assert!((0..b).all(|i| !closes(d, i)));
            }
            if d.underlying_state == GateState::Closed {
                let b = stage_index(&p, d.blocking_stage.as_deref().unwrap());
                prop_assert!((0..b).all(|i| !closes(d, i)));
            }
            Ok(())
        })?;
    }

    /// UNKNOWN anywhere: never OPEN; CLOSED once a hold-UNKNOWN is past its grace.
    #[test]
    fn unknown_is_never_open(policy in funnel(), steps in steps()) {
        run(&policy, &steps, |_, d, _| {
            let unknown = d.stages.iter().any(|s| s.health == StageHealth::Unknown);
            if unknown {
                prop_assert_ne!(d.underlying_state, GateState::Open);
            }
            if d.reasons.iter().any(|r| r.code == ReasonCode::UnknownGraceExceeded) {
                prop_assert_eq!(d.underlying_state, GateState::Closed);
            }
            if d.stages.iter().all(|s| s.health != StageHealth::Healthy) {
                prop_assert_ne!(d.underlying_state, GateState::Open);
            }
            Ok(())
        })?;
    }

    /// An unreachable checker holds the gate for exactly its grace, then closes it.
    #[test]
    fn unknown_holds_within_its_grace_and_closes_after(
        mut policy in funnel(), which in 0usize..5, wait_s in 0u64..7_200
    ) {
        for s in &mut policy.stages {
            s.stale_after = HumanDuration::from_secs(30 * 86_400);
        }
        let k = which % policy.stages.len();
        policy.stages[k].on_unknown = OnUnknown::Hold;
        let mut e = Engine::new();
        e.upsert_funnel(policy.clone(), ts(0)).unwrap();
        for i in 0..policy.stages.len() {
            e.apply_report(passing(&policy, i, ts(0)), ts(0)).unwrap();
        }
        let mut down = passing(&policy, k, ts(10));
        down.results.clear();
        down.failure = Some(CheckFailure {
            code: "UNREACHABLE".into(),
            checker: "x".into(),
            message: "connection refused".into(),
        });
        let d = e.apply_report(down, ts(10)).unwrap().decision;
        prop_assert_eq!(d.stages[k].health, StageHealth::Unknown);
        let now = ts(10).add(Duration::from_secs(wait_s));
        let d = e.tick_funnel(FUNNEL, now).unwrap().decision;
        let grace = policy.stages[k].unknown_grace.get();
        let expected = if Duration::from_secs(wait_s) >= grace { GateState::Closed } else { GateState::Hold };
        prop_assert_eq!(d.state, expected);
        prop_assert_eq!(d.allowed_rollout_percent, if expected == GateState::Closed { 0 } else { policy.gate.pilot_percent });
    }

    /// An observe-only probe never changes the decision (only the full probe list shows it).
    #[test]
    fn an_observe_only_probe_never_changes_the_decision(
        policy in funnel(),
        steps in steps(),
        where_ in (0usize..5, 0usize..9),
        severity_adv in any::<bool>(),
        proof in any::<bool>(),
    ) {
        let mut with = policy.clone();
        let si = where_.0 % with.stages.len();
        let pi = where_.1.min(with.stages[si].probes.len());
        let mut obs = ProbeSpec::new("observed", "sql");
        obs.mode = ProbeMode::Observe;
        obs.proof = proof;
        obs.severity = if severity_adv { Severity::Advisory } else { Severity::Blocking };
        obs.on_unknown = Some(OnUnknown::Fail);
        with.stages[si].probes.insert(pi, obs);
        let mut a = Engine::new();
        let mut b = Engine::new();
        let da = a.upsert_funnel(policy.clone(), ts(0)).unwrap().decision;
        let db = b.upsert_funnel(with.clone(), ts(0)).unwrap().decision;
        prop_assert_eq!(da.compact(usize::MAX), db.compact(usize::MAX));
        let mut t = 0i64;
        for (dt, ev) in &steps {
            t += i64::from(*dt);
            // The same report goes to both: for `a`, a result for `observed` is an unknown id.
            let ev_b = match ev {
                Event::Report { stage, results, lag_s, extra } if stage % with.stages.len() == si => {
                    let at = ts(t).sub(Duration::from_secs(u64::from(*lag_s)));
                    let mut r = build_report(&policy, *stage, results, at, *extra);
                    if !results[7].dropped {
                        r.results.push(result("observed", &results[7], at));
                    }
                    let da = a.apply_report(r.clone(), ts(t)).unwrap().decision;
                    let db = b.apply_report(r, ts(t)).unwrap().decision;
                    prop_assert_eq!(da.compact(usize::MAX), db.compact(usize::MAX));
                    continue;
                }
                other => other.clone(),
            };
            let da = apply(&mut a, &policy, &ev_b, ts(t));
            let db = apply(&mut b, &with, &ev_b, ts(t));
            prop_assert_eq!(da.compact(usize::MAX), db.compact(usize::MAX));
        }
    }

    /// A stage above a stage that is not READY is never READY; READY is exactly "own health
    /// passes and everything below is READY".
    #[test]
    fn readiness_is_bottom_up(policy in funnel(), steps in steps()) {
        run(&policy, &steps, |_, d, _| {
            let mut below_ready = true;
            for s in &d.stages {
                let expected = match (s.health.passes(), below_ready) {
                    (true, true) => Readiness::Ready,
                    (true, false) => Readiness::Blocked,
                    (false, _) => Readiness::NotReady,
                };
                prop_assert_eq!(s.readiness, expected);
                if !below_ready {
                    prop_assert_ne!(s.readiness, Readiness::Ready);
                }
                below_ready &= s.readiness == Readiness::Ready;
            }
            Ok(())
        })?;
    }

    /// Everything HEALTHY (and every proof passing) opens the gate once both the soak time and
    /// the evaluation count are served, then ramps one step per dwell.
    #[test]
    fn all_healthy_opens_at_the_ramps_pace(mut policy in funnel(), events in 1usize..80) {
        for s in &mut policy.stages {
            s.stale_after = HumanDuration::from_secs(3_600);
        }
        let g = policy.gate.clone();
        let n = policy.stages.len();
        let mut e = Engine::new();
        e.upsert_funnel(policy.clone(), ts(0)).unwrap();
        for i in 0..n {
            e.apply_report(passing(&policy, i, ts(0)), ts(0)).unwrap();
        }
        // All-healthy evaluation k (1-based) happens at (k - 1) minutes.
        let open_after = g.open_after.get().as_secs() as i64;
        let by_time = (open_after + 59) / 60 * 60;
        let by_count = (i64::from(g.open_after_evaluations) - 1).max(0) * 60;
        let t_open = by_time.max(by_count);
        let dwell = g.ramp_dwell.get().as_secs() as i64;
        let last = g.ramp.len() - 1;
        for k in 1..=events as i64 {
            let t = k * 60;
            let d = e.apply_report(passing(&policy, k as usize % n, ts(t)), ts(t)).unwrap().decision;
            if t < t_open {
                prop_assert_eq!(d.state, GateState::Hold, "at {}s, opening at {}s", t, t_open);
                prop_assert_eq!(d.allowed_rollout_percent, g.pilot_percent);
            } else {
                let step = if dwell == 0 { last } else { (((t - t_open) / dwell) as usize).min(last) };
                prop_assert_eq!(d.state, GateState::Open, "at {}s, opening at {}s", t, t_open);
                prop_assert_eq!(d.allowed_rollout_percent, g.ramp[step]);
                prop_assert_eq!(d.since, ts(t_open));
                prop_assert_eq!(d.phase, Phase::Operate);
            }
        }
    }

    /// The allowed share never rises while anything fails (overrides aside).
    #[test]
    fn the_share_never_rises_while_anything_fails(policy in funnel(), steps in steps()) {
        let steps: Vec<_> = steps
            .into_iter()
            .filter(|(_, ev)| !matches!(ev, Event::Override { .. }))
            .collect();
        run(&policy, &steps, |prev, d, _| {
            if anything_fails(d) {
                prop_assert!(d.allowed_rollout_percent <= policy.gate.pilot_percent);
                // (Leaving the wait for first evidence is not a rise: nothing was allowed yet.)
                if let Some(prev) = prev.filter(|p| !awaiting(p)) {
                    prop_assert!(
                        d.allowed_rollout_percent <= prev.allowed_rollout_percent,
                        "{} -> {} while failing", prev.allowed_rollout_percent, d.allowed_rollout_percent
                    );
                }
            }
            match d.state {
                GateState::Closed => prop_assert_eq!(d.allowed_rollout_percent, 0),
                GateState::Hold if awaiting(d) => prop_assert_eq!(d.allowed_rollout_percent, 0),
                GateState::Hold => prop_assert_eq!(d.allowed_rollout_percent, policy.gate.pilot_percent),
                GateState::Open => prop_assert!(policy.gate.ramp.contains(&d.allowed_rollout_percent)),
            }
            Ok(())
        })?;
    }

    /// Build-phase remediation is strictly bottom-up, then FAIL > ERROR > NO_DATA > WARN, then
    /// by badness; operate-phase remediation is by badness first.
    #[test]
    fn remediation_is_ordered_by_phase(policy in funnel(), steps in steps()) {
        let p = policy.clone();
        run(&policy, &steps, |_, d, _| {
            // A CLOSED gate leads with what closes it; within each part, the phase's order.
            let closing: Vec<bool> = d.remediation.iter().map(|it| item_closes(&p, d, it)).collect();
            if d.underlying_state == GateState::Closed {
                prop_assert!(closing.windows(2).all(|w| w[0] || !w[1]), "{:?}", d.remediation);
                prop_assert!(closing.first().copied().unwrap_or(true), "{:?}", d.remediation);
            }
            for (w, c) in d.remediation.windows(2).zip(closing.windows(2)) {
                let (a, b) = (&w[0], &w[1]);
                if d.underlying_state == GateState::Closed && c[0] != c[1] {
                    continue;
                }
                let (sa, sb) = (stage_index(&p, &a.stage), stage_index(&p, &b.stage));
                let (ra, rb) = (a.status.remediation_rank(), b.status.remediation_rank());
                match d.phase {
                    Phase::Build => {
                        prop_assert!(sa <= sb, "{:?}", d.remediation);
                        if sa == sb {
                            prop_assert!(ra <= rb);
                            if ra == rb {
                                prop_assert!(a.badness >= b.badness);
                            }
                        }
                    }
                    Phase::Operate => {
                        prop_assert!(a.badness >= b.badness);
                    }
                }
            }
            for item in &d.remediation {
                prop_assert_ne!(item.status, ProbeStatus::Pass);
                if !item.probe.is_empty()
                    && let Some(ps) = spec(&p, stage_index(&p, &item.stage), &item.probe)
                {
                    prop_assert_eq!(ps.mode, ProbeMode::Enforce);
                }
            }
            let broken = d.remediation.iter().any(|i| i.badness > p.gate.especially_broken);
            let failing_or_unknown = d
                .stages
                .iter()
                .any(|s| matches!(s.health, StageHealth::Failing | StageHealth::Unknown));
            prop_assert_eq!(
                d.advice.is_some(),
                d.phase == Phase::Operate && !broken && !failing_or_unknown
            );
            Ok(())
        })?;
    }

    /// An override changes the state and the share, never the stage health, the underlying
    /// state, the remediation or the other reasons.
    #[test]
    fn an_override_never_changes_reported_stage_health(policy in funnel(), steps in steps()) {
        let mut plain = Engine::new();
        let mut forced = Engine::new();
        plain.upsert_funnel(policy.clone(), ts(0)).unwrap();
        forced.upsert_funnel(policy.clone(), ts(0)).unwrap();
        let mut t = 0i64;
        for (dt, ev) in &steps {
            t += i64::from(*dt);
            let now = ts(t);
            let dp = match ev {
                Event::Override { .. } | Event::ClearOverride => plain.tick_funnel(FUNNEL, now).unwrap().decision,
                other => apply(&mut plain, &policy, other, now),
            };
            let df = apply(&mut forced, &policy, ev, now);
            prop_assert_eq!(&dp.stages, &df.stages);
            prop_assert_eq!(dp.underlying_state, df.underlying_state);
            prop_assert_eq!(&dp.blocking_stage, &df.blocking_stage);
            prop_assert_eq!(&dp.remediation, &df.remediation);
            prop_assert_eq!(dp.phase, df.phase);
            let rest: Vec<_> = df.reasons.iter().filter(|r| r.code != ReasonCode::Overridden).cloned().collect();
            prop_assert_eq!(&dp.reasons, &rest);
            if let Some(o) = &df.override_ {
                prop_assert_eq!(df.state, o.state);
                prop_assert_eq!(df.reasons[0].code, ReasonCode::Overridden);
                let want = match o.state {
                    GateState::Open => o.percent.unwrap_or(policy.gate.ramp[0]),
                    _ => 0,
                };
                prop_assert_eq!(df.allowed_rollout_percent, want);
            } else {
                prop_assert_eq!(dp.state, df.state);
                prop_assert_eq!(dp.allowed_rollout_percent, df.allowed_rollout_percent);
            }
        }
    }

    /// `Outcome::changed` is exactly `materially_differs` from the previous decision, and
    /// `Engine::decision` returns the decision of the last event.
    #[test]
    fn changed_means_materially_different(policy in funnel(), steps in steps()) {
        let mut e = Engine::new();
        let mut prev = e.upsert_funnel(policy.clone(), ts(0)).unwrap().decision;
        let mut t = 0i64;
        for (dt, ev) in &steps {
            t += i64::from(*dt);
            let now = ts(t);
            let outcome = match ev {
                Event::Tick => {
                    let changed = e.tick(now);
                    prop_assert!(changed.len() <= 1);
                    let d = e.decision(FUNNEL).unwrap();
                    prop_assert_eq!(changed.len() == 1, prev.materially_differs(&d));
                    if let Some(o) = changed.first() {
                        prop_assert_eq!(&*o.decision, &*d);
                        prop_assert_eq!(o.previous_state, Some(prev.state));
                    }
                    prev = d;
                    continue;
                }
                _ => {
                    let o = apply_outcome(&mut e, &policy, ev, now);
                    prop_assert_eq!(&*o.decision, &*e.decision(FUNNEL).unwrap());
                    prop_assert_eq!(o.changed, prev.materially_differs(&o.decision));
                    prop_assert_eq!(o.previous_state, Some(prev.state));
                    o.decision
                }
            };
            prop_assert_eq!(outcome.evaluated_at, now);
            prev = outcome;
        }
    }

    /// The decision is a pure function of the inputs and time: replaying the same events gives
    /// identical decisions, and so does restoring a snapshot taken at any point.
    #[test]
    fn decisions_are_a_pure_function_of_events_and_time(
        policy in funnel(), steps in steps(), cut in 0usize..40
    ) {
        let mut a = Engine::new();
        let mut b = Engine::new();
        prop_assert_eq!(
            &*a.upsert_funnel(policy.clone(), ts(0)).unwrap().decision,
            &*b.upsert_funnel(policy.clone(), ts(0)).unwrap().decision
        );
        let mut restored: Option<Engine> = None;
        let mut t = 0i64;
        for (k, (dt, ev)) in steps.iter().enumerate() {
            t += i64::from(*dt);
            let da = apply(&mut a, &policy, ev, ts(t));
            let db = apply(&mut b, &policy, ev, ts(t));
            prop_assert_eq!(&*da, &*db);
            if let Some(r) = restored.as_mut() {
                let dr = apply(r, &policy, ev, ts(t));
                prop_assert_eq!(&*da, &*dr);
            }
            if k == cut % steps.len() {
                let snap = a.snapshot(FUNNEL).unwrap();
                // Exact through a JSON value (what a store keeps if it keeps floats exactly)...
                let value = serde_json::to_value(&snap).unwrap();
                let mut r = Engine::new();
                r.upsert_funnel(policy.clone(), ts(t)).unwrap();
                let dr = r.restore(serde_json::from_value(value).unwrap(), ts(t)).unwrap().decision;
                prop_assert_eq!(&*da, &*dr);
                // ...and materially identical through JSON text (without serde_json's
                // `float_roundtrip` feature a float may come back one ULP off).
                let json = serde_json::to_string(&snap).unwrap();
                let mut r2 = Engine::new();
                r2.upsert_funnel(policy.clone(), ts(t)).unwrap();
                let d2 = r2.restore(serde_json::from_str(&json).unwrap(), ts(t)).unwrap().decision;
                prop_assert!(!da.materially_differs(&d2));
                prop_assert_eq!(&da.stages.iter().map(|s| (s.health, s.readiness)).collect::<Vec<_>>(),
                    &d2.stages.iter().map(|s| (s.health, s.readiness)).collect::<Vec<_>>());
                restored = Some(r);
            }
        }
        // A full re-evaluation agrees with the incremental state.
        let now = ts(t + 1);
        let da = a.tick_funnel(FUNNEL, now).unwrap().decision;
        b.evaluate_all(now);
        prop_assert_eq!(&*da, &*b.decision(FUNNEL).unwrap());
    }

    /// Adding advisory or observe-only probes (any statuses) never changes a stage's health
    /// except between HEALTHY and DEGRADED, never its score, and never whether the gate is
    /// CLOSED.
    #[test]
    fn advisory_or_observe_probes_only_move_a_stage_between_healthy_and_degraded(
        policy in funnel(),
        steps in steps(),
        added in prop::collection::vec((0usize..5, 0usize..9, 0u8..3), 1..4),
    ) {
        let mut with = policy.clone();
        let mut extra_ids: Vec<(usize, String, usize)> = Vec::new();
        for (k, (si, pi, flavour)) in added.iter().enumerate() {
            let si = si % with.stages.len();
            let pi = (*pi).min(with.stages[si].probes.len());
            let id = format!("added-{k}");
            let mut spec = ProbeSpec::new(id.clone(), "sql");
            match flavour {
                0 => spec.severity = Severity::Advisory,
                1 => spec.mode = ProbeMode::Observe,
                _ => {
                    spec.mode = ProbeMode::Observe;
                    spec.severity = Severity::Advisory;
                }
            }
            spec.on_unknown = Some(OnUnknown::Fail);
            with.stages[si].probes.insert(pi, spec);
            extra_ids.push((si, id, k));
        }
        let mut a = Engine::new();
        let mut b = Engine::new();
        a.upsert_funnel(policy.clone(), ts(0)).unwrap();
        b.upsert_funnel(with.clone(), ts(0)).unwrap();
        let mut t = 0i64;
        for (dt, ev) in &steps {
            t += i64::from(*dt);
            let (da, db) = match ev {
                Event::Report { stage, results, lag_s, extra } => {
                    let at = ts(t).sub(Duration::from_secs(u64::from(*lag_s)));
                    let si = stage % policy.stages.len();
                    let r = build_report(&policy, *stage, results, at, *extra);
                    let mut rb = r.clone();
                    for (s2, id, k) in &extra_ids {
                        if *s2 == si {
                            rb.results.push(result(id, &results[k % 8], at));
                        }
                    }
                    (
                        a.apply_report(r, ts(t)).unwrap().decision,
                        b.apply_report(rb, ts(t)).unwrap().decision,
                    )
                }
                other => (apply(&mut a, &policy, other, ts(t)), apply(&mut b, &with, other, ts(t))),
            };
            for (sa, sb) in da.stages.iter().zip(&db.stages) {
                if sa.health != sb.health {
                    let ok = |h| matches!(h, StageHealth::Healthy | StageHealth::Degraded);
                    prop_assert!(ok(sa.health) && ok(sb.health), "{} -> {} ({})", sa.health.as_str(), sb.health.as_str(), sa.stage);
                }
                prop_assert_eq!(sa.score, sb.score);
            }
            prop_assert_eq!(
                da.underlying_state == GateState::Closed,
                db.underlying_state == GateState::Closed
            );
        }
    }

    /// Under the default policy (no `min_score`), warnings alone never close the gate: reports
    /// of PASS, WARN and SKIPPED only, every stage reporting, no overrides.
    #[test]
    fn warnings_alone_never_close_the_gate_under_the_default_policy(
        mut policy in funnel(),
        steps in steps(),
    ) {
        for s in &mut policy.stages {
            s.min_score = None;
            s.stale_after = HumanDuration::from_secs(30 * 86_400);
        }
        let mut e = Engine::new();
        e.upsert_funnel(policy.clone(), ts(0)).unwrap();
        for i in 0..policy.stages.len() {
            e.apply_report(passing(&policy, i, ts(0)), ts(0)).unwrap();
        }
        let mut t = 0i64;
        for (dt, ev) in &steps {
            t += i64::from(*dt);
            let ev = match ev {
                Event::Report { stage, results, lag_s, extra } => Event::Report {
                    stage: *stage,
                    results: results
                        .iter()
                        .map(|g| GenResult {
                            status: match g.status {
                                ProbeStatus::Pass | ProbeStatus::Skipped => g.status,
                                _ => ProbeStatus::Warn,
                            },
                            dropped: false,
                            ..g.clone()
                        })
                        .collect(),
                    lag_s: *lag_s,
                    extra: *extra,
                },
                Event::Tick | Event::Phase(_) | Event::ClearOverride => ev.clone(),
                Event::Unreachable { .. } | Event::Override { .. } => Event::Tick,
            };
            let d = apply(&mut e, &policy, &ev, ts(t));
            prop_assert_ne!(d.state, GateState::Closed, "{:?}", d.reasons);
            prop_assert!(d.stages.iter().all(|s| s.health != StageHealth::Failing));
            if d.state == GateState::Hold {
                prop_assert_eq!(d.allowed_rollout_percent, policy.gate.pilot_percent);
            }
        }
    }

    /// Until every stage has completed one evaluation (a report with results that the engine
    /// took), the allowed share is 0 and the decision says it awaits evidence (overrides aside).
    #[test]
    fn the_share_is_zero_until_every_stage_has_reported(policy in funnel(), steps in steps()) {
        let n = policy.stages.len();
        let mut e = Engine::new();
        let d = e.upsert_funnel(policy.clone(), ts(0)).unwrap().decision;
        prop_assert_eq!(d.allowed_rollout_percent, 0);
        prop_assert!(awaiting(&d));
        let mut evidenced = vec![false; n];
        let mut last_at: Vec<Option<Timestamp>> = vec![None; n];
        let mut t = 0i64;
        for (dt, ev) in &steps {
            t += i64::from(*dt);
            let now = ts(t);
            if matches!(ev, Event::Override { .. }) {
                continue;
            }
            match ev {
                Event::Report { stage, lag_s, .. } => {
                    let at = now.sub(Duration::from_secs(u64::from(*lag_s)));
                    let i = stage % n;
                    // A report older than the stored one is ignored.
                    if last_at[i].is_none_or(|l| at >= l) {
                        evidenced[i] = true;
                        last_at[i] = Some(at);
                    }
                }
                Event::Unreachable { stage } => {
                    let i = stage % n;
                    if last_at[i].is_none_or(|l| now >= l) {
                        last_at[i] = Some(now);
                    }
                }
                _ => {}
            }
            let d = apply(&mut e, &policy, ev, now);
            let all = evidenced.iter().all(|x| *x);
            prop_assert_eq!(awaiting(&d), !all);
            if !all {
                prop_assert_eq!(d.allowed_rollout_percent, 0);
                prop_assert_ne!(d.underlying_state, GateState::Open);
            }
        }
    }

    /// An override's share is never exceeded: a forced OPEN allows exactly its share (the first
    /// ramp step unless given), a forced CLOSED none, whatever the ramp underneath does.
    #[test]
    fn an_override_share_is_never_exceeded(policy in funnel(), steps in steps()) {
        let mut given: Option<(GateState, Option<u32>)> = None;
        let mut e = Engine::new();
        e.upsert_funnel(policy.clone(), ts(0)).unwrap();
        let mut t = 0i64;
        for (dt, ev) in &steps {
            t += i64::from(*dt);
            match ev {
                Event::Override { open, percent, .. } => {
                    given = Some((if *open { GateState::Open } else { GateState::Closed }, *percent));
                }
                Event::ClearOverride => given = None,
                _ => {}
            }
            let d = apply(&mut e, &policy, ev, ts(t));
            match &d.override_ {
                Some(o) => {
                    let (state, percent) = given.unwrap();
                    prop_assert_eq!(o.state, state);
                    let cap = match state {
                        GateState::Open => percent.unwrap_or(policy.gate.ramp[0]),
                        _ => 0,
                    };
                    prop_assert_eq!(o.percent.unwrap_or(0), cap);
                    prop_assert!(d.allowed_rollout_percent <= cap);
                    prop_assert_eq!(d.allowed_rollout_percent, cap);
                }
                None => given = None,
            }
        }
    }
}
