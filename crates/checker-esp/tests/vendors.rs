//! Contract tests of the ESP vendor adapters (SendGrid, Amazon SES, Mailgun, Postmark): each
//! adapter runs against a local server whose requests and replies are validated against the
//! vendor's own published API spec (`<repo>/../shared/vendor-specs`, or `FUNNELGATE_VENDOR_SPECS`);
//! Postmark, which publishes no licensed spec, against the shapes written down in its test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "vendors/support/mod.rs"]
mod support;

/// The nsd the DNS tests use (for `dns.spf`'s `ips_from`).
#[path = "common/mod.rs"]
mod common;

#[path = "vendors/conformance.rs"]
mod conformance;
#[path = "vendors/harness.rs"]
mod harness;
#[path = "vendors/mailgun.rs"]
mod mailgun;
#[path = "vendors/postmark.rs"]
mod postmark;
#[path = "vendors/sendgrid.rs"]
mod sendgrid;
#[path = "vendors/ses.rs"]
mod ses;
