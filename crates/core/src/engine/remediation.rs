//! Remediation and phase: the order in which a decision lists what to fix, and the advice.
//!
//! Before the gate first opens a funnel is in `build` phase and remediation is strictly bottom-up
//! (lowest stage first, then FAIL, ERROR, NO_DATA, WARN, then badness). From the first OPEN on
//! (`operate` phase, kept across later closes until an operator sets `build` again) the most
//! broken metric comes first whatever its stage; when nothing is especially broken the advice is
//! to work on the top of the funnel.

use crate::decision::{GateState, Phase, RemediationItem, StageHealth};

use super::Funnel;
use super::snapshot::Memory;

/// The advice given in operate phase when no metric is especially broken.
pub const TOP_OF_FUNNEL_ADVICE: &str =
    "nothing is especially broken: work on the top of the funnel (grow new audiences)";

/// A remediation item with what ordering needs: its stage's position and whether it is part of
/// what closes the gate.
#[derive(Debug, Clone)]
pub(super) struct Ranked {
    pub(super) stage: usize,
    pub(super) closes: bool,
    pub(super) item: RemediationItem,
}

/// Order remediation items for the phase. What closes the gate always comes first (only items
/// of a CLOSED gate are marked so); then, in `build` phase, bottom-up, FAIL before ERROR before
/// NO_DATA before WARN, worst badness first; in `operate` phase worst badness first, then status,
/// then stage. The probe id breaks ties.
pub(super) fn order(items: &mut [Ranked], phase: Phase) {
    let rank = |r: &RemediationItem| r.status.remediation_rank();
    match phase {
        Phase::Build => items.sort_by(|a, b| {
            b.closes
                .cmp(&a.closes)
                .then(a.stage.cmp(&b.stage))
                .then(rank(&a.item).cmp(&rank(&b.item)))
                .then(b.item.badness.total_cmp(&a.item.badness))
                .then_with(|| a.item.probe.cmp(&b.item.probe))
        }),
        Phase::Operate => items.sort_by(|a, b| {
            b.closes
                .cmp(&a.closes)
                .then(b.item.badness.total_cmp(&a.item.badness))
                .then(rank(&a.item).cmp(&rank(&b.item)))
                .then(a.stage.cmp(&b.stage))
                .then_with(|| a.item.probe.cmp(&b.item.probe))
        }),
    }
}

/// The gate (as computed, not overridden) has just opened: the funnel enters `operate` phase.
pub(super) fn enter_phase(m: &mut Memory, previous: Option<GateState>, underlying: GateState) {
    if underlying == GateState::Open && previous != Some(GateState::Open) {
        m.phase = Phase::Operate;
    }
}

impl Funnel {
    /// Advise working on the top of the funnel: only in `operate` phase, when no stage is
    /// FAILING or UNKNOWN and no item's badness is above `especially_broken`.
    pub(super) fn advice(&self, max_badness: f64) -> bool {
        self.mem.phase == Phase::Operate
            && max_badness <= self.policy.gate.especially_broken
            && self
                .stages
                .iter()
                .all(|st| !matches!(st.now.health, StageHealth::Failing | StageHealth::Unknown))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testkit::*;
    use super::TOP_OF_FUNNEL_ADVICE;

    #[test]
    fn phase_is_build_until_the_first_open_then_operate_across_closes() {
        let p = three_stages();
        let mut e = engine(&p);
        let r = with(&p, "crm", at(0), vec![res("a", ProbeStatus::Fail)]);
        assert_eq!(
            e.apply_report(r, at(0)).unwrap().decision.phase,
            Phase::Build
        );
        let d = all_pass(&mut e, &p, at(1)).decision;
        assert_eq!((d.state, d.phase), (GateState::Open, Phase::Operate));
        let r = with(&p, "crm", at(2), vec![res("a", ProbeStatus::Fail)]);
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!((d.state, d.phase), (GateState::Closed, Phase::Operate));
        let o = e.set_phase("acme", Phase::Build, at(3)).unwrap();
        assert!(o.changed);
        assert_eq!(o.decision.phase, Phase::Build);
    }

    #[test]
    fn returning_to_build_while_open_lasts_until_the_gate_opens_again() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        let d = e.set_phase("acme", Phase::Build, at(1)).unwrap().decision;
        assert_eq!((d.state, d.phase), (GateState::Open, Phase::Build));
        assert_eq!(
            e.tick_funnel("acme", at(2)).unwrap().decision.phase,
            Phase::Build
        );
        let r = with(&p, "crm", at(3), vec![res("a", ProbeStatus::Warn)]);
        e.apply_report(r, at(3)).unwrap();
        let d = all_pass(&mut e, &p, at(4)).decision;
        assert_eq!((d.state, d.phase), (GateState::Open, Phase::Operate));
    }

    #[test]
    fn build_remediation_is_bottom_up_then_status_then_badness() {
        let mut p = three_stages();
        p.stages[0].probes[3].severity = Severity::Advisory;
        let mut e = engine(&p);
        // Nothing closes the gate (a WARN, a blocking ERROR within its grace, advisory FAILs):
        // it HOLDs, and remediation is strictly bottom-up.
        let crm = with(
            &p,
            "crm",
            at(0),
            vec![
                val("a", ProbeStatus::Warn, 85.0, 90.0),
                res("b", ProbeStatus::Error),
                val("d", ProbeStatus::Fail, 10.0, 70.0),
            ],
        );
        e.apply_report(crm, at(0)).unwrap();
        let automation = with(
            &p,
            "automation",
            at(0),
            vec![val("e", ProbeStatus::Warn, 0.0, 100.0)],
        );
        let d = e.apply_report(automation, at(0)).unwrap().decision;
        assert_eq!(d.state, GateState::Hold);
        let order: Vec<(&str, &str)> = d
            .remediation
            .iter()
            .map(|i| (i.stage.as_str(), i.probe.as_str()))
            .collect();
        // crm first (FAIL, then ERROR, then WARN), then automation's WARN (badness 1.0, the
        // worst of all), then esp never reported.
        assert_eq!(
            order,
            vec![
                ("crm", "d"),
                ("crm", "b"),
                ("crm", "a"),
                ("automation", "e"),
                ("esp", ""),
            ]
        );
        assert_eq!(
            d.remediation[0].message,
            "crm: probe `d` FAIL (advisory): 10.0 below fail threshold 70.0"
        );
        assert_eq!(d.advice, None);
    }

    #[test]
    fn a_closed_gate_leads_its_remediation_with_what_closes_it() {
        let mut p = three_stages();
        p.stages[0].probes[3].severity = Severity::Advisory;
        let mut e = engine(&p);
        let crm = with(
            &p,
            "crm",
            at(0),
            vec![
                val("a", ProbeStatus::Warn, 85.0, 90.0),
                res("b", ProbeStatus::Error),
                val("c", ProbeStatus::Fail, 60.0, 70.0),
                val("d", ProbeStatus::Fail, 10.0, 70.0),
            ],
        );
        e.apply_report(crm, at(0)).unwrap();
        let automation = with(
            &p,
            "automation",
            at(0),
            vec![val("e", ProbeStatus::Fail, 0.0, 100.0)],
        );
        let d = e.apply_report(automation, at(0)).unwrap().decision;
        assert_eq!(d.state, GateState::Closed);
        let order: Vec<(&str, &str)> = d
            .remediation
            .iter()
            .map(|i| (i.stage.as_str(), i.probe.as_str()))
            .collect();
        // The blocking FAILs close the gate: they come first (bottom-up in build phase), then
        // the rest bottom-up: crm's advisory FAIL (badness 0.857), ERROR, WARN; esp.
        assert_eq!(
            order,
            vec![
                ("crm", "c"),
                ("automation", "e"),
                ("crm", "d"),
                ("crm", "b"),
                ("crm", "a"),
                ("esp", ""),
            ]
        );
        // In operate phase too, although the advisory FAIL is worse than crm's blocking one.
        e.set_phase("acme", Phase::Operate, at(1)).unwrap();
        let d = e.decision("acme").unwrap();
        let head: Vec<&str> = d
            .remediation
            .iter()
            .take(2)
            .map(|i| i.probe.as_str())
            .collect();
        assert_eq!(head, vec!["e", "c"]);
        assert_eq!(
            d.advice, None,
            "no top-of-funnel advice while a stage fails"
        );
    }

    #[test]
    fn no_top_of_funnel_advice_while_a_stage_is_failing_or_unknown() {
        let mut p = three_stages();
        // Nothing is "especially broken" by badness, yet a stage FAILs or is UNKNOWN.
        p.gate.especially_broken = 10.0;
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        let r = with(
            &p,
            "crm",
            at(1),
            vec![val("a", ProbeStatus::Fail, 69.0, 70.0)],
        );
        let d = e.apply_report(r, at(1)).unwrap().decision;
        assert_eq!((d.phase, d.state), (Phase::Operate, GateState::Closed));
        assert_eq!(d.advice, None);
        assert_eq!(d.remediation[0].probe, "a");
        let r = with(&p, "crm", at(2), vec![res("a", ProbeStatus::Error)]);
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(health(&d)[0], StageHealth::Unknown);
        assert_eq!(d.advice, None);
        // A mere WARN: the advice is back.
        let r = with(
            &p,
            "crm",
            at(3),
            vec![val("a", ProbeStatus::Warn, 71.0, 70.0)],
        );
        let d = e.apply_report(r, at(3)).unwrap().decision;
        assert_eq!(health(&d)[0], StageHealth::Degraded);
        assert_eq!(d.advice.as_deref(), Some(TOP_OF_FUNNEL_ADVICE));
    }

    #[test]
    fn operate_remediation_puts_the_most_broken_first_and_advises_the_top_of_the_funnel() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        assert_eq!(e.decision("acme").unwrap().phase, Phase::Operate);
        let r = with(
            &p,
            "crm",
            at(1),
            vec![val("a", ProbeStatus::Warn, 85.0, 90.0)],
        );
        e.apply_report(r, at(1)).unwrap();
        let r = with(
            &p,
            "esp",
            at(1),
            vec![val("g", ProbeStatus::Warn, 3.0, 2.0)],
        );
        let d = e.apply_report(r, at(1)).unwrap().decision;
        let order: Vec<&str> = d.remediation.iter().map(|i| i.probe.as_str()).collect();
        assert_eq!(
            order,
            vec!["g", "a"],
            "esp's 0.5 beats crm's 0.056 whatever the stage"
        );
        // 0.5 is not above the default bar of 0.5: nothing especially broken.
        assert_eq!(d.advice.as_deref(), Some(TOP_OF_FUNNEL_ADVICE));
        let r = with(
            &p,
            "esp",
            at(2),
            vec![val("g", ProbeStatus::Warn, 3.2, 2.0)],
        );
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(d.advice, None);
        // All fixed: the list is empty and the advice stays.
        let d = all_pass(&mut e, &p, at(3)).decision;
        assert!(d.remediation.is_empty());
        assert_eq!(d.advice.as_deref(), Some(TOP_OF_FUNNEL_ADVICE));
    }
}
