//! Marketo REST client: the identity service's client-credentials token
//! (`GET /identity/oauth/token`), then `Authorization: Bearer` on the Lead Database
//! (`/rest/v1/…`) and Asset (`/rest/asset/v1/…`) APIs.
//!
//! Marketo answers most failures with HTTP 200 and `{"success": false, "errors": [{"code",
//! "message"}]}`; each documented code gets its own error: 601/602 token rejected or expired
//! (602 refetches the token once), 603 access denied (the API role lacks a permission), 606 rate
//! limit (100 calls per 20 s), 607 daily quota exhausted (resets at midnight US Central time),
//! 615 concurrency limit, 604/608/611/713 Marketo failing, 610/702 not found. Paging: Lead
//! Database `nextPageToken`/`moreResult`, Asset API `offset`/`maxReturn`. A code error is a
//! `CallError` with status 200 and the code in `body`.

use std::sync::Mutex;
use std::time::Duration;

use funnelgate_checker_sdk::vendor_http::bearer;
use funnelgate_checker_sdk::{ProbeContext, ProbeError};
use reqwest::header::AUTHORIZATION;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::http::{CallError, call_retrying, join, paging_cut_short, request_timeout};

pub(crate) const VENDOR: &str = "marketo";
/// Asset API page size (its maximum).
pub const ASSET_PAGE: u64 = 200;
/// Most pages one listing follows (bounds a probe run).
pub const MAX_PAGES: u32 = 200;
/// When the daily quota resets, as Marketo documents it.
pub const QUOTA_RESETS: &str = "at midnight US Central time (12:00 AM CST)";

/// Marketo's reply envelope.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// `false` with `errors` on failure.
    #[serde(default)]
    pub success: bool,
    /// The results.
    #[serde(default)]
    pub result: Vec<Value>,
    /// Failures.
    #[serde(default)]
    pub errors: Vec<MarketoError>,
    /// Warnings (the Asset API's "No assets found" lives here).
    #[serde(default)]
    pub warnings: Vec<Value>,
    /// More pages exist.
    #[serde(default)]
    pub more_result: bool,
    /// The next page's token.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// One error entry.
#[derive(Debug, Clone, Deserialize)]
pub struct MarketoError {
    /// The code, a string in Marketo's replies (a number tolerated).
    #[serde(deserialize_with = "code_string")]
    pub code: String,
    /// The message.
    #[serde(default)]
    pub message: String,
}

fn code_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

#[derive(Debug, Deserialize)]
struct Token {
    access_token: String,
}

/// Map a Marketo error code to its error.
pub fn code_error(what: &str, e: &MarketoError) -> CallError {
    let msg = e
        .message
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect::<String>();
    let error = match e.code.as_str() {
        "601" | "602" => ProbeError::permanent(format!(
            "{VENDOR}: {what}: access token rejected ({} {msg}): check the api user's client id and secret",
            e.code
        )),
        "603" => ProbeError::permanent(format!(
            "{VENDOR}: {what}: access denied (603 {msg}): the api user's role lacks the permission this call needs"
        )),
        "606" => ProbeError::transient(format!(
            "{VENDOR}: {what}: rate limited (606 {msg}): more than 100 calls in 20 s, retry after 20s"
        ))
        .with_retry_after(Duration::from_secs(20)),
        "607" => ProbeError::permanent(format!(
            "{VENDOR}: {what}: daily api quota exhausted (607 {msg}); it resets {QUOTA_RESETS}"
        )),
        "615" => ProbeError::transient(format!(
            "{VENDOR}: {what}: concurrent access limit reached (615 {msg}): more than 10 calls at once, retry after 1s"
        ))
        .with_retry_after(Duration::from_secs(1)),
        "604" | "608" | "611" | "713" | "1029" => ProbeError::transient(format!(
            "{VENDOR}: {what}: marketo is failing ({} {msg})",
            e.code
        )),
        "610" | "702" => ProbeError::permanent(format!(
            "{VENDOR}: {what}: not found ({} {msg})",
            e.code
        )),
        _ => ProbeError::permanent(format!("{VENDOR}: {what}: error {} {msg}", e.code)),
    };
    CallError {
        status: Some(200),
        error,
        body: e.code.clone(),
        quota_exhausted: e.code == "607",
    }
}

/// Whether a failed call means "no such object".
pub fn is_not_found(e: &CallError) -> bool {
    e.status == Some(404) || (e.status == Some(200) && matches!(e.body.as_str(), "610" | "702"))
}

/// Whether a failed call is the credentials or their permissions.
pub fn is_auth(e: &CallError) -> bool {
    e.is_auth() || (e.status == Some(200) && matches!(e.body.as_str(), "601" | "602" | "603"))
}

/// Whether a failed call is the daily quota.
pub fn is_quota(e: &CallError) -> bool {
    e.quota_exhausted
}

/// A Marketo client for one probe run.
pub struct Marketo {
    http: reqwest::Client,
    base: String,
    client_id: String,
    client_secret: SecretString,
    timeout: Duration,
    token: Mutex<Option<SecretString>>,
}

impl Marketo {
    /// Resolve the secret (`client_id:client_secret`) and build a client.
    pub fn new(ctx: &ProbeContext, base_url: &str) -> Result<Marketo, ProbeError> {
        let secret = ctx.secret()?;
        let (id, s) = secret
            .expose_secret()
            .split_once(':')
            .filter(|(id, s)| !id.is_empty() && !s.is_empty())
            .ok_or_else(|| {
                ProbeError::params("marketo: the secret must be `client_id:client_secret`")
            })?;
        Ok(Marketo {
            http: ctx.http.clone(),
            base: base_url.to_string(),
            client_id: id.to_string(),
            client_secret: SecretString::from(s.to_string()),
            timeout: request_timeout(ctx.timeout()),
            token: Mutex::new(None),
        })
    }

    /// Fetch a fresh access token. Bad client credentials come back as 401 with
    /// `{"error":"unauthorized","error_description":"Bad client credentials"}`.
    pub async fn authenticate(&self) -> Result<SecretString, CallError> {
        let what = "GET /identity/oauth/token";
        let reply = call_retrying::<Token>(
            VENDOR,
            what,
            || {
                Ok(self
                    .http
                    .get(join(&self.base, "/identity/oauth/token"))
                    .timeout(self.timeout)
                    .query(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", self.client_id.as_str()),
                        ("client_secret", self.client_secret.expose_secret()),
                    ]))
            },
            None,
        )
        .await
        .map_err(|mut e| {
            // Never echo the query string (it holds the secret); the status mapping does not.
            if e.status == Some(401) {
                e.error.message = format!(
                    "{VENDOR}: {what}: returned 401: the client id or secret was rejected: {}",
                    funnelgate_checker_sdk::vendor_http::vendor_message(&e.body)
                );
            }
            e
        })?;
        let token = SecretString::from(reply.body.access_token);
        if let Ok(mut t) = self.token.lock() {
            *t = Some(token.clone());
        }
        Ok(token)
    }

    async fn token(&self) -> Result<SecretString, CallError> {
        let cached = self.token.lock().ok().and_then(|t| t.clone());
        match cached {
            Some(t) => Ok(t),
            None => self.authenticate().await,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Envelope, CallError> {
        let what = format!("{method} {path}");
        for attempt in 0..2 {
            let token = self.token().await?;
            let auth = bearer(&token)?;
            let reply = call_retrying::<Envelope>(
                VENDOR,
                &what,
                || {
                    let mut r = self
                        .http
                        .request(method.clone(), join(&self.base, path))
                        .header(AUTHORIZATION, auth.clone())
                        .timeout(self.timeout)
                        .query(query);
                    if let Some(b) = body {
                        r = r.json(b);
                    }
                    Ok(r)
                },
                None,
            )
            .await?;
            let env = reply.body;
            if env.success {
                return Ok(env);
            }
            let Some(first) = env.errors.first() else {
                return Err(ProbeError::permanent(format!(
                    "{VENDOR}: {what}: reply says success=false without errors"
                ))
                .into());
            };
            if first.code == "602" && attempt == 0 {
                // Expired mid-run: fetch a new token once.
                if let Ok(mut t) = self.token.lock() {
                    *t = None;
                }
                continue;
            }
            return Err(code_error(&what, first));
        }
        Err(ProbeError::permanent(format!(
            "{VENDOR}: {what}: the access token expired again right after renewal"
        ))
        .into())
    }

    /// `GET path?query`, envelope checked.
    pub async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Envelope, CallError> {
        self.send(reqwest::Method::GET, path, query, None).await
    }

    /// `POST path` with a JSON body, envelope checked.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Envelope, CallError> {
        self.send(reqwest::Method::POST, path, &[], Some(body))
            .await
    }

    /// Page through an Asset API listing (`offset`/`maxReturn`) until a short page or the
    /// "No assets found" warning.
    pub async fn assets(
        &self,
        path: &str,
        extra: &[(String, String)],
    ) -> Result<Vec<Value>, ProbeError> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        for _ in 0..MAX_PAGES {
            let mut q = extra.to_vec();
            q.push(("offset".into(), offset.to_string()));
            q.push(("maxReturn".into(), ASSET_PAGE.to_string()));
            let env = self.get(path, &q).await?;
            let n = env.result.len() as u64;
            out.extend(env.result);
            if n < ASSET_PAGE {
                return Ok(out);
            }
            offset += n;
        }
        Err(paging_cut_short(
            VENDOR,
            &format!("GET {path}"),
            out.len() as u64,
            None,
        ))
    }

    /// Page through a Lead Database listing by `nextPageToken` while `moreResult`; a reply that
    /// promises more without a new token is paging cut short.
    pub async fn paged(
        &self,
        path: &str,
        extra: &[(String, String)],
        first_token: Option<String>,
    ) -> Result<Vec<Value>, ProbeError> {
        let what = format!("GET {path}");
        let mut out = Vec::new();
        let mut token = first_token;
        for _ in 0..MAX_PAGES {
            let mut q = extra.to_vec();
            if let Some(t) = &token {
                q.push(("nextPageToken".into(), t.clone()));
            }
            let env = self.get(path, &q).await?;
            out.extend(env.result);
            if !env.more_result {
                return Ok(out);
            }
            match env.next_page_token {
                Some(next) if Some(&next) != token.as_ref() && !next.is_empty() => {
                    token = Some(next)
                }
                _ => return Err(paging_cut_short(VENDOR, &what, out.len() as u64, None)),
            }
        }
        Err(paging_cut_short(VENDOR, &what, out.len() as u64, None))
    }

    /// Activities of the given type ids since `since` (RFC 3339).
    pub async fn activities(
        &self,
        type_ids: &[u64],
        since: &str,
    ) -> Result<Vec<Value>, ProbeError> {
        let env = self
            .get(
                "/rest/v1/activities/pagingtoken.json",
                &[("sinceDatetime".into(), since.to_string())],
            )
            .await?;
        let token = env.next_page_token.ok_or_else(|| {
            ProbeError::permanent(format!(
                "{VENDOR}: GET /rest/v1/activities/pagingtoken.json: reply has no nextPageToken"
            ))
        })?;
        let ids = type_ids
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        self.paged(
            "/rest/v1/activities.json",
            &[("activityTypeIds".into(), ids)],
            Some(token),
        )
        .await
    }

    /// Activity type ids by name (`GET /rest/v1/activities/types.json`).
    pub async fn activity_types(&self) -> Result<Vec<(u64, String)>, ProbeError> {
        let env = self.get("/rest/v1/activities/types.json", &[]).await?;
        Ok(env
            .result
            .iter()
            .filter_map(|t| Some((t.get("id")?.as_u64()?, t.get("name")?.as_str()?.to_string())))
            .collect())
    }
}

/// Resolve activity type names to ids; an unknown name is an error naming the known ones.
pub fn type_ids(types: &[(u64, String)], names: &[String]) -> Result<Vec<u64>, ProbeError> {
    names
        .iter()
        .map(|n| {
            types
                .iter()
                .find(|(_, t)| t.eq_ignore_ascii_case(n))
                .map(|(id, _)| *id)
                .ok_or_else(|| {
                    let mut known: Vec<&str> = types.iter().map(|(_, t)| t.as_str()).collect();
                    known.sort_unstable();
                    known.truncate(40);
                    ProbeError::permanent(format!(
                        "{VENDOR}: activity type `{n}` does not exist in this instance; known types include: {}",
                        known.join(", ")
                    ))
                })
        })
        .collect()
}
