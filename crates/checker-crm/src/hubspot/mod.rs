//! HubSpot probes on the date-based CRM APIs (objects, search, properties, pipelines,
//! associations; version set by `api_version`), through the shared
//! [`funnelgate_vendor_hubspot`] client, one kind per measure: `hubspot.auth_and_quota` …
//! `hubspot.email_validity`.

/// The shared HubSpot client (re-exported under its old path).
pub mod client {
    pub use funnelgate_vendor_hubspot::*;
}

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeRegistry};
use funnelgate_core::Measurement;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::evaluate::{
    self, ConversionRules, EmailRules, FieldInfo, PipelineInfo, RequiredField, StageInfo,
    StepCounts, WonModel, weekly_limit,
};
use crate::kinds::{KindDoc, Validate, register_kind};
use crate::measure::Measure;
use crate::params::{check_count, check_name, check_percent, check_value, check_window, defaults};
use crate::time::Utc;
use funnelgate_vendor_hubspot::{
    ApiVersion, Conn, Credential, HubSpot, Record, filter, filter_values,
};

fn default_base_url() -> String {
    funnelgate_vendor_hubspot::DEFAULT_BASE_URL.to_string()
}
fn default_daily_reserve_percent() -> f64 {
    10.0
}
fn default_search_interval_ms() -> u64 {
    200
}
fn default_burst_per_10s() -> u32 {
    funnelgate_vendor_hubspot::DEFAULT_BURST_PER_10S
}
fn default_contacts() -> String {
    "contacts".to_string()
}
fn default_deals() -> String {
    "deals".to_string()
}
fn default_source_property() -> String {
    "hs_analytics_source".to_string()
}
fn default_createdate() -> String {
    "createdate".to_string()
}
fn default_email() -> String {
    "email".to_string()
}
fn default_owner_property() -> String {
    "hubspot_owner_id".to_string()
}
fn default_first_touch() -> String {
    "hs_sa_first_engagement_date".to_string()
}
fn default_stage_template() -> String {
    "hs_lifecyclestage_{stage}_date".to_string()
}
fn default_lifecycle_stages() -> Vec<String> {
    [
        "lead",
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
        "customer",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}
fn default_required() -> Vec<RequiredField> {
    let f = |object: &str, name: &str, types: &[&str]| RequiredField {
        object: object.to_string(),
        name: name.to_string(),
        types: types.iter().map(|s| s.to_string()).collect(),
        options: Vec::new(),
    };
    vec![
        f("contacts", "email", &["string"]),
        f("contacts", "lifecyclestage", &["enumeration"]),
        f("contacts", "hs_analytics_source", &["enumeration"]),
        f("contacts", "hubspot_owner_id", &["enumeration"]),
        f("deals", "amount", &["number"]),
        f("deals", "closedate", &["datetime", "date"]),
        f("deals", "dealstage", &["enumeration"]),
        f("deals", "pipeline", &["enumeration"]),
    ]
}

/// Declares a HubSpot params struct: the connection fields every kind shares, then its own.
macro_rules! hubspot_params {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// HubSpot API base URL. Change it only for a proxy or a test server.
            #[serde(default = "default_base_url")]
            pub base_url: String,
            /// HubSpot date-based API version (`YYYY-MM`, a March or September release from
            /// 2026-03 on); every call uses its date-based path, e.g.
            /// `/crm/objects/2026-09/contacts`.
            #[serde(default)]
            pub api_version: ApiVersion,
            /// Which credential the secret holds: `private_app` (a legacy private app's token),
            /// `service_key` (an account service key of a developer-platform project) or `oauth`
            /// (an OAuth access token; the daily budget is then read from the account's API-usage
            /// endpoint, as OAuth replies carry no daily-limit headers).
            #[serde(default)]
            pub credential: Credential,
            /// Percent of the account's daily API budget this probe never uses: when HubSpot
            /// reports less than this left, the probe stops with an ERROR ("daily budget nearly
            /// exhausted") instead of starving the team's own syncs.
            #[serde(default = "default_daily_reserve_percent")]
            pub daily_reserve_percent: f64,
            /// Minimum pause between two search calls, in milliseconds (HubSpot allows about five
            /// searches per second per account).
            #[serde(default = "default_search_interval_ms")]
            pub search_interval_ms: u64,
            /// The account's published burst limit, requests per 10 seconds (100 for Free and
            /// Starter, 110 for OAuth apps, 190 for Professional and Enterprise); the probe paces
            /// itself to half of it, leaving the rest to the team's own integrations.
            #[serde(default = "default_burst_per_10s")]
            pub burst_per_10s: u32,
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $name {
            fn conn(&self) -> Conn {
                Conn {
                    base_url: self.base_url.clone(),
                    api_version: self.api_version.clone(),
                    credential: self.credential,
                    daily_reserve_percent: self.daily_reserve_percent,
                    search_interval_ms: self.search_interval_ms,
                    burst_per_10s: self.burst_per_10s,
                }
            }

            fn validate_conn(&self) -> Result<(), ProbeError> {
                crate::http::validate_base_url("base_url", &self.base_url)?;
                check_percent("daily_reserve_percent", self.daily_reserve_percent)?;
                self.conn().validate()
            }
        }
    };
}

hubspot_params! {
    /// Params of `hubspot.auth_and_quota`.
    AuthParams {}
}

hubspot_params! {
    /// Params of `hubspot.required_properties`.
    RequiredPropertiesParams {
        /// The properties the funnel depends on (`object` is a HubSpot object type such as
        /// `contacts` or `deals`; `types` are HubSpot property types such as `string`,
        /// `enumeration`, `number`, `datetime`). The default lists email, lifecycle stage,
        /// original source, owner, deal amount, close date, stage and pipeline.
        #[serde(default = "default_required")]
        required: Vec<RequiredField>,
    }
}

hubspot_params! {
    /// Params of `hubspot.pipeline_shape`.
    PipelineShapeParams {
        /// Object type whose pipelines are checked.
        #[serde(default = "default_deals")]
        object: String,
        /// Pipelines to check, by id or label. Empty: every pipeline.
        #[serde(default)]
        pipelines: Vec<String>,
    }
}

hubspot_params! {
    /// Params of `hubspot.source_attribution_coverage`.
    SourceCoverageParams {
        /// Days back from now: contacts created in this window are measured.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// Object type measured.
        #[serde(default = "default_contacts")]
        object: String,
        /// Property holding the original source.
        #[serde(default = "default_source_property")]
        source_property: String,
        /// Values that mean "no source" besides an empty property (compared case-insensitively).
        #[serde(default = "defaults::unknown_source_values")]
        unknown_values: Vec<String>,
        /// Property holding the creation date.
        #[serde(default = "default_createdate")]
        created_property: String,
    }
}

/// How a won deal is traced back to a sourced lead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HubspotLinkage {
    /// The deal's own source property, or the source of any contact associated with it (reads
    /// associations, up to `max_deals` won deals).
    #[default]
    AssociatedContact,
    /// Only the deal's own source property: one search call, no association reads.
    DealProperty,
}

hubspot_params! {
    /// Params of `hubspot.lead_to_revenue_linkage`.
    LinkageParams {
        /// Days back from now: deals closed won in this window are measured.
        #[serde(default = "defaults::window_90")]
        window_days: u32,
        /// How a won deal is traced to a lead with a source.
        #[serde(default)]
        linkage: HubspotLinkage,
        /// Property holding the original source, on deals and on contacts.
        #[serde(default = "default_source_property")]
        source_property: String,
        /// Values that mean "no source" besides an empty property.
        #[serde(default = "defaults::unknown_source_values")]
        unknown_values: Vec<String>,
        /// Most won deals traced through associations in one run; beyond it the count is a
        /// lower bound and the message says so.
        #[serde(default = "defaults::max_deals")]
        max_deals: u64,
    }
}

hubspot_params! {
    /// Params of `hubspot.lead_conversion_rates`.
    ConversionParams {
        /// Days back from now: contacts who entered a stage in this window form its cohort.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// Lifecycle stages in funnel order (internal values), 2 to 6 of them.
        #[serde(default = "default_lifecycle_stages")]
        stages: Vec<String>,
        /// Name of the "date entered stage" property, `{stage}` replaced by each stage.
        #[serde(default = "default_stage_template")]
        date_property_template: String,
        /// A step with at least this many entrants and no conversion makes the probe FAIL.
        #[serde(default = "defaults::min_entrants")]
        min_entrants: u64,
        /// WARN when a step's rate moves by more than this percent (relative) between the cohorts
        /// of the last 7 days and the 7 days before; 0 turns the comparison off (recent cohorts
        /// have had less time to convert: turn it off for long sales cycles).
        #[serde(default = "defaults::max_weekly_change_percent")]
        max_weekly_change_percent: f64,
    }
}

hubspot_params! {
    /// Params of `hubspot.speed_to_lead`.
    SpeedParams {
        /// Days back from now: contacts created in this window are measured.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// Property holding the first sales activity date.
        #[serde(default = "default_first_touch")]
        first_touch_property: String,
        /// Property holding the creation date.
        #[serde(default = "default_createdate")]
        created_property: String,
        /// Most contacts read (newest first; HubSpot search stops at 10,000).
        #[serde(default = "defaults::max_records_2000")]
        max_records: u64,
    }
}

hubspot_params! {
    /// Params of `hubspot.owner_assignment`.
    OwnerParams {
        /// Days back from now: contacts created in this window are measured.
        #[serde(default = "defaults::window_7")]
        window_days: u32,
        /// Contacts younger than this many minutes are not judged yet (routing takes time).
        #[serde(default = "defaults::grace_minutes")]
        grace_minutes: u32,
        /// Object type measured.
        #[serde(default = "default_contacts")]
        object: String,
        /// Property holding the owner.
        #[serde(default = "default_owner_property")]
        owner_property: String,
    }
}

hubspot_params! {
    /// Params of `hubspot.duplicates`.
    DuplicatesParams {
        /// Object type scanned.
        #[serde(default = "default_contacts")]
        object: String,
        /// Property holding the email address.
        #[serde(default = "default_email")]
        email_property: String,
        /// Most records read (list API, 100 per call, oldest first); beyond it the share is
        /// measured on the records read and the message says so.
        #[serde(default = "defaults::max_records_10000")]
        max_records: u64,
    }
}

hubspot_params! {
    /// Params of `hubspot.email_validity`.
    EmailParams {
        /// Days back from now: contacts created in this window are measured.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// Property holding the email address.
        #[serde(default = "default_email")]
        email_property: String,
        /// Local parts counted as role mailboxes (`info`, `sales`, …); empty: roles not counted.
        #[serde(default = "defaults::role_local_parts")]
        role_local_parts: Vec<String>,
        /// Count contacts without any email as invalid.
        #[serde(default, skip_serializing_if = "defaults::is_false")]
        count_missing: bool,
        /// Most contacts read (newest first; HubSpot search stops at 10,000).
        #[serde(default = "defaults::max_records_2000")]
        max_records: u64,
    }
}

fn check_values(field: &str, vs: &[String]) -> Result<(), ProbeError> {
    vs.iter().try_for_each(|v| check_value(field, v))
}

fn check_object(v: &str) -> Result<(), ProbeError> {
    check_name("object", v, false)
}

impl Validate for AuthParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()
    }
}

impl Validate for RequiredPropertiesParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        if self.required.is_empty() {
            return Err(ProbeError::params(
                "`required` must list at least one property",
            ));
        }
        for r in &self.required {
            check_name("required[].object", &r.object, false)?;
            check_name("required[].name", &r.name, false)?;
            check_values("required[].options", &r.options)?;
        }
        Ok(())
    }
}

impl Validate for PipelineShapeParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_object(&self.object)?;
        check_values("pipelines", &self.pipelines)
    }
}

impl Validate for SourceCoverageParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_object(&self.object)?;
        check_name("source_property", &self.source_property, false)?;
        check_name("created_property", &self.created_property, false)?;
        check_values("unknown_values", &self.unknown_values)
    }
}

impl Validate for LinkageParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_name("source_property", &self.source_property, false)?;
        check_values("unknown_values", &self.unknown_values)?;
        check_count("max_deals", self.max_deals, client::SEARCH_RESULT_CAP)
    }
}

impl Validate for ConversionParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        if !(2..=6).contains(&self.stages.len()) {
            return Err(ProbeError::params(
                "`stages` must list 2 to 6 lifecycle stages in funnel order",
            ));
        }
        for s in &self.stages {
            check_name("stages[]", s, false)?;
        }
        if !self.date_property_template.contains("{stage}") {
            return Err(ProbeError::params(
                "`date_property_template` must contain `{stage}`",
            ));
        }
        check_name(
            "date_property_template",
            &self.date_property_template.replace("{stage}", "x"),
            false,
        )?;
        check_count("min_entrants", self.min_entrants.max(1), 1_000_000)?;
        let w = self.max_weekly_change_percent;
        if !w.is_finite() || w < 0.0 {
            return Err(ProbeError::params(
                "`max_weekly_change_percent` must be a non-negative number (0 turns the comparison off)",
            ));
        }
        Ok(())
    }
}

impl Validate for SpeedParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_name("first_touch_property", &self.first_touch_property, false)?;
        check_name("created_property", &self.created_property, false)?;
        check_count("max_records", self.max_records, client::SEARCH_RESULT_CAP)
    }
}

impl Validate for OwnerParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_object(&self.object)?;
        check_name("owner_property", &self.owner_property, false)?;
        if u64::from(self.grace_minutes) >= u64::from(self.window_days) * 1440 {
            return Err(ProbeError::params(
                "`grace_minutes` must be shorter than the window",
            ));
        }
        Ok(())
    }
}

impl Validate for DuplicatesParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_object(&self.object)?;
        check_name("email_property", &self.email_property, false)?;
        check_count("max_records", self.max_records, 1_000_000)
    }
}

impl Validate for EmailParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_name("email_property", &self.email_property, false)?;
        check_values("role_local_parts", &self.role_local_parts)?;
        check_count("max_records", self.max_records, client::SEARCH_RESULT_CAP)
    }
}

fn since(days: u32) -> (Utc, String) {
    let now = Utc::now();
    (now, now.minus_days(days).millis().to_string())
}

/// Groups (OR) matching "no known source" on top of the base filters.
fn unattributed_groups(base: &[Value], source: &str, unknown: &[String]) -> Vec<Vec<Value>> {
    let mut g1 = base.to_vec();
    g1.push(filter(source, "NOT_HAS_PROPERTY", None));
    let mut groups = vec![g1];
    if !unknown.is_empty() {
        let mut g2 = base.to_vec();
        g2.push(filter_values(source, "IN", unknown));
        groups.push(g2);
    }
    groups
}

fn has_known_source(r: &Record, prop: &str, unknown: &[String]) -> bool {
    r.prop(prop)
        .is_some_and(|v| !unknown.iter().any(|u| u.eq_ignore_ascii_case(v)))
}

/// `hubspot.auth_and_quota`.
pub struct AuthProbe(AuthParams);
/// `hubspot.required_properties`.
pub struct RequiredPropertiesProbe(RequiredPropertiesParams);
/// `hubspot.pipeline_shape`.
pub struct PipelineShapeProbe(PipelineShapeParams);
/// `hubspot.source_attribution_coverage`.
pub struct SourceCoverageProbe(SourceCoverageParams);
/// `hubspot.lead_to_revenue_linkage`.
pub struct LinkageProbe(LinkageParams);
/// `hubspot.lead_conversion_rates`.
pub struct ConversionProbe(ConversionParams);
/// `hubspot.speed_to_lead`.
pub struct SpeedProbe(SpeedParams);
/// `hubspot.owner_assignment`.
pub struct OwnerProbe(OwnerParams);
/// `hubspot.duplicates`.
pub struct DuplicatesProbe(DuplicatesParams);
/// `hubspot.email_validity`.
pub struct EmailProbe(EmailParams);

/// The daily budget for C1: from the reply headers, or (OAuth) the account's usage endpoint.
async fn hubspot_budget(hs: &HubSpot) -> Option<evaluate::Budget> {
    let b = match hs.budget() {
        Some(b) => Some(b),
        None => hs.read_daily_usage().await,
    };
    b.map(|b| evaluate::Budget {
        remaining: b.remaining,
        max: b.max,
        label: "daily API request".to_string(),
    })
}

#[async_trait]
impl Probe for AuthProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let hs = HubSpot::new(ctx, &self.0.conn())?;
        match hs.ping().await {
            Ok(headers) => {
                let mut m = evaluate::auth_and_quota("hubspot", hubspot_budget(&hs).await);
                for (h, k) in [
                    ("x-hubspot-ratelimit-max", "burst_max"),
                    ("x-hubspot-ratelimit-remaining", "burst_remaining"),
                    (
                        "x-hubspot-ratelimit-interval-milliseconds",
                        "burst_interval_ms",
                    ),
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
impl Probe for RequiredPropertiesProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let hs = HubSpot::new(ctx, &self.0.conn())?;
        let objects: Vec<&str> = {
            let mut seen = Vec::new();
            for r in &self.0.required {
                if !seen.contains(&r.object.as_str()) {
                    seen.push(r.object.as_str());
                }
            }
            seen
        };
        let mut available = BTreeMap::new();
        for object in objects {
            let props = hs.properties(object).await?;
            if props.is_empty() {
                return Err(ProbeError::permanent(format!(
                    "hubspot: GET {}: returned no properties (wrong portal or object type?)",
                    hs.paths().properties(object)
                )));
            }
            let fields = props
                .into_iter()
                .map(|p| FieldInfo {
                    name: p.name,
                    field_type: p.property_type,
                    options: p
                        .options
                        .into_iter()
                        .flat_map(|o| [o.value, o.label])
                        .collect(),
                    archived: p.archived,
                })
                .collect();
            available.insert(object.to_string(), fields);
        }
        Ok(evaluate::required_properties(
            "hubspot",
            &self.0.required,
            &available,
        ))
    }
}

#[async_trait]
impl Probe for PipelineShapeProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let hs = HubSpot::new(ctx, &self.0.conn())?;
        let object = &self.0.object;
        let all = hs.pipelines(object).await?;
        if all.is_empty() {
            return Err(ProbeError::permanent(format!(
                "hubspot: GET {}: the account has no {object} pipelines (empty account or wrong portal)",
                hs.paths().pipelines(object)
            )));
        }
        let wanted = &self.0.pipelines;
        let chosen: Vec<_> = all
            .into_iter()
            .filter(|p| {
                wanted.is_empty()
                    || wanted
                        .iter()
                        .any(|w| w == &p.id || w.eq_ignore_ascii_case(&p.label))
            })
            .collect();
        if chosen.len() < wanted.len() {
            return Err(ProbeError::permanent(format!(
                "hubspot: pipelines {} not all found among the account's {object} pipelines",
                wanted.join(", ")
            )));
        }
        let meta_str = |v: Option<&Value>| -> Option<String> {
            match v? {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let infos: Vec<PipelineInfo> = chosen
            .into_iter()
            .map(|p| PipelineInfo {
                label: p.label,
                stages: p
                    .stages
                    .into_iter()
                    .map(|s| {
                        let closed = meta_str(s.metadata.get("isClosed"))
                            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                        let prob = meta_str(s.metadata.get("probability"))
                            .and_then(|v| v.parse::<f64>().ok());
                        StageInfo {
                            label: s.label,
                            order: s.display_order,
                            probability: prob,
                            is_closed: closed,
                            is_won: closed && prob.is_some_and(|p| p >= 1.0),
                        }
                    })
                    .collect(),
            })
            .collect();
        Ok(evaluate::pipeline_shape(
            "hubspot",
            &infos,
            WonModel::Stages,
        ))
    }
}

#[async_trait]
impl Probe for SourceCoverageProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let hs = HubSpot::new(ctx, &p.conn())?;
        let (_, t0) = since(p.window_days);
        let base = vec![filter(&p.created_property, "GTE", t0)];
        let created = hs.search_total(&p.object, vec![base.clone()]).await?;
        let unattributed = if created == 0 {
            0
        } else {
            hs.search_total(
                &p.object,
                unattributed_groups(&base, &p.source_property, &p.unknown_values),
            )
            .await?
        };
        Ok(evaluate::source_attribution(
            "hubspot",
            &p.object,
            p.window_days,
            created,
            unattributed,
        ))
    }
}

#[async_trait]
impl Probe for LinkageProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let hs = HubSpot::new(ctx, &p.conn())?;
        let (_, t0) = since(p.window_days);
        let won_filters = vec![
            filter("hs_is_closed_won", "EQ", "true".to_string()),
            filter("closedate", "GTE", t0),
        ];
        let won = hs.search_total("deals", vec![won_filters.clone()]).await?;
        if won == 0 {
            return Ok(evaluate::lead_to_revenue("hubspot", p.window_days, 0, 0));
        }
        match p.linkage {
            HubspotLinkage::DealProperty => {
                let mut attributed = won_filters.clone();
                attributed.push(filter(&p.source_property, "HAS_PROPERTY", None));
                if !p.unknown_values.is_empty() {
                    attributed.push(filter_values(
                        &p.source_property,
                        "NOT_IN",
                        &p.unknown_values,
                    ));
                }
                let n = hs.search_total("deals", vec![attributed]).await?;
                Ok(evaluate::lead_to_revenue("hubspot", p.window_days, won, n)
                    .with_evidence("linkage", "deal_property"))
            }
            HubspotLinkage::AssociatedContact => {
                let src = p.source_property.as_str();
                let (deals, truncated) = hs
                    .search_records(
                        "deals",
                        vec![won_filters],
                        &[src, "closedate"],
                        "closedate",
                        p.max_deals,
                    )
                    .await?;
                let mut attributed: HashSet<String> = deals
                    .iter()
                    .filter(|d| has_known_source(d, src, &p.unknown_values))
                    .map(|d| d.id.clone())
                    .collect();
                let pending: Vec<String> = deals
                    .iter()
                    .filter(|d| !attributed.contains(&d.id))
                    .map(|d| d.id.clone())
                    .collect();
                if !pending.is_empty() {
                    let assoc = hs.associations("deals", "contacts", &pending).await?;
                    let mut contact_ids: Vec<String> = assoc.values().flatten().cloned().collect();
                    contact_ids.sort();
                    contact_ids.dedup();
                    let contacts = hs.batch_read("contacts", &contact_ids, &[src]).await?;
                    let sourced: HashSet<&str> = contacts
                        .iter()
                        .filter(|c| has_known_source(c, src, &p.unknown_values))
                        .map(|c| c.id.as_str())
                        .collect();
                    for (deal, contacts) in &assoc {
                        if contacts.iter().any(|c| sourced.contains(c.as_str())) {
                            attributed.insert(deal.clone());
                        }
                    }
                }
                let mut m = evaluate::lead_to_revenue(
                    "hubspot",
                    p.window_days,
                    won,
                    attributed.len() as u64,
                )
                .with_evidence("linkage", "associated_contact")
                .with_evidence("deals_traced", deals.len().to_string());
                if truncated {
                    m.message.push_str(&format!(
                        " (only the {} most recently closed deals were traced: `max_deals` reached, so this is a lower bound)",
                        deals.len()
                    ));
                }
                Ok(m)
            }
        }
    }
}

#[async_trait]
impl Probe for ConversionProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let hs = HubSpot::new(ctx, &p.conn())?;
        let now = Utc::now();
        let ms = |t: Utc| t.millis().to_string();
        let t0 = ms(now.minus_days(p.window_days));
        let (w1, w2) = (ms(now.minus_days(7)), ms(now.minus_days(14)));
        let prop = |stage: &str| p.date_property_template.replace("{stage}", stage);
        // Contacts entering `stage` within [from, to), reaching any of `later`.
        let count = |stage: String, from: String, to: Option<String>, later: Vec<String>| {
            let hs = &hs;
            async move {
                let mut base = vec![filter(&stage, "GTE", from)];
                if let Some(to) = to {
                    base.push(filter(&stage, "LT", to));
                }
                let entrants = hs.search_total("contacts", vec![base.clone()]).await?;
                if entrants == 0 || later.is_empty() {
                    return Ok::<_, ProbeError>((entrants, 0));
                }
                let groups: Vec<Vec<Value>> = later
                    .iter()
                    .map(|l| {
                        let mut g = base.clone();
                        g.push(filter(l, "HAS_PROPERTY", None));
                        g
                    })
                    .collect();
                Ok((entrants, hs.search_total("contacts", groups).await?))
            }
        };
        let mut steps = Vec::new();
        for i in 0..p.stages.len() - 1 {
            let from = prop(&p.stages[i]);
            let later: Vec<String> = p.stages[i + 1..].iter().map(|s| prop(s)).collect();
            let (entrants, converted) =
                count(from.clone(), t0.clone(), None, later.clone()).await?;
            let weeks = match weekly_limit(p.max_weekly_change_percent) {
                Some(_) if entrants >= p.min_entrants => {
                    let recent = count(from.clone(), w1.clone(), None, later.clone()).await?;
                    let previous = count(from.clone(), w2.clone(), Some(w1.clone()), later).await?;
                    Some([recent, previous])
                }
                _ => None,
            };
            steps.push(StepCounts {
                from: p.stages[i].clone(),
                to: p.stages[i + 1].clone(),
                entrants,
                converted,
                weeks,
            });
        }
        let first_entrants = steps.first().map(|s| s.entrants).unwrap_or(0);
        let reached_last = if first_entrants == 0 {
            0
        } else {
            let last = prop(&p.stages[p.stages.len() - 1]);
            count(prop(&p.stages[0]), t0, None, vec![last]).await?.1
        };
        let rules = ConversionRules {
            min_entrants: p.min_entrants,
            max_weekly_change_percent: weekly_limit(p.max_weekly_change_percent),
        };
        Ok(evaluate::lead_conversion(
            "hubspot",
            p.window_days,
            &steps,
            (first_entrants, reached_last),
            rules,
        ))
    }
}

#[async_trait]
impl Probe for SpeedProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let hs = HubSpot::new(ctx, &p.conn())?;
        let (now, t0) = since(p.window_days);
        let (records, truncated) = hs
            .search_records(
                "contacts",
                vec![vec![filter(&p.created_property, "GTE", t0)]],
                &[&p.created_property, &p.first_touch_property],
                &p.created_property,
                p.max_records,
            )
            .await?;
        let mut samples = Vec::with_capacity(records.len());
        for r in &records {
            let created = r
                .prop(&p.created_property)
                .and_then(Utc::parse)
                .ok_or_else(|| {
                    ProbeError::permanent(format!(
                        "hubspot: contact {} has no readable `{}`: malformed search result",
                        r.id, p.created_property
                    ))
                })?;
            samples.push((
                created,
                r.prop(&p.first_touch_property).and_then(Utc::parse),
            ));
        }
        Ok(evaluate::speed_to_lead(
            "hubspot",
            p.window_days,
            now,
            &samples,
            truncated,
        ))
    }
}

#[async_trait]
impl Probe for OwnerProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let hs = HubSpot::new(ctx, &p.conn())?;
        let (now, t0) = since(p.window_days);
        let cutoff = now.minus(std::time::Duration::from_secs(
            u64::from(p.grace_minutes) * 60,
        ));
        let base = vec![
            filter("createdate", "GTE", t0),
            filter("createdate", "LT", cutoff.millis().to_string()),
        ];
        let created = hs.search_total(&p.object, vec![base.clone()]).await?;
        let unassigned = if created == 0 {
            0
        } else {
            let mut g = base.clone();
            g.push(filter(&p.owner_property, "NOT_HAS_PROPERTY", None));
            hs.search_total(&p.object, vec![g]).await?
        };
        Ok(evaluate::owner_assignment(
            "hubspot",
            &p.object,
            p.window_days,
            p.grace_minutes,
            created,
            unassigned,
        ))
    }
}

#[async_trait]
impl Probe for DuplicatesProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let hs = HubSpot::new(ctx, &p.conn())?;
        let (records, truncated) = hs
            .list_records(&p.object, &[&p.email_property], p.max_records)
            .await?;
        let (total, surplus) =
            evaluate::duplicate_counts(records.iter().filter_map(|r| r.prop(&p.email_property)));
        let scope = format!("all {}", p.object);
        Ok(evaluate::duplicates(
            "hubspot", &p.object, &scope, total, surplus, truncated,
        ))
    }
}

#[async_trait]
impl Probe for EmailProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let hs = HubSpot::new(ctx, &p.conn())?;
        let (_, t0) = since(p.window_days);
        let (records, truncated) = hs
            .search_records(
                "contacts",
                vec![vec![filter("createdate", "GTE", t0)]],
                &[&p.email_property, "createdate"],
                "createdate",
                p.max_records,
            )
            .await?;
        let rules = EmailRules {
            role_local_parts: p.role_local_parts.clone(),
            count_missing: p.count_missing,
        };
        Ok(evaluate::email_validity(
            "hubspot",
            "contacts",
            p.window_days,
            records.iter().map(|r| r.prop(&p.email_property)),
            &rules,
            truncated,
        ))
    }
}

const CONTACTS_SCOPE: &str = "`crm.objects.contacts.read`";

/// Reference facts for every HubSpot kind.
pub const KINDS: [KindDoc; 10] = [
    KindDoc {
        kind: "hubspot.auth_and_quota",
        vendor: "hubspot",
        api: "HubSpot date-based API `2026-09` by default (param `api_version`; paths such as `/crm/objects/2026-09/contacts`)",
        measure: Measure::AuthAndQuota,
        permissions: CONTACTS_SCOPE,
        calls: "`GET /crm/objects/2026-09/contacts?limit=1`; reads `X-HubSpot-RateLimit-Daily` and `X-HubSpot-RateLimit-Daily-Remaining` (and the burst headers `-Max`, `-Remaining`, `-Interval-Milliseconds` as evidence)",
        notes: "401 or 403 is FAIL (credentials that do not work are what this probe measures); 429, 5xx and timeouts are ERROR. Apps that get no daily headers (OAuth apps) PASS with \"no budget reported\".",
    },
    KindDoc {
        kind: "hubspot.required_properties",
        vendor: "hubspot",
        api: "HubSpot date-based API `2026-09` by default (param `api_version`; paths such as `/crm/objects/2026-09/contacts`)",
        measure: Measure::RequiredProperties,
        permissions: "`crm.schemas.contacts.read`, `crm.schemas.deals.read` (one per object type listed)",
        calls: "`GET /crm/properties/2026-09/{objectType}?archived=false` per object type",
        notes: "Picklist options match on value or label. Archived properties count as missing. An object type with no properties at all is an ERROR (wrong portal or object type).",
    },
    KindDoc {
        kind: "hubspot.pipeline_shape",
        vendor: "hubspot",
        api: "HubSpot date-based API `2026-09` by default (param `api_version`; paths such as `/crm/objects/2026-09/contacts`)",
        measure: Measure::PipelineShape,
        permissions: "`crm.objects.deals.read`",
        calls: "`GET /crm/pipelines/2026-09/deals`",
        notes: "A stage is closed when `metadata.isClosed` is `\"true\"`; closed-won when it is closed with `metadata.probability` 1.0, closed-lost when closed with a lower one. An account with no pipelines is an ERROR.",
    },
    KindDoc {
        kind: "hubspot.source_attribution_coverage",
        vendor: "hubspot",
        api: "HubSpot date-based API `2026-09` by default (param `api_version`; paths such as `/crm/objects/2026-09/contacts`)",
        measure: Measure::SourceAttributionCoverage,
        permissions: CONTACTS_SCOPE,
        calls: "two `POST /crm/objects/2026-09/contacts/search` with `limit=1` reading `total`: created in the window; and created in the window with `hs_analytics_source` NOT_HAS_PROPERTY or IN the unknown values",
        notes: "Counts come from search totals, so the 10,000-result search cap does not apply. No contacts created in the window is NO_DATA.",
    },
    KindDoc {
        kind: "hubspot.lead_to_revenue_linkage",
        vendor: "hubspot",
        api: "HubSpot date-based API `2026-09` by default (param `api_version`; paths such as `/crm/objects/2026-09/contacts`)",
        measure: Measure::LeadToRevenueLinkage,
        permissions: "`crm.objects.deals.read`, `crm.objects.contacts.read`",
        calls: "`POST /crm/objects/2026-09/deals/search` (`hs_is_closed_won` = true, `closedate` in the window) for the total; with `linkage = \"associated_contact\"` (default) the won deals are paged (200 per page, up to `max_deals`), `POST /crm/associations/2026-09/deals/contacts/batch/read` and `POST /crm/objects/2026-09/contacts/batch/read` (100 per call) read their contacts' source; with `linkage = \"deal_property\"` one more search counts won deals whose own source is set",
        notes: "Conversion proof: mark it `proof = true` with `min_sample` (e.g. 30): the sample is the number of deals won in the window, and zero won deals is NO_DATA, never PASS.",
    },
    KindDoc {
        kind: "hubspot.lead_conversion_rates",
        vendor: "hubspot",
        api: "HubSpot date-based API `2026-09` by default (param `api_version`; paths such as `/crm/objects/2026-09/contacts`)",
        measure: Measure::LeadConversionRates,
        permissions: CONTACTS_SCOPE,
        calls: "`POST /crm/objects/2026-09/contacts/search` totals on the `hs_lifecyclestage_{stage}_date` properties: per step, entrants (date in the window) and converted (entrants with any later stage's date set, one filter group per later stage); the same for the last two weeks' cohorts when `max_weekly_change_percent` is set. Up to 25 searches with the default five stages, paced by `search_interval_ms`: give this probe a `timeout` of 30s or more.",
        notes: "Conversion proof: the sample is the number of contacts who entered the first stage in the window; nobody entering is NO_DATA. Contacts that skip a stage count as converted through it. The week-over-week comparison is between cohorts, so the newest cohort has had less time to convert.",
    },
    KindDoc {
        kind: "hubspot.speed_to_lead",
        vendor: "hubspot",
        api: "HubSpot date-based API `2026-09` by default (param `api_version`; paths such as `/crm/objects/2026-09/contacts`)",
        measure: Measure::SpeedToLead,
        permissions: CONTACTS_SCOPE,
        calls: "`POST /crm/objects/2026-09/contacts/search` paged (200 per page, `paging.next.after`) over contacts created in the window, newest first, reading `createdate` and `hs_sa_first_engagement_date`",
        notes: "At most `max_records` contacts (HubSpot search stops at 10,000 results per query); the message says when the cap was reached. Contacts not yet contacted count with the time they have waited so far.",
    },
    KindDoc {
        kind: "hubspot.owner_assignment",
        vendor: "hubspot",
        api: "HubSpot date-based API `2026-09` by default (param `api_version`; paths such as `/crm/objects/2026-09/contacts`)",
        measure: Measure::OwnerAssignment,
        permissions: CONTACTS_SCOPE,
        calls: "two `POST /crm/objects/2026-09/contacts/search` totals: created between the window start and `grace_minutes` ago; the same with `hubspot_owner_id` NOT_HAS_PROPERTY",
        notes: "No contacts in the window is NO_DATA.",
    },
    KindDoc {
        kind: "hubspot.duplicates",
        vendor: "hubspot",
        api: "HubSpot date-based API `2026-09` by default (param `api_version`; paths such as `/crm/objects/2026-09/contacts`)",
        measure: Measure::Duplicates,
        permissions: CONTACTS_SCOPE,
        calls: "`GET /crm/objects/2026-09/contacts?properties=email` paged (100 per call, `paging.next.after`) up to `max_records`",
        notes: "Emails are compared trimmed and lower-cased. HubSpot itself keeps primary emails unique per contact, so this mostly finds case and whitespace variants and imports that bypassed deduplication. Each page costs one call of the daily budget: the reserve stops the scan early with an ERROR.",
    },
    KindDoc {
        kind: "hubspot.email_validity",
        vendor: "hubspot",
        api: "HubSpot date-based API `2026-09` by default (param `api_version`; paths such as `/crm/objects/2026-09/contacts`)",
        measure: Measure::EmailValidity,
        permissions: CONTACTS_SCOPE,
        calls: "`POST /crm/objects/2026-09/contacts/search` paged over contacts created in the window, newest first, reading `email`",
        notes: "Invalid = malformed address, a reserved test domain (RFC 2606/6761: `example.com`, `.test`, …), or a role mailbox. Suppression lists live in the ESP (see the esp stage).",
    },
];

/// Register the HubSpot kinds.
pub fn register(registry: &mut ProbeRegistry) {
    register_kind(registry, &KINDS[0], AuthProbe);
    register_kind(registry, &KINDS[1], RequiredPropertiesProbe);
    register_kind(registry, &KINDS[2], PipelineShapeProbe);
    register_kind(registry, &KINDS[3], SourceCoverageProbe);
    register_kind(registry, &KINDS[4], LinkageProbe);
    register_kind(registry, &KINDS[5], ConversionProbe);
    register_kind(registry, &KINDS[6], SpeedProbe);
    register_kind(registry, &KINDS[7], OwnerProbe);
    register_kind(registry, &KINDS[8], DuplicatesProbe);
    register_kind(registry, &KINDS[9], EmailProbe);
}
