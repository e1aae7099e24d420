//! The analytics stage checker: are the web-analytics, goals and attribution parts of the funnel
//! ready for paid traffic?
//!
//! - `wa.tag_presence` (W5): every landing page loads the expected tags, once, actively, in the
//!   page as served (static mode, html5ever) or after scripts ran (rendered mode, headless
//!   Chromium over the DevTools protocol).
//! - `wa.paid_channel_tracking` (W6): ad destination URLs keep their click IDs and UTM
//!   parameters through every redirect.
//!
//! Like every plugin it exposes [`STAGE`], [`NAME`], [`register`] and [`registry`] (see the
//! `funnelgate-checker-sdk` crate docs). It depends on the SDK and core only, never on another
//! plugin or on the coordinator.

pub mod audit;
pub mod browser;
pub mod detect;
pub mod fetch;
pub mod paid;
pub mod sitemap;
pub mod tags;
pub mod verdict;

use funnelgate_checker_sdk::ProbeRegistry;

/// The stage this checker serves by default.
pub const STAGE: &str = "analytics";

/// The checker's name, reported by `Describe`.
pub const NAME: &str = "funnelgate-checker-analytics";

/// Register the analytics probe kinds.
pub fn register(registry: &mut ProbeRegistry) {
    registry.register(tags::factory()).register(paid::factory());
}

/// The generic probe kinds plus this plugin's own.
pub fn registry() -> ProbeRegistry {
    let mut registry = funnelgate_checker_sdk::generic_registry();
    register(&mut registry);
    registry
}
