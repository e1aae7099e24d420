//! What a decision says: its reasons (each with a stable code, the stage, the probe, the
//! observed value and the threshold), its remediation items and per-stage summaries, in words a
//! marketer reads. [`Funnel::describe`] is the one walk over a decision's content: the full
//! decision ([`Funnel::build`]) and the material key ([`super::key`]) are both fed by it, so they
//! cannot disagree.

use std::fmt::Write as _;

use crate::decision::{
    GateDecision, GateState, Reason, ReasonCode, RemediationItem, StageHealth, StageSummary,
};
use crate::model::{ProbeResult, ProbeStatus, badness};
use crate::policy::{FunnelPolicy, OnUnknown, ProbeSpec, StagePolicy};

use super::Funnel;
use super::fmt::{fmt_dur, fmt_num, push_detail, with_unit};
use super::health::StageState;
use super::key::{Keys, ProbeRef, reason_key};
use super::readiness::Cause;
use super::readiness::Closing;
use super::remediation::{Ranked, TOP_OF_FUNNEL_ADVICE};
use super::{overrides, proof, remediation};

impl Funnel {
    /// Build the full decision of the last [`Funnel::decide`].
    pub(super) fn build(&self) -> GateDecision {
        let v = &self.verdict;
        let m = &self.mem;
        let mut sink = FullSink {
            policy: &self.policy,
            reasons: Vec::new(),
            items: Vec::new(),
            max_badness: 0.0,
        };
        self.describe(&mut sink);
        let FullSink {
            mut reasons,
            mut items,
            max_badness,
            ..
        } = sink;
        if v.held_closed
            && let Some(name) = v
                .blocking_stage
                .map(|i| self.policy.stages[i].name.as_str())
        {
            for r in reasons.iter_mut().filter(|r| {
                r.stage.as_deref() == Some(name)
                    && matches!(
                        r.code,
                        ReasonCode::Stale
                            | ReasonCode::Unreachable
                            | ReasonCode::ProbeError
                            | ReasonCode::NoData
                            | ReasonCode::NotYetEvaluated
                    )
            }) {
                r.message
                    .push_str(": the gate stays closed until this is known again");
            }
        }
        remediation::order(&mut items, m.phase);
        let stages = self
            .policy
            .stages
            .iter()
            .zip(&self.stages)
            .map(|(sp, st)| StageSummary {
                stage: sp.name.clone(),
                health: st.now.health,
                readiness: st.now.readiness,
                score: st.eval.score,
                checked_at: st.report.as_ref().map(|r| r.checked_at),
                on_unknown: st.now.on_unknown,
                summary: stage_summary(sp, st),
                probes: st
                    .report
                    .as_ref()
                    .map(|r| r.results.clone())
                    .unwrap_or_default(),
            })
            .collect();
        GateDecision {
            funnel: self.policy.name.clone(),
            state: v.state,
            underlying_state: v.underlying,
            allowed_rollout_percent: v.percent,
            blocking_stage: v.blocking_stage.map(|i| self.policy.stages[i].name.clone()),
            phase: m.phase,
            reasons,
            remediation: items.into_iter().map(|r| r.item).collect(),
            stages,
            since: m.since,
            evaluated_at: self.at,
            override_: m.override_.clone(),
            advice: self
                .advice(max_badness)
                .then(|| TOP_OF_FUNNEL_ADVICE.to_string()),
        }
    }

    /// Walk the decision's reasons and remediation items in order, bottom-up. The one place
    /// that says what a decision contains: [`Funnel::build`] and [`Funnel::key_into`] both use it.
    pub(super) fn describe<S: Sink>(&self, sink: &mut S) {
        let v = &self.verdict;
        let m = &self.mem;
        let gate = &self.policy.gate;
        if let Some(o) = &m.override_ {
            sink.reason(
                ReasonCode::Overridden,
                None,
                ProbeRef::None,
                None,
                None,
                || overrides::message(o, v.underlying),
            );
        }
        if v.awaiting_evidence > 0 {
            sink.reason(
                ReasonCode::AwaitingEvidence,
                None,
                ProbeRef::None,
                Some(f64::from(v.awaiting_evidence)),
                None,
                || {
                    let waiting: Vec<&str> = self
                        .policy
                        .stages
                        .iter()
                        .zip(&self.stages)
                        .filter(|(_, st)| !st.evidenced)
                        .map(|(sp, _)| sp.name.as_str())
                        .collect();
                    format!(
                        "waiting for the first evidence: {} of {} stages have not completed a \
                         check yet ({}): no share is allowed until every stage has reported",
                        waiting.len(),
                        self.stages.len(),
                        waiting.join(", ")
                    )
                },
            );
        }
        for (i, (sp, st)) in self.policy.stages.iter().zip(&self.stages).enumerate() {
            let closes = v.underlying == GateState::Closed
                && (matches!(st.now.closing, Closing::Hysteresis | Closing::Immediate)
                    || (v.held_closed && st.now.health == StageHealth::Unknown));
            stage_reasons(sp, st, i, closes, sink);
        }
        if v.underlying == GateState::Hold
            && let Some(i) = v.lowest_failing
        {
            sink.reason(
                ReasonCode::Closing,
                Some(i),
                ProbeRef::None,
                Some(f64::from(v.failing_count)),
                Some(f64::from(gate.close_after)),
                || {
                    format!(
                        "{}: failing for {} of {} evaluations: holding at the pilot share before \
                         closing",
                        self.policy.stages[i].name, v.failing_count, gate.close_after
                    )
                },
            );
        }
        for (i, (sp, st)) in self.policy.stages.iter().zip(&self.stages).enumerate() {
            if st.now.proof_pending {
                proof::proof_reasons(sp, st, i, sink);
            }
        }
        if v.all_healthy && !v.soak_served {
            sink.reason(
                ReasonCode::Soaking,
                None,
                ProbeRef::None,
                Some(v.healthy_for.as_secs_f64()),
                Some(gate.open_after.get().as_secs_f64()),
                || {
                    format!(
                        "all stages healthy for {} of {} and {} of {} evaluations: soaking \
                         before opening",
                        fmt_dur(v.healthy_for),
                        fmt_dur(gate.open_after.get()),
                        m.healthy_streak.min(gate.open_after_evaluations),
                        gate.open_after_evaluations
                    )
                },
            );
        }
        if v.underlying == GateState::Open
            && let Some(r) = m.ramp
            && let Some(&next) = gate.ramp.get(r.step + 1)
        {
            let cur = gate.ramp.get(r.step).copied().unwrap_or(100);
            sink.reason(
                ReasonCode::Ramping,
                None,
                ProbeRef::None,
                Some(f64::from(cur)),
                Some(f64::from(next)),
                || {
                    format!(
                        "ramping: {cur}% now, {next}% after {} more healthy time",
                        fmt_dur(r.since.add(gate.ramp_dwell.get()).since(self.at))
                    )
                },
            );
        }
    }
}

/// Receives what [`Funnel::describe`] finds. Messages and items are closures, so that the key
/// sink pays for no formatting.
pub(super) trait Sink {
    fn reason(
        &mut self,
        code: ReasonCode,
        stage: Option<usize>,
        probe: ProbeRef,
        value: Option<f64>,
        threshold: Option<f64>,
        message: impl FnOnce() -> String,
    );

    /// A remediation item of stage `stage` with this badness; `closes` when it is part of what
    /// closes the gate.
    fn item(
        &mut self,
        stage: usize,
        badness: f64,
        closes: bool,
        item: impl FnOnce() -> RemediationItem,
    );
}

/// Builds the full reasons and remediation.
pub(super) struct FullSink<'a> {
    pub(super) policy: &'a FunnelPolicy,
    pub(super) reasons: Vec<Reason>,
    pub(super) items: Vec<Ranked>,
    pub(super) max_badness: f64,
}

impl Sink for FullSink<'_> {
    fn reason(
        &mut self,
        code: ReasonCode,
        stage: Option<usize>,
        probe: ProbeRef,
        value: Option<f64>,
        threshold: Option<f64>,
        message: impl FnOnce() -> String,
    ) {
        let sp = stage.map(|i| &self.policy.stages[i]);
        let probe = match (probe, sp) {
            (ProbeRef::Probe(j), Some(sp)) => Some(sp.probes[j].id.clone()),
            _ => None,
        };
        self.reasons.push(Reason {
            code,
            stage: sp.map(|sp| sp.name.clone()),
            probe,
            value,
            threshold,
            message: message(),
        });
    }

    fn item(
        &mut self,
        stage: usize,
        badness: f64,
        closes: bool,
        item: impl FnOnce() -> RemediationItem,
    ) {
        self.max_badness = self.max_badness.max(badness);
        self.items.push(Ranked {
            stage,
            closes,
            item: item(),
        });
    }
}

/// Records only what [`GateDecision::materially_differs`] compares.
pub(super) struct KeySink<'a> {
    pub(super) reasons: &'a mut Keys<6>,
    pub(super) max_badness: f64,
}

impl Sink for KeySink<'_> {
    fn reason(
        &mut self,
        code: ReasonCode,
        stage: Option<usize>,
        probe: ProbeRef,
        _value: Option<f64>,
        _threshold: Option<f64>,
        _message: impl FnOnce() -> String,
    ) {
        self.reasons.push(reason_key(code, stage, probe));
    }

    fn item(
        &mut self,
        _stage: usize,
        badness: f64,
        _closes: bool,
        _item: impl FnOnce() -> RemediationItem,
    ) {
        self.max_badness = self.max_badness.max(badness);
    }
}

pub(super) const FAIL_NOTE: &str = " (on_unknown = fail: counts as failing)";

pub(super) fn item(
    sp: &StagePolicy,
    probe: &str,
    status: ProbeStatus,
    badness: f64,
    message: String,
    value: Option<f64>,
    threshold: Option<f64>,
) -> RemediationItem {
    RemediationItem {
        stage: sp.name.clone(),
        probe: probe.to_string(),
        status,
        badness,
        message,
        value,
        threshold,
    }
}

/// A stage's reasons and remediation items (proofs aside), in order.
///
/// `closes` says that this stage is part of what closes the gate: its items that make it close
/// are marked so that remediation leads with them.
pub(super) fn stage_reasons<S: Sink>(
    sp: &StagePolicy,
    st: &StageState,
    i: usize,
    closes: bool,
    sink: &mut S,
) {
    let sn = &st.now;
    let stage = sp.name.as_str();
    let fail_note = if sn.health == StageHealth::Unknown && sn.on_unknown == OnUnknown::Fail {
        FAIL_NOTE
    } else {
        ""
    };
    match sn.cause {
        Cause::Content => {}
        Cause::NotYetEvaluated => {
            let message = || {
                format!(
                    "{stage}: not yet evaluated: no report from checker `{}` yet",
                    sp.checker_name()
                )
            };
            sink.item(i, 1.0, closes, || {
                item(sp, "", ProbeStatus::NoData, 1.0, message(), None, None)
            });
            sink.reason(
                ReasonCode::NotYetEvaluated,
                Some(i),
                ProbeRef::None,
                None,
                None,
                message,
            );
        }
        Cause::Unreachable => {
            let message = || {
                let failure = st.report.as_ref().and_then(|r| r.failure.as_ref());
                let (checker, code, detail) = match failure {
                    Some(f) => (
                        if f.checker.is_empty() {
                            sp.checker_name()
                        } else {
                            f.checker.as_str()
                        },
                        f.code.as_str(),
                        f.message.as_str(),
                    ),
                    None => (sp.checker_name(), "UNREACHABLE", ""),
                };
                format!(
                    "{stage}: checker `{checker}` could not be reached ({code}): {detail}{fail_note}"
                )
            };
            // A checker-level fact: it names no probe (the message names the checker).
            sink.item(i, 1.0, closes, || {
                item(sp, "", ProbeStatus::Error, 1.0, message(), None, None)
            });
            sink.reason(
                ReasonCode::Unreachable,
                Some(i),
                ProbeRef::None,
                None,
                None,
                message,
            );
        }
        Cause::Stale => {
            let message = || {
                format!(
                    "{stage}: last report is {} old, stale after {}{fail_note}",
                    fmt_dur(sn.age),
                    fmt_dur(sp.stale_after.get())
                )
            };
            sink.item(i, 1.0, closes, || {
                item(sp, "", ProbeStatus::NoData, 1.0, message(), None, None)
            });
            sink.reason(
                ReasonCode::Stale,
                Some(i),
                ProbeRef::None,
                Some(sn.age.as_secs_f64()),
                Some(sp.stale_after.get().as_secs_f64()),
                message,
            );
        }
    }

    if sn.cause == Cause::Content
        && let Some(report) = &st.report
    {
        let t = &st.eval.tally;
        if t.warn + t.fail + t.error + t.no_data + t.advisory > 0 {
            let probes = st.probes.iter().zip(&sp.probes).zip(report.results.iter());
            for (j, ((m, spec), r)) in probes.enumerate() {
                if m.proof()
                    || !m.counts()
                    || matches!(r.status, ProbeStatus::Pass | ProbeStatus::Skipped)
                {
                    continue;
                }
                let code = match (r.status, m.blocking()) {
                    (ProbeStatus::Fail, true) => ReasonCode::StageFailing,
                    (ProbeStatus::Error, true) => ReasonCode::ProbeError,
                    (ProbeStatus::NoData, true) => ReasonCode::NoData,
                    _ => ReasonCode::StageDegraded,
                };
                let note = if m.blocking() && r.status.is_unknown() && m.unknown_fail() {
                    FAIL_NOTE
                } else {
                    ""
                };
                let message = || probe_message(stage, "probe", spec, r, !m.blocking(), note);
                let badness = result_badness(r);
                // What makes this stage close the gate: a blocking FAIL; a blocking WARN when the
                // score is below `min_score`; a blocking ERROR/NO_DATA when it is UNKNOWN.
                let closes = closes
                    && m.blocking()
                    && match r.status {
                        ProbeStatus::Fail => true,
                        ProbeStatus::Warn => st.eval.score_fail,
                        _ => sn.health == StageHealth::Unknown,
                    };
                sink.item(i, badness, closes, || {
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
                    code,
                    Some(i),
                    ProbeRef::Probe(j),
                    r.value,
                    r.threshold,
                    message,
                );
            }
        }
        if st.eval.score_fail
            && let Some(min) = sp.min_score
        {
            sink.reason(
                ReasonCode::StageFailing,
                Some(i),
                ProbeRef::None,
                Some(st.eval.judged_score),
                Some(min),
                || {
                    format!(
                        "{stage}: score {} below min_score {}",
                        fmt_num(st.eval.judged_score),
                        fmt_num(min)
                    )
                },
            );
        }
    }

    if sn.past_grace {
        let grace = sp.unknown_grace.get();
        sink.reason(
            ReasonCode::UnknownGraceExceeded,
            Some(i),
            ProbeRef::None,
            Some(sn.unknown_for.as_secs_f64()),
            Some(grace.as_secs_f64()),
            || {
                format!(
                    "{stage}: unknown for {}, longer than its {} grace: the gate closes",
                    fmt_dur(sn.unknown_for),
                    fmt_dur(grace)
                )
            },
        );
    }
}

/// A stage's one-line summary: why it has its health.
pub(super) fn stage_summary(sp: &StagePolicy, st: &StageState) -> String {
    let sn = &st.now;
    let mut summary = match sn.cause {
        Cause::Content => st.eval.summary.clone(),
        Cause::NotYetEvaluated => "not yet evaluated".to_string(),
        Cause::Unreachable => {
            let failure = st.report.as_ref().and_then(|r| r.failure.as_ref());
            match failure {
                Some(f) => format!(
                    "checker `{}` could not be reached ({}): {}",
                    if f.checker.is_empty() {
                        sp.checker_name()
                    } else {
                        f.checker.as_str()
                    },
                    f.code,
                    f.message
                ),
                None => format!("checker `{}` could not be reached", sp.checker_name()),
            }
        }
        Cause::Stale => format!(
            "last report is {} old, stale after {}",
            fmt_dur(sn.age),
            fmt_dur(sp.stale_after.get())
        ),
    };
    if sn.health == StageHealth::Unknown {
        let grace = fmt_dur(sp.unknown_grace.get());
        let unknown_for = fmt_dur(sn.unknown_for);
        if sn.on_unknown == OnUnknown::Fail {
            summary.push_str("; counts as failing (on_unknown = fail)");
        } else if sn.past_grace {
            let _ = write!(
                summary,
                "; unknown for {unknown_for}, past its {grace} grace"
            );
        } else {
            let _ = write!(summary, "; unknown for {unknown_for} of its {grace} grace");
        }
    }
    summary
}

/// A non-passing result's badness, made usable for ordering: ERROR/NO_DATA without one are 1.0,
/// a WARN/FAIL without one is computed from its value and threshold, NaN is 1.0.
pub(super) fn result_badness(r: &ProbeResult) -> f64 {
    let b = r.badness;
    if b.is_nan() || b < 0.0 {
        return 1.0;
    }
    if b == 0.0 {
        return match (r.status, r.value, r.threshold) {
            (ProbeStatus::Error | ProbeStatus::NoData, _, _) => 1.0,
            (ProbeStatus::Warn | ProbeStatus::Fail, Some(v), Some(t)) => {
                let computed = badness(v, t);
                if computed.is_nan() { 1.0 } else { computed }
            }
            _ => 0.0,
        };
    }
    b
}

/// "crm: probe `attributed-leads` FAIL: 62.0 below fail threshold 70.0 (…)".
pub(super) fn probe_message(
    stage: &str,
    what: &str,
    spec: &ProbeSpec,
    r: &ProbeResult,
    advisory: bool,
    note: &str,
) -> String {
    let mut s = String::with_capacity(96);
    let _ = write!(s, "{stage}: {what} `{}` {}", spec.id, r.status);
    if advisory {
        s.push_str(" (advisory)");
    }
    s.push_str(": ");
    let judged = matches!(r.status, ProbeStatus::Warn | ProbeStatus::Fail);
    // The probe's own message restates the verdict and its raw measurement: when the policy says
    // in words what the probe measures, that is the detail a marketer reads.
    let detail = spec.description.as_deref().unwrap_or(&r.message);
    match (judged, r.value, r.threshold) {
        (true, Some(v), Some(_)) if spec.thresholds.expect.is_some() => {
            let expect = spec.thresholds.expect.unwrap_or(true);
            let _ = write!(s, "expected {expect}, got {}", v != 0.0);
            push_detail(&mut s, detail);
        }
        (true, Some(v), Some(t)) => {
            let dir = if v < t { "below" } else { "above" };
            let kind = if r.status == ProbeStatus::Fail {
                "fail"
            } else {
                "warn"
            };
            let _ = write!(
                s,
                "{} {dir} {kind} threshold {}",
                with_unit(v, &r.unit),
                with_unit(t, &r.unit)
            );
            push_detail(&mut s, detail);
        }
        _ if !r.message.is_empty() => s.push_str(&r.message),
        _ => s.push_str(match r.status {
            ProbeStatus::Error => "could not measure",
            ProbeStatus::NoData => "nothing to judge yet",
            ProbeStatus::Fail => "failed",
            ProbeStatus::Warn => "warning",
            _ => "not passing",
        }),
    }
    s.push_str(note);
    s
}
