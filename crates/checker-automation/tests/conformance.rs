//! Every automation kind passes the SDK's conformance checks, publishes its default thresholds,
//! and is registered beside the generic kinds.

#![allow(clippy::unwrap_used)]

use funnelgate_checker_automation::{kind_docs, registry};
use funnelgate_checker_sdk::conformance::check_factory;
use serde_json::{Value, json};

/// Valid params per kind.
fn valid_params(kind: &str) -> Value {
    let base = if kind.starts_with("mautic.") {
        "https://mautic.example.com"
    } else if kind.starts_with("hubspot.") {
        "https://api.hubapi.com"
    } else {
        "https://123-ABC-456.mktorest.com"
    };
    let mut p = json!({ "base_url": base });
    let suffix = kind.split_once('.').unwrap().1;
    match suffix {
        "lead_nurture_active" => p["required"] = json!(["Welcome"]),
        "flow_errors" if kind.starts_with("marketo.") => {
            p["error_activity_types"] = json!(["Send Alert Failed"])
        }
        "unsubscribe_roundtrip" => p["email"] = json!("unsubscribed@example.com"),
        "email_assets_valid" if kind.starts_with("marketo.") => p["email_ids"] = json!([1, 2]),
        "form_mapping" if kind.starts_with("hubspot.") => {
            p["form_id"] = json!("3b3c9e7a-2f9e-4d7a-9a51-1f0e0b3f6a11")
        }
        "form_mapping" => p["form_id"] = json!(7),
        _ => {}
    }
    p
}

#[test]
fn every_automation_kind_is_conformant() {
    let r = registry();
    let docs = kind_docs();
    assert!(docs.len() >= 15);
    for d in docs {
        let f = r
            .get(d.kind)
            .unwrap_or_else(|| panic!("`{}` not registered", d.kind));
        check_factory(f.as_ref(), valid_params(d.kind));
        assert!(f.default_thresholds().is_some(), "{}", d.kind);
        assert_eq!(f.vendors(), vec![d.vendor.to_string()]);
    }
}

#[test]
fn bad_values_are_rejected_naming_the_field() {
    let r = registry();
    let f = r.get("mautic.lead_nurture_active").unwrap();
    let e = f
        .build(&json!({"base_url": "https://m.example.com", "required": []}))
        .err()
        .unwrap();
    assert!(e.message.contains("`required`"), "{e}");
    let e = f
        .build(&json!({"base_url": "https://u:p@m.example.com", "required": ["x"]}))
        .err()
        .unwrap();
    assert!(e.message.contains("credentials do not belong"), "{e}");
    let f = r.get("mautic.unsubscribe_roundtrip").unwrap();
    let e = f
        .build(&json!({"base_url": "https://m.example.com", "email": "nope"}))
        .err()
        .unwrap();
    assert!(e.message.contains("not an email address"), "{e}");
}
