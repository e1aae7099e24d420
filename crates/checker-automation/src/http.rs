//! The one way automation adapters call a vendor: the SDK's `vendor_http` mapping of every
//! failure (401, 403, 404, 429, 5xx, timeout, malformed or truncated JSON) to a specific error,
//! plus what the automation vendors need on top: `Retry-After` in both its forms (seconds and
//! HTTP-date, RFC 9110 §10.2.3), the missing scope named on 403, one short wait on a rate limit,
//! and the errors for paging cut short and objects that vanished between calls.

use std::time::{Duration, SystemTime};

use funnelgate_checker_sdk::ProbeError;
use funnelgate_checker_sdk::vendor_http::{status_error, transport_error};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;

/// A vendor call that failed, with the HTTP status when there was one.
#[derive(Debug, Clone)]
pub struct CallError {
    /// The HTTP status, `None` for transport failures and bad bodies.
    pub status: Option<u16>,
    /// The user-readable error.
    pub error: ProbeError,
    /// The start of the vendor's error body, empty otherwise.
    pub body: String,
    /// A vendor error code carried in a 200 reply (Marketo's `errors[].code`).
    pub code: Option<String>,
}

impl CallError {
    /// Whether the vendor rejected the credentials (401) or their permissions (403).
    pub fn is_auth(&self) -> bool {
        matches!(self.status, Some(401) | Some(403))
    }

    /// Whether the object was not found (404).
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
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
            code: None,
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

/// Longest `Retry-After` waited for inside one probe run; longer waits go back to the runner as
/// a transient error carrying `retry_after`.
pub const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);

/// `Retry-After` as delay-seconds or an HTTP-date (then the time left until it, from `now`).
/// `None` when absent or unreadable.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(86_400)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Map a non-2xx reply to its error; 429 carries the `Retry-After` in both forms.
pub fn reply_error(
    vendor: &str,
    what: &str,
    status: u16,
    headers: &HeaderMap,
    body: &str,
    scope: Option<&str>,
) -> ProbeError {
    let mut error = status_error(vendor, what, status, headers, body);
    if status == 429 {
        let wait = retry_after(headers, SystemTime::now()).unwrap_or(Duration::from_secs(10));
        error.message = format!(
            "{vendor}: {what}: returned 429: rate limited, retry after {}s{}",
            wait.as_secs(),
            detail(body)
        );
        error.retry_after = Some(wait);
    }
    if status == 403 {
        let named = scopes_in_body(body);
        if !named.is_empty() {
            error
                .message
                .push_str(&format!("; missing scope: {}", named.join(" or ")));
        } else if let Some(s) = scope {
            error.message.push_str(&format!("; this call needs `{s}`"));
        }
    }
    error
}

fn detail(body: &str) -> String {
    let m = funnelgate_checker_sdk::vendor_http::vendor_message(body);
    if m.is_empty() { m } else { format!(": {m}") }
}

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
        let error = reply_error(vendor, what, status, &headers, &text, scope);
        return Err(CallError {
            status: Some(status),
            error,
            body: text,
            code: None,
        });
    }
    let body = decode(vendor, what, &bytes)?;
    Ok(Reply { body, headers })
}

/// Decode a JSON body, naming an empty, truncated or malformed one.
pub fn decode<T: DeserializeOwned>(
    vendor: &str,
    what: &str,
    bytes: &[u8],
) -> Result<T, ProbeError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ProbeError::permanent(format!(
            "{vendor}: {what}: returned an empty body"
        )));
    }
    serde_json::from_slice::<T>(bytes).map_err(|e| {
        let kind = if e.is_eof() { "truncated" } else { "malformed" };
        ProbeError::permanent(format!("{vendor}: {what}: {kind} json response: {e}"))
    })
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
/// `requiredScopes`, or a top-level `required_scopes`.
pub fn scopes_in_body(body: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
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

/// The error for a listing that ended before the vendor's own total (or promised another page
/// and did not deliver it): counting a partial listing would under-report.
pub fn paging_cut_short(vendor: &str, what: &str, got: u64, expected: Option<u64>) -> ProbeError {
    let expected = expected
        .map(|e| format!(" of the {e} it announced"))
        .unwrap_or_default();
    ProbeError::transient(format!(
        "{vendor}: {what}: paging cut short after {got} items{expected}; a partial listing is not counted"
    ))
}

/// The error for an object listed by one call and gone (404) by the next.
pub fn vanished(vendor: &str, object: &str) -> ProbeError {
    ProbeError::transient(format!(
        "{vendor}: {object} vanished between calls (listed, then not found); it was changed while the probe ran, retry"
    ))
}

/// A header as a number, if present and numeric.
pub fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
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
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(120)));
        // RFC 9110's example date is 1445412480 + 30 s.
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:30 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        // A date in the past means "now".
        let later = now + Duration::from_secs(100);
        assert_eq!(retry_after(&h, later), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn a_429_names_its_wait() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let e = reply_error("mautic", "GET /api/contacts", 429, &h, "", None);
        assert!(e.is_transient());
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert!(e.message.contains("retry after 7s"), "{e}");
    }

    #[test]
    fn a_403_names_the_scope() {
        let body = r#"{"status":"error","message":"This app hasn't been granted all required scopes to make this call.",
            "errors":[{"message":"One or more of the following scopes are required.",
            "context":{"requiredGranularScopes":["automation"]}}],"category":"MISSING_SCOPES"}"#;
        let e = reply_error(
            "hubspot",
            "GET /automation/v4/flows",
            403,
            &HeaderMap::new(),
            body,
            None,
        );
        assert!(e.message.contains("missing scope: automation"), "{e}");
        let e = reply_error("x", "y", 403, &HeaderMap::new(), "", Some("forms"));
        assert!(e.message.contains("needs `forms`"), "{e}");
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(validate_base_url("base_url", "https://mautic.example.com").is_ok());
        assert!(validate_base_url("base_url", "ftp://x").is_err());
        assert!(validate_base_url("base_url", "https://u:p@x.io").is_err());
        assert_eq!(join("http://a/", "/b"), "http://a/b");
    }
}
