//! Salesforce REST client: a pinned API version (`/services/data/vNN.N/`), `limits`, sObject
//! `describe`, SOQL `query` paged through `nextRecordsUrl`, the `Sforce-Limit-Info` budget header
//! (calls stop when less than the reserve is left), and two ways to authenticate: an access token,
//!
//! Paced to Salesforce's published API limits ("API Request Limits and Allocations"): the org's
//! rolling 24-hour request allocation, reported on every reply as `Sforce-Limit-Info:
//! api-usage=used/max`, is remembered per org across probe runs (for [`BUDGET_MEMORY`]), so a run
//! stops before its first call once the org is under the reserve; and at most
//! [`MAX_CONCURRENT_CALLS_PER_ORG`] calls are in flight per org from this process (Salesforce
//! counts concurrent long-running requests per org: 25 in production orgs, 5 in Developer
//! Edition and trial orgs; Salesforce publishes no per-second burst limit for the REST API).
//!
//! or OAuth's refresh-token flow (`POST /services/oauth2/token`, the access token cached per
//! connected app and refresh token until it is rejected, refreshed once on 401).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use funnelgate_checker_sdk::vendor_http::bearer;
use funnelgate_checker_sdk::{ProbeContext, ProbeError};
use reqwest::header::{AUTHORIZATION, HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::evaluate::Budget;
use crate::http::{CallError, Reply, call, call_once, join, request_timeout};

pub(crate) const VENDOR: &str = "salesforce";
/// Most records one probe pages through in a SOQL query, whatever `max_records` says.
pub const QUERY_RECORD_CAP: u64 = 50_000;
/// The permission every call needs.
const API_SCOPE: &str = "api (OAuth scope) with the API Enabled user permission";
/// Calls in flight at once per org from this process: the smallest concurrent-request limit
/// Salesforce publishes (5, Developer Edition and trial orgs; 25 in production).
pub const MAX_CONCURRENT_CALLS_PER_ORG: usize = 5;
/// How long an org's last reported API usage is trusted before a run calls again to refresh it
/// (the allocation is a rolling 24-hour window, so usage under the reserve recovers slowly).
pub const BUDGET_MEMORY: Duration = Duration::from_secs(15 * 60);

/// What this process knows of one org (keyed by instance URL).
struct Org {
    calls: Arc<tokio::sync::Semaphore>,
    budget: Option<(Budget, Instant)>,
}

fn orgs() -> &'static Mutex<HashMap<String, Org>> {
    static ORGS: OnceLock<Mutex<HashMap<String, Org>>> = OnceLock::new();
    ORGS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn with_org<T>(instance: &str, f: impl FnOnce(&mut Org) -> T) -> T {
    let mut map = orgs().lock().unwrap_or_else(|p| p.into_inner());
    let org = map.entry(instance.to_string()).or_insert_with(|| Org {
        calls: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLS_PER_ORG)),
        budget: None,
    });
    f(org)
}

/// Connection settings shared by every Salesforce kind.
#[derive(Clone, Debug)]
pub struct Conn {
    /// Instance URL.
    pub instance_url: String,
    /// Pinned API version (`v60.0`).
    pub api_version: String,
    /// Token endpoint host for the refresh flow.
    pub login_url: Option<String>,
    /// Percent of the daily budget never used.
    pub daily_reserve_percent: f64,
}

/// What the secret holds.
enum Credentials {
    /// An access (session) token.
    Token(SecretString),
    /// A connected app and a refresh token.
    Refresh {
        client_id: String,
        client_secret: SecretString,
        refresh_token: SecretString,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshSecret {
    client_id: String,
    client_secret: String,
    refresh_token: String,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Clone)]
struct Cached {
    token: SecretString,
    expires: Option<Instant>,
}

/// Access tokens from refresh flows, per (token url, client id, refresh token): probes sharing a
/// connected app share one access token instead of refreshing on every run.
fn token_cache() -> &'static Mutex<HashMap<u64, Cached>> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Cached>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// One page of a SOQL query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage {
    /// Matching records (all pages).
    pub total_size: u64,
    /// Whether this is the last page.
    pub done: bool,
    /// This page's records.
    #[serde(default)]
    pub records: Vec<Value>,
    /// The next page, when not done.
    #[serde(default)]
    pub next_records_url: Option<String>,
}

/// A field of an sObject describe.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    /// API name.
    pub name: String,
    /// Field type (`email`, `picklist`, …).
    #[serde(rename = "type")]
    pub field_type: String,
    /// Picklist entries.
    #[serde(default)]
    pub picklist_values: Vec<PicklistValue>,
}

/// A picklist entry.
#[derive(Debug, Clone, Deserialize)]
pub struct PicklistValue {
    /// API value.
    pub value: String,
    /// Label.
    #[serde(default)]
    pub label: Option<String>,
    /// Inactive values do not count.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct Describe {
    fields: Vec<Field>,
}

/// A Salesforce client for one probe run.
pub struct Salesforce {
    http: reqwest::Client,
    instance: String,
    version: String,
    token_url: String,
    credentials: Credentials,
    timeout: Duration,
    reserve_percent: f64,
    budget: Mutex<Option<Budget>>,
}

impl Salesforce {
    /// Resolve the secret (an access token, or JSON `{"client_id","client_secret","refresh_token"}`).
    pub fn new(ctx: &ProbeContext, conn: &Conn) -> Result<Salesforce, ProbeError> {
        let secret = ctx.secret()?;
        let raw = secret.expose_secret().trim();
        let credentials = if raw.starts_with('{') {
            let s: RefreshSecret = serde_json::from_str(raw).map_err(|_| {
                ProbeError::permanent(
                    "salesforce: the secret looks like JSON but is not {\"client_id\", \"client_secret\", \"refresh_token\"}",
                )
            })?;
            Credentials::Refresh {
                client_id: s.client_id,
                client_secret: SecretString::from(s.client_secret),
                refresh_token: SecretString::from(s.refresh_token),
            }
        } else if raw.is_empty() {
            return Err(ProbeError::permanent("salesforce: the secret is empty"));
        } else {
            Credentials::Token(SecretString::from(raw.to_string()))
        };
        let login = conn
            .login_url
            .clone()
            .unwrap_or_else(|| conn.instance_url.clone());
        Ok(Salesforce {
            http: ctx.http.clone(),
            instance: conn.instance_url.trim_end_matches('/').to_string(),
            version: conn.api_version.clone(),
            token_url: join(&login, "/services/oauth2/token"),
            credentials,
            timeout: request_timeout(ctx.timeout()),
            reserve_percent: conn.daily_reserve_percent,
            budget: Mutex::new(None),
        })
    }

    fn cache_key(&self) -> Option<u64> {
        match &self.credentials {
            Credentials::Token(_) => None,
            Credentials::Refresh {
                client_id,
                refresh_token,
                ..
            } => {
                let mut h = DefaultHasher::new();
                (&self.token_url, client_id, refresh_token.expose_secret()).hash(&mut h);
                Some(h.finish())
            }
        }
    }

    /// The access token: the secret itself, a cached one, or a fresh one from the refresh flow.
    async fn access_token(&self, force_refresh: bool) -> Result<SecretString, CallError> {
        let (client_id, client_secret, refresh_token) = match &self.credentials {
            Credentials::Token(t) => return Ok(t.clone()),
            Credentials::Refresh {
                client_id,
                client_secret,
                refresh_token,
            } => (client_id, client_secret, refresh_token),
        };
        let key = self.cache_key().unwrap_or_default();
        if !force_refresh
            && let Ok(cache) = token_cache().lock()
            && let Some(c) = cache.get(&key)
            && c.expires.is_none_or(|e| e > Instant::now())
        {
            return Ok(c.token.clone());
        }
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.expose_secret()),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        let req = self
            .http
            .post(&self.token_url)
            .form(&form)
            .timeout(self.timeout);
        let reply: Reply<TokenReply> = call_once(VENDOR, "POST /services/oauth2/token", req, None)
            .await
            .map_err(|mut e| {
                // The token endpoint answers 400 (invalid_grant, invalid_client) for bad credentials.
                if matches!(e.status, Some(400 | 401)) {
                    e.error.message.push_str(
                        " (the refresh token or connected app credentials were rejected)",
                    );
                    e.status = Some(401);
                }
                e
            })?;
        let token = SecretString::from(reply.body.access_token);
        let expires = reply
            .body
            .expires_in
            .map(|s| Instant::now() + Duration::from_secs(s.saturating_sub(60)));
        if let Ok(mut cache) = token_cache().lock() {
            cache.insert(
                key,
                Cached {
                    token: token.clone(),
                    expires,
                },
            );
        }
        Ok(token)
    }

    fn forget_token(&self) {
        if let (Some(key), Ok(mut cache)) = (self.cache_key(), token_cache().lock()) {
            cache.remove(&key);
        }
    }

    /// The API budget as last reported by `Sforce-Limit-Info: api-usage=used/max` in this run.
    pub fn budget(&self) -> Option<Budget> {
        self.budget.lock().ok().and_then(|b| b.clone())
    }

    /// This run's budget, or the org's as a recent run saw it.
    fn known_budget(&self) -> Option<Budget> {
        self.budget().or_else(|| {
            with_org(&self.instance, |o| match &o.budget {
                Some((b, at)) if at.elapsed() < BUDGET_MEMORY => Some(b.clone()),
                _ => None,
            })
        })
    }

    fn record_budget(&self, headers: &HeaderMap) {
        let Some(info) = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        let usage = info
            .split(',')
            .find_map(|p| p.trim().strip_prefix("api-usage="));
        if let Some((used, max)) = usage.and_then(|u| u.split_once('/'))
            && let (Ok(used), Ok(max)) = (used.trim().parse::<u64>(), max.trim().parse::<u64>())
            && let Ok(mut b) = self.budget.lock()
        {
            let budget = Budget {
                remaining: max.saturating_sub(used),
                max,
                label: "daily API request".into(),
            };
            with_org(&self.instance, |o| {
                o.budget = Some((budget.clone(), Instant::now()));
            });
            *b = Some(budget);
        }
    }

    fn check_reserve(&self, what: &str) -> Result<(), ProbeError> {
        let Some(b) = self.known_budget() else {
            return Ok(());
        };
        if b.max > 0 && (b.remaining as f64 * 100.0 / b.max as f64) < self.reserve_percent {
            return Err(ProbeError::permanent(format!(
                "salesforce: {what}: daily budget nearly exhausted: {} of {} calls left, under the {}% reserve kept for \
                 the team's own integrations; the check stopped early",
                b.remaining, b.max, self.reserve_percent
            )));
        }
        Ok(())
    }

    /// `GET` a path under the instance (absolute, e.g. a `nextRecordsUrl`), refreshing the token
    /// once on 401 when the refresh flow is configured.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<Reply<T>, CallError> {
        self.check_reserve(what)?;
        let url = join(&self.instance, path);
        let mut refreshed = false;
        let calls = with_org(&self.instance, |o| Arc::clone(&o.calls));
        loop {
            // Held for the call and its retries: the org's concurrency limit counts them all.
            let _slot = calls.acquire().await.map_err(|_| {
                ProbeError::permanent(format!("salesforce: {what}: the call limiter was closed"))
            })?;
            let token = self.access_token(false).await?;
            let auth = bearer(&token)?;
            let r = call(
                VENDOR,
                what,
                || {
                    Ok(self
                        .http
                        .get(&url)
                        .query(query)
                        .header(AUTHORIZATION, auth.clone())
                        .timeout(self.timeout))
                },
                Some(API_SCOPE),
            )
            .await;
            match r {
                Err(e)
                    if e.status == Some(401)
                        && !refreshed
                        && matches!(self.credentials, Credentials::Refresh { .. }) =>
                {
                    tracing::debug!(what, "salesforce access token rejected, refreshing once");
                    self.forget_token();
                    self.access_token(true).await?;
                    refreshed = true;
                }
                Err(e) => return Err(limit_exceeded(e)),
                Ok(r) => {
                    self.record_budget(&r.headers);
                    return Ok(r);
                }
            }
        }
    }

    fn data(&self, rest: &str) -> String {
        format!(
            "/services/data/{}/{}",
            self.version,
            rest.trim_start_matches('/')
        )
    }

    /// `GET limits`.
    pub async fn limits(&self) -> Result<Reply<Value>, CallError> {
        let path = self.data("limits");
        self.get(&path, &[], "GET limits").await
    }

    /// The stage values a record type of Opportunity offers (its sales process), from the UI API
    /// (`GET ui-api/object-info/Opportunity/picklist-values/{recordTypeId}/StageName`).
    pub async fn stage_values(&self, record_type_id: &str) -> Result<Vec<String>, CallError> {
        let path = self.data(&format!(
            "ui-api/object-info/Opportunity/picklist-values/{record_type_id}/StageName"
        ));
        let what = format!(
            "GET ui-api/object-info/Opportunity/picklist-values/{record_type_id}/StageName"
        );
        let r: Reply<Value> = self.get(&path, &[], &what).await?;
        Ok(r.body["values"]
            .as_array()
            .map(|vs| {
                vs.iter()
                    .filter_map(|v| v["value"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `GET sobjects/{object}/describe`.
    pub async fn describe(&self, object: &str) -> Result<Vec<Field>, CallError> {
        let path = self.data(&format!("sobjects/{object}/describe"));
        let what = format!("GET sobjects/{object}/describe");
        let r: Reply<Describe> = self.get(&path, &[], &what).await?;
        Ok(r.body.fields)
    }

    /// `SELECT COUNT() …`: the total size.
    pub async fn count(&self, soql: &str) -> Result<u64, CallError> {
        let path = self.data("query");
        let r: Reply<QueryPage> = self
            .get(&path, &[("q", soql.to_string())], "GET query")
            .await?;
        Ok(r.body.total_size)
    }

    /// Records of a query, following `nextRecordsUrl` up to `cap` records. Returns the records and
    /// whether more matched than were read.
    pub async fn query(&self, soql: &str, cap: u64) -> Result<(Vec<Value>, bool), CallError> {
        let cap = cap.min(QUERY_RECORD_CAP);
        let path = self.data("query");
        let mut page: QueryPage = self
            .get(&path, &[("q", soql.to_string())], "GET query")
            .await?
            .body;
        let total = page.total_size;
        let mut out: Vec<Value> = Vec::new();
        loop {
            out.append(&mut page.records);
            if out.len() as u64 >= cap {
                out.truncate(cap as usize);
                return Ok((out, total > cap));
            }
            match (page.done, page.next_records_url.take()) {
                (false, Some(next)) => {
                    if !next.starts_with("/services/data/") {
                        return Err(ProbeError::permanent(format!(
                            "salesforce: GET query: unexpected nextRecordsUrl `{}`",
                            next.chars().take(100).collect::<String>()
                        ))
                        .into());
                    }
                    page = self.get(&next, &[], "GET query (next page)").await?.body;
                }
                _ => return Ok((out, false)),
            }
        }
    }
}

/// Name Salesforce's `errorCode` in messages, and say plainly when the org's daily budget is
/// spent (403 `REQUEST_LIMIT_EXCEEDED` is not a permission problem).
fn limit_exceeded(mut e: CallError) -> CallError {
    let code = serde_json::from_str::<Value>(&e.body).ok().and_then(|v| {
        v.get(0)
            .and_then(|x| x.get("errorCode"))
            .and_then(|c| c.as_str())
            .map(str::to_string)
    });
    let Some(code) =
        code.filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
    else {
        return e;
    };
    if e.status == Some(403) && code == "REQUEST_LIMIT_EXCEEDED" {
        let detail = funnelgate_checker_sdk::vendor_http::vendor_message(&e.body);
        let what = e
            .error
            .message
            .split(": returned")
            .next()
            .unwrap_or("salesforce")
            .to_string();
        e.error.message = format!(
            "{what}: returned 403: the org's daily API request limit is spent (REQUEST_LIMIT_EXCEEDED): {}: {detail}",
            funnelgate_checker_sdk::vendor_http::QUOTA_EXHAUSTED
        );
        e.quota_exhausted = true;
        e.status = None;
    } else {
        e.error.message.push_str(&format!(" [{code}]"));
    }
    e
}

/// Quote a string for SOQL (backslash and single quote escaped).
pub fn soql_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `(a, b, c)` of quoted strings.
pub fn soql_list(values: &[String]) -> String {
    format!(
        "({})",
        values
            .iter()
            .map(|v| soql_str(v))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn soql_strings_are_escaped() {
        assert_eq!(soql_str("Paid Search"), "'Paid Search'");
        assert_eq!(soql_str("o'neil\\x"), "'o\\'neil\\\\x'");
        assert_eq!(soql_list(&["a".into(), "b'".into()]), "('a', 'b\\'')");
    }
}
