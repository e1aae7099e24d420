//! The DNS email-authentication probe kinds: their params (the reference documentation: every
//! field's `///` becomes the schema published in `Describe`) and factories.
//!
//! | kind | value | verdict |
//! |---|---|---|
//! | `dns.spf` | DNS lookups used (count) | FAIL on permerror or a sending IP without `pass`, WARN on `+all`/`?all`/no `all`/`ptr`/checkdmarc warnings |
//! | `dns.dmarc` | policy level 0 none, 1 quarantine, 2 reject | FAIL missing/invalid, WARN `p=none`, removed tags, … |
//! | `dns.dkim` | weakest key, RSA-equivalent bits | FAIL missing/revoked/< 1024, WARN < 2048 |
//! | `dns.dkim_discovery` | selectors found (count) | WARN none found, plus the key checks |
//! | `dns.mx` | MX hosts with an address (count) | FAIL none/null MX, WARN implicit MX |
//! | `dns.mta_sts` | 1 valid policy, 0 not (bool) | WARN missing, FAIL broken |
//! | `dns.tls_rpt` | 1 valid record, 0 not (bool) | WARN missing, FAIL broken |
//! | `dns.bimi` | 1 logo can show, 0 not (bool) | PASS when absent, FAIL when present but ineligible |

use std::sync::Arc;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeFactory, TypedFactory};
use funnelgate_core::Measurement;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dns::{Dns, parse_nameservers, validate_domain};
use crate::findings::{Findings, measurement};
use crate::{bimi, dkim, dmarc, mta_sts, mx, spf, spf_eval};

fn default_bimi_selector() -> String {
    "default".to_string()
}

fn default_true() -> bool {
    true
}

fn check_nameservers(ns: &[String]) -> Result<(), ProbeError> {
    parse_nameservers(ns).map(|_| ())
}

async fn resolver(ns: &[String], ctx: &ProbeContext) -> Result<Dns, ProbeError> {
    Dns::from_param(ns, ctx.timeout()).await
}

fn with(m: Measurement, pairs: &[(&str, String)]) -> Measurement {
    pairs
        .iter()
        .fold(m, |m, (k, v)| m.with_evidence(*k, v.clone()))
}

/// Params of `dns.spf`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpfParams {
    /// The domain whose SPF record is checked: the envelope-from (Return-Path) domain your ESP
    /// sends with, and usually the From domain too.
    pub domain: String,
    /// The IPs your mail actually leaves from (your ESP's sending IPs), IPv4 or IPv6. Each is
    /// evaluated with RFC 7208 `check_host()` against `domain`, and every one must get `pass`:
    /// `fail`, `softfail`, `neutral`, `none` or `permerror` is FAIL, `temperror` is ERROR.
    /// Empty: only the record itself is audited.
    #[serde(default)]
    pub ips: Vec<String>,
    /// The MAIL FROM address used for the `%{s}`, `%{l}` and `%{o}` macros of the evaluation.
    /// Default: `postmaster@<domain>`.
    #[serde(default)]
    pub sender: Option<String>,
    /// The HELO/EHLO name used for the `%{h}` macro of the evaluation. Default: `domain`.
    #[serde(default)]
    pub helo: Option<String>,
    /// Nameservers to ask, as `ip` or `ip:port` (e.g. `127.0.0.1:5353`). Empty: the ones in
    /// `/etc/resolv.conf`, else 1.1.1.1 and 8.8.8.8.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// Take the sending IPs (besides `ips`) from the ESP's own API at every run, with the
    /// vendor credentials in the probe's `secret`, e.g.
    /// `ips_from = { vendor = "amazon-ses", region = "eu-west-1" }`. Each IP it lists is evaluated
    /// like those in `ips`; an account the ESP lists no sending IP for is ERROR (its mail leaves
    /// from the ESP's shared IPs, which its API does not list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ips_from: Option<IpsFrom>,
}

/// An ESP whose API lists an account's sending IPs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EspVendor {
    /// Amazon SES v2 `GetDedicatedIps` (`GET /v2/email/dedicated-ips`, every page): the
    /// account's dedicated IPs in `region`. Secret: the same AWS credentials JSON as the
    /// `ses.*` kinds.
    #[serde(rename = "amazon-ses")]
    AmazonSes,
}

/// Where `dns.spf` takes sending IPs from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpsFrom {
    /// The ESP: `amazon-ses`.
    pub vendor: EspVendor,
    /// AWS region of the SES account, e.g. `eu-west-1` (dedicated IPs are per region).
    pub region: String,
    /// Only the IPs of this dedicated IP pool (SES `PoolName`). Default: every dedicated IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// API endpoint; default `https://email.<region>.amazonaws.com`. Plain http is accepted only
    /// for a loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// The sending IPs the ESP lists, parsed.
async fn esp_ips(
    ctx: &ProbeContext,
    from: &IpsFrom,
) -> Result<(Vec<std::net::IpAddr>, String), ProbeError> {
    let (vendor, raw) = match from.vendor {
        EspVendor::AmazonSes => (
            format!("amazon-ses {}", from.region),
            crate::vendors::ses::dedicated_ips(
                ctx,
                "dns.spf",
                &from.region,
                from.endpoint.as_deref(),
                from.pool.as_deref(),
            )
            .await?,
        ),
    };
    let ips = raw
        .iter()
        .map(|s| {
            s.trim().parse::<std::net::IpAddr>().map_err(|_| {
                ProbeError::permanent(format!(
                    "`ips_from`: {vendor} listed `{s}`, which is not an ip address"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((ips, vendor))
}

struct SpfProbe {
    params: SpfParams,
    ips: Vec<std::net::IpAddr>,
}

/// `check_host()` for each sending IP: findings, evidence, and the temperror that makes the
/// probe ERROR.
async fn evaluate_ips(
    dns: &Dns,
    p: &SpfParams,
    ips: &[std::net::IpAddr],
    f: &mut Findings,
    evidence: &mut Vec<(String, String)>,
) -> Result<usize, ProbeError> {
    let mut passing = 0;
    for ip in ips {
        let id = spf_eval::Identity {
            ip: *ip,
            sender: p
                .sender
                .clone()
                .unwrap_or_else(|| format!("postmaster@{}", p.domain)),
            helo: p.helo.clone().unwrap_or_else(|| p.domain.clone()),
            receiver: String::new(),
        };
        let ev = spf_eval::check_host(dns, &id, &p.domain).await;
        let key = format!("check_host.{ip}");
        evidence.push((key.clone(), ev.result.as_str().to_string()));
        let matched = ev.mechanism.as_ref().map(|m| {
            format!(
                "{m} (in the record of {})",
                ev.record_domain.as_deref().unwrap_or(&p.domain)
            )
        });
        if let Some(m) = &matched {
            evidence.push((format!("{key}.mechanism"), m.clone()));
        }
        if let Some(r) = &ev.reason {
            evidence.push((format!("{key}.reason"), r.clone()));
        }
        if let Some(e) = &ev.explanation {
            evidence.push((format!("{key}.explanation"), e.clone()));
        }
        let why = matched
            .clone()
            .or_else(|| ev.reason.clone())
            .unwrap_or_default();
        match ev.result {
            spf_eval::SpfResult::Pass => passing += 1,
            spf_eval::SpfResult::TempError => {
                return Err(ProbeError::transient(format!(
                    "spf temperror (RFC 7208 §2.6.6) evaluating {ip} against {}: {why}",
                    p.domain
                )));
            }
            spf_eval::SpfResult::PermError => f.fail(
                "spf_check_host_permerror",
                format!(
                    "{ip} gets permerror from the SPF of {}: {why} — receivers treat its mail as unauthenticated",
                    p.domain
                ),
            ),
            other => f.fail(
                "spf_ip_not_authorised",
                format!(
                    "{ip} gets {other} from the SPF of {}{}: it is not authorised, so its mail fails SPF (and SPF-based DMARC) — add it (or its ESP's include) to the record",
                    p.domain,
                    if why.is_empty() { String::new() } else { format!(" ({why})") }
                ),
            ),
        }
    }
    Ok(passing)
}

#[async_trait]
impl Probe for SpfProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let dns = resolver(&self.params.nameservers, ctx).await?;
        let r = spf::check(&dns, &self.params.domain).await.map_err(|e| {
            ProbeError::transient(format!(
                "spf temperror (RFC 7208 §2.6.6), the record cannot be evaluated: {e}"
            ))
        })?;
        let mut findings = r.findings.clone();
        let mut evidence = Vec::new();
        let mut summary = spf::summary(&r);
        let mut ips = self.ips.clone();
        if let Some(from) = &self.params.ips_from {
            let (listed, vendor) = esp_ips(ctx, from).await?;
            if listed.is_empty() {
                return Err(ProbeError::permanent(format!(
                    "`ips_from`: {vendor} lists no sending IP for this account{}: its mail leaves from the ESP's shared IPs, which its API does not list; authorise the ESP's include in the SPF record of the MAIL FROM domain and list known IPs in `ips`",
                    from.pool
                        .as_deref()
                        .map(|p| format!(" (pool `{p}`)"))
                        .unwrap_or_default()
                )));
            }
            evidence.push((
                "ips_from".to_string(),
                format!(
                    "{vendor}: {}",
                    listed
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            for ip in listed {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        if !ips.is_empty() {
            let passing =
                evaluate_ips(&dns, &self.params, &ips, &mut findings, &mut evidence).await?;
            summary.push_str(&format!(
                "; {passing} of {} sending IPs pass check_host()",
                ips.len()
            ));
        }
        let mut m = measurement(Some(r.dns_lookups as f64), "count", summary, &findings);
        for (k, v) in evidence {
            m = m.with_evidence(k, v);
        }
        Ok(with(
            m,
            &[
                ("domain", r.domain.clone()),
                (
                    "record",
                    r.record.clone().unwrap_or_else(|| "(none)".into()),
                ),
                (
                    "dns_lookups",
                    format!("{}/{}", r.dns_lookups, spf::MAX_DNS_LOOKUPS),
                ),
                (
                    "void_lookups",
                    format!("{}/{}", r.void_lookups, spf::MAX_VOID_LOOKUPS),
                ),
                (
                    "all",
                    r.all
                        .map(|q| format!("{}all ({})", q.symbol(), q.as_str()))
                        .unwrap_or_else(|| "(none)".into()),
                ),
                ("nameservers", dns.servers()),
            ],
        ))
    }
}

/// `dns.spf`: the SPF record of a sending domain, evaluated per RFC 7208.
pub fn spf_factory() -> impl ProbeFactory {
    TypedFactory::<SpfParams, _>::new(
        "dns.spf",
        "SPF record of a sending domain: one record, valid syntax, at most 10 DNS lookups and 2 void lookups (RFC 7208), ending in -all or ~all; with `ips` (or `ips_from` the ESP's API), RFC 7208 check_host() must give pass for each sending IP",
        "count",
        |mut p: SpfParams| {
            p.domain = validate_domain("domain", &p.domain)?;
            check_nameservers(&p.nameservers)?;
            if let Some(from) = &p.ips_from {
                match from.vendor {
                    EspVendor::AmazonSes => crate::vendors::ses::check_api_params(
                        "dns.spf",
                        &from.region,
                        from.endpoint.as_deref(),
                    )
                    .map_err(|e| {
                        ProbeError::params(e.message.replace("`region`", "`ips_from.region`"))
                    })?,
                }
            }
            let ips = p
                .ips
                .iter()
                .map(|s| {
                    s.trim().parse::<std::net::IpAddr>().map_err(|_| {
                        ProbeError::params(format!("`ips`: `{s}` is not an ipv4 or ipv6 address"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(sender) = &p.sender {
                let domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
                validate_domain("sender", domain).map_err(|_| {
                    ProbeError::params(format!(
                        "`sender`: `{sender}` is not an address like `bounces@news.example.com`"
                    ))
                })?;
            }
            if let Some(helo) = &p.helo {
                validate_domain("helo", helo)?;
            }
            Ok(Arc::new(SpfProbe { params: p, ips }) as Arc<dyn Probe>)
        },
    )
}

/// Params of `dns.dmarc`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DmarcParams {
    /// The From domain whose DMARC policy is checked (a subdomain falls back to its
    /// organisational domain's record, as receivers do).
    pub domain: String,
    /// Nameservers to ask, as `ip` or `ip:port` (e.g. `127.0.0.1:5353`). Empty: the ones in
    /// `/etc/resolv.conf`, else 1.1.1.1 and 8.8.8.8.
    #[serde(default)]
    pub nameservers: Vec<String>,
}

struct DmarcProbe(DmarcParams);

#[async_trait]
impl Probe for DmarcProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let dns = resolver(&self.0.nameservers, ctx).await?;
        let r = dmarc::check(&dns, &self.0.domain).await.map_err(|e| {
            ProbeError::transient(format!(
                "dmarc temperror (RFC 7489 §6.6.3), the policy cannot be discovered: {e}"
            ))
        })?;
        let value = r.policy.map(|p| p.level() as f64);
        let m = measurement(value, "policy_level", dmarc::summary(&r), &r.findings);
        let mut pairs = vec![
            ("domain", r.domain.clone()),
            (
                "record",
                r.record.clone().unwrap_or_else(|| "(none)".into()),
            ),
            (
                "location",
                r.location.clone().unwrap_or_else(|| "(none)".into()),
            ),
            ("nameservers", dns.servers()),
        ];
        if let Some(p) = r.policy {
            pairs.push(("policy", p.as_str().to_string()));
        }
        for t in ["sp", "np", "adkim", "aspf", "rua"] {
            if let Some(v) = r.tags.get(t) {
                pairs.push((t, v.clone()));
            }
        }
        if let Some(e) = r.enforcement() {
            pairs.push((
                "pct",
                if e.pct_explicit {
                    e.pct.to_string()
                } else {
                    format!("{} (default)", e.pct)
                },
            ));
            pairs.push(("testing", if e.testing { "y" } else { "n" }.to_string()));
            pairs.push(("enforcement.rfc7489", e.rfc7489));
            pairs.push(("enforcement.dmarcbis", e.dmarcbis));
        }
        Ok(with(m, &pairs))
    }
}

/// `dns.dmarc`: the DMARC policy of a From domain.
pub fn dmarc_factory() -> impl ProbeFactory {
    TypedFactory::<DmarcParams, _>::new(
        "dns.dmarc",
        "DMARC policy of a From domain (RFC 7489 and DMARCbis): present, valid, enforced, reporting to authorised addresses; value 0 none, 1 quarantine, 2 reject",
        "policy_level",
        |mut p: DmarcParams| {
            p.domain = validate_domain("domain", &p.domain)?;
            check_nameservers(&p.nameservers)?;
            Ok(Arc::new(DmarcProbe(p)) as Arc<dyn Probe>)
        },
    )
}

fn check_selectors(field: &str, sels: &[String]) -> Result<(), ProbeError> {
    for s in sels {
        if s.is_empty()
            || !s.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            })
        {
            return Err(ProbeError::params(format!(
                "`{field}`: `{s}` is not a valid DKIM selector"
            )));
        }
    }
    Ok(())
}

/// A key as people name it: `rsa 2048 bits`, `ed25519 256 bits`, `k=foo`.
fn key_text(r: &dkim::SelectorReport) -> Option<String> {
    let t = match r.key_type.as_ref()? {
        dkim::KeyType::Rsa => "rsa".to_string(),
        dkim::KeyType::Ed25519 => "ed25519".to_string(),
        dkim::KeyType::Other(k) => format!("k={k}"),
    };
    Some(match r.bits {
        Some(b) => format!("{t} {b} bits"),
        None => t,
    })
}

fn selector_evidence(mut m: Measurement, reports: &[dkim::SelectorReport]) -> Measurement {
    for r in reports {
        let status = if r.record.is_none() {
            "missing"
        } else if r.findings.has("dkim_key_revoked") {
            "revoked"
        } else if r.strength.is_none() {
            "unusable"
        } else {
            "usable"
        };
        let key = match (status, key_text(r)) {
            ("usable", Some(k)) => k,
            ("missing", _) => "missing".to_string(),
            (s, Some(k)) => format!("{s} {k} key"),
            (s, None) => s.to_string(),
        };
        let prefix = format!("selector.{}", r.selector);
        m = m.with_evidence(prefix.clone(), format!("{key} at {}", r.name));
        m = m.with_evidence(format!("{prefix}.status"), status);
        if let Some(t) = &r.key_type {
            m = m.with_evidence(
                format!("{prefix}.key_type"),
                match t {
                    dkim::KeyType::Rsa => "rsa".to_string(),
                    dkim::KeyType::Ed25519 => "ed25519".to_string(),
                    dkim::KeyType::Other(k) => k.clone(),
                },
            );
        }
        if let Some(b) = r.bits {
            m = m.with_evidence(format!("{prefix}.key_bits"), b.to_string());
        }
        if let Some(s) = r.strength {
            m = m.with_evidence(format!("{prefix}.rsa_equivalent_bits"), s.to_string());
        }
    }
    m
}

/// The weakest key, named by its type and real size (`rsa 1024 bits`, `ed25519 256 bits,
/// as strong as rsa 3072`).
fn weakest_text(reports: &[dkim::SelectorReport]) -> String {
    let Some(w) = reports.iter().min_by_key(|r| r.strength.unwrap_or(0)) else {
        return "none".to_string();
    };
    match (w.strength, key_text(w)) {
        (Some(s), Some(k)) if w.key_type == Some(dkim::KeyType::Ed25519) => {
            format!("{k} (as strong as rsa {s} bits) at selector {}", w.selector)
        }
        (Some(_), Some(k)) => format!("{k} at selector {}", w.selector),
        (None, Some(k)) if w.findings.has("dkim_key_revoked") => {
            format!("a revoked {k} key at selector {}", w.selector)
        }
        (None, Some(k)) => format!("an unusable {k} key at selector {}", w.selector),
        (None, None) => format!("no usable key at selector {}", w.selector),
        (Some(s), None) => format!("{s} bits at selector {}", w.selector),
    }
}

/// Params of `dns.dkim`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DkimParams {
    /// The signing domain (the DKIM `d=`), usually the From domain.
    pub domain: String,
    /// The selectors your ESP signs with (`<selector>._domainkey.<domain>`), e.g. `["s1", "s2"]`.
    /// Empty: the common selector names are tried and every key found is judged.
    #[serde(default)]
    pub selectors: Vec<String>,
    /// Nameservers to ask, as `ip` or `ip:port` (e.g. `127.0.0.1:5353`). Empty: the ones in
    /// `/etc/resolv.conf`, else 1.1.1.1 and 8.8.8.8.
    #[serde(default)]
    pub nameservers: Vec<String>,
}

struct DkimProbe(DkimParams);

#[async_trait]
impl Probe for DkimProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let dns = resolver(&self.0.nameservers, ctx).await?;
        let d = &self.0.domain;
        let (reports, discovered) = if self.0.selectors.is_empty() {
            let common: Vec<String> = dkim::COMMON_SELECTORS
                .iter()
                .map(|s| s.to_string())
                .collect();
            (dkim::discover(&dns, d, &common).await?, true)
        } else {
            let mut v = Vec::new();
            for s in &self.0.selectors {
                v.push(dkim::check_selector(&dns, d, s).await?);
            }
            (v, false)
        };
        let mut f = Findings::default();
        for r in &reports {
            f.extend(r.findings.clone());
        }
        if reports.is_empty() {
            f.fail(
                "dkim_none_found",
                format!(
                    "no DKIM key found for {d} under {} common selector names: configure `selectors` with the selector your ESP signs with",
                    dkim::COMMON_SELECTORS.len()
                ),
            );
        }
        let weakest = reports
            .iter()
            .map(|r| r.strength.unwrap_or(0))
            .min()
            .unwrap_or(0);
        let summary = if reports.is_empty() {
            format!("DKIM of {d}: no key found")
        } else {
            let names: Vec<&str> = reports.iter().map(|r| r.selector.as_str()).collect();
            format!(
                "DKIM of {d} ({}{}): weakest key {}",
                if discovered { "found " } else { "selectors " },
                names.join(", "),
                weakest_text(&reports)
            )
        };
        let m = measurement(Some(weakest as f64), "bits", summary, &f);
        Ok(selector_evidence(m, &reports)
            .with_evidence("domain", d.clone())
            .with_evidence("nameservers", dns.servers()))
    }
}

/// `dns.dkim`: the DKIM keys of the configured selectors.
pub fn dkim_factory() -> impl ProbeFactory {
    TypedFactory::<DkimParams, _>::new(
        "dns.dkim",
        "DKIM public keys of the configured selectors: present, not revoked, RSA at least 1024 bits (2048 recommended) or Ed25519; value is the weakest key in RSA-equivalent bits",
        "bits",
        |mut p: DkimParams| {
            p.domain = validate_domain("domain", &p.domain)?;
            check_selectors("selectors", &p.selectors)?;
            check_nameservers(&p.nameservers)?;
            Ok(Arc::new(DkimProbe(p)) as Arc<dyn Probe>)
        },
    )
}

/// Params of `dns.dkim_discovery`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DkimDiscoveryParams {
    /// The domain to look for DKIM keys under.
    pub domain: String,
    /// Selector names to try on top of the common ones (google, selector1, selector2, k1, s1,
    /// s2, default, mail, dkim, mandrill, mxvault, …).
    #[serde(default)]
    pub extra_selectors: Vec<String>,
    /// Nameservers to ask, as `ip` or `ip:port` (e.g. `127.0.0.1:5353`). Empty: the ones in
    /// `/etc/resolv.conf`, else 1.1.1.1 and 8.8.8.8.
    #[serde(default)]
    pub nameservers: Vec<String>,
}

struct DkimDiscoveryProbe(DkimDiscoveryParams);

#[async_trait]
impl Probe for DkimDiscoveryProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let dns = resolver(&self.0.nameservers, ctx).await?;
        let d = &self.0.domain;
        let mut names: Vec<String> = dkim::COMMON_SELECTORS
            .iter()
            .map(|s| s.to_string())
            .collect();
        for s in &self.0.extra_selectors {
            if !names.contains(s) {
                names.push(s.clone());
            }
        }
        let found = dkim::discover(&dns, d, &names).await?;
        let mut f = Findings::default();
        for r in &found {
            f.extend(r.findings.clone());
        }
        if found.is_empty() {
            f.warn(
                "dkim_none_found",
                format!("no DKIM key found for {d} under {} selector names; that does not prove there is none — configure dns.dkim with your ESP's selector", names.len()),
            );
        }
        let summary = if found.is_empty() {
            format!(
                "DKIM discovery for {d}: no key under {} selector names",
                names.len()
            )
        } else {
            format!(
                "DKIM discovery for {d}: {} selector(s) publish keys ({})",
                found.len(),
                found
                    .iter()
                    .map(|r| r.selector.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let m = measurement(Some(found.len() as f64), "count", summary, &f);
        Ok(selector_evidence(m, &found)
            .with_evidence("selectors_tried", names.len().to_string())
            .with_evidence("domain", d.clone())
            .with_evidence("nameservers", dns.servers()))
    }
}

/// `dns.dkim_discovery`: which common selectors publish keys.
pub fn dkim_discovery_factory() -> impl ProbeFactory {
    TypedFactory::<DkimDiscoveryParams, _>::new(
        "dns.dkim_discovery",
        "DKIM selector discovery: which common selector names (google, selector1, s1, k1, mandrill, …) publish keys for a domain, each key judged like dns.dkim",
        "count",
        |mut p: DkimDiscoveryParams| {
            p.domain = validate_domain("domain", &p.domain)?;
            check_selectors("extra_selectors", &p.extra_selectors)?;
            check_nameservers(&p.nameservers)?;
            Ok(Arc::new(DkimDiscoveryProbe(p)) as Arc<dyn Probe>)
        },
    )
}

/// Params of `dns.mx`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MxParams {
    /// The domain whose MX records are checked (where replies and bounces go).
    pub domain: String,
    /// The domain is not meant to receive mail (parked): a null MX (RFC 7505) passes instead of
    /// failing.
    #[serde(default)]
    pub allow_null_mx: bool,
    /// Nameservers to ask, as `ip` or `ip:port` (e.g. `127.0.0.1:5353`). Empty: the ones in
    /// `/etc/resolv.conf`, else 1.1.1.1 and 8.8.8.8.
    #[serde(default)]
    pub nameservers: Vec<String>,
}

struct MxProbe(MxParams);

#[async_trait]
impl Probe for MxProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let dns = resolver(&self.0.nameservers, ctx).await?;
        let r = mx::check(&dns, &self.0.domain, self.0.allow_null_mx).await?;
        let usable = r.usable_hosts();
        let summary = if r.null_mx {
            format!("{} publishes a null MX", r.domain)
        } else {
            format!("{} has {usable} MX host(s) with an address", r.domain)
        };
        let mut m = measurement(Some(usable as f64), "count", summary, &r.findings);
        for h in &r.hosts {
            let addrs = h
                .addresses
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ");
            m = m.with_evidence(
                format!("mx.{}", h.host),
                format!(
                    "preference {} → {}",
                    h.preference,
                    if let Some(why) = &h.invalid {
                        format!("invalid: {why}")
                    } else if addrs.is_empty() {
                        "(no address)".into()
                    } else {
                        addrs
                    }
                ),
            );
            if let Some(target) = &h.cname {
                m = m.with_evidence(format!("mx.{}.cname", h.host), target.clone());
            }
        }
        Ok(m.with_evidence("domain", r.domain.clone())
            .with_evidence("nameservers", dns.servers()))
    }
}

/// `dns.mx`: MX records of a sending domain, null MX included.
pub fn mx_factory() -> impl ProbeFactory {
    TypedFactory::<MxParams, _>::new(
        "dns.mx",
        "MX records of a sending domain: hosts with addresses for replies and bounces; a null MX (RFC 7505) fails unless allowed",
        "count",
        |mut p: MxParams| {
            p.domain = validate_domain("domain", &p.domain)?;
            check_nameservers(&p.nameservers)?;
            Ok(Arc::new(MxProbe(p)) as Arc<dyn Probe>)
        },
    )
}

/// Params of `dns.mta_sts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MtaStsParams {
    /// The domain whose MTA-STS record and policy are checked.
    pub domain: String,
    /// Also download the policy file and check it covers the domain's MX hosts.
    #[serde(default = "default_true")]
    pub fetch_policy: bool,
    /// Where to download the policy from, instead of
    /// `https://mta-sts.<domain>/.well-known/mta-sts.txt` (for a staging copy or a test server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_url: Option<String>,
    /// Nameservers to ask, as `ip` or `ip:port` (e.g. `127.0.0.1:5353`). Empty: the ones in
    /// `/etc/resolv.conf`, else 1.1.1.1 and 8.8.8.8.
    #[serde(default)]
    pub nameservers: Vec<String>,
}

struct MtaStsProbe(MtaStsParams);

#[async_trait]
impl Probe for MtaStsProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let dns = resolver(&self.0.nameservers, ctx).await?;
        let d = &self.0.domain;
        let mx_hosts: Vec<String> = mx::check(&dns, d, true)
            .await?
            .hosts
            .into_iter()
            .map(|h| h.host)
            .collect();
        let url = self
            .0
            .policy_url
            .clone()
            .unwrap_or_else(|| format!("https://mta-sts.{d}/.well-known/mta-sts.txt"));
        let fetch = self.0.fetch_policy.then(|| mta_sts::PolicyFetch {
            http: &ctx.http,
            url: url.clone(),
            timeout: ctx.timeout(),
        });
        let r = mta_sts::check(&dns, d, fetch, &mx_hosts).await?;
        let ok = r.record.is_some()
            && r.findings.worst() < Some(crate::findings::Level::Warn)
            && (r.policy.is_some() || !self.0.fetch_policy);
        let summary = match (&r.record, &r.policy) {
            (None, _) => format!("MTA-STS of {d}: not published"),
            (Some(_), Some(p)) => format!(
                "MTA-STS of {d}: policy mode {} for {}",
                p.mode.as_str(),
                p.mx.join(", ")
            ),
            (Some(_), None) => format!("MTA-STS of {d}: record published"),
        };
        let m = measurement(
            Some(if ok { 1.0 } else { 0.0 }),
            "bool",
            summary,
            &r.findings,
        );
        let mut pairs = vec![
            ("domain", d.clone()),
            (
                "record",
                r.record.clone().unwrap_or_else(|| "(none)".into()),
            ),
            ("nameservers", dns.servers()),
        ];
        if self.0.fetch_policy {
            pairs.push(("policy_url", url));
        }
        Ok(with(m, &pairs))
    }
}

/// `dns.mta_sts`: MTA-STS record and policy (advisory).
pub fn mta_sts_factory() -> impl ProbeFactory {
    TypedFactory::<MtaStsParams, _>::new(
        "dns.mta_sts",
        "MTA-STS (RFC 8461, advisory): the _mta-sts record, the policy file, and that it covers the MX hosts; 1 when valid",
        "bool",
        |mut p: MtaStsParams| {
            p.domain = validate_domain("domain", &p.domain)?;
            check_nameservers(&p.nameservers)?;
            if let Some(u) = p
                .policy_url
                .as_ref()
                .filter(|u| !(u.starts_with("https://") || u.starts_with("http://")))
            {
                return Err(ProbeError::params(format!(
                    "`policy_url`: `{u}` is not an http(s) URL"
                )));
            }
            Ok(Arc::new(MtaStsProbe(p)) as Arc<dyn Probe>)
        },
    )
}

/// Params of `dns.tls_rpt`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsRptParams {
    /// The domain whose `_smtp._tls` record is checked.
    pub domain: String,
    /// Nameservers to ask, as `ip` or `ip:port` (e.g. `127.0.0.1:5353`). Empty: the ones in
    /// `/etc/resolv.conf`, else 1.1.1.1 and 8.8.8.8.
    #[serde(default)]
    pub nameservers: Vec<String>,
}

struct TlsRptProbe(TlsRptParams);

#[async_trait]
impl Probe for TlsRptProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let dns = resolver(&self.0.nameservers, ctx).await?;
        let d = &self.0.domain;
        let r = mta_sts::check_tlsrpt(&dns, d).await?;
        let ok = r.record.is_some() && r.findings.worst().is_none();
        let summary = if ok {
            format!("TLS-RPT of {d}: reports go to {}", r.rua.join(", "))
        } else {
            format!("TLS-RPT of {d}")
        };
        let m = measurement(
            Some(if ok { 1.0 } else { 0.0 }),
            "bool",
            summary,
            &r.findings,
        );
        Ok(with(
            m,
            &[
                ("domain", d.clone()),
                (
                    "record",
                    r.record.clone().unwrap_or_else(|| "(none)".into()),
                ),
                ("nameservers", dns.servers()),
            ],
        ))
    }
}

/// `dns.tls_rpt`: SMTP TLS reporting record (advisory).
pub fn tls_rpt_factory() -> impl ProbeFactory {
    TypedFactory::<TlsRptParams, _>::new(
        "dns.tls_rpt",
        "SMTP TLS reporting (RFC 8460, advisory): one valid _smtp._tls record with mailto: or https: destinations; 1 when valid",
        "bool",
        |mut p: TlsRptParams| {
            p.domain = validate_domain("domain", &p.domain)?;
            check_nameservers(&p.nameservers)?;
            Ok(Arc::new(TlsRptProbe(p)) as Arc<dyn Probe>)
        },
    )
}

/// Params of `dns.bimi`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BimiParams {
    /// The From domain whose BIMI record is checked.
    pub domain: String,
    /// The BIMI selector (`<selector>._bimi.<domain>`).
    #[serde(default = "default_bimi_selector")]
    pub selector: String,
    /// Nameservers to ask, as `ip` or `ip:port` (e.g. `127.0.0.1:5353`). Empty: the ones in
    /// `/etc/resolv.conf`, else 1.1.1.1 and 8.8.8.8.
    #[serde(default)]
    pub nameservers: Vec<String>,
}

struct BimiProbe(BimiParams);

#[async_trait]
impl Probe for BimiProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let dns = resolver(&self.0.nameservers, ctx).await?;
        let d = &self.0.domain;
        let r = bimi::check(&dns, d, &self.0.selector).await?;
        let summary = match (&r.record, r.eligible) {
            (None, _) => format!("BIMI of {d}: not published (optional)"),
            (Some(_), true) => format!("BIMI of {d}: the logo can be shown"),
            (Some(_), false) => format!("BIMI of {d}: the logo will not be shown"),
        };
        let m = measurement(
            Some(if r.eligible { 1.0 } else { 0.0 }),
            "bool",
            summary,
            &r.findings,
        );
        Ok(with(
            m,
            &[
                ("domain", d.clone()),
                (
                    "record",
                    r.record.clone().unwrap_or_else(|| "(none)".into()),
                ),
                ("nameservers", dns.servers()),
            ],
        ))
    }
}

/// `dns.bimi`: BIMI record and DMARC eligibility (optional).
pub fn bimi_factory() -> impl ProbeFactory {
    TypedFactory::<BimiParams, _>::new(
        "dns.bimi",
        "BIMI (optional): a valid v=BIMI1 record with an https SVG logo and mark certificate, and DMARC at enforcement; 1 when the logo can show",
        "bool",
        |mut p: BimiParams| {
            p.domain = validate_domain("domain", &p.domain)?;
            check_selectors("selector", std::slice::from_ref(&p.selector))?;
            check_nameservers(&p.nameservers)?;
            Ok(Arc::new(BimiProbe(p)) as Arc<dyn Probe>)
        },
    )
}
