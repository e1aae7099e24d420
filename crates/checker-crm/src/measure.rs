//! The ten CRM measures (PROBES.md section 1, C1–C10), their units and default thresholds.
//!
//! A probe kind is `<vendor>.<measure>`; every vendor answers the same measure in the same unit
//! so one threshold means the same thing whichever CRM a team runs.

use funnelgate_core::Thresholds;

/// One CRM measure, independent of the vendor answering it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    /// C1: credentials work and the API budget is not near exhaustion.
    AuthAndQuota,
    /// C2: the fields the funnel depends on exist with the right type.
    RequiredProperties,
    /// C3: the deal pipeline has ordered stages with a won stage and sane probabilities.
    PipelineShape,
    /// C4: share of new contacts/leads with a known original source.
    SourceAttributionCoverage,
    /// C5: won deals that trace back to a lead with a source.
    LeadToRevenueLinkage,
    /// C6: stage-to-stage conversion is non-zero and stable.
    LeadConversionRates,
    /// C7: median time from lead creation to first owner activity.
    SpeedToLead,
    /// C8: share of new leads without an owner.
    OwnerAssignment,
    /// C9: share of surplus records sharing a normalised email.
    Duplicates,
    /// C10: share of contacts with an invalid or role email address.
    EmailValidity,
}

/// Where a default threshold comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdSource {
    /// Our heuristic: a sensible starting point a team should tune, not a vendor or industry rule.
    Heuristic,
    /// A rule that follows from what the measure means (e.g. "a required field is missing").
    Definition,
}

impl Measure {
    /// Every measure, in catalogue order.
    pub const ALL: [Measure; 10] = [
        Measure::AuthAndQuota,
        Measure::RequiredProperties,
        Measure::PipelineShape,
        Measure::SourceAttributionCoverage,
        Measure::LeadToRevenueLinkage,
        Measure::LeadConversionRates,
        Measure::SpeedToLead,
        Measure::OwnerAssignment,
        Measure::Duplicates,
        Measure::EmailValidity,
    ];

    /// The kind suffix, e.g. `source_attribution_coverage`.
    pub const fn suffix(self) -> &'static str {
        match self {
            Measure::AuthAndQuota => "auth_and_quota",
            Measure::RequiredProperties => "required_properties",
            Measure::PipelineShape => "pipeline_shape",
            Measure::SourceAttributionCoverage => "source_attribution_coverage",
            Measure::LeadToRevenueLinkage => "lead_to_revenue_linkage",
            Measure::LeadConversionRates => "lead_conversion_rates",
            Measure::SpeedToLead => "speed_to_lead",
            Measure::OwnerAssignment => "owner_assignment",
            Measure::Duplicates => "duplicates",
            Measure::EmailValidity => "email_validity",
        }
    }

    /// The catalogue id in PROBES.md, e.g. `C4`.
    pub const fn catalogue_id(self) -> &'static str {
        match self {
            Measure::AuthAndQuota => "C1",
            Measure::RequiredProperties => "C2",
            Measure::PipelineShape => "C3",
            Measure::SourceAttributionCoverage => "C4",
            Measure::LeadToRevenueLinkage => "C5",
            Measure::LeadConversionRates => "C6",
            Measure::SpeedToLead => "C7",
            Measure::OwnerAssignment => "C8",
            Measure::Duplicates => "C9",
            Measure::EmailValidity => "C10",
        }
    }

    /// Unit of the measured value.
    pub const fn unit(self) -> &'static str {
        match self {
            Measure::AuthAndQuota => "percent",
            Measure::RequiredProperties => "count",
            Measure::PipelineShape => "count",
            Measure::SourceAttributionCoverage => "percent",
            Measure::LeadToRevenueLinkage => "count",
            Measure::LeadConversionRates => "percent",
            Measure::SpeedToLead => "hours",
            Measure::OwnerAssignment => "percent",
            Measure::Duplicates => "percent",
            Measure::EmailValidity => "percent",
        }
    }

    /// What the value is, in one line (shown in `Describe` and the docs).
    pub const fn value_meaning(self) -> &'static str {
        match self {
            Measure::AuthAndQuota => {
                "percent of the daily API budget remaining (credentials that fail are FAIL)"
            }
            Measure::RequiredProperties => "number of required fields missing or of the wrong type",
            Measure::PipelineShape => {
                "number of pipelines that cannot record won revenue (no closed-won stage, or no stages)"
            }
            Measure::SourceAttributionCoverage => {
                "percent of contacts/leads created in the window with a known original source"
            }
            Measure::LeadToRevenueLinkage => {
                "number of deals won in the window that trace back to a lead with a known source"
            }
            Measure::LeadConversionRates => {
                "percent of the window's entrants into the first funnel stage that reached the last"
            }
            Measure::SpeedToLead => "median hours from lead creation to first owner activity",
            Measure::OwnerAssignment => {
                "percent of leads created in the window still without an owner"
            }
            Measure::Duplicates => {
                "percent of records that duplicate another record's normalised email"
            }
            Measure::EmailValidity => "percent of contacts with an invalid or role email address",
        }
    }

    /// Why it matters, for the reference pages.
    pub const fn why(self) -> &'static str {
        match self {
            Measure::AuthAndQuota => {
                "A check that cannot log in measures nothing, and a check that eats the API budget starves the \
                 syncs that move leads into the CRM. This probe proves the credentials work and shows how much \
                 of the vendor's daily budget is left."
            }
            Measure::RequiredProperties => {
                "Routing, attribution and revenue reporting read specific fields. When one is missing or has \
                 changed type (free text where a picklist was expected), forms and syncs silently drop data."
            }
            Measure::PipelineShape => {
                "Revenue is recorded when a deal reaches a closed-won stage. A pipeline without one cannot record \
                 revenue, and probabilities that fall as deals advance make the forecast lie."
            }
            Measure::SourceAttributionCoverage => {
                "Paid media is judged by the leads and revenue it brings. A lead without an original source cannot \
                 be credited to any channel, so the spend that brought it cannot be evaluated."
            }
            Measure::LeadToRevenueLinkage => {
                "A team earns the right to scale spend by showing that leads reliably convert to revenue: deals \
                 won that trace back to a lead with a known source. This is a conversion-proof measure: mark it \
                 `proof = true` with a `min_sample`."
            }
            Measure::LeadConversionRates => {
                "Every step of the funnel must convert someone: a step with plenty of entrants and no conversion \
                 is a broken hand-off (a workflow switched off, a status nobody sets). A sudden week-over-week \
                 swing is a change worth a look. Also usable as conversion proof."
            }
            Measure::SpeedToLead => {
                "Leads go cold in minutes. The median time from creation to the first sales activity shows whether \
                 the team answers while the lead still cares."
            }
            Measure::OwnerAssignment => {
                "A lead nobody owns is a lead nobody calls. New leads still without an owner (or with a queue or \
                 default owner) after the grace period show a routing gap."
            }
            Measure::Duplicates => {
                "Duplicates split a person's history across records, double-count leads and send the same person \
                 two sequences."
            }
            Measure::EmailValidity => {
                "Addresses that bounce or reach no person (role mailboxes, test domains, typos) hurt sender \
                 reputation and inflate lead counts."
            }
        }
    }

    /// A short name, e.g. "source-attribution coverage".
    pub const fn title(self) -> &'static str {
        match self {
            Measure::AuthAndQuota => "auth and quota",
            Measure::RequiredProperties => "required properties",
            Measure::PipelineShape => "pipeline shape",
            Measure::SourceAttributionCoverage => "source-attribution coverage",
            Measure::LeadToRevenueLinkage => "lead-to-revenue linkage",
            Measure::LeadConversionRates => "lead conversion rates",
            Measure::SpeedToLead => "speed to lead",
            Measure::OwnerAssignment => "owner assignment",
            Measure::Duplicates => "duplicates",
            Measure::EmailValidity => "email validity",
        }
    }

    /// Whether the measure can serve as conversion proof (DESIGN.md section 1).
    pub const fn is_proof(self) -> bool {
        matches!(
            self,
            Measure::LeadToRevenueLinkage | Measure::LeadConversionRates
        )
    }

    /// The measure from a kind suffix.
    pub fn from_suffix(s: &str) -> Option<Measure> {
        Measure::ALL.into_iter().find(|m| m.suffix() == s)
    }

    /// Default thresholds (PROBES.md section 1) applied when a probe spec sets none.
    pub fn default_thresholds(self) -> Thresholds {
        let t = Thresholds::default();
        match self {
            Measure::AuthAndQuota => Thresholds {
                warn_below: Some(20.0),
                ..t
            },
            Measure::RequiredProperties => Thresholds {
                fail_above: Some(0.0),
                ..t
            },
            Measure::PipelineShape => Thresholds {
                fail_above: Some(0.0),
                ..t
            },
            Measure::SourceAttributionCoverage => Thresholds {
                warn_below: Some(90.0),
                fail_below: Some(70.0),
                ..t
            },
            Measure::LeadToRevenueLinkage => Thresholds {
                warn_below: Some(30.0),
                fail_below: Some(1.0),
                ..t
            },
            // C6 is judged by the probe itself (a zero step FAILs, an unstable week WARNs).
            Measure::LeadConversionRates => t,
            Measure::SpeedToLead => Thresholds {
                warn_above: Some(1.0),
                fail_above: Some(24.0),
                ..t
            },
            Measure::OwnerAssignment => Thresholds {
                warn_above: Some(5.0),
                ..t
            },
            Measure::Duplicates => Thresholds {
                warn_above: Some(2.0),
                fail_above: Some(10.0),
                ..t
            },
            Measure::EmailValidity => Thresholds {
                warn_above: Some(2.0),
                ..t
            },
        }
    }

    /// Where the default thresholds come from, and why.
    pub const fn threshold_source(self) -> (ThresholdSource, &'static str) {
        use ThresholdSource::*;
        match self {
            Measure::AuthAndQuota => (
                Heuristic,
                "warn under 20% of the daily budget left, so a check never starves the team's own syncs; \
                 failing credentials are FAIL by definition",
            ),
            Measure::RequiredProperties => (
                Definition,
                "any required field missing or mistyped fails; an expected picklist value missing is WARN",
            ),
            Measure::PipelineShape => (
                Definition,
                "a pipeline without a closed-won stage fails (revenue cannot be recorded); probabilities \
                 that go down from one stage to the next, or no closed-lost stage, are WARN (heuristic)",
            ),
            Measure::SourceAttributionCoverage => (
                Heuristic,
                "warn under 90%, fail under 70% attributed: media spend cannot be evaluated without a source",
            ),
            Measure::LeadToRevenueLinkage => (
                Heuristic,
                "fail with no won deal traced to a sourced lead in the window; warn under 30 (too few to judge \
                 CAC payback, a sample-size rule)",
            ),
            Measure::LeadConversionRates => (
                Heuristic,
                "no threshold on the value: the probe FAILs when a step with at least `min_entrants` (20) \
                 entrants converted nobody, and WARNs when a step's rate moved more than \
                 `max_weekly_change_percent` (50%) week over week",
            ),
            Measure::SpeedToLead => (
                Heuristic,
                "warn over 1 hour, fail over 24 hours (lead-response research argues minutes, not hours; \
                 wall-clock hours, business hours are not modelled)",
            ),
            Measure::OwnerAssignment => {
                (Heuristic, "warn over 5% unassigned after the grace period")
            }
            Measure::Duplicates => (Heuristic, "warn over 2%, fail over 10%"),
            Measure::EmailValidity => (
                Heuristic,
                "warn over 2% invalid: keep bounces under 2% (Amazon SES guidance, PROBES.md [S13])",
            ),
        }
    }
}

/// Default thresholds of a CRM probe kind (`hubspot.duplicates`, `warehouse.speed_to_lead`, …),
/// or `None` for a kind this crate does not define.
pub fn default_thresholds(kind: &str) -> Option<Thresholds> {
    let (vendor, suffix) = kind.split_once('.')?;
    if !crate::VENDORS.contains(&vendor) {
        return None;
    }
    Measure::from_suffix(suffix).map(Measure::default_thresholds)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_measure_round_trips_its_suffix() {
        for m in Measure::ALL {
            assert_eq!(Measure::from_suffix(m.suffix()), Some(m));
        }
        assert_eq!(Measure::from_suffix("nope"), None);
    }

    #[test]
    fn default_thresholds_by_kind() {
        let t = default_thresholds("hubspot.source_attribution_coverage").unwrap();
        assert_eq!((t.warn_below, t.fail_below), (Some(90.0), Some(70.0)));
        assert!(default_thresholds("warehouse.duplicates").is_some());
        assert!(default_thresholds("esp.duplicates").is_none());
        assert!(default_thresholds("hubspot").is_none());
        assert!(
            default_thresholds("hubspot.lead_conversion_rates")
                .unwrap()
                .is_empty()
        );
    }
}
