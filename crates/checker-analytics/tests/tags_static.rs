//! `wa.tag_presence` in static mode against the page corpus served on loopback: a verdict per
//! page and vendor, evidence of every ID found and ignored, the crawl's bounds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use funnelgate_core::ProbeStatus;
use serde_json::json;
use support::{pages, places, verdicts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ga4_corpus_gets_a_verdict_per_page() {
    let c = support::start().await;
    let names = [
        "ga4.html",
        "duplicated.html",
        "wrong-id.html",
        "extra-ids.html",
        "commented.html",
        "consent-blocked.html",
        "ua.html",
        "injected.html",
        "iframe.html",
        "broken.html",
        "latin1.html",
        "shift-jis.html",
        "big.html",
        "missing.html",
        "private/page.html",
    ];
    let urls: Vec<String> = names.iter().map(|n| c.url(&format!("/{n}"))).collect();
    let m = support::run(
        "wa.tag_presence",
        json!({"urls": urls, "expect": {"ga4": ["G-TEST000001"]}, "concurrency": 4}),
    )
    .await
    .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Fail), "{}", m.message);
    let p = pages(&m, "page.");
    assert_eq!(p.len(), names.len());
    let page = |n: &str| &p[&c.url(&format!("/{n}"))];

    assert_eq!(verdicts(page("ga4.html"), "ga4"), ["ok"]);
    assert_eq!(page("ga4.html")["level"], "pass");
    assert_eq!(
        places(page("ga4.html"), "ga4", "G-TEST000001"),
        ["static", "static"]
    );
    assert_eq!(verdicts(page("duplicated.html"), "ga4"), ["duplicated"]);
    assert_eq!(verdicts(page("wrong-id.html"), "ga4"), ["wrong_id"]);
    assert_eq!(page("wrong-id.html")["level"], "fail");
    assert_eq!(
        verdicts(page("extra-ids.html"), "ga4"),
        ["ok_but_extra_ids"]
    );
    assert_eq!(
        verdicts(page("consent-blocked.html"), "ga4"),
        ["consent_blocked"]
    );
    assert_eq!(
        page("consent-blocked.html")["ignored"][0]["reason"],
        "consent_blocked"
    );

    // Comments, JS comments, code samples, JSON-LD and templates never count, and say why.
    let commented = page("commented.html");
    assert_eq!(verdicts(commented, "ga4"), ["missing"]);
    let reasons: Vec<&str> = commented["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap())
        .collect();
    for r in [
        "html_comment",
        "js_comment",
        "page_text",
        "json_ld",
        "inert_template",
    ] {
        assert!(reasons.contains(&r), "{r} missing from {reasons:?}");
    }
    assert!(commented["vendors"].get("meta_pixel").is_none());

    assert_eq!(
        verdicts(page("ua.html"), "universal_analytics"),
        ["obsolete"]
    );
    assert_eq!(verdicts(page("ua.html"), "ga4"), ["ok"]);
    // Injected at runtime or only inside an iframe: invisible to static mode.
    assert_eq!(verdicts(page("injected.html"), "ga4"), ["missing"]);
    assert_eq!(verdicts(page("iframe.html"), "ga4"), ["missing"]);
    assert_eq!(verdicts(page("broken.html"), "ga4"), ["ok"]);
    // Declared charsets are respected.
    assert_eq!(page("latin1.html")["charset"], "windows-1252");
    assert_eq!(verdicts(page("latin1.html"), "ga4"), ["ok"]);
    assert_eq!(page("shift-jis.html")["charset"], "Shift_JIS");
    assert_eq!(verdicts(page("shift-jis.html"), "ga4"), ["ok"]);
    // A 2 MB page is read whole under the default 5 MiB cap.
    assert!(page("big.html")["bytes"].as_u64().unwrap() > 2_000_000);
    assert_eq!(verdicts(page("big.html"), "ga4"), ["ok"]);
    // A 404 landing page fails; a page robots.txt disallows is not audited (ERROR).
    assert_eq!(page("missing.html")["status"], 404);
    assert_eq!(page("missing.html")["level"], "fail");
    assert_eq!(page("private/page.html")["level"], "error");
    assert!(
        page("private/page.html")["error"]
            .as_str()
            .unwrap()
            .contains("robots.txt"),
        "{}",
        page("private/page.html")
    );
    assert_eq!(m.value, Some(5.0), "failing pages: {}", m.message);
}

#[tokio::test]
async fn robots_txt_can_be_ignored_when_told() {
    let c = support::start().await;
    let m = support::run(
        "wa.tag_presence",
        json!({"urls": [c.url("/private/page.html")], "expect": {"ga4": ["G-TEST000001"]},
               "respect_robots_txt": false}),
    )
    .await
    .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{}", m.message);
}

#[tokio::test]
async fn gtm_installs_are_judged() {
    let c = support::start().await;
    let urls: Vec<String> = [
        "gtm.html",
        "noscript-only.html",
        "disagree.html",
        "gtm-env.html",
    ]
    .iter()
    .map(|n| c.url(&format!("/{n}")))
    .collect();
    let m = support::run(
        "wa.tag_presence",
        json!({"urls": urls, "expect": {"gtm": ["GTM-TEST001"]}}),
    )
    .await
    .unwrap();
    let p = pages(&m, "page.");
    let page = |n: &str| &p[&c.url(&format!("/{n}"))];
    assert_eq!(verdicts(page("gtm.html"), "gtm"), ["ok"]);
    assert_eq!(
        places(page("gtm.html"), "gtm", "GTM-TEST001"),
        ["static", "noscript"]
    );
    assert_eq!(
        verdicts(page("noscript-only.html"), "gtm"),
        ["noscript_only"]
    );
    assert_eq!(
        verdicts(page("disagree.html"), "gtm"),
        ["script_noscript_disagree"]
    );
    assert_eq!(verdicts(page("gtm-env.html"), "gtm"), ["gtm_environment"]);
    assert!(
        page("gtm-env.html")["vendors"]["gtm"]["note"]
            .as_str()
            .unwrap()
            .contains("gtm_preview=env-7")
    );
    assert_eq!(m.verdict, Some(ProbeStatus::Fail));
    assert_eq!(m.value, Some(1.0));
}

#[tokio::test]
async fn every_vendor_on_one_page() {
    let c = support::start().await;
    let expect = json!({
        "ga4": ["G-TEST000001"],
        "google_ads": ["AW-123456789/AbC-D_efG-hI"],
        "plausible": ["example.com", "pa-AbCdEf123"],
        "matomo": ["3"],
        "segment": ["SeGmEnTwRiTeKeY42"],
        "meta_pixel": ["1234567890123"],
        "linkedin_insight": ["5556667"],
        "hubspot": ["24681357"]
    });
    let m = support::run(
        "wa.tag_presence",
        json!({"urls": [c.url("/vendors.html")], "expect": expect, "require_consent_mode_v2": true}),
    )
    .await
    .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{}", m.message);
    let p = pages(&m, "page.");
    let page = p.values().next().unwrap();
    for v in [
        "ga4",
        "google_ads",
        "plausible",
        "matomo",
        "segment",
        "meta_pixel",
        "linkedin_insight",
        "hubspot",
    ] {
        assert_eq!(verdicts(page, v), ["ok"], "{v}: {}", page["vendors"][v]);
    }
    assert_eq!(page["consent_mode"]["v2"], true);
    assert_eq!(
        page["consent_mode"]["defaults"][0]["defaults"]["ad_user_data"],
        "denied"
    );
    // The Meta and LinkedIn noscript pixels agree with the scripts.
    assert_eq!(
        places(page, "meta_pixel", "1234567890123"),
        ["static", "noscript"]
    );

    // The same page without consent mode fails when v2 is required; a wrong pixel id fails.
    let m = support::run(
        "wa.tag_presence",
        json!({"urls": [c.url("/ga4.html")], "expect": {"meta_pixel": ["999"]}, "require_consent_mode_v2": true}),
    )
    .await
    .unwrap();
    let p = pages(&m, "page.");
    let page = p.values().next().unwrap();
    assert_eq!(verdicts(page, "meta_pixel"), ["missing"]);
    assert_eq!(page["consent_mode"]["level"], "fail");
    assert_eq!(verdicts(page, "ga4"), ["present"]);
}

#[tokio::test]
async fn slow_hanging_and_endless_pages_stay_within_the_bounds() {
    let c = support::start().await;
    let urls = vec![
        c.url("/slow"),
        c.url("/hang"),
        c.url("/huge"),
        c.url("/big-late.html"),
    ];
    let started = Instant::now();
    let m = support::run(
        "wa.tag_presence",
        json!({"urls": urls, "expect": {"ga4": ["G-TEST000001"]}, "page_timeout_ms": 1500,
               "max_page_bytes": 1048576, "concurrency": 4}),
    )
    .await
    .unwrap();
    // Bounded by the page timeout (plus scheduling slack on a loaded machine), never by the
    // server's 120 s sleep or an endless body.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let p = pages(&m, "page.");
    let slow = &p[&c.url("/slow")];
    assert!(
        slow["error"].as_str().unwrap().contains("timed out"),
        "{slow}"
    );
    let hang = &p[&c.url("/hang")];
    assert!(
        hang["error"].as_str().unwrap().contains("timed out"),
        "{hang}"
    );
    let huge = &p[&c.url("/huge")];
    assert_eq!(huge["truncated"], true);
    assert_eq!(huge["bytes"], 1048576);
    assert_eq!(verdicts(huge, "ga4"), ["truncated"]);
    let late = &p[&c.url("/big-late.html")];
    assert_eq!(verdicts(late, "ga4"), ["truncated"]);
    assert_eq!(m.verdict, Some(ProbeStatus::Error), "{}", m.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sitemap_index_of_1000_pages_is_audited_with_bounded_concurrency() {
    let c = support::start().await;
    let m = support::run(
        "wa.tag_presence",
        json!({"sitemaps": [c.url("/sitemap.xml")], "expect": {"ga4": ["G-TEST000001"]},
               "max_pages": 1000, "concurrency": 6}),
    )
    .await
    .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{}", m.message);
    assert_eq!(m.evidence["pages_audited"], "1000");
    assert_eq!(
        c.stats.page_hits.load(Ordering::SeqCst),
        support::SITEMAP_PAGES
    );
    let max = c.stats.max_in_flight.load(Ordering::SeqCst);
    assert!((1..=6).contains(&max), "{max} requests in flight");
    // Evidence stays bounded: the worst 100 pages in full, the rest counted.
    assert_eq!(pages(&m, "page.").len(), 100);
    assert!(m.evidence.contains_key("pages_omitted"));

    // The page limit bounds the crawl and says so.
    let m = support::run(
        "wa.tag_presence",
        json!({"sitemaps": [c.url("/sitemap.xml")], "expect": {"ga4": ["G-TEST000001"]},
               "max_pages": 50}),
    )
    .await
    .unwrap();
    assert_eq!(m.evidence["pages_audited"], "50");
    assert!(
        m.evidence.values().any(|v| v.contains("page limit 50")),
        "{:?}",
        m.evidence.keys()
    );
}

#[tokio::test]
async fn a_browser_that_cannot_start_is_an_error_never_a_static_fallback() {
    let c = support::start().await;
    let err = support::run(
        "wa.tag_presence",
        json!({"urls": [c.url("/ga4.html")], "mode": "rendered", "chromium_path": "/nonexistent/chromium"}),
    )
    .await
    .unwrap_err();
    assert!(err.message.contains("cannot start chromium"), "{err}");
    assert!(err.message.contains("/nonexistent/chromium"), "{err}");
}

#[tokio::test]
async fn an_unreadable_sitemap_is_an_error() {
    let c = support::start().await;
    let err = support::run(
        "wa.tag_presence",
        json!({"sitemaps": [c.url("/missing-sitemap.xml")]}),
    )
    .await
    .unwrap_err();
    assert!(err.message.contains("404"), "{err}");
}
