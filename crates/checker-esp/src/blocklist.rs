//! DNS blocklists (RFC 5782): is a sending IP on an IP list (`<reversed octets>.<zone>` A
//! query; IPv6 as nibbles, §2.4), or a sending or link domain on a domain/URI list
//! (`<domain>.<zone>`)? A listing is an A answer in 127.0.0.0/8, with an optional TXT reason.
//!
//! Lists also answer in-band when they refuse a query (Spamhaus answers 127.255.255.x to
//! queries through public resolvers, URIBL answers 127.0.0.1): those are reported as refusals,
//! never as listings. Each list is first checked against its RFC 5782 §5 test entries
//! (127.0.0.2 / `TEST` must be listed, 127.0.0.1 / `INVALID` must not), so a dead, refusing or
//! list-everything zone is reported instead of trusted.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeFactory, TypedFactory};
use funnelgate_core::Measurement;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dns::{
    Answer, Dns, DnsFailure, normalize, parse_nameservers, reversed_labels, validate_domain,
};
use crate::findings::{Findings, measurement};

/// IP lists queried when none are configured.
pub const DEFAULT_IP_ZONES: [&str; 3] = [
    "zen.spamhaus.org",
    "b.barracudacentral.org",
    "bl.spamcop.net",
];
/// Domain/URI lists queried when none are configured.
pub const DEFAULT_DOMAIN_ZONES: [&str; 2] = ["dbl.spamhaus.org", "multi.uribl.com"];

/// What is being looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// IP lists (DNSBL).
    Ip,
    /// Domain/URI lists (RHSBL, URIBL).
    Domain,
}

/// One answer from one list about one subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not listed.
    Clear,
    /// Listed, with the return codes and the TXT reason if the list gives one.
    Listed {
        codes: Vec<Ipv4Addr>,
        reason: Option<String>,
    },
    /// The list answered with a code that means it refused or could not answer.
    Refused { codes: Vec<Ipv4Addr> },
}

fn is_refusal(kind: ListKind, code: Ipv4Addr) -> bool {
    let o = code.octets();
    o[0] != 127
        || (o[1] == 255 && o[2] == 255)
        || code == Ipv4Addr::new(127, 0, 0, 1)
        || (kind == ListKind::Domain && o[3] == 255)
}

/// The query name for a subject on a list.
pub fn query_name(kind: ListKind, subject: &str, zone: &str) -> Result<String, String> {
    match kind {
        ListKind::Ip => {
            let ip: IpAddr = subject
                .parse()
                .map_err(|_| format!("{subject} is not an ip address"))?;
            Ok(format!("{}.{}", reversed_labels(ip), normalize(zone)))
        }
        ListKind::Domain => Ok(format!("{}.{}", normalize(subject), normalize(zone))),
    }
}

/// Ask one list about one subject.
pub async fn lookup(
    dns: &Dns,
    kind: ListKind,
    subject: &str,
    zone: &str,
) -> Result<Verdict, DnsFailure> {
    let name = query_name(kind, subject, zone).map_err(|reason| DnsFailure {
        name: subject.to_string(),
        rtype: "A".into(),
        reason,
    })?;
    let codes: Vec<Ipv4Addr> = match dns.a(&name).await? {
        Answer::Records(r) => r
            .into_iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect(),
        Answer::NoData | Answer::NxDomain => return Ok(Verdict::Clear),
    };
    if codes.is_empty() {
        return Ok(Verdict::Clear);
    }
    if codes.iter().any(|c| is_refusal(kind, *c)) {
        return Ok(Verdict::Refused { codes });
    }
    // The explanation is optional (RFC 5782 §2.1): the listing stands without it, but a lookup
    // that failed is said, not taken for "no explanation".
    let reason = match dns.txt(&name).await {
        Ok(Answer::Records(t)) => t.iter().filter_map(|t| t.text()).next(),
        Ok(Answer::NoData | Answer::NxDomain) => None,
        Err(e) => Some(format!("its explanation could not be read: {e}")),
    };
    Ok(Verdict::Listed { codes, reason })
}

/// Why a list's answers cannot be trusted, per its RFC 5782 §5 test entries.
pub async fn list_problem(
    dns: &Dns,
    kind: ListKind,
    zone: &str,
) -> Result<Option<String>, DnsFailure> {
    let (positive, negative) = match kind {
        ListKind::Ip => ("127.0.0.2", "127.0.0.1"),
        ListKind::Domain => ("test", "invalid"),
    };
    match lookup(dns, kind, positive, zone).await? {
        Verdict::Listed { .. } => {}
        Verdict::Clear => {
            return Ok(Some(format!(
                "{zone} does not list its RFC 5782 test entry {positive}: the list is not answering (wrong zone name, or it blocks this resolver)"
            )));
        }
        Verdict::Refused { codes } => {
            return Ok(Some(format!(
                "{zone} refused the query for its test entry (answered {}): it does not serve this resolver (public resolvers are often refused; use your own)",
                codes_text(&codes)
            )));
        }
    }
    if lookup(dns, kind, negative, zone).await? != Verdict::Clear {
        return Ok(Some(format!(
            "{zone} lists {negative}, which RFC 5782 §5 forbids: it answers for everything, so its answers are ignored"
        )));
    }
    Ok(None)
}

fn codes_text(codes: &[Ipv4Addr]) -> String {
    codes
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a return code means on a few well-known lists.
pub fn code_meaning(zone: &str, code: Ipv4Addr) -> Option<&'static str> {
    let last = code.octets()[3];
    match normalize(zone).as_str() {
        "zen.spamhaus.org" => match last {
            2 => Some("SBL: known spam source"),
            3 => Some("SBL CSS: snowshoe spam"),
            4..=7 => Some("XBL: compromised host or open proxy"),
            9 => Some("DROP: hijacked network"),
            10 | 11 => Some("PBL: dynamic or end-user range that should not send mail directly"),
            _ => None,
        },
        "dbl.spamhaus.org" => match last {
            2 => Some("spam domain"),
            4 => Some("phishing domain"),
            5 => Some("malware domain"),
            6 => Some("botnet C&C domain"),
            102..=106 => Some("abused legitimate domain"),
            _ => None,
        },
        "multi.uribl.com" => Some(match last {
            2 => "black: spam domain",
            4 => "grey: bulk sender domain",
            8 => "red: newly seen in spam",
            _ => "listed",
        }),
        _ => None,
    }
}

/// Outcome of checking subjects against lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlocklistReport {
    /// `(subject, zone, codes, reason)` for every listing on a trustworthy list.
    pub listings: Vec<(String, String, Vec<Ipv4Addr>, Option<String>)>,
    /// Lists whose answers were not usable, with why.
    pub unusable: Vec<(String, String)>,
    /// Lists that answered usably.
    pub usable: Vec<String>,
    /// What is wrong or notable.
    pub findings: Findings,
}

/// Check every subject against every list.
pub async fn check(
    dns: &Dns,
    kind: ListKind,
    subjects: &[String],
    zones: &[String],
    test_lists: bool,
) -> Result<BlocklistReport, DnsFailure> {
    let mut report = BlocklistReport::default();
    let mut good_zones = Vec::new();
    for z in zones {
        let problem = if test_lists {
            list_problem(dns, kind, z).await?
        } else {
            None
        };
        match problem {
            Some(p) => {
                report.findings.warn("blocklist_unusable", p.clone());
                report.unusable.push((z.clone(), p));
            }
            None => good_zones.push(z.clone()),
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for (i, s) in subjects.iter().enumerate() {
        for (j, z) in good_zones.iter().enumerate() {
            let (dns, s, z) = (dns.clone(), s.clone(), z.clone());
            set.spawn(async move { (i, j, lookup(&dns, kind, &s, &z).await, s, z) });
        }
    }
    let mut answers = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, j, v, s, z) = joined.map_err(|e| DnsFailure {
            name: String::new(),
            rtype: "A".into(),
            reason: format!("lookup task failed: {e}"),
        })?;
        answers.push((i, j, v?, s, z));
    }
    answers.sort_by_key(|(i, j, ..)| (*i, *j));
    let mut refused_zones: Vec<String> = Vec::new();
    for (_, _, v, s, z) in answers {
        match v {
            Verdict::Clear => {}
            Verdict::Listed { codes, reason } => {
                let meaning = codes
                    .iter()
                    .filter_map(|c| code_meaning(&z, *c))
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut msg = format!("{s} is listed on {z} (return code {})", codes_text(&codes));
                if !meaning.is_empty() {
                    msg.push_str(&format!(", {meaning}"));
                }
                if let Some(r) = &reason {
                    msg.push_str(&format!(": {r}"));
                }
                msg.push_str(" — mail from it is likely to be blocked; follow the list's delisting procedure");
                report.findings.fail("blocklist_listed", msg);
                report.listings.push((s, z, codes, reason));
            }
            Verdict::Refused { codes } => {
                report.findings.warn(
                    "blocklist_refused",
                    format!(
                        "{z} refused the query about {s} (answered {}): no verdict from this list",
                        codes_text(&codes)
                    ),
                );
                if !refused_zones.contains(&z) {
                    refused_zones.push(z);
                }
            }
        }
    }
    report.usable = good_zones
        .into_iter()
        .filter(|z| !refused_zones.contains(z))
        .collect();
    Ok(report)
}

fn default_ip_zones() -> Vec<String> {
    DEFAULT_IP_ZONES.iter().map(|s| s.to_string()).collect()
}

fn default_domain_zones() -> Vec<String> {
    DEFAULT_DOMAIN_ZONES.iter().map(|s| s.to_string()).collect()
}

fn default_true() -> bool {
    true
}

/// Params of `dns.blocklist_ip`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlocklistIpParams {
    /// The IPs your mail leaves from (your ESP's dedicated IPs, or your own MTA's), IPv4 or IPv6.
    pub ips: Vec<String>,
    /// The IP blocklist zones to ask (RFC 5782 DNSBLs).
    #[serde(default = "default_ip_zones")]
    pub zones: Vec<String>,
    /// First check each list against its RFC 5782 §5 test entries (127.0.0.2 listed, 127.0.0.1
    /// not) and ignore, with a warning, lists that fail it.
    #[serde(default = "default_true")]
    pub test_lists: bool,
    /// Nameservers to ask, as `ip` or `ip:port`. Empty: the ones in `/etc/resolv.conf`, else
    /// 1.1.1.1 and 8.8.8.8 (large lists such as Spamhaus refuse public resolvers: use your own).
    #[serde(default)]
    pub nameservers: Vec<String>,
}

/// Params of `dns.blocklist_domain`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlocklistDomainParams {
    /// The sending domains and the domains your links point to (tracking, landing pages).
    pub domains: Vec<String>,
    /// The domain/URI blocklist zones to ask.
    #[serde(default = "default_domain_zones")]
    pub zones: Vec<String>,
    /// First check each list against its RFC 5782 §5 test entries (`test` listed, `invalid`
    /// not) and ignore, with a warning, lists that fail it.
    #[serde(default = "default_true")]
    pub test_lists: bool,
    /// Nameservers to ask, as `ip` or `ip:port`. Empty: the ones in `/etc/resolv.conf`, else
    /// 1.1.1.1 and 8.8.8.8 (large lists such as Spamhaus refuse public resolvers: use your own).
    #[serde(default)]
    pub nameservers: Vec<String>,
}

struct BlocklistProbe {
    kind: ListKind,
    subjects: Vec<String>,
    zones: Vec<String>,
    test_lists: bool,
    nameservers: Vec<String>,
}

#[async_trait]
impl Probe for BlocklistProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let dns = Dns::from_param(&self.nameservers, ctx.timeout()).await?;
        let r = check(
            &dns,
            self.kind,
            &self.subjects,
            &self.zones,
            self.test_lists,
        )
        .await?;
        if r.usable.is_empty() {
            return Err(ProbeError::permanent(format!(
                "no blocklist gave a usable answer: {}",
                if r.unusable.is_empty() {
                    r.findings.messages(crate::findings::Level::Warn).join("; ")
                } else {
                    r.unusable
                        .iter()
                        .map(|(_, p)| p.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            )));
        }
        let what = if self.kind == ListKind::Ip {
            "IP"
        } else {
            "domain"
        };
        let summary = if r.listings.is_empty() {
            format!(
                "{} {what}(s) checked on {} list(s): not listed",
                self.subjects.len(),
                r.usable.len()
            )
        } else {
            format!(
                "{} listing(s) of {} {what}(s) on {} list(s)",
                r.listings.len(),
                self.subjects.len(),
                r.usable.len()
            )
        };
        let mut m = measurement(Some(r.listings.len() as f64), "count", summary, &r.findings);
        for z in &self.zones {
            let state = match r.unusable.iter().find(|(u, _)| u == z) {
                Some((_, p)) => format!("unusable: {p}"),
                None if r.usable.contains(z) => "answered".to_string(),
                None => "refused some queries".to_string(),
            };
            m = m.with_evidence(format!("list.{z}"), state);
        }
        for (s, z, codes, reason) in &r.listings {
            m = m.with_evidence(
                format!("listed.{s}.{z}"),
                format!(
                    "{}{}",
                    codes_text(codes),
                    reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            );
        }
        Ok(m.with_evidence("nameservers", dns.servers()))
    }
}

fn check_zones(zones: &[String]) -> Result<Vec<String>, ProbeError> {
    if zones.is_empty() {
        return Err(ProbeError::params(
            "`zones`: name at least one blocklist zone",
        ));
    }
    zones.iter().map(|z| validate_domain("zones", z)).collect()
}

/// `dns.blocklist_ip`: sending IPs on DNS blocklists.
pub fn ip_factory() -> impl ProbeFactory {
    TypedFactory::<BlocklistIpParams, _>::new(
        "dns.blocklist_ip",
        "Sending IPs on DNS blocklists (RFC 5782): number of listings across the configured lists, each naming the list, its return code and reason; FAIL when listed",
        "count",
        |p: BlocklistIpParams| {
            if p.ips.is_empty() {
                return Err(ProbeError::params("`ips`: name at least one sending ip"));
            }
            let mut ips = Vec::new();
            for ip in &p.ips {
                let parsed: IpAddr = ip.trim().parse().map_err(|_| {
                    ProbeError::params(format!("`ips`: `{ip}` is not an ip address"))
                })?;
                ips.push(parsed.to_string());
            }
            parse_nameservers(&p.nameservers)?;
            Ok(Arc::new(BlocklistProbe {
                kind: ListKind::Ip,
                subjects: ips,
                zones: check_zones(&p.zones)?,
                test_lists: p.test_lists,
                nameservers: p.nameservers,
            }) as Arc<dyn Probe>)
        },
    )
}

/// `dns.blocklist_domain`: sending and link domains on domain/URI blocklists.
pub fn domain_factory() -> impl ProbeFactory {
    TypedFactory::<BlocklistDomainParams, _>::new(
        "dns.blocklist_domain",
        "Sending and link domains on domain/URI blocklists (e.g. Spamhaus DBL, URIBL): number of listings, each naming the list, its return code and reason; FAIL when listed",
        "count",
        |p: BlocklistDomainParams| {
            if p.domains.is_empty() {
                return Err(ProbeError::params("`domains`: name at least one domain"));
            }
            let domains = p
                .domains
                .iter()
                .map(|d| validate_domain("domains", d))
                .collect::<Result<Vec<_>, _>>()?;
            parse_nameservers(&p.nameservers)?;
            Ok(Arc::new(BlocklistProbe {
                kind: ListKind::Domain,
                subjects: domains,
                zones: check_zones(&p.zones)?,
                test_lists: p.test_lists,
                nameservers: p.nameservers,
            }) as Arc<dyn Probe>)
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn query_names_follow_rfc_5782() {
        assert_eq!(
            query_name(ListKind::Ip, "192.0.2.99", "bl.example").unwrap(),
            "99.2.0.192.bl.example"
        );
        assert!(
            query_name(ListKind::Ip, "2001:db8::1", "bl.example")
                .unwrap()
                .ends_with(".8.b.d.0.1.0.0.2.bl.example")
        );
        assert_eq!(
            query_name(ListKind::Domain, "Example.COM", "dbl.example").unwrap(),
            "example.com.dbl.example"
        );
        assert!(query_name(ListKind::Ip, "nope", "bl.example").is_err());
    }

    #[test]
    fn refusal_codes_are_not_listings() {
        assert!(is_refusal(ListKind::Ip, Ipv4Addr::new(127, 255, 255, 254)));
        assert!(is_refusal(ListKind::Ip, Ipv4Addr::new(127, 0, 0, 1)));
        assert!(is_refusal(ListKind::Ip, Ipv4Addr::new(10, 0, 0, 2)));
        assert!(!is_refusal(ListKind::Ip, Ipv4Addr::new(127, 0, 0, 2)));
        assert!(is_refusal(ListKind::Domain, Ipv4Addr::new(127, 0, 1, 255)));
        assert!(!is_refusal(ListKind::Domain, Ipv4Addr::new(127, 0, 1, 2)));
        assert_eq!(
            code_meaning("zen.spamhaus.org", Ipv4Addr::new(127, 0, 0, 11)),
            Some("PBL: dynamic or end-user range that should not send mail directly")
        );
    }
}
