//! Where each stage stands at an instant: missing data (not yet evaluated, unreachable, stale,
//! a blocking probe that could not measure), its UNKNOWN episode and grace, whether it holds or
//! closes the gate, and bottom-up readiness (a stage is READY only when it passes and every
//! stage below it is READY).

use std::time::Duration;

use crate::decision::{Readiness, StageHealth};
use crate::policy::OnUnknown;
use crate::time::Timestamp;

use super::health::StageState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// Health comes from a fresh report's content.
    Content,
    NotYetEvaluated,
    Unreachable,
    Stale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closing {
    /// Does not hold the gate.
    No,
    /// Holds the gate (UNKNOWN within grace, DEGRADED).
    Holds,
    /// Closes the gate after `close_after` failing evaluations.
    Hysteresis,
    /// Closes the gate at once.
    Immediate,
}

/// A stage as of the last decision.
#[derive(Debug, Clone, Copy)]
pub(super) struct StageNow {
    pub(super) health: StageHealth,
    pub(super) readiness: Readiness,
    pub(super) cause: Cause,
    pub(super) on_unknown: OnUnknown,
    pub(super) closing: Closing,
    pub(super) unknown_for: Duration,
    pub(super) past_grace: bool,
    pub(super) age: Duration,
    pub(super) proof_pending: bool,
}

impl Default for StageNow {
    fn default() -> Self {
        StageNow {
            health: StageHealth::Unknown,
            readiness: Readiness::NotReady,
            cause: Cause::NotYetEvaluated,
            on_unknown: OnUnknown::Hold,
            closing: Closing::Holds,
            unknown_for: Duration::ZERO,
            past_grace: false,
            age: Duration::ZERO,
            proof_pending: false,
        }
    }
}

/// What the stages say together at an instant: the inputs of the gate's decision.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Assessment {
    /// Every stage is HEALTHY.
    pub(super) all_healthy: bool,
    /// A stage closes the gate subject to `close_after`.
    pub(super) failing_now: bool,
    /// A stage closes the gate at once (past its grace, or stale with `on_unknown = fail`).
    pub(super) immediate: bool,
    /// An enforced conversion proof has not passed.
    pub(super) proof_pending: bool,
    pub(super) lowest_closing: Option<usize>,
    /// Lowest stage closing the gate subject to `close_after`.
    pub(super) lowest_failing: Option<usize>,
    pub(super) lowest_not_healthy: Option<usize>,
    pub(super) lowest_unknown: Option<usize>,
    pub(super) lowest_proof: Option<usize>,
    /// Stages that have not completed one evaluation yet (the gate waits for its first evidence).
    pub(super) awaiting_evidence: u32,
}

/// Classify every stage at `now` (updating its UNKNOWN episode and [`StageNow`]), bottom-up.
pub(super) fn assess(stages: &mut [StageState], now: Timestamp) -> Assessment {
    let mut a = Assessment {
        all_healthy: true,
        ..Assessment::default()
    };
    let mut below_ready = true;
    for (i, st) in stages.iter_mut().enumerate() {
        let mut sn = classify(st, now);
        if sn.health == StageHealth::Unknown {
            let since = *st.unknown_since.get_or_insert(sn_onset(st, now));
            sn.unknown_for = now.since(since);
            sn.past_grace = sn.on_unknown == OnUnknown::Hold && sn.unknown_for >= st.unknown_grace;
            sn.closing = match (sn.on_unknown, sn.cause) {
                (OnUnknown::Fail, Cause::Stale) => Closing::Immediate,
                (OnUnknown::Fail, _) => Closing::Hysteresis,
                (OnUnknown::Hold, _) if sn.past_grace => Closing::Immediate,
                (OnUnknown::Hold, _) => Closing::Holds,
            };
        } else {
            st.unknown_since = None;
            sn.closing = match sn.health {
                StageHealth::Failing => Closing::Hysteresis,
                StageHealth::Degraded => Closing::Holds,
                _ => Closing::No,
            };
        }
        sn.readiness = readiness(sn.health, below_ready);
        below_ready &= sn.readiness == Readiness::Ready;
        sn.proof_pending =
            st.has_proof && (sn.cause != Cause::Content || st.eval.tally.proof_pending);
        if sn.proof_pending {
            a.proof_pending = true;
            a.lowest_proof.get_or_insert(i);
        }
        if sn.health != StageHealth::Healthy {
            a.all_healthy = false;
            a.lowest_not_healthy.get_or_insert(i);
        }
        if sn.health == StageHealth::Unknown {
            a.lowest_unknown.get_or_insert(i);
        }
        if !st.evidenced {
            a.awaiting_evidence += 1;
        }
        match sn.closing {
            Closing::Hysteresis => {
                a.failing_now = true;
                a.lowest_failing.get_or_insert(i);
                a.lowest_closing.get_or_insert(i);
            }
            Closing::Immediate => {
                a.immediate = true;
                a.lowest_closing.get_or_insert(i);
            }
            Closing::Holds | Closing::No => {}
        }
        st.now = sn;
    }
    a
}

/// Bottom-up readiness of a stage of this health, given whether every stage below is READY.
pub(super) fn readiness(health: StageHealth, below_ready: bool) -> Readiness {
    match (health.passes(), below_ready) {
        (true, true) => Readiness::Ready,
        (true, false) => Readiness::Blocked,
        (false, _) => Readiness::NotReady,
    }
}

/// Classify a stage at `now` (health, cause, effective `on_unknown`; closing is set later).
pub(super) fn classify(st: &StageState, now: Timestamp) -> StageNow {
    let mut sn = StageNow {
        on_unknown: st.on_unknown,
        ..StageNow::default()
    };
    match &st.report {
        None => {
            // Never reported: always holds, whatever `on_unknown` says (nothing went missing).
            sn.cause = Cause::NotYetEvaluated;
            sn.on_unknown = OnUnknown::Hold;
        }
        Some(r) if r.failure.is_some() => sn.cause = Cause::Unreachable,
        Some(r) => {
            sn.age = now.since(r.checked_at);
            if sn.age > st.stale_after {
                sn.cause = Cause::Stale;
            } else {
                sn.cause = Cause::Content;
                sn.health = st.eval.health;
                if sn.health == StageHealth::Unknown {
                    // The effective policy of the probes that made it UNKNOWN: `fail` if any.
                    sn.on_unknown = if st.eval.tally.unknown_fail {
                        OnUnknown::Fail
                    } else {
                        OnUnknown::Hold
                    };
                }
            }
        }
    }
    sn
}

/// When the current UNKNOWN episode of a stage began, if it is only being noticed now.
pub(super) fn sn_onset(st: &StageState, now: Timestamp) -> Timestamp {
    match &st.report {
        Some(r) if r.failure.is_none() => {
            let stale_at = r
                .checked_at
                .add(st.stale_after)
                .add(Duration::from_millis(1));
            if now.since(r.checked_at) > st.stale_after {
                stale_at.min(now)
            } else {
                now
            }
        }
        _ => now,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn stale_report_is_unknown_and_its_grace_counts_from_when_it_went_stale() {
        let mut p = three_stages();
        p.stages[2].stale_after = HumanDuration::from_secs(600);
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        assert_eq!(
            e.tick_funnel("acme", at(600)).unwrap().decision.state,
            GateState::Open
        );
        let d = e.tick_funnel("acme", at(601)).unwrap().decision;
        assert_eq!(health(&d)[2], StageHealth::Unknown);
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        assert_eq!(codes(&d), vec![ReasonCode::Stale]);
        assert_eq!(
            d.reasons[0].message,
            "esp: last report is 10m1s old, stale after 10m"
        );
        // Nobody ticked in between: the grace (15m) still counts from 10m on.
        let d = e.tick_funnel("acme", at(600 + 15 * 60)).unwrap().decision;
        assert_eq!(d.state, GateState::Hold);
        let d = e.tick_funnel("acme", at(601 + 15 * 60)).unwrap().decision;
        assert_eq!(d.state, GateState::Closed);
        assert_eq!(
            codes(&d),
            vec![ReasonCode::Stale, ReasonCode::UnknownGraceExceeded]
        );
        assert_eq!(d.blocking_stage.as_deref(), Some("esp"));
    }

    #[test]
    fn unknown_holds_within_grace_and_closes_past_it() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        let r = with(&p, "crm", mins(1), vec![res("a", ProbeStatus::Error)]);
        assert_eq!(
            e.apply_report(r, mins(1)).unwrap().decision.state,
            GateState::Hold
        );
        // The episode started at 1m; further reports keep it going.
        let r = with(&p, "crm", mins(10), vec![res("a", ProbeStatus::Error)]);
        let d = e.apply_report(r, mins(10)).unwrap().decision;
        assert_eq!(d.state, GateState::Hold);
        assert!(
            d.stages[0]
                .summary
                .contains("unknown for 9m of its 15m grace"),
            "{}",
            d.stages[0].summary
        );
        let d = e.tick_funnel("acme", mins(16)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Closed, 0));
        assert_eq!(
            codes(&d),
            vec![ReasonCode::ProbeError, ReasonCode::UnknownGraceExceeded]
        );
        assert_eq!(
            d.reasons[1].message,
            "crm: unknown for 15m, longer than its 15m grace: the gate closes"
        );
        // Healthy again: out of CLOSED at once, but it has to soak again (no straight OPEN? the
        // fast gate opens on one healthy evaluation).
        let d = e
            .apply_report(passing(&p, "crm", mins(17)), mins(17))
            .unwrap()
            .decision;
        assert_eq!(d.state, GateState::Open);
        assert_eq!(d.allowed_rollout_percent, 10);
    }

    #[test]
    fn a_stage_that_never_reports_closes_the_gate_after_its_grace() {
        let p = three_stages();
        let mut e = engine(&p);
        e.apply_report(passing(&p, "crm", mins(1)), mins(1))
            .unwrap();
        e.apply_report(passing(&p, "automation", mins(1)), mins(1))
            .unwrap();
        assert_eq!(
            e.tick_funnel("acme", mins(14)).unwrap().decision.state,
            GateState::Hold
        );
        let d = e.tick_funnel("acme", mins(15)).unwrap().decision;
        assert_eq!(d.state, GateState::Closed);
        assert_eq!(
            codes(&d),
            vec![
                ReasonCode::AwaitingEvidence,
                ReasonCode::NotYetEvaluated,
                ReasonCode::UnknownGraceExceeded
            ]
        );
        assert_eq!(d.blocking_stage.as_deref(), Some("esp"));
        assert_eq!(d.allowed_rollout_percent, 0);
    }

    #[test]
    fn never_reported_stage_holds_even_with_on_unknown_fail() {
        let mut p = three_stages();
        p.stages[0].on_unknown = OnUnknown::Fail;
        let d = engine(&p).decision("acme").unwrap();
        assert_eq!(d.state, GateState::Hold);
        assert_eq!(d.stages[0].on_unknown, OnUnknown::Hold);
    }

    #[test]
    fn on_unknown_fail_closes_a_stale_stage_at_once() {
        let mut p = three_stages();
        p.stages[1].on_unknown = OnUnknown::Fail;
        p.stages[1].stale_after = HumanDuration::from_secs(300);
        p.gate.close_after = 3;
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        let d = e.tick_funnel("acme", at(301)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Closed, 0));
        assert_eq!(d.blocking_stage.as_deref(), Some("automation"));
        assert_eq!(d.stages[1].on_unknown, OnUnknown::Fail);
        assert_eq!(d.stages[1].health, StageHealth::Unknown);
        assert!(
            d.reasons[0]
                .message
                .ends_with("(on_unknown = fail: counts as failing)")
        );
    }

    #[test]
    fn probe_on_unknown_overrides_the_stage_and_is_echoed() {
        let mut p = three_stages();
        p.stages[0].probes[1].on_unknown = Some(OnUnknown::Fail);
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        // `a` follows the stage (hold).
        let r = with(&p, "crm", at(1), vec![res("a", ProbeStatus::NoData)]);
        let d = e.apply_report(r, at(1)).unwrap().decision;
        assert_eq!(
            (d.state, d.stages[0].on_unknown),
            (GateState::Hold, OnUnknown::Hold)
        );
        // `b` says fail.
        let r = with(&p, "crm", at(2), vec![res("b", ProbeStatus::NoData)]);
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(
            (d.state, d.stages[0].on_unknown),
            (GateState::Closed, OnUnknown::Fail)
        );
        assert_eq!(d.stages[0].health, StageHealth::Unknown);
        assert_eq!(d.blocking_stage.as_deref(), Some("crm"));
        // And the reverse: a stage that fails on unknown, a probe that holds.
        let mut p = three_stages();
        p.stages[0].on_unknown = OnUnknown::Fail;
        p.stages[0].probes[0].on_unknown = Some(OnUnknown::Hold);
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        let r = with(&p, "crm", at(1), vec![res("a", ProbeStatus::Error)]);
        let d = e.apply_report(r, at(1)).unwrap().decision;
        assert_eq!(
            (d.state, d.stages[0].on_unknown),
            (GateState::Hold, OnUnknown::Hold)
        );
    }

    #[test]
    fn readiness_is_bottom_up() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        let d = e.decision("acme").unwrap();
        assert_eq!(readiness(&d), vec![Readiness::Ready; 3]);
        let r = with(&p, "automation", at(1), vec![res("e", ProbeStatus::Fail)]);
        let d = e.apply_report(r, at(1)).unwrap().decision;
        assert_eq!(
            health(&d),
            vec![
                StageHealth::Healthy,
                StageHealth::Failing,
                StageHealth::Healthy
            ]
        );
        assert_eq!(
            readiness(&d),
            vec![Readiness::Ready, Readiness::NotReady, Readiness::Blocked]
        );
        // A DEGRADED stage passes: it is READY and does not block the one above.
        let r = with(&p, "automation", at(2), vec![res("e", ProbeStatus::Pass)]);
        e.apply_report(r, at(2)).unwrap();
        let r = with(&p, "crm", at(2), vec![res("a", ProbeStatus::Warn)]);
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(readiness(&d), vec![Readiness::Ready; 3]);
        assert_eq!(d.state, GateState::Hold);
    }
}
