//! Every analytics probe kind passes the SDK's conformance checks, is registered, rejects bad
//! values naming the field, and has a reference page documenting every param.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use funnelgate_checker_sdk::conformance::check_factory;
use serde_json::{Value, json};

/// Valid params per analytics kind.
fn valid_params() -> Vec<(&'static str, Value)> {
    vec![
        (
            "wa.tag_presence",
            json!({"urls": ["https://www.example.com/lp"], "sitemaps": ["https://www.example.com/sitemap.xml"],
                   "expect": {"ga4": ["G-ABCDEF1234"], "gtm": ["GTM-ABC1234"], "google_ads": ["AW-123456789/label"],
                              "plausible": ["example.com"], "matomo": ["3"], "segment": ["abcDEF123"],
                              "meta_pixel": ["1234567890"], "linkedin_insight": ["123456"], "hubspot": ["987654"]},
                   "mode": "rendered", "require_consent_mode_v2": true, "max_pages": 100, "concurrency": 2,
                   "page_timeout_ms": 5000, "max_page_bytes": 1048576, "max_redirects": 5,
                   "respect_robots_txt": false, "settle_ms": 500, "chromium_path": "/usr/bin/chromium"}),
        ),
        (
            "wa.paid_channel_tracking",
            json!({"urls": ["https://www.example.com/lp?utm_source=google&gclid=x"], "keep_params": ["utm_*", "gclid"],
                   "mode": "static", "max_redirects": 5, "page_timeout_ms": 5000, "max_page_bytes": 1048576,
                   "respect_robots_txt": true, "settle_ms": 500, "chromium_path": "/usr/bin/chromium",
                   "expect": {"ga4": ["G-ABCDEF1234"]}}),
        ),
    ]
}

#[test]
fn every_analytics_kind_is_conformant() {
    let registry = funnelgate_checker_analytics::registry();
    for (kind, params) in valid_params() {
        let factory = registry
            .get(kind)
            .unwrap_or_else(|| panic!("kind `{kind}` is not registered"));
        check_factory(factory.as_ref(), params);
    }
}

#[test]
fn the_registry_has_the_generic_and_analytics_kinds() {
    let registry = funnelgate_checker_analytics::registry();
    for kind in ["http", "sql", "prometheus"] {
        assert!(
            registry.get(kind).is_some(),
            "generic kind `{kind}` missing"
        );
    }
    let own: Vec<&str> = registry
        .kinds()
        .map(|f| f.kind())
        .filter(|k| !["http", "sql", "prometheus"].contains(k))
        .collect();
    let expected: Vec<&str> = valid_params().iter().map(|(k, _)| *k).collect();
    assert_eq!(
        own.len(),
        expected.len(),
        "a kind has no conformance params: {own:?}"
    );
    for k in &expected {
        assert!(own.contains(k), "`{k}` not registered: {own:?}");
    }
    assert_eq!(funnelgate_checker_analytics::STAGE, "analytics");
}

#[test]
fn bad_values_are_params_errors_naming_the_field() {
    let registry = funnelgate_checker_analytics::registry();
    let cases = [
        ("wa.tag_presence", json!({})),
        ("wa.tag_presence", json!({"urls": ["ftp://x.example/"]})),
        ("wa.tag_presence", json!({"urls": ["not a url"]})),
        ("wa.tag_presence", json!({"sitemaps": ["/relative.xml"]})),
        (
            "wa.tag_presence",
            json!({"urls": ["https://x.example/"], "expect": {"ga4": ["UA-1-1"]}}),
        ),
        (
            "wa.tag_presence",
            json!({"urls": ["https://x.example/"], "expect": {"gtm": ["G-XXXXXX"]}}),
        ),
        (
            "wa.tag_presence",
            json!({"urls": ["https://x.example/"], "expect": {"matomo": ["abc"]}}),
        ),
        (
            "wa.tag_presence",
            json!({"urls": ["https://x.example/"], "concurrency": 0}),
        ),
        (
            "wa.tag_presence",
            json!({"urls": ["https://x.example/"], "max_pages": 0}),
        ),
        (
            "wa.tag_presence",
            json!({"urls": ["https://x.example/"], "page_timeout_ms": 1}),
        ),
        (
            "wa.tag_presence",
            json!({"urls": ["https://x.example/"], "max_page_bytes": 10}),
        ),
        ("wa.paid_channel_tracking", json!({"urls": []})),
        (
            "wa.paid_channel_tracking",
            json!({"urls": ["https://x.example/"], "keep_params": [" "]}),
        ),
        (
            "wa.paid_channel_tracking",
            json!({"urls": ["https://x.example/"], "max_redirects": 500}),
        ),
    ];
    for (kind, params) in cases {
        let err = registry
            .build(kind, &params)
            .err()
            .unwrap_or_else(|| panic!("{kind} {params} built"));
        assert_eq!(
            err.kind,
            funnelgate_checker_sdk::ProbeErrorKind::InvalidParams,
            "{kind} {params}: {err}"
        );
        assert!(
            err.message.starts_with('`'),
            "the message names the field: {err}"
        );
    }
}

#[test]
fn every_analytics_kind_has_a_reference_page_naming_its_params() {
    let registry = funnelgate_checker_analytics::registry();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/probes/analytics");
    let index =
        std::fs::read_to_string(docs.join("README.md")).expect("docs/probes/analytics/README.md");
    for (kind, _) in valid_params() {
        let page = docs.join(format!("{kind}.md"));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            text.starts_with(&format!("# Probe kind `{kind}`")),
            "{} has the wrong title",
            page.display()
        );
        assert!(
            index.contains(&format!("`{kind}`")),
            "README.md does not list `{kind}`"
        );
        let schema = registry.get(kind).unwrap().params_schema();
        for param in schema["properties"].as_object().unwrap().keys() {
            assert!(
                text.contains(&format!("`{param}`")),
                "{} does not document the param `{param}`",
                page.display()
            );
        }
        // The expectation keys (a nested struct) are documented too.
        if schema["properties"].get("expect").is_some() {
            for v in [
                "ga4",
                "gtm",
                "google_ads",
                "plausible",
                "matomo",
                "segment",
                "meta_pixel",
                "linkedin_insight",
                "hubspot",
            ] {
                assert!(
                    text.contains(&format!("`{v}`")),
                    "{} does not document `expect.{v}`",
                    page.display()
                );
            }
        }
    }
}
