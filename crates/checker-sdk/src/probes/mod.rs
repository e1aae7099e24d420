//! The generic probe kinds every checker offers, whatever its stage: `http`, `sql`,
//! `prometheus`. Each kind is a typed factory whose params struct is its documentation.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::probe::ProbeError;
use crate::registry::ProbeRegistry;

pub mod http;
pub mod prometheus;
pub mod sql;

/// Register `http`, `sql` and `prometheus` in `registry`.
pub fn register_generic(registry: &mut ProbeRegistry) {
    registry.register(http::factory());
    registry.register(sql::factory());
    registry.register(prometheus::factory());
}

/// A registry holding only the generic kinds; plugins add theirs with their `register`.
pub fn generic_registry() -> ProbeRegistry {
    let mut registry = ProbeRegistry::new();
    register_generic(&mut registry);
    registry
}

/// Largest response body a generic probe reads.
pub(crate) const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A response body, read up to [`MAX_BODY_BYTES`].
pub(crate) struct Body {
    pub bytes: Vec<u8>,
    pub truncated: bool,
}

/// Read a response body, stopping after [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(
    resp: &mut reqwest::Response,
    what: &str,
) -> Result<Body, ProbeError> {
    let mut bytes = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                    let room = MAX_BODY_BYTES - bytes.len();
                    bytes.extend_from_slice(&chunk[..room]);
                    return Ok(Body {
                        bytes,
                        truncated: true,
                    });
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => {
                return Ok(Body {
                    bytes,
                    truncated: false,
                });
            }
            Err(e) => return Err(request_error(&e, what)),
        }
    }
}

/// `e` and its sources, joined with ": ", without the URL reqwest adds.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// A failed request as a probe error: timeouts and connection failures are transient.
/// `what` names the target without secrets, e.g. `GET https://example.com/health`.
pub(crate) fn request_error(e: &reqwest::Error, what: &str) -> ProbeError {
    // reqwest's own Display adds the full URL (query string included): use only the sources.
    let detail = match std::error::Error::source(e) {
        Some(s) => error_chain(s),
        None => "request failed".to_string(),
    };
    if e.is_timeout() {
        ProbeError::transient(format!("{what}: timed out"))
    } else if e.is_connect() {
        ProbeError::transient(format!("{what}: cannot connect: {detail}"))
    } else if e.is_redirect() {
        ProbeError::permanent(format!("{what}: too many redirects (more than 10)"))
    } else if e.is_body() || e.is_decode() || e.is_request() {
        ProbeError::transient(format!("{what}: {detail}"))
    } else {
        ProbeError::permanent(format!("{what}: {detail}"))
    }
}

/// `Retry-After` in delta-seconds (HTTP dates are ignored: the runner backs off instead).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// An unexpected HTTP status as a probe error: 408, 429 and 5xx are transient (honouring
/// `Retry-After`), anything else permanent.
pub(crate) fn status_error(status: u16, headers: &HeaderMap, message: String) -> ProbeError {
    if status == 408 || status == 429 || status >= 500 {
        let e = ProbeError::transient(message);
        match retry_after(headers) {
            Some(d) => e.with_retry_after(d),
            None => e,
        }
    } else {
        ProbeError::permanent(message)
    }
}

/// The first `max` characters of a body, for error messages.
pub(crate) fn snippet(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out.replace(['\n', '\r'], " ")
}

/// `scheme://host[:port]/path` of a URL: enough to name the target, never its query string
/// or credentials.
pub(crate) fn describe_url(url: &reqwest::Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path());
    out
}
