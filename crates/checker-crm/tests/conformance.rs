//! Every CRM kind passes the SDK's conformance checks (params round-trip, schema published with
//! every field documented, garbage rejected as invalid params and never a panic), and the kind
//! table, the registry and the default thresholds agree.

#![allow(clippy::unwrap_used)]

mod support;

use funnelgate_checker_crm::{Measure, default_thresholds, kind_docs, registry};
use funnelgate_checker_sdk::conformance::check_factory;
use serde_json::{Value, json};

/// Valid params for a kind: its defaults filled in, plus what it needs to build.
fn valid_params(kind: &str) -> Value {
    let reg = support::registry();
    let f = reg.get(kind).unwrap();
    let seed = if kind.starts_with("warehouse.") {
        json!({ "url": "postgres://reader@db.internal:5432/crm", "tables": { "contacts": "crm.contacts" }, "columns": { "contacts.created_at": "createdate" } })
    } else if kind == "pipedrive.owner_assignment" {
        json!({ "unassigned_owner_ids": ["1"] })
    } else if kind.starts_with("salesforce.") {
        json!({ "instance_url": "https://acme.my.salesforce.com" })
    } else {
        json!({})
    };
    f.normalize_params(&seed)
        .unwrap_or_else(|e| panic!("{kind}: {e}"))
}

#[test]
fn every_crm_kind_conforms() {
    let reg = support::registry();
    let mut n = 0;
    for f in reg.kinds() {
        check_factory(f.as_ref(), valid_params(f.kind()));
        n += 1;
    }
    assert_eq!(n, kind_docs().len());
}

/// Config files are TOML, which has no null: normalised params must not need one.
#[test]
fn normalised_params_are_expressible_in_toml() {
    fn no_null(v: &Value, path: &str) {
        match v {
            Value::Null => panic!("{path} normalises to null"),
            Value::Array(a) => a.iter().for_each(|x| no_null(x, path)),
            Value::Object(o) => o
                .iter()
                .for_each(|(k, x)| no_null(x, &format!("{path}.{k}"))),
            _ => {}
        }
    }
    for d in kind_docs() {
        no_null(&valid_params(d.kind), d.kind);
    }
}

#[test]
fn kind_table_registry_and_thresholds_agree() {
    let reg = support::registry();
    for doc in kind_docs() {
        let f = reg
            .get(doc.kind)
            .unwrap_or_else(|| panic!("{} documented but not registered", doc.kind));
        assert_eq!(doc.kind, format!("{}.{}", doc.vendor, doc.measure.suffix()));
        assert_eq!(f.unit(), doc.measure.unit(), "{}", doc.kind);
        assert_eq!(f.description(), doc.measure.value_meaning());
        assert!(!f.vendors().is_empty());
        assert_eq!(
            default_thresholds(doc.kind),
            Some(doc.measure.default_thresholds())
        );
        assert!(!doc.permissions.is_empty() && !doc.calls.is_empty() && !doc.notes.is_empty());
    }
    // Every vendor × measure is either registered or listed as an omission with a reason.
    let vendors: std::collections::BTreeSet<&str> = kind_docs()
        .iter()
        .map(|d| d.vendor)
        .chain(funnelgate_checker_crm::omissions().iter().map(|o| o.vendor))
        .collect();
    for vendor in vendors {
        for m in Measure::ALL {
            let kind = format!("{vendor}.{}", m.suffix());
            let omitted = funnelgate_checker_crm::omissions()
                .iter()
                .any(|o| o.vendor == vendor && o.measure == m);
            assert!(
                reg.get(&kind).is_some() ^ omitted,
                "{kind}: registered xor listed as omitted"
            );
        }
    }
}

#[test]
fn full_registry_has_generic_and_crm_kinds_and_rejects_unknown_ones_by_name() {
    let reg = registry();
    for k in [
        "sql",
        "http",
        "prometheus",
        "hubspot.duplicates",
        "warehouse.speed_to_lead",
    ] {
        assert!(reg.get(k).is_some(), "{k}");
    }
    let omitted = funnelgate_checker_crm::omissions();
    if let Some(o) = omitted.first() {
        let kind = format!("{}.{}", o.vendor, o.measure.suffix());
        let e = reg.build(&kind, &json!({})).err().unwrap();
        assert!(
            e.message.contains("unknown probe kind")
                && e.message.contains("hubspot.auth_and_quota"),
            "{e}"
        );
    }
}

#[test]
fn schemas_describe_params_for_describe() {
    let reg = support::registry();
    let f = reg.get("hubspot.lead_to_revenue_linkage").unwrap();
    let schema = f.params_schema();
    let props = schema["properties"].as_object().unwrap();
    for field in [
        "base_url",
        "daily_reserve_percent",
        "window_days",
        "linkage",
        "max_deals",
    ] {
        assert!(props.contains_key(field), "{field} missing from {schema}");
    }
    assert_eq!(schema["additionalProperties"], json!(false));
}
