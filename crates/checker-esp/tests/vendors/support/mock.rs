//! A local stand-in for a vendor API: an axum server on `127.0.0.1:0` that checks every request
//! against the vendor's spec, answers with canned replies chosen by the test, and checks every
//! canned JSON reply against the spec's response schema. Contract violations are collected and
//! fail the test in [`MockVendor::assert_contract`].

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::Value;

use super::spec::{RequestFacts, Spec};

/// A request the server received, with the operation it matched.
#[derive(Clone, Debug)]
pub struct Seen {
    pub facts: RequestFacts,
    /// The spec's `operationId` / operation name, when the request matched one.
    pub op: Option<String>,
    /// `METHOD /template` of the matched operation.
    pub op_name: Option<String>,
    pub headers: HeaderMap,
    /// The raw path and query as received (for signature checks).
    pub path_and_query: String,
}

impl Seen {
    pub fn op(&self) -> &str {
        self.op.as_deref().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query(&self, name: &str) -> Vec<&str> {
        self.facts
            .query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.facts.body).unwrap_or(Value::Null)
    }
}

/// What the server answers.
#[derive(Clone, Debug)]
pub enum ReplyBody {
    /// A JSON body; checked against the spec's schema for the status.
    Json(Value),
    /// Raw text (malformed or truncated JSON, html error pages); not checked.
    Raw(String),
    /// No reply at all: the connection stays open until the client gives up.
    Hang,
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ReplyBody,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Json(body),
        }
    }
    pub fn ok(body: Value) -> Reply {
        Reply::json(200, body)
    }
    pub fn raw(status: u16, text: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Raw(text.to_string()),
        }
    }
    pub fn hang() -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: ReplyBody::Hang,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

type Responder = dyn Fn(&Seen) -> Reply + Send + Sync;
type Verifier = dyn Fn(&Seen) -> Result<(), String> + Send + Sync;

struct Inner {
    spec: Arc<Spec>,
    responder: Box<Responder>,
    verifier: Option<Box<Verifier>>,
    seen: Mutex<Vec<Seen>>,
    violations: Mutex<Vec<String>>,
}

/// The running mock; the server stops when it is dropped.
pub struct MockVendor {
    pub url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockVendor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockVendor {
    /// Start a mock of `spec` answering with `responder`.
    pub async fn start(
        spec: Arc<Spec>,
        responder: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> MockVendor {
        Self::start_with(spec, responder, None).await
    }

    /// Start a mock that also runs `verifier` on every request (e.g. a signature check).
    pub async fn start_with(
        spec: Arc<Spec>,
        responder: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
        verifier: Option<Box<Verifier>>,
    ) -> MockVendor {
        let inner = Arc::new(Inner {
            spec,
            responder: Box::new(responder),
            verifier,
            seen: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockVendor {
            url: format!("http://{addr}"),
            inner,
            task,
        }
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().expect("lock").clone()
    }

    /// Operations called, in order.
    pub fn ops(&self) -> Vec<String> {
        self.seen().iter().map(|s| s.op().to_string()).collect()
    }

    /// Fail the test when any request or canned reply broke the spec, or nothing was called.
    pub fn assert_contract(&self) {
        let v = self.inner.violations.lock().expect("lock").clone();
        assert!(
            v.is_empty(),
            "{} contract violations:\n  {}",
            self.inner.spec.vendor,
            v.join("\n  ")
        );
        assert!(
            !self.seen().is_empty(),
            "{}: the probe made no request",
            self.inner.spec.vendor
        );
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (form_decode(k), form_decode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    let facts = RequestFacts {
        method: method.as_str().to_string(),
        path: uri.path().to_string(),
        query,
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let mut violations = Vec::new();
    let (op, op_name) = match inner.spec.check_request(&facts) {
        Ok(op) => (Some(op.id.clone()), Some(op.name())),
        Err(errors) => {
            violations.extend(errors);
            // Still name the operation when only a parameter was wrong, so the test can answer.
            let loose = inner
                .spec
                .operations
                .iter()
                .find(|o| o.method == facts.method && same_shape(&o.template, &facts.path));
            (loose.map(|o| o.id.clone()), loose.map(|o| o.name()))
        }
    };
    let seen = Seen {
        facts,
        op,
        op_name: op_name.clone(),
        headers,
        path_and_query: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
    };
    if let Some(verify) = &inner.verifier
        && let Err(e) = verify(&seen)
    {
        violations.push(format!("{} {}: {e}", seen.facts.method, seen.facts.path));
    }
    let reply = (inner.responder)(&seen);
    if let (ReplyBody::Json(body), Some(name)) = (&reply.body, &op_name) {
        let op = inner.spec.operation(name);
        violations.extend(
            inner
                .spec
                .check_response(op, reply.status, body)
                .into_iter()
                .map(|e| format!("canned reply: {e}")),
        );
    }
    inner.seen.lock().expect("lock").push(seen);
    inner.violations.lock().expect("lock").extend(violations);
    let mut builder =
        Response::builder().status(StatusCode::from_u16(reply.status).expect("status"));
    for (k, v) in &reply.headers {
        builder = builder.header(k, v);
    }
    match reply.body {
        ReplyBody::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        ReplyBody::Json(v) => builder
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&v).expect("json")))
            .expect("response"),
        ReplyBody::Raw(t) => builder.body(Body::from(t)).expect("response"),
    }
}

fn same_shape(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| a.starts_with('{') || a == b)
}

fn form_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
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
