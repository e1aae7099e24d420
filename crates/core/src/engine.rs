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
//! 2. FAILING when a counting blocking probe FAILs, or the stage's score over its *judged*
//!    probes (PASS, WARN, FAIL) is below `min_score`. A definite failure is stronger knowledge
//!    than a missing measurement, so FAILING beats a blocking ERROR/NO_DATA in the same report.
//!    Probes that could not be judged (ERROR, NO_DATA) never count against `min_score`: what
//!    missing data means is `on_unknown`'s to decide, not arithmetic's.
//! 3. UNKNOWN when a counting blocking probe is ERROR or NO_DATA (`PROBE_ERROR`, `NO_DATA`); a
//!    probe the policy names but the report lacks is an ERROR.
//! 4. DEGRADED on any counting WARN, or an advisory FAIL/ERROR/NO_DATA.
//! 5. HEALTHY otherwise.
//!
//! "Counting" probes are those for which [`ProbeSpec::counts_for_health`] holds: observe-only
//! and conversion-proof probes never count. SKIPPED probes are left out entirely. The reported
//! `score` (0–100) weighs PASS = 1, WARN = 0.5, anything else 0 over the counting, non-skipped
//! probes; a stage without any scores 100.
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
//! (never reported and stale: `NO_DATA` with an empty probe; unreachable: `ERROR` naming the
//! checker), each with badness 1.0 unless the checker gave one. In `build` phase it is ordered
//! bottom-up, then FAIL, ERROR, NO_DATA, WARN, then badness (worst first), then probe id; in
//! `operate` phase by badness first (then status, stage, id). In `operate` phase, when no item's
//! badness is above `especially_broken` (an empty list included), `advice` says to work on the
//! top of the funnel ([`TOP_OF_FUNNEL_ADVICE`]).
//!
//! **Override.** Forces the state (OPEN allows the last ramp step, CLOSED 0%) until `until`,
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

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::decision::{
    GateDecision, GateState, Override, Phase, ProbeList, Readiness, Reason, ReasonCode,
    RemediationItem, StageHealth, StageSummary,
};
use crate::model::{CheckFailure, ProbeResult, ProbeStatus, Severity, StageReport, badness};
use crate::policy::{FunnelPolicy, OnUnknown, PolicyError, ProbeSpec, StagePolicy};
use crate::time::{Timestamp, format_duration};

/// The advice given in operate phase when no metric is especially broken.
pub const TOP_OF_FUNNEL_ADVICE: &str =
    "nothing is especially broken: work on the top of the funnel (grow new audiences)";

/// Version of the serialised [`FunnelSnapshot::memory`].
pub const SNAPSHOT_VERSION: u32 = 1;

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

// ------------------------------------------------------------------------------------ memory

/// The serialisable part of a funnel's state (besides the reports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Memory {
    /// When the funnel was added.
    added_at: Timestamp,
    phase: Phase,
    /// Effective state of the last decision, and since when.
    state: Option<GateState>,
    since: Timestamp,
    /// Computed (pre-override) state of the last decision.
    underlying: Option<GateState>,
    /// Consecutive evaluations with every stage HEALTHY.
    healthy_streak: u32,
    /// Start of the current all-HEALTHY period.
    healthy_since: Option<Timestamp>,
    /// Consecutive failing evaluations.
    failing_streak: u32,
    /// Position on the ramp while OPEN.
    ramp: Option<RampMemory>,
    #[serde(rename = "override")]
    override_: Option<Override>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RampMemory {
    step: usize,
    /// When the current step began.
    since: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageMemory {
    stage: String,
    unknown_since: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotMemory {
    version: u32,
    gate: Memory,
    stages: Vec<StageMemory>,
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

/// Exactly what [`GateDecision::materially_differs`] compares, without names or messages (stage
/// and probe positions instead), so that deciding whether anything changed allocates nothing.
/// The override is compared separately.
#[derive(Debug, Clone, Default, PartialEq)]
struct MaterialKey {
    state: Option<GateState>,
    underlying: Option<GateState>,
    percent: u32,
    blocking_stage: Option<usize>,
    phase: Phase,
    advice: bool,
    /// Each reason's code, stage position and probe reference, packed ([`reason_key`]).
    reasons: Keys<6>,
    /// Each stage's health and readiness, packed.
    stages: Keys<6>,
}

/// Pack a reason's identity: code (8 bits), stage position + 1 (24 bits, 0 = none), probe
/// reference (32 bits: 0 none, 1 the checker, 2 + position).
fn reason_key(code: ReasonCode, stage: Option<usize>, probe: ProbeRef) -> u64 {
    let stage = stage.map_or(0, |i| (i as u64 + 1) & 0xff_ffff);
    let probe = match probe {
        ProbeRef::None => 0,
        ProbeRef::Checker => 1,
        ProbeRef::Probe(j) => (j as u64 + 2) & 0xffff_ffff,
    };
    ((code as u64) << 56) | (stage << 32) | probe
}

/// A short list of packed keys: inline up to `N` (a decision usually has a handful of reasons
/// and stages), on the heap beyond.
#[derive(Debug, Clone)]
struct Keys<const N: usize> {
    len: usize,
    inline: [u64; N],
    spill: Vec<u64>,
}

impl<const N: usize> Default for Keys<N> {
    fn default() -> Self {
        Keys {
            len: 0,
            inline: [0; N],
            spill: Vec::new(),
        }
    }
}

impl<const N: usize> Keys<N> {
    fn clear(&mut self) {
        self.len = 0;
        self.spill.clear();
    }

    fn push(&mut self, key: u64) {
        if self.len < N {
            self.inline[self.len] = key;
        } else {
            self.spill.push(key);
        }
        self.len += 1;
    }
}

impl<const N: usize> PartialEq for Keys<N> {
    fn eq(&self, other: &Self) -> bool {
        let n = self.len.min(N);
        self.len == other.len && self.inline[..n] == other.inline[..n] && self.spill == other.spill
    }
}

/// What a reason's `probe` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeRef {
    None,
    /// A probe of the stage, by position in the policy.
    Probe(usize),
    /// The stage's checker (from the policy).
    Checker,
}

/// One probe of a stage as judging needs it: what the policy says about it (precomputed at
/// upsert) and the status of its latest result. Two bytes, so that a stage's probes take a
/// cache line or two and re-judging every funnel stays cheap.
#[derive(Debug, Clone, Copy)]
struct ProbeMeta {
    flags: u8,
    /// Status of the stored report's result for this probe (meaningless without results).
    status: ProbeStatus,
}

impl ProbeMeta {
    const COUNTS: u8 = 1;
    const BLOCKING: u8 = 2;
    const PROOF: u8 = 4;
    const UNKNOWN_FAIL: u8 = 8;

    fn new(sp: &StagePolicy, p: &ProbeSpec) -> ProbeMeta {
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
    fn counts(self) -> bool {
        self.flags & Self::COUNTS != 0
    }

    fn blocking(self) -> bool {
        self.flags & Self::BLOCKING != 0
    }

    /// An enforced conversion-proof probe.
    fn proof(self) -> bool {
        self.flags & Self::PROOF != 0
    }

    /// Effective `on_unknown` is `fail`.
    fn unknown_fail(self) -> bool {
        self.flags & Self::UNKNOWN_FAIL != 0
    }
}

/// The last report of a stage, its results aligned with the policy's probes (one per probe, in
/// policy order; a missing one is a synthesised ERROR).
#[derive(Debug, Clone)]
struct StoredReport {
    checked_at: Timestamp,
    duration_ms: u64,
    checker: String,
    failure: Option<CheckFailure>,
    results: ProbeList,
}

/// Counts over a stage's counting probes, and the flags health is made of.
#[derive(Debug, Clone, Default, PartialEq)]
struct Tally {
    pass: u32,
    warn: u32,
    fail: u32,
    error: u32,
    no_data: u32,
    skipped: u32,
    /// Sum of weights of counting, non-skipped probes, and their points (PASS 1, WARN 0.5).
    weight: f64,
    points: f64,
    /// The same over judged probes only (PASS, WARN, FAIL).
    judged_weight: f64,
    judged_points: f64,
    blocking_fail: bool,
    unknown: bool,
    unknown_fail: bool,
    degraded: bool,
    /// An enforced proof probe is not PASS.
    proof_pending: bool,
}

impl Tally {
    const EMPTY: Tally = Tally {
        pass: 0,
        warn: 0,
        fail: 0,
        error: 0,
        no_data: 0,
        skipped: 0,
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
struct StageEval {
    tally: Tally,
    /// Health from the report's content alone (ignoring staleness).
    health: StageHealth,
    score: f64,
    judged_score: f64,
    score_fail: bool,
    /// Judged from results (not a missing or failed report).
    from_results: bool,
    summary: String,
}

impl StageEval {
    /// The state before any report has been judged.
    const EMPTY: StageEval = StageEval {
        tally: Tally::EMPTY,
        health: StageHealth::Unknown,
        score: 0.0,
        judged_score: 0.0,
        score_fail: false,
        from_results: false,
        summary: String::new(),
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Health comes from a fresh report's content.
    Content,
    NotYetEvaluated,
    Unreachable,
    Stale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// Does not hold the gate.
    No,
    /// Holds the gate (UNKNOWN within grace, DEGRADED).
    Holds,
    /// Closes the gate after `close_after` failing evaluations.
    Hysteresis,
    /// Closes the gate at once.
    Immediate,
}

/// A stage as of the last decision.
#[derive(Debug, Clone, Copy)]
struct StageNow {
    health: StageHealth,
    readiness: Readiness,
    cause: Cause,
    on_unknown: OnUnknown,
    closing: Closing,
    unknown_for: Duration,
    past_grace: bool,
    age: Duration,
    proof_pending: bool,
}

impl Default for StageNow {
    fn default() -> Self {
        StageNow {
            health: StageHealth::Unknown,
            readiness: Readiness::NotReady,
            cause: Cause::NotYetEvaluated,
            on_unknown: OnUnknown::Hold,
            closing: Closing::Holds,
            unknown_for: Duration::ZERO,
            past_grace: false,
            age: Duration::ZERO,
            proof_pending: false,
        }
    }
}

/// Probes per stage kept inline in [`StageState`] (more go to the heap).
const INLINE_PROBES: usize = 32;

/// A stage's [`ProbeMeta`]s: inline up to [`INLINE_PROBES`] (saves a cache miss per stage when
/// re-judging every funnel), on the heap beyond.
#[derive(Debug)]
struct Metas {
    len: usize,
    inline: [ProbeMeta; INLINE_PROBES],
    spill: Vec<ProbeMeta>,
}

impl Metas {
    fn new(metas: Vec<ProbeMeta>) -> Metas {
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
struct StageState {
    probes: Metas,
    /// The policy's `stale_after`, `unknown_grace`, `on_unknown` and `min_score`, kept here so
    /// that deciding does not touch the policy.
    stale_after: Duration,
    unknown_grace: Duration,
    on_unknown: OnUnknown,
    min_score: f64,
    /// Probe weights, in policy order; empty when every weight is 1.
    weights: Vec<f64>,
    /// The policy's probe ids, each followed by `\n`, in one buffer: checking that a report is
    /// already in policy order touches one allocation, not one per probe.
    ids: String,
    /// Probe id → position in the policy's probe list.
    index: HashMap<Box<str>, usize>,
    has_proof: bool,
    report: Option<StoredReport>,
    eval: StageEval,
    /// Start of the current UNKNOWN episode.
    unknown_since: Option<Timestamp>,
    now: StageNow,
}

/// The funnel-level outcome of `Funnel::advance`.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    underlying: GateState,
    state: GateState,
    percent: u32,
    blocking_stage: Option<usize>,
    all_healthy: bool,
    /// Lowest stage closing the gate subject to `close_after`, if any.
    lowest_failing: Option<usize>,
    failing_count: u32,
    soak_served: bool,
    healthy_for: Duration,
    /// CLOSED only because a stage is UNKNOWN while the gate was already CLOSED.
    held_closed: bool,
}

impl StageState {
    fn new(sp: &StagePolicy, unknown_since: Timestamp) -> StageState {
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
            report: None,
            eval: StageEval::EMPTY,
            unknown_since: Some(unknown_since),
            now: StageNow::default(),
        };
        st.eval = evaluate_stage(&st, None);
        st
    }

    /// Store a report (its results aligned with the policy's probes) and their statuses.
    fn set_report(&mut self, sp: &StagePolicy, report: StageReport) {
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
    fn rejudge(&mut self) {
        let mut prev = std::mem::replace(&mut self.eval, StageEval::EMPTY);
        self.eval = evaluate_stage(self, Some(&mut prev));
    }

    /// Are these results exactly the policy's probes, in order? (Ids are validated idents, so
    /// they contain no `\n`; a result id that does cannot match.)
    fn in_policy_order(&self, results: &[ProbeResult]) -> bool {
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
    fn align(&self, sp: &StagePolicy, results: Vec<ProbeResult>, at: Timestamp) -> ProbeList {
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

fn missing_result(spec: &ProbeSpec, at: Timestamp) -> ProbeResult {
    ProbeResult::error(
        spec.id.clone(),
        spec.kind.clone(),
        format!("checker returned no result for probe `{}`", spec.id),
        at,
    )
}

/// Judge a stage's report (time-independent). Reuses `prev`'s summary text when the tally is
/// unchanged.
fn evaluate_stage(st: &StageState, prev: Option<&mut StageEval>) -> StageEval {
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
                if m.blocking() {
                    t.blocking_fail = true;
                } else {
                    t.degraded = true;
                }
            }
            ProbeStatus::Error | ProbeStatus::NoData => {
                if status == ProbeStatus::Error {
                    t.error += 1;
                } else {
                    t.no_data += 1;
                }
                t.weight += w;
                if m.blocking() {
                    t.unknown = true;
                    t.unknown_fail |= m.unknown_fail();
                } else {
                    t.degraded = true;
                }
            }
            ProbeStatus::Skipped => t.skipped += 1,
        }
    }
    let score = percent_score(t.points, t.weight);
    let judged_score = percent_score(t.judged_points, t.judged_weight);
    let score_fail = judged_score < st.min_score;
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

fn percent_score(points: f64, weight: f64) -> f64 {
    if weight > 0.0 {
        (100.0 * points) / weight
    } else {
        100.0
    }
}

fn content_summary(t: &Tally, score: f64) -> String {
    let judged = t.pass + t.warn + t.fail + t.error + t.no_data;
    if judged == 0 {
        return if t.skipped == 0 {
            "no counting probes".to_string()
        } else {
            format!("all {} counting probes skipped", t.skipped)
        };
    }
    let mut s = String::with_capacity(64);
    if judged == t.pass {
        let _ = write!(s, "all {} probes pass", t.pass);
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
    if t.skipped > 0 {
        let _ = write!(s, ", {} skipped", t.skipped);
    }
    s
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

    /// Advance the memory to `now` and compute the verdict (no decision is built).
    fn advance(&mut self, now: Timestamp, evaluation: bool) -> Verdict {
        let gate = &self.policy.gate;
        let m = &mut self.mem;
        if m.override_.as_ref().is_some_and(|o| now >= o.until) {
            m.override_ = None;
        }

        let mut all_healthy = true;
        let mut failing_now = false;
        let mut immediate = false;
        let mut proof_pending = false;
        let mut lowest_closing = None;
        let mut lowest_failing = None;
        let mut lowest_not_healthy = None;
        let mut lowest_unknown = None;
        let mut lowest_proof = None;
        let mut below_ready = true;
        for (i, st) in self.stages.iter_mut().enumerate() {
            let mut sn = classify(st, now);
            if sn.health == StageHealth::Unknown {
                let since = *st.unknown_since.get_or_insert(sn_onset(st, now));
                sn.unknown_for = now.since(since);
                sn.past_grace =
                    sn.on_unknown == OnUnknown::Hold && sn.unknown_for >= st.unknown_grace;
                sn.closing = match (sn.on_unknown, sn.cause) {
                    (OnUnknown::Fail, Cause::Stale) => Closing::Immediate,
                    (OnUnknown::Fail, _) => Closing::Hysteresis,
                    (OnUnknown::Hold, _) if sn.past_grace => Closing::Immediate,
                    (OnUnknown::Hold, _) => Closing::Holds,
                };
            } else {
                st.unknown_since = None;
                sn.closing = match sn.health {
                    StageHealth::Failing => Closing::Hysteresis,
                    StageHealth::Degraded => Closing::Holds,
                    _ => Closing::No,
                };
            }
            let passes = sn.health.passes();
            sn.readiness = match (passes, below_ready) {
                (true, true) => Readiness::Ready,
                (true, false) => Readiness::Blocked,
                (false, _) => Readiness::NotReady,
            };
            below_ready &= sn.readiness == Readiness::Ready;
            sn.proof_pending =
                st.has_proof && (sn.cause != Cause::Content || st.eval.tally.proof_pending);
            if sn.proof_pending {
                proof_pending = true;
                lowest_proof.get_or_insert(i);
            }
            if sn.health != StageHealth::Healthy {
                all_healthy = false;
                lowest_not_healthy.get_or_insert(i);
            }
            if sn.health == StageHealth::Unknown {
                lowest_unknown.get_or_insert(i);
            }
            match sn.closing {
                Closing::Hysteresis => {
                    failing_now = true;
                    lowest_failing.get_or_insert(i);
                    lowest_closing.get_or_insert(i);
                }
                Closing::Immediate => {
                    immediate = true;
                    lowest_closing.get_or_insert(i);
                }
                Closing::Holds | Closing::No => {}
            }
            st.now = sn;
        }

        if evaluation {
            m.failing_streak = if failing_now || immediate {
                m.failing_streak.saturating_add(1)
            } else {
                0
            };
            m.healthy_streak = if all_healthy {
                m.healthy_streak.saturating_add(1)
            } else {
                0
            };
        }
        if all_healthy {
            m.healthy_since.get_or_insert(now);
        } else {
            m.healthy_streak = 0;
            m.healthy_since = None;
        }
        let healthy_for = m.healthy_since.map_or(Duration::ZERO, |s| now.since(s));
        let soak_served = all_healthy
            && m.healthy_streak >= gate.open_after_evaluations
            && healthy_for >= gate.open_after.get();
        let failing_count = if failing_now {
            m.failing_streak.max(1)
        } else {
            0
        };
        let prev = m.underlying;
        let was_closed = prev == Some(GateState::Closed);
        // UNKNOWN holds the gate where it is: it never lifts a CLOSED gate to the pilot share.
        let held_closed = was_closed && !immediate && !failing_now && lowest_unknown.is_some();
        let closed = immediate
            || (failing_now && (was_closed || failing_count >= gate.close_after))
            || held_closed;
        let underlying = if closed {
            GateState::Closed
        } else if failing_now || !all_healthy || proof_pending || !soak_served {
            GateState::Hold
        } else {
            GateState::Open
        };

        let last = gate.ramp.len().saturating_sub(1);
        if underlying == GateState::Open {
            let r = m.ramp.get_or_insert(RampMemory {
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
            if prev != Some(GateState::Open) {
                m.phase = Phase::Operate;
            }
        } else {
            m.ramp = None;
        }
        m.underlying = Some(underlying);

        let state = m.override_.as_ref().map_or(underlying, |o| o.state);
        if m.state != Some(state) {
            m.state = Some(state);
            m.since = now;
        }
        let percent = match (state, m.override_.is_some()) {
            (GateState::Closed, _) => 0,
            (GateState::Hold, _) => gate.pilot_percent,
            (GateState::Open, true) => gate.ramp.last().copied().unwrap_or(100),
            (GateState::Open, false) => {
                let step = m.ramp.map_or(0, |r| r.step);
                gate.ramp.get(step).copied().unwrap_or(100)
            }
        };
        let blocking_stage = match underlying {
            GateState::Closed => lowest_closing.or(lowest_unknown),
            GateState::Hold => lowest_not_healthy.or(lowest_proof),
            GateState::Open => None,
        };
        Verdict {
            underlying,
            state,
            percent,
            blocking_stage,
            all_healthy,
            lowest_failing,
            failing_count,
            soak_served,
            healthy_for,
            held_closed,
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

    fn key_into(&self, key: &mut MaterialKey) {
        let v = &self.verdict;
        key.reasons.clear();
        let mut sink = KeySink {
            reasons: &mut key.reasons,
            max_badness: 0.0,
        };
        self.describe(&mut sink);
        let max_badness = sink.max_badness;
        key.state = Some(v.state);
        key.underlying = Some(v.underlying);
        key.percent = v.percent;
        key.blocking_stage = v.blocking_stage;
        key.phase = self.mem.phase;
        key.advice = self.advice(max_badness);
        key.stages.clear();
        for st in &self.stages {
            key.stages
                .push(((st.now.health as u64) << 8) | st.now.readiness as u64);
        }
    }

    fn advice(&self, max_badness: f64) -> bool {
        self.mem.phase == Phase::Operate && max_badness <= self.policy.gate.especially_broken
    }

    /// Build the full decision of the last [`Funnel::decide`].
    fn build(&self) -> GateDecision {
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
        match m.phase {
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
            remediation: items.into_iter().map(|(_, it)| it).collect(),
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
    fn describe<S: Sink>(&self, sink: &mut S) {
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
                || {
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
                        v.underlying
                    )
                },
            );
        }
        for (i, (sp, st)) in self.policy.stages.iter().zip(&self.stages).enumerate() {
            stage_reasons(sp, st, i, sink);
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
                proof_reasons(sp, st, i, sink);
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

    fn snapshot(&self) -> FunnelSnapshot {
        let name = &self.policy.name;
        let last_reports = self
            .policy
            .stages
            .iter()
            .zip(&self.stages)
            .filter_map(|(sp, st)| {
                st.report.as_ref().map(|r| StageReport {
                    funnel: name.clone(),
                    stage: sp.name.clone(),
                    results: r.results.to_vec(),
                    checked_at: r.checked_at,
                    duration_ms: r.duration_ms,
                    checker: r.checker.clone(),
                    failure: r.failure.clone(),
                })
            })
            .collect();
        let memory = SnapshotMemory {
            version: SNAPSHOT_VERSION,
            gate: self.mem.clone(),
            stages: self
                .policy
                .stages
                .iter()
                .zip(&self.stages)
                .map(|(sp, st)| StageMemory {
                    stage: sp.name.clone(),
                    unknown_since: st.unknown_since,
                })
                .collect(),
        };
        // Serialising these plain structs cannot fail; a `null` would be rejected on restore.
        let memory = serde_json::to_value(memory).unwrap_or(serde_json::Value::Null);
        FunnelSnapshot {
            funnel: name.clone(),
            last_reports,
            memory,
        }
    }

    fn restore(&mut self, snapshot: FunnelSnapshot, now: Timestamp) -> Result<(), EngineError> {
        let funnel = snapshot.funnel;
        let mismatch = |reason: String| EngineError::SnapshotMismatch {
            funnel: funnel.clone(),
            reason,
        };
        let mem: SnapshotMemory = serde_json::from_value(snapshot.memory)
            .map_err(|e| mismatch(format!("memory cannot be read: {e}")))?;
        if mem.version != SNAPSHOT_VERSION {
            return Err(mismatch(format!(
                "memory version {} is not the supported version {SNAPSHOT_VERSION}",
                mem.version
            )));
        }
        let mut reports: HashMap<String, StageReport> = HashMap::new();
        for r in snapshot.last_reports {
            if r.funnel != funnel {
                return Err(mismatch(format!(
                    "it carries a report of funnel `{}`",
                    r.funnel
                )));
            }
            if !mem.stages.iter().any(|s| s.stage == r.stage) {
                return Err(mismatch(format!(
                    "it carries a report of stage `{}` its memory does not know",
                    r.stage
                )));
            }
            if reports.contains_key(&r.stage) {
                return Err(mismatch(format!(
                    "it carries two reports of stage `{}`",
                    r.stage
                )));
            }
            reports.insert(r.stage.clone(), r);
        }
        let mut stages = Vec::with_capacity(self.policy.stages.len());
        for sp in &self.policy.stages {
            let mut st = StageState::new(sp, now);
            if let Some(sm) = mem.stages.iter().find(|s| s.stage == sp.name) {
                st.unknown_since = sm.unknown_since;
            }
            if let Some(r) = reports.remove(&sp.name) {
                st.set_report(sp, r);
            }
            st.eval = evaluate_stage(&st, None);
            stages.push(st);
        }
        self.stages = stages;
        self.mem = mem.gate;
        Ok(())
    }
}

/// Classify a stage at `now` (health, cause, effective `on_unknown`; closing is set later).
fn classify(st: &StageState, now: Timestamp) -> StageNow {
    let mut sn = StageNow {
        on_unknown: st.on_unknown,
        ..StageNow::default()
    };
    match &st.report {
        None => {
            // Never reported: always holds, whatever `on_unknown` says (nothing went missing).
            sn.cause = Cause::NotYetEvaluated;
            sn.on_unknown = OnUnknown::Hold;
        }
        Some(r) if r.failure.is_some() => sn.cause = Cause::Unreachable,
        Some(r) => {
            sn.age = now.since(r.checked_at);
            if sn.age > st.stale_after {
                sn.cause = Cause::Stale;
            } else {
                sn.cause = Cause::Content;
                sn.health = st.eval.health;
                if sn.health == StageHealth::Unknown {
                    // The effective policy of the probes that made it UNKNOWN: `fail` if any.
                    sn.on_unknown = if st.eval.tally.unknown_fail {
                        OnUnknown::Fail
                    } else {
                        OnUnknown::Hold
                    };
                }
            }
        }
    }
    sn
}

/// When the current UNKNOWN episode of a stage began, if it is only being noticed now.
fn sn_onset(st: &StageState, now: Timestamp) -> Timestamp {
    match &st.report {
        Some(r) if r.failure.is_none() => {
            let stale_at = r
                .checked_at
                .add(st.stale_after)
                .add(Duration::from_millis(1));
            if now.since(r.checked_at) > st.stale_after {
                stale_at.min(now)
            } else {
                now
            }
        }
        _ => now,
    }
}

/// Receives what [`Funnel::describe`] finds. Messages and items are closures, so that the key
/// sink pays for no formatting.
trait Sink {
    fn reason(
        &mut self,
        code: ReasonCode,
        stage: Option<usize>,
        probe: ProbeRef,
        value: Option<f64>,
        threshold: Option<f64>,
        message: impl FnOnce() -> String,
    );

    /// A remediation item of stage `stage` with this badness.
    fn item(&mut self, stage: usize, badness: f64, item: impl FnOnce() -> RemediationItem);
}

/// Builds the full reasons and remediation.
struct FullSink<'a> {
    policy: &'a FunnelPolicy,
    reasons: Vec<Reason>,
    items: Vec<(usize, RemediationItem)>,
    max_badness: f64,
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
            (ProbeRef::Checker, Some(sp)) => Some(sp.checker_name().to_string()),
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

    fn item(&mut self, stage: usize, badness: f64, item: impl FnOnce() -> RemediationItem) {
        self.max_badness = self.max_badness.max(badness);
        self.items.push((stage, item()));
    }
}

/// Records only what [`GateDecision::materially_differs`] compares.
struct KeySink<'a> {
    reasons: &'a mut Keys<6>,
    max_badness: f64,
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

    fn item(&mut self, _stage: usize, badness: f64, _item: impl FnOnce() -> RemediationItem) {
        self.max_badness = self.max_badness.max(badness);
    }
}

const FAIL_NOTE: &str = " (on_unknown = fail: counts as failing)";

fn item(
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
fn stage_reasons<S: Sink>(sp: &StagePolicy, st: &StageState, i: usize, sink: &mut S) {
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
            sink.item(i, 1.0, || {
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
            let checker = sp.checker_name();
            sink.item(i, 1.0, || {
                item(sp, checker, ProbeStatus::Error, 1.0, message(), None, None)
            });
            sink.reason(
                ReasonCode::Unreachable,
                Some(i),
                ProbeRef::Checker,
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
            sink.item(i, 1.0, || {
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
        if t.warn + t.fail + t.error + t.no_data > 0 {
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
                sink.item(i, badness, || {
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
        if st.eval.score_fail {
            sink.reason(
                ReasonCode::StageFailing,
                Some(i),
                ProbeRef::None,
                Some(st.eval.judged_score),
                Some(sp.min_score),
                || {
                    format!(
                        "{stage}: score {} below min_score {}",
                        fmt_num(st.eval.judged_score),
                        fmt_num(sp.min_score)
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

/// A stage's pending conversion proofs: reasons and remediation items.
fn proof_reasons<S: Sink>(sp: &StagePolicy, st: &StageState, i: usize, sink: &mut S) {
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
                sink.item(i, badness, || {
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

/// A stage's one-line summary: why it has its health.
fn stage_summary(sp: &StagePolicy, st: &StageState) -> String {
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
fn result_badness(r: &ProbeResult) -> f64 {
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
fn probe_message(
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

fn push_detail(s: &mut String, message: &str) {
    if !message.is_empty() {
        let _ = write!(s, " ({message})");
    }
}

fn with_unit(v: f64, unit: &str) -> String {
    match unit {
        "" => fmt_num(v),
        "%" | "percent" => format!("{}%", fmt_num(v)),
        u => format!("{} {u}", fmt_num(v)),
    }
}

/// A number as people read it: at least one decimal, a few more for small values.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    let decimals = if a >= 100.0 || a == 0.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        4
    };
    let mut s = format!("{v:.decimals$}");
    while s.ends_with('0') && !s.ends_with(".0") {
        s.pop();
    }
    s
}

/// A duration rounded to whole seconds (milliseconds below one second).
fn fmt_dur(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format_duration(Duration::from_secs(d.as_secs()))
    } else {
        format_duration(d)
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::GatePolicy;
    use crate::time::HumanDuration;

    const T0: i64 = 1_714_564_800_000;

    fn at(secs: i64) -> Timestamp {
        Timestamp(T0 + secs * 1000)
    }

    fn mins(m: i64) -> Timestamp {
        at(m * 60)
    }

    fn stage(name: &str, probes: &[&str]) -> StagePolicy {
        let mut s = StagePolicy::new(name);
        s.stale_after = HumanDuration::from_secs(30 * 86_400);
        s.probes = probes.iter().map(|id| ProbeSpec::new(*id, "sql")).collect();
        s
    }

    /// Opens on the first all-healthy evaluation; ramp 10 → 25 → 50 → 100, one hour a step.
    fn fast_gate() -> GatePolicy {
        GatePolicy {
            open_after: HumanDuration::from_secs(0),
            open_after_evaluations: 1,
            ..GatePolicy::default()
        }
    }

    fn funnel(stages: Vec<StagePolicy>) -> FunnelPolicy {
        FunnelPolicy {
            name: "acme".into(),
            stages,
            gate: fast_gate(),
        }
    }

    /// crm (a, b, c, d) → automation (e, f) → esp (g).
    fn three_stages() -> FunnelPolicy {
        funnel(vec![
            stage("crm", &["a", "b", "c", "d"]),
            stage("automation", &["e", "f"]),
            stage("esp", &["g"]),
        ])
    }

    fn res(id: &str, status: ProbeStatus) -> ProbeResult {
        ProbeResult {
            steps: Vec::new(),
            id: id.into(),
            kind: "sql".into(),
            status,
            value: None,
            unit: String::new(),
            threshold: None,
            badness: if matches!(status, ProbeStatus::Pass | ProbeStatus::Skipped) {
                0.0
            } else {
                1.0
            },
            message: String::new(),
            observed_at: Timestamp(T0),
            duration_ms: 1,
            sample_size: None,
            window: None,
            evidence: Default::default(),
        }
    }

    fn val(id: &str, status: ProbeStatus, value: f64, threshold: f64) -> ProbeResult {
        ProbeResult {
            value: Some(value),
            threshold: Some(threshold),
            badness: if status == ProbeStatus::Pass {
                0.0
            } else {
                badness(value, threshold)
            },
            ..res(id, status)
        }
    }

    fn report(stage: &str, results: Vec<ProbeResult>, when: Timestamp) -> StageReport {
        StageReport {
            funnel: "acme".into(),
            stage: stage.into(),
            results,
            checked_at: when,
            duration_ms: 5,
            checker: stage.into(),
            failure: None,
        }
    }

    fn passing(policy: &FunnelPolicy, stage: &str, when: Timestamp) -> StageReport {
        let sp = &policy.stages[policy.stage_index(stage).unwrap()];
        report(
            stage,
            sp.probes
                .iter()
                .map(|p| res(&p.id, ProbeStatus::Pass))
                .collect(),
            when,
        )
    }

    /// A passing report with some results replaced.
    fn with(
        policy: &FunnelPolicy,
        stage: &str,
        when: Timestamp,
        replace: Vec<ProbeResult>,
    ) -> StageReport {
        let mut r = passing(policy, stage, when);
        for new in replace {
            if let Some(slot) = r.results.iter_mut().find(|x| x.id == new.id) {
                *slot = new;
            }
        }
        r
    }

    fn engine(policy: &FunnelPolicy) -> Engine {
        let mut e = Engine::new();
        e.upsert_funnel(policy.clone(), at(0)).unwrap();
        e
    }

    /// Apply a passing report for every stage at `when`; returns the last outcome.
    fn all_pass(e: &mut Engine, policy: &FunnelPolicy, when: Timestamp) -> Outcome {
        let mut last = None;
        for s in &policy.stages {
            last = Some(
                e.apply_report(passing(policy, &s.name, when), when)
                    .unwrap(),
            );
        }
        last.unwrap()
    }

    fn codes(d: &GateDecision) -> Vec<ReasonCode> {
        d.reasons.iter().map(|r| r.code).collect()
    }

    fn health(d: &GateDecision) -> Vec<StageHealth> {
        d.stages.iter().map(|s| s.health).collect()
    }

    fn readiness(d: &GateDecision) -> Vec<Readiness> {
        d.stages.iter().map(|s| s.readiness).collect()
    }

    // ------------------------------------------------------------------ lifecycle and errors

    #[test]
    fn new_funnel_holds_at_pilot_share_until_every_stage_is_evaluated() {
        let p = three_stages();
        let mut e = Engine::new();
        let o = e.upsert_funnel(p.clone(), at(0)).unwrap();
        assert!(o.changed);
        assert_eq!(o.previous_state, None);
        let d = &o.decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        assert_eq!(d.blocking_stage.as_deref(), Some("crm"));
        assert_eq!(codes(d), vec![ReasonCode::NotYetEvaluated; 3]);
        assert_eq!(health(d), vec![StageHealth::Unknown; 3]);
        assert_eq!(d.phase, Phase::Build);
        // Two of three stages healthy: still not open.
        e.apply_report(passing(&p, "crm", at(1)), at(1)).unwrap();
        let d = e
            .apply_report(passing(&p, "automation", at(1)), at(1))
            .unwrap()
            .decision;
        assert_eq!(d.state, GateState::Hold);
        assert_eq!(d.blocking_stage.as_deref(), Some("esp"));
        assert_eq!(codes(&d), vec![ReasonCode::NotYetEvaluated]);
        let d = e
            .apply_report(passing(&p, "esp", at(1)), at(1))
            .unwrap()
            .decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Open, 10));
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

    // ------------------------------------------------------------------ stage health

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
    fn advisory_fail_only_degrades_and_holds() {
        let mut p = three_stages();
        p.stages[0].probes[0].severity = Severity::Advisory;
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(1));
        let r = with(&p, "crm", at(2), vec![res("a", ProbeStatus::Fail)]);
        let d = e.apply_report(r, at(2)).unwrap().decision;
        // One FAIL of four: score 75 < 80 would fail the stage; keep the score rule out of it.
        assert_eq!(d.stages[0].score, 75.0);
        assert_eq!(health(&d)[0], StageHealth::Failing);
        let mut p2 = p.clone();
        p2.stages[0].min_score = 50.0;
        let mut e = engine(&p2);
        all_pass(&mut e, &p2, at(1));
        let r = with(&p2, "crm", at(2), vec![res("a", ProbeStatus::Fail)]);
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(health(&d)[0], StageHealth::Degraded);
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        assert_eq!(codes(&d), vec![ReasonCode::StageDegraded]);
        assert!(
            d.reasons[0].message.contains("FAIL (advisory)"),
            "{}",
            d.reasons[0].message
        );
        assert_eq!(readiness(&d)[0], Readiness::Ready);
        // Advisory ERROR and NO_DATA degrade too.
        let r = with(&p2, "crm", at(3), vec![res("a", ProbeStatus::Error)]);
        assert_eq!(
            health(&e.apply_report(r, at(3)).unwrap().decision)[0],
            StageHealth::Degraded
        );
        let r = with(&p2, "crm", at(4), vec![res("a", ProbeStatus::NoData)]);
        assert_eq!(
            health(&e.apply_report(r, at(4)).unwrap().decision)[0],
            StageHealth::Degraded
        );
    }

    #[test]
    fn warn_degrades_and_holds_but_enough_warns_fail_on_score() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(1));
        let r = with(&p, "crm", at(2), vec![res("a", ProbeStatus::Warn)]);
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(d.stages[0].score, 87.5);
        assert_eq!(health(&d)[0], StageHealth::Degraded);
        assert_eq!(d.state, GateState::Hold);
        assert_eq!(d.blocking_stage.as_deref(), Some("crm"));
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
    }

    #[test]
    fn score_is_weighted_and_skips_skipped_probes() {
        let mut p = three_stages();
        p.stages[0].probes[0].weight = 3.0;
        p.stages[0].min_score = 0.0;
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
    fn unreachable_checker_makes_the_stage_unknown_naming_the_checker() {
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
        // The reason names the stage's checker as the policy knows it; the message names the
        // checker that reported.
        assert_eq!(reason.probe.as_deref(), Some("esp"));
        assert_eq!(
            reason.message,
            "esp: checker `esp-checker` could not be reached (TIMEOUT): deadline of 30s exceeded"
        );
        assert_eq!(d.remediation[0].probe, "esp");
        assert_eq!(d.remediation[0].status, ProbeStatus::Error);
    }

    // ------------------------------------------------------------------ missing data policy

    #[test]
    fn stale_report_is_unknown_and_its_grace_counts_from_when_it_went_stale() {
        let mut p = three_stages();
        p.stages[2].stale_after = HumanDuration::from_secs(600);
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        assert_eq!(
            e.tick_funnel("acme", at(600)).unwrap().decision.state,
            GateState::Open
        );
        let d = e.tick_funnel("acme", at(601)).unwrap().decision;
        assert_eq!(health(&d)[2], StageHealth::Unknown);
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Hold, 5));
        assert_eq!(codes(&d), vec![ReasonCode::Stale]);
        assert_eq!(
            d.reasons[0].message,
            "esp: last report is 10m1s old, stale after 10m"
        );
        // Nobody ticked in between: the grace (15m) still counts from 10m on.
        let d = e.tick_funnel("acme", at(600 + 15 * 60)).unwrap().decision;
        assert_eq!(d.state, GateState::Hold);
        let d = e.tick_funnel("acme", at(601 + 15 * 60)).unwrap().decision;
        assert_eq!(d.state, GateState::Closed);
        assert_eq!(
            codes(&d),
            vec![ReasonCode::Stale, ReasonCode::UnknownGraceExceeded]
        );
        assert_eq!(d.blocking_stage.as_deref(), Some("esp"));
    }

    #[test]
    fn unknown_holds_within_grace_and_closes_past_it() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        let r = with(&p, "crm", mins(1), vec![res("a", ProbeStatus::Error)]);
        assert_eq!(
            e.apply_report(r, mins(1)).unwrap().decision.state,
            GateState::Hold
        );
        // The episode started at 1m; further reports keep it going.
        let r = with(&p, "crm", mins(10), vec![res("a", ProbeStatus::Error)]);
        let d = e.apply_report(r, mins(10)).unwrap().decision;
        assert_eq!(d.state, GateState::Hold);
        assert!(
            d.stages[0]
                .summary
                .contains("unknown for 9m of its 15m grace"),
            "{}",
            d.stages[0].summary
        );
        let d = e.tick_funnel("acme", mins(16)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Closed, 0));
        assert_eq!(
            codes(&d),
            vec![ReasonCode::ProbeError, ReasonCode::UnknownGraceExceeded]
        );
        assert_eq!(
            d.reasons[1].message,
            "crm: unknown for 15m, longer than its 15m grace: the gate closes"
        );
        // Healthy again: out of CLOSED at once, but it has to soak again (no straight OPEN? the
        // fast gate opens on one healthy evaluation).
        let d = e
            .apply_report(passing(&p, "crm", mins(17)), mins(17))
            .unwrap()
            .decision;
        assert_eq!(d.state, GateState::Open);
        assert_eq!(d.allowed_rollout_percent, 10);
    }

    #[test]
    fn a_stage_that_never_reports_closes_the_gate_after_its_grace() {
        let p = three_stages();
        let mut e = engine(&p);
        e.apply_report(passing(&p, "crm", mins(1)), mins(1))
            .unwrap();
        e.apply_report(passing(&p, "automation", mins(1)), mins(1))
            .unwrap();
        assert_eq!(
            e.tick_funnel("acme", mins(14)).unwrap().decision.state,
            GateState::Hold
        );
        let d = e.tick_funnel("acme", mins(15)).unwrap().decision;
        assert_eq!(d.state, GateState::Closed);
        assert_eq!(
            codes(&d),
            vec![
                ReasonCode::NotYetEvaluated,
                ReasonCode::UnknownGraceExceeded
            ]
        );
        assert_eq!(d.blocking_stage.as_deref(), Some("esp"));
    }

    #[test]
    fn never_reported_stage_holds_even_with_on_unknown_fail() {
        let mut p = three_stages();
        p.stages[0].on_unknown = OnUnknown::Fail;
        let d = engine(&p).decision("acme").unwrap();
        assert_eq!(d.state, GateState::Hold);
        assert_eq!(d.stages[0].on_unknown, OnUnknown::Hold);
    }

    #[test]
    fn on_unknown_fail_closes_a_stale_stage_at_once() {
        let mut p = three_stages();
        p.stages[1].on_unknown = OnUnknown::Fail;
        p.stages[1].stale_after = HumanDuration::from_secs(300);
        p.gate.close_after = 3;
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        let d = e.tick_funnel("acme", at(301)).unwrap().decision;
        assert_eq!((d.state, d.allowed_rollout_percent), (GateState::Closed, 0));
        assert_eq!(d.blocking_stage.as_deref(), Some("automation"));
        assert_eq!(d.stages[1].on_unknown, OnUnknown::Fail);
        assert_eq!(d.stages[1].health, StageHealth::Unknown);
        assert!(
            d.reasons[0]
                .message
                .ends_with("(on_unknown = fail: counts as failing)")
        );
    }

    #[test]
    fn probe_on_unknown_overrides_the_stage_and_is_echoed() {
        let mut p = three_stages();
        p.stages[0].probes[1].on_unknown = Some(OnUnknown::Fail);
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        // `a` follows the stage (hold).
        let r = with(&p, "crm", at(1), vec![res("a", ProbeStatus::NoData)]);
        let d = e.apply_report(r, at(1)).unwrap().decision;
        assert_eq!(
            (d.state, d.stages[0].on_unknown),
            (GateState::Hold, OnUnknown::Hold)
        );
        // `b` says fail.
        let r = with(&p, "crm", at(2), vec![res("b", ProbeStatus::NoData)]);
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(
            (d.state, d.stages[0].on_unknown),
            (GateState::Closed, OnUnknown::Fail)
        );
        assert_eq!(d.stages[0].health, StageHealth::Unknown);
        assert_eq!(d.blocking_stage.as_deref(), Some("crm"));
        // And the reverse: a stage that fails on unknown, a probe that holds.
        let mut p = three_stages();
        p.stages[0].on_unknown = OnUnknown::Fail;
        p.stages[0].probes[0].on_unknown = Some(OnUnknown::Hold);
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        let r = with(&p, "crm", at(1), vec![res("a", ProbeStatus::Error)]);
        let d = e.apply_report(r, at(1)).unwrap().decision;
        assert_eq!(
            (d.state, d.stages[0].on_unknown),
            (GateState::Hold, OnUnknown::Hold)
        );
    }

    // ------------------------------------------------------------------ readiness, gate, hysteresis

    #[test]
    fn readiness_is_bottom_up() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        let d = e.decision("acme").unwrap();
        assert_eq!(readiness(&d), vec![Readiness::Ready; 3]);
        let r = with(&p, "automation", at(1), vec![res("e", ProbeStatus::Fail)]);
        let d = e.apply_report(r, at(1)).unwrap().decision;
        assert_eq!(
            health(&d),
            vec![
                StageHealth::Healthy,
                StageHealth::Failing,
                StageHealth::Healthy
            ]
        );
        assert_eq!(
            readiness(&d),
            vec![Readiness::Ready, Readiness::NotReady, Readiness::Blocked]
        );
        // A DEGRADED stage passes: it is READY and does not block the one above.
        let r = with(&p, "automation", at(2), vec![res("e", ProbeStatus::Pass)]);
        e.apply_report(r, at(2)).unwrap();
        let r = with(&p, "crm", at(2), vec![res("a", ProbeStatus::Warn)]);
        let d = e.apply_report(r, at(2)).unwrap().decision;
        assert_eq!(readiness(&d), vec![Readiness::Ready; 3]);
        assert_eq!(d.state, GateState::Hold);
    }

    #[test]
    fn close_after_holds_before_closing_then_stays_closed_while_failing() {
        let mut p = three_stages();
        p.gate.close_after = 3;
        p.stages[0].min_score = 0.0;
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

    // ------------------------------------------------------------------ conversion proof

    fn with_proof() -> FunnelPolicy {
        let mut p = three_stages();
        let mut proof = ProbeSpec::new("lead-to-customer", "sql");
        proof.proof = true;
        p.stages[0].probes.push(proof);
        p
    }

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

    // ------------------------------------------------------------------ phase and remediation

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

    // ------------------------------------------------------------------ override

    fn ov(state: GateState, until: Timestamp) -> Override {
        Override {
            state,
            actor: "alice".into(),
            reason: "black friday launch".into(),
            until,
            created_at: at(0),
        }
    }

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

    // ------------------------------------------------------------------ time, changes, ticks

    #[test]
    fn since_is_kept_while_the_state_stays_and_changed_flags_material_changes() {
        let p = three_stages();
        let mut e = engine(&p);
        let o = e.apply_report(passing(&p, "crm", at(5)), at(5)).unwrap();
        // Still HOLD for not-yet-evaluated stages, but crm's health changed.
        assert!(o.changed);
        assert_eq!((o.decision.since, o.decision.evaluated_at), (at(0), at(5)));
        let o = e.apply_report(passing(&p, "crm", at(6)), at(6)).unwrap();
        assert!(!o.changed);
        assert_eq!((o.decision.since, o.decision.evaluated_at), (at(0), at(6)));
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

    // ------------------------------------------------------------------ policy changes, snapshots

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
    fn a_cosmetic_policy_change_is_not_a_material_change() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        let mut q = p.clone();
        q.stages[1].probes[0].description = Some("welcome series sends".into());
        let o = e.upsert_funnel(q.clone(), at(1)).unwrap();
        assert!(!o.changed);
        assert_eq!(e.policy("acme"), Some(&q));
        // Reordering stages is material (readiness is bottom-up).
        let mut r = q.clone();
        r.stages.swap(0, 2);
        assert!(e.upsert_funnel(r, at(2)).unwrap().changed);
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
        q.stages[0].min_score = 95.0;
        assert_eq!(
            e.upsert_funnel(q, at(2)).unwrap().decision.state,
            GateState::Closed
        );
    }

    #[test]
    fn snapshot_and_restore_give_identical_decisions() {
        let mut p = with_proof();
        p.gate.close_after = 2;
        p.gate.open_after_evaluations = 2;
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        e.tick_funnel("acme", mins(70)).unwrap();
        let r = with(&p, "crm", mins(71), vec![res("a", ProbeStatus::Fail)]);
        e.apply_report(r, mins(71)).unwrap();
        let mut esp = report("esp", vec![], mins(72));
        esp.failure = Some(CheckFailure {
            code: "UNREACHABLE".into(),
            checker: "esp".into(),
            message: "connection refused".into(),
        });
        e.apply_report(esp, mins(72)).unwrap();
        e.set_override("acme", ov(GateState::Open, mins(200)), mins(73))
            .unwrap();
        let before = e.tick_funnel("acme", mins(74)).unwrap().decision;

        let snap = e.snapshot("acme").unwrap();
        let json = serde_json::to_string(&snap).unwrap();
        let snap: FunnelSnapshot = serde_json::from_str(&json).unwrap();
        let mut fresh = Engine::new();
        fresh.upsert_funnel(p.clone(), mins(74)).unwrap();
        let after = fresh.restore(snap, mins(74)).unwrap().decision;
        assert_eq!(*after, *before);
        // And they keep agreeing.
        for (t, stage) in [(80, "crm"), (81, "esp"), (95, "automation")] {
            let r = passing(&p, stage, mins(t));
            let a = e.apply_report(r.clone(), mins(t)).unwrap().decision;
            let b = fresh.apply_report(r, mins(t)).unwrap().decision;
            assert_eq!(*a, *b);
        }
        assert_eq!(
            *e.tick_funnel("acme", mins(300)).unwrap().decision,
            *fresh.tick_funnel("acme", mins(300)).unwrap().decision
        );
    }

    #[test]
    fn restore_rejects_unreadable_snapshots_and_skips_removed_stages() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        let snap = e.snapshot("acme").unwrap();
        let mut bad = snap.clone();
        bad.memory = serde_json::json!({"version": 1});
        assert!(matches!(
            e.restore(bad, mins(1)).unwrap_err(),
            EngineError::SnapshotMismatch { .. }
        ));
        let mut bad = snap.clone();
        bad.memory["version"] = serde_json::json!(99);
        let err = e.restore(bad, mins(1)).unwrap_err();
        assert!(err.to_string().contains("memory version 99"), "{err}");
        let mut bad = snap.clone();
        bad.last_reports[0].funnel = "beta".into();
        assert!(e.restore(bad, mins(1)).is_err());
        let mut bad = snap.clone();
        bad.funnel = "beta".into();
        assert_eq!(
            e.restore(bad, mins(1)).unwrap_err(),
            EngineError::UnknownFunnel("beta".into())
        );

        // The funnel lost its esp stage and gained analytics.
        let mut q = p.clone();
        q.stages.remove(2);
        q.stages.push(stage("analytics", &["h"]));
        let mut fresh = Engine::new();
        fresh.upsert_funnel(q, mins(1)).unwrap();
        let d = fresh.restore(snap, mins(1)).unwrap().decision;
        assert_eq!(d.stages.len(), 3);
        assert_eq!(
            health(&d),
            vec![
                StageHealth::Healthy,
                StageHealth::Healthy,
                StageHealth::Unknown
            ]
        );
        assert_eq!(d.phase, Phase::Operate);
    }

    #[test]
    fn numbers_read_naturally() {
        assert_eq!(fmt_num(62.0), "62.0");
        assert_eq!(fmt_num(0.003), "0.003");
        assert_eq!(fmt_num(1234.56), "1234.6");
        assert_eq!(fmt_num(99.5), "99.5");
        assert_eq!(fmt_num(0.0), "0.0");
        assert_eq!(fmt_num(-2.25), "-2.25");
    }
}
