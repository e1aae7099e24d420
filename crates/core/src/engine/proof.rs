//! Conversion proof: probes marked `proof` never count toward their stage's health; until each
//! PASSes the gate caps at HOLD with the pilot share (`PROOF_PENDING`). This module says what a
//! pending proof contributes to a decision.

use crate::decision::ReasonCode;
use crate::model::ProbeStatus;
use crate::policy::StagePolicy;

use super::describe::{Sink, item, probe_message, result_badness};
use super::health::StageState;
use super::key::ProbeRef;
use super::readiness::Cause;

/// A stage's pending conversion proofs: reasons and remediation items.
pub(super) fn proof_reasons<S: Sink>(sp: &StagePolicy, st: &StageState, i: usize, sink: &mut S) {
    let stage = sp.name.as_str();
    let results = st
        .report
        .as_ref()
        .filter(|_| st.now.cause == Cause::Content)
        .map(|r| &r.results);
    for (j, (m, spec)) in st.probes.iter().zip(&sp.probes).enumerate() {
        if !m.proof() {
            continue;
        }
        match results.and_then(|rs| rs.get(j)) {
            Some(r) if r.status == ProbeStatus::Pass => {}
            Some(r) => {
                let message = || probe_message(stage, "conversion proof", spec, r, false, "");
                let badness = result_badness(r);
                sink.item(i, badness, false, || {
                    item(
                        sp,
                        &spec.id,
                        r.status,
                        badness,
                        message(),
                        r.value,
                        r.threshold,
                    )
                });
                sink.reason(
                    ReasonCode::ProofPending,
                    Some(i),
                    ProbeRef::Probe(j),
                    r.value,
                    r.threshold,
                    || format!("{}: conversion not yet proven", message()),
                );
            }
            None => sink.reason(
                ReasonCode::ProofPending,
                Some(i),
                ProbeRef::Probe(j),
                None,
                None,
                || {
                    format!(
                        "{stage}: conversion proof `{}` has no current result: conversion not \
                         yet proven",
                        spec.id
                    )
                },
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn proof_pending_caps_at_hold_until_the_proof_passes() {
        let p = with_proof();
        let mut e = engine(&p);
        let r = with(
            &p,
            "crm",
            at(0),
            vec![val("lead-to-customer", ProbeStatus::Fail, 1.2, 2.0)],
        );
        e.apply_report(r, at(0)).unwrap();
        e.apply_report(passing(&p, "automation", at(0)), at(0))
            .unwrap();
        let d = e
            .apply_report(passing(&p, "esp", at(0)), at(0))
            .unwrap()
            .decision;
        // The proof does not count in crm's health.
        assert_eq!(health(&d), vec![StageHealth::Healthy; 3]);
        assert_eq!(d.stages[0].score, 100.0);
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        assert_eq!(codes(&d), vec![ReasonCode::ProofPending]);
        let reason = &d.reasons[0];
        assert_eq!(reason.probe.as_deref(), Some("lead-to-customer"));
        assert_eq!((reason.value, reason.threshold), (Some(1.2), Some(2.0)));
        assert_eq!(
            reason.message,
            "crm: conversion proof `lead-to-customer` FAIL: 1.2 below fail threshold 2.0: \
             conversion not yet proven"
        );
        assert_eq!(d.blocking_stage.as_deref(), Some("crm"));
        assert_eq!(d.remediation.len(), 1);
        // NO_DATA (sample below the minimum) and ERROR are pending alike.
        for status in [ProbeStatus::NoData, ProbeStatus::Error, ProbeStatus::Warn] {
            let r = with(&p, "crm", at(1), vec![res("lead-to-customer", status)]);
            let d = e.apply_report(r, at(1)).unwrap().decision;
            assert_eq!(codes(&d), vec![ReasonCode::ProofPending], "{status}");
        }
        let d = e
            .apply_report(passing(&p, "crm", at(2)), at(2))
            .unwrap()
            .decision;
        assert_eq!(d.state, GateState::Open);
    }

    #[test]
    fn proof_of_an_unreported_stage_is_pending_and_observe_mode_proofs_are_ignored() {
        let p = with_proof();
        let d = engine(&p).decision("acme").unwrap();
        assert!(codes(&d).contains(&ReasonCode::ProofPending));
        let mut p = with_proof();
        p.stages[0].probes[4].mode = crate::model::ProbeMode::Observe;
        let mut e = engine(&p);
        let r = with(
            &p,
            "crm",
            at(0),
            vec![res("lead-to-customer", ProbeStatus::Fail)],
        );
        e.apply_report(r, at(0)).unwrap();
        e.apply_report(passing(&p, "automation", at(0)), at(0))
            .unwrap();
        let d = e
            .apply_report(passing(&p, "esp", at(0)), at(0))
            .unwrap()
            .decision;
        assert_eq!(d.state, GateState::Open);
        assert!(d.remediation.is_empty());
    }

    #[test]
    fn an_observe_only_probe_changes_nothing_but_the_probe_list() {
        let p = three_stages();
        let mut q = three_stages();
        let mut obs = ProbeSpec::new("trial", "sql");
        obs.mode = crate::model::ProbeMode::Observe;
        q.stages[0].probes.insert(1, obs);
        let mut e1 = engine(&p);
        let mut e2 = engine(&q);
        let steps: Vec<(&str, Vec<ProbeResult>)> = vec![
            ("crm", vec![res("a", ProbeStatus::Pass)]),
            ("automation", vec![]),
            ("esp", vec![]),
            (
                "crm",
                vec![res("trial", ProbeStatus::Fail), res("b", ProbeStatus::Warn)],
            ),
            ("crm", vec![res("trial", ProbeStatus::Error)]),
        ];
        for (n, (stage, replace)) in steps.into_iter().enumerate() {
            let t = mins(n as i64);
            let d1 = e1
                .apply_report(with(&p, stage, t, replace.clone()), t)
                .unwrap()
                .decision;
            let d2 = e2
                .apply_report(with(&q, stage, t, replace), t)
                .unwrap()
                .decision;
            assert_eq!(d1.compact(usize::MAX), d2.compact(usize::MAX), "step {n}");
        }
    }
}
