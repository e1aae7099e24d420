//! Warehouse probes: the CRM measures as ready-made read-only SQL over documented tables
//! (`crm_contacts`, `crm_deals`, `crm_deal_stages`, `crm_activities`, `crm_lifecycle_events`),
//! for teams that sync their CRM into PostgreSQL, MySQL/MariaDB or SQLite. Table and column
//! names can be overridden per probe; anything else is the generic `sql` probe's job.

pub mod db;

use std::collections::BTreeMap;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeRegistry};
use funnelgate_core::Measurement;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use self::db::{Backend, Db, Dialect, Sql};
use crate::evaluate::{
    self, ConversionRules, EmailRules, FieldInfo, PipelineInfo, RequiredField, StageInfo,
    StepCounts, WonModel, weekly_limit,
};
use crate::kinds::{KindDoc, Omission, Validate, register_kind};
use crate::measure::Measure;
use crate::params::{check_count, check_name, check_value, check_window, defaults};
use crate::time::Utc;
use funnelgate_checker_sdk::db::DbPools;
use std::sync::Arc;

/// The documented tables: logical name → default table name.
pub const TABLES: [(&str, &str); 5] = [
    ("contacts", "crm_contacts"),
    ("deals", "crm_deals"),
    ("deal_stages", "crm_deal_stages"),
    ("activities", "crm_activities"),
    ("lifecycle_events", "crm_lifecycle_events"),
];

/// The documented columns (`table.column`, logical names) with what they hold.
pub const COLUMNS: [(&str, &str); 29] = [
    ("contacts.id", "primary key (any type)"),
    ("contacts.email", "email address, text, may be null"),
    (
        "contacts.created_at",
        "when the contact/lead was created, UTC timestamp",
    ),
    (
        "contacts.original_source",
        "original source / channel, text, null or empty when unknown",
    ),
    (
        "contacts.owner_id",
        "owner (sales rep) id, null when unassigned",
    ),
    (
        "contacts.first_touch_at",
        "first sales activity, UTC timestamp, null when none (only with `first_touch = \"column\"`)",
    ),
    ("deals.id", "primary key"),
    (
        "deals.contact_id",
        "the contact the deal came from (references contacts.id), may be null",
    ),
    ("deals.amount", "deal value, numeric"),
    (
        "deals.created_at",
        "when the deal was created, UTC timestamp",
    ),
    (
        "deals.closed_at",
        "when the deal was closed (won or lost), UTC timestamp, null while open",
    ),
    (
        "deals.is_won",
        "boolean (PostgreSQL boolean, MySQL TINYINT(1), SQLite 0/1)",
    ),
    ("deals.is_closed", "boolean"),
    ("deals.source", "the deal's own source, text, may be null"),
    ("deals.pipeline_id", "references deal_stages.pipeline_id"),
    ("deals.stage_id", "references deal_stages.id"),
    ("deal_stages.id", "primary key"),
    (
        "deal_stages.pipeline_id",
        "pipeline the stage belongs to (any type)",
    ),
    ("deal_stages.label", "stage name, text"),
    (
        "deal_stages.display_order",
        "position in the pipeline, number",
    ),
    (
        "deal_stages.probability",
        "win probability 0–1, number, may be null",
    ),
    ("deal_stages.is_closed", "boolean"),
    ("deal_stages.is_won", "boolean"),
    ("activities.id", "primary key"),
    ("activities.contact_id", "references contacts.id"),
    (
        "activities.occurred_at",
        "when the sales activity (call, email, meeting) happened, UTC timestamp",
    ),
    ("lifecycle_events.contact_id", "references contacts.id"),
    (
        "lifecycle_events.stage",
        "lifecycle stage entered, text (e.g. lead, mql, sql, opportunity, customer)",
    ),
    (
        "lifecycle_events.entered_at",
        "when the contact entered the stage, UTC timestamp",
    ),
];

fn default_stages() -> Vec<String> {
    ["lead", "mql", "sql", "opportunity", "customer"]
        .into_iter()
        .map(str::to_string)
        .collect()
}

fn default_required() -> Vec<RequiredField> {
    let f = |object: &str, name: &str| RequiredField {
        object: object.to_string(),
        name: name.to_string(),
        types: Vec::new(),
        options: Vec::new(),
    };
    vec![
        f("contacts", "id"),
        f("contacts", "email"),
        f("contacts", "created_at"),
        f("contacts", "original_source"),
        f("contacts", "owner_id"),
        f("deals", "id"),
        f("deals", "contact_id"),
        f("deals", "amount"),
        f("deals", "closed_at"),
        f("deals", "is_won"),
        f("deals", "source"),
    ]
}

/// Declares a warehouse params struct: the connection and naming fields every kind shares.
macro_rules! warehouse_params {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Connection URL without a password: `postgres://reader@db:5432/crm`,
            /// `mysql://reader@db:3306/crm`, `mariadb://…` or `sqlite:path/to.db`. The probe's
            /// `secret`, if named, is the password. Leave `url` and `sqlite_path` out to take the
            /// whole URL (with credentials) from the `secret`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub url: Option<String>,
            /// Path of an SQLite database file, opened read-only.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub sqlite_path: Option<String>,
            /// Table names replacing the documented ones, by logical name (`contacts`, `deals`,
            /// `deal_stages`, `activities`, `lifecycle_events`), e.g.
            /// `{ contacts = "hubspot.contacts" }`; a schema prefix is allowed.
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub tables: BTreeMap<String, String>,
            /// Column names replacing the documented ones, by `table.column` logical name, e.g.
            /// `{ "contacts.created_at" = "createdate" }`.
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub columns: BTreeMap<String, String>,
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $name {
            fn names(&self) -> Names<'_> {
                Names { tables: &self.tables, columns: &self.columns }
            }

            fn validate_conn(&self) -> Result<(), ProbeError> {
                if let Some(u) = &self.url {
                    db::check_url_param(u)?;
                }
                if self.url.is_some() && self.sqlite_path.is_some() {
                    return Err(ProbeError::params("set `url` or `sqlite_path`, not both"));
                }
                if self.sqlite_path.as_deref().is_some_and(|p| p.trim().is_empty()) {
                    return Err(ProbeError::params("`sqlite_path` must not be empty"));
                }
                self.names().validate()
            }

            async fn open(&self, pools: &DbPools, ctx: &ProbeContext) -> Result<Db, ProbeError> {
                db::connect(pools, ctx, self.url.as_deref(), self.sqlite_path.as_deref()).await
            }
        }
    };
}

/// Table and column name overrides.
pub struct Names<'a> {
    tables: &'a BTreeMap<String, String>,
    columns: &'a BTreeMap<String, String>,
}

impl Names<'_> {
    fn validate(&self) -> Result<(), ProbeError> {
        for (k, v) in self.tables {
            if !TABLES.iter().any(|(t, _)| t == k) {
                let known: Vec<&str> = TABLES.iter().map(|(t, _)| *t).collect();
                return Err(ProbeError::params(format!(
                    "`tables`: unknown table `{k}` (known: {})",
                    known.join(", ")
                )));
            }
            check_name(&format!("tables.{k}"), v, true)?;
        }
        for (k, v) in self.columns {
            if !COLUMNS.iter().any(|(c, _)| c == k) {
                return Err(ProbeError::params(format!(
                    "`columns`: unknown column `{k}` (use `table.column` with the documented names, e.g. `contacts.created_at`)"
                )));
            }
            check_name(&format!("columns.{k}"), v, false)?;
        }
        Ok(())
    }

    /// The actual table name of a logical table (or `name` itself when it is not a logical one).
    fn table(&self, logical: &str) -> String {
        if let Some(t) = self.tables.get(logical) {
            return t.clone();
        }
        TABLES
            .iter()
            .find(|(l, _)| *l == logical)
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| logical.to_string())
    }

    /// The actual column name of `table.column`.
    fn column(&self, table: &str, column: &str) -> String {
        self.columns
            .get(&format!("{table}.{column}"))
            .cloned()
            .unwrap_or_else(|| column.to_string())
    }
}

/// Quoted names for one query: `t("contacts")`, `c("c", "contacts", "created_at")` → `c."created_at"`.
struct Q<'a> {
    d: Dialect,
    names: Names<'a>,
}

impl Q<'_> {
    fn t(&self, logical: &str) -> String {
        self.d.ident(&self.names.table(logical))
    }
    fn c(&self, alias: &str, table: &str, column: &str) -> String {
        format!(
            "{alias}.{}",
            self.d.ident(&self.names.column(table, column))
        )
    }
    /// `x` holds a known source: not null, not blank, not one of the unknown values.
    fn known(&self, expr: &str, unknown: &[String], binds: &mut Vec<String>) -> String {
        let lowered: Vec<String> = unknown.iter().map(|u| u.trim().to_lowercase()).collect();
        let mut s = format!("({expr} IS NOT NULL AND TRIM({expr}) <> ''");
        if !lowered.is_empty() {
            s.push_str(&format!(
                " AND NOT ({})",
                self.d
                    .in_list(&format!("LOWER(TRIM({expr}))"), &lowered, binds)
            ));
        }
        s.push(')');
        s
    }
    fn truthy(&self, expr: &str) -> String {
        match self.d.0 {
            Backend::Postgres => format!("{expr} = TRUE"),
            _ => format!("{expr} = 1"),
        }
    }
}

warehouse_params! {
    /// Params of `warehouse.required_properties`.
    RequiredParams {
        /// Columns the funnel depends on. `object` is a logical table (`contacts`, `deals`, …) or
        /// a table name; `name` a logical column or a column name (both go through `tables` and
        /// `columns`). Types and picklist options are not checked in a warehouse: leave `types`
        /// and `options` out. The default lists the columns the other warehouse probes read.
        #[serde(default = "default_required")]
        required: Vec<RequiredField>,
    }
}

warehouse_params! {
    /// Params of `warehouse.pipeline_shape`.
    PipelineParams {
        /// Pipelines to check, by `pipeline_id` (as text). Empty: every pipeline.
        #[serde(default)]
        pipelines: Vec<String>,
    }
}

warehouse_params! {
    /// Params of `warehouse.source_attribution_coverage`.
    CoverageParams {
        /// Days back from now: contacts created in this window are measured.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// Values of `original_source` that mean "no source" besides null and blank
        /// (case-insensitive).
        #[serde(default = "defaults::unknown_source_values")]
        unknown_values: Vec<String>,
    }
}

warehouse_params! {
    /// Params of `warehouse.lead_to_revenue_linkage`.
    LinkageParams {
        /// Days back from now: deals won (`closed_at`) in this window are measured.
        #[serde(default = "defaults::window_90")]
        window_days: u32,
        /// Values meaning "no source" besides null and blank.
        #[serde(default = "defaults::unknown_source_values")]
        unknown_values: Vec<String>,
    }
}

warehouse_params! {
    /// Params of `warehouse.lead_conversion_rates`.
    ConversionParams {
        /// Days back from now: contacts who entered a stage in this window form its cohort.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// `lifecycle_events.stage` values in funnel order, 2 to 8 of them.
        #[serde(default = "default_stages")]
        stages: Vec<String>,
        /// A step with at least this many entrants and no conversion makes the probe FAIL.
        #[serde(default = "defaults::min_entrants")]
        min_entrants: u64,
        /// WARN when a step's rate moves by more than this percent (relative) between the cohorts
        /// of the last 7 days and the 7 days before; 0 turns the comparison off.
        #[serde(default = "defaults::max_weekly_change_percent")]
        max_weekly_change_percent: f64,
    }
}

/// Where the first sales touch of a contact comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FirstTouch {
    /// The earliest `activities.occurred_at` of the contact at or after its creation.
    #[default]
    Activities,
    /// The `contacts.first_touch_at` column.
    Column,
}

warehouse_params! {
    /// Params of `warehouse.speed_to_lead`.
    SpeedParams {
        /// Days back from now: contacts created in this window are measured.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// Where the first touch comes from.
        #[serde(default)]
        first_touch: FirstTouch,
        /// Most contacts read (newest first).
        #[serde(default = "defaults::max_records_2000")]
        max_records: u64,
    }
}

warehouse_params! {
    /// Params of `warehouse.owner_assignment`.
    OwnerParams {
        /// Days back from now: contacts created in this window are measured.
        #[serde(default = "defaults::window_7")]
        window_days: u32,
        /// Contacts younger than this many minutes are not judged yet.
        #[serde(default = "defaults::grace_minutes")]
        grace_minutes: u32,
        /// Owner ids that mean "nobody yet" (a default owner or a queue), compared as text.
        #[serde(default)]
        unassigned_owner_ids: Vec<String>,
    }
}

warehouse_params! {
    /// Params of `warehouse.duplicates`.
    DuplicatesParams {
        /// Only contacts created in the last this-many days; leave it out for all contacts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window_days: Option<u32>,
    }
}

warehouse_params! {
    /// Params of `warehouse.email_validity`.
    EmailParams {
        /// Days back from now: contacts created in this window are measured.
        #[serde(default = "defaults::window_30")]
        window_days: u32,
        /// Local parts counted as role mailboxes; empty: roles not counted.
        #[serde(default = "defaults::role_local_parts")]
        role_local_parts: Vec<String>,
        /// Count contacts without any email as invalid.
        #[serde(default, skip_serializing_if = "defaults::is_false")]
        count_missing: bool,
        /// Most contacts read (newest first).
        #[serde(default = "defaults::max_records_2000")]
        max_records: u64,
    }
}

fn check_values(field: &str, vs: &[String]) -> Result<(), ProbeError> {
    vs.iter().try_for_each(|v| check_value(field, v))
}

impl Validate for RequiredParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        if self.required.is_empty() {
            return Err(ProbeError::params(
                "`required` must list at least one column",
            ));
        }
        for r in &self.required {
            check_name("required[].object", &r.object, true)?;
            check_name("required[].name", &r.name, false)?;
            if !r.types.is_empty() || !r.options.is_empty() {
                return Err(ProbeError::params(
                    "`required[]`: a warehouse checks that columns exist; `types` and `options` are not supported here",
                ));
            }
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
        check_values("unknown_values", &self.unknown_values)
    }
}
impl Validate for LinkageParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_values("unknown_values", &self.unknown_values)
    }
}
impl Validate for ConversionParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        if !(2..=8).contains(&self.stages.len()) {
            return Err(ProbeError::params(
                "`stages` must list 2 to 8 stages in funnel order",
            ));
        }
        check_values("stages", &self.stages)?;
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
        check_count("max_records", self.max_records, 100_000)
    }
}
impl Validate for OwnerParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_window("window_days", self.window_days)?;
        check_values("unassigned_owner_ids", &self.unassigned_owner_ids)?;
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
        check_values("role_local_parts", &self.role_local_parts)?;
        check_count("max_records", self.max_records, 100_000)
    }
}

/// `warehouse.required_properties`.
pub struct RequiredProbe(RequiredParams, Arc<DbPools>);
/// `warehouse.pipeline_shape`.
pub struct PipelineProbe(PipelineParams, Arc<DbPools>);
/// `warehouse.source_attribution_coverage`.
pub struct CoverageProbe(CoverageParams, Arc<DbPools>);
/// `warehouse.lead_to_revenue_linkage`.
pub struct LinkageProbe(LinkageParams, Arc<DbPools>);
/// `warehouse.lead_conversion_rates`.
pub struct ConversionProbe(ConversionParams, Arc<DbPools>);
/// `warehouse.speed_to_lead`.
pub struct SpeedProbe(SpeedParams, Arc<DbPools>);
/// `warehouse.owner_assignment`.
pub struct OwnerProbe(OwnerParams, Arc<DbPools>);
/// `warehouse.duplicates`.
pub struct DuplicatesProbe(DuplicatesParams, Arc<DbPools>);
/// `warehouse.email_validity`.
pub struct EmailProbe(EmailParams, Arc<DbPools>);

/// Run `f` on an open session and close it whatever happened.
async fn with_db<T, F>(mut db: Db, f: F) -> Result<T, ProbeError>
where
    F: AsyncFnOnce(&mut Db) -> Result<T, ProbeError>,
{
    let r = f(&mut db).await;
    db.close().await;
    r
}

fn sql(text: String, binds: Vec<String>) -> Sql {
    Sql { text, binds }
}

#[async_trait]
impl Probe for RequiredProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let names = p.names();
        let db = p.open(&self.1, ctx).await?;
        with_db(db, async |db| {
            let mut available: BTreeMap<String, Vec<FieldInfo>> = BTreeMap::new();
            let mut tables: Vec<&str> = Vec::new();
            for r in &p.required {
                if !tables.contains(&r.object.as_str()) {
                    tables.push(&r.object);
                }
            }
            let d = db.dialect();
            for logical in tables {
                let table = d.ident(&names.table(logical));
                if !db
                    .exists(&sql(format!("SELECT 1 FROM {table} WHERE 1 = 0"), vec![]))
                    .await?
                {
                    continue;
                }
                let mut fields = Vec::new();
                for r in p.required.iter().filter(|r| r.object == logical) {
                    let col = d.ident(&names.column(logical, &r.name));
                    // Qualified: SQLite reads an unknown bare "name" as a string literal.
                    if db
                        .exists(&sql(
                            format!("SELECT x.{col} FROM {table} x WHERE 1 = 0"),
                            vec![],
                        ))
                        .await?
                    {
                        fields.push(FieldInfo {
                            name: r.name.clone(),
                            ..Default::default()
                        });
                    }
                }
                available.insert(logical.to_string(), fields);
            }
            let mut m = evaluate::required_properties(
                &format!("the warehouse ({})", db.label),
                &p.required,
                &available,
            );
            m.message = m.message.replace("fields", "columns");
            Ok(m)
        })
        .await
    }
}

fn parse_bool(v: Option<&str>) -> bool {
    matches!(
        v.map(|s| s.trim().to_ascii_lowercase()).as_deref(),
        Some("1" | "t" | "true" | "yes" | "y")
    )
}

#[async_trait]
impl Probe for PipelineProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let db = p.open(&self.1, ctx).await?;
        with_db(db, async |db| {
            let q = Q {
                d: db.dialect(),
                names: p.names(),
            };
            let col = |c: &str| q.d.text(&q.c("s", "deal_stages", c));
            let text = format!(
                "SELECT {}, {}, {}, {}, {}, {} FROM {} s",
                col("pipeline_id"),
                col("label"),
                col("display_order"),
                col("probability"),
                col("is_closed"),
                col("is_won"),
                q.t("deal_stages")
            );
            let rows = db.texts(&sql(text, vec![])).await?;
            if rows.is_empty() {
                return Err(ProbeError::permanent(format!(
                    "{}: table {} has no stages (empty table or wrong name)",
                    db.label,
                    q.t("deal_stages")
                )));
            }
            let mut pipelines: BTreeMap<String, Vec<StageInfo>> = BTreeMap::new();
            for r in rows {
                let get = |i: usize| r.get(i).and_then(|v| v.as_deref());
                let pipeline = get(0).unwrap_or("").to_string();
                if !p.pipelines.is_empty() && !p.pipelines.contains(&pipeline) {
                    continue;
                }
                let closed = parse_bool(get(4));
                pipelines.entry(pipeline).or_default().push(StageInfo {
                    label: get(1).unwrap_or("").to_string(),
                    order: get(2).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0),
                    probability: get(3).and_then(|v| v.trim().parse().ok()),
                    is_closed: closed,
                    is_won: closed && parse_bool(get(5)),
                });
            }
            if let Some(missing) = p.pipelines.iter().find(|w| !pipelines.contains_key(*w)) {
                return Err(ProbeError::permanent(format!(
                    "{}: pipeline `{missing}` has no stages",
                    db.label
                )));
            }
            let infos: Vec<PipelineInfo> = pipelines
                .into_iter()
                .map(|(label, stages)| PipelineInfo { label, stages })
                .collect();
            Ok(evaluate::pipeline_shape(
                "the warehouse",
                &infos,
                WonModel::Stages,
            ))
        })
        .await
    }
}

#[async_trait]
impl Probe for CoverageProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let t0 = Utc::now().minus_days(p.window_days);
        let db = p.open(&self.1, ctx).await?;
        with_db(db, async |db| {
            let q = Q { d: db.dialect(), names: p.names() };
            let created = q.d.ts(&q.c("c", "contacts", "created_at"));
            let src = q.c("c", "contacts", "original_source");
            let mut binds = Vec::new();
            let known = q.known(&src, &p.unknown_values, &mut binds);
            let text = format!(
                "SELECT COUNT(*), COUNT(CASE WHEN {known} THEN 1 END) FROM {} c WHERE {created} >= {}",
                q.t("contacts"),
                q.d.ts_lit(t0)
            );
            let counts = db.counts(&sql(text, binds)).await?;
            let (all, attributed) = (count_at(&counts, 0), count_at(&counts, 1));
            Ok(evaluate::source_attribution("the warehouse", "contacts", p.window_days, all, all.saturating_sub(attributed)))
        })
        .await
    }
}

fn count_at(c: &[i64], i: usize) -> u64 {
    c.get(i).copied().unwrap_or(0).max(0) as u64
}

#[async_trait]
impl Probe for LinkageProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let t0 = Utc::now().minus_days(p.window_days);
        let db = p.open(&self.1, ctx).await?;
        with_db(db, async |db| {
            let q = Q {
                d: db.dialect(),
                names: p.names(),
            };
            let mut binds = Vec::new();
            let deal_known = q.known(&q.c("d", "deals", "source"), &p.unknown_values, &mut binds);
            let contact_known = q.known(
                &q.c("c", "contacts", "original_source"),
                &p.unknown_values,
                &mut binds,
            );
            let text = format!(
                "SELECT COUNT(*), COUNT(CASE WHEN {deal_known} OR {contact_known} THEN 1 END) \
                 FROM {} d LEFT JOIN {} c ON {} = {} \
                 WHERE {} AND {} >= {}",
                q.t("deals"),
                q.t("contacts"),
                q.c("c", "contacts", "id"),
                q.c("d", "deals", "contact_id"),
                q.truthy(&q.c("d", "deals", "is_won")),
                q.d.ts(&q.c("d", "deals", "closed_at")),
                q.d.ts_lit(t0)
            );
            let counts = db.counts(&sql(text, binds)).await?;
            Ok(evaluate::lead_to_revenue(
                "the warehouse",
                p.window_days,
                count_at(&counts, 0),
                count_at(&counts, 1),
            ))
        })
        .await
    }
}

#[async_trait]
impl Probe for ConversionProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let now = Utc::now();
        let t0 = now.minus_days(p.window_days);
        let (w1, w2) = (now.minus_days(7), now.minus_days(14));
        let db = p.open(&self.1, ctx).await?;
        with_db(db, async |db| {
            let q = Q { d: db.dialect(), names: p.names() };
            let ev = q.t("lifecycle_events");
            // Entrants into `stage` within [from, to), and those of them with an event in `later`.
            let cohort = |stage: &str, from: Utc, to: Option<Utc>, later: &[String]| {
                let mut binds = Vec::new();
                let entered = q.d.ts(&q.c("e", "lifecycle_events", "entered_at"));
                let mut window = format!("{entered} >= {}", q.d.ts_lit(from));
                if let Some(to) = to {
                    window.push_str(&format!(" AND {entered} < {}", q.d.ts_lit(to)));
                }
                // `?` markers bind in text order: the EXISTS (select list) comes before the WHERE.
                let later_in = q.d.in_list(&q.c("f", "lifecycle_events", "stage"), later, &mut binds);
                binds.push(stage.to_string());
                let stage_ph = q.d.bind_param(binds.len());
                let text = format!(
                    "SELECT COUNT(DISTINCT {e_id}), COUNT(DISTINCT CASE WHEN EXISTS (SELECT 1 FROM {ev} f WHERE {f_id} = {e_id} AND {later_in}) THEN {e_id} END) \
                     FROM {ev} e WHERE {e_stage} = {stage_ph} AND {window}",
                    e_id = q.c("e", "lifecycle_events", "contact_id"),
                    f_id = q.c("f", "lifecycle_events", "contact_id"),
                    e_stage = q.c("e", "lifecycle_events", "stage"),
                );
                sql(text, binds)
            };
            let mut steps = Vec::new();
            for i in 0..p.stages.len() - 1 {
                let later = &p.stages[i + 1..];
                let c = db.counts(&cohort(&p.stages[i], t0, None, later)).await?;
                let (entrants, converted) = (count_at(&c, 0), count_at(&c, 1));
                let weeks = match weekly_limit(p.max_weekly_change_percent) {
                    Some(_) if entrants >= p.min_entrants => {
                        let r = db.counts(&cohort(&p.stages[i], w1, None, later)).await?;
                        let o = db.counts(&cohort(&p.stages[i], w2, Some(w1), later)).await?;
                        Some([(count_at(&r, 0), count_at(&r, 1)), (count_at(&o, 0), count_at(&o, 1))])
                    }
                    _ => None,
                };
                steps.push(StepCounts { from: p.stages[i].clone(), to: p.stages[i + 1].clone(), entrants, converted, weeks });
            }
            let last = p.stages[p.stages.len() - 1..].to_vec();
            let end = db.counts(&cohort(&p.stages[0], t0, None, &last)).await?;
            let rules = ConversionRules { min_entrants: p.min_entrants, max_weekly_change_percent: weekly_limit(p.max_weekly_change_percent) };
            Ok(evaluate::lead_conversion("the warehouse", p.window_days, &steps, (count_at(&end, 0), count_at(&end, 1)), rules))
        })
        .await
    }
}

#[async_trait]
impl Probe for SpeedProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let now = Utc::now();
        let t0 = now.minus_days(p.window_days);
        let db = p.open(&self.1, ctx).await?;
        with_db(db, async |db| {
            let q = Q { d: db.dialect(), names: p.names() };
            let created = q.c("c", "contacts", "created_at");
            let touch = match p.first_touch {
                FirstTouch::Column => q.c("c", "contacts", "first_touch_at"),
                FirstTouch::Activities => format!(
                    "(SELECT MIN({occ}) FROM {act} a WHERE {a_contact} = {c_id} AND {occ_ts} >= {created_ts})",
                    occ = q.c("a", "activities", "occurred_at"),
                    act = q.t("activities"),
                    a_contact = q.c("a", "activities", "contact_id"),
                    c_id = q.c("c", "contacts", "id"),
                    occ_ts = q.d.ts(&q.c("a", "activities", "occurred_at")),
                    created_ts = q.d.ts(&created),
                ),
            };
            let text = format!(
                "SELECT {}, {} FROM {} c WHERE {} >= {} ORDER BY {} DESC LIMIT {}",
                q.d.text(&created),
                q.d.text(&touch),
                q.t("contacts"),
                q.d.ts(&created),
                q.d.ts_lit(t0),
                q.d.ts(&created),
                p.max_records + 1
            );
            let mut rows = db.texts(&sql(text, vec![])).await?;
            let truncated = rows.len() as u64 > p.max_records;
            rows.truncate(p.max_records as usize);
            let mut samples = Vec::with_capacity(rows.len());
            for r in rows {
                let raw = r.first().cloned().flatten().unwrap_or_default();
                let created = Utc::parse(&raw).ok_or_else(|| {
                    ProbeError::permanent(format!(
                        "{}: contacts.created_at value `{raw}` is not a timestamp this probe reads (store UTC as YYYY-MM-DD HH:MM:SS)",
                        db.label
                    ))
                })?;
                let touch = r.get(1).cloned().flatten().as_deref().and_then(Utc::parse);
                samples.push((created, touch));
            }
            Ok(evaluate::speed_to_lead(
                "the warehouse",
                p.window_days,
                now,
                &samples,
                truncated,
                0,
                0,
            ))
        })
        .await
    }
}

#[async_trait]
impl Probe for OwnerProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let now = Utc::now();
        let t0 = now.minus_days(p.window_days);
        let cutoff = now.minus(std::time::Duration::from_secs(
            u64::from(p.grace_minutes) * 60,
        ));
        let db = p.open(&self.1, ctx).await?;
        with_db(db, async |db| {
            let q = Q { d: db.dialect(), names: p.names() };
            let created = q.d.ts(&q.c("c", "contacts", "created_at"));
            let owner = q.c("c", "contacts", "owner_id");
            let mut binds = Vec::new();
            let default_owner = q.d.in_list(&q.d.text(&owner), &p.unassigned_owner_ids, &mut binds);
            let text = format!(
                "SELECT COUNT(*), COUNT(CASE WHEN {owner} IS NULL OR TRIM({owner_txt}) = '' OR {default_owner} THEN 1 END) \
                 FROM {} c WHERE {created} >= {} AND {created} < {}",
                q.t("contacts"),
                q.d.ts_lit(t0),
                q.d.ts_lit(cutoff),
                owner_txt = q.d.text(&owner),
            );
            let c = db.counts(&sql(text, binds)).await?;
            Ok(evaluate::owner_assignment("the warehouse", "contacts", p.window_days, p.grace_minutes, count_at(&c, 0), count_at(&c, 1)))
        })
        .await
    }
}

#[async_trait]
impl Probe for DuplicatesProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let db = p.open(&self.1, ctx).await?;
        with_db(db, async |db| {
            let q = Q {
                d: db.dialect(),
                names: p.names(),
            };
            let email = q.c("c", "contacts", "email");
            let mut filter = format!("{email} IS NOT NULL AND TRIM({email}) <> ''");
            let scope = match p.window_days {
                Some(d) => {
                    let created = q.d.ts(&q.c("c", "contacts", "created_at"));
                    filter.push_str(&format!(
                        " AND {created} >= {}",
                        q.d.ts_lit(Utc::now().minus_days(d))
                    ));
                    format!("contacts created in the last {d} days")
                }
                None => "all contacts".to_string(),
            };
            let text = format!(
                "SELECT COUNT(*), COUNT(DISTINCT LOWER(TRIM({email}))) FROM {} c WHERE {filter}",
                q.t("contacts")
            );
            let c = db.counts(&sql(text, vec![])).await?;
            let (total, distinct) = (count_at(&c, 0), count_at(&c, 1));
            Ok(evaluate::duplicates(
                "the warehouse",
                "contacts",
                &scope,
                total,
                total.saturating_sub(distinct),
                false,
            ))
        })
        .await
    }
}

#[async_trait]
impl Probe for EmailProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let t0 = Utc::now().minus_days(p.window_days);
        let db = p.open(&self.1, ctx).await?;
        with_db(db, async |db| {
            let q = Q {
                d: db.dialect(),
                names: p.names(),
            };
            let created = q.d.ts(&q.c("c", "contacts", "created_at"));
            let text = format!(
                "SELECT {} FROM {} c WHERE {created} >= {} ORDER BY {created} DESC LIMIT {}",
                q.d.text(&q.c("c", "contacts", "email")),
                q.t("contacts"),
                q.d.ts_lit(t0),
                p.max_records + 1
            );
            let mut rows = db.texts(&sql(text, vec![])).await?;
            let truncated = rows.len() as u64 > p.max_records;
            rows.truncate(p.max_records as usize);
            let rules = EmailRules {
                role_local_parts: p.role_local_parts.clone(),
                count_missing: p.count_missing,
            };
            Ok(evaluate::email_validity(
                "the warehouse",
                "contacts",
                p.window_days,
                rows.iter().map(|r| r.first().and_then(|v| v.as_deref())),
                &rules,
                truncated,
            ))
        })
        .await
    }
}

const GRANT: &str =
    "`SELECT` on the tables it reads (a read-only role; the probe also opens a read-only session)";

/// Reference facts for every warehouse kind.
pub const KINDS: [KindDoc; 9] = [
    KindDoc {
        kind: "warehouse.required_properties",
        vendor: "warehouse",
        api: "SQL (no vendor API)",
        measure: Measure::RequiredProperties,
        permissions: GRANT,
        calls: "`SELECT <column> FROM <table> WHERE 1 = 0` per required column (portable across the three databases)",
        notes: "Checks that tables and columns exist, not their types. A missing table makes every column listed for it missing.",
    },
    KindDoc {
        kind: "warehouse.pipeline_shape",
        vendor: "warehouse",
        api: "SQL (no vendor API)",
        measure: Measure::PipelineShape,
        permissions: GRANT,
        calls: "`SELECT pipeline_id, label, display_order, probability, is_closed, is_won FROM crm_deal_stages`",
        notes: "Pipelines are grouped by `pipeline_id`. An empty stages table is an ERROR.",
    },
    KindDoc {
        kind: "warehouse.source_attribution_coverage",
        vendor: "warehouse",
        api: "SQL (no vendor API)",
        measure: Measure::SourceAttributionCoverage,
        permissions: GRANT,
        calls: "one `SELECT COUNT(*), COUNT(CASE WHEN <known source> THEN 1 END) FROM crm_contacts WHERE created_at >= <window start>`",
        notes: "Known source: `original_source` not null, not blank, not one of `unknown_values` (case-insensitive).",
    },
    KindDoc {
        kind: "warehouse.lead_to_revenue_linkage",
        vendor: "warehouse",
        api: "SQL (no vendor API)",
        measure: Measure::LeadToRevenueLinkage,
        permissions: GRANT,
        calls: "one `SELECT COUNT(*), COUNT(CASE WHEN <deal source known> OR <contact source known> THEN 1 END) FROM crm_deals d LEFT JOIN crm_contacts c ON c.id = d.contact_id WHERE d.is_won AND d.closed_at >= <window start>`",
        notes: "Conversion proof: the sample is the number of deals won in the window; zero is NO_DATA.",
    },
    KindDoc {
        kind: "warehouse.lead_conversion_rates",
        vendor: "warehouse",
        api: "SQL (no vendor API)",
        measure: Measure::LeadConversionRates,
        permissions: GRANT,
        calls: "per step, `COUNT(DISTINCT contact_id)` of `crm_lifecycle_events` entering the stage in the window, and of those with an event for any later stage (an `EXISTS` subquery); the same for the last two weeks' cohorts",
        notes: "Conversion proof: the sample is the number of contacts who entered the first stage in the window; nobody is NO_DATA.",
    },
    KindDoc {
        kind: "warehouse.speed_to_lead",
        vendor: "warehouse",
        api: "SQL (no vendor API)",
        measure: Measure::SpeedToLead,
        permissions: GRANT,
        calls: "contacts created in the window, newest first, up to `max_records`, with their first activity (`MIN(occurred_at)` of `crm_activities` at or after creation, or the `first_touch_at` column)",
        notes: "Timestamps are read as text and parsed: store UTC (`timestamptz`/`timestamp` in PostgreSQL, `DATETIME` in MySQL/MariaDB, ISO-8601 text `YYYY-MM-DD HH:MM:SS` in SQLite).",
    },
    KindDoc {
        kind: "warehouse.owner_assignment",
        vendor: "warehouse",
        api: "SQL (no vendor API)",
        measure: Measure::OwnerAssignment,
        permissions: GRANT,
        calls: "one `SELECT COUNT(*), COUNT(CASE WHEN owner_id IS NULL OR … THEN 1 END) FROM crm_contacts WHERE created_at` between the window start and `grace_minutes` ago",
        notes: "Unassigned: `owner_id` null, blank, or one of `unassigned_owner_ids`.",
    },
    KindDoc {
        kind: "warehouse.duplicates",
        vendor: "warehouse",
        api: "SQL (no vendor API)",
        measure: Measure::Duplicates,
        permissions: GRANT,
        calls: "one `SELECT COUNT(*), COUNT(DISTINCT LOWER(TRIM(email))) FROM crm_contacts WHERE email is not blank`",
        notes: "Counted in the database, so there is no record cap.",
    },
    KindDoc {
        kind: "warehouse.email_validity",
        vendor: "warehouse",
        api: "SQL (no vendor API)",
        measure: Measure::EmailValidity,
        permissions: GRANT,
        calls: "`SELECT email FROM crm_contacts WHERE created_at >= <window start> ORDER BY created_at DESC LIMIT max_records`, validated by the checker",
        notes: "Same rules as every vendor: malformed, reserved test domains, role mailboxes.",
    },
];

/// What a warehouse cannot answer.
pub const OMISSIONS: [Omission; 1] = [Omission {
    vendor: "warehouse",
    measure: Measure::AuthAndQuota,
    reason: "a database has no API budget to protect, and a connection or permission failure already makes every warehouse probe ERROR with the database's own message; use the generic `sql` probe for sync freshness (e.g. `SELECT EXTRACT(EPOCH FROM now() - max(created_at))/3600 FROM crm_contacts`)",
}];

/// Register the warehouse kinds.
pub fn register(registry: &mut ProbeRegistry) {
    // One set of sqlx pools for every warehouse kind of this registry.
    let pools = Arc::new(DbPools::new());
    let p = || Arc::clone(&pools);
    register_kind(registry, &KINDS[0], {
        let x = p();
        move |q| RequiredProbe(q, Arc::clone(&x))
    });
    register_kind(registry, &KINDS[1], {
        let x = p();
        move |q| PipelineProbe(q, Arc::clone(&x))
    });
    register_kind(registry, &KINDS[2], {
        let x = p();
        move |q| CoverageProbe(q, Arc::clone(&x))
    });
    register_kind(registry, &KINDS[3], {
        let x = p();
        move |q| LinkageProbe(q, Arc::clone(&x))
    });
    register_kind(registry, &KINDS[4], {
        let x = p();
        move |q| ConversionProbe(q, Arc::clone(&x))
    });
    register_kind(registry, &KINDS[5], {
        let x = p();
        move |q| SpeedProbe(q, Arc::clone(&x))
    });
    register_kind(registry, &KINDS[6], {
        let x = p();
        move |q| OwnerProbe(q, Arc::clone(&x))
    });
    register_kind(registry, &KINDS[7], {
        let x = p();
        move |q| DuplicatesProbe(q, Arc::clone(&x))
    });
    register_kind(registry, &KINDS[8], {
        let x = p();
        move |q| EmailProbe(q, Arc::clone(&x))
    });
}
