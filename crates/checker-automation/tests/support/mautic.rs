//! A local Mautic reproducing the REST API shapes documented by `mautic/api-library` (and
//! Mautic's own API controllers): keyed collections (`{"campaigns": {"7": {...}}}`, `[]` when
//! empty), `total` as a string, `start`/`limit`/`orderBy` paging, `search` commands
//! (`email:`, `tag:`, `segment:`, negation with `!`), `where[n][col|expr|val]` filters, the
//! `{"errors": [{"code", "message", "type"}]}` error body, HTTP Basic or Bearer auth.
//!
//! Mautic itself is a PHP application that is packaged neither in Debian nor on PyPI, so it
//! cannot be run here: this server reproduces its documented API instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, Uri};
use serde_json::{Value, json};

use super::{Fault, Faults, Recorded, Server, fault_response, json_response, parse_query, serve};

/// Basic credentials the server accepts (`api:secret` → `YXBpOnNlY3JldA==`).
pub const BASIC: &str = "api:secret";
/// OAuth2 token the server accepts.
pub const TOKEN: &str = "mautic-token";

#[derive(Default)]
pub struct MauticState {
    pub contacts: BTreeMap<u64, Value>,
    pub campaigns: BTreeMap<u64, Value>,
    pub emails: BTreeMap<u64, Value>,
    pub segments: BTreeMap<u64, Value>,
    /// Segment alias → member contact ids.
    pub members: BTreeMap<String, Vec<u64>>,
    pub forms: BTreeMap<u64, Value>,
    pub points: Vec<Value>,
    pub triggers: Vec<Value>,
    pub events: Vec<Value>,
    /// Contact id → campaign ids it is enrolled in.
    pub enrolments: BTreeMap<u64, Vec<u64>>,
    pub faults: Faults,
    pub log: Vec<Recorded>,
    /// Rate limiter headers to send (`limit`, `remaining`).
    pub rate_limit: Option<(u64, u64)>,
    /// Campaign ids that vanish after being listed.
    pub vanish: Vec<u64>,
    /// Pages starting at or past this index come back empty (paging cut short).
    pub cut_at: Option<usize>,
    pub next_id: u64,
}

pub type Shared = Arc<Mutex<MauticState>>;

pub struct Mautic {
    pub server: Server,
    pub state: Shared,
}

impl Mautic {
    pub async fn start(state: MauticState) -> Mautic {
        let state = Arc::new(Mutex::new(state));
        let router = Router::new().fallback(handle).with_state(state.clone());
        Mautic {
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

/// A contact as the API returns it.
pub fn contact(id: u64, email: &str, date_added: &str, points: i64, tags: &[&str]) -> Value {
    json!({
        "id": id, "isPublished": true, "dateAdded": date_added, "dateModified": date_added,
        "createdBy": 1, "createdByUser": "API", "points": points, "color": null,
        "fields": {
            "core": {"email": {"id": "6", "label": "Email", "alias": "email", "type": "email", "group": "core", "value": email}},
            "all": {"id": id, "email": email, "firstname": "", "lastname": ""}
        },
        "lastActive": null, "owner": null, "ipAddresses": [],
        "tags": tags.iter().map(|t| json!({"tag": t})).collect::<Vec<_>>(),
        "utmtags": [], "stage": null, "dateIdentified": date_added,
        "doNotContact": [], "frequencyRules": []
    })
}

/// A campaign with `email.send` events for these email ids.
pub fn campaign(id: u64, name: &str, published: bool, email_ids: &[u64]) -> Value {
    let events: Vec<Value> = email_ids
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({"id": id * 100 + i as u64, "name": "Send welcome email", "description": null,
                   "type": "email.send", "eventType": "action", "order": i + 1,
                   "properties": {"email": e, "email_type": "marketing"},
                   "triggerMode": "immediate", "channel": "email", "channelId": e})
        })
        .collect();
    json!({"id": id, "name": name, "description": null, "isPublished": published,
           "publishUp": null, "publishDown": null, "dateAdded": "2026-01-01T00:00:00+00:00",
           "category": null, "events": events, "forms": [], "lists": []})
}

pub fn email(id: u64, name: &str, published: bool) -> Value {
    json!({"id": id, "name": name, "subject": name, "isPublished": published,
           "publishUp": null, "publishDown": null, "emailType": "template", "lang": "en"})
}

pub fn segment(id: u64, name: &str, alias: &str) -> Value {
    json!({"id": id, "name": name, "alias": alias, "isPublished": true, "isGlobal": true,
           "filters": [], "dateAdded": "2026-01-01T00:00:00+00:00"})
}

pub fn form_field(alias: &str, ty: &str, lead_field: Option<&str>) -> Value {
    json!({"id": alias.len(), "label": alias, "alias": alias, "type": ty,
           "isRequired": false, "leadField": lead_field, "defaultValue": ""})
}

fn err(code: u16, message: &str, ty: &str) -> Response<Body> {
    json_response(
        code,
        &json!({"errors": [{"code": code, "message": message, "type": ty, "details": []}]}),
    )
}

fn keyed(items: &[Value]) -> Value {
    if items.is_empty() {
        return json!([]);
    }
    let mut m = serde_json::Map::new();
    for i in items {
        m.insert(i["id"].to_string(), i.clone());
    }
    Value::Object(m)
}

fn q<'a>(query: &'a [(String, String)], k: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(kk, _)| kk == k)
        .map(|(_, v)| v.as_str())
}

fn email_of(c: &Value) -> String {
    c["fields"]["all"]["email"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn has_tag(c: &Value, t: &str) -> bool {
    c["tags"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x["tag"] == t))
}

/// Page a list the way Mautic does: `start`, `limit`, ordered by id unless told otherwise.
fn page(st: &MauticState, items: Vec<Value>, query: &[(String, String)], key: &str) -> Value {
    let total = items.len();
    let start: usize = q(query, "start").and_then(|s| s.parse().ok()).unwrap_or(0);
    let limit: usize = q(query, "limit").and_then(|s| s.parse().ok()).unwrap_or(30);
    let slice: Vec<Value> = if st.cut_at.is_some_and(|c| start >= c) {
        Vec::new()
    } else {
        items.into_iter().skip(start).take(limit).collect()
    };
    json!({"total": total.to_string(), key: keyed(&slice)})
}

fn contact_matches(st: &MauticState, c: &Value, query: &[(String, String)]) -> bool {
    let id = c["id"].as_u64().unwrap_or(0);
    if let Some(search) = q(query, "search") {
        for term in search.split_whitespace() {
            let (neg, term) = match term.strip_prefix('!') {
                Some(t) => (true, t),
                None => (false, term),
            };
            let ok = if let Some(v) = term.strip_prefix("email:") {
                email_of(c).eq_ignore_ascii_case(v)
            } else if let Some(v) = term.strip_prefix("tag:") {
                has_tag(c, v)
            } else if let Some(v) = term.strip_prefix("segment:") {
                st.members.get(v).is_some_and(|m| m.contains(&id))
            } else {
                email_of(c).contains(term)
            };
            if ok == neg {
                return false;
            }
        }
    }
    let mut i = 0;
    while let Some(col) = q(query, &format!("where[{i}][col]")) {
        let expr = q(query, &format!("where[{i}][expr]")).unwrap_or("eq");
        let val = q(query, &format!("where[{i}][val]")).unwrap_or("");
        let ok = match col {
            "dateAdded" => {
                let have = funnelgate_checker_automation::time::parse(
                    c["dateAdded"].as_str().unwrap_or(""),
                );
                let want = funnelgate_checker_automation::time::parse(val);
                match (have, want, expr) {
                    (Some(h), Some(w), "gte") => h >= w,
                    (Some(h), Some(w), "lte") => h <= w,
                    _ => false,
                }
            }
            "points" => {
                let have = c["points"].as_f64().unwrap_or(0.0);
                let want: f64 = val.parse().unwrap_or(0.0);
                match expr {
                    "gte" => have >= want,
                    "lte" => have <= want,
                    _ => have == want,
                }
            }
            _ => false,
        };
        if !ok {
            return false;
        }
        i += 1;
    }
    true
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
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
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
    let basic = format!(
        "Basic {}",
        // base64("api:secret")
        "YXBpOnNlY3JldA=="
    );
    let bearer = format!("Bearer {TOKEN}");
    if authorization.as_deref() != Some(basic.as_str())
        && authorization.as_deref() != Some(bearer.as_str())
    {
        return err(401, "API authorization denied.", "access_denied");
    }
    let mut resp = route(&mut st, &method, &path, &query, &body_json);
    if let Some((limit, remaining)) = st.rate_limit {
        let h = resp.headers_mut();
        h.insert("x-ratelimit-limit", limit.to_string().parse().unwrap());
        h.insert(
            "x-ratelimit-remaining",
            remaining.to_string().parse().unwrap(),
        );
        h.insert("x-ratelimit-reset", "1893456000".parse().unwrap());
    }
    resp
}

fn route(
    st: &mut MauticState,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    body: &Value,
) -> Response<Body> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["api", "contacts"]) => {
            let mut items: Vec<Value> = st
                .contacts
                .values()
                .filter(|c| contact_matches(st, c, query))
                .cloned()
                .collect();
            if q(query, "orderBy") == Some("dateAdded") {
                items.sort_by_key(|c| c["dateAdded"].as_str().unwrap_or("").to_string());
            }
            if q(query, "orderByDir") == Some("desc") {
                items.reverse();
            }
            json_response(200, &page(st, items, query, "contacts"))
        }
        ("GET", ["api", "contacts", "activity"]) => {
            let limit: usize = q(query, "limit").and_then(|s| s.parse().ok()).unwrap_or(25);
            let pg: usize = q(query, "page").and_then(|s| s.parse().ok()).unwrap_or(1);
            let since =
                q(query, "filters[dateFrom]").and_then(funnelgate_checker_automation::time::parse);
            let include: Vec<&str> = query
                .iter()
                .filter(|(k, _)| k == "filters[includeEvents][]")
                .map(|(_, v)| v.as_str())
                .collect();
            let items: Vec<Value> = st
                .events
                .iter()
                .filter(|e| {
                    include.is_empty() || include.contains(&e["event"].as_str().unwrap_or(""))
                })
                .filter(|e| {
                    let t = funnelgate_checker_automation::time::parse(
                        e["timestamp"].as_str().unwrap_or(""),
                    );
                    since.is_none_or(|s| t.is_some_and(|t| t >= s))
                })
                .cloned()
                .collect();
            let total = items.len();
            let max_pages = total.div_ceil(limit).max(1);
            let cut = st.cut_at.is_some_and(|c| (pg - 1) * limit >= c);
            let slice: Vec<Value> = if cut {
                Vec::new()
            } else {
                items
                    .into_iter()
                    .skip((pg - 1) * limit)
                    .take(limit)
                    .collect()
            };
            json_response(
                200,
                &json!({"events": slice, "filters": {}, "order": ["timestamp", "DESC"], "types": {},
                        "total": total, "page": pg, "limit": limit, "maxPages": max_pages}),
            )
        }
        ("POST", ["api", "contacts", "new"]) => {
            st.next_id += 1;
            let id = 10_000 + st.next_id;
            let email = body["email"].as_str().unwrap_or_default().to_string();
            let tags: Vec<String> = match &body["tags"] {
                Value::String(s) => s.split(',').map(|t| t.trim().to_string()).collect(),
                Value::Array(a) => a
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
            let mut c = contact(id, &email, &super::hours_ago(0.0), 0, &tag_refs);
            if let Value::Object(fields) = body {
                for (k, v) in fields {
                    if k != "tags" {
                        c["fields"]["all"][k] = v.clone();
                    }
                }
            }
            st.contacts.insert(id, c.clone());
            json_response(201, &json!({"contact": c}))
        }
        ("GET", ["api", "contacts", id, "campaigns"]) => {
            let Ok(id) = id.parse::<u64>() else {
                return err(404, "Item was not found.", "not_found");
            };
            if !st.contacts.contains_key(&id) {
                return err(404, "Item was not found.", "not_found");
            }
            let camps: Vec<Value> = st
                .enrolments
                .get(&id)
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|cid| st.campaigns.get(cid))
                .map(|c| json!({"id": c["id"], "name": c["name"], "dateAdded": super::hours_ago(0.0),
                                 "manuallyRemoved": false, "manuallyAdded": false, "list_membership": []}))
                .collect();
            json_response(
                200,
                &json!({"total": camps.len(), "campaigns": keyed(&camps)}),
            )
        }
        ("DELETE", ["api", "contacts", id, "delete"]) => {
            match id
                .parse::<u64>()
                .ok()
                .and_then(|id| st.contacts.remove(&id))
            {
                Some(c) => {
                    st.enrolments.remove(&c["id"].as_u64().unwrap_or(0));
                    json_response(200, &json!({"contact": c}))
                }
                None => err(404, "Item was not found.", "not_found"),
            }
        }
        ("GET", ["api", "contacts", id]) => {
            match id.parse::<u64>().ok().and_then(|id| st.contacts.get(&id)) {
                Some(c) => json_response(200, &json!({"contact": c})),
                None => err(404, "Item was not found.", "not_found"),
            }
        }
        ("GET", ["api", "campaigns"]) => {
            let published_only = q(query, "publishedOnly") == Some("1");
            let items: Vec<Value> = st
                .campaigns
                .values()
                .filter(|c| !published_only || c["isPublished"] == true)
                .map(|c| {
                    let mut c = c.clone();
                    if q(query, "minimal").is_some() {
                        c.as_object_mut().unwrap().remove("events");
                    }
                    c
                })
                .collect();
            let reply = page(st, items, query, "campaigns");
            for id in st.vanish.clone() {
                st.campaigns.remove(&id);
            }
            json_response(200, &reply)
        }
        ("GET", ["api", "campaigns", id]) => {
            match id.parse::<u64>().ok().and_then(|id| st.campaigns.get(&id)) {
                Some(c) => json_response(200, &json!({"campaign": c})),
                None => err(404, "Item was not found.", "not_found"),
            }
        }
        ("GET", ["api", "emails", id]) => {
            match id.parse::<u64>().ok().and_then(|id| st.emails.get(&id)) {
                Some(e) => json_response(200, &json!({"email": e})),
                None => err(404, "Item was not found.", "not_found"),
            }
        }
        ("GET", ["api", "segments"]) => {
            let items: Vec<Value> = st.segments.values().cloned().collect();
            json_response(200, &page(st, items, query, "lists"))
        }
        ("GET", ["api", "points"]) => {
            let items = st.points.clone();
            json_response(200, &page(st, items, query, "points"))
        }
        ("GET", ["api", "points", "triggers"]) => {
            let items = st.triggers.clone();
            json_response(200, &page(st, items, query, "triggers"))
        }
        ("GET", ["api", "forms", id]) => {
            match id.parse::<u64>().ok().and_then(|id| st.forms.get(&id)) {
                Some(f) => json_response(200, &json!({"form": f})),
                None => err(404, "Item was not found.", "not_found"),
            }
        }
        _ => err(404, "Requested URL not found: /api/...", "not_found"),
    }
}
