//! The decision and its share: the gate's state from what the stages say (CLOSED, HOLD, OPEN),
//! the stage that blocks it, and the rollout share each state allows.

use std::time::Duration;

use crate::decision::GateState;
use crate::policy::GatePolicy;

use super::hysteresis::{RampMemory, Soak};
use super::readiness::Assessment;

/// The funnel-level outcome of `Funnel::advance`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Verdict {
    pub(super) underlying: GateState,
    pub(super) state: GateState,
    pub(super) percent: u32,
    pub(super) blocking_stage: Option<usize>,
    pub(super) all_healthy: bool,
    /// Lowest stage closing the gate subject to `close_after`, if any.
    pub(super) lowest_failing: Option<usize>,
    pub(super) failing_count: u32,
    pub(super) soak_served: bool,
    pub(super) healthy_for: Duration,
    /// CLOSED only because a stage is UNKNOWN while the gate was already CLOSED.
    pub(super) held_closed: bool,
    /// Stages that have not completed one evaluation yet.
    pub(super) awaiting_evidence: u32,
}

/// The computed (pre-override) state, and whether it is CLOSED only because a stage is UNKNOWN
/// while the gate was already CLOSED.
pub(super) fn underlying_state(
    previous: Option<GateState>,
    a: &Assessment,
    soak: &Soak,
    gate: &GatePolicy,
) -> (GateState, bool) {
    let was_closed = previous == Some(GateState::Closed);
    // UNKNOWN holds the gate where it is: it never lifts a CLOSED gate to the pilot share.
    let held_closed = was_closed && !a.immediate && !a.failing_now && a.lowest_unknown.is_some();
    let closed = a.immediate
        || (a.failing_now && (was_closed || soak.failing_count >= gate.close_after))
        || held_closed;
    let underlying = if closed {
        GateState::Closed
    } else if a.failing_now || !a.all_healthy || a.proof_pending || !soak.served {
        GateState::Hold
    } else {
        GateState::Open
    };
    (underlying, held_closed)
}

/// The share the effective state allows: CLOSED 0, HOLD the pilot share (0 while the gate waits
/// for its first evidence: it is not piloting yet), OPEN the ramp's current step (an override's
/// own share when one forces OPEN).
pub(super) fn share(
    state: GateState,
    awaiting_evidence: bool,
    override_share: Option<u32>,
    ramp: Option<RampMemory>,
    gate: &GatePolicy,
) -> u32 {
    match (state, override_share) {
        (GateState::Closed, _) => 0,
        (GateState::Hold, _) if awaiting_evidence => 0,
        (GateState::Hold, _) => gate.pilot_percent,
        (GateState::Open, Some(p)) => p,
        (GateState::Open, None) => {
            let step = ramp.map_or(0, |r| r.step);
            gate.ramp.get(step).copied().unwrap_or(100)
        }
    }
}

/// The stage a decision names as blocking: the lowest closing stage of a CLOSED gate (else the
/// lowest UNKNOWN one), the lowest stage not HEALTHY of a HOLD (else the lowest pending proof).
pub(super) fn blocking_stage(underlying: GateState, a: &Assessment) -> Option<usize> {
    match underlying {
        GateState::Closed => a.lowest_closing.or(a.lowest_unknown),
        GateState::Hold => a.lowest_not_healthy.or(a.lowest_proof),
        GateState::Open => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn close_after_holds_before_closing_then_stays_closed_while_failing() {
        let mut p = three_stages();
        p.gate.close_after = 3;
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        assert_eq!(e.decision("acme").unwrap().state, GateState::Open);
        let fail = |t| with(&p, "crm", at(t), vec![res("a", ProbeStatus::Fail)]);
        let d = e.apply_report(fail(1), at(1)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        assert_eq!(
            codes(&d),
            vec![ReasonCode::StageFailing, ReasonCode::Closing]
        );
        assert_eq!(
            d.reasons[1].message,
            "crm: failing for 1 of 3 evaluations: holding at the pilot share before closing"
        );
        assert_eq!(
            e.apply_report(fail(2), at(2)).unwrap().decision.state,
            GateState::Hold
        );
        assert_eq!(
            e.apply_report(fail(3), at(3)).unwrap().decision.state,
            GateState::Closed
        );
        // A report of another stage is an evaluation too; still failing, still closed.
        let d = e
            .apply_report(passing(&p, "esp", at(4)), at(4))
            .unwrap()
            .decision;
        assert_eq!(d.state, GateState::Closed);
        // A healthy evaluation resets the count: the next failure holds again.
        e.apply_report(passing(&p, "crm", at(5)), at(5)).unwrap();
        assert_eq!(
            e.apply_report(fail(6), at(6)).unwrap().decision.state,
            GateState::Hold
        );
    }

    #[test]
    fn once_closed_the_gate_stays_closed_while_anything_fails() {
        let mut p = three_stages();
        p.gate.close_after = 3;
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        // crm goes UNKNOWN and stays so past its grace: closed at once (time-driven).
        let r = with(&p, "crm", mins(1), vec![res("a", ProbeStatus::Error)]);
        e.apply_report(r, mins(1)).unwrap();
        assert_eq!(
            e.tick_funnel("acme", mins(17)).unwrap().decision.state,
            GateState::Closed
        );
        // Now it reports a FAIL: one failing evaluation of three, yet the gate stays closed.
        let r = with(&p, "crm", mins(18), vec![res("a", ProbeStatus::Fail)]);
        let d = e.apply_report(r, mins(18)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Closed, 0));
    }

    #[test]
    fn unknown_never_lifts_a_closed_gate_to_the_pilot_share() {
        let mut p = three_stages();
        p.stages[0].stale_after = HumanDuration::from_secs(600);
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        let r = with(&p, "crm", mins(1), vec![res("a", ProbeStatus::Fail)]);
        assert_eq!(
            e.apply_report(r, mins(1)).unwrap().decision.state,
            GateState::Closed
        );
        // crm's failing report goes stale: UNKNOWN within its grace, yet the gate stays closed.
        let d = e.tick_funnel("acme", mins(12)).unwrap().decision;
        assert_eq!(health(&d)[0], StageHealth::Unknown);
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Closed, 0));
        assert_eq!(d.blocking_stage.as_deref(), Some("crm"));
        assert_eq!(codes(&d), vec![ReasonCode::Stale]);
        assert!(
            d.reasons[0]
                .message
                .ends_with("the gate stays closed until this is known again")
        );
        // Unreachable after that: still closed. A healthy report is evidence: the gate leaves.
        let mut down = report("crm", vec![], mins(13));
        down.failure = Some(CheckFailure {
            code: "UNREACHABLE".into(),
            checker: "crm".into(),
            message: "connection refused".into(),
        });
        assert_eq!(
            e.apply_report(down, mins(13)).unwrap().decision.state,
            GateState::Closed
        );
        let d = e
            .apply_report(passing(&p, "crm", mins(14)), mins(14))
            .unwrap()
            .decision;
        assert_eq!(d.state, GateState::Open);
        // From HOLD or OPEN, UNKNOWN holds at the pilot share as usual.
        let r = with(&p, "crm", mins(15), vec![res("a", ProbeStatus::Error)]);
        assert_eq!(
            e.apply_report(r, mins(15)).unwrap().decision.state,
            GateState::Hold
        );
    }

    #[test]
    fn a_failure_while_open_drops_to_closed_at_once() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        e.tick_funnel("acme", mins(130)).unwrap();
        assert_eq!(e.decision("acme").unwrap().allowed_rollout_percent, 50);
        let r = with(&p, "esp", mins(201), vec![res("g", ProbeStatus::Fail)]);
        let o = e.apply_report(r, mins(201)).unwrap();
        assert_eq!(o.previous_state, Some(GateState::Open));
        assert_eq!(
            (o.decision.state, o.decision.allowed_rollout_percent),
            (GateState::Closed, 0)
        );
        assert_eq!(o.decision.since, mins(201));
    }
}
