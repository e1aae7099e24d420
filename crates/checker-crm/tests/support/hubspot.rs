//! A local HubSpot on the date-based `2026-09` API: CRM objects (list, search, batch read),
//! properties, pipelines, association batch reads, the account's daily API usage, private-app Bearer auth, the daily and burst rate-limit headers on
//! every reply, search limits (200 per page, 10,000 results per query), and injected faults.
//! Response shapes follow HubSpot's published specs as generated into `hubspot-api-client`; the
//! fidelity test parses them with that client.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, Uri};
use funnelgate_checker_crm::time::Utc;
use serde_json::{Value, json};

use super::{Fault, Faults, Recorded, Server, fault_response, json_response, parse_query, serve};

pub const TOKEN: &str = "pat-na1-test-token-0123456789";
/// The date-based API version the local HubSpot serves (the client's default).
pub const VERSION: &str = "2026-09";
const TS: &str = "2024-01-01T00:00:00.000Z";

/// One CRM object.
#[derive(Clone, Debug)]
pub struct Obj {
    pub id: String,
    pub props: BTreeMap<String, String>,
}

impl Obj {
    /// An object created at `createdate` (ISO) with these properties.
    pub fn new(id: impl ToString, createdate: &str, props: &[(&str, &str)]) -> Obj {
        let mut p: BTreeMap<String, String> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        p.insert("createdate".into(), createdate.to_string());
        Obj {
            id: id.to_string(),
            props: p,
        }
    }
}

/// What the local HubSpot holds and how it misbehaves.
#[derive(Default)]
pub struct HubState {
    pub objects: HashMap<String, Vec<Obj>>,
    pub properties: HashMap<String, Vec<Value>>,
    pub pipelines: HashMap<String, Vec<Value>>,
    /// deal id → contact ids.
    pub associations: HashMap<String, Vec<String>>,
    /// (daily max, remaining); decremented per request. `None`: no daily headers (OAuth apps).
    pub daily: Option<(u64, u64)>,
    /// The account's daily usage as `GET /account-info/{v}/api-usage/daily/private-apps`
    /// reports it: (usage limit, current usage).
    pub usage: Option<(u64, u64)>,
    pub faults: Faults,
    pub log: Vec<Recorded>,
}

/// A running local HubSpot.
pub struct HubSpotMock {
    pub server: Server,
    pub state: Arc<Mutex<HubState>>,
}

impl HubSpotMock {
    pub async fn start(state: HubState) -> HubSpotMock {
        let state = Arc::new(Mutex::new(state));
        let router = Router::new().fallback(handle).with_state(state.clone());
        HubSpotMock {
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

/// A property definition with every field `hubspot-api-client` requires.
pub fn property(name: &str, ptype: &str, field_type: &str, options: &[&str]) -> Value {
    let opts: Vec<Value> = options
        .iter()
        .enumerate()
        .map(|(i, o)| json!({ "label": o.replace('_', " "), "value": o, "displayOrder": i, "hidden": false }))
        .collect();
    json!({
        "updatedAt": TS, "createdAt": TS, "name": name, "label": name.replace('_', " "),
        "type": ptype, "fieldType": field_type, "description": "", "groupName": "contactinformation",
        "options": opts, "displayOrder": -1, "calculated": false, "externalOptions": false,
        "hasUniqueValue": false, "hidden": false, "hubspotDefined": true, "archived": false,
        "modificationMetadata": { "archivable": true, "readOnlyDefinition": true, "readOnlyValue": false },
        "formField": true
    })
}

/// A pipeline stage (`metadata` values are strings, as HubSpot sends them).
pub fn stage(id: &str, label: &str, order: i64, probability: &str, closed: bool) -> Value {
    json!({
        "label": label, "displayOrder": order,
        "metadata": { "isClosed": if closed { "true" } else { "false" }, "probability": probability },
        "id": id, "createdAt": TS, "updatedAt": TS, "archived": false, "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"
    })
}

/// A pipeline.
pub fn pipeline(id: &str, label: &str, stages: Vec<Value>) -> Value {
    json!({ "label": label, "displayOrder": 0, "id": id, "stages": stages, "createdAt": TS, "updatedAt": TS, "archived": false })
}

/// A standard set of contact and deal properties.
pub fn standard_properties() -> HashMap<String, Vec<Value>> {
    let mut m = HashMap::new();
    m.insert(
        "contacts".to_string(),
        vec![
            property("email", "string", "text", &[]),
            property(
                "lifecyclestage",
                "enumeration",
                "radio",
                &["subscriber", "lead", "marketingqualifiedlead", "customer"],
            ),
            property(
                "hs_analytics_source",
                "enumeration",
                "select",
                &["ORGANIC_SEARCH", "PAID_SEARCH", "DIRECT_TRAFFIC", "OFFLINE"],
            ),
            property("hubspot_owner_id", "enumeration", "select", &[]),
        ],
    );
    m.insert(
        "deals".to_string(),
        vec![
            property("amount", "number", "number", &[]),
            property("closedate", "datetime", "date", &[]),
            property(
                "dealstage",
                "enumeration",
                "radio",
                &["appointmentscheduled", "closedwon", "closedlost"],
            ),
            property("pipeline", "enumeration", "select", &["default"]),
        ],
    );
    m
}

fn to_ms(s: &str) -> Option<i64> {
    Utc::parse(s).map(|u| u.0)
}

fn compare(have: &str, want: &str) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (to_ms(have), to_ms(want)) {
        return Some(a.cmp(&b));
    }
    if let (Ok(a), Ok(b)) = (have.parse::<f64>(), want.parse::<f64>()) {
        return a.partial_cmp(&b);
    }
    Some(have.to_lowercase().cmp(&want.to_lowercase()))
}

fn matches_filter(o: &Obj, f: &Value) -> Result<bool, String> {
    let prop = f["propertyName"]
        .as_str()
        .ok_or("filter without propertyName")?;
    let op = f["operator"].as_str().ok_or("filter without operator")?;
    let have = o.props.get(prop).filter(|v| !v.is_empty());
    let value = f.get("value").and_then(|v| {
        v.as_str()
            .map(str::to_string)
            .or_else(|| Some(v.to_string()))
    });
    let values: Vec<String> = f
        .get("values")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(|s| s.to_lowercase()))
                .collect()
        })
        .unwrap_or_default();
    let cmp = |want: &Option<String>| -> Result<Option<Ordering>, String> {
        let w = want
            .as_ref()
            .ok_or(format!("operator {op} needs a value"))?;
        Ok(have.and_then(|h| compare(h, w)))
    };
    Ok(match op {
        "HAS_PROPERTY" => have.is_some(),
        "NOT_HAS_PROPERTY" => have.is_none(),
        "EQ" => cmp(&value)? == Some(Ordering::Equal),
        "NEQ" => cmp(&value)? != Some(Ordering::Equal),
        "GT" => cmp(&value)? == Some(Ordering::Greater),
        "GTE" => matches!(cmp(&value)?, Some(Ordering::Greater | Ordering::Equal)),
        "LT" => cmp(&value)? == Some(Ordering::Less),
        "LTE" => matches!(cmp(&value)?, Some(Ordering::Less | Ordering::Equal)),
        "IN" => have.is_some_and(|h| values.contains(&h.to_lowercase())),
        "NOT_IN" => have.is_none_or(|h| !values.contains(&h.to_lowercase())),
        other => return Err(format!("unsupported operator {other}")),
    })
}

fn public_object(o: &Obj, props: &[String]) -> Value {
    let mut p = serde_json::Map::new();
    for k in
        props
            .iter()
            .map(String::as_str)
            .chain(["hs_object_id", "createdate", "lastmodifieddate"])
    {
        let v = match k {
            "hs_object_id" => Some(o.id.clone()),
            "lastmodifieddate" => o.props.get("createdate").cloned(),
            _ => o.props.get(k).cloned(),
        };
        p.insert(k.to_string(), v.map(Value::String).unwrap_or(Value::Null));
    }
    let created = o
        .props
        .get("createdate")
        .cloned()
        .unwrap_or_else(|| TS.to_string());
    json!({ "id": o.id, "properties": p, "createdAt": created, "updatedAt": created, "archived": false })
}

fn error(code: u16, message: &str, category: &str) -> Response<Body> {
    json_response(
        code,
        &json!({ "status": "error", "message": message, "correlationId": "3d9c6b1e-0000-4000-8000-000000000000", "category": category }),
    )
}

async fn handle(
    State(state): State<Arc<Mutex<HubState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = uri.path().to_string();
    let query = parse_query(uri.query());
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (fault, daily) = {
        let mut s = state.lock().unwrap();
        s.log.push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            headers: headers.clone(),
            body: body_json.clone(),
        });
        if let Some((_, rem)) = s.daily.as_mut() {
            *rem = rem.saturating_sub(1);
        }
        (s.faults.take(&path), s.daily)
    };
    let mut resp = if let Some(f) = fault {
        fault_response(f).await
    } else if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        error(
            401,
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "INVALID_AUTHENTICATION",
        )
    } else {
        route(&state, &method, &path, &query, &body_json)
    };
    let h = resp.headers_mut();
    if let Some((max, rem)) = daily {
        h.insert(
            "x-hubspot-ratelimit-daily",
            max.to_string().parse().unwrap(),
        );
        h.insert(
            "x-hubspot-ratelimit-daily-remaining",
            rem.to_string().parse().unwrap(),
        );
    }
    h.insert("x-hubspot-ratelimit-max", "190".parse().unwrap());
    h.insert("x-hubspot-ratelimit-remaining", "189".parse().unwrap());
    h.insert(
        "x-hubspot-ratelimit-interval-milliseconds",
        "10000".parse().unwrap(),
    );
    resp
}

fn route(
    state: &Arc<Mutex<HubState>>,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &Value,
) -> Response<Body> {
    let s = state.lock().unwrap();
    let mut parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // The official Python client (hubspot-api-client 12.0.0, used by the fidelity test) still
    // calls the legacy numeric paths, whose shapes are the same: serve them by the same routes.
    match parts.as_slice() {
        [
            "crm",
            "v3",
            api @ ("objects" | "properties" | "pipelines"),
            ..,
        ]
        | ["crm", "v4", api @ "associations", ..] => {
            let api = *api;
            parts.splice(1..3, [api, VERSION]);
        }
        _ => {}
    }
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["crm", "objects", VERSION, object]) => {
            let Some(objs) = s.objects.get(*object) else {
                return error(
                    400,
                    &format!("Unable to infer object type from: {object}"),
                    "VALIDATION_ERROR",
                );
            };
            let limit: usize = query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(10);
            if limit > 100 {
                return error(400, "limit must be at most 100", "VALIDATION_ERROR");
            }
            let start: usize = query.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let props: Vec<String> = query
                .get("properties")
                .map(|p| p.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            let page: Vec<Value> = objs
                .iter()
                .skip(start)
                .take(limit)
                .map(|o| public_object(o, &props))
                .collect();
            let mut out = json!({ "results": page });
            if start + limit < objs.len() {
                let after = (start + limit).to_string();
                out["paging"] =
                    json!({ "next": { "after": after, "link": format!("?after={after}") } });
            }
            json_response(200, &out)
        }
        ("POST", ["crm", "objects", VERSION, object, "search"]) => {
            let Some(objs) = s.objects.get(*object) else {
                return error(
                    400,
                    &format!("Unable to infer object type from: {object}"),
                    "VALIDATION_ERROR",
                );
            };
            let limit = body["limit"].as_u64().unwrap_or(10) as usize;
            if limit > 200 {
                return error(
                    400,
                    "There was a problem with the request.",
                    "VALIDATION_ERROR",
                );
            }
            let after: usize = body["after"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            if after + limit > 10_000 {
                return error(
                    400,
                    "The maximum number of results for a search is 10000.",
                    "VALIDATION_ERROR",
                );
            }
            let groups = body["filterGroups"].as_array().cloned().unwrap_or_default();
            if groups.len() > 5 {
                return error(400, "too many filterGroups", "VALIDATION_ERROR");
            }
            let mut hits = Vec::new();
            for o in objs {
                let mut any = groups.is_empty();
                for g in &groups {
                    let mut all = true;
                    for f in g["filters"].as_array().cloned().unwrap_or_default() {
                        match matches_filter(o, &f) {
                            Ok(m) => all &= m,
                            Err(e) => return error(400, &e, "VALIDATION_ERROR"),
                        }
                    }
                    any |= all;
                }
                if any {
                    hits.push(o.clone());
                }
            }
            if let Some(sort) = body["sorts"][0]["propertyName"].as_str() {
                let desc = body["sorts"][0]["direction"].as_str() == Some("DESCENDING");
                hits.sort_by(|a, b| {
                    let o = compare(
                        a.props.get(sort).map(String::as_str).unwrap_or(""),
                        b.props.get(sort).map(String::as_str).unwrap_or(""),
                    )
                    .unwrap_or(Ordering::Equal);
                    if desc { o.reverse() } else { o }
                });
            }
            let props: Vec<String> = body["properties"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let page: Vec<Value> = hits
                .iter()
                .skip(after)
                .take(limit)
                .map(|o| public_object(o, &props))
                .collect();
            let mut out = json!({ "total": hits.len(), "results": page });
            if after + limit < hits.len() {
                let next = (after + limit).to_string();
                out["paging"] = json!({ "next": { "after": next, "link": "" } });
            }
            json_response(200, &out)
        }
        ("POST", ["crm", "objects", VERSION, object, "batch", "read"]) => {
            let objs = s.objects.get(*object).cloned().unwrap_or_default();
            let props: Vec<String> = body["properties"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
            if inputs.len() > 100 {
                return error(400, "batch size must be at most 100", "VALIDATION_ERROR");
            }
            let results: Vec<Value> = inputs
                .iter()
                .filter_map(|i| i["id"].as_str())
                .filter_map(|id| objs.iter().find(|o| o.id == id))
                .map(|o| public_object(o, &props))
                .collect();
            json_response(
                200,
                &json!({ "status": "COMPLETE", "results": results, "startedAt": TS, "completedAt": TS }),
            )
        }
        (
            "POST",
            [
                "crm",
                "associations",
                VERSION,
                "deals",
                "contacts",
                "batch",
                "read",
            ],
        ) => {
            let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for id in inputs.iter().filter_map(|i| i["id"].as_str()) {
                match s.associations.get(id) {
                    Some(tos) if !tos.is_empty() => results.push(json!({
                        "from": { "id": id },
                        "to": tos.iter().map(|t| json!({
                            "toObjectId": t.parse::<i64>().unwrap_or(0),
                            "associationTypes": [{ "category": "HUBSPOT_DEFINED", "typeId": 3, "label": null }]
                        })).collect::<Vec<_>>()
                    })),
                    _ => errors.push(json!({
                        "status": "error", "category": "OBJECT_NOT_FOUND", "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": format!("No contact is associated with deal {id}."), "context": { "fromObjectId": [id] },
                        "links": {}, "errors": []
                    })),
                }
            }
            let code = if errors.is_empty() { 200 } else { 207 };
            let mut out = json!({ "status": "COMPLETE", "results": results, "startedAt": TS, "completedAt": TS });
            if !errors.is_empty() {
                out["numErrors"] = json!(errors.len());
                out["errors"] = json!(errors);
            }
            json_response(code, &out)
        }
        (
            "GET",
            [
                "account-info",
                VERSION,
                "api-usage",
                "daily",
                "private-apps",
            ],
        ) => match s.usage {
            Some((limit, current)) => json_response(
                200,
                &json!({ "results": [{
                    "name": "private-apps-api-calls-daily", "usageLimit": limit, "currentUsage": current,
                    "collectedAt": TS, "fetchStatus": "SUCCESS", "resetsAt": TS
                }] }),
            ),
            None => error(
                403,
                "This oauth-token can't call this API.",
                "MISSING_SCOPES",
            ),
        },
        ("GET", ["crm", "properties", VERSION, object]) => match s.properties.get(*object) {
            Some(props) => json_response(200, &json!({ "results": props })),
            None => error(
                404,
                &format!("Unable to infer object type from: {object}"),
                "OBJECT_NOT_FOUND",
            ),
        },
        ("GET", ["crm", "pipelines", VERSION, object]) => match s.pipelines.get(*object) {
            Some(p) => json_response(200, &json!({ "results": p })),
            None => error(
                404,
                &format!("Unable to infer object type from: {object}"),
                "OBJECT_NOT_FOUND",
            ),
        },
        _ => error(
            404,
            &format!("no route for {method} {path}"),
            "OBJECT_NOT_FOUND",
        ),
    }
}

/// HubSpot's 403 for a missing scope.
pub fn missing_scope(scope: &str) -> Fault {
    Fault::Status {
        code: 403,
        body: json!({
            "status": "error",
            "message": "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
            "correlationId": "3d9c6b1e-0000-4000-8000-000000000001",
            "errors": [{ "message": "One or more of the following scopes are required.", "context": { "requiredGranularScopes": [scope] } }],
            "links": { "scopes": "https://developers.hubspot.com/scopes" },
            "category": "MISSING_SCOPES"
        })
        .to_string(),
        headers: vec![],
    }
}

/// HubSpot's 429 for the secondly limit.
pub fn rate_limited(retry_after: &str) -> Fault {
    Fault::Status {
        code: 429,
        body: json!({ "status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT", "correlationId": "3d9c6b1e-0000-4000-8000-000000000002", "policyName": "SECONDLY" }).to_string(),
        headers: vec![("retry-after".into(), retry_after.into())],
    }
}
