//! Mailgun adapter against a local server checked against Mailgun's official OpenAPI 3.1 YAML.

use funnelgate_core::{Measurement, ProbeStatus};
use serde_json::{Value, json};

use crate::support::failures::{Subject, check_failure_modes};
use crate::support::{
    MockVendor, Reply, Run, Seen, assert_verdict, check_read_contracts, mailgun_spec,
};

const KEY: &str = "key-0123456789abcdef0123456789abcdef";
/// `Basic base64("api:" + KEY)`.
const BASIC: &str = "Basic YXBpOmtleS0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg==";
const DOMAIN: &str = "mg.example.com";

fn params(base: &str, extra: Value) -> Value {
    let mut p = json!({"domain": DOMAIN, "base_url": base});
    if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
        p.extend(e);
    }
    p
}

async fn run(kind: &'static str, mock: &MockVendor, extra: Value) -> Measurement {
    Run::new(kind, params(&mock.url, extra))
        .secret("MAILGUN", KEY)
        .go()
        .await
        .unwrap()
}

#[track_caller]
fn assert_authenticated(s: &Seen) {
    assert_eq!(s.header("authorization"), Some(BASIC));
}

fn record(kind: &str, name: &str, valid: &str) -> Value {
    json!({"is_active": true, "cached": [], "name": name, "record_type": kind, "valid": valid, "value": "v=spf1 include:mailgun.org ~all"})
}

fn domain(state: &str, disabled: bool, records: Vec<Value>) -> Value {
    let mut d = json!({
        "created_at": "Tue, 14 Nov 2023 10:00:00 GMT", "id": "6553", "is_disabled": disabled,
        "name": DOMAIN, "require_tls": false, "skip_verification": false, "smtp_login": "postmaster@mg.example.com",
        "spam_action": "disabled", "state": state, "type": "custom", "use_automatic_sender_security": true,
        "web_prefix": "email", "web_scheme": "https", "wildcard": false, "encrypt_incoming_message": false,
        "message_ttl": 259200
    });
    if disabled {
        d["disabled"] = json!({"code": "abuse", "note": "", "permanently": false, "reason": "high complaint rate"});
    }
    json!({"domain": d, "receiving_dns_records": [], "sending_dns_records": records})
}

#[test]
fn read_contract_matches_the_mailgun_spec() {
    check_read_contracts(&mailgun_spec(), "mailgun");
}

#[tokio::test]
async fn domain_verification_judges_state_disabled_and_records() {
    let ok_records = || {
        vec![
            record("TXT", DOMAIN, "valid"),
            record("TXT", "pdk1._domainkey.mg.example.com", "valid"),
        ]
    };
    let cases = [
        (
            domain("active", false, ok_records()),
            ProbeStatus::Pass,
            "active with every sending dns record valid",
        ),
        (
            domain("unverified", false, ok_records()),
            ProbeStatus::Fail,
            "state is unverified",
        ),
        (
            domain("active", true, ok_records()),
            ProbeStatus::Fail,
            "disabled by mailgun: high complaint rate",
        ),
        (
            domain(
                "active",
                false,
                vec![
                    record("TXT", DOMAIN, "valid"),
                    record("CNAME", "email.mg.example.com", "unknown"),
                ],
            ),
            ProbeStatus::Warn,
            "CNAME email.mg.example.com is unknown",
        ),
    ];
    for (body, want, needle) in cases {
        let mock = MockVendor::start(mailgun_spec(), move |s| match s.op() {
            "GET-v4-domains--name-" => Reply::ok(body.clone()),
            _ => Reply::json(404, json!({"message": "unexpected"})),
        })
        .await;
        let m = run("mailgun.domain_verification", &mock, json!({})).await;
        mock.assert_contract();
        assert_verdict(&m, want);
        assert!(m.message.contains(needle), "{}", m.message);
        let seen = mock.seen();
        assert_eq!(seen[0].facts.path, "/v4/domains/mg.example.com");
        assert_authenticated(&seen[0]);
    }
}

fn stats(days: &[(u64, u64, u64, u64, u64)]) -> Value {
    let items: Vec<Value> = days
        .iter()
        .map(|(accepted, delivered, bounce, delayed, complained)| {
            json!({
                "time": "Mon, 20 Nov 2026 00:00:00 UTC",
                "accepted": {"incoming": 0, "outgoing": accepted, "total": accepted},
                "delivered": {"smtp": delivered, "http": 0, "optimized": 0, "total": delivered},
                "failed": {
                    "temporary": {"espblock": 0, "total": 0},
                    "permanent": {"suppress-bounce": 0, "suppress-unsubscribe": 0, "suppress-complaint": 0,
                                  "bounce": bounce, "delayed-bounce": delayed, "webhook": 0, "optimized": 0,
                                  "total": bounce + delayed}
                },
                "complained": {"total": complained}
            })
        })
        .collect();
    json!({"description": "domain stats", "start": "Mon, 13 Nov 2026 00:00:00 UTC", "end": "Mon, 20 Nov 2026 00:00:00 UTC",
           "resolution": "day", "stats": items})
}

async fn run_stats(kind: &'static str, body: Value, extra: Value) -> (Measurement, Vec<Seen>) {
    let mock = MockVendor::start(mailgun_spec(), move |s| match s.op() {
        "GET-v3--domain--stats-total" => Reply::ok(body.clone()),
        _ => Reply::json(404, json!({"message": "unexpected"})),
    })
    .await;
    let m = run(kind, &mock, extra).await;
    mock.assert_contract();
    (m, mock.seen())
}

#[tokio::test]
async fn bounce_rate_counts_permanent_and_delayed_bounces_over_accepted() {
    let (m, seen) = run_stats(
        "mailgun.bounce_rate",
        stats(&[(1000, 950, 20, 5, 0), (1000, 990, 5, 0, 1)]),
        json!({"window_days": 14}),
    )
    .await;
    assert_eq!(m.value, Some(1.5));
    assert_eq!(m.sample_size, Some(2000));
    assert_verdict(&m, ProbeStatus::Pass);
    let s = &seen[0];
    assert_authenticated(s);
    assert_eq!(s.facts.path, "/v3/mg.example.com/stats/total");
    assert_eq!(s.query("event"), ["accepted", "failed"]);
    assert_eq!(s.query("duration"), ["14d"]);
    let (m, _) = run_stats(
        "mailgun.bounce_rate",
        stats(&[(100, 90, 5, 1, 0)]),
        json!({}),
    )
    .await;
    assert_verdict(&m, ProbeStatus::Fail);
    let (m, _) = run_stats("mailgun.bounce_rate", stats(&[]), json!({})).await;
    assert_verdict(&m, ProbeStatus::NoData);
}

#[tokio::test]
async fn complaint_rate_is_complained_over_delivered() {
    let (m, seen) = run_stats(
        "mailgun.complaint_rate",
        stats(&[(5000, 4000, 0, 0, 8)]),
        json!({}),
    )
    .await;
    assert_eq!(m.value, Some(0.2));
    assert_eq!(m.sample_size, Some(4000));
    assert_verdict(&m, ProbeStatus::Warn);
    assert_eq!(seen[0].query("event"), ["delivered", "complained"]);
    let (m, _) = run_stats(
        "mailgun.complaint_rate",
        stats(&[(5000, 0, 0, 0, 0)]),
        json!({}),
    )
    .await;
    assert_verdict(&m, ProbeStatus::NoData);
}

fn hooks(permanent: &[&str], complained: &[&str]) -> Value {
    json!({"webhooks": {
        "accepted": null,
        "delivered": {"urls": ["https://hooks.example.com/mg/delivered"]},
        "permanent_fail": if permanent.is_empty() { Value::Null } else { json!({"urls": permanent}) },
        "complained": {"urls": complained},
    }})
}

#[tokio::test]
async fn webhooks_must_cover_bounces_and_complaints() {
    let cases = [
        (
            hooks(
                &["https://hooks.example.com/mg"],
                &["https://hooks.example.com/mg"],
            ),
            json!({}),
            ProbeStatus::Pass,
            "sends permanent_fail + complained",
        ),
        (
            hooks(&[], &["https://hooks.example.com/mg"]),
            json!({}),
            ProbeStatus::Fail,
            "no webhook for permanent_fail",
        ),
        (
            hooks(&["https://hooks.example.com/mg"], &[]),
            json!({}),
            ProbeStatus::Fail,
            "complained",
        ),
        (
            hooks(
                &["https://old.example.net/x"],
                &["https://hooks.example.com/mg"],
            ),
            json!({"url_prefix": "https://hooks.example.com/"}),
            ProbeStatus::Fail,
            "with a matching url for permanent_fail",
        ),
        (
            hooks(&["https://hooks.example.com/mg"], &[]),
            json!({"required_events": ["permanent_fail", "delivered"]}),
            ProbeStatus::Pass,
            "permanent_fail + delivered",
        ),
    ];
    for (body, extra, want, needle) in cases {
        let mock = MockVendor::start(mailgun_spec(), move |s| match s.op() {
            "GET-v3-domains--domain--webhooks" => Reply::ok(body.clone()),
            _ => Reply::json(404, json!({"message": "unexpected"})),
        })
        .await;
        let m = run("mailgun.webhooks", &mock, extra).await;
        mock.assert_contract();
        assert_eq!(
            mock.seen()[0].facts.path,
            "/v3/domains/mg.example.com/webhooks"
        );
        assert_verdict(&m, want);
        assert!(m.message.contains(needle), "{}", m.message);
    }
}

#[tokio::test]
async fn every_kind_maps_every_failure_mode() {
    for kind in [
        "mailgun.domain_verification",
        "mailgun.bounce_rate",
        "mailgun.complaint_rate",
        "mailgun.webhooks",
    ] {
        check_failure_modes(
            mailgun_spec(),
            Subject {
                kind,
                params: Box::new(|base| json!({"domain": DOMAIN, "base_url": base})),
                secret_name: "MAILGUN",
                secret_value: KEY.to_string(),
                error_body: Box::new(|msg| json!({"message": msg})),
                truncated: r#"{"domain": {"name": "mg.exa"#,
                quotes_vendor_message: true,
            },
        )
        .await;
    }
}
