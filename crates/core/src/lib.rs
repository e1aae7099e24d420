//! funnelgate's domain model and gate engine.
//!
//! This crate is the semantics of the product (DESIGN.md section 1): probe statuses and badness,
//! stage health and score, bottom-up readiness, the missing-data policy, hysteresis, rollout ramp,
//! conversion proof, build/operate phase and remediation order, overrides.
//!
//! It must stay pure: no I/O, no clock (time is passed in), no async runtime, no wire types.
//! Nothing here may depend on tonic, prost, tokio or sqlx.

pub mod decision;
pub mod engine;
pub mod model;
pub mod policy;
pub mod time;

pub use decision::{
    GateDecision, GateState, Override, Phase, ProbeList, Readiness, Reason, ReasonCode,
    RemediationItem, StageHealth, StageSummary,
};
pub use engine::{Engine, EngineError, FunnelSnapshot, Outcome};
pub use model::{
    CheckFailure, JourneyStep, Judgement, Measurement, ProbeMode, ProbeResult, ProbeStatus,
    Severity, StageReport, Thresholds,
};
pub use policy::{
    FunnelPolicy, GatePolicy, OnUnknown, PolicyError, PolicyIssue, ProbeSpec, StagePolicy,
};
pub use time::{HumanDuration, Timestamp};
