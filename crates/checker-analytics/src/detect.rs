//! Tag detection on one HTML document: which analytics and ad tags are *active* on it, and which
//! vendor IDs appear only where they do nothing (comments, prose, code samples, JSON-LD,
//! consent-blocked or inert scripts), with why they were ignored.
//!
//! The document is parsed by html5ever (through `scraper`), with scripting enabled as a browser
//! does: `<noscript>` content is then raw text, which is parsed again as a fragment to read the
//! fallback `<iframe>`/`<img>` tags. Regular expressions only ever run over text the parser
//! extracted (an executable script's code with its comments removed, a URL), never over the raw
//! page. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use scraper::{ElementRef, Html, Node};
use serde::Serialize;
use url::Url;

/// A tag vendor the audit recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Vendor {
    /// Google Analytics 4 through gtag.js (`G-…`).
    Ga4,
    /// Google Tag Manager (`GTM-…`).
    Gtm,
    /// Google Ads through gtag.js (`AW-…`, conversion labels).
    GoogleAds,
    /// Universal Analytics (`UA-…`): stopped processing data in 2023, always flagged.
    UniversalAnalytics,
    /// Plausible (`data-domain`, or the per-site `pa-…` script).
    Plausible,
    /// Matomo, cloud or self-hosted (site id).
    Matomo,
    /// Segment analytics.js (write key).
    Segment,
    /// Meta (Facebook) Pixel.
    MetaPixel,
    /// LinkedIn Insight Tag (partner id).
    LinkedinInsight,
    /// HubSpot tracking code (portal id).
    Hubspot,
}

impl Vendor {
    /// Every vendor, in report order.
    pub const ALL: [Vendor; 10] = [
        Vendor::Ga4,
        Vendor::Gtm,
        Vendor::GoogleAds,
        Vendor::UniversalAnalytics,
        Vendor::Plausible,
        Vendor::Matomo,
        Vendor::Segment,
        Vendor::MetaPixel,
        Vendor::LinkedinInsight,
        Vendor::Hubspot,
    ];

    /// The key used in params and evidence.
    pub fn key(self) -> &'static str {
        match self {
            Vendor::Ga4 => "ga4",
            Vendor::Gtm => "gtm",
            Vendor::GoogleAds => "google_ads",
            Vendor::UniversalAnalytics => "universal_analytics",
            Vendor::Plausible => "plausible",
            Vendor::Matomo => "matomo",
            Vendor::Segment => "segment",
            Vendor::MetaPixel => "meta_pixel",
            Vendor::LinkedinInsight => "linkedin_insight",
            Vendor::Hubspot => "hubspot",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Where a tag was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// An executable script (or iframe) in the HTML as served.
    Static,
    /// A `<noscript>` fallback (runs only for visitors without JavaScript).
    Noscript,
    /// The `src` of an `<iframe>` in the page as served.
    Iframe,
    /// The DOM after scripts ran (headless Chromium).
    Rendered,
    /// The DOM of an iframe after scripts ran.
    RenderedIframe,
    /// A network request the page made while rendering.
    Network,
}

impl Place {
    /// Whether a tag seen here runs for a visitor with JavaScript (everything but `<noscript>`).
    pub fn is_active(self) -> bool {
        self != Place::Noscript
    }
}

/// What kind of evidence a hit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// The library loader: `<script src>`, an iframe `src`.
    Loader,
    /// An init/config call naming the ID: `gtag('config')`, `fbq('init')`, `setSiteId`, the
    /// GTM snippet (which injects `gtm.js`: counted once per snippet, not per injected script).
    Init,
    /// A tracking pixel or hit (`<img>` in `<noscript>`, a collect request).
    Hit,
}

/// One vendor ID seen in an active place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TagHit {
    pub vendor: Vendor,
    pub id: String,
    #[serde(rename = "where")]
    pub place: Place,
    pub signal: Signal,
    /// Vendor-specific detail: the loader host, a conversion label, GTM environment, tracker URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Why an ID found in the document does not count as a tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum IgnoredReason {
    /// Inside `<!-- … -->`.
    HtmlComment,
    /// Inside a `//` or `/* */` comment of an executable script.
    JsComment,
    /// Page text: prose, `<pre>`/`<code>` samples, `<textarea>`, attribute-free text.
    PageText,
    /// A `<script type="application/ld+json">` (structured data, never executed).
    JsonLd,
    /// A script a consent manager holds back until the visitor agrees (`type="text/plain"`, …):
    /// the tag is installed but blocked.
    ConsentBlocked(String),
    /// A script of a non-JavaScript type (`text/template`, …): never executed.
    NotJavascript(String),
    /// Inside `<template>`: inert until a script clones it.
    InertTemplate,
}

impl fmt::Display for IgnoredReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoredReason::HtmlComment => f.write_str("in an html comment"),
            IgnoredReason::JsComment => f.write_str("in a javascript comment"),
            IgnoredReason::PageText => f.write_str("in page text (prose or a code sample)"),
            IgnoredReason::JsonLd => f.write_str("in json-ld structured data"),
            IgnoredReason::ConsentBlocked(t) => {
                write!(
                    f,
                    "consent-blocked script (type=\"{t}\"), runs only after consent"
                )
            }
            IgnoredReason::NotJavascript(t) => {
                write!(f, "script of type \"{t}\" is never executed")
            }
            IgnoredReason::InertTemplate => f.write_str("inside an inert <template>"),
        }
    }
}

/// A vendor ID found where it does nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub vendor: Vendor,
    pub id: String,
    #[serde(flatten)]
    pub reason: IgnoredReason,
}

/// Google Consent Mode defaults set by `gtag('consent', 'default', {…})`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConsentDefaults {
    /// Consent type → `granted`/`denied` (other keys such as `wait_for_update` and `region`
    /// are kept as written).
    pub defaults: BTreeMap<String, String>,
    #[serde(rename = "where")]
    pub place: Option<Place>,
}

impl ConsentDefaults {
    /// The four Consent Mode v2 keys, all present.
    pub fn is_v2(&self) -> bool {
        [
            "ad_storage",
            "analytics_storage",
            "ad_user_data",
            "ad_personalization",
        ]
        .iter()
        .all(|k| self.defaults.contains_key(*k))
    }
}

/// What one document holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Scan {
    pub hits: Vec<TagHit>,
    pub ignored: Vec<Ignored>,
    /// Consent Mode defaults, when the page sets them in an active script.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consent: Vec<ConsentDefaults>,
    /// Absolute `src` of every `<iframe>` in the document (outside `<noscript>`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub iframes: Vec<String>,
    /// The target of a `<meta http-equiv="refresh">`, if any (absolute).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_refresh: Option<String>,
}

impl Scan {
    fn hit(
        &mut self,
        vendor: Vendor,
        id: &str,
        place: Place,
        signal: Signal,
        detail: Option<String>,
    ) {
        self.hits.push(TagHit {
            vendor,
            id: id.to_string(),
            place,
            signal,
            detail,
        });
    }

    fn ignore_all(&mut self, found: Scan, reason: &IgnoredReason) {
        let mut seen: Vec<(Vendor, String)> = Vec::new();
        for h in found.hits {
            if !h.id.is_empty() && !seen.contains(&(h.vendor, h.id.clone())) {
                seen.push((h.vendor, h.id.clone()));
                self.ignored.push(Ignored {
                    vendor: h.vendor,
                    id: h.id,
                    reason: reason.clone(),
                });
            }
        }
    }

    /// Merge another scan's findings (e.g. an iframe's) into this one.
    pub fn extend(&mut self, other: Scan) {
        self.hits.extend(other.hits);
        self.ignored.extend(other.ignored);
        self.consent.extend(other.consent);
        self.iframes.extend(other.iframes);
    }
}

/// How a `<script>` element is treated, by its `type` attribute (HTML § 4.12.1.1: an absent or
/// empty type, a JavaScript MIME type or `module` is executed; anything else is data).
fn script_kind(ty: Option<&str>) -> Result<(), IgnoredReason> {
    let Some(raw) = ty else { return Ok(()) };
    let t = raw.trim().to_ascii_lowercase();
    let essence = t.split(';').next().unwrap_or("").trim();
    const JS: [&str; 16] = [
        "",
        "module",
        "text/javascript",
        "application/javascript",
        "application/ecmascript",
        "application/x-ecmascript",
        "application/x-javascript",
        "text/ecmascript",
        "text/javascript1.0",
        "text/javascript1.1",
        "text/javascript1.2",
        "text/javascript1.3",
        "text/javascript1.4",
        "text/javascript1.5",
        "text/jscript",
        "text/x-javascript",
    ];
    if JS.contains(&essence) || essence == "text/livescript" || essence == "text/x-ecmascript" {
        return Ok(());
    }
    if essence == "application/ld+json" {
        return Err(IgnoredReason::JsonLd);
    }
    // Consent managers (Cookiebot, OneTrust, Complianz, Iubenda, Klaro, CookieYes…) park tags
    // as text/plain (or their own type) and swap the type once the visitor agrees.
    if essence == "text/plain"
        || essence.contains("consent")
        || essence.contains("cookie")
        || essence == "opt-in"
        || essence.starts_with("text/x-")
    {
        return Err(IgnoredReason::ConsentBlocked(raw.trim().to_string()));
    }
    Err(IgnoredReason::NotJavascript(raw.trim().to_string()))
}

/// Scan one HTML document. `active` is where its executable scripts count (`Static` for the page
/// as served, `Rendered` for the DOM after scripts, `RenderedIframe` for an iframe's DOM).
pub fn scan_html(html: &str, base: &Url, active: Place) -> Scan {
    let doc = Html::parse_document(html);
    let mut scan = Scan::default();
    let noscript_place = Place::Noscript;
    for node in doc.tree.root().descendants() {
        match node.value() {
            Node::Comment(c) => {
                let found = scan_markup_text(c, base);
                scan.ignore_all(found, &IgnoredReason::HtmlComment);
            }
            Node::Text(t) => {
                let Some(parent) = node.parent().and_then(ElementRef::wrap) else {
                    continue;
                };
                let name = parent.value().name();
                if matches!(name, "script" | "noscript" | "style") {
                    continue;
                }
                let found = scan_markup_text(t, base);
                scan.ignore_all(found, &IgnoredReason::PageText);
            }
            Node::Element(el) => {
                let inert = node
                    .ancestors()
                    .filter_map(ElementRef::wrap)
                    .any(|a| a.value().name() == "template");
                match el.name() {
                    "script" => {
                        let Some(elr) = ElementRef::wrap(node) else {
                            continue;
                        };
                        let code: String = elr.text().collect();
                        let kind = if inert {
                            Err(IgnoredReason::InertTemplate)
                        } else {
                            script_kind(el.attr("type"))
                        };
                        match kind {
                            Ok(()) => {
                                if let Some(src) = el.attr("src") {
                                    scan_script_src(&mut scan, src, &elr, base, active);
                                } else {
                                    let (code_only, comments) = split_js_comments(&code);
                                    scan_js(&mut scan, &code_only, base, active);
                                    let found = scan_markup_text(&comments, base);
                                    scan.ignore_all(found, &IgnoredReason::JsComment);
                                }
                            }
                            Err(reason) => {
                                let mut found = scan_markup_text(&code, base);
                                if let Some(src) = el.attr("src") {
                                    scan_script_src(&mut found, src, &elr, base, active);
                                }
                                scan.ignore_all(found, &reason);
                            }
                        }
                    }
                    "noscript" => {
                        let Some(elr) = ElementRef::wrap(node) else {
                            continue;
                        };
                        let inner: String = elr.text().collect();
                        let mut found = Scan::default();
                        scan_noscript(&mut found, &inner, base, noscript_place);
                        if inert {
                            scan.ignore_all(found, &IgnoredReason::InertTemplate);
                        } else {
                            scan.hits.extend(found.hits);
                        }
                    }
                    "iframe" if !inert => {
                        if let Some(src) = el.attr("src").and_then(|s| base.join(s.trim()).ok()) {
                            scan_url(&mut scan, &src, Place::Iframe, None);
                            scan.iframes.push(src.to_string());
                        }
                    }
                    "meta" if !inert => {
                        let refresh = el
                            .attr("http-equiv")
                            .is_some_and(|h| h.trim().eq_ignore_ascii_case("refresh"));
                        if refresh && scan.meta_refresh.is_none() {
                            scan.meta_refresh =
                                el.attr("content").and_then(|c| parse_meta_refresh(c, base));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    scan
}

/// The target of a `<meta http-equiv="refresh" content="0; url=…">` (HTML § 4.2.5.3), absolute.
pub fn parse_meta_refresh(content: &str, base: &Url) -> Option<String> {
    let rest = content
        .trim_start()
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let rest = rest.trim_start().strip_prefix([';', ','])?.trim_start();
    let rest = if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("url") {
        rest[3..].trim_start().strip_prefix('=')?.trim_start()
    } else {
        rest
    };
    let target = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => rest[1..].split(q).next().unwrap_or(""),
        _ => rest.trim_end(),
    };
    if target.is_empty() {
        return None;
    }
    base.join(target).ok().map(|u| u.to_string())
}

/// `<noscript>` content (raw text under scripting): re-parse it and read the fallback tags.
fn scan_noscript(scan: &mut Scan, inner: &str, base: &Url, place: Place) {
    let frag = Html::parse_fragment(inner);
    for node in frag.tree.root().descendants() {
        if let Node::Element(el) = node.value() {
            let src = match el.name() {
                "iframe" | "img" => el.attr("src"),
                _ => None,
            };
            if let Some(u) = src.and_then(|s| base.join(s.trim()).ok()) {
                scan_url(scan, &u, place, None);
            }
        }
    }
}

/// Any text that is not executed (a comment, prose, a blocked script): find what it *would*
/// load, to report it as ignored.
fn scan_markup_text(text: &str, base: &Url) -> Scan {
    let mut found = Scan::default();
    if !MAY_HOLD_ID.is_match(text) {
        return found;
    }
    scan_js(&mut found, text, base, Place::Static);
    for cap in MARKUP_ATTR_URL.captures_iter(text) {
        if let Some(u) = cap.get(1).and_then(|m| base.join(m.as_str()).ok()) {
            scan_url(&mut found, &u, Place::Static, None);
        }
    }
    for m in BARE_ID.find_iter(text) {
        let id = m.as_str();
        let vendor = match id.split('-').next() {
            Some("G") => Vendor::Ga4,
            Some("GTM") => Vendor::Gtm,
            Some("AW") => Vendor::GoogleAds,
            Some("UA") => Vendor::UniversalAnalytics,
            _ => continue,
        };
        found.hit(vendor, id, Place::Static, Signal::Hit, None);
    }
    found
}

static MAY_HOLD_ID: LazyLock<Regex> = LazyLock::new(|| {
    rx(
        r"(?i)G-|GTM-|AW-|UA-|plausible|matomo|piwik|_paq|segment|analytics\.load|fbq|fbevents|facebook\.com/tr|linkedin|licdn|hs-scripts|/gtag/js",
    )
});
static MARKUP_ATTR_URL: LazyLock<Regex> =
    LazyLock::new(|| rx(r#"(?i)\bsrc\s*=\s*["']?([^"'\s>]+)"#));
static BARE_ID: LazyLock<Regex> = LazyLock::new(|| {
    rx(r"\b(?:G-[A-Z0-9]{6,12}|GTM-[A-Z0-9]{4,10}|AW-[0-9]{6,12}|UA-[0-9]{4,10}-[0-9]{1,4})\b")
});

fn rx(s: &str) -> Regex {
    // The patterns are constants checked by the unit tests.
    #[allow(clippy::expect_used)]
    Regex::new(s).expect("valid built-in pattern")
}

fn valid_id(vendor: Vendor, id: &str) -> bool {
    static G: LazyLock<Regex> = LazyLock::new(|| rx(r"^G-[A-Z0-9]{4,16}$"));
    static GTM: LazyLock<Regex> = LazyLock::new(|| rx(r"^GTM-[A-Z0-9]{4,12}$"));
    static AW: LazyLock<Regex> = LazyLock::new(|| rx(r"^AW-[0-9]{4,14}$"));
    static UA: LazyLock<Regex> = LazyLock::new(|| rx(r"^UA-[0-9]{2,12}-[0-9]{1,4}$"));
    match vendor {
        Vendor::Ga4 => G.is_match(id),
        Vendor::Gtm => GTM.is_match(id),
        Vendor::GoogleAds => AW.is_match(id),
        Vendor::UniversalAnalytics => UA.is_match(id),
        Vendor::Matomo | Vendor::MetaPixel | Vendor::LinkedinInsight | Vendor::Hubspot => {
            !id.is_empty() && id.len() <= 24 && id.bytes().all(|b| b.is_ascii_digit())
        }
        Vendor::Segment => {
            (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        Vendor::Plausible => !id.is_empty() && id.len() <= 253 && !id.contains(char::is_whitespace),
    }
}

fn google_vendor(id: &str) -> Option<Vendor> {
    let v = match id.split('-').next()? {
        "G" => Vendor::Ga4,
        "GTM" => Vendor::Gtm,
        "AW" => Vendor::GoogleAds,
        "UA" => Vendor::UniversalAnalytics,
        _ => return None,
    };
    valid_id(v, id).then_some(v)
}

fn file_name(u: &Url) -> &str {
    u.path().rsplit('/').next().unwrap_or("")
}

fn query(u: &Url, key: &str) -> Option<String> {
    u.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.trim().to_string())
}

/// Recognise a tag URL (a script `src`, an iframe or pixel `src`, a request) by its published
/// path shape, whatever the host (first-party proxies and server-side tagging keep the paths).
pub fn scan_url(scan: &mut Scan, u: &Url, place: Place, data_domain: Option<&str>) {
    let host = u.host_str().unwrap_or("").to_ascii_lowercase();
    let path = u.path();
    let name = file_name(u);
    let lower_path = path.to_ascii_lowercase();
    let host_detail = || Some(format!("loaded from {host}"));
    let signal = if place == Place::Noscript {
        Signal::Hit
    } else {
        Signal::Loader
    };
    // gtag.js: /gtag/js?id=G-…|AW-…|UA-…
    if lower_path.ends_with("/gtag/js") {
        if let Some(id) = query(u, "id")
            && let Some(v) = google_vendor(&id)
            && v != Vendor::Gtm
        {
            scan.hit(v, &id, place, signal, host_detail());
        }
        return;
    }
    // GTM: /gtm.js?id=GTM-… (script) and /ns.html?id=GTM-… (noscript iframe), with the
    // environment parameters gtm_auth / gtm_preview when an environment snippet is used.
    if name == "gtm.js" || name == "ns.html" {
        if let Some(id) = query(u, "id")
            && valid_id(Vendor::Gtm, &id)
        {
            let mut detail = format!("loaded from {host}");
            if let (Some(auth), Some(preview)) = (query(u, "gtm_auth"), query(u, "gtm_preview")) {
                detail.push_str(&format!(
                    "; environment gtm_preview={preview} gtm_auth={auth}"
                ));
            }
            scan.hit(Vendor::Gtm, &id, place, signal, Some(detail));
        }
        return;
    }
    // GA4 hits seen on the network: /g/collect?tid=G-…
    if lower_path.ends_with("/g/collect") {
        if let Some(id) = query(u, "tid")
            && valid_id(Vendor::Ga4, &id)
        {
            scan.hit(Vendor::Ga4, &id, place, Signal::Hit, host_detail());
        }
        return;
    }
    // Plausible: the per-site script /js/pa-XXXX.js, or the classic script with data-domain.
    if lower_path.contains("/js/") && name.starts_with("pa-") && name.ends_with(".js") {
        let id = name.trim_end_matches(".js");
        scan.hit(Vendor::Plausible, id, place, signal, host_detail());
        return;
    }
    let plausible_host = host == "plausible.io" || host.ends_with(".plausible.io");
    let plausible_name = (name.starts_with("script.") || name.starts_with("plausible."))
        && name.ends_with(".js")
        || name == "plausible.js";
    if let Some(domains) = data_domain
        && (plausible_host || (lower_path.contains("/js/") && plausible_name))
    {
        for d in domains.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            scan.hit(Vendor::Plausible, d, place, signal, host_detail());
        }
        return;
    }
    // Matomo: matomo.js / piwik.js loaders, and the tracking pixel matomo.php?idsite=N&rec=1.
    if name == "matomo.js" || name == "piwik.js" {
        // The site id comes with setSiteId; the loader alone is recorded as the tracker host.
        scan.hit(
            Vendor::Matomo,
            "",
            place,
            signal,
            Some(format!("tracker {host}{path}")),
        );
        return;
    }
    if name == "matomo.php" || name == "piwik.php" {
        if let Some(id) = query(u, "idsite")
            && valid_id(Vendor::Matomo, &id)
        {
            scan.hit(Vendor::Matomo, &id, place, Signal::Hit, host_detail());
        }
        return;
    }
    // Segment: /analytics.js/v1/<writeKey>/analytics.min.js
    if let Some(rest) = path.split("/analytics.js/v1/").nth(1) {
        let key = rest.split('/').next().unwrap_or("");
        if valid_id(Vendor::Segment, key) {
            scan.hit(Vendor::Segment, key, place, signal, host_detail());
        }
        return;
    }
    // Meta Pixel: fbevents.js loader (the ID comes from fbq('init')), /tr?id=… pixel.
    if name == "fbevents.js" {
        scan.hit(Vendor::MetaPixel, "", place, signal, host_detail());
        return;
    }
    if (host.ends_with("facebook.com") || host.ends_with("facebook.net")) && path == "/tr"
        || path == "/tr/" && host.ends_with("facebook.com")
    {
        if let Some(id) = query(u, "id")
            && valid_id(Vendor::MetaPixel, &id)
        {
            scan.hit(Vendor::MetaPixel, &id, place, Signal::Hit, host_detail());
        }
        return;
    }
    // LinkedIn Insight: insight.min.js loader, px.ads.linkedin.com/collect?pid=… pixel.
    if name == "insight.min.js" && lower_path.contains("li.lms-analytics") {
        scan.hit(Vendor::LinkedinInsight, "", place, signal, host_detail());
        return;
    }
    if host.ends_with("ads.linkedin.com") && lower_path.starts_with("/collect") {
        if let Some(id) = query(u, "pid")
            && valid_id(Vendor::LinkedinInsight, &id)
        {
            scan.hit(
                Vendor::LinkedinInsight,
                &id,
                place,
                Signal::Hit,
                host_detail(),
            );
        }
        return;
    }
    // HubSpot: //js.hs-scripts.com/<portal>.js (js-eu1.hs-scripts.com in the EU).
    if host.ends_with("hs-scripts.com") {
        let id = name.trim_end_matches(".js");
        if name.ends_with(".js") && valid_id(Vendor::Hubspot, id) {
            scan.hit(Vendor::Hubspot, id, place, signal, host_detail());
        }
    }
}

fn scan_script_src(scan: &mut Scan, src: &str, el: &ElementRef<'_>, base: &Url, place: Place) {
    if let Ok(u) = base.join(src.trim()) {
        scan_url(scan, &u, place, el.value().attr("data-domain"));
    }
}

static GTAG_CONFIG: LazyLock<Regex> =
    LazyLock::new(|| rx(r#"gtag\(\s*['"]config['"]\s*,\s*['"]([A-Z]{1,3}-[A-Z0-9-]+)['"]"#));
static GTAG_SEND_TO: LazyLock<Regex> =
    LazyLock::new(|| rx(r#"['"]?send_to['"]?\s*:\s*['"](AW-[0-9]+)/([A-Za-z0-9_-]+)['"]"#));
static GTM_SNIPPET: LazyLock<Regex> = LazyLock::new(|| {
    rx(
        r#"\(\s*window\s*,\s*document\s*,\s*['"]script['"]\s*,\s*['"][A-Za-z_$][\w$]*['"]\s*,\s*['"](GTM-[A-Z0-9]+)['"]\s*\)"#,
    )
});
static GTM_ENV: LazyLock<Regex> =
    LazyLock::new(|| rx(r#"gtm_auth=([A-Za-z0-9_-]+)&(?:amp;)?gtm_preview=(env-[0-9]+)"#));
static FBQ_INIT: LazyLock<Regex> =
    LazyLock::new(|| rx(r#"fbq\(\s*['"]init['"]\s*,\s*['"]([0-9]{5,20})['"]"#));
static LINKEDIN_ID: LazyLock<Regex> =
    LazyLock::new(|| rx(r#"_linkedin_partner_id\s*=\s*['"]?([0-9]{3,15})['"]?"#));
static PAQ_SITE: LazyLock<Regex> = LazyLock::new(|| {
    rx(r#"_paq\.push\(\s*\[\s*['"]setSiteId['"]\s*,\s*['"]?([0-9]{1,10})['"]?\s*\]"#)
});
static PAQ_TRACKER: LazyLock<Regex> =
    LazyLock::new(|| rx(r#"_paq\.push\(\s*\[\s*['"]setTrackerUrl['"]\s*,\s*([^\]]{1,200})\]"#));
static SEGMENT_LOAD: LazyLock<Regex> =
    LazyLock::new(|| rx(r#"analytics\.(?:load\(\s*|_writeKey\s*=\s*)['"]([A-Za-z0-9]{8,64})['"]"#));
static CONSENT_DEFAULT: LazyLock<Regex> = LazyLock::new(|| {
    rx(r#"gtag\(\s*['"]consent['"]\s*,\s*['"]default['"]\s*,\s*\{([^}]{0,2000})\}"#)
});
static CONSENT_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    rx(r#"['"]?([a-z_]+)['"]?\s*:\s*(?:['"]([A-Za-z_-]+)['"]|([0-9]+)|\[[^\]]*\])"#)
});
static STRING_URL: LazyLock<Regex> = LazyLock::new(|| {
    rx(r#"['"`]((?:https?:)?//[^'"`\s]{3,500}|/[A-Za-z0-9_.~-][^'"`\s]{2,500})['"`]"#)
});

/// Scan executable JavaScript (already free of comments): init/config calls and the tag URLs
/// its string literals name.
pub fn scan_js(scan: &mut Scan, code: &str, base: &Url, place: Place) {
    for c in GTAG_CONFIG.captures_iter(code) {
        let id = &c[1];
        if let Some(v) = google_vendor(id) {
            scan.hit(v, id, place, Signal::Init, None);
        }
    }
    for c in GTAG_SEND_TO.captures_iter(code) {
        let id = &c[1];
        if valid_id(Vendor::GoogleAds, id) {
            scan.hit(
                Vendor::GoogleAds,
                id,
                place,
                Signal::Hit,
                Some(format!("conversion label {}", &c[2])),
            );
        }
    }
    let env = GTM_ENV
        .captures(code)
        .map(|c| format!("; environment gtm_preview={} gtm_auth={}", &c[2], &c[1]));
    for c in GTM_SNIPPET.captures_iter(code) {
        let id = &c[1];
        if valid_id(Vendor::Gtm, id) {
            let detail = format!("gtm snippet{}", env.clone().unwrap_or_default());
            scan.hit(Vendor::Gtm, id, place, Signal::Init, Some(detail));
        }
    }
    for c in FBQ_INIT.captures_iter(code) {
        scan.hit(Vendor::MetaPixel, &c[1], place, Signal::Init, None);
    }
    for c in LINKEDIN_ID.captures_iter(code) {
        scan.hit(Vendor::LinkedinInsight, &c[1], place, Signal::Init, None);
    }
    let tracker = PAQ_TRACKER
        .captures(code)
        .map(|c| format!("tracker url {}", c[1].trim()));
    for c in PAQ_SITE.captures_iter(code) {
        scan.hit(Vendor::Matomo, &c[1], place, Signal::Init, tracker.clone());
    }
    let mut keys: Vec<String> = Vec::new();
    for c in SEGMENT_LOAD.captures_iter(code) {
        if !keys.iter().any(|k| k == &c[1]) {
            keys.push(c[1].to_string());
        }
    }
    for k in keys {
        scan.hit(Vendor::Segment, &k, place, Signal::Init, None);
    }
    for c in CONSENT_DEFAULT.captures_iter(code) {
        let mut defaults = BTreeMap::new();
        for p in CONSENT_PAIR.captures_iter(&c[1]) {
            let v = p
                .get(2)
                .or_else(|| p.get(3))
                .map(|m| m.as_str().to_string())
                .unwrap_or_else(|| "[list]".to_string());
            defaults.insert(p[1].to_string(), v);
        }
        scan.consent.push(ConsentDefaults {
            defaults,
            place: Some(place),
        });
    }
    // URLs the script names (an injected loader): same path shapes as `src`.
    for c in STRING_URL.captures_iter(code) {
        let raw = &c[1];
        if let Ok(u) = base.join(raw) {
            scan_url(scan, &u, place, None);
        }
    }
}

/// Split JavaScript into its code (comments replaced by spaces) and its comments' text, with a
/// small lexer that knows strings and template literals (so `"http://…"` is not a comment).
pub fn split_js_comments(src: &str) -> (String, String) {
    let b = src.as_bytes();
    let mut code = String::with_capacity(src.len());
    let mut comments = String::new();
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        i += 1;
                    } else if q != b'`' && b[i] == b'\n' {
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                code.push_str(&src[last..i]);
                let end = src[i..].find('\n').map_or(b.len(), |n| i + n);
                comments.push_str(&src[i + 2..end]);
                comments.push('\n');
                code.push(' ');
                i = end;
                last = i;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                code.push_str(&src[last..i]);
                let end = src[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
                comments.push_str(&src[i + 2..end.saturating_sub(2).max(i + 2)]);
                comments.push('\n');
                code.push(' ');
                i = end;
                last = i;
            }
            _ => i += 1,
        }
    }
    if last < b.len() {
        code.push_str(&src[last.min(b.len())..]);
    }
    (code, comments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://www.example.com/landing").unwrap_or_else(|_| unreachable!())
    }

    fn ids(scan: &Scan, vendor: Vendor) -> Vec<(String, Place, Signal)> {
        scan.hits
            .iter()
            .filter(|h| h.vendor == vendor && !h.id.is_empty())
            .map(|h| (h.id.clone(), h.place, h.signal))
            .collect()
    }

    const GTAG: &str = r#"<!-- Google tag (gtag.js) -->
<script async src="https://www.googletagmanager.com/gtag/js?id=G-ABC123XYZ9"></script>
<script>
  window.dataLayer = window.dataLayer || [];
  function gtag(){dataLayer.push(arguments);}
  gtag('js', new Date());

  gtag('config', 'G-ABC123XYZ9');
</script>"#;

    #[test]
    fn gtag_snippet_gives_a_loader_and_a_config() {
        let s = scan_html(GTAG, &base(), Place::Static);
        assert_eq!(
            ids(&s, Vendor::Ga4),
            vec![
                ("G-ABC123XYZ9".into(), Place::Static, Signal::Loader),
                ("G-ABC123XYZ9".into(), Place::Static, Signal::Init)
            ]
        );
        assert!(s.ignored.is_empty(), "{:?}", s.ignored);
    }

    #[test]
    fn commented_out_tags_and_code_samples_are_ignored_with_a_reason() {
        let html = r#"<html><body>
<!-- <script async src="https://www.googletagmanager.com/gtag/js?id=G-OLD1234567"></script> -->
<pre><code>&lt;script&gt;gtag('config', 'G-SAMPLE1234');&lt;/script&gt;</code></pre>
<script>
 // gtag('config', 'G-JSCOMMENT1');
 /* fbq('init', '111111111'); */
 var x = "http://not-a-comment.example/";
</script>
<script type="application/ld+json">{"@context":"https://schema.org","description":"we use G-JSONLD1234"}</script>
<script type="text/plain" data-cookieconsent="statistics">gtag('config', 'G-BLOCKED123');</script>
<template><script>fbq('init', '222222222');</script></template>
</body></html>"#;
        let s = scan_html(html, &base(), Place::Static);
        assert!(s.hits.is_empty(), "{:?}", s.hits);
        let reasons: Vec<(String, IgnoredReason)> = s
            .ignored
            .iter()
            .map(|i| (i.id.clone(), i.reason.clone()))
            .collect();
        assert!(reasons.contains(&("G-OLD1234567".into(), IgnoredReason::HtmlComment)));
        assert!(reasons.contains(&("G-SAMPLE1234".into(), IgnoredReason::PageText)));
        assert!(reasons.contains(&("G-JSCOMMENT1".into(), IgnoredReason::JsComment)));
        assert!(reasons.contains(&("111111111".into(), IgnoredReason::JsComment)));
        assert!(reasons.contains(&("G-JSONLD1234".into(), IgnoredReason::JsonLd)));
        assert!(reasons.contains(&(
            "G-BLOCKED123".into(),
            IgnoredReason::ConsentBlocked("text/plain".into())
        )));
        assert!(reasons.contains(&("222222222".into(), IgnoredReason::InertTemplate)));
    }

    #[test]
    fn gtm_snippet_noscript_and_environment() {
        let html = r#"<head><script>(function(w,d,s,l,i){w[l]=w[l]||[];w[l].push({'gtm.start':
new Date().getTime(),event:'gtm.js'});var f=d.getElementsByTagName(s)[0],
j=d.createElement(s),dl=l!='dataLayer'?'&l='+l:'';j.async=true;j.src=
'https://www.googletagmanager.com/gtm.js?id='+i+dl+ '&gtm_auth=AbC_dEf&gtm_preview=env-5&gtm_cookies_win=x';f.parentNode.insertBefore(j,f);
})(window,document,'script','dataLayer','GTM-AB12CD3');</script></head>
<body><noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-ZZ99ZZ9&gtm_auth=AbC_dEf&gtm_preview=env-5&gtm_cookies_win=x"
height="0" width="0" style="display:none;visibility:hidden"></iframe></noscript></body>"#;
        let s = scan_html(html, &base(), Place::Static);
        let gtm = ids(&s, Vendor::Gtm);
        assert_eq!(
            gtm,
            vec![
                ("GTM-AB12CD3".into(), Place::Static, Signal::Init),
                ("GTM-ZZ99ZZ9".into(), Place::Noscript, Signal::Hit)
            ]
        );
        let details: Vec<String> = s.hits.iter().filter_map(|h| h.detail.clone()).collect();
        assert!(
            details.iter().any(|d| d.contains("gtm_preview=env-5")),
            "{details:?}"
        );
    }

    #[test]
    fn every_vendor_snippet_is_recognised() {
        let html = r#"<html><head>
<script defer data-domain="example.com" src="https://plausible.io/js/script.js"></script>
<script async src="https://plausible.io/js/pa-XyZ123abc.js"></script>
<script defer data-domain="shop.example.com" src="/js/script.outbound-links.js"></script>
<script>
  var _paq = window._paq = window._paq || [];
  _paq.push(['trackPageView']);
  (function() {
    var u="https://example.matomo.cloud/";
    _paq.push(['setTrackerUrl', u+'matomo.php']);
    _paq.push(['setSiteId', '7']);
    var d=document, g=d.createElement('script'), s=d.getElementsByTagName('script')[0];
    g.async=true; g.src='https://cdn.matomo.cloud/example.matomo.cloud/matomo.js'; s.parentNode.insertBefore(g,s);
  })();
</script>
<script>
  !function(){var i="analytics",analytics=window[i]=window[i]||[];analytics.load=function(key,n){var t=document.createElement("script");t.src="https://cdn.segment.com/analytics.js/v1/" + key + "/analytics.min.js";};
  analytics._writeKey="WRITEkey123abc";analytics.SNIPPET_VERSION="5.2.0";
  analytics.load("WRITEkey123abc");
  analytics.page();
  }}();
</script>
<script>
!function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){n.callMethod?
n.callMethod.apply(n,arguments):n.queue.push(arguments)};t.src=v;
}(window, document,'script','https://connect.facebook.net/en_US/fbevents.js');
fbq('init', '1234567890123');
fbq('track', 'PageView');
</script>
<noscript><img height="1" width="1" style="display:none"
src="https://www.facebook.com/tr?id=1234567890123&ev=PageView&noscript=1"/></noscript>
<script type="text/javascript">
_linkedin_partner_id = "987654";
window._linkedin_data_partner_ids = window._linkedin_data_partner_ids || [];
window._linkedin_data_partner_ids.push(_linkedin_partner_id);
</script><script type="text/javascript">
(function(l) { var s = document.getElementsByTagName("script")[0];
var b = document.createElement("script"); b.type = "text/javascript";b.async = true;
b.src = "https://snap.licdn.com/li.lms-analytics/insight.min.js";
s.parentNode.insertBefore(b, s);})(window.lintrk);
</script>
<noscript><img height="1" width="1" style="display:none;" alt="" src="https://px.ads.linkedin.com/collect/?pid=987654&fmt=gif" /></noscript>
<script type="text/javascript" id="hs-script-loader" async defer src="//js-eu1.hs-scripts.com/4455667.js"></script>
<script async src="https://www.googletagmanager.com/gtag/js?id=AW-123456789"></script>
<script>
  gtag('config', 'AW-123456789');
  gtag('config', 'UA-1234567-1');
  gtag('event', 'conversion', {'send_to': 'AW-123456789/AbC-D_efG'});
  gtag('consent', 'default', {
    'ad_storage': 'denied', 'ad_user_data': 'denied', 'ad_personalization': 'denied',
    'analytics_storage': 'granted', 'wait_for_update': 500
  });
</script>
</head></html>"#;
        let s = scan_html(html, &base(), Place::Static);
        let got = |v: Vendor| -> Vec<String> {
            let mut x: Vec<String> = ids(&s, v).into_iter().map(|(i, _, _)| i).collect();
            x.dedup();
            x
        };
        assert_eq!(
            got(Vendor::Plausible),
            vec!["example.com", "pa-XyZ123abc", "shop.example.com"]
        );
        assert_eq!(got(Vendor::Matomo), vec!["7"]);
        assert_eq!(got(Vendor::Segment), vec!["WRITEkey123abc"]);
        assert_eq!(got(Vendor::MetaPixel), vec!["1234567890123"]);
        assert_eq!(got(Vendor::LinkedinInsight), vec!["987654"]);
        assert_eq!(got(Vendor::Hubspot), vec!["4455667"]);
        assert_eq!(got(Vendor::GoogleAds), vec!["AW-123456789"]);
        assert_eq!(got(Vendor::UniversalAnalytics), vec!["UA-1234567-1"]);
        assert!(
            s.hits
                .iter()
                .any(|h| h.detail.as_deref() == Some("conversion label AbC-D_efG"))
        );
        assert_eq!(s.consent.len(), 1);
        assert!(s.consent[0].is_v2());
        assert_eq!(s.consent[0].defaults["ad_storage"], "denied");
        assert!(s.hits.iter().any(|h| h.vendor == Vendor::Matomo
            && h.detail.as_deref() == Some("tracker url u+'matomo.php'")));
    }

    #[test]
    fn first_party_paths_are_recognised() {
        let html = r#"<script async src="/metrics/gtag/js?id=G-FIRST12345"></script>
<script src="https://sgtm.example.com/gtm.js?id=GTM-FP12345"></script>"#;
        let s = scan_html(html, &base(), Place::Static);
        assert_eq!(ids(&s, Vendor::Ga4)[0].0, "G-FIRST12345");
        assert_eq!(ids(&s, Vendor::Gtm)[0].0, "GTM-FP12345");
        assert!(
            s.hits[0]
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("www.example.com"))
        );
    }

    #[test]
    fn meta_refresh_targets() {
        let b = base();
        assert_eq!(
            parse_meta_refresh("0; url=/next?a=1", &b).as_deref(),
            Some("https://www.example.com/next?a=1")
        );
        assert_eq!(
            parse_meta_refresh("5;URL='https://x.test/p'", &b).as_deref(),
            Some("https://x.test/p")
        );
        assert_eq!(parse_meta_refresh("5", &b), None);
    }

    #[test]
    fn js_comment_splitting_keeps_strings() {
        let (code, comments) =
            split_js_comments("var a='//x'; // c1\nvar b=\"/*y*/\"; /* c2 */ var c=`//z`;");
        assert!(code.contains("'//x'") && code.contains("\"/*y*/\"") && code.contains("`//z`"));
        assert!(comments.contains("c1") && comments.contains("c2"));
        assert!(!code.contains("c1") && !code.contains("c2"));
    }
}
