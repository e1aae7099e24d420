//! `funnelgate quickstart site DIR`: serve the demo's landing pages (DIR/site, written by
//! `quickstart init`) on loopback, so the analytics stage's `wa.tag_presence` probe audits real
//! pages over HTTP without a network. Files only: no directory listing, no path outside DIR/site.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::exit::{self, CliError, CmdResult};

/// The demo's pages, embedded so `quickstart init` writes them.
pub const FILES: [(&str, &str); 4] = [
    (
        "index.html",
        include_str!("../../../examples/quickstart/site/index.html"),
    ),
    (
        "offer.html",
        include_str!("../../../examples/quickstart/site/offer.html"),
    ),
    (
        "sitemap.xml",
        include_str!("../../../examples/quickstart/site/sitemap.xml"),
    ),
    (
        "robots.txt",
        include_str!("../../../examples/quickstart/site/robots.txt"),
    ),
];

/// Where the quickstart config expects the pages.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7090";

/// Write the pages into `dir/site`.
pub fn write(dir: &Path) -> Result<PathBuf, CliError> {
    let site = dir.join("site");
    std::fs::create_dir_all(&site)
        .map_err(|e| CliError::failure(format!("cannot create {}: {e}", site.display())))?;
    for (name, text) in FILES {
        let path = site.join(name);
        std::fs::write(&path, text)
            .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(site)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("xml") => "application/xml",
        _ => "text/plain; charset=utf-8",
    }
}

async fn file(root: PathBuf, uri: Uri) -> Response {
    let name = match uri.path().trim_start_matches('/') {
        "" => "index.html",
        n => n,
    };
    let safe = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    if !safe {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    match tokio::fs::read(root.join(name)).await {
        Ok(body) => ([(header::CONTENT_TYPE, content_type(name))], body).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// Serve `dir/site` until Ctrl-C.
pub async fn serve(dir: &Path, listen: &str) -> CmdResult {
    let root = dir.join("site");
    if !root.join("index.html").exists() {
        return Err(CliError::usage(format!(
            "{} has no index.html: run `funnelgate quickstart init {}` first",
            root.display(),
            dir.display()
        )));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::failure(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::failure(format!("no local address: {e}")))?;
    let app = Router::new().fallback(move |uri: Uri| file(root.clone(), uri));
    println!(
        "serving the demo's landing pages on http://{addr}/ (sitemap: http://{addr}/sitemap.xml)"
    );
    println!("the analytics stage's `landing-tags` probe audits them; stop with Ctrl-C");
    axum::serve(listener, app)
        .with_graceful_shutdown(funnelgate_server::shutdown_signal())
        .await
        .map_err(|e| CliError::failure(format!("site server on {addr}: {e}")))?;
    Ok(exit::OK)
}
