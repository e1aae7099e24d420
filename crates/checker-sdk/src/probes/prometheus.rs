//! `prometheus`: one PromQL instant query (`GET /api/v1/query`) that yields one number: cron and
//! queue health, webhook 5xx rates, synthetic checks already scraped by Prometheus.
//!
//! An empty result is an ERROR, never a pass ("query returned no series"): write
//! `… or vector(0)` when no series means zero. Several series are an ERROR unless `aggregate`
//! says how to combine them. `NaN` and infinities are ERRORs.

use std::sync::Arc;

use async_trait::async_trait;
use funnelgate_core::Measurement;
use schemars::JsonSchema;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{describe_url, read_body, request_error, snippet, status_error};
use crate::probe::{Probe, ProbeContext, ProbeError, ProbeFactory, TypedFactory};

/// Probe kind name.
pub const KIND: &str = "prometheus";

/// How the samples of several series are combined into one value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Several series are an ERROR (default): aggregate in PromQL instead.
    #[default]
    Error,
    /// Sum of the samples.
    Sum,
    /// Largest sample.
    Max,
    /// Smallest sample.
    Min,
    /// Mean of the samples.
    Avg,
}

/// Params of the `prometheus` probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusParams {
    /// Base URL of the Prometheus HTTP API (or a compatible one: Thanos, Mimir, VictoriaMetrics),
    /// e.g. `http://prometheus:9090`; a path prefix such as `/prometheus` is kept.
    pub url: String,
    /// PromQL instant query, e.g. `sum(rate(webhook_requests_total{code=~"5.."}[15m]))`.
    pub query: String,
    /// Evaluation time (RFC 3339 or Unix seconds); default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// How several series combine: `error` (default), `sum`, `max`, `min`, `avg`.
    #[serde(default)]
    pub aggregate: Aggregate,
    /// Send the probe's `secret` as `Authorization: Bearer <secret>`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bearer_secret: bool,
    /// Unit of the value in reports, e.g. `percent`, `count`, `ratio`; default `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// The `prometheus` factory.
pub fn factory() -> impl ProbeFactory {
    TypedFactory::<PrometheusParams, _>::new(
        KIND,
        "one PromQL instant query that yields one number",
        "value",
        |p| Ok(Arc::new(PrometheusProbe::new(p)?) as Arc<dyn Probe>),
    )
    .vendors(&["prometheus", "thanos", "mimir", "victoriametrics"])
}

/// A configured `prometheus` probe.
pub struct PrometheusProbe {
    params: PrometheusParams,
    endpoint: reqwest::Url,
}

impl PrometheusProbe {
    /// Validate params completely.
    pub fn new(params: PrometheusParams) -> Result<PrometheusProbe, ProbeError> {
        let bad = |m: String| ProbeError::params(format!("params of `{KIND}`: {m}"));
        let base = reqwest::Url::parse(&params.url).map_err(|e| bad(format!("`url`: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(bad(
                "`url` must be an http:// or https:// URL with a host".into()
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad(
                "`url` must not contain credentials: name a `secret` and set `bearer_secret`"
                    .into(),
            ));
        }
        if base.query().is_some() {
            return Err(bad(
                "`url` is the API's base URL and takes no query string".into()
            ));
        }
        if params.query.trim().is_empty() {
            return Err(bad("`query` must not be empty".into()));
        }
        if params.time.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(bad(
                "`time` must not be empty (leave it out to mean now)".into()
            ));
        }
        let path = format!("{}/api/v1/query", base.path().trim_end_matches('/'));
        let mut endpoint = base;
        endpoint.set_path(&path);
        Ok(PrometheusProbe { params, endpoint })
    }
}

#[async_trait]
impl Probe for PrometheusProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let what = format!("prometheus {}", describe_url(&self.endpoint));
        let mut url = self.endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("query", &self.params.query);
            q.append_pair("timeout", &format!("{:.3}", ctx.timeout().as_secs_f64()));
            if let Some(t) = &self.params.time {
                q.append_pair("time", t);
            }
        }
        let mut req = ctx.http.get(url).timeout(ctx.timeout());
        if self.params.bearer_secret {
            let secret = ctx.secret()?;
            let mut value = reqwest::header::HeaderValue::from_str(&format!(
                "Bearer {}",
                secret.expose_secret()
            ))
            .map_err(|_| {
                ProbeError::permanent("the bearer token secret is not a valid http header value")
            })?;
            value.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        let mut resp = req.send().await.map_err(|e| request_error(&e, &what))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = read_body(&mut resp, &what).await?;
        let doc: Option<serde_json::Value> = serde_json::from_slice(&body.bytes).ok();

        if !(200..300).contains(&status) {
            let detail = match &doc {
                Some(d) => format!(
                    "{}: {}",
                    d.get("errorType")
                        .and_then(|v| v.as_str())
                        .unwrap_or("error"),
                    d.get("error")
                        .and_then(|v| v.as_str())
                        .unwrap_or("no error message")
                ),
                None => snippet(&body.bytes, 200),
            };
            return Err(status_error(
                status,
                &headers,
                format!("{what} answered {status}: {detail}"),
            ));
        }
        let Some(doc) = doc else {
            return Err(ProbeError::permanent(format!(
                "{what}: response is not JSON: {}",
                snippet(&body.bytes, 120)
            )));
        };
        let mut m = interpret(&doc, self.params.aggregate)
            .map_err(|e| ProbeError::permanent(format!("{what}: {e}")))?;
        m.unit = self.params.unit.clone().unwrap_or_default();
        if let Some(w) = doc
            .get("warnings")
            .and_then(|w| w.as_array())
            .filter(|w| !w.is_empty())
        {
            let text: Vec<&str> = w.iter().filter_map(|x| x.as_str()).collect();
            m.evidence.insert("warnings".into(), text.join("; "));
        }
        Ok(m.with_evidence("query", self.params.query.clone()))
    }
}

/// A sample `[<unix time>, "<value>"]` → its value; NaN and infinities are errors.
fn sample_value(sample: &serde_json::Value) -> Result<(f64, String), String> {
    let pair = sample
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or("malformed sample: expected [time, value]")?;
    let ts = pair[0].to_string();
    let text = pair[1]
        .as_str()
        .ok_or("malformed sample: value is not a string")?;
    let v: f64 = text
        .parse()
        .map_err(|_| format!("malformed sample value `{}`", snippet(text.as_bytes(), 40)))?;
    if v.is_nan() {
        return Err("query returned NaN (e.g. a rate divided by zero traffic)".into());
    }
    if v.is_infinite() {
        return Err(format!("query returned {text}"));
    }
    Ok((v, ts))
}

fn labels(metric: Option<&serde_json::Value>) -> String {
    let Some(map) = metric.and_then(|m| m.as_object()) else {
        return "{}".into();
    };
    let name = map.get("__name__").and_then(|v| v.as_str()).unwrap_or("");
    let rest: Vec<String> = map
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}={}", v))
        .collect();
    format!("{name}{{{}}}", rest.join(","))
}

/// Turn a successful `/api/v1/query` answer into one measurement.
pub(crate) fn interpret(
    doc: &serde_json::Value,
    aggregate: Aggregate,
) -> Result<Measurement, String> {
    if doc.get("status").and_then(|s| s.as_str()) != Some("success") {
        return Err(format!(
            "query failed: {}",
            doc.get("error")
                .and_then(|v| v.as_str())
                .unwrap_or("status is not `success`")
        ));
    }
    let data = doc.get("data").ok_or("malformed response: no `data`")?;
    let kind = data
        .get("resultType")
        .and_then(|v| v.as_str())
        .ok_or("malformed response: no `data.resultType`")?;
    let result = data
        .get("result")
        .ok_or("malformed response: no `data.result`")?;
    match kind {
        "scalar" => {
            let (v, ts) = sample_value(result)?;
            Ok(Measurement::value(v, "", format!("scalar = {}", crate::runner::format_number(v)))
                .with_evidence("result_type", "scalar")
                .with_evidence("sample_time", ts))
        }
        "vector" => {
            let series = result.as_array().ok_or("malformed response: `data.result` is not a list")?;
            if series.is_empty() {
                return Err("query returned no series (append `or vector(0)` if no series means zero)".into());
            }
            let mut values = Vec::with_capacity(series.len());
            let mut last_ts = String::new();
            for s in series {
                let sample = match s.get("value") {
                    Some(v) => v,
                    None if s.get("histogram").is_some() => {
                        return Err("query returned a native histogram: use histogram_quantile or histogram_count".into());
                    }
                    None => return Err("malformed response: a series has no `value`".into()),
                };
                let (v, ts) = sample_value(sample)?;
                values.push(v);
                last_ts = ts;
            }
            let n = values.len();
            let (value, message) = if n == 1 {
                let l = labels(series[0].get("metric"));
                (values[0], format!("{l} = {}", crate::runner::format_number(values[0])))
            } else {
                let v = match aggregate {
                    Aggregate::Error => {
                        return Err(format!(
                            "query returned {n} series, expected one: aggregate in PromQL (e.g. `sum(…)`) or set `aggregate`"
                        ));
                    }
                    Aggregate::Sum => values.iter().sum(),
                    Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
                    Aggregate::Avg => values.iter().sum::<f64>() / n as f64,
                };
                let name = match aggregate {
                    Aggregate::Sum => "sum",
                    Aggregate::Max => "max",
                    Aggregate::Min => "min",
                    _ => "avg",
                };
                (v, format!("{name} of {n} series = {}", crate::runner::format_number(v)))
            };
            let mut m = Measurement::value(value, "", message)
                .with_evidence("result_type", "vector")
                .with_evidence("series", n.to_string())
                .with_evidence("sample_time", last_ts);
            if n == 1 {
                m = m.with_evidence("labels", labels(series[0].get("metric")));
            }
            Ok(m)
        }
        "matrix" => Err("query returned a range vector: use an instant vector (e.g. wrap it in `max_over_time(…)`)".into()),
        other => Err(format!("query returned a `{other}` result, expected a vector or a scalar")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vector(values: &[&str]) -> serde_json::Value {
        let result: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| serde_json::json!({"metric": {"__name__": "up", "instance": format!("h{i}")}, "value": [1700000000.5, v]}))
            .collect();
        serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})
    }

    #[test]
    fn single_series_and_aggregates() {
        let m = interpret(&vector(&["1"]), Aggregate::Error).unwrap();
        assert_eq!(m.value, Some(1.0));
        assert_eq!(m.message, "up{instance=\"h0\"} = 1.0");
        assert!(
            interpret(&vector(&["1", "2"]), Aggregate::Error)
                .unwrap_err()
                .contains("returned 2 series")
        );
        assert_eq!(
            interpret(&vector(&["1", "2", "6"]), Aggregate::Sum)
                .unwrap()
                .value,
            Some(9.0)
        );
        assert_eq!(
            interpret(&vector(&["1", "2", "6"]), Aggregate::Max)
                .unwrap()
                .value,
            Some(6.0)
        );
        assert_eq!(
            interpret(&vector(&["1", "2", "6"]), Aggregate::Min)
                .unwrap()
                .value,
            Some(1.0)
        );
        assert_eq!(
            interpret(&vector(&["1", "2", "6"]), Aggregate::Avg)
                .unwrap()
                .value,
            Some(3.0)
        );
    }

    #[test]
    fn empty_nan_inf_matrix_are_errors() {
        assert!(
            interpret(&vector(&[]), Aggregate::Sum)
                .unwrap_err()
                .contains("no series")
        );
        assert!(
            interpret(&vector(&["NaN"]), Aggregate::Error)
                .unwrap_err()
                .contains("NaN")
        );
        assert!(
            interpret(&vector(&["+Inf"]), Aggregate::Error)
                .unwrap_err()
                .contains("+Inf")
        );
        let m = serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert!(
            interpret(&m, Aggregate::Error)
                .unwrap_err()
                .contains("range vector")
        );
        let s = serde_json::json!({"status": "success", "data": {"resultType": "scalar", "result": [1.5, "0.25"]}});
        assert_eq!(interpret(&s, Aggregate::Error).unwrap().value, Some(0.25));
    }
}
