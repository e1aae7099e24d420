//! Every vendor kind passes the SDK's conformance rules (params round-trip, a documented object
//! schema, garbage rejected as invalid params and never a panic).

use funnelgate_checker_sdk::conformance::check_factory;
use serde_json::{Value, json};

use crate::support::registry;

/// Valid params per kind; the test fails when a registered kind is missing here.
fn valid_params() -> Vec<(&'static str, Value)> {
    vec![
        (
            "sendgrid.domain_authentication",
            json!({"domain": "example.com", "validate": false, "on_behalf_of": "sub"}),
        ),
        (
            "sendgrid.bounce_rate",
            json!({"window_days": 14, "warn_at_percent": 1.5, "fail_at_percent": 4}),
        ),
        (
            "sendgrid.complaint_rate",
            json!({"base_url": "https://api.eu.sendgrid.com"}),
        ),
        (
            "sendgrid.suppression_growth",
            json!({"window_days": 3, "fail_at_percent": 3}),
        ),
        (
            "sendgrid.event_webhook",
            json!({"required_events": ["bounce", "dropped"], "url_prefix": "https://h.example/", "require_signed": true}),
        ),
        (
            "ses.account_standing",
            json!({"region": "eu-west-1", "allow_sandbox": true, "quota_warn_percent": 90}),
        ),
        (
            "ses.identity_dkim",
            json!({"region": "us-east-1", "identity": "example.com"}),
        ),
        (
            "ses.event_destinations",
            json!({"region": "eu-west-1", "configuration_set": "marketing", "required_events": ["bounce", "complaint", "delivery"]}),
        ),
        (
            "ses.bounce_rate",
            json!({"region": "us-east-1", "email_identity": "example.com", "window_days": 30}),
        ),
        (
            "ses.complaint_rate",
            json!({"region": "us-east-1", "configuration_set": "marketing", "endpoint": "https://email.us-east-1.amazonaws.com"}),
        ),
        (
            "mailgun.domain_verification",
            json!({"domain": "mg.example.com", "base_url": "https://api.eu.mailgun.net"}),
        ),
        (
            "mailgun.bounce_rate",
            json!({"domain": "mg.example.com", "window_days": 30}),
        ),
        (
            "mailgun.complaint_rate",
            json!({"domain": "mg.example.com", "warn_at_percent": 0.05}),
        ),
        (
            "mailgun.webhooks",
            json!({"domain": "mg.example.com", "required_events": ["permanent_fail"], "url_prefix": "https://h.example/"}),
        ),
        (
            "postmark.domain_verification",
            json!({"domain": "example.com", "require_return_path": false}),
        ),
        (
            "postmark.bounce_rate",
            json!({"message_stream": "broadcast", "tag": "welcome"}),
        ),
        ("postmark.complaint_rate", json!({"window_days": 30})),
    ]
}

#[test]
fn every_vendor_kind_passes_conformance() {
    let r = registry();
    let table = valid_params();
    let mut registered: Vec<&str> = r.kinds().map(|f| f.kind()).collect();
    registered.sort_unstable();
    let mut listed: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
    listed.sort_unstable();
    assert_eq!(
        registered, listed,
        "the conformance table must list exactly the registered vendor kinds"
    );
    for (kind, params) in table {
        let factory = r.get(kind).expect("registered");
        check_factory(factory.as_ref(), params);
        assert!(!factory.vendors().is_empty(), "{kind}: names no vendor");
    }
}

#[test]
fn defaults_are_filled_in_and_documented() {
    let r = registry();
    let n = r
        .get("sendgrid.bounce_rate")
        .unwrap()
        .normalize_params(&json!({}))
        .unwrap();
    assert_eq!(
        n,
        json!({"window_days": 7, "warn_at_percent": 2.0, "fail_at_percent": 5.0, "base_url": "https://api.sendgrid.com"})
    );
    let n = r
        .get("ses.complaint_rate")
        .unwrap()
        .normalize_params(&json!({"region": "eu-west-1"}))
        .unwrap();
    assert_eq!(n["warn_at_percent"], json!(0.1));
    assert_eq!(n["fail_at_percent"], json!(0.3));
    let n = r
        .get("sendgrid.suppression_growth")
        .unwrap()
        .normalize_params(&json!({}))
        .unwrap();
    assert_eq!(n["fail_at_percent"], Value::Null);
    // Required params are required.
    assert!(
        r.get("mailgun.bounce_rate")
            .unwrap()
            .build(&json!({}))
            .is_err()
    );
    assert!(
        r.get("ses.identity_dkim")
            .unwrap()
            .build(&json!({"region": "eu-west-1"}))
            .is_err()
    );
    assert!(
        r.get("ses.account_standing")
            .unwrap()
            .build(&json!({"region": "EU WEST"}))
            .is_err()
    );
}
