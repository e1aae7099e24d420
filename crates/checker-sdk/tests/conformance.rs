//! Every generic kind passes the conformance harness, and plugins see the same registry.

#![allow(clippy::unwrap_used)]

use funnelgate_checker_sdk::conformance::check_factory;
use funnelgate_checker_sdk::generic_registry;
use serde_json::json;

fn check(kind: &str, valid: serde_json::Value) {
    let registry = generic_registry();
    let factory = registry
        .get(kind)
        .unwrap_or_else(|| panic!("kind `{kind}` registered"));
    check_factory(factory.as_ref(), valid);
}

#[test]
fn http_conforms() {
    check("http", json!({"url": "https://example.com/health"}));
    check(
        "http",
        json!({
            "url": "https://example.com/api",
            "method": "POST",
            "headers": {"accept": "application/json"},
            "header_secret": "x-api-key",
            "body": "{}",
            "measure": "json_pointer",
            "json_pointer": "/data/depth",
            "expect_status": [200, 202],
            "follow_redirects": false
        }),
    );
    check(
        "http",
        json!({"url": "http://x.test/", "measure": "body_contains", "contains": "Sign up", "bearer_secret": true}),
    );
}

#[test]
fn sql_conforms() {
    check(
        "sql",
        json!({"query": "SELECT 1", "url": "postgres://reader@db:5432/crm", "unit": "percent", "window": "30d"}),
    );
    check(
        "sql",
        json!({"query": "SELECT 1", "sqlite_path": "examples/quickstart/warehouse.db"}),
    );
    check("sql", json!({"query": "SELECT 1"}));
}

#[test]
fn prometheus_conforms() {
    check(
        "prometheus",
        json!({"url": "http://prometheus:9090", "query": "up", "time": "2026-01-01T00:00:00Z", "aggregate": "sum", "bearer_secret": true, "unit": "count"}),
    );
    check(
        "prometheus",
        json!({"url": "http://prometheus:9090/prom", "query": "sum(up)"}),
    );
}

#[test]
fn schemas_document_every_field_and_reject_unknown_fields() {
    for f in generic_registry().kinds() {
        let schema = f.params_schema();
        assert_eq!(
            schema["additionalProperties"],
            json!(false),
            "kind `{}`: {schema}",
            f.kind()
        );
        assert!(
            !f.vendors().is_empty() || f.kind() == "http",
            "kind `{}` lists its back ends",
            f.kind()
        );
    }
}
