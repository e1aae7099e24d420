//! The esp stage checker: is the email service provider layer of the funnel ready to send?
//!
//! Vendor-independent probes built on DNS and SMTP: email authentication of the sending domains
//! (SPF, DKIM, DMARC, MX, MTA-STS, TLS-RPT, BIMI), sender standing (DNS blocklists, PTR and
//! forward-confirmed reverse DNS of the sending IPs, DKIM selector discovery), STARTTLS of the
//! domain's mail servers, and RFC 8058 one-click unsubscribe on a sample message. Semantics
//! follow the RFCs and, where they agree, checkdmarc; the deliberate differences are listed in
//! `docs/deliverability-disagreements.md`.
//!
//! Depends on the checker SDK and the core model only: never on the coordinator or another
//! checker plugin.

pub mod bimi;
pub mod blocklist;
pub mod dkim;
pub mod dmarc;
pub mod dns;
pub mod findings;
pub mod kinds;
pub mod mta_sts;
pub mod mx;
pub mod ptr;
pub mod smtp;
pub mod spf;
pub mod spf_eval;
pub mod unsubscribe;
pub mod vendors;

use funnelgate_checker_sdk::ProbeRegistry;

/// The stage this checker serves.
pub const STAGE: &str = "esp";
/// The checker's name, as advertised in `Describe`.
pub const NAME: &str = "funnelgate-checker-esp";

/// Register the esp probe kinds.
pub fn register(registry: &mut ProbeRegistry) {
    registry
        .register(kinds::spf_factory())
        .register(kinds::dmarc_factory())
        .register(kinds::dkim_factory())
        .register(kinds::dkim_discovery_factory())
        .register(kinds::mx_factory())
        .register(kinds::mta_sts_factory())
        .register(kinds::tls_rpt_factory())
        .register(kinds::bimi_factory())
        .register(blocklist::ip_factory())
        .register(blocklist::domain_factory())
        .register(ptr::factory())
        .register(smtp::factory())
        .register(unsubscribe::factory());
    vendors::register(registry);
}

/// The generic probe kinds plus the esp ones: what `funnelgate checker esp` serves.
pub fn registry() -> ProbeRegistry {
    let mut r = funnelgate_checker_sdk::generic_registry();
    register(&mut r);
    r
}
