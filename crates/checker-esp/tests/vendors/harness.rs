//! The contract validator itself must catch what it is there to catch: these tests feed it
//! requests, replies and field paths the vendors' specs do not allow.

use serde_json::json;

use crate::support::spec::{RequestFacts, leaf_paths, split_path};
use crate::support::{mailgun_spec, sendgrid_spec, ses_spec};

fn get(path: &str, query: &[(&str, &str)]) -> RequestFacts {
    RequestFacts {
        method: "GET".into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        headers: vec![("authorization".into(), "Bearer x".into())],
        body: Vec::new(),
    }
}

fn post(path: &str, body: serde_json::Value) -> RequestFacts {
    RequestFacts {
        method: "POST".into(),
        path: path.into(),
        query: Vec::new(),
        headers: Vec::new(),
        body: serde_json::to_vec(&body).unwrap(),
    }
}

fn errors_of(r: Result<&crate::support::spec::Operation, Vec<String>>) -> String {
    match r {
        Ok(op) => panic!("expected a contract violation, matched {}", op.name()),
        Err(e) => e.join("\n"),
    }
}

#[test]
fn openapi_requests_must_be_defined_operations_with_required_params() {
    let spec = sendgrid_spec();
    let ok = spec.check_request(&get(
        "/v3/stats",
        &[("start_date", "2024-01-01"), ("aggregated_by", "day")],
    ));
    assert_eq!(ok.map(|o| o.id.clone()).unwrap(), "ListStat");

    let e = errors_of(spec.check_request(&get("/v3/stats", &[("aggregated_by", "day")])));
    assert!(e.contains("required query parameter `start_date`"), "{e}");
    let e = errors_of(spec.check_request(&get(
        "/v3/stats",
        &[("start_date", "x"), ("aggregated_by", "hour")],
    )));
    assert!(e.contains("is not one of"), "{e}");
    let e = errors_of(spec.check_request(&get(
        "/v3/stats",
        &[("start_date", "x"), ("startdate", "x")],
    )));
    assert!(e.contains("`startdate` is not defined"), "{e}");
    let e = errors_of(spec.check_request(&get("/v3/statistics", &[])));
    assert!(e.contains("no operation matching"), "{e}");
    let e =
        errors_of(spec.check_request(&post("/v3/whitelabel/domains/abc/validate", json!(null))));
    assert!(e.contains("not an integer") || e.contains("body"), "{e}");
    // The bounces list requires an Accept header.
    let e = errors_of(spec.check_request(&get("/v3/suppression/bounces", &[])));
    assert!(e.contains("required header `Accept`"), "{e}");
    // A literal segment wins over a template parameter.
    let op = spec
        .check_request(&get("/v3/whitelabel/domains/default", &[]))
        .unwrap();
    assert_eq!(op.id, "ListDefaultAuthenticatedDomain");
}

#[test]
fn openapi_replies_are_validated_against_the_response_schema() {
    let spec = sendgrid_spec();
    let op = spec.operation("GET /v3/stats");
    assert!(
        spec.check_response(op, 200, &json!([{"date": "2024-01-01", "stats": []}]))
            .is_empty()
    );
    let e = spec
        .check_response(op, 200, &json!([{"date": "2024-01-01"}]))
        .join("\n");
    assert!(e.contains("required field `stats`"), "{e}");
    let e = spec
        .check_response(
            op,
            200,
            &json!([{"date": 5, "stats": [{"metrics": {"bounces": "many"}}]}]),
        )
        .join("\n");
    assert!(
        e.contains("expected string") && e.contains("expected integer"),
        "{e}"
    );
    let e = spec.check_response(op, 201, &json!([])).join("\n");
    assert!(e.contains("no 201 response"), "{e}");
}

#[test]
fn field_paths_must_exist_in_the_response_schema() {
    let spec = sendgrid_spec();
    assert!(
        spec.field_schema("GET /v3/stats", "[].stats[].metrics.bounces")
            .is_ok()
    );
    let e = spec
        .field_schema("GET /v3/stats", "[].stats[].metrics.hard_bounces")
        .unwrap_err();
    assert!(e.contains("not in the spec"), "{e}");
    assert!(
        spec.field_schema(
            "GET /v3/user/webhooks/event/settings/all",
            "webhooks[].spam_report"
        )
        .is_ok()
    );
    assert!(
        spec.field_schema(
            "GET /v3/user/webhooks/event/settings/all",
            "webhooks[].spam"
        )
        .is_err()
    );
    let mg = mailgun_spec();
    // Through anyOf [$ref, null] and allOf wrappers.
    assert!(
        mg.field_schema("GET /v4/domains/{name}", "domain.state")
            .is_ok()
    );
    assert!(
        mg.field_schema("GET /v4/domains/{name}", "sending_dns_records[].valid")
            .is_ok()
    );
    assert!(
        mg.field_schema(
            "GET /v3/domains/{domain}/webhooks",
            "webhooks.complained.urls[]"
        )
        .is_ok()
    );
    assert!(
        mg.field_schema("GET /v4/domains/{name}", "domain.verified")
            .is_err()
    );
}

#[test]
fn botocore_operations_bodies_and_shapes_are_checked() {
    let spec = ses_spec();
    assert_eq!(
        spec.check_request(&get("/v2/email/account", &[]))
            .unwrap()
            .id,
        "GetAccount"
    );
    let op = spec
        .check_request(&get("/v2/email/identities/example.com", &[]))
        .unwrap();
    assert_eq!(op.id, "GetEmailIdentity");
    let q = |metric: &str| json!({"Id": "q", "Namespace": "VDM", "Metric": metric, "StartDate": 1_700_000_000, "EndDate": 1_700_086_400});
    assert!(
        spec.check_request(&post(
            "/v2/email/metrics/batch",
            json!({"Queries": [q("SEND")]})
        ))
        .is_ok()
    );
    let e = errors_of(spec.check_request(&post("/v2/email/metrics/batch", json!({}))));
    assert!(e.contains("required field `Queries`"), "{e}");
    let e = errors_of(spec.check_request(&post(
        "/v2/email/metrics/batch",
        json!({"Queries": [q("BOUNCE")]}),
    )));
    assert!(e.contains("is not one of"), "{e}");
    let e = errors_of(spec.check_request(&post(
        "/v2/email/metrics/batch",
        json!({"Queries": [q("SEND")], "X": 1}),
    )));
    assert!(e.contains("`X` is not in the spec"), "{e}");
    let eleven: Vec<_> = (0..11).map(|_| q("SEND")).collect();
    let e =
        errors_of(spec.check_request(&post("/v2/email/metrics/batch", json!({"Queries": eleven}))));
    assert!(e.contains("more than 10 items"), "{e}");
    let out = spec.operation("GET /v2/email/account");
    let e = spec
        .check_response(out, 200, &json!({"SendingEnabled": "yes"}))
        .join("\n");
    assert!(e.contains("expected boolean"), "{e}");
    assert!(
        spec.field_schema("GET /v2/email/account", "SendQuota.Max24HourSend")
            .is_ok()
    );
    assert!(
        spec.field_schema("GET /v2/email/account", "SendQuota.Max24Hour")
            .is_err()
    );
}

#[test]
fn mailgun_yaml_spec_requires_its_query_params() {
    let spec = mailgun_spec();
    let e =
        errors_of(spec.check_request(&get("/v3/example.com/stats/total", &[("duration", "7d")])));
    assert!(e.contains("required query parameter `event`"), "{e}");
    let ok = spec.check_request(&get(
        "/v3/example.com/stats/total",
        &[("event", "accepted"), ("duration", "7d")],
    ));
    assert_eq!(ok.unwrap().id, "GET-v3--domain--stats-total");
}

#[test]
fn paths_split_and_leaves_collect() {
    assert_eq!(
        split_path("[].stats[].metrics.bounces"),
        ["[]", "stats", "[]", "metrics", "bounces"]
    );
    assert_eq!(
        split_path("Results[].Values[]"),
        ["Results", "[]", "Values", "[]"]
    );
    let leaves = leaf_paths(&json!([{"a": {"b": 1, "c": [2]}, "d": null}]));
    let want: Vec<&str> = vec!["[].a.b", "[].a.c[]", "[].d"];
    assert_eq!(leaves.iter().map(String::as_str).collect::<Vec<_>>(), want);
}
