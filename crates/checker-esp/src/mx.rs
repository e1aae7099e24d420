//! MX of a sending domain: where replies and bounces go. A null MX (`0 .`, RFC 7505) says the
//! domain accepts no mail, and RFC 7505 §4 lets receivers reject mail whose envelope or From
//! uses such a domain — fine for a parked domain, a failure for a sending one.

use std::net::IpAddr;

use crate::dns::{Answer, Dns, DnsFailure, normalize};
use crate::findings::Findings;

/// One MX host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxHost {
    /// Preference (lower first).
    pub preference: u16,
    /// Host name.
    pub host: String,
    /// Its A/AAAA addresses.
    pub addresses: Vec<IpAddr>,
    /// The alias the host name points to, when it is a CNAME (RFC 2181 §10.3 forbids it).
    pub cname: Option<String>,
    /// Why the record is not a usable MX (an IP address literal instead of a host name).
    pub invalid: Option<String>,
}

/// The outcome of checking a domain's MX.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxReport {
    /// The domain checked.
    pub domain: String,
    /// Only a null MX is published.
    pub null_mx: bool,
    /// The hosts, by preference.
    pub hosts: Vec<MxHost>,
    /// What is wrong or notable.
    pub findings: Findings,
}

impl MxReport {
    /// Hosts with at least one address.
    pub fn usable_hosts(&self) -> usize {
        self.hosts
            .iter()
            .filter(|h| !h.addresses.is_empty())
            .count()
    }
}

/// Check a domain's MX records. `allow_null_mx`: the domain is not meant to receive mail
/// (parked, or send-only by design) and a null MX is what you want.
pub async fn check(dns: &Dns, domain: &str, allow_null_mx: bool) -> Result<MxReport, DnsFailure> {
    let domain = normalize(domain);
    let mut f = Findings::default();
    let mut report = MxReport {
        domain: domain.clone(),
        null_mx: false,
        hosts: Vec::new(),
        findings: Findings::default(),
    };
    let records = match dns.mx(&domain).await? {
        Answer::NxDomain => {
            f.fail(
                "mx_domain_missing",
                format!("the domain {domain} does not exist"),
            );
            report.findings = f;
            return Ok(report);
        }
        Answer::NoData => Vec::new(),
        Answer::Records(r) => r,
    };
    if records.is_empty() {
        match dns.addresses(&domain).await? {
            Answer::Records(a) => f.warn(
                "mx_implicit",
                format!(
                    "{domain} has no MX record, so mail to it falls back to its address {} (RFC 5321 §5.1): publish an MX for replies and bounces",
                    a[0]
                ),
            ),
            _ => f.fail(
                "mx_missing",
                format!("{domain} has neither MX nor address records: replies and bounces cannot be delivered, and receivers may reject its mail"),
            ),
        }
        report.findings = f;
        return Ok(report);
    }
    let roots: Vec<u16> = records
        .iter()
        .filter(|(_, h)| h == ".")
        .map(|(p, _)| *p)
        .collect();
    for p in roots.iter().filter(|p| **p != 0) {
        f.warn("mx_malformed_null", format!("the MX record '{p} .' of {domain} is malformed: a root target is only valid as a null MX with preference 0"));
    }
    if roots.contains(&0) {
        if records.len() > 1 {
            f.warn(
                "mx_null_with_others",
                format!("{domain} publishes a null MX next to other MX records; RFC 7505 §3 requires the null MX to be alone"),
            );
        } else {
            report.null_mx = true;
            if allow_null_mx {
                f.info(
                    "mx_null",
                    format!("{domain} publishes a null MX: it accepts no mail (as configured)"),
                );
            } else {
                f.fail(
                    "mx_null",
                    format!(
                        "{domain} publishes a null MX (RFC 7505): it accepts no mail, so receivers may reject mail sent from it — use a domain that can receive replies and bounces"
                    ),
                );
            }
            report.findings = f;
            return Ok(report);
        }
    }
    let mut named: Vec<(u16, String)> = records.into_iter().filter(|(_, h)| h != ".").collect();
    named.sort();
    let mut seen: Vec<String> = Vec::new();
    for (pref, host) in named {
        if seen.contains(&host) {
            f.warn(
                "mx_duplicate_host",
                format!("the MX host {host} is listed more than once for {domain}"),
            );
            continue;
        }
        seen.push(host.clone());
        if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
            let reason = format!(
                "the MX target {host} is an IP address literal, not a host name (RFC 5321 §5.1, RFC 1035 §3.3.9): senders do not deliver to it"
            );
            f.warn(
                "mx_ip_literal",
                format!("invalid MX record '{pref} {host}' of {domain}: {reason}"),
            );
            report.hosts.push(MxHost {
                preference: pref,
                host,
                addresses: Vec::new(),
                cname: None,
                invalid: Some(reason),
            });
            continue;
        }
        let (addresses, aliases) = dns
            .addresses_with_aliases(&host)
            .await
            .map_err(|e| e.during(format_args!("the MX host {host} of {domain}")))?;
        let cname = aliases.first().cloned();
        if let Some(target) = &cname {
            f.warn(
                "mx_cname",
                format!(
                    "the MX host {host} of {domain} is an alias (CNAME to {target}); an MX must name a host with its own address records \
                     (RFC 2181 §10.3, RFC 5321 §5.1): some senders refuse or mishandle it — point the MX at {} directly",
                    aliases.last().unwrap_or(target)
                ),
            );
        }
        let addresses = match addresses {
            Answer::Records(a) => a,
            Answer::NxDomain => {
                f.warn(
                    "mx_host_no_address",
                    format!("the MX host {host} of {domain} does not exist"),
                );
                Vec::new()
            }
            Answer::NoData => {
                f.warn(
                    "mx_host_no_address",
                    format!("the MX host {host} of {domain} has no A/AAAA records"),
                );
                Vec::new()
            }
        };
        report.hosts.push(MxHost {
            preference: pref,
            host,
            addresses,
            cname,
            invalid: None,
        });
    }
    if report.usable_hosts() == 0 {
        f.fail("mx_no_usable_host", format!("none of the MX hosts of {domain} has an address: replies and bounces cannot be delivered"));
    }
    report.findings = f;
    Ok(report)
}
