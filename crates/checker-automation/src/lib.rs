//! The automation stage checker plugin: marketing automation joins the CRM to email (scoring,
//! nurture flows, sync), so this stage proves the machinery between a new lead and its first
//! email works.
//!
//! One probe kind per (vendor, measure) — `mautic.*`, `marketo.*` and `hubspot.*` — for the
//! measures A1–A10 of the probe catalogue (see [`measure::Measure`]); a kind a vendor cannot
//! answer is not registered (see [`omissions`]). The canary lead (`canary.lead_journey`, A4 and
//! A6) walks a tagged test lead through form → CRM → automation → email → cleanup.
//!
//! Layers: [`evaluate`] is pure (facts in, a [`funnelgate_core::Measurement`] with a marketer's
//! message out); each vendor module fetches through [`http`], which maps every failure through
//! the SDK's `vendor_http`.
//!
//! Like every plugin it exposes [`STAGE`], [`NAME`], [`register`] and [`registry`]. It depends on
//! the SDK and core only, never on another plugin or on the coordinator.

pub mod canary;
pub mod evaluate;
pub mod http;
pub mod hubspot;
pub mod kinds;
pub mod marketo;
pub mod mautic;
pub mod measure;
pub mod params;
pub mod time;

use funnelgate_checker_sdk::ProbeRegistry;

pub use kinds::{KindDoc, Omission};
pub use measure::Measure;

/// The stage this checker serves by default.
pub const STAGE: &str = "automation";

/// The checker's name, reported by `Describe`.
pub const NAME: &str = "funnelgate-checker-automation";

/// Vendor prefixes of the kinds this crate defines.
pub const VENDORS: [&str; 3] = ["mautic", "marketo", "hubspot"];

/// Reference facts for every kind this crate registers.
pub fn kind_docs() -> Vec<KindDoc> {
    let mut all = Vec::new();
    all.extend(mautic::KINDS);
    all.extend(marketo::KINDS);
    all.extend(hubspot::KINDS);
    all
}

/// Measures a vendor's API cannot answer, with the reason.
pub fn omissions() -> Vec<Omission> {
    let mut all = Vec::new();
    all.extend(mautic::OMISSIONS);
    all.extend(marketo::OMISSIONS);
    all.extend(hubspot::OMISSIONS);
    all
}

/// Register this plugin's own probe kinds.
pub fn register(registry: &mut ProbeRegistry) {
    mautic::register(registry);
    marketo::register(registry);
    hubspot::register(registry);
}

/// The generic probe kinds plus this plugin's own.
pub fn registry() -> ProbeRegistry {
    let mut registry = funnelgate_checker_sdk::generic_registry();
    register(&mut registry);
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_generic_and_vendor_kinds() {
        let r = registry();
        for kind in ["http", "prometheus", "sql"] {
            assert!(r.get(kind).is_some(), "{kind}");
        }
        for d in kind_docs() {
            assert!(r.get(d.kind).is_some(), "{} not registered", d.kind);
            assert!(d.kind.starts_with(d.vendor));
        }
        assert_eq!(STAGE, "automation");
        assert!(NAME.ends_with(STAGE));
    }
}
