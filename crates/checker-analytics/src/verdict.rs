//! Per page and per vendor verdicts from what [`crate::detect`] found and what the probe
//! expects. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::detect::{IgnoredReason, Place, Scan, Signal, TagHit, Vendor};

/// The vendor IDs every audited page must load. A vendor left empty is not required; when it
/// is found anyway it is reported (`present`), and obsolete Universal Analytics is always
/// flagged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedTags {
    /// GA4 measurement IDs (`G-XXXXXXXXXX`) the pages must load through gtag.js (or that a tag
    /// manager loads, seen in rendered mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ga4: Vec<String>,
    /// Google Tag Manager container IDs (`GTM-XXXXXXX`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gtm: Vec<String>,
    /// Google Ads tag IDs (`AW-123456789`), optionally with a conversion label that must be
    /// sent on the page (`AW-123456789/AbC-D_efG`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub google_ads: Vec<String>,
    /// Plausible sites: the `data-domain` of the classic script (`example.com`) or the ID of
    /// the per-site script (`pa-XXXXXXXX`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plausible: Vec<String>,
    /// Matomo site ids (`setSiteId`), cloud or self-hosted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matomo: Vec<String>,
    /// Segment write keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment: Vec<String>,
    /// Meta Pixel IDs (`fbq('init', '…')`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub meta_pixel: Vec<String>,
    /// LinkedIn Insight Tag partner ids (`_linkedin_partner_id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linkedin_insight: Vec<String>,
    /// HubSpot portal ids (`js.hs-scripts.com/<portal>.js`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hubspot: Vec<String>,
}

impl ExpectedTags {
    /// The expected IDs of a vendor.
    pub fn of(&self, v: Vendor) -> &[String] {
        match v {
            Vendor::Ga4 => &self.ga4,
            Vendor::Gtm => &self.gtm,
            Vendor::GoogleAds => &self.google_ads,
            Vendor::Plausible => &self.plausible,
            Vendor::Matomo => &self.matomo,
            Vendor::Segment => &self.segment,
            Vendor::MetaPixel => &self.meta_pixel,
            Vendor::LinkedinInsight => &self.linkedin_insight,
            Vendor::Hubspot => &self.hubspot,
            Vendor::UniversalAnalytics => &[],
        }
    }

    /// Whether nothing is expected at all.
    pub fn is_empty(&self) -> bool {
        Vendor::ALL.iter().all(|v| self.of(*v).is_empty())
    }

    /// Check the IDs' shapes; the message names the key.
    pub fn validate(&self, key: &str) -> Result<(), String> {
        for v in Vendor::ALL {
            for id in self.of(v) {
                let (bare, label) = match (v, id.split_once('/')) {
                    (Vendor::GoogleAds, Some((b, l))) => (b, Some(l)),
                    _ => (id.as_str(), None),
                };
                let ok = match v {
                    Vendor::Ga4 => bare.starts_with("G-") && bare.len() > 4,
                    Vendor::Gtm => bare.starts_with("GTM-") && bare.len() > 6,
                    Vendor::GoogleAds => {
                        bare.strip_prefix("AW-")
                            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                            && label.is_none_or(|l| !l.is_empty())
                    }
                    Vendor::Matomo
                    | Vendor::MetaPixel
                    | Vendor::LinkedinInsight
                    | Vendor::Hubspot => {
                        !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit())
                    }
                    Vendor::Segment => {
                        !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_alphanumeric())
                    }
                    Vendor::Plausible => !bare.is_empty() && !bare.contains(char::is_whitespace),
                    Vendor::UniversalAnalytics => true,
                };
                if !ok {
                    return Err(format!(
                        "`{key}.{}`: `{id}` is not a valid {} id",
                        v.key(),
                        v.key()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How a verdict weighs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    #[default]
    Pass,
    Warn,
    /// Could not be judged (the page was cut at the byte cap before the tag could appear).
    Error,
    Fail,
}

/// One verdict for one vendor on one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The expected IDs load, nothing else.
    Ok,
    /// A vendor nobody required is installed (informational).
    Present,
    /// The expected IDs load, plus IDs nobody expected (data leaking to another property?).
    OkButExtraIds,
    /// The vendor is installed, but with other IDs than expected.
    WrongId,
    /// The vendor is not installed (or not with every expected ID).
    Missing,
    /// An expected Google Ads conversion label is never sent.
    MissingConversionLabel,
    /// The same ID is loaded or initialised more than once: double counting.
    Duplicated,
    /// Only the `<noscript>` fallback is installed: an incomplete install that tracks almost
    /// nobody.
    NoscriptOnly,
    /// The `<noscript>` fallback names other IDs than the script.
    ScriptNoscriptDisagree,
    /// Universal Analytics: Google stopped processing its data in July 2023.
    Obsolete,
    /// The tag is there but parked by a consent manager until the visitor agrees.
    ConsentBlocked,
    /// A GTM environment (`gtm_preview=env-…`) is loaded instead of the live container.
    GtmEnvironment,
    /// The page was cut at the byte cap before the tag was found: cannot judge.
    Truncated,
}

impl Verdict {
    pub fn level(self) -> Level {
        match self {
            Verdict::Ok | Verdict::Present => Level::Pass,
            Verdict::OkButExtraIds
            | Verdict::Duplicated
            | Verdict::ScriptNoscriptDisagree
            | Verdict::Obsolete
            | Verdict::ConsentBlocked
            | Verdict::GtmEnvironment => Level::Warn,
            Verdict::Truncated => Level::Error,
            Verdict::WrongId
            | Verdict::Missing
            | Verdict::MissingConversionLabel
            | Verdict::NoscriptOnly => Level::Fail,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Present => "present",
            Verdict::OkButExtraIds => "ok_but_extra_ids",
            Verdict::WrongId => "wrong_id",
            Verdict::Missing => "missing",
            Verdict::MissingConversionLabel => "missing_conversion_label",
            Verdict::Duplicated => "duplicated",
            Verdict::NoscriptOnly => "noscript_only",
            Verdict::ScriptNoscriptDisagree => "script_noscript_disagree",
            Verdict::Obsolete => "obsolete",
            Verdict::ConsentBlocked => "consent_blocked",
            Verdict::GtmEnvironment => "gtm_environment",
            Verdict::Truncated => "truncated",
        }
    }
}

/// What was found for one vendor on one page, and its verdicts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VendorReport {
    pub verdicts: Vec<Verdict>,
    pub level: Level,
    /// A sentence saying why, naming the IDs.
    pub note: String,
    /// Every hit, with where it was seen.
    pub found: Vec<TagHit>,
}

fn ids_where(hits: &[&TagHit], pred: impl Fn(&TagHit) -> bool) -> BTreeSet<String> {
    hits.iter()
        .filter(|h| !h.id.is_empty() && pred(h))
        .map(|h| h.id.clone())
        .collect()
}

fn list(ids: &BTreeSet<String>) -> String {
    ids.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The duplicate IDs: an ID whose loader or init call appears more than once in one layer (the
/// page as served, or the DOM after scripts ran).
fn duplicates(hits: &[&TagHit]) -> BTreeSet<String> {
    let mut counts: BTreeMap<(String, u8, Signal), usize> = BTreeMap::new();
    for h in hits {
        let layer = match h.place {
            Place::Static | Place::Iframe => 0,
            Place::Rendered => 1,
            Place::RenderedIframe | Place::Network | Place::Noscript => continue,
        };
        if h.id.is_empty() || !matches!(h.signal, Signal::Loader | Signal::Init) {
            continue;
        }
        *counts.entry((h.id.clone(), layer, h.signal)).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((id, _, _), _)| id)
        .collect()
}

/// Judge every vendor on one page. `truncated`: the body was cut at the byte cap.
pub fn judge_page(
    scan: &Scan,
    expected: &ExpectedTags,
    truncated: bool,
) -> BTreeMap<Vendor, VendorReport> {
    let mut out = BTreeMap::new();
    for v in Vendor::ALL {
        let hits: Vec<&TagHit> = scan.hits.iter().filter(|h| h.vendor == v).collect();
        let exp_raw = expected.of(v);
        let blocked: BTreeSet<String> = scan
            .ignored
            .iter()
            .filter(|i| i.vendor == v && matches!(i.reason, IgnoredReason::ConsentBlocked(_)))
            .map(|i| i.id.clone())
            .collect();
        if hits.is_empty() && exp_raw.is_empty() && blocked.is_empty() {
            continue;
        }
        let expected_ids: BTreeSet<String> = exp_raw
            .iter()
            .map(|e| e.split('/').next().unwrap_or(e).to_string())
            .collect();
        let active = ids_where(&hits, |h| h.place.is_active());
        let noscript = ids_where(&hits, |h| h.place == Place::Noscript);
        let mut verdicts = Vec::new();
        let mut notes = Vec::new();
        if v == Vendor::UniversalAnalytics {
            if !active.is_empty() {
                verdicts.push(Verdict::Obsolete);
                notes.push(format!(
                    "universal analytics {} still installed: it stopped processing data in july 2023",
                    list(&active)
                ));
            }
        } else if expected_ids.is_empty() {
            if !active.is_empty() {
                verdicts.push(Verdict::Present);
                notes.push(format!("installed: {}", list(&active)));
            } else if !noscript.is_empty() {
                verdicts.push(Verdict::NoscriptOnly);
                notes.push(format!(
                    "only a <noscript> fallback for {}",
                    list(&noscript)
                ));
            } else if !blocked.is_empty() {
                verdicts.push(Verdict::ConsentBlocked);
                notes.push(format!("consent-blocked: {}", list(&blocked)));
            }
        } else {
            let found: BTreeSet<String> = expected_ids.intersection(&active).cloned().collect();
            let missing: BTreeSet<String> = expected_ids.difference(&active).cloned().collect();
            let extra: BTreeSet<String> = active.difference(&expected_ids).cloned().collect();
            if found.is_empty() {
                if truncated {
                    verdicts.push(Verdict::Truncated);
                    notes.push(format!(
                        "{} not found before the byte cap cut the page",
                        list(&expected_ids)
                    ));
                } else if !active.is_empty() {
                    verdicts.push(Verdict::WrongId);
                    notes.push(format!(
                        "expected {}, the page loads {}",
                        list(&expected_ids),
                        list(&active)
                    ));
                } else if !noscript.is_empty() {
                    verdicts.push(Verdict::NoscriptOnly);
                    notes.push(format!(
                        "only a <noscript> fallback ({}), no script: an incomplete install",
                        list(&noscript)
                    ));
                } else if expected_ids.iter().any(|e| blocked.contains(e)) {
                    verdicts.push(Verdict::ConsentBlocked);
                    notes.push(format!(
                        "{} is installed but consent-blocked until the visitor agrees",
                        list(&blocked)
                    ));
                } else {
                    verdicts.push(Verdict::Missing);
                    notes.push(format!("{} not found", list(&expected_ids)));
                }
            } else {
                if !missing.is_empty() {
                    verdicts.push(if truncated {
                        Verdict::Truncated
                    } else {
                        Verdict::Missing
                    });
                    notes.push(format!(
                        "{} found but {} not found",
                        list(&found),
                        list(&missing)
                    ));
                }
                if !extra.is_empty() {
                    verdicts.push(Verdict::OkButExtraIds);
                    notes.push(format!("unexpected extra ids {}", list(&extra)));
                }
            }
            // Conversion labels (Google Ads).
            for e in exp_raw {
                if let Some((id, label)) = e.split_once('/') {
                    let want = format!("conversion label {label}");
                    let sent = hits
                        .iter()
                        .any(|h| h.id == id && h.detail.as_deref() == Some(want.as_str()));
                    if active.contains(id) && !sent {
                        verdicts.push(Verdict::MissingConversionLabel);
                        notes.push(format!("conversion label {label} of {id} is never sent"));
                    }
                }
            }
        }
        if v != Vendor::UniversalAnalytics {
            let dups = duplicates(&hits);
            if !dups.is_empty() {
                verdicts.push(Verdict::Duplicated);
                notes.push(format!(
                    "{} loaded more than once: double counting",
                    list(&dups)
                ));
            }
            if !active.is_empty() && !noscript.is_empty() && !noscript.is_subset(&active) {
                verdicts.push(Verdict::ScriptNoscriptDisagree);
                notes.push(format!(
                    "the script loads {} but the <noscript> fallback names {}",
                    list(&active),
                    list(&noscript)
                ));
            }
            if v == Vendor::Gtm
                && let Some(env) = hits
                    .iter()
                    .filter(|h| h.place.is_active())
                    .find_map(|h| h.detail.as_deref().filter(|d| d.contains("gtm_preview=")))
            {
                verdicts.push(Verdict::GtmEnvironment);
                let env = env.split("environment ").nth(1).unwrap_or(env);
                notes.push(format!(
                    "a gtm environment is loaded ({env}), not the live container"
                ));
            }
        }
        if verdicts.is_empty() {
            verdicts.push(Verdict::Ok);
            notes.push(format!("{} loads", list(&active)));
        }
        verdicts.sort();
        verdicts.dedup();
        let level = verdicts
            .iter()
            .map(|v| v.level())
            .max()
            .unwrap_or(Level::Pass);
        out.insert(
            v,
            VendorReport {
                verdicts,
                level,
                note: notes.join("; "),
                found: hits.into_iter().cloned().collect(),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::scan_html;
    use url::Url;

    fn judge(html: &str, expected: ExpectedTags) -> BTreeMap<Vendor, VendorReport> {
        let base = Url::parse("https://example.com/").unwrap_or_else(|_| unreachable!());
        judge_page(&scan_html(html, &base, Place::Static), &expected, false)
    }

    fn ga4(ids: &[&str]) -> ExpectedTags {
        ExpectedTags {
            ga4: ids.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    const G_A: &str = r#"<script async src="https://www.googletagmanager.com/gtag/js?id=G-AAAA111111"></script>
<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}gtag('js',new Date());gtag('config','G-AAAA111111');</script>"#;

    #[test]
    fn expected_id_is_ok() {
        let r = judge(G_A, ga4(&["G-AAAA111111"]));
        assert_eq!(r[&Vendor::Ga4].verdicts, vec![Verdict::Ok]);
    }

    #[test]
    fn other_id_is_wrong_and_none_is_missing() {
        let r = judge(G_A, ga4(&["G-BBBB222222"]));
        assert_eq!(r[&Vendor::Ga4].verdicts, vec![Verdict::WrongId]);
        let r = judge("<p>hello</p>", ga4(&["G-BBBB222222"]));
        assert_eq!(r[&Vendor::Ga4].verdicts, vec![Verdict::Missing]);
        assert_eq!(r[&Vendor::Ga4].level, Level::Fail);
    }

    #[test]
    fn twice_is_duplicated_and_extra_ids_are_reported() {
        let html = format!("{G_A}{G_A}<script>gtag('config','G-CCCC333333');</script>");
        let r = judge(&html, ga4(&["G-AAAA111111"]));
        assert_eq!(
            r[&Vendor::Ga4].verdicts,
            vec![Verdict::OkButExtraIds, Verdict::Duplicated]
        );
        assert_eq!(r[&Vendor::Ga4].level, Level::Warn);
    }

    #[test]
    fn noscript_only_and_disagreeing_fallbacks() {
        let ns = r#"<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-AAAA111"></iframe></noscript>"#;
        let expect = ExpectedTags {
            gtm: vec!["GTM-AAAA111".into()],
            ..Default::default()
        };
        assert_eq!(
            judge(ns, expect.clone())[&Vendor::Gtm].verdicts,
            vec![Verdict::NoscriptOnly]
        );
        let html = format!(
            "<script>(function(w,d,s,l,i){{}})(window,document,'script','dataLayer','GTM-BBBB222');</script>{}",
            ns.replace("AAAA111", "CCCC333")
        );
        let r = judge(
            &html,
            ExpectedTags {
                gtm: vec!["GTM-BBBB222".into()],
                ..Default::default()
            },
        );
        assert_eq!(
            r[&Vendor::Gtm].verdicts,
            vec![Verdict::ScriptNoscriptDisagree]
        );
    }

    #[test]
    fn universal_analytics_is_always_obsolete() {
        let html = r#"<script>gtag('config', 'UA-123456-1');</script>"#;
        let r = judge(html, ExpectedTags::default());
        assert_eq!(
            r[&Vendor::UniversalAnalytics].verdicts,
            vec![Verdict::Obsolete]
        );
    }

    #[test]
    fn consent_blocked_expected_tag_is_reported_as_blocked() {
        let html = r#"<script type="text/plain" data-category="analytics">gtag('config','G-AAAA111111');</script>"#;
        let r = judge(html, ga4(&["G-AAAA111111"]));
        assert_eq!(r[&Vendor::Ga4].verdicts, vec![Verdict::ConsentBlocked]);
    }

    #[test]
    fn truncated_page_cannot_say_missing() {
        let base = Url::parse("https://example.com/").unwrap_or_else(|_| unreachable!());
        let s = scan_html("<p>cut", &base, Place::Static);
        let r = judge_page(&s, &ga4(&["G-AAAA111111"]), true);
        assert_eq!(r[&Vendor::Ga4].level, Level::Error);
    }

    #[test]
    fn conversion_labels_are_checked() {
        let html = r#"<script>gtag('config','AW-123456789');gtag('event','conversion',{'send_to':'AW-123456789/lead_A'});</script>"#;
        let ok = ExpectedTags {
            google_ads: vec!["AW-123456789/lead_A".into()],
            ..Default::default()
        };
        assert_eq!(
            judge(html, ok)[&Vendor::GoogleAds].verdicts,
            vec![Verdict::Ok]
        );
        let other = ExpectedTags {
            google_ads: vec!["AW-123456789/other".into()],
            ..Default::default()
        };
        assert_eq!(
            judge(html, other)[&Vendor::GoogleAds].verdicts,
            vec![Verdict::MissingConversionLabel]
        );
    }

    #[test]
    fn ids_are_validated() {
        assert!(ga4(&["G-AAAA111111"]).validate("expect").is_ok());
        let e = ga4(&["UA-1-1"])
            .validate("expect")
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("`expect.ga4`"), "{e}");
    }
}
