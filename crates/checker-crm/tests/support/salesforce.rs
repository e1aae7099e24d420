//! A local Salesforce REST API: a pinned API version under `/services/data/vNN.N/`, `limits`,
//! sObject `describe`, SOQL `query` with `nextRecordsUrl` paging (`query/{locator}`), the OAuth
//! refresh-token flow at `/services/oauth2/token`, Bearer session auth, the `Sforce-Limit-Info`
//! header, Salesforce's `[{"message","errorCode"}]` error bodies, and injected faults.
//!
//! SOQL is not interpreted: a test says which answer a query gets by the fragments it must
//! contain (and so asserts the SOQL the probe sends); an unexpected query is `MALFORMED_QUERY`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, Uri};
use serde_json::{Value, json};

use super::{Fault, Faults, Recorded, Server, fault_response, json_response, parse_query, serve};

pub const SESSION: &str = "00DXX0000008aBc!AQ4AQFakeSessionToken";
pub const VERSION: &str = "v60.0";

/// What a query matching a rule gets.
#[derive(Clone, Debug)]
pub enum Answer {
    /// `SELECT COUNT() …`: `totalSize` only.
    Count(u64),
    /// Records, paged `page_size` at a time through `nextRecordsUrl`.
    Records(Vec<Value>),
}

/// The refresh-token flow's accepted credentials.
#[derive(Clone, Debug)]
pub struct RefreshApp {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
}

/// What the local Salesforce holds and how it misbehaves.
pub struct SfState {
    pub valid_tokens: HashSet<String>,
    pub refresh: Option<RefreshApp>,
    /// Counter for issued access tokens.
    pub issued: u32,
    /// `DailyApiRequests` (max, remaining); `Sforce-Limit-Info` follows it.
    pub daily: (u64, u64),
    pub describes: HashMap<String, Value>,
    /// Stage values per Opportunity record type id (the UI API's picklist values).
    pub stage_values: HashMap<String, Vec<String>>,
    /// (fragments the SOQL must all contain, answer); first match wins.
    pub queries: Vec<(Vec<String>, Answer)>,
    pub page_size: usize,
    pub cursors: HashMap<String, (Vec<Value>, usize)>,
    pub faults: Faults,
    pub log: Vec<Recorded>,
    /// How long every reply takes (to observe concurrency).
    pub latency: Duration,
    /// Requests being answered now, and the most at once.
    pub in_flight: usize,
    pub max_in_flight: usize,
}

impl Default for SfState {
    fn default() -> Self {
        SfState {
            valid_tokens: [SESSION.to_string()].into_iter().collect(),
            refresh: None,
            issued: 0,
            daily: (15_000, 14_000),
            describes: HashMap::new(),
            stage_values: HashMap::new(),
            queries: Vec::new(),
            page_size: 2000,
            cursors: HashMap::new(),
            faults: Faults::default(),
            log: Vec::new(),
            latency: Duration::ZERO,
            in_flight: 0,
            max_in_flight: 0,
        }
    }
}

impl SfState {
    /// Answer queries containing all `fragments` with `answer`.
    pub fn on(mut self, fragments: &[&str], answer: Answer) -> Self {
        self.queries
            .push((fragments.iter().map(|s| s.to_string()).collect(), answer));
        self
    }
}

/// A running local Salesforce.
pub struct SalesforceMock {
    pub server: Server,
    pub state: Arc<Mutex<SfState>>,
}

impl SalesforceMock {
    pub async fn start(state: SfState) -> SalesforceMock {
        let state = Arc::new(Mutex::new(state));
        let router = Router::new().fallback(handle).with_state(state.clone());
        SalesforceMock {
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

    /// The SOQL of every query request, in order.
    pub fn soql(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter_map(|r| r.query.get("q").cloned())
            .collect()
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

/// A Salesforce error body.
pub fn sf_error(code: u16, error_code: &str, message: &str) -> Fault {
    Fault::Status {
        code,
        body: json!([{ "message": message, "errorCode": error_code }]).to_string(),
        headers: vec![],
    }
}

/// A describe with these (name, type, picklist values) fields.
pub fn describe(object: &str, fields: &[(&str, &str, &[&str])]) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .map(|(name, t, picks)| {
            json!({
                "name": name, "label": name, "type": t, "nillable": true, "createable": true, "custom": false,
                "length": 255, "picklistValues": picks.iter().map(|p| json!({ "active": true, "defaultValue": false, "label": p, "validFor": null, "value": p })).collect::<Vec<_>>()
            })
        })
        .collect();
    json!({
        "name": object, "label": object, "custom": false, "queryable": true, "fields": fields,
        "urls": { "describe": format!("/services/data/{VERSION}/sobjects/{object}/describe") }
    })
}

/// A query record of `object` with these fields.
pub fn record(object: &str, id: &str, fields: Value) -> Value {
    let mut r = json!({ "attributes": { "type": object, "url": format!("/services/data/{VERSION}/sobjects/{object}/{id}") }, "Id": id });
    if let (Some(r), Some(f)) = (r.as_object_mut(), fields.as_object()) {
        r.extend(f.clone());
    }
    r
}

fn query_page(state: &mut SfState, records: Vec<Value>, offset: usize, locator: &str) -> Value {
    let total = records.len();
    let end = (offset + state.page_size).min(total);
    let page: Vec<Value> = records[offset..end].to_vec();
    let mut out = json!({ "totalSize": total, "done": end >= total, "records": page });
    if end < total {
        let next = format!("{locator}-{end}");
        state.cursors.insert(next.clone(), (records, end));
        out["nextRecordsUrl"] = json!(format!("/services/data/{VERSION}/query/{next}"));
    }
    out
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    parse_query(Some(&String::from_utf8_lossy(body)))
}

async fn handle(
    State(state): State<Arc<Mutex<SfState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let latency = {
        let mut s = state.lock().unwrap();
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        s.latency
    };
    tokio::time::sleep(latency).await;
    let r = answer(state.clone(), method, uri, headers, body).await;
    state.lock().unwrap().in_flight -= 1;
    r
}

async fn answer(
    state: Arc<Mutex<SfState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = uri.path().trim_end_matches('/').to_string();
    let query = parse_query(uri.query());
    let fault = {
        let mut s = state.lock().unwrap();
        let recorded_body = if path.ends_with("/oauth2/token") {
            json!(form(&body))
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        s.log.push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            headers: headers.clone(),
            body: recorded_body,
        });
        s.faults.take(&path)
    };
    if let Some(f) = fault {
        return fault_response(f).await;
    }
    let mut s = state.lock().unwrap();
    if method == Method::POST && path == "/services/oauth2/token" {
        let f = form(&body);
        let ok = s.refresh.as_ref().is_some_and(|app| {
            f.get("grant_type").map(String::as_str) == Some("refresh_token")
                && f.get("client_id") == Some(&app.client_id)
                && f.get("client_secret") == Some(&app.client_secret)
                && f.get("refresh_token") == Some(&app.refresh_token)
        });
        if !ok {
            return json_response(
                400,
                &json!({ "error": "invalid_grant", "error_description": "expired access/refresh token" }),
            );
        }
        s.issued += 1;
        let token = format!("00DXX0000008aBc!AQ4AQRefreshed{}", s.issued);
        s.valid_tokens.insert(token.clone());
        return json_response(
            200,
            &json!({
                "access_token": token, "instance_url": "https://acme.my.salesforce.com", "id": "https://login.salesforce.com/id/00D/005",
                "token_type": "Bearer", "issued_at": "1700000000000", "signature": "c2lnbmF0dXJl", "scope": "api refresh_token"
            }),
        );
    }
    let authorised = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| s.valid_tokens.contains(t));
    if !authorised {
        return json_response(
            401,
            &json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }]),
        );
    }
    s.daily.1 = s.daily.1.saturating_sub(1);
    let (max, remaining) = s.daily;
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut resp = match parts.as_slice() {
        ["services", "data", v, rest @ ..] if *v != VERSION => {
            let _ = rest;
            json_response(
                404,
                &json!([{ "errorCode": "NOT_FOUND", "message": "The requested resource does not exist" }]),
            )
        }
        ["services", "data", _, "limits"] => json_response(
            200,
            &json!({
                "DailyApiRequests": { "Max": max, "Remaining": remaining },
                "DataStorageMB": { "Max": 5, "Remaining": 4 },
                "DailyBulkApiBatches": { "Max": 15000, "Remaining": 15000 }
            }),
        ),
        ["services", "data", _, "sobjects", object, "describe"] => match s.describes.get(*object) {
            Some(d) => json_response(200, d),
            None => json_response(
                404,
                &json!([{ "errorCode": "NOT_FOUND", "message": "The requested resource does not exist" }]),
            ),
        },
        [
            "services",
            "data",
            _,
            "ui-api",
            "object-info",
            "Opportunity",
            "picklist-values",
            rt,
            "StageName",
        ] => match s.stage_values.get(*rt) {
            Some(values) => json_response(
                200,
                &json!({
                    "controllerValues": {},
                    "defaultValue": null,
                    "eTag": "a2b0c3d4e5f60718293a4b5c6d7e8f90",
                    "url": format!("/services/data/{VERSION}/ui-api/object-info/Opportunity/picklist-values/{rt}/StageName"),
                    "values": values.iter().map(|v| json!({ "attributes": null, "label": v, "validFor": [], "value": v })).collect::<Vec<_>>()
                }),
            ),
            None => json_response(
                404,
                &json!([{ "errorCode": "NOT_FOUND", "message": "The requested resource does not exist" }]),
            ),
        },
        ["services", "data", _, "query"] => {
            let soql = query.get("q").cloned().unwrap_or_default();
            let answer = s
                .queries
                .iter()
                .find(|(frags, _)| frags.iter().all(|f| soql.contains(f.as_str())))
                .map(|(_, a)| a.clone());
            match answer {
                Some(Answer::Count(n)) => {
                    json_response(200, &json!({ "totalSize": n, "done": true, "records": [] }))
                }
                Some(Answer::Records(records)) => {
                    let locator = format!("01gXX000000{}", s.log.len());
                    let page = query_page(&mut s, records, 0, &locator);
                    json_response(200, &page)
                }
                None => json_response(
                    400,
                    &json!([{ "message": format!("unexpected query: {soql}"), "errorCode": "MALFORMED_QUERY" }]),
                ),
            }
        }
        ["services", "data", _, "query", locator] => match s.cursors.remove(*locator) {
            Some((records, offset)) => {
                let base = locator
                    .rsplit_once('-')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or_default();
                let page = query_page(&mut s, records, offset, &base);
                json_response(200, &page)
            }
            None => json_response(
                400,
                &json!([{ "message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR" }]),
            ),
        },
        _ => json_response(
            404,
            &json!([{ "errorCode": "NOT_FOUND", "message": "The requested resource does not exist" }]),
        ),
    };
    resp.headers_mut().insert(
        "sforce-limit-info",
        format!("api-usage={}/{max}", max - remaining)
            .parse()
            .unwrap(),
    );
    resp
}
