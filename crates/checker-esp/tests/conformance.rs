//! Every esp probe kind passes the SDK's conformance checks, is registered, and has a reference
//! page.

#![allow(clippy::unwrap_used)]
use funnelgate_checker_sdk::conformance::check_factory;
use serde_json::{Value, json};

/// Valid params per esp kind (vendor kinds are covered by their own tests).
fn valid_params() -> Vec<(&'static str, Value)> {
    vec![
        (
            "dns.spf",
            json!({"domain": "example.com", "nameservers": ["127.0.0.1:5353"]}),
        ),
        ("dns.dmarc", json!({"domain": "example.com"})),
        (
            "dns.dkim",
            json!({"domain": "example.com", "selectors": ["s1", "s2"], "nameservers": ["::1"]}),
        ),
        (
            "dns.dkim_discovery",
            json!({"domain": "example.com", "extra_selectors": ["mycorp"]}),
        ),
        (
            "dns.mx",
            json!({"domain": "example.com", "allow_null_mx": false}),
        ),
        (
            "dns.mta_sts",
            json!({"domain": "example.com", "fetch_policy": true, "policy_url": "https://mta-sts.example.com/.well-known/mta-sts.txt"}),
        ),
        ("dns.tls_rpt", json!({"domain": "example.com"})),
        (
            "dns.bimi",
            json!({"domain": "example.com", "selector": "default"}),
        ),
        (
            "dns.blocklist_ip",
            json!({"ips": ["192.0.2.1", "2001:db8::1"], "zones": ["zen.spamhaus.org"], "test_lists": true}),
        ),
        (
            "dns.blocklist_domain",
            json!({"domains": ["example.com"], "zones": ["dbl.spamhaus.org"], "test_lists": false}),
        ),
        (
            "dns.ptr",
            json!({"ips": ["192.0.2.1"], "nameservers": ["127.0.0.1:5353"]}),
        ),
        (
            "smtp.starttls",
            json!({"domain": "example.com", "hosts": ["mx.example.com:2525"], "port": 25, "ehlo_name": "check.example.com",
                   "ca_file": "/etc/ssl/certs/ca.pem", "tls_server_name": "mx.example.com", "require_starttls": true}),
        ),
        (
            "email.one_click_unsubscribe",
            json!({"eml_path": "/var/lib/funnelgate/sample.eml", "require_dkim_coverage": true}),
        ),
    ]
}

#[test]
fn every_esp_kind_is_conformant() {
    let registry = funnelgate_checker_esp::registry();
    for (kind, params) in valid_params() {
        let factory = registry
            .get(kind)
            .unwrap_or_else(|| panic!("kind `{kind}` is not registered"));
        check_factory(factory.as_ref(), params);
    }
}

#[test]
fn the_registry_has_the_generic_and_esp_kinds() {
    let registry = funnelgate_checker_esp::registry();
    for kind in ["http", "sql", "prometheus"] {
        assert!(
            registry.get(kind).is_some(),
            "generic kind `{kind}` missing"
        );
    }
    let esp: Vec<&str> = registry
        .kinds()
        .map(|f| f.kind())
        .filter(|k| k.starts_with("dns.") || k.starts_with("smtp.") || k.starts_with("email."))
        .collect();
    let expected: Vec<&str> = valid_params().iter().map(|(k, _)| *k).collect();
    for k in &expected {
        assert!(esp.contains(k), "`{k}` not registered: {esp:?}");
    }
    assert_eq!(
        esp.len(),
        expected.len(),
        "a registered esp kind has no conformance params: {esp:?}"
    );
    assert_eq!(funnelgate_checker_esp::STAGE, "esp");
}

#[test]
fn bad_values_are_params_errors() {
    let registry = funnelgate_checker_esp::registry();
    let cases = [
        ("dns.spf", json!({"domain": "not a domain"})),
        (
            "dns.spf",
            json!({"domain": "example.com", "nameservers": ["dns.google"]}),
        ),
        (
            "dns.dkim",
            json!({"domain": "example.com", "selectors": ["bad selector"]}),
        ),
        (
            "dns.mta_sts",
            json!({"domain": "example.com", "policy_url": "ftp://x"}),
        ),
        ("dns.blocklist_ip", json!({"ips": ["not-an-ip"]})),
        ("dns.blocklist_ip", json!({"ips": []})),
        (
            "dns.blocklist_ip",
            json!({"ips": ["192.0.2.1"], "zones": []}),
        ),
        ("dns.blocklist_domain", json!({"domains": ["a b"]})),
        ("dns.ptr", json!({"ips": ["300.1.1.1"]})),
        ("smtp.starttls", json!({})),
        ("email.one_click_unsubscribe", json!({"eml_path": " "})),
        ("smtp.starttls", json!({"hosts": ["mx:notaport"]})),
        (
            "smtp.starttls",
            json!({"domain": "example.com", "ehlo_name": "two words"}),
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
fn every_esp_kind_has_a_reference_page_naming_its_params() {
    let registry = funnelgate_checker_esp::registry();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/probes/esp");
    let index = std::fs::read_to_string(docs.join("README.md")).expect("docs/probes/esp/README.md");
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
            "docs/probes/esp/README.md does not list `{kind}`"
        );
        let schema = registry.get(kind).unwrap().params_schema();
        for param in schema["properties"].as_object().unwrap().keys() {
            assert!(
                text.contains(&format!("`{param}`")),
                "{} does not document the param `{param}`",
                page.display()
            );
        }
    }
}
