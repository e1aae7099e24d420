//! Mailgun adapter: domain state and sending DNS records (E2, and the domain side of E3),
//! hard-bounce (E4) and complaint (E5) rates, and event webhooks (E9).
//!
//! Checked against Mailgun's official OpenAPI 3.1 document (mailgun/mailgun-mcp-server
//! `src/openapi.yaml`). No suppression-growth kind: that spec declares the bounce and complaint
//! list endpoints with required `term`/`address` filters and types `created_at` as an object, so
//! no request can both match the spec and list recent entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use funnelgate_checker_sdk::vendor_http::send_json;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeRegistry, TypedFactory};
use funnelgate_core::{Measurement, ProbeStatus};
use reqwest::Url;
use reqwest::header::ACCEPT;
use schemars::JsonSchema;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    Rate, ReadContract, bool_measurement, check_rate_thresholds, check_window_days,
    default_bounce_fail, default_bounce_warn, default_complaint_fail, default_complaint_warn,
    endpoint, parse_base_url, reencode, worse,
};

const VENDOR: &str = "mailgun";
const VENDORS: &[&str] = &["mailgun"];
/// The US API host; EU domains use `https://api.eu.mailgun.net`.
pub const DEFAULT_BASE_URL: &str = "https://api.mailgun.net";
const MAX_WINDOW_DAYS: u32 = 90;

// ---------------------------------------------------------------------------------------------
// What we read

/// `GET /v4/domains/{name}`.
pub const READS_DOMAIN: &[&str] = &[
    "domain.name",
    "domain.state",
    "domain.is_disabled",
    "domain.disabled.reason",
    "domain.disabled.note",
    "sending_dns_records[].record_type",
    "sending_dns_records[].name",
    "sending_dns_records[].valid",
];

/// `GET /v3/{domain}/stats/total`.
pub const READS_STATS: &[&str] = &[
    "stats[].accepted.outgoing",
    "stats[].delivered.total",
    "stats[].failed.permanent.bounce",
    "stats[].failed.permanent.delayed-bounce",
    "stats[].complained.total",
];

/// `GET /v3/domains/{domain}/webhooks`.
pub const READS_WEBHOOKS: &[&str] = &[
    "webhooks.delivered.urls[]",
    "webhooks.permanent_fail.urls[]",
    "webhooks.temporary_fail.urls[]",
    "webhooks.complained.urls[]",
    "webhooks.unsubscribed.urls[]",
];

/// Every Mailgun operation the adapter calls and what it reads from each.
pub const READ_CONTRACTS: &[ReadContract] = &[
    ReadContract {
        vendor: VENDOR,
        operation: "GET /v4/domains/{name}",
        fields: READS_DOMAIN,
        reencode: reencode::<DomainResponse>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "GET /v3/{domain}/stats/total",
        fields: READS_STATS,
        reencode: reencode::<StatsResponse>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "GET /v3/domains/{domain}/webhooks",
        fields: READS_WEBHOOKS,
        reencode: reencode::<WebhooksResponse>,
    },
];

#[derive(Debug, Deserialize, Serialize)]
struct DomainResponse {
    domain: Option<Domain>,
    #[serde(default)]
    sending_dns_records: Vec<Option<DnsRecord>>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Domain {
    name: Option<String>,
    state: Option<String>,
    #[serde(default)]
    is_disabled: bool,
    disabled: Option<Disabled>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Disabled {
    reason: Option<String>,
    note: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
struct DnsRecord {
    record_type: Option<String>,
    name: Option<String>,
    /// `valid`, `invalid` or `unknown` (a string in Mailgun's spec).
    valid: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
struct StatsResponse {
    #[serde(default)]
    stats: Vec<StatsItem>,
}

#[derive(Debug, Deserialize, Serialize)]
struct StatsItem {
    accepted: Option<Accepted>,
    delivered: Option<Total>,
    failed: Option<Failed>,
    complained: Option<Total>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Accepted {
    #[serde(default)]
    outgoing: u64,
}

#[derive(Debug, Deserialize, Serialize)]
struct Total {
    #[serde(default)]
    total: u64,
}

#[derive(Debug, Deserialize, Serialize)]
struct Failed {
    permanent: Option<Permanent>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Permanent {
    #[serde(default)]
    bounce: u64,
    #[serde(default, rename = "delayed-bounce")]
    delayed_bounce: u64,
}

#[derive(Debug, Deserialize, Serialize)]
struct WebhooksResponse {
    webhooks: Webhooks,
}

#[derive(Debug, Deserialize, Serialize)]
struct Webhooks {
    delivered: Option<WebhookUrls>,
    permanent_fail: Option<WebhookUrls>,
    temporary_fail: Option<WebhookUrls>,
    complained: Option<WebhookUrls>,
    unsubscribed: Option<WebhookUrls>,
}

#[derive(Debug, Deserialize, Serialize)]
struct WebhookUrls {
    #[serde(default)]
    urls: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Params

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}
fn default_window_days() -> u32 {
    7
}
fn default_required_events() -> Vec<MailgunEvent> {
    vec![MailgunEvent::PermanentFail, MailgunEvent::Complained]
}

/// Params of `mailgun.domain_verification`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainVerificationParams {
    /// The Mailgun sending domain, e.g. `mg.example.com`.
    pub domain: String,
    /// API base URL: `https://api.mailgun.net` (US) or `https://api.eu.mailgun.net` (EU). Plain
    /// http is accepted only for a loopback address.
    #[serde(default = "default_base_url")]
    pub base_url: String,
}

/// Params of `mailgun.bounce_rate`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BounceRateParams {
    /// The Mailgun sending domain, e.g. `mg.example.com`.
    pub domain: String,
    /// Look-back window in days, ending now (1–90).
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// WARN when hard bounces / accepted outgoing reaches this percentage (default 2, catalogue
    /// E4); null: never.
    #[serde(default = "default_bounce_warn")]
    pub warn_at_percent: Option<f64>,
    /// FAIL when hard bounces / accepted outgoing reaches this percentage (default 5, catalogue
    /// E4 and the SES review level); null: never.
    #[serde(default = "default_bounce_fail")]
    pub fail_at_percent: Option<f64>,
    /// API base URL: `https://api.mailgun.net` (US) or `https://api.eu.mailgun.net` (EU). Plain
    /// http is accepted only for a loopback address.
    #[serde(default = "default_base_url")]
    pub base_url: String,
}

/// Params of `mailgun.complaint_rate`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintRateParams {
    /// The Mailgun sending domain, e.g. `mg.example.com`.
    pub domain: String,
    /// Look-back window in days, ending now (1–90).
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// WARN when complaints / delivered reaches this percentage (default 0.1, Gmail/Yahoo sender
    /// guidelines); null: never.
    #[serde(default = "default_complaint_warn")]
    pub warn_at_percent: Option<f64>,
    /// FAIL when complaints / delivered reaches this percentage (default 0.3, Gmail/Yahoo sender
    /// guidelines); null: never.
    #[serde(default = "default_complaint_fail")]
    pub fail_at_percent: Option<f64>,
    /// API base URL: `https://api.mailgun.net` (US) or `https://api.eu.mailgun.net` (EU). Plain
    /// http is accepted only for a loopback address.
    #[serde(default = "default_base_url")]
    pub base_url: String,
}

/// A Mailgun webhook event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailgunEvent {
    /// A message was delivered.
    Delivered,
    /// A message bounced permanently (hard bounce, or dropped for a suppressed address).
    PermanentFail,
    /// A delivery attempt failed temporarily.
    TemporaryFail,
    /// A recipient marked a message as spam.
    Complained,
    /// A recipient unsubscribed.
    Unsubscribed,
}

impl MailgunEvent {
    fn name(self) -> &'static str {
        match self {
            MailgunEvent::Delivered => "delivered",
            MailgunEvent::PermanentFail => "permanent_fail",
            MailgunEvent::TemporaryFail => "temporary_fail",
            MailgunEvent::Complained => "complained",
            MailgunEvent::Unsubscribed => "unsubscribed",
        }
    }

    fn urls(self, w: &Webhooks) -> &[String] {
        let slot = match self {
            MailgunEvent::Delivered => &w.delivered,
            MailgunEvent::PermanentFail => &w.permanent_fail,
            MailgunEvent::TemporaryFail => &w.temporary_fail,
            MailgunEvent::Complained => &w.complained,
            MailgunEvent::Unsubscribed => &w.unsubscribed,
        };
        slot.as_ref().map(|u| u.urls.as_slice()).unwrap_or(&[])
    }
}

/// Params of `mailgun.webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhooksParams {
    /// The Mailgun sending domain, e.g. `mg.example.com`.
    pub domain: String,
    /// Events that must each have a webhook URL (default: permanent_fail and complained, what
    /// CRM and automation need to suppress contacts).
    #[serde(default = "default_required_events")]
    pub required_events: Vec<MailgunEvent>,
    /// Only URLs starting with this count, e.g. `https://hooks.example.com/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_prefix: Option<String>,
    /// API base URL: `https://api.mailgun.net` (US) or `https://api.eu.mailgun.net` (EU). Plain
    /// http is accepted only for a loopback address.
    #[serde(default = "default_base_url")]
    pub base_url: String,
}

// ---------------------------------------------------------------------------------------------
// Registration

/// Register the Mailgun kinds.
pub fn register(registry: &mut ProbeRegistry) {
    registry.register(TypedFactory::<DomainVerificationParams, _>::new(
            "mailgun.domain_verification",
            "mailgun considers the sending domain active, not disabled, with valid sending dns records",
            "bool",
            |p: DomainVerificationParams| {
                let api = Api::new("mailgun.domain_verification", &p.base_url, &p.domain)?;
                Ok(Arc::new(DomainVerification { api }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS));
    registry.register(
        TypedFactory::<BounceRateParams, _>::new(
            "mailgun.bounce_rate",
            "mailgun hard-bounce rate (permanent bounces / accepted outgoing) over a window",
            "percent",
            |p: BounceRateParams| {
                let kind = "mailgun.bounce_rate";
                let api = Api::new(kind, &p.base_url, &p.domain)?;
                check_window_days(kind, p.window_days, MAX_WINDOW_DAYS)?;
                check_rate_thresholds(kind, p.warn_at_percent, p.fail_at_percent)?;
                Ok(Arc::new(StatsRate {
                    api,
                    measure: Measure::Bounce,
                    window_days: p.window_days,
                    warn_at: p.warn_at_percent,
                    fail_at: p.fail_at_percent,
                }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS),
    );
    registry.register(
        TypedFactory::<ComplaintRateParams, _>::new(
            "mailgun.complaint_rate",
            "mailgun complaint rate (complained / delivered) over a window",
            "percent",
            |p: ComplaintRateParams| {
                let kind = "mailgun.complaint_rate";
                let api = Api::new(kind, &p.base_url, &p.domain)?;
                check_window_days(kind, p.window_days, MAX_WINDOW_DAYS)?;
                check_rate_thresholds(kind, p.warn_at_percent, p.fail_at_percent)?;
                Ok(Arc::new(StatsRate {
                    api,
                    measure: Measure::Complaint,
                    window_days: p.window_days,
                    warn_at: p.warn_at_percent,
                    fail_at: p.fail_at_percent,
                }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS),
    );
    registry.register(
        TypedFactory::<WebhooksParams, _>::new(
            "mailgun.webhooks",
            "the mailgun domain sends bounce and complaint events to webhooks",
            "count",
            |p: WebhooksParams| {
                let kind = "mailgun.webhooks";
                let api = Api::new(kind, &p.base_url, &p.domain)?;
                if p.required_events.is_empty() {
                    return Err(ProbeError::params(format!(
                        "params of `{kind}`: `required_events` must name at least one event"
                    )));
                }
                Ok(Arc::new(WebhooksProbe { api, params: p }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS),
    );
}

// ---------------------------------------------------------------------------------------------
// Calls

struct Api {
    base: Url,
    domain: String,
}

impl Api {
    fn new(kind: &str, base_url: &str, domain: &str) -> Result<Api, ProbeError> {
        let base = parse_base_url(kind, base_url)?;
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = !domain.is_empty()
            && domain.len() <= 253
            && domain
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
        if !valid {
            return Err(ProbeError::params(format!(
                "params of `{kind}`: `domain` must be a domain name like `mg.example.com`, got `{domain}`"
            )));
        }
        Ok(Api { base, domain })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        ctx: &ProbeContext,
        what: &str,
        url: Url,
    ) -> Result<T, ProbeError> {
        let key = ctx.secret()?;
        let req = ctx
            .http
            .get(url)
            .timeout(ctx.timeout())
            .header(ACCEPT, "application/json")
            .basic_auth("api", Some(key.expose_secret()));
        Ok(send_json::<T>(VENDOR, what, req).await?.body)
    }
}

// ---------------------------------------------------------------------------------------------
// mailgun.domain_verification

struct DomainVerification {
    api: Api,
}

#[async_trait]
impl Probe for DomainVerification {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let what = "GET /v4/domains/{name}";
        let url = endpoint(&self.api.base, &["v4", "domains", &self.api.domain]);
        let r: DomainResponse = self.api.get(ctx, what, url).await?;
        let d = r.domain.ok_or_else(|| {
            ProbeError::permanent(format!("{VENDOR}: {what}: the response has no `domain`"))
        })?;
        let name = d.name.clone().unwrap_or_else(|| self.api.domain.clone());
        let state = d.state.clone().unwrap_or_else(|| "unknown".into());
        let mut status = ProbeStatus::Pass;
        let mut notes = Vec::new();
        if d.is_disabled {
            status = ProbeStatus::Fail;
            let why = d
                .disabled
                .as_ref()
                .and_then(|x| x.reason.clone().or_else(|| x.note.clone()))
                .unwrap_or_else(|| "no reason given".into());
            notes.push(format!("disabled by mailgun: {why}"));
        }
        if state != "active" {
            status = ProbeStatus::Fail;
            notes.push(format!("state is {state}, not active"));
        }
        let mut evidence = BTreeMap::new();
        let mut bad = Vec::new();
        for rec in r.sending_dns_records.iter().flatten() {
            let rtype = rec.record_type.as_deref().unwrap_or("?");
            let rname = rec.name.as_deref().unwrap_or("?");
            let valid = rec.valid.as_deref().unwrap_or("unknown");
            evidence.insert(format!("record.{rtype}.{rname}"), valid.to_string());
            if valid != "valid" {
                bad.push(format!("{rtype} {rname} is {valid}"));
            }
        }
        if !bad.is_empty() {
            // Mailgun activates a domain once SPF and DKIM verify; anything else left invalid
            // (e.g. the tracking CNAME) degrades rather than blocks.
            status = worse(status, ProbeStatus::Warn);
            notes.push(format!("sending dns records not valid: {}", bad.join(", ")));
        }
        let ok = status != ProbeStatus::Fail;
        let message = if notes.is_empty() {
            format!("mailgun: {name} is active with every sending dns record valid")
        } else {
            format!("mailgun: {name}: {}", notes.join("; "))
        };
        let mut m = bool_measurement(ok, status, message);
        m.evidence = evidence;
        Ok(m.with_evidence("state", state)
            .with_evidence("is_disabled", d.is_disabled.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// mailgun.bounce_rate / mailgun.complaint_rate

#[derive(Clone, Copy)]
enum Measure {
    Bounce,
    Complaint,
}

struct StatsRate {
    api: Api,
    measure: Measure,
    window_days: u32,
    warn_at: Option<f64>,
    fail_at: Option<f64>,
}

#[async_trait]
impl Probe for StatsRate {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let what = "GET /v3/{domain}/stats/total";
        let mut url = endpoint(&self.api.base, &["v3", &self.api.domain, "stats", "total"]);
        {
            let mut q = url.query_pairs_mut();
            let events: &[&str] = match self.measure {
                Measure::Bounce => &["accepted", "failed"],
                Measure::Complaint => &["delivered", "complained"],
            };
            for e in events {
                q.append_pair("event", e);
            }
            q.append_pair("duration", &format!("{}d", self.window_days))
                .append_pair("resolution", "day");
        }
        let r: StatsResponse = self.api.get(ctx, what, url).await?;
        let (mut accepted, mut delivered, mut bounced, mut complained) = (0u64, 0u64, 0u64, 0u64);
        for s in &r.stats {
            accepted = accepted.saturating_add(s.accepted.as_ref().map_or(0, |a| a.outgoing));
            delivered = delivered.saturating_add(s.delivered.as_ref().map_or(0, |d| d.total));
            complained = complained.saturating_add(s.complained.as_ref().map_or(0, |c| c.total));
            if let Some(p) = s.failed.as_ref().and_then(|f| f.permanent.as_ref()) {
                bounced = bounced
                    .saturating_add(p.bounce)
                    .saturating_add(p.delayed_bounce);
            }
        }
        let rate = match self.measure {
            Measure::Bounce => Rate {
                what: "mailgun hard-bounce rate",
                numerator: bounced,
                numerator_label: "permanent_bounces",
                denominator: accepted,
                denominator_label: "accepted_outgoing",
                window_days: self.window_days,
                warn_at: self.warn_at,
                fail_at: self.fail_at,
            },
            Measure::Complaint => Rate {
                what: "mailgun complaint rate",
                numerator: complained,
                numerator_label: "complained",
                denominator: delivered,
                denominator_label: "delivered",
                window_days: self.window_days,
                warn_at: self.warn_at,
                fail_at: self.fail_at,
            },
        };
        Ok(rate
            .measure()
            .with_evidence("domain", self.api.domain.clone()))
    }
}

// ---------------------------------------------------------------------------------------------
// mailgun.webhooks

struct WebhooksProbe {
    api: Api,
    params: WebhooksParams,
}

#[async_trait]
impl Probe for WebhooksProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let what = "GET /v3/domains/{domain}/webhooks";
        let url = endpoint(
            &self.api.base,
            &["v3", "domains", &self.api.domain, "webhooks"],
        );
        let r: WebhooksResponse = self.api.get(ctx, what, url).await?;
        let mut evidence = BTreeMap::new();
        let mut missing = Vec::new();
        let mut covered = 0u64;
        for e in &self.params.required_events {
            let urls: Vec<&String> = e
                .urls(&r.webhooks)
                .iter()
                .filter(|u| {
                    self.params
                        .url_prefix
                        .as_deref()
                        .is_none_or(|p| u.starts_with(p))
                })
                .collect();
            evidence.insert(
                format!("event.{}", e.name()),
                if urls.is_empty() {
                    "no matching url".to_string()
                } else {
                    format!("{} url(s)", urls.len())
                },
            );
            if urls.is_empty() {
                missing.push(e.name());
            } else {
                covered += 1;
            }
        }
        let domain = &self.api.domain;
        let (status, message) = if missing.is_empty() {
            (
                ProbeStatus::Pass,
                format!(
                    "mailgun: {domain} sends {} events to webhooks",
                    self.params
                        .required_events
                        .iter()
                        .map(|e| e.name())
                        .collect::<Vec<_>>()
                        .join(" + ")
                ),
            )
        } else {
            let scope = if self.params.url_prefix.is_some() {
                " with a matching url"
            } else {
                ""
            };
            (
                ProbeStatus::Fail,
                format!(
                    "mailgun: {domain} has no webhook{scope} for {}",
                    missing.join(", ")
                ),
            )
        };
        let mut m = Measurement::value(covered as f64, "count", message);
        m.verdict = Some(status);
        m.evidence = evidence;
        Ok(m.with_sample(self.params.required_events.len() as u64))
    }
}
