//! A local Mailgun Events API (`GET /v3/{domain}/events?recipient=`, items of `delivered` or
//! `failed` events with `severity` and `delivery-status`) and bounce list
//! (`DELETE /v3/{domain}/bounces/{address}`), Basic auth `api:<key>`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, Uri};
use serde_json::{Value, json};

use super::{Recorded, Server, json_response, parse_query, serve};

pub const KEY: &str = "key-test";

#[derive(Default)]
pub struct MailgunState {
    /// Recipient → events.
    pub events: BTreeMap<String, Vec<Value>>,
    pub bounces: Vec<String>,
    pub log: Vec<Recorded>,
}

pub type Shared = Arc<Mutex<MailgunState>>;

pub struct MailgunMock {
    pub server: Server,
    pub state: Shared,
}

impl MailgunMock {
    pub async fn start() -> MailgunMock {
        let state: Shared = Arc::default();
        let router = Router::new().fallback(handle).with_state(state.clone());
        MailgunMock {
            server: serve(router).await,
            state,
        }
    }
}

pub fn delivered(recipient: &str) -> Value {
    json!({"event": "delivered", "timestamp": 1_765_000_000.5, "recipient": recipient,
           "id": "ev1", "message": {"headers": {"message-id": "m1@mg.example.com"}},
           "delivery-status": {"code": 250, "message": "OK"}})
}

pub fn bounced(recipient: &str) -> Value {
    json!({"event": "failed", "severity": "permanent", "reason": "bounce", "timestamp": 1_765_000_000.5,
           "recipient": recipient, "id": "ev2",
           "delivery-status": {"code": 550, "message": "5.1.1 mailbox does not exist"}})
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let path = uri.path().to_string();
    let query = parse_query(uri.query());
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut st = state.lock().unwrap();
    st.log.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        authorization: authorization.clone(),
        body: Value::Null,
    });
    // base64("api:key-test")
    if authorization.as_deref() != Some("Basic YXBpOmtleS10ZXN0") {
        return json_response(401, &json!({"message": "Invalid private key"}));
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["v3", _domain, "events"]) => {
            let r = query
                .iter()
                .find(|(k, _)| k == "recipient")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let items = st.events.get(&r).cloned().unwrap_or_default();
            json_response(
                200,
                &json!({"items": items, "paging": {"next": "", "previous": ""}}),
            )
        }
        ("DELETE", ["v3", _domain, "bounces", addr]) => {
            let addr = addr.to_string();
            st.bounces.retain(|b| *b != addr);
            json_response(
                200,
                &json!({"message": "Bounced address has been removed", "address": addr}),
            )
        }
        _ => json_response(404, &json!({"message": "not found"})),
    }
}
