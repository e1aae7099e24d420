//! A local Marketo reproducing the REST API's documented shapes: the identity service's token
//! (`GET /identity/oauth/token`, 401 `{"error":"unauthorized","error_description":"Bad client
//! credentials"}`), the `{"requestId","success","result","errors","warnings","moreResult",
//! "nextPageToken"}` envelope with HTTP 200 for API errors (601, 602, 603, 606, 607, 610, 611,
//! 615, 702, …), Lead Database paging by `nextPageToken`, Asset API paging by
//! `offset`/`maxReturn` and its "No assets found" warning. `marketorestpython` parses these
//! replies in `tests/fidelity.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, Uri};
use serde_json::{Value, json};

use super::{Fault, Faults, Recorded, Server, fault_response, json_response, parse_query, serve};

pub const CLIENT_ID: &str = "client-id";
pub const CLIENT_SECRET: &str = "client-secret";
pub const SECRET: &str = "client-id:client-secret";

pub const NEW_LEAD: u64 = 12;
pub const CHANGE_SCORE: u64 = 22;
pub const SEND_ALERT_FAILED: u64 = 901;
pub const EMAIL_DELIVERED: u64 = 7;
pub const SEND_EMAIL: u64 = 6;

#[derive(Default)]
pub struct MarketoState {
    pub usage_today: u64,
    pub campaigns: Vec<Value>,
    /// Activities (each with `activityTypeId`, `activityDate`).
    pub activities: Vec<Value>,
    pub leads: BTreeMap<u64, Value>,
    pub emails: BTreeMap<u64, Value>,
    pub forms: BTreeMap<u64, Vec<Value>>,
    /// Program memberships: lead id → programs.
    pub memberships: BTreeMap<u64, Vec<Value>>,
    pub lead_fields: Vec<Value>,
    /// Reply with this Marketo error code on paths containing the key, n times.
    pub codes: Vec<(String, String, Option<u32>)>,
    pub faults: Faults,
    pub log: Vec<Recorded>,
    /// Activity page size.
    pub page_size: usize,
    /// After this many activity pages, claim `moreResult` without a token.
    pub cut_after_pages: Option<usize>,
    pub tokens_issued: u32,
    pub next_id: u64,
}

pub type Shared = Arc<Mutex<MarketoState>>;

pub struct Marketo {
    pub server: Server,
    pub state: Shared,
}

impl Marketo {
    pub async fn start(mut state: MarketoState) -> Marketo {
        if state.page_size == 0 {
            state.page_size = 300;
        }
        let state = Arc::new(Mutex::new(state));
        let router = Router::new().fallback(handle).with_state(state.clone());
        Marketo {
            server: serve(router).await,
            state,
        }
    }
    pub fn base(&self) -> String {
        self.server.base.clone()
    }
    pub fn code(&self, path: &str, code: &str, times: Option<u32>) {
        self.state
            .lock()
            .unwrap()
            .codes
            .push((path.into(), code.into(), times));
    }
    pub fn fault(&self, path: &str, f: Fault, times: Option<u32>) {
        self.state.lock().unwrap().faults.add(path, f, times);
    }
    pub fn log(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().log.clone()
    }
}

pub fn message_of(code: &str) -> &'static str {
    match code {
        "601" => "Access token invalid",
        "602" => "Access token expired",
        "603" => "Access denied",
        "606" => "Max rate limit '100' exceeded with in '20' secs",
        "607" => "Daily quota reached",
        "610" => "Requested resource not found",
        "611" => "System error",
        "615" => "Concurrent access limit reached",
        "702" => "No data found for given search criteria",
        _ => "Error",
    }
}

fn ok(result: Vec<Value>) -> Response<Body> {
    json_response(
        200,
        &json!({"requestId": "e42b#14272d07d78", "success": true, "result": result}),
    )
}

fn code_reply(code: &str) -> Response<Body> {
    json_response(
        200,
        &json!({"requestId": "e42b#14272d07d79", "success": false,
                "errors": [{"code": code, "message": message_of(code)}]}),
    )
}

pub fn activity_types() -> Vec<Value> {
    [
        (1, "Visit Webpage"),
        (2, "Fill Out Form"),
        (SEND_EMAIL, "Send Email"),
        (EMAIL_DELIVERED, "Email Delivered"),
        (8, "Email Bounced"),
        (NEW_LEAD, "New Lead"),
        (CHANGE_SCORE, "Change Score"),
        (SEND_ALERT_FAILED, "Send Alert Failed"),
    ]
    .iter()
    .map(|(id, name)| {
        json!({"id": id, "name": name, "description": name,
               "primaryAttribute": {"name": "Lead ID", "dataType": "integer"}, "attributes": []})
    })
    .collect()
}

pub fn activity(id: u64, lead: u64, type_id: u64, at: &str, attrs: &[(&str, Value)]) -> Value {
    json!({"id": id, "marketoGUID": format!("{id}"), "leadId": lead, "activityDate": at,
           "activityTypeId": type_id, "primaryAttributeValueId": 1, "primaryAttributeValue": "x",
           "campaignId": 1001,
           "attributes": attrs.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>()})
}

pub fn smart_campaign(id: u64, name: &str, active: bool) -> Value {
    json!({"id": id, "name": name, "description": "", "type": "trigger", "isSystem": false,
           "isActive": active, "isRequestable": false, "isCommunicationLimitEnabled": false,
           "recurrence": {"weekdayOnly": false}, "qualificationRuleType": "once",
           "status": if active { "Active" } else { "Inactive" },
           "createdAt": "2026-01-01T00:00:00Z+0000", "updatedAt": "2026-01-01T00:00:00Z+0000",
           "workspace": "Default", "smartListId": id + 1, "flowId": id + 2, "computedUrl": ""})
}

pub fn email_asset(id: u64, name: &str, status: &str) -> Value {
    json!({"id": id, "name": name, "description": "", "status": status, "version": 2,
           "createdAt": "2026-01-01T00:00:00Z+0000", "updatedAt": "2026-01-01T00:00:00Z+0000",
           "subject": {"type": "Text", "value": name}, "fromName": {"type": "Text", "value": "Acme"},
           "folder": {"type": "Folder", "value": 1, "folderName": "Emails"}, "workspace": "Default"})
}

pub fn form_field(id: &str, data_type: &str) -> Value {
    json!({"id": id, "label": id, "dataType": data_type, "validationMessage": "", "required": false,
           "formPrefill": true, "isSensitive": false, "visibilityRules": {"ruleType": "alwaysShow"}})
}

pub fn lead_fields(with_score: bool) -> Vec<Value> {
    let mut f = vec![
        json!({"id": 1, "displayName": "Email Address", "dataType": "email", "length": 255,
               "rest": {"name": "email", "readOnly": false}, "soap": {"name": "Email", "readOnly": false}}),
        json!({"id": 2, "displayName": "Unsubscribed", "dataType": "boolean",
               "rest": {"name": "unsubscribed", "readOnly": false}}),
    ];
    if with_score {
        f.push(
            json!({"id": 3, "displayName": "Lead Score", "dataType": "score",
                      "rest": {"name": "leadScore", "readOnly": false}}),
        );
    }
    f
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = uri.path().to_string();
    let mut query = parse_query(uri.query());
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Marketo's documented `_method=GET` override: a form-encoded POST read as a GET (used for
    // long filter lists; marketorestpython sends lead lookups this way).
    let mut method = method;
    let form = super::parse_form(&body);
    if method == Method::POST && form.get("_method").map(String::as_str) == Some("GET") {
        method = Method::GET;
        query.extend(form.into_iter().filter(|(k, _)| k != "_method"));
    }
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
        body: body_json.clone(),
    });
    if let Some(f) = st.faults.take(&path) {
        return fault_response(f);
    }
    let q = |k: &str| query.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone());
    if path == "/identity/oauth/token" {
        if q("client_id").as_deref() != Some(CLIENT_ID)
            || q("client_secret").as_deref() != Some(CLIENT_SECRET)
        {
            return json_response(
                401,
                &json!({"error": "unauthorized", "error_description": "Bad client credentials"}),
            );
        }
        st.tokens_issued += 1;
        let n = st.tokens_issued;
        return json_response(
            200,
            &json!({"access_token": format!("token-{n}"), "token_type": "bearer",
                    "expires_in": 3599, "scope": "api@acme.com"}),
        );
    }
    // The token can also come as `access_token` (marketorestpython sends it as a query param).
    let token = authorization
        .and_then(|a| a.strip_prefix("Bearer ").map(str::to_string))
        .or_else(|| q("access_token"));
    if token.is_none() || !token.as_deref().unwrap_or("").starts_with("token-") {
        return code_reply("601");
    }
    let mut code = None;
    for (p, c, left) in st.codes.iter_mut() {
        if path.contains(p.as_str()) {
            match left {
                Some(0) => continue,
                Some(n) => *n -= 1,
                None => {}
            }
            code = Some(c.clone());
            break;
        }
    }
    if let Some(c) = code {
        return code_reply(&c);
    }
    route(&mut st, &method, &path, &q, &body_json)
}

fn route(
    st: &mut MarketoState,
    method: &Method,
    path: &str,
    q: &dyn Fn(&str) -> Option<String>,
    body: &Value,
) -> Response<Body> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["rest", "v1", "stats", "usage.json"]) => ok(vec![json!({
            "date": "2026-12-06", "total": st.usage_today,
            "users": [{"userId": "api@acme.com", "count": st.usage_today}]})]),
        ("GET", ["rest", "asset", "v1", "smartCampaigns.json"]) => {
            let offset: usize = q("offset").and_then(|s| s.parse().ok()).unwrap_or(0);
            let max: usize = q("maxReturn").and_then(|s| s.parse().ok()).unwrap_or(20);
            let page: Vec<Value> = st
                .campaigns
                .iter()
                .skip(offset)
                .take(max)
                .cloned()
                .collect();
            if page.is_empty() {
                return json_response(
                    200,
                    &json!({"success": true, "errors": [], "requestId": "1",
                    "warnings": ["No assets found for the given search criteria."]}),
                );
            }
            ok(page)
        }
        ("GET", ["rest", "v1", "activities", "types.json"]) => ok(activity_types()),
        ("GET", ["rest", "v1", "activities", "pagingtoken.json"]) => {
            let since = q("sinceDatetime").unwrap_or_default();
            json_response(
                200,
                &json!({"requestId": "2", "success": true,
                                         "nextPageToken": format!("since:{since}:0")}),
            )
        }
        ("GET", ["rest", "v1", "activities.json"]) => {
            let token = q("nextPageToken").unwrap_or_default();
            let (since, idx) = token
                .strip_prefix("since:")
                .and_then(|t| t.rsplit_once(':'))
                .map(|(s, i)| (s.to_string(), i.parse::<usize>().unwrap_or(0)))
                .unwrap_or_default();
            let since = funnelgate_checker_automation::time::parse(&since);
            let types: Vec<u64> = q("activityTypeIds")
                .unwrap_or_default()
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect();
            let lead_ids: Option<Vec<u64>> =
                q("leadIds").map(|l| l.split(',').filter_map(|s| s.trim().parse().ok()).collect());
            let all: Vec<Value> = st
                .activities
                .iter()
                .filter(|a| types.contains(&a["activityTypeId"].as_u64().unwrap_or(0)))
                .filter(|a| {
                    lead_ids
                        .as_ref()
                        .is_none_or(|l| l.contains(&a["leadId"].as_u64().unwrap_or(0)))
                })
                .filter(|a| {
                    let t = funnelgate_checker_automation::time::parse(
                        a["activityDate"].as_str().unwrap_or(""),
                    );
                    since.is_none_or(|s| t.is_some_and(|t| t >= s))
                })
                .cloned()
                .collect();
            let size = st.page_size;
            let page: Vec<Value> = all.iter().skip(idx * size).take(size).cloned().collect();
            let more = (idx + 1) * size < all.len();
            let cut = st.cut_after_pages.is_some_and(|c| idx + 1 >= c) && more;
            let mut reply = json!({"requestId": "3", "success": true, "moreResult": more,
                                    "nextPageToken": token.clone()});
            if more && !cut {
                let since_s = token
                    .strip_prefix("since:")
                    .and_then(|t| t.rsplit_once(':'))
                    .map(|(s, _)| s.to_string())
                    .unwrap_or_default();
                reply["nextPageToken"] = json!(format!("since:{since_s}:{}", idx + 1));
            }
            if !page.is_empty() {
                reply["result"] = json!(page);
            }
            json_response(200, &reply)
        }
        ("GET", ["rest", "v1", "leads", "describe.json"]) => ok(st.lead_fields.clone()),
        ("GET", ["rest", "v1", "leads.json"]) => {
            let ft = q("filterType").unwrap_or_default();
            let vals: Vec<String> = q("filterValues")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_lowercase())
                .collect();
            let found: Vec<Value> = st
                .leads
                .values()
                .filter(|l| {
                    let v = l.get(&ft).map(|v| match v {
                        Value::String(s) => s.to_lowercase(),
                        other => other.to_string(),
                    });
                    v.is_some_and(|v| vals.contains(&v))
                })
                .cloned()
                .collect();
            ok(found)
        }
        ("POST", ["rest", "v1", "leads.json"]) => {
            let mut result = Vec::new();
            for input in body["input"].as_array().cloned().unwrap_or_default() {
                st.next_id += 1;
                let id = 5000 + st.next_id;
                let mut lead = input.clone();
                lead["id"] = json!(id);
                st.leads.insert(id, lead);
                result.push(json!({"id": id, "status": "created"}));
            }
            ok(result)
        }
        ("POST", ["rest", "v1", "leads", "delete.json"])
        | ("DELETE", ["rest", "v1", "leads.json"]) => {
            let mut result = Vec::new();
            for input in body["input"].as_array().cloned().unwrap_or_default() {
                let id = input["id"].as_u64().unwrap_or(0);
                if st.leads.remove(&id).is_some() {
                    st.memberships.remove(&id);
                    result.push(json!({"id": id, "status": "deleted"}));
                } else {
                    result.push(json!({"id": id, "status": "skipped",
                                       "reasons": [{"code": "1004", "message": "Lead not found"}]}));
                }
            }
            ok(result)
        }
        ("GET", ["rest", "v1", "leads", id, "programMembership.json"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            ok(st.memberships.get(&id).cloned().unwrap_or_default())
        }
        ("GET", ["rest", "asset", "v1", "email", file]) => {
            let id: u64 = file.trim_end_matches(".json").parse().unwrap_or(0);
            match st.emails.get(&id) {
                Some(e) => ok(vec![e.clone()]),
                None => code_reply("702"),
            }
        }
        ("GET", ["rest", "asset", "v1", "form", id, "fields.json"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match st.forms.get(&id) {
                Some(f) => ok(f.clone()),
                None => code_reply("702"),
            }
        }
        _ => json_response(404, &json!({"error": "not found"})),
    }
}
