//! Local servers reproducing the vendors' documented request/response shapes, and helpers to run
//! CRM probes against them. Each test binary uses part of it.
#![allow(dead_code, clippy::unwrap_used)]

pub mod hubspot;
pub mod pipedrive;
pub mod salesforce;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Response, StatusCode};
use funnelgate_checker_sdk::{ProbeError, ProbeRegistry, SecretStore, conformance};
use funnelgate_core::{HumanDuration, Measurement, ProbeSpec};
use serde_json::Value;

/// One request as the local server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// A failure the local server injects.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status, body and extra headers.
    Status {
        code: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Never answer (the client times out).
    Slow,
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with JSON cut off in the middle.
    Truncated,
}

/// When a fault applies.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Applied to requests whose path contains `.0` (every request when empty), `.2` times
    /// (forever when `None`).
    pub rules: Vec<(String, Fault, Option<u32>)>,
}

impl Faults {
    /// The fault for this path, consuming one use.
    pub fn take(&mut self, path: &str) -> Option<Fault> {
        for (prefix, fault, left) in self.rules.iter_mut() {
            if path.contains(prefix.as_str()) {
                match left {
                    Some(0) => continue,
                    Some(n) => *n -= 1,
                    None => {}
                }
                return Some(fault.clone());
            }
        }
        None
    }
}

/// Turn a fault into a response (`Slow` waits forever).
pub async fn fault_response(f: Fault) -> Response<Body> {
    match f {
        Fault::Status {
            code,
            body,
            headers,
        } => {
            let mut r = Response::builder()
                .status(code)
                .header("content-type", "application/json;charset=utf-8");
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r.body(Body::from(body)).unwrap()
        }
        Fault::Slow => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Fault::Malformed => json_text(200, "{\"results\": [ this is not json ]}"),
        Fault::Truncated => json_text(
            200,
            "{\"results\":[{\"id\":\"1\",\"properties\":{\"email\":\"a",
        ),
    }
}

pub fn json_text(code: u16, body: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json;charset=utf-8")
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub fn json_response(code: u16, body: &Value) -> Response<Body> {
    json_text(code, &body.to_string())
}

/// A server on 127.0.0.1:0, stopped when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Bind 127.0.0.1:0 first, then serve the router on that listener.
pub async fn serve(router: Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Server {
        addr,
        base: format!("http://{addr}"),
        task,
    }
}

/// Parse a query string into a map (last value wins).
pub fn parse_query(q: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(q) = q {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.insert(decode(k), decode(v));
        }
    }
    out
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Shared, recorded request log.
pub type Log = Arc<Mutex<Vec<Recorded>>>;

/// The CRM registry (CRM kinds only).
pub fn registry() -> ProbeRegistry {
    let mut r = ProbeRegistry::new();
    funnelgate_checker_crm::register(&mut r);
    r
}

/// A spec for one probe run.
pub fn spec(kind: &str, params: Value, secret: Option<&str>, timeout: Duration) -> ProbeSpec {
    let mut s = ProbeSpec::new("probe-under-test", kind);
    s.params = params;
    s.secret = secret.map(str::to_string);
    s.timeout = HumanDuration(timeout);
    s
}

/// Run a kind once against whatever its params point at, with `secrets` (name → value).
pub async fn run(
    kind: &str,
    params: Value,
    secrets: &[(&str, &str)],
    timeout: Duration,
) -> Result<Measurement, ProbeError> {
    let reg = registry();
    let factory = reg
        .get(kind)
        .unwrap_or_else(|| panic!("kind {kind} not registered"));
    let secret_name = secrets.first().map(|(n, _)| *n);
    let store = SecretStore::new(
        secrets
            .iter()
            .map(|(n, v)| (format!("FUNNELGATE_SECRET_{n}"), v.to_string())),
        None,
    );
    conformance::check_runs_without_panic(
        factory.as_ref(),
        spec(kind, params, secret_name, timeout),
        store,
    )
    .await
}

/// The crypto provider for reqwest (once per process).
pub fn init() {
    funnelgate_checker_sdk::install_crypto_provider();
}

/// ISO-8601 instant `hours` ago.
pub fn hours_ago(hours: f64) -> String {
    let now = funnelgate_checker_crm::time::Utc::now();
    funnelgate_checker_crm::time::Utc(now.0 - (hours * 3_600_000.0) as i64).rfc3339()
}

/// ISO-8601 instant `days` ago.
pub fn days_ago(days: f64) -> String {
    hours_ago(days * 24.0)
}
