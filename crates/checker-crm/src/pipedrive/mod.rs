//! Pipedrive probes (API v1: users, fields, pipelines, stages, deals, persons), one kind per
//! measure the API can answer; `lead_conversion_rates` and `speed_to_lead` are not offered (see
//! [`OMISSIONS`]).

pub mod client;

use std::collections::BTreeMap;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeRegistry};
use funnelgate_core::{Measurement, ProbeStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::client::{Conn, Pipedrive, PipedriveAuth, id_of, text_of};
use crate::evaluate::{
    self, EmailRules, FieldInfo, PipelineInfo, RequiredField, StageInfo, WonModel,
};
use crate::kinds::{KindDoc, Omission, Validate, register_kind};
use crate::measure::Measure;
use crate::params::{check_count, check_name, check_value, check_window, defaults};
use crate::time::Utc;

fn default_base_url() -> String {
    "https://api.pipedrive.com".to_string()
}
fn default_source_field() -> String {
    "channel".to_string()
}
fn default_required() -> Vec<RequiredField> {
    let f = |object: &str, name: &str| RequiredField {
        object: object.to_string(),
        name: name.to_string(),
        types: Vec::new(),
        options: Vec::new(),
    };
    vec![
        f("person", "email"),
        f("person", "owner_id"),
        f("deal", "value"),
        f("deal", "expected_close_date"),
        f("deal", "stage_id"),
        f("deal", "status"),
    ]
}

/// Which records a probe reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PipedriveObject {
    /// Deals (`/v1/deals`).
    #[default]
    Deals,
    /// Persons (`/v1/persons`).
    Persons,
}

impl PipedriveObject {
    fn path(self) -> &'static str {
        match self {
            PipedriveObject::Deals => "/v1/deals",
            PipedriveObject::Persons => "/v1/persons",
        }
    }
    fn owner_field(self) -> &'static str {
        match self {
            PipedriveObject::Deals => "user_id",
            PipedriveObject::Persons => "owner_id",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            PipedriveObject::Deals => "deals",
            PipedriveObject::Persons => "persons",
        }
    }
}

fn default_persons() -> PipedriveObject {
    PipedriveObject::Persons
}

/// Declares a Pipedrive params struct: the connection fields every kind shares, then its own.
macro_rules! pipedrive_params {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Pipedrive API base URL (`https://api.pipedrive.com` or
            /// `https://<company>.pipedrive.com`). Change it only for a proxy or a test server.
            #[serde(default = "default_base_url")]
            pub base_url: String,
            /// How the secret is sent: `api_token` (`x-api-token` header) or `oauth` (Bearer).
            #[serde(default)]
            pub auth: PipedriveAuth,
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $name {
            fn conn(&self) -> Conn {
                Conn { base_url: self.base_url.clone(), auth: self.auth }
            }
            fn validate_conn(&self) -> Result<(), ProbeError> {
                crate::http::validate_base_url("base_url", &self.base_url)
            }
        }
    };
}

pipedrive_params! {
    /// Params of `pipedrive.auth_and_quota`.
    AuthParams {}
}

pipedrive_params! {
    /// Params of `pipedrive.required_properties`.
    RequiredParams {
        /// Fields the funnel depends on. `object` is `person`, `deal`, `organization` or `lead`;
        /// `name` matches a field's `key` (custom fields have a 40-character hash key) or its name;
        /// `types` are Pipedrive field types (`varchar`, `enum`, `monetary`, `date`, …).
        #[serde(default = "default_required")]
        required: Vec<RequiredField>,
    }
}

pipedrive_params! {
    /// Params of `pipedrive.pipeline_shape`.
    PipelineParams {
        /// Pipelines to check, by id or name. Empty: every active pipeline.
        #[serde(default)]
        pipelines: Vec<String>,
    }
}

pipedrive_params! {
    /// Params of `pipedrive.source_attribution_coverage`.
    CoverageParams {
        /// Days back from now: records added in this window are measured.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// Records measured.
        #[serde(default)]
        object: PipedriveObject,
        /// Field holding the source: a built-in key such as `channel` or `origin`, or the key of
        /// a custom field.
        #[serde(default = "default_source_field")]
        source_field: String,
        /// Values that mean "no source" besides an empty field (case-insensitive).
        #[serde(default = "defaults::unknown_source_values")]
        unknown_values: Vec<String>,
        /// Most records read (newest first).
        #[serde(default = "defaults::max_records_10000")]
        max_records: u64,
    }
}

pipedrive_params! {
    /// Params of `pipedrive.lead_to_revenue_linkage`.
    LinkageParams {
        /// Days back from now: deals won (`won_time`) in this window are measured.
        #[serde(default = "defaults::window_90")]
        window_days: u32,
        /// Deal field holding the source (built-in key or custom field key).
        #[serde(default = "default_source_field")]
        source_field: String,
        /// Values that mean "no source" besides an empty field.
        #[serde(default = "defaults::unknown_source_values")]
        unknown_values: Vec<String>,
        /// Most won deals read (newest first); beyond it the counts are lower bounds.
        #[serde(default = "defaults::max_records_10000")]
        max_records: u64,
    }
}

pipedrive_params! {
    /// Params of `pipedrive.owner_assignment`.
    OwnerParams {
        /// Days back from now: records added in this window are measured.
        #[serde(default = "defaults::window_7")]
        window_days: u32,
        /// Records younger than this many minutes are not judged yet.
        #[serde(default = "defaults::grace_minutes")]
        grace_minutes: u32,
        /// Records measured.
        #[serde(default = "default_persons")]
        object: PipedriveObject,
        /// User ids that mean "nobody yet": every Pipedrive record has an owner, so routing gaps
        /// show as records left with the admin or an import/integration user. Required.
        unassigned_owner_ids: Vec<String>,
        /// Most records read (newest first).
        #[serde(default = "defaults::max_records_10000")]
        max_records: u64,
    }
}

pipedrive_params! {
    /// Params of `pipedrive.duplicates`.
    DuplicatesParams {
        /// Most persons read (list API, 500 per call); beyond it the share is measured on those
        /// read and the message says so.
        #[serde(default = "defaults::max_records_10000")]
        max_records: u64,
    }
}

pipedrive_params! {
    /// Params of `pipedrive.email_validity`.
    EmailParams {
        /// Days back from now: persons added in this window are measured.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// Local parts counted as role mailboxes; empty: roles not counted.
        #[serde(default = "defaults::role_local_parts")]
        role_local_parts: Vec<String>,
        /// Count persons without any email as invalid.
        #[serde(default, skip_serializing_if = "defaults::is_false")]
        count_missing: bool,
        /// Most persons read (newest first).
        #[serde(default = "defaults::max_records_2000")]
        max_records: u64,
    }
}

fn check_values(field: &str, vs: &[String]) -> Result<(), ProbeError> {
    vs.iter().try_for_each(|v| check_value(field, v))
}

impl Validate for AuthParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()
    }
}
impl Validate for RequiredParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        if self.required.is_empty() {
            return Err(ProbeError::params(
                "`required` must list at least one field",
            ));
        }
        for r in &self.required {
            if !["person", "deal", "organization", "lead"].contains(&r.object.as_str()) {
                return Err(ProbeError::params(format!(
                    "`required[].object`: `{}` is not one of person, deal, organization, lead",
                    r.object
                )));
            }
            check_value("required[].name", &r.name)?;
            check_values("required[].options", &r.options)?;
        }
        Ok(())
    }
}
impl Validate for PipelineParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_values("pipelines", &self.pipelines)
    }
}
impl Validate for CoverageParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_name("source_field", &self.source_field, false)?;
        check_values("unknown_values", &self.unknown_values)?;
        check_count("max_records", self.max_records, 100_000)
    }
}
impl Validate for LinkageParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_name("source_field", &self.source_field, false)?;
        check_values("unknown_values", &self.unknown_values)?;
        check_count("max_records", self.max_records, 100_000)
    }
}
impl Validate for OwnerParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        if self.unassigned_owner_ids.is_empty() {
            return Err(ProbeError::params(
                "`unassigned_owner_ids` must list the user ids that mean \"not routed yet\" (every Pipedrive record has an owner)",
            ));
        }
        check_values("unassigned_owner_ids", &self.unassigned_owner_ids)?;
        if u64::from(self.grace_minutes) >= u64::from(self.window_days) * 1440 {
            return Err(ProbeError::params(
                "`grace_minutes` must be shorter than the window",
            ));
        }
        check_count("max_records", self.max_records, 100_000)
    }
}
impl Validate for DuplicatesParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_count("max_records", self.max_records, 1_000_000)
    }
}
impl Validate for EmailParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_values("role_local_parts", &self.role_local_parts)?;
        check_count("max_records", self.max_records, 100_000)
    }
}

/// `pipedrive.auth_and_quota`.
pub struct AuthProbe(AuthParams);
/// `pipedrive.required_properties`.
pub struct RequiredProbe(RequiredParams);
/// `pipedrive.pipeline_shape`.
pub struct PipelineProbe(PipelineParams);
/// `pipedrive.source_attribution_coverage`.
pub struct CoverageProbe(CoverageParams);
/// `pipedrive.lead_to_revenue_linkage`.
pub struct LinkageProbe(LinkageParams);
/// `pipedrive.owner_assignment`.
pub struct OwnerProbe(OwnerParams);
/// `pipedrive.duplicates`.
pub struct DuplicatesProbe(DuplicatesParams);
/// `pipedrive.email_validity`.
pub struct EmailProbe(EmailParams);

/// A Pipedrive timestamp field (`2024-05-01 12:00:00`, UTC).
fn time_of(item: &Value, field: &str) -> Option<Utc> {
    item.get(field).and_then(Value::as_str).and_then(Utc::parse)
}

fn known_source(item: &Value, field: &str, unknown: &[String]) -> bool {
    item.get(field)
        .and_then(text_of)
        .is_some_and(|v| !unknown.iter().any(|u| u.eq_ignore_ascii_case(&v)))
}

#[async_trait]
impl Probe for AuthProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let pd = Pipedrive::new(ctx, &self.0.conn())?;
        match pd.get("/v1/users/me", &[]).await {
            Ok((data, _, headers)) => {
                let company = data
                    .get("company_domain")
                    .and_then(text_of)
                    .unwrap_or_default();
                let mut m = Measurement::verdict(
                    ProbeStatus::Pass,
                    format!(
                        "pipedrive credentials work{}; pipedrive reports no daily budget total to judge (burst window headers kept as evidence)",
                        if company.is_empty() {
                            String::new()
                        } else {
                            format!(" for company `{company}`")
                        }
                    ),
                );
                for (h, k) in [
                    ("x-ratelimit-limit", "burst_limit"),
                    ("x-ratelimit-remaining", "burst_remaining"),
                    ("x-daily-requests-left", "daily_requests_left"),
                ] {
                    if let Some(v) = crate::http::header_u64(&headers, h) {
                        m = m.with_evidence(k, v.to_string());
                    }
                }
                Ok(m)
            }
            Err(e) if e.is_auth() => Ok(evaluate::auth_failed(&e.error.message)),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Probe for RequiredProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let pd = Pipedrive::new(ctx, &self.0.conn())?;
        let mut available: BTreeMap<String, Vec<FieldInfo>> = BTreeMap::new();
        for r in &self.0.required {
            if available.contains_key(&r.object) {
                continue;
            }
            let path = format!("/v1/{}Fields", r.object);
            let (fields, _) = pd.list(&path, &[], 10_000, |_| true).await?;
            if fields.is_empty() {
                return Err(ProbeError::permanent(format!(
                    "pipedrive: GET {path}: returned no fields (empty account?)"
                )));
            }
            let mut infos = Vec::new();
            for f in &fields {
                let options: Vec<String> = f
                    .get("options")
                    .and_then(Value::as_array)
                    .map(|o| {
                        o.iter()
                            .filter_map(|x| x.get("label").and_then(text_of))
                            .collect()
                    })
                    .unwrap_or_default();
                let field_type = f.get("field_type").and_then(text_of).unwrap_or_default();
                // A field answers to its key and to its name.
                for n in [f.get("key"), f.get("name")]
                    .into_iter()
                    .flatten()
                    .filter_map(text_of)
                {
                    infos.push(FieldInfo {
                        name: n,
                        field_type: field_type.clone(),
                        options: options.clone(),
                        archived: false,
                    });
                }
            }
            available.insert(r.object.clone(), infos);
        }
        Ok(evaluate::required_properties(
            "pipedrive",
            &self.0.required,
            &available,
        ))
    }
}

#[async_trait]
impl Probe for PipelineProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let pd = Pipedrive::new(ctx, &self.0.conn())?;
        let (pipelines, _) = pd.list("/v1/pipelines", &[], 1000, |_| true).await?;
        let wanted = &self.0.pipelines;
        let chosen: Vec<&Value> = pipelines
            .iter()
            .filter(|p| p.get("active").and_then(Value::as_bool).unwrap_or(true))
            .filter(|p| {
                wanted.is_empty()
                    || wanted.iter().any(|w| {
                        p.get("id").and_then(id_of).as_deref() == Some(w.as_str())
                            || p.get("name")
                                .and_then(text_of)
                                .is_some_and(|n| n.eq_ignore_ascii_case(w))
                    })
            })
            .collect();
        if chosen.is_empty() {
            return Err(ProbeError::permanent(if wanted.is_empty() {
                "pipedrive: GET /v1/pipelines: the account has no active pipelines (empty account?)"
                    .to_string()
            } else {
                format!("pipedrive: pipelines {} not found", wanted.join(", "))
            }));
        }
        let mut infos = Vec::new();
        for p in chosen {
            let id = p.get("id").and_then(id_of).unwrap_or_default();
            let (stages, _) = pd
                .list("/v1/stages", &[("pipeline_id", id.clone())], 1000, |_| true)
                .await?;
            infos.push(PipelineInfo {
                label: p.get("name").and_then(text_of).unwrap_or(id),
                stages: stages
                    .iter()
                    .filter(|s| {
                        s.get("active_flag")
                            .and_then(Value::as_bool)
                            .unwrap_or(true)
                    })
                    .map(|s| StageInfo {
                        label: s.get("name").and_then(text_of).unwrap_or_default(),
                        order: s.get("order_nr").and_then(Value::as_f64).unwrap_or(0.0),
                        probability: s
                            .get("deal_probability")
                            .and_then(Value::as_f64)
                            .map(|p| p / 100.0),
                        is_closed: false,
                        is_won: false,
                    })
                    .collect(),
            });
        }
        Ok(evaluate::pipeline_shape(
            "pipedrive",
            &infos,
            WonModel::Statuses,
        ))
    }
}

#[async_trait]
impl Probe for CoverageProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let pd = Pipedrive::new(ctx, &p.conn())?;
        let t0 = Utc::now().minus_days(p.window_days);
        let (items, truncated) = pd
            .list(
                p.object.path(),
                &[("sort", "add_time DESC".to_string())],
                p.max_records,
                |i| time_of(i, "add_time").is_some_and(|t| t >= t0),
            )
            .await?;
        let unattributed = items
            .iter()
            .filter(|i| !known_source(i, &p.source_field, &p.unknown_values))
            .count() as u64;
        let mut m = evaluate::source_attribution(
            "pipedrive",
            p.object.noun(),
            p.window_days,
            items.len() as u64,
            unattributed,
        );
        if truncated {
            m.message
                .push_str(" (newest records only: the record cap was reached)");
        }
        Ok(m)
    }
}

#[async_trait]
impl Probe for LinkageProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let pd = Pipedrive::new(ctx, &p.conn())?;
        let t0 = Utc::now().minus_days(p.window_days);
        let query = [
            ("status", "won".to_string()),
            ("sort", "won_time DESC".to_string()),
        ];
        let (won, truncated) = pd
            .list("/v1/deals", &query, p.max_records, |d| {
                time_of(d, "won_time").is_some_and(|t| t >= t0)
            })
            .await?;
        let attributed = won
            .iter()
            .filter(|d| known_source(d, &p.source_field, &p.unknown_values))
            .count() as u64;
        let mut m =
            evaluate::lead_to_revenue("pipedrive", p.window_days, won.len() as u64, attributed);
        if truncated {
            m.message
                .push_str(" (at least: the record cap was reached)");
        }
        Ok(m)
    }
}

#[async_trait]
impl Probe for OwnerProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let pd = Pipedrive::new(ctx, &p.conn())?;
        let now = Utc::now();
        let t0 = now.minus_days(p.window_days);
        let cutoff = now.minus(std::time::Duration::from_secs(
            u64::from(p.grace_minutes) * 60,
        ));
        let (items, _) = pd
            .list(
                p.object.path(),
                &[("sort", "add_time DESC".to_string())],
                p.max_records,
                |i| time_of(i, "add_time").is_some_and(|t| t >= t0),
            )
            .await?;
        let judged: Vec<&Value> = items
            .iter()
            .filter(|i| time_of(i, "add_time").is_some_and(|t| t < cutoff))
            .collect();
        let unassigned = judged
            .iter()
            .filter(|i| match i.get(p.object.owner_field()).and_then(id_of) {
                None => true,
                Some(owner) => p.unassigned_owner_ids.contains(&owner),
            })
            .count() as u64;
        Ok(evaluate::owner_assignment(
            "pipedrive",
            p.object.noun(),
            p.window_days,
            p.grace_minutes,
            judged.len() as u64,
            unassigned,
        ))
    }
}

#[async_trait]
impl Probe for DuplicatesProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let pd = Pipedrive::new(ctx, &p.conn())?;
        let (persons, truncated) = pd.list("/v1/persons", &[], p.max_records, |_| true).await?;
        let emails: Vec<String> = persons
            .iter()
            .filter_map(|x| x.get("email").and_then(text_of))
            .collect();
        let (total, surplus) = evaluate::duplicate_counts(emails.iter().map(String::as_str));
        Ok(evaluate::duplicates(
            "pipedrive",
            "persons",
            "all persons",
            total,
            surplus,
            truncated,
        ))
    }
}

#[async_trait]
impl Probe for EmailProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let pd = Pipedrive::new(ctx, &p.conn())?;
        let t0 = Utc::now().minus_days(p.window_days);
        let (persons, truncated) = pd
            .list(
                "/v1/persons",
                &[("sort", "add_time DESC".to_string())],
                p.max_records,
                |i| time_of(i, "add_time").is_some_and(|t| t >= t0),
            )
            .await?;
        let emails: Vec<Option<String>> = persons
            .iter()
            .map(|x| x.get("email").and_then(text_of))
            .collect();
        let rules = EmailRules {
            role_local_parts: p.role_local_parts.clone(),
            count_missing: p.count_missing,
        };
        Ok(evaluate::email_validity(
            "pipedrive",
            "persons",
            p.window_days,
            emails.iter().map(|e| e.as_deref()),
            &rules,
            truncated,
        ))
    }
}

/// Reference facts for every Pipedrive kind.
pub const KINDS: [KindDoc; 8] = [
    KindDoc {
        kind: "pipedrive.auth_and_quota",
        vendor: "pipedrive",
        api: "Pipedrive API v1",
        measure: Measure::AuthAndQuota,
        permissions: "an API token, or an OAuth app with the `base` scope",
        calls: "`GET /v1/users/me`; keeps `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-daily-requests-left` as evidence",
        notes: "Pipedrive does not report a daily budget total in its replies (`unverified` for token-based budgets), so there is no percentage to judge: credentials that work PASS, 401/403 FAIL.",
    },
    KindDoc {
        kind: "pipedrive.required_properties",
        vendor: "pipedrive",
        api: "Pipedrive API v1",
        measure: Measure::RequiredProperties,
        permissions: "an API token, or an OAuth app with `deals:read` and `contacts:read`",
        calls: "`GET /v1/personFields`, `/v1/dealFields`, `/v1/organizationFields` or `/v1/leadFields`, paged",
        notes: "A field matches by key or by name; custom fields have 40-character hash keys, so naming them by their label is often easier.",
    },
    KindDoc {
        kind: "pipedrive.pipeline_shape",
        vendor: "pipedrive",
        api: "Pipedrive API v1",
        measure: Measure::PipelineShape,
        permissions: "an API token, or an OAuth app with `deals:read`",
        calls: "`GET /v1/pipelines`, then `GET /v1/stages?pipeline_id=` per pipeline",
        notes: "Won and lost are deal statuses in Pipedrive, not stages: every pipeline can record revenue, so the value is the number of pipelines without stages; `deal_probability` going down between stages is WARN.",
    },
    KindDoc {
        kind: "pipedrive.source_attribution_coverage",
        vendor: "pipedrive",
        api: "Pipedrive API v1",
        measure: Measure::SourceAttributionCoverage,
        permissions: "an API token, or an OAuth app with `deals:read` (deals) or `contacts:read` (persons)",
        calls: "`GET /v1/deals?sort=add_time DESC` (or `/v1/persons`), paged 500 at a time until records are older than the window or `max_records` is reached",
        notes: "Pipedrive has no universal attribution field: the default `channel` is the deal's marketing channel (`unverified`); point `source_field` at your own custom field key otherwise.",
    },
    KindDoc {
        kind: "pipedrive.lead_to_revenue_linkage",
        vendor: "pipedrive",
        api: "Pipedrive API v1",
        measure: Measure::LeadToRevenueLinkage,
        permissions: "an API token, or an OAuth app with `deals:read`",
        calls: "`GET /v1/deals?status=won&sort=won_time DESC`, paged until deals were won before the window",
        notes: "Traced through the deal's own source field. Conversion proof: the sample is the number of deals won in the window; zero is NO_DATA.",
    },
    KindDoc {
        kind: "pipedrive.owner_assignment",
        vendor: "pipedrive",
        api: "Pipedrive API v1",
        measure: Measure::OwnerAssignment,
        permissions: "an API token, or an OAuth app with `contacts:read` (persons) or `deals:read` (deals)",
        calls: "`GET /v1/persons?sort=add_time DESC` (or `/v1/deals`), paged over the window",
        notes: "Every Pipedrive record has an owner, so `unassigned_owner_ids` (required) names the users that mean \"not routed yet\" (the admin, an import user).",
    },
    KindDoc {
        kind: "pipedrive.duplicates",
        vendor: "pipedrive",
        api: "Pipedrive API v1",
        measure: Measure::Duplicates,
        permissions: "an API token, or an OAuth app with `contacts:read`",
        calls: "`GET /v1/persons`, paged 500 at a time up to `max_records`",
        notes: "Compares each person's primary email, trimmed and lower-cased.",
    },
    KindDoc {
        kind: "pipedrive.email_validity",
        vendor: "pipedrive",
        api: "Pipedrive API v1",
        measure: Measure::EmailValidity,
        permissions: "an API token, or an OAuth app with `contacts:read`",
        calls: "`GET /v1/persons?sort=add_time DESC`, paged over the window up to `max_records`",
        notes: "Same rules as every vendor: malformed, reserved test domains, role mailboxes.",
    },
];

/// What Pipedrive's API cannot answer.
pub const OMISSIONS: [Omission; 2] = [
    Omission {
        vendor: "pipedrive",
        measure: Measure::LeadConversionRates,
        reason: "a deal only carries its current stage: stage-to-stage history needs one `GET /v1/deals/{id}/flow` call per deal, which does not fit a probe's budget. Sync Pipedrive into a warehouse and use `warehouse.lead_conversion_rates`",
    },
    Omission {
        vendor: "pipedrive",
        measure: Measure::SpeedToLead,
        reason: "deals and persons carry no first-activity timestamp (only last/next activity dates and counts), and activities cannot be listed per record in bulk. Use `warehouse.speed_to_lead` on a synced copy",
    },
];

/// Register the Pipedrive kinds.
pub fn register(registry: &mut ProbeRegistry) {
    register_kind(registry, &KINDS[0], AuthProbe);
    register_kind(registry, &KINDS[1], RequiredProbe);
    register_kind(registry, &KINDS[2], PipelineProbe);
    register_kind(registry, &KINDS[3], CoverageProbe);
    register_kind(registry, &KINDS[4], LinkageProbe);
    register_kind(registry, &KINDS[5], OwnerProbe);
    register_kind(registry, &KINDS[6], DuplicatesProbe);
    register_kind(registry, &KINDS[7], EmailProbe);
}
