//! SendGrid (Twilio) v3 adapter: domain authentication (E2), hard-bounce rate (E4), spam-complaint
//! rate (E5), suppression growth (E6) and the event webhook (E9).
//!
//! Endpoints and fields were checked against twilio/sendgrid-oai (`tsg_domain_authentication_v3`,
//! `tsg_stats_v3`, `tsg_suppressions_v3`, `tsg_webhooks_v3`). SendGrid has no account-standing
//! kind: the stored specs publish no account status endpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use funnelgate_checker_sdk::vendor_http::{bearer, send_json};
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeRegistry, TypedFactory};
use funnelgate_core::{Measurement, ProbeStatus};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Method, RequestBuilder, Url};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    Rate, ReadContract, bool_measurement, check_rate_thresholds, check_window_days,
    default_bounce_fail, default_bounce_warn, default_complaint_fail, default_complaint_warn,
    endpoint, now, parse_base_url, reencode, utc_date,
};

const VENDOR: &str = "sendgrid";
const VENDORS: &[&str] = &["sendgrid"];
/// The global API host; EU regional subusers use `https://api.eu.sendgrid.com`.
pub const DEFAULT_BASE_URL: &str = "https://api.sendgrid.com";
/// `GET /v3/stats` accepts any start date; a longer window than this says little about now.
const MAX_WINDOW_DAYS: u32 = 90;
/// Page size for `GET /v3/whitelabel/domains`.
const DOMAIN_PAGE: usize = 100;
/// Page size for the suppression lists (the spec's maximum).
const SUPPRESSION_PAGE: usize = 500;
/// Stop paging after this many pages and report a lower bound.
const MAX_PAGES: usize = 20;
/// At most this many `validate` calls per run.
const MAX_VALIDATIONS: usize = 10;

// ---------------------------------------------------------------------------------------------
// What we read (the contract the tests check against the spec)

/// `GET /v3/whitelabel/domains`.
pub const READS_DOMAINS: &[&str] = &[
    "[].id",
    "[].domain",
    "[].subdomain",
    "[].valid",
    "[].default",
    "[].dns.mail_cname.valid",
    "[].dns.mail_cname.host",
    "[].dns.dkim1.valid",
    "[].dns.dkim1.host",
    "[].dns.dkim2.valid",
    "[].dns.dkim2.host",
];

/// `POST /v3/whitelabel/domains/{id}/validate`.
pub const READS_VALIDATE: &[&str] = &[
    "valid",
    "validation_results.mail_cname.valid",
    "validation_results.mail_cname.reason",
    "validation_results.dkim1.valid",
    "validation_results.dkim1.reason",
    "validation_results.dkim2.valid",
    "validation_results.dkim2.reason",
    "validation_results.spf.valid",
    "validation_results.spf.reason",
];

/// `GET /v3/stats`.
pub const READS_STATS: &[&str] = &[
    "[].date",
    "[].stats[].metrics.requests",
    "[].stats[].metrics.delivered",
    "[].stats[].metrics.bounces",
    "[].stats[].metrics.spam_reports",
];

/// `GET /v3/suppression/bounces` and `GET /v3/suppression/spam_reports`.
pub const READS_SUPPRESSIONS: &[&str] = &["[].created"];

/// `GET /v3/user/webhooks/event/settings/all`.
pub const READS_WEBHOOKS: &[&str] = &[
    "webhooks[].id",
    "webhooks[].friendly_name",
    "webhooks[].enabled",
    "webhooks[].url",
    "webhooks[].public_key",
    "webhooks[].bounce",
    "webhooks[].spam_report",
    "webhooks[].dropped",
    "webhooks[].deferred",
    "webhooks[].delivered",
    "webhooks[].unsubscribe",
    "webhooks[].group_unsubscribe",
];

/// Every SendGrid operation the adapter calls and what it reads from each.
pub const READ_CONTRACTS: &[ReadContract] = &[
    ReadContract {
        vendor: VENDOR,
        operation: "GET /v3/whitelabel/domains",
        fields: READS_DOMAINS,
        reencode: reencode::<Vec<AuthenticatedDomain>>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "POST /v3/whitelabel/domains/{id}/validate",
        fields: READS_VALIDATE,
        reencode: reencode::<Validation>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "GET /v3/stats",
        fields: READS_STATS,
        reencode: reencode::<Vec<StatsDay>>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "GET /v3/suppression/bounces",
        fields: READS_SUPPRESSIONS,
        reencode: reencode::<Vec<Suppression>>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "GET /v3/suppression/spam_reports",
        fields: READS_SUPPRESSIONS,
        reencode: reencode::<Vec<Suppression>>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "GET /v3/user/webhooks/event/settings/all",
        fields: READS_WEBHOOKS,
        reencode: reencode::<WebhookList>,
    },
];

// Response structs: exactly the fields above (the contract tests enforce it).

#[derive(Debug, Deserialize, Serialize)]
struct AuthenticatedDomain {
    id: u64,
    domain: String,
    subdomain: Option<String>,
    valid: bool,
    #[serde(default)]
    default: Option<bool>,
    dns: Option<DomainDns>,
}

#[derive(Debug, Deserialize, Serialize)]
struct DomainDns {
    mail_cname: Option<DnsRecord>,
    dkim1: Option<DnsRecord>,
    dkim2: Option<DnsRecord>,
}

#[derive(Debug, Deserialize, Serialize)]
struct DnsRecord {
    valid: bool,
    host: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Validation {
    valid: bool,
    validation_results: Option<ValidationResults>,
}

#[derive(Debug, Deserialize, Serialize)]
struct ValidationResults {
    mail_cname: Option<RecordCheck>,
    dkim1: Option<RecordCheck>,
    dkim2: Option<RecordCheck>,
    spf: Option<RecordCheck>,
}

#[derive(Debug, Deserialize, Serialize)]
struct RecordCheck {
    valid: bool,
    reason: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
struct StatsDay {
    date: String,
    stats: Vec<StatsEntry>,
}

#[derive(Debug, Deserialize, Serialize)]
struct StatsEntry {
    metrics: Option<Metrics>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct Metrics {
    #[serde(default)]
    requests: u64,
    #[serde(default)]
    delivered: u64,
    #[serde(default)]
    bounces: u64,
    #[serde(default)]
    spam_reports: u64,
}

#[derive(Debug, Deserialize, Serialize)]
struct Suppression {
    created: Option<f64>,
}

#[derive(Debug, Deserialize, Serialize)]
struct WebhookList {
    #[serde(default)]
    webhooks: Vec<Webhook>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Webhook {
    id: Option<String>,
    friendly_name: Option<String>,
    #[serde(default)]
    enabled: bool,
    url: Option<String>,
    public_key: Option<String>,
    #[serde(default)]
    bounce: bool,
    #[serde(default)]
    spam_report: bool,
    #[serde(default)]
    dropped: bool,
    #[serde(default)]
    deferred: bool,
    #[serde(default)]
    delivered: bool,
    #[serde(default)]
    unsubscribe: bool,
    #[serde(default)]
    group_unsubscribe: bool,
}

// ---------------------------------------------------------------------------------------------
// Params

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}
fn default_true() -> bool {
    true
}
fn default_window_days() -> u32 {
    7
}
fn default_growth_warn() -> Option<f64> {
    Some(1.0)
}
fn default_required_events() -> Vec<SendgridEvent> {
    vec![SendgridEvent::Bounce, SendgridEvent::SpamReport]
}

/// Params of `sendgrid.domain_authentication`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainAuthenticationParams {
    /// The sending domain to check, e.g. `example.com` (SendGrid's `domain` field; a domain
    /// authenticated under several subdomains must be valid under each). Unset: every
    /// authenticated domain of the account must be valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// When SendGrid lists a domain as invalid, ask it to re-check the DNS records now
    /// (`POST /v3/whitelabel/domains/{id}/validate`) and report why each record fails.
    #[serde(default = "default_true")]
    pub validate: bool,
    /// API base URL: `https://api.sendgrid.com` (global) or `https://api.eu.sendgrid.com` (EU
    /// regional subusers). Plain http is accepted only for a loopback address.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Make the calls for this subuser (SendGrid's `on-behalf-of` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
}

/// Params of `sendgrid.bounce_rate`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BounceRateParams {
    /// Look-back window in whole UTC days, today included (1–90).
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// WARN when bounces / requests reaches this percentage (default 2, catalogue E4); null: never.
    #[serde(default = "default_bounce_warn")]
    pub warn_at_percent: Option<f64>,
    /// FAIL when bounces / requests reaches this percentage (default 5, catalogue E4 and the SES
    /// review level); null: never.
    #[serde(default = "default_bounce_fail")]
    pub fail_at_percent: Option<f64>,
    /// API base URL: `https://api.sendgrid.com` (global) or `https://api.eu.sendgrid.com` (EU
    /// regional subusers). Plain http is accepted only for a loopback address.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Make the calls for this subuser (SendGrid's `on-behalf-of` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
}

/// Params of `sendgrid.complaint_rate`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintRateParams {
    /// Look-back window in whole UTC days, today included (1–90).
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// WARN when spam reports / delivered reaches this percentage (default 0.1, Gmail/Yahoo
    /// sender guidelines); null: never.
    #[serde(default = "default_complaint_warn")]
    pub warn_at_percent: Option<f64>,
    /// FAIL when spam reports / delivered reaches this percentage (default 0.3, Gmail/Yahoo
    /// sender guidelines); null: never.
    #[serde(default = "default_complaint_fail")]
    pub fail_at_percent: Option<f64>,
    /// API base URL: `https://api.sendgrid.com` (global) or `https://api.eu.sendgrid.com` (EU
    /// regional subusers). Plain http is accepted only for a loopback address.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Make the calls for this subuser (SendGrid's `on-behalf-of` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
}

/// Params of `sendgrid.suppression_growth`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionGrowthParams {
    /// Look-back window in days (1–90).
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// WARN when new bounce + spam-report suppressions / requests reaches this percentage
    /// (default 1, a catalogue heuristic); null: never.
    #[serde(default = "default_growth_warn")]
    pub warn_at_percent: Option<f64>,
    /// FAIL when new suppressions / requests reaches this percentage (default: never).
    #[serde(default)]
    pub fail_at_percent: Option<f64>,
    /// API base URL: `https://api.sendgrid.com` (global) or `https://api.eu.sendgrid.com` (EU
    /// regional subusers). Plain http is accepted only for a loopback address.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Make the calls for this subuser (SendGrid's `on-behalf-of` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
}

/// An Event Webhook event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SendgridEvent {
    /// A receiving server rejected the message permanently.
    Bounce,
    /// A recipient marked the message as spam.
    SpamReport,
    /// SendGrid dropped the message (suppressed address, invalid recipient).
    Dropped,
    /// A receiving server deferred the message temporarily.
    Deferred,
    /// The message was accepted by the receiving server.
    Delivered,
    /// A recipient unsubscribed from all mail.
    Unsubscribe,
    /// A recipient unsubscribed from one suppression group.
    GroupUnsubscribe,
}

impl SendgridEvent {
    fn name(self) -> &'static str {
        match self {
            SendgridEvent::Bounce => "bounce",
            SendgridEvent::SpamReport => "spam_report",
            SendgridEvent::Dropped => "dropped",
            SendgridEvent::Deferred => "deferred",
            SendgridEvent::Delivered => "delivered",
            SendgridEvent::Unsubscribe => "unsubscribe",
            SendgridEvent::GroupUnsubscribe => "group_unsubscribe",
        }
    }

    fn sent_by(self, w: &Webhook) -> bool {
        match self {
            SendgridEvent::Bounce => w.bounce,
            SendgridEvent::SpamReport => w.spam_report,
            SendgridEvent::Dropped => w.dropped,
            SendgridEvent::Deferred => w.deferred,
            SendgridEvent::Delivered => w.delivered,
            SendgridEvent::Unsubscribe => w.unsubscribe,
            SendgridEvent::GroupUnsubscribe => w.group_unsubscribe,
        }
    }
}

/// Params of `sendgrid.event_webhook`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventWebhookParams {
    /// Events one enabled webhook must send (default: bounce and spam_report, what CRM and
    /// automation need to suppress contacts).
    #[serde(default = "default_required_events")]
    pub required_events: Vec<SendgridEvent>,
    /// Only webhooks whose URL starts with this count, e.g. `https://hooks.example.com/` (so the
    /// events reach your systems, not a forgotten test endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_prefix: Option<String>,
    /// FAIL unless a qualifying webhook has signature verification on.
    #[serde(default)]
    pub require_signed: bool,
    /// API base URL: `https://api.sendgrid.com` (global) or `https://api.eu.sendgrid.com` (EU
    /// regional subusers). Plain http is accepted only for a loopback address.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Make the calls for this subuser (SendGrid's `on-behalf-of` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Registration

/// Register the SendGrid kinds.
pub fn register(registry: &mut ProbeRegistry) {
    registry.register(TypedFactory::<DomainAuthenticationParams, _>::new(
            "sendgrid.domain_authentication",
            "sendgrid considers the sending domain authenticated (mail cname and dkim records valid)",
            "bool",
            |p: DomainAuthenticationParams| {
                let kind = "sendgrid.domain_authentication";
                let api = Api::new(kind, &p.base_url, p.on_behalf_of.clone())?;
                if p.domain.as_deref().is_some_and(|d| d.trim().is_empty()) {
                    return Err(ProbeError::params(format!("params of `{kind}`: `domain` is empty")));
                }
                let wanted = p.domain.as_deref().map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase());
                Ok(Arc::new(DomainAuthentication { api, params: p, wanted }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS));
    registry.register(
        TypedFactory::<BounceRateParams, _>::new(
            "sendgrid.bounce_rate",
            "sendgrid hard-bounce rate (bounces / requests) over a window",
            "percent",
            |p: BounceRateParams| {
                let kind = "sendgrid.bounce_rate";
                let api = Api::new(kind, &p.base_url, p.on_behalf_of.clone())?;
                check_window_days(kind, p.window_days, MAX_WINDOW_DAYS)?;
                check_rate_thresholds(kind, p.warn_at_percent, p.fail_at_percent)?;
                Ok(Arc::new(StatsRate {
                    api,
                    measure: StatsMeasure::Bounce,
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
            "sendgrid.complaint_rate",
            "sendgrid spam-complaint rate (spam reports / delivered) over a window",
            "percent",
            |p: ComplaintRateParams| {
                let kind = "sendgrid.complaint_rate";
                let api = Api::new(kind, &p.base_url, p.on_behalf_of.clone())?;
                check_window_days(kind, p.window_days, MAX_WINDOW_DAYS)?;
                check_rate_thresholds(kind, p.warn_at_percent, p.fail_at_percent)?;
                Ok(Arc::new(StatsRate {
                    api,
                    measure: StatsMeasure::Complaint,
                    window_days: p.window_days,
                    warn_at: p.warn_at_percent,
                    fail_at: p.fail_at_percent,
                }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS),
    );
    registry.register(
        TypedFactory::<SuppressionGrowthParams, _>::new(
            "sendgrid.suppression_growth",
            "new bounce and spam-report suppressions as a share of requests over a window",
            "percent",
            |p: SuppressionGrowthParams| {
                let kind = "sendgrid.suppression_growth";
                let api = Api::new(kind, &p.base_url, p.on_behalf_of.clone())?;
                check_window_days(kind, p.window_days, MAX_WINDOW_DAYS)?;
                check_rate_thresholds(kind, p.warn_at_percent, p.fail_at_percent)?;
                Ok(Arc::new(SuppressionGrowth {
                    api,
                    window_days: p.window_days,
                    warn_at: p.warn_at_percent,
                    fail_at: p.fail_at_percent,
                }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS),
    );
    registry.register(
        TypedFactory::<EventWebhookParams, _>::new(
            "sendgrid.event_webhook",
            "an enabled sendgrid event webhook sends bounce and spam-report events to your systems",
            "count",
            |p: EventWebhookParams| {
                let kind = "sendgrid.event_webhook";
                let api = Api::new(kind, &p.base_url, p.on_behalf_of.clone())?;
                if p.required_events.is_empty() {
                    return Err(ProbeError::params(format!(
                        "params of `{kind}`: `required_events` must name at least one event"
                    )));
                }
                Ok(Arc::new(EventWebhook { api, params: p }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS),
    );
}

// ---------------------------------------------------------------------------------------------
// Calls

/// The connection part every SendGrid probe shares.
struct Api {
    base: Url,
    on_behalf_of: Option<HeaderValue>,
}

impl Api {
    fn new(kind: &str, base_url: &str, on_behalf_of: Option<String>) -> Result<Api, ProbeError> {
        let base = parse_base_url(kind, base_url)?;
        let on_behalf_of = match on_behalf_of {
            None => None,
            Some(s) if s.trim().is_empty() => {
                return Err(ProbeError::params(format!("params of `{kind}`: `on_behalf_of` is empty")));
            }
            Some(s) => Some(HeaderValue::from_str(s.trim()).map_err(|_| {
                ProbeError::params(format!(
                    "params of `{kind}`: `on_behalf_of` has characters not allowed in an http header"
                ))
            })?),
        };
        Ok(Api { base, on_behalf_of })
    }

    fn request(
        &self,
        ctx: &ProbeContext,
        method: Method,
        url: Url,
    ) -> Result<RequestBuilder, ProbeError> {
        let key = ctx.secret()?;
        let mut req = ctx
            .http
            .request(method, url)
            .timeout(ctx.timeout())
            .header(AUTHORIZATION, bearer(&key)?)
            .header(ACCEPT, "application/json");
        if let Some(v) = &self.on_behalf_of {
            req = req.header("on-behalf-of", v.clone());
        }
        Ok(req)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        ctx: &ProbeContext,
        method: Method,
        what: &str,
        url: Url,
    ) -> Result<T, ProbeError> {
        let req = self.request(ctx, method, url)?;
        Ok(send_json::<T>(VENDOR, what, req).await?.body)
    }

    /// Totals of `GET /v3/stats` over the last `days` UTC days (today included).
    async fn stats(&self, ctx: &ProbeContext, days: u32) -> Result<Metrics, ProbeError> {
        let today = now();
        let start = today.sub(std::time::Duration::from_secs(
            u64::from(days.saturating_sub(1)) * 86_400,
        ));
        let mut url = endpoint(&self.base, &["v3", "stats"]);
        url.query_pairs_mut()
            .append_pair("start_date", &utc_date(start))
            .append_pair("end_date", &utc_date(today))
            .append_pair("aggregated_by", "day");
        let days: Vec<StatsDay> = self.call(ctx, Method::GET, "GET /v3/stats", url).await?;
        let mut total = Metrics::default();
        for m in days
            .iter()
            .flat_map(|d| d.stats.iter())
            .filter_map(|s| s.metrics.as_ref())
        {
            total.requests = total.requests.saturating_add(m.requests);
            total.delivered = total.delivered.saturating_add(m.delivered);
            total.bounces = total.bounces.saturating_add(m.bounces);
            total.spam_reports = total.spam_reports.saturating_add(m.spam_reports);
        }
        Ok(total)
    }
}

// ---------------------------------------------------------------------------------------------
// sendgrid.domain_authentication

struct DomainAuthentication {
    api: Api,
    params: DomainAuthenticationParams,
    /// The domain param, trimmed and lower-cased.
    wanted: Option<String>,
}

impl DomainAuthentication {
    async fn list(&self, ctx: &ProbeContext) -> Result<Vec<AuthenticatedDomain>, ProbeError> {
        let mut all = Vec::new();
        for page in 0..MAX_PAGES {
            let mut url = endpoint(&self.api.base, &["v3", "whitelabel", "domains"]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("limit", &DOMAIN_PAGE.to_string())
                    .append_pair("offset", &(page * DOMAIN_PAGE).to_string());
                if let Some(d) = &self.wanted {
                    q.append_pair("domain", d);
                }
            }
            let batch: Vec<AuthenticatedDomain> = self
                .api
                .call(ctx, Method::GET, "GET /v3/whitelabel/domains", url)
                .await?;
            let n = batch.len();
            all.extend(batch);
            if n < DOMAIN_PAGE {
                break;
            }
        }
        Ok(all)
    }
}

/// Names of the records SendGrid lists as invalid.
fn invalid_records(d: &AuthenticatedDomain) -> Vec<String> {
    let Some(dns) = &d.dns else { return Vec::new() };
    [
        ("mail_cname", &dns.mail_cname),
        ("dkim1", &dns.dkim1),
        ("dkim2", &dns.dkim2),
    ]
    .into_iter()
    .filter_map(|(name, r)| match r {
        Some(r) if !r.valid => Some(match &r.host {
            Some(h) => format!("{name} ({h})"),
            None => name.to_string(),
        }),
        _ => None,
    })
    .collect()
}

fn validation_failures(v: &Validation) -> Vec<String> {
    let Some(r) = &v.validation_results else {
        return Vec::new();
    };
    [
        ("mail_cname", &r.mail_cname),
        ("dkim1", &r.dkim1),
        ("dkim2", &r.dkim2),
        ("spf", &r.spf),
    ]
    .into_iter()
    .filter_map(|(name, c)| match c {
        Some(c) if !c.valid => Some(match c.reason.as_deref().filter(|s| !s.is_empty()) {
            Some(reason) => format!("{name}: {reason}"),
            None => name.to_string(),
        }),
        _ => None,
    })
    .collect()
}

fn full_name(d: &AuthenticatedDomain) -> String {
    match d.subdomain.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => format!("{s}.{}", d.domain),
        None => d.domain.clone(),
    }
}

#[async_trait]
impl Probe for DomainAuthentication {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let listed = self.list(ctx).await?;
        let wanted = &self.wanted;
        let domains: Vec<&AuthenticatedDomain> = listed
            .iter()
            .filter(|d| {
                wanted
                    .as_deref()
                    .is_none_or(|w| d.domain.eq_ignore_ascii_case(w))
            })
            .collect();
        if domains.is_empty() {
            let msg = match &wanted {
                Some(w) => format!(
                    "sendgrid: {w} is not an authenticated domain in this account ({} other domain(s) listed)",
                    listed.len()
                ),
                None => "sendgrid: the account has no authenticated domain: mail goes out under sendgrid's \
                         domain, unaligned with yours for dmarc"
                    .to_string(),
            };
            return Ok(bool_measurement(false, ProbeStatus::Fail, msg)
                .with_evidence("domains_listed", listed.len().to_string()));
        }
        let mut evidence = BTreeMap::new();
        let mut failures = Vec::new();
        let mut validations = 0;
        for d in &domains {
            let name = full_name(d);
            let key = format!("domain.{name}");
            let default = if d.default == Some(true) {
                ", default"
            } else {
                ""
            };
            if d.valid {
                evidence.insert(key, format!("valid (id {}{default})", d.id));
                continue;
            }
            let mut why = invalid_records(d);
            if self.params.validate && validations < MAX_VALIDATIONS {
                validations += 1;
                let id = d.id.to_string();
                let url = endpoint(
                    &self.api.base,
                    &["v3", "whitelabel", "domains", &id, "validate"],
                );
                let v: Validation = self
                    .api
                    .call(
                        ctx,
                        Method::POST,
                        "POST /v3/whitelabel/domains/{id}/validate",
                        url,
                    )
                    .await?;
                if v.valid {
                    evidence.insert(key, format!("valid after re-validation (id {})", d.id));
                    continue;
                }
                let reasons = validation_failures(&v);
                if !reasons.is_empty() {
                    why = reasons;
                }
            }
            let why = if why.is_empty() {
                "no record detail given".to_string()
            } else {
                why.join("; ")
            };
            evidence.insert(key, format!("invalid (id {}): {why}", d.id));
            failures.push(format!("{name}: {why}"));
        }
        let ok = failures.is_empty();
        let names: Vec<String> = domains.iter().map(|d| full_name(d)).collect();
        let (status, message) = if ok {
            (
                ProbeStatus::Pass,
                format!("sendgrid: authenticated and valid: {}", names.join(", ")),
            )
        } else {
            (
                ProbeStatus::Fail,
                format!(
                    "sendgrid: domain authentication failing for {}",
                    failures.join(" | ")
                ),
            )
        };
        let mut m = bool_measurement(ok, status, message);
        m.evidence = evidence;
        Ok(m.with_sample(domains.len() as u64))
    }
}

// ---------------------------------------------------------------------------------------------
// sendgrid.bounce_rate / sendgrid.complaint_rate

#[derive(Clone, Copy)]
enum StatsMeasure {
    Bounce,
    Complaint,
}

struct StatsRate {
    api: Api,
    measure: StatsMeasure,
    window_days: u32,
    warn_at: Option<f64>,
    fail_at: Option<f64>,
}

#[async_trait]
impl Probe for StatsRate {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let t = self.api.stats(ctx, self.window_days).await?;
        let rate = match self.measure {
            StatsMeasure::Bounce => Rate {
                what: "sendgrid hard-bounce rate",
                numerator: t.bounces,
                numerator_label: "bounces",
                denominator: t.requests,
                denominator_label: "requests",
                window_days: self.window_days,
                warn_at: self.warn_at,
                fail_at: self.fail_at,
            },
            StatsMeasure::Complaint => Rate {
                what: "sendgrid spam-complaint rate",
                numerator: t.spam_reports,
                numerator_label: "spam_reports",
                denominator: t.delivered,
                denominator_label: "delivered",
                window_days: self.window_days,
                warn_at: self.warn_at,
                fail_at: self.fail_at,
            },
        };
        Ok(rate.measure())
    }
}

// ---------------------------------------------------------------------------------------------
// sendgrid.suppression_growth

struct SuppressionGrowth {
    api: Api,
    window_days: u32,
    warn_at: Option<f64>,
    fail_at: Option<f64>,
}

impl SuppressionGrowth {
    /// Entries of one suppression list created in `[start, end]` (unix seconds), and whether
    /// paging stopped early (then the count is a lower bound).
    async fn count(
        &self,
        ctx: &ProbeContext,
        list: &str,
        what: &str,
        start: i64,
        end: i64,
    ) -> Result<(u64, bool), ProbeError> {
        let mut n = 0u64;
        for page in 0..MAX_PAGES {
            let mut url = endpoint(&self.api.base, &["v3", "suppression", list]);
            url.query_pairs_mut()
                .append_pair("start_time", &start.to_string())
                .append_pair("end_time", &end.to_string())
                .append_pair("limit", &SUPPRESSION_PAGE.to_string())
                .append_pair("offset", &(page * SUPPRESSION_PAGE).to_string());
            let batch: Vec<Suppression> = self.api.call(ctx, Method::GET, what, url).await?;
            let in_window = batch
                .iter()
                .filter(|s| {
                    s.created
                        .is_none_or(|c| c >= start as f64 && c <= end as f64)
                })
                .count();
            n = n.saturating_add(in_window as u64);
            if batch.len() < SUPPRESSION_PAGE {
                return Ok((n, false));
            }
        }
        Ok((n, true))
    }
}

#[async_trait]
impl Probe for SuppressionGrowth {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let end = now().as_millis() / 1000;
        let start = end - i64::from(self.window_days) * 86_400;
        let (bounces, capped_b) = self
            .count(ctx, "bounces", "GET /v3/suppression/bounces", start, end)
            .await?;
        let (spam, capped_s) = self
            .count(
                ctx,
                "spam_reports",
                "GET /v3/suppression/spam_reports",
                start,
                end,
            )
            .await?;
        let t = self.api.stats(ctx, self.window_days).await?;
        let m = Rate {
            what: "sendgrid suppression growth",
            numerator: bounces.saturating_add(spam),
            numerator_label: "new_suppressions",
            denominator: t.requests,
            denominator_label: "requests",
            window_days: self.window_days,
            warn_at: self.warn_at,
            fail_at: self.fail_at,
        }
        .measure()
        .with_evidence("new_bounce_suppressions", bounces.to_string())
        .with_evidence("new_spam_report_suppressions", spam.to_string());
        Ok(if capped_b || capped_s {
            m.with_evidence(
                "note",
                format!(
                    "more than {} entries in a list: counts are lower bounds",
                    MAX_PAGES * SUPPRESSION_PAGE
                ),
            )
        } else {
            m
        })
    }
}

// ---------------------------------------------------------------------------------------------
// sendgrid.event_webhook

struct EventWebhook {
    api: Api,
    params: EventWebhookParams,
}

fn webhook_name(w: &Webhook) -> String {
    w.friendly_name
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| w.id.clone())
        .or_else(|| w.url.clone())
        .unwrap_or_else(|| "(unnamed)".into())
}

#[async_trait]
impl Probe for EventWebhook {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let url = endpoint(
            &self.api.base,
            &["v3", "user", "webhooks", "event", "settings", "all"],
        );
        let list: WebhookList = self
            .api
            .call(
                ctx,
                Method::GET,
                "GET /v3/user/webhooks/event/settings/all",
                url,
            )
            .await?;
        let required = &self.params.required_events;
        let mut evidence = BTreeMap::new();
        let mut qualifying = 0u64;
        let mut signed = 0u64;
        let mut gaps = Vec::new();
        for w in &list.webhooks {
            let name = webhook_name(w);
            let url_ok = match (&self.params.url_prefix, &w.url) {
                (None, _) => true,
                (Some(p), Some(u)) => u.starts_with(p.as_str()),
                (Some(_), None) => false,
            };
            let missing: Vec<&str> = required
                .iter()
                .filter(|e| !e.sent_by(w))
                .map(|e| e.name())
                .collect();
            let is_signed = w.public_key.as_deref().is_some_and(|k| !k.is_empty());
            let state = if !w.enabled {
                "disabled".to_string()
            } else if !url_ok {
                "url does not match url_prefix".to_string()
            } else if !missing.is_empty() {
                format!("missing events: {}", missing.join(", "))
            } else {
                qualifying += 1;
                if is_signed {
                    signed += 1;
                }
                format!("ok{}", if is_signed { ", signed" } else { ", unsigned" })
            };
            if state.starts_with("missing") || state.starts_with("url") {
                gaps.push(format!("{name}: {state}"));
            }
            evidence.insert(format!("webhook.{name}"), state);
        }
        let events: Vec<&str> = required.iter().map(|e| e.name()).collect();
        let (status, message) = if qualifying == 0 {
            let detail = if list.webhooks.is_empty() {
                "no event webhook is configured".to_string()
            } else if gaps.is_empty() {
                "every event webhook is disabled".to_string()
            } else {
                gaps.join("; ")
            };
            (
                ProbeStatus::Fail,
                format!(
                    "sendgrid: no enabled event webhook sends {}: {detail}",
                    events.join(" + ")
                ),
            )
        } else if self.params.require_signed && signed == 0 {
            (
                ProbeStatus::Fail,
                format!(
                    "sendgrid: {qualifying} event webhook(s) send {} but none has signature verification on",
                    events.join(" + ")
                ),
            )
        } else {
            (
                ProbeStatus::Pass,
                format!(
                    "sendgrid: {qualifying} enabled event webhook(s) send {}",
                    events.join(" + ")
                ),
            )
        };
        let mut m = Measurement::value(qualifying as f64, "count", message);
        m.verdict = Some(status);
        m.evidence = evidence;
        Ok(m.with_sample(list.webhooks.len() as u64))
    }
}
