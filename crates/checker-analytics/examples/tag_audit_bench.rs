//! Throughput of `wa.tag_presence` over a sitemap index of N pages served on loopback, static
//! and rendered (headless Chromium). Figures go to BENCHMARKS.md.
//!
//! ```sh
//! cargo run --release -p funnelgate-checker-analytics --example tag_audit_bench -- \
//!     [pages=1000] [concurrency=8] [rendered_settle_ms=100] [chromium=/usr/bin/chromium]
//! ```

use std::time::Instant;

use axum::Router;
use axum::http::{Uri, header};
use axum::response::IntoResponse;
use funnelgate_checker_sdk::{ProbeContext, SecretStore};
use funnelgate_core::ProbeSpec;

const PAGE: &str = r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>p</title>
<script async src="/gtag/js?id=G-BENCH00001"></script>
<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}gtag('js',new Date());gtag('config','G-BENCH00001');</script>
</head><body><h1>landing page</h1><p>"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pages: usize = args.first().map_or(Ok(1000), |s| s.parse())?;
    let concurrency: usize = args.get(1).map_or(Ok(8), |s| s.parse())?;
    let settle: u64 = args.get(2).map_or(Ok(100), |s| s.parse())?;
    let chromium = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "/usr/bin/chromium".into());

    let app = Router::new().fallback(move |uri: Uri| async move {
        match uri.path() {
            "/sitemap.xml" => {
                let half = pages / 2;
                (
                    [(header::CONTENT_TYPE, "application/xml")],
                    format!(
                        "<sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\
                         <sitemap><loc>/s-0-{half}.xml</loc></sitemap>\
                         <sitemap><loc>/s-{half}-{pages}.xml</loc></sitemap></sitemapindex>"
                    ),
                )
                    .into_response()
            }
            "/gtag/js" => ([(header::CONTENT_TYPE, "application/javascript")], "1;").into_response(),
            p if p.starts_with("/s-") => {
                let mut it = p[3..].trim_end_matches(".xml").split('-');
                let a: usize = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let b: usize = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let urls: String = (a..b).map(|i| format!("<url><loc>/p/{i}</loc></url>")).collect();
                (
                    [(header::CONTENT_TYPE, "application/xml")],
                    format!("<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">{urls}</urlset>"),
                )
                    .into_response()
            }
            _ => (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                format!("{PAGE}{}</p></body></html>", "lorem ipsum ".repeat(2000)),
            )
                .into_response(),
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let registry = funnelgate_checker_analytics::registry();
    for mode in ["static", "rendered"] {
        let params = serde_json::json!({
            "sitemaps": [format!("http://{addr}/sitemap.xml")],
            "expect": {"ga4": ["G-BENCH00001"]},
            "max_pages": pages, "concurrency": concurrency, "mode": mode,
            "settle_ms": settle, "chromium_path": chromium, "page_timeout_ms": 60000
        });
        let probe = registry
            .build("wa.tag_presence", &params)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut spec = ProbeSpec::new("bench", "wa.tag_presence");
        spec.params = params;
        let ctx = ProbeContext {
            spec: std::sync::Arc::new(spec),
            secrets: SecretStore::default(),
            http: funnelgate_checker_sdk::default_http_client()?,
        };
        let started = Instant::now();
        let m = probe.run(&ctx).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let took = started.elapsed();
        println!(
            "{mode:8} pages={} concurrency={concurrency} verdict={:?} took={:.2}s pages/s={:.1}",
            m.evidence.get("pages_audited").map_or("?", |s| s.as_str()),
            m.verdict,
            took.as_secs_f64(),
            pages as f64 / took.as_secs_f64()
        );
    }
    Ok(())
}
