//! HubSpot kinds against a local HubSpot reproducing the documented behaviour: paging, search
//! limits, rate limits, daily budget headers and every failure mode.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use funnelgate_checker_sdk::{ProbeErrorKind, Runner, SecretStore};
use funnelgate_core::ProbeStatus;
use serde_json::{Value, json};
use support::hubspot::{
    HubSpotMock, HubState, Obj, TOKEN, missing_scope, pipeline, rate_limited, stage,
    standard_properties,
};
use support::{Fault, days_ago, hours_ago, init, run};

const T: Duration = Duration::from_secs(10);

async fn mock(state: HubState) -> HubSpotMock {
    init();
    HubSpotMock::start(state).await
}

fn params(m: &HubSpotMock, extra: Value) -> Value {
    let mut p = json!({ "base_url": m.base(), "search_interval_ms": 0 });
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    p
}

async fn hs(
    kind: &str,
    m: &HubSpotMock,
    extra: Value,
) -> Result<funnelgate_core::Measurement, funnelgate_checker_sdk::ProbeError> {
    run(kind, params(m, extra), &[("HUBSPOT", TOKEN)], T).await
}

fn objects(list: &[(&str, Vec<Obj>)]) -> HashMap<String, Vec<Obj>> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn contacts(n: usize, f: impl Fn(usize) -> Obj) -> Vec<Obj> {
    (0..n).map(f).collect()
}

#[tokio::test]
async fn auth_and_quota_reads_the_daily_budget_and_sends_the_token() {
    let m = mock(HubState {
        daily: Some((500_000, 100_001)),
        objects: objects(&[("contacts", vec![])]),
        ..Default::default()
    })
    .await;
    let r = hs("hubspot.auth_and_quota", &m, json!({})).await.unwrap();
    assert_eq!(r.value, Some(20.0));
    assert!(
        r.message
            .contains("20% of the daily API request budget remains"),
        "{}",
        r.message
    );
    assert_eq!(r.evidence.get("burst_max").map(String::as_str), Some("190"));
    let log = m.log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, "/crm/objects/2026-09/contacts");
    assert_eq!(log[0].query.get("limit").map(String::as_str), Some("1"));
    assert_eq!(
        log[0].header("authorization").as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn auth_and_quota_fails_on_a_rejected_token_and_never_echoes_it() {
    let m = mock(HubState {
        objects: objects(&[("contacts", vec![])]),
        ..Default::default()
    })
    .await;
    let secret = "pat-na1-wrong-secret-value";
    let r = run(
        "hubspot.auth_and_quota",
        params(&m, json!({})),
        &[("HUBSPOT", secret)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail));
    assert!(r.message.contains("401"), "{}", r.message);
    assert!(!r.message.contains(secret), "{}", r.message);
}

#[tokio::test]
async fn auth_and_quota_fails_on_missing_scope_naming_it() {
    let m = mock(HubState::default()).await;
    m.fault(
        "/crm/objects/2026-09/contacts",
        missing_scope("crm.objects.contacts.read"),
        None,
    );
    let r = hs("hubspot.auth_and_quota", &m, json!({})).await.unwrap();
    assert_eq!(r.verdict, Some(ProbeStatus::Fail));
    assert!(
        r.message.contains("403") && r.message.contains("crm.objects.contacts.read"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn auth_and_quota_passes_without_budget_headers() {
    let m = mock(HubState {
        objects: objects(&[("contacts", vec![])]),
        ..Default::default()
    })
    .await;
    let r = hs("hubspot.auth_and_quota", &m, json!({})).await.unwrap();
    assert_eq!((r.value, r.verdict), (None, Some(ProbeStatus::Pass)));
    assert!(r.message.contains("did not report"), "{}", r.message);
}

#[tokio::test]
async fn required_properties_default_set_passes_and_gaps_are_named() {
    let m = mock(HubState {
        properties: standard_properties(),
        ..Default::default()
    })
    .await;
    let r = hs("hubspot.required_properties", &m, json!({}))
        .await
        .unwrap();
    assert_eq!((r.value, r.verdict), (Some(0.0), None), "{}", r.message);
    let paths: Vec<String> = m.log().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        vec![
            "/crm/properties/2026-09/contacts",
            "/crm/properties/2026-09/deals"
        ]
    );

    let required = json!([
        { "object": "contacts", "name": "utm_source" },
        { "object": "contacts", "name": "email", "types": ["number"] },
        { "object": "contacts", "name": "hs_analytics_source", "options": ["PAID_SEARCH", "PAID_SOCIAL"] },
    ]);
    let r = hs(
        "hubspot.required_properties",
        &m,
        json!({ "required": required }),
    )
    .await
    .unwrap();
    assert_eq!(r.value, Some(2.0));
    assert_eq!(r.verdict, Some(ProbeStatus::Warn));
    assert!(r.message.contains("contacts.utm_source"), "{}", r.message);
    assert!(r.message.contains("lacks PAID_SOCIAL"), "{}", r.message);
}

#[tokio::test]
async fn required_properties_on_a_wrong_object_type_is_a_404_error() {
    let m = mock(HubState {
        properties: standard_properties(),
        ..Default::default()
    })
    .await;
    let e = hs(
        "hubspot.required_properties",
        &m,
        json!({ "required": [{ "object": "dealz", "name": "amount" }] }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent);
    assert!(
        e.message.contains("404") && e.message.contains("dealz"),
        "{e}"
    );
}

#[tokio::test]
async fn pipeline_shape_judges_won_stage_and_probabilities() {
    let good = pipeline(
        "default",
        "Sales",
        vec![
            stage("a", "Appointment", 0, "0.2", false),
            stage("b", "Demo", 1, "0.6", false),
            stage("w", "Closed won", 2, "1.0", true),
            stage("l", "Closed lost", 3, "0.0", true),
        ],
    );
    let bad = pipeline(
        "renewals",
        "Renewals",
        vec![
            stage("a", "Call", 0, "0.8", false),
            stage("b", "Offer", 1, "0.4", false),
        ],
    );
    let mut pipelines = HashMap::new();
    pipelines.insert("deals".to_string(), vec![good, bad]);
    let m = mock(HubState {
        pipelines,
        ..Default::default()
    })
    .await;
    let r = hs(
        "hubspot.pipeline_shape",
        &m,
        json!({ "pipelines": ["Sales"] }),
    )
    .await
    .unwrap();
    assert_eq!((r.value, r.verdict), (Some(0.0), None), "{}", r.message);
    let r = hs("hubspot.pipeline_shape", &m, json!({})).await.unwrap();
    assert_eq!(r.value, Some(1.0));
    assert_eq!(r.verdict, Some(ProbeStatus::Warn));
    assert!(
        r.message.contains("`Renewals` has no closed-won stage"),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("`Offer` (40%) comes after `Call` (80%)"),
        "{}",
        r.message
    );
    assert_eq!(m.log()[0].path, "/crm/pipelines/2026-09/deals");
}

#[tokio::test]
async fn pipeline_shape_on_an_empty_account_is_an_error() {
    let mut pipelines = HashMap::new();
    pipelines.insert("deals".to_string(), vec![]);
    let m = mock(HubState {
        pipelines,
        ..Default::default()
    })
    .await;
    let e = hs("hubspot.pipeline_shape", &m, json!({}))
        .await
        .unwrap_err();
    assert!(e.message.contains("no deals pipelines"), "{e}");
}

#[tokio::test]
async fn source_attribution_counts_with_search_totals() {
    // 10 recent contacts: 6 with a real source, 2 without, 2 "unknown"; 5 old ones without.
    let mut list = contacts(6, |i| {
        Obj::new(i, &days_ago(2.0), &[("hs_analytics_source", "PAID_SEARCH")])
    });
    list.extend(contacts(2, |i| Obj::new(100 + i, &days_ago(3.0), &[])));
    list.extend(contacts(2, |i| {
        Obj::new(
            200 + i,
            &days_ago(4.0),
            &[("hs_analytics_source", "Unknown")],
        )
    }));
    list.extend(contacts(5, |i| Obj::new(300 + i, &days_ago(60.0), &[])));
    let m = mock(HubState {
        objects: objects(&[("contacts", list)]),
        ..Default::default()
    })
    .await;
    let r = hs("hubspot.source_attribution_coverage", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(60.0));
    assert_eq!(r.sample_size, Some(10));
    assert_eq!(
        r.window.map(|w| w.get()),
        Some(Duration::from_secs(30 * 86_400))
    );
    assert!(
        r.message.starts_with(
            "60% of contacts created in the last 30 days have a known original source"
        ),
        "{}",
        r.message
    );
    let log = m.log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].path, "/crm/objects/2026-09/contacts/search");
    assert_eq!(log[0].body["limit"], json!(1));
    assert_eq!(
        log[0].body["filterGroups"][0]["filters"][0]["propertyName"],
        json!("createdate")
    );
    assert_eq!(
        log[0].body["filterGroups"][0]["filters"][0]["operator"],
        json!("GTE")
    );
    assert_eq!(
        log[1].body["filterGroups"].as_array().map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn source_attribution_with_no_new_contacts_is_no_data() {
    let m = mock(HubState {
        objects: objects(&[("contacts", vec![])]),
        ..Default::default()
    })
    .await;
    let r = hs("hubspot.source_attribution_coverage", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (r.verdict, r.sample_size),
        (Some(ProbeStatus::NoData), Some(0))
    );
}

fn won_deal(id: usize, closed_days_ago: f64, source: Option<&str>) -> Obj {
    let mut props = vec![("hs_is_closed_won", "true")];
    let closed = days_ago(closed_days_ago);
    props.push(("closedate", &closed));
    if let Some(s) = source {
        props.push(("hs_analytics_source", s));
    }
    Obj::new(id, &days_ago(closed_days_ago + 10.0), &props)
}

fn linkage_state() -> HubState {
    // Won in the window: 1 (own source), 2 (contact 11 sourced), 3 (contact 12 unsourced),
    // 4 (no contacts). Won too long ago: 5. Lost: 6.
    let deals = vec![
        won_deal(1, 5.0, Some("PAID_SEARCH")),
        won_deal(2, 10.0, None),
        won_deal(3, 20.0, None),
        won_deal(4, 30.0, None),
        won_deal(5, 200.0, Some("PAID_SEARCH")),
        Obj::new(
            6,
            &days_ago(5.0),
            &[("hs_is_closed_won", "false"), ("closedate", &days_ago(2.0))],
        ),
    ];
    let contacts = vec![
        Obj::new(
            11,
            &days_ago(50.0),
            &[("hs_analytics_source", "ORGANIC_SEARCH")],
        ),
        Obj::new(12, &days_ago(50.0), &[]),
    ];
    let mut associations = HashMap::new();
    associations.insert("2".to_string(), vec!["11".to_string()]);
    associations.insert("3".to_string(), vec!["12".to_string()]);
    HubState {
        objects: objects(&[("deals", deals), ("contacts", contacts)]),
        associations,
        ..Default::default()
    }
}

#[tokio::test]
async fn lead_to_revenue_traces_won_deals_through_associated_contacts() {
    let m = mock(linkage_state()).await;
    let r = hs("hubspot.lead_to_revenue_linkage", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(2.0), Some(4)),
        "{}",
        r.message
    );
    assert!(
        r.message
            .starts_with("2 of 4 deals won in the last 90 days trace back"),
        "{}",
        r.message
    );
    let paths: Vec<String> = m.log().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.contains(&"/crm/associations/2026-09/deals/contacts/batch/read".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"/crm/objects/2026-09/contacts/batch/read".to_string()),
        "{paths:?}"
    );

    let r = hs(
        "hubspot.lead_to_revenue_linkage",
        &m,
        json!({ "linkage": "deal_property" }),
    )
    .await
    .unwrap();
    assert_eq!((r.value, r.sample_size), (Some(1.0), Some(4)));
}

#[tokio::test]
async fn lead_to_revenue_as_proof_is_no_data_below_the_minimum_sample() {
    let m = mock(linkage_state()).await;
    let runner = Runner::new(
        support::registry(),
        SecretStore::new(
            [("FUNNELGATE_SECRET_HUBSPOT".to_string(), TOKEN.to_string())],
            None,
        ),
    )
    .unwrap();
    let mut spec = support::spec(
        "hubspot.lead_to_revenue_linkage",
        params(&m, json!({})),
        Some("HUBSPOT"),
        T,
    );
    spec.proof = true;
    spec.min_sample = Some(30);
    spec.thresholds =
        funnelgate_checker_crm::default_thresholds("hubspot.lead_to_revenue_linkage").unwrap();
    let result = runner.run_one(spec.clone()).await;
    assert_eq!(result.status, ProbeStatus::NoData, "{}", result.message);
    assert_eq!(result.sample_size, Some(4));

    let empty = mock(HubState {
        objects: objects(&[("deals", vec![]), ("contacts", vec![])]),
        ..Default::default()
    })
    .await;
    spec.params = params(&empty, json!({}));
    spec.min_sample = None;
    let result = runner.run_one(spec).await;
    assert_eq!(
        result.status,
        ProbeStatus::NoData,
        "zero won deals is NO_DATA, never PASS: {}",
        result.message
    );
}

fn lifecycle(id: usize, stages: &[(&str, f64)]) -> Obj {
    let props: Vec<(String, String)> = stages
        .iter()
        .map(|(s, d)| (format!("hs_lifecyclestage_{s}_date"), days_ago(*d)))
        .collect();
    let refs: Vec<(&str, &str)> = props
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Obj::new(id, &days_ago(40.0), &refs)
}

#[tokio::test]
async fn lead_conversion_rates_fail_on_a_dead_step() {
    // 40 leads in the window; 20 became MQL; none went further.
    let mut list = Vec::new();
    for i in 0..40 {
        let mut st = vec![("lead", 20.0)];
        if i < 20 {
            st.push(("marketingqualifiedlead", 15.0));
        }
        list.push(lifecycle(i, &st));
    }
    let m = mock(HubState {
        objects: objects(&[("contacts", list)]),
        ..Default::default()
    })
    .await;
    let stages = json!(["lead", "marketingqualifiedlead", "customer"]);
    let r = hs(
        "hubspot.lead_conversion_rates",
        &m,
        json!({ "stages": stages }),
    )
    .await
    .unwrap();
    assert_eq!(r.sample_size, Some(40));
    assert_eq!(r.value, Some(0.0));
    assert_eq!(r.verdict, Some(ProbeStatus::Fail));
    assert!(
        r.message
            .contains("lead→marketingqualifiedlead 50% (20 of 40)"),
        "{}",
        r.message
    );
    assert!(
        r.message
            .contains("marketingqualifiedlead→customer converted none of 20 entrants"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn lead_conversion_rates_warn_on_an_unstable_week() {
    // Previous week: 25 leads, 20 converted (80%). Last week: 25 leads, 5 converted (20%).
    let mut list = Vec::new();
    for i in 0..25 {
        let mut st = vec![("lead", 10.0)];
        if i < 20 {
            st.push(("customer", 9.0));
        }
        list.push(lifecycle(i, &st));
    }
    for i in 0..25 {
        let mut st = vec![("lead", 3.0)];
        if i < 5 {
            st.push(("customer", 2.0));
        }
        list.push(lifecycle(100 + i, &st));
    }
    let m = mock(HubState {
        objects: objects(&[("contacts", list)]),
        ..Default::default()
    })
    .await;
    let r = hs(
        "hubspot.lead_conversion_rates",
        &m,
        json!({ "stages": ["lead", "customer"] }),
    )
    .await
    .unwrap();
    assert_eq!((r.value, r.sample_size), (Some(50.0), Some(50)));
    assert_eq!(r.verdict, Some(ProbeStatus::Warn), "{}", r.message);
    assert!(
        r.message.contains("moved from 80% to 20% week over week"),
        "{}",
        r.message
    );
    let r = hs(
        "hubspot.lead_conversion_rates",
        &m,
        json!({ "stages": ["lead", "customer"], "max_weekly_change_percent": 0 }),
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, None);
}

#[tokio::test]
async fn speed_to_lead_pages_through_search_results() {
    // 450 contacts: 300 answered after 2h, 150 after 30 min → median 2h; paged 200 at a time.
    let list = contacts(450, |i| {
        let created = 100.0 - i as f64 * 0.1;
        let answered = if i % 3 == 0 {
            created - 0.5
        } else {
            created - 2.0
        };
        Obj::new(
            i,
            &hours_ago(created),
            &[("hs_sa_first_engagement_date", &hours_ago(answered))],
        )
    });
    let m = mock(HubState {
        objects: objects(&[("contacts", list)]),
        ..Default::default()
    })
    .await;
    let r = hs("hubspot.speed_to_lead", &m, json!({})).await.unwrap();
    assert_eq!(r.sample_size, Some(450));
    assert!((r.value.unwrap() - 2.0).abs() < 0.01, "{:?}", r.value);
    let searches: Vec<_> = m
        .log()
        .into_iter()
        .filter(|r| r.path.ends_with("/search"))
        .collect();
    assert_eq!(searches.len(), 3);
    assert_eq!(searches[0].body["limit"], json!(200));
    assert_eq!(searches[1].body["after"], json!("200"));
    assert_eq!(searches[2].body["after"], json!("400"));
    assert_eq!(
        searches[0].body["sorts"][0]["direction"],
        json!("DESCENDING")
    );

    let r = hs("hubspot.speed_to_lead", &m, json!({ "max_records": 250 }))
        .await
        .unwrap();
    assert_eq!(r.sample_size, Some(250));
    assert!(
        r.message.contains("record cap was reached"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn speed_to_lead_counts_untouched_leads_as_waiting() {
    let list = vec![
        Obj::new(
            1,
            &hours_ago(10.0),
            &[("hs_sa_first_engagement_date", &hours_ago(9.5))],
        ),
        Obj::new(2, &hours_ago(48.0), &[]),
        Obj::new(3, &hours_ago(72.0), &[]),
    ];
    let m = mock(HubState {
        objects: objects(&[("contacts", list)]),
        ..Default::default()
    })
    .await;
    let r = hs("hubspot.speed_to_lead", &m, json!({})).await.unwrap();
    assert!((r.value.unwrap() - 48.0).abs() < 0.1, "{:?}", r.value);
    assert!(r.message.contains("2 not yet contacted"), "{}", r.message);
}

#[tokio::test]
async fn owner_assignment_ignores_contacts_inside_the_grace_period() {
    let mut list = contacts(18, |i| {
        Obj::new(i, &days_ago(2.0), &[("hubspot_owner_id", "77")])
    });
    list.extend(contacts(2, |i| Obj::new(100 + i, &days_ago(3.0), &[])));
    list.extend(contacts(5, |i| Obj::new(200 + i, &hours_ago(0.2), &[])));
    list.extend(contacts(5, |i| Obj::new(300 + i, &days_ago(30.0), &[])));
    let m = mock(HubState {
        objects: objects(&[("contacts", list)]),
        ..Default::default()
    })
    .await;
    let r = hs("hubspot.owner_assignment", &m, json!({})).await.unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(10.0), Some(20)),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn duplicates_pages_the_list_api() {
    // 250 contacts, 25 of them re-using another address in other case/whitespace.
    let list = contacts(250, |i| {
        let email = if i < 25 {
            format!(" Person{i}@Acme.io")
        } else {
            format!("person{}@acme.io", i - 25)
        };
        Obj::new(i, &days_ago(5.0), &[("email", &email)])
    });
    let m = mock(HubState {
        objects: objects(&[("contacts", list)]),
        ..Default::default()
    })
    .await;
    let r = hs("hubspot.duplicates", &m, json!({})).await.unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(10.0), Some(250)),
        "{}",
        r.message
    );
    let log = m.log();
    assert_eq!(log.len(), 3);
    assert_eq!(
        log[0].query.get("properties").map(String::as_str),
        Some("email")
    );
    assert_eq!(log[1].query.get("after").map(String::as_str), Some("100"));
}

#[tokio::test]
async fn daily_budget_reserve_stops_paging_early() {
    let list = contacts(250, |i| {
        Obj::new(i, &days_ago(5.0), &[("email", &format!("p{i}@acme.io"))])
    });
    let m = mock(HubState {
        objects: objects(&[("contacts", list)]),
        daily: Some((1000, 60)),
        ..Default::default()
    })
    .await;
    let e = hs("hubspot.duplicates", &m, json!({})).await.unwrap_err();
    assert!(
        e.message.contains("daily budget nearly exhausted") && e.message.contains("59 of 1000"),
        "{e}"
    );
    assert_eq!(m.log().len(), 1, "one call, then stop");
    let r = hs(
        "hubspot.duplicates",
        &m,
        json!({ "daily_reserve_percent": 1.0 }),
    )
    .await
    .unwrap();
    assert_eq!(r.sample_size, Some(250));
}

#[tokio::test]
async fn email_validity_counts_malformed_test_and_role_addresses() {
    let emails = [
        "ann@acme.io",
        "bob@acme.io",
        "info@acme.io",
        "not-an-email",
        "x@example.com",
        "carl@acme.io",
        "dee@acme.io",
        "eve@acme.io",
        "fay@acme.io",
        "gus@acme.io",
    ];
    let mut list: Vec<Obj> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| Obj::new(i, &days_ago(1.0), &[("email", e)]))
        .collect();
    list.push(Obj::new(99, &days_ago(1.0), &[]));
    let m = mock(HubState {
        objects: objects(&[("contacts", list)]),
        ..Default::default()
    })
    .await;
    let r = hs("hubspot.email_validity", &m, json!({})).await.unwrap();
    assert_eq!(
        (r.value, r.sample_size),
        (Some(30.0), Some(10)),
        "{}",
        r.message
    );
    let r = hs(
        "hubspot.email_validity",
        &m,
        json!({ "count_missing": true, "role_local_parts": [] }),
    )
    .await
    .unwrap();
    assert_eq!(r.sample_size, Some(11));
}

async fn coverage_error(fault: Fault) -> funnelgate_checker_sdk::ProbeError {
    let m = mock(HubState {
        objects: objects(&[("contacts", vec![])]),
        ..Default::default()
    })
    .await;
    m.fault("/search", fault, None);
    run(
        "hubspot.source_attribution_coverage",
        params(&m, json!({})),
        &[("HUBSPOT", TOKEN)],
        Duration::from_millis(800),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn every_failure_mode_is_a_specific_error() {
    let m = mock(HubState {
        objects: objects(&[("contacts", vec![])]),
        ..Default::default()
    })
    .await;
    let secret = "pat-na1-revoked-0000";
    let e = run(
        "hubspot.source_attribution_coverage",
        params(&m, json!({})),
        &[("HUBSPOT", secret)],
        T,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent);
    assert!(
        e.message.contains("401") && e.message.contains("token was rejected"),
        "{e}"
    );
    assert!(!e.message.contains(secret));

    let e = coverage_error(missing_scope("crm.objects.contacts.read")).await;
    assert_eq!(e.kind, ProbeErrorKind::Permanent);
    assert!(
        e.message.contains("403")
            && e.message
                .contains("required scope: crm.objects.contacts.read"),
        "{e}"
    );

    let e = coverage_error(Fault::Status {
        code: 404,
        body:
            json!({"status":"error","message":"Portal 42 not found","category":"OBJECT_NOT_FOUND"})
                .to_string(),
        headers: vec![],
    })
    .await;
    assert!(
        e.message.contains("404") && e.message.contains("Portal 42 not found"),
        "{e}"
    );

    let e = coverage_error(rate_limited("30")).await;
    assert_eq!(e.kind, ProbeErrorKind::Transient);
    assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
    assert!(
        e.message.contains("429") && e.message.contains("secondly limit"),
        "{e}"
    );

    let e = coverage_error(Fault::Status {
        code: 502,
        body: "<html>bad gateway</html>".into(),
        headers: vec![],
    })
    .await;
    assert_eq!(e.kind, ProbeErrorKind::Transient);
    assert!(e.message.contains("502"), "{e}");

    let e = coverage_error(Fault::Slow).await;
    assert_eq!(e.kind, ProbeErrorKind::Transient);
    assert!(e.message.contains("timed out"), "{e}");

    let e = coverage_error(Fault::Malformed).await;
    assert!(e.message.contains("malformed json"), "{e}");
    let e = coverage_error(Fault::Truncated).await;
    assert!(e.message.contains("truncated json"), "{e}");

    let e = run(
        "hubspot.source_attribution_coverage",
        params(&m, json!({})),
        &[],
        T,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::InvalidParams);
    assert!(e.message.contains("needs a `secret`"), "{e}");
}

#[tokio::test]
async fn a_short_rate_limit_is_waited_out_once() {
    let m = mock(HubState {
        objects: objects(&[(
            "contacts",
            vec![Obj::new(
                1,
                &days_ago(1.0),
                &[("hs_analytics_source", "OFFLINE")],
            )],
        )]),
        ..Default::default()
    })
    .await;
    m.fault("/search", rate_limited("0"), Some(1));
    let r = hs("hubspot.source_attribution_coverage", &m, json!({}))
        .await
        .unwrap();
    assert_eq!(r.value, Some(100.0));
    assert_eq!(m.log().len(), 3, "429, retry, second count");
}

#[tokio::test]
async fn search_result_cap_is_respected() {
    let list = contacts(10_050, |i| {
        Obj::new(i, &hours_ago(1.0 + i as f64 * 0.01), &[])
    });
    let m = mock(HubState {
        objects: objects(&[("contacts", list)]),
        ..Default::default()
    })
    .await;
    // Fifty search pages over 10,050 records: a generous timeout, as the local server sorts
    // every page (this test checks the cap, not speed).
    let r = run(
        "hubspot.speed_to_lead",
        params(&m, json!({ "max_records": 10_000 })),
        &[("HUBSPOT", TOKEN)],
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(r.sample_size, Some(10_000));
    assert!(r.message.contains("record cap"), "{}", r.message);
    let e = support::registry()
        .build(
            "hubspot.speed_to_lead",
            &params(&m, json!({ "max_records": 10_001 })),
        )
        .err()
        .unwrap();
    assert_eq!(e.kind, ProbeErrorKind::InvalidParams);
    assert!(e.message.contains("max_records"), "{e}");
}

#[tokio::test]
async fn calls_use_the_date_based_version_and_reject_unknown_ones() {
    let m = mock(HubState {
        objects: objects(&[("contacts", vec![])]),
        daily: Some((250_000, 200_000)),
        ..Default::default()
    })
    .await;
    hs("hubspot.auth_and_quota", &m, json!({})).await.unwrap();
    hs("hubspot.source_attribution_coverage", &m, json!({}))
        .await
        .unwrap();
    for r in m.log() {
        assert!(
            r.path.contains("/2026-09/") && !r.path.contains("/v3/"),
            "{}",
            r.path
        );
    }
    // The version is a setting: an explicit supported one is used as is.
    let e = hs(
        "hubspot.auth_and_quota",
        &m,
        json!({ "api_version": "2026-03" }),
    )
    .await;
    assert!(
        m.log()
            .last()
            .is_some_and(|r| r.path == "/crm/objects/2026-03/contacts"),
        "{e:?}"
    );
    for bad in ["v3", "2025-09", "2026-04"] {
        let e = support::registry()
            .build(
                "hubspot.auth_and_quota",
                &params(&m, json!({ "api_version": bad })),
            )
            .err()
            .unwrap();
        assert_eq!(e.kind, ProbeErrorKind::InvalidParams, "{bad}");
        assert!(e.message.contains("api_version"), "{e}");
    }
}

#[tokio::test]
async fn oauth_and_service_key_credentials_are_accepted_and_oauth_reads_daily_usage() {
    // Service keys reply with the daily headers, as private apps do.
    let m = mock(HubState {
        objects: objects(&[("contacts", vec![])]),
        daily: Some((1_000_000, 900_000)),
        ..Default::default()
    })
    .await;
    let r = hs(
        "hubspot.auth_and_quota",
        &m,
        json!({ "credential": "service_key" }),
    )
    .await
    .unwrap();
    assert!(r.value.is_some_and(|v| v > 89.0 && v < 91.0), "{r:?}");

    // OAuth: no daily headers; the budget comes from the usage endpoint, and the reserve holds.
    let m = mock(HubState {
        objects: objects(&[("contacts", vec![])]),
        daily: None,
        usage: Some((250_000, 240_000)),
        ..Default::default()
    })
    .await;
    let r = hs(
        "hubspot.auth_and_quota",
        &m,
        json!({ "credential": "oauth" }),
    )
    .await;
    let log = m.log();
    assert!(
        log.iter()
            .any(|r| r.path == "/account-info/2026-09/api-usage/daily/private-apps"),
        "{log:?}"
    );
    // C1 judges the budget read from the usage endpoint: 4% left.
    let r = r.unwrap();
    assert_eq!(r.value, Some(4.0), "{r:?}");
    // 4% is under the default 10% reserve: a measuring kind stops before spending more.
    let e = hs(
        "hubspot.source_attribution_coverage",
        &m,
        json!({ "credential": "oauth" }),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("reserve"), "{e}");
    assert!(
        !m.log().iter().any(|r| r.path.ends_with("/search")),
        "no search once the budget is under the reserve"
    );
    let e = support::registry()
        .build(
            "hubspot.auth_and_quota",
            &params(&m, json!({ "credential": "api_key" })),
        )
        .err()
        .unwrap();
    assert_eq!(e.kind, ProbeErrorKind::InvalidParams);
}
