//! Mautic REST client (`/api/...`, as documented by `mautic/api-library`): HTTP Basic
//! (`username:password`) or an OAuth2 access token (Bearer); list paging with `start`/`limit`
//! against the reply's `total`; PHP's quirks tolerated (`total` as a string, an empty result as
//! `[]` instead of `{}`); the optional API rate limiter's `X-RateLimit-*` headers read.

use std::time::Duration;

use funnelgate_checker_sdk::vendor_http::bearer;
use funnelgate_checker_sdk::{ProbeContext, ProbeError};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::evaluate::Budget;
use crate::http::{
    CallError, Reply, call_retrying, header_u64, join, paging_cut_short, request_timeout,
};

pub(crate) const VENDOR: &str = "mautic";
/// Page size for list calls.
pub const PAGE: u64 = 100;
/// Most items one listing pages through before giving up (bounds a probe run).
pub const LIST_CAP: u64 = 10_000;

/// How the probe authenticates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// HTTP Basic: the secret is `username:password` (enable "HTTP basic auth" in Mautic's API
    /// settings).
    #[default]
    Basic,
    /// OAuth2: the secret is an access token, sent as `Authorization: Bearer`.
    Oauth2,
}

/// A Mautic client for one probe run.
pub struct Mautic {
    http: reqwest::Client,
    base: String,
    cred: Cred,
    timeout: Duration,
}

/// A listing: the items (as JSON objects) in id order, and the vendor's total.
#[derive(Debug)]
pub struct Listing {
    /// Items.
    pub items: Vec<Value>,
    /// The vendor's `total`.
    pub total: u64,
}

/// A number Mautic may send as a number or a string.
pub fn num(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A float Mautic may send as a number or a string.
pub fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An id as a string, whatever its JSON type.
pub fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// A PHP boolean (`true`, `1`, `"1"`).
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => matches!(s.as_str(), "1" | "true"),
        _ => false,
    }
}

/// The items of a keyed collection: `{"7": {...}}` or `[...]` (PHP's empty array).
fn items_of(v: Option<&Value>) -> Result<Vec<Value>, String> {
    match v {
        Some(Value::Object(map)) => Ok(map.values().cloned().collect()),
        Some(Value::Array(a)) => Ok(a.clone()),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(other) => Err(format!("expected an object or a list, got {other}")),
    }
}

impl Mautic {
    /// Resolve the secret and build a client.
    pub fn new(ctx: &ProbeContext, base_url: &str, auth: Auth) -> Result<Mautic, ProbeError> {
        let secret = ctx.secret()?;
        let cred = match auth {
            Auth::Oauth2 => Cred::Bearer(bearer(&secret)?),
            Auth::Basic => basic(&secret)?,
        };
        Ok(Mautic {
            http: ctx.http.clone(),
            base: base_url.to_string(),
            cred,
            timeout: request_timeout(ctx.timeout()),
        })
    }

    fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(String, String)],
    ) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, join(&self.base, path))
            .timeout(self.timeout)
            .query(query);
        match &self.cred {
            Cred::Bearer(h) => r.header(AUTHORIZATION, h.clone()),
            Cred::Basic { user, password } => r.basic_auth(user, Some(password.expose_secret())),
        }
    }

    /// `GET path?query`, decoded.
    pub async fn get(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Reply<Value>, CallError> {
        let what = format!("GET {path}");
        call_retrying(
            VENDOR,
            &what,
            || Ok(self.req(reqwest::Method::GET, path, query)),
            Some("an api user with view permission on this object"),
        )
        .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply<Value>, CallError> {
        let what = format!("POST {path}");
        call_retrying(
            VENDOR,
            &what,
            || Ok(self.req(reqwest::Method::POST, path, &[]).json(body)),
            Some("an api user with create permission on this object"),
        )
        .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Reply<Value>, CallError> {
        let what = format!("DELETE {path}");
        call_retrying(
            VENDOR,
            &what,
            || Ok(self.req(reqwest::Method::DELETE, path, &[])),
            Some("an api user with delete permission on this object"),
        )
        .await
    }

    /// Page through a list endpoint (`key` names the collection: `campaigns`, `lists`, …) in id
    /// order until the vendor's `total` is reached; a page that ends early is an error.
    pub async fn list(
        &self,
        path: &str,
        key: &str,
        extra: &[(String, String)],
    ) -> Result<Listing, ProbeError> {
        let what = format!("GET {path}");
        let mut items = Vec::new();
        let mut start = 0u64;
        loop {
            let mut q: Vec<(String, String)> = extra.to_vec();
            q.push(("start".into(), start.to_string()));
            q.push(("limit".into(), PAGE.to_string()));
            q.push(("orderBy".into(), "id".into()));
            q.push(("orderByDir".into(), "asc".into()));
            let reply = self.get(path, &q).await?;
            let total = reply.body.get("total").and_then(num).ok_or_else(|| {
                ProbeError::permanent(format!("{VENDOR}: {what}: reply has no `total`"))
            })?;
            let page = items_of(reply.body.get(key))
                .map_err(|e| ProbeError::permanent(format!("{VENDOR}: {what}: `{key}`: {e}")))?;
            let n = page.len() as u64;
            items.extend(page);
            start += n;
            if start >= total || start >= LIST_CAP {
                return Ok(Listing { items, total });
            }
            if n == 0 {
                return Err(paging_cut_short(VENDOR, &what, start, Some(total)));
            }
        }
    }

    /// `total` of a contact search (one item fetched).
    pub async fn count_contacts(&self, query: &[(String, String)]) -> Result<u64, ProbeError> {
        let mut q = query.to_vec();
        q.push(("limit".into(), "1".into()));
        q.push(("minimal".into(), "true".into()));
        let reply = self.get("/api/contacts", &q).await?;
        reply.body.get("total").and_then(num).ok_or_else(|| {
            ProbeError::permanent(format!("{VENDOR}: GET /api/contacts: reply has no `total`"))
        })
    }

    /// The contacts matching a search (`email:x`, `tag:y`, `segment:z`), newest first, at most `limit`.
    pub async fn search_contacts(
        &self,
        search: &str,
        limit: u64,
        order_by: &str,
    ) -> Result<Vec<Value>, ProbeError> {
        let q = vec![
            ("search".to_string(), search.to_string()),
            ("limit".to_string(), limit.to_string()),
            ("orderBy".to_string(), order_by.to_string()),
            ("orderByDir".to_string(), "desc".to_string()),
        ];
        let reply = self.get("/api/contacts", &q).await?;
        items_of(reply.body.get("contacts")).map_err(|e| {
            ProbeError::permanent(format!("{VENDOR}: GET /api/contacts: `contacts`: {e}"))
        })
    }
}

/// The optional API rate limiter's budget from `X-RateLimit-Limit`/`-Remaining`/`-Reset`.
pub fn budget(headers: &HeaderMap) -> Option<Budget> {
    let limit = header_u64(headers, "x-ratelimit-limit")?;
    let remaining = header_u64(headers, "x-ratelimit-remaining")?;
    let resets = header_u64(headers, "x-ratelimit-reset")
        .and_then(|s| jiff::Timestamp::from_second(s as i64).ok())
        .map(|t| format!("at {}", crate::time::format(t)))
        .unwrap_or_else(|| "at the end of the rate limiter's period".into());
    Some(Budget {
        used: limit.saturating_sub(remaining),
        limit,
        resets,
    })
}

enum Cred {
    Basic {
        user: String,
        password: SecretString,
    },
    Bearer(HeaderValue),
}

fn basic(secret: &SecretString) -> Result<Cred, ProbeError> {
    match secret.expose_secret().split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok(Cred::Basic {
            user: user.to_string(),
            password: SecretString::from(password.to_string()),
        }),
        _ => Err(ProbeError::params(
            "mautic basic auth: the secret must be `username:password`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_quirks_are_tolerated() {
        assert_eq!(num(&Value::String("12".into())), Some(12));
        assert_eq!(
            items_of(Some(&Value::Array(vec![]))).ok().map(|v| v.len()),
            Some(0)
        );
        assert!(truthy(Some(&Value::String("1".into()))));
        assert!(!truthy(None));
    }
}
