//! `wa.paid_channel_tracking` (W6): an ad click's destination URL reaches its landing page with
//! the click IDs and UTM parameters intact, through HTTP redirects, meta refresh and (rendered
//! mode) script redirects; the tag audit then runs on the final page.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeFactory, TypedFactory};
use funnelgate_core::{Measurement, ProbeStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::audit::{AuditSpec, Mode, audit_page};
use crate::browser::{Chromium, RenderOptions};
use crate::fetch::{FetchError, FetchOptions, Fetcher, Hop, HopKind};
use crate::tags::{
    default_chromium, default_max_page_bytes, default_max_redirects, default_page_timeout_ms,
    default_settle_ms, validate_common,
};
use crate::verdict::{ExpectedTags, Level};

fn default_keep() -> Vec<String> {
    ["utm_*", "gclid", "fbclid", "msclkid", "li_fat_id"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Params of `wa.paid_channel_tracking`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaidTrackingParams {
    /// Ad destination URLs as the ad platform opens them, with their tracking parameters, e.g.
    /// `https://example.com/lp?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=TeSt`.
    pub urls: Vec<String>,
    /// Query parameters that must reach the final URL unchanged when the start URL has them;
    /// a trailing `*` matches a prefix (`utm_*`).
    #[serde(default = "default_keep")]
    pub keep_params: Vec<String>,
    /// `static` (HTTP redirects and meta refresh) or `rendered` (also script redirects, in
    /// headless Chromium).
    #[serde(default)]
    pub mode: Mode,
    /// Redirect hops allowed before the chain is an error.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: usize,
    /// Budget per URL in milliseconds (the whole chain, the final page, the render).
    #[serde(default = "default_page_timeout_ms")]
    pub page_timeout_ms: u64,
    /// Bytes read per page.
    #[serde(default = "default_max_page_bytes")]
    pub max_page_bytes: usize,
    /// Honour robots.txt. Off by default: following an ad click is one visit, as the ad
    /// platform's own landing-page checker makes, not a crawl.
    #[serde(default)]
    pub respect_robots_txt: bool,
    /// Rendered mode: milliseconds scripts may run after the load event.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Rendered mode: the Chromium executable.
    #[serde(default = "default_chromium")]
    pub chromium_path: String,
    /// Tags the final landing page must load (as `wa.tag_presence`'s `expect`); empty: the tag
    /// audit on the final page only reports what it finds.
    #[serde(default)]
    pub expect: ExpectedTags,
}

/// What happened to one click.
#[derive(Clone, Debug, Serialize)]
pub struct ClickReport {
    pub url: String,
    pub level: Level,
    pub chain: Vec<Hop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<crate::audit::PageReport>,
}

fn wanted(keep: &[String], name: &str) -> bool {
    keep.iter().any(|k| match k.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => k == name,
    })
}

/// Compare the tracked parameters of the start and final URLs: (kept, dropped, changed).
pub fn compare_params(
    start: &Url,
    end: &Url,
    keep: &[String],
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut kept, mut dropped, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    for (k, v) in start.query_pairs() {
        if !wanted(keep, &k) {
            continue;
        }
        match end.query_pairs().find(|(ek, _)| ek == &k) {
            None => dropped.push(k.to_string()),
            Some((_, ev)) if ev != v => changed.push(format!("{k}: `{v}` → `{ev}`")),
            Some(_) => kept.push(k.to_string()),
        }
    }
    (kept, dropped, changed)
}

/// The probe.
pub struct PaidTracking(pub PaidTrackingParams);

impl PaidTracking {
    async fn click(&self, fetcher: &Fetcher, browser: Option<&Chromium>, url: &str) -> ClickReport {
        let p = &self.0;
        let mut r = ClickReport {
            url: url.to_string(),
            level: Level::Pass,
            chain: Vec::new(),
            final_url: None,
            dropped: Vec::new(),
            changed: Vec::new(),
            kept: Vec::new(),
            error: String::new(),
            tags: None,
        };
        let fetched = match fetcher.fetch(url).await {
            Ok(f) => f,
            Err(e) => {
                r.level = Level::Error;
                r.error = match e {
                    FetchError::Loop(_) | FetchError::TooManyRedirects { .. } => e.to_string(),
                    other => format!("cannot follow the click: {other}"),
                };
                return r;
            }
        };
        r.chain = fetched.chain.clone();
        let mut final_url = fetched.final_url.clone();
        if let Some(b) = browser
            && (200..300).contains(&fetched.status)
        {
            match b.render(final_url.as_str()).await {
                Ok(rendered) => {
                    // Script redirects: main-frame navigations after the first.
                    let navs: Vec<&String> = rendered
                        .navigations
                        .iter()
                        .filter(|n| n.as_str() != final_url.as_str())
                        .collect();
                    if navs.len() > p.max_redirects {
                        r.level = Level::Error;
                        r.error = format!(
                            "script redirects went on for more than {} hops (a loop?): {}",
                            p.max_redirects,
                            navs.iter()
                                .take(5)
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(" → ")
                        );
                        return r;
                    }
                    let mut last_status = fetched.status;
                    for n in navs {
                        if let Some(last) = r.chain.last_mut() {
                            last.via = Some(HopKind::Script);
                            last_status = last.status;
                        }
                        r.chain.push(Hop {
                            url: n.clone(),
                            status: last_status,
                            via: None,
                        });
                    }
                    if let Ok(u) = Url::parse(&rendered.final_url) {
                        final_url = u;
                    }
                }
                Err(e) => {
                    r.level = Level::Error;
                    r.error = format!("rendered mode: {e}");
                    return r;
                }
            }
        }
        r.final_url = Some(final_url.to_string());
        let start = match Url::parse(url) {
            Ok(u) => u,
            Err(e) => {
                r.level = Level::Error;
                r.error = format!("invalid url: {e}");
                return r;
            }
        };
        let (kept, dropped, changed) = compare_params(&start, &final_url, &p.keep_params);
        r.kept = kept;
        r.dropped = dropped;
        r.changed = changed;
        if !(200..300).contains(&fetched.status) {
            r.level = Level::Fail;
            r.error = format!("the landing page answered http {}", fetched.status);
            return r;
        }
        if !r.dropped.is_empty() || !r.changed.is_empty() {
            r.level = Level::Fail;
        }
        // W5 on the final URL (static: the page as fetched again; cheap and keeps one path).
        let spec = AuditSpec {
            expect: p.expect.clone(),
            require_consent_mode_v2: false,
            mode: Mode::Static,
        };
        let tags = audit_page(fetcher, None, final_url.as_str(), &spec).await;
        r.level = r.level.max(tags.level);
        r.tags = Some(tags);
        r
    }
}

#[async_trait]
impl Probe for PaidTracking {
    async fn run(&self, _ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let fetcher = Fetcher::new(FetchOptions {
            timeout: Duration::from_millis(p.page_timeout_ms),
            max_bytes: p.max_page_bytes,
            max_redirects: p.max_redirects,
            follow_meta_refresh: true,
            robots: p.respect_robots_txt,
        })
        .map_err(ProbeError::permanent)?;
        let browser = match p.mode {
            Mode::Static => None,
            Mode::Rendered => Some(
                Chromium::launch(RenderOptions {
                    chromium: PathBuf::from(&p.chromium_path),
                    settle: Duration::from_millis(p.settle_ms),
                    timeout: Duration::from_millis(p.page_timeout_ms),
                })
                .await
                .map_err(ProbeError::permanent)?,
            ),
        };
        let mut reports = Vec::new();
        for u in &p.urls {
            reports.push(self.click(&fetcher, browser.as_ref(), u).await);
        }
        if let Some(b) = browser {
            b.close().await;
        }
        Ok(summarise(&reports))
    }
}

fn summarise(reports: &[ClickReport]) -> Measurement {
    let count = |l: Level| reports.iter().filter(|r| r.level == l).count();
    let (fail, error, warn) = (count(Level::Fail), count(Level::Error), count(Level::Warn));
    let losing = reports
        .iter()
        .filter(|r| !r.dropped.is_empty() || !r.changed.is_empty())
        .count();
    let status = if fail > 0 {
        ProbeStatus::Fail
    } else if error > 0 {
        ProbeStatus::Error
    } else if warn > 0 {
        ProbeStatus::Warn
    } else {
        ProbeStatus::Pass
    };
    let mut message = format!(
        "{} ad click(s) followed: {losing} lose tracking parameters",
        reports.len()
    );
    for r in reports.iter().filter(|r| r.level > Level::Pass).take(3) {
        let what = if !r.error.is_empty() {
            r.error.clone()
        } else if !r.dropped.is_empty() || !r.changed.is_empty() {
            let mut s = Vec::new();
            if !r.dropped.is_empty() {
                s.push(format!("drops {}", r.dropped.join(", ")));
            }
            if !r.changed.is_empty() {
                s.push(format!("changes {}", r.changed.join(", ")));
            }
            format!(
                "{} (ends on {})",
                s.join("; "),
                r.final_url.as_deref().unwrap_or("?")
            )
        } else {
            r.tags.as_ref().map(|t| t.problems()).unwrap_or_default()
        };
        message.push_str(&format!("; {}: {what}", r.url));
    }
    let mut m =
        Measurement::value(losing as f64, "count", message).with_sample(reports.len() as u64);
    m.verdict = Some(status);
    for (i, r) in reports.iter().enumerate() {
        let json = serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        m = m.with_evidence(format!("click.{:04}", i + 1), json);
    }
    m
}

impl PaidTrackingParams {
    fn validate(&self) -> Result<(), ProbeError> {
        if self.urls.is_empty() {
            return Err(ProbeError::params(
                "`urls`: give at least one ad destination url",
            ));
        }
        if self.urls.len() > 1000 {
            return Err(ProbeError::params("`urls`: at most 1000 urls"));
        }
        validate_common(
            &self.urls,
            1,
            self.page_timeout_ms,
            self.max_page_bytes,
            &self.chromium_path,
        )?;
        if self.keep_params.iter().any(|k| k.trim().is_empty()) {
            return Err(ProbeError::params("`keep_params`: empty parameter name"));
        }
        if self.max_redirects > 50 {
            return Err(ProbeError::params(format!(
                "`max_redirects`: {} is above 50",
                self.max_redirects
            )));
        }
        self.expect.validate("expect").map_err(ProbeError::params)
    }
}

/// `wa.paid_channel_tracking`.
pub fn factory() -> impl ProbeFactory {
    TypedFactory::<PaidTrackingParams, _>::new(
        "wa.paid_channel_tracking",
        "ad destination urls keep utm_* and click ids (gclid, fbclid, msclkid, li_fat_id) through every redirect, and the landing page loads its tags; value = clicks losing parameters",
        "count",
        |p: PaidTrackingParams| {
            p.validate()?;
            Ok(Arc::new(PaidTracking(p)) as Arc<dyn Probe>)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_compared_by_name_and_value() {
        let s = Url::parse("https://a.test/?utm_source=g&utm_medium=cpc&gclid=X1&other=1")
            .unwrap_or_else(|_| unreachable!());
        let e = Url::parse("https://b.test/lp?utm_source=g&gclid=X2")
            .unwrap_or_else(|_| unreachable!());
        let (kept, dropped, changed) = compare_params(&s, &e, &default_keep());
        assert_eq!(kept, vec!["utm_source"]);
        assert_eq!(dropped, vec!["utm_medium"]);
        assert_eq!(changed, vec!["gclid: `X1` → `X2`"]);
    }
}
