//! Mautic kinds against a local Mautic reproducing the documented API (see `support/mautic.rs`:
//! Mautic is not installable from Debian or PyPI, so its `mautic/api-library` shapes are
//! reproduced), including paging, every failure mode, and the PHP quirks.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use funnelgate_core::ProbeStatus;
use serde_json::{Value, json};
use support::mautic::{
    BASIC, Mautic, MauticState, TOKEN, campaign, contact, email, form_field, segment,
};
use support::{Fault, hours_ago, run};

const T: Duration = Duration::from_secs(10);

fn params(m: &Mautic, extra: Value) -> Value {
    let mut p = json!({"base_url": m.base()});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

async fn mautic_with_campaigns() -> Mautic {
    let mut st = MauticState::default();
    st.campaigns.insert(1, campaign(1, "Welcome", true, &[11]));
    st.campaigns.insert(2, campaign(2, "Nurture", false, &[12]));
    st.campaigns
        .insert(3, campaign(3, "Webinar", true, &[13, 14]));
    st.emails.insert(11, email(11, "Welcome email", true));
    st.emails.insert(12, email(12, "Nurture 1", true));
    st.emails.insert(13, email(13, "Webinar invite", false));
    Mautic::start(st).await
}

#[tokio::test]
async fn auth_passes_with_basic_and_oauth2_and_reads_the_rate_limiter() {
    let m = Mautic::start(MauticState::default()).await;
    let r = run(
        "mautic.auth_and_quota",
        params(&m, json!({})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Pass), "{}", r.message);
    assert!(r.message.contains("no call budget"), "{}", r.message);
    assert_eq!(
        m.log()[0].authorization.as_deref(),
        Some("Basic YXBpOnNlY3JldA==")
    );
    m.state.lock().unwrap().rate_limit = Some((1000, 150));
    let r = run(
        "mautic.auth_and_quota",
        params(&m, json!({"auth": "oauth2"})),
        &[("MAUTIC", TOKEN)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(85.0), "{}", r.message);
    assert_eq!(
        m.log().last().unwrap().authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn bad_credentials_fail_auth_and_error_other_kinds() {
    let m = mautic_with_campaigns().await;
    let r = run(
        "mautic.auth_and_quota",
        params(&m, json!({})),
        &[("MAUTIC", "api:wrong")],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail));
    assert!(
        r.message.contains("401") && r.message.contains("API authorization denied"),
        "{}",
        r.message
    );
    let e = run(
        "mautic.lead_nurture_active",
        params(&m, json!({"required": ["Welcome"]})),
        &[("MAUTIC", "api:wrong")],
        T,
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("401"), "{e}");
    let e = run(
        "mautic.auth_and_quota",
        params(&m, json!({})),
        &[("MAUTIC", "no-colon")],
        T,
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("username:password"), "{e}");
}

#[tokio::test]
async fn api_disabled_is_a_403_naming_the_setting() {
    let m = Mautic::start(MauticState::default()).await;
    m.fault(
        "/api/contacts",
        Fault::status(
            403,
            r#"{"errors":[{"code":403,"message":"API disabled. You need to enable the API in the API settings of Mautic's Configuration.","type":"api_disabled"}]}"#,
        ),
        None,
    );
    let r = run(
        "mautic.auth_and_quota",
        params(&m, json!({})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail));
    assert!(r.message.contains("API disabled"), "{}", r.message);
}

#[tokio::test]
async fn a_required_campaign_unpublished_or_missing_counts() {
    let m = mautic_with_campaigns().await;
    let r = run(
        "mautic.lead_nurture_active",
        params(&m, json!({"required": ["Welcome", "2", "Onboarding"]})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(2.0), "{}", r.message);
    assert!(r.message.contains("turned off: `2`"), "{}", r.message);
    assert!(
        r.message.contains("not found: `Onboarding`"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn listings_page_to_the_total_and_a_short_listing_is_an_error() {
    let mut st = MauticState::default();
    for i in 1..=250 {
        st.campaigns
            .insert(i, campaign(i, &format!("C{i}"), true, &[]));
    }
    let m = Mautic::start(st).await;
    let p = params(&m, json!({"required": ["C250"]}));
    let r = run(
        "mautic.lead_nurture_active",
        p.clone(),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(0.0), "{}", r.message);
    let starts: Vec<String> = m
        .log()
        .iter()
        .filter(|r| r.path == "/api/campaigns")
        .map(|r| r.q("start").unwrap().to_string())
        .collect();
    assert_eq!(starts, ["0", "100", "200"]);
    m.state.lock().unwrap().cut_at = Some(200);
    let e = run("mautic.lead_nurture_active", p, &[("MAUTIC", BASIC)], T)
        .await
        .unwrap_err();
    assert!(
        e.message
            .contains("paging cut short after 200 items of the 250"),
        "{e}"
    );
}

#[tokio::test]
async fn failed_campaign_events_in_the_window_count() {
    let mut st = MauticState::default();
    let ev = |at: &str, log: Value| {
        json!({"event": "campaign.event", "eventId": "c1", "eventLabel": {"label": "Welcome"},
               "eventType": "Campaign action triggered", "timestamp": at, "contactId": 5,
               "details": {"log": log}})
    };
    st.events.push(ev(&hours_ago(2.0), json!({"campaign_name": "Welcome", "fail_reason": "webhook returned 500", "isScheduled": false})));
    st.events.push(ev(&hours_ago(3.0), json!({"campaign_name": "Welcome", "metadata": {"failed": 1, "reason": "email unpublished"}})));
    st.events.push(ev(
        &hours_ago(4.0),
        json!({"campaign_name": "Welcome", "metadata": {"timeout": false}}),
    ));
    st.events.push(ev(
        &hours_ago(40.0),
        json!({"campaign_name": "Old", "fail_reason": "old"}),
    ));
    let m = Mautic::start(st).await;
    let r = run(
        "mautic.flow_errors",
        params(&m, json!({})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(2.0), "{}", r.message);
    assert!(r.message.contains("webhook returned 500"), "{}", r.message);
}

#[tokio::test]
async fn a_frozen_segment_while_leads_arrive_is_measured_and_quiet_is_no_data() {
    let mut st = MauticState::default();
    st.segments.insert(1, segment(1, "New leads", "new-leads"));
    st.contacts
        .insert(1, contact(1, "old@acme.io", &hours_ago(50.0), 0, &[]));
    st.contacts
        .insert(2, contact(2, "new@acme.io", &hours_ago(2.0), 0, &[]));
    st.members.insert("new-leads".into(), vec![1]);
    let m = Mautic::start(st).await;
    let p = params(&m, json!({"segments": ["new-leads"]}));
    let r = run(
        "mautic.segment_freshness",
        p.clone(),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.value.map(f64::round), Some(50.0), "{}", r.message);
    // Only a canary arrived: nothing to judge.
    {
        let mut st = m.state.lock().unwrap();
        st.contacts.remove(&2);
        st.contacts.insert(
            3,
            contact(
                3,
                "canary+1@c.example",
                &hours_ago(1.0),
                0,
                &["funnelgate-canary"],
            ),
        );
    }
    let r = run("mautic.segment_freshness", p, &[("MAUTIC", BASIC)], T)
        .await
        .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::NoData), "{}", r.message);
    let e = run(
        "mautic.segment_freshness",
        params(&m, json!({"segments": ["nope"]})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("`nope` not found"), "{e}");
}

#[tokio::test]
async fn scoring_counts_mqls_and_fails_without_point_rules() {
    let mut st = MauticState::default();
    for i in 1..=60 {
        let pts = if i <= 3 { 150 } else { 10 };
        st.contacts.insert(
            i,
            contact(i, &format!("p{i}@acme.io"), &hours_ago(24.0), pts, &[]),
        );
    }
    st.contacts.insert(
        99,
        contact(
            99,
            "canary@c.example",
            &hours_ago(1.0),
            500,
            &["funnelgate-canary"],
        ),
    );
    st.points
        .push(json!({"id": 1, "name": "Opens email", "isPublished": true, "delta": 5}));
    let m = Mautic::start(st).await;
    let r = run(
        "mautic.scoring_configured",
        params(&m, json!({})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(3.0), "{}", r.message);
    assert_eq!(r.sample_size, Some(60), "canary excluded: {}", r.message);
    m.state.lock().unwrap().points[0]["isPublished"] = json!(false);
    let r = run(
        "mautic.scoring_configured",
        params(&m, json!({})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail), "{}", r.message);
}

#[tokio::test]
async fn unsubscribe_roundtrip_reads_do_not_contact() {
    let mut st = MauticState::default();
    let mut c = contact(1, "unsub@acme.io", &hours_ago(100.0), 0, &[]);
    c["doNotContact"] = json!([{"id": 3, "reason": 1, "comments": "User unsubscribed.", "channel": "email", "channelId": null}]);
    st.contacts.insert(1, c);
    st.contacts
        .insert(2, contact(2, "still@acme.io", &hours_ago(100.0), 0, &[]));
    let m = Mautic::start(st).await;
    let r = run(
        "mautic.unsubscribe_roundtrip",
        params(&m, json!({"email": "unsub@acme.io"})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(1.0), "{}", r.message);
    let r = run(
        "mautic.unsubscribe_roundtrip",
        params(&m, json!({"email": "still@acme.io"})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(0.0), "{}", r.message);
    let e = run(
        "mautic.unsubscribe_roundtrip",
        params(&m, json!({"email": "ghost@acme.io"})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("not a contact"), "{e}");
}

#[tokio::test]
async fn an_active_campaign_sending_a_deleted_or_unpublished_email_fails() {
    let m = mautic_with_campaigns().await;
    let r = run(
        "mautic.email_assets_valid",
        params(&m, json!({})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    // Webinar sends 13 (unpublished) and 14 (deleted); Nurture is off and not counted.
    assert_eq!(r.value, Some(2.0), "{}", r.message);
    assert!(
        r.message.contains("email 13 in `Webinar` is unpublished"),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("email 14 in `Webinar` is deleted"),
        "{}",
        r.message
    );
    m.state.lock().unwrap().vanish = vec![3];
    let e = run(
        "mautic.email_assets_valid",
        params(&m, json!({})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap_err();
    assert!(
        e.message
            .contains("campaign 3 (`Webinar`) vanished between calls"),
        "{e}"
    );
}

#[tokio::test]
async fn form_mapping_needs_hidden_mapped_utm_fields() {
    let mut st = MauticState::default();
    st.forms.insert(
        7,
        json!({"id": 7, "name": "Demo request", "alias": "demo", "isPublished": true,
               "fields": [form_field("email", "email", Some("email")),
                          form_field("utm_source", "hidden", Some("utm_source")),
                          form_field("utm_medium", "text", Some("utm_medium")),
                          form_field("utm_campaign", "hidden", None)],
               "actions": []}),
    );
    let m = Mautic::start(st).await;
    let r = run(
        "mautic.form_mapping",
        params(&m, json!({"form_id": 7, "expected_fields": ["email"]})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(2.0), "{}", r.message);
    assert!(
        r.message.contains("`utm_medium` is not a hidden field"),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("`utm_campaign` not mapped"),
        "{}",
        r.message
    );
    let e = run(
        "mautic.form_mapping",
        params(&m, json!({"form_id": 8})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("form 8 does not exist"), "{e}");
}

#[tokio::test]
async fn every_failure_mode_is_its_own_error() {
    let m = mautic_with_campaigns().await;
    let p = params(&m, json!({"required": ["Welcome"]}));
    let go = || {
        run(
            "mautic.lead_nurture_active",
            p.clone(),
            &[("MAUTIC", BASIC)],
            T,
        )
    };

    m.fault(
        "/api/campaigns",
        Fault::status(
            429,
            r#"{"errors":[{"code":429,"message":"Too many requests"}]}"#,
        )
        .with_header("retry-after", "30"),
        Some(1),
    );
    let e = go().await.unwrap_err();
    assert!(
        e.is_transient() && e.message.contains("rate limited, retry after 30s"),
        "{e}"
    );
    assert_eq!(e.retry_after, Some(Duration::from_secs(30)));

    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&(jiff::Timestamp::now() + Duration::from_secs(120)))
        .expect("an http date");
    m.fault(
        "/api/campaigns",
        Fault::status(429, "").with_header("retry-after", &date),
        Some(1),
    );
    let e = go().await.unwrap_err();
    let wait = e.retry_after.unwrap();
    assert!(
        wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
        "{wait:?} from an http-date"
    );

    // A short Retry-After is waited for once, inside the run.
    m.fault(
        "/api/campaigns",
        Fault::status(429, "").with_header("retry-after", "0"),
        Some(1),
    );
    assert_eq!(go().await.unwrap().value, Some(0.0));

    m.fault(
        "/api/campaigns",
        Fault::status(503, "<html>maintenance</html>"),
        Some(4),
    );
    let e = go().await.unwrap_err();
    assert!(
        e.is_transient() && e.message.contains("503") && e.message.contains("failing"),
        "{e}"
    );

    m.fault("/api/campaigns", Fault::Malformed, Some(1));
    let e = go().await.unwrap_err();
    assert!(e.message.contains("malformed json"), "{e}");

    m.fault("/api/campaigns", Fault::Truncated, Some(1));
    let e = go().await.unwrap_err();
    assert!(e.message.contains("truncated json"), "{e}");

    m.fault("/api/campaigns", Fault::status(403, r#"{"errors":[{"code":403,"message":"You do not have access to the requested area/action.","type":"access_denied"}]}"#), Some(1));
    let e = go().await.unwrap_err();
    assert!(
        e.message.contains("403") && e.message.contains("do not have access"),
        "{e}"
    );
    assert!(
        e.message.contains("view permission"),
        "names what is missing: {e}"
    );
}

#[tokio::test]
async fn php_empty_collections_are_empty_listings() {
    let m = Mautic::start(MauticState::default()).await;
    let r = run(
        "mautic.lead_nurture_active",
        params(&m, json!({"required": ["Welcome"]})),
        &[("MAUTIC", BASIC)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(1.0), "{}", r.message);
}
