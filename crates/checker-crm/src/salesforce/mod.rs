//! Salesforce probes (REST API: `limits`, sObject `describe`, SOQL `query`, a pinned API
//! version), one kind per measure: `salesforce.auth_and_quota` … `salesforce.email_validity`.

pub mod client;

use std::collections::BTreeMap;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeRegistry};
use funnelgate_core::Measurement;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::client::{Conn, Salesforce, soql_list};
use crate::evaluate::{
    self, Budget, ConversionRules, EmailRules, FieldInfo, PipelineInfo, RequiredField, StageInfo,
    StepCounts, WonModel, weekly_limit,
};
use crate::kinds::{KindDoc, Validate, register_kind};
use crate::measure::Measure;
use crate::params::{check_count, check_name, check_percent, check_value, check_window, defaults};
use crate::time::Utc;

fn default_api_version() -> String {
    "v60.0".to_string()
}
fn default_daily_reserve_percent() -> f64 {
    10.0
}
fn default_lead() -> String {
    "Lead".to_string()
}
fn default_lead_source() -> String {
    "LeadSource".to_string()
}
fn default_email_field() -> String {
    "Email".to_string()
}
fn default_true() -> bool {
    true
}
fn default_required() -> Vec<RequiredField> {
    let f = |object: &str, name: &str, types: &[&str]| RequiredField {
        object: object.to_string(),
        name: name.to_string(),
        types: types.iter().map(|s| s.to_string()).collect(),
        options: Vec::new(),
    };
    vec![
        f("Lead", "Email", &["email"]),
        f("Lead", "Status", &["picklist"]),
        f("Lead", "LeadSource", &["picklist"]),
        f("Lead", "OwnerId", &["reference"]),
        f("Opportunity", "Amount", &["currency"]),
        f("Opportunity", "CloseDate", &["date"]),
        f("Opportunity", "StageName", &["picklist"]),
        f("Opportunity", "LeadSource", &["picklist"]),
    ]
}

/// Declares a Salesforce params struct: the connection fields every kind shares, then its own.
macro_rules! salesforce_params {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// The org's instance URL, e.g. `https://acme.my.salesforce.com`.
            pub instance_url: String,
            /// The REST API version every call is pinned to, e.g. `v60.0`.
            #[serde(default = "default_api_version")]
            pub api_version: String,
            /// Where the refresh-token flow posts (`/services/oauth2/token`), when the secret holds
            /// `{"client_id","client_secret","refresh_token"}`: e.g.
            /// `https://login.salesforce.com`. Default: the instance URL (My Domain).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub login_url: Option<String>,
            /// Percent of the org's daily API budget this probe never uses: when
            /// `Sforce-Limit-Info` reports less left, the probe stops with an ERROR.
            #[serde(default = "default_daily_reserve_percent")]
            pub daily_reserve_percent: f64,
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $name {
            fn conn(&self) -> Conn {
                Conn {
                    instance_url: self.instance_url.clone(),
                    api_version: self.api_version.clone(),
                    login_url: self.login_url.clone(),
                    daily_reserve_percent: self.daily_reserve_percent,
                }
            }

            fn validate_conn(&self) -> Result<(), ProbeError> {
                crate::http::validate_base_url("instance_url", &self.instance_url)?;
                if let Some(l) = &self.login_url {
                    crate::http::validate_base_url("login_url", l)?;
                }
                check_api_version(&self.api_version)?;
                check_percent("daily_reserve_percent", self.daily_reserve_percent)
            }
        }
    };
}

fn check_api_version(v: &str) -> Result<(), ProbeError> {
    let ok = v
        .strip_prefix('v')
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && a.len() <= 3
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.len() == 1
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    if !ok {
        return Err(ProbeError::params(format!(
            "`api_version` must look like `v60.0`, got `{v}`"
        )));
    }
    Ok(())
}

salesforce_params! {
    /// Params of `salesforce.auth_and_quota`.
    AuthParams {}
}

salesforce_params! {
    /// Params of `salesforce.required_properties`.
    RequiredParams {
        /// Fields the funnel depends on (`object` is an sObject such as `Lead` or `Opportunity`;
        /// `types` are Salesforce field types such as `email`, `picklist`, `currency`, `date`;
        /// `options` are picklist values that must be active). The default lists the lead's email,
        /// status, source and owner, and the opportunity's amount, close date, stage and source.
        #[serde(default = "default_required")]
        required: Vec<RequiredField>,
    }
}

salesforce_params! {
    /// Params of `salesforce.pipeline_shape`.
    PipelineParams {}
}

salesforce_params! {
    /// Params of `salesforce.source_attribution_coverage`.
    CoverageParams {
        /// Days back from now: records created in this window are measured.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// sObject measured.
        #[serde(default = "default_lead")]
        object: String,
        /// Field holding the original source.
        #[serde(default = "default_lead_source")]
        source_field: String,
        /// Values that mean "no source" besides an empty field (SOQL compares them case-insensitively).
        #[serde(default = "defaults::unknown_source_values")]
        unknown_values: Vec<String>,
    }
}

/// How a won opportunity is traced back to a sourced lead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SalesforceLinkage {
    /// The opportunity's own source field (filled from the lead on conversion).
    #[default]
    OpportunityField,
    /// A converted lead with a source points at the opportunity (`ConvertedOpportunityId`).
    ConvertedLead,
}

salesforce_params! {
    /// Params of `salesforce.lead_to_revenue_linkage`.
    LinkageParams {
        /// Days back from now: opportunities won (`CloseDate`) in this window are measured.
        #[serde(default = "defaults::window_90")]
        window_days: u32,
        /// How a won opportunity is traced to a lead with a source.
        #[serde(default)]
        linkage: SalesforceLinkage,
        /// Field holding the source (on Opportunity, or on Lead with `converted_lead`).
        #[serde(default = "default_lead_source")]
        source_field: String,
        /// Values that mean "no source" besides an empty field.
        #[serde(default = "defaults::unknown_source_values")]
        unknown_values: Vec<String>,
    }
}

salesforce_params! {
    /// Params of `salesforce.lead_conversion_rates`.
    ConversionParams {
        /// Days back from now: leads created in this window form the cohort.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// A step with at least this many entrants and no conversion makes the probe FAIL.
        #[serde(default = "defaults::min_entrants")]
        min_entrants: u64,
        /// WARN when a step's rate moves by more than this percent (relative) between the cohorts
        /// of the last 7 days and the 7 days before; 0 turns the comparison off.
        #[serde(default = "defaults::max_weekly_change_percent")]
        max_weekly_change_percent: f64,
    }
}

salesforce_params! {
    /// Params of `salesforce.speed_to_lead`.
    SpeedParams {
        /// Days back from now: records created in this window are measured.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// sObject measured (`Lead` or `Contact`).
        #[serde(default = "default_lead")]
        object: String,
        /// A datetime field holding the first response (e.g. a custom `First_Response__c`).
        /// Default: the earliest Task on the record (`Tasks` child relationship).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_touch_field: Option<String>,
        /// Most records read (newest first).
        #[serde(default = "defaults::max_records_2000")]
        max_records: u64,
    }
}

salesforce_params! {
    /// Params of `salesforce.owner_assignment`.
    OwnerParams {
        /// Days back from now: records created in this window are measured.
        #[serde(default = "defaults::window_7")]
        window_days: u32,
        /// Records younger than this many minutes are not judged yet.
        #[serde(default = "defaults::grace_minutes")]
        grace_minutes: u32,
        /// sObject measured.
        #[serde(default = "default_lead")]
        object: String,
        /// Count records owned by a queue as unassigned.
        #[serde(default = "default_true")]
        queues_are_unassigned: bool,
        /// User ids that mean "nobody yet" (a default owner or an integration user).
        #[serde(default)]
        unassigned_owner_ids: Vec<String>,
    }
}

salesforce_params! {
    /// Params of `salesforce.duplicates`.
    DuplicatesParams {
        /// sObject scanned.
        #[serde(default = "default_lead")]
        object: String,
        /// Field holding the email address.
        #[serde(default = "default_email_field")]
        email_field: String,
        /// Only records created in the last this-many days; leave it out for all records.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window_days: Option<u32>,
    }
}

salesforce_params! {
    /// Params of `salesforce.email_validity`.
    EmailParams {
        /// Days back from now: records created in this window are measured.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// sObject measured.
        #[serde(default = "default_lead")]
        object: String,
        /// Field holding the email address.
        #[serde(default = "default_email_field")]
        email_field: String,
        /// Local parts counted as role mailboxes; empty: roles not counted.
        #[serde(default = "defaults::role_local_parts")]
        role_local_parts: Vec<String>,
        /// Count records without any email as invalid.
        #[serde(default, skip_serializing_if = "defaults::is_false")]
        count_missing: bool,
        /// Most records read (newest first).
        #[serde(default = "defaults::max_records_2000")]
        max_records: u64,
    }
}

fn check_values(field: &str, vs: &[String]) -> Result<(), ProbeError> {
    vs.iter().try_for_each(|v| check_value(field, v))
}

fn check_ids(vs: &[String]) -> Result<(), ProbeError> {
    for v in vs {
        if !(v.len() == 15 || v.len() == 18) || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ProbeError::params(format!(
                "`unassigned_owner_ids`: `{v}` is not a Salesforce id"
            )));
        }
    }
    Ok(())
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
            check_name("required[].object", &r.object, false)?;
            check_name("required[].name", &r.name, false)?;
            check_values("required[].options", &r.options)?;
        }
        Ok(())
    }
}
impl Validate for PipelineParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()
    }
}
impl Validate for CoverageParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_name("object", &self.object, false)?;
        check_name("source_field", &self.source_field, true)?;
        check_values("unknown_values", &self.unknown_values)
    }
}
impl Validate for LinkageParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_name("source_field", &self.source_field, true)?;
        check_values("unknown_values", &self.unknown_values)
    }
}
impl Validate for ConversionParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
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
        check_name("object", &self.object, false)?;
        if let Some(f) = &self.first_touch_field {
            check_name("first_touch_field", f, true)?;
        }
        check_count("max_records", self.max_records, client::QUERY_RECORD_CAP)
    }
}
impl Validate for OwnerParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_name("object", &self.object, false)?;
        check_ids(&self.unassigned_owner_ids)?;
        if !self.queues_are_unassigned && self.unassigned_owner_ids.is_empty() {
            return Err(ProbeError::params(
                "nothing counts as unassigned: set `queues_are_unassigned` or list `unassigned_owner_ids`",
            ));
        }
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
        check_name("object", &self.object, false)?;
        check_name("email_field", &self.email_field, false)?;
        if let Some(d) = self.window_days {
            check_window("window_days", d)?;
        }
        Ok(())
    }
}
impl Validate for EmailParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_name("object", &self.object, false)?;
        check_name("email_field", &self.email_field, false)?;
        check_values("role_local_parts", &self.role_local_parts)?;
        check_count("max_records", self.max_records, client::QUERY_RECORD_CAP)
    }
}

/// `<field> = null OR <field> IN (unknown…)`, or `… != null AND NOT IN …` when `known`.
fn source_condition(field: &str, unknown: &[String], known: bool) -> String {
    match (known, unknown.is_empty()) {
        (true, true) => format!("{field} != null"),
        (true, false) => format!("{field} != null AND {field} NOT IN {}", soql_list(unknown)),
        (false, true) => format!("{field} = null"),
        (false, false) => format!("({field} = null OR {field} IN {})", soql_list(unknown)),
    }
}

/// A string field of a query record.
fn field_str<'a>(rec: &'a Value, name: &str) -> Option<&'a str> {
    let mut cur = rec;
    for part in name.split('.') {
        cur = cur.get(part)?;
    }
    cur.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// `salesforce.auth_and_quota`.
pub struct AuthProbe(AuthParams);
/// `salesforce.required_properties`.
pub struct RequiredProbe(RequiredParams);
/// `salesforce.pipeline_shape`.
pub struct PipelineProbe(PipelineParams);
/// `salesforce.source_attribution_coverage`.
pub struct CoverageProbe(CoverageParams);
/// `salesforce.lead_to_revenue_linkage`.
pub struct LinkageProbe(LinkageParams);
/// `salesforce.lead_conversion_rates`.
pub struct ConversionProbe(ConversionParams);
/// `salesforce.speed_to_lead`.
pub struct SpeedProbe(SpeedParams);
/// `salesforce.owner_assignment`.
pub struct OwnerProbe(OwnerParams);
/// `salesforce.duplicates`.
pub struct DuplicatesProbe(DuplicatesParams);
/// `salesforce.email_validity`.
pub struct EmailProbe(EmailParams);

#[async_trait]
impl Probe for AuthProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let sf = Salesforce::new(ctx, &self.0.conn())?;
        match sf.limits().await {
            Ok(r) => {
                let daily = &r.body["DailyApiRequests"];
                let budget = match (daily["Max"].as_u64(), daily["Remaining"].as_u64()) {
                    (Some(max), Some(remaining)) => Some(Budget {
                        remaining,
                        max,
                        label: "daily API request".into(),
                    }),
                    _ => sf.budget(),
                };
                let mut m = evaluate::auth_and_quota("salesforce", budget);
                if let (Some(max), Some(rem)) = (
                    r.body["DataStorageMB"]["Max"].as_u64(),
                    r.body["DataStorageMB"]["Remaining"].as_u64(),
                ) {
                    m = m
                        .with_evidence("data_storage_mb_max", max.to_string())
                        .with_evidence("data_storage_mb_remaining", rem.to_string());
                }
                Ok(m.with_evidence("api_version", self.0.api_version.clone()))
            }
            Err(e) if e.is_auth() => Ok(evaluate::auth_failed(&e.error.message)),
            Err(e) if e.error.message.contains("REQUEST_LIMIT_EXCEEDED") => Ok(Measurement::value(
                0.0,
                Measure::AuthAndQuota.unit(),
                format!(
                    "salesforce credentials work but the daily API budget is spent: {}",
                    e.error.message
                ),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Probe for RequiredProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let sf = Salesforce::new(ctx, &self.0.conn())?;
        let mut available = BTreeMap::new();
        for r in &self.0.required {
            if available.contains_key(&r.object) {
                continue;
            }
            let fields = sf.describe(&r.object).await?;
            let infos = fields
                .into_iter()
                .map(|f| FieldInfo {
                    name: f.name,
                    field_type: f.field_type,
                    options: f
                        .picklist_values
                        .into_iter()
                        .filter(|p| p.active)
                        .flat_map(|p| std::iter::once(p.value).chain(p.label))
                        .collect(),
                    archived: false,
                })
                .collect();
            available.insert(r.object.clone(), infos);
        }
        Ok(evaluate::required_properties(
            "salesforce",
            &self.0.required,
            &available,
        ))
    }
}

#[async_trait]
impl Probe for PipelineProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let sf = Salesforce::new(ctx, &self.0.conn())?;
        let soql = "SELECT MasterLabel, IsClosed, IsWon, DefaultProbability, SortOrder FROM OpportunityStage WHERE IsActive = true ORDER BY SortOrder";
        let (records, _) = sf.query(soql, 1000).await?;
        if records.is_empty() {
            return Err(ProbeError::permanent(
                "salesforce: the org has no active opportunity stages (empty org or no access to OpportunityStage)",
            ));
        }
        let stages = records
            .iter()
            .map(|r| {
                let closed = r["IsClosed"].as_bool().unwrap_or(false);
                StageInfo {
                    label: field_str(r, "MasterLabel").unwrap_or("").to_string(),
                    order: r["SortOrder"].as_f64().unwrap_or(0.0),
                    probability: r["DefaultProbability"].as_f64().map(|p| p / 100.0),
                    is_closed: closed,
                    is_won: closed && r["IsWon"].as_bool().unwrap_or(false),
                }
            })
            .collect();
        let pipeline = PipelineInfo {
            label: "Opportunity stages".into(),
            stages,
        };
        Ok(evaluate::pipeline_shape(
            "salesforce",
            &[pipeline],
            WonModel::Stages,
        ))
    }
}

#[async_trait]
impl Probe for CoverageProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let sf = Salesforce::new(ctx, &p.conn())?;
        let t0 = Utc::now().minus_days(p.window_days).rfc3339();
        let base = format!("SELECT COUNT() FROM {} WHERE CreatedDate >= {t0}", p.object);
        let created = sf.count(&base).await?;
        let unattributed = if created == 0 {
            0
        } else {
            sf.count(&format!(
                "{base} AND {}",
                source_condition(&p.source_field, &p.unknown_values, false)
            ))
            .await?
        };
        let noun = format!("{} records", p.object);
        Ok(evaluate::source_attribution(
            "salesforce",
            &noun,
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
        let sf = Salesforce::new(ctx, &p.conn())?;
        let since = Utc::now().minus_days(p.window_days).date();
        let won_q =
            format!("SELECT COUNT() FROM Opportunity WHERE IsWon = true AND CloseDate >= {since}");
        let won = sf.count(&won_q).await?;
        if won == 0 {
            return Ok(evaluate::lead_to_revenue("salesforce", p.window_days, 0, 0));
        }
        let known = source_condition(&p.source_field, &p.unknown_values, true);
        let attributed_q = match p.linkage {
            SalesforceLinkage::OpportunityField => format!("{won_q} AND {known}"),
            SalesforceLinkage::ConvertedLead => format!(
                "{won_q} AND Id IN (SELECT ConvertedOpportunityId FROM Lead WHERE IsConverted = true AND {known})"
            ),
        };
        let attributed = sf.count(&attributed_q).await?;
        let linkage = match p.linkage {
            SalesforceLinkage::OpportunityField => "opportunity_field",
            SalesforceLinkage::ConvertedLead => "converted_lead",
        };
        Ok(
            evaluate::lead_to_revenue("salesforce", p.window_days, won, attributed)
                .with_evidence("linkage", linkage),
        )
    }
}

#[async_trait]
impl Probe for ConversionProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let sf = Salesforce::new(ctx, &p.conn())?;
        let now = Utc::now();
        let (t0, w1, w2) = (
            now.minus_days(p.window_days).rfc3339(),
            now.minus_days(7).rfc3339(),
            now.minus_days(14).rfc3339(),
        );
        // The lead funnel: created → converted → converted opportunity won.
        let conditions = [
            "",
            " AND IsConverted = true",
            " AND IsConverted = true AND ConvertedOpportunity.IsWon = true",
        ];
        let names = ["lead", "converted", "won"];
        let counts = async |window: &str, step: usize| -> Result<(u64, u64), ProbeError> {
            let base = format!(
                "SELECT COUNT() FROM Lead WHERE {window}{}",
                conditions[step]
            );
            let entrants = sf.count(&base).await?;
            if entrants == 0 {
                return Ok((0, 0));
            }
            Ok((
                entrants,
                sf.count(&format!(
                    "SELECT COUNT() FROM Lead WHERE {window}{}",
                    conditions[step + 1]
                ))
                .await?,
            ))
        };
        let window = format!("CreatedDate >= {t0}");
        let mut steps = Vec::new();
        for i in 0..2 {
            let (entrants, converted) = counts(&window, i).await?;
            let weeks = match weekly_limit(p.max_weekly_change_percent) {
                Some(_) if entrants >= p.min_entrants => Some([
                    counts(&format!("CreatedDate >= {w1}"), i).await?,
                    counts(&format!("CreatedDate >= {w2} AND CreatedDate < {w1}"), i).await?,
                ]),
                _ => None,
            };
            steps.push(StepCounts {
                from: names[i].into(),
                to: names[i + 1].into(),
                entrants,
                converted,
                weeks,
            });
        }
        let first = steps[0].entrants;
        let won = if first == 0 {
            0
        } else {
            sf.count(&format!(
                "SELECT COUNT() FROM Lead WHERE {window}{}",
                conditions[2]
            ))
            .await?
        };
        let rules = ConversionRules {
            min_entrants: p.min_entrants,
            max_weekly_change_percent: weekly_limit(p.max_weekly_change_percent),
        };
        Ok(evaluate::lead_conversion(
            "salesforce",
            p.window_days,
            &steps,
            (first, won),
            rules,
        ))
    }
}

#[async_trait]
impl Probe for SpeedProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let sf = Salesforce::new(ctx, &p.conn())?;
        let now = Utc::now();
        let t0 = now.minus_days(p.window_days).rfc3339();
        let touch = match &p.first_touch_field {
            Some(f) => f.clone(),
            None => "(SELECT CreatedDate FROM Tasks ORDER BY CreatedDate ASC LIMIT 1)".to_string(),
        };
        let soql = format!(
            "SELECT Id, CreatedDate, {touch} FROM {} WHERE CreatedDate >= {t0} ORDER BY CreatedDate DESC",
            p.object
        );
        let (records, truncated) = sf.query(&soql, p.max_records).await?;
        let mut samples = Vec::with_capacity(records.len());
        for r in &records {
            let created = field_str(r, "CreatedDate")
                .and_then(Utc::parse)
                .ok_or_else(|| {
                    ProbeError::permanent(
                        "salesforce: GET query: a record without a readable CreatedDate",
                    )
                })?;
            let touched = match &p.first_touch_field {
                Some(f) => field_str(r, f).and_then(Utc::parse),
                None => r["Tasks"]["records"]
                    .get(0)
                    .and_then(|t| field_str(t, "CreatedDate"))
                    .and_then(Utc::parse),
            };
            samples.push((created, touched));
        }
        Ok(evaluate::speed_to_lead(
            "salesforce",
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
        let sf = Salesforce::new(ctx, &p.conn())?;
        let now = Utc::now();
        let t0 = now.minus_days(p.window_days).rfc3339();
        let cutoff = now
            .minus(std::time::Duration::from_secs(
                u64::from(p.grace_minutes) * 60,
            ))
            .rfc3339();
        let base = format!(
            "SELECT COUNT() FROM {} WHERE CreatedDate >= {t0} AND CreatedDate < {cutoff}",
            p.object
        );
        let created = sf.count(&base).await?;
        let unassigned = if created == 0 {
            0
        } else {
            let mut ors = Vec::new();
            if p.queues_are_unassigned {
                ors.push("Owner.Type = 'Queue'".to_string());
            }
            if !p.unassigned_owner_ids.is_empty() {
                ors.push(format!("OwnerId IN {}", soql_list(&p.unassigned_owner_ids)));
            }
            sf.count(&format!("{base} AND ({})", ors.join(" OR ")))
                .await?
        };
        let noun = format!("{} records", p.object);
        Ok(evaluate::owner_assignment(
            "salesforce",
            &noun,
            p.window_days,
            p.grace_minutes,
            created,
            unassigned,
        ))
    }
}

/// Aggregate queries return at most this many groups (and cannot be paged).
const AGGREGATE_ROWS: usize = 2000;

#[async_trait]
impl Probe for DuplicatesProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let sf = Salesforce::new(ctx, &p.conn())?;
        let mut filter = format!("{} != null", p.email_field);
        let scope = match p.window_days {
            Some(d) => {
                filter.push_str(&format!(
                    " AND CreatedDate >= {}",
                    Utc::now().minus_days(d).rfc3339()
                ));
                format!("{} records created in the last {d} days", p.object)
            }
            None => format!("all {} records", p.object),
        };
        let total = sf
            .count(&format!("SELECT COUNT() FROM {} WHERE {filter}", p.object))
            .await?;
        let groups_q = format!(
            "SELECT {f}, COUNT(Id) dupes FROM {o} WHERE {filter} GROUP BY {f} HAVING COUNT(Id) > 1",
            f = p.email_field,
            o = p.object
        );
        let (groups, _) = sf.query(&groups_q, AGGREGATE_ROWS as u64).await?;
        let surplus: u64 = groups
            .iter()
            .filter_map(|g| g["dupes"].as_u64())
            .map(|n| n.saturating_sub(1))
            .sum();
        let capped = groups.len() >= AGGREGATE_ROWS;
        let mut m = evaluate::duplicates(
            "salesforce",
            &format!("{} records", p.object),
            &scope,
            total,
            surplus,
            capped,
        );
        if capped {
            m.message
                .push_str(" (at least: Salesforce returns at most 2,000 duplicate groups)");
        }
        Ok(m.with_evidence("duplicate_groups", groups.len().to_string()))
    }
}

#[async_trait]
impl Probe for EmailProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let sf = Salesforce::new(ctx, &p.conn())?;
        let t0 = Utc::now().minus_days(p.window_days).rfc3339();
        let soql = format!(
            "SELECT Id, {} FROM {} WHERE CreatedDate >= {t0} ORDER BY CreatedDate DESC",
            p.email_field, p.object
        );
        let (records, truncated) = sf.query(&soql, p.max_records).await?;
        let rules = EmailRules {
            role_local_parts: p.role_local_parts.clone(),
            count_missing: p.count_missing,
        };
        let noun = format!("{} records", p.object);
        Ok(evaluate::email_validity(
            "salesforce",
            &noun,
            p.window_days,
            records.iter().map(|r| field_str(r, &p.email_field)),
            &rules,
            truncated,
        ))
    }
}

const PERMS: &str = "the `api` OAuth scope (connected app) or a session of a user with the *API Enabled* permission";

/// Reference facts for every Salesforce kind.
pub const KINDS: [KindDoc; 10] = [
    KindDoc {
        kind: "salesforce.auth_and_quota",
        vendor: "salesforce",
        api: "Salesforce REST API `v60.0` by default (param `api_version`)",
        measure: Measure::AuthAndQuota,
        permissions: "the `api` OAuth scope and *API Enabled*; reading limits also needs *View Setup and Configuration*",
        calls: "`GET /services/data/{api_version}/limits` → `DailyApiRequests.{Max,Remaining}` (and `DataStorageMB` as evidence)",
        notes: "401 (also a rejected refresh token) and 403 are FAIL; the pinned `api_version` is exercised by this call, so a retired version shows up here as a 404 ERROR.",
    },
    KindDoc {
        kind: "salesforce.required_properties",
        vendor: "salesforce",
        api: "Salesforce REST API `v60.0` by default (param `api_version`)",
        measure: Measure::RequiredProperties,
        permissions: PERMS,
        calls: "`GET /services/data/{api_version}/sobjects/{object}/describe` per sObject",
        notes: "Only active picklist values count (value or label). Field-level security hides fields the user cannot see: run it as the integration user.",
    },
    KindDoc {
        kind: "salesforce.pipeline_shape",
        vendor: "salesforce",
        api: "Salesforce REST API `v60.0` by default (param `api_version`)",
        measure: Measure::PipelineShape,
        permissions: PERMS,
        calls: "SOQL `SELECT MasterLabel, IsClosed, IsWon, DefaultProbability, SortOrder FROM OpportunityStage WHERE IsActive = true`",
        notes: "Salesforce keeps one list of opportunity stages (sales processes pick subsets of it): it is checked as one pipeline. `DefaultProbability` is in percent.",
    },
    KindDoc {
        kind: "salesforce.source_attribution_coverage",
        vendor: "salesforce",
        api: "Salesforce REST API `v60.0` by default (param `api_version`)",
        measure: Measure::SourceAttributionCoverage,
        permissions: PERMS,
        calls: "two SOQL `SELECT COUNT() FROM Lead WHERE CreatedDate >= <window start>` (the second adds `AND (LeadSource = null OR LeadSource IN (<unknown values>))`) reading `totalSize`",
        notes: "Counts, not records: no paging and no record cap.",
    },
    KindDoc {
        kind: "salesforce.lead_to_revenue_linkage",
        vendor: "salesforce",
        api: "Salesforce REST API `v60.0` by default (param `api_version`)",
        measure: Measure::LeadToRevenueLinkage,
        permissions: PERMS,
        calls: "SOQL `SELECT COUNT() FROM Opportunity WHERE IsWon = true AND CloseDate >= <window start>`, then the same `AND LeadSource != null …` (`opportunity_field`) or `AND Id IN (SELECT ConvertedOpportunityId FROM Lead WHERE IsConverted = true AND LeadSource != null …)` (`converted_lead`)",
        notes: "Conversion proof: the sample is the number of opportunities won in the window; zero is NO_DATA.",
    },
    KindDoc {
        kind: "salesforce.lead_conversion_rates",
        vendor: "salesforce",
        api: "Salesforce REST API `v60.0` by default (param `api_version`)",
        measure: Measure::LeadConversionRates,
        permissions: PERMS,
        calls: "SOQL `SELECT COUNT() FROM Lead WHERE CreatedDate >= <window start>` with `AND IsConverted = true` and `AND ConvertedOpportunity.IsWon = true`, for the window and the last two weeks' cohorts",
        notes: "The funnel is lead → converted → won (the converted opportunity). Conversion proof: the sample is the number of leads created in the window. The `ConvertedOpportunity.IsWon` relationship filter is `unverified` against a live org.",
    },
    KindDoc {
        kind: "salesforce.speed_to_lead",
        vendor: "salesforce",
        api: "Salesforce REST API `v60.0` by default (param `api_version`)",
        measure: Measure::SpeedToLead,
        permissions: "as above, plus read access to Tasks",
        calls: "SOQL `SELECT Id, CreatedDate, (SELECT CreatedDate FROM Tasks ORDER BY CreatedDate ASC LIMIT 1) FROM Lead WHERE CreatedDate >= <window start> ORDER BY CreatedDate DESC`, paged through `nextRecordsUrl` up to `max_records`",
        notes: "Or a datetime field of your own (`first_touch_field`). Records without a task count with the time they have waited so far.",
    },
    KindDoc {
        kind: "salesforce.owner_assignment",
        vendor: "salesforce",
        api: "Salesforce REST API `v60.0` by default (param `api_version`)",
        measure: Measure::OwnerAssignment,
        permissions: PERMS,
        calls: "two SOQL counts of leads created between the window start and `grace_minutes` ago, the second with `AND (Owner.Type = 'Queue' OR OwnerId IN (<unassigned_owner_ids>))`",
        notes: "Salesforce always has an owner: \"unassigned\" means still with a queue or a default/integration user.",
    },
    KindDoc {
        kind: "salesforce.duplicates",
        vendor: "salesforce",
        api: "Salesforce REST API `v60.0` by default (param `api_version`)",
        measure: Measure::Duplicates,
        permissions: PERMS,
        calls: "SOQL `SELECT COUNT() FROM Lead WHERE Email != null` and `SELECT Email, COUNT(Id) dupes FROM Lead WHERE Email != null GROUP BY Email HAVING COUNT(Id) > 1`",
        notes: "SOQL groups emails case-insensitively (whitespace is not trimmed). Aggregate queries return at most 2,000 groups and cannot be paged: beyond that the share is a lower bound and the message says so.",
    },
    KindDoc {
        kind: "salesforce.email_validity",
        vendor: "salesforce",
        api: "Salesforce REST API `v60.0` by default (param `api_version`)",
        measure: Measure::EmailValidity,
        permissions: PERMS,
        calls: "SOQL `SELECT Id, Email FROM Lead WHERE CreatedDate >= <window start> ORDER BY CreatedDate DESC`, paged through `nextRecordsUrl` up to `max_records`",
        notes: "Same rules as every vendor: malformed, reserved test domains, role mailboxes.",
    },
];

/// Register the Salesforce kinds.
pub fn register(registry: &mut ProbeRegistry) {
    register_kind(registry, &KINDS[0], AuthProbe);
    register_kind(registry, &KINDS[1], RequiredProbe);
    register_kind(registry, &KINDS[2], PipelineProbe);
    register_kind(registry, &KINDS[3], CoverageProbe);
    register_kind(registry, &KINDS[4], LinkageProbe);
    register_kind(registry, &KINDS[5], ConversionProbe);
    register_kind(registry, &KINDS[6], SpeedProbe);
    register_kind(registry, &KINDS[7], OwnerProbe);
    register_kind(registry, &KINDS[8], DuplicatesProbe);
    register_kind(registry, &KINDS[9], EmailProbe);
}
