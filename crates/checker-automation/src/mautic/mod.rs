//! Mautic kinds (`mautic.*`): the open-source automation platform many teams self-host, through
//! its REST API as documented by `mautic/api-library`. The API must be enabled in Mautic's
//! Configuration → API Settings (with HTTP basic auth enabled for `auth = "basic"`).

pub mod client;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeRegistry};
use funnelgate_core::Measurement;
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::evaluate::{self, EmailRef, Flow, FlowError, FormField, Scoring, Segment};
use crate::http::{is_not_found, validate_base_url, vanished};
use crate::kinds::{KindDoc, Omission, Validate, register_kind};
use crate::measure::Measure;
use crate::params::{
    check_email, check_names, check_non_negative, check_window_days, check_window_hours, defaults,
};
use client::{Auth, Mautic, VENDOR, id_of, num, truthy};

const PERMS: &str = "an API user (Basic) or OAuth2 client whose role may view the objects read";

/// The Mautic kinds.
pub const KINDS: [KindDoc; 8] = [
    KindDoc {
        kind: "mautic.auth_and_quota",
        vendor: VENDOR,
        measure: Some(Measure::AuthAndQuota),
        permissions: PERMS,
        calls: "`GET /api/contacts?limit=1`",
        notes: "Mautic has no daily API quota. When its optional API rate limiter is on, the \
                `X-RateLimit-Limit`/`-Remaining`/`-Reset` headers give the budget; otherwise the \
                probe PASSes on working credentials and says there is no budget to measure. 401/403 \
                (including \"API disabled\") are FAIL.",
    },
    KindDoc {
        kind: "mautic.lead_nurture_active",
        vendor: VENDOR,
        measure: Some(Measure::LeadNurtureActive),
        permissions: PERMS,
        calls: "`GET /api/campaigns?minimal=1` (paged by `start`/`limit` to `total`)",
        notes: "A campaign is on when `isPublished` is true and its `publishDown` (if any) is in the \
                future. Required campaigns are named by id or exact name.",
    },
    KindDoc {
        kind: "mautic.flow_errors",
        vendor: VENDOR,
        measure: Some(Measure::FlowErrors),
        permissions: PERMS,
        calls: "`GET /api/contacts/activity?filters[includeEvents][]=campaign.event&filters[dateFrom]=…` (paged by `page` to `maxPages`)",
        notes: "Counts campaign-event timeline entries whose log carries a failure \
                (`fail_reason`, `isFailed`, or `metadata.failed`/`metadata.errors`), as Mautic's \
                campaign timeline writes them.",
    },
    KindDoc {
        kind: "mautic.segment_freshness",
        vendor: VENDOR,
        measure: Some(Measure::SegmentFreshness),
        permissions: PERMS,
        calls: "`GET /api/segments`; per segment `GET /api/contacts?search=segment:{alias}&orderBy=dateAdded&orderByDir=desc&limit=1`; new leads `GET /api/contacts?where[…]=dateAdded gte …`",
        notes: "Mautic rebuilds segments from cron (`mautic:segments:update`). The age of a \
                segment's newest member (by the contact's `dateAdded`) is compared with leads \
                arriving in the window: new leads but no new segment members means the cron (or \
                the segment's filters) stopped. No new leads is NO_DATA. Canary leads (tag) are \
                not counted.",
    },
    KindDoc {
        kind: "mautic.scoring_configured",
        vendor: VENDOR,
        measure: Some(Measure::ScoringConfigured),
        permissions: PERMS,
        calls: "`GET /api/points`, `GET /api/points/triggers`; `GET /api/contacts?where[…]` counts by `dateAdded` and `points`",
        notes: "Scoring is configured when at least one published point action or point trigger \
                exists (else FAIL). Crossing: contacts created in the window whose `points` reached \
                the threshold (Mautic's API does not expose the points history in bulk). Fewer new \
                leads than `min_new_leads` is NO_DATA. Canary leads are not counted.",
    },
    KindDoc {
        kind: "mautic.unsubscribe_roundtrip",
        vendor: VENDOR,
        measure: Some(Measure::UnsubscribeRoundtrip),
        permissions: PERMS,
        calls: "`GET /api/contacts?search=email:{email}`",
        notes: "The test identity (unsubscribed once through a real email's unsubscribe link) must \
                carry a `doNotContact` entry for the `email` channel. A missing identity is ERROR: \
                nothing can be proven without it.",
    },
    KindDoc {
        kind: "mautic.email_assets_valid",
        vendor: VENDOR,
        measure: Some(Measure::EmailAssetsValid),
        permissions: PERMS,
        calls: "`GET /api/campaigns?publishedOnly=1&minimal=1`; `GET /api/campaigns/{id}`; `GET /api/emails/{id}`",
        notes: "Every `email.send` event of every published campaign must point at an email that \
                exists (404 = deleted) and is published (and not past its `publishDown`). A \
                campaign listed then gone is an ERROR (it changed while the probe ran).",
    },
    KindDoc {
        kind: "mautic.form_mapping",
        vendor: VENDOR,
        measure: Some(Measure::FormMapping),
        permissions: PERMS,
        calls: "`GET /api/forms/{id}`",
        notes: "Fields are matched by `alias` or by the contact field they write to (`leadField`, \
                `mappedField` in Mautic 5). Hidden fields must have `type = hidden`, and every \
                expected field must write to a contact field.",
    },
];

/// Mautic measures left out: none (every measure has a kind).
pub const OMISSIONS: [Omission; 0] = [];

fn check_conn(base_url: &str) -> Result<(), ProbeError> {
    validate_base_url("base_url", base_url)
}

macro_rules! conn_fields {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Mautic's base URL, e.g. `https://mautic.example.com` (the API lives under `/api`).
            pub base_url: String,
            /// `basic` (secret = `username:password`) or `oauth2` (secret = access token).
            #[serde(default)]
            pub auth: Auth,
            $($body)*
        }
    };
}

conn_fields! {
    /// Params of `mautic.auth_and_quota`.
    pub struct AuthParams {}
}
impl Validate for AuthParams {
    fn validate(&self) -> Result<(), ProbeError> {
        check_conn(&self.base_url)
    }
}

conn_fields! {
    /// Params of `mautic.lead_nurture_active`.
    pub struct NurtureParams {
        /// Campaigns that must be published, by id or exact name.
        pub required: Vec<String>,
    }
}
impl Validate for NurtureParams {
    fn validate(&self) -> Result<(), ProbeError> {
        check_conn(&self.base_url)?;
        check_names("required", &self.required, false)
    }
}

conn_fields! {
    /// Params of `mautic.flow_errors`.
    pub struct FlowErrorsParams {
        /// Look-back window in hours.
        #[serde(default = "defaults::window_hours_24")]
        pub window_hours: u32,
    }
}
impl Validate for FlowErrorsParams {
    fn validate(&self) -> Result<(), ProbeError> {
        check_conn(&self.base_url)?;
        check_window_hours("window_hours", self.window_hours)
    }
}

conn_fields! {
    /// Params of `mautic.segment_freshness`.
    pub struct SegmentParams {
        /// Segments to watch, by alias or exact name; empty watches every published segment.
        #[serde(default)]
        pub segments: Vec<String>,
        /// Window in hours in which new leads must show up in the segments.
        #[serde(default = "defaults::window_hours_24")]
        pub window_hours: u32,
        /// Tag of canary leads, excluded from the new-lead count.
        #[serde(default = "defaults::canary_tag")]
        pub canary_tag: String,
    }
}
impl Validate for SegmentParams {
    fn validate(&self) -> Result<(), ProbeError> {
        check_conn(&self.base_url)?;
        check_names("segments", &self.segments, true)?;
        check_names("canary_tag", std::slice::from_ref(&self.canary_tag), false)?;
        check_window_hours("window_hours", self.window_hours)
    }
}

conn_fields! {
    /// Params of `mautic.scoring_configured`.
    pub struct ScoringParams {
        /// The points a contact needs to count as an MQL.
        #[serde(default = "defaults::mql_threshold")]
        pub mql_threshold: f64,
        /// Look-back window in days.
        #[serde(default = "defaults::window_days_14")]
        pub window_days: u32,
        /// Fewer new leads than this in the window is NO_DATA.
        #[serde(default = "defaults::min_new_leads")]
        pub min_new_leads: u64,
        /// Tag of canary leads, excluded from the counts.
        #[serde(default = "defaults::canary_tag")]
        pub canary_tag: String,
    }
}
impl Validate for ScoringParams {
    fn validate(&self) -> Result<(), ProbeError> {
        check_conn(&self.base_url)?;
        check_non_negative("mql_threshold", self.mql_threshold)?;
        check_names("canary_tag", std::slice::from_ref(&self.canary_tag), false)?;
        check_window_days("window_days", self.window_days)
    }
}

conn_fields! {
    /// Params of `mautic.unsubscribe_roundtrip`.
    pub struct UnsubscribeParams {
        /// Email of the test identity that was unsubscribed through a real email's link.
        pub email: String,
    }
}
impl Validate for UnsubscribeParams {
    fn validate(&self) -> Result<(), ProbeError> {
        check_conn(&self.base_url)?;
        check_email("email", &self.email)
    }
}

conn_fields! {
    /// Params of `mautic.email_assets_valid`.
    pub struct EmailAssetsParams {}
}
impl Validate for EmailAssetsParams {
    fn validate(&self) -> Result<(), ProbeError> {
        check_conn(&self.base_url)
    }
}

conn_fields! {
    /// Params of `mautic.form_mapping`.
    pub struct FormParams {
        /// The form's id.
        pub form_id: u64,
        /// Visible fields the form must have (alias or contact field), e.g. `email`.
        #[serde(default)]
        pub expected_fields: Vec<String>,
        /// Fields that must be hidden fields on the form (the UTM set by default).
        #[serde(default = "defaults::utm_fields")]
        pub hidden_fields: Vec<String>,
    }
}
impl Validate for FormParams {
    fn validate(&self) -> Result<(), ProbeError> {
        check_conn(&self.base_url)?;
        check_names("expected_fields", &self.expected_fields, true)?;
        check_names("hidden_fields", &self.hidden_fields, true)?;
        if self.expected_fields.is_empty() && self.hidden_fields.is_empty() {
            return Err(ProbeError::params(
                "`expected_fields` and `hidden_fields` are both empty: nothing to check",
            ));
        }
        Ok(())
    }
}

/// Register the Mautic kinds.
pub fn register(r: &mut ProbeRegistry) {
    register_kind(r, &KINDS[0], AuthProbe);
    register_kind(r, &KINDS[1], NurtureProbe);
    register_kind(r, &KINDS[2], FlowErrorsProbe);
    register_kind(r, &KINDS[3], SegmentProbe);
    register_kind(r, &KINDS[4], ScoringProbe);
    register_kind(r, &KINDS[5], UnsubscribeProbe);
    register_kind(r, &KINDS[6], EmailAssetsProbe);
    register_kind(r, &KINDS[7], FormProbe);
}

/// `mautic.auth_and_quota`.
pub struct AuthProbe(AuthParams);
/// `mautic.lead_nurture_active`.
pub struct NurtureProbe(NurtureParams);
/// `mautic.flow_errors`.
pub struct FlowErrorsProbe(FlowErrorsParams);
/// `mautic.segment_freshness`.
pub struct SegmentProbe(SegmentParams);
/// `mautic.scoring_configured`.
pub struct ScoringProbe(ScoringParams);
/// `mautic.unsubscribe_roundtrip`.
pub struct UnsubscribeProbe(UnsubscribeParams);
/// `mautic.email_assets_valid`.
pub struct EmailAssetsProbe(EmailAssetsParams);
/// `mautic.form_mapping`.
pub struct FormProbe(FormParams);

fn q(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn time_of(v: &Value, k: &str) -> Option<Timestamp> {
    str_of(v, k).and_then(crate::time::parse)
}

/// Whether a published object is live now (`isPublished` and not past `publishDown`).
fn live(v: &Value, now: Timestamp) -> bool {
    truthy(v.get("isPublished")) && time_of(v, "publishDown").is_none_or(|d| d > now)
}

/// `where[n][col]=…` filters.
fn where_clauses(clauses: &[(&str, &str, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, (col, expr, val)) in clauses.iter().enumerate() {
        out.push((format!("where[{i}][col]"), col.to_string()));
        out.push((format!("where[{i}][expr]"), expr.to_string()));
        out.push((format!("where[{i}][val]"), val.clone()));
    }
    out
}

/// Mautic's `where` wants `Y-m-d H:i:s` (UTC).
fn sql_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

#[async_trait]
impl Probe for AuthProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let m = Mautic::new(ctx, &self.0.base_url, self.0.auth)?;
        match m
            .get(
                "/api/contacts",
                &q(&[("limit", "1".into()), ("minimal", "true".into())]),
            )
            .await
        {
            Ok(reply) => Ok(evaluate::auth_ok(
                VENDOR,
                client::budget(&reply.headers).as_ref(),
            )),
            Err(e) if e.is_auth() => Ok(evaluate::auth_failed(&e.error.message)),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Probe for NurtureProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let m = Mautic::new(ctx, &self.0.base_url, self.0.auth)?;
        let now = Timestamp::now();
        let listing = m
            .list(
                "/api/campaigns",
                "campaigns",
                &q(&[("minimal", "1".into())]),
            )
            .await?;
        let flows: Vec<Flow> = listing
            .items
            .iter()
            .filter_map(|c| {
                Some(Flow {
                    id: c.get("id").and_then(id_of)?,
                    name: str_of(c, "name").unwrap_or_default().to_string(),
                    enabled: live(c, now),
                })
            })
            .collect();
        Ok(evaluate::nurture_active(VENDOR, &flows, &self.0.required))
    }
}

/// A failure recorded in a campaign-event timeline entry, if any.
fn failure_of(event: &Value) -> Option<FlowError> {
    let log = event.get("details").and_then(|d| d.get("log"))?;
    let meta = log.get("metadata");
    let reason = str_of(log, "fail_reason")
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .or_else(|| {
            meta.and_then(|m| m.get("reason"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| {
            meta.and_then(|m| m.get("errors")).and_then(|e| match e {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Array(a) if !a.is_empty() => Some(a[0].to_string()),
                Value::Object(o) if !o.is_empty() => o.values().next().map(|v| v.to_string()),
                _ => None,
            })
        });
    let failed = reason.is_some()
        || truthy(log.get("isFailed"))
        || truthy(meta.and_then(|m| m.get("failed")));
    if !failed {
        return None;
    }
    let flow = str_of(log, "campaign_name")
        .or_else(|| {
            event
                .get("details")
                .and_then(|d| d.get("event"))
                .and_then(|e| e.get("campaign"))
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
        })
        .or_else(|| str_of(event, "eventLabel"))
        .unwrap_or("unnamed campaign")
        .to_string();
    Some(FlowError {
        flow,
        reason: reason.unwrap_or_else(|| "failed (no reason recorded)".into()),
    })
}

#[async_trait]
impl Probe for FlowErrorsProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let m = Mautic::new(ctx, &self.0.base_url, self.0.auth)?;
        let window = Duration::from_secs(u64::from(self.0.window_hours) * 3600);
        let since = crate::time::ago(Timestamp::now(), window);
        let path = "/api/contacts/activity";
        let mut errors = Vec::new();
        let mut page = 1u64;
        loop {
            let reply = m
                .get(
                    path,
                    &q(&[
                        ("filters[includeEvents][]", "campaign.event".into()),
                        ("filters[dateFrom]", crate::time::format(since)),
                        ("page", page.to_string()),
                        ("limit", "100".into()),
                    ]),
                )
                .await?;
            let events = match reply.body.get("events") {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::Object(o)) => o.values().cloned().collect(),
                _ => Vec::new(),
            };
            let max_pages = reply.body.get("maxPages").and_then(num).unwrap_or(1);
            errors.extend(events.iter().filter_map(failure_of));
            if page >= max_pages || page >= 100 {
                break;
            }
            if events.is_empty() {
                let total = reply.body.get("total").and_then(num);
                return Err(crate::http::paging_cut_short(
                    VENDOR,
                    &format!("GET {path}"),
                    (page - 1) * 100,
                    total,
                ));
            }
            page += 1;
        }
        Ok(evaluate::flow_errors(VENDOR, &errors, window))
    }
}

#[async_trait]
impl Probe for SegmentProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let m = Mautic::new(ctx, &p.base_url, p.auth)?;
        let now = Timestamp::now();
        let window = Duration::from_secs(u64::from(p.window_hours) * 3600);
        let listing = m.list("/api/segments", "lists", &[]).await?;
        let mut watched = Vec::new();
        for s in &listing.items {
            let alias = str_of(s, "alias").unwrap_or_default();
            let name = str_of(s, "name").unwrap_or_default();
            let wanted = if p.segments.is_empty() {
                live(s, now)
            } else {
                p.segments.iter().any(|w| w == alias || w == name)
            };
            if wanted && !alias.is_empty() {
                watched.push((alias.to_string(), name.to_string()));
            }
        }
        let missing: Vec<&String> = p
            .segments
            .iter()
            .filter(|w| !watched.iter().any(|(a, n)| a == *w || n == *w))
            .collect();
        if !missing.is_empty() {
            return Err(ProbeError::permanent(format!(
                "{VENDOR}: segment(s) {} not found among {} segments",
                missing
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                listing.items.len()
            )));
        }
        let mut segments = Vec::new();
        for (alias, name) in &watched {
            let newest = m
                .search_contacts(
                    &format!("segment:{alias} !tag:{}", p.canary_tag),
                    1,
                    "dateAdded",
                )
                .await?;
            segments.push(Segment {
                name: name.clone(),
                newest_member: newest.first().and_then(|c| time_of(c, "dateAdded")),
            });
        }
        let mut query = where_clauses(&[("dateAdded", "gte", sql_time(now - window))]);
        query.push(("search".into(), format!("!tag:{}", p.canary_tag)));
        let new_leads = m.count_contacts(&query).await?;
        Ok(evaluate::segment_freshness(
            VENDOR, &segments, new_leads, window, now,
        ))
    }
}

#[async_trait]
impl Probe for ScoringProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let m = Mautic::new(ctx, &p.base_url, p.auth)?;
        let now = Timestamp::now();
        let window = Duration::from_secs(u64::from(p.window_days) * 86_400);
        let actions = m.list("/api/points", "points", &[]).await?;
        let triggers = m.list("/api/points/triggers", "triggers", &[]).await?;
        let live_actions = actions.items.iter().filter(|a| live(a, now)).count();
        let live_triggers = triggers.items.iter().filter(|a| live(a, now)).count();
        let not_configured = (live_actions == 0 && live_triggers == 0).then(|| {
            format!(
                "no published point actions or point triggers ({} actions, {} triggers, none published)",
                actions.items.len(),
                triggers.items.len()
            )
        });
        let since = sql_time(now - window);
        let search = ("search".to_string(), format!("!tag:{}", p.canary_tag));
        let mut created_q = where_clauses(&[("dateAdded", "gte", since.clone())]);
        created_q.push(search.clone());
        let created = m.count_contacts(&created_q).await?;
        let mut crossed_q = where_clauses(&[
            ("dateAdded", "gte", since),
            ("points", "gte", p.mql_threshold.to_string()),
        ]);
        crossed_q.push(search);
        let crossed = m.count_contacts(&crossed_q).await?;
        Ok(evaluate::scoring(
            VENDOR,
            &Scoring {
                not_configured,
                created,
                crossed,
            },
            p.mql_threshold,
            p.min_new_leads,
            window,
        ))
    }
}

/// The email-channel do-not-contact entry of a contact, if any (`reason` 1 = unsubscribed,
/// 2 = bounced, 3 = manual).
fn email_dnc(contact: &Value) -> Option<String> {
    let list = contact.get("doNotContact")?;
    let entries: Vec<&Value> = match list {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => Vec::new(),
    };
    entries
        .into_iter()
        .find(|e| str_of(e, "channel").is_none_or(|c| c == "email"))
        .map(|e| match e.get("reason").and_then(num) {
            Some(1) => "do-not-contact: unsubscribed".to_string(),
            Some(2) => "do-not-contact: bounced".to_string(),
            Some(3) => "do-not-contact: set manually".to_string(),
            _ => "do-not-contact".to_string(),
        })
}

#[async_trait]
impl Probe for UnsubscribeProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let m = Mautic::new(ctx, &p.base_url, p.auth)?;
        let found = m
            .search_contacts(&format!("email:{}", p.email), 2, "id")
            .await?;
        let Some(contact) = found.first() else {
            return Err(ProbeError::permanent(format!(
                "{VENDOR}: the unsubscribe test identity is not a contact: create it, unsubscribe it once through a real email's link, then this probe proves the opt-out sticks"
            )));
        };
        Ok(match email_dnc(contact) {
            Some(how) => evaluate::unsubscribe(VENDOR, true, &how),
            None => evaluate::unsubscribe(VENDOR, false, "no do-not-contact entry for email"),
        })
    }
}

#[async_trait]
impl Probe for EmailAssetsProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let m = Mautic::new(ctx, &self.0.base_url, self.0.auth)?;
        let now = Timestamp::now();
        let listing = m
            .list(
                "/api/campaigns",
                "campaigns",
                &q(&[("publishedOnly", "1".into()), ("minimal", "1".into())]),
            )
            .await?;
        let mut emails: HashMap<String, Option<String>> = HashMap::new();
        let mut refs = Vec::new();
        for c in listing.items.iter().filter(|c| live(c, now)) {
            let Some(id) = c.get("id").and_then(id_of) else {
                continue;
            };
            let name = str_of(c, "name").unwrap_or_default().to_string();
            let detail = match m.get(&format!("/api/campaigns/{id}"), &[]).await {
                Ok(r) => r.body,
                Err(e) if is_not_found(&e) => {
                    return Err(vanished(VENDOR, &format!("campaign {id} (`{name}`)")));
                }
                Err(e) => return Err(e.into()),
            };
            let events = detail
                .get("campaign")
                .and_then(|c| c.get("events"))
                .map(|e| match e {
                    Value::Array(a) => a.clone(),
                    Value::Object(o) => o.values().cloned().collect(),
                    _ => Vec::new(),
                })
                .unwrap_or_default();
            for ev in events
                .iter()
                .filter(|e| str_of(e, "type") == Some("email.send"))
            {
                let email_id = ev.get("channelId").and_then(id_of).or_else(|| {
                    ev.get("properties")
                        .and_then(|p| p.get("email"))
                        .and_then(id_of)
                });
                let Some(email_id) = email_id else {
                    refs.push(EmailRef {
                        flow: name.clone(),
                        email: format!("in event `{}`", str_of(ev, "name").unwrap_or("send email")),
                        problem: Some("not set (the send-email action has no email)".into()),
                    });
                    continue;
                };
                if !emails.contains_key(&email_id) {
                    let problem = match m.get(&format!("/api/emails/{email_id}"), &[]).await {
                        Ok(r) => {
                            let e = r.body.get("email").cloned().unwrap_or(Value::Null);
                            if !truthy(e.get("isPublished")) {
                                Some("unpublished".to_string())
                            } else if time_of(&e, "publishDown").is_some_and(|d| d <= now) {
                                Some("past its unpublish date".to_string())
                            } else {
                                None
                            }
                        }
                        Err(e) if is_not_found(&e) => Some("deleted".to_string()),
                        Err(e) => return Err(e.into()),
                    };
                    emails.insert(email_id.clone(), problem);
                }
                refs.push(EmailRef {
                    flow: name.clone(),
                    email: email_id.clone(),
                    problem: emails.get(&email_id).cloned().flatten(),
                });
            }
        }
        Ok(evaluate::email_assets(VENDOR, &refs))
    }
}

#[async_trait]
impl Probe for FormProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let m = Mautic::new(ctx, &p.base_url, p.auth)?;
        let reply = match m.get(&format!("/api/forms/{}", p.form_id), &[]).await {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => {
                return Err(ProbeError::permanent(format!(
                    "{VENDOR}: form {} does not exist (deleted, or the wrong id in `form_id`)",
                    p.form_id
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let form = reply.body.get("form").cloned().unwrap_or(Value::Null);
        let raw: Vec<Value> = match form.get("fields") {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Object(o)) => o.values().cloned().collect(),
            _ => {
                return Err(ProbeError::permanent(format!(
                    "{VENDOR}: GET /api/forms/{}: reply has no `form.fields`",
                    p.form_id
                )));
            }
        };
        let exposed = raw
            .iter()
            .any(|f| f.get("leadField").is_some() || f.get("mappedField").is_some());
        let fields: Vec<FormField> = raw
            .iter()
            .map(|f| FormField {
                name: str_of(f, "alias").unwrap_or_default().to_string(),
                hidden: str_of(f, "type") == Some("hidden"),
                mapped_to: str_of(f, "mappedField")
                    .or_else(|| str_of(f, "leadField"))
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            })
            .collect();
        let label = format!(
            "{} (`{}`)",
            p.form_id,
            str_of(&form, "name").unwrap_or("unnamed")
        );
        Ok(evaluate::form_mapping(
            VENDOR,
            &label,
            &fields,
            &p.expected_fields,
            &p.hidden_fields,
            exposed,
        ))
    }
}
