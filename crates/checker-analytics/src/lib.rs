//! The analytics stage checker plugin: the web-analytics, goals and attribution stage (pages, GA4, Plausible, …).
//!
//! It has no vendor probe kinds yet: vendor probes come in later issues. Until then
//! [`register`] adds nothing and [`registry`] serves the generic kinds every checker offers
//! (`http`, `sql`, `prometheus`), which already cover much of the stage (e.g. a
//! `prometheus` query on worker queues, an `http` check of a form endpoint, a `sql` query on
//! the tool's database replica).
//!
//! Like every plugin it exposes [`STAGE`], [`NAME`], [`register`] and [`registry`] (see the
//! `funnelgate-checker-sdk` crate docs). It depends on the SDK and core only, never on another
//! plugin or on the coordinator.

use funnelgate_checker_sdk::ProbeRegistry;

/// The stage this checker serves by default.
pub const STAGE: &str = "analytics";

/// The checker's name, reported by `Describe`.
pub const NAME: &str = "funnelgate-checker-analytics";

/// Register this plugin's own probe kinds: none yet (vendor probes come in later issues).
pub fn register(registry: &mut ProbeRegistry) {
    let _ = registry;
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
    fn serves_the_generic_kinds() {
        let r = registry();
        let kinds: Vec<&str> = r.kinds().map(|f| f.kind()).collect();
        assert_eq!(kinds, ["http", "prometheus", "sql"]);
        assert_eq!(STAGE, "analytics");
        assert!(NAME.ends_with(STAGE));
    }
}
