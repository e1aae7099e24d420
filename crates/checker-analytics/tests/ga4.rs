//! The GA4 kinds against a local Admin/Data API server whose every request (path, method, query
//! parameters, body) and every response is validated against Google's discovery documents in
//! `../shared/vendor-specs/google-analytics/`, and a token endpoint that verifies the RS256 JWT
//! assertion (RFC 7523) signed with a key made by `openssl` for the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use funnelgate_checker_sdk::{ProbeContext, SecretStore};
use funnelgate_core::{Measurement, ProbeSpec, ProbeStatus};
use serde_json::{Value, json};

const TOKEN: &str = "ya29.test-access-token";

fn spec_dir() -> PathBuf {
    let shared = std::env::var_os("FUNNELGATE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let d = shared.join("vendor-specs/google-analytics");
    let d = if d.exists() {
        d
    } else {
        PathBuf::from("/work/shared/vendor-specs/google-analytics")
    };
    assert!(
        d.exists(),
        "discovery documents not found at {}",
        d.display()
    );
    d
}

fn discovery(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(spec_dir().join(name)).unwrap()).unwrap()
}

/// Every method of a discovery document: (http method, flatPath, method json).
fn methods(doc: &Value) -> Vec<(String, String, Value)> {
    fn walk(r: &Value, out: &mut Vec<(String, String, Value)>) {
        if let Some(res) = r.get("resources").and_then(Value::as_object) {
            for v in res.values() {
                if let Some(ms) = v.get("methods").and_then(Value::as_object) {
                    for m in ms.values() {
                        let path = m.get("flatPath").or(m.get("path")).unwrap();
                        out.push((
                            m["httpMethod"].as_str().unwrap().to_string(),
                            path.as_str().unwrap().to_string(),
                            m.clone(),
                        ));
                    }
                }
                walk(v, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut out);
    out
}

fn path_matches(template: &str, path: &str) -> bool {
    // `v1beta/properties/{propertiesId}:runReport`: `{x}` is one segment without `/` or `:`.
    let mut t = template;
    let mut p = path;
    while !t.is_empty() {
        if let Some(rest) = t.strip_prefix('{') {
            let end = rest.find('}').unwrap();
            t = &rest[end + 1..];
            let seg_end = p.find(['/', ':']).unwrap_or(p.len());
            if seg_end == 0 {
                return false;
            }
            p = &p[seg_end..];
        } else {
            let lit_end = t.find('{').unwrap_or(t.len());
            let lit = &t[..lit_end];
            if !p.starts_with(lit) {
                return false;
            }
            t = &t[lit_end..];
            p = &p[lit.len()..];
        }
    }
    p.is_empty()
}

/// Validate a JSON value against a discovery schema: unknown fields, wrong types and values
/// outside an enum are errors.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return validate(doc, &doc["schemas"][r], v, at);
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("any");
    match (ty, v) {
        ("object", Value::Object(o)) => {
            for (k, val) in o {
                if let Some(p) = schema.get("properties").and_then(|p| p.get(k)) {
                    validate(doc, p, val, &format!("{at}.{k}"))?;
                } else if let Some(ap) = schema.get("additionalProperties") {
                    validate(doc, ap, val, &format!("{at}.{k}"))?;
                } else {
                    return Err(format!("{at}: unknown field `{k}`"));
                }
            }
            Ok(())
        }
        ("array", Value::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                validate(doc, &schema["items"], x, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        ("string", Value::String(s)) => {
            if let Some(e) = schema.get("enum").and_then(Value::as_array)
                && !e.iter().any(|x| x == s)
            {
                return Err(format!("{at}: `{s}` is not one of the enum values"));
            }
            Ok(())
        }
        ("integer", Value::Number(n)) if n.is_i64() => Ok(()),
        ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) | ("any", _) => Ok(()),
        _ => Err(format!("{at}: expected {ty}, got {v}")),
    }
}

/// Find the discovery method a request calls and check its query and body.
fn check_request(doc: &Value, method: &Method, uri: &Uri, body: &[u8]) -> Result<Value, String> {
    let path = uri.path().trim_start_matches('/');
    let m = methods(doc)
        .into_iter()
        .find(|(hm, t, _)| hm == method.as_str() && path_matches(t, path))
        .map(|(_, _, m)| m)
        .ok_or_else(|| format!("{method} /{path} is not a method of {}", doc["name"]))?;
    for (k, _) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let p = m["parameters"].get(k.as_ref());
        if p.is_none_or(|p| p["location"] != "query") {
            return Err(format!("{}: unknown query parameter `{k}`", m["id"]));
        }
    }
    if let Some(r) = m.get("request") {
        let b: Value =
            serde_json::from_slice(body).map_err(|e| format!("{}: body: {e}", m["id"]))?;
        validate(doc, r, &b, "request")?;
    } else if !body.is_empty() {
        return Err(format!("{}: takes no body", m["id"]));
    }
    Ok(m)
}

/// The fake GA4: canned responses per discovery method id, validated before they are sent.
#[derive(Clone, Default)]
struct Ga4 {
    responses: Arc<Mutex<HashMap<String, (u16, Value)>>>,
    calls: Arc<Mutex<Vec<String>>>,
    token_status: Arc<Mutex<u16>>,
    public_key: Arc<Mutex<Vec<u8>>>,
    token_url: Arc<Mutex<String>>,
}

impl Ga4 {
    fn respond(&self, id: &str, status: u16, body: Value) {
        self.responses
            .lock()
            .unwrap()
            .insert(id.to_string(), (status, body));
    }
}

async fn handle(state: Ga4, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if uri.path() == "/token" {
        return token(&state, &body);
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response();
    }
    let (doc, m) = match ["analyticsadmin.v1beta.json", "analyticsdata.v1beta.json"]
        .iter()
        .map(|n| discovery(n))
        .find_map(|d| check_request(&d, &method, &uri, &body).ok().map(|m| (d, m)))
    {
        Some(x) => x,
        None => {
            let why = ["analyticsadmin.v1beta.json", "analyticsdata.v1beta.json"]
                .iter()
                .map(|n| check_request(&discovery(n), &method, &uri, &body).unwrap_err())
                .collect::<Vec<_>>()
                .join("; ");
            return (
                StatusCode::IM_A_TEAPOT,
                format!("request violates the discovery documents: {why}"),
            )
                .into_response();
        }
    };
    let id = m["id"].as_str().unwrap().to_string();
    state.calls.lock().unwrap().push(id.clone());
    let Some((status, resp)) = state.responses.lock().unwrap().get(&id).cloned() else {
        return (
            StatusCode::IM_A_TEAPOT,
            format!("no canned response for {id}"),
        )
            .into_response();
    };
    if status == 200
        && let Err(e) = validate(&doc, &m["response"], &resp, "response")
    {
        return (
            StatusCode::IM_A_TEAPOT,
            format!("canned response violates the spec: {e}"),
        )
            .into_response();
    }
    (StatusCode::from_u16(status).unwrap(), axum::Json(resp)).into_response()
}

/// The token endpoint: a form with the JWT-bearer grant and an RS256 assertion signed by the
/// test key, for our audience and the analytics read-only scope.
fn token(state: &Ga4, body: &[u8]) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let bad = |why: String| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return bad("wrong grant_type".into());
    }
    let Some(jwt) = form.get("assertion") else {
        return bad("no assertion".into());
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return bad("not a jws".into());
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        state.public_key.lock().unwrap().clone(),
    );
    if header["alg"] != "RS256"
        || key
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .is_err()
    {
        return bad("Invalid JWT Signature.".into());
    }
    let exp = claims["exp"].as_u64().unwrap_or(0);
    let iat = claims["iat"].as_u64().unwrap_or(u64::MAX);
    if claims["iss"] != "funnelgate@acme-analytics.iam.gserviceaccount.com"
        || claims["aud"] != *state.token_url.lock().unwrap()
        || claims["scope"] != "https://www.googleapis.com/auth/analytics.readonly"
        || exp != iat + 3600
    {
        return bad(format!("bad claims {claims}"));
    }
    let status = *state.token_status.lock().unwrap();
    if status != 200 {
        return (StatusCode::from_u16(status).unwrap(), axum::Json(json!({"error": "invalid_grant", "error_description": "Invalid grant: account not found"}))).into_response();
    }
    axum::Json(json!({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

struct Fixture {
    ga4: Ga4,
    base: String,
    key_json: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .expect("openssl (Debian package) runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let pem_text = std::fs::read_to_string(&pem).unwrap();
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem_text.as_bytes()).unwrap();
    let pair = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let ga4 = Ga4::default();
    *ga4.public_key.lock().unwrap() = pair.public().as_ref().to_vec();
    *ga4.token_status.lock().unwrap() = 200;
    let st = ga4.clone();
    let app = Router::new()
        .fallback(move |m: Method, u: Uri, h: HeaderMap, b: Bytes| handle(st.clone(), m, u, h, b));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    *ga4.token_url.lock().unwrap() = format!("{base}/token");
    let key_json = json!({
        "type": "service_account", "project_id": "acme-analytics", "private_key_id": "k1",
        "private_key": pem_text, "client_email": "funnelgate@acme-analytics.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": format!("{base}/token"),
    })
    .to_string();
    Fixture {
        ga4,
        base,
        key_json,
        _dir: dir,
    }
}

impl Fixture {
    async fn run(
        &self,
        kind: &str,
        extra: Value,
    ) -> Result<Measurement, funnelgate_checker_sdk::ProbeError> {
        let mut params = json!({"property_id": "properties/123456789", "admin_url": self.base, "data_url": self.base});
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        let probe = funnelgate_checker_analytics::registry().build(kind, &params)?;
        let mut spec = ProbeSpec::new("ga4-test", kind);
        spec.params = params;
        spec.secret = Some("GA4_KEY".into());
        let env = vec![(
            "FUNNELGATE_SECRET_GA4_KEY".to_string(),
            self.key_json.clone(),
        )];
        let ctx = ProbeContext {
            spec: Arc::new(spec),
            secrets: SecretStore::new(env, None),
            http: funnelgate_checker_sdk::default_http_client().unwrap(),
        };
        probe.run(&ctx).await
    }
}

fn property(delete: bool) -> Value {
    let mut p = json!({"name": "properties/123456789", "displayName": "Acme web", "timeZone": "Europe/Paris",
        "currencyCode": "EUR", "serviceLevel": "GOOGLE_ANALYTICS_STANDARD", "propertyType": "PROPERTY_TYPE_ORDINARY",
        "createTime": "2024-01-01T00:00:00Z", "parent": "accounts/42"});
    if delete {
        p["deleteTime"] = json!("2026-12-01T00:00:00Z");
    }
    p
}

#[tokio::test]
async fn property_and_stream_match_the_pages_measurement_ids() {
    let f = start().await;
    f.ga4
        .respond("analyticsadmin.properties.get", 200, property(false));
    f.ga4.respond("analyticsadmin.properties.dataStreams.list", 200, json!({"dataStreams": [
        {"name": "properties/123456789/dataStreams/1", "type": "WEB_DATA_STREAM", "displayName": "www",
         "webStreamData": {"measurementId": "G-ACME000001", "defaultUri": "https://www.acme.example", "firebaseAppId": "x"}},
        {"name": "properties/123456789/dataStreams/2", "type": "ANDROID_APP_DATA_STREAM",
         "androidAppStreamData": {"packageName": "com.acme", "firebaseAppId": "y"}}
    ]}));
    let m = f
        .run(
            "ga4.property_and_stream",
            json!({"measurement_ids": ["G-ACME000001"], "landing_domain": "www.acme.example"}),
        )
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{}", m.message);
    assert_eq!(m.value, Some(0.0));
    let m = f
        .run(
            "ga4.property_and_stream",
            json!({"measurement_ids": ["G-OTHER00001"], "landing_domain": "shop.other.example"}),
        )
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Fail));
    assert!(
        m.message.contains("G-OTHER00001 not a web stream"),
        "{}",
        m.message
    );
    assert!(m.message.contains("shop.other.example"), "{}", m.message);
    f.ga4
        .respond("analyticsadmin.properties.get", 200, property(true));
    let m = f
        .run(
            "ga4.property_and_stream",
            json!({"measurement_ids": ["G-ACME000001"]}),
        )
        .await
        .unwrap();
    assert!(m.message.contains("trash"), "{}", m.message);
    // The token was fetched once and reused by every call of a probe.
    assert!(f.ga4.calls.lock().unwrap().len() >= 6);
}

#[tokio::test]
async fn key_events_configured_pages_through_and_names_the_missing() {
    let f = start().await;
    f.ga4.respond("analyticsadmin.properties.keyEvents.list", 200, json!({"keyEvents": [
        {"name": "properties/123456789/keyEvents/1", "eventName": "purchase", "countingMethod": "ONCE_PER_EVENT",
         "custom": false, "deletable": false, "createTime": "2024-01-01T00:00:00Z"}
    ]}));
    let m = f
        .run(
            "ga4.key_events_configured",
            json!({"required_events": ["purchase", "generate_lead"]}),
        )
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Fail));
    assert_eq!(m.value, Some(1.0));
    assert!(m.message.contains("generate_lead"), "{}", m.message);
}

fn report(rows: &[(&str, &str)], thresholded: bool, remaining: i64) -> Value {
    json!({
        "dimensionHeaders": [{"name": "eventName"}],
        "metricHeaders": [{"name": "eventCount", "type": "TYPE_INTEGER"}, {"name": "keyEvents", "type": "TYPE_INTEGER"}],
        "rows": rows.iter().map(|(n, c)| json!({"dimensionValues": [{"value": n}], "metricValues": [{"value": c}, {"value": c}]})).collect::<Vec<_>>(),
        "rowCount": rows.len(),
        "metadata": {"currencyCode": "EUR", "timeZone": "Europe/Paris", "subjectToThresholding": thresholded, "dataLossFromOtherRow": false},
        "propertyQuota": {"tokensPerDay": {"consumed": 199000 - remaining, "remaining": remaining},
                          "tokensPerHour": {"consumed": 10, "remaining": 39990}},
        "kind": "analyticsData#runReport"
    })
}

#[tokio::test]
async fn key_events_firing_with_quality_flags() {
    let f = start().await;
    f.ga4.respond(
        "analyticsdata.properties.runReport",
        200,
        report(
            &[("generate_lead", "12"), ("purchase", "3")],
            false,
            150_000,
        ),
    );
    let m = f
        .run(
            "ga4.key_events_firing",
            json!({"required_events": ["generate_lead", "purchase"]}),
        )
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{}", m.message);
    assert_eq!(m.evidence["events.generate_lead"], "12");
    f.ga4.respond(
        "analyticsdata.properties.runReport",
        200,
        report(&[("generate_lead", "12")], true, 1_000),
    );
    let m = f
        .run(
            "ga4.key_events_firing",
            json!({"required_events": ["generate_lead", "purchase"]}),
        )
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Fail));
    assert!(m.message.contains("purchase"), "{}", m.message);
    assert!(m.message.contains("thresholding"), "{}", m.message);
    assert!(m.message.contains("quota"), "{}", m.message);
    f.ga4.respond(
        "analyticsdata.properties.runReport",
        200,
        report(&[("generate_lead", "12"), ("purchase", "3")], true, 150_000),
    );
    let m = f
        .run(
            "ga4.key_events_firing",
            json!({"required_events": ["generate_lead", "purchase"]}),
        )
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Warn), "{}", m.message);
    // Empty data: GA4 omits `rows` entirely.
    f.ga4.respond("analyticsdata.properties.runReport", 200, json!({"dimensionHeaders": [{"name": "eventName"}], "metricHeaders": [{"name": "eventCount", "type": "TYPE_INTEGER"}], "metadata": {"currencyCode": "EUR", "timeZone": "Europe/Paris"}, "kind": "analyticsData#runReport"}));
    let m = f
        .run(
            "ga4.key_events_firing",
            json!({"required_events": ["generate_lead"]}),
        )
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Fail));
}

#[tokio::test]
async fn realtime_canary_seen_or_not() {
    let f = start().await;
    f.ga4.respond("analyticsdata.properties.runRealtimeReport", 200, json!({
        "dimensionHeaders": [{"name": "eventName"}], "metricHeaders": [{"name": "eventCount", "type": "TYPE_INTEGER"}],
        "rows": [{"dimensionValues": [{"value": "funnelgate_canary"}], "metricValues": [{"value": "2"}]}],
        "rowCount": 1, "kind": "analyticsData#runRealtimeReport"}));
    let m = f
        .run(
            "ga4.realtime_canary",
            json!({"event_name": "funnelgate_canary"}),
        )
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{}", m.message);
    assert_eq!(m.value, Some(2.0));
    f.ga4.respond(
        "analyticsdata.properties.runRealtimeReport",
        200,
        json!({"kind": "analyticsData#runRealtimeReport"}),
    );
    let m = f
        .run(
            "ga4.realtime_canary",
            json!({"event_name": "funnelgate_canary"}),
        )
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Fail));
}

#[tokio::test]
async fn retention_and_currency() {
    let f = start().await;
    f.ga4
        .respond("analyticsadmin.properties.get", 200, property(false));
    f.ga4.respond(
        "analyticsadmin.properties.getDataRetentionSettings",
        200,
        json!({
        "name": "properties/123456789/dataRetentionSettings", "eventDataRetention": "TWO_MONTHS",
        "resetUserDataOnNewActivity": true}),
    );
    let m = f
        .run(
            "ga4.data_retention_and_currency",
            json!({"expected_currency": "USD", "expected_time_zone": "Europe/Paris"}),
        )
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Warn));
    assert_eq!(m.value, Some(2.0));
    assert!(
        m.message.contains("2 months") && m.message.contains("USD"),
        "{}",
        m.message
    );
    f.ga4.respond(
        "analyticsadmin.properties.getDataRetentionSettings",
        200,
        json!({"eventDataRetention": "FOURTEEN_MONTHS"}),
    );
    let m = f
        .run(
            "ga4.data_retention_and_currency",
            json!({"expected_currency": "eur"}),
        )
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{}", m.message);
}

#[tokio::test]
async fn auth_and_api_errors_are_specific() {
    let f = start().await;
    f.ga4.respond("analyticsadmin.properties.keyEvents.list", 403, json!({"error": {"code": 403,
        "message": "User does not have sufficient permissions for this property.", "status": "PERMISSION_DENIED"}}));
    let e = f
        .run(
            "ga4.key_events_configured",
            json!({"required_events": ["purchase"]}),
        )
        .await
        .unwrap_err();
    assert!(
        e.message.contains("403") && e.message.contains("sufficient permissions"),
        "{e}"
    );
    assert!(!e.message.contains("ya29"), "no token in errors: {e}");
    *f.ga4.token_status.lock().unwrap() = 400;
    let e = f
        .run(
            "ga4.key_events_configured",
            json!({"required_events": ["purchase"]}),
        )
        .await
        .unwrap_err();
    assert!(
        e.message.contains("google oauth") && e.message.contains("400"),
        "{e}"
    );
    // A secret that is not a key: a clear error that never quotes it.
    let g = Fixture {
        key_json: "not json at all".into(),
        ..start().await
    };
    let e = g
        .run(
            "ga4.key_events_configured",
            json!({"required_events": ["purchase"]}),
        )
        .await
        .unwrap_err();
    assert!(e.message.contains("not a service-account json key"), "{e}");
    assert!(!e.message.contains("not json at all"), "{e}");
}
