//! Salesforce kinds against a local Salesforce: pinned API version, SOQL sent, `nextRecordsUrl`
//! paging, the refresh-token flow, `Sforce-Limit-Info`, and every failure mode.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use funnelgate_checker_sdk::{ProbeError, ProbeErrorKind};
use funnelgate_core::{Measurement, ProbeStatus};
use serde_json::{Value, json};
use support::salesforce::{
    Answer, RefreshApp, SESSION, SalesforceMock, SfState, describe, record, sf_error,
};
use support::{Fault, hours_ago, init, run};

const T: Duration = Duration::from_secs(10);

async fn mock(state: SfState) -> SalesforceMock {
    init();
    SalesforceMock::start(state).await
}

fn params(m: &SalesforceMock, extra: Value) -> Value {
    let mut p = json!({ "instance_url": m.base() });
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    p
}

async fn sf(kind: &str, m: &SalesforceMock, extra: Value) -> Result<Measurement, ProbeError> {
    run(kind, params(m, extra), &[("SALESFORCE", SESSION)], T).await
}

#[tokio::test]
async fn auth_and_quota_reads_limits_on_the_pinned_version() {
    let m = mock(SfState {
        daily: (15_000, 3_001),
        ..Default::default()
    })
    .await;
    let r = sf("salesforce.auth_and_quota", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(20.0), "{}", r.message);
    assert_eq!(
        r.evidence
            .get("data_storage_mb_remaining")
            .map(String::as_str),
        Some("4")
    );
    let log = m.log();
    assert_eq!(log[0].path, "/services/data/v60.0/limits");
    assert_eq!(
        log[0].header("authorization").as_deref(),
        Some(format!("Bearer {SESSION}").as_str())
    );

    // Another pinned version is asked for as such (this org only serves v60.0: 404).
    let r = sf(
        "salesforce.auth_and_quota",
        &m,
        json!({ "api_version": "v58.0" }),
    )
    .await;
    assert!(
        r.as_ref().is_err_and(|e| e.message.contains("404")),
        "{r:?}"
    );
    assert_eq!(m.log().last().unwrap().path, "/services/data/v58.0/limits");
}

#[tokio::test]
async fn auth_and_quota_fails_on_an_expired_session() {
    let m = mock(SfState::default()).await;
    let r = run(
        "salesforce.auth_and_quota",
        params(&m, json!({})),
        &[("SALESFORCE", "00Dexpired")],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail));
    assert!(
        r.message.contains("401") && r.message.contains("Session expired or invalid"),
        "{}",
        r.message
    );
    assert!(!r.message.contains("00Dexpired"));
}

fn refresh_secret(refresh_token: &str) -> String {
    json!({ "client_id": "3MVG9app", "client_secret": "s3cr3t-app", "refresh_token": refresh_token }).to_string()
}

#[tokio::test]
async fn auth_and_quota_with_the_budget_spent_is_zero_percent() {
    let m = mock(SfState::default()).await;
    m.fault(
        "/limits",
        sf_error(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        ),
        None,
    );
    let r = sf("salesforce.auth_and_quota", &m, json!({}))
        .await
        .unwrap();
    // The one verdict for a spent budget, on every vendor: C1 FAILs with value 0.
    assert_eq!(
        (r.value, r.verdict),
        (Some(0.0), Some(ProbeStatus::Fail)),
        "{}",
        r.message
    );
    assert!(r.message.contains("budget is spent"), "{}", r.message);
}

#[tokio::test]
async fn refresh_token_flow_caches_and_refreshes_once_on_401() {
    let app = RefreshApp {
        client_id: "3MVG9app".into(),
        client_secret: "s3cr3t-app".into(),
        refresh_token: "5Aep-refresh-1".into(),
    };
    let m = mock(SfState {
        refresh: Some(app),
        valid_tokens: Default::default(),
        ..Default::default()
    })
    .await;
    let secret = refresh_secret("5Aep-refresh-1");
    let secrets = [("SALESFORCE", secret.as_str())];
    let run_c1 = || {
        run(
            "salesforce.auth_and_quota",
            params(&m, json!({})),
            &secrets,
            T,
        )
    };
    let r = run_c1().await.unwrap();
    assert!(r.value.is_some(), "{}", r.message);
    let log = m.log();
    assert_eq!(log[0].path, "/services/oauth2/token");
    assert_eq!(log[0].body["grant_type"], json!("refresh_token"));
    assert_eq!(log[0].body["client_id"], json!("3MVG9app"));
    assert_eq!(
        log[1].header("authorization").as_deref(),
        Some("Bearer 00DXX0000008aBc!AQ4AQRefreshed1")
    );

    // The access token is cached: the next run does not refresh.
    run_c1().await.unwrap();
    assert_eq!(
        m.log()
            .iter()
            .filter(|r| r.path.ends_with("/oauth2/token"))
            .count(),
        1
    );

    // The org revokes it: one 401, one refresh, one retry.
    m.state.lock().unwrap().valid_tokens.clear();
    let r = run_c1().await.unwrap();
    assert!(r.value.is_some(), "{}", r.message);
    let log = m.log();
    assert_eq!(
        log.iter()
            .filter(|r| r.path.ends_with("/oauth2/token"))
            .count(),
        2
    );
    assert_eq!(
        log.last().unwrap().header("authorization").as_deref(),
        Some("Bearer 00DXX0000008aBc!AQ4AQRefreshed2")
    );
}

#[tokio::test]
async fn a_rejected_refresh_token_fails_c1_and_errors_elsewhere() {
    let app = RefreshApp {
        client_id: "3MVG9app".into(),
        client_secret: "s3cr3t-app".into(),
        refresh_token: "5Aep-good".into(),
    };
    let m = mock(SfState {
        refresh: Some(app),
        ..Default::default()
    })
    .await;
    let secret = refresh_secret("5Aep-revoked");
    let r = run(
        "salesforce.auth_and_quota",
        params(&m, json!({})),
        &[("SALESFORCE", secret.as_str())],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail));
    assert!(
        r.message.contains("expired access/refresh token") && r.message.contains("rejected"),
        "{}",
        r.message
    );
    assert!(
        !r.message.contains("5Aep-revoked") && !r.message.contains("s3cr3t-app"),
        "{}",
        r.message
    );
    let e = run(
        "salesforce.pipeline_shape",
        params(&m, json!({})),
        &[("SALESFORCE", secret.as_str())],
        T,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent);
    let e = run(
        "salesforce.pipeline_shape",
        params(&m, json!({})),
        &[("SALESFORCE", "{\"client_id\": 1}")],
        T,
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("not {\"client_id\""), "{e}");
}

#[tokio::test]
async fn required_properties_reads_describe() {
    let mut state = SfState::default();
    state.describes.insert(
        "Lead".into(),
        describe(
            "Lead",
            &[
                ("Email", "email", &[]),
                ("Status", "picklist", &["Open", "Qualified"]),
                ("LeadSource", "picklist", &["Web", "Paid Search"]),
                ("OwnerId", "reference", &[]),
            ],
        ),
    );
    state.describes.insert(
        "Opportunity".into(),
        describe(
            "Opportunity",
            &[
                ("Amount", "currency", &[]),
                ("CloseDate", "date", &[]),
                ("StageName", "picklist", &["Prospecting"]),
                ("LeadSource", "picklist", &["Web"]),
            ],
        ),
    );
    let m = mock(state).await;
    let r = sf("salesforce.required_properties", &m, json!({}))
        .await
        .unwrap();
    assert_eq!((r.value, r.verdict), (Some(0.0), None), "{}", r.message);
    let paths: Vec<String> = m.log().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        vec![
            "/services/data/v60.0/sobjects/Lead/describe",
            "/services/data/v60.0/sobjects/Opportunity/describe"
        ]
    );
    let required = json!([
        { "object": "Lead", "name": "LeadSource", "options": ["Paid Search", "Paid Social"] },
        { "object": "Lead", "name": "UTM_Campaign__c" },
    ]);
    let r = sf(
        "salesforce.required_properties",
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
    assert!(
        r.message.contains("Lead.UTM_Campaign__c") && r.message.contains("lacks Paid Social"),
        "{}",
        r.message
    );
    let e = sf(
        "salesforce.required_properties",
        &m,
        json!({ "required": [{ "object": "Leed", "name": "Email" }] }),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("404"), "{e}");
}

fn stage(label: &str, order: i64, prob: f64, closed: bool, won: bool) -> Value {
    record(
        "OpportunityStage",
        &format!("01J{order}"),
        json!({ "ApiName": label, "MasterLabel": label, "SortOrder": order, "DefaultProbability": prob, "IsClosed": closed, "IsWon": won }),
    )
}

#[tokio::test]
async fn pipeline_shape_from_opportunity_stages() {
    let stages = vec![
        stage("Prospecting", 1, 10.0, false, false),
        stage("Proposal", 2, 60.0, false, false),
        stage("Closed Won", 3, 100.0, true, true),
        stage("Closed Lost", 4, 0.0, true, false),
    ];
    let m = mock(
        SfState::default()
            .on(
                &["FROM OpportunityStage WHERE IsActive = true"],
                Answer::Records(stages.clone()),
            )
            .on(&["FROM RecordType"], Answer::Records(vec![])),
    )
    .await;
    let r = sf("salesforce.pipeline_shape", &m, json!({}))
        .await
        .unwrap();
    assert_eq!((r.value, r.verdict), (Some(0.0), None), "{}", r.message);
    assert!(m.soql()[0].starts_with(
        "SELECT ApiName, MasterLabel, IsClosed, IsWon, DefaultProbability, SortOrder FROM OpportunityStage"
    ));

    let m = mock(
        SfState::default()
            .on(
                &["FROM OpportunityStage"],
                Answer::Records(vec![stage("Prospecting", 1, 10.0, false, false)]),
            )
            .on(&["FROM RecordType"], Answer::Records(vec![])),
    )
    .await;
    let r = sf("salesforce.pipeline_shape", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(1.0), "{}", r.message);
    let m = mock(SfState::default().on(&["FROM OpportunityStage"], Answer::Records(vec![]))).await;
    let e = sf("salesforce.pipeline_shape", &m, json!({}))
        .await
        .unwrap_err();
    assert!(e.message.contains("no active opportunity stages"), "{e}");
}

#[tokio::test]
async fn pipeline_shape_is_checked_per_sales_process() {
    let stages = vec![
        stage("Prospecting", 1, 10.0, false, false),
        stage("Proposal", 2, 60.0, false, false),
        stage("Renewal Quote", 3, 50.0, false, false),
        stage("Closed Won", 4, 100.0, true, true),
        stage("Closed Lost", 5, 0.0, true, false),
    ];
    let types = vec![
        record(
            "RecordType",
            "012000000000001AAA",
            json!({ "Id": "012000000000001AAA", "Name": "New Business", "DeveloperName": "New_Business" }),
        ),
        record(
            "RecordType",
            "012000000000002AAA",
            json!({ "Id": "012000000000002AAA", "Name": "Renewals", "DeveloperName": "Renewals" }),
        ),
    ];
    let mut state = SfState::default()
        .on(
            &["FROM OpportunityStage WHERE IsActive = true"],
            Answer::Records(stages),
        )
        .on(
            &["FROM RecordType WHERE SobjectType = 'Opportunity'"],
            Answer::Records(types),
        );
    // New Business is complete; the Renewals process has no won stage: it cannot record revenue.
    state.stage_values.insert(
        "012000000000001AAA".into(),
        ["Prospecting", "Proposal", "Closed Won", "Closed Lost"]
            .map(String::from)
            .to_vec(),
    );
    state.stage_values.insert(
        "012000000000002AAA".into(),
        ["Renewal Quote", "Closed Lost"].map(String::from).to_vec(),
    );
    let m = mock(state).await;
    let r = sf("salesforce.pipeline_shape", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(1.0), "{}", r.message);
    assert!(r.message.contains("Renewals"), "{}", r.message);
    assert!(m.log().iter().any(|r| r.path.ends_with(
        "/ui-api/object-info/Opportunity/picklist-values/012000000000002AAA/StageName"
    )));
    // Only the New Business process: nothing wrong.
    let r = sf(
        "salesforce.pipeline_shape",
        &m,
        json!({ "record_types": ["New Business"] }),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(0.0), "{}", r.message);
}

#[tokio::test]
async fn source_attribution_counts_with_soql() {
    let state = SfState::default()
        .on(
            &[
                "SELECT COUNT() FROM Lead WHERE CreatedDate >= ",
                "(LeadSource = null OR LeadSource IN ('unknown', '(not set)', 'none', 'n/a'))",
            ],
            Answer::Count(38),
        )
        .on(
            &["SELECT COUNT() FROM Lead WHERE CreatedDate >= "],
            Answer::Count(100),
        );
    let m = mock(state).await;
    let r = sf("salesforce.source_attribution_coverage", &m, json!({}))
        .await
        .unwrap();
    assert_eq!((r.value, r.sample_size), (Some(62.0), Some(100)));
    assert!(
        r.message
            .starts_with("62% of Lead records created in the last 30 days"),
        "{}",
        r.message
    );
    // The window is an explicit UTC datetime literal.
    let soql = m.soql();
    let literal = soql[0].rsplit(">= ").next().unwrap();
    assert!(
        funnelgate_checker_crm::time::Utc::parse(literal).is_some(),
        "{literal}"
    );

    let m = mock(SfState::default().on(&["FROM Lead"], Answer::Count(0))).await;
    let r = sf("salesforce.source_attribution_coverage", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::NoData));
}

#[tokio::test]
async fn lead_to_revenue_both_linkages() {
    let state = SfState::default()
        .on(&["FROM Opportunity WHERE IsWon = true AND CloseDate >= ", "Id IN (SELECT ConvertedOpportunityId FROM Lead WHERE IsConverted = true AND LeadSource != null"], Answer::Count(21))
        .on(&["FROM Opportunity WHERE IsWon = true AND CloseDate >= ", "AND LeadSource != null AND LeadSource NOT IN ("], Answer::Count(30))
        .on(&["SELECT COUNT() FROM Opportunity WHERE IsWon = true AND CloseDate >= "], Answer::Count(40));
    let m = mock(state).await;
    let r = sf("salesforce.lead_to_revenue_linkage", &m, json!({}))
        .await
        .unwrap();
    assert_eq!((r.value, r.sample_size), (Some(30.0), Some(40)));
    let r = sf(
        "salesforce.lead_to_revenue_linkage",
        &m,
        json!({ "linkage": "converted_lead" }),
    )
    .await
    .unwrap();
    assert_eq!((r.value, r.sample_size), (Some(21.0), Some(40)));
    // CloseDate is a date field: a date literal.
    let first = &m.soql()[0];
    let literal = first.rsplit(">= ").next().unwrap();
    assert_eq!(literal.len(), 10, "{first}");
}

#[tokio::test]
async fn lead_conversion_through_converted_opportunities() {
    let state = SfState::default()
        .on(
            &["AND IsConverted = true AND ConvertedOpportunity.IsWon = true"],
            Answer::Count(0),
        )
        .on(&["AND IsConverted = true"], Answer::Count(25))
        .on(
            &["SELECT COUNT() FROM Lead WHERE CreatedDate >= "],
            Answer::Count(100),
        );
    let m = mock(state).await;
    let r = sf(
        "salesforce.lead_conversion_rates",
        &m,
        json!({ "max_weekly_change_percent": 0 }),
    )
    .await
    .unwrap();
    assert_eq!((r.value, r.sample_size), (Some(0.0), Some(100)));
    assert_eq!(r.verdict, Some(ProbeStatus::Fail), "{}", r.message);
    assert!(
        r.message.contains("lead→converted 25% (25 of 100)")
            && r.message.contains("converted→won converted none of 25"),
        "{}",
        r.message
    );
}

fn lead(i: usize, created_h: f64, task_h: Option<f64>) -> Value {
    let tasks = match task_h {
        Some(h) => {
            json!({ "totalSize": 1, "done": true, "records": [{ "attributes": { "type": "Task" }, "CreatedDate": hours_ago(h) }] })
        }
        None => Value::Null,
    };
    record(
        "Lead",
        &format!("00Q{i:012}"),
        json!({ "CreatedDate": hours_ago(created_h), "Tasks": tasks }),
    )
}

#[tokio::test]
async fn speed_to_lead_pages_through_next_records_url() {
    let leads = vec![
        lead(1, 10.0, Some(9.0)),
        lead(2, 20.0, Some(17.0)),
        lead(3, 30.0, Some(25.0)),
        lead(4, 40.0, None),
        lead(5, 50.0, Some(49.5)),
    ];
    let mut state = SfState::default().on(&["SELECT Id, CreatedDate, CreatedById, (SELECT CreatedDate, CreatedById, CreatedBy.UserType FROM Tasks ORDER BY CreatedDate ASC LIMIT 5) FROM Lead WHERE CreatedDate >= "], Answer::Records(leads));
    state.page_size = 2;
    let m = mock(state).await;
    let r = sf("salesforce.speed_to_lead", &m, json!({})).await.unwrap();
    // 1h, 3h, 5h, 40h (waiting), 0.5h → median 3h.
    assert_eq!(r.sample_size, Some(5));
    assert!((r.value.unwrap() - 3.0).abs() < 0.01, "{:?}", r.value);
    let paths: Vec<String> = m.log().into_iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), 3);
    assert!(
        paths[1].starts_with("/services/data/v60.0/query/01g"),
        "{paths:?}"
    );

    let r = sf("salesforce.speed_to_lead", &m, json!({ "max_records": 3 }))
        .await
        .unwrap();
    assert_eq!(r.sample_size, Some(3));
    assert!(r.message.contains("record cap"), "{}", r.message);
}

fn task(h: f64, by: &str, user_type: &str) -> Value {
    json!({ "attributes": { "type": "Task" }, "CreatedDate": hours_ago(h), "CreatedById": by,
            "CreatedBy": { "attributes": { "type": "User" }, "UserType": user_type } })
}

fn lead_with_tasks(i: usize, created_h: f64, by: &str, tasks: Vec<Value>) -> Value {
    let tasks = if tasks.is_empty() {
        Value::Null
    } else {
        json!({ "totalSize": tasks.len(), "done": true, "records": tasks })
    };
    record(
        "Lead",
        &format!("00Q{i:012}"),
        json!({ "CreatedDate": hours_ago(created_h), "CreatedById": by, "Tasks": tasks }),
    )
}

#[tokio::test]
async fn speed_to_lead_ignores_automated_touches_and_censors_untouched_leads() {
    const INTEGRATION: &str = "005000000000009AAA";
    const REP: &str = "005000000000001AAA";
    let leads = vec![
        // A task auto-created by the integration user at creation, then a rep's call 2h later.
        lead_with_tasks(
            1,
            10.0,
            INTEGRATION,
            vec![
                task(10.0, INTEGRATION, "Standard"),
                task(8.0, REP, "Standard"),
            ],
        ),
        // Only a flow's task (Automated Process user): untouched, 30h waiting.
        lead_with_tasks(
            2,
            30.0,
            INTEGRATION,
            vec![task(29.9, "005000000000002AAA", "AutomatedProcess")],
        ),
        // Only the creator's task at creation: untouched, 40h waiting.
        lead_with_tasks(
            3,
            40.0,
            INTEGRATION,
            vec![task(40.0, INTEGRATION, "Standard")],
        ),
        // Untouched, 50h.
        lead_with_tasks(4, 50.0, INTEGRATION, vec![]),
        // A rep's touch after 1h.
        lead_with_tasks(5, 5.0, INTEGRATION, vec![task(4.0, REP, "Standard")]),
    ];
    let state = SfState::default().on(
        &["(SELECT CreatedDate, CreatedById, CreatedBy.UserType FROM Tasks"],
        Answer::Records(leads),
    );
    let m = mock(state).await;
    let r = sf("salesforce.speed_to_lead", &m, json!({})).await.unwrap();
    // 2h, 30h, 40h, 50h, 1h → median 30h: the automated touches do not make it fast.
    assert!((r.value.unwrap() - 30.0).abs() < 0.1, "{r:?}");
    assert_eq!(
        r.evidence
            .get("automated_touches_ignored")
            .map(String::as_str),
        Some("2"),
        "{r:?}"
    );
    assert!(
        r.message.contains("automated or system touches"),
        "{}",
        r.message
    );
    // Counting every task (automation_touch_seconds = 0) still drops the Automated Process one.
    let r = sf(
        "salesforce.speed_to_lead",
        &m,
        json!({ "automation_touch_seconds": 0 }),
    )
    .await
    .unwrap();
    // 0h, 30h, 0h, 50h, 1h → median 1h.
    assert!((r.value.unwrap() - 1.0).abs() < 0.1, "{r:?}");
}

#[tokio::test]
async fn owner_assignment_counts_queues_and_default_owners() {
    let state = SfState::default()
        .on(
            &["AND (Owner.Type = 'Queue' OR OwnerId IN ('005000000000001AAA'))"],
            Answer::Count(6),
        )
        .on(
            &[
                "SELECT COUNT() FROM Lead WHERE CreatedDate >= ",
                "AND CreatedDate < ",
            ],
            Answer::Count(60),
        );
    let m = mock(state).await;
    let r = sf(
        "salesforce.owner_assignment",
        &m,
        json!({ "unassigned_owner_ids": ["005000000000001AAA"] }),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(10.0), Some(60)),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn duplicates_from_an_aggregate_query() {
    let groups = vec![
        record(
            "AggregateResult",
            "x",
            json!({ "Email": "a@acme.io", "dupes": 3 }),
        ),
        record(
            "AggregateResult",
            "y",
            json!({ "Email": "b@acme.io", "dupes": 2 }),
        ),
    ];
    let state = SfState::default()
        .on(&["SELECT Email, COUNT(Id) dupes FROM Lead WHERE Email != null GROUP BY Email HAVING COUNT(Id) > 1"], Answer::Records(groups))
        .on(&["SELECT COUNT() FROM Lead WHERE Email != null"], Answer::Count(100));
    let m = mock(state).await;
    let r = sf("salesforce.duplicates", &m, json!({})).await.unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(3.0), Some(100)),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn email_validity_over_new_leads() {
    let leads: Vec<Value> = [
        "a@acme.io",
        "b@acme.io",
        "sales@acme.io",
        "nope@",
        "c@acme.io",
    ]
    .iter()
    .enumerate()
    .map(|(i, e)| record("Lead", &format!("00Q{i}"), json!({ "Email": e })))
    .collect();
    let m = mock(SfState::default().on(
        &["SELECT Id, Email FROM Lead WHERE CreatedDate >= "],
        Answer::Records(leads),
    ))
    .await;
    let r = sf("salesforce.email_validity", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(40.0), Some(5)),
        "{}",
        r.message
    );
}

async fn count_error(fault: Fault) -> ProbeError {
    let m = mock(SfState::default().on(&["FROM Lead"], Answer::Count(5))).await;
    m.fault("/query", fault, None);
    run(
        "salesforce.source_attribution_coverage",
        params(&m, json!({})),
        &[("SALESFORCE", SESSION)],
        Duration::from_millis(800),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn every_failure_mode_is_a_specific_error() {
    let m = mock(SfState::default().on(&["FROM Lead"], Answer::Count(5))).await;
    let e = run(
        "salesforce.source_attribution_coverage",
        params(&m, json!({})),
        &[("SALESFORCE", "00Dbad")],
        T,
    )
    .await
    .unwrap_err();
    assert!(
        e.message.contains("401") && e.message.contains("INVALID_SESSION_ID")
            || e.message.contains("Session expired"),
        "{e}"
    );

    let e = count_error(sf_error(
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
    ))
    .await;
    assert!(
        e.message.contains("403") && e.message.contains("daily API request limit is spent"),
        "{e}"
    );
    // Every other kind: an ERROR that is not retried.
    assert_eq!(e.kind, ProbeErrorKind::Permanent, "{e}");
    let e = count_error(sf_error(
        403,
        "INSUFFICIENT_ACCESS",
        "insufficient access rights on object id",
    ))
    .await;
    assert!(
        e.message.contains("403")
            && e.message.contains("api (OAuth scope)")
            && e.message.contains("[INSUFFICIENT_ACCESS]"),
        "{e}"
    );
    let e = count_error(sf_error(
        404,
        "NOT_FOUND",
        "The requested resource does not exist",
    ))
    .await;
    assert!(e.message.contains("404"), "{e}");
    let e = count_error(Fault::Status {
        code: 429,
        body: "[]".into(),
        headers: vec![("retry-after".into(), "20".into())],
    })
    .await;
    assert_eq!(
        (e.kind, e.retry_after),
        (ProbeErrorKind::Transient, Some(Duration::from_secs(20)))
    );
    let e = count_error(sf_error(503, "SERVER_UNAVAILABLE", "down for maintenance")).await;
    assert_eq!(e.kind, ProbeErrorKind::Transient);
    assert!(
        e.message.contains("503") && e.message.contains("down for maintenance"),
        "{e}"
    );
    let e = count_error(Fault::Slow).await;
    assert!(e.message.contains("timed out"), "{e}");
    let e = count_error(Fault::Malformed).await;
    assert!(e.message.contains("malformed json"), "{e}");
    let e = count_error(Fault::Truncated).await;
    assert!(e.message.contains("truncated json"), "{e}");
    let e = count_error(sf_error(400, "MALFORMED_QUERY", "unexpected token: FORM")).await;
    assert!(
        e.message.contains("400") && e.message.contains("unexpected token"),
        "{e}"
    );
}

#[tokio::test]
async fn daily_reserve_stops_query_paging() {
    let leads: Vec<Value> = (0..6)
        .map(|i| {
            record(
                "Lead",
                &format!("00Q{i}"),
                json!({ "Email": format!("p{i}@acme.io") }),
            )
        })
        .collect();
    let mut state = SfState::default().on(&["FROM Lead"], Answer::Records(leads));
    state.page_size = 2;
    state.daily = (15_000, 1_000);
    let m = mock(state).await;
    let e = sf("salesforce.email_validity", &m, json!({}))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("daily budget nearly exhausted") && e.message.contains("999 of 15000"),
        "{e}"
    );
    assert_eq!(m.log().len(), 1);
}

#[test]
fn bad_params_are_rejected() {
    let reg = support::registry();
    for bad in [
        json!({}),
        json!({ "instance_url": "acme.my.salesforce.com" }),
        json!({ "instance_url": "https://acme.my.salesforce.com", "api_version": "60" }),
        json!({ "instance_url": "https://acme.my.salesforce.com", "object": "Lead; DELETE" }),
        json!({ "instance_url": "https://acme.my.salesforce.com", "unassigned_owner_ids": ["nope"] }),
    ] {
        let kind = if bad.get("unassigned_owner_ids").is_some() {
            "salesforce.owner_assignment"
        } else {
            "salesforce.duplicates"
        };
        let e = reg
            .build(kind, &bad)
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        assert_eq!(e.kind, ProbeErrorKind::InvalidParams, "{e}");
    }
}

/// Salesforce counts concurrent requests per org: however many probes run at once, at most
/// `MAX_CONCURRENT_CALLS_PER_ORG` of this process's calls are in flight against one org.
#[tokio::test]
async fn concurrent_calls_per_org_are_bounded() {
    let m = mock(SfState {
        latency: Duration::from_millis(150),
        ..Default::default()
    })
    .await;
    let runs = (0..12).map(|_| sf("salesforce.auth_and_quota", &m, json!({})));
    let results = futures::future::join_all(runs).await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let (max, calls) = {
        let s = m.state.lock().unwrap();
        (s.max_in_flight, s.log.len())
    };
    assert_eq!(calls, 12);
    let limit = funnelgate_checker_crm::salesforce::client::MAX_CONCURRENT_CALLS_PER_ORG;
    assert!(max <= limit, "{max} calls in flight, limit {limit}");
    assert!(max >= 2, "the runs did overlap ({max} at once)");
}

/// The org's API usage from `Sforce-Limit-Info` outlives the run that saw it: once the org is
/// under the reserve, the next run stops before its first call.
#[tokio::test]
async fn a_budget_under_the_reserve_is_remembered_across_runs() {
    let m = mock(SfState {
        daily: (15_000, 1_000),
        ..Default::default()
    })
    .await;
    // The first run learns the usage from its first reply.
    let r = sf("salesforce.auth_and_quota", &m, json!({})).await;
    assert_eq!(m.log().len(), 1, "{r:?}");
    // The next run of another kind does not call at all.
    let e = sf("salesforce.email_validity", &m, json!({}))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("daily budget nearly exhausted") && e.message.contains("999 of 15000"),
        "{e}"
    );
    assert_eq!(
        m.log().len(),
        1,
        "no call once the org is under the reserve"
    );
}
