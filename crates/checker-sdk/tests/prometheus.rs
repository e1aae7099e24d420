//! The `prometheus` probe against a real Prometheus (`/usr/bin/prometheus`, Debian package
//! `prometheus`; override with `FUNNELGATE_PROMETHEUS`), started on a free port with a temp
//! config that scrapes itself and a temp TSDB, and killed at the end.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{run, run_direct, secrets, spec};
use funnelgate_checker_sdk::ProbeErrorKind;
use funnelgate_core::{ProbeSpec, ProbeStatus, Thresholds};
use serde_json::json;

/// Kills Prometheus when the test ends, whether it passed or panicked.
struct PrometheusGuard {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for PrometheusGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

async fn start_prometheus() -> PrometheusGuard {
    let bin =
        std::env::var("FUNNELGATE_PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    assert!(
        std::path::Path::new(&bin).exists(),
        "Prometheus binary {bin} not found: install the Debian package `prometheus` (or set FUNNELGATE_PROMETHEUS)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("write config");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let guard = PrometheusGuard {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };

    // Wait until ready, then until the first self-scrape is queryable.
    funnelgate_checker_sdk::install_crypto_provider();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let ready_url = format!("{}/-/ready", guard.base);
    let up_url = format!("{}/api/v1/query?query=up", guard.base);
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "Prometheus did not become ready with a first scrape in 90s"
        );
        let ready = matches!(http.get(&ready_url).send().await, Ok(r) if r.status().is_success());
        if ready && let Ok(r) = http.get(&up_url).send().await {
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            if body["data"]["result"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    guard
}

fn prom(id: &str, base: &str, query: &str) -> ProbeSpec {
    spec(
        id,
        "prometheus",
        json!({"url": base, "query": query}),
        Duration::from_secs(10),
    )
}

#[tokio::test]
async fn prometheus_probe_against_a_real_prometheus() {
    let p = start_prometheus().await;
    let base = p.base.as_str();

    // One series, judged as a boolean.
    let mut s = prom("up", base, r#"up{job="prometheus"}"#);
    s.thresholds = Thresholds {
        expect: Some(true),
        ..Default::default()
    };
    let r = run(s, secrets(&[])).await;
    assert_eq!(
        (r.status, r.value),
        (ProbeStatus::Pass, Some(1.0)),
        "{}",
        r.message
    );
    assert!(
        r.evidence["labels"].contains(r#"job="prometheus""#),
        "{:?}",
        r.evidence
    );
    assert_eq!(r.evidence["series"], "1");

    let r = run(prom("build", base, "prometheus_build_info"), secrets(&[])).await;
    assert_eq!(r.value, Some(1.0), "{}", r.message);
    assert!(
        r.evidence["labels"].contains("version="),
        "{:?}",
        r.evidence
    );

    // A thresholded numeric value, with a unit and a trailing slash on the base URL.
    let mut s = spec(
        "targets",
        "prometheus",
        json!({"url": format!("{base}/"), "query": "count(up)", "unit": "count"}),
        Duration::from_secs(10),
    );
    s.thresholds = Thresholds {
        fail_below: Some(2.0),
        ..Default::default()
    };
    let r = run(s, secrets(&[])).await;
    assert_eq!(
        (r.status, r.value),
        (ProbeStatus::Fail, Some(1.0)),
        "{}",
        r.message
    );
    assert_eq!(r.unit, "count");
    assert!(
        r.message.starts_with("1.0 below fail threshold 2.0"),
        "{}",
        r.message
    );

    // An empty selector is an ERROR, never a pass; `or vector(0)` makes it zero.
    let r = run(
        prom("empty", base, "funnelgate_no_such_metric"),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.status, ProbeStatus::Error);
    assert!(
        r.message.contains("query returned no series"),
        "{}",
        r.message
    );
    let mut zero = prom("zero", base, "sum(funnelgate_no_such_metric) or vector(0)");
    zero.thresholds = funnelgate_core::Thresholds {
        fail_above: Some(0.0),
        ..Default::default()
    };
    let r = run(zero, secrets(&[])).await;
    assert_eq!(
        (r.status, r.value),
        (ProbeStatus::Pass, Some(0.0)),
        "{}",
        r.message
    );

    // Several series: an ERROR unless `aggregate` says how to combine them.
    let two = r#"{__name__=~"up|prometheus_build_info"}"#;
    let r = run(prom("two", base, two), secrets(&[])).await;
    assert_eq!(r.status, ProbeStatus::Error);
    assert!(
        r.message.contains("query returned 2 series"),
        "{}",
        r.message
    );
    let r = run(
        spec(
            "sum",
            "prometheus",
            json!({"url": base, "query": two, "aggregate": "sum"}),
            Duration::from_secs(10),
        ),
        secrets(&[]),
    )
    .await;
    assert_eq!(r.value, Some(2.0), "{}", r.message);
    assert!(r.message.contains("sum of 2 series"), "{}", r.message);

    // Scalars, NaN, infinities, range vectors.
    let r = run(prom("scalar", base, "scalar(up)"), secrets(&[])).await;
    assert_eq!(r.value, Some(1.0), "{}", r.message);
    assert_eq!(r.evidence["result_type"], "scalar");
    let r = run(prom("nan", base, "0/0"), secrets(&[])).await;
    assert_eq!(r.status, ProbeStatus::Error);
    assert!(r.message.contains("NaN"), "{}", r.message);
    let r = run(prom("inf", base, "vector(1)/0"), secrets(&[])).await;
    assert_eq!(r.status, ProbeStatus::Error);
    assert!(r.message.contains("+Inf"), "{}", r.message);
    let r = run(prom("range", base, "up[1m]"), secrets(&[])).await;
    assert!(r.message.contains("range vector"), "{}", r.message);

    // A bad query: Prometheus's own error, permanent (not retried).
    let e = run_direct(prom("bad", base, "up{"), secrets(&[]))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Permanent, "{e}");
    assert!(e.message.contains("answered 400: bad_data"), "{e}");

    // `time`: evaluated in the past, before any sample existed.
    let r = run(
        spec(
            "past",
            "prometheus",
            json!({"url": base, "query": "up", "time": "2001-01-01T00:00:00Z"}),
            Duration::from_secs(10),
        ),
        secrets(&[]),
    )
    .await;
    assert!(r.message.contains("no series"), "{}", r.message);

    // Bearer tokens are sent (Prometheus ignores them without a web config) and never shown.
    let mut s = spec(
        "token",
        "prometheus",
        json!({"url": base, "query": "vector(3)", "bearer_secret": true}),
        Duration::from_secs(10),
    );
    s.secret = Some("PROM_TOKEN".into());
    let r = run(s, secrets(&[("PROM_TOKEN", "prom-token-xyz")])).await;
    assert_eq!(r.value, Some(3.0), "{}", r.message);
    assert!(!format!("{r:?}").contains("prom-token-xyz"));

    // Prometheus unreachable: a transient error naming the endpoint.
    let down = format!("http://127.0.0.1:{}", free_port());
    let e = run_direct(prom("down", &down, "up"), secrets(&[]))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Transient, "{e}");
    assert!(
        e.message
            .contains(&format!("prometheus {down}/api/v1/query: cannot connect")),
        "{e}"
    );
    drop(p);
}
