//! The one way CRM adapters call a vendor: [`funnelgate_checker_sdk::vendor_http`]'s mapping of
//! every failure (401, 403, 404, 429, 5xx, timeout, malformed or truncated JSON) to a specific
//! error, plus what a CRM probe needs on top: the status code kept (C1 turns 401/403 into FAIL),
//! the missing scope named on 403, and one wait-and-retry on a short 429.

use std::time::Duration;

use funnelgate_checker_sdk::ProbeError;
use funnelgate_checker_sdk::vendor_http::{retry_after, status_error, transport_error};
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

/// A vendor call that failed, with the HTTP status when there was one.
#[derive(Debug, Clone)]
pub struct CallError {
    /// The HTTP status, `None` for transport failures and bad bodies.
    pub status: Option<u16>,
    /// The user-readable error.
    pub error: ProbeError,
    /// The start of the vendor's error body (for vendor-specific codes), empty otherwise.
    pub body: String,
}

impl CallError {
    /// Whether the vendor rejected the credentials (401) or their permissions (403).
    pub fn is_auth(&self) -> bool {
        matches!(self.status, Some(401) | Some(403))
    }
}

impl From<CallError> for ProbeError {
    fn from(e: CallError) -> Self {
        e.error
    }
}

impl From<ProbeError> for CallError {
    fn from(error: ProbeError) -> Self {
        CallError {
            status: None,
            error,
            body: String::new(),
        }
    }
}

/// A decoded 2xx reply with its headers (rate-limit budgets live there).
#[derive(Debug)]
pub struct Reply<T> {
    /// The decoded body.
    pub body: T,
    /// The response headers.
    pub headers: HeaderMap,
}

/// Longest `Retry-After` we wait for inside one probe run; longer waits go back to the runner as
/// a transient error carrying `retry_after`.
pub const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);

/// Send a request and decode its JSON body. `scope` names the permission the call needs, quoted
/// on 403 when the vendor's body does not name it.
pub async fn call<T: DeserializeOwned>(
    vendor: &str,
    what: &str,
    req: reqwest::RequestBuilder,
    scope: Option<&str>,
) -> Result<Reply<T>, CallError> {
    let resp = req
        .send()
        .await
        .map_err(|e| transport_error(vendor, what, &e))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| transport_error(vendor, what, &e))?;
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(8192)]).into_owned();
        let mut error = status_error(vendor, what, status, &headers, &text);
        if status == 403 {
            let named = scopes_in_body(&text);
            if !named.is_empty() {
                error
                    .message
                    .push_str(&format!("; required scope: {}", named.join(" or ")));
            } else if let Some(s) = scope {
                error
                    .message
                    .push_str(&format!("; this call needs scope `{s}`"));
            }
        }
        return Err(CallError {
            status: Some(status),
            error,
            body: text,
        });
    }
    if bytes.is_empty() {
        return Err(
            ProbeError::permanent(format!("{vendor}: {what}: returned an empty body")).into(),
        );
    }
    let body = serde_json::from_slice::<T>(&bytes).map_err(|e| {
        let kind = if e.is_eof() { "truncated" } else { "malformed" };
        ProbeError::permanent(format!("{vendor}: {what}: {kind} json response: {e}"))
    })?;
    Ok(Reply { body, headers })
}

/// [`call`], waiting once for a rate limit whose `Retry-After` is at most [`MAX_INLINE_WAIT`].
pub async fn call_retrying<T: DeserializeOwned>(
    vendor: &str,
    what: &str,
    build: impl Fn() -> Result<reqwest::RequestBuilder, ProbeError>,
    scope: Option<&str>,
) -> Result<Reply<T>, CallError> {
    match call(vendor, what, build()?, scope).await {
        Err(e) if e.status == Some(429) => {
            let wait = e.error.retry_after.unwrap_or(Duration::MAX);
            if wait > MAX_INLINE_WAIT {
                return Err(e);
            }
            tracing::debug!(
                vendor,
                what,
                wait_ms = wait.as_millis() as u64,
                "rate limited, waiting once"
            );
            tokio::time::sleep(wait).await;
            call(vendor, what, build()?, scope).await
        }
        other => other,
    }
}

/// Scopes a vendor names in a 403 body: HubSpot's `errors[].context.requiredGranularScopes` /
/// `requiredScopes`, Pipedrive/others' top-level `required_scopes`.
pub fn scopes_in_body(body: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut take = |arr: Option<&serde_json::Value>| {
        for s in arr.and_then(|a| a.as_array()).into_iter().flatten() {
            if let Some(s) = s.as_str()
                && !out.iter().any(|o| o == s)
            {
                out.push(s.chars().filter(|c| !c.is_control()).take(100).collect());
            }
        }
    };
    for e in v
        .get("errors")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
    {
        let ctx = e.get("context");
        take(ctx.and_then(|c| c.get("requiredGranularScopes")));
        take(ctx.and_then(|c| c.get("requiredScopes")));
    }
    take(v.get("required_scopes"));
    out.truncate(10);
    out
}

/// A header as a number, if present and numeric.
pub fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// How long the vendor asked us to wait, defaulting to 10s.
pub fn wait_hint(headers: &HeaderMap) -> Duration {
    retry_after(headers, Duration::from_secs(10))
}

/// The per-request timeout: the probe's own timeout (the runner enforces it anyway).
pub fn request_timeout(spec_timeout: Duration) -> Duration {
    spec_timeout.max(Duration::from_millis(50))
}

/// Join a base URL and a path without doubling or losing the slash.
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Check a base URL param: absolute http(s), no credentials, no query.
pub fn validate_base_url(field: &str, url: &str) -> Result<(), ProbeError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ProbeError::params(format!("`{field}`: `{url}` is not a url: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ProbeError::params(format!(
            "`{field}`: `{url}` must be an http or https url"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ProbeError::params(format!(
            "`{field}`: credentials do not belong in a url; name a `secret` instead"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ProbeError::params(format!(
            "`{field}`: `{url}` must not carry a query or fragment"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_found_in_hubspot_and_generic_bodies() {
        let hub = r#"{"status":"error","message":"This app hasn't been granted all required scopes to make this call.",
            "errors":[{"message":"One or more of the following scopes are required.",
            "context":{"requiredGranularScopes":["crm.objects.deals.read"]}}],"category":"MISSING_SCOPES"}"#;
        assert_eq!(scopes_in_body(hub), vec!["crm.objects.deals.read"]);
        assert_eq!(
            scopes_in_body(r#"{"required_scopes":["deals:read"]}"#),
            vec!["deals:read"]
        );
        assert!(scopes_in_body("<html>").is_empty());
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(validate_base_url("base_url", "https://api.hubapi.com").is_ok());
        assert!(validate_base_url("base_url", "http://127.0.0.1:8080/").is_ok());
        assert!(validate_base_url("base_url", "ftp://x").is_err());
        assert!(validate_base_url("base_url", "https://user:pw@x.io").is_err());
        assert!(validate_base_url("base_url", "not a url").is_err());
        assert_eq!(join("http://a/", "/b"), "http://a/b");
    }
}
