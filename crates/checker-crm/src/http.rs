//! The one way CRM adapters call a vendor: [`funnelgate_checker_sdk::vendor_http`]'s `call`
//! (every failure mapped to a specific error, the status code kept — C1 turns 401/403 into
//! FAIL —, the missing scope named on 403, a spent budget recognised, and the SDK's one retry
//! policy, [`funnelgate_checker_sdk::retry`]), plus URL helpers.

use std::time::Duration;

use funnelgate_checker_sdk::ProbeError;
pub use funnelgate_checker_sdk::vendor_http::{
    CallError, Reply, call, call_once, header_u64, scopes_in_body,
};

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
        // (re-exported from the sdk; kept here as the CRM's contract)
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
