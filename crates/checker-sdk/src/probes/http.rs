//! `http`: one HTTP(S) request to a landing page, form endpoint, webhook receiver or status
//! page; measures whether the status was expected, the status itself, the latency, a value at
//! a JSON pointer, or whether the body contains a string.
//!
//! Outcomes:
//! - `measure = "ok"`: 1.0 when the status is in `expect_status` (default 200–299), else 0.0;
//!   any status is a measurement, never an error.
//! - `measure = "status"`: the status code, whatever it is.
//! - other measures: an unexpected status is an ERROR naming it (transient for 408, 429 and 5xx,
//!   honouring `Retry-After`; permanent otherwise).
//! - connection failures and timeouts are transient ERRORs (retried by the runner).
//! - with no thresholds configured, the boolean measures (`ok`, `body_contains`) expect true:
//!   0.0 is a FAIL.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use funnelgate_core::{Measurement, ProbeStatus};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use schemars::JsonSchema;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{MAX_BODY_BYTES, describe_url, read_body, request_error, snippet, status_error};
use crate::probe::{Probe, ProbeContext, ProbeError, ProbeFactory, TypedFactory};

/// Probe kind name.
pub const KIND: &str = "http";

/// HTTP method of the request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `GET` (default).
    #[default]
    Get,
    /// `HEAD`: status and latency only, no body.
    Head,
    /// `POST`, with `body`.
    Post,
}

impl HttpMethod {
    fn as_reqwest(self) -> reqwest::Method {
        match self {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Head => reqwest::Method::HEAD,
            HttpMethod::Post => reqwest::Method::POST,
        }
    }
}

/// What the probe measures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HttpMeasure {
    /// 1.0 when the status is in `expect_status` (default 200–299), else 0.0 (default).
    #[default]
    Ok,
    /// The status code, e.g. 200.
    Status,
    /// Milliseconds from sending the request to the end of the response body.
    LatencyMs,
    /// The number (or boolean, as 1.0/0.0, or numeric string) at `json_pointer` in a JSON body.
    JsonPointer,
    /// 1.0 when the body contains `contains`, else 0.0.
    BodyContains,
}

/// Params of the `http` probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpParams {
    /// The URL to request (`http://` or `https://`). Put no credentials in it: use
    /// `bearer_secret` or `header_secret`.
    pub url: String,
    /// `GET` (default), `HEAD` or `POST`.
    #[serde(default)]
    pub method: HttpMethod,
    /// Extra request headers. Values are not secret: they appear in config and reports.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Send the probe's `secret` as `Authorization: Bearer <secret>`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bearer_secret: bool,
    /// Send the probe's `secret` as the value of this header (e.g. `X-Api-Key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_secret: Option<String>,
    /// Request body (for `POST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `ok` (default), `status`, `latency_ms`, `json_pointer` or `body_contains`.
    #[serde(default)]
    pub measure: HttpMeasure,
    /// RFC 6901 JSON pointer of the measured value, e.g. `/data/queue/depth` (with
    /// `measure = "json_pointer"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_pointer: Option<String>,
    /// Text the body must contain (with `measure = "body_contains"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// Statuses counted as expected; default any 2xx.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
    /// Follow redirects (at most 10); default true. With false, a 3xx is the final answer.
    #[serde(default = "default_follow_redirects")]
    pub follow_redirects: bool,
}

fn default_follow_redirects() -> bool {
    true
}

/// The `http` factory.
pub fn factory() -> impl ProbeFactory {
    TypedFactory::<HttpParams, _>::new(
        KIND,
        "one HTTP(S) request: whether its status was expected, the status, the latency, a JSON value or a body substring",
        "value",
        |p| Ok(Arc::new(HttpProbe::new(p)?) as Arc<dyn Probe>),
    )
}

/// A configured `http` probe.
pub struct HttpProbe {
    params: HttpParams,
    url: reqwest::Url,
    headers: HeaderMap,
    header_secret: Option<HeaderName>,
    no_redirects: OnceLock<reqwest::Client>,
}

impl HttpProbe {
    /// Validate params completely (the request is built from them without further checks).
    pub fn new(params: HttpParams) -> Result<HttpProbe, ProbeError> {
        let bad = |m: String| ProbeError::params(format!("params of `{KIND}`: {m}"));
        let url = reqwest::Url::parse(&params.url).map_err(|e| bad(format!("`url`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad(
                "`url` must be an http:// or https:// URL with a host".into()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "`url` must not contain credentials: name a `secret` and set `bearer_secret` or `header_secret`"
                    .into(),
            ));
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &params.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| bad(format!("`headers`: `{k}` is not a valid header name")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| bad(format!("`headers.{k}`: not a valid header value")))?;
            headers.insert(name, value);
        }
        let header_secret =
            match &params.header_secret {
                Some(h) => Some(HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                    bad(format!("`header_secret`: `{h}` is not a valid header name"))
                })?),
                None => None,
            };
        if params.bearer_secret && header_secret.is_some() {
            return Err(bad(
                "set either `bearer_secret` or `header_secret`: both would use the same secret"
                    .into(),
            ));
        }
        for s in &params.expect_status {
            if !(100..=599).contains(s) {
                return Err(bad(format!(
                    "`expect_status`: {s} is not an HTTP status (100-599)"
                )));
            }
        }
        match (params.measure, &params.json_pointer) {
            (HttpMeasure::JsonPointer, None) => {
                return Err(bad(
                    "`measure = \"json_pointer\"` needs `json_pointer`, e.g. \"/data/value\""
                        .into(),
                ));
            }
            (HttpMeasure::JsonPointer, Some(p)) if !(p.is_empty() || p.starts_with('/')) => {
                return Err(bad(format!(
                    "`json_pointer`: `{p}` must be empty or start with `/` (RFC 6901)"
                )));
            }
            (HttpMeasure::JsonPointer, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(bad(
                    "`json_pointer` is only used with `measure = \"json_pointer\"`".into(),
                ));
            }
        }
        match (params.measure, &params.contains) {
            (HttpMeasure::BodyContains, None) => {
                return Err(bad("`measure = \"body_contains\"` needs `contains`".into()));
            }
            (HttpMeasure::BodyContains, Some(c)) if c.is_empty() => {
                return Err(bad("`contains` must not be empty".into()));
            }
            (HttpMeasure::BodyContains, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(bad(
                    "`contains` is only used with `measure = \"body_contains\"`".into(),
                ));
            }
        }
        if params.method == HttpMethod::Head {
            if params.body.is_some() {
                return Err(bad("a `HEAD` request takes no `body`".into()));
            }
            if matches!(
                params.measure,
                HttpMeasure::JsonPointer | HttpMeasure::BodyContains
            ) {
                return Err(bad(
                    "a `HEAD` response has no body to measure: use `GET`".into()
                ));
            }
        }
        Ok(HttpProbe {
            params,
            url,
            headers,
            header_secret,
            no_redirects: OnceLock::new(),
        })
    }

    fn client(&self, ctx: &ProbeContext) -> Result<reqwest::Client, ProbeError> {
        if self.params.follow_redirects {
            return Ok(ctx.http.clone());
        }
        if let Some(c) = self.no_redirects.get() {
            return Ok(c.clone());
        }
        crate::runner::install_crypto_provider();
        let c = reqwest::Client::builder()
            .user_agent(concat!("funnelgate/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                ProbeError::permanent(format!(
                    "cannot build an http client without redirects: {e}"
                ))
            })?;
        Ok(self.no_redirects.get_or_init(|| c).clone())
    }

    fn expected(&self, status: u16) -> bool {
        if self.params.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.params.expect_status.contains(&status)
        }
    }

    fn expected_text(&self) -> String {
        if self.params.expect_status.is_empty() {
            "2xx".to_string()
        } else {
            self.params
                .expect_status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        }
    }
}

#[async_trait]
impl Probe for HttpProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let method = self.params.method;
        let what = format!("{} {}", method.as_reqwest(), describe_url(&self.url));
        let mut req = self
            .client(ctx)?
            .request(method.as_reqwest(), self.url.clone())
            .timeout(ctx.timeout())
            .headers(self.headers.clone());
        if self.params.bearer_secret || self.header_secret.is_some() {
            let secret = ctx.secret()?;
            let raw = if self.params.bearer_secret {
                format!("Bearer {}", secret.expose_secret())
            } else {
                secret.expose_secret().to_string()
            };
            let mut value = HeaderValue::from_str(&raw).map_err(|_| {
                ProbeError::permanent(format!(
                    "secret `{}` is not a valid http header value",
                    ctx.spec.secret.as_deref().unwrap_or_default()
                ))
            })?;
            value.set_sensitive(true);
            let name = self
                .header_secret
                .clone()
                .unwrap_or(reqwest::header::AUTHORIZATION);
            req = req.header(name, value);
        }
        if let Some(b) = &self.params.body {
            req = req.body(b.clone());
        }

        let started = std::time::Instant::now();
        let mut resp = req.send().await.map_err(|e| request_error(&e, &what))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let final_url = describe_url(resp.url());
        let body = if method == HttpMethod::Head {
            super::Body {
                bytes: Vec::new(),
                truncated: false,
            }
        } else {
            read_body(&mut resp, &what).await?
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let expected = self.expected(status);

        let mut m = match self.params.measure {
            HttpMeasure::Ok => {
                let text = if expected {
                    format!("{what} answered {status}")
                } else {
                    format!(
                        "{what} answered {status}, expected {}",
                        self.expected_text()
                    )
                };
                Measurement::value(if expected { 1.0 } else { 0.0 }, "bool", text)
            }
            HttpMeasure::Status => Measurement::value(
                f64::from(status),
                "status",
                format!("{what} answered {status}"),
            ),
            _ if !expected => {
                let mut message = format!(
                    "{what} answered {status}, expected {}",
                    self.expected_text()
                );
                let shown = snippet(&body.bytes, 200);
                if !shown.is_empty() {
                    message.push_str(&format!(": {shown}"));
                }
                return Err(status_error(status, &headers, message));
            }
            HttpMeasure::LatencyMs => Measurement::value(
                latency_ms,
                "ms",
                format!("{what} answered {status} in {latency_ms:.0} ms"),
            ),
            HttpMeasure::JsonPointer => {
                let pointer = self.params.json_pointer.as_deref().unwrap_or_default();
                if body.truncated {
                    return Err(ProbeError::permanent(format!(
                        "{what}: response body is larger than {} MiB",
                        MAX_BODY_BYTES / (1024 * 1024)
                    )));
                }
                let doc: serde_json::Value = serde_json::from_slice(&body.bytes).map_err(|e| {
                    ProbeError::permanent(format!("{what}: response body is not JSON: {e}"))
                })?;
                json_measurement(&doc, pointer, &what)?
            }
            HttpMeasure::BodyContains => {
                let needle = self.params.contains.as_deref().unwrap_or_default();
                let found = contains(&body.bytes, needle.as_bytes());
                let scope = if body.truncated {
                    " (first 4 MiB searched)"
                } else {
                    ""
                };
                let text = if found {
                    format!("{what}: body contains `{needle}`{scope}")
                } else {
                    format!("{what}: body does not contain `{needle}`{scope}")
                };
                Measurement::value(if found { 1.0 } else { 0.0 }, "bool", text)
            }
        };
        if matches!(
            self.params.measure,
            HttpMeasure::Ok | HttpMeasure::BodyContains
        ) && ctx.spec.thresholds.is_empty()
        {
            // A yes/no check judges itself when no thresholds are set: it expects yes.
            m.verdict = Some(if m.value == Some(0.0) {
                ProbeStatus::Fail
            } else {
                ProbeStatus::Pass
            });
        }
        Ok(m.with_evidence("status", status.to_string())
            .with_evidence("url", final_url)
            .with_evidence("latency_ms", format!("{latency_ms:.0}")))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The value at `pointer`: a number, a boolean (1.0/0.0) or a numeric string; null is NO_DATA.
pub(crate) fn json_measurement(
    doc: &serde_json::Value,
    pointer: &str,
    what: &str,
) -> Result<Measurement, ProbeError> {
    let Some(v) = doc.pointer(pointer) else {
        return Err(ProbeError::permanent(format!(
            "{what}: no value at json pointer `{pointer}`"
        )));
    };
    let value = match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        serde_json::Value::Null => {
            return Ok(Measurement::verdict(
                ProbeStatus::NoData,
                format!("{what}: value at `{pointer}` is null"),
            ));
        }
        _ => None,
    };
    match value {
        Some(x) => Ok(Measurement::value(
            x,
            "",
            format!("{what}: `{pointer}` = {v}"),
        )),
        None => Err(ProbeError::permanent(format!(
            "{what}: value at `{pointer}` is {}, expected a number or a boolean",
            snippet(v.to_string().as_bytes(), 80)
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(v: serde_json::Value) -> Result<HttpProbe, ProbeError> {
        HttpProbe::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn validates_params() {
        assert!(params(serde_json::json!({"url": "https://example.com/"})).is_ok());
        let e = params(serde_json::json!({"url": "ftp://example.com/"}))
            .err()
            .unwrap();
        assert!(e.message.contains("http:// or https://"), "{e}");
        let e = params(serde_json::json!({"url": "https://u:p@example.com/"}))
            .err()
            .unwrap();
        assert!(e.message.contains("must not contain credentials"), "{e}");
        let e = params(serde_json::json!({"url": "https://x.test/", "measure": "json_pointer"}))
            .err()
            .unwrap();
        assert!(e.message.contains("needs `json_pointer`"), "{e}");
        let e = params(serde_json::json!({"url": "https://x.test/", "contains": "a"}))
            .err()
            .unwrap();
        assert!(e.message.contains("only used with"), "{e}");
        let e = params(serde_json::json!({"url": "https://x.test/", "expect_status": [99]}))
            .err()
            .unwrap();
        assert!(e.message.contains("99 is not an HTTP status"), "{e}");
        let e = params(serde_json::json!({"url": "https://x.test/", "bearer_secret": true, "header_secret": "x-key"}))
            .err()
            .unwrap();
        assert!(e.message.contains("either"), "{e}");
        let e =
            params(serde_json::json!({"url": "https://x.test/", "headers": {"bad header": "v"}}))
                .err()
                .unwrap();
        assert!(e.message.contains("not a valid header name"), "{e}");
    }

    #[test]
    fn json_values() {
        let doc = serde_json::json!({"a": {"n": 3.5, "b": true, "s": "42", "z": null, "o": {}}});
        assert_eq!(
            json_measurement(&doc, "/a/n", "t").unwrap().value,
            Some(3.5)
        );
        assert_eq!(
            json_measurement(&doc, "/a/b", "t").unwrap().value,
            Some(1.0)
        );
        assert_eq!(
            json_measurement(&doc, "/a/s", "t").unwrap().value,
            Some(42.0)
        );
        assert_eq!(
            json_measurement(&doc, "/a/z", "t").unwrap().verdict,
            Some(ProbeStatus::NoData)
        );
        assert!(
            json_measurement(&doc, "/a/o", "t")
                .unwrap_err()
                .message
                .contains("expected a number")
        );
        assert!(
            json_measurement(&doc, "/nope", "t")
                .unwrap_err()
                .message
                .contains("no value at json pointer `/nope`")
        );
    }
}
