//! Overrides: an operator forces the gate OPEN or CLOSED until an expiry. The override is put
//! first in the reasons (`OVERRIDDEN`) and leaves everything else (underlying state, stage
//! summaries, remediation, hysteresis, phase) as computed.

use crate::decision::{GateState, Override};
use crate::policy::GatePolicy;
use crate::time::Timestamp;

use super::EngineError;
use super::snapshot::Memory;

/// Check that an override can be applied at `now`.
pub(super) fn validate(ov: &Override, now: Timestamp) -> Result<(), EngineError> {
    if ov.state == GateState::Hold {
        return Err(EngineError::InvalidOverride(
            "an override forces OPEN or CLOSED, not HOLD".into(),
        ));
    }
    if ov.until <= now {
        return Err(EngineError::InvalidOverride(format!(
            "`until` {} is not after now {now}",
            ov.until
        )));
    }
    Ok(())
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

/// The share an override forcing OPEN allows (`None` when no override is in force).
pub(super) fn open_share(m: &Memory, gate: &GatePolicy) -> Option<u32> {
    m.override_
        .as_ref()
        .map(|_| gate.ramp.last().copied().unwrap_or(100))
}

/// The `OVERRIDDEN` reason's message.
pub(super) fn message(o: &Override, underlying: GateState) -> String {
    format!(
        "overridden to {} by {} until {}: {} (the engine says {})",
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
        assert_eq!(d.allowed_rollout_percent, 100);
        assert_eq!(d.reasons[0].code, ReasonCode::Overridden);
        assert_eq!(
            d.reasons[0].message,
            "overridden to OPEN by alice until 2024-05-01T13:00:00Z: black friday launch \
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
}
