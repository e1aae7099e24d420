//! Postmark adapter against a local server.
//!
//! NOTE: Postmark publishes no licensed machine-readable API spec (only unlicensed third-party
//! copies exist; see shared/vendor-specs/README.md). The document below is our own transcription
//! of the shapes in Postmark's API reference (postmarkapp.com/developer: "Domains API" list and
//! details, "Stats API" outbound overview, "API overview" authentication headers and error
//! body), limited to the operations the adapter calls. It is NOT the vendor's spec: the same
//! validator checks requests and replies against it, but a field Postmark renames would not be
//! caught here. Re-check it against Postmark's reference when touching the adapter.

use std::sync::{Arc, OnceLock};

use funnelgate_core::{Measurement, ProbeStatus};
use serde_json::{Value, json};

use crate::support::failures::{Subject, check_failure_modes};
use crate::support::{MockVendor, Reply, Run, Seen, Spec, assert_verdict, check_read_contracts};

const ACCOUNT_TOKEN: &str = "acct-0b1f2e3d-4c5b-6a79-8877-665544332211";
const SERVER_TOKEN: &str = "srv-11223344-5566-7788-99aa-bbccddeeff00";

/// The documented shapes (see the module note), as an OpenAPI 3.1 document.
fn documented_shapes() -> Value {
    let account_token = json!({"name": "X-Postmark-Account-Token", "in": "header", "required": true, "schema": {"type": "string"}});
    let server_token = json!({"name": "X-Postmark-Server-Token", "in": "header", "required": true, "schema": {"type": "string"}});
    let accept = json!({"name": "Accept", "in": "header", "required": true, "schema": {"type": "string", "enum": ["application/json"]}});
    let error = json!({"$ref": "#/components/schemas/Error"});
    let error_responses = |ok: Value| {
        json!({
            "200": {"description": "ok", "content": {"application/json": {"schema": ok}}},
            "401": {"description": "missing or wrong token", "content": {"application/json": {"schema": error}}},
            "422": {"description": "request error", "content": {"application/json": {"schema": error}}},
            "500": {"description": "server error", "content": {"application/json": {"schema": error}}}
        })
    };
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Postmark (documented shapes transcribed for funnelgate tests; not a vendor spec)", "version": "1"},
        "paths": {
            "/domains": {"get": {
                "operationId": "listDomains",
                "parameters": [
                    account_token, accept,
                    {"name": "count", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {"name": "offset", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 0}}
                ],
                "responses": error_responses(json!({
                    "type": "object", "required": ["TotalCount", "Domains"],
                    "properties": {
                        "TotalCount": {"type": "integer"},
                        "Domains": {"type": "array", "items": {
                            "type": "object", "required": ["Name", "ID"],
                            "properties": {
                                "Name": {"type": "string"}, "SPFVerified": {"type": "boolean"},
                                "DKIMVerified": {"type": "boolean"}, "WeakDKIM": {"type": "boolean"},
                                "ReturnPathDomainVerified": {"type": "boolean"}, "ID": {"type": "integer"}
                            }
                        }}
                    }
                }))
            }},
            "/domains/{domainid}": {"get": {
                "operationId": "getDomain",
                "parameters": [
                    account_token, accept,
                    {"name": "domainid", "in": "path", "required": true, "schema": {"type": "integer"}}
                ],
                "responses": error_responses(json!({
                    "type": "object", "required": ["Name", "ID", "DKIMVerified", "ReturnPathDomainVerified"],
                    "properties": {
                        "Name": {"type": "string"}, "SPFVerified": {"type": "boolean"}, "SPFHost": {"type": "string"},
                        "SPFTextValue": {"type": "string"}, "DKIMVerified": {"type": "boolean"}, "WeakDKIM": {"type": "boolean"},
                        "DKIMHost": {"type": "string"}, "DKIMTextValue": {"type": "string"},
                        "DKIMPendingHost": {"type": "string"}, "DKIMPendingTextValue": {"type": "string"},
                        "DKIMRevokedHost": {"type": "string"}, "DKIMRevokedTextValue": {"type": "string"},
                        "SafeToRemoveRevokedKeyFromDNS": {"type": "boolean"}, "DKIMUpdateStatus": {"type": "string"},
                        "ReturnPathDomain": {"type": "string"}, "ReturnPathDomainVerified": {"type": "boolean"},
                        "ReturnPathDomainCNAMEValue": {"type": "string"}, "ID": {"type": "integer"}
                    }
                }))
            }},
            "/stats/outbound": {"get": {
                "operationId": "getOutboundOverview",
                "parameters": [
                    server_token, accept,
                    {"name": "tag", "in": "query", "schema": {"type": "string"}},
                    {"name": "fromdate", "in": "query", "schema": {"type": "string"}},
                    {"name": "todate", "in": "query", "schema": {"type": "string"}},
                    {"name": "messagestream", "in": "query", "schema": {"type": "string"}}
                ],
                "responses": error_responses(json!({
                    "type": "object", "required": ["Sent", "Bounced", "SpamComplaints"],
                    "properties": {
                        "Sent": {"type": "integer"}, "Bounced": {"type": "integer"}, "SMTPApiErrors": {"type": "integer"},
                        "BounceRate": {"type": "number"}, "SpamComplaints": {"type": "integer"},
                        "SpamComplaintsRate": {"type": "number"}, "Opens": {"type": "integer"},
                        "UniqueOpens": {"type": "integer"}, "Tracked": {"type": "integer"},
                        "WithLinkTracking": {"type": "integer"}, "WithOpenTracking": {"type": "integer"},
                        "TotalTrackedLinksSent": {"type": "integer"}, "UniqueLinksClicked": {"type": "integer"},
                        "TotalClicks": {"type": "integer"}, "WithClientRecorded": {"type": "integer"},
                        "WithPlatformRecorded": {"type": "integer"}, "WithReadTimeRecorded": {"type": "integer"}
                    }
                }))
            }}
        },
        "components": {"schemas": {"Error": {
            "type": "object", "required": ["ErrorCode", "Message"],
            "properties": {"ErrorCode": {"type": "integer"}, "Message": {"type": "string"}}
        }}}
    })
}

fn postmark_spec() -> Arc<Spec> {
    static SPEC: OnceLock<Arc<Spec>> = OnceLock::new();
    SPEC.get_or_init(|| {
        Arc::new(Spec::openapi(
            "postmark",
            vec![(
                "postmark documented shapes (tests/vendors/postmark.rs)".into(),
                documented_shapes(),
            )],
        ))
    })
    .clone()
}

fn domain_details(id: u64, dkim: bool, weak: bool, return_path: bool) -> Value {
    json!({
        "Name": "example.com", "SPFVerified": false, "SPFHost": "", "SPFTextValue": "",
        "DKIMVerified": dkim, "WeakDKIM": weak, "DKIMHost": "20260101._domainkey.example.com",
        "DKIMTextValue": "k=rsa;p=MIGf", "DKIMPendingHost": "", "DKIMPendingTextValue": "",
        "DKIMRevokedHost": "", "DKIMRevokedTextValue": "", "SafeToRemoveRevokedKeyFromDNS": false,
        "DKIMUpdateStatus": "Verified", "ReturnPathDomain": "pm-bounces.example.com",
        "ReturnPathDomainVerified": return_path, "ReturnPathDomainCNAMEValue": "pm.mtasv.net", "ID": id
    })
}

fn list(names: &[(&str, u64)]) -> Value {
    json!({"TotalCount": names.len(), "Domains": names.iter().map(|(n, id)| json!({
        "Name": n, "SPFVerified": true, "DKIMVerified": true, "WeakDKIM": false, "ReturnPathDomainVerified": true, "ID": id
    })).collect::<Vec<_>>()})
}

#[test]
fn read_contract_matches_the_documented_shapes() {
    check_read_contracts(&postmark_spec(), "postmark");
}

#[tokio::test]
async fn domain_verification_finds_the_domain_and_judges_dkim_and_return_path() {
    let cases = [
        (
            domain_details(36735, true, false, true),
            json!({}),
            ProbeStatus::Pass,
            "dkim and the return-path domain verified",
        ),
        (
            domain_details(36735, false, false, true),
            json!({}),
            ProbeStatus::Fail,
            "dkim is not verified",
        ),
        (
            domain_details(36735, true, false, false),
            json!({}),
            ProbeStatus::Fail,
            "return-path domain not verified (pm-bounces.example.com)",
        ),
        (
            domain_details(36735, true, false, false),
            json!({"require_return_path": false}),
            ProbeStatus::Pass,
            "allowed by `require_return_path`",
        ),
        (
            domain_details(36735, true, true, true),
            json!({}),
            ProbeStatus::Warn,
            "weak",
        ),
    ];
    for (details, extra, want, needle) in cases {
        let mock = MockVendor::start(postmark_spec(), move |s| match s.op() {
            "listDomains" => Reply::ok(list(&[("other.example", 1), ("Example.com", 36735)])),
            "getDomain" => {
                assert_eq!(s.facts.path, "/domains/36735");
                Reply::ok(details.clone())
            }
            _ => Reply::json(422, json!({"ErrorCode": 0, "Message": "unexpected"})),
        })
        .await;
        let mut p = json!({"domain": "example.com", "base_url": mock.url});
        if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
            p.extend(e);
        }
        let m = Run::new("postmark.domain_verification", p)
            .secret("POSTMARK_ACCOUNT", ACCOUNT_TOKEN)
            .go()
            .await
            .unwrap();
        mock.assert_contract();
        assert_eq!(mock.ops(), ["listDomains", "getDomain"]);
        for s in mock.seen() {
            assert_eq!(s.header("x-postmark-account-token"), Some(ACCOUNT_TOKEN));
            assert_eq!(s.header("x-postmark-server-token"), None);
        }
        assert_verdict(&m, want);
        assert!(m.message.contains(needle), "{}", m.message);
    }
}

#[tokio::test]
async fn domain_verification_fails_for_an_empty_account_or_a_missing_domain() {
    for (body, needle) in [
        (list(&[]), "no sender domains"),
        (list(&[("other.example", 1)]), "not a sender domain"),
    ] {
        let mock = MockVendor::start(postmark_spec(), move |_| Reply::ok(body.clone())).await;
        let m = Run::new(
            "postmark.domain_verification",
            json!({"domain": "example.com", "base_url": mock.url}),
        )
        .secret("POSTMARK_ACCOUNT", ACCOUNT_TOKEN)
        .go()
        .await
        .unwrap();
        mock.assert_contract();
        assert_verdict(&m, ProbeStatus::Fail);
        assert!(m.message.contains(needle), "{}", m.message);
        assert_eq!(mock.ops(), ["listDomains"]);
        assert_eq!(mock.seen()[0].query("count"), ["500"]);
    }
}

fn outbound(sent: u64, bounced: u64, spam: u64) -> Value {
    json!({
        "Sent": sent, "Bounced": bounced, "SMTPApiErrors": 0,
        "BounceRate": if sent == 0 { 0.0 } else { bounced as f64 * 100.0 / sent as f64 },
        "SpamComplaints": spam, "SpamComplaintsRate": 0.0, "Opens": 0, "UniqueOpens": 0, "Tracked": 0,
        "WithLinkTracking": 0, "WithOpenTracking": 0, "TotalTrackedLinksSent": 0, "UniqueLinksClicked": 0,
        "TotalClicks": 0, "WithClientRecorded": 0, "WithPlatformRecorded": 0, "WithReadTimeRecorded": 0
    })
}

async fn run_stats(kind: &'static str, body: Value, extra: Value) -> (Measurement, Vec<Seen>) {
    let mock = MockVendor::start(postmark_spec(), move |_| Reply::ok(body.clone())).await;
    let mut p = json!({"base_url": mock.url});
    if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
        p.extend(e);
    }
    let m = Run::new(kind, p)
        .secret("POSTMARK_SERVER", SERVER_TOKEN)
        .go()
        .await
        .unwrap();
    mock.assert_contract();
    let seen = mock.seen();
    assert_eq!(
        seen[0].header("x-postmark-server-token"),
        Some(SERVER_TOKEN)
    );
    (m, seen)
}

#[tokio::test]
async fn bounce_and_complaint_rates_come_from_outbound_stats() {
    let (m, seen) = run_stats(
        "postmark.bounce_rate",
        outbound(2000, 30, 1),
        json!({"message_stream": "broadcast", "tag": "welcome"}),
    )
    .await;
    assert_eq!(m.value, Some(1.5));
    assert_eq!(m.sample_size, Some(2000));
    assert_verdict(&m, ProbeStatus::Pass);
    let s = &seen[0];
    assert_eq!(s.query("messagestream"), ["broadcast"]);
    assert_eq!(s.query("tag"), ["welcome"]);
    let (from, to) = (s.query("fromdate")[0], s.query("todate")[0]);
    assert!(
        from < to && from.len() == 10 && to.len() == 10,
        "{from} {to}"
    );
    let (m, _) = run_stats("postmark.bounce_rate", outbound(100, 6, 0), json!({})).await;
    assert_verdict(&m, ProbeStatus::Fail);
    let (m, _) = run_stats(
        "postmark.complaint_rate",
        outbound(10_000, 0, 15),
        json!({}),
    )
    .await;
    assert_eq!(m.value, Some(0.15));
    assert_verdict(&m, ProbeStatus::Warn);
    let (m, _) = run_stats("postmark.complaint_rate", outbound(0, 0, 0), json!({})).await;
    assert_verdict(&m, ProbeStatus::NoData);
}

#[tokio::test]
async fn every_kind_maps_every_failure_mode() {
    for (kind, secret) in [
        ("postmark.domain_verification", "POSTMARK_ACCOUNT"),
        ("postmark.bounce_rate", "POSTMARK_SERVER"),
        ("postmark.complaint_rate", "POSTMARK_SERVER"),
    ] {
        check_failure_modes(
            postmark_spec(),
            Subject {
                kind,
                params: Box::new(move |base| {
                    if kind == "postmark.domain_verification" {
                        json!({"domain": "example.com", "base_url": base})
                    } else {
                        json!({"base_url": base})
                    }
                }),
                secret_name: secret,
                secret_value: if secret == "POSTMARK_ACCOUNT" {
                    ACCOUNT_TOKEN
                } else {
                    SERVER_TOKEN
                }
                .to_string(),
                error_body: Box::new(|msg| json!({"ErrorCode": 10, "Message": msg})),
                truncated: r#"{"TotalCount": 3, "Domains": [{"Na"#,
                // vendor_http quotes `message`, not Postmark's `Message`: the status alone is named.
                quotes_vendor_message: false,
            },
        )
        .await;
    }
}
