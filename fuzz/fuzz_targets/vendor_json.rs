//! Vendor API answers into the probes that read them: each CRM, automation and ESP vendor kind
//! (HubSpot, Salesforce, Pipedrive, Mautic, Marketo, SendGrid, Amazon SES, Mailgun, Postmark) and
//! the generic `prometheus` and `http` (JSON pointer) kinds, built from the plugins' registries
//! and run against a local
//! HTTP server that answers with the fuzz input. The bytes go through the same client, decoding
//! and measuring code as a real run.
//!
//! Input: a first line naming the kind (`automation/hubspot.auth_and_quota` for the automation
//! checker's kind of a name the CRM checker has too), then the response bodies, separated by lines
//! `--next--`: the n-th request gets the n-th body (the last one repeats, up to 64 requests). Every answer is
//! `200 application/json`. Invariants: no panic; a measured value is finite.
#![no_main]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Response, header};
use funnelgate_checker_sdk::vendor_http::vendor_message;
use funnelgate_checker_sdk::{Probe, ProbeContext, SecretStore, default_http_client};
use funnelgate_core::{HumanDuration, ProbeSpec};
use funnelgate_fuzz::{first_line, sections};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const SECRET: &str = "FUZZ";
const SES_SECRET: &str = r#"{"access_key_id":"AKIDFUZZ","secret_access_key":"fuzz-secret"}"#;
const RUN_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests answered per run; later ones get an empty body (an error for every adapter), so a
/// body whose paging cursor never ends cannot keep a run going until the timeout.
const MAX_REQUESTS: usize = 64;

/// The bodies the local server answers with, in order.
#[derive(Default)]
struct Replies {
    bodies: Vec<Vec<u8>>,
    next: usize,
}

type Shared = Arc<Mutex<Replies>>;

async fn reply(State(replies): State<Shared>) -> Response<axum::body::Body> {
    let body = {
        let mut r = replies.lock().unwrap_or_else(|p| p.into_inner());
        let i = r.next.min(r.bodies.len().saturating_sub(1));
        r.next += 1;
        if r.next > MAX_REQUESTS {
            Vec::new()
        } else {
            r.bodies.get(i).cloned().unwrap_or_default()
        }
    };
    let mut response = Response::new(axum::body::Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    replies: Shared,
    /// By kind; a kind two plugins both register (`hubspot.auth_and_quota`) is also under
    /// `<stage>/<kind>` for the later one.
    probes: BTreeMap<String, (Arc<dyn Probe>, ProbeContext)>,
}

/// Params that point `kind` at the local server, or `None` for kinds that read no vendor JSON.
/// With `fast`, settings that only slow a run down (search pacing) are added where a kind has them.
fn params_for(kind: &str, base: &str, fast: bool) -> Option<Value> {
    let vendor = kind.split('.').next().unwrap_or(kind);
    let mut p = match vendor {
        "hubspot" if fast => json!({"base_url": base, "search_interval_ms": 0}),
        "salesforce" => json!({"instance_url": base}),
        "hubspot" | "pipedrive" | "sendgrid" | "postmark" | "mautic" | "marketo" => {
            json!({"base_url": base})
        }
        "mailgun" => json!({"base_url": base, "domain": "mg.example.com"}),
        "ses" => json!({"region": "us-east-1", "endpoint": base}),
        "prometheus" => {
            json!({"url": base, "query": "sum(rate(signups_total[5m]))", "aggregate": "sum"})
        }
        "http" => {
            json!({"url": format!("{base}/health"), "measure": "json_pointer", "json_pointer": "/data/value"})
        }
        _ => return None,
    };
    let extra = match kind {
        "sendgrid.domain_authentication" | "postmark.domain_verification" => {
            json!({"domain": "example.com"})
        }
        "ses.identity_dkim" => json!({"identity": "example.com"}),
        "ses.event_destinations" => json!({"configuration_set": "marketing"}),
        "pipedrive.owner_assignment" => json!({"unassigned_owner_ids": ["1"]}),
        _ => json!({}),
    };
    if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
        p.extend(extra);
    }
    Some(p)
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let replies = Shared::default();
        let addr: SocketAddr = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let addr = listener.local_addr().expect("local address");
            let app = Router::new().fallback(reply).with_state(Arc::clone(&replies));
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            addr
        });
        let base = format!("http://{addr}");
        let http = default_http_client().expect("the http client");
        let registries = [
            ("crm", funnelgate_checker_crm::registry()),
            ("automation", funnelgate_checker_automation::registry()),
            ("esp", funnelgate_checker_esp::registry()),
        ];
        let mut probes: BTreeMap<String, (Arc<dyn Probe>, ProbeContext)> = BTreeMap::new();
        let _guard = runtime.enter();
        let all = registries
            .iter()
            .flat_map(|(stage, r)| r.kinds().map(move |f| (*stage, f)));
        for (stage, factory) in all {
            let kind = factory.kind();
            let Some(params) = params_for(kind, &base, true) else {
                continue;
            };
            let (params, built) = match factory.build(&params) {
                Ok(p) => (params, Ok(p)),
                Err(_) => {
                    let plain = params_for(kind, &base, false).unwrap_or_default();
                    let built = factory.build(&plain);
                    (plain, built)
                }
            };
            let probe = match built {
                Ok(p) => p,
                Err(e) => {
                    // A renamed param must not hide a kind silently: say which and why.
                    eprintln!("vendor_json: kind `{kind}` is not fuzzed: its params {params} do not build: {e}");
                    continue;
                }
            };
            let mut spec = ProbeSpec::new("fuzz", kind);
            spec.params = params;
            spec.secret = Some(SECRET.to_string());
            spec.timeout = HumanDuration(RUN_TIMEOUT);
            let secret = match kind.split('.').next() {
                Some("ses") => SES_SECRET,
                Some("mautic" | "marketo") => "fuzz-client:fuzz-secret",
                _ => "fuzz-token",
            };
            let ctx = ProbeContext {
                spec: Arc::new(spec),
                secrets: SecretStore::new(
                    [(format!("FUNNELGATE_SECRET_{SECRET}"), secret.to_string())],
                    None,
                ),
                http: http.clone(),
            };
            let key = if probes.contains_key(kind) {
                format!("{stage}/{kind}")
            } else {
                kind.to_string()
            };
            probes.insert(key, (probe, ctx));
        }
        Harness {
            runtime,
            replies,
            probes,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let (kind, bodies) = first_line(data);
    let bodies = sections(bodies, b"--next--");
    for body in &bodies {
        let _ = vendor_message(&String::from_utf8_lossy(body));
    }
    let Ok(kind) = std::str::from_utf8(kind) else {
        return;
    };
    let h = harness();
    let Some((probe, ctx)) = h.probes.get(kind.trim()) else {
        return;
    };
    {
        let mut r = h.replies.lock().unwrap_or_else(|p| p.into_inner());
        r.bodies = bodies.iter().map(|b| b.to_vec()).collect();
        r.next = 0;
    }
    let outcome = h
        .runtime
        .block_on(async { tokio::time::timeout(RUN_TIMEOUT, probe.run(ctx)).await });
    if let Ok(Ok(m)) = outcome
        && let Some(v) = m.value
    {
        assert!(v.is_finite(), "kind `{kind}` measured {v} from {bodies:?}");
    }
});
