//! Amazon SES (API v2) adapter: account standing and sandbox (E3), identity verification and DKIM
//! (E2), hard-bounce (E4) and complaint (E5) rates from the Virtual Deliverability Manager
//! metrics, and configuration-set event destinations (E9).
//!
//! Requests are signed with AWS Signature Version 4 by the `aws-sigv4` crate (service `ses`).
//! Credentials come from the probe's secret, a JSON object
//! `{"access_key_id": "…", "secret_access_key": "…", "session_token": "…"}` (token optional).
//! Operations and shapes were checked against botocore's `sesv2/2019-09-27/service-2.json`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use funnelgate_checker_sdk::vendor_http::{VendorResponse, send_json};
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeRegistry, TypedFactory};
use funnelgate_core::{Measurement, ProbeStatus};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use schemars::JsonSchema;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    Rate, ReadContract, bool_measurement, check_rate_thresholds, check_window_days,
    default_bounce_fail, default_bounce_warn, default_complaint_fail, default_complaint_warn,
    endpoint, parse_base_url, reencode, worse,
};

const VENDOR: &str = "ses";
const VENDORS: &[&str] = &["amazon-ses"];
/// SigV4 signing name of SES v2 (botocore `metadata.signingName`).
pub const SIGNING_NAME: &str = "ses";
/// Longest metrics window we ask for.
const MAX_WINDOW_DAYS: u32 = 30;

// ---------------------------------------------------------------------------------------------
// What we read

/// `GET /v2/email/account` (GetAccount).
pub const READS_ACCOUNT: &[&str] = &[
    "SendingEnabled",
    "ProductionAccessEnabled",
    "EnforcementStatus",
    "SendQuota.Max24HourSend",
    "SendQuota.MaxSendRate",
    "SendQuota.SentLast24Hours",
    "Details.ReviewDetails.Status",
];

/// `GET /v2/email/identities/{EmailIdentity}` (GetEmailIdentity).
pub const READS_IDENTITY: &[&str] = &[
    "IdentityType",
    "VerifiedForSendingStatus",
    "VerificationStatus",
    "DkimAttributes.SigningEnabled",
    "DkimAttributes.Status",
    "DkimAttributes.SigningAttributesOrigin",
    "DkimAttributes.CurrentSigningKeyLength",
    "MailFromAttributes.MailFromDomain",
    "MailFromAttributes.MailFromDomainStatus",
];

/// `POST /v2/email/metrics/batch` (BatchGetMetricData).
pub const READS_METRICS: &[&str] = &[
    "Results[].Id",
    "Results[].Values[]",
    "Errors[].Id",
    "Errors[].Code",
    "Errors[].Message",
];

/// `GET /v2/email/configuration-sets/{ConfigurationSetName}/event-destinations`.
pub const READS_EVENT_DESTINATIONS: &[&str] = &[
    "EventDestinations[].Name",
    "EventDestinations[].Enabled",
    "EventDestinations[].MatchingEventTypes[]",
    "EventDestinations[].SnsDestination.TopicArn",
    "EventDestinations[].EventBridgeDestination.EventBusArn",
    "EventDestinations[].KinesisFirehoseDestination.DeliveryStreamArn",
];

/// `GET /v2/email/dedicated-ips` (GetDedicatedIps): the account's dedicated sending IPs, for
/// `dns.spf`'s `ips_from`.
pub const READS_DEDICATED_IPS: &[&str] = &["DedicatedIps[].Ip", "NextToken"];

/// Every SES operation the adapter calls and what it reads from each.
pub const READ_CONTRACTS: &[ReadContract] = &[
    ReadContract {
        vendor: VENDOR,
        operation: "GET /v2/email/dedicated-ips",
        fields: READS_DEDICATED_IPS,
        reencode: reencode::<DedicatedIps>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "GET /v2/email/account",
        fields: READS_ACCOUNT,
        reencode: reencode::<Account>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "GET /v2/email/identities/{EmailIdentity}",
        fields: READS_IDENTITY,
        reencode: reencode::<Identity>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "GET /v2/email/configuration-sets/{ConfigurationSetName}/event-destinations",
        fields: READS_EVENT_DESTINATIONS,
        reencode: reencode::<EventDestinations>,
    },
    ReadContract {
        vendor: VENDOR,
        operation: "POST /v2/email/metrics/batch",
        fields: READS_METRICS,
        reencode: reencode::<MetricData>,
    },
];

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DedicatedIps {
    #[serde(default)]
    dedicated_ips: Vec<DedicatedIp>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DedicatedIp {
    ip: String,
}

/// Check a region and endpoint override as the SES kinds do (for kinds that call SES too).
pub fn check_api_params(
    kind: &str,
    region: &str,
    endpoint_override: Option<&str>,
) -> Result<(), ProbeError> {
    Api::new(kind, region, endpoint_override).map(|_| ())
}

/// Most pages of dedicated IPs read (100 per page).
const MAX_DEDICATED_IP_PAGES: usize = 50;

/// The account's dedicated sending IPs in `region` (only those of `pool` when given), every page
/// of `GetDedicatedIps`, signed with the AWS credentials of the probe's secret. Accounts on SES's
/// shared IPs have none: then the list is empty.
pub async fn dedicated_ips(
    ctx: &ProbeContext,
    kind: &str,
    region: &str,
    endpoint_override: Option<&str>,
    pool: Option<&str>,
) -> Result<Vec<String>, ProbeError> {
    let api = Api::new(kind, region, endpoint_override)?;
    let what = "GET /v2/email/dedicated-ips";
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_DEDICATED_IP_PAGES {
        let mut url = endpoint(&api.base, &["v2", "email", "dedicated-ips"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("PageSize", "100");
            if let Some(p) = pool {
                q.append_pair("PoolName", p);
            }
            if let Some(t) = &token {
                q.append_pair("NextToken", t);
            }
        }
        let page: DedicatedIps = api.call(ctx, Method::GET, what, url, None).await?.body;
        out.extend(page.dedicated_ips.into_iter().map(|d| d.ip));
        match page.next_token.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
    Err(ProbeError::permanent(format!(
        "{VENDOR}: {what}: more than {MAX_DEDICATED_IP_PAGES} pages of dedicated IPs; name a `pool`"
    )))
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Account {
    sending_enabled: Option<bool>,
    production_access_enabled: Option<bool>,
    enforcement_status: Option<String>,
    send_quota: Option<SendQuota>,
    details: Option<AccountDetails>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SendQuota {
    #[serde(rename = "Max24HourSend")]
    max_24_hour_send: Option<f64>,
    max_send_rate: Option<f64>,
    #[serde(rename = "SentLast24Hours")]
    sent_last_24_hours: Option<f64>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AccountDetails {
    review_details: Option<ReviewDetails>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ReviewDetails {
    status: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Identity {
    identity_type: Option<String>,
    verified_for_sending_status: Option<bool>,
    verification_status: Option<String>,
    dkim_attributes: Option<DkimAttributes>,
    mail_from_attributes: Option<MailFromAttributes>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DkimAttributes {
    signing_enabled: Option<bool>,
    status: Option<String>,
    signing_attributes_origin: Option<String>,
    current_signing_key_length: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MailFromAttributes {
    mail_from_domain: Option<String>,
    mail_from_domain_status: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricData {
    #[serde(default)]
    results: Vec<MetricResult>,
    #[serde(default)]
    errors: Vec<MetricError>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricResult {
    id: Option<String>,
    #[serde(default)]
    values: Vec<u64>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricError {
    id: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EventDestinations {
    #[serde(default)]
    event_destinations: Vec<EventDestination>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EventDestination {
    name: Option<String>,
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    matching_event_types: Vec<String>,
    sns_destination: Option<SnsDestination>,
    event_bridge_destination: Option<EventBridgeDestination>,
    kinesis_firehose_destination: Option<FirehoseDestination>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SnsDestination {
    topic_arn: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EventBridgeDestination {
    event_bus_arn: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct FirehoseDestination {
    delivery_stream_arn: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Params

fn default_window_days() -> u32 {
    7
}
fn default_quota_warn() -> Option<f64> {
    Some(80.0)
}

/// Params of `ses.account_standing`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountStandingParams {
    /// AWS region of the SES account, e.g. `eu-west-1` (sending limits and standing are per region).
    pub region: String,
    /// API endpoint; default `https://email.<region>.amazonaws.com`. Plain http is accepted only
    /// for a loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Accept an account still in the SES sandbox (it can only send to verified addresses); by
    /// default a sandboxed account FAILs.
    #[serde(default)]
    pub allow_sandbox: bool,
    /// WARN when the last 24 hours used more than this percentage of the 24-hour sending quota
    /// (default 80, a catalogue heuristic); null: never.
    #[serde(default = "default_quota_warn")]
    pub quota_warn_percent: Option<f64>,
}

/// Params of `ses.identity_dkim`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityDkimParams {
    /// AWS region of the SES account, e.g. `eu-west-1`.
    pub region: String,
    /// The identity to check: a domain (`example.com`) or an email address.
    pub identity: String,
    /// API endpoint; default `https://email.<region>.amazonaws.com`. Plain http is accepted only
    /// for a loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Params of `ses.bounce_rate`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BounceRateParams {
    /// AWS region of the SES account, e.g. `eu-west-1`.
    pub region: String,
    /// Look-back window in days, ending now (1–30).
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// WARN when permanent bounces / sends reaches this percentage (default 2, catalogue E4);
    /// null: never.
    #[serde(default = "default_bounce_warn")]
    pub warn_at_percent: Option<f64>,
    /// FAIL when permanent bounces / sends reaches this percentage (default 5: where SES puts an
    /// account under review); null: never.
    #[serde(default = "default_bounce_fail")]
    pub fail_at_percent: Option<f64>,
    /// Only mail sent from this identity (VDM dimension `EMAIL_IDENTITY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_identity: Option<String>,
    /// Only mail sent with this configuration set (VDM dimension `CONFIGURATION_SET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_set: Option<String>,
    /// API endpoint; default `https://email.<region>.amazonaws.com`. Plain http is accepted only
    /// for a loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Params of `ses.complaint_rate`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintRateParams {
    /// AWS region of the SES account, e.g. `eu-west-1`.
    pub region: String,
    /// Look-back window in days, ending now (1–30).
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// WARN when complaints / deliveries reaches this percentage (default 0.1, Gmail/Yahoo sender
    /// guidelines; also where SES reviews an account); null: never.
    #[serde(default = "default_complaint_warn")]
    pub warn_at_percent: Option<f64>,
    /// FAIL when complaints / deliveries reaches this percentage (default 0.3, Gmail/Yahoo sender
    /// guidelines); null: never.
    #[serde(default = "default_complaint_fail")]
    pub fail_at_percent: Option<f64>,
    /// Only mail sent from this identity (VDM dimension `EMAIL_IDENTITY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_identity: Option<String>,
    /// Only mail sent with this configuration set (VDM dimension `CONFIGURATION_SET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_set: Option<String>,
    /// API endpoint; default `https://email.<region>.amazonaws.com`. Plain http is accepted only
    /// for a loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

fn default_required_events() -> Vec<SesEvent> {
    vec![SesEvent::Bounce, SesEvent::Complaint]
}

/// An SES event type an event destination can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SesEvent {
    /// SES accepted the message for sending.
    Send,
    /// SES rejected the message (virus detected).
    Reject,
    /// The receiving server rejected the message permanently (hard bounce).
    Bounce,
    /// The recipient marked the message as spam.
    Complaint,
    /// The receiving server accepted the message.
    Delivery,
    /// Delivery was delayed (temporary failure).
    DeliveryDelay,
    /// The recipient changed their subscription (list management).
    Subscription,
}

impl SesEvent {
    fn wire(self) -> &'static str {
        match self {
            SesEvent::Send => "SEND",
            SesEvent::Reject => "REJECT",
            SesEvent::Bounce => "BOUNCE",
            SesEvent::Complaint => "COMPLAINT",
            SesEvent::Delivery => "DELIVERY",
            SesEvent::DeliveryDelay => "DELIVERY_DELAY",
            SesEvent::Subscription => "SUBSCRIPTION",
        }
    }
}

/// Params of `ses.event_destinations`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventDestinationsParams {
    /// AWS region of the SES account, e.g. `eu-west-1`.
    pub region: String,
    /// The configuration set your marketing mail is sent with.
    pub configuration_set: String,
    /// Events that must each reach an enabled SNS, EventBridge or Firehose destination (default:
    /// bounce and complaint, what CRM and automation need to suppress contacts).
    #[serde(default = "default_required_events")]
    pub required_events: Vec<SesEvent>,
    /// API endpoint; default `https://email.<region>.amazonaws.com`. Plain http is accepted only
    /// for a loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Registration

/// Register the SES kinds.
pub fn register(registry: &mut ProbeRegistry) {
    registry.register(TypedFactory::<AccountStandingParams, _>::new(
            "ses.account_standing",
            "the ses account can send: sending enabled, out of the sandbox, enforcement status healthy, quota headroom",
            "percent",
            |p: AccountStandingParams| {
                let kind = "ses.account_standing";
                let api = Api::new(kind, &p.region, p.endpoint.as_deref())?;
                check_rate_thresholds(kind, p.quota_warn_percent, None)?;
                Ok(Arc::new(AccountStanding { api, params: p }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS));
    registry.register(TypedFactory::<IdentityDkimParams, _>::new(
            "ses.identity_dkim",
            "the ses identity is verified for sending and signs with dkim (2048-bit keys recommended)",
            "bool",
            |p: IdentityDkimParams| {
                let kind = "ses.identity_dkim";
                let api = Api::new(kind, &p.region, p.endpoint.as_deref())?;
                if p.identity.trim().is_empty() {
                    return Err(ProbeError::params(format!("params of `{kind}`: `identity` is empty")));
                }
                Ok(Arc::new(IdentityDkim { api, identity: p.identity.trim().to_string() }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS));
    registry.register(TypedFactory::<EventDestinationsParams, _>::new(
            "ses.event_destinations",
            "the ses configuration set publishes bounce and complaint events to sns, eventbridge or firehose",
            "count",
            |p: EventDestinationsParams| {
                let kind = "ses.event_destinations";
                let api = Api::new(kind, &p.region, p.endpoint.as_deref())?;
                if p.configuration_set.trim().is_empty() {
                    return Err(ProbeError::params(format!(
                        "params of `{kind}`: `configuration_set` is empty"
                    )));
                }
                if p.required_events.is_empty() {
                    return Err(ProbeError::params(format!(
                        "params of `{kind}`: `required_events` must name at least one event"
                    )));
                }
                Ok(Arc::new(EventDestinationsProbe { api, params: p }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS));
    registry.register(
        TypedFactory::<BounceRateParams, _>::new(
            "ses.bounce_rate",
            "ses permanent-bounce rate (permanent bounces / sends, vdm metrics) over a window",
            "percent",
            |p: BounceRateParams| {
                let kind = "ses.bounce_rate";
                let api = Api::new(kind, &p.region, p.endpoint.as_deref())?;
                check_window_days(kind, p.window_days, MAX_WINDOW_DAYS)?;
                check_rate_thresholds(kind, p.warn_at_percent, p.fail_at_percent)?;
                Ok(Arc::new(MetricRate {
                    api,
                    measure: MetricMeasure::Bounce,
                    window_days: p.window_days,
                    warn_at: p.warn_at_percent,
                    fail_at: p.fail_at_percent,
                    dimensions: dimensions(kind, p.email_identity, p.configuration_set)?,
                }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS),
    );
    registry.register(
        TypedFactory::<ComplaintRateParams, _>::new(
            "ses.complaint_rate",
            "ses complaint rate (complaints / deliveries, vdm metrics) over a window",
            "percent",
            |p: ComplaintRateParams| {
                let kind = "ses.complaint_rate";
                let api = Api::new(kind, &p.region, p.endpoint.as_deref())?;
                check_window_days(kind, p.window_days, MAX_WINDOW_DAYS)?;
                check_rate_thresholds(kind, p.warn_at_percent, p.fail_at_percent)?;
                Ok(Arc::new(MetricRate {
                    api,
                    measure: MetricMeasure::Complaint,
                    window_days: p.window_days,
                    warn_at: p.warn_at_percent,
                    fail_at: p.fail_at_percent,
                    dimensions: dimensions(kind, p.email_identity, p.configuration_set)?,
                }) as Arc<dyn Probe>)
            },
        )
        .vendors(VENDORS),
    );
}

fn dimensions(
    kind: &str,
    email_identity: Option<String>,
    configuration_set: Option<String>,
) -> Result<BTreeMap<&'static str, String>, ProbeError> {
    let mut d = BTreeMap::new();
    for (name, field, v) in [
        ("EMAIL_IDENTITY", "email_identity", email_identity),
        ("CONFIGURATION_SET", "configuration_set", configuration_set),
    ] {
        if let Some(v) = v {
            if v.trim().is_empty() {
                return Err(ProbeError::params(format!(
                    "params of `{kind}`: `{field}` is empty"
                )));
            }
            d.insert(name, v.trim().to_string());
        }
    }
    Ok(d)
}

// ---------------------------------------------------------------------------------------------
// Signed calls

/// The credentials secret.
#[derive(Deserialize)]
struct AwsSecret {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

struct Api {
    region: String,
    base: Url,
}

impl Api {
    fn new(kind: &str, region: &str, endpoint_override: Option<&str>) -> Result<Api, ProbeError> {
        let region = region.trim();
        let valid = !region.is_empty()
            && region.len() <= 32
            && region
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !valid {
            return Err(ProbeError::params(format!(
                "params of `{kind}`: `region` must be an aws region name like `eu-west-1`, got `{region}`"
            )));
        }
        let base = match endpoint_override {
            Some(e) => parse_base_url(kind, e)
                .map_err(|e| ProbeError::params(e.message.replace("`base_url`", "`endpoint`")))?,
            None => parse_base_url(kind, &format!("https://email.{region}.amazonaws.com"))?,
        };
        Ok(Api {
            region: region.to_string(),
            base,
        })
    }

    fn credentials(ctx: &ProbeContext) -> Result<Credentials, ProbeError> {
        let secret = ctx.secret()?;
        let name = ctx.spec.secret.as_deref().unwrap_or_default();
        // Never echo serde's message: it may quote part of the secret.
        let parsed: AwsSecret = serde_json::from_str(secret.expose_secret()).map_err(|_| {
            ProbeError::permanent(format!(
                "secret `{name}` is not ses credentials: expected json {{\"access_key_id\", \"secret_access_key\", \"session_token\" (optional)}}"
            ))
        })?;
        if parsed.access_key_id.trim().is_empty() || parsed.secret_access_key.trim().is_empty() {
            return Err(ProbeError::permanent(format!(
                "secret `{name}`: `access_key_id` and `secret_access_key` must not be empty"
            )));
        }
        Ok(Credentials::new(
            parsed.access_key_id.trim(),
            parsed.secret_access_key.trim(),
            parsed.session_token.filter(|t| !t.trim().is_empty()),
            None,
            "funnelgate-secret",
        ))
    }

    /// Sign and send; decode a 2xx JSON body.
    async fn call<T: DeserializeOwned>(
        &self,
        ctx: &ProbeContext,
        method: Method,
        what: &str,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<VendorResponse<T>, ProbeError> {
        let creds = Self::credentials(ctx)?;
        let body = body.unwrap_or_default();
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        let signed = sign_request(
            &creds,
            &self.region,
            method.as_str(),
            url.as_str(),
            &headers,
            &body,
            SystemTime::now(),
        )
        .map_err(|e| {
            ProbeError::permanent(format!("{VENDOR}: {what}: cannot sign the request: {e}"))
        })?;
        let mut req = ctx.http.request(method, url).timeout(ctx.timeout());
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        for (name, value) in signed {
            req = req.header(name, value);
        }
        if !body.is_empty() {
            req = req.header(CONTENT_TYPE, "application/json").body(body);
        }
        send_json::<T>(VENDOR, what, req).await
    }
}

/// SigV4 headers (`authorization`, `x-amz-date`, and `x-amz-security-token` for temporary
/// credentials) for a request, signed for SES in `region` at `time`.
pub(crate) fn sign_request(
    creds: &Credentials,
    region: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let (out, _params) = instructions.into_parts();
    out.into_iter()
        .map(|h| {
            let name = HeaderName::from_bytes(h.name().as_bytes()).map_err(|e| e.to_string())?;
            let mut value = HeaderValue::from_str(h.value()).map_err(|e| e.to_string())?;
            value.set_sensitive(h.sensitive() || name == reqwest::header::AUTHORIZATION);
            Ok((name, value))
        })
        .collect()
}

fn request_id<T>(r: &VendorResponse<T>) -> Option<String> {
    r.headers
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// ses.account_standing

struct AccountStanding {
    api: Api,
    params: AccountStandingParams,
}

#[async_trait]
impl Probe for AccountStanding {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let what = "GET /v2/email/account";
        let url = endpoint(&self.api.base, &["v2", "email", "account"]);
        let resp = self
            .api
            .call::<Account>(ctx, Method::GET, what, url, None)
            .await?;
        let rid = request_id(&resp);
        let a = resp.body;
        let lacks =
            |f: &str| ProbeError::permanent(format!("{VENDOR}: {what}: the response lacks `{f}`"));
        let sending = a.sending_enabled.ok_or_else(|| lacks("SendingEnabled"))?;
        let production = a
            .production_access_enabled
            .ok_or_else(|| lacks("ProductionAccessEnabled"))?;
        let enforcement = a
            .enforcement_status
            .clone()
            .ok_or_else(|| lacks("EnforcementStatus"))?;
        let quota = a.send_quota.as_ref();
        let max = quota.and_then(|q| q.max_24_hour_send);
        let sent = quota.and_then(|q| q.sent_last_24_hours).unwrap_or(0.0);
        let used = max.filter(|m| *m > 0.0).map(|m| sent * 100.0 / m);

        let mut status = ProbeStatus::Pass;
        let mut problems = Vec::new();
        if !sending {
            status = ProbeStatus::Fail;
            problems
                .push("sending is disabled for the account (paused by aws or by you)".to_string());
        }
        if enforcement != "HEALTHY" {
            status = ProbeStatus::Fail;
            problems.push(format!("enforcement status is {enforcement}, not HEALTHY"));
        }
        let review = a
            .details
            .as_ref()
            .and_then(|d| d.review_details.as_ref())
            .and_then(|r| r.status.clone());
        if !production {
            let note = review
                .as_deref()
                .map(|r| format!(" (production access request: {r})"))
                .unwrap_or_default();
            if self.params.allow_sandbox {
                problems.push(format!("in the sandbox, allowed by `allow_sandbox`{note}"));
            } else {
                status = ProbeStatus::Fail;
                problems.push(format!(
                    "in the sandbox: it can only send to verified addresses{note}"
                ));
            }
        }
        if let (Some(u), Some(w)) = (used, self.params.quota_warn_percent)
            && u > w
        {
            status = worse(status, ProbeStatus::Warn);
            problems.push(format!(
                "{u:.1}% of the 24-hour sending quota used, above {w}%"
            ));
        }
        let quota_text = match (used, max) {
            (Some(u), Some(m)) => format!("{u:.1}% of the 24-hour quota used ({sent} of {m})"),
            _ => "no 24-hour quota reported".to_string(),
        };
        let message = if problems.is_empty() {
            format!(
                "ses ({}): sending enabled, production access, enforcement HEALTHY; {quota_text}",
                self.api.region
            )
        } else {
            format!(
                "ses ({}): {}; {quota_text}",
                self.api.region,
                problems.join("; ")
            )
        };
        let mut m = match used {
            Some(u) => Measurement::value(u, "percent", message),
            None => {
                let mut m = Measurement::verdict(status, message);
                m.unit = "percent".into();
                m
            }
        };
        m.verdict = Some(status);
        m = m
            .with_sample(sent.max(0.0) as u64)
            .with_window(Duration::from_secs(86_400))
            .with_evidence("sending_enabled", sending.to_string())
            .with_evidence("production_access_enabled", production.to_string())
            .with_evidence("enforcement_status", enforcement);
        if let Some(rate) = quota.and_then(|q| q.max_send_rate) {
            m = m.with_evidence("max_send_rate_per_second", rate.to_string());
        }
        if let Some(r) = review {
            m = m.with_evidence("production_access_review", r);
        }
        if let Some(rid) = rid {
            m = m.with_evidence("request_id", rid);
        }
        Ok(m)
    }
}

// ---------------------------------------------------------------------------------------------
// ses.identity_dkim

struct IdentityDkim {
    api: Api,
    identity: String,
}

#[async_trait]
impl Probe for IdentityDkim {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let what = "GET /v2/email/identities/{EmailIdentity}";
        let url = endpoint(
            &self.api.base,
            &["v2", "email", "identities", &self.identity],
        );
        let resp = self
            .api
            .call::<Identity>(ctx, Method::GET, what, url, None)
            .await?;
        let rid = request_id(&resp);
        let i = resp.body;
        let id = &self.identity;
        let mut status = ProbeStatus::Pass;
        let mut notes = Vec::new();
        let verified = i.verified_for_sending_status == Some(true);
        if !verified {
            status = ProbeStatus::Fail;
            let v = i.verification_status.as_deref().unwrap_or("unknown");
            notes.push(format!(
                "not verified for sending (verification status {v})"
            ));
        }
        let dkim = i.dkim_attributes.as_ref();
        let dkim_status = dkim
            .and_then(|d| d.status.clone())
            .unwrap_or_else(|| "NOT_STARTED".into());
        let signing = dkim.and_then(|d| d.signing_enabled) == Some(true);
        if dkim_status != "SUCCESS" {
            status = ProbeStatus::Fail;
            notes.push(format!("dkim status is {dkim_status}, not SUCCESS"));
        } else if !signing {
            status = ProbeStatus::Fail;
            notes.push("dkim records verified but signing is disabled".to_string());
        }
        let key = dkim.and_then(|d| d.current_signing_key_length.clone());
        if key.as_deref() == Some("RSA_1024_BIT") {
            status = worse(status, ProbeStatus::Warn);
            notes.push("dkim key is 1024-bit: gmail recommends 2048".to_string());
        }
        let mail_from = i.mail_from_attributes.as_ref();
        if let Some(mf) = mail_from
            && let Some(s) = mf
                .mail_from_domain_status
                .as_deref()
                .filter(|s| *s != "SUCCESS")
        {
            status = worse(status, ProbeStatus::Warn);
            let d = mf
                .mail_from_domain
                .as_deref()
                .unwrap_or("the custom mail-from domain");
            notes.push(format!(
                "custom mail-from {d} is {s}: spf alignment falls back to amazonses.com"
            ));
        }
        let ok = status != ProbeStatus::Fail;
        let message = if notes.is_empty() {
            format!(
                "ses: {id} is verified and signs with dkim ({})",
                key.as_deref().unwrap_or("key length not reported")
            )
        } else {
            format!("ses: {id}: {}", notes.join("; "))
        };
        let mut m = bool_measurement(ok, status, message)
            .with_evidence("verified_for_sending", verified.to_string())
            .with_evidence("dkim_status", dkim_status)
            .with_evidence("dkim_signing_enabled", signing.to_string());
        for (k, v) in [
            ("identity_type", i.identity_type.clone()),
            ("dkim_key_length", key),
            (
                "dkim_origin",
                dkim.and_then(|d| d.signing_attributes_origin.clone()),
            ),
            (
                "mail_from_domain",
                mail_from.and_then(|m| m.mail_from_domain.clone()),
            ),
            (
                "mail_from_status",
                mail_from.and_then(|m| m.mail_from_domain_status.clone()),
            ),
            ("request_id", rid),
        ] {
            if let Some(v) = v {
                m = m.with_evidence(k, v);
            }
        }
        Ok(m)
    }
}

// ---------------------------------------------------------------------------------------------
// ses.event_destinations

struct EventDestinationsProbe {
    api: Api,
    params: EventDestinationsParams,
}

/// Where an event destination delivers events record by record (CloudWatch only counts them,
/// Pinpoint feeds Pinpoint analytics: neither reaches your own systems).
fn destination_target(d: &EventDestination) -> Option<String> {
    if let Some(a) = d.sns_destination.as_ref().and_then(|x| x.topic_arn.clone()) {
        return Some(format!("sns {a}"));
    }
    if let Some(a) = d
        .event_bridge_destination
        .as_ref()
        .and_then(|x| x.event_bus_arn.clone())
    {
        return Some(format!("eventbridge {a}"));
    }
    d.kinesis_firehose_destination
        .as_ref()
        .and_then(|x| x.delivery_stream_arn.clone())
        .map(|a| format!("firehose {a}"))
}

#[async_trait]
impl Probe for EventDestinationsProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let what = "GET /v2/email/configuration-sets/{ConfigurationSetName}/event-destinations";
        let set = self.params.configuration_set.trim();
        let url = endpoint(
            &self.api.base,
            &[
                "v2",
                "email",
                "configuration-sets",
                set,
                "event-destinations",
            ],
        );
        let resp = self
            .api
            .call::<EventDestinations>(ctx, Method::GET, what, url, None)
            .await?;
        let rid = request_id(&resp);
        let list = resp.body.event_destinations;
        let mut m = Measurement::default();
        for d in &list {
            let name = d.name.clone().unwrap_or_else(|| "(unnamed)".into());
            let target =
                destination_target(d).unwrap_or_else(|| "cloudwatch or pinpoint only".into());
            let state = if d.enabled { "enabled" } else { "disabled" };
            m.evidence.insert(
                format!("destination.{name}"),
                format!(
                    "{state}, {target}, events {}",
                    d.matching_event_types.join(",")
                ),
            );
        }
        let mut missing = Vec::new();
        let mut covered = 0u64;
        for e in &self.params.required_events {
            let ok = list.iter().any(|d| {
                d.enabled
                    && destination_target(d).is_some()
                    && d.matching_event_types.iter().any(|t| t == e.wire())
            });
            if ok {
                covered += 1;
            } else {
                missing.push(e.wire());
            }
        }
        let events: Vec<&str> = self
            .params
            .required_events
            .iter()
            .map(|e| e.wire())
            .collect();
        let (status, message) = if missing.is_empty() {
            (
                ProbeStatus::Pass,
                format!(
                    "ses: configuration set {set} publishes {} events",
                    events.join(" + ")
                ),
            )
        } else if list.is_empty() {
            (
                ProbeStatus::Fail,
                format!("ses: configuration set {set} has no event destination"),
            )
        } else {
            (
                ProbeStatus::Fail,
                format!(
                    "ses: configuration set {set} publishes no {} events to an enabled sns, eventbridge or firehose destination",
                    missing.join(", ")
                ),
            )
        };
        m.value = Some(covered as f64);
        m.unit = "count".into();
        m.verdict = Some(status);
        m.message = message;
        m.sample_size = Some(self.params.required_events.len() as u64);
        if let Some(rid) = rid {
            m = m.with_evidence("request_id", rid);
        }
        Ok(m)
    }
}

// ---------------------------------------------------------------------------------------------
// ses.bounce_rate / ses.complaint_rate

#[derive(Clone, Copy)]
enum MetricMeasure {
    Bounce,
    Complaint,
}

struct MetricRate {
    api: Api,
    measure: MetricMeasure,
    window_days: u32,
    warn_at: Option<f64>,
    fail_at: Option<f64>,
    dimensions: BTreeMap<&'static str, String>,
}

#[async_trait]
impl Probe for MetricRate {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let what = "POST /v2/email/metrics/batch";
        let (num_metric, den_metric) = match self.measure {
            MetricMeasure::Bounce => ("PERMANENT_BOUNCE", "SEND"),
            MetricMeasure::Complaint => ("COMPLAINT", "DELIVERY"),
        };
        let end = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let start = end.saturating_sub(u64::from(self.window_days) * 86_400);
        let query = |id: &str, metric: &str| {
            let mut q = serde_json::json!({
                "Id": id, "Namespace": "VDM", "Metric": metric, "StartDate": start, "EndDate": end
            });
            if !self.dimensions.is_empty() {
                q["Dimensions"] = serde_json::json!(self.dimensions);
            }
            q
        };
        let body = serde_json::json!({ "Queries": [query("numerator", num_metric), query("denominator", den_metric)] });
        let body = serde_json::to_vec(&body).map_err(|e| {
            ProbeError::permanent(format!("{VENDOR}: {what}: cannot encode the request: {e}"))
        })?;
        let url = endpoint(&self.api.base, &["v2", "email", "metrics", "batch"]);
        let resp = self
            .api
            .call::<MetricData>(ctx, Method::POST, what, url, Some(body))
            .await?;
        let rid = request_id(&resp);
        let data = resp.body;
        if let Some(err) = data.errors.first() {
            let code = err.code.as_deref().unwrap_or("error");
            let hint = if code == "ACCESS_DENIED" {
                ": is the virtual deliverability manager (vdm) enabled, and may the key call ses:BatchGetMetricData?"
            } else {
                ""
            };
            let msg = err.message.as_deref().unwrap_or("");
            let id = err.id.as_deref().unwrap_or("?");
            let e = format!("{VENDOR}: {what}: query `{id}` failed with {code}{hint} {msg}");
            return Err(if code == "INTERNAL_FAILURE" {
                ProbeError::transient(e.trim_end().to_string())
            } else {
                ProbeError::permanent(e.trim_end().to_string())
            });
        }
        let sum = |id: &str| -> Result<u64, ProbeError> {
            data.results
                .iter()
                .find(|r| r.id.as_deref() == Some(id))
                .map(|r| r.values.iter().fold(0u64, |a, v| a.saturating_add(*v)))
                .ok_or_else(|| {
                    ProbeError::permanent(format!("{VENDOR}: {what}: no result for query `{id}`"))
                })
        };
        let (numerator, denominator) = (sum("numerator")?, sum("denominator")?);
        let (what_rate, nl, dl) = match self.measure {
            MetricMeasure::Bounce => ("ses permanent-bounce rate", "permanent_bounces", "sends"),
            MetricMeasure::Complaint => ("ses complaint rate", "complaints", "deliveries"),
        };
        let mut m = Rate {
            what: what_rate,
            numerator,
            numerator_label: nl,
            denominator,
            denominator_label: dl,
            window_days: self.window_days,
            warn_at: self.warn_at,
            fail_at: self.fail_at,
        }
        .measure();
        for (k, v) in &self.dimensions {
            m = m.with_evidence(format!("dimension.{k}"), v.clone());
        }
        if let Some(rid) = rid {
            m = m.with_evidence("request_id", rid);
        }
        Ok(m)
    }
}
