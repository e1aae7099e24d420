//! The HubSpot client: credentials, pacing, the daily budget, search and list paging, property
//! and pipeline definitions, association and batch reads, all on the date-based paths of
//! [`crate::Paths`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use funnelgate_checker_sdk::pace::{BurstLimit, Pacer};
use funnelgate_checker_sdk::vendor_http::{CallError, Reply, bearer, call, header_u64};
use funnelgate_checker_sdk::{ProbeContext, ProbeError};
use reqwest::header::{AUTHORIZATION, HeaderMap};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{Conn, Paths, VENDOR};
/// Most results one search query can page through.
pub const SEARCH_RESULT_CAP: u64 = 10_000;
/// Largest search page.
pub const SEARCH_PAGE: u64 = 200;
/// Largest list page.
pub const LIST_PAGE: u64 = 100;
/// Largest batch read.
pub const BATCH: usize = 100;

/// Header names of HubSpot's daily budget.
pub const DAILY_HEADER: &str = "x-hubspot-ratelimit-daily";
/// Calls left today.
pub const DAILY_REMAINING_HEADER: &str = "x-hubspot-ratelimit-daily-remaining";

/// Burst-window headers (every credential type).
const BURST_REMAINING_HEADER: &str = "x-hubspot-ratelimit-remaining";
const BURST_INTERVAL_HEADER: &str = "x-hubspot-ratelimit-interval-milliseconds";

/// The kind of credential a probe's secret holds. All are sent as `Authorization: Bearer`; they
/// differ in the rate-limit headers HubSpot returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// A legacy private app's access token (`pat-…`): daily-limit headers on every reply.
    #[default]
    PrivateApp,
    /// An account service key of a developer-platform project (the replacement of private
    /// apps for system-to-system access): the limits of a privately distributed app, with the
    /// daily-limit headers.
    ServiceKey,
    /// An OAuth access token of an app installed in the account: no daily-limit headers, so the
    /// daily budget is read from the account's API-usage endpoint instead.
    Oauth,
}

/// The account's daily API budget as last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyBudget {
    /// Calls left today.
    pub remaining: u64,
    /// Calls allowed per day.
    pub max: u64,
}

/// One object as HubSpot returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    /// Object id.
    pub id: String,
    /// Requested properties (null when unset).
    #[serde(default)]
    pub properties: HashMap<String, Option<String>>,
}

impl Record {
    /// A property's value, trimmed, `None` when absent or empty.
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)
            .and_then(|v| v.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

#[derive(Debug, Deserialize)]
struct NextPage {
    after: String,
}

#[derive(Debug, Deserialize)]
struct Paging {
    next: Option<NextPage>,
}

#[derive(Debug, Deserialize)]
struct SearchPage {
    total: u64,
    results: Vec<Record>,
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct ListPage {
    results: Vec<Record>,
    paging: Option<Paging>,
}

/// A property definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    /// Internal name.
    pub name: String,
    /// Property type (`string`, `enumeration`, `number`, `datetime`, …).
    #[serde(rename = "type")]
    pub property_type: String,
    /// Picklist options.
    #[serde(default)]
    pub options: Vec<PropertyOption>,
    /// Archived properties count as missing.
    #[serde(default)]
    pub archived: bool,
}

/// A picklist option.
#[derive(Debug, Clone, Deserialize)]
pub struct PropertyOption {
    /// Display label.
    pub label: String,
    /// Internal value.
    pub value: String,
}

#[derive(Debug, Deserialize)]
struct Results<T> {
    results: Vec<T>,
}

/// A pipeline with its stages.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline {
    /// Pipeline id.
    pub id: String,
    /// Pipeline label.
    pub label: String,
    /// Its stages.
    pub stages: Vec<PipelineStage>,
}

/// A pipeline stage; HubSpot's `metadata` values are strings (`"true"`, `"0.2"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStage {
    /// Stage label.
    pub label: String,
    /// Position in the pipeline.
    pub display_order: f64,
    /// `isClosed`, `probability` (strings).
    #[serde(default)]
    pub metadata: HashMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssocTo {
    to_object_id: Value,
}

#[derive(Debug, Deserialize)]
struct AssocFrom {
    id: String,
}

#[derive(Debug, Deserialize)]
struct AssocResult {
    from: AssocFrom,
    #[serde(default)]
    to: Vec<AssocTo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    name: String,
    usage_limit: u64,
    current_usage: u64,
}

#[derive(Default)]
struct State {
    last_search: Option<Instant>,
    budget: Option<DailyBudget>,
    /// The usage endpoint was asked once this run (OAuth).
    usage_read: bool,
}

/// A HubSpot client for one probe run.
pub struct HubSpot {
    http: reqwest::Client,
    base: String,
    paths: Paths,
    credential: crate::Credential,
    token: SecretString,
    timeout: Duration,
    reserve_percent: f64,
    search_interval: Duration,
    pacer: Pacer,
    state: Mutex<State>,
}

impl HubSpot {
    /// Resolve the token and build a client.
    pub fn new(ctx: &ProbeContext, conn: &Conn) -> Result<HubSpot, ProbeError> {
        Ok(HubSpot {
            http: ctx.http.clone(),
            base: conn.base_url.clone(),
            paths: Paths::new(conn.api_version.clone()),
            credential: conn.credential,
            token: ctx.secret()?,
            timeout: ctx.timeout().max(Duration::from_millis(50)),
            reserve_percent: conn.daily_reserve_percent,
            search_interval: Duration::from_millis(conn.search_interval_ms),
            pacer: Pacer::new(
                BurstLimit {
                    requests: conn.burst_per_10s,
                    window: Duration::from_secs(10),
                },
                0.5,
            ),
            state: Mutex::new(State::default()),
        })
    }

    /// The paths in the configured API version.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The daily budget as last reported.
    pub fn budget(&self) -> Option<DailyBudget> {
        self.state.lock().ok().and_then(|s| s.budget.clone())
    }

    fn record_headers(&self, headers: &HeaderMap) {
        if let (Some(max), Some(remaining)) = (
            header_u64(headers, DAILY_HEADER),
            header_u64(headers, DAILY_REMAINING_HEADER),
        ) && let Ok(mut s) = self.state.lock()
        {
            s.budget = Some(DailyBudget { remaining, max });
        }
        if let Some(remaining) = header_u64(headers, BURST_REMAINING_HEADER) {
            let interval = header_u64(headers, BURST_INTERVAL_HEADER).unwrap_or(10_000);
            self.pacer
                .observe(remaining, Duration::from_millis(interval));
        }
    }

    /// OAuth apps get no daily headers: read the account's daily usage once per run, so the
    /// reserve still protects the team's own integrations. A usage endpoint that cannot be read
    /// leaves the budget unknown (the auth kind says so) rather than failing the probe.
    pub async fn read_daily_usage(&self) -> Option<DailyBudget> {
        {
            let mut s = self.state.lock().ok()?;
            if s.usage_read {
                return s.budget.clone();
            }
            s.usage_read = true;
        }
        let path = self.paths.daily_usage();
        let r: Result<Reply<Results<Usage>>, CallError> = self
            .send_unchecked(&format!("GET {path}"), "oauth", || {
                self.http.get(join(&self.base, &path))
            })
            .await;
        match r {
            Ok(r) => {
                let u = r
                    .body
                    .results
                    .iter()
                    .find(|u| u.name.contains("daily"))
                    .or(r.body.results.first())?;
                let b = DailyBudget {
                    remaining: u.usage_limit.saturating_sub(u.current_usage),
                    max: u.usage_limit,
                };
                if let Ok(mut s) = self.state.lock() {
                    s.budget = Some(b.clone());
                }
                Some(b)
            }
            Err(e) => {
                tracing::debug!(error = %e.error, "hubspot: daily api usage unavailable");
                None
            }
        }
    }

    /// Refuse another call when the last reply showed the daily budget under the reserve.
    fn check_reserve(&self, what: &str) -> Result<(), ProbeError> {
        let Some(b) = self.budget() else {
            return Ok(());
        };
        if b.max == 0 {
            return Ok(());
        }
        let left = b.remaining as f64 * 100.0 / b.max as f64;
        if b.remaining == 0 {
            return Err(ProbeError::permanent(format!(
                "hubspot: {what}: {}",
                funnelgate_checker_sdk::vendor_http::QUOTA_EXHAUSTED
            )));
        }
        if left < self.reserve_percent {
            return Err(ProbeError::permanent(format!(
                "hubspot: {what}: daily budget nearly exhausted: {} of {} calls left, under the {}% reserve kept for \
                 the team's own syncs; the check stopped early",
                b.remaining, b.max, self.reserve_percent
            )));
        }
        Ok(())
    }

    async fn pace_search(&self) {
        let wait = match self.state.lock() {
            Ok(mut s) => {
                let now = Instant::now();
                let wait = s
                    .last_search
                    .map(|t| self.search_interval.saturating_sub(now.duration_since(t)))
                    .unwrap_or_default();
                s.last_search = Some(now + wait);
                wait
            }
            Err(_) => Duration::ZERO,
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        scope: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Reply<T>, CallError> {
        if self.credential == crate::Credential::Oauth {
            self.read_daily_usage().await;
        }
        self.check_reserve(what)?;
        self.send_unchecked(what, scope, build).await
    }

    /// One paced call with the one retry policy, recording the rate-limit headers.
    async fn send_unchecked<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        scope: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Reply<T>, CallError> {
        let auth = bearer(&self.token)?;
        let result = call(
            VENDOR,
            what,
            || {
                Ok(build()
                    .header(AUTHORIZATION, auth.clone())
                    .timeout(self.timeout))
            },
            Some(scope),
        );
        self.pacer.wait().await;
        let result = result.await;
        match &result {
            Ok(r) => self.record_headers(&r.headers),
            Err(e) if e.status == Some(429) => {
                // A 429 spends the window: leave it alone for a moment.
                self.pacer.observe(0, Duration::from_secs(1));
            }
            Err(_) => {}
        }
        result
    }

    /// `GET path` with query pairs.
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        scope: &str,
    ) -> Result<Reply<T>, CallError> {
        let url = join(&self.base, path);
        let what = format!("GET {path}");
        self.send(&what, scope, || self.http.get(&url).query(query))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
        scope: &str,
    ) -> Result<Reply<T>, CallError> {
        let url = join(&self.base, path);
        let what = format!("POST {path}");
        self.send(&what, scope, || self.http.post(&url).json(body))
            .await
    }

    /// `DELETE path` (HubSpot answers 204 No Content): the reply body is not read. Used by the
    /// canary lead's cleanup.
    pub async fn delete(&self, path: &str, scope: &str) -> Result<(), CallError> {
        self.check_reserve(&format!("DELETE {path}"))?;
        let what = format!("DELETE {path}");
        let auth = bearer(&self.token)?;
        self.pacer.wait().await;
        let resp = self
            .http
            .delete(join(&self.base, path))
            .header(AUTHORIZATION, auth)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| funnelgate_checker_sdk::vendor_http::transport_error(VENDOR, &what, &e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if (200..300).contains(&status) {
            self.record_headers(&headers);
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.chars().take(8192).collect();
        Err(CallError {
            status: Some(status),
            error: {
                let mut e = funnelgate_checker_sdk::vendor_http::status_error(
                    VENDOR, &what, status, &headers, &body,
                );
                if status == 403 {
                    e.message
                        .push_str(&format!("; this call needs scope `{scope}`"));
                }
                e
            },
            quota_exhausted: funnelgate_checker_sdk::vendor_http::quota_exhausted(
                status, &headers, &body,
            ),
            body,
        })
    }

    /// Cheapest authenticated call (C1): one contact, keeping the reply headers.
    pub async fn ping(&self) -> Result<HeaderMap, CallError> {
        // Not held back by the reserve: judging the budget is this call's purpose.
        let path = self.paths.objects("contacts");
        let url = join(&self.base, &path);
        let q = [("limit", "1"), ("archived", "false")];
        let r: Reply<Value> = self
            .send_unchecked(&format!("GET {path}"), scope_objects("contacts"), || {
                self.http.get(&url).query(&q)
            })
            .await?;
        Ok(r.headers)
    }

    /// How many objects match (one search call with `limit=1`).
    pub async fn search_total(
        &self,
        object: &str,
        groups: Vec<Vec<Value>>,
    ) -> Result<u64, CallError> {
        self.pace_search().await;
        let body = json!({ "filterGroups": filter_groups(groups), "properties": ["hs_object_id"], "limit": 1 });
        let path = self.paths.search(object);
        let r: Reply<SearchPage> = self.post(&path, &body, scope_objects(object)).await?;
        Ok(r.body.total)
    }

    /// Page through a search, newest `sort_property` first, up to `cap` (and never past HubSpot's
    /// 10,000-result limit). Returns the records and whether more matched than were read.
    pub async fn search_records(
        &self,
        object: &str,
        groups: Vec<Vec<Value>>,
        properties: &[&str],
        sort_property: &str,
        cap: u64,
    ) -> Result<(Vec<Record>, bool), CallError> {
        let cap = cap.min(SEARCH_RESULT_CAP);
        let filter_groups = filter_groups(groups);
        let path = self.paths.search(object);
        let mut out: Vec<Record> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let limit = SEARCH_PAGE.min(cap - out.len() as u64);
            let mut body = json!({
                "filterGroups": filter_groups,
                "properties": properties,
                "sorts": [{ "propertyName": sort_property, "direction": "DESCENDING" }],
                "limit": limit,
            });
            if let Some(a) = &after {
                body["after"] = json!(a);
            }
            self.pace_search().await;
            let r: Reply<SearchPage> = self.post(&path, &body, scope_objects(object)).await?;
            let total = r.body.total;
            let got = r.body.results.len();
            out.extend(r.body.results);
            let next = r.body.paging.and_then(|p| p.next).map(|n| n.after);
            stalled_paging(&path, got, after.as_deref(), next.as_deref())?;
            after = next;
            if out.len() as u64 >= cap {
                return Ok((out, total > cap || after.is_some()));
            }
            if after.is_none() {
                return Ok((out, false));
            }
        }
    }

    /// Page through every object of a type (list endpoint), up to `cap`.
    pub async fn list_records(
        &self,
        object: &str,
        properties: &[&str],
        cap: u64,
    ) -> Result<(Vec<Record>, bool), CallError> {
        let path = self.paths.objects(object);
        let mut out: Vec<Record> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let limit = LIST_PAGE.min(cap - out.len() as u64);
            let mut q = vec![
                ("limit", limit.to_string()),
                ("properties", properties.join(",")),
                ("archived", "false".to_string()),
            ];
            if let Some(a) = &after {
                q.push(("after", a.clone()));
            }
            let r: Reply<ListPage> = self.get(&path, &q, scope_objects(object)).await?;
            let got = r.body.results.len();
            out.extend(r.body.results);
            let next = r.body.paging.and_then(|p| p.next).map(|n| n.after);
            stalled_paging(&path, got, after.as_deref(), next.as_deref())?;
            after = next;
            match &after {
                None => return Ok((out, false)),
                Some(_) if out.len() as u64 >= cap => return Ok((out, true)),
                Some(_) => {}
            }
        }
    }

    /// Property definitions of an object type.
    pub async fn properties(&self, object: &str) -> Result<Vec<Property>, CallError> {
        let path = self.paths.properties(object);
        let r: Reply<Results<Property>> = self
            .get(
                &path,
                &[("archived", "false".to_string())],
                scope_schemas(object),
            )
            .await?;
        Ok(r.body.results)
    }

    /// Pipelines of an object type with their stages.
    pub async fn pipelines(&self, object: &str) -> Result<Vec<Pipeline>, CallError> {
        let path = self.paths.pipelines(object);
        let r: Reply<Results<Pipeline>> = self.get(&path, &[], scope_objects(object)).await?;
        Ok(r.body.results)
    }

    /// Associated object ids (`from` id → `to` ids), batch-read in chunks of 100.
    pub async fn associations(
        &self,
        from: &str,
        to: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<String>>, CallError> {
        let path = self.paths.associations_batch_read(from, to);
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for chunk in ids.chunks(BATCH) {
            let inputs: Vec<Value> = chunk.iter().map(|id| json!({ "id": id })).collect();
            let r: Reply<Results<AssocResult>> = self
                .post(&path, &json!({ "inputs": inputs }), scope_objects(from))
                .await?;
            for res in r.body.results {
                let tos = res
                    .to
                    .iter()
                    .filter_map(|t| match &t.to_object_id {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                out.entry(res.from.id).or_default().extend(tos);
            }
        }
        Ok(out)
    }

    /// Read objects by id with some properties, in chunks of 100.
    pub async fn batch_read(
        &self,
        object: &str,
        ids: &[String],
        properties: &[&str],
    ) -> Result<Vec<Record>, CallError> {
        let path = self.paths.batch_read(object);
        let mut out = Vec::new();
        for chunk in ids.chunks(BATCH) {
            let inputs: Vec<Value> = chunk.iter().map(|id| json!({ "id": id })).collect();
            let body = json!({ "properties": properties, "inputs": inputs });
            let r: Reply<Results<Record>> = self.post(&path, &body, scope_objects(object)).await?;
            out.extend(r.body.results);
        }
        Ok(out)
    }
}

/// The read scope for an object type's records.
pub fn scope_objects(object: &str) -> &'static str {
    match object {
        "contacts" => "crm.objects.contacts.read",
        "deals" => "crm.objects.deals.read",
        "companies" => "crm.objects.companies.read",
        "leads" => "crm.objects.leads.read",
        _ => "crm.objects.custom.read",
    }
}

/// The read scope for an object type's property definitions.
pub fn scope_schemas(object: &str) -> &'static str {
    match object {
        "contacts" => "crm.schemas.contacts.read",
        "deals" => "crm.schemas.deals.read",
        "companies" => "crm.schemas.companies.read",
        _ => "crm.schemas.custom.read",
    }
}

/// Search `filterGroups`: the groups are OR'ed, the filters within a group AND'ed.
pub fn filter_groups(groups: Vec<Vec<Value>>) -> Value {
    Value::Array(
        groups
            .into_iter()
            .map(|filters| json!({ "filters": filters }))
            .collect(),
    )
}

/// One search filter.
pub fn filter(property: &str, operator: &str, value: impl Into<Option<String>>) -> Value {
    match value.into() {
        Some(v) => json!({ "propertyName": property, "operator": operator, "value": v }),
        None => json!({ "propertyName": property, "operator": operator }),
    }
}

/// A filter with a list of values (`IN`, `NOT_IN`).
pub fn filter_values(property: &str, operator: &str, values: &[String]) -> Value {
    json!({ "propertyName": property, "operator": operator, "values": values })
}

/// Join a base URL and a path without doubling or losing the slash.
fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// A cursor that promises more but brought nothing, or does not move, would page forever: it is
/// an error naming the endpoint (HubSpot's paging was cut short), never an endless loop.
fn stalled_paging(
    path: &str,
    got: usize,
    previous: Option<&str>,
    next: Option<&str>,
) -> Result<(), CallError> {
    let Some(next) = next else { return Ok(()) };
    let reason = if got == 0 {
        "an empty page still carried a next cursor"
    } else if previous == Some(next) {
        "the next cursor did not move"
    } else {
        return Ok(());
    };
    Err(CallError::from(ProbeError::permanent(format!(
        "hubspot paging of {path} cannot go on: {reason} (after = {next:?})"
    ))))
}

#[cfg(test)]
mod tests {
    use super::stalled_paging;

    #[test]
    fn paging_that_cannot_progress_is_an_error_not_a_loop() {
        let path = "/crm/objects/2026-09/contacts/search";
        assert!(stalled_paging(path, 100, None, Some("100")).is_ok());
        assert!(stalled_paging(path, 100, Some("100"), Some("200")).is_ok());
        assert!(stalled_paging(path, 0, Some("100"), None).is_ok());
        let empty = stalled_paging(path, 0, Some("100"), Some("200")).unwrap_err();
        assert!(empty.error.to_string().contains("empty page"), "{empty:?}");
        let stuck = stalled_paging(path, 10, Some("100"), Some("100")).unwrap_err();
        assert!(
            stuck.error.to_string().contains("did not move"),
            "{stuck:?}"
        );
    }
}
