//! `wa.tag_presence` (W5): every landing page loads the expected analytics and ad tags, once,
//! actively. Pages come from a list and/or sitemaps, are crawled politely (bounded concurrency,
//! per-page timeout, byte cap, robots.txt) and audited statically or rendered.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeFactory, TypedFactory};
use funnelgate_core::{Measurement, ProbeStatus};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditSpec, Mode, PageReport, audit_page};
use crate::browser::{Chromium, RenderOptions};
use crate::fetch::{FetchOptions, Fetcher, parse_http_url};
use crate::verdict::{ExpectedTags, Level};

/// Where Debian installs Chromium.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// Pages whose full evidence is kept in the result (the worst first); the rest are counted.
pub const MAX_PAGE_EVIDENCE: usize = 100;

pub(crate) fn default_max_pages() -> usize {
    500
}
pub(crate) fn default_concurrency() -> usize {
    4
}
pub(crate) fn default_page_timeout_ms() -> u64 {
    15_000
}
pub(crate) fn default_max_page_bytes() -> usize {
    5 * 1024 * 1024
}
pub(crate) fn default_settle_ms() -> u64 {
    2_000
}
pub(crate) fn default_max_redirects() -> usize {
    10
}
pub(crate) fn default_chromium() -> String {
    DEFAULT_CHROMIUM.to_string()
}
fn default_true() -> bool {
    true
}

/// Params of `wa.tag_presence`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagPresenceParams {
    /// Landing page URLs to audit (http or https).
    #[serde(default)]
    pub urls: Vec<String>,
    /// `sitemap.xml` URLs (a sitemap or a sitemap index): every page they list is audited too,
    /// up to `max_pages`.
    #[serde(default)]
    pub sitemaps: Vec<String>,
    /// The tag IDs every page must load, per vendor (`ga4`, `gtm`, `google_ads`, `plausible`,
    /// `matomo`, `segment`, `meta_pixel`, `linkedin_insight`, `hubspot`). Vendors left out are
    /// reported when found; Universal Analytics is always flagged obsolete.
    #[serde(default)]
    pub expect: ExpectedTags,
    /// `static` (the HTML as served) or `rendered` (also headless Chromium: tags a tag manager
    /// or a script injects, iframes, network requests).
    #[serde(default)]
    pub mode: Mode,
    /// FAIL pages without Google Consent Mode v2 defaults (`gtag('consent', 'default', …)` with
    /// `ad_storage`, `analytics_storage`, `ad_user_data`, `ad_personalization`).
    #[serde(default)]
    pub require_consent_mode_v2: bool,
    /// Most pages audited (listed URLs first, then sitemap pages).
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// Pages fetched (or rendered) at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Budget per page in milliseconds: every redirect, the body and, in rendered mode, the
    /// render.
    #[serde(default = "default_page_timeout_ms")]
    pub page_timeout_ms: u64,
    /// Bytes read per page; a longer page is audited on its first `max_page_bytes` and marked
    /// truncated (a tag missing from a truncated page is ERROR, not FAIL).
    #[serde(default = "default_max_page_bytes")]
    pub max_page_bytes: usize,
    /// Redirect hops followed per page.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: usize,
    /// Honour each site's robots.txt (user agent `funnelgate`); a disallowed page is ERROR.
    #[serde(default = "default_true")]
    pub respect_robots_txt: bool,
    /// Rendered mode: milliseconds scripts may run after the load event before the DOM is read.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Rendered mode: the Chromium executable.
    #[serde(default = "default_chromium")]
    pub chromium_path: String,
}

pub(crate) fn validate_common(
    urls: &[String],
    concurrency: usize,
    page_timeout_ms: u64,
    max_page_bytes: usize,
    chromium_path: &str,
) -> Result<(), ProbeError> {
    for u in urls {
        parse_http_url(u).map_err(|e| ProbeError::params(format!("`urls`: `{u}`: {e}")))?;
    }
    if !(1..=64).contains(&concurrency) {
        return Err(ProbeError::params(format!(
            "`concurrency`: {concurrency} is outside 1..=64"
        )));
    }
    if !(100..=600_000).contains(&page_timeout_ms) {
        return Err(ProbeError::params(format!(
            "`page_timeout_ms`: {page_timeout_ms} is outside 100..=600000"
        )));
    }
    if !(1024..=256 * 1024 * 1024).contains(&max_page_bytes) {
        return Err(ProbeError::params(format!(
            "`max_page_bytes`: {max_page_bytes} is outside 1024..=268435456"
        )));
    }
    if chromium_path.trim().is_empty() {
        return Err(ProbeError::params("`chromium_path`: must not be empty"));
    }
    Ok(())
}

impl TagPresenceParams {
    fn validate(&self) -> Result<(), ProbeError> {
        if self.urls.is_empty() && self.sitemaps.is_empty() {
            return Err(ProbeError::params(
                "`urls`: give landing page urls and/or `sitemaps`",
            ));
        }
        validate_common(
            &self.urls,
            self.concurrency,
            self.page_timeout_ms,
            self.max_page_bytes,
            &self.chromium_path,
        )?;
        for s in &self.sitemaps {
            parse_http_url(s).map_err(|e| ProbeError::params(format!("`sitemaps`: `{s}`: {e}")))?;
        }
        if self.max_pages == 0 || self.max_pages > 100_000 {
            return Err(ProbeError::params(format!(
                "`max_pages`: {} is outside 1..=100000",
                self.max_pages
            )));
        }
        self.expect.validate("expect").map_err(ProbeError::params)
    }

    pub(crate) fn fetch_options(&self) -> FetchOptions {
        FetchOptions {
            timeout: Duration::from_millis(self.page_timeout_ms),
            max_bytes: self.max_page_bytes,
            max_redirects: self.max_redirects,
            follow_meta_refresh: false,
            robots: self.respect_robots_txt,
        }
    }

    pub(crate) fn render_options(&self) -> RenderOptions {
        RenderOptions {
            chromium: PathBuf::from(&self.chromium_path),
            settle: Duration::from_millis(self.settle_ms),
            timeout: Duration::from_millis(self.page_timeout_ms),
        }
    }
}

/// The probe.
pub struct TagPresence(pub TagPresenceParams);

/// Audit pages with bounded concurrency, keeping their order.
pub async fn audit_all(
    fetcher: &Fetcher,
    browser: Option<&Chromium>,
    urls: &[String],
    spec: &AuditSpec,
    concurrency: usize,
) -> Vec<PageReport> {
    let owned: Vec<(usize, String)> = urls.iter().cloned().enumerate().collect();
    let mut reports: Vec<(usize, PageReport)> =
        futures::stream::iter(owned)
            .map(|(i, u): (usize, String)| async move {
                (i, audit_page(fetcher, browser, &u, spec).await)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    reports.sort_by_key(|(i, _)| *i);
    reports.into_iter().map(|(_, r)| r).collect()
}

impl TagPresence {
    /// Every page to audit: the listed URLs, then sitemap pages, up to `max_pages`.
    async fn pages(&self) -> Result<(Vec<String>, Vec<String>), ProbeError> {
        let p = &self.0;
        let mut urls: Vec<String> = Vec::new();
        let mut notes = Vec::new();
        for u in &p.urls {
            if urls.len() < p.max_pages && !urls.contains(u) {
                urls.push(u.clone());
            }
        }
        // Sitemaps may be large: read them with a generous cap, never the page cap alone.
        let sitemap_fetcher = Fetcher::new(FetchOptions {
            max_bytes: p.max_page_bytes.max(50 * 1024 * 1024),
            ..p.fetch_options()
        })
        .map_err(ProbeError::permanent)?;
        for s in &p.sitemaps {
            if urls.len() >= p.max_pages {
                notes.push(format!("page limit {} reached before {s}", p.max_pages));
                break;
            }
            if let Err(e) =
                crate::sitemap::collect(&sitemap_fetcher, s, p.max_pages, &mut urls, &mut notes)
                    .await
            {
                if p.urls.is_empty() && p.sitemaps.len() == 1 {
                    return Err(ProbeError::transient(e));
                }
                notes.push(e);
            }
        }
        Ok((urls, notes))
    }
}

#[async_trait]
impl Probe for TagPresence {
    async fn run(&self, _ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let fetcher = Fetcher::new(p.fetch_options()).map_err(ProbeError::permanent)?;
        let (urls, notes) = self.pages().await?;
        if urls.is_empty() {
            let mut m = Measurement::verdict(
                ProbeStatus::NoData,
                format!(
                    "no pages to audit: the sitemaps list none ({})",
                    notes.join("; ")
                ),
            );
            m.unit = "count".into();
            return Ok(m);
        }
        let browser = match p.mode {
            Mode::Static => None,
            Mode::Rendered => Some(
                Chromium::launch(p.render_options())
                    .await
                    .map_err(ProbeError::permanent)?,
            ),
        };
        let spec = AuditSpec {
            expect: p.expect.clone(),
            require_consent_mode_v2: p.require_consent_mode_v2,
            mode: p.mode,
        };
        let started = std::time::Instant::now();
        let reports = audit_all(&fetcher, browser.as_ref(), &urls, &spec, p.concurrency).await;
        if let Some(b) = browser {
            b.close().await;
        }
        Ok(summarise(&reports, &notes, p.mode, started.elapsed()))
    }
}

/// The measurement for a set of audited pages: value = pages failing; verdict FAIL if any page
/// fails, else ERROR if any page could not be judged, else WARN on warnings, else PASS.
pub fn summarise(
    reports: &[PageReport],
    notes: &[String],
    mode: Mode,
    took: Duration,
) -> Measurement {
    let count = |l: Level| reports.iter().filter(|r| r.level == l).count();
    let (fail, error, warn) = (count(Level::Fail), count(Level::Error), count(Level::Warn));
    let total = reports.len();
    let status = if fail > 0 {
        ProbeStatus::Fail
    } else if error > 0 {
        ProbeStatus::Error
    } else if warn > 0 {
        ProbeStatus::Warn
    } else {
        ProbeStatus::Pass
    };
    let mut worst: Vec<&PageReport> = reports.iter().filter(|r| r.level > Level::Pass).collect();
    worst.sort_by_key(|r| std::cmp::Reverse(r.level));
    let mut message = match status {
        ProbeStatus::Pass => format!("{total} page(s) audited: every expected tag loads, once"),
        _ => format!(
            "{total} page(s) audited: {fail} failing, {error} could not be judged, {warn} with warnings"
        ),
    };
    for r in worst.iter().take(3) {
        message.push_str(&format!("; {}: {}", r.url, r.problems()));
    }
    if worst.len() > 3 {
        message.push_str(&format!(" (and {} more, see evidence)", worst.len() - 3));
    }
    let mut m = Measurement::value(fail as f64, "count", message).with_sample(total as u64);
    m.verdict = Some(status);
    m = m
        .with_evidence("mode", format!("{mode:?}").to_lowercase())
        .with_evidence("pages_audited", total.to_string())
        .with_evidence("pages_failing", fail.to_string())
        .with_evidence("pages_unjudged", error.to_string())
        .with_evidence("pages_warning", warn.to_string())
        .with_evidence(
            "pages_per_second",
            format!("{:.1}", total as f64 / took.as_secs_f64().max(1e-3)),
        );
    for (i, n) in notes.iter().enumerate() {
        m = m.with_evidence(format!("note.{:02}", i + 1), n.clone());
    }
    // Full evidence for every page when there are few, else the worst first.
    let mut order: Vec<&PageReport> = reports.iter().collect();
    order.sort_by_key(|r| std::cmp::Reverse(r.level));
    for (i, r) in order.iter().take(MAX_PAGE_EVIDENCE).enumerate() {
        let json = serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        m = m.with_evidence(format!("page.{:04}", i + 1), json);
    }
    if total > MAX_PAGE_EVIDENCE {
        m = m.with_evidence(
            "pages_omitted",
            format!(
                "{} passing page(s) not detailed (the worst {MAX_PAGE_EVIDENCE} are)",
                total - MAX_PAGE_EVIDENCE
            ),
        );
    }
    m
}

/// `wa.tag_presence`.
pub fn factory() -> impl ProbeFactory {
    TypedFactory::<TagPresenceParams, _>::new(
        "wa.tag_presence",
        "landing pages load the expected analytics and ad tags (ga4, gtm, google ads, plausible, matomo, segment, meta pixel, linkedin insight, hubspot), once and actively; value = pages failing",
        "count",
        |p: TagPresenceParams| {
            p.validate()?;
            Ok(Arc::new(TagPresence(p)) as Arc<dyn Probe>)
        },
    )
    .vendors(&[
        "ga4",
        "gtm",
        "google_ads",
        "universal_analytics",
        "plausible",
        "matomo",
        "segment",
        "meta_pixel",
        "linkedin_insight",
        "hubspot",
    ])
}
