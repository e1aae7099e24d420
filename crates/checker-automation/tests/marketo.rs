//! Marketo kinds against a local Marketo reproducing the documented REST API (see
//! `support/marketo.rs`; `tests/fidelity.rs` has `marketorestpython` parse the same replies):
//! token, envelope error codes, both paging styles, and every failure mode.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use funnelgate_core::ProbeStatus;
use serde_json::{Value, json};
use support::marketo::{
    CHANGE_SCORE, Marketo, MarketoState, NEW_LEAD, SECRET, SEND_ALERT_FAILED, activity,
    email_asset, form_field, lead_fields, smart_campaign,
};
use support::{Fault, hours_ago, run};

const T: Duration = Duration::from_secs(10);

fn params(m: &Marketo, extra: Value) -> Value {
    let mut p = json!({"base_url": m.base()});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

async fn probe(
    kind: &str,
    m: &Marketo,
    extra: Value,
) -> Result<funnelgate_core::Measurement, funnelgate_checker_sdk::ProbeError> {
    run(kind, params(m, extra), &[("MARKETO", SECRET)], T).await
}

#[tokio::test]
async fn auth_reads_daily_usage_against_the_quota() {
    let m = Marketo::start(MarketoState {
        usage_today: 42_000,
        ..Default::default()
    })
    .await;
    let r = probe("marketo.auth_and_quota", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(84.0), "{}", r.message);
    assert!(r.message.contains("midnight US Central"), "{}", r.message);
    let usage = m
        .log()
        .into_iter()
        .find(|r| r.path.ends_with("usage.json"))
        .unwrap();
    assert_eq!(usage.authorization.as_deref(), Some("Bearer token-1"));
    let token = m
        .log()
        .into_iter()
        .find(|r| r.path == "/identity/oauth/token")
        .unwrap();
    assert_eq!(token.q("grant_type"), Some("client_credentials"));
}

#[tokio::test]
async fn bad_client_credentials_and_denied_roles_fail_auth() {
    let m = Marketo::start(MarketoState::default()).await;
    let r = run(
        "marketo.auth_and_quota",
        params(&m, json!({})),
        &[("MARKETO", "client-id:wrong")],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail));
    assert!(
        r.message.contains("Bad client credentials"),
        "{}",
        r.message
    );
    assert!(
        !r.message.contains("wrong"),
        "the secret never shows: {}",
        r.message
    );
    m.code("usage.json", "603", Some(1));
    let r = probe("marketo.auth_and_quota", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail));
    assert!(r.message.contains("access denied (603"), "{}", r.message);
}

#[tokio::test]
async fn quota_exhausted_is_full_for_auth_and_an_error_with_reset_elsewhere() {
    let m = Marketo::start(MarketoState::default()).await;
    m.code("usage.json", "607", Some(1));
    let r = probe("marketo.auth_and_quota", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(100.0));
    assert!(
        r.message.contains("resets at midnight US Central"),
        "{}",
        r.message
    );
    m.code("smartCampaigns", "607", Some(1));
    let e = probe(
        "marketo.lead_nurture_active",
        &m,
        json!({"required": ["Welcome"]}),
    )
    .await
    .unwrap_err();
    assert!(
        e.message.contains("daily api quota exhausted (607") && e.message.contains("resets"),
        "{e}"
    );
    assert!(!e.is_transient(), "retrying before the reset cannot help");
}

#[tokio::test]
async fn every_marketo_code_is_its_own_error() {
    let m = Marketo::start(MarketoState {
        campaigns: vec![smart_campaign(1, "Welcome", true)],
        ..Default::default()
    })
    .await;
    let go = || {
        probe(
            "marketo.lead_nurture_active",
            &m,
            json!({"required": ["Welcome"]}),
        )
    };
    m.code("smartCampaigns", "606", Some(1));
    let e = go().await.unwrap_err();
    assert!(
        e.is_transient() && e.message.contains("rate limited (606"),
        "{e}"
    );
    assert_eq!(e.retry_after, Some(Duration::from_secs(20)));
    m.code("smartCampaigns", "615", Some(1));
    let e = go().await.unwrap_err();
    assert!(
        e.is_transient() && e.message.contains("concurrent access limit"),
        "{e}"
    );
    m.code("smartCampaigns", "611", Some(1));
    let e = go().await.unwrap_err();
    assert!(
        e.is_transient() && e.message.contains("marketo is failing (611"),
        "{e}"
    );
    m.code("smartCampaigns", "601", Some(1));
    let e = go().await.unwrap_err();
    assert!(e.message.contains("access token rejected (601"), "{e}");
    // An expired token is renewed once and the call succeeds.
    m.code("smartCampaigns", "602", Some(1));
    assert_eq!(go().await.unwrap().value, Some(0.0));
    assert_eq!(m.state.lock().unwrap().tokens_issued, 6);
    // A failing vendor is retried by the sdk's policy (four attempts), then named.
    m.fault(
        "smartCampaigns",
        Fault::status(502, "<html>bad gateway</html>"),
        Some(4),
    );
    let e = go().await.unwrap_err();
    assert!(
        e.message.contains("502") && e.message.contains("gave up after 4 attempts"),
        "{e}"
    );
    m.fault("smartCampaigns", Fault::status(503, ""), Some(1));
    assert_eq!(
        go().await.unwrap().value,
        Some(0.0),
        "one 503 is retried away"
    );
    m.fault("smartCampaigns", Fault::Malformed, Some(1));
    assert!(go().await.unwrap_err().message.contains("malformed json"));
    m.fault(
        "smartCampaigns",
        Fault::status(429, "").with_header("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(1),
    );
    // An http-date in the past means "retry now": waited for inline, then the call succeeds.
    assert_eq!(go().await.unwrap().value, Some(0.0));
}

#[tokio::test]
async fn smart_campaigns_page_by_offset() {
    let mut campaigns = Vec::new();
    for i in 1..=450 {
        campaigns.push(smart_campaign(i, &format!("C{i}"), i != 420));
    }
    let m = Marketo::start(MarketoState {
        campaigns,
        ..Default::default()
    })
    .await;
    let r = probe(
        "marketo.lead_nurture_active",
        &m,
        json!({"required": ["C1", "C420", "449"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(1.0), "{}", r.message);
    assert!(r.message.contains("turned off: `C420`"), "{}", r.message);
    let offsets: Vec<String> = m
        .log()
        .iter()
        .filter(|r| r.path.ends_with("smartCampaigns.json"))
        .map(|r| r.q("offset").unwrap().to_string())
        .collect();
    assert_eq!(offsets, ["0", "200", "400"]);
}

#[tokio::test]
async fn flow_errors_follow_next_page_tokens_and_detect_a_cut_listing() {
    let mut acts = Vec::new();
    for i in 0..7 {
        acts.push(activity(
            i,
            100 + i,
            SEND_ALERT_FAILED,
            &hours_ago(1.0),
            &[("Reason", json!("smtp relay refused"))],
        ));
    }
    acts.push(activity(50, 1, SEND_ALERT_FAILED, &hours_ago(30.0), &[]));
    acts.push(activity(51, 1, NEW_LEAD, &hours_ago(1.0), &[]));
    let m = Marketo::start(MarketoState {
        activities: acts,
        page_size: 3,
        ..Default::default()
    })
    .await;
    let p = json!({"error_activity_types": ["Send Alert Failed"]});
    let r = probe("marketo.flow_errors", &m, p.clone()).await.unwrap();
    assert_eq!(r.value, Some(7.0), "{}", r.message);
    assert!(r.message.contains("smtp relay refused"), "{}", r.message);
    let pages = m
        .log()
        .iter()
        .filter(|r| r.path.ends_with("activities.json"))
        .count();
    assert_eq!(pages, 3);
    m.state.lock().unwrap().cut_after_pages = Some(2);
    let e = probe("marketo.flow_errors", &m, p).await.unwrap_err();
    assert!(e.message.contains("paging cut short after 6 items"), "{e}");
    let e = probe(
        "marketo.flow_errors",
        &m,
        json!({"error_activity_types": ["Flow Exploded"]}),
    )
    .await
    .unwrap_err();
    assert!(
        e.message.contains("`Flow Exploded` does not exist") && e.message.contains("Change Score"),
        "{e}"
    );
}

#[tokio::test]
async fn scoring_counts_leads_crossing_the_threshold() {
    let mut acts = Vec::new();
    for i in 0..60 {
        acts.push(activity(i, i, NEW_LEAD, &hours_ago(48.0), &[]));
    }
    let score = |id, lead, old: i64, new: i64| {
        activity(
            id,
            lead,
            CHANGE_SCORE,
            &hours_ago(24.0),
            &[
                ("Old Value", json!(old)),
                ("New Value", json!(new)),
                ("Change Value", json!("+10")),
            ],
        )
    };
    acts.push(score(100, 1, 95, 105));
    acts.push(score(101, 2, 90, 120));
    acts.push(score(102, 2, 120, 130)); // already an MQL: not a second crossing
    acts.push(score(103, 3, 10, 20));
    let m = Marketo::start(MarketoState {
        activities: acts,
        lead_fields: lead_fields(true),
        ..Default::default()
    })
    .await;
    let r = probe("marketo.scoring_configured", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(2.0), "{}", r.message);
    assert_eq!(r.sample_size, Some(60));
    m.state.lock().unwrap().lead_fields = lead_fields(false);
    let r = probe("marketo.scoring_configured", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail), "{}", r.message);
    assert!(r.message.contains("no `leadScore` field"), "{}", r.message);
}

#[tokio::test]
async fn unsubscribe_reads_the_lead_field() {
    let mut st = MarketoState::default();
    st.leads.insert(
        1,
        json!({"id": 1, "email": "unsub@acme.io", "unsubscribed": true}),
    );
    st.leads.insert(
        2,
        json!({"id": 2, "email": "still@acme.io", "unsubscribed": false}),
    );
    let m = Marketo::start(st).await;
    let r = probe(
        "marketo.unsubscribe_roundtrip",
        &m,
        json!({"email": "unsub@acme.io"}),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(1.0));
    let r = probe(
        "marketo.unsubscribe_roundtrip",
        &m,
        json!({"email": "still@acme.io"}),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(0.0));
    let e = probe(
        "marketo.unsubscribe_roundtrip",
        &m,
        json!({"email": "ghost@acme.io"}),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("not a lead"), "{e}");
    let q = m
        .log()
        .into_iter()
        .find(|r| r.path == "/rest/v1/leads.json")
        .unwrap();
    assert_eq!(q.q("filterType"), Some("email"));
}

#[tokio::test]
async fn draft_and_deleted_emails_fail() {
    let mut st = MarketoState::default();
    st.emails.insert(1, email_asset(1, "Welcome", "approved"));
    st.emails.insert(2, email_asset(2, "Nurture", "draft"));
    let m = Marketo::start(st).await;
    let r = probe(
        "marketo.email_assets_valid",
        &m,
        json!({"email_ids": [1, 2, 3]}),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(2.0), "{}", r.message);
    assert!(
        r.message.contains("not approved (status `draft`)"),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("email 3 in `active flows` is deleted"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn form_fields_need_hidden_utm_fields() {
    let mut st = MarketoState::default();
    st.forms.insert(
        1001,
        vec![
            form_field("Email", "email"),
            form_field("utm_source", "hidden"),
            form_field("utm_medium", "string"),
        ],
    );
    let m = Marketo::start(st).await;
    let r = probe(
        "marketo.form_mapping",
        &m,
        json!({"form_id": 1001, "expected_fields": ["Email"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(2.0), "{}", r.message);
    let e = probe("marketo.form_mapping", &m, json!({"form_id": 5}))
        .await
        .unwrap_err();
    assert!(e.message.contains("form 5 does not exist"), "{e}");
}
