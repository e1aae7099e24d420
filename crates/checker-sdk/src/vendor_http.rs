//! One way for vendor adapters (HubSpot, Salesforce, SendGrid, …) to call a JSON HTTP API and get
//! a specific, user-readable [`ProbeError`] for every failure mode: 401 (bad token), 403 (missing
//! permission, naming the scope when the vendor says it), 404, 429 with `Retry-After`, 5xx,
//! timeout, connection failure, malformed or truncated JSON. Credentials are sent in headers and
//! never appear in errors.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::probe::ProbeError;

/// A response whose status was 2xx, with its headers kept (rate-limit budgets live there).
#[derive(Debug)]
pub struct VendorResponse<T> {
    pub body: T,
    pub headers: HeaderMap,
    pub status: u16,
}

/// Describe a reqwest transport error without leaking the URL's query string.
pub fn transport_error(vendor: &str, what: &str, e: &reqwest::Error) -> ProbeError {
    let base = if e.is_timeout() {
        format!("{vendor}: {what}: timed out")
    } else if e.is_connect() {
        format!("{vendor}: {what}: cannot connect: {}", root_cause(e))
    } else if e.is_decode() || e.is_body() {
        format!(
            "{vendor}: {what}: response body could not be read: {}",
            root_cause(e)
        )
    } else {
        format!("{vendor}: {what}: request failed: {}", root_cause(e))
    };
    ProbeError::transient(base)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Parse `Retry-After` (seconds, or an HTTP date we don't try to parse: then `default`).
pub fn retry_after(headers: &HeaderMap, default: Duration) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)))
        .unwrap_or(default)
}

/// Map a non-2xx status to a specific error. `body` is the (possibly truncated) response text;
/// the vendor's own message is extracted from common JSON shapes and quoted.
pub fn status_error(
    vendor: &str,
    what: &str,
    status: u16,
    headers: &HeaderMap,
    body: &str,
) -> ProbeError {
    let detail = vendor_message(body);
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    };
    match status {
        401 => ProbeError::permanent(format!(
            "{vendor}: {what}: returned 401: the token was rejected (expired, revoked or wrong){detail}"
        )),
        403 => ProbeError::permanent(format!(
            "{vendor}: {what}: returned 403: the token lacks a required permission{detail}"
        )),
        404 => ProbeError::permanent(format!(
            "{vendor}: {what}: returned 404: not found (wrong account, portal, object or API version){detail}"
        )),
        429 => {
            let wait = retry_after(headers, Duration::from_secs(10));
            ProbeError::transient(format!(
                "{vendor}: {what}: returned 429: rate limited, retry after {}s{detail}",
                wait.as_secs()
            ))
            .with_retry_after(wait)
        }
        500..=599 => ProbeError::transient(format!(
            "{vendor}: {what}: returned {status}: the vendor is failing{detail}"
        )),
        _ => ProbeError::permanent(format!("{vendor}: {what}: returned {status}{detail}")),
    }
}

/// Pull a human message out of common vendor error bodies (`message`, `error`,
/// `errors[0].message`, Salesforce's `[{"message":…,"errorCode":…}]`), capped in length.
pub fn vendor_message(body: &str) -> String {
    let msg = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => {
            let first = if let Some(arr) = v.as_array() {
                arr.first().cloned()
            } else {
                Some(v.clone())
            };
            first
                .and_then(|v| {
                    let get = |k: &str| v.get(k).and_then(|m| m.as_str()).map(str::to_string);
                    get("message")
                        .or_else(|| get("Message"))
                        .or_else(|| get("error_description"))
                        .or_else(|| get("error"))
                        .or_else(|| {
                            v.get("errors")
                                .and_then(|e| e.get(0))
                                .and_then(|e| e.get("message"))
                                .and_then(|m| m.as_str())
                                .map(str::to_string)
                        })
                        .or_else(|| {
                            v.get("error")
                                .and_then(|e| e.get("message"))
                                .and_then(|m| m.as_str())
                                .map(str::to_string)
                        })
                })
                .unwrap_or_default()
        }
        Err(_) => body.trim().to_string(),
    };
    let mut msg: String = msg.chars().filter(|c| !c.is_control()).take(300).collect();
    if msg.len() == 300 {
        msg.push('…');
    }
    msg
}

/// A `Bearer` authorization header value, marked sensitive so it is never logged by reqwest/hyper.
pub fn bearer(token: &SecretString) -> Result<HeaderValue, ProbeError> {
    let mut v =
        HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| {
            ProbeError::permanent("the secret contains characters not allowed in an http header")
        })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Send a request and decode a 2xx JSON body into `T`; every failure becomes a specific error.
/// `what` names the call in messages, e.g. "GET /crm/v3/pipelines/deals".
pub async fn send_json<T: DeserializeOwned>(
    vendor: &str,
    what: &str,
    req: reqwest::RequestBuilder,
) -> Result<VendorResponse<T>, ProbeError> {
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
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
        return Err(status_error(vendor, what, status, &headers, &text));
    }
    if bytes.is_empty() {
        return Err(ProbeError::permanent(format!(
            "{vendor}: {what}: returned an empty body"
        )));
    }
    let body = serde_json::from_slice::<T>(&bytes).map_err(|e| {
        let kind = if e.is_eof() { "truncated" } else { "malformed" };
        ProbeError::permanent(format!("{vendor}: {what}: {kind} json response: {e}"))
    })?;
    Ok(VendorResponse {
        body,
        headers,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_failure() {
        let h = HeaderMap::new();
        let e = status_error(
            "hubspot",
            "GET /crm/v3/pipelines/deals",
            403,
            &h,
            r#"{"status":"error","message":"This app hasn't been granted all required scopes: crm.objects.deals.read"}"#,
        );
        assert!(e.message.contains("403"), "{e}");
        assert!(e.message.contains("crm.objects.deals.read"), "{e}");
        assert!(!e.is_transient());
        let e = status_error(
            "salesforce",
            "GET limits",
            401,
            &h,
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        );
        assert!(e.message.contains("Session expired"), "{e}");
    }

    #[test]
    fn rate_limit_honours_retry_after() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let e = status_error("sendgrid", "GET /v3/stats", 429, &h, "");
        assert!(e.is_transient());
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after(&HeaderMap::new(), Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn capitalised_message_fields_are_read() {
        // Postmark: {"ErrorCode":10,"Message":"..."}; AWS JSON errors: {"Message": "..."}.
        let e = status_error(
            "postmark",
            "GET /domains",
            401,
            &HeaderMap::new(),
            r#"{"ErrorCode":10,"Message":"No Account or Server API tokens were supplied"}"#,
        );
        assert!(e.message.contains("No Account or Server API tokens"), "{e}");
    }

    #[test]
    fn server_errors_are_transient() {
        assert!(status_error("x", "y", 503, &HeaderMap::new(), "<html>").is_transient());
    }
}
