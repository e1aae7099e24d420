//! One page's tag audit: fetch (as served), optionally render, detect, judge. The result is the
//! page-level evidence the probe result carries.

use std::collections::BTreeMap;

use serde::Serialize;
use url::Url;

use crate::browser::Chromium;
use crate::detect::{ConsentDefaults, Ignored, Place, Scan, Vendor, scan_html, scan_url};
use crate::fetch::{FetchError, Fetcher, Hop, decode, is_html};
use crate::verdict::{ExpectedTags, Level, VendorReport, judge_page};

/// How pages are looked at.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The HTML as served, parsed (fast; no scripts run).
    #[default]
    Static,
    /// The HTML as served plus the page rendered in headless Chromium: the DOM after scripts
    /// ran, same-origin iframes, network requests (tags injected by a tag manager or a script).
    Rendered,
}

/// Consent Mode as seen on a page.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConsentReport {
    pub found: bool,
    pub v2: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub defaults: Vec<ConsentDefaults>,
    pub level: Level,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Everything about one audited page.
#[derive(Clone, Debug, Serialize)]
pub struct PageReport {
    pub url: String,
    pub level: Level,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<Hop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charset: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<usize>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// `static` or `static+rendered`.
    pub mode: &'static str,
    pub vendors: BTreeMap<Vendor, VendorReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<Ignored>,
    pub consent_mode: ConsentReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_refresh: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub opaque_iframes: Vec<String>,
}

impl PageReport {
    fn failed(url: &str, mode: Mode, level: Level, error: String) -> Self {
        PageReport {
            url: url.to_string(),
            level,
            error,
            status: None,
            final_url: None,
            redirects: Vec::new(),
            charset: None,
            bytes: None,
            truncated: false,
            mode: mode_name(mode),
            vendors: BTreeMap::new(),
            ignored: Vec::new(),
            consent_mode: ConsentReport::default(),
            meta_refresh: None,
            opaque_iframes: Vec::new(),
        }
    }

    /// One line for the probe message.
    pub fn problems(&self) -> String {
        if !self.error.is_empty() {
            return self.error.clone();
        }
        let mut parts: Vec<String> = self
            .vendors
            .iter()
            .filter(|(_, r)| r.level > Level::Pass)
            .map(|(v, r)| {
                let codes: Vec<&str> = r.verdicts.iter().map(|v| v.code()).collect();
                format!("{v} {} ({})", codes.join("+"), r.note)
            })
            .collect();
        if self.consent_mode.level > Level::Pass {
            parts.push(format!("consent mode: {}", self.consent_mode.note));
        }
        parts.join("; ")
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Static => "static",
        Mode::Rendered => "static+rendered",
    }
}

/// What to check on each page.
#[derive(Clone, Debug)]
pub struct AuditSpec {
    pub expect: ExpectedTags,
    pub require_consent_mode_v2: bool,
    pub mode: Mode,
}

/// Audit one page. Never fails: what cannot be measured is a page at [`Level::Error`].
pub async fn audit_page(
    fetcher: &Fetcher,
    browser: Option<&Chromium>,
    url: &str,
    spec: &AuditSpec,
) -> PageReport {
    let f = match fetcher.fetch(url).await {
        Ok(f) => f,
        Err(e) => {
            let hint = if matches!(e, FetchError::Robots(_)) {
                " (set `respect_robots_txt = false` to audit it anyway)"
            } else {
                ""
            };
            return PageReport::failed(url, spec.mode, Level::Error, format!("{url}: {e}{hint}"));
        }
    };
    let mut report = PageReport::failed(url, spec.mode, Level::Pass, String::new());
    report.status = Some(f.status);
    report.final_url = Some(f.final_url.to_string());
    report.bytes = Some(f.body.len());
    report.truncated = f.truncated;
    if f.chain.len() > 1 {
        report.redirects = f.chain.clone();
    }
    if !(200..300).contains(&f.status) {
        report.level = Level::Fail;
        report.error = format!("{url}: the landing page answered http {}", f.status);
        return report;
    }
    if !is_html(f.content_type.as_deref()) {
        report.level = Level::Error;
        report.error = format!(
            "{url}: not an html page (content-type {})",
            f.content_type.as_deref().unwrap_or("?")
        );
        return report;
    }
    let (text, charset) = decode(&f.body, f.content_type.as_deref());
    report.charset = Some(charset);
    let mut scan = scan_html(&text, &f.final_url, Place::Static);
    report.meta_refresh = scan.meta_refresh.take();
    if let Some(b) = browser {
        match b.render(f.final_url.as_str()).await {
            Ok(r) => {
                let base = Url::parse(&r.final_url).unwrap_or_else(|_| f.final_url.clone());
                let mut rendered = scan_html(&r.dom, &base, Place::Rendered);
                rendered.meta_refresh = None;
                merge(&mut scan, rendered);
                for (src, html) in &r.frames {
                    let fb = Url::parse(src).unwrap_or_else(|_| base.clone());
                    merge(&mut scan, scan_html(html, &fb, Place::RenderedIframe));
                }
                let mut net = Scan::default();
                for req in &r.requests {
                    if let Ok(u) = Url::parse(req) {
                        scan_url(&mut net, &u, Place::Network, None);
                    }
                }
                net.hits.retain(|h| !h.id.is_empty());
                merge(&mut scan, net);
                report.opaque_iframes = r.opaque_frames;
            }
            Err(e) => {
                report.level = Level::Error;
                report.error = format!("{url}: rendered mode: {e}");
                return report;
            }
        }
    }
    report.vendors = judge_page(&scan, &spec.expect, f.truncated);
    report.consent_mode = consent(&scan, spec.require_consent_mode_v2);
    let mut ignored = scan.ignored;
    let mut seen = Vec::new();
    ignored.retain(|i| {
        let k = (i.vendor, i.id.clone(), i.reason.clone());
        if seen.contains(&k) {
            false
        } else {
            seen.push(k);
            true
        }
    });
    report.ignored = ignored;
    report.level = report
        .vendors
        .values()
        .map(|v| v.level)
        .chain(std::iter::once(report.consent_mode.level))
        .max()
        .unwrap_or(Level::Pass);
    report
}

fn merge(into: &mut Scan, other: Scan) {
    into.extend(other);
}

fn consent(scan: &Scan, require_v2: bool) -> ConsentReport {
    let defaults: Vec<ConsentDefaults> = scan
        .consent
        .iter()
        .filter(|c| c.place.is_some_and(Place::is_active))
        .cloned()
        .collect();
    let found = !defaults.is_empty();
    let v2 = defaults.iter().any(ConsentDefaults::is_v2);
    let (level, note) = match (require_v2, found, v2) {
        (true, false, _) => (
            Level::Fail,
            "no gtag('consent', 'default', …) call: consent mode v2 is required".to_string(),
        ),
        (true, true, false) => (
            Level::Fail,
            "consent mode defaults lack the v2 keys ad_user_data and ad_personalization"
                .to_string(),
        ),
        _ => (Level::Pass, String::new()),
    };
    ConsentReport {
        found,
        v2,
        defaults,
        level,
        note,
    }
}
