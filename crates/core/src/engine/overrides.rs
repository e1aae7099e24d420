//! Overrides: an operator forces the gate OPEN or CLOSED until an expiry. The override is put
//! first in the reasons (`OVERRIDDEN`) and leaves everything else (underlying state, stage
//! summaries, remediation, hysteresis, phase) as computed.

use crate::decision::{GateState, Override};
use crate::policy::GatePolicy;
use crate::time::Timestamp;

use super::EngineError;
use super::snapshot::Memory;

/// Check that an override can be applied at `now`, and fill in the share a forced OPEN allows
/// when the operator gave none (the first ramp step).
pub(super) fn validate(
    mut ov: Override,
    now: Timestamp,
    gate: &GatePolicy,
) -> Result<Override, EngineError> {
    match (ov.state, ov.percent) {
        (GateState::Hold, _) => {
            return Err(EngineError::InvalidOverride(
                "an override forces OPEN or CLOSED, not HOLD".into(),
            ));
        }
        (GateState::Open, None) => ov.percent = Some(gate.ramp.first().copied().unwrap_or(100)),
        (GateState::Open, Some(p)) if !(1..=100).contains(&p) => {
            return Err(EngineError::InvalidOverride(format!(
                "percent {p} is not within 1..=100"
            )));
        }
        (GateState::Open, Some(_)) | (GateState::Closed, None | Some(0)) => {}
        (GateState::Closed, Some(p)) => {
            return Err(EngineError::InvalidOverride(format!(
                "a CLOSED override allows no share, yet percent {p} was given"
            )));
        }
    }
    if ov.state == GateState::Closed {
        ov.percent = None;
    }
    if ov.until <= now {
        return Err(EngineError::InvalidOverride(format!(
            "`until` {} is not after now {now}",
            ov.until
        )));
    }
    Ok(ov)
}

/// Drop the override once its `until` has come.
pub(super) fn expire(m: &mut Memory, now: Timestamp) {
    if m.override_.as_ref().is_some_and(|o| now >= o.until) {
        m.override_ = None;
    }
}

/// The effective state: the override's, else the computed one.
pub(super) fn effective_state(m: &Memory, underlying: GateState) -> GateState {
    m.override_.as_ref().map_or(underlying, |o| o.state)
}

/// The share an override forcing OPEN allows (`None` when no override is in force): its own,
/// else (an override stored before overrides carried a share) the first ramp step.
pub(super) fn open_share(m: &Memory, gate: &GatePolicy) -> Option<u32> {
    m.override_.as_ref().map(|o| {
        o.percent
            .unwrap_or_else(|| gate.ramp.first().copied().unwrap_or(100))
    })
}

/// The `OVERRIDDEN` reason's message.
pub(super) fn message(o: &Override, underlying: GateState) -> String {
    let share = match (o.state, o.percent) {
        (GateState::Open, Some(p)) => format!(" at {p}%"),
        _ => String::new(),
    };
    format!(
        "overridden to {}{share} by {} until {}: {} (the engine says {})",
        o.state,
        if o.actor.is_empty() {
            "an operator"
        } else {
            &o.actor
        },
        o.until,
        if o.reason.is_empty() {
            "no reason given"
        } else {
            &o.reason
        },
        underlying
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn an_override_forces_the_state_and_hides_nothing() {
        let p = three_stages();
        let mut e = engine(&p);
        let r = with(&p, "crm", at(0), vec![res("a", ProbeStatus::Fail)]);
        let before = e.apply_report(r, at(0)).unwrap().decision;
        let o = e
            .set_override("acme", ov(GateState::Open, mins(60)), at(0))
            .unwrap();
        assert!(o.changed);
        let d = o.decision;
        assert_eq!(
            (d.state, d.underlying_state),
            (GateState::Open, GateState::Closed)
        );
        // No share given: the first ramp step, shown in the override and its reason.
        assert_eq!(d.allowed_rollout_percent, 10);
        assert_eq!(d.override_.as_ref().and_then(|o| o.percent), Some(10));
        assert_eq!(d.reasons[0].code, ReasonCode::Overridden);
        assert_eq!(
            d.reasons[0].message,
            "overridden to OPEN at 10% by alice until 2024-05-01T13:00:00Z: black friday launch \
             (the engine says CLOSED)"
        );
        assert_eq!(&d.reasons[1..], &before.reasons[..]);
        assert_eq!(d.stages, before.stages);
        assert_eq!(d.blocking_stage.as_deref(), Some("crm"));
        assert_eq!(d.since, at(0));
        assert_eq!(
            d.phase,
            Phase::Build,
            "an override does not earn operate phase"
        );
        // CLOSED over a healthy funnel.
        let p2 = three_stages();
        let mut e2 = engine(&p2);
        all_pass(&mut e2, &p2, at(0));
        let d = e2
            .set_override("acme", ov(GateState::Closed, mins(60)), at(1))
            .unwrap()
            .decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Closed, 0));
        assert_eq!(d.underlying_state, GateState::Open);
    }

    #[test]
    fn overrides_must_force_open_or_closed_in_the_future() {
        let p = three_stages();
        let mut e = engine(&p);
        let err = e
            .set_override("acme", ov(GateState::Hold, mins(60)), at(1))
            .unwrap_err();
        assert!(matches!(err, EngineError::InvalidOverride(_)));
        let err = e
            .set_override("acme", ov(GateState::Open, at(1)), at(1))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid override: `until` 2024-05-01T12:00:01Z is not after now 2024-05-01T12:00:01Z"
        );
        assert!(
            e.set_override("nope", ov(GateState::Open, mins(9)), at(1))
                .is_err()
        );
    }

    #[test]
    fn an_override_expires_at_its_until_and_can_be_cleared() {
        let p = three_stages();
        let mut e = engine(&p);
        e.set_override("acme", ov(GateState::Open, mins(10)), at(0))
            .unwrap();
        assert!(e.tick(mins(9)).is_empty());
        let changed = e.tick(mins(10));
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].decision.state, GateState::Hold);
        assert_eq!(changed[0].decision.override_, None);
        assert_eq!(changed[0].previous_state, Some(GateState::Open));
        e.set_override("acme", ov(GateState::Closed, mins(60)), mins(11))
            .unwrap();
        let d = e.clear_override("acme", mins(12)).unwrap().decision;
        assert_eq!((d.state, d.override_.clone()), (GateState::Hold, None));
        assert_eq!(d.since, mins(12));
    }

    #[test]
    fn an_open_override_allows_the_share_it_gives_and_never_more() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        let mut o = ov(GateState::Open, mins(600));
        o.percent = Some(25);
        let d = e.set_override("acme", o, at(1)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Open, 25));
        assert_eq!(d.override_.as_ref().and_then(|o| o.percent), Some(25));
        // The ramp climbing underneath does not raise an override's share.
        for m in [61, 121, 181, 241] {
            let d = e.tick_funnel("acme", mins(m)).unwrap().decision;
            assert_eq!(d.allowed_rollout_percent, 25, "at minute {m}");
        }
        // Cleared: the computed ramp step again.
        let d = e.clear_override("acme", mins(242)).unwrap().decision;
        assert_eq!(d.allowed_rollout_percent, 100);
    }

    #[test]
    fn an_override_share_must_be_a_percent_and_only_with_open() {
        let p = three_stages();
        let mut e = engine(&p);
        for (state, percent, want) in [
            (GateState::Open, 0, "percent 0 is not within 1..=100"),
            (GateState::Open, 101, "percent 101 is not within 1..=100"),
            (
                GateState::Closed,
                5,
                "a CLOSED override allows no share, yet percent 5 was given",
            ),
        ] {
            let mut o = ov(state, mins(60));
            o.percent = Some(percent);
            let err = e.set_override("acme", o, at(1)).unwrap_err();
            assert_eq!(err, EngineError::InvalidOverride(want.into()));
        }
        // A CLOSED override with 0% is what it says.
        let mut o = ov(GateState::Closed, mins(60));
        o.percent = Some(0);
        let d = e.set_override("acme", o, at(1)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Closed, 0));
        assert_eq!(d.override_.as_ref().and_then(|o| o.percent), None);
    }
}
