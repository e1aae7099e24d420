//! RFC 7208 `check_host()`: does an IP pass a domain's SPF policy?
//!
//! Where [`crate::spf`] audits a record without a sender (like checkdmarc), this evaluates it
//! the way a receiver does for one connecting IP, a MAIL FROM and a HELO: record selection
//! (§4.4, §4.5), the strict term grammar (§12), mechanisms in order (§5), `redirect` and `exp`
//! (§6), the 10-lookup and 2-void-lookup limits and the 10-MX/10-PTR limits (§4.6.4), and
//! full macro expansion (§7). The result is one of RFC 7208's seven (§2.6), with the term
//! that decided it. Verified against the RFC 7208 conformance suite (pyspf's
//! `rfc7208-tests.yml`, see `tests/spf_conformance.rs`); deliberate differences are in
//! `docs/deliverability-disagreements.md`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::dns::{Answer, Dns, DnsFailure, is_queryable, normalize};

/// RFC 7208 §4.6.4: at most 10 terms that cause DNS queries.
pub const MAX_DNS_LOOKUPS: u32 = 10;
/// RFC 7208 §4.6.4: at most 2 void lookups.
pub const MAX_VOID_LOOKUPS: u32 = 2;
/// RFC 7208 §4.6.4: an `mx` mechanism may look at most 10 MX hosts up; `ptr` uses the first 10
/// names.
const MAX_NAMES: usize = 10;

/// The seven results of `check_host()` (RFC 7208 §2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpfResult {
    /// No SPF record (or the domain is malformed or does not exist).
    None,
    /// The record makes no statement about the IP.
    Neutral,
    /// The IP is authorised.
    Pass,
    /// The IP is not authorised.
    Fail,
    /// The IP is probably not authorised.
    SoftFail,
    /// A DNS failure while evaluating: receivers try again later (or defer the mail).
    TempError,
    /// The record cannot be interpreted (syntax, limits): receivers treat it as broken.
    PermError,
}

impl SpfResult {
    /// The RFC's word: `pass`, `fail`, `softfail`, `neutral`, `none`, `permerror`, `temperror`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }

    fn from_qualifier(q: char) -> SpfResult {
        match q {
            '-' => SpfResult::Fail,
            '~' => SpfResult::SoftFail,
            '?' => SpfResult::Neutral,
            _ => SpfResult::Pass,
        }
    }
}

impl std::fmt::Display for SpfResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is sending: the connecting IP and the SMTP identities that macros expand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The connecting client's address.
    pub ip: IpAddr,
    /// The MAIL FROM address (`local@domain`); empty for a bounce (then `postmaster@<helo>`).
    pub sender: String,
    /// The HELO/EHLO name.
    pub helo: String,
    /// The receiving host's name, for the `%{r}` macro of explanations.
    pub receiver: String,
}

/// The outcome of `check_host()` for one IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// The result.
    pub result: SpfResult,
    /// The term that decided it, as written (`ip4:192.0.2.0/24`, `-all`,
    /// `include:_spf.example.net`); `None` for the default result (no term matched) and for
    /// errors raised before any term matched.
    pub mechanism: Option<String>,
    /// The domain whose record holds that term (an include or redirect target, or the domain).
    pub record_domain: Option<String>,
    /// The expanded `exp` explanation, for a `fail` whose record has one that resolves.
    pub explanation: Option<String>,
    /// Why the result is none, neutral by default, permerror or temperror.
    pub reason: Option<String>,
    /// DNS-querying terms evaluated.
    pub dns_lookups: u32,
    /// Void lookups (NXDOMAIN or no records) met.
    pub void_lookups: u32,
}

/// `check_host()` for an identity's MAIL FROM (or, for a bounce, its HELO) domain: what a
/// receiver computes for the envelope sender (RFC 7208 §2.4).
pub async fn check_mail_from(dns: &Dns, id: &Identity) -> Evaluation {
    let (_, domain) = split_sender(&id.sender, &id.helo);
    check_host(dns, id, &domain).await
}

/// `check_host(<ip>, <domain>, <sender>)` (RFC 7208 §4).
pub async fn check_host(dns: &Dns, id: &Identity, domain: &str) -> Evaluation {
    let (local, sender_domain) = split_sender(&id.sender, &id.helo);
    let ip = match id.ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let mut ev = Evaluator {
        dns,
        ip,
        local,
        sender_domain,
        helo: id.helo.clone(),
        receiver: if id.receiver.is_empty() {
            "unknown".to_string()
        } else {
            id.receiver.clone()
        },
        lookups: 0,
        voids: 0,
        validated: None,
    };
    let domain = domain.trim_end_matches('.').to_string();
    let outcome = ev.check(&domain, 0).await;
    let (result, mechanism, record_domain, explanation, reason) = match outcome {
        Ok(o) => (o.result, o.mechanism, o.domain, o.explanation, o.reason),
        Err(Abort::Temp(r)) => (SpfResult::TempError, None, None, None, Some(r)),
        Err(Abort::Perm(r)) => (SpfResult::PermError, None, None, None, Some(r)),
    };
    Evaluation {
        result,
        mechanism,
        record_domain,
        explanation,
        reason,
        dns_lookups: ev.lookups,
        void_lookups: ev.voids,
    }
}

/// (local part, domain) of the sender: `postmaster` when the local part is empty, the HELO
/// when the MAIL FROM is empty (§4.3, §2.4).
fn split_sender(sender: &str, helo: &str) -> (String, String) {
    let s = sender.trim();
    if s.is_empty() {
        return ("postmaster".to_string(), helo.trim().to_string());
    }
    match s.rsplit_once('@') {
        Some((l, d)) => (
            if l.is_empty() {
                "postmaster".to_string()
            } else {
                l.to_string()
            },
            d.to_string(),
        ),
        None => ("postmaster".to_string(), s.to_string()),
    }
}

enum Abort {
    Temp(String),
    Perm(String),
}

impl From<DnsFailure> for Abort {
    fn from(f: DnsFailure) -> Self {
        Abort::Temp(f.to_string())
    }
}

struct Outcome {
    result: SpfResult,
    mechanism: Option<String>,
    domain: Option<String>,
    explanation: Option<String>,
    reason: Option<String>,
}

// ------------------------------------------------------------------ the record grammar (§12)

#[derive(Clone, Debug, PartialEq, Eq)]
enum Mechanism {
    All,
    Include(String),
    A(Option<String>, u8, u8),
    Mx(Option<String>, u8, u8),
    Ptr(Option<String>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Directive {
    qualifier: char,
    mechanism: Mechanism,
    text: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Record {
    directives: Vec<Directive>,
    redirect: Option<String>,
    exp: Option<String>,
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic())
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '-' | '_' | '.'))
}

/// Check a macro-string (§7.1): visible ASCII with well-formed macros. `exp_letters` allows
/// `c`, `r` and `t` (explanation text only).
fn check_macro_string(s: &str, exp_letters: bool) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c != b'%' {
            let visible = (0x21..=0x7e).contains(&c) || (exp_letters && c == b' ');
            if !visible {
                return Err(format!("invalid character {:?} in {s}", c as char));
            }
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'%' | b'_' | b'-') => i += 2,
            Some(b'{') => {
                let close = s[i..]
                    .find('}')
                    .map(|k| i + k)
                    .ok_or_else(|| format!("unterminated macro in {s}"))?;
                let body = &s[i + 2..close];
                let mut chars = body.chars();
                let letter = chars
                    .next()
                    .ok_or_else(|| format!("empty macro in {s}"))?
                    .to_ascii_lowercase();
                if !"slodiphvcrt".contains(letter) {
                    return Err(format!("unknown macro letter {letter} in {s}"));
                }
                if !exp_letters && "crt".contains(letter) {
                    return Err(format!(
                        "the macro letter {letter} is only allowed in exp text (RFC 7208 §7.2): {s}"
                    ));
                }
                let rest = chars.as_str();
                let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
                if digits > 0 && rest[..digits].parse::<u128>().ok() == Some(0) {
                    return Err(format!("a macro keeps at least one label: {s}"));
                }
                let mut tail = &rest[digits..];
                if let Some(t) = tail.strip_prefix(['r', 'R']) {
                    tail = t;
                }
                if !tail.chars().all(|c| ".-+,/_=".contains(c)) {
                    return Err(format!("invalid macro transformer or delimiter in {s}"));
                }
                i = close + 1;
            }
            _ => return Err(format!("a % must be followed by {{, %, _ or - (in {s})")),
        }
    }
    Ok(())
}

fn is_toplabel(l: &str) -> bool {
    let b = l.as_bytes();
    if b.is_empty() || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-') {
        return false;
    }
    if !l.contains('-') {
        return b.iter().any(|c| c.is_ascii_alphabetic());
    }
    b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A domain-spec (§12): a macro-string ending in `.toplabel[.]` or a macro.
fn check_domain_spec(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty domain-spec".to_string());
    }
    check_macro_string(s, false)?;
    if s.ends_with('}') || s.ends_with("%%") || s.ends_with("%_") || s.ends_with("%-") {
        return Ok(());
    }
    let t = s.strip_suffix('.').unwrap_or(s);
    match t.rsplit_once('.') {
        Some((_, top)) if is_toplabel(top) => Ok(()),
        _ => Err(format!(
            "{s} does not end in a valid top-level label (RFC 7208 §12)"
        )),
    }
}

fn cidr(digits: &str, max: u8) -> Result<u8, String> {
    let ok = !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    match digits.parse::<u8>() {
        Ok(n) if ok && n <= max => Ok(n),
        _ => Err(format!("invalid cidr prefix length /{digits}")),
    }
}

/// Split `domain-spec[/n][//m]` (the domain-spec may itself contain `/`).
fn split_dual_cidr(v: &str) -> Result<(&str, u8, u8), String> {
    let mut rest = v;
    let mut v6 = 128;
    let mut v4 = 32;
    if let Some(i) = rest.rfind("//") {
        let d = &rest[i + 2..];
        if d.bytes().all(|c| c.is_ascii_digit()) {
            v6 = cidr(d, 128)?;
            rest = &rest[..i];
        }
    }
    if let Some(i) = rest.rfind('/') {
        let d = &rest[i + 1..];
        if d.bytes().all(|c| c.is_ascii_digit()) {
            v4 = cidr(d, 32)?;
            rest = &rest[..i];
        }
    }
    Ok((rest, v4, v6))
}

fn parse_mechanism(name: &str, arg: Option<&str>, term: &str) -> Result<Mechanism, String> {
    let need = |what: &str| format!("{name} needs {what}: {term}");
    match name.to_ascii_lowercase().as_str() {
        "all" => match arg {
            None => Ok(Mechanism::All),
            Some(_) => Err(format!("all takes no value: {term}")),
        },
        "include" | "exists" => {
            let d = arg
                .and_then(|a| a.strip_prefix(':'))
                .ok_or_else(|| need("a domain"))?;
            check_domain_spec(d)?;
            Ok(if name.eq_ignore_ascii_case("include") {
                Mechanism::Include(d.to_string())
            } else {
                Mechanism::Exists(d.to_string())
            })
        }
        "a" | "mx" => {
            let (domain, v4, v6) = match arg {
                None => (None, 32, 128),
                Some(a) => {
                    let (d, v4, v6) = split_dual_cidr(a)?;
                    let domain = match d.strip_prefix(':') {
                        Some(spec) => {
                            check_domain_spec(spec)?;
                            Some(spec.to_string())
                        }
                        None if d.is_empty() => None,
                        None => return Err(format!("invalid {name} mechanism: {term}")),
                    };
                    (domain, v4, v6)
                }
            };
            Ok(if name.eq_ignore_ascii_case("a") {
                Mechanism::A(domain, v4, v6)
            } else {
                Mechanism::Mx(domain, v4, v6)
            })
        }
        "ptr" => match arg {
            None => Ok(Mechanism::Ptr(None)),
            Some(a) => {
                let spec = a
                    .strip_prefix(':')
                    .ok_or_else(|| format!("invalid ptr mechanism: {term}"))?;
                check_domain_spec(spec)?;
                Ok(Mechanism::Ptr(Some(spec.to_string())))
            }
        },
        "ip4" => {
            let v = arg
                .and_then(|a| a.strip_prefix(':'))
                .ok_or_else(|| need("an address"))?;
            let (addr, len) = match v.split_once('/') {
                Some((a, l)) => (a, cidr(l, 32)?),
                None => (v, 32),
            };
            let ip: Ipv4Addr = addr
                .parse()
                .map_err(|_| format!("invalid ipv4 address in {term}"))?;
            Ok(Mechanism::Ip4(ip, len))
        }
        "ip6" => {
            let v = arg
                .and_then(|a| a.strip_prefix(':'))
                .ok_or_else(|| need("an address"))?;
            let (addr, len) = match v.split_once('/') {
                Some((a, l)) => (a, cidr(l, 128)?),
                None => (v, 128),
            };
            let ip: Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("invalid ipv6 address in {term}"))?;
            Ok(Mechanism::Ip6(ip, len))
        }
        _ => Err(format!("unknown mechanism {name}: {term}")),
    }
}

/// Parse a record strictly by RFC 7208 §12 (any error is a permerror, §4.6).
fn parse(record: &str) -> Result<Record, String> {
    if !record.is_ascii() {
        return Err("the record contains non-ascii characters".to_string());
    }
    let rest = &record[6..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err("v=spf1 must be followed by a space".to_string());
    }
    let mut r = Record::default();
    for term in rest.split(' ').filter(|t| !t.is_empty()) {
        // A modifier: name "=" macro-string.
        if let Some((name, value)) = term.split_once('=')
            && is_name(name)
        {
            match name.to_ascii_lowercase().as_str() {
                "redirect" => {
                    if r.redirect.is_some() {
                        return Err("more than one redirect modifier (RFC 7208 §6)".into());
                    }
                    check_domain_spec(value)?;
                    r.redirect = Some(value.to_string());
                }
                "exp" => {
                    if r.exp.is_some() {
                        return Err("more than one exp modifier (RFC 7208 §6)".into());
                    }
                    check_domain_spec(value)?;
                    r.exp = Some(value.to_string());
                }
                _ => check_macro_string(value, false)?,
            }
            continue;
        }
        let (qualifier, body) = match term.chars().next() {
            Some(q @ ('+' | '-' | '~' | '?')) => (q, &term[1..]),
            _ => ('+', term),
        };
        let split = body.find([':', '/']).unwrap_or(body.len());
        let (name, arg) = (&body[..split], &body[split..]);
        if !is_name(name) {
            return Err(format!("{term} is not a valid term"));
        }
        let mechanism = parse_mechanism(name, (!arg.is_empty()).then_some(arg), term)?;
        r.directives.push(Directive {
            qualifier,
            mechanism,
            text: term.to_string(),
        });
    }
    Ok(r)
}

fn is_spf(text: &[u8]) -> bool {
    text.len() >= 6
        && text[..6].eq_ignore_ascii_case(b"v=spf1")
        && (text.len() == 6 || text[6] == b' ')
}

/// §4.3: a domain that cannot be looked up (a label over 63 octets, an empty label, a single
/// label, an address literal) gives `none`.
fn is_valid_domain(d: &str) -> bool {
    let d = d.strip_suffix('.').unwrap_or(d);
    let labels: Vec<&str> = d.split('.').collect();
    labels.len() >= 2
        && d.len() <= 253
        && labels.iter().all(|l| !l.is_empty() && l.len() <= 63)
        && !d.starts_with('[')
        && labels
            .last()
            .is_some_and(|t| !t.bytes().all(|c| c.is_ascii_digit()))
}

fn in_net(ip: IpAddr, m: &Mechanism) -> bool {
    match (ip, m) {
        (IpAddr::V4(a), Mechanism::Ip4(n, len)) => same_v4(a, *n, *len),
        (IpAddr::V6(a), Mechanism::Ip6(n, len)) => same_v6(a, *n, *len),
        _ => false,
    }
}

fn same_v4(a: Ipv4Addr, b: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    };
    u32::from(a) & mask == u32::from(b) & mask
}

fn same_v6(a: Ipv6Addr, b: Ipv6Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    };
    u128::from(a) & mask == u128::from(b) & mask
}

// ------------------------------------------------------------------ evaluation (§4.6, §5, §6)

struct Evaluator<'a> {
    dns: &'a Dns,
    ip: IpAddr,
    local: String,
    sender_domain: String,
    helo: String,
    receiver: String,
    lookups: u32,
    voids: u32,
    validated: Option<String>,
}

type BoxFut<'s, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 's>>;

impl Evaluator<'_> {
    fn count_lookup(&mut self, term: &str) -> Result<(), Abort> {
        self.lookups += 1;
        if self.lookups > MAX_DNS_LOOKUPS {
            return Err(Abort::Perm(format!(
                "more than {MAX_DNS_LOOKUPS} DNS-querying terms (RFC 7208 §4.6.4), exceeded at {term}"
            )));
        }
        Ok(())
    }

    fn note_void<T>(&mut self, a: &Answer<T>, what: &str) -> Result<(), Abort> {
        if a.is_void() {
            self.voids += 1;
            if self.voids > MAX_VOID_LOOKUPS {
                return Err(Abort::Perm(format!(
                    "more than {MAX_VOID_LOOKUPS} void lookups (RFC 7208 §4.6.4), exceeded at {what}"
                )));
            }
        }
        Ok(())
    }

    async fn addresses(&mut self, name: &str, what: &str) -> Result<Vec<IpAddr>, Abort> {
        let a = if self.ip.is_ipv4() {
            self.dns.a(name).await
        } else {
            self.dns.aaaa(name).await
        }
        .map_err(|e| Abort::Temp(e.during(what).to_string()))?;
        self.note_void(&a, what)?;
        Ok(a.records())
    }

    fn check<'s>(&'s mut self, domain: &'s str, depth: u32) -> BoxFut<'s, Result<Outcome, Abort>> {
        Box::pin(async move {
            let none = |reason: String| Outcome {
                result: SpfResult::None,
                mechanism: None,
                domain: Some(domain.to_string()),
                explanation: None,
                reason: Some(reason),
            };
            if !is_valid_domain(domain) {
                return Ok(none(format!(
                    "{domain} is not a valid domain name (RFC 7208 §4.3)"
                )));
            }
            if depth > 2 * MAX_DNS_LOOKUPS {
                return Err(Abort::Perm("include/redirect nesting too deep".into()));
            }
            let records = match self.dns.txt(domain).await.map_err(|e| {
                Abort::Temp(
                    e.during(format_args!("the SPF record of {domain}"))
                        .to_string(),
                )
            })? {
                Answer::NxDomain => {
                    return Ok(none(format!("the domain {domain} does not exist")));
                }
                Answer::NoData => return Ok(none(format!("{domain} has no TXT records"))),
                Answer::Records(r) => r,
            };
            let spf: Vec<Vec<u8>> = records
                .iter()
                .map(|r| r.chunks.concat())
                .filter(|t| is_spf(t))
                .collect();
            let text = match spf.as_slice() {
                [] => return Ok(none(format!("{domain} has no SPF record"))),
                [one] => one,
                _ => {
                    return Err(Abort::Perm(format!(
                        "{domain} publishes {} SPF records (RFC 7208 §4.5)",
                        spf.len()
                    )));
                }
            };
            let text = String::from_utf8(text.clone())
                .map_err(|_| Abort::Perm(format!("the SPF record of {domain} is not ascii")))?;
            let record = parse(&text).map_err(|e| {
                Abort::Perm(format!(
                    "the SPF record of {domain} has a syntax error: {e}"
                ))
            })?;
            self.evaluate(&record, domain, depth).await
        })
    }

    async fn evaluate(
        &mut self,
        record: &Record,
        domain: &str,
        depth: u32,
    ) -> Result<Outcome, Abort> {
        for d in &record.directives {
            if self.matches(&d.mechanism, &d.text, domain, depth).await? {
                let result = SpfResult::from_qualifier(d.qualifier);
                let explanation = if result == SpfResult::Fail {
                    self.explain(record, domain).await
                } else {
                    None
                };
                return Ok(Outcome {
                    result,
                    mechanism: Some(d.text.clone()),
                    domain: Some(domain.to_string()),
                    explanation,
                    reason: None,
                });
            }
        }
        let has_all = record
            .directives
            .iter()
            .any(|d| d.mechanism == Mechanism::All);
        if let (Some(target), false) = (&record.redirect, has_all) {
            let term = format!("redirect={target}");
            self.count_lookup(&term)?;
            let name = self.expand_domain(target, domain).await?;
            let mut o = self.check(&name, depth + 1).await?;
            if o.result == SpfResult::None {
                return Err(Abort::Perm(format!(
                    "the redirect target {name} of {domain} has no SPF record (RFC 7208 §6.1): {}",
                    o.reason.unwrap_or_default()
                )));
            }
            if o.mechanism.is_none() && o.reason.is_none() {
                o.reason = Some(format!("redirected from {domain}"));
            }
            return Ok(o);
        }
        Ok(Outcome {
            result: SpfResult::Neutral,
            mechanism: None,
            domain: Some(domain.to_string()),
            explanation: None,
            reason: Some(format!(
                "no term of the record of {domain} matched: the default result is neutral (RFC 7208 §4.7)"
            )),
        })
    }

    async fn matches(
        &mut self,
        m: &Mechanism,
        term: &str,
        domain: &str,
        depth: u32,
    ) -> Result<bool, Abort> {
        let what = format!("{term} in the SPF record of {domain}");
        match m {
            Mechanism::All => Ok(true),
            Mechanism::Ip4(..) | Mechanism::Ip6(..) => Ok(in_net(self.ip, m)),
            Mechanism::Include(spec) => {
                self.count_lookup(term)?;
                let target = self.expand_domain(spec, domain).await?;
                let o = self.check(&target, depth + 1).await?;
                match o.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::None => Err(Abort::Perm(format!(
                        "the include target {target} of {domain} has no SPF record (RFC 7208 §5.2): {}",
                        o.reason.unwrap_or_default()
                    ))),
                    // fail, softfail, neutral (errors come back as Err)
                    _ => Ok(false),
                }
            }
            Mechanism::A(spec, v4, v6) => {
                self.count_lookup(term)?;
                let target = match spec {
                    Some(s) => self.expand_domain(s, domain).await?,
                    None => domain.to_string(),
                };
                if !is_queryable(&target) {
                    return Ok(false);
                }
                let addrs = self.addresses(&target, &what).await?;
                Ok(self.any_in(&addrs, *v4, *v6))
            }
            Mechanism::Mx(spec, v4, v6) => {
                self.count_lookup(term)?;
                let target = match spec {
                    Some(s) => self.expand_domain(s, domain).await?,
                    None => domain.to_string(),
                };
                if !is_queryable(&target) {
                    return Ok(false);
                }
                let mx = self
                    .dns
                    .mx(&target)
                    .await
                    .map_err(|e| Abort::Temp(e.during(&what).to_string()))?;
                self.note_void(&mx, &what)?;
                let hosts: Vec<String> = mx
                    .records()
                    .into_iter()
                    .map(|(_, h)| h)
                    .filter(|h| h != ".")
                    .collect();
                if hosts.len() > MAX_NAMES {
                    return Err(Abort::Perm(format!(
                        "{target} has {} MX hosts; an mx mechanism may look up at most {MAX_NAMES} (RFC 7208 §4.6.4): {what}",
                        hosts.len()
                    )));
                }
                for h in hosts {
                    let addrs = self
                        .addresses(&h, &format!("the MX host {h} of {what}"))
                        .await?;
                    if self.any_in(&addrs, *v4, *v6) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                self.count_lookup(term)?;
                let target = match spec {
                    Some(s) => self.expand_domain(s, domain).await?,
                    None => domain.to_string(),
                };
                let names = self.validated_names(Some(&target)).await?;
                Ok(!names.is_empty())
            }
            Mechanism::Exists(spec) => {
                self.count_lookup(term)?;
                let target = self.expand_domain(spec, domain).await?;
                if !is_queryable(&target) {
                    return Ok(false);
                }
                let a = self
                    .dns
                    .a(&target)
                    .await
                    .map_err(|e| Abort::Temp(e.during(&what).to_string()))?;
                self.note_void(&a, &what)?;
                Ok(!a.is_void())
            }
        }
    }

    fn any_in(&self, addrs: &[IpAddr], v4: u8, v6: u8) -> bool {
        addrs.iter().any(|a| match (self.ip, a) {
            (IpAddr::V4(ip), IpAddr::V4(n)) => same_v4(ip, *n, v4),
            (IpAddr::V6(ip), IpAddr::V6(n)) => same_v6(ip, *n, v6),
            _ => false,
        })
    }

    /// The validated names of the IP (§5.5): its PTR names (the first 10) whose addresses
    /// include it, restricted to `target` and its subdomains when given. DNS errors skip a
    /// name (or, for the PTR query, make the list empty), as §5.5 requires.
    async fn validated_names(&mut self, target: Option<&str>) -> Result<Vec<String>, Abort> {
        let names = match self.dns.ptr(self.ip).await {
            Ok(a) => {
                self.note_void(&a, "the ptr mechanism's PTR query")?;
                a.records()
            }
            Err(_) => Vec::new(),
        };
        let target = target.map(normalize);
        let mut out = Vec::new();
        for n in names.into_iter().take(MAX_NAMES) {
            let n = normalize(&n);
            if let Some(t) = &target
                && !(n == *t || n.ends_with(&format!(".{t}")))
            {
                continue;
            }
            let addrs = match self.ip {
                IpAddr::V4(_) => self.dns.a(&n).await,
                IpAddr::V6(_) => self.dns.aaaa(&n).await,
            };
            if let Ok(a) = addrs
                && a.records().contains(&self.ip)
            {
                out.push(n);
            }
        }
        Ok(out)
    }

    async fn explain(&mut self, record: &Record, domain: &str) -> Option<String> {
        let spec = record.exp.as_ref()?;
        let name = self.expand_domain(spec, domain).await.ok()?;
        let txt = self.dns.txt(&name).await.ok()?.records();
        let [one] = txt.as_slice() else {
            return None;
        };
        let text = one.text()?;
        if !text.is_ascii() || check_macro_string(&text, true).is_err() {
            return None;
        }
        self.expand(&text, domain, true).await.ok()
    }

    /// Expand a domain-spec and make it a query name: at most 253 characters, dropping
    /// labels from the left (§7.3), no trailing dot.
    async fn expand_domain(&mut self, spec: &str, domain: &str) -> Result<String, Abort> {
        let mut s = self.expand(spec, domain, false).await?;
        if s.ends_with('.') {
            s.pop();
        }
        while s.len() > 253 {
            match s.split_once('.') {
                Some((_, rest)) => s = rest.to_string(),
                None => break,
            }
        }
        Ok(s)
    }

    /// Macro expansion (§7.3).
    async fn expand(&mut self, s: &str, domain: &str, exp: bool) -> Result<String, Abort> {
        check_macro_string(s, exp).map_err(Abort::Perm)?;
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            match after.as_bytes().first() {
                Some(b'%') => {
                    out.push('%');
                    rest = &after[1..];
                }
                Some(b'_') => {
                    out.push(' ');
                    rest = &after[1..];
                }
                Some(b'-') => {
                    out.push_str("%20");
                    rest = &after[1..];
                }
                _ => {
                    let close = after.find('}').unwrap_or(after.len());
                    let body = &after[1..close];
                    out.push_str(&self.macro_value(body, domain).await);
                    rest = after.get(close + 1..).unwrap_or("");
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    async fn macro_value(&mut self, body: &str, domain: &str) -> String {
        let mut chars = body.chars();
        let letter = chars.next().unwrap_or('d');
        let rest = chars.as_str();
        let digits_len = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        let keep: Option<usize> = rest[..digits_len]
            .parse::<u128>()
            .ok()
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let mut tail = &rest[digits_len..];
        let reverse = if let Some(t) = tail.strip_prefix(['r', 'R']) {
            tail = t;
            true
        } else {
            false
        };
        let delimiters: Vec<char> = if tail.is_empty() {
            vec!['.']
        } else {
            tail.chars().collect()
        };
        let value = match letter.to_ascii_lowercase() {
            's' => format!("{}@{}", self.local, self.sender_domain),
            'l' => self.local.clone(),
            'o' => self.sender_domain.clone(),
            'd' => domain.to_string(),
            'i' => match self.ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => v6
                    .octets()
                    .iter()
                    .flat_map(|b| [b >> 4, b & 0x0f])
                    .map(|n| format!("{n:x}"))
                    .collect::<Vec<_>>()
                    .join("."),
            },
            'c' => self.ip.to_string(),
            'p' => {
                if self.validated.is_none() {
                    let v = self.p_macro(domain).await;
                    self.validated = Some(v);
                }
                self.validated.clone().unwrap_or_else(|| "unknown".into())
            }
            'v' => if self.ip.is_ipv4() { "in-addr" } else { "ip6" }.to_string(),
            'h' => self.helo.clone(),
            'r' => self.receiver.clone(),
            't' => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                .to_string(),
            _ => String::new(),
        };
        let mut parts: Vec<&str> = value.split(|c| delimiters.contains(&c)).collect();
        if reverse {
            parts.reverse();
        }
        if let Some(n) = keep
            && n < parts.len()
        {
            parts = parts.split_off(parts.len() - n);
        }
        let joined = parts.join(".");
        if letter.is_ascii_uppercase() {
            url_escape(&joined)
        } else {
            joined
        }
    }

    /// `%{p}` (§7.3): a validated name of the IP, preferring the domain itself, then one of
    /// its subdomains, then any; `unknown` when none validates.
    async fn p_macro(&mut self, domain: &str) -> String {
        let names = self.validated_names(None).await.unwrap_or_default();
        let d = normalize(domain);
        names
            .iter()
            .find(|n| **n == d)
            .or_else(|| names.iter().find(|n| n.ends_with(&format!(".{d}"))))
            .or_else(|| names.first())
            .cloned()
            .unwrap_or_else(|| "unknown".to_string())
    }
}

/// RFC 3986 escaping of everything outside the unreserved set (§7.3: uppercase macros).
fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn grammar_is_strict() {
        assert!(parse("v=spf1 ip4:192.0.2.0/24 a mx/24 -all").is_ok());
        assert!(parse("v=spf1 a:foo.example.com/24//64 ~all").is_ok());
        assert!(parse("v=spf1 -mx:%%%_/.Clara.de/27").is_ok());
        assert_eq!(
            split_dual_cidr(":%%%_/.Clara.de/27").unwrap(),
            (":%%%_/.Clara.de", 27, 128)
        );
        assert!(parse("v=spf1 ip4:1.2.3.4/032").is_err());
        assert!(parse("v=spf1 a:museum").is_err());
        assert!(parse("v=spf1 a:foo.example.123").is_err());
        assert!(parse("v=spf1 -all:x").is_err());
        assert!(parse("v=spf1 redirect=a.example redirect=b.example").is_err());
        assert!(parse("v=spf1 exists:%{c}.example.com").is_err());
        assert!(parse("v=spf1 foo=%{x}").is_err());
        assert!(parse("v=spf1 foo=bar -all").is_ok());
        assert!(parse("v=spf1 =all").is_err());
        assert!(parse("v=spf1 ip6::CAFE::BABE").is_err());
    }

    #[test]
    fn cidr_matching() {
        let n: Ipv4Addr = "192.0.2.0".parse().unwrap();
        assert!(same_v4("192.0.2.77".parse().unwrap(), n, 24));
        assert!(!same_v4("192.0.3.1".parse().unwrap(), n, 24));
        assert!(same_v4("10.0.0.1".parse().unwrap(), n, 0));
        let n6: Ipv6Addr = "2001:db8::".parse().unwrap();
        assert!(same_v6("2001:db8::1".parse().unwrap(), n6, 32));
        assert!(!same_v6("2001:db9::1".parse().unwrap(), n6, 32));
    }

    #[test]
    fn senders_and_escapes() {
        assert_eq!(
            split_sender("", "mail.example.com"),
            ("postmaster".into(), "mail.example.com".into())
        );
        assert_eq!(
            split_sender("@example.net", "h"),
            ("postmaster".into(), "example.net".into())
        );
        assert_eq!(url_escape("~jack&jill=up"), "~jack%26jill%3Dup");
        assert!(!is_valid_domain("A2345678"));
        assert!(!is_valid_domain("[1.2.3.5]"));
        assert!(!is_valid_domain("a...example.com"));
        assert!(is_valid_domain("example.com."));
    }
}
