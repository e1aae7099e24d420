//! `wa.tag_presence` and `wa.paid_channel_tracking` in rendered mode, against the real headless
//! Chromium (Debian's `chromium`, listed in scripts/debian-packages.txt; `FUNNELGATE_CHROMIUM`
//! points elsewhere). These tests fail, never skip, when it is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use funnelgate_core::ProbeStatus;
use serde_json::json;
use support::{pages, places, verdicts};

fn chromium() -> String {
    let p = std::env::var("FUNNELGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&p).exists(),
        "chromium not found at {p}: apt-get install chromium (scripts/debian-packages.txt) or set FUNNELGATE_CHROMIUM"
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_mode_sees_injected_and_iframe_tags() {
    let c = support::start().await;
    let names = [
        "ga4.html",
        "gtm.html",
        "injected.html",
        "iframe.html",
        "commented.html",
        "consent-blocked.html",
        "duplicated.html",
        "latin1.html",
    ];
    let urls: Vec<String> = names.iter().map(|n| c.url(&format!("/{n}"))).collect();
    let m = support::run(
        "wa.tag_presence",
        json!({"urls": urls, "expect": {"ga4": ["G-TEST000001"]}, "mode": "rendered",
               "settle_ms": 1500, "page_timeout_ms": 30000, "concurrency": 4,
               "chromium_path": chromium()}),
    )
    .await
    .unwrap();
    assert_eq!(m.evidence["mode"], "rendered");
    let p = pages(&m, "page.");
    let page = |n: &str| &p[&c.url(&format!("/{n}"))];
    for n in names {
        assert_eq!(page(n)["mode"], "static+rendered", "{n}");
        assert!(page(n)["error"].is_null(), "{n}: {}", page(n));
    }
    // The plain install stays ok (the rendered DOM repeats it: not a duplicate).
    assert_eq!(verdicts(page("ga4.html"), "ga4"), ["ok"]);
    let ga4_places = places(page("ga4.html"), "ga4", "G-TEST000001");
    assert!(ga4_places.contains(&"static".to_string()), "{ga4_places:?}");
    assert!(
        ga4_places.contains(&"rendered".to_string()),
        "{ga4_places:?}"
    );
    // GA4 loaded by GTM (first-party gtm.js): seen only once scripts ran.
    assert_eq!(verdicts(page("gtm.html"), "ga4"), ["ok"]);
    let gtm_ga4 = places(page("gtm.html"), "ga4", "G-TEST000001");
    assert!(!gtm_ga4.contains(&"static".to_string()), "{gtm_ga4:?}");
    assert!(gtm_ga4.contains(&"rendered".to_string()), "{gtm_ga4:?}");
    assert!(gtm_ga4.contains(&"network".to_string()), "{gtm_ga4:?}");
    assert_eq!(verdicts(page("gtm.html"), "gtm"), ["present"]);
    // Injected 300 ms after load.
    assert_eq!(verdicts(page("injected.html"), "ga4"), ["ok"]);
    assert!(places(page("injected.html"), "ga4", "G-TEST000001").contains(&"rendered".to_string()));
    // Only inside an iframe.
    assert_eq!(verdicts(page("iframe.html"), "ga4"), ["ok"]);
    assert!(
        places(page("iframe.html"), "ga4", "G-TEST000001").contains(&"rendered_iframe".to_string())
    );
    // What never runs still does not count after rendering.
    assert_eq!(verdicts(page("commented.html"), "ga4"), ["missing"]);
    assert_eq!(
        verdicts(page("consent-blocked.html"), "ga4"),
        ["consent_blocked"]
    );
    assert_eq!(verdicts(page("duplicated.html"), "ga4"), ["duplicated"]);
    assert_eq!(verdicts(page("latin1.html"), "ga4"), ["ok"]);
    assert_eq!(m.verdict, Some(ProbeStatus::Fail), "{}", m.message);
    assert_eq!(m.value, Some(1.0), "{}", m.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_redirects_are_followed_in_rendered_mode() {
    let c = support::start().await;
    let q = "?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=TeSt123";
    let m = support::run(
        "wa.paid_channel_tracking",
        json!({"urls": [c.url(&format!("/r/script{q}"))], "mode": "rendered", "settle_ms": 1000,
               "expect": {"ga4": ["G-TEST000001"]}, "chromium_path": chromium()}),
    )
    .await
    .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{}", m.message);
    let click: serde_json::Value = serde_json::from_str(&m.evidence["click.0001"]).unwrap();
    assert_eq!(click["final_url"], c.url(&format!("/landing.html{q}")));
    let vias: Vec<&str> = click["chain"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["via"].as_str())
        .collect();
    assert_eq!(vias, ["http", "script"], "{click}");
    assert_eq!(click["kept"].as_array().unwrap().len(), 4);
}
