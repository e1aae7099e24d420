//! Google Analytics 4 probe kinds over the Admin API v1beta and the Data API v1beta (catalogue
//! W1–W4, W9, W10), authenticated with a service account (the probe's `secret` holds its JSON
//! key).
//!
//! | kind | value | verdict |
//! |---|---|---|
//! | `ga4.property_and_stream` | measurement IDs without a web stream (count) | FAIL on a missing stream, a deleted property, a stream for another domain |
//! | `ga4.key_events_configured` | required key events missing (count) | FAIL when one is missing |
//! | `ga4.key_events_firing` | required key events with no occurrence in the window (count) | FAIL on zero; WARN on thresholding, "(other)" row, low quota |
//! | `ga4.realtime_canary` | canary events in the last minutes (count) | FAIL when not seen |
//! | `ga4.data_retention_and_currency` | event retention in months | WARN on 2 months, another currency or time zone |

pub mod auth;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use funnelgate_checker_sdk::vendor_http::{bearer, send_json};
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, TypedFactory};
use funnelgate_core::{Measurement, ProbeStatus};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use auth::{ServiceAccount, TokenSource};

/// The Admin API's root.
pub const ADMIN_URL: &str = "https://analyticsadmin.googleapis.com";
/// The Data API's root.
pub const DATA_URL: &str = "https://analyticsdata.googleapis.com";
const VENDOR: &str = "ga4";

fn default_admin_url() -> String {
    ADMIN_URL.to_string()
}
fn default_data_url() -> String {
    DATA_URL.to_string()
}

/// Where and how to reach GA4; every GA4 kind's params carry these fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Ga4Api {
    pub property_id: String,
    pub admin_url: String,
    pub data_url: String,
    pub token_url: Option<String>,
}

impl Ga4Api {
    fn validate(&mut self) -> Result<(), ProbeError> {
        let id = self
            .property_id
            .trim()
            .trim_start_matches("properties/")
            .to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProbeError::params(format!(
                "`property_id`: `{}` is not a numeric ga4 property id",
                self.property_id
            )));
        }
        self.property_id = id;
        for (k, v) in [("admin_url", &self.admin_url), ("data_url", &self.data_url)] {
            check_url(k, v)?;
        }
        if let Some(t) = &self.token_url {
            check_url("token_url", t)?;
        }
        Ok(())
    }
}

fn check_url(key: &str, v: &str) -> Result<(), ProbeError> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(ProbeError::params(format!(
            "`{key}`: `{v}` is not an http(s) url"
        ))),
    }
}

/// An authenticated GA4 client for one probe.
struct Client {
    api: Ga4Api,
    tokens: TokenSource,
}

impl Client {
    fn new(api: Ga4Api) -> Self {
        let tokens = TokenSource::new(api.token_url.clone());
        Client { api, tokens }
    }

    async fn auth(&self, ctx: &ProbeContext) -> Result<reqwest::header::HeaderValue, ProbeError> {
        let sa = ServiceAccount::from_json(&ctx.secret()?)?;
        let token = self.tokens.token(&ctx.http, &sa, ctx.timeout()).await?;
        bearer(&token)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        ctx: &ProbeContext,
        path: &str,
    ) -> Result<T, ProbeError> {
        let url = format!("{}/v1beta/{path}", self.api.admin_url.trim_end_matches('/'));
        let req = ctx
            .http
            .get(url)
            .timeout(ctx.timeout())
            .header(reqwest::header::AUTHORIZATION, self.auth(ctx).await?);
        Ok(send_json(VENDOR, &format!("GET v1beta/{path}"), req)
            .await?
            .body)
    }

    /// Every page of a list call (`nextPageToken`), bounded.
    async fn list(
        &self,
        ctx: &ProbeContext,
        path: &str,
        field: &str,
    ) -> Result<Vec<Value>, ProbeError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..50 {
            let p = match &token {
                Some(t) => format!("{path}?pageSize=200&pageToken={t}"),
                None => format!("{path}?pageSize=200"),
            };
            let page: Value = self.get(ctx, &p).await?;
            if let Some(items) = page.get(field).and_then(Value::as_array) {
                out.extend(items.iter().cloned());
            }
            match page.get("nextPageToken").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
        Err(ProbeError::permanent(format!(
            "ga4: GET v1beta/{path}: more than 50 pages"
        )))
    }

    async fn data(
        &self,
        ctx: &ProbeContext,
        method: &str,
        body: &Value,
    ) -> Result<Value, ProbeError> {
        let url = format!(
            "{}/v1beta/properties/{}:{method}",
            self.api.data_url.trim_end_matches('/'),
            self.api.property_id
        );
        let req = ctx
            .http
            .post(url)
            .timeout(ctx.timeout())
            .header(reqwest::header::AUTHORIZATION, self.auth(ctx).await?)
            .json(body);
        Ok(send_json(
            VENDOR,
            &format!("POST v1beta/properties/{{id}}:{method}"),
            req,
        )
        .await?
        .body)
    }

    fn property(&self) -> String {
        format!("properties/{}", self.api.property_id)
    }
}

fn verdict(mut m: Measurement, status: ProbeStatus) -> Measurement {
    m.verdict = Some(status);
    m
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

/// A GA4 kind's params: the [`Ga4Api`] fields (flattening is not an option with
/// `deny_unknown_fields`) plus its own.
macro_rules! ga4_params {
    ($(#[$doc:meta])* $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// The GA4 property: its numeric id (`123456789`) or `properties/123456789`.
            pub property_id: String,
            /// Admin API root (tests and proxies override it).
            #[serde(default = "default_admin_url")]
            pub admin_url: String,
            /// Data API root (tests and proxies override it).
            #[serde(default = "default_data_url")]
            pub data_url: String,
            /// OAuth token endpoint; default: the key's `token_uri`, else Google's.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub token_url: Option<String>,
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $name {
            fn api(&self) -> Result<Ga4Api, ProbeError> {
                let mut a = Ga4Api {
                    property_id: self.property_id.clone(),
                    admin_url: self.admin_url.clone(),
                    data_url: self.data_url.clone(),
                    token_url: self.token_url.clone(),
                };
                a.validate()?;
                Ok(a)
            }
        }
    };
}

// ------------------------------------------------------------------ W1 property and stream

ga4_params! {
    /// Params of `ga4.property_and_stream`.
    PropertyStreamParams {
    /// Measurement IDs the landing pages load (what `wa.tag_presence` finds): each must belong
    /// to a web data stream of the property.
    pub measurement_ids: Vec<String>,
    /// The landing pages' domain (`www.example.com`): a web stream's `defaultUri` must be on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing_domain: Option<String>,
    }
}

struct PropertyStream(PropertyStreamParams, Client);

#[async_trait]
impl Probe for PropertyStream {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let c = &self.1;
        let prop: Value = c.get(ctx, &c.property()).await?;
        let streams = c
            .list(ctx, &format!("{}/dataStreams", c.property()), "dataStreams")
            .await?;
        let web: Vec<(&str, &str)> = streams
            .iter()
            .filter(|s| s.get("type").and_then(Value::as_str) == Some("WEB_DATA_STREAM"))
            .map(|s| {
                (
                    str_at(s, &["webStreamData", "measurementId"]).unwrap_or(""),
                    str_at(s, &["webStreamData", "defaultUri"]).unwrap_or(""),
                )
            })
            .collect();
        let missing: Vec<&String> = self
            .0
            .measurement_ids
            .iter()
            .filter(|id| !web.iter().any(|(m, _)| m == id))
            .collect();
        let mut problems = Vec::new();
        if let Some(t) = prop.get("deleteTime").and_then(Value::as_str) {
            problems.push(format!("the property is in the trash (deleteTime {t})"));
        }
        if web.is_empty() {
            problems.push("the property has no web data stream".to_string());
        }
        if !missing.is_empty() {
            problems.push(format!(
                "{} not a web stream of this property (streams: {})",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                web.iter().map(|(m, _)| *m).collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some(d) = &self.0.landing_domain {
            let d = d.trim().to_ascii_lowercase();
            let covered = web.iter().any(|(_, uri)| {
                url::Url::parse(uri)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
                    .is_some_and(|h| {
                        h == d || d.ends_with(&format!(".{h}")) || h.ends_with(&format!(".{d}"))
                    })
            });
            if !covered {
                problems.push(format!("no web stream's default uri is on {d}"));
            }
        }
        let name = prop
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let msg = if problems.is_empty() {
            format!("property {name}: every measurement id has a web stream")
        } else {
            format!("property {name}: {}", problems.join("; "))
        };
        let status = if problems.is_empty() {
            ProbeStatus::Pass
        } else {
            ProbeStatus::Fail
        };
        let mut m = Measurement::value(missing.len() as f64, "count", msg);
        for (i, (mid, uri)) in web.iter().enumerate() {
            m = m.with_evidence(format!("stream.{:02}", i + 1), format!("{mid} {uri}"));
        }
        if let Some(sl) = prop.get("serviceLevel").and_then(Value::as_str) {
            m = m.with_evidence("service_level", sl);
        }
        Ok(verdict(m, status))
    }
}

// ------------------------------------------------------------------ W2 key events configured

ga4_params! {
    /// Params of `ga4.key_events_configured`.
    KeyEventsParams {
    /// Event names that must be key events (e.g. `generate_lead`, `purchase`).
    pub required_events: Vec<String>,
    }
}

struct KeyEventsConfigured(KeyEventsParams, Client);

#[async_trait]
impl Probe for KeyEventsConfigured {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let c = &self.1;
        let events = c
            .list(ctx, &format!("{}/keyEvents", c.property()), "keyEvents")
            .await?;
        let names: Vec<&str> = events
            .iter()
            .filter_map(|e| e.get("eventName").and_then(Value::as_str))
            .collect();
        let missing: Vec<&str> = self
            .0
            .required_events
            .iter()
            .map(String::as_str)
            .filter(|r| !names.contains(r))
            .collect();
        let msg = if missing.is_empty() {
            format!(
                "every required key event is configured ({})",
                self.0.required_events.join(", ")
            )
        } else {
            format!(
                "key events not configured: {} (configured: {})",
                missing.join(", "),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        };
        let m = Measurement::value(missing.len() as f64, "count", msg)
            .with_evidence("configured", names.join(","));
        Ok(verdict(
            m,
            if missing.is_empty() {
                ProbeStatus::Pass
            } else {
                ProbeStatus::Fail
            },
        ))
    }
}

// ------------------------------------------------------------------ W3 + W9 key events firing

fn default_start() -> String {
    "7daysAgo".into()
}
fn default_end() -> String {
    "yesterday".into()
}

ga4_params! {
    /// Params of `ga4.key_events_firing`.
    FiringParams {
    /// Key events that must have fired in the window.
    pub required_events: Vec<String>,
    /// Window start, a Data API date (`7daysAgo`, `2026-01-31`).
    #[serde(default = "default_start")]
    pub start_date: String,
    /// Window end (`yesterday`, `today`, a date).
    #[serde(default = "default_end")]
    pub end_date: String,
    }
}

struct Firing(FiringParams, Client);

/// Data-quality flags of a Data API response (W9).
fn quality_flags(resp: &Value) -> Vec<String> {
    let mut flags = Vec::new();
    if resp.pointer("/metadata/subjectToThresholding") == Some(&Value::Bool(true)) {
        flags.push("thresholding applied: low counts are withheld".to_string());
    }
    if resp.pointer("/metadata/dataLossFromOtherRow") == Some(&Value::Bool(true)) {
        flags.push("rows were folded into \"(other)\"".to_string());
    }
    if let Some(q) = resp.pointer("/propertyQuota/tokensPerDay") {
        let used = q.get("consumed").and_then(Value::as_i64).unwrap_or(0);
        let left = q
            .get("remaining")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MAX);
        if used + left > 0 && (left as f64) < 0.1 * (used + left) as f64 {
            flags.push(format!("daily quota nearly spent: {left} tokens left"));
        }
    }
    flags
}

#[async_trait]
impl Probe for Firing {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let body = json!({
            "dateRanges": [{"startDate": p.start_date, "endDate": p.end_date}],
            "dimensions": [{"name": "eventName"}],
            "metrics": [{"name": "eventCount"}, {"name": "keyEvents"}],
            "dimensionFilter": {"filter": {"fieldName": "eventName",
                "inListFilter": {"values": p.required_events, "caseSensitive": true}}},
            "returnPropertyQuota": true,
            "limit": "10000"
        });
        let resp = self.1.data(ctx, "runReport", &body).await?;
        let mut counts: Vec<(String, f64)> = Vec::new();
        for row in resp
            .get("rows")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = row
                .pointer("/dimensionValues/0/value")
                .and_then(Value::as_str);
            let count = row
                .pointer("/metricValues/0/value")
                .and_then(Value::as_str)
                .and_then(|v| v.parse::<f64>().ok());
            match (name, count) {
                (Some(n), Some(c)) => counts.push((n.to_string(), c)),
                _ => {
                    return Err(ProbeError::permanent(
                        "ga4: runReport: a row without an event name or a numeric eventCount",
                    ));
                }
            }
        }
        let silent: Vec<&str> = p
            .required_events
            .iter()
            .map(String::as_str)
            .filter(|e| !counts.iter().any(|(n, c)| n == e && *c > 0.0))
            .collect();
        let flags = quality_flags(&resp);
        let window = format!("{} → {}", p.start_date, p.end_date);
        let mut msg = if silent.is_empty() {
            format!("every required key event fired ({window})")
        } else {
            format!("no occurrence ({window}) of: {}", silent.join(", "))
        };
        if !flags.is_empty() {
            msg.push_str(&format!("; data quality: {}", flags.join("; ")));
        }
        let total: f64 = counts.iter().map(|(_, c)| c).sum();
        let mut m = Measurement::value(silent.len() as f64, "count", msg).with_sample(total as u64);
        for (n, c) in &counts {
            m = m.with_evidence(format!("events.{n}"), format!("{c}"));
        }
        for (i, f) in flags.iter().enumerate() {
            m = m.with_evidence(format!("quality.{:02}", i + 1), f.clone());
        }
        let status = if !silent.is_empty() {
            ProbeStatus::Fail
        } else if !flags.is_empty() {
            ProbeStatus::Warn
        } else {
            ProbeStatus::Pass
        };
        Ok(verdict(m, status))
    }
}

// ------------------------------------------------------------------ W4 realtime canary

fn default_minutes() -> u32 {
    29
}

ga4_params! {
    /// Params of `ga4.realtime_canary`.
    CanaryParams {
    /// The canary event your synthetic visit sends (e.g. `funnelgate_canary`).
    pub event_name: String,
    /// Look back this many minutes (0–29 on standard properties).
    #[serde(default = "default_minutes")]
    pub minutes: u32,
    }
}

struct Canary(CanaryParams, Client);

#[async_trait]
impl Probe for Canary {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let body = json!({
            "dimensions": [{"name": "eventName"}],
            "metrics": [{"name": "eventCount"}],
            "dimensionFilter": {"filter": {"fieldName": "eventName",
                "stringFilter": {"matchType": "EXACT", "value": p.event_name, "caseSensitive": true}}},
            "minuteRanges": [{"startMinutesAgo": p.minutes, "endMinutesAgo": 0}],
            "returnPropertyQuota": true
        });
        let resp = self.1.data(ctx, "runRealtimeReport", &body).await?;
        let mut count = 0.0;
        for row in resp
            .get("rows")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            count += row
                .pointer("/metricValues/0/value")
                .and_then(Value::as_str)
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| {
                    ProbeError::permanent(
                        "ga4: runRealtimeReport: a row without a numeric eventCount",
                    )
                })?;
        }
        let msg = if count > 0.0 {
            format!(
                "canary `{}` seen {count} time(s) in the last {} minutes",
                p.event_name, p.minutes
            )
        } else {
            format!(
                "canary `{}` not seen in the last {} minutes",
                p.event_name, p.minutes
            )
        };
        let m = Measurement::value(count, "count", msg)
            .with_window(Duration::from_secs(u64::from(p.minutes) * 60));
        Ok(verdict(
            m,
            if count > 0.0 {
                ProbeStatus::Pass
            } else {
                ProbeStatus::Fail
            },
        ))
    }
}

// ------------------------------------------------------------------ W10 retention and currency

ga4_params! {
    /// Params of `ga4.data_retention_and_currency`.
    RetentionParams {
    /// The CRM's currency (ISO 4217, e.g. `EUR`): the property's must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_currency: Option<String>,
    /// The CRM's reporting time zone (IANA, e.g. `Europe/Paris`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_time_zone: Option<String>,
    }
}

struct Retention(RetentionParams, Client);

fn retention_months(v: &str) -> Option<f64> {
    Some(match v {
        "TWO_MONTHS" => 2.0,
        "FOURTEEN_MONTHS" => 14.0,
        "TWENTY_SIX_MONTHS" => 26.0,
        "THIRTY_EIGHT_MONTHS" => 38.0,
        "FIFTY_MONTHS" => 50.0,
        _ => return None,
    })
}

#[async_trait]
impl Probe for Retention {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let c = &self.1;
        let prop: Value = c.get(ctx, &c.property()).await?;
        let ret: Value = c
            .get(ctx, &format!("{}/dataRetentionSettings", c.property()))
            .await?;
        let raw = ret
            .get("eventDataRetention")
            .and_then(Value::as_str)
            .unwrap_or("");
        let months = retention_months(raw).ok_or_else(|| {
            ProbeError::permanent(format!("ga4: unknown eventDataRetention `{raw}`"))
        })?;
        let currency = prop
            .get("currencyCode")
            .and_then(Value::as_str)
            .unwrap_or("");
        let tz = prop.get("timeZone").and_then(Value::as_str).unwrap_or("");
        let mut warns = Vec::new();
        if months <= 2.0 {
            warns.push(
                "event data is kept 2 months (the default): too short for cohort and cac analysis"
                    .to_string(),
            );
        }
        if let Some(e) = &self.0.expected_currency
            && !e.eq_ignore_ascii_case(currency)
        {
            warns.push(format!("currency {currency} differs from the crm's {e}"));
        }
        if let Some(e) = &self.0.expected_time_zone
            && e != tz
        {
            warns.push(format!("time zone {tz} differs from the crm's {e}"));
        }
        let msg = if warns.is_empty() {
            format!("retention {months} months, currency {currency}, time zone {tz}")
        } else {
            warns.join("; ")
        };
        let m = Measurement::value(months, "months", msg)
            .with_evidence("event_data_retention", raw)
            .with_evidence("currency", currency)
            .with_evidence("time_zone", tz);
        Ok(verdict(
            m,
            if warns.is_empty() {
                ProbeStatus::Pass
            } else {
                ProbeStatus::Warn
            },
        ))
    }
}

// ------------------------------------------------------------------ factories

fn nonempty(key: &str, v: &[String]) -> Result<(), ProbeError> {
    if v.is_empty() || v.iter().any(|s| s.trim().is_empty()) {
        return Err(ProbeError::params(format!(
            "`{key}`: give at least one non-empty name"
        )));
    }
    Ok(())
}

/// Register the GA4 kinds.
pub fn register(r: &mut funnelgate_checker_sdk::ProbeRegistry) {
    r.register(
        TypedFactory::<PropertyStreamParams, _>::new(
            "ga4.property_and_stream",
            "the ga4 property exists and its web data streams cover the measurement ids the landing pages load (W1)",
            "count",
            |p: PropertyStreamParams| {
                let api = p.api()?;
                nonempty("measurement_ids", &p.measurement_ids)?;
                if let Some(bad) = p.measurement_ids.iter().find(|m| !m.starts_with("G-")) {
                    return Err(ProbeError::params(format!("`measurement_ids`: `{bad}` is not a G- measurement id")));
                }
                let c = Client::new(api);
                Ok(Arc::new(PropertyStream(p, c)) as Arc<dyn Probe>)
            },
        )
        .vendors(&["ga4"]),
    )
    .register(
        TypedFactory::<KeyEventsParams, _>::new(
            "ga4.key_events_configured",
            "the funnel's conversion events are ga4 key events (W2)",
            "count",
            |p: KeyEventsParams| {
                let api = p.api()?;
                nonempty("required_events", &p.required_events)?;
                let c = Client::new(api);
                Ok(Arc::new(KeyEventsConfigured(p, c)) as Arc<dyn Probe>)
            },
        )
        .vendors(&["ga4"]),
    )
    .register(
        TypedFactory::<FiringParams, _>::new(
            "ga4.key_events_firing",
            "each required key event fired in the window (data api runReport), with thresholding and quota flags (W3, W9)",
            "count",
            |p: FiringParams| {
                let api = p.api()?;
                nonempty("required_events", &p.required_events)?;
                let c = Client::new(api);
                Ok(Arc::new(Firing(p, c)) as Arc<dyn Probe>)
            },
        )
        .vendors(&["ga4"]),
    )
    .register(
        TypedFactory::<CanaryParams, _>::new(
            "ga4.realtime_canary",
            "a canary event is visible in ga4 realtime (runRealtimeReport) (W4)",
            "count",
            |p: CanaryParams| {
                let api = p.api()?;
                if p.event_name.trim().is_empty() {
                    return Err(ProbeError::params("`event_name`: must not be empty"));
                }
                if p.minutes > 59 {
                    return Err(ProbeError::params(format!("`minutes`: {} is above 59", p.minutes)));
                }
                let c = Client::new(api);
                Ok(Arc::new(Canary(p, c)) as Arc<dyn Probe>)
            },
        )
        .vendors(&["ga4"]),
    )
    .register(
        TypedFactory::<RetentionParams, _>::new(
            "ga4.data_retention_and_currency",
            "ga4 event data retention is long enough and currency and time zone match the crm (W10)",
            "months",
            |p: RetentionParams| {
                let api = p.api()?;
                let c = Client::new(api);
                Ok(Arc::new(Retention(p, c)) as Arc<dyn Probe>)
            },
        )
        .vendors(&["ga4"]),
    );
}
