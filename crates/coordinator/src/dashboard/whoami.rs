//! `GET /v1/whoami`: who the `Authorization: Bearer <token>` header belongs to, so the dashboard
//! shows operator actions only to operators. Answers
//! `{"authenticated": bool, "identity": string|null, "role": "operator"|"viewer"|null}` with 200
//! (an unknown or missing token is `authenticated: false`, not an error). With no operators
//! configured every caller is the anonymous operator, as on the gRPC API.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};

use crate::config::Role;
use crate::grpc::ApiState;

/// The handler.
pub async fn whoami(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Json<serde_json::Value> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    Json(match state.auth.authenticate(authorization) {
        Ok(caller) => serde_json::json!({
            "authenticated": true,
            "identity": caller.name,
            "role": match caller.role {
                Role::Operator => "operator",
                Role::Viewer => "viewer",
            },
        }),
        Err(_) => serde_json::json!({
            "authenticated": false,
            "identity": null,
            "role": null,
        }),
    })
}
