//! A loopback web server for the analytics tests: the page corpus in `tests/corpus/` plus routes
//! that redirect (keeping or dropping the query), loop, answer slowly, hang, never end, serve a
//! robots.txt, a 2 MB page and a sitemap index of 1,000 pages. It counts requests in flight, so
//! tests can assert the crawl's concurrency bound.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use funnelgate_checker_sdk::{ProbeContext, SecretStore};
use funnelgate_core::{Measurement, ProbeSpec};

/// Pages listed by `/sitemap.xml` (through two child sitemaps).
pub const SITEMAP_PAGES: usize = 1000;

/// What the server counted.
#[derive(Default)]
pub struct Stats {
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub page_hits: AtomicUsize,
}

/// A running corpus server.
pub struct Corpus {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Corpus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Corpus {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

const GA4: &str = r#"<script async src="https://www.googletagmanager.com/gtag/js?id=G-TEST000001"></script>
<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}gtag('js',new Date());gtag('config','G-TEST000001');</script>"#;

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn redirect(status: StatusCode, to: String) -> Response {
    (status, [(header::LOCATION, to)], "").into_response()
}

fn filler(bytes: usize) -> String {
    let p =
        "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p>\n";
    p.repeat(bytes / p.len() + 1)
}

/// Start the server on 127.0.0.1:0.
pub async fn start() -> Corpus {
    let stats = Arc::new(Stats::default());
    let s2 = stats.clone();
    let app = Router::new().fallback(move |uri: Uri| {
        let stats = s2.clone();
        async move {
            let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let r = route(&uri, &stats).await;
            stats.in_flight.fetch_sub(1, Ordering::SeqCst);
            r
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Corpus { addr, stats, task }
}

async fn route(uri: &Uri, stats: &Stats) -> Response {
    let path = uri.path();
    let q = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    match path {
        "/robots.txt" => "User-agent: *\nDisallow: /private/\n".into_response(),
        "/gtm.js" => (
            [(header::CONTENT_TYPE, "application/javascript")],
            "(function(){var s=document.createElement('script');s.async=true;\
             s.src='/gtag/js?id=G-TEST000001';document.head.appendChild(s);})();",
        )
            .into_response(),
        "/gtag/js" => (
            [(header::CONTENT_TYPE, "application/javascript")],
            "window.__gtag_loaded = true;",
        )
            .into_response(),
        "/ns.html" => html("<html><body></body></html>".into()),
        "/private/page.html" => html(format!("<html><head>{GA4}</head></html>")),
        "/big.html" => html(format!(
            "<!DOCTYPE html><html><head><title>big</title>{GA4}</head><body>{}</body></html>",
            filler(2 * 1024 * 1024)
        )),
        "/big-late.html" => html(format!(
            "<!DOCTYPE html><html><head><title>big</title></head><body>{}{GA4}</body></html>",
            filler(2 * 1024 * 1024)
        )),
        "/huge" => {
            let chunk = Bytes::from(filler(64 * 1024));
            let stream =
                futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            (
                [(header::CONTENT_TYPE, "text/html")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        "/slow" => {
            // The server is slow; the client's page timeout must cut it short.
            tokio::time::sleep(Duration::from_secs(120)).await;
            html(format!("<html><head>{GA4}</head></html>"))
        }
        "/hang" => {
            let first = futures::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(b"<html><head><title>hang"))
            });
            let stream = futures::StreamExt::chain(first, futures::stream::pending());
            (
                [(header::CONTENT_TYPE, "text/html")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        "/r/keep" => redirect(StatusCode::FOUND, format!("/landing.html{q}")),
        "/r/drop" => redirect(StatusCode::MOVED_PERMANENTLY, "/landing.html".into()),
        "/r/two" => redirect(StatusCode::FOUND, format!("/r/keep{q}")),
        "/r/meta" => html(std::fs::read_to_string(corpus_dir().join("meta-refresh.html")).unwrap()),
        "/r/script" => redirect(StatusCode::FOUND, format!("/script-redirect.html{q}")),
        "/r/loop-a" => redirect(StatusCode::FOUND, format!("/r/loop-b{q}")),
        "/r/loop-b" => redirect(StatusCode::FOUND, format!("/r/loop-a{q}")),
        "/sitemap.xml" => xml(r#"<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>/sitemap-1.xml</loc></sitemap>
  <sitemap><loc>/sitemap-2.xml</loc></sitemap>
</sitemapindex>"#
            .to_string()),
        "/sitemap-1.xml" | "/sitemap-2.xml" => {
            let half = SITEMAP_PAGES / 2;
            let start = if path == "/sitemap-1.xml" { 0 } else { half };
            let urls: String = (start..start + half)
                .map(|i| format!("<url><loc>/p/{i}.html</loc></url>\n"))
                .collect();
            xml(format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
{urls}</urlset>"#
            ))
        }
        "/shift-jis.html" => {
            let body = std::fs::read(corpus_dir().join("shift-jis.html")).unwrap();
            (
                [(header::CONTENT_TYPE, "text/html; charset=Shift_JIS")],
                body,
            )
                .into_response()
        }
        p if p.starts_with("/r/long/") => {
            let n: u32 = p["/r/long/".len()..].parse().unwrap_or(0);
            redirect(StatusCode::FOUND, format!("/r/long/{}{q}", n + 1))
        }
        p if p.starts_with("/p/") => {
            stats.page_hits.fetch_add(1, Ordering::SeqCst);
            html(format!(
                "<!DOCTYPE html><html><head><title>{p}</title>{GA4}</head><body><h1>{p}</h1></body></html>"
            ))
        }
        p => {
            let name = p.trim_start_matches('/');
            if name.contains("..") || name.contains('/') {
                return StatusCode::NOT_FOUND.into_response();
            }
            match std::fs::read(corpus_dir().join(name)) {
                Ok(body) => ([(header::CONTENT_TYPE, "text/html")], body).into_response(),
                Err(_) => {
                    (StatusCode::NOT_FOUND, html("<h1>not found</h1>".into())).into_response()
                }
            }
        }
    }
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// A probe context for a kind and params.
pub fn ctx(kind: &str, params: serde_json::Value) -> ProbeContext {
    let mut spec = ProbeSpec::new(format!("test-{}", kind.replace('.', "-")), kind);
    spec.params = params;
    ProbeContext {
        spec: Arc::new(spec),
        secrets: SecretStore::default(),
        http: funnelgate_checker_sdk::default_http_client().unwrap(),
    }
}

/// Build and run a probe of this crate.
pub async fn run(
    kind: &str,
    params: serde_json::Value,
) -> Result<Measurement, funnelgate_checker_sdk::ProbeError> {
    let registry = funnelgate_checker_analytics::registry();
    let probe = registry.build(kind, &params)?;
    probe.run(&ctx(kind, params)).await
}

/// The page reports in a measurement's evidence, by URL.
pub fn pages(
    m: &Measurement,
    prefix: &str,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    m.evidence
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| {
            let j: serde_json::Value = serde_json::from_str(v).unwrap();
            (j["url"].as_str().unwrap().to_string(), j)
        })
        .collect()
}

/// The verdict codes of a vendor on a page report.
pub fn verdicts(page: &serde_json::Value, vendor: &str) -> Vec<String> {
    page["vendors"][vendor]["verdicts"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Where a vendor's ID was seen on a page.
pub fn places(page: &serde_json::Value, vendor: &str, id: &str) -> Vec<String> {
    page["vendors"][vendor]["found"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|h| h["id"] == id)
                .map(|h| h["where"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}
