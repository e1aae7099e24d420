//! Pure evaluation: vendor-neutral facts in, a [`Measurement`] with a marketer's message out.
//! No I/O, no clock (the caller passes `now`), so every rule is unit-tested here and every
//! vendor answers a measure the same way.

use std::time::Duration;

use funnelgate_core::{Measurement, ProbeStatus};
use jiff::Timestamp;

use crate::measure::Measure;
use crate::time::hours_between;

/// How many names a message lists before "and N more".
const LIST_CAP: usize = 5;

fn list(names: &[String]) -> String {
    let mut s = names
        .iter()
        .take(LIST_CAP)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LIST_CAP {
        s.push_str(&format!(" and {} more", names.len() - LIST_CAP));
    }
    s
}

/// The vendor's daily API budget as last reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    /// Calls made in the current period.
    pub used: u64,
    /// Calls allowed in the period.
    pub limit: u64,
    /// When the period resets, as the vendor states it (e.g. `midnight US Central time`).
    pub resets: String,
}

/// A1 with working credentials: the share of the budget used, or a PASS verdict when the vendor
/// has no budget to read (then the message says so: nothing is guessed).
pub fn auth_ok(vendor: &str, budget: Option<&Budget>) -> Measurement {
    match budget {
        Some(b) if b.limit > 0 => {
            let pct = b.used as f64 * 100.0 / b.limit as f64;
            Measurement::value(
                pct,
                Measure::AuthAndQuota.unit(),
                format!(
                    "{vendor}: credentials accepted; {} of {} api calls used today ({pct:.1}%), resets {}",
                    b.used, b.limit, b.resets
                ),
            )
            .with_evidence("calls_used", b.used.to_string())
            .with_evidence("calls_limit", b.limit.to_string())
        }
        _ => Measurement::verdict(
            ProbeStatus::Pass,
            format!("{vendor}: credentials accepted; the api reports no call budget to measure"),
        ),
    }
}

/// A1 when the vendor rejected the credentials or their permissions: FAIL, not ERROR (the
/// measure is "do the credentials work").
pub fn auth_failed(message: &str) -> Measurement {
    Measurement::verdict(
        ProbeStatus::Fail,
        format!("credentials do not work: {message}"),
    )
}

/// A1 when the daily quota is exhausted: FAIL at 100 %, with the reset time.
pub fn quota_exhausted(vendor: &str, resets: &str) -> Measurement {
    Measurement::value(
        100.0,
        Measure::AuthAndQuota.unit(),
        format!("{vendor}: the daily api quota is exhausted; it resets {resets}"),
    )
    .with_evidence("resets", resets)
}

/// A flow, workflow or campaign.
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    /// Vendor id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether it is on (published, active, enabled).
    pub enabled: bool,
}

/// A2: how many of the required flows (by id or exact name) are missing or off.
pub fn nurture_active(vendor: &str, flows: &[Flow], required: &[String]) -> Measurement {
    let mut missing = Vec::new();
    let mut off = Vec::new();
    for r in required {
        let matching: Vec<&Flow> = flows
            .iter()
            .filter(|f| &f.id == r || &f.name == r)
            .collect();
        if matching.is_empty() {
            missing.push(r.clone());
        } else if !matching.iter().any(|f| f.enabled) {
            off.push(r.clone());
        }
    }
    let bad = missing.len() + off.len();
    let mut msg = if bad == 0 {
        format!(
            "{vendor}: all {} required flows are enabled (of {} in the account)",
            required.len(),
            flows.len()
        )
    } else {
        format!(
            "{vendor}: {bad} of {} required flows will not catch new leads",
            required.len()
        )
    };
    if !off.is_empty() {
        msg.push_str(&format!("; turned off: {}", list(&off)));
    }
    if !missing.is_empty() {
        msg.push_str(&format!("; not found: {}", list(&missing)));
    }
    Measurement::value(bad as f64, Measure::LeadNurtureActive.unit(), msg)
        .with_sample(required.len() as u64)
}

/// A failed flow action.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowError {
    /// The flow or campaign it belongs to.
    pub flow: String,
    /// What failed (the vendor's reason).
    pub reason: String,
}

/// A3: failed flow actions in the window.
pub fn flow_errors(vendor: &str, errors: &[FlowError], window: Duration) -> Measurement {
    let hours = window.as_secs() / 3600;
    let msg = if errors.is_empty() {
        format!("{vendor}: no failed flow actions in the last {hours} h")
    } else {
        let mut flows: Vec<String> = errors.iter().map(|e| e.flow.clone()).collect();
        flows.sort();
        flows.dedup();
        let first = &errors[0];
        format!(
            "{vendor}: {} failed flow actions in the last {hours} h in {}; e.g. `{}`: {}",
            errors.len(),
            list(&flows),
            first.flow,
            first.reason
        )
    };
    Measurement::value(errors.len() as f64, Measure::FlowErrors.unit(), msg).with_window(window)
}

/// A watched segment and when it last gained a member.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Display name.
    pub name: String,
    /// When its newest member joined, `None` when it has none.
    pub newest_member: Option<Timestamp>,
}

/// A5: hours since the stalest watched segment gained a member, judged only while new leads
/// arrive (no new leads → NO_DATA: a quiet segment then proves nothing).
pub fn segment_freshness(
    vendor: &str,
    segments: &[Segment],
    new_leads: u64,
    window: Duration,
    now: Timestamp,
) -> Measurement {
    let hours = window.as_secs() / 3600;
    if new_leads == 0 {
        return Measurement::verdict(
            ProbeStatus::NoData,
            format!(
                "{vendor}: no new leads in the last {hours} h, so segment rebuilds cannot be judged"
            ),
        )
        .with_window(window)
        .with_sample(0);
    }
    let mut worst: Option<(f64, &Segment)> = None;
    for s in segments {
        let age = match s.newest_member {
            Some(t) => hours_between(t, now),
            None => f64::INFINITY,
        };
        if worst.is_none_or(|(w, _)| age > w) {
            worst = Some((age, s));
        }
    }
    match worst {
        None => Measurement::verdict(
            ProbeStatus::NoData,
            format!("{vendor}: no segments to watch"),
        ),
        Some((age, s)) if age.is_infinite() => Measurement::value(
            f64::from(u32::MAX),
            Measure::SegmentFreshness.unit(),
            format!(
                "{vendor}: segment `{}` has no members while {new_leads} leads arrived in the last {hours} h: is the segment rebuild cron running?",
                s.name
            ),
        )
        .with_sample(new_leads)
        .with_window(window),
        Some((age, s)) => Measurement::value(
            (age * 10.0).round() / 10.0,
            Measure::SegmentFreshness.unit(),
            format!(
                "{vendor}: segment `{}` last gained a member {age:.1} h ago; {new_leads} leads arrived in the last {hours} h",
                s.name
            ),
        )
        .with_sample(new_leads)
        .with_window(window),
    }
}

/// A7 facts.
#[derive(Clone, Debug, PartialEq)]
pub struct Scoring {
    /// Why scoring is not configured, if it is not (no score field, no scoring rules).
    pub not_configured: Option<String>,
    /// Leads created in the window (test identities excluded).
    pub created: u64,
    /// Leads whose score reached the threshold in the window.
    pub crossed: u64,
}

/// A7: leads crossing the MQL threshold, judged only with enough new leads.
pub fn scoring(
    vendor: &str,
    s: &Scoring,
    threshold: f64,
    min_new_leads: u64,
    window: Duration,
) -> Measurement {
    let days = window.as_secs() / 86_400;
    if let Some(why) = &s.not_configured {
        return Measurement::verdict(
            ProbeStatus::Fail,
            format!("{vendor}: lead scoring is not configured: {why}"),
        );
    }
    if s.created < min_new_leads {
        return Measurement::verdict(
            ProbeStatus::NoData,
            format!(
                "{vendor}: only {} leads created in the last {days} d (fewer than {min_new_leads}), too few to judge scoring",
                s.created
            ),
        )
        .with_sample(s.created)
        .with_window(window);
    }
    Measurement::value(
        s.crossed as f64,
        Measure::ScoringConfigured.unit(),
        format!(
            "{vendor}: {} of {} leads created in the last {days} d reached the mql score {threshold}",
            s.crossed, s.created
        ),
    )
    .with_sample(s.created)
    .with_window(window)
}

/// A8: whether the unsubscribed test identity is blocked. `found = false` is an error the caller
/// raises (the identity must exist to prove anything).
pub fn unsubscribe(vendor: &str, blocked: bool, how: &str) -> Measurement {
    let (v, msg) = if blocked {
        (
            1.0,
            format!(
                "{vendor}: the unsubscribed test identity is blocked from marketing email ({how})"
            ),
        )
    } else {
        (
            0.0,
            format!(
                "{vendor}: the unsubscribed test identity is still marketable ({how}): unsubscribes are not honoured"
            ),
        )
    };
    Measurement::value(v, Measure::UnsubscribeRoundtrip.unit(), msg)
}

/// An email referenced by an active flow, and what is wrong with it.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailRef {
    /// The flow referencing it.
    pub flow: String,
    /// The email's id or name.
    pub email: String,
    /// `None` when valid; else e.g. `deleted`, `unpublished`, `not approved (draft)`.
    pub problem: Option<String>,
}

/// A9: emails used by active flows that cannot send.
pub fn email_assets(vendor: &str, refs: &[EmailRef]) -> Measurement {
    let bad: Vec<&EmailRef> = refs.iter().filter(|r| r.problem.is_some()).collect();
    let msg = if bad.is_empty() {
        format!(
            "{vendor}: all {} emails used by active flows exist and are published",
            refs.len()
        )
    } else {
        let items: Vec<String> = bad
            .iter()
            .map(|r| {
                format!(
                    "email {} in `{}` is {}",
                    r.email,
                    r.flow,
                    r.problem.as_deref().unwrap_or("invalid")
                )
            })
            .collect();
        let mut m = format!(
            "{vendor}: {} of {} emails used by active flows cannot send: ",
            bad.len(),
            refs.len()
        );
        m.push_str(
            &items
                .iter()
                .take(LIST_CAP)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        );
        if items.len() > LIST_CAP {
            m.push_str(&format!("; and {} more", items.len() - LIST_CAP));
        }
        m
    };
    Measurement::value(bad.len() as f64, Measure::EmailAssetsValid.unit(), msg)
        .with_sample(refs.len() as u64)
}

/// A form field as the vendor describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct FormField {
    /// Field name/alias on the form.
    pub name: String,
    /// Whether it is a hidden field.
    pub hidden: bool,
    /// The contact/lead field it writes to, when the vendor says.
    pub mapped_to: Option<String>,
}

/// A10: expected fields missing from a form; `hidden` expectations also need a hidden field, and
/// a field that writes nowhere (mapped to nothing when the vendor exposes mappings) counts.
pub fn form_mapping(
    vendor: &str,
    form: &str,
    fields: &[FormField],
    expected: &[String],
    hidden: &[String],
    mappings_exposed: bool,
) -> Measurement {
    let mut problems = Vec::new();
    let find = |n: &str| {
        fields.iter().find(|f| {
            f.name.eq_ignore_ascii_case(n)
                || f.mapped_to
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(n))
        })
    };
    for n in expected {
        match find(n) {
            None => problems.push(format!("`{n}` missing")),
            Some(f) if mappings_exposed && f.mapped_to.is_none() => {
                problems.push(format!("`{n}` not mapped to a contact field"))
            }
            _ => {}
        }
    }
    for n in hidden {
        match find(n) {
            None => problems.push(format!("hidden field `{n}` missing")),
            Some(f) if !f.hidden => problems.push(format!("`{n}` is not a hidden field")),
            Some(f) if mappings_exposed && f.mapped_to.is_none() => {
                problems.push(format!("hidden field `{n}` not mapped to a contact field"))
            }
            _ => {}
        }
    }
    let total = expected.len() + hidden.len();
    let msg = if problems.is_empty() {
        format!("{vendor}: form {form} has all {total} expected fields, hidden utm fields included")
    } else {
        format!(
            "{vendor}: form {form}: {} of {total} expected fields are wrong: {}",
            problems.len(),
            problems
                .iter()
                .take(LIST_CAP)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Measurement::value(problems.len() as f64, Measure::FormMapping.unit(), msg)
        .with_sample(total as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn flow(id: &str, name: &str, enabled: bool) -> Flow {
        Flow {
            id: id.into(),
            name: name.into(),
            enabled,
        }
    }

    #[test]
    fn a_required_flow_turned_off_or_missing_counts() {
        let flows = [flow("1", "Welcome", true), flow("2", "Nurture", false)];
        let m = nurture_active("mautic", &flows, &["Welcome".into()]);
        assert_eq!(m.value, Some(0.0));
        let m = nurture_active(
            "mautic",
            &flows,
            &["1".into(), "Nurture".into(), "Gone".into()],
        );
        assert_eq!(m.value, Some(2.0));
        assert!(m.message.contains("turned off: `Nurture`"), "{}", m.message);
        assert!(m.message.contains("not found: `Gone`"), "{}", m.message);
    }

    #[test]
    fn quiet_periods_are_no_data_not_pass() {
        let now = Timestamp::now();
        let segs = [Segment {
            name: "New leads".into(),
            newest_member: Some(now - Duration::from_secs(48 * 3600)),
        }];
        let m = segment_freshness("mautic", &segs, 0, Duration::from_secs(86_400), now);
        assert_eq!(m.verdict, Some(ProbeStatus::NoData));
        let m = segment_freshness("mautic", &segs, 5, Duration::from_secs(86_400), now);
        assert_eq!(m.value, Some(48.0));
    }

    #[test]
    fn scoring_needs_a_sample_and_configuration() {
        let w = Duration::from_secs(14 * 86_400);
        let s = Scoring {
            not_configured: None,
            created: 10,
            crossed: 0,
        };
        assert_eq!(
            scoring("x", &s, 100.0, 50, w).verdict,
            Some(ProbeStatus::NoData)
        );
        let s = Scoring { created: 60, ..s };
        assert_eq!(scoring("x", &s, 100.0, 50, w).value, Some(0.0));
        let s = Scoring {
            not_configured: Some("no point actions".into()),
            ..s
        };
        assert_eq!(
            scoring("x", &s, 100.0, 50, w).verdict,
            Some(ProbeStatus::Fail)
        );
    }

    #[test]
    fn deleted_and_unpublished_emails_count() {
        let refs = [
            EmailRef {
                flow: "Welcome".into(),
                email: "4".into(),
                problem: None,
            },
            EmailRef {
                flow: "Welcome".into(),
                email: "5".into(),
                problem: Some("deleted".into()),
            },
        ];
        let m = email_assets("mautic", &refs);
        assert_eq!(m.value, Some(1.0));
        assert!(
            m.message.contains("email 5 in `Welcome` is deleted"),
            "{}",
            m.message
        );
    }

    #[test]
    fn hidden_utm_fields_must_be_hidden_and_mapped() {
        let fields = [
            FormField {
                name: "email".into(),
                hidden: false,
                mapped_to: Some("email".into()),
            },
            FormField {
                name: "utm_source".into(),
                hidden: true,
                mapped_to: Some("utm_source".into()),
            },
            FormField {
                name: "utm_medium".into(),
                hidden: false,
                mapped_to: Some("utm_medium".into()),
            },
            FormField {
                name: "utm_campaign".into(),
                hidden: true,
                mapped_to: None,
            },
        ];
        let hidden = ["utm_source", "utm_medium", "utm_campaign", "utm_term"].map(String::from);
        let m = form_mapping(
            "mautic",
            "`Demo`",
            &fields,
            &["email".into()],
            &hidden,
            true,
        );
        assert_eq!(m.value, Some(3.0), "{}", m.message);
        assert!(m.message.contains("`utm_medium` is not a hidden field"));
        assert!(m.message.contains("hidden field `utm_term` missing"));
    }

    #[test]
    fn auth_reports_budget_or_says_there_is_none() {
        let b = Budget {
            used: 45_000,
            limit: 50_000,
            resets: "at midnight".into(),
        };
        assert_eq!(auth_ok("marketo", Some(&b)).value, Some(90.0));
        assert_eq!(auth_ok("mautic", None).verdict, Some(ProbeStatus::Pass));
        assert_eq!(auth_failed("401").verdict, Some(ProbeStatus::Fail));
    }
}
