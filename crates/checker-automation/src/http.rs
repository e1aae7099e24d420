//! The one way automation adapters call a vendor: the SDK's `vendor_http` (every failure mapped
//! to a specific error — 401, 403 naming the scope, 404, 429 with `Retry-After` in both forms,
//! a spent budget, 5xx, timeouts, malformed or truncated JSON — under the SDK's one retry
//! policy), plus what the automation adapters add: the errors for paging cut short and objects
//! that vanished between calls, and the Marketo envelope codes carried in
//! [`CallError::body`].

use std::time::Duration;

use funnelgate_checker_sdk::ProbeError;
pub use funnelgate_checker_sdk::vendor_http::{CallError, Reply, header_u64};
use serde::de::DeserializeOwned;

/// A vendor call under the SDK's retry policy. `scope` names the permission the call needs,
/// quoted on 403 when the vendor's body does not name it.
pub async fn call_retrying<T: DeserializeOwned>(
    vendor: &str,
    what: &str,
    build: impl Fn() -> Result<reqwest::RequestBuilder, ProbeError>,
    scope: Option<&str>,
) -> Result<Reply<T>, CallError> {
    funnelgate_checker_sdk::vendor_http::call(vendor, what, build, scope).await
}

/// Whether the object was not found (404).
pub fn is_not_found(e: &CallError) -> bool {
    e.status == Some(404)
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
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert!(validate_base_url("base_url", "https://mautic.example.com").is_ok());
        assert!(validate_base_url("base_url", "ftp://x").is_err());
        assert!(validate_base_url("base_url", "https://u:p@x.io").is_err());
        assert_eq!(join("http://a/", "/b"), "http://a/b");
    }

    #[test]
    fn partial_listings_and_vanished_objects_say_so() {
        let e = paging_cut_short("mautic", "GET /api/campaigns", 200, Some(250));
        assert!(e.message.contains("after 200 items of the 250"), "{e}");
        assert!(
            vanished("mautic", "campaign 3")
                .message
                .contains("vanished")
        );
    }
}
