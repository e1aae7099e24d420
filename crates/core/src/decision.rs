//! The gate decision: what the coordinator serves for each funnel.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{ProbeResult, ProbeStatus};
use crate::policy::OnUnknown;
use crate::time::Timestamp;

/// The gate's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GateState {
    Open,
    Hold,
    Closed,
}

impl GateState {
    pub const fn as_str(self) -> &'static str {
        match self {
            GateState::Open => "OPEN",
            GateState::Hold => "HOLD",
            GateState::Closed => "CLOSED",
        }
    }
}

impl fmt::Display for GateState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Build (before the gate first opens) or operate (from the first OPEN on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Build,
    Operate,
}

impl Phase {
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Build => "build",
            Phase::Operate => "operate",
        }
    }
}

/// A stage's own health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StageHealth {
    Healthy,
    Degraded,
    Failing,
    Unknown,
}

impl StageHealth {
    pub const fn as_str(self) -> &'static str {
        match self {
            StageHealth::Healthy => "HEALTHY",
            StageHealth::Degraded => "DEGRADED",
            StageHealth::Failing => "FAILING",
            StageHealth::Unknown => "UNKNOWN",
        }
    }

    /// Does this health let the stage be READY (HEALTHY or DEGRADED)?
    pub const fn passes(self) -> bool {
        matches!(self, StageHealth::Healthy | StageHealth::Degraded)
    }
}

/// A stage's effective readiness, bottom-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Readiness {
    /// Its own health passes and every stage below it is READY.
    Ready,
    /// Its own health does not pass.
    NotReady,
    /// Its own health passes, but a stage below it is not READY.
    Blocked,
}

impl Readiness {
    pub const fn as_str(self) -> &'static str {
        match self {
            Readiness::Ready => "READY",
            Readiness::NotReady => "NOT_READY",
            Readiness::Blocked => "BLOCKED",
        }
    }
}

/// Stable reason codes. Their string form is part of the public contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonCode {
    /// A stage is FAILING (a blocking probe FAIL, or score below `min_score`).
    StageFailing,
    /// A stage is DEGRADED (a WARN, or an advisory FAIL/ERROR).
    StageDegraded,
    /// A stage's last report is older than `stale_after`.
    Stale,
    /// The stage's checker could not be reached or timed out.
    Unreachable,
    /// A blocking probe returned ERROR.
    ProbeError,
    /// A blocking probe returned NO_DATA.
    NoData,
    /// A stage has been UNKNOWN for longer than its `unknown_grace`.
    UnknownGraceExceeded,
    /// A stage has never been fully evaluated yet.
    NotYetEvaluated,
    /// Healthy, but the soak time (`open_after`) is not yet served.
    Soaking,
    /// OPEN and ramping: the current step is not yet the last.
    Ramping,
    /// A conversion-proof probe has not PASSed.
    ProofPending,
    /// An operator override is in force.
    Overridden,
    /// Failing evaluations seen, but fewer than `close_after`.
    Closing,
    /// Not every stage has completed one evaluation yet: the gate is waiting for its first
    /// evidence and allows no share.
    AwaitingEvidence,
}

impl ReasonCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            ReasonCode::StageFailing => "STAGE_FAILING",
            ReasonCode::StageDegraded => "STAGE_DEGRADED",
            ReasonCode::Stale => "STALE",
            ReasonCode::Unreachable => "UNREACHABLE",
            ReasonCode::ProbeError => "PROBE_ERROR",
            ReasonCode::NoData => "NO_DATA",
            ReasonCode::UnknownGraceExceeded => "UNKNOWN_GRACE_EXCEEDED",
            ReasonCode::NotYetEvaluated => "NOT_YET_EVALUATED",
            ReasonCode::Soaking => "SOAKING",
            ReasonCode::Ramping => "RAMPING",
            ReasonCode::ProofPending => "PROOF_PENDING",
            ReasonCode::Overridden => "OVERRIDDEN",
            ReasonCode::Closing => "CLOSING",
            ReasonCode::AwaitingEvidence => "AWAITING_EVIDENCE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        use ReasonCode::*;
        [
            StageFailing,
            StageDegraded,
            Stale,
            Unreachable,
            ProbeError,
            NoData,
            UnknownGraceExceeded,
            NotYetEvaluated,
            Soaking,
            Ramping,
            ProofPending,
            Overridden,
            Closing,
            AwaitingEvidence,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the gate is where it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    pub message: String,
}

/// One entry of the ordered "fix this first" list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemediationItem {
    pub stage: String,
    pub probe: String,
    pub status: ProbeStatus,
    pub badness: f64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// A stage as the decision shows it: own health and effective readiness.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    pub stage: String,
    pub health: StageHealth,
    pub readiness: Readiness,
    /// 0–100: weighted PASS = 1, WARN = 0.5, else 0 over the probes that count.
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Timestamp>,
    /// The effective missing-data policy of this stage.
    pub on_unknown: OnUnknown,
    /// One line: why the stage has its health.
    pub summary: String,
    /// Every probe result of the last report (full view).
    #[serde(default, skip_serializing_if = "ProbeList::is_empty")]
    pub probes: ProbeList,
}

/// An immutable, shared list of probe results: what a [`StageSummary`] shows in the full view.
///
/// Every decision repeats the probe results of every stage, and a funnel is re-decided far more
/// often than its reports change; sharing the list makes a new decision cost a reference count
/// per stage instead of a copy of every result. It reads like a slice (`iter`, `len`, indexing),
/// collects from an iterator, converts from and into a `Vec`, and (de)serialises as a plain
/// sequence.
#[derive(Clone, Default, PartialEq)]
pub struct ProbeList(Arc<Vec<ProbeResult>>);

impl ProbeList {
    /// An empty list.
    pub fn new() -> Self {
        ProbeList::default()
    }

    /// True when there are no results.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Remove every result (other holders of the same list are unaffected).
    pub fn clear(&mut self) {
        *self = ProbeList::default();
    }

    /// Append a result (copies the list first if it is shared).
    pub fn push(&mut self, result: ProbeResult) {
        Arc::make_mut(&mut self.0).push(result);
    }

    /// The results as an owned `Vec` (copied only if the list is shared).
    pub fn into_vec(self) -> Vec<ProbeResult> {
        Arc::unwrap_or_clone(self.0)
    }

    /// Whether both lists are the same allocation (cheap identity check, not equality).
    pub fn ptr_eq(&self, other: &ProbeList) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for ProbeList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl Deref for ProbeList {
    type Target = [ProbeResult];
    fn deref(&self) -> &[ProbeResult] {
        &self.0
    }
}

impl From<Vec<ProbeResult>> for ProbeList {
    fn from(v: Vec<ProbeResult>) -> Self {
        ProbeList(Arc::new(v))
    }
}

impl From<ProbeList> for Vec<ProbeResult> {
    fn from(l: ProbeList) -> Self {
        l.into_vec()
    }
}

impl FromIterator<ProbeResult> for ProbeList {
    fn from_iter<I: IntoIterator<Item = ProbeResult>>(iter: I) -> Self {
        ProbeList(Arc::new(iter.into_iter().collect()))
    }
}

impl IntoIterator for ProbeList {
    type Item = ProbeResult;
    type IntoIter = std::vec::IntoIter<ProbeResult>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl<'a> IntoIterator for &'a ProbeList {
    type Item = &'a ProbeResult;
    type IntoIter = std::slice::Iter<'a, ProbeResult>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl PartialEq<Vec<ProbeResult>> for ProbeList {
    fn eq(&self, other: &Vec<ProbeResult>) -> bool {
        *self.0 == *other
    }
}

impl Serialize for ProbeList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ProbeList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<ProbeResult>::deserialize(d).map(ProbeList::from)
    }
}

/// An operator's forced decision, with expiry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// OPEN or CLOSED.
    pub state: GateState,
    pub actor: String,
    pub reason: String,
    pub until: Timestamp,
    pub created_at: Timestamp,
    /// The share (1–100) a forced OPEN allows; the engine fills in the first ramp step when the
    /// operator gives none. Always `None` for CLOSED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
}

/// The gate decision for one funnel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    pub funnel: String,
    pub state: GateState,
    /// The state the engine computed, before any override.
    pub underlying_state: GateState,
    pub allowed_rollout_percent: u32,
    /// The lowest stage holding or closing the gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocking_stage: Option<String>,
    pub phase: Phase,
    pub reasons: Vec<Reason>,
    pub remediation: Vec<RemediationItem>,
    pub stages: Vec<StageSummary>,
    /// When the gate entered its current state.
    pub since: Timestamp,
    pub evaluated_at: Timestamp,
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    pub override_: Option<Override>,
    /// Set when nothing is especially broken in operate phase: where to work next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

impl GateDecision {
    /// The same decision without per-probe results (the compact view).
    pub fn compact(&self, remediation_head: usize) -> GateDecision {
        let mut d = self.clone();
        d.remediation.truncate(remediation_head);
        for s in &mut d.stages {
            s.probes.clear();
        }
        d
    }

    /// Whether two decisions differ in anything a watcher cares about (everything but
    /// `evaluated_at` and probe observation times).
    pub fn materially_differs(&self, other: &GateDecision) -> bool {
        self.state != other.state
            || self.underlying_state != other.underlying_state
            || self.allowed_rollout_percent != other.allowed_rollout_percent
            || self.blocking_stage != other.blocking_stage
            || self.phase != other.phase
            || self.override_ != other.override_
            || self.advice != other.advice
            || self.reasons.len() != other.reasons.len()
            || self
                .reasons
                .iter()
                .zip(&other.reasons)
                .any(|(a, b)| a.code != b.code || a.stage != b.stage || a.probe != b.probe)
            || self.stages.len() != other.stages.len()
            || self.stages.iter().zip(&other.stages).any(|(a, b)| {
                a.stage != b.stage || a.health != b.health || a.readiness != b.readiness
            })
    }
}
