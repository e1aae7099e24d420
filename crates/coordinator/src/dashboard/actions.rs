//! Operator actions over HTTP, for the dashboard: the same authorisation, checks and engine
//! calls as the gRPC `SetOverride`, `ClearOverride` and `SetPhase` (answered once recorded in
//! the ledger). Bodies are JSON; the answer is the new decision (compact JSON, as `GET …/gate`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use funnelgate_core::{GateState, Override, Phase};
use serde::Deserialize;

use crate::error::ServiceError;
use crate::grpc::{ApiState, MAX_OVERRIDE_TTL_SECONDS, reason};
use crate::state::{Published, now};

/// `POST /v1/funnels/{funnel}/override`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    /// `OPEN` or `CLOSED`.
    pub state: String,
    /// Why (required; recorded in the ledger).
    pub reason: String,
    /// How long the override lasts, 1..=604800 seconds.
    pub ttl_seconds: u64,
    /// OPEN only: the share to allow (1..=100); absent: the first ramp step.
    #[serde(default)]
    pub percent: Option<u32>,
}

/// `DELETE /v1/funnels/{funnel}/override` (the body is optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearBody {
    /// Why (optional).
    #[serde(default)]
    pub reason: String,
}

/// `POST /v1/funnels/{funnel}/phase`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseBody {
    /// `build` or `operate`.
    pub phase: String,
    /// Why (required).
    pub reason: String,
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ServiceError> {
    b.map(|Json(v)| v)
        .map_err(|e| ServiceError::InvalidArgument(format!("invalid JSON body: {}", e.body_text())))
}

fn answer(p: &Published) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        p.json(false).to_vec(),
    )
        .into_response()
}

/// Parse a gate state an override may force.
pub fn override_state(s: &str) -> Result<GateState, ServiceError> {
    match s.trim().to_ascii_uppercase().as_str() {
        "OPEN" => Ok(GateState::Open),
        "CLOSED" => Ok(GateState::Closed),
        "HOLD" => Err(ServiceError::InvalidArgument(
            "an override forces OPEN or CLOSED, not HOLD".into(),
        )),
        _ => Err(ServiceError::InvalidArgument(format!(
            "`state` must be OPEN or CLOSED, got `{}`",
            s.chars().take(40).collect::<String>()
        ))),
    }
}

/// Parse a phase name.
pub fn phase(s: &str) -> Result<Phase, ServiceError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "build" => Ok(Phase::Build),
        "operate" => Ok(Phase::Operate),
        _ => Err(ServiceError::InvalidArgument(format!(
            "`phase` must be build or operate, got `{}`",
            s.chars().take(40).collect::<String>()
        ))),
    }
}

/// Set an override (operator only).
pub async fn set_override(
    State(state): State<Arc<ApiState>>,
    Path(funnel): Path<String>,
    headers: HeaderMap,
    b: Result<Json<OverrideBody>, JsonRejection>,
) -> Result<Response, ServiceError> {
    let caller = state
        .auth
        .authorize_change(authorization(&headers), "setting an override")?;
    state.slot(&funnel)?;
    let b = body(b)?;
    let forced = override_state(&b.state)?;
    let why = reason(&b.reason, true)?;
    if !(1..=MAX_OVERRIDE_TTL_SECONDS).contains(&b.ttl_seconds) {
        return Err(ServiceError::InvalidArgument(format!(
            "`ttl_seconds` must be within 1..={MAX_OVERRIDE_TTL_SECONDS} (7 days), got {}",
            b.ttl_seconds
        )));
    }
    let created_at = now();
    let ov = Override {
        state: forced,
        actor: caller.name.clone(),
        reason: why,
        until: created_at.add(Duration::from_secs(b.ttl_seconds)),
        created_at,
        percent: b.percent,
    };
    let published = state.engine.set_override(funnel.clone(), ov).await?;
    tracing::info!(funnel = %funnel, actor = %caller.name, state = %forced, percent = ?b.percent, ttl_seconds = b.ttl_seconds, via = "http", "override set");
    Ok(answer(&published))
}

/// Clear an override (operator only).
pub async fn clear_override(
    State(state): State<Arc<ApiState>>,
    Path(funnel): Path<String>,
    headers: HeaderMap,
    b: Option<Json<ClearBody>>,
) -> Result<Response, ServiceError> {
    let caller = state
        .auth
        .authorize_change(authorization(&headers), "clearing an override")?;
    state.slot(&funnel)?;
    let b = b.map(|Json(b)| b).unwrap_or_default();
    let mut why = reason(&b.reason, false)?;
    if why.is_empty() {
        why = format!("cleared by {}", caller.name);
    }
    let published = state
        .engine
        .clear_override(funnel.clone(), caller.name.clone(), why)
        .await?;
    tracing::info!(funnel = %funnel, actor = %caller.name, via = "http", "override cleared");
    Ok(answer(&published))
}

/// Set the phase (operator only).
pub async fn set_phase(
    State(state): State<Arc<ApiState>>,
    Path(funnel): Path<String>,
    headers: HeaderMap,
    b: Result<Json<PhaseBody>, JsonRejection>,
) -> Result<Response, ServiceError> {
    let caller = state
        .auth
        .authorize_change(authorization(&headers), "setting the phase")?;
    state.slot(&funnel)?;
    let b = body(b)?;
    let p = phase(&b.phase)?;
    let why = reason(&b.reason, true)?;
    let published = state
        .engine
        .set_phase(funnel.clone(), p, caller.name.clone(), why)
        .await?;
    tracing::info!(funnel = %funnel, actor = %caller.name, phase = %p.as_str(), via = "http", "phase set");
    Ok(answer(&published))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn override_states_and_phases_parse_strictly() {
        assert_eq!(override_state("open").unwrap(), GateState::Open);
        assert_eq!(override_state("CLOSED").unwrap(), GateState::Closed);
        assert!(matches!(
            override_state("HOLD"),
            Err(ServiceError::InvalidArgument(m)) if m.contains("not HOLD")
        ));
        assert!(override_state("shut").is_err());
        assert_eq!(phase("Operate").unwrap(), Phase::Operate);
        assert!(phase("launch").is_err());
    }
}
