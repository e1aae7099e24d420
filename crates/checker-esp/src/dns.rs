//! DNS access for the ESP probes: a hickory resolver pointed at configurable nameservers (never
//! the operating system's stub), with answers that keep the distinction the email RFCs care
//! about — records, an empty answer (NODATA) or a name that does not exist (NXDOMAIN) — apart
//! from failures to get an answer at all (timeout, SERVFAIL, refused), which make a probe ERROR.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use funnelgate_checker_sdk::ProbeError;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

/// Public resolvers used when neither the params nor `/etc/resolv.conf` name any nameserver.
pub const PUBLIC_NAMESERVERS: [&str; 2] = ["1.1.1.1:53", "8.8.8.8:53"];

/// The longest a single DNS query may take before it is retried or given up.
const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// The most CNAMEs followed from the name asked to its records. A longer chain, or one that
/// comes back to a name already on it, is a failure to get an answer (a temporary error for
/// the email RFCs), never "no record".
pub const MAX_CNAME_CHAIN: usize = 8;

/// What a query found, with negative answers kept apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<T> {
    /// At least one record of the asked type (after following CNAMEs).
    Records(Vec<T>),
    /// The name exists but has no record of that type (NOERROR, empty answer).
    NoData,
    /// The name does not exist (NXDOMAIN).
    NxDomain,
}

impl<T> Answer<T> {
    /// The records, or an empty list for a negative answer.
    pub fn records(self) -> Vec<T> {
        match self {
            Answer::Records(r) => r,
            Answer::NoData | Answer::NxDomain => Vec::new(),
        }
    }

    /// NXDOMAIN or an empty answer: what RFC 7208 calls a void lookup.
    pub fn is_void(&self) -> bool {
        match self {
            Answer::Records(r) => r.is_empty(),
            Answer::NoData | Answer::NxDomain => true,
        }
    }
}

/// One TXT record: its character-strings as received (RFC 1035 §3.3.14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxtRecord {
    /// The character-strings, each at most 255 octets on the wire.
    pub chunks: Vec<Vec<u8>>,
}

impl TxtRecord {
    /// The record's payload: its strings joined without separators (RFC 7208 §3.3, RFC 6376
    /// §3.6.2.2), or `None` when it is not valid UTF-8.
    pub fn text(&self) -> Option<String> {
        String::from_utf8(self.chunks.concat()).ok()
    }
}

/// A DNS query that got no usable answer: the probe cannot measure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("dns query {rtype} {name} failed: {reason}")]
pub struct DnsFailure {
    /// The name queried.
    pub name: String,
    /// The record type queried.
    pub rtype: String,
    /// Why there was no answer.
    pub reason: String,
}

impl DnsFailure {
    /// The same failure, saying what the query was for (`include:_spf.example.com of
    /// example.com`).
    pub fn during(mut self, what: impl std::fmt::Display) -> Self {
        self.reason = format!("{} (while looking up {what})", self.reason);
        self
    }
}

impl From<DnsFailure> for ProbeError {
    fn from(f: DnsFailure) -> Self {
        ProbeError::transient(f.to_string())
    }
}

/// Normalise a domain the way every probe compares them: lowercase, no trailing dot, surrounding
/// whitespace removed.
pub fn normalize(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Check that a configured domain is a plausible DNS name (params validation, no I/O).
pub fn validate_domain(field: &str, domain: &str) -> Result<String, ProbeError> {
    let d = normalize(domain);
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        });
    if ok {
        Ok(d)
    } else {
        Err(ProbeError::params(format!(
            "`{field}`: `{domain}` is not a valid domain name"
        )))
    }
}

/// Parse the `nameservers` param: `ip`, `ip:port` or `[ipv6]:port`; port 53 when omitted.
pub fn parse_nameservers(list: &[String]) -> Result<Vec<SocketAddr>, ProbeError> {
    list.iter()
        .map(|s| {
            let s = s.trim();
            if let Ok(sa) = s.parse::<SocketAddr>() {
                return Ok(sa);
            }
            if let Ok(ip) = s.parse::<IpAddr>() {
                return Ok(SocketAddr::new(ip, 53));
            }
            Err(ProbeError::params(format!(
                "`nameservers`: `{s}` is not an ip address or ip:port (e.g. `127.0.0.1:5353`)"
            )))
        })
        .collect()
}

/// Nameservers from `/etc/resolv.conf`, or the public ones when it names none.
pub async fn system_nameservers() -> Vec<SocketAddr> {
    let text = tokio::fs::read_to_string("/etc/resolv.conf")
        .await
        .unwrap_or_default();
    let mut found: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| {
            rest.trim()
                .split('%')
                .next()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if found.is_empty() {
        found = PUBLIC_NAMESERVERS
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
    }
    found
}

/// A resolver for one probe run.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    servers: Vec<SocketAddr>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("servers", &self.servers)
            .finish()
    }
}

impl Dns {
    /// A resolver asking exactly these nameservers (UDP, falling back to TCP on truncation).
    /// `budget` is the probe's whole timeout; one query gets a fraction of it.
    pub fn new(servers: Vec<SocketAddr>, budget: Duration) -> Result<Dns, ProbeError> {
        let configs = servers
            .iter()
            .map(|sa| {
                let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
                for c in &mut ns.connections {
                    c.port = sa.port();
                }
                ns
            })
            .collect();
        let config = ResolverConfig::from_parts(None, Vec::new(), configs);
        let mut opts = ResolverOpts::default();
        opts.timeout = (budget / 4).clamp(Duration::from_millis(200), MAX_QUERY_TIMEOUT);
        opts.attempts = 2;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.edns0 = true;
        opts.preserve_intermediates = true;
        opts.num_concurrent_reqs = 1;
        let resolver = hickory_resolver::Resolver::builder_with_config(
            config,
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .map_err(|e| ProbeError::permanent(format!("cannot build a dns resolver: {e}")))?;
        Ok(Dns { resolver, servers })
    }

    /// A resolver for the `nameservers` param: those servers, or the system's when empty.
    pub async fn from_param(nameservers: &[String], budget: Duration) -> Result<Dns, ProbeError> {
        let servers = if nameservers.is_empty() {
            system_nameservers().await
        } else {
            parse_nameservers(nameservers)?
        };
        Dns::new(servers, budget)
    }

    /// The nameservers asked, for evidence.
    pub fn servers(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    async fn query(&self, name: &str, rtype: RecordType) -> Result<Answer<RData>, DnsFailure> {
        Ok(self.query_full(name, rtype).await?.0)
    }

    /// A query and the aliases (CNAME targets, in order) followed to answer it.
    async fn query_full(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> Result<(Answer<RData>, Vec<String>), DnsFailure> {
        let fail = |reason: String| DnsFailure {
            name: name.to_string(),
            rtype: rtype.to_string(),
            reason,
        };
        let parsed = dns_name(name).map_err(fail)?;
        match self.resolver.lookup(parsed.clone(), rtype).await {
            Ok(lookup) => {
                let aliases: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::CNAME(c) if rtype != RecordType::CNAME => Some(name_text(&c.0)),
                        _ => None,
                    })
                    .collect();
                if aliases.len() > MAX_CNAME_CHAIN {
                    return Err(fail(format!(
                        "the cname chain from {} is {} aliases long, more than the {MAX_CNAME_CHAIN} followed: {}",
                        normalize(name),
                        aliases.len(),
                        aliases.join(" -> ")
                    )));
                }
                let rdata: Vec<RData> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect();
                if rdata.is_empty() {
                    return self.confirm_no_data(&parsed, rtype, &fail).await;
                }
                Ok((Answer::Records(rdata), aliases))
            }
            Err(e) if e.is_nx_domain() => Ok((Answer::NxDomain, Vec::new())),
            Err(e) if e.is_no_records_found() => self.confirm_no_data(&parsed, rtype, &fail).await,
            Err(e) => Err(fail(describe(&e))),
        }
    }

    /// The resolver found no record of the type: it stops following CNAMEs after a few hops and
    /// then reports an empty answer, which a CNAME loop or an over-long chain also produce.
    /// Walk the chain one CNAME query at a time: a loop or a chain longer than
    /// [`MAX_CNAME_CHAIN`] is a failure; a chain that ends is asked again at its end.
    async fn confirm_no_data(
        &self,
        name: &Name,
        rtype: RecordType,
        fail: &impl Fn(String) -> DnsFailure,
    ) -> Result<(Answer<RData>, Vec<String>), DnsFailure> {
        if rtype == RecordType::CNAME {
            return Ok((Answer::NoData, Vec::new()));
        }
        let mut chain: Vec<Name> = vec![name.clone()];
        let show = |chain: &[Name]| chain.iter().map(name_text).collect::<Vec<_>>().join(" -> ");
        loop {
            let Some(current) = chain.last().cloned() else {
                return Ok((Answer::NoData, Vec::new()));
            };
            let next = match self
                .resolver
                .lookup(current.clone(), RecordType::CNAME)
                .await
            {
                Ok(l) => l.answers().iter().find_map(|r| match &r.data {
                    RData::CNAME(c) if r.name == current => Some(c.0.clone()),
                    _ => None,
                }),
                Err(e) if e.is_no_records_found() => None,
                Err(e) => {
                    return Err(fail(format!(
                        "following the cname chain {}: CNAME query for {} failed: {}",
                        show(&chain),
                        name_text(&current),
                        describe(&e)
                    )));
                }
            };
            let Some(next) = next else { break };
            if chain.contains(&next) {
                chain.push(next);
                return Err(fail(format!("cname loop: {}", show(&chain))));
            }
            chain.push(next);
            if chain.len() - 1 > MAX_CNAME_CHAIN {
                return Err(fail(format!(
                    "the cname chain is longer than the {MAX_CNAME_CHAIN} aliases followed: {}",
                    show(&chain)
                )));
            }
        }
        let aliases: Vec<String> = chain[1..].iter().map(name_text).collect();
        let Some(end) = chain.last().filter(|_| chain.len() > 1).cloned() else {
            return Ok((Answer::NoData, aliases));
        };
        // The chain ends: ask its last name directly (the resolver may have stopped short).
        match self.resolver.lookup(end, rtype).await {
            Ok(l) => {
                let rdata: Vec<RData> = l
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect();
                Ok(if rdata.is_empty() {
                    (Answer::NoData, aliases)
                } else {
                    (Answer::Records(rdata), aliases)
                })
            }
            Err(e) if e.is_nx_domain() => Ok((Answer::NxDomain, aliases)),
            Err(e) if e.is_no_records_found() => Ok((Answer::NoData, aliases)),
            Err(e) => Err(fail(format!(
                "at the end of the cname chain {}: {}",
                show(&chain),
                describe(&e)
            ))),
        }
    }

    /// The alias target when `name` is a CNAME (one CNAME query, not followed further).
    pub async fn cname(&self, name: &str) -> Result<Option<String>, DnsFailure> {
        Ok(match self.query(name, RecordType::CNAME).await? {
            Answer::Records(r) => r.into_iter().find_map(|r| match r {
                RData::CNAME(c) => Some(name_text(&c.0)),
                _ => None,
            }),
            Answer::NoData | Answer::NxDomain => None,
        })
    }

    /// TXT records at `name`.
    pub async fn txt(&self, name: &str) -> Result<Answer<TxtRecord>, DnsFailure> {
        Ok(map(self.query(name, RecordType::TXT).await?, |r| match r {
            RData::TXT(t) => Some(TxtRecord {
                chunks: t.txt_data.iter().map(|c| c.to_vec()).collect(),
            }),
            _ => None,
        }))
    }

    /// A records at `name`.
    pub async fn a(&self, name: &str) -> Result<Answer<IpAddr>, DnsFailure> {
        Ok(map(self.query(name, RecordType::A).await?, |r| match r {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        }))
    }

    /// AAAA records at `name`.
    pub async fn aaaa(&self, name: &str) -> Result<Answer<IpAddr>, DnsFailure> {
        Ok(map(
            self.query(name, RecordType::AAAA).await?,
            |r| match r {
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            },
        ))
    }

    /// A and AAAA records at `name`: NXDOMAIN if the name does not exist, NODATA if it has
    /// neither.
    pub async fn addresses(&self, name: &str) -> Result<Answer<IpAddr>, DnsFailure> {
        let mut out = match self.a(name).await? {
            Answer::NxDomain => return Ok(Answer::NxDomain),
            a => a.records(),
        };
        out.extend(self.aaaa(name).await?.records());
        out.sort();
        Ok(if out.is_empty() {
            Answer::NoData
        } else {
            Answer::Records(out)
        })
    }

    /// Like [`Dns::addresses`], with the aliases (CNAME targets) followed to reach them.
    pub async fn addresses_with_aliases(
        &self,
        name: &str,
    ) -> Result<(Answer<IpAddr>, Vec<String>), DnsFailure> {
        let (a, mut aliases) = self.query_full(name, RecordType::A).await?;
        if a == Answer::NxDomain {
            return Ok((Answer::NxDomain, aliases));
        }
        let (aaaa, aliases6) = self.query_full(name, RecordType::AAAA).await?;
        if aliases.is_empty() {
            aliases = aliases6;
        }
        let mut out: Vec<IpAddr> = map(a, |r| match r {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .records();
        out.extend(
            map(aaaa, |r| match r {
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .records(),
        );
        out.sort();
        Ok((
            if out.is_empty() {
                Answer::NoData
            } else {
                Answer::Records(out)
            },
            aliases,
        ))
    }

    /// MX records at `name` as `(preference, exchange)`; the exchange is lowercase without its
    /// trailing dot, and `"."` for the root (a null MX, RFC 7505).
    pub async fn mx(&self, name: &str) -> Result<Answer<(u16, String)>, DnsFailure> {
        Ok(map(self.query(name, RecordType::MX).await?, |r| match r {
            RData::MX(mx) => {
                let ex = if mx.exchange.is_root() {
                    ".".to_string()
                } else {
                    name_text(&mx.exchange)
                };
                Some((mx.preference, ex))
            }
            _ => None,
        }))
    }

    /// PTR records for an address (the reverse name is built here).
    pub async fn ptr(&self, ip: IpAddr) -> Result<Answer<String>, DnsFailure> {
        Ok(map(
            self.query(&reverse_name(ip), RecordType::PTR).await?,
            |r| match r {
                RData::PTR(p) => Some(name_text(&p.0)),
                _ => None,
            },
        ))
    }
}

/// A name as text: its labels as received (raw octets, no presentation-format escapes),
/// lowercase, no trailing dot.
fn name_text(n: &Name) -> String {
    let labels: Vec<String> = n
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    normalize(&labels.join("."))
}

/// A query name: the usual text form, or else its labels taken as raw octets (DNS labels may
/// hold any octet: names built by SPF macros can contain `%`, `:` or spaces).
fn dns_name(name: &str) -> Result<Name, String> {
    let n = normalize(name);
    Name::from_ascii(format!("{n}."))
        .or_else(|_| Name::from_labels(n.split('.').map(str::as_bytes)))
        .map_err(|e| format!("not a valid dns name: {e}"))
}

/// Whether `name` can be asked at all: labels of 1 to 63 octets, at most 253 in all.
pub fn is_queryable(name: &str) -> bool {
    let n = normalize(name);
    !n.is_empty() && n.len() <= 253 && dns_name(&n).is_ok()
}

fn map<T>(a: Answer<RData>, f: impl Fn(RData) -> Option<T>) -> Answer<T> {
    match a {
        Answer::Records(r) => {
            let v: Vec<T> = r.into_iter().filter_map(f).collect();
            if v.is_empty() {
                Answer::NoData
            } else {
                Answer::Records(v)
            }
        }
        Answer::NoData => Answer::NoData,
        Answer::NxDomain => Answer::NxDomain,
    }
}

fn describe(e: &NetError) -> String {
    match e {
        NetError::Timeout => "no answer before the timeout".to_string(),
        NetError::Dns(DnsError::ResponseCode(code)) => {
            let name = match code {
                ResponseCode::ServFail => "SERVFAIL",
                ResponseCode::Refused => "REFUSED",
                ResponseCode::FormErr => "FORMERR",
                ResponseCode::NotImp => "NOTIMP",
                other => other.to_str(),
            };
            format!(
                "the nameserver answered {name} (rcode {})",
                u16::from(*code)
            )
        }
        other => other.to_string(),
    }
}

/// The reverse-lookup name of an address: `4.3.2.1.in-addr.arpa` or the nibble form under
/// `ip6.arpa` (RFC 3596 §2.5).
pub fn reverse_name(ip: IpAddr) -> String {
    format!(
        "{}.{}",
        reversed_labels(ip),
        if ip.is_ipv4() {
            "in-addr.arpa"
        } else {
            "ip6.arpa"
        }
    )
}

/// An address's labels in reverse order, as DNS blocklists (RFC 5782 §2.1, §2.4) and reverse
/// zones expect them: `4.3.2.1` for 1.2.3.4, 32 nibbles for IPv6.
pub fn reversed_labels(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut nibbles = Vec::with_capacity(32);
            for b in v6.octets().iter().rev() {
                nibbles.push(format!("{:x}", b & 0x0f));
                nibbles.push(format!("{:x}", b >> 4));
            }
            nibbles.join(".")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_follow_rfc_5782() {
        assert_eq!(reversed_labels("192.0.2.99".parse().unwrap()), "99.2.0.192");
        assert_eq!(
            reverse_name("203.0.113.5".parse().unwrap()),
            "5.113.0.203.in-addr.arpa"
        );
        let v6 = reversed_labels("2001:db8:1:2:3:4:567:89ab".parse().unwrap());
        assert_eq!(
            v6,
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"
        );
    }

    #[test]
    fn nameservers_accept_ip_and_port() {
        let ns =
            parse_nameservers(&["127.0.0.1:5353".into(), "::1".into(), "[::1]:54".into()]).unwrap();
        assert_eq!(ns[0].port(), 5353);
        assert_eq!(ns[1].port(), 53);
        assert_eq!(ns[2].port(), 54);
        assert!(parse_nameservers(&["dns.google".into()]).is_err());
    }

    #[test]
    fn domains_are_normalised_and_checked() {
        assert_eq!(
            validate_domain("domain", " Example.COM. ").unwrap(),
            "example.com"
        );
        assert!(validate_domain("domain", "exa mple.com").is_err());
        assert!(validate_domain("domain", "").is_err());
        assert!(validate_domain("domain", "a..b").is_err());
    }

    #[test]
    fn txt_payload_joins_strings() {
        let t = TxtRecord {
            chunks: vec![b"v=spf1 ".to_vec(), b"-all".to_vec()],
        };
        assert_eq!(t.text().unwrap(), "v=spf1 -all");
        assert!(
            TxtRecord {
                chunks: vec![vec![0xff, 0xfe]]
            }
            .text()
            .is_none()
        );
    }
}
