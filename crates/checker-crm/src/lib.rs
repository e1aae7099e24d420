//! The crm stage checker plugin: the bottom of the funnel, closest to the sale, so the stage the
//! gate leans on most.
//!
//! One probe kind per (vendor, measure) — `hubspot.*`, `salesforce.*`, `pipedrive.*` and
//! `warehouse.*` (SQL over documented `crm_*` tables in PostgreSQL, MySQL/MariaDB or SQLite) —
//! for the measures C1–C10 of the probe catalogue (see [`measure::Measure`]). A kind a vendor
//! cannot answer is simply not registered, so `Describe` lists exactly what each vendor can do
//! and the coordinator rejects an unsupported combination by name.
//!
//! Layers: [`evaluate`] is pure (counts and records in, a [`funnelgate_core::Measurement`] with a
//! marketer's message out); each vendor module fetches through [`http`] (which maps every
//! failure through the SDK's `vendor_http`) and hands its data to `evaluate`.
//!
//! Depends on the core model and the checker SDK only: never on the coordinator or another
//! checker plugin.

pub mod evaluate;
pub mod http;
pub mod hubspot;
pub mod kinds;
pub mod measure;
pub mod params;
pub mod pipedrive;
pub mod salesforce;
pub mod time;
pub mod warehouse;

use funnelgate_checker_sdk::ProbeRegistry;

pub use kinds::{KindDoc, Omission};
pub use measure::{Measure, default_thresholds};

/// The stage this checker serves.
pub const STAGE: &str = "crm";
/// The checker's name, as advertised in `Describe`.
pub const NAME: &str = "funnelgate-checker-crm";
/// Vendor prefixes of the kinds this crate defines.
pub const VENDORS: [&str; 4] = ["hubspot", "salesforce", "pipedrive", "warehouse"];

/// Reference facts for every CRM kind this crate registers.
pub fn kind_docs() -> Vec<KindDoc> {
    let mut all = Vec::new();
    all.extend(hubspot::KINDS);
    all.extend(salesforce::KINDS);
    all.extend(pipedrive::KINDS);
    all.extend(warehouse::KINDS);
    all
}

/// Measures a vendor's API cannot answer, with the reason (also in `docs/probes/crm/README.md`).
pub fn omissions() -> Vec<Omission> {
    let mut all = Vec::new();
    all.extend(pipedrive::OMISSIONS);
    all.extend(warehouse::OMISSIONS);
    all
}

/// Register the CRM kinds.
pub fn register(registry: &mut ProbeRegistry) {
    hubspot::register(registry);
    salesforce::register(registry);
    pipedrive::register(registry);
    warehouse::register(registry);
}

/// The checker's full registry: the SDK's generic kinds (`http`, `sql`, `prometheus`) plus the
/// CRM kinds.
pub fn registry() -> ProbeRegistry {
    let mut r = funnelgate_checker_sdk::generic_registry();
    register(&mut r);
    r
}
