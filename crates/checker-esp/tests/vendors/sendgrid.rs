//! SendGrid adapter against a local server checked against twilio/sendgrid-oai.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use funnelgate_checker_sdk::ProbeErrorKind;
use funnelgate_core::ProbeStatus;
use serde_json::{Value, json};

use crate::support::failures::{Subject, check_failure_modes};
use crate::support::{
    MockVendor, Reply, Run, Seen, assert_error, assert_verdict, check_read_contracts, sendgrid_spec,
};

const KEY: &str = "SG.test-key-0123456789";

fn record(host: &str, valid: bool) -> Value {
    json!({"valid": valid, "type": "cname", "host": host, "data": "u1.wl.sendgrid.net"})
}

fn domain(id: u64, name: &str, valid: bool, dkim1_valid: bool) -> Value {
    json!({
        "id": id, "user_id": 7, "subdomain": "em", "domain": name, "username": "acme",
        "ips": [], "custom_spf": false, "default": id == 1, "legacy": false,
        "automatic_security": true, "valid": valid,
        "dns": {
            "mail_cname": record(&format!("em.{name}"), true),
            "dkim1": record(&format!("s1._domainkey.{name}"), dkim1_valid),
            "dkim2": record(&format!("s2._domainkey.{name}"), true)
        }
    })
}

fn stats(days: &[(u64, u64, u64, u64)]) -> Value {
    Value::Array(
        days.iter()
            .enumerate()
            .map(|(i, (requests, delivered, bounces, spam))| {
                json!({"date": format!("2026-11-{:02}", i + 1), "stats": [{"metrics": {
                    "requests": requests, "delivered": delivered, "bounces": bounces,
                    "spam_reports": spam, "blocks": 0, "deferred": 0, "processed": requests
                }}]})
            })
            .collect(),
    )
}

fn params(base: &str, extra: Value) -> Value {
    let mut p = json!({"base_url": base});
    if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
        p.extend(e);
    }
    p
}

fn sendgrid_error(msg: &str) -> Value {
    json!({"errors": [{"field": null, "message": msg}]})
}

#[track_caller]
fn assert_authenticated(s: &Seen) {
    assert_eq!(
        s.header("authorization"),
        Some(format!("Bearer {KEY}").as_str()),
        "{s:?}"
    );
    assert_eq!(s.header("accept"), Some("application/json"));
}

#[test]
fn read_contract_matches_the_sendgrid_spec() {
    check_read_contracts(&sendgrid_spec(), "sendgrid");
}

#[tokio::test]
async fn domain_authentication_passes_for_a_valid_domain() {
    let mock = MockVendor::start(sendgrid_spec(), |s| match s.op() {
        "ListAuthenticatedDomain" => Reply::ok(json!([domain(1, "example.com", true, true)])),
        _ => Reply::json(500, sendgrid_error("unexpected")),
    })
    .await;
    let m = Run::new(
        "sendgrid.domain_authentication",
        params(&mock.url, json!({"domain": "Example.com"})),
    )
    .secret("SENDGRID", KEY)
    .go()
    .await
    .unwrap();
    assert_verdict(&m, ProbeStatus::Pass);
    assert_eq!(m.value, Some(1.0));
    assert!(m.message.contains("em.example.com"), "{}", m.message);
    assert_eq!(
        m.evidence.get("domain.em.example.com").map(String::as_str),
        Some("valid (id 1, default)")
    );
    mock.assert_contract();
    let seen = mock.seen();
    assert_eq!(mock.ops(), ["ListAuthenticatedDomain"]);
    assert_authenticated(&seen[0]);
    assert_eq!(seen[0].query("domain"), ["example.com"]);
    assert_eq!(seen[0].query("limit"), ["100"]);
    assert_eq!(seen[0].query("offset"), ["0"]);
}

#[tokio::test]
async fn domain_authentication_fails_with_the_validation_reasons() {
    let mock = MockVendor::start(sendgrid_spec(), |s| match s.op() {
        "ListAuthenticatedDomain" => Reply::ok(json!([domain(42, "example.com", false, false)])),
        "ValidateAuthenticatedDomain" => {
            assert!(s.facts.path.ends_with("/42/validate"), "{}", s.facts.path);
            Reply::ok(json!({
                "id": 42, "valid": false,
                "validation_results": {
                    "mail_cname": {"valid": true, "reason": null},
                    "dkim1": {"valid": false, "reason": "Expected CNAME for \"s1._domainkey.example.com\" to match \"s1.domainkey.u1.wl.sendgrid.net\"."},
                    "dkim2": {"valid": true, "reason": null},
                    "spf": {"valid": true, "reason": null}
                }
            }))
        }
        _ => Reply::json(500, sendgrid_error("unexpected")),
    })
    .await;
    let m = Run::new(
        "sendgrid.domain_authentication",
        params(&mock.url, json!({"domain": "example.com"})),
    )
    .secret("SENDGRID", KEY)
    .go()
    .await
    .unwrap();
    assert_verdict(&m, ProbeStatus::Fail);
    assert_eq!(m.value, Some(0.0));
    assert!(m.message.contains("dkim1: Expected CNAME"), "{}", m.message);
    mock.assert_contract();
    assert_eq!(
        mock.ops(),
        ["ListAuthenticatedDomain", "ValidateAuthenticatedDomain"]
    );
    assert_authenticated(&mock.seen()[1]);
}

#[tokio::test]
async fn domain_authentication_without_validate_reports_the_listed_records() {
    let mock = MockVendor::start(sendgrid_spec(), |s| match s.op() {
        "ListAuthenticatedDomain" => Reply::ok(json!([
            domain(1, "example.com", true, true),
            domain(2, "example.org", false, false)
        ])),
        _ => Reply::json(500, sendgrid_error("unexpected")),
    })
    .await;
    let m = Run::new(
        "sendgrid.domain_authentication",
        params(&mock.url, json!({"validate": false})),
    )
    .secret("SENDGRID", KEY)
    .go()
    .await
    .unwrap();
    assert_verdict(&m, ProbeStatus::Fail);
    assert!(
        m.message
            .contains("em.example.org: dkim1 (s1._domainkey.example.org)"),
        "{}",
        m.message
    );
    assert!(!m.message.contains("em.example.com:"), "{}", m.message);
    assert_eq!(m.sample_size, Some(2));
    mock.assert_contract();
    assert_eq!(mock.ops(), ["ListAuthenticatedDomain"]);
    assert!(mock.seen()[0].query("domain").is_empty());
}

#[tokio::test]
async fn domain_authentication_passes_when_revalidation_succeeds_and_pages_through_domains() {
    let pages = Arc::new(AtomicUsize::new(0));
    let p2 = pages.clone();
    let mock = MockVendor::start(sendgrid_spec(), move |s| match s.op() {
        "ListAuthenticatedDomain" => {
            p2.fetch_add(1, Ordering::SeqCst);
            let offset: usize = s.query("offset")[0].parse().unwrap();
            let n = if offset == 0 { 100 } else { 1 };
            Reply::ok(Value::Array(
                (0..n)
                    .map(|i| {
                        domain(
                            (offset + i + 1) as u64,
                            &format!("d{}.example", offset + i),
                            offset + i != 100,
                            true,
                        )
                    })
                    .collect(),
            ))
        }
        "ValidateAuthenticatedDomain" => {
            Reply::ok(json!({"id": 101, "valid": true, "validation_results": {}}))
        }
        _ => Reply::json(500, sendgrid_error("unexpected")),
    })
    .await;
    let m = Run::new(
        "sendgrid.domain_authentication",
        params(&mock.url, json!({})),
    )
    .secret("SENDGRID", KEY)
    .go()
    .await
    .unwrap();
    assert_verdict(&m, ProbeStatus::Pass);
    assert_eq!(m.sample_size, Some(101));
    assert_eq!(pages.load(Ordering::SeqCst), 2);
    assert!(
        m.evidence
            .values()
            .any(|v| v.contains("valid after re-validation")),
        "{:?}",
        m.evidence
    );
    mock.assert_contract();
}

#[tokio::test]
async fn domain_authentication_fails_for_an_empty_account_or_an_unknown_domain() {
    let mock = MockVendor::start(sendgrid_spec(), |_| Reply::ok(json!([]))).await;
    let m = Run::new(
        "sendgrid.domain_authentication",
        params(&mock.url, json!({})),
    )
    .secret("SENDGRID", KEY)
    .go()
    .await
    .unwrap();
    assert_verdict(&m, ProbeStatus::Fail);
    assert!(
        m.message.contains("no authenticated domain"),
        "{}",
        m.message
    );
    let m = Run::new(
        "sendgrid.domain_authentication",
        params(&mock.url, json!({"domain": "example.net"})),
    )
    .secret("SENDGRID", KEY)
    .go()
    .await
    .unwrap();
    assert_verdict(&m, ProbeStatus::Fail);
    assert!(
        m.message
            .contains("example.net is not an authenticated domain"),
        "{}",
        m.message
    );
    mock.assert_contract();
}

async fn run_stats(
    kind: &'static str,
    days: &[(u64, u64, u64, u64)],
    extra: Value,
) -> (funnelgate_core::Measurement, Vec<Seen>) {
    let body = stats(days);
    let mock = MockVendor::start(sendgrid_spec(), move |s| match s.op() {
        "ListStat" => Reply::ok(body.clone()),
        _ => Reply::json(500, sendgrid_error("unexpected")),
    })
    .await;
    let m = Run::new(kind, params(&mock.url, extra))
        .secret("SENDGRID", KEY)
        .go()
        .await
        .unwrap();
    mock.assert_contract();
    (m, mock.seen())
}

#[tokio::test]
async fn bounce_rate_sums_the_window_and_applies_thresholds() {
    let (m, seen) = run_stats(
        "sendgrid.bounce_rate",
        &[(1000, 980, 10, 0), (1000, 975, 15, 1)],
        json!({"window_days": 2}),
    )
    .await;
    assert_eq!(m.value, Some(1.25));
    assert_eq!(m.unit, "percent");
    assert_verdict(&m, ProbeStatus::Pass);
    assert_eq!(m.sample_size, Some(2000));
    assert_eq!(m.window.map(|w| w.0.as_secs()), Some(2 * 86_400));
    assert_eq!(m.evidence.get("bounces").map(String::as_str), Some("25"));
    let s = &seen[0];
    assert_authenticated(s);
    assert_eq!(s.query("aggregated_by"), ["day"]);
    let (start, end) = (s.query("start_date")[0], s.query("end_date")[0]);
    for d in [start, end] {
        assert!(
            d.len() == 10 && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-',
            "not YYYY-MM-DD: {d}"
        );
    }
    assert!(
        start < end,
        "window of 2 days must start before it ends: {start} {end}"
    );

    let (m, _) = run_stats("sendgrid.bounce_rate", &[(1000, 970, 30, 0)], json!({})).await;
    assert_verdict(&m, ProbeStatus::Warn);
    let (m, _) = run_stats("sendgrid.bounce_rate", &[(100, 95, 5, 0)], json!({})).await;
    assert_verdict(&m, ProbeStatus::Fail);
    assert!(m.message.contains("fail threshold 5%"), "{}", m.message);
    let (m, _) = run_stats(
        "sendgrid.bounce_rate",
        &[(100, 95, 5, 0)],
        json!({"fail_at_percent": null}),
    )
    .await;
    assert_verdict(&m, ProbeStatus::Warn);
}

#[tokio::test]
async fn rates_with_no_sends_are_no_data() {
    let (m, _) = run_stats(
        "sendgrid.bounce_rate",
        &[(0, 0, 0, 0), (0, 0, 0, 0)],
        json!({}),
    )
    .await;
    assert_verdict(&m, ProbeStatus::NoData);
    assert_eq!(m.value, None);
    assert_eq!(m.sample_size, Some(0));
    let (m, _) = run_stats("sendgrid.complaint_rate", &[], json!({})).await;
    assert_verdict(&m, ProbeStatus::NoData);
}

#[tokio::test]
async fn complaint_rate_is_spam_reports_over_delivered() {
    let (m, _) = run_stats(
        "sendgrid.complaint_rate",
        &[(10_000, 9_000, 100, 9)],
        json!({}),
    )
    .await;
    assert_eq!(m.value, Some(0.1));
    assert_eq!(m.sample_size, Some(9_000));
    assert_verdict(&m, ProbeStatus::Warn);
    let (m, _) = run_stats(
        "sendgrid.complaint_rate",
        &[(10_000, 10_000, 0, 30)],
        json!({}),
    )
    .await;
    assert_verdict(&m, ProbeStatus::Fail);
    let (m, _) = run_stats(
        "sendgrid.complaint_rate",
        &[(10_000, 10_000, 0, 5)],
        json!({}),
    )
    .await;
    assert_verdict(&m, ProbeStatus::Pass);
}

#[tokio::test]
async fn suppression_growth_counts_new_entries_across_pages() {
    let mock = MockVendor::start(sendgrid_spec(), |s| {
        let start: i64 = s.query("start_time").first().and_then(|v| v.parse().ok()).unwrap_or(0);
        let offset: usize = s.query("offset").first().and_then(|v| v.parse().ok()).unwrap_or(0);
        match s.op() {
            "ListSuppressionBounces" => {
                let n = if offset == 0 { 500 } else { 20 };
                Reply::ok(Value::Array(
                    (0..n)
                        .map(|i| json!({"created": start + 60 + i as i64, "email": format!("b{i}@example.com"),
                                         "reason": "550 5.1.1 unknown user", "status": "5.1.1"}))
                        .collect(),
                ))
            }
            "ListSpamReport" => Reply::ok(json!([
                {"created": start + 10, "email": "s@example.com", "ip": "192.0.2.1"},
                {"created": start - 10_000, "email": "old@example.com", "ip": "192.0.2.1"}
            ])),
            "ListStat" => Reply::ok(stats(&[(60_000, 59_000, 500, 3)])),
            _ => Reply::json(500, sendgrid_error("unexpected")),
        }
    })
    .await;
    let m = Run::new("sendgrid.suppression_growth", params(&mock.url, json!({})))
        .secret("SENDGRID", KEY)
        .go()
        .await
        .unwrap();
    mock.assert_contract();
    assert_eq!(
        m.evidence
            .get("new_bounce_suppressions")
            .map(String::as_str),
        Some("520")
    );
    assert_eq!(
        m.evidence
            .get("new_spam_report_suppressions")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(m.value, Some(521.0 * 100.0 / 60_000.0));
    assert_verdict(&m, ProbeStatus::Pass);
    assert_eq!(
        mock.ops(),
        [
            "ListSuppressionBounces",
            "ListSuppressionBounces",
            "ListSpamReport",
            "ListStat"
        ]
    );
    for s in mock.seen().iter().take(3) {
        assert_authenticated(s);
        let (start, end): (i64, i64) = (
            s.query("start_time")[0].parse().unwrap(),
            s.query("end_time")[0].parse().unwrap(),
        );
        assert_eq!(end - start, 7 * 86_400);
    }
}

fn webhook(id: &str, enabled: bool, url: &str, bounce: bool, spam: bool, signed: bool) -> Value {
    let mut w = json!({
        "enabled": enabled, "url": url, "group_resubscribe": false, "delivered": true,
        "group_unsubscribe": false, "spam_report": spam, "bounce": bounce, "deferred": false,
        "unsubscribe": true, "processed": false, "open": false, "click": false, "dropped": true,
        "friendly_name": id, "id": id, "created_date": "2026-01-01T00:00:00Z", "updated_date": "2026-01-02T00:00:00Z"
    });
    if signed {
        w["public_key"] = json!("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE");
    }
    w
}

async fn run_webhooks(hooks: Value, extra: Value) -> funnelgate_core::Measurement {
    let mock = MockVendor::start(sendgrid_spec(), move |s| match s.op() {
        "ListEventWebhook" => Reply::ok(json!({"max_allowed": 5, "webhooks": hooks.clone()})),
        _ => Reply::json(500, sendgrid_error("unexpected")),
    })
    .await;
    let m = Run::new("sendgrid.event_webhook", params(&mock.url, extra))
        .secret("SENDGRID", KEY)
        .go()
        .await
        .unwrap();
    mock.assert_contract();
    assert_authenticated(&mock.seen()[0]);
    m
}

#[tokio::test]
async fn event_webhook_needs_an_enabled_hook_with_bounce_and_spam_events() {
    let m = run_webhooks(
        json!([webhook(
            "crm",
            true,
            "https://hooks.example.com/sg",
            true,
            true,
            true
        )]),
        json!({}),
    )
    .await;
    assert_verdict(&m, ProbeStatus::Pass);
    assert_eq!(m.value, Some(1.0));

    let m = run_webhooks(
        json!([
            webhook(
                "off",
                false,
                "https://hooks.example.com/sg",
                true,
                true,
                false
            ),
            webhook(
                "partial",
                true,
                "https://hooks.example.com/sg",
                true,
                false,
                false
            )
        ]),
        json!({}),
    )
    .await;
    assert_verdict(&m, ProbeStatus::Fail);
    assert!(
        m.message.contains("partial: missing events: spam_report"),
        "{}",
        m.message
    );

    let m = run_webhooks(json!([]), json!({})).await;
    assert_verdict(&m, ProbeStatus::Fail);
    assert!(
        m.message.contains("no event webhook is configured"),
        "{}",
        m.message
    );

    let hooks = json!([webhook(
        "old",
        true,
        "https://old.example.net/hook",
        true,
        true,
        true
    )]);
    let m = run_webhooks(hooks, json!({"url_prefix": "https://hooks.example.com/"})).await;
    assert_verdict(&m, ProbeStatus::Fail);

    let hooks = json!([webhook(
        "crm",
        true,
        "https://hooks.example.com/sg",
        true,
        true,
        false
    )]);
    let m = run_webhooks(hooks.clone(), json!({"require_signed": true})).await;
    assert_verdict(&m, ProbeStatus::Fail);
    assert!(
        m.message.contains("signature verification"),
        "{}",
        m.message
    );
    let m = run_webhooks(
        hooks,
        json!({"required_events": ["bounce", "spam_report", "dropped", "delivered"]}),
    )
    .await;
    assert_verdict(&m, ProbeStatus::Pass);
}

#[tokio::test]
async fn params_are_checked_before_any_call() {
    for (kind, p, needle) in [
        (
            "sendgrid.bounce_rate",
            json!({"window_days": 0}),
            "window_days",
        ),
        (
            "sendgrid.bounce_rate",
            json!({"warn_at_percent": 9, "fail_at_percent": 5}),
            "warn_at_percent",
        ),
        (
            "sendgrid.complaint_rate",
            json!({"base_url": "http://api.sendgrid.com"}),
            "https",
        ),
        (
            "sendgrid.event_webhook",
            json!({"required_events": []}),
            "required_events",
        ),
        (
            "sendgrid.event_webhook",
            json!({"required_events": ["opened"]}),
            "opened",
        ),
        (
            "sendgrid.domain_authentication",
            json!({"domian": "example.com"}),
            "domian",
        ),
        (
            "sendgrid.domain_authentication",
            json!({"on_behalf_of": "a\nb"}),
            "on_behalf_of",
        ),
    ] {
        let r = Run::new(kind, p).secret("SENDGRID", KEY).go().await;
        assert_error(&r, ProbeErrorKind::InvalidParams, &[needle]);
    }
}

#[tokio::test]
async fn on_behalf_of_is_sent_as_the_subuser_header() {
    let mock = MockVendor::start(sendgrid_spec(), |_| Reply::ok(stats(&[(10, 10, 0, 0)]))).await;
    Run::new(
        "sendgrid.bounce_rate",
        params(&mock.url, json!({"on_behalf_of": "marketing-sub"})),
    )
    .secret("SENDGRID", KEY)
    .go()
    .await
    .unwrap();
    mock.assert_contract();
    assert_eq!(mock.seen()[0].header("on-behalf-of"), Some("marketing-sub"));
}

fn subject(kind: &'static str) -> Subject {
    Subject {
        kind,
        params: Box::new(|base| json!({"base_url": base})),
        secret_name: "SENDGRID",
        secret_value: KEY.to_string(),
        error_body: Box::new(sendgrid_error),
        truncated: if kind == "sendgrid.event_webhook" {
            r#"{"max_allowed": 5, "webhooks": [{"enab"#
        } else {
            r#"[{"date": "2026-11-01", "#
        },
        quotes_vendor_message: true,
    }
}

#[tokio::test]
async fn every_kind_maps_every_failure_mode() {
    for kind in [
        "sendgrid.domain_authentication",
        "sendgrid.bounce_rate",
        "sendgrid.complaint_rate",
        "sendgrid.suppression_growth",
        "sendgrid.event_webhook",
    ] {
        check_failure_modes(sendgrid_spec(), subject(kind)).await;
    }
}
