//! ESP vendor adapters: what SendGrid, Mailgun, Amazon SES (v2) and Postmark themselves say about
//! a sender — domain authentication (E2), account standing (E3), bounce (E4) and complaint (E5)
//! rates, suppression growth (E6) and event webhooks (E9) of the probe catalogue.
//!
//! One probe kind per (vendor, measure), e.g. `sendgrid.bounce_rate`; a vendor whose API cannot
//! answer a measure has no such kind. Every vendor call goes through
//! [`funnelgate_checker_sdk::vendor_http`], so 401/403/404/429/5xx/timeouts and malformed or
//! truncated JSON map to the same specific errors everywhere.
//!
//! Each adapter publishes a [`ReadContract`] per vendor operation: the exact response fields it
//! reads. The crate's tests check those fields against the vendor's published API spec and
//! check that the decoding structs read exactly those fields, so the code cannot silently start
//! depending on a field the vendor never promised.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use funnelgate_checker_sdk::{ProbeError, ProbeRegistry};
use funnelgate_core::{Measurement, ProbeStatus, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod mailgun;
pub mod postmark;
pub mod sendgrid;
pub mod ses;

// Default rate thresholds shared by every vendor (percent; reached at equality). Sources in
// PROBES.md: bounces E4 (warn 2%, fail 5%: where SES reviews an account), complaints §5.1–5.2
// (Gmail and Yahoo: keep below 0.1%, never reach 0.3%).
pub(crate) fn default_bounce_warn() -> Option<f64> {
    Some(2.0)
}
pub(crate) fn default_bounce_fail() -> Option<f64> {
    Some(5.0)
}
pub(crate) fn default_complaint_warn() -> Option<f64> {
    Some(0.1)
}
pub(crate) fn default_complaint_fail() -> Option<f64> {
    Some(0.3)
}

/// Register every vendor probe kind of the esp checker.
pub fn register(registry: &mut ProbeRegistry) {
    sendgrid::register(registry);
    ses::register(registry);
    mailgun::register(registry);
    postmark::register(registry);
}

/// What an adapter reads from one vendor operation. Checked by the crate's contract tests against
/// the vendor's spec (every field must exist in the operation's response schema) and against the
/// decoding structs (they must read exactly these fields, no more and no fewer).
#[derive(Clone, Copy)]
pub struct ReadContract {
    /// Vendor name, e.g. `sendgrid`.
    pub vendor: &'static str,
    /// The operation as the spec names it: `METHOD /path/{template}` (botocore: `http.method` and
    /// `http.requestUri`).
    pub operation: &'static str,
    /// JSON paths of the response fields the adapter reads: `a.b` for object members, `[]` for
    /// array items, e.g. `[].stats[].metrics.bounces` or `Results[].Values[]`.
    pub fields: &'static [&'static str],
    /// Decode a response body with the adapter's own structs and encode it back: only the fields
    /// the adapter keeps survive, which is how the tests compare the structs with `fields`.
    pub reencode: fn(&serde_json::Value) -> Result<serde_json::Value, String>,
}

impl std::fmt::Debug for ReadContract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadContract")
            .field("vendor", &self.vendor)
            .field("operation", &self.operation)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

/// Every read contract of every adapter.
pub fn read_contracts() -> Vec<ReadContract> {
    let mut all = Vec::new();
    all.extend_from_slice(sendgrid::READ_CONTRACTS);
    all.extend_from_slice(ses::READ_CONTRACTS);
    all.extend_from_slice(mailgun::READ_CONTRACTS);
    all.extend_from_slice(postmark::READ_CONTRACTS);
    all
}

/// Decode with `T` and encode back (the [`ReadContract::reencode`] of a response struct).
pub(crate) fn reencode<T: DeserializeOwned + Serialize>(
    v: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// Parse and check a vendor base URL param: https, or plain http to a loopback address only
/// (a local test server or proxy), no credentials, query or fragment in it.
pub(crate) fn parse_base_url(kind: &str, raw: &str) -> Result<reqwest::Url, ProbeError> {
    let bad = |why: &str| ProbeError::params(format!("params of `{kind}`: `base_url` {why}"));
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| bad(&format!("is not a url: {e}")))?;
    let host = url.host_str().ok_or_else(|| bad("has no host"))?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(bad(
                "must use https (plain http is allowed only to a loopback address)",
            ));
        }
        other => return Err(bad(&format!("has unsupported scheme `{other}`"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials: name a `secret` instead"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(url)
}

/// `base` with `segments` appended as path segments (each percent-encoded as needed).
pub(crate) fn endpoint(base: &reqwest::Url, segments: &[&str]) -> reqwest::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// Check a rate probe's thresholds: percentages in 0..=100, warn not above fail.
pub(crate) fn check_rate_thresholds(
    kind: &str,
    warn_at: Option<f64>,
    fail_at: Option<f64>,
) -> Result<(), ProbeError> {
    for (name, v) in [("warn_at_percent", warn_at), ("fail_at_percent", fail_at)] {
        if let Some(v) = v
            && !(0.0..=100.0).contains(&v)
        {
            return Err(ProbeError::params(format!(
                "params of `{kind}`: `{name}` must be a percentage between 0 and 100, got {v}"
            )));
        }
    }
    if let (Some(w), Some(f)) = (warn_at, fail_at)
        && w > f
    {
        return Err(ProbeError::params(format!(
            "params of `{kind}`: `warn_at_percent` ({w}) must not be above `fail_at_percent` ({f})"
        )));
    }
    Ok(())
}

/// Check a look-back window in days.
pub(crate) fn check_window_days(kind: &str, days: u32, max: u32) -> Result<(), ProbeError> {
    if days == 0 || days > max {
        return Err(ProbeError::params(format!(
            "params of `{kind}`: `window_days` must be between 1 and {max}, got {days}"
        )));
    }
    Ok(())
}

/// A rate over a window: what is counted, out of what, and the thresholds (at or above).
pub(crate) struct Rate<'a> {
    /// e.g. "sendgrid hard-bounce rate"
    pub what: &'a str,
    pub numerator: u64,
    /// e.g. "bounces"
    pub numerator_label: &'a str,
    pub denominator: u64,
    /// e.g. "requests"
    pub denominator_label: &'a str,
    pub window_days: u32,
    pub warn_at: Option<f64>,
    pub fail_at: Option<f64>,
}

impl Rate<'_> {
    /// The measurement: NO_DATA when nothing was sent in the window, otherwise the rate in
    /// percent judged against the thresholds (reached means crossed), with sample size and window.
    pub fn measure(&self) -> Measurement {
        let window = Duration::from_secs(u64::from(self.window_days) * 86_400);
        let days = self.window_days;
        let base = |m: Measurement| {
            m.with_sample(self.denominator)
                .with_window(window)
                .with_evidence(self.numerator_label, self.numerator.to_string())
                .with_evidence(self.denominator_label, self.denominator.to_string())
        };
        if self.denominator == 0 {
            let mut m = base(Measurement::verdict(
                ProbeStatus::NoData,
                format!(
                    "{}: no {} in the last {days}d, nothing to judge",
                    self.what, self.denominator_label
                ),
            ));
            m.unit = "percent".into();
            return m;
        }
        let pct = self.numerator as f64 * 100.0 / self.denominator as f64;
        let (status, limit) = match (self.fail_at, self.warn_at) {
            (Some(f), _) if pct >= f => (
                ProbeStatus::Fail,
                format!(", at or above the fail threshold {f}%"),
            ),
            (_, Some(w)) if pct >= w => (
                ProbeStatus::Warn,
                format!(", at or above the warn threshold {w}%"),
            ),
            _ => (ProbeStatus::Pass, String::new()),
        };
        let mut m = base(Measurement::value(
            pct,
            "percent",
            format!(
                "{}: {pct:.3}% over the last {days}d ({} {} of {} {}){limit}",
                self.what,
                self.numerator,
                self.numerator_label,
                self.denominator,
                self.denominator_label
            ),
        ));
        m.verdict = Some(status);
        m
    }
}

/// A boolean measurement with its own verdict: value 1 when `ok`, else 0.
pub(crate) fn bool_measurement(ok: bool, status: ProbeStatus, message: String) -> Measurement {
    let mut m = Measurement::value(if ok { 1.0 } else { 0.0 }, "bool", message);
    m.verdict = Some(status);
    m
}

/// Now, as milliseconds since the Unix epoch.
pub(crate) fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// The UTC calendar date of `t` as `YYYY-MM-DD`.
pub(crate) fn utc_date(t: Timestamp) -> String {
    t.to_string().chars().take(10).collect()
}

/// The worse of two statuses (FAIL > WARN > PASS).
pub(crate) fn worse(a: ProbeStatus, b: ProbeStatus) -> ProbeStatus {
    let rank = |s: ProbeStatus| match s {
        ProbeStatus::Fail => 3,
        ProbeStatus::Warn => 2,
        ProbeStatus::Pass => 0,
        _ => 1,
    };
    if rank(b) > rank(a) { b } else { a }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base_url_requires_https_except_loopback() {
        assert!(parse_base_url("k", "https://api.sendgrid.com").is_ok());
        assert!(parse_base_url("k", "http://127.0.0.1:8080").is_ok());
        assert!(parse_base_url("k", "http://localhost:1").is_ok());
        assert!(parse_base_url("k", "http://[::1]:1").is_ok());
        let e = parse_base_url("k", "http://api.sendgrid.com").unwrap_err();
        assert!(e.message.contains("https"), "{e}");
        assert!(parse_base_url("k", "https://u:p@api.sendgrid.com").is_err());
        assert!(parse_base_url("k", "https://api.sendgrid.com/?x=1").is_err());
        assert!(parse_base_url("k", "ftp://api.sendgrid.com").is_err());
        assert!(parse_base_url("k", "not a url").is_err());
    }

    #[test]
    fn endpoint_appends_encoded_segments() {
        let base = parse_base_url("k", "https://h.example/prefix/").unwrap();
        let u = endpoint(&base, &["v2", "email", "identities", "a b@example.com"]);
        assert_eq!(
            u.as_str(),
            "https://h.example/prefix/v2/email/identities/a%20b@example.com"
        );
    }

    #[test]
    fn rate_thresholds_are_inclusive_and_empty_windows_are_no_data() {
        let r = |n, d| {
            Rate {
                what: "x",
                numerator: n,
                numerator_label: "bounces",
                denominator: d,
                denominator_label: "requests",
                window_days: 7,
                warn_at: Some(2.0),
                fail_at: Some(5.0),
            }
            .measure()
        };
        assert_eq!(r(1, 100).verdict, Some(ProbeStatus::Pass));
        assert_eq!(r(2, 100).verdict, Some(ProbeStatus::Warn));
        assert_eq!(r(5, 100).verdict, Some(ProbeStatus::Fail));
        let none = r(0, 0);
        assert_eq!(none.verdict, Some(ProbeStatus::NoData));
        assert_eq!(none.value, None);
        assert_eq!(none.sample_size, Some(0));
        let m = r(3, 200);
        assert_eq!(m.value, Some(1.5));
        assert_eq!(m.sample_size, Some(200));
        assert_eq!(m.window.map(|w| w.0), Some(Duration::from_secs(7 * 86_400)));
    }

    #[test]
    fn threshold_params_are_checked() {
        assert!(check_rate_thresholds("k", Some(2.0), Some(5.0)).is_ok());
        assert!(check_rate_thresholds("k", Some(6.0), Some(5.0)).is_err());
        assert!(check_rate_thresholds("k", Some(-1.0), None).is_err());
        assert!(check_rate_thresholds("k", None, Some(101.0)).is_err());
        assert!(check_window_days("k", 0, 30).is_err());
        assert!(check_window_days("k", 31, 30).is_err());
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc_date(Timestamp::from_millis(0)), "1970-01-01");
        assert_eq!(
            utc_date(Timestamp::from_millis(1_700_000_000_000)),
            "2023-11-14"
        );
    }
}
