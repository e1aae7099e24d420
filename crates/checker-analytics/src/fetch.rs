//! Polite page fetching: redirects followed one hop at a time (so the chain is known and loops
//! are caught), a per-page timeout over the whole chain and body, a byte cap per page, robots.txt
//! (RFC 9309) honoured per origin, and the body decoded from its declared charset.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use encoding_rs::Encoding;
use scraper::{Html, Selector};
use serde::Serialize;
use tokio::sync::OnceCell;
use url::Url;

use crate::detect::parse_meta_refresh;

/// The user agent token robots.txt rules are matched against.
pub const ROBOTS_AGENT: &str = "funnelgate";

/// How pages are fetched.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Whole-page budget: every redirect hop and the body.
    pub timeout: Duration,
    /// Bytes read per page; the rest is dropped and the page marked truncated.
    pub max_bytes: usize,
    /// Redirect hops allowed before the chain is "too long".
    pub max_redirects: usize,
    /// Follow `<meta http-equiv="refresh">` as a redirect hop.
    pub follow_meta_refresh: bool,
    /// Honour robots.txt.
    pub robots: bool,
}

/// How a hop moved on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HopKind {
    /// An HTTP 3xx with `Location`.
    Http,
    /// `<meta http-equiv="refresh">`.
    MetaRefresh,
    /// A script changed `location` (rendered mode only).
    Script,
}

/// One step of a redirect chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub url: String,
    pub status: u16,
    /// How this hop led to the next URL (absent on the last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<HopKind>,
}

/// A fetched page.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub chain: Vec<Hop>,
    pub final_url: Url,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub truncated: bool,
}

/// Why a page could not be fetched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Transport(String),
    #[error("redirect loop: {0}")]
    Loop(String),
    #[error("redirect chain longer than {max} hops: {chain}")]
    TooManyRedirects { max: usize, chain: String },
    #[error("bad redirect target `{0}`")]
    BadLocation(String),
    #[error("disallowed by {0}")]
    Robots(String),
    #[error("unsupported url scheme in `{0}` (http and https only)")]
    Scheme(String),
}

/// Fetches pages; clones share the HTTP client and the robots.txt cache.
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    opts: FetchOptions,
    robots: Arc<Mutex<RobotsCache>>,
}

/// robots.txt rules per origin, each fetched once.
type RobotsCache = HashMap<String, Arc<OnceCell<Arc<RobotsRules>>>>;

/// The robots.txt verdict for one origin.
pub enum RobotsRules {
    AllowAll,
    DisallowAll(String),
    Rules(Box<texting_robots::Robot>, String),
}

impl RobotsRules {
    fn allows(&self, u: &Url) -> Result<(), String> {
        match self {
            RobotsRules::AllowAll => Ok(()),
            RobotsRules::DisallowAll(why) => Err(why.clone()),
            RobotsRules::Rules(r, at) => {
                if r.allowed(u.as_str()) {
                    Ok(())
                } else {
                    Err(at.clone())
                }
            }
        }
    }
}

impl Fetcher {
    /// A fetcher with its own client (redirects are followed here, hop by hop).
    pub fn new(opts: FetchOptions) -> Result<Self, String> {
        funnelgate_checker_sdk::install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!(
                "Mozilla/5.0 (compatible; funnelgate/",
                env!("CARGO_PKG_VERSION"),
                "; tag audit)"
            ))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("cannot build the http client: {e}"))?;
        Ok(Fetcher {
            http,
            opts,
            robots: Arc::default(),
        })
    }

    pub fn options(&self) -> &FetchOptions {
        &self.opts
    }

    /// Fetch a page within the per-page timeout, following redirects.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        let t = self.opts.timeout;
        match tokio::time::timeout(t, self.fetch_inner(url)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(t)),
        }
    }

    async fn fetch_inner(&self, url: &str) -> Result<Fetched, FetchError> {
        let mut current = parse_http_url(url)?;
        let mut chain: Vec<Hop> = Vec::new();
        loop {
            if self.opts.robots {
                self.robots_for(&current)
                    .await
                    .allows(&current)
                    .map_err(FetchError::Robots)?;
            }
            let (status, headers, body, truncated) = self.get(&current).await?;
            let content_type = headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let next = if (300..400).contains(&status) && status != 304 {
                let loc = headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok());
                match loc {
                    Some(l) => Some((
                        current
                            .join(l.trim())
                            .map_err(|_| FetchError::BadLocation(l.to_string()))?,
                        HopKind::Http,
                    )),
                    None => None,
                }
            } else if self.opts.follow_meta_refresh && (200..300).contains(&status) {
                let (text, _) = decode(&body, content_type.as_deref());
                meta_refresh_of(&text, &current)
                    .and_then(|t| Url::parse(&t).ok())
                    .map(|u| (u, HopKind::MetaRefresh))
            } else {
                None
            };
            match next {
                Some((to, via)) => {
                    chain.push(Hop {
                        url: current.to_string(),
                        status,
                        via: Some(via),
                    });
                    if !matches!(to.scheme(), "http" | "https") {
                        return Err(FetchError::Scheme(to.to_string()));
                    }
                    let seen = chain.iter().any(|h| h.url == to.as_str());
                    if seen {
                        return Err(FetchError::Loop(format!("{} → {to}", chain_text(&chain))));
                    }
                    if chain.len() > self.opts.max_redirects {
                        return Err(FetchError::TooManyRedirects {
                            max: self.opts.max_redirects,
                            chain: format!("{} → {to}", chain_text(&chain)),
                        });
                    }
                    current = to;
                }
                None => {
                    chain.push(Hop {
                        url: current.to_string(),
                        status,
                        via: None,
                    });
                    return Ok(Fetched {
                        chain,
                        final_url: current,
                        status,
                        content_type,
                        body,
                        truncated,
                    });
                }
            }
        }
    }

    /// One GET, body capped.
    async fn get(
        &self,
        u: &Url,
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>, bool), FetchError> {
        let mut resp = self
            .http
            .get(u.clone())
            .header(
                reqwest::header::ACCEPT,
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            )
            .send()
            .await
            .map_err(|e| FetchError::Transport(describe(&e)))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::Transport(describe(&e)))?
        {
            let room = self.opts.max_bytes.saturating_sub(body.len());
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body, truncated))
    }

    /// The robots.txt rules of a URL's origin, fetched once per origin (RFC 9309: 4xx → no
    /// rules; 5xx or unreachable → assume everything is disallowed).
    async fn robots_for(&self, u: &Url) -> Arc<RobotsRules> {
        let origin = u.origin().ascii_serialization();
        let cell = {
            let mut map = self
                .robots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(origin.clone()).or_default().clone()
        };
        cell.get_or_init(|| async {
            let robots_url = format!("{origin}/robots.txt");
            let Ok(ru) = Url::parse(&robots_url) else {
                return Arc::new(RobotsRules::AllowAll);
            };
            let r = tokio::time::timeout(self.opts.timeout, self.get(&ru)).await;
            Arc::new(match r {
                Ok(Ok((s, _, body, _))) if (200..300).contains(&s) => {
                    match texting_robots::Robot::new(ROBOTS_AGENT, &body) {
                        Ok(robot) => RobotsRules::Rules(Box::new(robot), robots_url),
                        Err(_) => RobotsRules::AllowAll,
                    }
                }
                Ok(Ok((s, _, _, _))) if (400..500).contains(&s) => RobotsRules::AllowAll,
                Ok(Ok((s, _, _, _))) => RobotsRules::DisallowAll(format!(
                    "{robots_url} (it answered {s}: a crawler must then assume everything is disallowed)"
                )),
                Ok(Err(e)) => RobotsRules::DisallowAll(format!(
                    "{robots_url} (unreachable: {e}; a crawler must then assume everything is disallowed)"
                )),
                Err(_) => RobotsRules::DisallowAll(format!(
                    "{robots_url} (timed out; a crawler must then assume everything is disallowed)"
                )),
            })
        })
        .await
        .clone()
    }
}

fn chain_text(chain: &[Hop]) -> String {
    chain
        .iter()
        .map(|h| format!("{} ({})", h.url, h.status))
        .collect::<Vec<_>>()
        .join(" → ")
}

/// Parse a URL to fetch: http(s) only.
pub fn parse_http_url(s: &str) -> Result<Url, FetchError> {
    let u = Url::parse(s.trim())
        .map_err(|e| FetchError::Transport(format!("invalid url `{s}`: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(FetchError::Scheme(s.to_string()));
    }
    Ok(u)
}

fn describe(e: &reqwest::Error) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    if e.is_connect() {
        format!("cannot connect: {cur}")
    } else if e.is_timeout() {
        "timed out".to_string()
    } else {
        format!("request failed: {cur}")
    }
}

fn meta_refresh_of(html: &str, base: &Url) -> Option<String> {
    let doc = Html::parse_document(html);
    let sel = Selector::parse("meta[http-equiv]").ok()?;
    doc.select(&sel)
        .find(|m| {
            m.value()
                .attr("http-equiv")
                .is_some_and(|h| h.trim().eq_ignore_ascii_case("refresh"))
        })
        .and_then(|m| m.value().attr("content"))
        .and_then(|c| parse_meta_refresh(c, base))
}

/// Decode an HTML body: a BOM wins, then the `Content-Type` charset, then a `<meta charset>` /
/// `<meta http-equiv="content-type">` in the first 1024 bytes (read by the HTML parser over a
/// windows-1252 view, which keeps ASCII intact), then UTF-8 when the bytes are valid UTF-8, else
/// windows-1252 (the web's legacy default). Returns the text and the encoding's name.
pub fn decode(body: &[u8], content_type: Option<&str>) -> (String, &'static str) {
    let enc = Encoding::for_bom(body)
        .map(|(e, _)| e)
        .or_else(|| content_type.and_then(charset_param).and_then(label))
        .or_else(|| meta_charset(&body[..body.len().min(1024)]))
        .unwrap_or_else(|| {
            if std::str::from_utf8(body).is_ok() {
                encoding_rs::UTF_8
            } else {
                encoding_rs::WINDOWS_1252
            }
        });
    let (text, used, _) = enc.decode(body);
    (text.into_owned(), used.name())
}

fn label(l: &str) -> Option<&'static Encoding> {
    let e = Encoding::for_label(l.trim().trim_matches(['"', '\'']).as_bytes())?;
    // HTML: a declared UTF-16 in a document read as bytes means UTF-8; x-user-defined is 1252.
    if e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE {
        Some(encoding_rs::UTF_8)
    } else if e == encoding_rs::X_USER_DEFINED {
        Some(encoding_rs::WINDOWS_1252)
    } else {
        Some(e)
    }
}

fn charset_param(ct: &str) -> Option<&str> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then_some(v.trim())
    })
}

fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let (text, _, _) = encoding_rs::WINDOWS_1252.decode(head);
    let doc = Html::parse_document(&text);
    let sel = Selector::parse("meta").ok()?;
    for m in doc.select(&sel) {
        if let Some(cs) = m.value().attr("charset") {
            return label(cs);
        }
        let is_ct = m
            .value()
            .attr("http-equiv")
            .is_some_and(|h| h.trim().eq_ignore_ascii_case("content-type"));
        if is_ct && let Some(c) = m.value().attr("content").and_then(charset_param) {
            return label(c);
        }
    }
    None
}

/// Whether a content type is HTML (or unknown, which browsers sniff).
pub fn is_html(content_type: Option<&str>) -> bool {
    match content_type {
        None => true,
        Some(ct) => {
            let essence = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "text/html" || essence == "application/xhtml+xml" || essence.is_empty()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charset_sources_in_order() {
        let latin = b"<html><head><meta charset=\"iso-8859-1\"></head><body>caf\xe9</body></html>";
        let (t, e) = decode(latin, Some("text/html"));
        assert_eq!(e, "windows-1252");
        assert!(t.contains("café"));
        let sjis = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=Shift_JIS\">\x93\xfa\x96\x7b";
        let (t, e) = decode(sjis, None);
        assert_eq!(e, "Shift_JIS");
        assert!(t.contains("日本"), "{t}");
        let (_, e) = decode("é".as_bytes(), Some("text/html; charset=utf-8"));
        assert_eq!(e, "UTF-8");
        let (t, e) = decode(b"caf\xe9", Some("text/html; charset=\"windows-1251\""));
        assert_eq!(e, "windows-1251");
        assert!(t.starts_with("caf"));
        let (_, e) = decode(b"plain \xff bytes", None);
        assert_eq!(e, "windows-1252");
    }

    #[test]
    fn html_content_types() {
        assert!(is_html(Some("text/html; charset=utf-8")));
        assert!(is_html(None));
        assert!(!is_html(Some("application/json")));
    }
}
