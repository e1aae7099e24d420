//! Pipedrive kinds against a local Pipedrive: API v2 (cursor paging through `next_cursor`) for
//! deals, persons, pipelines and stages, v1 only where no v2 exists (fields, users/me, the Leads
//! Inbox), windows read newest first, custom field keys, auth by `x-api-token` or Bearer, and
//! every failure mode.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use funnelgate_checker_sdk::{ProbeError, ProbeErrorKind};
use funnelgate_core::{Measurement, ProbeStatus};
use serde_json::{Value, json};
use support::pipedrive::{PdState, PipedriveMock, TOKEN, pd_error};
use support::{Fault, hours_ago, init, run};

const T: Duration = Duration::from_secs(10);

async fn mock(state: PdState) -> PipedriveMock {
    init();
    PipedriveMock::start(state).await
}

fn params(m: &PipedriveMock, extra: Value) -> Value {
    let mut p = json!({ "base_url": m.base() });
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    p
}

async fn pd(kind: &str, m: &PipedriveMock, extra: Value) -> Result<Measurement, ProbeError> {
    run(kind, params(m, extra), &[("PIPEDRIVE", TOKEN)], T).await
}

fn state(lists: Vec<(&str, Vec<Value>)>) -> PdState {
    PdState {
        lists: lists.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn auth_sends_the_token_header_and_fails_on_401() {
    let m = mock(PdState::default()).await;
    let r = pd("pipedrive.auth_and_quota", &m, json!({})).await.unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Pass));
    assert!(r.message.contains("company `acme`"), "{}", r.message);
    assert_eq!(
        r.evidence.get("burst_limit").map(String::as_str),
        Some("40")
    );
    let log = m.log();
    assert_eq!(log[0].path, "/v1/users/me");
    assert_eq!(log[0].header("x-api-token").as_deref(), Some(TOKEN));
    assert!(
        log[0].query.is_empty(),
        "the token never travels in the url"
    );

    let r = pd("pipedrive.auth_and_quota", &m, json!({ "auth": "oauth" }))
        .await
        .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Pass));
    assert_eq!(
        m.log().last().unwrap().header("authorization").as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    let r = run(
        "pipedrive.auth_and_quota",
        params(&m, json!({})),
        &[("PIPEDRIVE", "0000wrong")],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail));
    assert!(
        r.message.contains("401") && r.message.contains("unauthorized access"),
        "{}",
        r.message
    );
}

fn field(key: &str, name: &str, t: &str, options: &[&str]) -> Value {
    json!({ "id": 1, "key": key, "name": name, "field_type": t, "options": options.iter().enumerate().map(|(i, o)| json!({ "id": i, "label": o })).collect::<Vec<_>>() })
}

#[tokio::test]
async fn required_properties_match_keys_and_names_across_pages() {
    let mut person_fields: Vec<Value> = (0..600)
        .map(|i| field(&format!("f{i}"), &format!("Field {i}"), "varchar", &[]))
        .collect();
    person_fields.push(field("email", "Email", "varchar", &[]));
    person_fields.push(field("owner_id", "Owner", "user", &[]));
    person_fields.push(field(
        "9f2a1b",
        "Lead channel",
        "enum",
        &["Paid search", "Organic"],
    ));
    let deal_fields = vec![
        field("value", "Value", "monetary", &[]),
        field("expected_close_date", "Expected close date", "date", &[]),
        field("stage_id", "Stage", "stage", &[]),
        field("status", "Status", "status", &[]),
    ];
    let m = mock(state(vec![
        ("/v1/personFields", person_fields),
        ("/v1/dealFields", deal_fields),
    ]))
    .await;
    let r = pd("pipedrive.required_properties", &m, json!({}))
        .await
        .unwrap();
    assert_eq!((r.value, r.verdict), (Some(0.0), None), "{}", r.message);
    let starts: Vec<String> = m
        .log()
        .iter()
        .filter(|r| r.path == "/v1/personFields")
        .filter_map(|r| r.query.get("start").cloned())
        .collect();
    assert_eq!(starts, vec!["0", "500"]);
    let required = json!([{ "object": "person", "name": "Lead channel", "types": ["enum"], "options": ["Paid search", "Paid social"] }, { "object": "deal", "name": "utm_campaign" }]);
    let r = pd(
        "pipedrive.required_properties",
        &m,
        json!({ "required": required }),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.value, r.verdict),
        (Some(1.0), Some(ProbeStatus::Warn)),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn pipeline_shape_uses_stage_probabilities() {
    let pipelines = vec![
        json!({ "id": 1, "name": "Sales", "order_nr": 1, "is_deleted": false, "is_deal_probability_enabled": true, "add_time": "2024-01-01T00:00:00Z", "update_time": "2024-01-01T00:00:00Z" }),
        json!({ "id": 2, "name": "Old", "order_nr": 2, "is_deleted": true, "is_deal_probability_enabled": true, "add_time": "2024-01-01T00:00:00Z", "update_time": "2024-01-01T00:00:00Z" }),
    ];
    let stages = vec![
        json!({ "id": 11, "pipeline_id": 1, "name": "Lead in", "order_nr": 1, "deal_probability": 10, "is_deleted": false, "is_deal_rot_enabled": false, "days_to_rotten": null }),
        json!({ "id": 12, "pipeline_id": 1, "name": "Proposal", "order_nr": 2, "deal_probability": 60, "is_deleted": false, "is_deal_rot_enabled": false, "days_to_rotten": null }),
        json!({ "id": 13, "pipeline_id": 1, "name": "Negotiation", "order_nr": 3, "deal_probability": 40, "is_deleted": false, "is_deal_rot_enabled": false, "days_to_rotten": null }),
    ];
    let mut s = state(vec![("/api/v2/pipelines", pipelines)]);
    s.stages = stages;
    let m = mock(s).await;
    let r = pd("pipedrive.pipeline_shape", &m, json!({})).await.unwrap();
    assert_eq!(
        (r.value, r.verdict),
        (Some(0.0), Some(ProbeStatus::Warn)),
        "{}",
        r.message
    );
    assert!(
        r.message
            .contains("`Negotiation` (40%) comes after `Proposal` (60%)"),
        "{}",
        r.message
    );
    assert!(m.log().iter().any(|r| r.path == "/api/v2/stages"
        && r.query.get("pipeline_id").map(String::as_str) == Some("1")));
    let m = mock(state(vec![("/api/v2/pipelines", vec![])])).await;
    let e = pd("pipedrive.pipeline_shape", &m, json!({}))
        .await
        .unwrap_err();
    assert!(e.message.contains("no active pipelines"), "{e}");
}

/// A deal as API v2 returns it (RFC 3339 times, `owner_id` a number, custom fields nested).
fn deal(id: usize, added_h: f64, channel: Option<&str>) -> Value {
    json!({ "id": id, "title": format!("Deal {id}"), "add_time": hours_ago(added_h), "update_time": hours_ago(added_h),
            "status": "open", "channel": channel, "owner_id": 1, "person_id": null, "org_id": null, "pipeline_id": 1,
            "stage_id": 11, "value": 100, "currency": "EUR", "won_time": null, "custom_fields": {} })
}

#[tokio::test]
async fn source_attribution_reads_newest_first_and_stops_at_the_window() {
    // 700 deals in the window (1 in 7 without channel, 1 in 7 "unknown"), 300 older ones.
    let mut deals: Vec<Value> = (0..700)
        .map(|i| {
            let ch = match i % 7 {
                0 => None,
                1 => Some("Unknown"),
                _ => Some("Paid search"),
            };
            deal(i, 1.0 + i as f64 * 0.5, ch)
        })
        .collect();
    deals.extend((0..300).map(|i| deal(1000 + i, 24.0 * 40.0 + i as f64, None)));
    let m = mock(state(vec![("/api/v2/deals", deals)])).await;
    let r = pd("pipedrive.source_attribution_coverage", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.sample_size, Some(700));
    assert!(
        (r.value.unwrap() - 500.0 / 7.0).abs() < 1e-9,
        "{:?}",
        r.value
    );
    let log = m.log();
    assert_eq!(log.len(), 2, "two pages of 500, then the window ends");
    assert!(log.iter().all(|r| r.path == "/api/v2/deals"), "{log:?}");
    assert_eq!(
        log[0].query.get("sort_by").map(String::as_str),
        Some("add_time")
    );
    assert_eq!(
        log[0].query.get("sort_direction").map(String::as_str),
        Some("desc")
    );
    assert!(!log[0].query.contains_key("cursor"));
    assert!(
        log[1].query.contains_key("cursor"),
        "the second page follows next_cursor"
    );
}

#[tokio::test]
async fn lead_to_revenue_counts_won_deals_in_the_window() {
    let mut deals = Vec::new();
    for (i, (won_days, ch)) in [
        (2.0, Some("Paid search")),
        (10.0, None),
        (20.0, Some("Organic")),
        (200.0, Some("Paid search")),
    ]
    .iter()
    .enumerate()
    {
        let mut d = deal(i, won_days * 24.0 + 100.0, *ch);
        d["status"] = json!("won");
        d["won_time"] = json!(hours_ago(won_days * 24.0));
        d["update_time"] = json!(hours_ago(won_days * 24.0));
        deals.push(d);
    }
    deals.push(deal(99, 5.0, Some("Paid search")));
    let m = mock(state(vec![("/api/v2/deals", deals)])).await;
    let r = pd("pipedrive.lead_to_revenue_linkage", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(2.0), Some(3)),
        "{}",
        r.message
    );
    assert_eq!(
        m.log()[0].query.get("status").map(String::as_str),
        Some("won")
    );
}

/// A person as API v2 returns it (`emails`, `owner_id` a number).
fn person(id: usize, added_h: f64, email: Option<&str>, owner: u64) -> Value {
    let emails = match email {
        Some(e) => json!([{ "label": "work", "value": e, "primary": true }]),
        None => json!([]),
    };
    json!({ "id": id, "name": format!("P{id}"), "emails": emails, "phones": [], "add_time": hours_ago(added_h),
            "update_time": hours_ago(added_h), "owner_id": owner, "org_id": null, "is_deleted": false, "custom_fields": {} })
}

#[tokio::test]
async fn owner_assignment_counts_default_owners_after_grace() {
    let mut persons: Vec<Value> = (0..18)
        .map(|i| person(i, 30.0, Some("a@acme.io"), 5))
        .collect();
    persons.extend((0..2).map(|i| person(100 + i, 30.0, Some("a@acme.io"), 1)));
    persons.extend((0..4).map(|i| person(200 + i, 0.1, Some("a@acme.io"), 1)));
    let m = mock(state(vec![("/api/v2/persons", persons)])).await;
    let r = pd(
        "pipedrive.owner_assignment",
        &m,
        json!({ "unassigned_owner_ids": ["1"] }),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(10.0), Some(20)),
        "{}",
        r.message
    );
    for bad in [json!({}), json!({ "unassigned_owner_ids": [] })] {
        let e = support::registry()
            .build("pipedrive.owner_assignment", &params(&m, bad))
            .err()
            .unwrap();
        assert!(e.message.contains("unassigned_owner_ids"), "{e}");
    }
}

#[tokio::test]
async fn duplicates_and_email_validity_over_persons() {
    let persons = vec![
        person(1, 5.0, Some("a@acme.io"), 1),
        person(2, 6.0, Some(" A@acme.io"), 1),
        person(3, 7.0, Some("info@acme.io"), 1),
        person(4, 8.0, Some("broken@"), 1),
        person(5, 9.0, None, 1),
        person(6, 24.0 * 90.0, Some("a@acme.io"), 1),
    ];
    let m = mock(state(vec![("/api/v2/persons", persons)])).await;
    let r = pd("pipedrive.duplicates", &m, json!({})).await.unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(40.0), Some(5)),
        "{}",
        r.message
    );
    let r = pd("pipedrive.email_validity", &m, json!({})).await.unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(50.0), Some(4)),
        "{}",
        r.message
    );
}

async fn list_error(fault: Fault) -> ProbeError {
    let m = mock(state(vec![(
        "/api/v2/persons",
        vec![person(1, 1.0, Some("a@acme.io"), 1)],
    )]))
    .await;
    m.fault("/api/v2/persons", fault, None);
    run(
        "pipedrive.duplicates",
        params(&m, json!({})),
        &[("PIPEDRIVE", TOKEN)],
        Duration::from_millis(800),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn every_failure_mode_is_a_specific_error() {
    let m = mock(state(vec![("/api/v2/persons", vec![])])).await;
    let e = run(
        "pipedrive.duplicates",
        params(&m, json!({})),
        &[("PIPEDRIVE", "0000wrong")],
        T,
    )
    .await
    .unwrap_err();
    assert!(
        e.message.contains("401") && e.message.contains("unauthorized access"),
        "{e}"
    );
    assert!(!e.message.contains("0000wrong"));
    let r = pd("pipedrive.duplicates", &m, json!({})).await.unwrap();
    assert_eq!(
        r.verdict,
        Some(ProbeStatus::NoData),
        "an empty account has nothing to judge"
    );

    let e = list_error(pd_error(
        403,
        "You do not have permissions to perform this action",
    ))
    .await;
    assert!(
        e.message.contains("403") && e.message.contains("do not have permissions"),
        "{e}"
    );
    let e = list_error(pd_error(404, "Unknown method .")).await;
    assert!(e.message.contains("404"), "{e}");
    let e = list_error(pd_error(429, "Request over limit")).await;
    assert_eq!(
        (e.kind, e.retry_after),
        (ProbeErrorKind::Transient, Some(Duration::from_secs(5)))
    );
    let e = list_error(pd_error(500, "Internal error")).await;
    assert_eq!(e.kind, ProbeErrorKind::Transient);
    let e = list_error(Fault::Slow).await;
    assert!(e.message.contains("timed out"), "{e}");
    let e = list_error(Fault::Malformed).await;
    assert!(e.message.contains("malformed json"), "{e}");
    let e = list_error(Fault::Truncated).await;
    assert!(e.message.contains("truncated json"), "{e}");
    let e = list_error(Fault::Status {
        code: 200,
        body: json!({ "success": false, "error": "company disabled" }).to_string(),
        headers: vec![],
    })
    .await;
    assert!(
        e.message.contains("success=false") && e.message.contains("company disabled"),
        "{e}"
    );
}

/// A 40-character custom field key that begins with a digit, as most do.
const CUSTOM: &str = "4f1e2c0a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";

#[tokio::test]
async fn custom_field_keys_are_accepted_and_checked_against_the_account() {
    let mut deals = Vec::new();
    for i in 0..10 {
        let mut d = deal(i, 1.0 + i as f64, None);
        if i < 7 {
            d["custom_fields"] = json!({ CUSTOM: "Webinar" });
        }
        deals.push(d);
    }
    let fields = vec![
        field("channel", "Source channel", "enum", &[]),
        field(CUSTOM, "Lead source", "varchar", &[]),
    ];
    let m = mock(state(vec![
        ("/api/v2/deals", deals),
        ("/v1/dealFields", fields),
    ]))
    .await;
    let r = pd(
        "pipedrive.source_attribution_coverage",
        &m,
        json!({ "source_field": CUSTOM }),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(70.0), Some(10)),
        "{}",
        r.message
    );
    let deals_call = m
        .log()
        .into_iter()
        .find(|r| r.path == "/api/v2/deals")
        .unwrap();
    assert_eq!(
        deals_call.query.get("custom_fields").map(String::as_str),
        Some(CUSTOM)
    );
    // A well-formed key the account does not have: a clear error, no guess.
    let missing = "0000000000000000000000000000000000000abc";
    let e = pd(
        "pipedrive.source_attribution_coverage",
        &m,
        json!({ "source_field": missing }),
    )
    .await
    .unwrap_err();
    assert!(
        e.message.contains(missing) && e.message.contains("/v1/dealFields"),
        "{e}"
    );
    // Keys that are neither built-in nor custom keys are rejected as params.
    for bad in [
        "4f1e2c",
        "Lead Source",
        "4F1E2C0A9B8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F",
    ] {
        let e = support::registry()
            .build(
                "pipedrive.source_attribution_coverage",
                &params(&m, json!({ "source_field": bad })),
            )
            .err()
            .unwrap();
        assert_eq!(e.kind, ProbeErrorKind::InvalidParams, "{bad}");
    }
}

#[tokio::test]
async fn the_default_attribution_field_exists_on_the_object_measured() {
    // Persons have no `channel`: measuring them needs a person field named, never a silent 0%.
    let m = mock(PdState::default()).await;
    let e = support::registry()
        .build(
            "pipedrive.source_attribution_coverage",
            &params(&m, json!({ "object": "persons" })),
        )
        .err()
        .unwrap();
    assert_eq!(e.kind, ProbeErrorKind::InvalidParams);
    assert!(
        e.message.contains("source_field") && e.message.contains("persons"),
        "{e}"
    );

    // Leads (the Leads Inbox, API v1) carry `channel` like deals.
    let leads: Vec<Value> = (0..4)
        .map(|i| {
            json!({ "id": format!("adf21080-0e10-11eb-879b-05d71fb426e{i}"), "title": format!("Lead {i}"),
                    "owner_id": 1, "creator_id": 1, "label_ids": [], "person_id": 7, "organization_id": null,
                    "source_name": "Web forms", "origin": "WebForms", "origin_id": null,
                    "channel": if i == 0 { Value::Null } else { json!(3) }, "channel_id": null,
                    "is_archived": false, "was_seen": true, "value": null, "expected_close_date": null,
                    "next_activity_id": null, "add_time": hours_ago(1.0 + i as f64), "update_time": hours_ago(1.0),
                    "visible_to": "3", "cc_email": "lead@pipedrivemail.com" })
        })
        .collect();
    let m = mock(state(vec![("/v1/leads", leads)])).await;
    let r = pd(
        "pipedrive.source_attribution_coverage",
        &m,
        json!({ "object": "leads" }),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(75.0), Some(4)),
        "{}",
        r.message
    );
    let log = m.log();
    assert_eq!(log[0].path, "/v1/leads");
    assert_eq!(
        log[0].query.get("sort").map(String::as_str),
        Some("add_time DESC")
    );
}

#[tokio::test]
async fn the_v1_lists_that_v2_replaced_are_never_called() {
    let persons = vec![person(1, 5.0, Some("a@acme.io"), 1)];
    let mut s = state(vec![
        ("/api/v2/persons", persons.clone()),
        ("/api/v2/deals", vec![deal(1, 2.0, Some("Paid search"))]),
        (
            "/api/v2/pipelines",
            vec![json!({ "id": 1, "name": "Sales", "order_nr": 1, "is_deleted": false })],
        ),
    ]);
    s.stages = vec![
        json!({ "id": 11, "pipeline_id": 1, "name": "Lead in", "order_nr": 1, "deal_probability": 10, "is_deleted": false }),
    ];
    let m = mock(s).await;
    for kind in [
        "pipedrive.pipeline_shape",
        "pipedrive.source_attribution_coverage",
        "pipedrive.lead_to_revenue_linkage",
        "pipedrive.duplicates",
        "pipedrive.email_validity",
    ] {
        pd(kind, &m, json!({})).await.unwrap();
    }
    pd(
        "pipedrive.owner_assignment",
        &m,
        json!({ "unassigned_owner_ids": ["1"] }),
    )
    .await
    .unwrap();
    for r in m.log() {
        assert!(
            r.path.starts_with("/api/v2/"),
            "{} should use API v2",
            r.path
        );
    }
}

#[tokio::test]
async fn a_spent_daily_budget_fails_c1_and_errors_elsewhere() {
    let m = mock(state(vec![("/api/v2/persons", vec![])])).await;
    let spent = Fault::Status {
        code: 429,
        body: json!({ "success": false, "error": "Request over limit", "errorCode": 429 })
            .to_string(),
        headers: vec![("x-daily-requests-left".into(), "0".into())],
    };
    m.fault("/", spent, None);
    let r = pd("pipedrive.auth_and_quota", &m, json!({})).await.unwrap();
    assert_eq!(
        (r.value, r.verdict),
        (Some(0.0), Some(ProbeStatus::Fail)),
        "{}",
        r.message
    );
    let e = pd("pipedrive.duplicates", &m, json!({})).await.unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent, "{e}");
    assert!(e.message.contains("budget is exhausted"), "{e}");
}

#[test]
fn omitted_measures_are_rejected_by_name() {
    let reg = funnelgate_checker_crm::registry();
    let e = reg
        .build("pipedrive.speed_to_lead", &json!({}))
        .err()
        .unwrap();
    assert!(
        e.message
            .contains("unknown probe kind `pipedrive.speed_to_lead`")
            && e.message.contains("pipedrive.duplicates"),
        "{e}"
    );
}
