//! Local servers reproducing the vendors' documented request/response shapes, and helpers to run
//! automation probes against them. Each test binary uses part of it.
#![allow(dead_code, clippy::unwrap_used)]

pub mod hubspot;
pub mod mailgun;
pub mod marketo;
pub mod mautic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Response, StatusCode};
use funnelgate_checker_sdk::{ProbeError, SecretStore, conformance};
use funnelgate_core::{HumanDuration, Measurement, ProbeSpec};
use serde_json::Value;

/// One request as a local server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub body: Value,
}

impl Recorded {
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
    }
}

/// A failure a local server injects.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status, body and extra headers.
    Status {
        code: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with JSON cut off in the middle.
    Truncated,
}

impl Fault {
    pub fn status(code: u16, body: &str) -> Fault {
        Fault::Status {
            code,
            body: body.to_string(),
            headers: Vec::new(),
        }
    }
    pub fn with_header(self, k: &str, v: &str) -> Fault {
        match self {
            Fault::Status {
                code,
                body,
                mut headers,
            } => {
                headers.push((k.into(), v.into()));
                Fault::Status {
                    code,
                    body,
                    headers,
                }
            }
            other => other,
        }
    }
}

/// Faults by path substring, each with a number of uses (`None` = forever).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub rules: Vec<(String, Fault, Option<u32>)>,
}

impl Faults {
    pub fn add(&mut self, path: &str, f: Fault, times: Option<u32>) {
        self.rules.push((path.to_string(), f, times));
    }
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

pub fn fault_response(f: Fault) -> Response<Body> {
    match f {
        Fault::Status {
            code,
            body,
            headers,
        } => {
            let mut r = Response::builder()
                .status(code)
                .header("content-type", "application/json");
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r.body(Body::from(body)).unwrap()
        }
        Fault::Malformed => json_text(200, "{\"total\": [ this is not json ]}"),
        Fault::Truncated => json_text(200, "{\"total\":\"3\",\"campaigns\":{\"1\":{\"id\":1,\"na"),
    }
}

pub fn json_text(code: u16, body: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
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

/// Parse a query string into ordered pairs (repeated keys kept).
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(q) = q {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.push((decode(k), decode(v)));
        }
    }
    out
}

pub fn parse_form(body: &[u8]) -> BTreeMap<String, String> {
    parse_query(Some(&String::from_utf8_lossy(body)))
        .into_iter()
        .collect()
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

/// A spec for one probe run.
pub fn spec(kind: &str, params: Value, secret: Option<&str>, timeout: Duration) -> ProbeSpec {
    let mut s = ProbeSpec::new("probe-under-test", kind);
    s.params = params;
    s.secret = secret.map(str::to_string);
    s.timeout = HumanDuration(timeout);
    s
}

/// Run a kind once with `secrets` (name → value); the first names the spec's `secret`.
pub async fn run(
    kind: &str,
    params: Value,
    secrets: &[(&str, &str)],
    timeout: Duration,
) -> Result<Measurement, ProbeError> {
    funnelgate_checker_sdk::install_crypto_provider();
    let reg = funnelgate_checker_automation::registry();
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

/// RFC 3339 instant `hours` ago.
pub fn hours_ago(hours: f64) -> String {
    let t = jiff::Timestamp::now() - Duration::from_secs_f64(hours * 3600.0);
    funnelgate_checker_automation::time::format(t)
}
