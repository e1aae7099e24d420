//! Amazon SES v2 adapter against a local server checked against botocore's sesv2 model; the
//! server also re-computes every request's SigV4 signature from the known test credentials.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use funnelgate_checker_sdk::ProbeErrorKind;
use funnelgate_core::{Measurement, ProbeStatus};
use serde_json::{Value, json};

use crate::support::failures::{Subject, check_failure_modes};
use crate::support::{
    MockVendor, Reply, Run, Seen, assert_error, assert_verdict, check_read_contracts, ses_spec,
};

const AKID: &str = "AKIDEXAMPLEFUNNELGATE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";
const REGION: &str = "eu-west-1";

fn creds_json(token: bool) -> String {
    let mut v = json!({"access_key_id": AKID, "secret_access_key": SECRET_KEY});
    if token {
        v["session_token"] = json!(TOKEN);
    }
    v.to_string()
}

/// Days since the epoch of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `20261123T055000Z` → the instant.
fn parse_amz_date(s: &str) -> Result<SystemTime, String> {
    let b = s.as_bytes();
    if s.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(format!("x-amz-date `{s}` is not YYYYMMDDTHHMMSSZ"));
    }
    let n = |r: std::ops::Range<usize>| {
        s[r].parse::<i64>()
            .map_err(|_| format!("x-amz-date `{s}` has a non-digit"))
    };
    let days = days_from_civil(n(0..4)?, n(4..6)?, n(6..8)?);
    let secs = days * 86_400 + n(9..11)? * 3600 + n(11..13)? * 60 + n(13..15)?;
    Ok(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).map_err(|_| "date before 1970")?))
}

/// Check the request's SigV4 `Authorization`: well-formed, for our key, region and service,
/// covering host and x-amz-date (and the session token when one is used), and equal to the
/// signature the `aws-sigv4` crate computes for the same request and credentials.
fn verify_sigv4(s: &Seen, token: Option<&str>) -> Result<(), String> {
    let auth = s.header("authorization").ok_or("no authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| format!("not a sigv4 header: {auth}"))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(", ") {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(format!("unexpected authorization part `{part}`")),
        }
    }
    let (credential, signed_headers, signature) = (
        credential.ok_or("no Credential")?,
        signed_headers.ok_or("no SignedHeaders")?,
        signature.ok_or("no Signature")?,
    );
    let amz_date = s.header("x-amz-date").ok_or("no x-amz-date header")?;
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5
        || scope[0] != AKID
        || scope[1] != &amz_date[..8]
        || scope[2] != REGION
        || scope[3] != "ses"
        || scope[4] != "aws4_request"
    {
        return Err(format!(
            "credential scope `{credential}` is not {AKID}/<date>/{REGION}/ses/aws4_request"
        ));
    }
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    {
        return Err(format!(
            "signature `{signature}` is not 64 lower-case hex digits"
        ));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    for must in ["host", "x-amz-date"] {
        if !names.contains(&must) {
            return Err(format!("SignedHeaders `{signed_headers}` lacks {must}"));
        }
    }
    match (token, s.header("x-amz-security-token")) {
        (Some(t), Some(got)) if t == got && names.contains(&"x-amz-security-token") => {}
        (Some(_), _) => return Err("session token missing, wrong or unsigned".into()),
        (None, Some(_)) => return Err("a session token was sent without one configured".into()),
        (None, None) => {}
    }
    // Recompute with the same crate from the known credentials.
    let time = parse_amz_date(amz_date)?;
    let host = s.header("host").ok_or("no host header")?;
    let url = format!("http://{host}{}", s.path_and_query);
    let extra: Vec<(&str, &str)> = names
        .iter()
        .filter(|n| !matches!(**n, "host" | "x-amz-date" | "x-amz-security-token"))
        .map(|n| (*n, s.header(n).unwrap_or("")))
        .collect();
    let identity =
        Credentials::new(AKID, SECRET_KEY, token.map(str::to_string), None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("ses")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        &s.facts.method,
        url,
        extra.into_iter(),
        SignableBody::Bytes(&s.facts.body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let expected = instructions
        .headers()
        .find(|(k, _)| *k == "authorization")
        .map(|(_, v)| v.to_string())
        .ok_or("the signer produced no authorization")?;
    if expected != auth {
        return Err(format!(
            "signature mismatch:\n  got      {auth}\n  expected {expected}"
        ));
    }
    Ok(())
}

async fn mock(
    token: bool,
    responder: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
) -> MockVendor {
    let t = token.then_some(TOKEN);
    MockVendor::start_with(
        ses_spec(),
        responder,
        Some(Box::new(move |s: &Seen| verify_sigv4(s, t))),
    )
    .await
}

fn params(base: &str, extra: Value) -> Value {
    let mut p = json!({"region": REGION, "endpoint": base});
    if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
        p.extend(e);
    }
    p
}

async fn run(kind: &'static str, base: &str, extra: Value) -> Measurement {
    Run::new(kind, params(base, extra))
        .secret("SES", creds_json(false))
        .go()
        .await
        .unwrap()
}

fn account(sending: bool, production: bool, enforcement: &str, sent: f64) -> Value {
    json!({
        "DedicatedIpAutoWarmupEnabled": false,
        "EnforcementStatus": enforcement,
        "ProductionAccessEnabled": production,
        "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": sent},
        "SendingEnabled": sending,
        "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
        "Details": {"MailType": "MARKETING", "ContactLanguage": "EN", "ReviewDetails": {"Status": "PENDING", "CaseId": "123"}}
    })
}

#[test]
fn read_contract_matches_the_botocore_model() {
    check_read_contracts(&ses_spec(), "ses");
}

#[test]
fn the_signature_check_itself_catches_tampering() {
    // A request signed for one body must not verify with another.
    let creds = Credentials::new(AKID, SECRET_KEY, None, None, "test");
    let identity = creds.into();
    let now = SystemTime::now();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("ses")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = "http://127.0.0.1:9/v2/email/metrics/batch";
    let body = br#"{"Queries":[]}"#;
    let signable = SignableRequest::new(
        "POST",
        url,
        [("content-type", "application/json")].into_iter(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("host", "127.0.0.1:9".parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    for (k, v) in instructions.headers() {
        headers.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let seen = |body: &[u8]| Seen {
        facts: crate::support::spec::RequestFacts {
            method: "POST".into(),
            path: "/v2/email/metrics/batch".into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: body.to_vec(),
        },
        op: None,
        op_name: None,
        headers: headers.clone(),
        path_and_query: "/v2/email/metrics/batch".into(),
    };
    verify_sigv4(&seen(body), None).unwrap();
    let e = verify_sigv4(&seen(br#"{"Queries":[1]}"#), None).unwrap_err();
    assert!(e.contains("signature mismatch"), "{e}");
    let e = verify_sigv4(&seen(body), Some(TOKEN)).unwrap_err();
    assert!(e.contains("session token"), "{e}");
}

#[tokio::test]
async fn account_standing_passes_for_a_healthy_production_account() {
    let m = mock(false, |s| match s.op() {
        "GetAccount" => {
            Reply::ok(account(true, true, "HEALTHY", 12_500.0)).header("x-amzn-RequestId", "req-1")
        }
        _ => Reply::json(400, json!({"message": "unexpected"})),
    })
    .await;
    let r = run("ses.account_standing", &m.url, json!({})).await;
    m.assert_contract();
    assert_verdict(&r, ProbeStatus::Pass);
    assert_eq!(r.value, Some(25.0));
    assert_eq!(r.unit, "percent");
    assert_eq!(r.sample_size, Some(12_500));
    assert_eq!(
        r.evidence.get("request_id").map(String::as_str),
        Some("req-1")
    );
    assert_eq!(
        r.evidence.get("enforcement_status").map(String::as_str),
        Some("HEALTHY")
    );
    assert_eq!(m.ops(), ["GetAccount"]);
}

#[tokio::test]
async fn account_standing_fails_in_the_sandbox_on_probation_or_paused_and_warns_near_quota() {
    let cases = [
        (
            account(true, false, "HEALTHY", 10.0),
            json!({}),
            ProbeStatus::Fail,
            "sandbox",
        ),
        (
            account(true, false, "HEALTHY", 10.0),
            json!({"allow_sandbox": true}),
            ProbeStatus::Pass,
            "allowed by `allow_sandbox`",
        ),
        (
            account(true, true, "PROBATION", 10.0),
            json!({}),
            ProbeStatus::Fail,
            "PROBATION",
        ),
        (
            account(true, true, "SHUTDOWN", 10.0),
            json!({}),
            ProbeStatus::Fail,
            "SHUTDOWN",
        ),
        (
            account(false, true, "HEALTHY", 10.0),
            json!({}),
            ProbeStatus::Fail,
            "sending is disabled",
        ),
        (
            account(true, true, "HEALTHY", 45_000.0),
            json!({}),
            ProbeStatus::Warn,
            "90.0% of the 24-hour sending quota",
        ),
        (
            account(true, true, "HEALTHY", 45_000.0),
            json!({"quota_warn_percent": 95}),
            ProbeStatus::Pass,
            "90.0%",
        ),
    ];
    for (body, extra, want, needle) in cases {
        let m = mock(false, move |_| Reply::ok(body.clone())).await;
        let r = run("ses.account_standing", &m.url, extra).await;
        m.assert_contract();
        assert_verdict(&r, want);
        assert!(r.message.contains(needle), "{}", r.message);
    }
    // A sandbox note names the production access review.
    let m = mock(false, |_| Reply::ok(account(true, false, "HEALTHY", 0.0))).await;
    let r = run("ses.account_standing", &m.url, json!({})).await;
    assert!(
        r.message.contains("production access request: PENDING"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn account_standing_is_an_error_when_the_standing_fields_are_missing() {
    let m = mock(false, |_| {
        Reply::ok(json!({"SendQuota": {"Max24HourSend": 200.0}}))
    })
    .await;
    let r = Run::new("ses.account_standing", params(&m.url, json!({})))
        .secret("SES", creds_json(false))
        .go()
        .await;
    assert_error(&r, ProbeErrorKind::Permanent, &["SendingEnabled"]);
    m.assert_contract();
}

#[tokio::test]
async fn temporary_credentials_send_a_signed_session_token() {
    let m = mock(true, |_| Reply::ok(account(true, true, "HEALTHY", 1.0))).await;
    let r = Run::new("ses.account_standing", params(&m.url, json!({})))
        .secret("SES", creds_json(true))
        .go()
        .await
        .unwrap();
    assert_verdict(&r, ProbeStatus::Pass);
    m.assert_contract();
    assert_eq!(m.seen()[0].header("x-amz-security-token"), Some(TOKEN));
}

fn identity(verified: bool, dkim: &str, key: &str, mail_from: Option<&str>) -> Value {
    let mut v = json!({
        "IdentityType": "DOMAIN",
        "FeedbackForwardingStatus": true,
        "VerifiedForSendingStatus": verified,
        "VerificationStatus": if verified { "SUCCESS" } else { "PENDING" },
        "DkimAttributes": {
            "SigningEnabled": true, "Status": dkim, "Tokens": ["a", "b", "c"],
            "SigningAttributesOrigin": "AWS_SES", "CurrentSigningKeyLength": key,
            "NextSigningKeyLength": "RSA_2048_BIT", "LastKeyGenerationTimestamp": 1_700_000_000
        },
        "Policies": {},
        "Tags": [],
    });
    if let Some(status) = mail_from {
        v["MailFromAttributes"] = json!({"MailFromDomain": "bounce.example.com", "MailFromDomainStatus": status, "BehaviorOnMxFailure": "USE_DEFAULT_VALUE"});
    }
    v
}

#[tokio::test]
async fn identity_dkim_judges_verification_dkim_status_key_length_and_mail_from() {
    let cases = [
        (
            identity(true, "SUCCESS", "RSA_2048_BIT", Some("SUCCESS")),
            ProbeStatus::Pass,
            "signs with dkim (RSA_2048_BIT)",
        ),
        (
            identity(true, "SUCCESS", "RSA_1024_BIT", None),
            ProbeStatus::Warn,
            "1024-bit",
        ),
        (
            identity(true, "PENDING", "RSA_2048_BIT", None),
            ProbeStatus::Fail,
            "dkim status is PENDING",
        ),
        (
            identity(false, "SUCCESS", "RSA_2048_BIT", None),
            ProbeStatus::Fail,
            "not verified for sending (verification status PENDING)",
        ),
        (
            identity(true, "SUCCESS", "RSA_2048_BIT", Some("FAILED")),
            ProbeStatus::Warn,
            "mail-from bounce.example.com is FAILED",
        ),
    ];
    for (body, want, needle) in cases {
        let m = mock(false, move |s| {
            assert_eq!(s.facts.path, "/v2/email/identities/example.com");
            Reply::ok(body.clone())
        })
        .await;
        let r = run(
            "ses.identity_dkim",
            &m.url,
            json!({"identity": "example.com"}),
        )
        .await;
        m.assert_contract();
        assert_eq!(m.ops(), ["GetEmailIdentity"]);
        assert_verdict(&r, want);
        assert!(r.message.contains(needle), "{}", r.message);
    }
}

#[tokio::test]
async fn identity_dkim_signs_an_email_address_identity_path_correctly() {
    let m = mock(false, |s| {
        assert!(
            s.facts.path.starts_with("/v2/email/identities/news"),
            "{}",
            s.facts.path
        );
        Reply::ok(identity(true, "SUCCESS", "RSA_2048_BIT", None))
    })
    .await;
    let r = run(
        "ses.identity_dkim",
        &m.url,
        json!({"identity": "news+weekly@example.com"}),
    )
    .await;
    m.assert_contract();
    assert_verdict(&r, ProbeStatus::Pass);
}

fn metrics(num: &[u64], den: &[u64]) -> Value {
    json!({
        "Results": [
            {"Id": "numerator", "Timestamps": vec![1_700_000_000; num.len()], "Values": num},
            {"Id": "denominator", "Timestamps": vec![1_700_000_000; den.len()], "Values": den}
        ],
        "Errors": []
    })
}

#[tokio::test]
async fn bounce_rate_queries_vdm_metrics_and_sums_them() {
    let m = mock(false, |s| match s.op() {
        "BatchGetMetricData" => Reply::ok(metrics(&[10, 20, 30], &[1000, 1000, 1000])),
        _ => Reply::json(400, json!({"message": "unexpected"})),
    })
    .await;
    let r = run(
        "ses.bounce_rate",
        &m.url,
        json!({"email_identity": "example.com", "window_days": 3}),
    )
    .await;
    m.assert_contract();
    assert_eq!(r.value, Some(2.0));
    assert_verdict(&r, ProbeStatus::Warn);
    assert_eq!(r.sample_size, Some(3000));
    assert_eq!(r.window.map(|w| w.0), Some(Duration::from_secs(3 * 86_400)));
    let seen = &m.seen()[0];
    assert_eq!(seen.header("content-type"), Some("application/json"));
    let body = seen.body_json();
    let qs = body["Queries"].as_array().unwrap();
    assert_eq!(qs.len(), 2);
    let metric = |id: &str| qs.iter().find(|q| q["Id"] == id).unwrap().clone();
    assert_eq!(metric("numerator")["Metric"], "PERMANENT_BOUNCE");
    assert_eq!(metric("denominator")["Metric"], "SEND");
    for q in qs {
        assert_eq!(q["Namespace"], "VDM");
        assert_eq!(q["Dimensions"], json!({"EMAIL_IDENTITY": "example.com"}));
        let span = q["EndDate"].as_u64().unwrap() - q["StartDate"].as_u64().unwrap();
        assert_eq!(span, 3 * 86_400);
    }
}

#[tokio::test]
async fn complaint_rate_is_complaints_over_deliveries() {
    let m = mock(false, |s| {
        let body = s.body_json();
        let metrics_asked: Vec<String> = body["Queries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["Metric"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(metrics_asked, ["COMPLAINT", "DELIVERY"]);
        Reply::ok(metrics(&[3, 1], &[1000, 1000]))
    })
    .await;
    let r = run(
        "ses.complaint_rate",
        &m.url,
        json!({"configuration_set": "marketing"}),
    )
    .await;
    m.assert_contract();
    assert_eq!(r.value, Some(0.2));
    assert_verdict(&r, ProbeStatus::Warn);
    let m = mock(false, |_| Reply::ok(metrics(&[4], &[1000]))).await;
    assert_verdict(
        &run("ses.complaint_rate", &m.url, json!({})).await,
        ProbeStatus::Fail,
    );
    let m = mock(false, |_| Reply::ok(metrics(&[], &[]))).await;
    let r = run("ses.complaint_rate", &m.url, json!({})).await;
    assert_verdict(&r, ProbeStatus::NoData);
    assert_eq!(r.sample_size, Some(0));
    m.assert_contract();
}

#[tokio::test]
async fn metric_query_errors_explain_vdm_access() {
    let m = mock(false, |_| {
        Reply::ok(json!({"Results": [], "Errors": [{"Id": "numerator", "Code": "ACCESS_DENIED", "Message": "VDM is not enabled"}]}))
    })
    .await;
    let r = Run::new("ses.bounce_rate", params(&m.url, json!({})))
        .secret("SES", creds_json(false))
        .go()
        .await;
    assert_error(
        &r,
        ProbeErrorKind::Permanent,
        &[
            "ACCESS_DENIED",
            "virtual deliverability manager",
            "VDM is not enabled",
        ],
    );
    m.assert_contract();
    let m = mock(false, |_| {
        Reply::ok(json!({"Results": [{"Id": "numerator", "Values": [1]}]}))
    })
    .await;
    let r = Run::new("ses.bounce_rate", params(&m.url, json!({})))
        .secret("SES", creds_json(false))
        .go()
        .await;
    assert_error(
        &r,
        ProbeErrorKind::Permanent,
        &["no result for query `denominator`"],
    );
}

fn destination(name: &str, enabled: bool, events: &[&str], target: Value) -> Value {
    let mut d = json!({"Name": name, "Enabled": enabled, "MatchingEventTypes": events});
    if let (Value::Object(d), Value::Object(t)) = (&mut d, target) {
        d.extend(t);
    }
    d
}

fn sns(topic: &str) -> Value {
    json!({"SnsDestination": {"TopicArn": format!("arn:aws:sns:eu-west-1:123456789012:{topic}")}})
}

#[tokio::test]
async fn event_destinations_must_publish_bounces_and_complaints() {
    let cw = json!({"CloudWatchDestination": {"DimensionConfigurations": [
        {"DimensionName": "campaign", "DimensionValueSource": "MESSAGE_TAG", "DefaultDimensionValue": "none"}]}});
    let bus = json!({"EventBridgeDestination": {"EventBusArn": "arn:aws:events:eu-west-1:123456789012:event-bus/default"}});
    let cases = [
        (
            vec![
                destination("bounces", true, &["BOUNCE"], sns("bounces")),
                destination(
                    "complaints",
                    true,
                    &["COMPLAINT", "DELIVERY"],
                    sns("complaints"),
                ),
            ],
            json!({}),
            ProbeStatus::Pass,
            "publishes BOUNCE + COMPLAINT events",
        ),
        (
            vec![destination(
                "all",
                false,
                &["BOUNCE", "COMPLAINT"],
                sns("all"),
            )],
            json!({}),
            ProbeStatus::Fail,
            "no BOUNCE, COMPLAINT events",
        ),
        (
            vec![destination("metrics", true, &["BOUNCE", "COMPLAINT"], cw)],
            json!({}),
            ProbeStatus::Fail,
            "no BOUNCE, COMPLAINT events",
        ),
        (
            vec![destination("bounces", true, &["BOUNCE"], sns("bounces"))],
            json!({}),
            ProbeStatus::Fail,
            "no COMPLAINT events",
        ),
        (
            vec![],
            json!({}),
            ProbeStatus::Fail,
            "has no event destination",
        ),
        (
            vec![destination("bus", true, &["BOUNCE", "DELIVERY_DELAY"], bus)],
            json!({"required_events": ["bounce", "delivery_delay"]}),
            ProbeStatus::Pass,
            "BOUNCE + DELIVERY_DELAY",
        ),
    ];
    for (dests, extra, want, needle) in cases {
        let m = mock(false, move |s| {
            assert_eq!(
                s.facts.path,
                "/v2/email/configuration-sets/marketing/event-destinations"
            );
            Reply::ok(json!({"EventDestinations": dests.clone()}))
        })
        .await;
        let mut p = json!({"configuration_set": "marketing"});
        if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
            p.extend(e);
        }
        let r = run("ses.event_destinations", &m.url, p).await;
        m.assert_contract();
        assert_eq!(m.ops(), ["GetConfigurationSetEventDestinations"]);
        assert_verdict(&r, want);
        assert!(r.message.contains(needle), "{}", r.message);
        assert_eq!(r.unit, "count");
    }
}

#[tokio::test]
async fn a_secret_that_is_not_credentials_json_is_refused_without_echoing_it() {
    let m = mock(false, |_| Reply::ok(account(true, true, "HEALTHY", 0.0))).await;
    for bad in [
        "AKIDPLAINSECRETVALUE",
        r#"{"access_key_id": "AKIDX", "secret_access_key": 5}"#,
        r#"{"access_key_id": "", "secret_access_key": "s"}"#,
    ] {
        let r = Run::new("ses.account_standing", params(&m.url, json!({})))
            .secret("SES", bad)
            .go()
            .await;
        let e = assert_error(&r, ProbeErrorKind::Permanent, &["secret `SES`"]);
        assert!(!e.message.contains("AKID"), "{}", e.message);
    }
    assert!(m.seen().is_empty());
}

#[tokio::test]
async fn the_default_endpoint_is_regional() {
    let r = crate::support::registry();
    let f = r.get("ses.account_standing").unwrap();
    assert!(f.build(&json!({"region": "eu-west-1"})).is_ok());
    let e = f
        .build(&json!({"region": "eu-west-1", "endpoint": "http://email.eu-west-1.amazonaws.com"}))
        .err()
        .unwrap();
    assert!(e.message.contains("`endpoint`"), "{e}");
}

#[tokio::test]
async fn every_kind_maps_every_failure_mode() {
    for kind in [
        "ses.account_standing",
        "ses.identity_dkim",
        "ses.bounce_rate",
        "ses.complaint_rate",
        "ses.event_destinations",
    ] {
        check_failure_modes(
            ses_spec(),
            Subject {
                kind,
                params: Box::new(move |base| {
                    let mut p = json!({"region": REGION, "endpoint": base});
                    if kind == "ses.identity_dkim" {
                        p["identity"] = json!("example.com");
                    }
                    if kind == "ses.event_destinations" {
                        p["configuration_set"] = json!("marketing");
                    }
                    p
                }),
                secret_name: "SES",
                secret_value: creds_json(false),
                error_body: Box::new(|msg| json!({"message": msg})),
                truncated: r#"{"Results": [{"Id": "numerator", "#,
                quotes_vendor_message: true,
            },
        )
        .await;
    }
}

fn dedicated_ip(ip: &str, status: &str, percent: i64) -> Value {
    json!({"Ip": ip, "WarmupStatus": status, "WarmupPercentage": percent, "PoolName": "marketing"})
}

/// `dns.spf` with `ips_from` SES: the sending IPs come from GetDedicatedIps (every page, signed,
/// the pool asked for), and each is evaluated with RFC 7208 check_host() against the zone the
/// local nsd serves (`spf-ok.test`: `v=spf1 ip4:192.0.2.0/24 include:_spf.provider.test ~all`).
#[tokio::test]
async fn dns_spf_evaluates_the_dedicated_ips_ses_lists() {
    let m = mock(false, |s: &Seen| match s.query("NextToken").first() {
        None => Reply::json(
            200,
            json!({"DedicatedIps": [dedicated_ip("192.0.2.10", "DONE", 100)], "NextToken": "page-2"}),
        ),
        Some(_) => Reply::json(
            200,
            json!({"DedicatedIps": [dedicated_ip("203.0.113.5", "IN_PROGRESS", 40)]}),
        ),
    })
    .await;
    let params = json!({
        "domain": "spf-ok.test",
        "nameservers": crate::common::nsd().nameservers(),
        "ips": ["198.51.100.7"],
        "ips_from": {"vendor": "amazon-ses", "region": REGION, "endpoint": m.url, "pool": "marketing"},
    });
    let r = Run::new("dns.spf", params)
        .secret("SES", creds_json(false))
        .go()
        .await
        .unwrap();
    assert_verdict(&r, ProbeStatus::Fail);
    assert_eq!(r.evidence["check_host.198.51.100.7"], "pass");
    assert_eq!(r.evidence["check_host.192.0.2.10"], "pass");
    assert_eq!(
        r.evidence["check_host.192.0.2.10.mechanism"],
        "ip4:192.0.2.0/24 (in the record of spf-ok.test)"
    );
    assert_eq!(r.evidence["check_host.203.0.113.5"], "softfail");
    assert_eq!(
        r.evidence["ips_from"],
        "amazon-ses eu-west-1: 192.0.2.10, 203.0.113.5"
    );
    assert!(
        r.message.contains("2 of 3 sending IPs pass"),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("203.0.113.5 gets softfail"),
        "{}",
        r.message
    );
    let seen = m.seen();
    assert_eq!(seen.len(), 2, "both pages read");
    assert!(seen.iter().all(|s| s.query("PoolName") == ["marketing"]));
    assert_eq!(seen[1].query("NextToken"), ["page-2"]);
    m.assert_contract();

    // An account on SES's shared IPs lists none: the question cannot be answered from the API.
    let m = mock(false, |_| Reply::json(200, json!({"DedicatedIps": []}))).await;
    let params = json!({
        "domain": "spf-ok.test",
        "nameservers": crate::common::nsd().nameservers(),
        "ips_from": {"vendor": "amazon-ses", "region": REGION, "endpoint": m.url},
    });
    let e = Run::new("dns.spf", params.clone())
        .secret("SES", creds_json(false))
        .go()
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent, "{e}");
    assert!(e.message.contains("lists no sending IP"), "{e}");
    // The vendor's failures are the probe's, with the vendor named; no secret, no call.
    let e = Run::new("dns.spf", params.clone()).go().await.unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::InvalidParams, "{e}");
    m.assert_contract();
    let m = mock(false, |_| {
        Reply::json(
            403,
            json!({"message": "not authorized to perform ses:GetDedicatedIps"}),
        )
    })
    .await;
    let mut params = params;
    params["ips_from"]["endpoint"] = json!(m.url);
    let e = Run::new("dns.spf", params)
        .secret("SES", creds_json(false))
        .go()
        .await
        .unwrap_err();
    assert!(
        e.message.contains("ses") && e.message.contains("403"),
        "{e}"
    );
    // A bad region is refused when the config is loaded.
    let e = Run::new(
        "dns.spf",
        json!({"domain": "spf-ok.test", "ips_from": {"vendor": "amazon-ses", "region": "EU WEST"}}),
    )
    .go()
    .await
    .unwrap_err();
    assert!(e.message.contains("ips_from.region"), "{e}");
}
