//! A local HubSpot reproducing the documented shapes of the automation flows (v4 schema under the
//! date-based path), marketing forms and emails, contact properties and search, and the
//! communication-preferences status; errors as HubSpot's `{"status":"error","message",
//! "category","correlationId"}`, with `policyName` `DAILY` for a spent daily budget.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, Uri};
use serde_json::{Value, json};

use super::{Fault, Faults, Recorded, Server, fault_response, json_response, parse_query, serve};

pub const TOKEN: &str = "pat-na1-test";

#[derive(Default)]
pub struct HubState {
    pub flows: Vec<Value>,
    /// Flow id → its detail (with actions).
    pub flow_details: BTreeMap<String, Value>,
    pub emails: BTreeMap<String, Value>,
    pub forms: BTreeMap<String, Value>,
    pub properties: Vec<Value>,
    pub contacts: Vec<Value>,
    pub prefs: BTreeMap<String, Value>,
    pub page_size: usize,
    pub daily: Option<(u64, u64)>,
    pub faults: Faults,
    pub log: Vec<Recorded>,
    pub next_id: u64,
}

pub type Shared = Arc<Mutex<HubState>>;

pub struct HubSpotMock {
    pub server: Server,
    pub state: Shared,
}

impl HubSpotMock {
    pub async fn start(mut st: HubState) -> HubSpotMock {
        if st.page_size == 0 {
            st.page_size = 100;
        }
        let state = Arc::new(Mutex::new(st));
        let router = Router::new().fallback(handle).with_state(state.clone());
        HubSpotMock {
            server: serve(router).await,
            state,
        }
    }
    pub fn base(&self) -> String {
        self.server.base.clone()
    }
    pub fn fault(&self, path: &str, f: Fault, times: Option<u32>) {
        self.state.lock().unwrap().faults.add(path, f, times);
    }
    pub fn log(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().log.clone()
    }
}

pub fn flow(id: &str, name: &str, enabled: bool) -> Value {
    json!({"id": id, "name": name, "isEnabled": enabled, "flowType": "WORKFLOW",
           "objectTypeId": "0-1", "revisionId": "7", "createdAt": "2026-01-01T00:00:00Z",
           "updatedAt": "2026-01-01T00:00:00Z"})
}

pub fn flow_detail(id: &str, name: &str, email_ids: &[&str]) -> Value {
    let actions: Vec<Value> = email_ids
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({"type": "SINGLE_CONNECTION", "actionId": (i + 1).to_string(),
                             "actionTypeVersion": 0, "actionTypeId": "0-4",
                             "fields": {"content_id": e}})
        })
        .collect();
    json!({"id": id, "name": name, "isEnabled": true, "flowType": "WORKFLOW", "type": "CONTACT_FLOW",
           "objectTypeId": "0-1", "revisionId": "7", "startActionId": "1", "actions": actions})
}

pub fn email(id: &str, name: &str, state: &str) -> Value {
    json!({"id": id, "name": name, "state": state, "archived": false, "subject": name,
           "type": "AUTOMATED_EMAIL", "isPublished": state == "PUBLISHED" || state == "AUTOMATED"})
}

pub fn form(id: &str, name: &str, fields: &[(&str, bool)]) -> Value {
    json!({"id": id, "name": name, "formType": "hubspot", "archived": false,
           "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
           "fieldGroups": [{"groupType": "default_group", "richTextType": "text",
               "fields": fields.iter().map(|(n, hidden)| json!({
                   "objectTypeId": "0-1", "name": n, "label": n, "required": false,
                   "hidden": hidden, "fieldType": if *hidden { "single_line_text" } else { "email" }
               })).collect::<Vec<_>>()}],
           "configuration": {}, "displayOptions": {}, "legalConsentOptions": {"type": "none"}})
}

fn err(code: u16, message: &str, category: &str) -> Response<Body> {
    json_response(
        code,
        &json!({"status": "error", "message": message, "correlationId": "c0ffee00-0000-4000-8000-000000000000", "category": category}),
    )
}

fn matches(c: &Value, f: &Value) -> bool {
    let prop = f["propertyName"].as_str().unwrap_or("");
    let have = c["properties"][prop].as_str().unwrap_or("");
    let want = f["value"].as_str().unwrap_or("");
    match f["operator"].as_str().unwrap_or("EQ") {
        "EQ" => have.eq_ignore_ascii_case(want),
        "GTE" => have.parse::<f64>().unwrap_or(f64::MIN) >= want.parse::<f64>().unwrap_or(0.0),
        "CONTAINS_TOKEN" => {
            let w = want.trim_start_matches('*');
            have.ends_with(w)
        }
        _ => false,
    }
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = uri.path().to_string();
    let query = parse_query(uri.query());
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
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
        body: body.clone(),
    });
    if let Some(f) = st.faults.take(&path) {
        return fault_response(f);
    }
    if authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return err(
            401,
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "INVALID_AUTHENTICATION",
        );
    }
    let q = |k: &str| query.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone());
    let mut resp = route(&mut st, &method, &path, &q, &body);
    if let Some((max, remaining)) = st.daily {
        let h = resp.headers_mut();
        h.insert(
            "x-hubspot-ratelimit-daily",
            max.to_string().parse().unwrap(),
        );
        h.insert(
            "x-hubspot-ratelimit-daily-remaining",
            remaining.to_string().parse().unwrap(),
        );
    }
    resp
}

fn route(
    st: &mut HubState,
    method: &Method,
    path: &str,
    q: &dyn Fn(&str) -> Option<String>,
    body: &Value,
) -> Response<Body> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["automation", "flows", _v]) => {
            let after: usize = q("after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let size = st.page_size;
            let page: Vec<Value> = st.flows.iter().skip(after).take(size).cloned().collect();
            let mut r = json!({"results": page});
            if after + size < st.flows.len() {
                r["paging"] =
                    json!({"next": {"after": (after + size).to_string(), "link": "?after="}});
            }
            json_response(200, &r)
        }
        ("GET", ["automation", "flows", _v, id]) => match st.flow_details.get(*id) {
            Some(f) => json_response(200, f),
            None => err(404, &format!("Flow {id} not found"), "OBJECT_NOT_FOUND"),
        },
        ("GET", ["marketing", "emails", _v, id]) => match st.emails.get(*id) {
            Some(e) => json_response(200, e),
            None => err(404, "Email not found", "OBJECT_NOT_FOUND"),
        },
        ("GET", ["marketing", "forms", _v, id]) => match st.forms.get(*id) {
            Some(f) => json_response(200, f),
            None => err(404, "Form not found", "OBJECT_NOT_FOUND"),
        },
        ("GET", ["crm", "properties", _v, "contacts"]) => {
            json_response(200, &json!({"results": st.properties}))
        }
        ("GET", ["crm", "objects", _v, "contacts"]) => json_response(
            200,
            &json!({"results": st.contacts.iter().take(1).collect::<Vec<_>>()}),
        ),
        ("POST", ["crm", "objects", _v, "contacts", "search"]) => {
            let groups = body["filterGroups"].as_array().cloned().unwrap_or_default();
            let found: Vec<Value> = st
                .contacts
                .iter()
                .filter(|c| {
                    groups.is_empty()
                        || groups.iter().any(|g| {
                            g["filters"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .all(|f| matches(c, f))
                        })
                })
                .cloned()
                .collect();
            json_response(200, &json!({"total": found.len(), "results": found}))
        }
        ("POST", ["crm", "objects", _v, "contacts"]) => {
            st.next_id += 1;
            let id = (900 + st.next_id).to_string();
            let c = json!({"id": id, "properties": body["properties"], "archived": false});
            st.contacts.push(c.clone());
            json_response(201, &c)
        }
        ("DELETE", ["crm", "objects", _v, "contacts", id]) => {
            let before = st.contacts.len();
            st.contacts.retain(|c| c["id"] != *id);
            if st.contacts.len() < before {
                Response::builder().status(204).body(Body::empty()).unwrap()
            } else {
                err(404, "resource not found", "OBJECT_NOT_FOUND")
            }
        }
        ("GET", ["communication-preferences", "v3", "status", "email", e]) => {
            match st.prefs.get(*e) {
                Some(p) => json_response(200, p),
                None => err(404, "Recipient not found", "OBJECT_NOT_FOUND"),
            }
        }
        _ => err(404, &format!("no route {path}"), "OBJECT_NOT_FOUND"),
    }
}
