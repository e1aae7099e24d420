//! Pipedrive client: API v2 (`/api/v2/deals|persons|pipelines|stages`, cursor paging through
//! `additional_data.next_cursor`) wherever v2 exists, API v1 only where it does not (`users/me`,
//! the `*Fields` lists, the Leads Inbox `/v1/leads`; `start`/`limit` paging through
//! `additional_data.pagination`). The API token goes in the `x-api-token` header (or an OAuth
//! access token as Bearer). Calls are paced to the token-based burst limit (a share of the
//! published 2-second window, following `x-ratelimit-remaining`/`-reset`), and retried by the
//! SDK's one policy.

use std::time::Duration;

use funnelgate_checker_sdk::pace::{BurstLimit, Pacer};
use funnelgate_checker_sdk::vendor_http::bearer;
use funnelgate_checker_sdk::{ProbeContext, ProbeError};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{CallError, Reply, call, join, request_timeout};

pub(crate) const VENDOR: &str = "pipedrive";
/// Largest list page Pipedrive serves.
pub const PAGE: u64 = 500;
/// The smallest published burst limit: 20 requests per 2-second window (Lite plan, per token);
/// a probe uses half of it.
pub const BURST: BurstLimit = BurstLimit {
    requests: 20,
    window: Duration::from_secs(2),
};

/// How the secret is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PipedriveAuth {
    /// A personal API token, in the `x-api-token` header.
    #[default]
    ApiToken,
    /// An OAuth access token, as `Authorization: Bearer`.
    Oauth,
}

/// Connection settings shared by every Pipedrive kind.
#[derive(Clone, Debug)]
pub struct Conn {
    /// API base URL.
    pub base_url: String,
    /// How the secret is sent.
    pub auth: PipedriveAuth,
}

#[derive(Debug, Deserialize)]
struct Pagination {
    #[serde(default)]
    more_items_in_collection: bool,
    #[serde(default)]
    next_start: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct Additional {
    #[serde(default)]
    pagination: Option<Pagination>,
    /// API v2: the cursor of the next page, `null` on the last.
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    success: bool,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    additional_data: Option<Additional>,
    #[serde(default)]
    error: Option<String>,
}

/// A Pipedrive client for one probe run.
pub struct Pipedrive {
    http: reqwest::Client,
    base: String,
    token: SecretString,
    auth: PipedriveAuth,
    timeout: Duration,
    pacer: Pacer,
}

impl Pipedrive {
    /// Resolve the token and build a client.
    pub fn new(ctx: &ProbeContext, conn: &Conn) -> Result<Pipedrive, ProbeError> {
        Ok(Pipedrive {
            http: ctx.http.clone(),
            base: conn.base_url.clone(),
            token: ctx.secret()?,
            auth: conn.auth,
            timeout: request_timeout(ctx.timeout()),
            pacer: Pacer::new(BURST, 0.5),
        })
    }

    fn auth_header(&self) -> Result<(&'static str, HeaderValue), ProbeError> {
        match self.auth {
            PipedriveAuth::Oauth => Ok((AUTHORIZATION.as_str(), bearer(&self.token)?)),
            PipedriveAuth::ApiToken => {
                let mut v = HeaderValue::from_str(self.token.expose_secret()).map_err(|_| {
                    ProbeError::permanent(
                        "the secret contains characters not allowed in an http header",
                    )
                })?;
                v.set_sensitive(true);
                Ok(("x-api-token", v))
            }
        }
    }

    /// `GET` a path, returning the envelope (after `success` is checked) and the headers.
    async fn envelope(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(Envelope, HeaderMap), CallError> {
        let url = join(&self.base, path);
        let what = format!("GET {path}");
        let (name, value) = self.auth_header()?;
        self.pacer.wait().await;
        let r: Reply<Envelope> = call(
            VENDOR,
            &what,
            || {
                Ok(self
                    .http
                    .get(&url)
                    .query(query)
                    .header(name, value.clone())
                    .timeout(self.timeout))
            },
            None,
        )
        .await?;
        if let Some(remaining) = crate::http::header_u64(&r.headers, "x-ratelimit-remaining") {
            let reset = crate::http::header_u64(&r.headers, "x-ratelimit-reset").unwrap_or(2);
            self.pacer.observe(remaining, Duration::from_secs(reset));
        }
        if !r.body.success {
            return Err(ProbeError::permanent(format!(
                "pipedrive: {what}: answered success=false: {}",
                r.body
                    .error
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect::<String>()
            ))
            .into());
        }
        Ok((r.body, r.headers))
    }

    /// `GET /v1/…` returning the envelope's `data`, the next `start` and the headers.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(Value, Option<u64>, HeaderMap), CallError> {
        let (body, headers) = self.envelope(path, query).await?;
        let next = body
            .additional_data
            .and_then(|a| a.pagination)
            .filter(|p| p.more_items_in_collection)
            .and_then(|p| p.next_start);
        Ok((body.data, next, headers))
    }

    /// Page through an API v2 list (`/api/v2/…`, cursor paging, at most 500 per page) while
    /// `keep_going` says so, up to `cap` items. Returns the items and whether more were left
    /// unread.
    pub async fn list_v2(
        &self,
        path: &str,
        query: &[(&str, String)],
        cap: u64,
        mut keep_going: impl FnMut(&Value) -> bool,
    ) -> Result<(Vec<Value>, bool), CallError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push((
                "limit",
                PAGE.min(cap.saturating_sub(out.len() as u64))
                    .max(1)
                    .to_string(),
            ));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let (body, _) = self.envelope(path, &q).await?;
            for item in items_of(path, body.data)? {
                if !keep_going(&item) {
                    return Ok((out, false));
                }
                out.push(item);
                if out.len() as u64 >= cap {
                    return Ok((out, true));
                }
            }
            match body
                .additional_data
                .and_then(|a| a.next_cursor)
                .filter(|c| !c.is_empty())
            {
                Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
                _ => return Ok((out, false)),
            }
        }
    }

    /// Page through a list endpoint (`data` is an array or null) while `keep` says so, up to
    /// `cap` items. Returns the items and whether more were left unread.
    pub async fn list(
        &self,
        path: &str,
        query: &[(&str, String)],
        cap: u64,
        mut keep_going: impl FnMut(&Value) -> bool,
    ) -> Result<(Vec<Value>, bool), CallError> {
        let mut out = Vec::new();
        let mut start = 0u64;
        loop {
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push(("start", start.to_string()));
            q.push((
                "limit",
                PAGE.min(cap.saturating_sub(out.len() as u64))
                    .max(1)
                    .to_string(),
            ));
            let (data, next, _) = self.get(path, &q).await?;
            for item in items_of(path, data)? {
                if !keep_going(&item) {
                    return Ok((out, false));
                }
                out.push(item);
                if out.len() as u64 >= cap {
                    return Ok((out, true));
                }
            }
            match next {
                Some(n) if n > start => start = n,
                _ => return Ok((out, false)),
            }
        }
    }
}

/// The items of a list reply's `data` (an array, or null for none).
fn items_of(path: &str, data: Value) -> Result<Vec<Value>, CallError> {
    match data {
        Value::Array(a) => Ok(a),
        Value::Null => Ok(Vec::new()),
        other => Err(ProbeError::permanent(format!(
            "pipedrive: GET {path}: expected a list in `data`, got {}",
            match other {
                Value::Object(_) => "an object",
                _ => "a scalar",
            }
        ))
        .into()),
    }
}

/// A field of a record: top level (built-in fields, and custom fields in API v1 replies such as
/// leads) or under API v2's `custom_fields`.
pub fn field_of<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item.get(key)
        .filter(|v| !v.is_null())
        .or_else(|| item.get("custom_fields").and_then(|c| c.get(key)))
}

/// Whether `key` has the shape of a Pipedrive custom field key: 40 lowercase hex characters
/// (most begin with a digit).
pub fn is_custom_key(key: &str) -> bool {
    key.len() == 40
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A field's value as text: strings, numbers, `{ "value": … }`/`{ "name": … }` objects, and the
/// first entry of Pipedrive's email/phone arrays (`[{ "value", "primary" }]`, primary first).
pub fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(o) => o
            .get("value")
            .or_else(|| o.get("name"))
            .or_else(|| o.get("id"))
            .and_then(text_of),
        Value::Array(a) => a
            .iter()
            .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| a.first())
            .and_then(text_of),
        Value::Null => None,
    }
}

/// The id inside Pipedrive's `user_id`/`owner_id` (a number, or `{ "id": … }`).
pub fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::Object(o) => o.get("id").and_then(id_of),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()).filter(|s| !s.is_empty()),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_come_out_of_pipedrive_shapes() {
        assert_eq!(text_of(&json!([{ "value": "b@x.io", "primary": false }, { "value": "a@x.io", "primary": true }])).as_deref(), Some("a@x.io"));
        assert_eq!(text_of(&json!([{ "value": "", "primary": true }])), None);
        assert_eq!(text_of(&json!(12)).as_deref(), Some("12"));
        assert_eq!(text_of(&json!(null)), None);
        assert_eq!(
            id_of(&json!({ "id": 7, "name": "Ann" })).as_deref(),
            Some("7")
        );
        assert_eq!(id_of(&json!(7)).as_deref(), Some("7"));
    }
}
