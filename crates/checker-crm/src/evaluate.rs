//! Pure evaluation of the CRM measures: vendor adapters fetch counts and records, these functions
//! turn them into a [`Measurement`] whose message a marketer understands. No I/O here, so every
//! rule is unit-tested.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use funnelgate_core::{Measurement, ProbeStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::measure::Measure;
use crate::time::Utc;

/// `n / d` in percent, 0 when `d` is 0.
pub fn percent(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 * 100.0 / d as f64
    }
}

/// A percentage for messages: `38%`, `99.5%`, `0.04%`.
pub fn fmt_pct(p: f64) -> String {
    if p == 0.0 || p >= 10.0 || (p >= 1.0 && (p.round() - p).abs() < 0.05) {
        format!("{:.0}%", p.round())
    } else if p >= 1.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.2}%")
    }
}

/// Hours for messages: `12 minutes`, `3.5 hours`, `2.1 days`.
pub fn fmt_hours(h: f64) -> String {
    if h < 1.0 {
        format!("{:.0} minutes", (h * 60.0).round())
    } else if h < 48.0 {
        format!("{h:.1} hours")
    } else {
        format!("{:.1} days", h / 24.0)
    }
}

fn days(d: u32) -> Duration {
    Duration::from_secs(u64::from(d) * 86_400)
}

fn window_phrase(d: u32) -> String {
    if d == 1 {
        "the last day".to_string()
    } else {
        format!("the last {d} days")
    }
}

/// The median of a list (mean of the middle two for an even count); `None` when empty.
pub fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

// ---------------------------------------------------------------------------------------------
// C1

/// An API budget as the vendor reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    /// Calls left in the period.
    pub remaining: u64,
    /// Calls allowed in the period.
    pub max: u64,
    /// What the budget is, e.g. "daily API requests".
    pub label: String,
}

/// C1: the credentials worked; judge the remaining budget if the vendor reported one.
pub fn auth_and_quota(vendor: &str, budget: Option<Budget>) -> Measurement {
    match budget {
        Some(b) if b.max > 0 && b.remaining == 0 => {
            quota_exhausted(vendor, &format!("0 of {} {} calls left", b.max, b.label))
        }
        Some(b) if b.max > 0 => {
            let p = percent(b.remaining.min(b.max), b.max);
            Measurement::value(
                p,
                Measure::AuthAndQuota.unit(),
                format!(
                    "{vendor} credentials work; {} of the {} budget remains ({} of {} calls)",
                    fmt_pct(p),
                    b.label,
                    b.remaining,
                    b.max
                ),
            )
            .with_evidence("budget_remaining", b.remaining.to_string())
            .with_evidence("budget_max", b.max.to_string())
        }
        _ => Measurement::verdict(
            ProbeStatus::Pass,
            format!("{vendor} credentials work; {vendor} did not report an API budget to judge"),
        ),
    }
}

/// C1 when the vendor says the account's API budget is spent (Salesforce 403
/// `REQUEST_LIMIT_EXCEEDED`, HubSpot's daily 429, Pipedrive's daily budget at 0, or a reported
/// remaining budget of 0): FAIL with value 0, whatever the thresholds — a spent budget stops
/// every integration that feeds the funnel. Every other kind reports the same condition as an
/// ERROR naming it (it cannot measure), never retried. One answer for every vendor.
pub fn quota_exhausted(vendor: &str, error: &str) -> Measurement {
    let mut m = Measurement::value(
        0.0,
        Measure::AuthAndQuota.unit(),
        format!("{vendor} credentials work but the account's API budget is spent: {error}"),
    );
    m.verdict = Some(ProbeStatus::Fail);
    m.with_evidence("quota_exhausted", "true")
}

/// C1: credentials were rejected (401/403): a FAIL, not an ERROR — that is what C1 measures.
pub fn auth_failed(error: &str) -> Measurement {
    Measurement::verdict(
        ProbeStatus::Fail,
        format!("credentials do not work: {error}"),
    )
}

// ---------------------------------------------------------------------------------------------
// C2

/// A field the funnel depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequiredField {
    /// The object (HubSpot object type, Salesforce sObject, Pipedrive `person`/`deal`/
    /// `organization`, or a warehouse table) the field belongs to.
    pub object: String,
    /// The field's API name (HubSpot internal name, Salesforce API name, Pipedrive field key,
    /// warehouse column).
    pub name: String,
    /// Accepted vendor types, any of them (case-insensitive), e.g. `["enumeration"]` in HubSpot or
    /// `["picklist"]` in Salesforce. Empty: any type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// Picklist values that must be offered (case-insensitive), e.g. `["Paid Search"]`. A missing
    /// value is WARN, not FAIL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A field as the vendor describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldInfo {
    /// API name.
    pub name: String,
    /// Vendor type.
    pub field_type: String,
    /// Picklist values (and labels), if any.
    pub options: Vec<String>,
    /// Archived/deleted fields count as missing.
    pub archived: bool,
}

/// C2: compare required fields with what each object offers.
pub fn required_properties(
    vendor: &str,
    required: &[RequiredField],
    available: &BTreeMap<String, Vec<FieldInfo>>,
) -> Measurement {
    let mut missing = Vec::new();
    let mut mistyped = Vec::new();
    let mut option_gaps = Vec::new();
    for r in required {
        let found = available.get(&r.object).and_then(|fields| {
            fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(&r.name) && !f.archived)
        });
        let Some(f) = found else {
            missing.push(format!("{}.{}", r.object, r.name));
            continue;
        };
        if !r.types.is_empty()
            && !r
                .types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&f.field_type))
        {
            mistyped.push(format!(
                "{}.{} is {} (expected {})",
                r.object,
                r.name,
                f.field_type,
                r.types.join(" or ")
            ));
        }
        let absent: Vec<&str> = r
            .options
            .iter()
            .filter(|o| !f.options.iter().any(|have| have.eq_ignore_ascii_case(o)))
            .map(String::as_str)
            .collect();
        if !absent.is_empty() {
            option_gaps.push(format!(
                "{}.{} lacks {}",
                r.object,
                r.name,
                absent.join(", ")
            ));
        }
    }
    let problems = missing.len() + mistyped.len();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing: {}", missing.join(", ")));
    }
    if !mistyped.is_empty() {
        parts.push(format!("wrong type: {}", mistyped.join("; ")));
    }
    if !option_gaps.is_empty() {
        parts.push(format!(
            "picklist values missing: {}",
            option_gaps.join("; ")
        ));
    }
    let message = if parts.is_empty() {
        format!(
            "all {} fields the funnel depends on exist in {vendor} with the right type",
            required.len()
        )
    } else {
        format!(
            "{problems} of {} fields the funnel depends on are missing or mistyped in {vendor}; {}",
            required.len(),
            parts.join("; ")
        )
    };
    let mut m = Measurement::value(problems as f64, Measure::RequiredProperties.unit(), message)
        .with_evidence("checked", required.len().to_string());
    if !missing.is_empty() {
        m = m.with_evidence("missing", missing.join(","));
    }
    if !option_gaps.is_empty() {
        m.verdict = Some(ProbeStatus::Warn);
    }
    m
}

// ---------------------------------------------------------------------------------------------
// C3

/// One pipeline stage as the vendor describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct StageInfo {
    /// Stage name.
    pub label: String,
    /// Position in the pipeline (ascending).
    pub order: f64,
    /// Win probability 0–1, if the vendor keeps one.
    pub probability: Option<f64>,
    /// Closed stage (won or lost).
    pub is_closed: bool,
    /// Closed-won stage.
    pub is_won: bool,
}

/// One pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineInfo {
    /// Pipeline name.
    pub label: String,
    /// Its stages, any order.
    pub stages: Vec<StageInfo>,
}

/// How a vendor records won and lost deals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WonModel {
    /// Won and lost are stages of the pipeline (HubSpot, Salesforce, warehouse).
    Stages,
    /// Won and lost are deal statuses outside the stages (Pipedrive): every pipeline can record
    /// revenue, so only the order and probabilities of its open stages are checked.
    Statuses,
}

/// C3: every pipeline has a won stage (FAIL otherwise); open-stage probabilities don't go down and
/// a lost stage exists (WARN otherwise).
pub fn pipeline_shape(vendor: &str, pipelines: &[PipelineInfo], model: WonModel) -> Measurement {
    let mut defects = Vec::new();
    let mut warnings = Vec::new();
    for p in pipelines {
        let mut stages = p.stages.clone();
        stages.sort_by(|a, b| a.order.total_cmp(&b.order));
        if stages.is_empty() {
            defects.push(format!("pipeline `{}` has no stages", p.label));
            continue;
        }
        if model == WonModel::Stages {
            if !stages.iter().any(|s| s.is_won) {
                defects.push(format!("pipeline `{}` has no closed-won stage", p.label));
            }
            if !stages.iter().any(|s| s.is_closed && !s.is_won) {
                warnings.push(format!("pipeline `{}` has no closed-lost stage", p.label));
            }
        }
        let open: Vec<&StageInfo> = stages.iter().filter(|s| !s.is_closed).collect();
        for w in open.windows(2) {
            if let (Some(a), Some(b)) = (w[0].probability, w[1].probability)
                && b < a
            {
                warnings.push(format!(
                    "pipeline `{}`: stage `{}` ({:.0}%) comes after `{}` ({:.0}%) but has a lower probability",
                    p.label,
                    w[1].label,
                    b * 100.0,
                    w[0].label,
                    a * 100.0
                ));
            }
        }
    }
    let stage_count: usize = pipelines.iter().map(|p| p.stages.len()).sum();
    let message = if defects.is_empty() && warnings.is_empty() {
        format!(
            "{} {vendor} pipeline(s) with {stage_count} stages: every pipeline can record won revenue and \
             stage probabilities rise towards the close",
            pipelines.len()
        )
    } else {
        let mut all = defects.clone();
        all.extend(warnings.iter().cloned());
        format!(
            "{} {vendor} pipeline(s) checked: {}",
            pipelines.len(),
            all.join("; ")
        )
    };
    let mut m = Measurement::value(defects.len() as f64, Measure::PipelineShape.unit(), message)
        .with_evidence("pipelines", pipelines.len().to_string())
        .with_evidence("stages", stage_count.to_string());
    if !warnings.is_empty() {
        m.verdict = Some(ProbeStatus::Warn);
    }
    m
}

// ---------------------------------------------------------------------------------------------
// C4, C5, C8

/// C4: share of records created in the window carrying a known source.
pub fn source_attribution(
    vendor: &str,
    noun: &str,
    window_days: u32,
    created: u64,
    unattributed: u64,
) -> Measurement {
    let window = days(window_days);
    if created == 0 {
        return Measurement::verdict(
            ProbeStatus::NoData,
            format!(
                "no {noun} were created in {vendor} in {}: nothing to judge",
                window_phrase(window_days)
            ),
        )
        .with_sample(0)
        .with_window(window);
    }
    let unattributed = unattributed.min(created);
    let covered = percent(created - unattributed, created);
    Measurement::value(
        covered,
        Measure::SourceAttributionCoverage.unit(),
        format!(
            "{} of {noun} created in {} have a known original source ({} of {} have none)",
            fmt_pct(covered),
            window_phrase(window_days),
            unattributed,
            created
        ),
    )
    .with_sample(created)
    .with_window(window)
    .with_evidence("created", created.to_string())
    .with_evidence("unattributed", unattributed.to_string())
}

/// C5: won deals in the window traced back to a sourced lead. The sample is the won deals.
pub fn lead_to_revenue(vendor: &str, window_days: u32, won: u64, attributed: u64) -> Measurement {
    let window = days(window_days);
    if won == 0 {
        return Measurement::verdict(
            ProbeStatus::NoData,
            format!(
                "no deals were won in {vendor} in {}: conversion to revenue is not proven yet",
                window_phrase(window_days)
            ),
        )
        .with_sample(0)
        .with_window(window);
    }
    let attributed = attributed.min(won);
    Measurement::value(
        attributed as f64,
        Measure::LeadToRevenueLinkage.unit(),
        format!(
            "{attributed} of {won} deals won in {} trace back to a lead with a known source ({})",
            window_phrase(window_days),
            fmt_pct(percent(attributed, won))
        ),
    )
    .with_sample(won)
    .with_window(window)
    .with_evidence("won", won.to_string())
    .with_evidence("attributed", attributed.to_string())
}

/// C8: share of leads created in the window (and older than the grace period) without an owner.
pub fn owner_assignment(
    vendor: &str,
    noun: &str,
    window_days: u32,
    grace_minutes: u32,
    created: u64,
    unassigned: u64,
) -> Measurement {
    let window = days(window_days);
    if created == 0 {
        return Measurement::verdict(
            ProbeStatus::NoData,
            format!(
                "no {noun} were created in {vendor} in {}: nothing to judge",
                window_phrase(window_days)
            ),
        )
        .with_sample(0)
        .with_window(window);
    }
    let unassigned = unassigned.min(created);
    let p = percent(unassigned, created);
    Measurement::value(
        p,
        Measure::OwnerAssignment.unit(),
        format!(
            "{} of {noun} created in {} still have no owner {grace_minutes} minutes after creation ({unassigned} of {created})",
            fmt_pct(p),
            window_phrase(window_days)
        ),
    )
    .with_sample(created)
    .with_window(window)
    .with_evidence("unassigned", unassigned.to_string())
}

// ---------------------------------------------------------------------------------------------
// C6

/// Counts for one funnel step (stage A → a later stage), for a cohort entering A.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepCounts {
    /// The stage entered.
    pub from: String,
    /// The next stage.
    pub to: String,
    /// Entered `from` in the window.
    pub entrants: u64,
    /// Of those, reached `to` or any later stage.
    pub converted: u64,
    /// The same for the cohort of the last 7 days, and of the 7 days before (week over week).
    pub weeks: Option<[(u64, u64); 2]>,
}

/// What judges C6 besides the value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConversionRules {
    /// A step with at least this many entrants and no conversion FAILs.
    pub min_entrants: u64,
    /// WARN when a step's rate moves by more than this (relative percent) week over week.
    pub max_weekly_change_percent: Option<f64>,
}

/// The week-over-week limit of a params value: 0 (or less) turns the comparison off.
pub fn weekly_limit(p: f64) -> Option<f64> {
    (p > 0.0).then_some(p)
}

/// C6: end-to-end rate of the first stage's cohort, with zero steps FAIL and unstable steps WARN.
/// `end` is (entrants into the first stage, of those reaching the last).
pub fn lead_conversion(
    vendor: &str,
    window_days: u32,
    steps: &[StepCounts],
    end: (u64, u64),
    rules: ConversionRules,
) -> Measurement {
    let window = days(window_days);
    let (first, last) = match (steps.first(), steps.last()) {
        (Some(f), Some(l)) => (f.from.clone(), l.to.clone()),
        _ => ("first stage".to_string(), "last stage".to_string()),
    };
    if end.0 == 0 {
        return Measurement::verdict(
            ProbeStatus::NoData,
            format!(
                "nobody entered `{first}` in {vendor} in {}: conversion is not proven yet",
                window_phrase(window_days)
            ),
        )
        .with_sample(0)
        .with_window(window);
    }
    let rate = percent(end.1.min(end.0), end.0);
    let mut zero = Vec::new();
    let mut unstable = Vec::new();
    let mut detail = Vec::new();
    for s in steps {
        detail.push(format!(
            "{}→{} {} ({} of {})",
            s.from,
            s.to,
            fmt_pct(percent(s.converted.min(s.entrants), s.entrants)),
            s.converted,
            s.entrants
        ));
        if s.entrants >= rules.min_entrants && s.converted == 0 {
            zero.push(format!(
                "{}→{} converted none of {} entrants",
                s.from, s.to, s.entrants
            ));
        }
        if let (Some(max), Some([recent, previous])) = (rules.max_weekly_change_percent, s.weeks)
            && recent.0 >= rules.min_entrants
            && previous.0 >= rules.min_entrants
        {
            let r1 = percent(recent.1.min(recent.0), recent.0);
            let r0 = percent(previous.1.min(previous.0), previous.0);
            let change = if r0 == 0.0 {
                if r1 == 0.0 { 0.0 } else { f64::INFINITY }
            } else {
                (r1 - r0).abs() * 100.0 / r0
            };
            if change > max {
                unstable.push(format!(
                    "{}→{} moved from {} to {} week over week",
                    s.from,
                    s.to,
                    fmt_pct(r0),
                    fmt_pct(r1)
                ));
            }
        }
    }
    let mut message = format!(
        "{} of the {} who entered `{first}` in {} reached `{last}`; {}",
        fmt_pct(rate),
        end.0,
        window_phrase(window_days),
        detail.join(", ")
    );
    if !zero.is_empty() {
        message.push_str(&format!("; broken: {}", zero.join("; ")));
    }
    if !unstable.is_empty() {
        message.push_str(&format!("; unstable: {}", unstable.join("; ")));
    }
    let mut m = Measurement::value(rate, Measure::LeadConversionRates.unit(), message)
        .with_sample(end.0)
        .with_window(window)
        .with_evidence("converted", end.1.to_string());
    if !zero.is_empty() {
        m.verdict = Some(ProbeStatus::Fail);
    } else if !unstable.is_empty() {
        m.verdict = Some(ProbeStatus::Warn);
    }
    m
}

// ---------------------------------------------------------------------------------------------
// C7

/// Whether a touch at `touched` on a lead created at `created` is one made at creation by
/// automation or the system user (within `seconds` of it); `seconds = 0` never says so.
pub fn automated_at_creation(created: Utc, touched: Utc, seconds: u32) -> bool {
    seconds > 0 && (touched.0 - created.0).abs() <= i64::from(seconds) * 1000
}

/// C7: median hours from creation to the first human touch. A lead nobody has touched yet is
/// right-censored: it counts at its current age (it is at least that slow), never as fast, so
/// silence is never hidden; untouched leads younger than `grace_minutes` are not judged yet.
/// The adapters drop touches made by automation or by the system user at lead creation before
/// calling this (`automated` says for how many leads they did).
pub fn speed_to_lead(
    vendor: &str,
    window_days: u32,
    now: Utc,
    samples: &[(Utc, Option<Utc>)],
    truncated: bool,
    grace_minutes: u32,
    automated: u64,
) -> Measurement {
    let window = days(window_days);
    let grace_hours = f64::from(grace_minutes) / 60.0;
    let mut in_grace = 0u64;
    let mut untouched = 0u64;
    let hours: Vec<f64> = samples
        .iter()
        .filter_map(|(created, touched)| match touched {
            Some(t) => Some(t.hours_since(*created).max(0.0)),
            None => {
                let age = now.hours_since(*created).max(0.0);
                if grace_minutes > 0 && age < grace_hours {
                    in_grace += 1;
                    None
                } else {
                    untouched += 1;
                    Some(age)
                }
            }
        })
        .collect();
    if hours.is_empty() {
        let mut message = format!(
            "no leads were created in {vendor} in {}: nothing to judge",
            window_phrase(window_days)
        );
        if in_grace > 0 {
            message = format!(
                "the {in_grace} leads created in {vendor} in {} are younger than the {grace_minutes}-minute grace and untouched: nothing to judge yet",
                window_phrase(window_days)
            );
        }
        return Measurement::verdict(ProbeStatus::NoData, message)
            .with_sample(0)
            .with_window(window);
    }
    let judged = hours.len();
    let med = median(hours).unwrap_or(0.0);
    let mut message = format!(
        "median time from lead creation to first human touch is {} over the {judged} leads created in {}",
        fmt_hours(med),
        window_phrase(window_days)
    );
    if untouched > 0 {
        message.push_str(&format!(
            " ({untouched} not yet contacted, counted at their current age as at least that slow)"
        ));
    }
    if automated > 0 {
        message.push_str(&format!(
            " ({automated} with only automated or system touches at creation, which do not count as a first touch)"
        ));
    }
    if in_grace > 0 {
        message.push_str(&format!(
            " ({in_grace} younger than the {grace_minutes}-minute grace not judged yet)"
        ));
    }
    if truncated {
        message.push_str(" (newest leads only: the record cap was reached)");
    }
    Measurement::value(med, Measure::SpeedToLead.unit(), message)
        .with_sample(judged as u64)
        .with_window(window)
        .with_evidence("automated_touches_ignored", automated.to_string())
        .with_evidence("in_grace", in_grace.to_string())
        .with_evidence("untouched", untouched.to_string())
        .with_evidence("truncated", truncated.to_string())
}

// ---------------------------------------------------------------------------------------------
// C9, C10

/// The form duplicates are compared in: trimmed, lower-case.
pub fn normalize_email(e: &str) -> String {
    e.trim().to_lowercase()
}

/// Count records with an email, and surplus records (those beyond the first per normalised email).
pub fn duplicate_counts<'a>(emails: impl IntoIterator<Item = &'a str>) -> (u64, u64) {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut surplus = 0u64;
    for e in emails {
        let n = normalize_email(e);
        if n.is_empty() {
            continue;
        }
        total += 1;
        if !seen.insert(n) {
            surplus += 1;
        }
    }
    (total, surplus)
}

/// C9: share of records with an email that duplicate another record's normalised email.
pub fn duplicates(
    vendor: &str,
    noun: &str,
    scope: &str,
    with_email: u64,
    surplus: u64,
    truncated: bool,
) -> Measurement {
    if with_email == 0 {
        return Measurement::verdict(
            ProbeStatus::NoData,
            format!("no {noun} with an email address in {vendor} ({scope}): nothing to judge"),
        )
        .with_sample(0);
    }
    let surplus = surplus.min(with_email);
    let p = percent(surplus, with_email);
    let mut message = format!(
        "{} of {noun} with an email ({scope}) duplicate another record's address ({surplus} surplus of {with_email})",
        fmt_pct(p)
    );
    if truncated {
        message.push_str(" (measured on the first records only: the record cap was reached)");
    }
    Measurement::value(p, Measure::Duplicates.unit(), message)
        .with_sample(with_email)
        .with_evidence("surplus", surplus.to_string())
        .with_evidence("truncated", truncated.to_string())
}

/// Role mailboxes nobody owns personally: they bounce, complain and never buy.
pub fn default_role_local_parts() -> Vec<String> {
    [
        "abuse",
        "admin",
        "billing",
        "careers",
        "contact",
        "enquiries",
        "help",
        "hello",
        "hr",
        "info",
        "inquiries",
        "jobs",
        "marketing",
        "no-reply",
        "noreply",
        "office",
        "postmaster",
        "sales",
        "support",
        "team",
        "webmaster",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

/// Domains and top-level domains reserved for documentation and testing (RFC 2606, RFC 6761).
const RESERVED_TLDS: [&str; 4] = ["test", "example", "invalid", "localhost"];
const RESERVED_DOMAINS: [&str; 3] = ["example.com", "example.net", "example.org"];

/// Why an address is not deliverable to a person, if it isn't.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailProblem {
    /// Not a syntactically valid address.
    Syntax,
    /// A reserved documentation/test domain.
    ReservedDomain,
    /// A role mailbox (info@, sales@ …).
    Role,
}

/// Check one address: pragmatic RFC 5321/5322 syntax (dot-atom local part, hostname domain with a
/// non-numeric TLD), reserved domains, and role mailboxes.
pub fn email_problem(email: &str, role_local_parts: &[String]) -> Option<EmailProblem> {
    let e = email.trim();
    if e.len() > 254 {
        return Some(EmailProblem::Syntax);
    }
    let Some((local, domain)) = e.rsplit_once('@') else {
        return Some(EmailProblem::Syntax);
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~-.".contains(c));
    let domain = domain.to_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|t| t.chars().count() >= 2 && !t.chars().all(|c| c.is_ascii_digit()));
    if !local_ok || !domain_ok {
        return Some(EmailProblem::Syntax);
    }
    let tld = labels.last().copied().unwrap_or_default();
    let reg = labels[labels.len() - 2..].join(".");
    if RESERVED_TLDS.contains(&tld) || RESERVED_DOMAINS.contains(&reg.as_str()) {
        return Some(EmailProblem::ReservedDomain);
    }
    let local_lc = local.to_lowercase();
    if role_local_parts
        .iter()
        .any(|r| r.eq_ignore_ascii_case(&local_lc))
    {
        return Some(EmailProblem::Role);
    }
    None
}

/// C10 inputs: which addresses count as a problem.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailRules {
    /// Local parts that mark a role mailbox; empty: roles are not counted.
    pub role_local_parts: Vec<String>,
    /// Count records without any email as invalid.
    pub count_missing: bool,
}

/// C10: share of records whose email is invalid, reserved or a role mailbox.
pub fn email_validity<'a>(
    vendor: &str,
    noun: &str,
    window_days: u32,
    emails: impl IntoIterator<Item = Option<&'a str>>,
    rules: &EmailRules,
    truncated: bool,
) -> Measurement {
    let window = days(window_days);
    let (mut total, mut syntax, mut reserved, mut role, mut missing) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for e in emails {
        match e.map(str::trim).filter(|s| !s.is_empty()) {
            None => {
                if rules.count_missing {
                    total += 1;
                    missing += 1;
                }
            }
            Some(addr) => {
                total += 1;
                match email_problem(addr, &rules.role_local_parts) {
                    Some(EmailProblem::Syntax) => syntax += 1,
                    Some(EmailProblem::ReservedDomain) => reserved += 1,
                    Some(EmailProblem::Role) => role += 1,
                    None => {}
                }
            }
        }
    }
    if total == 0 {
        return Measurement::verdict(
            ProbeStatus::NoData,
            format!(
                "no {noun} with an email were created in {vendor} in {}: nothing to judge",
                window_phrase(window_days)
            ),
        )
        .with_sample(0)
        .with_window(window);
    }
    let bad = syntax + reserved + role + missing;
    let p = percent(bad, total);
    let mut message = format!(
        "{} of {noun} created in {} have an email that will not reach a person ({bad} of {total}: {syntax} malformed, \
         {reserved} test domains, {role} role mailboxes",
        fmt_pct(p),
        window_phrase(window_days)
    );
    if rules.count_missing {
        message.push_str(&format!(", {missing} without email"));
    }
    message.push(')');
    if truncated {
        message.push_str(" (newest records only: the record cap was reached)");
    }
    Measurement::value(p, Measure::EmailValidity.unit(), message)
        .with_sample(total)
        .with_window(window)
        .with_evidence("malformed", syntax.to_string())
        .with_evidence("reserved_domain", reserved.to_string())
        .with_evidence("role", role.to_string())
        .with_evidence("missing", missing.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percentages_read_well() {
        assert_eq!(fmt_pct(38.2), "38%");
        assert_eq!(fmt_pct(2.5), "2.5%");
        assert_eq!(fmt_pct(0.04), "0.04%");
        assert_eq!(fmt_pct(0.0), "0%");
        assert_eq!(fmt_hours(0.25), "15 minutes");
        assert_eq!(fmt_hours(72.0), "3.0 days");
        assert_eq!(percent(1, 0), 0.0);
    }

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn quota_and_auth() {
        let m = auth_and_quota(
            "hubspot",
            Some(Budget {
                remaining: 100,
                max: 500,
                label: "daily".into(),
            }),
        );
        assert_eq!(m.value, Some(20.0));
        assert!(m.message.contains("20%"), "{}", m.message);
        assert_eq!(
            auth_and_quota("pipedrive", None).verdict,
            Some(ProbeStatus::Pass)
        );
        assert_eq!(auth_failed("401").verdict, Some(ProbeStatus::Fail));
    }

    fn field(name: &str, t: &str, options: &[&str]) -> FieldInfo {
        FieldInfo {
            name: name.into(),
            field_type: t.into(),
            options: options.iter().map(|s| s.to_string()).collect(),
            archived: false,
        }
    }

    #[test]
    fn required_fields_missing_mistyped_and_options() {
        let req = |o: &str, n: &str, t: &[&str], opts: &[&str]| RequiredField {
            object: o.into(),
            name: n.into(),
            types: t.iter().map(|s| s.to_string()).collect(),
            options: opts.iter().map(|s| s.to_string()).collect(),
        };
        let mut avail = BTreeMap::new();
        avail.insert(
            "contacts".to_string(),
            vec![
                field("email", "string", &[]),
                field("lifecyclestage", "enumeration", &["lead", "customer"]),
            ],
        );
        let all_good = required_properties(
            "hubspot",
            &[req("contacts", "email", &["string"], &[])],
            &avail,
        );
        assert_eq!(all_good.value, Some(0.0));
        assert_eq!(all_good.verdict, None);
        let m = required_properties(
            "hubspot",
            &[
                req("contacts", "email", &["number"], &[]),
                req("contacts", "utm_source", &[], &[]),
                req("deals", "amount", &[], &[]),
                req("contacts", "lifecyclestage", &[], &["Lead", "evangelist"]),
            ],
            &avail,
        );
        assert_eq!(m.value, Some(3.0));
        assert_eq!(m.verdict, Some(ProbeStatus::Warn));
        assert!(m.message.contains("contacts.utm_source"), "{}", m.message);
        assert!(m.message.contains("lacks evangelist"), "{}", m.message);
        assert!(!m.message.contains("lacks Lead"), "{}", m.message);
    }

    fn stage(label: &str, order: f64, p: Option<f64>, closed: bool, won: bool) -> StageInfo {
        StageInfo {
            label: label.into(),
            order,
            probability: p,
            is_closed: closed,
            is_won: won,
        }
    }

    #[test]
    fn pipeline_shape_rules() {
        let good = PipelineInfo {
            label: "Sales".into(),
            stages: vec![
                stage("won", 3.0, Some(1.0), true, true),
                stage("new", 0.0, Some(0.1), false, false),
                stage("demo", 1.0, Some(0.4), false, false),
                stage("lost", 4.0, Some(0.0), true, false),
            ],
        };
        let m = pipeline_shape("hubspot", std::slice::from_ref(&good), WonModel::Stages);
        assert_eq!((m.value, m.verdict), (Some(0.0), None));
        let bad = PipelineInfo {
            label: "Renewals".into(),
            stages: vec![
                stage("a", 0.0, Some(0.6), false, false),
                stage("b", 1.0, Some(0.2), false, false),
            ],
        };
        let m = pipeline_shape("hubspot", &[good, bad.clone()], WonModel::Stages);
        assert_eq!(m.value, Some(1.0));
        assert_eq!(m.verdict, Some(ProbeStatus::Warn));
        assert!(
            m.message.contains("`Renewals` has no closed-won stage"),
            "{}",
            m.message
        );
        let m = pipeline_shape("pipedrive", &[bad], WonModel::Statuses);
        assert_eq!((m.value, m.verdict), (Some(0.0), Some(ProbeStatus::Warn)));
    }

    #[test]
    fn coverage_linkage_owner_and_empty_windows() {
        let m = source_attribution("hubspot", "contacts", 30, 100, 38);
        assert_eq!(m.value, Some(62.0));
        assert!(
            m.message
                .starts_with("62% of contacts created in the last 30 days"),
            "{}",
            m.message
        );
        assert_eq!(m.sample_size, Some(100));
        assert_eq!(
            source_attribution("hubspot", "contacts", 30, 0, 0).verdict,
            Some(ProbeStatus::NoData)
        );
        let m = lead_to_revenue("salesforce", 90, 40, 31);
        assert_eq!((m.value, m.sample_size), (Some(31.0), Some(40)));
        let none = lead_to_revenue("salesforce", 90, 0, 0);
        assert_eq!(
            (none.verdict, none.sample_size),
            (Some(ProbeStatus::NoData), Some(0))
        );
        let m = owner_assignment("hubspot", "contacts", 7, 60, 50, 5);
        assert_eq!(m.value, Some(10.0));
    }

    #[test]
    fn conversion_zero_step_fails_and_unstable_week_warns() {
        let rules = ConversionRules {
            min_entrants: 20,
            max_weekly_change_percent: Some(50.0),
        };
        let steps = vec![
            StepCounts {
                from: "lead".into(),
                to: "mql".into(),
                entrants: 100,
                converted: 40,
                weeks: Some([(30, 15), (30, 3)]),
            },
            StepCounts {
                from: "mql".into(),
                to: "customer".into(),
                entrants: 40,
                converted: 0,
                weeks: None,
            },
        ];
        let m = lead_conversion("hubspot", 30, &steps, (100, 0), rules);
        assert_eq!(m.verdict, Some(ProbeStatus::Fail));
        assert_eq!(m.sample_size, Some(100));
        assert!(
            m.message.contains("mql→customer converted none of 40"),
            "{}",
            m.message
        );
        let mut ok = steps.clone();
        ok[1].converted = 10;
        let m = lead_conversion("hubspot", 30, &ok, (100, 10), rules);
        assert_eq!((m.value, m.verdict), (Some(10.0), Some(ProbeStatus::Warn)));
        ok[0].weeks = Some([(30, 12), (30, 10)]);
        assert_eq!(
            lead_conversion("hubspot", 30, &ok, (100, 10), rules).verdict,
            None
        );
        let few = vec![StepCounts {
            from: "lead".into(),
            to: "customer".into(),
            entrants: 5,
            converted: 0,
            weeks: None,
        }];
        assert_eq!(
            lead_conversion("hubspot", 30, &few, (5, 0), rules).verdict,
            None
        );
        assert_eq!(
            lead_conversion("hubspot", 30, &few, (0, 0), rules).verdict,
            Some(ProbeStatus::NoData)
        );
    }

    #[test]
    fn speed_counts_untouched_leads_as_waiting() {
        let now = Utc(100 * 3_600_000);
        let h = |x: i64| Utc(x * 3_600_000);
        let samples = vec![(h(90), Some(h(91))), (h(90), Some(h(92))), (h(0), None)];
        let m = speed_to_lead("hubspot", 30, now, &samples, false, 0, 0);
        assert_eq!(m.value, Some(2.0));
        assert!(m.message.contains("1 not yet contacted"), "{}", m.message);
        assert_eq!(
            speed_to_lead("hubspot", 30, now, &[], false, 0, 0).verdict,
            Some(ProbeStatus::NoData)
        );
        // Untouched leads are right-censored at their age: two fast touches and three leads
        // waiting 50h give a slow median, never a fast one.
        let samples = vec![
            (h(99), Some(h(99))),
            (h(98), Some(h(98))),
            (h(50), None),
            (h(50), None),
            (h(50), None),
        ];
        assert_eq!(
            speed_to_lead("hubspot", 30, now, &samples, false, 0, 0).value,
            Some(50.0)
        );
        // Grace: an untouched lead younger than the grace is not judged yet; an old one is.
        let fresh = Utc(now.0 - 5 * 60_000);
        let samples = vec![(h(90), Some(h(91))), (fresh, None)];
        let m = speed_to_lead("hubspot", 30, now, &samples, false, 15, 0);
        assert_eq!((m.value, m.sample_size), (Some(1.0), Some(1)));
        let m = speed_to_lead("hubspot", 30, now, &[(fresh, None)], false, 15, 0);
        assert_eq!(m.verdict, Some(ProbeStatus::NoData), "{}", m.message);
        let m = speed_to_lead("hubspot", 30, now, &[(fresh, None)], false, 0, 0);
        assert_eq!(m.sample_size, Some(1));
    }

    #[test]
    fn email_rules() {
        let roles = default_role_local_parts();
        for good in [
            "ann@acme.io",
            "a.b+tag@sub.acme.co.uk",
            "Zoë@exämple.de",
            "o'neil@acme.com",
        ] {
            assert_eq!(email_problem(good, &roles), None, "{good}");
        }
        for bad in [
            "",
            "ann",
            "ann@",
            "@acme.io",
            "ann@acme",
            "a..b@acme.io",
            ".a@acme.io",
            "ann@-acme.io",
            "ann@acme.1",
            "a b@acme.io",
            "ann@@acme.io",
        ] {
            assert_eq!(
                email_problem(bad, &roles),
                Some(EmailProblem::Syntax),
                "{bad}"
            );
        }
        assert_eq!(
            email_problem("ann@example.com", &roles),
            Some(EmailProblem::ReservedDomain)
        );
        assert_eq!(
            email_problem("ann@shop.test", &roles),
            Some(EmailProblem::ReservedDomain)
        );
        assert_eq!(
            email_problem("Info@acme.io", &roles),
            Some(EmailProblem::Role)
        );
        assert_eq!(email_problem("info@acme.io", &[]), None);
        let rules = EmailRules {
            role_local_parts: roles,
            count_missing: false,
        };
        let m = email_validity(
            "hubspot",
            "contacts",
            30,
            [Some("a@acme.io"), Some("bad"), None, Some("info@acme.io")],
            &rules,
            false,
        );
        assert_eq!(m.sample_size, Some(3));
        assert!((m.value.unwrap() - 200.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn duplicates_by_normalised_email() {
        let (total, surplus) = duplicate_counts(["A@x.io", " a@x.io ", "b@x.io", "", "a@X.IO"]);
        assert_eq!((total, surplus), (4, 2));
        let m = duplicates("hubspot", "contacts", "all contacts", total, surplus, false);
        assert_eq!(m.value, Some(50.0));
        assert_eq!(
            duplicates("hubspot", "contacts", "all", 0, 0, false).verdict,
            Some(ProbeStatus::NoData)
        );
    }
}
