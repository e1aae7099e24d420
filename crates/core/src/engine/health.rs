//! Stage health and score: judging one stage's report, independent of time.
//!
//! A stage's report is aligned with its policy's probes once, when it arrives; its statuses are
//! kept in a compact array ([`ProbeMeta`], two bytes a probe) so that re-judging every funnel
//! stays cheap. [`evaluate_stage`] turns them into a [`Tally`] and the stage's health from its
//! content alone (staleness and reachability are [`super::readiness`]'s).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::decision::{ProbeList, StageHealth};
use crate::model::{CheckFailure, ProbeResult, ProbeStatus, Severity, StageReport};
use crate::policy::{OnUnknown, ProbeSpec, StagePolicy};
use crate::time::Timestamp;

use super::fmt::fmt_num;
use super::readiness::StageNow;

/// One probe of a stage as judging needs it: what the policy says about it (precomputed at
/// upsert) and the status of its latest result. Two bytes, so that a stage's probes take a
/// cache line or two and re-judging every funnel stays cheap.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProbeMeta {
    pub(super) flags: u8,
    /// Status of the stored report's result for this probe (meaningless without results).
    pub(super) status: ProbeStatus,
}

impl ProbeMeta {
    pub(super) const COUNTS: u8 = 1;
    pub(super) const BLOCKING: u8 = 2;
    pub(super) const PROOF: u8 = 4;
    pub(super) const UNKNOWN_FAIL: u8 = 8;

    pub(super) fn new(sp: &StagePolicy, p: &ProbeSpec) -> ProbeMeta {
        let mut flags = 0;
        if p.counts_for_health() {
            flags |= Self::COUNTS;
        }
        if p.severity == Severity::Blocking {
            flags |= Self::BLOCKING;
        }
        if p.proof && p.mode == crate::model::ProbeMode::Enforce {
            flags |= Self::PROOF;
        }
        if sp.probe_on_unknown(p) == OnUnknown::Fail {
            flags |= Self::UNKNOWN_FAIL;
        }
        ProbeMeta {
            flags,
            status: ProbeStatus::NoData,
        }
    }

    /// Counts for stage health (enforced, not a proof).
    pub(super) fn counts(self) -> bool {
        self.flags & Self::COUNTS != 0
    }

    pub(super) fn blocking(self) -> bool {
        self.flags & Self::BLOCKING != 0
    }

    /// An enforced conversion-proof probe.
    pub(super) fn proof(self) -> bool {
        self.flags & Self::PROOF != 0
    }

    /// Effective `on_unknown` is `fail`.
    pub(super) fn unknown_fail(self) -> bool {
        self.flags & Self::UNKNOWN_FAIL != 0
    }
}

/// The last report of a stage, its results aligned with the policy's probes (one per probe, in
/// policy order; a missing one is a synthesised ERROR).
#[derive(Debug, Clone)]
pub(super) struct StoredReport {
    pub(super) checked_at: Timestamp,
    pub(super) duration_ms: u64,
    pub(super) checker: String,
    pub(super) failure: Option<CheckFailure>,
    pub(super) results: ProbeList,
}

/// Counts over a stage's counting probes, and the flags health is made of.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Tally {
    pub(super) pass: u32,
    pub(super) warn: u32,
    pub(super) fail: u32,
    pub(super) error: u32,
    pub(super) no_data: u32,
    pub(super) skipped: u32,
    /// Counting advisory probes that are not PASS (nor SKIPPED): they degrade, never score.
    pub(super) advisory: u32,
    /// Sum of weights of blocking, counting, non-skipped probes, and their points (PASS 1,
    /// WARN 0.5): advisory probes never count in the score.
    pub(super) weight: f64,
    pub(super) points: f64,
    /// The same over judged probes only (PASS, WARN, FAIL).
    pub(super) judged_weight: f64,
    pub(super) judged_points: f64,
    pub(super) blocking_fail: bool,
    pub(super) unknown: bool,
    pub(super) unknown_fail: bool,
    pub(super) degraded: bool,
    /// An enforced proof probe is not PASS.
    pub(super) proof_pending: bool,
}

impl Tally {
    pub(super) const EMPTY: Tally = Tally {
        pass: 0,
        warn: 0,
        fail: 0,
        error: 0,
        no_data: 0,
        skipped: 0,
        advisory: 0,
        weight: 0.0,
        points: 0.0,
        judged_weight: 0.0,
        judged_points: 0.0,
        blocking_fail: false,
        unknown: false,
        unknown_fail: false,
        degraded: false,
        proof_pending: false,
    };
}

/// The time-independent verdict on a stage's report.
#[derive(Debug, Clone)]
pub(super) struct StageEval {
    pub(super) tally: Tally,
    /// Health from the report's content alone (ignoring staleness).
    pub(super) health: StageHealth,
    pub(super) score: f64,
    pub(super) judged_score: f64,
    pub(super) score_fail: bool,
    /// Judged from results (not a missing or failed report).
    pub(super) from_results: bool,
    pub(super) summary: String,
}

impl StageEval {
    /// The state before any report has been judged.
    pub(super) const EMPTY: StageEval = StageEval {
        tally: Tally::EMPTY,
        health: StageHealth::Unknown,
        score: 0.0,
        judged_score: 0.0,
        score_fail: false,
        from_results: false,
        summary: String::new(),
    };
}

/// Probes per stage kept inline in [`StageState`] (more go to the heap).
pub(super) const INLINE_PROBES: usize = 32;

/// A stage's [`ProbeMeta`]s: inline up to [`INLINE_PROBES`] (saves a cache miss per stage when
/// re-judging every funnel), on the heap beyond.
#[derive(Debug)]
pub(super) struct Metas {
    pub(super) len: usize,
    pub(super) inline: [ProbeMeta; INLINE_PROBES],
    pub(super) spill: Vec<ProbeMeta>,
}

impl Metas {
    pub(super) fn new(metas: Vec<ProbeMeta>) -> Metas {
        let mut inline = [ProbeMeta {
            flags: 0,
            status: ProbeStatus::NoData,
        }; INLINE_PROBES];
        if metas.len() <= INLINE_PROBES {
            inline[..metas.len()].copy_from_slice(&metas);
            Metas {
                len: metas.len(),
                inline,
                spill: Vec::new(),
            }
        } else {
            Metas {
                len: metas.len(),
                inline,
                spill: metas,
            }
        }
    }
}

impl std::ops::Deref for Metas {
    type Target = [ProbeMeta];
    fn deref(&self) -> &[ProbeMeta] {
        if self.len <= INLINE_PROBES {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }
}

impl std::ops::DerefMut for Metas {
    fn deref_mut(&mut self) -> &mut [ProbeMeta] {
        if self.len <= INLINE_PROBES {
            &mut self.inline[..self.len]
        } else {
            &mut self.spill
        }
    }
}

#[derive(Debug)]
pub(super) struct StageState {
    pub(super) probes: Metas,
    /// The policy's `stale_after`, `unknown_grace`, `on_unknown` and `min_score`, kept here so
    /// that deciding does not touch the policy.
    pub(super) stale_after: Duration,
    pub(super) unknown_grace: Duration,
    pub(super) on_unknown: OnUnknown,
    pub(super) min_score: Option<f64>,
    /// Probe weights, in policy order; empty when every weight is 1.
    pub(super) weights: Vec<f64>,
    /// The policy's probe ids, each followed by `\n`, in one buffer: checking that a report is
    /// already in policy order touches one allocation, not one per probe.
    pub(super) ids: String,
    /// Probe id → position in the policy's probe list.
    pub(super) index: HashMap<Box<str>, usize>,
    pub(super) has_proof: bool,
    /// The stage has completed at least one evaluation (a report with results, not a failure to
    /// reach its checker): until every stage has, the gate allows no share.
    pub(super) evidenced: bool,
    pub(super) report: Option<StoredReport>,
    pub(super) eval: StageEval,
    /// Start of the current UNKNOWN episode.
    pub(super) unknown_since: Option<Timestamp>,
    pub(super) now: StageNow,
}

impl StageState {
    pub(super) fn new(sp: &StagePolicy, unknown_since: Timestamp) -> StageState {
        let probes: Vec<ProbeMeta> = sp.probes.iter().map(|p| ProbeMeta::new(sp, p)).collect();
        let weights = if sp.probes.iter().all(|p| p.weight == 1.0) {
            Vec::new()
        } else {
            sp.probes.iter().map(|p| p.weight).collect()
        };
        let index = sp
            .probes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str().into(), i))
            .collect();
        let ids = sp.probes.iter().fold(String::new(), |mut ids, p| {
            ids.push_str(&p.id);
            ids.push('\n');
            ids
        });
        let has_proof = probes.iter().any(|m| m.proof());
        let mut st = StageState {
            probes: Metas::new(probes),
            stale_after: sp.stale_after.get(),
            unknown_grace: sp.unknown_grace.get(),
            on_unknown: sp.on_unknown,
            min_score: sp.min_score,
            weights,
            ids,
            index,
            has_proof,
            evidenced: false,
            report: None,
            eval: StageEval::EMPTY,
            unknown_since: Some(unknown_since),
            now: StageNow::default(),
        };
        st.eval = evaluate_stage(&st, None);
        st
    }

    /// Store a report (its results aligned with the policy's probes) and their statuses.
    pub(super) fn set_report(&mut self, sp: &StagePolicy, report: StageReport) {
        let StageReport {
            results,
            checked_at,
            duration_ms,
            checker,
            failure,
            ..
        } = report;
        let results = if failure.is_some() {
            ProbeList::new()
        } else {
            self.evidenced = true;
            self.align(sp, results, checked_at)
        };
        for (m, r) in self.probes.iter_mut().zip(results.iter()) {
            m.status = r.status;
        }
        self.report = Some(StoredReport {
            checked_at,
            duration_ms,
            checker,
            failure,
            results,
        });
    }

    /// Judge the stored report again (reusing the summary text when nothing changed).
    pub(super) fn rejudge(&mut self) {
        let mut prev = std::mem::replace(&mut self.eval, StageEval::EMPTY);
        self.eval = evaluate_stage(self, Some(&mut prev));
    }

    /// Are these results exactly the policy's probes, in order? (Ids are validated idents, so
    /// they contain no `\n`; a result id that does cannot match.)
    pub(super) fn in_policy_order(&self, results: &[ProbeResult]) -> bool {
        if results.len() != self.probes.len() {
            return false;
        }
        let mut rest = self.ids.as_str();
        for r in results {
            match rest
                .strip_prefix(r.id.as_str())
                .and_then(|t| t.strip_prefix('\n'))
            {
                Some(tail) => rest = tail,
                None => return false,
            }
        }
        rest.is_empty()
    }

    /// Align a report's results with the policy's probes (fast when they already are).
    pub(super) fn align(
        &self,
        sp: &StagePolicy,
        results: Vec<ProbeResult>,
        at: Timestamp,
    ) -> ProbeList {
        if self.in_policy_order(&results) {
            return ProbeList::from(results);
        }
        let mut slots: Vec<Option<ProbeResult>> = Vec::with_capacity(sp.probes.len());
        slots.resize_with(sp.probes.len(), || None);
        for r in results {
            if let Some(&i) = self.index.get(r.id.as_str())
                && slots[i].is_none()
            {
                slots[i] = Some(r);
            }
        }
        slots
            .into_iter()
            .zip(&sp.probes)
            .map(|(slot, spec)| slot.unwrap_or_else(|| missing_result(spec, at)))
            .collect()
    }
}

pub(super) fn missing_result(spec: &ProbeSpec, at: Timestamp) -> ProbeResult {
    ProbeResult::error(
        spec.id.clone(),
        spec.kind.clone(),
        format!("checker returned no result for probe `{}`", spec.id),
        at,
    )
}

/// Judge a stage's report (time-independent). Reuses `prev`'s summary text when the tally is
/// unchanged.
pub(super) fn evaluate_stage(st: &StageState, prev: Option<&mut StageEval>) -> StageEval {
    let mut t = Tally::default();
    let Some(_) = st.report.as_ref().filter(|r| r.failure.is_none()) else {
        t.proof_pending = st.has_proof;
        let summary = match &st.report {
            None => "not yet evaluated".to_string(),
            Some(_) => "checker unreachable".to_string(),
        };
        return StageEval {
            tally: t,
            health: StageHealth::Unknown,
            score: 0.0,
            judged_score: 0.0,
            score_fail: false,
            from_results: false,
            summary,
        };
    };
    for (j, m) in st.probes.iter().enumerate() {
        let status = m.status;
        if m.proof() {
            t.proof_pending |= status != ProbeStatus::Pass;
            continue;
        }
        if !m.counts() {
            continue;
        }
        if !m.blocking() {
            // Advisory: a WARN, FAIL, ERROR or NO_DATA degrades the stage at most, and advisory
            // probes never count in the score.
            if !matches!(status, ProbeStatus::Pass | ProbeStatus::Skipped) {
                t.advisory += 1;
                t.degraded = true;
            }
            continue;
        }
        let w = st.weights.get(j).copied().unwrap_or(1.0);
        match status {
            ProbeStatus::Pass => {
                t.pass += 1;
                t.weight += w;
                t.points += w;
                t.judged_weight += w;
                t.judged_points += w;
            }
            ProbeStatus::Warn => {
                t.warn += 1;
                t.weight += w;
                t.points += 0.5 * w;
                t.judged_weight += w;
                t.judged_points += 0.5 * w;
                t.degraded = true;
            }
            ProbeStatus::Fail => {
                t.fail += 1;
                t.weight += w;
                t.judged_weight += w;
                t.blocking_fail = true;
            }
            ProbeStatus::Error | ProbeStatus::NoData => {
                if status == ProbeStatus::Error {
                    t.error += 1;
                } else {
                    t.no_data += 1;
                }
                t.weight += w;
                t.unknown = true;
                t.unknown_fail |= m.unknown_fail();
            }
            ProbeStatus::Skipped => t.skipped += 1,
        }
    }
    let score = percent_score(t.points, t.weight);
    let judged_score = percent_score(t.judged_points, t.judged_weight);
    let score_fail = st.min_score.is_some_and(|min| judged_score < min);
    let health = if t.blocking_fail || score_fail {
        StageHealth::Failing
    } else if t.unknown {
        StageHealth::Unknown
    } else if t.degraded {
        StageHealth::Degraded
    } else {
        StageHealth::Healthy
    };
    let summary = match prev {
        Some(p) if p.from_results && p.tally == t && p.score_fail == score_fail => {
            std::mem::take(&mut p.summary)
        }
        _ => content_summary(&t, score),
    };
    StageEval {
        tally: t,
        health,
        score,
        judged_score,
        score_fail,
        from_results: true,
        summary,
    }
}

pub(super) fn percent_score(points: f64, weight: f64) -> f64 {
    if weight > 0.0 {
        (100.0 * points) / weight
    } else {
        100.0
    }
}

pub(super) fn content_summary(t: &Tally, score: f64) -> String {
    let judged = t.pass + t.warn + t.fail + t.error + t.no_data;
    let mut s = String::with_capacity(64);
    if judged == 0 {
        match (t.skipped, t.advisory) {
            (0, 0) => s.push_str("no counting probes"),
            (0, _) => s.push_str("no blocking probes"),
            (n, _) => {
                let _ = write!(s, "all {n} blocking probes skipped");
            }
        }
    } else if judged == t.pass {
        let what = if t.advisory > 0 {
            "blocking probes"
        } else {
            "probes"
        };
        let _ = write!(s, "all {} {what} pass", t.pass);
    } else {
        let _ = write!(s, "score {}:", fmt_num(score));
        let mut first = true;
        for (n, what) in [
            (t.pass, "pass"),
            (t.warn, "warn"),
            (t.fail, "fail"),
            (t.error, "error"),
            (t.no_data, "no data"),
        ] {
            if n > 0 {
                let _ = write!(s, "{} {n} {what}", if first { "" } else { "," });
                first = false;
            }
        }
    }
    if t.skipped > 0 && judged > 0 {
        let _ = write!(s, ", {} skipped", t.skipped);
    }
    if t.advisory > 0 {
        let _ = write!(s, ", {} advisory not passing", t.advisory);
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn blocking_fail_closes_at_once_with_a_message_a_marketer_reads() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(1));
        let r = with(
            &p,
            "crm",
            at(2),
            vec![val("a", ProbeStatus::Fail, 62.0, 70.0)],
        );
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Closed, 0));
        assert_eq!(d.blocking_stage.as_deref(), Some("crm"));
        let reason = &d.reasons[0];
        assert_eq!(reason.code, ReasonCode::StageFailing);
        assert_eq!(
            reason.message,
            "crm: probe `a` FAIL: 62.0 below fail threshold 70.0"
        );
        assert_eq!(
            (reason.stage.as_deref(), reason.probe.as_deref()),
            (Some("crm"), Some("a"))
        );
        assert_eq!((reason.value, reason.threshold), (Some(62.0), Some(70.0)));
        assert_eq!(health(&d)[0], StageHealth::Failing);
        assert_eq!(
            readiness(&d),
            vec![Readiness::NotReady, Readiness::Blocked, Readiness::Blocked]
        );
    }

    #[test]
    fn units_and_checker_messages_appear_in_reasons() {
        let p = three_stages();
        let mut e = engine(&p);
        let mut r = val("g", ProbeStatus::Fail, 3.5, 2.0);
        r.unit = "%".into();
        r.message = "bounces over 7 days".into();
        let d = e
            .apply_report(with(&p, "esp", at(1), vec![r]), at(1))
            .unwrap()
            .decision;
        let m = &d
            .reasons
            .iter()
            .find(|r| r.code == ReasonCode::StageFailing)
            .unwrap()
            .message;
        assert_eq!(
            m,
            "esp: probe `g` FAIL: 3.5% above fail threshold 2.0% (bounces over 7 days)"
        );
    }

    #[test]
    fn a_probe_description_is_the_detail_of_its_reason() {
        let mut p = three_stages();
        let g = p.stages[2].probes.iter_mut().find(|s| s.id == "g").unwrap();
        g.description = Some("bounce rate of the newsletter, 7 days".into());
        let mut e = engine(&p);
        let mut r = val("g", ProbeStatus::Fail, 3.5, 2.0);
        r.unit = "percent".into();
        r.message = "3.5% above fail threshold 2.0; 100.0 * sum(bounced) / sum(sent) = 3.5".into();
        let d = e
            .apply_report(with(&p, "esp", at(1), vec![r]), at(1))
            .unwrap()
            .decision;
        let m = &d
            .reasons
            .iter()
            .find(|r| r.code == ReasonCode::StageFailing)
            .unwrap()
            .message;
        assert_eq!(
            m,
            "esp: probe `g` FAIL: 3.5% above fail threshold 2.0% (bounce rate of the newsletter, 7 days)"
        );
        // The raw probe message is still there for whoever wants the evidence.
        let full = &d.stages[2].probes[0].message;
        assert!(full.contains("sum(bounced)"), "{full}");
    }

    #[test]
    fn blocking_stage_is_the_lowest_failing_stage() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(1));
        e.apply_report(
            with(&p, "esp", at(2), vec![res("g", ProbeStatus::Fail)]),
            at(2),
        )
        .unwrap();
        let d = e.decision("acme").unwrap();
        assert_eq!(d.blocking_stage.as_deref(), Some("esp"));
        let r = with(&p, "automation", at(3), vec![res("e", ProbeStatus::Fail)]);
        let d = e.apply_report(r, at(3)).unwrap().decision;
        assert_eq!(d.blocking_stage.as_deref(), Some("automation"));
        assert_eq!(d.state, GateState::Closed);
    }

    #[test]
    fn advisory_fail_never_counts_in_the_score_and_only_degrades() {
        let mut p = three_stages();
        p.stages[0].probes[0].severity = Severity::Advisory;
        // Even a strict min_score is not moved by an advisory probe: it is not in the score.
        p.stages[0].min_score = Some(100.0);
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(1));
        let r = with(&p, "crm", at(2), vec![res("a", ProbeStatus::Fail)]);
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(d.stages[0].score, 100.0);
        assert_eq!(health(&d)[0], StageHealth::Degraded);
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        assert_eq!(codes(&d), vec![ReasonCode::StageDegraded]);
        assert!(
            d.reasons[0].message.contains("FAIL (advisory)"),
            "{}",
            d.reasons[0].message
        );
        assert_eq!(
            d.stages[0].summary,
            "all 3 blocking probes pass, 1 advisory not passing"
        );
        assert_eq!(readiness(&d)[0], Readiness::Ready);
        // Advisory ERROR and NO_DATA degrade too, and never make the stage UNKNOWN.
        for (k, status) in [ProbeStatus::Error, ProbeStatus::NoData]
            .into_iter()
            .enumerate()
        {
            let when = at(3 + k as i64);
            let r = with(&p, "crm", when, vec![res("a", status)]);
            let d = e.apply_report(r, when).unwrap().decision;
            assert_eq!(health(&d)[0], StageHealth::Degraded, "{status}");
            assert_eq!(d.stages[0].score, 100.0);
        }
    }

    #[test]
    fn warn_only_stage_is_degraded_and_holds_at_the_pilot_share_by_default() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(1));
        let r = with(&p, "crm", at(2), vec![res("a", ProbeStatus::Warn)]);
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(d.stages[0].score, 87.5);
        assert_eq!(health(&d)[0], StageHealth::Degraded);
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        assert_eq!(d.blocking_stage.as_deref(), Some("crm"));
        // Every probe WARN: score 50, still only DEGRADED (min_score is off unless set).
        let all_warn = ["a", "b", "c", "d"]
            .iter()
            .map(|id| res(id, ProbeStatus::Warn))
            .collect();
        let d = e
            .apply_report(with(&p, "crm", at(3), all_warn), at(3))
            .unwrap()
            .decision;
        assert_eq!(d.stages[0].score, 50.0);
        assert_eq!(health(&d)[0], StageHealth::Degraded);
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        assert!(!codes(&d).contains(&ReasonCode::StageFailing));
    }

    #[test]
    fn a_single_blocking_warn_in_a_one_probe_stage_holds_by_default() {
        let p = funnel(vec![stage("crm", &["a"])]);
        let mut e = engine(&p);
        let r = with(&p, "crm", at(1), vec![res("a", ProbeStatus::Warn)]);
        let d = e.apply_report(r, at(1)).unwrap().decision;
        assert_eq!(d.stages[0].score, 50.0);
        assert_eq!(health(&d)[0], StageHealth::Degraded);
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
    }

    #[test]
    fn enough_warns_fail_on_score_when_min_score_is_set() {
        let mut p = three_stages();
        p.stages[0].min_score = Some(80.0);
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(1));
        let r = with(&p, "crm", at(2), vec![res("a", ProbeStatus::Warn)]);
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(health(&d)[0], StageHealth::Degraded);
        // Two WARNs of four: 75 < min_score 80.
        let r = with(
            &p,
            "crm",
            at(3),
            vec![res("a", ProbeStatus::Warn), res("b", ProbeStatus::Warn)],
        );
        let d = e.apply_report(r, at(3)).unwrap().decision;
        assert_eq!(health(&d)[0], StageHealth::Failing);
        assert_eq!(d.state, GateState::Closed);
        let score = d.reasons.iter().find(|r| r.probe.is_none()).unwrap();
        assert_eq!(score.code, ReasonCode::StageFailing);
        assert_eq!(score.message, "crm: score 75.0 below min_score 80.0");
        assert_eq!((score.value, score.threshold), (Some(75.0), Some(80.0)));
        // The WARNs that pull the score down are what closes the gate: they lead remediation.
        assert!(
            d.remediation
                .iter()
                .all(|it| it.status == ProbeStatus::Warn)
        );
    }

    #[test]
    fn score_is_weighted_and_skips_skipped_probes() {
        let mut p = three_stages();
        p.stages[0].probes[0].weight = 3.0;
        let mut e = engine(&p);
        // a (w3) WARN, b PASS, c FAIL-advisory? keep blocking semantics out: c SKIPPED, d PASS.
        let r = with(
            &p,
            "crm",
            at(1),
            vec![res("a", ProbeStatus::Warn), res("c", ProbeStatus::Skipped)],
        );
        let d = e.apply_report(r, at(1)).unwrap().decision;
        // (3 × 0.5 + 1 + 1) / (3 + 1 + 1) = 3.5 / 5 = 70%.
        assert_eq!(d.stages[0].score, 70.0);
        assert_eq!(d.stages[0].summary, "score 70.0: 2 pass, 1 warn, 1 skipped");
    }

    #[test]
    fn stage_without_counting_probes_scores_100_and_is_healthy() {
        let mut p = funnel(vec![stage("crm", &["o"]), stage("esp", &[])]);
        p.stages[0].probes[0].mode = crate::model::ProbeMode::Observe;
        let mut e = engine(&p);
        let d = all_pass(&mut e, &p, at(1)).decision;
        assert_eq!(d.stages[0].score, 100.0);
        assert_eq!(d.stages[1].score, 100.0);
        assert_eq!(health(&d), vec![StageHealth::Healthy; 2]);
        assert_eq!(d.stages[1].summary, "no counting probes");
        assert_eq!(d.state, GateState::Open);
    }

    #[test]
    fn blocking_error_and_no_data_are_unknown_and_hold() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(1));
        let mut err = res("e", ProbeStatus::Error);
        err.message = "hubspot returned 401".into();
        let r = with(
            &p,
            "automation",
            at(2),
            vec![err, res("f", ProbeStatus::NoData)],
        );
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(health(&d)[1], StageHealth::Unknown);
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        assert_eq!(d.blocking_stage.as_deref(), Some("automation"));
        assert_eq!(codes(&d), vec![ReasonCode::ProbeError, ReasonCode::NoData]);
        assert_eq!(
            d.reasons[0].message,
            "automation: probe `e` ERROR: hubspot returned 401"
        );
        assert_eq!(d.stages[1].on_unknown, OnUnknown::Hold);
        assert_eq!(
            readiness(&d),
            vec![Readiness::Ready, Readiness::NotReady, Readiness::Blocked]
        );
    }

    #[test]
    fn failing_beats_unknown_in_the_same_report() {
        let p = three_stages();
        let mut e = engine(&p);
        let r = with(
            &p,
            "crm",
            at(1),
            vec![res("a", ProbeStatus::Error), res("b", ProbeStatus::Fail)],
        );
        let d = e.apply_report(r, at(1)).unwrap().decision;
        assert_eq!(health(&d)[0], StageHealth::Failing);
        assert_eq!(d.state, GateState::Closed);
        assert_eq!(d.blocking_stage.as_deref(), Some("crm"));
        assert!(codes(&d).contains(&ReasonCode::ProbeError));
    }

    #[test]
    fn unjudged_probes_do_not_count_against_min_score() {
        let p = three_stages();
        let mut e = engine(&p);
        // Two ERRORs of four: the reported score is 50, but the judged score is 100.
        let r = with(
            &p,
            "crm",
            at(1),
            vec![res("a", ProbeStatus::Error), res("b", ProbeStatus::Error)],
        );
        let d = e.apply_report(r, at(1)).unwrap().decision;
        assert_eq!(d.stages[0].score, 50.0);
        assert_eq!(health(&d)[0], StageHealth::Unknown);
    }

    #[test]
    fn a_probe_missing_from_the_report_is_an_error_and_unknown_ids_are_ignored() {
        let p = three_stages();
        let mut e = engine(&p);
        let r = report(
            "automation",
            vec![res("zzz", ProbeStatus::Fail), res("e", ProbeStatus::Pass)],
            at(1),
        );
        let d = e.apply_report(r, at(1)).unwrap().decision;
        assert_eq!(health(&d)[1], StageHealth::Unknown);
        let reason = d
            .reasons
            .iter()
            .find(|r| r.code == ReasonCode::ProbeError)
            .unwrap();
        assert_eq!(reason.probe.as_deref(), Some("f"));
        assert!(
            reason
                .message
                .contains("checker returned no result for probe `f`"),
            "{}",
            reason.message
        );
        let ids: Vec<&str> = d.stages[1].probes.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, vec!["e", "f"]);
    }

    #[test]
    fn unreachable_checker_makes_the_stage_unknown_and_its_reason_names_no_probe() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(1));
        let mut r = report("esp", vec![], at(2));
        r.failure = Some(CheckFailure {
            code: "TIMEOUT".into(),
            checker: "esp-checker".into(),
            message: "deadline of 30s exceeded".into(),
        });
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(health(&d)[2], StageHealth::Unknown);
        assert_eq!(d.state, GateState::Hold);
        let reason = &d.reasons[0];
        assert_eq!(reason.code, ReasonCode::Unreachable);
        // A checker-level reason names no probe (not `esp.esp`); the message names the checker
        // that reported.
        assert_eq!(reason.stage.as_deref(), Some("esp"));
        assert_eq!(reason.probe, None);
        assert_eq!(
            reason.message,
            "esp: checker `esp-checker` could not be reached (TIMEOUT): deadline of 30s exceeded"
        );
        assert_eq!(d.remediation[0].probe, "");
        assert_eq!(d.remediation[0].status, ProbeStatus::Error);
    }
}
