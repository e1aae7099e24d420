//! The automation measures (PROBES.md section 2, A1–A10), their units and default thresholds.
//!
//! A probe kind is `<vendor>.<measure>`; every vendor answers the same measure in the same unit,
//! so one threshold means the same thing whichever automation tool a team runs. A4 (enrolment
//! latency) and A6 (CRM sync) are steps of the canary journey (`canary.lead_journey`), not kinds
//! of their own.

use funnelgate_core::Thresholds;

/// One automation measure, independent of the vendor answering it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    /// A1: credentials work and the API budget is not near exhaustion.
    AuthAndQuota,
    /// A2: the flows/campaigns that must catch new leads are enabled.
    LeadNurtureActive,
    /// A3: flow actions failing.
    FlowErrors,
    /// A5: dynamic segments are still being rebuilt.
    SegmentFreshness,
    /// A7: lead scoring exists and leads cross the MQL threshold.
    ScoringConfigured,
    /// A8: an unsubscribed identity is no longer marketable.
    UnsubscribeRoundtrip,
    /// A9: emails used by active flows exist and are published.
    EmailAssetsValid,
    /// A10: forms map to the expected fields, hidden UTM fields included.
    FormMapping,
}

impl Measure {
    /// Every measure, in catalogue order.
    pub const ALL: [Measure; 8] = [
        Measure::AuthAndQuota,
        Measure::LeadNurtureActive,
        Measure::FlowErrors,
        Measure::SegmentFreshness,
        Measure::ScoringConfigured,
        Measure::UnsubscribeRoundtrip,
        Measure::EmailAssetsValid,
        Measure::FormMapping,
    ];

    /// The kind suffix, e.g. `lead_nurture_active`.
    pub const fn suffix(self) -> &'static str {
        match self {
            Measure::AuthAndQuota => "auth_and_quota",
            Measure::LeadNurtureActive => "lead_nurture_active",
            Measure::FlowErrors => "flow_errors",
            Measure::SegmentFreshness => "segment_freshness",
            Measure::ScoringConfigured => "scoring_configured",
            Measure::UnsubscribeRoundtrip => "unsubscribe_roundtrip",
            Measure::EmailAssetsValid => "email_assets_valid",
            Measure::FormMapping => "form_mapping",
        }
    }

    /// The catalogue id in PROBES.md, e.g. `A2`.
    pub const fn catalogue_id(self) -> &'static str {
        match self {
            Measure::AuthAndQuota => "A1",
            Measure::LeadNurtureActive => "A2",
            Measure::FlowErrors => "A3",
            Measure::SegmentFreshness => "A5",
            Measure::ScoringConfigured => "A7",
            Measure::UnsubscribeRoundtrip => "A8",
            Measure::EmailAssetsValid => "A9",
            Measure::FormMapping => "A10",
        }
    }

    /// Unit of the measured value.
    pub const fn unit(self) -> &'static str {
        match self {
            Measure::AuthAndQuota => "percent",
            Measure::LeadNurtureActive => "count",
            Measure::FlowErrors => "count",
            Measure::SegmentFreshness => "hours",
            Measure::ScoringConfigured => "count",
            Measure::UnsubscribeRoundtrip => "bool",
            Measure::EmailAssetsValid => "count",
            Measure::FormMapping => "count",
        }
    }

    /// What the value is, in one line (shown in `Describe` and the docs).
    pub const fn value_meaning(self) -> &'static str {
        match self {
            Measure::AuthAndQuota => {
                "percent of the daily API budget used (credentials that fail are FAIL)"
            }
            Measure::LeadNurtureActive => {
                "number of required flows/campaigns that are missing or not enabled"
            }
            Measure::FlowErrors => "number of failed flow actions in the window",
            Measure::SegmentFreshness => {
                "hours since the slowest watched segment last gained a member, while new leads arrive"
            }
            Measure::ScoringConfigured => {
                "number of leads that crossed the MQL score threshold in the window"
            }
            Measure::UnsubscribeRoundtrip => {
                "whether the unsubscribed test identity is blocked from marketing email (1 = blocked)"
            }
            Measure::EmailAssetsValid => {
                "number of emails used by active flows that are unpublished, unapproved or deleted"
            }
            Measure::FormMapping => {
                "number of expected form fields (hidden UTM fields included) missing or not mapped"
            }
        }
    }

    /// Why it matters, for the reference pages.
    pub const fn why(self) -> &'static str {
        match self {
            Measure::AuthAndQuota => {
                "A check that cannot log in measures nothing, and an API budget eaten by integrations stops \
                 the syncs that move leads between the automation tool and the CRM."
            }
            Measure::LeadNurtureActive => {
                "The welcome and nurture flows are what turn a form fill into a conversation. One switched \
                 off during an edit silently drops every new lead."
            }
            Measure::FlowErrors => {
                "A flow that is on but whose actions fail (a webhook erroring, an email that cannot send) \
                 looks healthy in every dashboard that counts enrolments."
            }
            Measure::SegmentFreshness => {
                "Self-hosted tools rebuild segments from cron jobs. When the cron stops, segments freeze and \
                 campaigns fed by them stop enrolling new leads."
            }
            Measure::ScoringConfigured => {
                "Scoring is how marketing hands leads to sales. If nobody crosses the MQL threshold while \
                 leads keep arriving, the scoring model or the threshold is broken."
            }
            Measure::UnsubscribeRoundtrip => {
                "Gmail and Yahoo require honouring an unsubscribe within two days; mailing someone who \
                 opted out damages the sending reputation every other email depends on."
            }
            Measure::EmailAssetsValid => {
                "An active flow that points at an unpublished or deleted email skips the send: the lead \
                 is enrolled, nothing goes out, and no error reaches anyone."
            }
            Measure::FormMapping => {
                "Attribution starts at the form. A hidden UTM field removed in a form edit loses the \
                 source of every lead from then on, and the CRM cannot tell paid from organic."
            }
        }
    }

    /// The thresholds a probe of this measure is judged by when it sets none.
    pub fn default_thresholds(self) -> Thresholds {
        let mut t = Thresholds::default();
        match self {
            Measure::AuthAndQuota => {
                t.warn_above = Some(80.0);
                t.fail_above = Some(99.0);
            }
            Measure::LeadNurtureActive | Measure::EmailAssetsValid | Measure::FormMapping => {
                t.fail_above = Some(0.0);
            }
            Measure::FlowErrors => t.warn_above = Some(0.0),
            Measure::SegmentFreshness => t.warn_above = Some(24.0),
            Measure::ScoringConfigured => t.warn_below = Some(1.0),
            Measure::UnsubscribeRoundtrip => t.expect = Some(true),
        }
        t
    }

    /// Whether the default thresholds are our heuristic (tune them) or follow from the
    /// definition.
    pub const fn heuristic(self) -> bool {
        matches!(
            self,
            Measure::AuthAndQuota
                | Measure::FlowErrors
                | Measure::SegmentFreshness
                | Measure::ScoringConfigured
        )
    }
}

/// The default thresholds of a measure (a free function for the factories).
pub fn default_thresholds(m: Measure) -> Thresholds {
    m.default_thresholds()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_measure_has_a_threshold_and_a_unit() {
        for m in Measure::ALL {
            let t = m.default_thresholds();
            assert!(
                t.warn_above.is_some()
                    || t.fail_above.is_some()
                    || t.warn_below.is_some()
                    || t.expect.is_some(),
                "{m:?}"
            );
            assert!(!m.unit().is_empty());
            assert!(m.catalogue_id().starts_with('A'));
        }
    }
}
