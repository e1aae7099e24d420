//! Conversions between `pb` wire types and `funnelgate_core` types.
//!
//! Wire → core conversions validate and fail with a [`ConversionError`] naming the field;
//! core → wire conversions are infallible.

use std::collections::BTreeMap;
use std::time::Duration;

use funnelgate_core as core;
use funnelgate_core::{HumanDuration, Timestamp};
use prost_types::value::Kind;

use crate::pb;

/// A wire message that cannot become a core value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid `{field}`: {reason}")]
pub struct ConversionError {
    pub field: String,
    pub reason: String,
}

impl ConversionError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConversionError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<ConversionError> for tonic::Status {
    fn from(e: ConversionError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

// ---------------------------------------------------------------- time

pub fn timestamp_to_pb(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.as_millis();
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn timestamp_from_pb(t: &prost_types::Timestamp) -> Timestamp {
    Timestamp::from_millis(
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos) / 1_000_000),
    )
}

pub fn duration_to_pb(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

pub fn duration_from_pb(
    d: &prost_types::Duration,
    field: &str,
) -> Result<Duration, ConversionError> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err(ConversionError::new(field, "negative duration"));
    }
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

// ---------------------------------------------------------------- json <-> Struct

pub fn json_to_pb_value(v: &serde_json::Value) -> prost_types::Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_to_pb_value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(json_object_to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

pub fn json_object_to_struct(
    o: &serde_json::Map<String, serde_json::Value>,
) -> prost_types::Struct {
    prost_types::Struct {
        fields: o
            .iter()
            .map(|(k, v)| (k.clone(), json_to_pb_value(v)))
            .collect(),
    }
}

pub fn pb_value_to_json(v: &prost_types::Value) -> serde_json::Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            // Integers travel as doubles in Struct; give them back as integers when exact.
            if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
                serde_json::Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, Into::into)
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(pb_value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => struct_to_json(s),
    }
}

pub fn struct_to_json(s: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), pb_value_to_json(v)))
            .collect(),
    )
}

// ---------------------------------------------------------------- enums

impl From<core::ProbeStatus> for pb::ProbeStatus {
    fn from(s: core::ProbeStatus) -> Self {
        match s {
            core::ProbeStatus::Pass => pb::ProbeStatus::Pass,
            core::ProbeStatus::Warn => pb::ProbeStatus::Warn,
            core::ProbeStatus::Fail => pb::ProbeStatus::Fail,
            core::ProbeStatus::Error => pb::ProbeStatus::Error,
            core::ProbeStatus::NoData => pb::ProbeStatus::NoData,
            core::ProbeStatus::Skipped => pb::ProbeStatus::Skipped,
        }
    }
}

pub fn probe_status_from_pb(v: i32, field: &str) -> Result<core::ProbeStatus, ConversionError> {
    match pb::ProbeStatus::try_from(v) {
        Ok(pb::ProbeStatus::Pass) => Ok(core::ProbeStatus::Pass),
        Ok(pb::ProbeStatus::Warn) => Ok(core::ProbeStatus::Warn),
        Ok(pb::ProbeStatus::Fail) => Ok(core::ProbeStatus::Fail),
        Ok(pb::ProbeStatus::Error) => Ok(core::ProbeStatus::Error),
        Ok(pb::ProbeStatus::NoData) => Ok(core::ProbeStatus::NoData),
        Ok(pb::ProbeStatus::Skipped) => Ok(core::ProbeStatus::Skipped),
        Ok(pb::ProbeStatus::Unspecified) | Err(_) => Err(ConversionError::new(
            field,
            format!("status {v} is not a known probe status"),
        )),
    }
}

impl From<core::Severity> for pb::Severity {
    fn from(s: core::Severity) -> Self {
        match s {
            core::Severity::Blocking => pb::Severity::Blocking,
            core::Severity::Advisory => pb::Severity::Advisory,
        }
    }
}

impl From<core::ProbeMode> for pb::ProbeMode {
    fn from(m: core::ProbeMode) -> Self {
        match m {
            core::ProbeMode::Enforce => pb::ProbeMode::Enforce,
            core::ProbeMode::Observe => pb::ProbeMode::Observe,
        }
    }
}

impl From<core::GateState> for pb::GateState {
    fn from(s: core::GateState) -> Self {
        match s {
            core::GateState::Open => pb::GateState::Open,
            core::GateState::Hold => pb::GateState::Hold,
            core::GateState::Closed => pb::GateState::Closed,
        }
    }
}

pub fn gate_state_from_pb(v: i32, field: &str) -> Result<core::GateState, ConversionError> {
    match pb::GateState::try_from(v) {
        Ok(pb::GateState::Open) => Ok(core::GateState::Open),
        Ok(pb::GateState::Hold) => Ok(core::GateState::Hold),
        Ok(pb::GateState::Closed) => Ok(core::GateState::Closed),
        _ => Err(ConversionError::new(
            field,
            format!("{v} is not a gate state (OPEN, HOLD, CLOSED)"),
        )),
    }
}

impl From<core::Phase> for pb::Phase {
    fn from(p: core::Phase) -> Self {
        match p {
            core::Phase::Build => pb::Phase::Build,
            core::Phase::Operate => pb::Phase::Operate,
        }
    }
}

pub fn phase_from_pb(v: i32, field: &str) -> Result<core::Phase, ConversionError> {
    match pb::Phase::try_from(v) {
        Ok(pb::Phase::Build) => Ok(core::Phase::Build),
        Ok(pb::Phase::Operate) => Ok(core::Phase::Operate),
        _ => Err(ConversionError::new(
            field,
            format!("{v} is not a phase (BUILD, OPERATE)"),
        )),
    }
}

impl From<core::StageHealth> for pb::StageHealth {
    fn from(h: core::StageHealth) -> Self {
        match h {
            core::StageHealth::Healthy => pb::StageHealth::Healthy,
            core::StageHealth::Degraded => pb::StageHealth::Degraded,
            core::StageHealth::Failing => pb::StageHealth::Failing,
            core::StageHealth::Unknown => pb::StageHealth::Unknown,
        }
    }
}

fn stage_health_from_pb(v: i32) -> Result<core::StageHealth, ConversionError> {
    match pb::StageHealth::try_from(v) {
        Ok(pb::StageHealth::Healthy) => Ok(core::StageHealth::Healthy),
        Ok(pb::StageHealth::Degraded) => Ok(core::StageHealth::Degraded),
        Ok(pb::StageHealth::Failing) => Ok(core::StageHealth::Failing),
        Ok(pb::StageHealth::Unknown) => Ok(core::StageHealth::Unknown),
        _ => Err(ConversionError::new(
            "stages.health",
            format!("{v} is not a stage health"),
        )),
    }
}

impl From<core::Readiness> for pb::Readiness {
    fn from(r: core::Readiness) -> Self {
        match r {
            core::Readiness::Ready => pb::Readiness::Ready,
            core::Readiness::NotReady => pb::Readiness::NotReady,
            core::Readiness::Blocked => pb::Readiness::Blocked,
        }
    }
}

fn readiness_from_pb(v: i32) -> Result<core::Readiness, ConversionError> {
    match pb::Readiness::try_from(v) {
        Ok(pb::Readiness::Ready) => Ok(core::Readiness::Ready),
        Ok(pb::Readiness::NotReady) => Ok(core::Readiness::NotReady),
        Ok(pb::Readiness::Blocked) => Ok(core::Readiness::Blocked),
        _ => Err(ConversionError::new(
            "stages.readiness",
            format!("{v} is not a readiness"),
        )),
    }
}

impl From<core::OnUnknown> for pb::OnUnknown {
    fn from(o: core::OnUnknown) -> Self {
        match o {
            core::OnUnknown::Hold => pb::OnUnknown::Hold,
            core::OnUnknown::Fail => pb::OnUnknown::Fail,
        }
    }
}

// ---------------------------------------------------------------- probes

impl From<&core::Thresholds> for pb::Thresholds {
    fn from(t: &core::Thresholds) -> Self {
        pb::Thresholds {
            warn_above: t.warn_above,
            fail_above: t.fail_above,
            warn_below: t.warn_below,
            fail_below: t.fail_below,
            expect: t.expect,
        }
    }
}

impl From<&pb::Thresholds> for core::Thresholds {
    fn from(t: &pb::Thresholds) -> Self {
        core::Thresholds {
            warn_above: t.warn_above,
            fail_above: t.fail_above,
            warn_below: t.warn_below,
            fail_below: t.fail_below,
            expect: t.expect,
        }
    }
}

impl From<&core::ProbeSpec> for pb::ProbeSpec {
    fn from(p: &core::ProbeSpec) -> Self {
        pb::ProbeSpec {
            id: p.id.clone(),
            kind: p.kind.clone(),
            params: p.params.as_object().map(json_object_to_struct),
            thresholds: Some((&p.thresholds).into()),
            weight: p.weight,
            severity: pb::Severity::from(p.severity) as i32,
            mode: pb::ProbeMode::from(p.mode) as i32,
            proof: p.proof,
            timeout: Some(duration_to_pb(p.timeout.get())),
            secret: p.secret.clone().unwrap_or_default(),
            min_sample: p.min_sample,
        }
    }
}

impl TryFrom<&pb::ProbeSpec> for core::ProbeSpec {
    type Error = ConversionError;

    fn try_from(p: &pb::ProbeSpec) -> Result<Self, ConversionError> {
        let field = |f: &str| format!("probes[{}].{f}", p.id);
        if p.id.is_empty() {
            return Err(ConversionError::new("probes.id", "must not be empty"));
        }
        if p.kind.is_empty() {
            return Err(ConversionError::new(field("kind"), "must not be empty"));
        }
        let severity = match pb::Severity::try_from(p.severity) {
            Ok(pb::Severity::Unspecified | pb::Severity::Blocking) => core::Severity::Blocking,
            Ok(pb::Severity::Advisory) => core::Severity::Advisory,
            Err(_) => return Err(ConversionError::new(field("severity"), "unknown severity")),
        };
        let mode = match pb::ProbeMode::try_from(p.mode) {
            Ok(pb::ProbeMode::Unspecified | pb::ProbeMode::Enforce) => core::ProbeMode::Enforce,
            Ok(pb::ProbeMode::Observe) => core::ProbeMode::Observe,
            Err(_) => return Err(ConversionError::new(field("mode"), "unknown mode")),
        };
        let timeout = match &p.timeout {
            Some(d) => duration_from_pb(d, &field("timeout"))?,
            None => Duration::from_secs(10),
        };
        if timeout.is_zero() {
            return Err(ConversionError::new(
                field("timeout"),
                "must be greater than 0",
            ));
        }
        let weight = if p.weight == 0.0 { 1.0 } else { p.weight };
        if !(weight.is_finite() && weight > 0.0) {
            return Err(ConversionError::new(
                field("weight"),
                "must be a positive number",
            ));
        }
        Ok(core::ProbeSpec {
            id: p.id.clone(),
            kind: p.kind.clone(),
            params: p
                .params
                .as_ref()
                .map(struct_to_json)
                .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
            thresholds: p.thresholds.as_ref().map(Into::into).unwrap_or_default(),
            weight,
            severity,
            mode,
            proof: p.proof,
            min_sample: p.min_sample,
            timeout: HumanDuration(timeout),
            secret: (!p.secret.is_empty()).then(|| p.secret.clone()),
            on_unknown: None,
            description: None,
        })
    }
}

fn window_string(w: Option<HumanDuration>) -> String {
    w.map(|w| w.to_string()).unwrap_or_default()
}

impl From<&core::ProbeResult> for pb::ProbeResult {
    fn from(r: &core::ProbeResult) -> Self {
        pb::ProbeResult {
            id: r.id.clone(),
            kind: r.kind.clone(),
            status: pb::ProbeStatus::from(r.status) as i32,
            value: r.value,
            unit: r.unit.clone(),
            threshold: r.threshold,
            badness: r.badness,
            message: r.message.clone(),
            observed_at: Some(timestamp_to_pb(r.observed_at)),
            duration: Some(duration_to_pb(Duration::from_millis(r.duration_ms))),
            sample_size: r.sample_size,
            window: window_string(r.window),
            evidence: r
                .evidence
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            journey_steps: r.steps.iter().map(pb::JourneyStep::from).collect(),
        }
    }
}

impl From<&core::JourneyStep> for pb::JourneyStep {
    fn from(s: &core::JourneyStep) -> Self {
        pb::JourneyStep {
            name: s.name.clone(),
            stage: s.stage.clone(),
            status: pb::ProbeStatus::from(s.status) as i32,
            duration: Some(duration_to_pb(Duration::from_millis(s.duration_ms))),
            message: s.message.clone(),
        }
    }
}

/// A journey step from the wire; `field` names it in errors.
fn journey_step_from_pb(
    s: &pb::JourneyStep,
    field: &str,
) -> Result<core::JourneyStep, ConversionError> {
    if s.name.is_empty() {
        return Err(ConversionError::new(
            format!("{field}.name"),
            "must not be empty",
        ));
    }
    if s.stage.is_empty() {
        return Err(ConversionError::new(
            format!("{field}.stage"),
            "must not be empty",
        ));
    }
    let duration_ms = s
        .duration
        .as_ref()
        .map(|d| {
            (d.seconds.max(0) as u64).saturating_mul(1000) + (d.nanos.max(0) as u64) / 1_000_000
        })
        .unwrap_or(0);
    Ok(core::JourneyStep {
        name: s.name.clone(),
        stage: s.stage.clone(),
        status: probe_status_from_pb(s.status, &format!("{field}.status"))?,
        duration_ms,
        message: s.message.clone(),
    })
}

impl TryFrom<&pb::ProbeResult> for core::ProbeResult {
    type Error = ConversionError;

    fn try_from(r: &pb::ProbeResult) -> Result<Self, ConversionError> {
        let field = |f: &str| format!("results[{}].{f}", r.id);
        if r.id.is_empty() {
            return Err(ConversionError::new("results.id", "must not be empty"));
        }
        let status = probe_status_from_pb(r.status, &field("status"))?;
        if r.value.is_some_and(|v| !v.is_finite()) {
            return Err(ConversionError::new(
                field("value"),
                "must be a finite number",
            ));
        }
        if !r.badness.is_finite() || r.badness < 0.0 {
            return Err(ConversionError::new(
                field("badness"),
                "must be a non-negative number",
            ));
        }
        let window = if r.window.is_empty() {
            None
        } else {
            Some(HumanDuration(
                core::time::parse_duration(&r.window)
                    .map_err(|e| ConversionError::new(field("window"), e.to_string()))?,
            ))
        };
        Ok(core::ProbeResult {
            id: r.id.clone(),
            kind: r.kind.clone(),
            status,
            value: r.value,
            unit: r.unit.clone(),
            threshold: r.threshold,
            badness: r.badness,
            message: r.message.clone(),
            observed_at: r
                .observed_at
                .as_ref()
                .map(timestamp_from_pb)
                .unwrap_or_default(),
            duration_ms: match &r.duration {
                Some(d) => duration_from_pb(d, &field("duration"))?.as_millis() as u64,
                None => 0,
            },
            sample_size: r.sample_size,
            window,
            evidence: r
                .evidence
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
            steps: r
                .journey_steps
                .iter()
                .enumerate()
                .map(|(i, s)| journey_step_from_pb(s, &field(&format!("journey_steps[{i}]"))))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl From<&core::StageReport> for pb::StageReport {
    fn from(r: &core::StageReport) -> Self {
        pb::StageReport {
            funnel: r.funnel.clone(),
            stage: r.stage.clone(),
            results: r.results.iter().map(Into::into).collect(),
            checked_at: Some(timestamp_to_pb(r.checked_at)),
            duration: Some(duration_to_pb(Duration::from_millis(r.duration_ms))),
            checker: r.checker.clone(),
        }
    }
}

impl TryFrom<&pb::StageReport> for core::StageReport {
    type Error = ConversionError;

    fn try_from(r: &pb::StageReport) -> Result<Self, ConversionError> {
        Ok(core::StageReport {
            funnel: r.funnel.clone(),
            stage: r.stage.clone(),
            results: r
                .results
                .iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            checked_at: r
                .checked_at
                .as_ref()
                .map(timestamp_from_pb)
                .ok_or_else(|| ConversionError::new("report.checked_at", "missing"))?,
            duration_ms: match &r.duration {
                Some(d) => duration_from_pb(d, "report.duration")?.as_millis() as u64,
                None => 0,
            },
            checker: r.checker.clone(),
            failure: None,
        })
    }
}

// ---------------------------------------------------------------- decisions

impl From<&core::Reason> for pb::Reason {
    fn from(r: &core::Reason) -> Self {
        pb::Reason {
            code: r.code.as_str().to_string(),
            stage: r.stage.clone().unwrap_or_default(),
            probe: r.probe.clone().unwrap_or_default(),
            value: r.value,
            threshold: r.threshold,
            message: r.message.clone(),
        }
    }
}

impl From<&core::RemediationItem> for pb::RemediationItem {
    fn from(r: &core::RemediationItem) -> Self {
        pb::RemediationItem {
            stage: r.stage.clone(),
            probe: r.probe.clone(),
            status: pb::ProbeStatus::from(r.status) as i32,
            badness: r.badness,
            message: r.message.clone(),
            value: r.value,
            threshold: r.threshold,
        }
    }
}

impl From<&core::Override> for pb::Override {
    fn from(o: &core::Override) -> Self {
        pb::Override {
            state: pb::GateState::from(o.state) as i32,
            actor: o.actor.clone(),
            reason: o.reason.clone(),
            until: Some(timestamp_to_pb(o.until)),
            created_at: Some(timestamp_to_pb(o.created_at)),
            percent: o.percent,
        }
    }
}

/// Convert a stage summary, with or without its probe results.
pub fn stage_summary_to_pb(s: &core::StageSummary, full: bool) -> pb::StageSummary {
    pb::StageSummary {
        stage: s.stage.clone(),
        health: pb::StageHealth::from(s.health) as i32,
        readiness: pb::Readiness::from(s.readiness) as i32,
        score: s.score,
        checked_at: s.checked_at.map(timestamp_to_pb),
        on_unknown: pb::OnUnknown::from(s.on_unknown) as i32,
        probes: if full {
            s.probes.iter().map(Into::into).collect()
        } else {
            Vec::new()
        },
        summary: s.summary.clone(),
    }
}

/// How many remediation items the compact view carries.
pub const COMPACT_REMEDIATION_HEAD: usize = 5;

/// Convert a decision to the wire, compact (`full = false`: no probe results, the head of the
/// remediation list) or full.
pub fn decision_to_pb(
    d: &core::GateDecision,
    full: bool,
    config_hash: &str,
    sequence: u64,
) -> pb::GateDecision {
    let remediation = if full {
        d.remediation.iter().map(Into::into).collect()
    } else {
        d.remediation
            .iter()
            .take(COMPACT_REMEDIATION_HEAD)
            .map(Into::into)
            .collect()
    };
    pb::GateDecision {
        funnel: d.funnel.clone(),
        state: pb::GateState::from(d.state) as i32,
        allowed_rollout_percent: d.allowed_rollout_percent,
        blocking_stage: d.blocking_stage.clone().unwrap_or_default(),
        phase: pb::Phase::from(d.phase) as i32,
        reasons: d.reasons.iter().map(Into::into).collect(),
        remediation,
        stages: d
            .stages
            .iter()
            .map(|s| stage_summary_to_pb(s, full))
            .collect(),
        since: Some(timestamp_to_pb(d.since)),
        evaluated_at: Some(timestamp_to_pb(d.evaluated_at)),
        r#override: d.override_.as_ref().map(Into::into),
        advice: d.advice.clone().unwrap_or_default(),
        config_hash: config_hash.to_string(),
        sequence,
        underlying_state: pb::GateState::from(d.underlying_state) as i32,
    }
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Back from the wire (for clients such as the CLI that print decisions as JSON).
impl TryFrom<&pb::GateDecision> for core::GateDecision {
    type Error = ConversionError;

    fn try_from(d: &pb::GateDecision) -> Result<Self, ConversionError> {
        let reasons = d
            .reasons
            .iter()
            .map(|r| {
                Ok(core::Reason {
                    code: core::ReasonCode::parse(&r.code).ok_or_else(|| {
                        ConversionError::new(
                            "reasons.code",
                            format!("unknown reason code `{}`", r.code),
                        )
                    })?,
                    stage: opt(&r.stage),
                    probe: opt(&r.probe),
                    value: r.value,
                    threshold: r.threshold,
                    message: r.message.clone(),
                })
            })
            .collect::<Result<Vec<_>, ConversionError>>()?;
        let remediation = d
            .remediation
            .iter()
            .map(|r| {
                Ok(core::RemediationItem {
                    stage: r.stage.clone(),
                    probe: r.probe.clone(),
                    status: probe_status_from_pb(r.status, "remediation.status")?,
                    badness: r.badness,
                    message: r.message.clone(),
                    value: r.value,
                    threshold: r.threshold,
                })
            })
            .collect::<Result<Vec<_>, ConversionError>>()?;
        let stages = d
            .stages
            .iter()
            .map(|s| {
                Ok(core::StageSummary {
                    stage: s.stage.clone(),
                    health: stage_health_from_pb(s.health)?,
                    readiness: readiness_from_pb(s.readiness)?,
                    score: s.score,
                    checked_at: s.checked_at.as_ref().map(timestamp_from_pb),
                    on_unknown: match pb::OnUnknown::try_from(s.on_unknown) {
                        Ok(pb::OnUnknown::Fail) => core::OnUnknown::Fail,
                        _ => core::OnUnknown::Hold,
                    },
                    summary: s.summary.clone(),
                    probes: s
                        .probes
                        .iter()
                        .map(TryInto::try_into)
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<Vec<_>, ConversionError>>()?;
        let override_ = match &d.r#override {
            None => None,
            Some(o) => Some(core::Override {
                state: gate_state_from_pb(o.state, "override.state")?,
                actor: o.actor.clone(),
                reason: o.reason.clone(),
                until: o.until.as_ref().map(timestamp_from_pb).unwrap_or_default(),
                created_at: o
                    .created_at
                    .as_ref()
                    .map(timestamp_from_pb)
                    .unwrap_or_default(),
                percent: o.percent,
            }),
        };
        let state = gate_state_from_pb(d.state, "state")?;
        Ok(core::GateDecision {
            funnel: d.funnel.clone(),
            state,
            underlying_state: gate_state_from_pb(d.underlying_state, "underlying_state")
                .unwrap_or(state),
            allowed_rollout_percent: d.allowed_rollout_percent,
            blocking_stage: opt(&d.blocking_stage),
            phase: phase_from_pb(d.phase, "phase")?,
            reasons,
            remediation,
            stages,
            since: d.since.as_ref().map(timestamp_from_pb).unwrap_or_default(),
            evaluated_at: d
                .evaluated_at
                .as_ref()
                .map(timestamp_from_pb)
                .unwrap_or_default(),
            override_,
            advice: opt(&d.advice),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_including_negative() {
        for ms in [0, 1, 999, 1_700_000_000_123, -1, -1001] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(timestamp_from_pb(&timestamp_to_pb(t)), t, "{ms}");
        }
    }

    #[test]
    fn json_params_round_trip() {
        let v = serde_json::json!({"query": "select 1", "n": 3, "f": 0.5, "list": [1, "a", null], "o": {"b": true}});
        let back = struct_to_json(&json_object_to_struct(v.as_object().unwrap()));
        assert_eq!(back, v);
    }

    #[test]
    fn probe_spec_round_trips() {
        let mut p = core::ProbeSpec::new("leads", "sql");
        p.params = serde_json::json!({"query": "select 1"});
        p.thresholds.fail_below = Some(70.0);
        p.severity = core::Severity::Advisory;
        p.mode = core::ProbeMode::Observe;
        p.proof = true;
        p.min_sample = Some(30);
        p.secret = Some("WAREHOUSE_DSN".into());
        let back = core::ProbeSpec::try_from(&pb::ProbeSpec::from(&p)).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn result_with_unknown_status_is_rejected() {
        let r = pb::ProbeResult {
            id: "x".into(),
            status: 42,
            ..Default::default()
        };
        let err = core::ProbeResult::try_from(&r).unwrap_err();
        assert_eq!(err.field, "results[x].status");
        let r = pb::ProbeResult {
            id: "x".into(),
            status: 1,
            value: Some(f64::NAN),
            ..Default::default()
        };
        assert!(core::ProbeResult::try_from(&r).is_err());
    }

    #[test]
    fn probe_result_round_trips() {
        let mut r = core::ProbeResult::error("x", "sql", "boom", Timestamp::from_millis(5_000));
        r.window = Some(HumanDuration::from_secs(30 * 86400));
        r.evidence.insert("request_id".into(), "abc".into());
        r.duration_ms = 12;
        let back = core::ProbeResult::try_from(&pb::ProbeResult::from(&r)).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn journey_steps_round_trip_and_old_results_have_none() {
        let mut r = core::ProbeResult::error(
            "canary",
            "canary.lead_journey",
            "x",
            Timestamp::from_millis(1),
        );
        r.steps.push(core::JourneyStep {
            name: "crm_record".into(),
            stage: "crm".into(),
            status: core::ProbeStatus::Fail,
            duration_ms: 1_250,
            message: "the lead never reached the crm".into(),
        });
        let wire = pb::ProbeResult::from(&r);
        assert_eq!(wire.journey_steps.len(), 1);
        assert_eq!(core::ProbeResult::try_from(&wire).unwrap(), r);
        // A result from a checker that predates journeys decodes with no steps.
        let mut old = wire.clone();
        old.journey_steps.clear();
        assert!(core::ProbeResult::try_from(&old).unwrap().steps.is_empty());
        let mut bad = wire;
        bad.journey_steps[0].stage.clear();
        let e = core::ProbeResult::try_from(&bad).unwrap_err();
        assert!(e.to_string().contains("journey_steps[0].stage"), "{e}");
    }
}
