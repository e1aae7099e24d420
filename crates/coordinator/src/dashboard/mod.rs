//! The funnel dashboard: a page served by the coordinator on its HTTP port (assets embedded in
//! the binary, no external network), the JSON it reads (a funnel's full decision with its
//! policy, the decision history from the ledger, one entry with its evidence), the live change
//! feed as server-sent events (the same per-funnel broadcast `WatchGate` streams), and the HTTP
//! operator actions the page calls (the same engine calls and checks as the gRPC API).
//!
//! Routes (see docs/dashboard.md):
//! - `GET /dashboard`, `GET /dashboard/funnels/{funnel}`: the page; `GET /dashboard/assets/*`.
//! - `GET /v1/funnels/{funnel}/view`: `{decision (full JSON), policy, notifications}`.
//! - `GET /v1/funnels/{funnel}/decisions?limit=&before=`: the ledger, newest first.
//! - `GET /v1/funnels/{funnel}/decisions/{seq}`: one ledger entry with its evidence.
//! - `GET /v1/funnels/{funnel}/events`, `GET /v1/events`: server-sent events.
//! - `GET /v1/whoami`: who the bearer token belongs to ([`whoami`]).
//! - `POST /v1/funnels/{funnel}/override`, `DELETE /v1/funnels/{funnel}/override`,
//!   `POST /v1/funnels/{funnel}/phase`: operator actions ([`actions`]).

pub mod actions;
pub mod events;
pub mod whoami;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::ServiceError;
use crate::grpc::{ApiState, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::store::LedgerEntry;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The dashboard's routes, merged into the HTTP router.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/dashboard") }))
        .route("/dashboard", get(index))
        .route("/dashboard/", get(index))
        .route("/dashboard/funnels/{funnel}", get(index))
        .route("/dashboard/assets/app.js", get(app_js))
        .route("/dashboard/assets/app.css", get(app_css))
        .route("/v1/funnels/{funnel}/view", get(view))
        .route("/v1/funnels/{funnel}/decisions", get(history))
        .route("/v1/funnels/{funnel}/decisions/{seq}", get(entry))
        .route("/v1/funnels/{funnel}/events", get(events::funnel_events))
        .route("/v1/events", get(events::all_events))
        .route("/v1/whoami", get(whoami::whoami))
        .route(
            "/v1/funnels/{funnel}/override",
            post(actions::set_override).delete(actions::clear_override),
        )
        .route("/v1/funnels/{funnel}/phase", post(actions::set_phase))
}

/// Security headers of every page and asset: nothing may load from elsewhere.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// A funnel's page data: the full decision (every probe), the policy (thresholds), and the
/// state of its notification sinks.
async fn view(
    State(state): State<Arc<ApiState>>,
    Path(funnel): Path<String>,
) -> Result<Json<serde_json::Value>, ServiceError> {
    let slot = state.slot(&funnel)?;
    let decision: serde_json::Value = serde_json::from_slice(&slot.current().json(true))
        .map_err(|e| ServiceError::Internal(format!("cannot read the published decision: {e}")))?;
    let policy = serde_json::to_value(&*slot.policy)
        .map_err(|e| ServiceError::Internal(format!("cannot write the policy: {e}")))?;
    Ok(Json(serde_json::json!({
        "decision": decision,
        "policy": policy,
        "notifications": state.notify.json(&funnel),
    })))
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    before: Option<u64>,
}

/// One ledger entry as the timeline shows it (no evidence).
pub fn entry_summary(e: &LedgerEntry) -> serde_json::Value {
    let d = e.payload.get("decision");
    let field = |k: &str| d.and_then(|d| d.get(k)).cloned().unwrap_or_default();
    let actor = e
        .payload
        .get("actor")
        .or_else(|| e.payload.get("override").and_then(|o| o.get("actor")))
        .cloned()
        .unwrap_or_default();
    let reason = e
        .payload
        .get("reason")
        .or_else(|| e.payload.get("override").and_then(|o| o.get("reason")))
        .cloned()
        .unwrap_or_default();
    serde_json::json!({
        "sequence": e.seq,
        "kind": e.kind.as_str(),
        "recorded_at": e.recorded_at.to_string(),
        "state": field("state"),
        "allowed_rollout_percent": field("allowed_rollout_percent"),
        "blocking_stage": field("blocking_stage"),
        "phase": field("phase"),
        "actor": actor,
        "reason": reason,
        "hash": e.hash,
    })
}

async fn history(
    State(state): State<Arc<ApiState>>,
    Path(funnel): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<serde_json::Value>, ServiceError> {
    state.slot(&funnel)?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
    if q.before == Some(0) {
        return Err(ServiceError::InvalidArgument(
            "`before` must be a ledger sequence of 1 or more".into(),
        ));
    }
    let entries = state.store.list(&funnel, q.before, limit).await?;
    let items: Vec<serde_json::Value> = entries.iter().map(entry_summary).collect();
    Ok(Json(
        serde_json::json!({ "funnel": funnel, "decisions": items }),
    ))
}

async fn entry(
    State(state): State<Arc<ApiState>>,
    Path((funnel, seq)): Path<(String, String)>,
) -> Result<Response, ServiceError> {
    state.slot(&funnel)?;
    let seq: u64 = seq.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
        ServiceError::InvalidArgument(format!(
            "`{}` is not a ledger sequence (a number from 1)",
            seq.chars().take(40).collect::<String>()
        ))
    })?;
    let e = state.store.get(&funnel, seq).await?.ok_or_else(|| {
        ServiceError::NotFound(format!(
            "funnel `{funnel}` has no ledger entry {seq}: list them with GET /v1/funnels/{funnel}/decisions"
        ))
    })?;
    let mut payload = e.payload.clone();
    crate::json_time::rfc3339_timestamps(&mut payload);
    let mut body = entry_summary(&e);
    if let Some(map) = body.as_object_mut() {
        map.insert("prev_hash".into(), e.prev_hash.clone().into());
        map.insert("config_hash".into(), e.config_hash.clone().into());
        map.insert("payload".into(), payload);
    }
    Ok((StatusCode::OK, Json(body)).into_response())
}
