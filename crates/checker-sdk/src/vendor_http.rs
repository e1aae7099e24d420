//! One way for vendor adapters (HubSpot, Salesforce, SendGrid, …) to call a JSON HTTP API and get
//! a specific, user-readable [`ProbeError`] for every failure mode: 401 (bad token), 403 (missing
//! permission, naming the scope when the vendor says it), 404, 429 with `Retry-After`, 5xx,
//! timeout, connection failure, malformed or truncated JSON. Credentials are sent in headers and
//! never appear in errors.

use std::time::Duration;

use funnelgate_core::time::format_duration;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::probe::ProbeError;
use crate::retry::{self, GaveUp, Retry, RetryPolicy};

/// The words every vendor adapter uses for a spent API budget (the one verdict for it is
/// documented in `docs/probes/crm/README.md`): the probe cannot measure, and retrying before the
/// budget resets cannot help.
pub const QUOTA_EXHAUSTED: &str = "the account's API request budget is exhausted (no integration feeding the funnel can call \
     this API until it resets)";

/// Whether a 403/429 reply says the account's whole budget (daily or org-wide) is spent, as
/// opposed to a short burst limit: Salesforce `REQUEST_LIMIT_EXCEEDED` (403), HubSpot's 429 with
/// `policyName` `DAILY`, Pipedrive's 429 with `x-daily-requests-left: 0`.
pub fn quota_exhausted(status: u16, headers: &HeaderMap, body: &str) -> bool {
    match status {
        403 => body.contains("REQUEST_LIMIT_EXCEEDED"),
        429 => {
            let daily_left_zero = headers
                .get("x-daily-requests-left")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
                .is_some_and(|n| n <= 0);
            let hubspot_daily = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| {
                    v.get("policyName")
                        .and_then(|p| p.as_str())
                        .map(str::to_string)
                })
                .is_some_and(|p| p.eq_ignore_ascii_case("DAILY"));
            daily_left_zero || hubspot_daily || body.contains("REQUEST_LIMIT_EXCEEDED")
        }
        _ => false,
    }
}

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

/// How long a vendor asked us to wait: `Retry-After` (seconds or HTTP-date), else the
/// `x-ratelimit-reset` seconds Pipedrive (and others) send; `None` when neither is there.
pub fn wait_hint(headers: &HeaderMap) -> Option<Duration> {
    retry::retry_after(headers).or_else(|| retry::reset_after(headers, "x-ratelimit-reset"))
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
        403 if quota_exhausted(status, headers, body) => ProbeError::permanent(format!(
            "{vendor}: {what}: returned 403: {QUOTA_EXHAUSTED}{detail}"
        )),
        403 => ProbeError::permanent(format!(
            "{vendor}: {what}: returned 403: the token lacks a required permission{detail}"
        )),
        404 => ProbeError::permanent(format!(
            "{vendor}: {what}: returned 404: not found (wrong account, portal, object or API version){detail}"
        )),
        429 if quota_exhausted(status, headers, body) => ProbeError::permanent(format!(
            "{vendor}: {what}: returned 429: {QUOTA_EXHAUSTED}{detail}"
        )),
        429 => match wait_hint(headers) {
            Some(wait) => ProbeError::transient(format!(
                "{vendor}: {what}: returned 429: rate limited, retry after {}{detail}",
                format_duration(wait)
            ))
            .with_retry_after(wait),
            None => ProbeError::transient(format!(
                "{vendor}: {what}: returned 429: rate limited{detail}"
            )),
        },
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

/// A vendor call that failed, with the HTTP status when there was one.
#[derive(Debug, Clone)]
pub struct CallError {
    /// The HTTP status, `None` for transport failures and bad bodies.
    pub status: Option<u16>,
    /// The user-readable error.
    pub error: ProbeError,
    /// The start of the vendor's error body (for vendor-specific codes), empty otherwise.
    pub body: String,
    /// The reply said the account's API budget is spent ([`quota_exhausted`]).
    pub quota_exhausted: bool,
}

impl CallError {
    /// Whether the vendor rejected the credentials (401) or their permissions (403), other than
    /// for a spent budget.
    pub fn is_auth(&self) -> bool {
        matches!(self.status, Some(401) | Some(403)) && !self.quota_exhausted
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
            quota_exhausted: false,
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

/// Send one request (no retry) and decode its JSON body. `scope` names the permission the call
/// needs, quoted on 403 when the vendor's body does not name it.
pub async fn call_once<T: DeserializeOwned>(
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
        let exhausted = quota_exhausted(status, &headers, &text);
        if status == 403 && !exhausted {
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
            quota_exhausted: exhausted,
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

/// [`call_once`] under the one retry policy ([`RetryPolicy::vendor_call`], see [`crate::retry`]):
/// transient failures (429, 5xx, timeouts, refused connections) are retried while the wait fits
/// in the probe's time left; a spent budget, 4xx and bad bodies are not. `build` makes a fresh
/// request per attempt.
pub async fn call<T: DeserializeOwned>(
    vendor: &str,
    what: &str,
    build: impl Fn() -> Result<reqwest::RequestBuilder, ProbeError>,
    scope: Option<&str>,
) -> Result<Reply<T>, CallError> {
    let policy = RetryPolicy::vendor_call();
    let attempt = || async {
        let mut req = build()?;
        // No single attempt outlives the probe.
        if let Some(left) = retry::remaining() {
            req = req.timeout(left.max(Duration::from_millis(10)));
        }
        call_once(vendor, what, req, scope).await
    };
    match retry::retry(&policy, None, attempt, classify).await {
        Ok((reply, _)) => Ok(reply),
        Err(GaveUp {
            mut error,
            attempts,
            wait_did_not_fit,
        }) => {
            if attempts > 1 {
                error.error.message = format!(
                    "{} (gave up after {attempts} attempts)",
                    error.error.message
                );
            }
            if let Some(w) = wait_did_not_fit {
                error.error.retry_after = Some(w);
            }
            Err(error)
        }
    }
}

/// The retry classification of a vendor call's failure.
pub fn classify(e: &CallError) -> Retry {
    if e.error.is_transient() && !e.quota_exhausted {
        Retry::After(e.error.retry_after)
    } else {
        Retry::Stop
    }
}

/// Send a request and decode a 2xx JSON body into `T`; every failure becomes a specific error.
/// `what` names the call in messages, e.g. "GET /crm/v3/pipelines/deals". Transient failures are
/// retried by the one policy ([`call`]); a request whose body cannot be cloned is sent once.
pub async fn send_json<T: DeserializeOwned>(
    vendor: &str,
    what: &str,
    req: reqwest::RequestBuilder,
) -> Result<VendorResponse<T>, ProbeError> {
    let reply = match req.try_clone() {
        Some(_) => {
            call::<T>(
                vendor,
                what,
                || {
                    req.try_clone().ok_or_else(|| {
                        ProbeError::permanent(format!("{vendor}: {what}: request cannot be resent"))
                    })
                },
                None,
            )
            .await
        }
        None => call_once::<T>(vendor, what, req, None).await,
    }
    .map_err(|e| e.error)?;
    Ok(VendorResponse {
        body: reply.body,
        headers: reply.headers,
        status: 200,
    })
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
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        let e = status_error("sendgrid", "GET /v3/stats", 429, &h, "");
        assert!(e.is_transient());
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        // No hint: transient, and the retry policy's own brief backoff applies.
        let e = status_error("hubspot", "POST search", 429, &HeaderMap::new(), "");
        assert!(e.is_transient());
        assert_eq!(e.retry_after, None);
    }

    #[test]
    fn a_spent_budget_is_one_permanent_verdict_for_every_vendor() {
        let sf =
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        let e = status_error("salesforce", "GET limits", 403, &HeaderMap::new(), sf);
        assert!(
            !e.is_transient() && e.message.contains(QUOTA_EXHAUSTED),
            "{e}"
        );
        let hs = r#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","policyName":"DAILY"}"#;
        let e = status_error("hubspot", "GET contacts", 429, &HeaderMap::new(), hs);
        assert!(
            !e.is_transient() && e.message.contains(QUOTA_EXHAUSTED),
            "{e}"
        );
        let mut h = HeaderMap::new();
        h.insert("x-daily-requests-left", HeaderValue::from_static("0"));
        let e = status_error("pipedrive", "GET deals", 429, &h, "{}");
        assert!(
            !e.is_transient() && e.message.contains(QUOTA_EXHAUSTED),
            "{e}"
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
