//! HubSpot automation kinds against a local HubSpot (see `support/hubspot.rs`), through the
//! shared `funnelgate-vendor-hubspot` client and its date-based paths.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use funnelgate_core::ProbeStatus;
use serde_json::{Value, json};
use support::hubspot::{HubSpotMock, HubState, TOKEN, email, flow, flow_detail, form};
use support::{Fault, run};

const T: Duration = Duration::from_secs(10);

fn params(m: &HubSpotMock, extra: Value) -> Value {
    let mut p = json!({"base_url": m.base()});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

async fn probe(
    kind: &str,
    m: &HubSpotMock,
    extra: Value,
) -> Result<funnelgate_core::Measurement, funnelgate_checker_sdk::ProbeError> {
    run(kind, params(m, extra), &[("HUBSPOT_TOKEN", TOKEN)], T).await
}

fn state() -> HubState {
    let mut st = HubState {
        page_size: 2,
        ..Default::default()
    };
    st.flows = vec![
        flow("101", "Welcome", true),
        flow("102", "Nurture", false),
        flow("103", "Webinar", true),
    ];
    st.flow_details
        .insert("101".into(), flow_detail("101", "Welcome", &["9001"]));
    st.flow_details.insert(
        "103".into(),
        flow_detail("103", "Webinar", &["9002", "9003"]),
    );
    st.emails
        .insert("9001".into(), email("9001", "Welcome", "AUTOMATED"));
    st.emails
        .insert("9002".into(), email("9002", "Invite", "AUTOMATED_DRAFT"));
    st
}

#[tokio::test]
async fn flows_page_through_the_date_based_path() {
    let m = HubSpotMock::start(state()).await;
    let r = probe(
        "hubspot.lead_nurture_active",
        &m,
        json!({"required": ["Welcome", "102"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(1.0), "{}", r.message);
    assert!(r.message.contains("turned off: `102`"), "{}", r.message);
    let paths: Vec<String> = m.log().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.iter().all(|p| p == "/automation/flows/2026-09"),
        "{paths:?}"
    );
    assert_eq!(paths.len(), 2, "two pages of two");
    let r = probe(
        "hubspot.lead_nurture_active",
        &m,
        json!({"required": ["Welcome"], "api_version": "2027-03"}),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(0.0));
    assert_eq!(m.log().last().unwrap().path, "/automation/flows/2027-03");
}

#[tokio::test]
async fn an_enabled_flow_sending_a_draft_or_deleted_email_fails() {
    let m = HubSpotMock::start(state()).await;
    let r = probe("hubspot.email_assets_valid", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(2.0), "{}", r.message);
    assert!(
        r.message
            .contains("email 9002 in `Webinar` is not published (state `AUTOMATED_DRAFT`)"),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("email 9003 in `Webinar` is deleted"),
        "{}",
        r.message
    );
    m.state.lock().unwrap().flow_details.remove("103");
    let e = probe("hubspot.email_assets_valid", &m, json!({}))
        .await
        .unwrap_err();
    assert!(e.message.contains("flow 103 (`Webinar`) vanished"), "{e}");
}

#[tokio::test]
async fn forms_need_their_hidden_utm_fields() {
    let mut st = state();
    st.forms.insert(
        "f-1".into(),
        form(
            "f-1",
            "Demo",
            &[
                ("email", false),
                ("utm_source", true),
                ("utm_medium", true),
                ("utm_campaign", false),
            ],
        ),
    );
    let m = HubSpotMock::start(st).await;
    let r = probe(
        "hubspot.form_mapping",
        &m,
        json!({"form_id": "f-1", "expected_fields": ["email"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(1.0), "{}", r.message);
    assert!(
        r.message.contains("`utm_campaign` is not a hidden field"),
        "{}",
        r.message
    );
    assert_eq!(m.log().last().unwrap().path, "/marketing/forms/2026-09/f-1");
}

#[tokio::test]
async fn scoring_and_unsubscribe() {
    let mut st = state();
    st.properties =
        vec![json!({"name": "hubspotscore", "type": "number", "archived": false, "options": []})];
    let now_ms = jiff::Timestamp::now().as_millisecond();
    for i in 0..55 {
        let score = if i < 4 { "120" } else { "5" };
        st.contacts.push(json!({"id": i.to_string(), "properties": {"createdate": (now_ms - 3_600_000).to_string(), "hubspotscore": score}}));
    }
    st.prefs.insert("unsub@acme.io".into(), json!({"recipient": "unsub@acme.io", "subscriptionStatuses": [
        {"id": "1", "name": "Marketing", "description": "", "status": "NOT_SUBSCRIBED", "sourceOfStatus": "SUBSCRIPTION_STATUS", "legalBasis": null, "legalBasisExplanation": null}]}));
    st.prefs.insert("still@acme.io".into(), json!({"recipient": "still@acme.io", "subscriptionStatuses": [
        {"id": "1", "name": "Marketing", "description": "", "status": "SUBSCRIBED", "sourceOfStatus": "SUBSCRIPTION_STATUS"}]}));
    let m = HubSpotMock::start(st).await;
    let r = probe("hubspot.scoring_configured", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(4.0), "{}", r.message);
    assert_eq!(r.sample_size, Some(55));
    let r = probe(
        "hubspot.scoring_configured",
        &m,
        json!({"score_property": "lead_score_v2"}),
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail), "{}", r.message);
    let r = probe(
        "hubspot.unsubscribe_roundtrip",
        &m,
        json!({"email": "unsub@acme.io"}),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(1.0));
    let r = probe(
        "hubspot.unsubscribe_roundtrip",
        &m,
        json!({"email": "still@acme.io"}),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(0.0));
    assert!(
        r.message.contains("SUBSCRIBED to Marketing"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn auth_budget_bad_token_and_spent_quota() {
    let mut st = state();
    st.daily = Some((500_000, 100_000));
    let m = HubSpotMock::start(st).await;
    let r = probe("hubspot.auth_and_quota", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(80.0), "{}", r.message);
    let r = run(
        "hubspot.auth_and_quota",
        params(&m, json!({})),
        &[("HUBSPOT_TOKEN", "pat-wrong")],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail), "{}", r.message);
    m.fault(
        "/crm/objects",
        Fault::status(429, r#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"x","policyName":"DAILY","groupName":"api"}"#),
        Some(1),
    );
    let r = probe("hubspot.auth_and_quota", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(100.0), "{}", r.message);
    assert!(r.message.contains("resets at midnight"), "{}", r.message);
    m.fault(
        "/automation/flows",
        Fault::status(403, r#"{"status":"error","message":"This app hasn't been granted all required scopes to make this call.","correlationId":"x","errors":[{"message":"One or more of the following scopes are required.","context":{"requiredGranularScopes":["automation"]}}],"category":"MISSING_SCOPES"}"#),
        Some(1),
    );
    let e = probe(
        "hubspot.lead_nurture_active",
        &m,
        json!({"required": ["Welcome"]}),
    )
    .await
    .unwrap_err();
    assert!(
        e.message.contains("403") && e.message.contains("automation"),
        "{e}"
    );
    m.fault("/automation/flows", Fault::Malformed, Some(1));
    let e = probe(
        "hubspot.lead_nurture_active",
        &m,
        json!({"required": ["Welcome"]}),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("malformed json"), "{e}");
}
