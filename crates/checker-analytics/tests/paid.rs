//! `wa.paid_channel_tracking` (static mode): ad clicks through HTTP redirects and meta refresh,
//! parameters kept or dropped, loops and over-long chains.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use funnelgate_core::ProbeStatus;
use serde_json::json;

const Q: &str = "?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=TeSt123";

async fn click(
    path: &str,
) -> (
    funnelgate_core::Measurement,
    serde_json::Value,
    support::Corpus,
) {
    let c = support::start().await;
    let m = support::run(
        "wa.paid_channel_tracking",
        json!({"urls": [c.url(&format!("{path}{Q}"))], "expect": {"ga4": ["G-TEST000001"]}}),
    )
    .await
    .unwrap();
    let r: serde_json::Value = serde_json::from_str(&m.evidence["click.0001"]).unwrap();
    (m, r, c)
}

#[tokio::test]
async fn redirects_that_keep_the_query_pass() {
    let (m, r, c) = click("/r/two").await;
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{}", m.message);
    assert_eq!(m.value, Some(0.0));
    assert_eq!(r["final_url"], c.url(&format!("/landing.html{Q}")));
    assert_eq!(r["chain"].as_array().unwrap().len(), 3, "{r}");
    assert_eq!(r["chain"][0]["status"], 302);
    assert_eq!(
        r["kept"],
        json!(["utm_source", "utm_medium", "utm_campaign", "gclid"])
    );
    assert_eq!(r["tags"]["vendors"]["ga4"]["verdicts"], json!(["ok"]));
}

#[tokio::test]
async fn a_redirect_that_drops_the_query_fails_naming_the_parameters() {
    let (m, r, _c) = click("/r/drop").await;
    assert_eq!(m.verdict, Some(ProbeStatus::Fail), "{}", m.message);
    assert_eq!(m.value, Some(1.0));
    assert_eq!(
        r["dropped"],
        json!(["utm_source", "utm_medium", "utm_campaign", "gclid"])
    );
    assert!(m.message.contains("drops utm_source"), "{}", m.message);
    assert_eq!(r["chain"][0]["status"], 301);
}

#[tokio::test]
async fn meta_refresh_is_followed() {
    let (m, r, c) = click("/r/meta").await;
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{}", m.message);
    assert_eq!(r["chain"][0]["via"], "meta_refresh");
    assert_eq!(r["final_url"], c.url(&format!("/landing.html{Q}")));
}

#[tokio::test]
async fn loops_and_long_chains_are_errors() {
    let (m, r, _c) = click("/r/loop-a").await;
    assert_eq!(m.verdict, Some(ProbeStatus::Error), "{}", m.message);
    assert!(
        r["error"].as_str().unwrap().contains("redirect loop"),
        "{r}"
    );
    let (m, r, _c) = click("/r/long/0").await;
    assert_eq!(m.verdict, Some(ProbeStatus::Error), "{}", m.message);
    assert!(
        r["error"].as_str().unwrap().contains("longer than 10 hops"),
        "{r}"
    );
}

#[tokio::test]
async fn a_404_landing_page_fails() {
    let (m, r, _c) = click("/missing.html").await;
    assert_eq!(m.verdict, Some(ProbeStatus::Fail), "{}", m.message);
    assert!(r["error"].as_str().unwrap().contains("404"), "{r}");
}
