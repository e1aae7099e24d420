//! Hysteresis and ramp: counting consecutive healthy and failing evaluations, the soak before
//! opening (`open_after`, `open_after_evaluations`), and the climb through the ramp's steps
//! (one step per `ramp_dwell` of continuous OPEN time, counted from the opening instant).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::decision::GateState;
use crate::policy::GatePolicy;
use crate::time::Timestamp;

use super::fmt::duration_ms;
use super::readiness::Assessment;
use super::snapshot::Memory;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RampMemory {
    pub(super) step: usize,
    /// When the current step began.
    pub(super) since: Timestamp,
}

/// Where the soak stands after an evaluation or tick.
#[derive(Debug, Clone, Copy)]
pub(super) struct Soak {
    /// Every stage HEALTHY for long enough and for enough evaluations.
    pub(super) served: bool,
    pub(super) healthy_for: Duration,
    /// Consecutive failing evaluations (at least 1 while something fails now).
    pub(super) failing_count: u32,
}

/// Count this decision into the streaks (only an evaluation increments them; anything not
/// HEALTHY restarts the healthy streak and time) and say whether the soak is served.
pub(super) fn count(
    m: &mut Memory,
    a: &Assessment,
    gate: &GatePolicy,
    now: Timestamp,
    evaluation: bool,
) -> Soak {
    if evaluation {
        m.failing_streak = if a.failing_now || a.immediate {
            m.failing_streak.saturating_add(1)
        } else {
            0
        };
        m.healthy_streak = if a.all_healthy {
            m.healthy_streak.saturating_add(1)
        } else {
            0
        };
    }
    if a.all_healthy {
        m.healthy_since.get_or_insert(now);
    } else {
        m.healthy_streak = 0;
        m.healthy_since = None;
    }
    let healthy_for = m.healthy_since.map_or(Duration::ZERO, |s| now.since(s));
    let served = a.all_healthy
        && m.healthy_streak >= gate.open_after_evaluations
        && healthy_for >= gate.open_after.get();
    let failing_count = if a.failing_now {
        m.failing_streak.max(1)
    } else {
        0
    };
    Soak {
        served,
        healthy_for,
        failing_count,
    }
}

/// Move up the ramp for the OPEN time served since the step began; anything short of OPEN
/// resets the ramp (re-opening starts from the first step).
pub(super) fn advance_ramp(
    ramp: &mut Option<RampMemory>,
    underlying: GateState,
    gate: &GatePolicy,
    now: Timestamp,
) {
    if underlying != GateState::Open {
        *ramp = None;
        return;
    }
    let last = gate.ramp.len().saturating_sub(1);
    let r = ramp.get_or_insert(RampMemory {
        step: 0,
        since: now,
    });
    r.step = r.step.min(last);
    if r.step < last {
        let dwell = duration_ms(gate.ramp_dwell.get());
        if dwell == 0 {
            r.step = last;
            r.since = now;
        } else {
            let elapsed = now.as_millis().saturating_sub(r.since.as_millis()).max(0);
            let k = usize::try_from(elapsed / dwell)
                .unwrap_or(usize::MAX)
                .min(last - r.step);
            r.step += k;
            r.since = Timestamp(r.since.as_millis().saturating_add(k as i64 * dwell));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn open_needs_soak_time_and_consecutive_healthy_evaluations() {
        let mut p = three_stages();
        p.gate.open_after = HumanDuration::from_secs(600);
        p.gate.open_after_evaluations = 3;
        let mut e = engine(&p);
        // Evaluations 1-2 leave esp unreported; the third is the first all-healthy one.
        let d = all_pass(&mut e, &p, mins(0)).decision;
        assert_eq!(d.state, GateState::Hold);
        assert_eq!(codes(&d), vec![ReasonCode::Soaking]);
        assert_eq!(
            d.reasons[0].message,
            "all stages healthy for 0s of 10m and 1 of 3 evaluations: soaking before opening"
        );
        assert_eq!(d.blocking_stage, None);
        e.apply_report(passing(&p, "crm", mins(1)), mins(1))
            .unwrap();
        // A non-healthy evaluation resets both the count and the clock.
        let r = with(&p, "esp", mins(2), vec![res("g", ProbeStatus::Warn)]);
        e.apply_report(r, mins(2)).unwrap();
        e.apply_report(passing(&p, "esp", mins(3)), mins(3))
            .unwrap();
        e.apply_report(passing(&p, "esp", mins(4)), mins(4))
            .unwrap();
        let d = e
            .apply_report(passing(&p, "esp", mins(5)), mins(5))
            .unwrap()
            .decision;
        assert_eq!(
            d.state,
            GateState::Hold,
            "3 evaluations, but only 2m of soak"
        );
        assert_eq!(
            e.tick_funnel("acme", mins(12)).unwrap().decision.state,
            GateState::Hold
        );
        let d = e.tick_funnel("acme", mins(13)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Open, 10));
        assert_eq!(codes(&d), vec![ReasonCode::Ramping]);
        assert_eq!(d.since, mins(13));
    }

    #[test]
    fn soak_time_alone_is_not_enough_without_evaluations() {
        let mut p = three_stages();
        p.gate.open_after = HumanDuration::from_secs(60);
        p.gate.open_after_evaluations = 2;
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        assert_eq!(
            e.tick_funnel("acme", mins(30)).unwrap().decision.state,
            GateState::Hold
        );
        let d = e
            .apply_report(passing(&p, "esp", mins(31)), mins(31))
            .unwrap()
            .decision;
        assert_eq!(d.state, GateState::Open);
    }

    #[test]
    fn ramp_moves_one_step_per_dwell_and_late_ticks_catch_up() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        let d = e.tick_funnel("acme", mins(59)).unwrap().decision;
        assert_eq!(d.allowed_rollout_percent, 10);
        assert_eq!(
            d.reasons[0].message,
            "ramping: 10% now, 25% after 1m more healthy time"
        );
        assert_eq!(
            (d.reasons[0].value, d.reasons[0].threshold),
            (Some(10.0), Some(25.0))
        );
        let o = e.tick_funnel("acme", mins(60)).unwrap();
        assert!(o.changed);
        assert_eq!(o.decision.allowed_rollout_percent, 25);
        // Nobody ticks for almost two hours: one more step at 120m, counted from the step
        // boundary, so the last step still comes at 180m.
        let d = e.tick_funnel("acme", mins(179)).unwrap().decision;
        assert_eq!(d.allowed_rollout_percent, 50);
        let d = e.tick_funnel("acme", mins(180)).unwrap().decision;
        assert_eq!(d.allowed_rollout_percent, 100);
        assert!(d.reasons.is_empty());
        assert_eq!(d.state, GateState::Open);
        assert_eq!(d.since, mins(0), "ramping does not change the state");
    }

    #[test]
    fn zero_dwell_opens_straight_to_the_last_step() {
        let mut p = three_stages();
        p.gate.ramp_dwell = HumanDuration::from_secs(0);
        let mut e = engine(&p);
        let d = all_pass(&mut e, &p, mins(0)).decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Open, 100));
    }

    #[test]
    fn a_hold_drops_to_pilot_and_reopening_restarts_the_ramp() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        e.tick_funnel("acme", mins(130)).unwrap();
        assert_eq!(e.decision("acme").unwrap().allowed_rollout_percent, 50);
        let r = with(&p, "crm", mins(131), vec![res("a", ProbeStatus::Warn)]);
        let d = e.apply_report(r, mins(131)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        let d = e
            .apply_report(passing(&p, "crm", mins(132)), mins(132))
            .unwrap()
            .decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Open, 10));
        let d = e.tick_funnel("acme", mins(192)).unwrap().decision;
        assert_eq!(d.allowed_rollout_percent, 25);
    }

    #[test]
    fn a_stale_gap_between_reports_restarts_the_soak_even_without_ticks() {
        let mut p = three_stages();
        p.stages[2].stale_after = HumanDuration::from_secs(600);
        p.gate.open_after = HumanDuration::from_secs(1800);
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        // esp's next report comes 20 minutes later: it was stale from 10m to 20m, and nobody
        // ticked. Without noticing, the soak would be served at 30m.
        e.apply_report(passing(&p, "crm", mins(5)), mins(5))
            .unwrap();
        for t in [20, 29, 38, 47] {
            let d = e
                .apply_report(passing(&p, "esp", mins(t)), mins(t))
                .unwrap()
                .decision;
            assert_eq!(d.state, GateState::Hold, "at {t}m");
        }
        let d = e
            .apply_report(passing(&p, "esp", mins(50)), mins(50))
            .unwrap()
            .decision;
        assert_eq!(d.state, GateState::Open);
    }
}
