//! Postmark adapter: sender-domain verification (E2, account API) and bounce (E4) and
//! spam-complaint (E5) rates (server API, outbound stats).
//!
//! Postmark publishes no licensed machine-readable spec: the endpoints and fields used here
//! follow Postmark's API reference (`GET /domains`, `GET /domains/{domainid}`,
//! `GET /stats/outbound`) and are written down as a small OpenAPI document in this crate's
//! tests, which the test server validates against. Re-check them against Postmark's reference
//! before relying on new fields.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use funnelgate_checker_sdk::vendor_http::send_json;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeRegistry, TypedFactory};
use funnelgate_core::{Measurement, ProbeStatus};
use reqwest::Url;
use reqwest::header::{ACCEPT, HeaderValue};
use schemars::JsonSchema;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    Rate, ReadContract, bool_measurement, check_rate_thresholds, check_window_days,
    default_bounce_fail, default_bounce_warn, default_complaint_fail, default_complaint_warn,
    endpoint, now, parse_base_url, reencode, utc_date, worse,
};

const VENDOR: &str = "postmark";
const VENDORS: &[&str] = &["postmark"];
/// Postmark's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.postmarkapp.com";
const MAX_WINDOW_DAYS: u32 = 90;
/// `GET /domains` page size (Postmark's maximum `count`).
const PAGE: usize = 500;
const MAX_PAGES: usize = 20;
/// Header carrying an account token (domains, sender signatures, servers).
pub const ACCOUNT_TOKEN_HEADER: &str = "X-Postmark-Account-Token";
/// Header carrying a server token (messages, stats, bounces).
pub const SERVER_TOKEN_HEADER: &str = "X-Postmark-Server-Token";

// ---------------------------------------------------------------------------------------------
// What we read

/// `GET /domains`.
pub const READS_DOMAINS: &[&str] = &["TotalCount", "Domains[].ID", "Domains[].Name"];

/// `GET /domains/{domainid}`.
pub const READS_DOMAIN: &[&str] = &[
    "ID",
    "Name",
    "SPFVerified",
    "DKIMVerified",
    "WeakDKIM",
    "ReturnPathDomain",
    "ReturnPathDomainVerified",
];

/// `GET /stats/outbound`.
pub const READS_STATS: &[&str] = &["Sent", "Bounced", "SpamComplaints"];

/// Every Postmark operation the adapter calls and what it reads from each.
pub const READ_CONTRACTS: &[ReadContract] = &[
    ReadContract {
        vendor: VENDOR,
        operation: "GET /domains",
        fields: READS_DOMAINS,
        reencode: reencode::<DomainList>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "GET /domains/{domainid}",
        fields: READS_DOMAIN,
        reencode: reencode::<DomainDetails>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "GET /stats/outbound",
        fields: READS_STATS,
        reencode: reencode::<OutboundStats>,
    },
];

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DomainList {
    #[serde(default)]
    total_count: u64,
    #[serde(default)]
    domains: Vec<DomainSummary>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DomainSummary {
    #[serde(rename = "ID")]
    id: u64,
    name: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DomainDetails {
    #[serde(rename = "ID")]
    id: Option<u64>,
    name: Option<String>,
    #[serde(rename = "SPFVerified")]
    spf_verified: Option<bool>,
    #[serde(rename = "DKIMVerified")]
    dkim_verified: Option<bool>,
    #[serde(rename = "WeakDKIM")]
    weak_dkim: Option<bool>,
    return_path_domain: Option<String>,
    return_path_domain_verified: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct OutboundStats {
    #[serde(default)]
    sent: u64,
    #[serde(default)]
    bounced: u64,
    #[serde(default)]
    spam_complaints: u64,
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

/// Params of `postmark.domain_verification` (the secret is an account token).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainVerificationParams {
    /// The sending domain as added to Postmark, e.g. `example.com`.
    pub domain: String,
    /// FAIL unless the custom Return-Path domain is verified (it gives SPF alignment for DMARC);
    /// false: only DKIM must be verified.
    #[serde(default = "default_true")]
    pub require_return_path: bool,
    /// API base URL (default `https://api.postmarkapp.com`). Plain http is accepted only for a
    /// loopback address.
    #[serde(default = "default_base_url")]
    pub base_url: String,
}

/// Params of `postmark.bounce_rate` (the secret is a server token).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BounceRateParams {
    /// Look-back window in whole UTC days, today included (1–90).
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// WARN when bounced / sent reaches this percentage (default 2, catalogue E4); null: never.
    #[serde(default = "default_bounce_warn")]
    pub warn_at_percent: Option<f64>,
    /// FAIL when bounced / sent reaches this percentage (default 5, catalogue E4 and the SES
    /// review level); null: never.
    #[serde(default = "default_bounce_fail")]
    pub fail_at_percent: Option<f64>,
    /// Only this message stream, e.g. `broadcast` (default: every stream of the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_stream: Option<String>,
    /// Only messages with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// API base URL (default `https://api.postmarkapp.com`). Plain http is accepted only for a
    /// loopback address.
    #[serde(default = "default_base_url")]
    pub base_url: String,
}

/// Params of `postmark.complaint_rate` (the secret is a server token).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintRateParams {
    /// Look-back window in whole UTC days, today included (1–90).
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// WARN when spam complaints / sent reaches this percentage (default 0.1, Gmail/Yahoo sender
    /// guidelines); null: never.
    #[serde(default = "default_complaint_warn")]
    pub warn_at_percent: Option<f64>,
    /// FAIL when spam complaints / sent reaches this percentage (default 0.3, Gmail/Yahoo sender
    /// guidelines); null: never.
    #[serde(default = "default_complaint_fail")]
    pub fail_at_percent: Option<f64>,
    /// Only this message stream, e.g. `broadcast` (default: every stream of the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_stream: Option<String>,
    /// Only messages with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// API base URL (default `https://api.postmarkapp.com`). Plain http is accepted only for a
    /// loopback address.
    #[serde(default = "default_base_url")]
    pub base_url: String,
}

// ---------------------------------------------------------------------------------------------
// Registration

/// Register the Postmark kinds.
pub fn register(registry: &mut ProbeRegistry) {
    registry.register(
        TypedFactory::<DomainVerificationParams, _>::new(
            "postmark.domain_verification",
            "postmark has verified dkim (and the return-path domain) of the sending domain",
            "bool",
            |p: DomainVerificationParams| {
                let kind = "postmark.domain_verification";
                let base = parse_base_url(kind, &p.base_url)?;
                if p.domain.trim().is_empty() {
                    return Err(ProbeError::params(format!(
                        "params of `{kind}`: `domain` is empty"
                    )));
                }
                Ok(Arc::new(DomainVerification { base, params: p }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS),
    );
    registry.register(
        TypedFactory::<BounceRateParams, _>::new(
            "postmark.bounce_rate",
            "postmark bounce rate (bounced / sent, outbound stats) over a window",
            "percent",
            |p: BounceRateParams| {
                let kind = "postmark.bounce_rate";
                check_window_days(kind, p.window_days, MAX_WINDOW_DAYS)?;
                check_rate_thresholds(kind, p.warn_at_percent, p.fail_at_percent)?;
                Ok(Arc::new(StatsRate {
                    base: parse_base_url(kind, &p.base_url)?,
                    measure: Measure::Bounce,
                    window_days: p.window_days,
                    warn_at: p.warn_at_percent,
                    fail_at: p.fail_at_percent,
                    message_stream: p.message_stream,
                    tag: p.tag,
                }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS),
    );
    registry.register(
        TypedFactory::<ComplaintRateParams, _>::new(
            "postmark.complaint_rate",
            "postmark spam-complaint rate (spam complaints / sent, outbound stats) over a window",
            "percent",
            |p: ComplaintRateParams| {
                let kind = "postmark.complaint_rate";
                check_window_days(kind, p.window_days, MAX_WINDOW_DAYS)?;
                check_rate_thresholds(kind, p.warn_at_percent, p.fail_at_percent)?;
                Ok(Arc::new(StatsRate {
                    base: parse_base_url(kind, &p.base_url)?,
                    measure: Measure::Complaint,
                    window_days: p.window_days,
                    warn_at: p.warn_at_percent,
                    fail_at: p.fail_at_percent,
                    message_stream: p.message_stream,
                    tag: p.tag,
                }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS),
    );
}

// ---------------------------------------------------------------------------------------------
// Calls

async fn get<T: DeserializeOwned>(
    ctx: &ProbeContext,
    token_header: &'static str,
    what: &str,
    url: Url,
) -> Result<T, ProbeError> {
    let token = ctx.secret()?;
    let mut value = HeaderValue::from_str(token.expose_secret().trim()).map_err(|_| {
        ProbeError::permanent("the secret contains characters not allowed in an http header")
    })?;
    value.set_sensitive(true);
    let req = ctx
        .http
        .get(url)
        .timeout(ctx.timeout())
        .header(ACCEPT, "application/json")
        .header(token_header, value);
    Ok(send_json::<T>(VENDOR, what, req).await?.body)
}

// ---------------------------------------------------------------------------------------------
// postmark.domain_verification

struct DomainVerification {
    base: Url,
    params: DomainVerificationParams,
}

#[async_trait]
impl Probe for DomainVerification {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let wanted = self.params.domain.trim().trim_end_matches('.');
        let mut found = None;
        let mut listed = 0usize;
        'pages: for page in 0..MAX_PAGES {
            let mut url = endpoint(&self.base, &["domains"]);
            url.query_pairs_mut()
                .append_pair("count", &PAGE.to_string())
                .append_pair("offset", &(page * PAGE).to_string());
            let list: DomainList = get(ctx, ACCOUNT_TOKEN_HEADER, "GET /domains", url).await?;
            listed += list.domains.len();
            for d in &list.domains {
                if d.name.eq_ignore_ascii_case(wanted) {
                    found = Some(d.id);
                    break 'pages;
                }
            }
            if list.domains.len() < PAGE || listed as u64 >= list.total_count {
                break;
            }
        }
        let Some(id) = found else {
            let msg = if listed == 0 {
                format!("postmark: the account has no sender domains; {wanted} is not set up")
            } else {
                format!(
                    "postmark: {wanted} is not a sender domain of this account ({listed} other domain(s) listed)"
                )
            };
            return Ok(bool_measurement(false, ProbeStatus::Fail, msg)
                .with_evidence("domains_listed", listed.to_string()));
        };
        let url = endpoint(&self.base, &["domains", &id.to_string()]);
        let d: DomainDetails =
            get(ctx, ACCOUNT_TOKEN_HEADER, "GET /domains/{domainid}", url).await?;
        let name = d.name.clone().unwrap_or_else(|| wanted.to_string());
        let dkim = d.dkim_verified == Some(true);
        let return_path = d.return_path_domain_verified == Some(true);
        let weak = d.weak_dkim == Some(true);
        let mut status = ProbeStatus::Pass;
        let mut notes = Vec::new();
        if !dkim {
            status = ProbeStatus::Fail;
            notes.push("dkim is not verified".to_string());
        }
        if !return_path {
            let rp = d
                .return_path_domain
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("no custom return-path");
            if self.params.require_return_path {
                status = ProbeStatus::Fail;
                notes.push(format!(
                    "return-path domain not verified ({rp}): spf does not align for dmarc"
                ));
            } else {
                notes.push(format!(
                    "return-path domain not verified ({rp}), allowed by `require_return_path`"
                ));
            }
        }
        if weak {
            status = worse(status, ProbeStatus::Warn);
            notes.push("dkim key is weak (1024-bit): gmail recommends 2048".to_string());
        }
        let ok = status != ProbeStatus::Fail;
        let message = if notes.is_empty() {
            format!("postmark: {name} has dkim and the return-path domain verified")
        } else {
            format!("postmark: {name}: {}", notes.join("; "))
        };
        let mut evidence = BTreeMap::new();
        evidence.insert("domain_id".to_string(), d.id.unwrap_or(id).to_string());
        evidence.insert("dkim_verified".to_string(), dkim.to_string());
        evidence.insert("weak_dkim".to_string(), weak.to_string());
        evidence.insert("return_path_verified".to_string(), return_path.to_string());
        if let Some(spf) = d.spf_verified {
            evidence.insert("spf_verified".to_string(), spf.to_string());
        }
        let mut m = bool_measurement(ok, status, message);
        m.evidence = evidence;
        Ok(m)
    }
}

// ---------------------------------------------------------------------------------------------
// postmark.bounce_rate / postmark.complaint_rate

#[derive(Clone, Copy)]
enum Measure {
    Bounce,
    Complaint,
}

struct StatsRate {
    base: Url,
    measure: Measure,
    window_days: u32,
    warn_at: Option<f64>,
    fail_at: Option<f64>,
    message_stream: Option<String>,
    tag: Option<String>,
}

#[async_trait]
impl Probe for StatsRate {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let today = now();
        let start = today.sub(std::time::Duration::from_secs(
            u64::from(self.window_days.saturating_sub(1)) * 86_400,
        ));
        let mut url = endpoint(&self.base, &["stats", "outbound"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("fromdate", &utc_date(start))
                .append_pair("todate", &utc_date(today));
            if let Some(s) = &self.message_stream {
                q.append_pair("messagestream", s);
            }
            if let Some(t) = &self.tag {
                q.append_pair("tag", t);
            }
        }
        let s: OutboundStats = get(ctx, SERVER_TOKEN_HEADER, "GET /stats/outbound", url).await?;
        let rate = match self.measure {
            Measure::Bounce => Rate {
                what: "postmark bounce rate",
                numerator: s.bounced,
                numerator_label: "bounced",
                denominator: s.sent,
                denominator_label: "sent",
                window_days: self.window_days,
                warn_at: self.warn_at,
                fail_at: self.fail_at,
            },
            Measure::Complaint => Rate {
                what: "postmark spam-complaint rate",
                numerator: s.spam_complaints,
                numerator_label: "spam_complaints",
                denominator: s.sent,
                denominator_label: "sent",
                window_days: self.window_days,
                warn_at: self.warn_at,
                fail_at: self.fail_at,
            },
        };
        let mut m = rate.measure();
        if let Some(s) = &self.message_stream {
            m = m.with_evidence("message_stream", s.clone());
        }
        if let Some(t) = &self.tag {
            m = m.with_evidence("tag", t.clone());
        }
        Ok(m)
    }
}
