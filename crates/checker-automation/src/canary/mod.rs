//! The canary lead (`canary.lead_journey`; PROBES.md A4, A6 and section 3): a synthetic,
//! recognisable test lead walked through the real stack — submitted to the automation tool, found
//! in the CRM with its attribution, enrolled in the intended flow, its welcome email delivered by
//! the ESP — and always cleaned up.
//!
//! Each step is timed and names the stage it evidences (a lead that never reaches the CRM is a
//! CRM problem, not an automation one); the coordinator attributes the steps to those stages.
//!
//! Identity: `canary+<run-id>@<domain>`, name `Funnelgate Canary`, UTM set
//! `utm_source=funnelgate&utm_medium=canary&utm_campaign=<run-id>`, and the tag [`TAG`] in the
//! automation tool, so reports exclude it and cleanup finds it.
//!
//! Cleanup runs whatever happens: the journey runs in its own task, its steps end before the
//! probe's deadline minus the cleanup budget, and cleanup (bounded) runs after them even when the
//! runner stops waiting. Leads left by a crashed run are found by their tag (automation) and
//! domain (CRM) at the start of the next run, removed, and reported as a WARN.

pub mod journey;
pub mod mailgun;

pub use journey::{JourneyParams, JourneyProbe, KIND_DOC, register};

/// The tag (Mautic tag, Marketo/HubSpot field value) that marks canary leads, so reports exclude
/// them and cleanup finds them.
pub const TAG: &str = "funnelgate-canary";

/// `utm_source` of every canary lead.
pub const UTM_SOURCE: &str = "funnelgate";
/// `utm_medium` of every canary lead.
pub const UTM_MEDIUM: &str = "canary";
