//! Remediation and phase: the order in which a decision lists what to fix, and the advice.
//!
//! Before the gate first opens a funnel is in `build` phase and remediation is strictly bottom-up
//! (lowest stage first, then FAIL, ERROR, NO_DATA, WARN, then badness). From the first OPEN on
//! (`operate` phase, kept across later closes until an operator sets `build` again) the most
//! broken metric comes first whatever its stage; when nothing is especially broken the advice is
//! to work on the top of the funnel.

use crate::decision::{GateState, Phase, RemediationItem};

use super::Funnel;
use super::snapshot::Memory;

/// The advice given in operate phase when no metric is especially broken.
pub const TOP_OF_FUNNEL_ADVICE: &str =
    "nothing is especially broken: work on the top of the funnel (grow new audiences)";

/// Order remediation items (each with its stage position) for the phase.
pub(super) fn order(items: &mut [(usize, RemediationItem)], phase: Phase) {
    match phase {
        Phase::Build => items.sort_by(|(sa, a), (sb, b)| {
            sa.cmp(sb)
                .then(
                    a.status
                        .remediation_rank()
                        .cmp(&b.status.remediation_rank()),
                )
                .then(b.badness.total_cmp(&a.badness))
                .then_with(|| a.probe.cmp(&b.probe))
        }),
        Phase::Operate => items.sort_by(|(sa, a), (sb, b)| {
            b.badness
                .total_cmp(&a.badness)
                .then(
                    a.status
                        .remediation_rank()
                        .cmp(&b.status.remediation_rank()),
                )
                .then(sa.cmp(sb))
                .then_with(|| a.probe.cmp(&b.probe))
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
    pub(super) fn advice(&self, max_badness: f64) -> bool {
        self.mem.phase == Phase::Operate && max_badness <= self.policy.gate.especially_broken
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
        p.stages[0].min_score = 0.0;
        p.stages[1].min_score = 0.0;
        p.stages[2].min_score = 0.0;
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
        e.apply_report(automation, at(0)).unwrap();
        let d = e.decision("acme").unwrap();
        let order: Vec<(&str, &str)> = d
            .remediation
            .iter()
            .map(|i| (i.stage.as_str(), i.probe.as_str()))
            .collect();
        // crm first (FAILs by badness: d 0.857 > c 0.143, then ERROR, then WARN), then
        // automation's FAIL (badness 1.0, the worst of all), then esp never reported.
        assert_eq!(
            order,
            vec![
                ("crm", "d"),
                ("crm", "c"),
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
    fn operate_remediation_puts_the_most_broken_first_and_advises_the_top_of_the_funnel() {
        let mut p = three_stages();
        for s in &mut p.stages {
            s.min_score = 0.0;
        }
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
