//! Pipedrive API v1 client: the API token in the `x-api-token` header (or an OAuth access token
//! as Bearer), list paging through `additional_data.pagination` (`start`, `limit`,
//! `more_items_in_collection`, `next_start`), and the burst-window headers
//! (`x-ratelimit-limit`/`-remaining`) kept as evidence.

use std::time::Duration;

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

    /// `GET /v1/…` returning the envelope's `data` and the headers.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(Value, Option<u64>, HeaderMap), CallError> {
        let url = join(&self.base, path);
        let what = format!("GET {path}");
        let (name, value) = self.auth_header()?;
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
        let next = r
            .body
            .additional_data
            .and_then(|a| a.pagination)
            .filter(|p| p.more_items_in_collection)
            .and_then(|p| p.next_start);
        Ok((r.body.data, next, r.headers))
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
            let items = match data {
                Value::Array(a) => a,
                Value::Null => Vec::new(),
                other => {
                    return Err(ProbeError::permanent(format!(
                        "pipedrive: GET {path}: expected a list in `data`, got {}",
                        match other {
                            Value::Object(_) => "an object",
                            _ => "a scalar",
                        }
                    ))
                    .into());
                }
            };
            for item in items {
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
