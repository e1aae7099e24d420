//! The gate engine: stage reports and time in, decisions out. Pure: no I/O, no clock, no async.
//!
//! INTERFACE FROZEN — the coordinator codes against these signatures. Bodies are being written.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::decision::{GateDecision, GateState, Override, Phase};
use crate::model::StageReport;
use crate::policy::{FunnelPolicy, PolicyError};
use crate::time::Timestamp;

/// Errors the engine returns: all are caller mistakes, never measurement problems.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("unknown funnel `{0}`")]
    UnknownFunnel(String),
    #[error("funnel `{funnel}` has no stage `{stage}`")]
    UnknownStage { funnel: String, stage: String },
    #[error(transparent)]
    InvalidPolicy(#[from] PolicyError),
    #[error("invalid override: {0}")]
    InvalidOverride(String),
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
    funnels: HashMap<String, ()>,
}

impl Engine {
    pub fn new() -> Self {
        Engine::default()
    }

    /// Add a funnel, or replace its policy (state is kept for stages that still exist).
    pub fn upsert_funnel(
        &mut self,
        policy: FunnelPolicy,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let _ = (policy, now);
        unimplemented!()
    }

    pub fn remove_funnel(&mut self, funnel: &str) -> bool {
        self.funnels.remove(funnel).is_some()
    }

    pub fn funnel_names(&self) -> Vec<String> {
        self.funnels.keys().cloned().collect()
    }

    pub fn policy(&self, funnel: &str) -> Option<&FunnelPolicy> {
        let _ = funnel;
        unimplemented!()
    }

    /// The current decision of a funnel.
    pub fn decision(&self, funnel: &str) -> Option<Arc<GateDecision>> {
        let _ = funnel;
        unimplemented!()
    }

    /// Apply one stage report (one evaluation of that stage) and re-decide that funnel only.
    pub fn apply_report(
        &mut self,
        report: StageReport,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let _ = (report, now);
        unimplemented!()
    }

    /// Re-decide one funnel for the passage of time (staleness, grace, soak, ramp, expiry).
    pub fn tick_funnel(&mut self, funnel: &str, now: Timestamp) -> Result<Outcome, EngineError> {
        let _ = (funnel, now);
        unimplemented!()
    }

    /// Re-decide every funnel for the passage of time; returns the outcomes that changed.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Outcome> {
        let _ = now;
        unimplemented!()
    }

    pub fn set_override(
        &mut self,
        funnel: &str,
        ov: Override,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let _ = (funnel, ov, now);
        unimplemented!()
    }

    pub fn clear_override(&mut self, funnel: &str, now: Timestamp) -> Result<Outcome, EngineError> {
        let _ = (funnel, now);
        unimplemented!()
    }

    /// Operator action: return a funnel to `build` (or mark it `operate`).
    pub fn set_phase(
        &mut self,
        funnel: &str,
        phase: Phase,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let _ = (funnel, phase, now);
        unimplemented!()
    }

    /// Persistable state of one funnel.
    pub fn snapshot(&self, funnel: &str) -> Option<FunnelSnapshot> {
        let _ = funnel;
        unimplemented!()
    }

    /// Restore a funnel's state (after `upsert_funnel` with its policy) and re-decide at `now`.
    pub fn restore(
        &mut self,
        snapshot: FunnelSnapshot,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let _ = (snapshot, now);
        unimplemented!()
    }
}
