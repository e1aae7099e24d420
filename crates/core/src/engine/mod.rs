//! The gate engine: stage reports and time in, decisions out. Pure: no I/O, no clock, no async.
//!
//! The public signatures of [`Engine`], [`Outcome`], [`FunnelSnapshot`] and [`EngineError`] are
//! frozen (the coordinator codes against them); items may be added.
//!
//! # How a decision is made
//!
//! Every decision of a funnel is computed at an instant `now` from its policy, the latest report
//! of each stage and a small serialisable memory (hysteresis counters, ramp step, phase,
//! override, when each stage became UNKNOWN). The same events at the same instants always give
//! the same decisions.
//!
//! **Stage health** (first match wins):
//!
//! 1. UNKNOWN when the stage has no report yet (`NOT_YET_EVALUATED`), its checker could not be
//!    reached (`UNREACHABLE`), or its report is older than `stale_after` (`STALE`). A report that
//!    cannot be trusted says nothing about its probes, so these win over everything below.
//! 2. FAILING when a counting blocking probe FAILs, or the policy sets `min_score` (it is off
//!    unless set) and the stage's score over its *judged* blocking probes (PASS, WARN, FAIL) is
//!    below it. Under the default policy warnings alone never make a stage FAILING. A definite
//!    failure is stronger knowledge
//!    than a missing measurement, so FAILING beats a blocking ERROR/NO_DATA in the same report.
//!    Probes that could not be judged (ERROR, NO_DATA) never count against `min_score`: what
//!    missing data means is `on_unknown`'s to decide, not arithmetic's.
//! 3. UNKNOWN when a counting blocking probe is ERROR or NO_DATA (`PROBE_ERROR`, `NO_DATA`); a
//!    probe the policy names but the report lacks is an ERROR.
//! 4. DEGRADED on any counting WARN, or an advisory FAIL/ERROR/NO_DATA (an advisory probe never
//!    takes a stage beyond DEGRADED).
//! 5. HEALTHY otherwise.
//!
//! "Counting" probes are those for which [`ProbeSpec::counts_for_health`] holds: observe-only
//! and conversion-proof probes never count. SKIPPED probes are left out entirely. The reported
//! `score` (0–100) weighs PASS = 1, WARN = 0.5, anything else 0 over the blocking, counting,
//! non-skipped probes (advisory probes never count in it); a stage without any scores 100.
//!
//! **First evidence.** A stage has evidence once it has completed one evaluation (a report with
//! results; a failure to reach its checker is none). Until every stage has, the gate cannot open
//! and its allowed share is 0 (HOLD at 0%, not the pilot share), with `AWAITING_EVIDENCE` first
//! among the reasons (after an override's). Evidence is remembered across later outages, policy
//! changes (for the stages that remain) and snapshots.
//!
//! **Missing data** (`on_unknown`): with `fail`, an UNKNOWN stage counts as failing (probe-level
//! UNKNOWN uses the probe's effective policy; staleness and an unreachable checker use the
//! stage's). With `hold`, it holds the gate and closes it once the UNKNOWN episode has lasted
//! `unknown_grace` (`UNKNOWN_GRACE_EXCEEDED`). The episode starts when the stage became UNKNOWN:
//! for staleness that is the report's `checked_at + stale_after` (not when a tick noticed it),
//! for a stage that never reported it is when the stage was added. A stage that has never
//! reported always *holds* (even with `on_unknown = fail`): nothing has gone missing yet, it is
//! simply not yet evaluated; it closes the gate once its grace runs out.
//!
//! **Gate.** CLOSED when a stage closes it: FAILING or UNKNOWN-counted-as-failing (subject to
//! `close_after`, see below), UNKNOWN past its grace, or STALE with `on_unknown = fail` (both
//! time-driven, so they close at once: the grace and `stale_after` are their hysteresis).
//! `blocking_stage` is the lowest closing stage. An UNKNOWN stage holds the gate *where it is*:
//! a gate that is already CLOSED stays CLOSED while any stage is UNKNOWN (not knowing is no
//! evidence of recovery, so it must not lift the gate to the pilot share); `blocking_stage` is
//! then the lowest UNKNOWN stage. HOLD when something is UNKNOWN within its grace
//! or DEGRADED, when fewer than `close_after` consecutive failing evaluations have been seen
//! (`CLOSING`), when a conversion proof has not passed (`PROOF_PENDING`) or when the soak is not
//! served (`SOAKING`); `blocking_stage` is the lowest stage that is not HEALTHY, else the lowest
//! stage with a pending proof, else none. OPEN otherwise, ramping through `ramp`.
//!
//! **Hysteresis.** Every [`Engine::apply_report`] is one *evaluation*; ticks are not. A failing
//! condition counts at least as one failing evaluation (so a policy change that makes a stage
//! fail closes at once with the default `close_after = 1`). Once CLOSED, the gate stays CLOSED
//! while anything still fails: hysteresis delays closing, never re-opening to the pilot share.
//! Opening needs `open_after_evaluations` consecutive evaluations with every stage HEALTHY and
//! `open_after` of continuous all-HEALTHY time; any decision that sees a stage not HEALTHY
//! (including a tick that sees staleness) restarts both.
//!
//! **Ramp.** On opening the gate allows `ramp[0]`; after each `ramp_dwell` of continuous OPEN
//! time it moves one step up (steps are counted from the opening instant, so how often the
//! caller ticks does not matter). Anything short of OPEN resets the ramp: re-opening starts from
//! `ramp[0]` again.
//!
//! **Reports.** A report older (`checked_at`) than the one stored for its stage is ignored (a
//! late delivery must not roll the stage back); it is then not an evaluation. Results for probe
//! ids the policy does not name are dropped; the first result of a duplicated id wins. Before a
//! report is applied, the funnel is first brought to `now` with the reports it had, so that a
//! stage that went stale between two reports restarts the soak even if no tick saw it.
//!
//! **Phase.** `build` until the gate (as computed, not overridden) becomes OPEN, then `operate`
//! until an operator sets `build` again; setting `build` while the gate is OPEN keeps `build`
//! until the gate next opens.
//!
//! **Remediation** lists every non-PASS, non-SKIPPED result of the counting probes (advisory
//! included), every pending conversion proof, and one item per stage that has no usable report
//! (never reported and stale: `NO_DATA`; unreachable: `ERROR`; both with an empty probe, the
//! message naming the checker), each with badness 1.0 unless the checker gave one. A CLOSED gate
//! leads with what closes it (the items that make a closing stage close: its blocking FAILs,
//! its blocking WARNs when under `min_score`, its blocking ERROR/NO_DATA or missing report when
//! UNKNOWN). Then, in `build` phase, bottom-up, then FAIL, ERROR, NO_DATA, WARN, then badness
//! (worst first), then probe id; in `operate` phase by badness first (then status, stage, id).
//! In `operate` phase, when no stage is FAILING or UNKNOWN and no item's badness is above
//! `especially_broken` (an empty list included), `advice` says to work on the top of the funnel
//! ([`TOP_OF_FUNNEL_ADVICE`]).
//!
//! **Reasons** name a probe only when they are about one: a stage- or checker-level reason
//! (`UNREACHABLE`, `STALE`, `NOT_YET_EVALUATED`, a `min_score` failure) has none.
//!
//! **Override.** Forces the state until `until` (OPEN allows the override's own share, by
//! default the first ramp step, never more; CLOSED 0%),
//! puts `OVERRIDDEN` first in the reasons and leaves everything else (underlying state, stage
//! summaries, remediation, hysteresis, phase) as computed.
//!
//! **Snapshots** hold the last report of each stage and the memory. [`Engine::restore`] matches
//! stages by name: state for stages the policy no longer has is skipped, stages the snapshot does
//! not know start fresh (as a policy change would do); a snapshot that cannot be read, is of
//! another version, or carries reports of another funnel is rejected with
//! [`EngineError::SnapshotMismatch`].
//!
//! # Cost
//!
//! A decision is computed in two parts. `Funnel::advance` brings the memory to `now` and
//! works out every stage's health and the gate state from cached per-stage verdicts (a stage is
//! judged once per report, from a compact array of its probe statuses). A *material key* (what
//! [`GateDecision::materially_differs`] compares, by position instead of by name) then tells
//! whether anything changed, without allocating. The full [`GateDecision`], with its messages,
//! is built only when an [`Outcome`] carries it or [`Engine::decision`] asks for it, and is then
//! cached until the next event. One walk (`Funnel::describe`) feeds both the key and the full
//! decision, so they cannot disagree. Probe results are shared ([`ProbeList`]), never copied.
//!
//! # Where each rule lives
//!
//! | module | rule family |
//! |---|---|
//! | [`health`] | stage health and score: judging one report (time-independent) |
//! | [`readiness`] | missing data, UNKNOWN episodes and grace, bottom-up readiness |
//! | [`gate`] | the decision and its share: CLOSED / HOLD / OPEN, blocking stage, percent |
//! | [`hysteresis`] | healthy and failing streaks, the soak, the ramp |
//! | [`proof`] | conversion proof |
//! | [`remediation`] | phase, remediation order, advice |
//! | [`overrides`] | operator overrides |
//! | [`describe`] | the words of a decision: reasons, remediation items, summaries |
//! | [`key`] | material change, without building the decision |
//! | [`snapshot`] | state persistence and restore |
//!
//! `Funnel::advance` (below) is the one place that runs them in order for one decision.

mod describe;
mod fmt;
mod gate;
mod health;
mod hysteresis;
mod key;
mod overrides;
mod proof;
mod readiness;
mod remediation;
mod snapshot;
#[cfg(test)]
mod testkit;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::decision::{GateDecision, GateState, Override, Phase};
use crate::model::StageReport;
use crate::policy::{FunnelPolicy, PolicyError};
use crate::time::Timestamp;

use gate::Verdict;
use health::{StageState, evaluate_stage};
use key::MaterialKey;
use snapshot::Memory;

pub use remediation::TOP_OF_FUNNEL_ADVICE;
pub use snapshot::SNAPSHOT_VERSION;

/// Errors the engine returns: all are caller mistakes, never measurement problems.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// No funnel of that name was added.
    #[error("unknown funnel `{0}`")]
    UnknownFunnel(String),
    /// The funnel's policy has no stage of that name.
    #[error("funnel `{funnel}` has no stage `{stage}`")]
    UnknownStage { funnel: String, stage: String },
    /// The policy failed validation; every issue names its key.
    #[error(transparent)]
    InvalidPolicy(#[from] PolicyError),
    /// An override that cannot be applied (HOLD, or already expired).
    #[error("invalid override: {0}")]
    InvalidOverride(String),
    /// A snapshot that cannot be restored into this funnel.
    #[error("snapshot for funnel `{funnel}` does not match its policy: {reason}")]
    SnapshotMismatch { funnel: String, reason: String },
}

/// The result of feeding the engine one event for one funnel.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub funnel: String,
    pub decision: Arc<GateDecision>,
    /// The decision differs materially from the previous one (see
    /// [`GateDecision::materially_differs`]): store it, notify watchers, log.
    pub changed: bool,
    pub previous_state: Option<GateState>,
}

/// Everything the engine remembers about one funnel, serialisable so the coordinator can persist
/// it and restore it after a restart (last reports, hysteresis counters, phase, override).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelSnapshot {
    pub funnel: String,
    pub last_reports: Vec<StageReport>,
    pub memory: serde_json::Value,
}

/// Many funnels' gate state. Each funnel evolves independently: applying one report touches one
/// funnel only.
#[derive(Debug, Default)]
pub struct Engine {
    funnels: HashMap<String, Funnel>,
    /// Reused buffer for material keys (no allocation per decision).
    scratch: MaterialKey,
}

impl Engine {
    /// An engine with no funnels.
    pub fn new() -> Self {
        Engine::default()
    }

    /// Add a funnel, or replace its policy (state is kept for stages that still exist).
    ///
    /// The policy is validated first (keys quoted as `funnels.<name>…`). Replacing a policy is
    /// not an evaluation: the stored reports are re-read under the new policy and the funnel is
    /// re-decided at `now`.
    pub fn upsert_funnel(
        &mut self,
        policy: FunnelPolicy,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        policy.validate(&format!("funnels.{}", policy.name))?;
        let Engine { funnels, scratch } = self;
        if let Some(f) = funnels.get_mut(&policy.name) {
            if f.policy == policy {
                return Ok(f.decide_outcome(now, false, scratch));
            }
            // Stage indices may move: compare whole decisions, not index-based keys.
            let before = f.decision();
            f.replace_policy(policy, now);
            let mut outcome = f.decide_outcome(now, false, scratch);
            outcome.changed = before.materially_differs(&outcome.decision);
            return Ok(outcome);
        }
        let name = policy.name.clone();
        let mut f = Funnel::new(policy, now);
        let outcome = f.decide_outcome(now, false, scratch);
        funnels.insert(name, f);
        Ok(outcome)
    }

    /// Forget a funnel; true if it existed.
    pub fn remove_funnel(&mut self, funnel: &str) -> bool {
        self.funnels.remove(funnel).is_some()
    }

    /// Names of all funnels, sorted.
    pub fn funnel_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.funnels.keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// Number of funnels.
    pub fn len(&self) -> usize {
        self.funnels.len()
    }

    /// True when no funnel was added.
    pub fn is_empty(&self) -> bool {
        self.funnels.is_empty()
    }

    /// The policy a funnel runs under.
    pub fn policy(&self, funnel: &str) -> Option<&FunnelPolicy> {
        self.funnels.get(funnel).map(|f| &f.policy)
    }

    /// The current decision of a funnel (as of its last event or tick).
    pub fn decision(&self, funnel: &str) -> Option<Arc<GateDecision>> {
        self.funnels.get(funnel).map(Funnel::decision)
    }

    /// Apply one stage report (one evaluation of that stage) and re-decide that funnel only.
    ///
    /// A report with `failure` set makes the stage UNKNOWN (`UNREACHABLE`). A report older than
    /// the stored one is ignored (the funnel is only re-decided for time).
    pub fn apply_report(
        &mut self,
        report: StageReport,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let Engine { funnels, scratch } = self;
        let f = funnels
            .get_mut(&report.funnel)
            .ok_or_else(|| EngineError::UnknownFunnel(report.funnel.clone()))?;
        let Some(i) = f.policy.stage_index(&report.stage) else {
            return Err(EngineError::UnknownStage {
                funnel: report.funnel.clone(),
                stage: report.stage.clone(),
            });
        };
        // Bring the funnel to `now` with the reports it had: a stage that went stale since its
        // last report must break the healthy streak even if no tick noticed it.
        f.advance(now, false);
        if f.stages[i]
            .report
            .as_ref()
            .is_some_and(|old| report.checked_at < old.checked_at)
        {
            return Ok(f.decide_outcome(now, false, scratch));
        }
        f.store_report(i, report);
        Ok(f.decide_outcome(now, true, scratch))
    }

    /// Re-decide one funnel for the passage of time (staleness, grace, soak, ramp, expiry).
    pub fn tick_funnel(&mut self, funnel: &str, now: Timestamp) -> Result<Outcome, EngineError> {
        self.with_funnel(funnel, |f, scratch| f.decide_outcome(now, false, scratch))
    }

    /// Re-decide every funnel for the passage of time; returns the outcomes that changed,
    /// ordered by funnel name. Decisions that did not change materially are not built.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Outcome> {
        let Engine { funnels, scratch } = self;
        let mut out = Vec::new();
        for f in funnels.values_mut() {
            let (changed, previous_state) = f.decide(now, false, scratch);
            if changed {
                out.push(f.outcome(true, previous_state));
            }
        }
        out.sort_unstable_by(|a, b| a.funnel.cmp(&b.funnel));
        out
    }

    /// Re-judge every stage of every funnel from its stored report (not the cached verdicts) and
    /// re-decide every funnel at `now`; returns how many decisions changed materially.
    ///
    /// Like [`Engine::tick`], this is not an evaluation for the hysteresis counters. It is the
    /// full-evaluation path (used by the benchmark, and a safe way to recompute everything).
    pub fn evaluate_all(&mut self, now: Timestamp) -> usize {
        let Engine { funnels, scratch } = self;
        let mut changed = 0;
        for f in funnels.values_mut() {
            f.rejudge_all();
            if f.decide(now, false, scratch).0 {
                changed += 1;
            }
        }
        changed
    }

    /// Force the gate OPEN or CLOSED until `ov.until` (which must be after `now`).
    pub fn set_override(
        &mut self,
        funnel: &str,
        ov: Override,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let Engine { funnels, .. } = self;
        let gate = &funnels
            .get(funnel)
            .ok_or_else(|| EngineError::UnknownFunnel(funnel.to_string()))?
            .policy
            .gate;
        let ov = overrides::validate(ov, now, gate)?;
        self.with_funnel(funnel, |f, scratch| {
            f.mem.override_ = Some(ov);
            f.decide_outcome(now, false, scratch)
        })
    }

    /// Remove the override, if any, and re-decide.
    pub fn clear_override(&mut self, funnel: &str, now: Timestamp) -> Result<Outcome, EngineError> {
        self.with_funnel(funnel, |f, scratch| {
            f.mem.override_ = None;
            f.decide_outcome(now, false, scratch)
        })
    }

    /// Operator action: return a funnel to `build` (or mark it `operate`).
    pub fn set_phase(
        &mut self,
        funnel: &str,
        phase: Phase,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        self.with_funnel(funnel, |f, scratch| {
            f.mem.phase = phase;
            f.decide_outcome(now, false, scratch)
        })
    }

    /// Persistable state of one funnel.
    pub fn snapshot(&self, funnel: &str) -> Option<FunnelSnapshot> {
        self.funnels.get(funnel).map(Funnel::snapshot)
    }

    /// Restore a funnel's state (after `upsert_funnel` with its policy) and re-decide at `now`.
    ///
    /// Stages are matched by name; see the module documentation for what is skipped and what is
    /// rejected.
    pub fn restore(
        &mut self,
        snapshot: FunnelSnapshot,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let Engine { funnels, scratch } = self;
        let f = funnels
            .get_mut(&snapshot.funnel)
            .ok_or_else(|| EngineError::UnknownFunnel(snapshot.funnel.clone()))?;
        f.restore(snapshot, now)?;
        Ok(f.decide_outcome(now, false, scratch))
    }

    fn with_funnel(
        &mut self,
        funnel: &str,
        op: impl FnOnce(&mut Funnel, &mut MaterialKey) -> Outcome,
    ) -> Result<Outcome, EngineError> {
        let Engine { funnels, scratch } = self;
        let f = funnels
            .get_mut(funnel)
            .ok_or_else(|| EngineError::UnknownFunnel(funnel.to_string()))?;
        Ok(op(f, scratch))
    }
}

// ------------------------------------------------------------------------------------ funnel

#[derive(Debug)]
struct Funnel {
    policy: FunnelPolicy,
    stages: Vec<StageState>,
    mem: Memory,
    /// Instant and verdict of the last decision.
    at: Timestamp,
    verdict: Verdict,
    /// What [`GateDecision::materially_differs`] compares, of the last decision (`None` before
    /// the first), and that decision's override.
    key: Option<MaterialKey>,
    key_override: Option<Override>,
    /// The last decision, built when first asked for.
    built: OnceLock<Arc<GateDecision>>,
}

impl Funnel {
    fn new(policy: FunnelPolicy, now: Timestamp) -> Funnel {
        let stages = policy
            .stages
            .iter()
            .map(|sp| StageState::new(sp, now))
            .collect();
        Funnel {
            policy,
            stages,
            mem: Memory {
                added_at: now,
                phase: Phase::Build,
                state: None,
                since: now,
                underlying: None,
                healthy_streak: 0,
                healthy_since: None,
                failing_streak: 0,
                ramp: None,
                override_: None,
            },
            at: now,
            verdict: Verdict {
                underlying: GateState::Hold,
                state: GateState::Hold,
                percent: 0,
                blocking_stage: None,
                all_healthy: false,
                lowest_failing: None,
                failing_count: 0,
                soak_served: false,
                healthy_for: Duration::ZERO,
                held_closed: false,
                awaiting_evidence: 0,
            },
            key: None,
            key_override: None,
            built: OnceLock::new(),
        }
    }

    /// Swap in a new (validated) policy, keeping reports and UNKNOWN episodes of the stages that
    /// still exist.
    fn replace_policy(&mut self, policy: FunnelPolicy, now: Timestamp) {
        let mut old: HashMap<String, StageState> = HashMap::new();
        for (sp, st) in self
            .policy
            .stages
            .iter()
            .zip(std::mem::take(&mut self.stages))
        {
            old.insert(sp.name.clone(), st);
        }
        let mut stages = Vec::with_capacity(policy.stages.len());
        for sp in &policy.stages {
            let mut st = StageState::new(sp, now);
            if let Some(prev) = old.remove(&sp.name) {
                st.unknown_since = prev.unknown_since;
                st.evidenced = prev.evidenced;
                st.now = prev.now;
                if let Some(r) = prev.report {
                    let report = StageReport {
                        funnel: String::new(),
                        stage: String::new(),
                        results: r.results.into_vec(),
                        checked_at: r.checked_at,
                        duration_ms: r.duration_ms,
                        checker: r.checker,
                        failure: r.failure,
                    };
                    st.set_report(sp, report);
                }
                st.eval = evaluate_stage(&st, None);
            }
            stages.push(st);
        }
        self.policy = policy;
        self.stages = stages;
    }

    fn store_report(&mut self, i: usize, report: StageReport) {
        let sp = &self.policy.stages[i];
        let st = &mut self.stages[i];
        st.set_report(sp, report);
        st.rejudge();
    }

    fn rejudge_all(&mut self) {
        for st in &mut self.stages {
            st.rejudge();
        }
    }

    /// Advance the memory to `now` and compute the verdict (no decision is built): the rule
    /// families in order.
    fn advance(&mut self, now: Timestamp, evaluation: bool) -> Verdict {
        let gate = &self.policy.gate;
        let m = &mut self.mem;
        overrides::expire(m, now);
        let a = readiness::assess(&mut self.stages, now);
        let soak = hysteresis::count(m, &a, gate, now, evaluation);
        let previous = m.underlying;
        let (underlying, held_closed) = gate::underlying_state(previous, &a, &soak, gate);
        hysteresis::advance_ramp(&mut m.ramp, underlying, gate, now);
        remediation::enter_phase(m, previous, underlying);
        m.underlying = Some(underlying);

        let state = overrides::effective_state(m, underlying);
        if m.state != Some(state) {
            m.state = Some(state);
            m.since = now;
        }
        let percent = gate::share(
            state,
            a.awaiting_evidence > 0,
            overrides::open_share(m, gate),
            m.ramp,
            gate,
        );
        Verdict {
            underlying,
            state,
            percent,
            blocking_stage: gate::blocking_stage(underlying, &a),
            all_healthy: a.all_healthy,
            lowest_failing: a.lowest_failing,
            failing_count: soak.failing_count,
            soak_served: soak.served,
            healthy_for: soak.healthy_for,
            held_closed,
            awaiting_evidence: a.awaiting_evidence,
        }
    }

    /// Advance to `now` and work out whether the decision changed materially, without building
    /// it. Returns `(changed, previous state)`.
    fn decide(
        &mut self,
        now: Timestamp,
        evaluation: bool,
        scratch: &mut MaterialKey,
    ) -> (bool, Option<GateState>) {
        self.verdict = self.advance(now, evaluation);
        self.at = now;
        self.built = OnceLock::new();
        self.key_into(scratch);
        let previous_state = self.key.as_ref().and_then(|k| k.state);
        let override_changed = self.key_override != self.mem.override_;
        let changed = match &mut self.key {
            Some(key) => {
                let changed = *key != *scratch;
                std::mem::swap(key, scratch);
                changed
            }
            None => {
                self.key = Some(std::mem::take(scratch));
                true
            }
        };
        if override_changed {
            self.key_override = self.mem.override_.clone();
        }
        (changed || override_changed, previous_state)
    }

    fn decide_outcome(
        &mut self,
        now: Timestamp,
        evaluation: bool,
        scratch: &mut MaterialKey,
    ) -> Outcome {
        let (changed, previous_state) = self.decide(now, evaluation, scratch);
        self.outcome(changed, previous_state)
    }

    fn outcome(&self, changed: bool, previous_state: Option<GateState>) -> Outcome {
        Outcome {
            funnel: self.policy.name.clone(),
            decision: self.decision(),
            changed,
            previous_state,
        }
    }

    /// The decision as of the last [`Funnel::decide`], built on first request.
    fn decision(&self) -> Arc<GateDecision> {
        Arc::clone(self.built.get_or_init(|| Arc::new(self.build())))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::testkit::*;
    use super::*;

    #[test]
    fn a_new_funnel_allows_no_share_until_every_stage_has_reported() {
        let p = three_stages();
        let mut e = Engine::new();
        let o = e.upsert_funnel(p.clone(), at(0)).unwrap();
        assert!(o.changed);
        assert_eq!(o.previous_state, None);
        let d = &o.decision;
        // HOLD, but waiting for evidence, not piloting: no share at all.
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 0));
        assert_eq!(d.blocking_stage.as_deref(), Some("crm"));
        let mut want = vec![ReasonCode::AwaitingEvidence];
        want.extend([ReasonCode::NotYetEvaluated; 3]);
        assert_eq!(codes(d), want);
        assert_eq!(
            d.reasons[0].message,
            "waiting for the first evidence: 3 of 3 stages have not completed a check yet \
             (crm, automation, esp): no share is allowed until every stage has reported"
        );
        assert_eq!(
            (d.reasons[0].stage.as_deref(), d.reasons[0].probe.as_deref()),
            (None, None)
        );
        assert_eq!(health(d), vec![StageHealth::Unknown; 3]);
        assert_eq!(d.phase, Phase::Build);
        // Two of three stages healthy: still no share.
        e.apply_report(passing(&p, "crm", at(1)), at(1)).unwrap();
        let d = e
            .apply_report(passing(&p, "automation", at(1)), at(1))
            .unwrap()
            .decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 0));
        assert_eq!(d.blocking_stage.as_deref(), Some("esp"));
        assert_eq!(
            codes(&d),
            vec![ReasonCode::AwaitingEvidence, ReasonCode::NotYetEvaluated]
        );
        let d = e
            .apply_report(passing(&p, "esp", at(1)), at(1))
            .unwrap()
            .decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Open, 10));
    }

    #[test]
    fn an_unreachable_checker_is_no_evidence_but_a_later_outage_keeps_it() {
        let p = three_stages();
        let mut e = engine(&p);
        let down = |when| {
            let mut r = report("esp", vec![], when);
            r.failure = Some(CheckFailure {
                code: "UNREACHABLE".into(),
                checker: String::new(),
                message: "connection refused".into(),
            });
            r
        };
        e.apply_report(passing(&p, "crm", at(1)), at(1)).unwrap();
        e.apply_report(
            with(&p, "automation", at(1), vec![res("e", ProbeStatus::Warn)]),
            at(1),
        )
        .unwrap();
        let d = e.apply_report(down(at(1)), at(1)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 0));
        assert_eq!(d.reasons[0].code, ReasonCode::AwaitingEvidence);
        // esp reports once: every stage has evidence, automation's WARN holds at the pilot share.
        let d = e
            .apply_report(passing(&p, "esp", at(2)), at(2))
            .unwrap()
            .decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        // esp goes down later: UNKNOWN holds at the pilot share (the evidence was had).
        let d = e.apply_report(down(at(3)), at(3)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        assert!(!codes(&d).contains(&ReasonCode::AwaitingEvidence));
        // ... and so after a restore from a snapshot.
        let snap = e.snapshot("acme").unwrap();
        let mut e2 = engine(&p);
        let d = e2.restore(snap, at(4)).unwrap().decision;
        assert_eq!(d.allowed_rollout_percent, 5);
        // A stage added by a policy change has no evidence yet: no share until it reports.
        let mut q = p.clone();
        q.stages.push(stage("analytics", &["h"]));
        let d = e.upsert_funnel(q.clone(), at(5)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 0));
        assert_eq!(d.reasons[0].code, ReasonCode::AwaitingEvidence);
    }

    #[test]
    fn invalid_policy_is_rejected_with_its_key_path() {
        let mut p = three_stages();
        p.gate.ramp = vec![10, 50];
        let err = Engine::new().upsert_funnel(p, at(0)).unwrap_err();
        assert!(matches!(err, EngineError::InvalidPolicy(_)));
        assert!(
            err.to_string().contains("`funnels.acme.gate.ramp`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_funnel_and_stage_are_errors() {
        let p = three_stages();
        let mut e = engine(&p);
        let mut r = passing(&p, "crm", at(1));
        r.funnel = "other".into();
        assert_eq!(
            e.apply_report(r, at(1)).unwrap_err(),
            EngineError::UnknownFunnel("other".into())
        );
        let r = report("billing", vec![], at(1));
        assert_eq!(
            e.apply_report(r, at(1)).unwrap_err().to_string(),
            "funnel `acme` has no stage `billing`"
        );
        assert!(e.tick_funnel("other", at(1)).is_err());
        assert!(e.set_phase("other", Phase::Build, at(1)).is_err());
        assert!(e.snapshot("other").is_none());
        assert!(e.remove_funnel("acme"));
        assert!(e.is_empty());
    }

    #[test]
    fn tick_returns_only_changes_and_is_not_an_evaluation() {
        let mut p = three_stages();
        p.gate.open_after_evaluations = 2;
        let mut e = engine(&p);
        let mut q = p.clone();
        q.name = "beta".into();
        e.upsert_funnel(q.clone(), at(0)).unwrap();
        all_pass(&mut e, &p, at(0));
        assert!(e.tick(at(1)).is_empty());
        for _ in 0..5 {
            e.tick(at(2));
        }
        assert_eq!(
            e.decision("acme").unwrap().state,
            GateState::Hold,
            "ticks are not evaluations"
        );
        // beta's never-reported stages run out of grace; acme is healthy and unchanged.
        let changed = e.tick(mins(15));
        let names: Vec<&str> = changed.iter().map(|o| o.funnel.as_str()).collect();
        assert_eq!(names, vec!["beta"]);
        assert_eq!(e.funnel_names(), vec!["acme", "beta"]);
    }

    #[test]
    fn an_older_report_is_ignored_and_is_not_an_evaluation() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(10));
        let late = with(&p, "crm", at(5), vec![res("a", ProbeStatus::Fail)]);
        let d = e.apply_report(late, at(11)).unwrap().decision;
        assert_eq!(d.state, GateState::Open);
        assert_eq!(d.stages[0].checked_at, Some(at(10)));
    }

    #[test]
    fn evaluate_all_agrees_with_incremental_decisions() {
        let p = three_stages();
        let mut e = engine(&p);
        let r = with(
            &p,
            "crm",
            at(0),
            vec![res("a", ProbeStatus::Warn), res("b", ProbeStatus::Error)],
        );
        e.apply_report(r, at(0)).unwrap();
        e.apply_report(passing(&p, "esp", at(0)), at(0)).unwrap();
        let incremental = e.tick_funnel("acme", at(30)).unwrap().decision;
        assert_eq!(e.evaluate_all(at(30)), 0);
        assert_eq!(*e.decision("acme").unwrap(), *incremental);
    }

    #[test]
    fn changing_the_policy_keeps_the_state_of_stages_that_still_exist() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        e.tick_funnel("acme", mins(61)).unwrap();
        assert_eq!(e.decision("acme").unwrap().allowed_rollout_percent, 25);
        // Same policy: nothing changes.
        assert!(!e.upsert_funnel(p.clone(), mins(62)).unwrap().changed);
        // A new probe in crm and a new stage on top.
        let mut q = p.clone();
        q.stages[0].probes.push(ProbeSpec::new("new-probe", "sql"));
        q.stages.push(stage("analytics", &["h"]));
        let d = e.upsert_funnel(q.clone(), mins(63)).unwrap().decision;
        assert_eq!(d.state, GateState::Hold);
        assert_eq!(d.phase, Phase::Operate, "phase survives a policy change");
        assert_eq!(
            health(&d)[1..3],
            [StageHealth::Healthy, StageHealth::Healthy]
        );
        assert_eq!(health(&d)[3], StageHealth::Unknown);
        let missing = d
            .reasons
            .iter()
            .find(|r| r.probe.as_deref() == Some("new-probe"))
            .unwrap();
        assert_eq!(missing.code, ReasonCode::ProbeError);
        assert_eq!(e.policy("acme"), Some(&q));
        // The new stage's grace counts from when it was added.
        assert_eq!(
            e.tick_funnel("acme", mins(63 + 14)).unwrap().decision.state,
            GateState::Hold
        );
        assert_eq!(
            e.tick_funnel("acme", mins(63 + 15)).unwrap().decision.state,
            GateState::Closed
        );
    }

    #[test]
    fn the_decision_is_as_of_the_last_tick_even_when_nothing_changed() {
        let mut p = three_stages();
        p.gate.open_after = HumanDuration::from_secs(600);
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        assert!(e.tick(mins(4)).is_empty());
        let d = e.decision("acme").unwrap();
        assert_eq!(d.evaluated_at, mins(4));
        assert!(
            d.reasons[0].message.contains("healthy for 4m of 10m"),
            "{}",
            d.reasons[0].message
        );
        // Asking twice gives the same shared decision.
        assert!(Arc::ptr_eq(&d, &e.decision("acme").unwrap()));
    }

    #[test]
    fn a_policy_change_that_fails_a_stage_closes_at_once() {
        let p = three_stages();
        let mut e = engine(&p);
        let r = with(&p, "crm", at(0), vec![res("a", ProbeStatus::Warn)]);
        e.apply_report(r, at(0)).unwrap();
        all_pass(&mut e, &p, at(0));
        let r = with(&p, "crm", at(1), vec![res("a", ProbeStatus::Warn)]);
        assert_eq!(
            e.apply_report(r, at(1)).unwrap().decision.state,
            GateState::Hold
        );
        let mut q = p.clone();
        q.stages[0].min_score = Some(95.0);
        assert_eq!(
            e.upsert_funnel(q, at(2)).unwrap().decision.state,
            GateState::Closed
        );
    }
}
