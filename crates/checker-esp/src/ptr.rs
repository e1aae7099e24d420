//! Reverse DNS of the sending IPs: each needs a PTR record whose name resolves back to the same
//! IP (forward-confirmed reverse DNS, FCrDNS). Gmail and Yahoo require it of every sender;
//! Yahoo also asks that the name be meaningful rather than a generic, IP-derived one.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeFactory, TypedFactory};
use funnelgate_core::Measurement;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dns::{Answer, Dns, DnsFailure, parse_nameservers};
use crate::findings::{Findings, Level, measurement};

/// Outcome for one IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PtrReport {
    /// The IP.
    pub ip: IpAddr,
    /// Its PTR names.
    pub names: Vec<String>,
    /// The PTR names that resolve back to the IP.
    pub confirmed: Vec<String>,
    /// What is wrong or notable.
    pub findings: Findings,
}

impl PtrReport {
    /// Whether reverse DNS is forward-confirmed.
    pub fn ok(&self) -> bool {
        !self.confirmed.is_empty()
    }
}

const GENERIC_WORDS: [&str; 10] = [
    "dynamic",
    "dyn",
    "dhcp",
    "pool",
    "dsl",
    "adsl",
    "cable",
    "ppp",
    "dialup",
    "broadband",
];

/// Whether a PTR name looks generic: it spells out the IP, or uses an access-network word.
pub fn looks_generic(name: &str, ip: IpAddr) -> bool {
    let name = name.to_ascii_lowercase();
    let spelled: Vec<String> = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let fwd = [o[0], o[1], o[2], o[3]].map(|x| x.to_string());
            let rev = [o[3], o[2], o[1], o[0]].map(|x| x.to_string());
            vec![
                fwd.join("-"),
                fwd.join("."),
                rev.join("-"),
                rev.join("."),
                fwd.concat(),
            ]
        }
        IpAddr::V6(_) => Vec::new(),
    };
    spelled.iter().any(|s| name.contains(s.as_str()))
        || name
            .split(['.', '-'])
            .any(|label| GENERIC_WORDS.contains(&label))
}

/// Check one IP's reverse DNS.
pub async fn check_ip(dns: &Dns, ip: IpAddr) -> Result<PtrReport, DnsFailure> {
    let mut r = PtrReport {
        ip,
        names: Vec::new(),
        confirmed: Vec::new(),
        findings: Findings::default(),
    };
    r.names = match dns.ptr(ip).await? {
        Answer::Records(n) => n,
        Answer::NoData | Answer::NxDomain => {
            r.findings.fail(
                "ptr_missing",
                format!("{ip} has no reverse DNS (PTR) record: Gmail and Yahoo reject or junk mail from such IPs — ask your ESP or hosting provider to set one"),
            );
            return Ok(r);
        }
    };
    for name in r.names.clone() {
        let back = match dns.addresses(&name).await? {
            Answer::Records(a) => a,
            _ => Vec::new(),
        };
        if back.contains(&ip) {
            r.confirmed.push(name);
        } else if back.is_empty() {
            r.findings.fail("ptr_not_confirmed", format!("{ip} points to {name}, which has no address: reverse DNS is not forward-confirmed"));
        } else {
            let addrs = back
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            r.findings.fail(
                "ptr_not_confirmed",
                format!("{ip} points to {name}, but {name} resolves to {addrs}, not back to {ip}: reverse DNS is not forward-confirmed"),
            );
        }
    }
    if r.ok() {
        // One confirmed name is enough; the others were tried and are only worth a note.
        let failures: Vec<String> = r.findings.0.drain(..).map(|f| f.message).collect();
        for m in failures {
            r.findings.info("ptr_extra_name", m);
        }
        if r.names.len() > 1 {
            r.findings.info(
                "ptr_multiple",
                format!("{ip} has {} PTR records; one is usual", r.names.len()),
            );
        }
        if r.confirmed.iter().all(|n| looks_generic(n, ip)) {
            r.findings.warn(
                "ptr_generic",
                format!("the reverse DNS name {} of {ip} looks generic (derived from the IP or an access network): Yahoo asks for a meaningful name", r.confirmed[0]),
            );
        }
    }
    Ok(r)
}

/// Params of `dns.ptr`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PtrParams {
    /// The IPs your mail leaves from (your ESP's dedicated IPs, or your own MTA's), IPv4 or IPv6.
    pub ips: Vec<String>,
    /// Nameservers to ask, as `ip` or `ip:port` (e.g. `127.0.0.1:5353`). Empty: the ones in
    /// `/etc/resolv.conf`, else 1.1.1.1 and 8.8.8.8.
    #[serde(default)]
    pub nameservers: Vec<String>,
}

struct PtrProbe {
    ips: Vec<IpAddr>,
    nameservers: Vec<String>,
}

#[async_trait]
impl Probe for PtrProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let dns = Dns::from_param(&self.nameservers, ctx.timeout()).await?;
        let mut f = Findings::default();
        let mut evidence = Vec::new();
        let mut failing = 0;
        for ip in &self.ips {
            let r = check_ip(&dns, *ip).await?;
            if r.findings.worst() == Some(Level::Fail) {
                failing += 1;
            }
            let state = if r.ok() {
                format!("{} (forward-confirmed)", r.confirmed.join(", "))
            } else if r.names.is_empty() {
                "no PTR".to_string()
            } else {
                format!("{} (not forward-confirmed)", r.names.join(", "))
            };
            evidence.push((format!("ptr.{ip}"), state));
            f.extend(r.findings);
        }
        let summary = if failing == 0 {
            format!(
                "reverse DNS of {} sending IP(s) is forward-confirmed",
                self.ips.len()
            )
        } else {
            format!(
                "{failing} of {} sending IP(s) lack forward-confirmed reverse DNS",
                self.ips.len()
            )
        };
        let m = measurement(Some(failing as f64), "count", summary, &f);
        Ok(evidence
            .into_iter()
            .fold(m, |m, (k, v)| m.with_evidence(k, v))
            .with_evidence("nameservers", dns.servers()))
    }
}

/// `dns.ptr`: PTR and forward-confirmed reverse DNS of the sending IPs.
pub fn factory() -> impl ProbeFactory {
    TypedFactory::<PtrParams, _>::new(
        "dns.ptr",
        "Reverse DNS of the sending IPs: a PTR record whose name resolves back to the IP (FCrDNS), as Gmail and Yahoo require; value is the number of IPs failing",
        "count",
        |p: PtrParams| {
            if p.ips.is_empty() {
                return Err(ProbeError::params("`ips`: name at least one sending ip"));
            }
            let ips = p
                .ips
                .iter()
                .map(|s| {
                    s.trim().parse::<IpAddr>().map_err(|_| {
                        ProbeError::params(format!("`ips`: `{s}` is not an ip address"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            parse_nameservers(&p.nameservers)?;
            Ok(Arc::new(PtrProbe {
                ips,
                nameservers: p.nameservers,
            }) as Arc<dyn Probe>)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_names() {
        let ip: IpAddr = "203.0.113.13".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!(looks_generic("203-0-113-13.dynamic.example.net", ip));
        assert!(looks_generic("13.113.0.203.example.net", ip));
        assert!(looks_generic("host.pool.example.net", ip));
        assert!(!looks_generic("mail.example.com", ip));
        assert!(!looks_generic("o1.email.example.com", ip));
    }
}
