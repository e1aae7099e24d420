//! A local Pipedrive: API v2 `deals`, `persons`, `pipelines`, `stages` (cursor paging through
//! `additional_data.next_cursor`, `limit` up to 500, `sort_by` `id`/`add_time`/`update_time`
//! with `sort_direction`, `status` and `updated_since` filters, custom fields under
//! `custom_fields`), API v1 where no v2 exists (`users/me`, `*Fields`, the Leads Inbox `leads`:
//! the `{"success", "data", "additional_data": {"pagination"}}` envelope with `start`/`limit`
//! paging), the v1 list endpoints that v2 replaced answering 410 (out of support since August
//! 2026), the `x-api-token` (or Bearer) auth, the burst rate-limit headers, Pipedrive's error
//! bodies, and injected faults. Shapes follow Pipedrive's API v2 reference.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, Uri};
use serde_json::{Value, json};

use super::{Fault, Faults, Recorded, Server, fault_response, json_response, parse_query, serve};

pub const TOKEN: &str = "659c9fddb16335e48cc67114694b52074e812e03";

/// What the local Pipedrive holds.
#[derive(Default)]
pub struct PdState {
    /// Collections by path (`/api/v2/deals`, `/api/v2/persons`, `/api/v2/pipelines`,
    /// `/v1/personFields`, `/v1/leads`, …).
    pub lists: HashMap<String, Vec<Value>>,
    /// Stages (each with `pipeline_id`).
    pub stages: Vec<Value>,
    pub faults: Faults,
    pub log: Vec<Recorded>,
}

/// A running local Pipedrive.
pub struct PipedriveMock {
    pub server: Server,
    pub state: Arc<Mutex<PdState>>,
}

impl PipedriveMock {
    pub async fn start(state: PdState) -> PipedriveMock {
        let state = Arc::new(Mutex::new(state));
        let router = Router::new().fallback(handle).with_state(state.clone());
        PipedriveMock {
            server: serve(router).await,
            state,
        }
    }

    pub fn base(&self) -> String {
        self.server.base.clone()
    }

    pub fn log(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn fault(&self, path_contains: &str, fault: Fault, times: Option<u32>) {
        self.state
            .lock()
            .unwrap()
            .faults
            .rules
            .push((path_contains.to_string(), fault, times));
    }
}

/// Pipedrive's error body.
pub fn pd_error(code: u16, message: &str) -> Fault {
    Fault::Status {
        code,
        body: json!({ "success": false, "error": message, "errorCode": code, "error_info": "Please check developers.pipedrive.com" }).to_string(),
        headers: if code == 429 { vec![("retry-after".into(), "5".into())] } else { vec![] },
    }
}

fn page(items: &[Value], start: usize, limit: usize) -> Value {
    let end = (start + limit).min(items.len());
    let data: Vec<Value> = items
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let more = end < items.len();
    let mut pagination =
        json!({ "start": start, "limit": limit, "more_items_in_collection": more });
    if more {
        pagination["next_start"] = json!(end);
    }
    json!({ "success": true, "data": if data.is_empty() { Value::Null } else { Value::Array(data) }, "additional_data": { "pagination": pagination } })
}

fn sort_key(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

async fn handle(
    State(state): State<Arc<Mutex<PdState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    _body: Bytes,
) -> Response<Body> {
    let path = uri.path().to_string();
    let query = parse_query(uri.query());
    let fault = {
        let mut s = state.lock().unwrap();
        s.log.push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            headers: headers.clone(),
            body: Value::Null,
        });
        s.faults.take(&path)
    };
    let mut resp = if let Some(f) = fault {
        fault_response(f).await
    } else {
        let token_ok = headers.get("x-api-token").and_then(|v| v.to_str().ok()) == Some(TOKEN)
            || headers.get("authorization").and_then(|v| v.to_str().ok())
                == Some(&format!("Bearer {TOKEN}"));
        if !token_ok {
            json_response(
                401,
                &json!({ "success": false, "error": "unauthorized access", "errorCode": 401, "error_info": "Please check developers.pipedrive.com" }),
            )
        } else {
            route(&state.lock().unwrap(), &path, &query)
        }
    };
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", "40".parse().unwrap());
    h.insert("x-ratelimit-remaining", "39".parse().unwrap());
    h.insert("x-ratelimit-reset", "2".parse().unwrap());
    resp
}

fn route(
    s: &PdState,
    path: &str,
    query: &std::collections::BTreeMap<String, String>,
) -> Response<Body> {
    if path == "/v1/users/me" {
        return json_response(
            200,
            &json!({ "success": true, "data": { "id": 1, "name": "Ann", "email": "ann@acme.io", "company_id": 7, "company_domain": "acme" } }),
        );
    }
    let start: usize = query.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = query
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    if limit > 500 {
        return json_response(
            400,
            &json!({ "success": false, "error": "limit must be at most 500", "errorCode": 400 }),
        );
    }
    if matches!(
        path,
        "/v1/deals" | "/v1/persons" | "/v1/pipelines" | "/v1/stages"
    ) {
        return json_response(
            410,
            &json!({ "success": false, "error": "This endpoint is deprecated and no longer supported. Use API v2.", "errorCode": 410 }),
        );
    }
    if let Some(rest) = path.strip_prefix("/api/v2/") {
        return route_v2(s, rest, query);
    }
    if path == "/v1/stages" {
        let pid = query.get("pipeline_id").cloned().unwrap_or_default();
        let items: Vec<Value> = s
            .stages
            .iter()
            .filter(|st| {
                st["pipeline_id"].as_u64().map(|n| n.to_string()).as_deref() == Some(pid.as_str())
            })
            .cloned()
            .collect();
        return json_response(200, &page(&items, start, limit));
    }
    let Some(items) = s.lists.get(path) else {
        return json_response(
            404,
            &json!({ "success": false, "error": "Unknown method .", "errorCode": 404 }),
        );
    };
    let mut items = items.clone();
    if let Some(status) = query.get("status") {
        items.retain(|d| d.get("status").and_then(Value::as_str) == Some(status.as_str()));
    }
    if let Some(sort) = query.get("sort") {
        let (field, dir) = sort.split_once(' ').unwrap_or((sort.as_str(), "ASC"));
        items.sort_by_key(|v| sort_key(v, field));
        if dir.eq_ignore_ascii_case("DESC") {
            items.reverse();
        }
    }
    json_response(200, &page(&items, start, limit))
}

/// API v2 lists: cursor paging, `sort_by`/`sort_direction`, `status`, `updated_since`,
/// `pipeline_id` (stages).
fn route_v2(
    s: &PdState,
    rest: &str,
    query: &std::collections::BTreeMap<String, String>,
) -> Response<Body> {
    let bad = |m: &str| {
        json_response(
            400,
            &json!({ "success": false, "error": m, "errorCode": 400 }),
        )
    };
    let limit: usize = query
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    if limit > 500 {
        return bad("limit must be at most 500");
    }
    let mut items: Vec<Value> = if rest == "stages" {
        let pid = query.get("pipeline_id").cloned().unwrap_or_default();
        s.stages
            .iter()
            .filter(|st| {
                pid.is_empty()
                    || st["pipeline_id"].as_u64().map(|n| n.to_string()).as_deref()
                        == Some(pid.as_str())
            })
            .cloned()
            .collect()
    } else {
        match s.lists.get(&format!("/api/v2/{rest}")) {
            Some(items) => items.clone(),
            None => {
                return json_response(
                    404,
                    &json!({ "success": false, "error": "Not found", "errorCode": 404 }),
                );
            }
        }
    };
    if let Some(status) = query.get("status") {
        let wanted: Vec<&str> = status.split(',').collect();
        items.retain(|d| {
            d.get("status")
                .and_then(Value::as_str)
                .is_some_and(|v| wanted.contains(&v))
        });
    }
    if let Some(since) = query.get("updated_since") {
        items.retain(|d| sort_key(d, "update_time").as_str() >= since.as_str());
    }
    let sort_by = query.get("sort_by").map(String::as_str).unwrap_or("id");
    if !matches!(sort_by, "id" | "add_time" | "update_time") {
        return bad("sort_by must be one of id, update_time, add_time");
    }
    let desc = match query.get("sort_direction").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return bad("sort_direction must be asc or desc"),
    };
    if sort_by == "id" {
        items.sort_by_key(|v| v["id"].as_u64().unwrap_or(0));
    } else {
        items.sort_by_key(|v| sort_key(v, sort_by));
    }
    if desc {
        items.reverse();
    }
    let start: usize = match query.get("cursor") {
        None => 0,
        Some(c) => match c
            .strip_prefix("eyJvZmZzZXQiOi")
            .and_then(|n| n.parse().ok())
        {
            Some(n) => n,
            None => return bad("invalid cursor"),
        },
    };
    let end = (start + limit).min(items.len());
    let data: Vec<Value> = items
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    // The last page carries no `next_cursor` (the official client's v2 models declare it a
    // string, never null).
    let additional = if end < items.len() {
        json!({ "next_cursor": format!("eyJvZmZzZXQiOi{end}") })
    } else {
        json!({})
    };
    json_response(
        200,
        &json!({ "success": true, "data": data, "additional_data": additional }),
    )
}
