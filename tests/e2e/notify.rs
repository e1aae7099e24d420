//! Notifications on gate changes against local receivers: a Slack- and Teams-shaped webhook
//! server checking the documented payload shapes, a CloudEvents webhook receiver verifying the
//! HMAC-SHA256 signature and timestamp, and a real SMTP server (aiosmtpd) that requires
//! STARTTLS with a throwaway CA (tests/python/notify_receivers.py). Then the delivery guarantee:
//! the receiver is down when a change is recorded, the coordinator is killed with SIGKILL before
//! it could deliver, the receiver comes up, the coordinator restarts, and the change arrives
//! (at-least-once, with the same idempotency key on every copy); a change already delivered is
//! not sent again after another SIGKILL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use funnelgate_e2e::{Cluster, free_port};
use funnelgate_proto::pb;
use tokio::io::{AsyncBufReadExt, BufReader};

const HOOK_KEY: &str = "hook-signing-key-for-tests";
/// A path segment standing for the secret part of a webhook URL: it must never be logged.
const URL_SECRET_PART: &str = "T0SECRETPATH";

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA and a server certificate for `localhost` signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=funnelgate notify test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// The receivers process; stopped when dropped (stdin closes, and it is killed on drop).
struct Receivers {
    child: tokio::process::Child,
    http: u16,
    smtp: u16,
    log: PathBuf,
}

impl Receivers {
    async fn start(dir: &Path, http: u16, smtp: u16) -> Receivers {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/notify_receivers.py");
        let log = dir.join("received.jsonl");
        let mut child = tokio::process::Command::new(crate::python::python())
            .arg(&script)
            .arg(&log)
            .arg(http.to_string())
            .arg(smtp.to_string())
            .arg(HOOK_KEY)
            .arg(dir.join("server.pem"))
            .arg(dir.join("server.key"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the receivers did not start within 30s")
            .unwrap()
            .expect("the receivers exited before READY");
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts.first(), Some(&"READY"), "{line}");
        Receivers {
            child,
            http: parts[1].parse().unwrap(),
            smtp: parts[2].parse().unwrap(),
            log,
        }
    }

    async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

fn received(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The idempotency key a received message carries.
fn id_of(r: &serde_json::Value) -> Option<String> {
    let text = match r["sink"].as_str()? {
        "hook" => return r["body"]["id"].as_str().map(str::to_string),
        "email" => r["message"].as_str()?.to_string(),
        _ => r["body"].to_string(),
    };
    // `acme:<seq>:<16 hex>` inside the text.
    let start = text
        .match_indices("acme:")
        .map(|(i, _)| i)
        .find(|i| text[i + 5..].starts_with(|c: char| c.is_ascii_digit()))?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

async fn wait_received(
    log: &Path,
    what: &str,
    timeout: Duration,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = received(log);
        if done(&r) {
            return r;
        }
        if Instant::now() >= deadline {
            let summary: Vec<String> = r
                .iter()
                .map(|x| {
                    format!(
                        "{} ok={} error={} id={:?}",
                        x["sink"],
                        x["ok"],
                        x["error"],
                        id_of(x)
                    )
                })
                .collect();
            panic!(
                "timed out waiting for {what}; received:\n{}",
                summary.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn with_token<T>(msg: T) -> tonic::Request<T> {
    tonic::Request::new(msg)
}

async fn set_override(grpc: &str, state: pb::GateState) -> u64 {
    let mut g = funnelgate_e2e::gate_client(grpc).await.unwrap();
    g.set_override(with_token(pb::SetOverrideRequest {
        funnel: "acme".into(),
        state: state as i32,
        reason: "notification test".into(),
        ttl_seconds: 600,
        percent: None,
    }))
    .await
    .unwrap()
    .into_inner()
    .decision
    .unwrap()
    .sequence
}

async fn clear_override(grpc: &str) -> u64 {
    let mut g = funnelgate_e2e::gate_client(grpc).await.unwrap();
    g.clear_override(with_token(pb::ClearOverrideRequest {
        funnel: "acme".into(),
        reason: "notification test done".into(),
    }))
    .await
    .unwrap()
    .into_inner()
    .decision
    .unwrap()
    .sequence
}

async fn metrics(http: &str) -> String {
    funnelgate_e2e::install_crypto();
    reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .map(|v| v.trim().parse().unwrap_or(0.0))
        })
        .unwrap_or(0.0)
}

async fn wait_metric(http: &str, series: &str, at_least: f64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let m = metrics(http).await;
        if metric(&m, series) >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {series} >= {at_least}:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn cluster_with(sinks: &str, env: Vec<(String, String)>) -> Cluster {
    let mut c = Cluster::checkers(tempfile::tempdir().unwrap())
        .await
        .unwrap();
    let config = crate::quickstart_files(c.dir.path(), &c.grpc, &c.http).await;
    std::fs::write(
        c.config_path(),
        format!("{config}\n{sinks}\n{}", c.checkers_toml()),
    )
    .unwrap();
    c.env = env;
    c.start_coordinator().await.unwrap();
    funnelgate_e2e::wait_decision(
        &c.grpc,
        "acme",
        Duration::from_secs(60),
        "CLOSED and fully checked",
        |d| {
            d.state == pb::GateState::Closed as i32
                && d.stages.iter().all(|s| s.checked_at.is_some())
        },
    )
    .await
    .unwrap();
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_teams_webhook_and_email_receive_the_changes_their_filters_select() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let rx = Receivers::start(certs.path(), 0, 0).await;
    let sinks = format!(
        r#"
[notifications]
retry_initial = "200ms"
retry_max = "1s"
timeout = "5s"

[[notifications.sinks]]
name = "ops-slack"
kind = "slack"
url_secret = "SLACK_URL"
on = ["state_change"]

[[notifications.sinks]]
name = "ops-teams"
kind = "teams"
url_secret = "TEAMS_URL"
on = ["closed"]

[[notifications.sinks]]
name = "audit-hook"
kind = "webhook"
funnels = ["acme"]
url_secret = "HOOK_URL"
hmac_secret = "HOOK_KEY"
on = ["override"]

[[notifications.sinks]]
name = "ops-mail"
kind = "email"
on = ["state_change"]
[notifications.sinks.smtp]
host = "localhost"
port = {smtp}
from = "Funnel gate <gate@example.test>"
to = ["ops@example.test"]
ca_file = "{ca}"
"#,
        smtp = rx.smtp,
        ca = certs.path().join("ca.pem").display(),
    );
    let base = format!("http://127.0.0.1:{}", rx.http);
    let c = cluster_with(
        &sinks,
        vec![
            (
                "FUNNELGATE_SECRET_SLACK_URL".into(),
                format!("{base}/slack/{URL_SECRET_PART}"),
            ),
            (
                "FUNNELGATE_SECRET_TEAMS_URL".into(),
                format!("{base}/teams/{URL_SECRET_PART}"),
            ),
            (
                "FUNNELGATE_SECRET_HOOK_URL".into(),
                format!("{base}/hook/{URL_SECRET_PART}"),
            ),
            ("FUNNELGATE_SECRET_HOOK_KEY".into(), HOOK_KEY.into()),
        ],
    )
    .await;

    // CLOSED -> OPEN (override), then OPEN -> CLOSED (cleared).
    let opened = set_override(&c.grpc, pb::GateState::Open).await;
    let closed = clear_override(&c.grpc).await;
    assert_eq!(closed, opened + 1);
    let key = |seq: u64| format!("acme:{seq}:");
    let has = |r: &[serde_json::Value], sink: &str, seq: u64| {
        r.iter().any(|x| {
            x["sink"] == sink
                && x["ok"] == true
                && id_of(x).is_some_and(|i| i.starts_with(&key(seq)))
        })
    };
    let r = wait_received(
        &rx.log,
        "every sink's messages",
        Duration::from_secs(30),
        |r| {
            has(r, "slack", opened)
                && has(r, "slack", closed)
                && has(r, "teams", closed)
                && has(r, "hook", opened)
                && has(r, "hook", closed)
                && has(r, "email", opened)
                && has(r, "email", closed)
        },
    )
    .await;
    let rejected: Vec<&serde_json::Value> = r.iter().filter(|x| x["ok"] != true).collect();
    assert!(rejected.is_empty(), "receivers rejected: {rejected:#?}");
    // Filters: Teams hears only of closing, not of the override that opened the gate.
    assert!(!has(&r, "teams", opened), "{r:#?}");

    let slack = r
        .iter()
        .find(|x| x["sink"] == "slack" && id_of(x).is_some_and(|i| i.starts_with(&key(closed))))
        .unwrap();
    assert_eq!(
        slack["body"]["text"],
        "acme: CLOSED (was OPEN), 0% allowed, blocking stage crm"
    );
    let hook = r
        .iter()
        .find(|x| x["sink"] == "hook" && id_of(x).is_some_and(|i| i.starts_with(&key(opened))))
        .unwrap();
    assert_eq!(hook["body"]["type"], "dev.funnelgate.gate.changed.v1");
    assert_eq!(hook["body"]["data"]["kind"], "override");
    assert_eq!(hook["body"]["data"]["state"], "OPEN");
    assert_eq!(hook["body"]["data"]["previous_state"], "CLOSED");
    let mail = r
        .iter()
        .find(|x| x["sink"] == "email" && id_of(x).is_some_and(|i| i.starts_with(&key(closed))))
        .unwrap();
    let text = mail["message"].as_str().unwrap();
    assert!(
        text.contains("Subject: [funnelgate] acme: CLOSED (was OPEN)"),
        "{text}"
    );
    assert_eq!(mail["to"][0], "ops@example.test");

    // The receiver's signature check is real: a forged body is refused.
    funnelgate_e2e::install_crypto();
    let forged = reqwest::Client::new()
        .post(format!("{base}/hook/x"))
        .header("Content-Type", "application/cloudevents+json")
        .header("Funnelgate-Timestamp", chrono_now().to_string())
        .header("Funnelgate-Signature", "v1=00")
        .body(hook["body"].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);

    // Delivered, counted, and no secret in the coordinator's output.
    let m = metrics(&c.http).await;
    assert!(
        metric(
            &m,
            "funnelgate_notifications_total{sink=\"audit-hook\",outcome=\"delivered\"}"
        ) >= 2.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "funnelgate_notification_sink_failing{sink=\"ops-mail\"}"
        ),
        0.0
    );
    let out = c.coordinator.as_ref().unwrap().output();
    assert!(!out.contains(URL_SECRET_PART), "a webhook URL was logged");
    assert!(!out.contains(HOOK_KEY), "the HMAC key was logged");
    rx.stop().await;
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_recorded_before_a_crash_is_delivered_after_the_restart_with_its_idempotency_key()
{
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    // The receiver's port is chosen now, but nothing listens there yet: the receiver is down.
    let http = free_port();
    let sinks = r#"
[notifications]
retry_initial = "200ms"
retry_max = "500ms"
timeout = "2s"

[[notifications.sinks]]
name = "audit-hook"
kind = "webhook"
url_secret = "HOOK_URL"
hmac_secret = "HOOK_KEY"
on = ["override", "state_change"]
"#;
    let mut c = cluster_with(
        sinks,
        vec![
            (
                "FUNNELGATE_SECRET_HOOK_URL".into(),
                format!("http://127.0.0.1:{http}/hook/{URL_SECRET_PART}"),
            ),
            ("FUNNELGATE_SECRET_HOOK_KEY".into(), HOOK_KEY.into()),
        ],
    )
    .await;
    let opened = set_override(&c.grpc, pb::GateState::Open).await;
    // The change is recorded and its delivery failed at least once (receiver down) ...
    wait_metric(
        &c.http,
        "funnelgate_notifications_total{sink=\"audit-hook\",outcome=\"retry\"}",
        1.0,
        Duration::from_secs(20),
    )
    .await;
    let m = metrics(&c.http).await;
    assert!(
        metric(
            &m,
            "funnelgate_notification_sink_failing{sink=\"audit-hook\"}"
        ) >= 1.0,
        "{m}"
    );
    // The dashboard's data shows the failing sink, with the error and no secret.
    let view: serde_json::Value = reqwest::get(format!("http://{}/v1/funnels/acme/view", c.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sink = &view["notifications"]["sinks"][0];
    assert_eq!(sink["name"], "audit-hook", "{view}");
    assert!(
        sink["consecutive_failures"].as_u64().unwrap() >= 1,
        "{sink}"
    );
    let error = sink["last_error"].as_str().unwrap();
    assert!(error.starts_with("request failed"), "{error}");
    assert!(!error.contains(URL_SECRET_PART), "{error}");
    // ... and the coordinator dies before it could deliver.
    c.coordinator.as_mut().unwrap().kill().unwrap();
    c.coordinator = None;

    let rx = Receivers::start(certs.path(), http, 0).await;
    assert_eq!(rx.http, http);
    c.start_coordinator().await.unwrap();
    let key = format!("acme:{opened}:");
    let r = wait_received(
        &rx.log,
        "the change recorded before the crash",
        Duration::from_secs(30),
        |r| {
            r.iter()
                .any(|x| x["ok"] == true && id_of(x).is_some_and(|i| i.starts_with(&key)))
        },
    )
    .await;
    let copies: Vec<String> = r
        .iter()
        .filter_map(id_of)
        .filter(|i| i.starts_with(&key))
        .collect();
    assert!(
        copies.iter().all(|i| i == &copies[0]),
        "every copy has the same id: {copies:?}"
    );
    // It is marked delivered (the sink is healthy again) ...
    wait_metric(
        &c.http,
        "funnelgate_notifications_total{sink=\"audit-hook\",outcome=\"delivered\"}",
        1.0,
        Duration::from_secs(20),
    )
    .await;
    let delivered_before = received(&rx.log)
        .iter()
        .filter(|x| id_of(x).is_some_and(|i| i.starts_with(&key)))
        .count();
    // ... so after another SIGKILL and restart it is not sent again, while the next change is.
    c.coordinator.as_mut().unwrap().kill().unwrap();
    c.coordinator = None;
    c.start_coordinator().await.unwrap();
    let closed = clear_override(&c.grpc).await;
    let next = format!("acme:{closed}:");
    let r = wait_received(&rx.log, "the next change", Duration::from_secs(30), |r| {
        r.iter()
            .any(|x| x["ok"] == true && id_of(x).is_some_and(|i| i.starts_with(&next)))
    })
    .await;
    let after = r
        .iter()
        .filter(|x| id_of(x).is_some_and(|i| i.starts_with(&key)))
        .count();
    assert_eq!(
        after, delivered_before,
        "a delivered notification was sent again: {r:#?}"
    );
    let rejected: Vec<&serde_json::Value> = r.iter().filter(|x| x["ok"] != true).collect();
    assert!(rejected.is_empty(), "{rejected:#?}");
    rx.stop().await;
}
