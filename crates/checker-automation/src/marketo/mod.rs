//! Marketo kinds (`marketo.*`), through the REST API: identity token, usage stats, smart
//! campaigns, leads, activities, emails and forms. The secret is `client_id:client_secret` of a
//! LaunchPoint custom service whose API-only user has the read permissions listed per kind.

pub mod client;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeRegistry};
use funnelgate_core::Measurement;
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::evaluate::{self, Budget, EmailRef, Flow, FlowError, FormField, Scoring};
use crate::http::validate_base_url;
use crate::kinds::{KindDoc, Omission, Validate, register_kind};
use crate::measure::Measure;
use crate::params::{
    check_email, check_names, check_non_negative, check_window_days, check_window_hours, defaults,
};
use client::{Marketo, QUOTA_RESETS, VENDOR, is_auth, is_not_found, is_quota, type_ids};

/// The Marketo kinds.
pub const KINDS: [KindDoc; 7] = [
    KindDoc {
        kind: "marketo.auth_and_quota",
        vendor: VENDOR,
        measure: Some(Measure::AuthAndQuota),
        permissions: "API role: Read-Only Lead (any API role lets the usage call through)",
        calls: "`GET /identity/oauth/token?grant_type=client_credentials`; `GET /rest/v1/stats/usage.json`",
        notes: "Used = today's `result[0].total` over `daily_quota` (Marketo's default is 50,000 \
                calls per day; ask your account team for yours). Bad client credentials (401 from \
                the identity service), 601/602 and 603 are FAIL; 607 (quota exhausted) is 100 % with \
                the reset time.",
    },
    KindDoc {
        kind: "marketo.lead_nurture_active",
        vendor: VENDOR,
        measure: Some(Measure::LeadNurtureActive),
        permissions: "API role: Read-Only Assets",
        calls: "`GET /rest/asset/v1/smartCampaigns.json` (paged by `offset`/`maxReturn=200`)",
        notes: "A smart campaign is on when `isActive` is true (trigger campaigns) — batch \
                campaigns that must run should be named only if they are recurring and active.",
    },
    KindDoc {
        kind: "marketo.flow_errors",
        vendor: VENDOR,
        measure: Some(Measure::FlowErrors),
        permissions: "API role: Read-Only Activity",
        calls: "`GET /rest/v1/activities/types.json`; `GET /rest/v1/activities/pagingtoken.json?sinceDatetime=`; `GET /rest/v1/activities.json?activityTypeIds=` (paged by `nextPageToken` while `moreResult`)",
        notes: "Marketo logs no generic \"flow step failed\" activity, so the activity types that \
                mean a failed action in your instance are named in `error_activity_types` (resolved \
                by name; an unknown name is an ERROR listing the known ones).",
    },
    KindDoc {
        kind: "marketo.scoring_configured",
        vendor: VENDOR,
        measure: Some(Measure::ScoringConfigured),
        permissions: "API role: Read-Only Lead, Read-Only Activity",
        calls: "`GET /rest/v1/leads/describe.json`; activities `New Lead` and `Change Score`",
        notes: "Configured when the score field (default `leadScore`) exists on the lead. Created = \
                distinct leads with a `New Lead` activity in the window; crossed = distinct leads with \
                a `Change Score` activity whose old value was below and new value at or above the \
                threshold.",
    },
    KindDoc {
        kind: "marketo.unsubscribe_roundtrip",
        vendor: VENDOR,
        measure: Some(Measure::UnsubscribeRoundtrip),
        permissions: "API role: Read-Only Lead",
        calls: "`GET /rest/v1/leads.json?filterType=email&filterValues={email}&fields=id,email,unsubscribed`",
        notes: "The test identity must have `unsubscribed = true`. A missing identity is ERROR.",
    },
    KindDoc {
        kind: "marketo.email_assets_valid",
        vendor: VENDOR,
        measure: Some(Measure::EmailAssetsValid),
        permissions: "API role: Read-Only Assets",
        calls: "`GET /rest/asset/v1/email/{id}.json` per configured email",
        notes: "Marketo's REST API does not expose smart-campaign flow steps, so the emails active \
                flows send are listed in `email_ids`; each must exist and be `approved` (a draft or \
                deleted email fails).",
    },
    KindDoc {
        kind: "marketo.form_mapping",
        vendor: VENDOR,
        measure: Some(Measure::FormMapping),
        permissions: "API role: Read-Only Assets",
        calls: "`GET /rest/asset/v1/form/{id}/fields.json`",
        notes: "Form fields are lead fields by construction (their `id` is the lead field's name), so \
                mapping is checked by presence; hidden fields need `dataType = hidden`.",
    },
];

/// Measures Marketo's API cannot answer.
pub const OMISSIONS: [Omission; 1] = [Omission {
    vendor: VENDOR,
    measure: Measure::SegmentFreshness,
    reason: "the REST API exposes neither smart-list membership counts nor when a lead joined a \
             smart list, so segment freshness cannot be measured (static lists are not rebuilt)",
}];

macro_rules! conn_fields {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// The instance's REST endpoint without `/rest`, e.g. `https://123-ABC-456.mktorest.com`
            /// (Admin → Web Services); the identity endpoint is the same host.
            pub base_url: String,
            $($body)*
        }
    };
}

conn_fields! {
    /// Params of `marketo.auth_and_quota`.
    pub struct AuthParams {
        /// The instance's daily API call quota.
        #[serde(default = "default_quota")]
        pub daily_quota: u64,
    }
}
fn default_quota() -> u64 {
    50_000
}
impl Validate for AuthParams {
    fn validate(&self) -> Result<(), ProbeError> {
        validate_base_url("base_url", &self.base_url)?;
        if self.daily_quota == 0 {
            return Err(ProbeError::params("`daily_quota` must be at least 1"));
        }
        Ok(())
    }
}

conn_fields! {
    /// Params of `marketo.lead_nurture_active`.
    pub struct NurtureParams {
        /// Smart campaigns that must be active, by id or exact name.
        pub required: Vec<String>,
    }
}
impl Validate for NurtureParams {
    fn validate(&self) -> Result<(), ProbeError> {
        validate_base_url("base_url", &self.base_url)?;
        check_names("required", &self.required, false)
    }
}

conn_fields! {
    /// Params of `marketo.flow_errors`.
    pub struct FlowErrorsParams {
        /// Activity type names that mean a flow action failed in this instance.
        pub error_activity_types: Vec<String>,
        /// Look-back window in hours.
        #[serde(default = "defaults::window_hours_24")]
        pub window_hours: u32,
    }
}
impl Validate for FlowErrorsParams {
    fn validate(&self) -> Result<(), ProbeError> {
        validate_base_url("base_url", &self.base_url)?;
        check_names("error_activity_types", &self.error_activity_types, false)?;
        check_window_hours("window_hours", self.window_hours)
    }
}

conn_fields! {
    /// Params of `marketo.scoring_configured`.
    pub struct ScoringParams {
        /// The lead score field's REST name.
        #[serde(default = "default_score_field")]
        pub score_field: String,
        /// The score a lead needs to count as an MQL.
        #[serde(default = "defaults::mql_threshold")]
        pub mql_threshold: f64,
        /// Look-back window in days.
        #[serde(default = "defaults::window_days_14")]
        pub window_days: u32,
        /// Fewer new leads than this in the window is NO_DATA.
        #[serde(default = "defaults::min_new_leads")]
        pub min_new_leads: u64,
    }
}
fn default_score_field() -> String {
    "leadScore".into()
}
impl Validate for ScoringParams {
    fn validate(&self) -> Result<(), ProbeError> {
        validate_base_url("base_url", &self.base_url)?;
        check_names(
            "score_field",
            std::slice::from_ref(&self.score_field),
            false,
        )?;
        check_non_negative("mql_threshold", self.mql_threshold)?;
        check_window_days("window_days", self.window_days)
    }
}

conn_fields! {
    /// Params of `marketo.unsubscribe_roundtrip`.
    pub struct UnsubscribeParams {
        /// Email of the test identity that was unsubscribed through a real email's link.
        pub email: String,
    }
}
impl Validate for UnsubscribeParams {
    fn validate(&self) -> Result<(), ProbeError> {
        validate_base_url("base_url", &self.base_url)?;
        check_email("email", &self.email)
    }
}

conn_fields! {
    /// Params of `marketo.email_assets_valid`.
    pub struct EmailAssetsParams {
        /// Ids of the emails the active flows send.
        pub email_ids: Vec<u64>,
    }
}
impl Validate for EmailAssetsParams {
    fn validate(&self) -> Result<(), ProbeError> {
        validate_base_url("base_url", &self.base_url)?;
        if self.email_ids.is_empty() {
            return Err(ProbeError::params(
                "`email_ids` must name at least one email",
            ));
        }
        Ok(())
    }
}

conn_fields! {
    /// Params of `marketo.form_mapping`.
    pub struct FormParams {
        /// The form's id.
        pub form_id: u64,
        /// Visible fields the form must have (lead field REST names), e.g. `Email`.
        #[serde(default)]
        pub expected_fields: Vec<String>,
        /// Fields that must be hidden fields on the form (the UTM set by default).
        #[serde(default = "defaults::utm_fields")]
        pub hidden_fields: Vec<String>,
    }
}
impl Validate for FormParams {
    fn validate(&self) -> Result<(), ProbeError> {
        validate_base_url("base_url", &self.base_url)?;
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

/// Register the Marketo kinds.
pub fn register(r: &mut ProbeRegistry) {
    register_kind(r, &KINDS[0], AuthProbe);
    register_kind(r, &KINDS[1], NurtureProbe);
    register_kind(r, &KINDS[2], FlowErrorsProbe);
    register_kind(r, &KINDS[3], ScoringProbe);
    register_kind(r, &KINDS[4], UnsubscribeProbe);
    register_kind(r, &KINDS[5], EmailAssetsProbe);
    register_kind(r, &KINDS[6], FormProbe);
}

/// `marketo.auth_and_quota`.
pub struct AuthProbe(AuthParams);
/// `marketo.lead_nurture_active`.
pub struct NurtureProbe(NurtureParams);
/// `marketo.flow_errors`.
pub struct FlowErrorsProbe(FlowErrorsParams);
/// `marketo.scoring_configured`.
pub struct ScoringProbe(ScoringParams);
/// `marketo.unsubscribe_roundtrip`.
pub struct UnsubscribeProbe(UnsubscribeParams);
/// `marketo.email_assets_valid`.
pub struct EmailAssetsProbe(EmailAssetsParams);
/// `marketo.form_mapping`.
pub struct FormProbe(FormParams);

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn id_str(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// An activity attribute by name (`attributes[].{name,value}`).
fn attribute<'a>(activity: &'a Value, name: &str) -> Option<&'a Value> {
    activity
        .get("attributes")?
        .as_array()?
        .iter()
        .find(|a| str_of(a, "name").is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .and_then(|a| a.get("value"))
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[async_trait]
impl Probe for AuthProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let m = Marketo::new(ctx, &self.0.base_url)?;
        if let Err(e) = m.authenticate().await {
            return if e.is_auth() {
                Ok(evaluate::auth_failed(&e.error.message))
            } else {
                Err(e.into())
            };
        }
        match m.get("/rest/v1/stats/usage.json", &[]).await {
            Ok(env) => {
                let used = env
                    .result
                    .first()
                    .and_then(|r| number(r.get("total")))
                    .ok_or_else(|| {
                        ProbeError::permanent(format!(
                            "{VENDOR}: GET /rest/v1/stats/usage.json: reply has no `result[0].total`"
                        ))
                    })?;
                Ok(evaluate::auth_ok(
                    VENDOR,
                    Some(&Budget {
                        used: used.max(0.0) as u64,
                        limit: self.0.daily_quota,
                        resets: QUOTA_RESETS.into(),
                    }),
                ))
            }
            Err(e) if is_quota(&e) => Ok(evaluate::quota_exhausted(VENDOR, QUOTA_RESETS)),
            Err(e) if is_auth(&e) => Ok(evaluate::auth_failed(&e.error.message)),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Probe for NurtureProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let m = Marketo::new(ctx, &self.0.base_url)?;
        let campaigns = m.assets("/rest/asset/v1/smartCampaigns.json", &[]).await?;
        let flows: Vec<Flow> = campaigns
            .iter()
            .filter_map(|c| {
                Some(Flow {
                    id: c.get("id").and_then(id_str)?,
                    name: str_of(c, "name").unwrap_or_default().to_string(),
                    enabled: c.get("isActive").and_then(Value::as_bool).unwrap_or(false),
                })
            })
            .collect();
        Ok(evaluate::nurture_active(VENDOR, &flows, &self.0.required))
    }
}

#[async_trait]
impl Probe for FlowErrorsProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let m = Marketo::new(ctx, &p.base_url)?;
        let window = Duration::from_secs(u64::from(p.window_hours) * 3600);
        let types = m.activity_types().await?;
        let ids = type_ids(&types, &p.error_activity_types)?;
        let names: HashMap<u64, &str> = types.iter().map(|(i, n)| (*i, n.as_str())).collect();
        let since = crate::time::format(crate::time::ago(Timestamp::now(), window));
        let acts = m.activities(&ids, &since).await?;
        let errors: Vec<FlowError> = acts
            .iter()
            .map(|a| {
                let type_name = a
                    .get("activityTypeId")
                    .and_then(Value::as_u64)
                    .and_then(|i| names.get(&i).copied())
                    .unwrap_or("failure");
                let flow = a
                    .get("campaignId")
                    .and_then(id_str)
                    .map(|c| format!("campaign {c}"))
                    .unwrap_or_else(|| "no campaign".into());
                let detail = ["Reason", "Details", "Problem", "Error"]
                    .iter()
                    .find_map(|k| attribute(a, k).and_then(Value::as_str))
                    .or_else(|| str_of(a, "primaryAttributeValue"))
                    .unwrap_or_default();
                FlowError {
                    flow,
                    reason: if detail.is_empty() {
                        type_name.to_string()
                    } else {
                        format!("{type_name}: {detail}")
                    },
                }
            })
            .collect();
        Ok(evaluate::flow_errors(VENDOR, &errors, window))
    }
}

#[async_trait]
impl Probe for ScoringProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let m = Marketo::new(ctx, &p.base_url)?;
        let window = Duration::from_secs(u64::from(p.window_days) * 86_400);
        let fields = m.get("/rest/v1/leads/describe.json", &[]).await?;
        let has_field = fields.result.iter().any(|f| {
            f.get("rest")
                .and_then(|r| str_of(r, "name"))
                .is_some_and(|n| n == p.score_field)
        });
        let not_configured = (!has_field).then(|| {
            format!(
                "the lead has no `{}` field ({} fields described)",
                p.score_field,
                fields.result.len()
            )
        });
        let mut created = 0;
        let mut crossed = 0;
        if has_field {
            let types = m.activity_types().await?;
            let ids = type_ids(&types, &["New Lead".into(), "Change Score".into()])?;
            let since = crate::time::format(crate::time::ago(Timestamp::now(), window));
            let acts = m.activities(&ids, &since).await?;
            let mut new_leads = HashSet::new();
            let mut crossing = HashSet::new();
            for a in &acts {
                let Some(lead) = a.get("leadId").and_then(id_str) else {
                    continue;
                };
                let ty = a.get("activityTypeId").and_then(Value::as_u64);
                if ty == Some(ids[0]) {
                    new_leads.insert(lead);
                } else if ty == Some(ids[1]) {
                    let old = number(attribute(a, "Old Value")).unwrap_or(0.0);
                    let new = number(attribute(a, "New Value"));
                    if new.is_some_and(|n| n >= p.mql_threshold) && old < p.mql_threshold {
                        crossing.insert(lead);
                    }
                }
            }
            created = new_leads.len() as u64;
            crossed = crossing.len() as u64;
        }
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

#[async_trait]
impl Probe for UnsubscribeProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let m = Marketo::new(ctx, &p.base_url)?;
        let env = m
            .get(
                "/rest/v1/leads.json",
                &[
                    ("filterType".into(), "email".into()),
                    ("filterValues".into(), p.email.clone()),
                    ("fields".into(), "id,email,unsubscribed".into()),
                ],
            )
            .await?;
        let Some(lead) = env.result.first() else {
            return Err(ProbeError::permanent(format!(
                "{VENDOR}: the unsubscribe test identity is not a lead: create it, unsubscribe it once through a real email's link, then this probe proves the opt-out sticks"
            )));
        };
        let unsub = match lead.get("unsubscribed") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true" || s == "1",
            Some(Value::Null) | None => false,
            Some(other) => {
                return Err(ProbeError::permanent(format!(
                    "{VENDOR}: lead field `unsubscribed` has an unexpected value {other}"
                )));
            }
        };
        Ok(evaluate::unsubscribe(
            VENDOR,
            unsub,
            if unsub {
                "unsubscribed = true"
            } else {
                "unsubscribed = false"
            },
        ))
    }
}

#[async_trait]
impl Probe for EmailAssetsProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let m = Marketo::new(ctx, &self.0.base_url)?;
        let mut refs = Vec::new();
        for id in &self.0.email_ids {
            let (label, problem) =
                match m.get(&format!("/rest/asset/v1/email/{id}.json"), &[]).await {
                    Ok(env) => match env.result.first() {
                        None => (id.to_string(), Some("deleted".to_string())),
                        Some(e) => {
                            let name = str_of(e, "name").unwrap_or_default();
                            let status = str_of(e, "status").unwrap_or("unknown");
                            let problem = (status != "approved")
                                .then(|| format!("not approved (status `{status}`)"));
                            (format!("{id} (`{name}`)"), problem)
                        }
                    },
                    Err(e) if is_not_found(&e) => (id.to_string(), Some("deleted".to_string())),
                    Err(e) => return Err(e.into()),
                };
            refs.push(EmailRef {
                flow: "active flows".into(),
                email: label,
                problem,
            });
        }
        Ok(evaluate::email_assets(VENDOR, &refs))
    }
}

#[async_trait]
impl Probe for FormProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let m = Marketo::new(ctx, &p.base_url)?;
        let env = match m
            .get(
                &format!("/rest/asset/v1/form/{}/fields.json", p.form_id),
                &[],
            )
            .await
        {
            Ok(env) => env,
            Err(e) if is_not_found(&e) => {
                return Err(ProbeError::permanent(format!(
                    "{VENDOR}: form {} does not exist (deleted, or the wrong id in `form_id`)",
                    p.form_id
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if env.result.is_empty() {
            return Err(ProbeError::permanent(format!(
                "{VENDOR}: form {} does not exist or has no fields",
                p.form_id
            )));
        }
        let fields: Vec<FormField> = env
            .result
            .iter()
            .filter_map(|f| {
                let id = str_of(f, "id")?.to_string();
                Some(FormField {
                    hidden: str_of(f, "dataType") == Some("hidden"),
                    mapped_to: Some(id.clone()),
                    name: id,
                })
            })
            .collect();
        Ok(evaluate::form_mapping(
            VENDOR,
            &p.form_id.to_string(),
            &fields,
            &p.expected_fields,
            &p.hidden_fields,
            false,
        ))
    }
}
