//! The `http` probe against a local axum server: every measure, unexpected statuses, secrets in
//! headers, redirects, retry-after, timeouts and malformed JSON.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use common::{run, run_direct, secrets, spec};
use funnelgate_checker_sdk::ProbeErrorKind;
use funnelgate_core::{ProbeStatus, Thresholds};
use serde_json::json;

#[derive(Clone, Default)]
struct Counters {
    limited: Arc<AtomicUsize>,
    flaky: Arc<AtomicUsize>,
}

async fn serve() -> (SocketAddr, Counters) {
    let counters = Counters::default();
    let app = Router::new()
        .route("/ok", get(|| async { "hello world: Sign up today" }))
        .route(
            "/status/{code}",
            get(|Path(code): Path<u16>| async move {
                (StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT), format!("status page {code}"))
            }),
        )
        .route(
            "/json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"data": {"depth": 12, "healthy": true, "ratio": "0.25", "nothing": null, "list": [1]}}"#,
                )
            }),
        )
        .route(
            "/malformed",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{\"data\": [1, 2") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "too late"
            }),
        )
        .route("/redirect", get(|| async { Redirect::temporary("/ok") }))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route(
            "/auth",
            get(|headers: HeaderMap| async move {
                match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
                    Some("Bearer tok-123") => (StatusCode::OK, "welcome"),
                    _ => (StatusCode::UNAUTHORIZED, "missing or bad token"),
                }
            }),
        )
        .route(
            "/apikey",
            get(|headers: HeaderMap| async move {
                match headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
                    Some("key-456") => (StatusCode::OK, "welcome"),
                    _ => (StatusCode::FORBIDDEN, "bad key"),
                }
            }),
        )
        .route(
            "/limited",
            get(|State(c): State<Counters>| async move {
                if c.limited.fetch_add(1, Ordering::SeqCst) == 0 {
                    (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], "slow down").into_response()
                } else {
                    ([(header::CONTENT_TYPE, "application/json")], r#"{"n": 7}"#).into_response()
                }
            }),
        )
        .route(
            "/flaky",
            get(|State(c): State<Counters>| async move {
                c.flaky.fetch_add(1, Ordering::SeqCst);
                (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response()
            }),
        )
        .route("/echo", post(|body: String| async move { body }))
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (addr, counters)
}

fn http(id: &str, params: serde_json::Value) -> funnelgate_core::ProbeSpec {
    spec(id, "http", params, Duration::from_secs(5))
}

#[tokio::test]
async fn measure_ok() {
    let (addr, _) = serve().await;
    let r = run(
        http("ok", json!({"url": format!("http://{addr}/ok")})),
        secrets(&[]),
    )
    .await;
    assert_eq!(
        (r.status, r.value),
        (ProbeStatus::Pass, Some(1.0)),
        "{}",
        r.message
    );
    assert_eq!(r.unit, "bool");
    assert_eq!(r.evidence["status"], "200");

    // Not expected, no thresholds: ok expects true, so 0.0 is a FAIL (a measurement, no error).
    let r = run(
        http("down", json!({"url": format!("http://{addr}/status/503")})),
        secrets(&[]),
    )
    .await;
    assert_eq!(
        (r.status, r.value),
        (ProbeStatus::Fail, Some(0.0)),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("answered 503, expected 2xx"),
        "{}",
        r.message
    );

    // An explicit expectation list.
    let r = run(
        http(
            "gone",
            json!({"url": format!("http://{addr}/status/410"), "expect_status": [404, 410]}),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::Pass, "{}", r.message);
}

#[tokio::test]
async fn measure_status_and_latency() {
    let (addr, _) = serve().await;
    let mut s = http(
        "status",
        json!({"url": format!("http://{addr}/status/404"), "measure": "status"}),
    );
    s.thresholds = Thresholds {
        fail_above: Some(399.0),
        ..Default::default()
    };
    let r = run(s, secrets(&[])).await;
    assert_eq!(
        (r.status, r.value),
        (ProbeStatus::Fail, Some(404.0)),
        "{}",
        r.message
    );
    assert!(
        r.message.starts_with("404.0 above fail threshold 399.0"),
        "{}",
        r.message
    );

    let mut s = http(
        "latency",
        json!({"url": format!("http://{addr}/ok"), "measure": "latency_ms", "method": "HEAD"}),
    );
    s.thresholds = Thresholds {
        fail_above: Some(60_000.0),
        ..Default::default()
    };
    let r = run(s, secrets(&[])).await;
    assert_eq!(r.status, ProbeStatus::Pass, "{}", r.message);
    assert_eq!(r.unit, "ms");
    assert!(r.value.is_some_and(|v| v >= 0.0));

    // Latency of an unexpected status is an error naming the status (permanent: not retried).
    let e = run_direct(
        http(
            "latency-404",
            json!({"url": format!("http://{addr}/status/404"), "measure": "latency_ms"}),
        ),
        secrets(&[]),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent);
    assert!(
        e.message
            .contains("answered 404, expected 2xx: status page 404"),
        "{e}"
    );
}

#[tokio::test]
async fn measure_json_pointer() {
    let (addr, _) = serve().await;
    let url = format!("http://{addr}/json");
    let mut s = http(
        "depth",
        json!({"url": url, "measure": "json_pointer", "json_pointer": "/data/depth"}),
    );
    s.thresholds = Thresholds {
        warn_above: Some(10.0),
        fail_above: Some(100.0),
        ..Default::default()
    };
    let r = run(s, secrets(&[])).await;
    assert_eq!(
        (r.status, r.value),
        (ProbeStatus::Warn, Some(12.0)),
        "{}",
        r.message
    );

    let r = run(
        http(
            "healthy",
            json!({"url": url, "measure": "json_pointer", "json_pointer": "/data/healthy"}),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.value, Some(1.0));
    let r = run(
        http(
            "ratio",
            json!({"url": url, "measure": "json_pointer", "json_pointer": "/data/ratio"}),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.value, Some(0.25));
    let r = run(
        http(
            "null",
            json!({"url": url, "measure": "json_pointer", "json_pointer": "/data/nothing"}),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::NoData, "{}", r.message);
    let r = run(
        http(
            "list",
            json!({"url": url, "measure": "json_pointer", "json_pointer": "/data/list"}),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::Error);
    assert!(
        r.message.contains("expected a number or a boolean"),
        "{}",
        r.message
    );
    let r = run(
        http(
            "missing",
            json!({"url": url, "measure": "json_pointer", "json_pointer": "/data/absent"}),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::Error);
    assert!(
        r.message
            .contains("no value at json pointer `/data/absent`"),
        "{}",
        r.message
    );

    let e = run_direct(
        http("malformed", json!({"url": format!("http://{addr}/malformed"), "measure": "json_pointer", "json_pointer": "/data"})),
        secrets(&[]),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent);
    assert!(e.message.contains("response body is not JSON"), "{e}");
}

#[tokio::test]
async fn measure_body_contains_and_post() {
    let (addr, _) = serve().await;
    let r = run(
        http("cta", json!({"url": format!("http://{addr}/ok"), "measure": "body_contains", "contains": "Sign up"})),
        secrets(&[]),
    )
    .await;
    assert_eq!(
        (r.status, r.value),
        (ProbeStatus::Pass, Some(1.0)),
        "{}",
        r.message
    );
    let r = run(
        http("no-cta", json!({"url": format!("http://{addr}/ok"), "measure": "body_contains", "contains": "Buy now"})),
        secrets(&[]),
    )
    .await;
    assert_eq!(
        (r.status, r.value),
        (ProbeStatus::Fail, Some(0.0)),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("does not contain `Buy now`"),
        "{}",
        r.message
    );

    let r = run(
        http(
            "echo",
            json!({"url": format!("http://{addr}/echo"), "method": "POST", "body": "{\"ping\": 42}", "measure": "json_pointer", "json_pointer": "/ping"}),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.value, Some(42.0), "{}", r.message);
}

#[tokio::test]
async fn secrets_go_in_headers_and_never_in_messages() {
    let (addr, _) = serve().await;
    let mut s = http(
        "auth",
        json!({"url": format!("http://{addr}/auth"), "bearer_secret": true}),
    );
    s.secret = Some("SITE_TOKEN".into());
    let r = run(s.clone(), secrets(&[("SITE_TOKEN", "tok-123")])).await;
    assert_eq!(r.status, ProbeStatus::Pass, "{}", r.message);

    let r = run(s.clone(), secrets(&[("SITE_TOKEN", "wrong-token-789")])).await;
    assert_eq!(r.status, ProbeStatus::Fail, "{}", r.message);
    assert!(!format!("{r:?}").contains("wrong-token-789"));

    let r = run(s, secrets(&[])).await;
    assert_eq!(r.status, ProbeStatus::Error);
    assert!(
        r.message.contains("secret `SITE_TOKEN` is not set"),
        "{}",
        r.message
    );

    let mut s = http(
        "key",
        json!({"url": format!("http://{addr}/apikey"), "header_secret": "X-Api-Key"}),
    );
    s.secret = Some("SITE_KEY".into());
    let r = run(s, secrets(&[("SITE_KEY", "key-456")])).await;
    assert_eq!(r.status, ProbeStatus::Pass, "{}", r.message);
}

#[tokio::test]
async fn redirects() {
    let (addr, _) = serve().await;
    let r = run(
        http("follow", json!({"url": format!("http://{addr}/redirect")})),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::Pass, "{}", r.message);
    assert_eq!(
        r.evidence["url"],
        format!("http://127.0.0.1:{}/ok", addr.port())
    );

    let r = run(
        http("nofollow", json!({"url": format!("http://{addr}/redirect"), "follow_redirects": false, "measure": "status"})),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.value, Some(307.0), "{}", r.message);

    let e = run_direct(
        http("loop", json!({"url": format!("http://{addr}/loop")})),
        secrets(&[]),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("too many redirects"), "{e}");
}

#[tokio::test]
async fn retry_after_and_transient_statuses() {
    let (addr, counters) = serve().await;
    // 429 with Retry-After: 1, then 200: the runner waits and retries.
    let mut limited = http(
        "limited",
        json!({"url": format!("http://{addr}/limited"), "measure": "json_pointer", "json_pointer": "/n"}),
    );
    limited.thresholds = Thresholds {
        fail_below: Some(1.0),
        ..Default::default()
    };
    let r = run(limited, secrets(&[])).await;
    assert_eq!(
        (r.status, r.value),
        (ProbeStatus::Pass, Some(7.0)),
        "{}",
        r.message
    );
    assert_eq!(counters.limited.load(Ordering::SeqCst), 2);
    assert_eq!(r.evidence["attempts"], "2");

    // 503 every time: retried twice, then ERROR naming the status.
    let r = run(
        http(
            "flaky",
            json!({"url": format!("http://{addr}/flaky"), "measure": "latency_ms"}),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::Error);
    assert!(
        r.message
            .contains("answered 503, expected 2xx: maintenance (gave up after 3 attempts)"),
        "{}",
        r.message
    );
    assert_eq!(counters.flaky.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn timeouts_and_refused_connections() {
    let (addr, _) = serve().await;
    let r = run(
        spec(
            "slow",
            "http",
            json!({"url": format!("http://{addr}/slow")}),
            Duration::from_secs(1),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::Error);
    assert!(r.message.contains("timed out"), "{}", r.message);

    let e = run_direct(
        spec(
            "slow",
            "http",
            json!({"url": format!("http://{addr}/slow")}),
            Duration::from_secs(1),
        ),
        secrets(&[]),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Transient);
    assert!(e.message.contains("timed out"), "{e}");

    // A port nobody listens on.
    let free = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let e = run_direct(
        http(
            "refused",
            json!({"url": format!("http://127.0.0.1:{port}/x?token=abc")}),
        ),
        secrets(&[]),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Transient);
    assert!(
        e.message
            .contains(&format!("GET http://127.0.0.1:{port}/x: cannot connect")),
        "{e}"
    );
    assert!(
        !e.message.contains("token=abc"),
        "no query string in messages: {e}"
    );
}
