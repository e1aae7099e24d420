//! The HTTP front end (axum): gate JSON for Argo Rollouts' web metric provider, curl and CI;
//! `/metrics` for Prometheus; `/healthz` and `/readyz` for orchestrators.
//!
//! Every timestamp in a reply is RFC 3339 UTC with `Z` ([`crate::json_time`]).
//!
//! `GET /v1/funnels/{funnel}/gate` answers the core `GateDecision` as JSON plus `config_hash` and
//! `sequence`; its top-level `state` is `"OPEN"`, `"HOLD"` or `"CLOSED"` and
//! `allowed_rollout_percent` a number, so an Argo `AnalysisTemplate` can use
//! `successCondition: result.state == "OPEN"` with `jsonPath: "{$}"`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::ServiceError;
use crate::grpc::ApiState;

/// Content type of `/metrics` (prometheus-client writes OpenMetrics text).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The HTTP routes.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/funnels", get(list_funnels))
        .route("/v1/funnels/{funnel}/gate", get(get_gate))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct GateQuery {
    #[serde(default)]
    view: Option<String>,
}

fn json_bytes(status: StatusCode, body: Arc<[u8]>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_vec(),
    )
        .into_response()
}

async fn get_gate(
    State(state): State<Arc<ApiState>>,
    Path(funnel): Path<String>,
    Query(query): Query<GateQuery>,
) -> Result<Response, ServiceError> {
    let full = match query.view.as_deref() {
        None | Some("" | "compact") => false,
        Some("full") => true,
        Some(other) => {
            return Err(ServiceError::InvalidArgument(format!(
                "`view={other}` is not a view: use `compact` or `full`"
            )));
        }
    };
    let slot = state.slot(&funnel)?;
    Ok(json_bytes(StatusCode::OK, slot.current().json(full)))
}

async fn list_funnels(State(state): State<Arc<ApiState>>) -> Json<serde_json::Value> {
    let funnels: Vec<serde_json::Value> = state
        .gates
        .iter()
        .map(|(name, slot)| {
            let p = slot.current();
            let d = &p.decision;
            serde_json::json!({
                "funnel": name,
                "state": d.state,
                "allowed_rollout_percent": d.allowed_rollout_percent,
                "blocking_stage": d.blocking_stage,
                "phase": d.phase,
                "since": d.since.to_string(),
                "sequence": p.sequence,
            })
        })
        .collect();
    Json(serde_json::json!({ "funnels": funnels }))
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> ServiceError {
    ServiceError::NotFound(format!(
        "no route `{}`: try GET /v1/funnels, /v1/funnels/{{funnel}}/gate, /metrics, /healthz or /readyz",
        uri.path()
    ))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready to serve, with this replica's role (`role`: `leader` or `follower`, `term`, `leader`:
/// the leader's advertised address). 503 while the database is unreachable, while a follower
/// has not caught up yet, and on a leader until every stage was checked once.
async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    let cluster = state.gates.cluster();
    let role = cluster.state();
    let mut body = serde_json::json!({
        "role": if role.leader { "leader" } else { "follower" },
        "term": role.term,
        "leader": role.leader_address,
        "database": if role.db_ok { "ok" } else { "unreachable" },
    });
    let ready = match state.gates.ready() {
        Ok(()) => Ok(()),
        Err(waiting) if !role.db_ok || (cluster.is_replicated() && !role.leader) => {
            Err(waiting.join(", "))
        }
        Err(waiting) => {
            let shown: Vec<&String> = waiting.iter().take(20).collect();
            let more = waiting.len().saturating_sub(shown.len());
            let mut reason = format!(
                "waiting for the first check of {}",
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if more > 0 {
                reason.push_str(&format!(" and {more} more"));
            }
            Err(reason)
        }
    };
    let map = body.as_object_mut();
    match ready {
        Ok(()) => {
            if let Some(map) = map {
                map.insert("status".into(), "ready".into());
            }
            Json(body).into_response()
        }
        Err(reason) => {
            if let Some(map) = map {
                map.insert("status".into(), "not_ready".into());
                map.insert("reason".into(), reason.into());
            }
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}
