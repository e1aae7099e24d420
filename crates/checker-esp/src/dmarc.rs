//! DMARC: RFC 7489 and its successor DMARCbis (RFC 9989 policy records, RFC 9990 aggregate
//! reporting). Both generations are accepted: tags DMARCbis removed (`pct`, `rf`, `ri`) are
//! warned about, its new tags (`np`, `psd`, `t`) are understood, a missing `p` counts as
//! `p=none`, and policy discovery uses the DNS tree walk (at most 8 queries) instead of a public
//! suffix list. External report destinations (`rua`/`ruf` in another organisational domain)
//! must publish `<domain>._report._dmarc.<destination>` (RFC 7489 §7.1, RFC 9990 §4).
//!
//! Parsing is pure ([`parse_record`], [`parse_report_uri`]); only [`check`] does I/O.

use std::collections::HashMap;

use crate::dns::{Answer, Dns, DnsFailure, normalize};
use crate::findings::{Findings, Level};

/// The tags DMARCbis removed.
pub const REMOVED_TAGS: [&str; 3] = ["pct", "rf", "ri"];
/// The tags both generations define (DMARCbis set).
pub const KNOWN_TAGS: [&str; 11] = [
    "v", "p", "sp", "np", "adkim", "aspf", "fo", "psd", "t", "rua", "ruf",
];

/// A requested policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    /// Monitor only.
    None,
    /// Treat failing mail as suspicious.
    Quarantine,
    /// Reject failing mail.
    Reject,
}

impl Policy {
    fn parse(s: &str) -> Option<Policy> {
        match s {
            "none" => Some(Policy::None),
            "quarantine" => Some(Policy::Quarantine),
            "reject" => Some(Policy::Reject),
            _ => None,
        }
    }

    /// Enforcement level: 0 none, 1 quarantine, 2 reject (the probe's value).
    pub fn level(self) -> u8 {
        match self {
            Policy::None => 0,
            Policy::Quarantine => 1,
            Policy::Reject => 2,
        }
    }

    /// The tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }

    /// The next lower policy, what mail outside `pct` (RFC 7489 §6.6.4) or under `t=y`
    /// (RFC 9989) gets: reject → quarantine → none.
    pub fn lower(self) -> Policy {
        match self {
            Policy::Reject => Policy::Quarantine,
            Policy::Quarantine | Policy::None => Policy::None,
        }
    }
}

/// What a record's policy does to failing mail, for both generations of receivers: `pct`
/// (RFC 7489 §6.6.4, removed by DMARCbis) and the DMARCbis testing flag `t=y` (RFC 9989).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enforcement {
    /// The share of failing mail RFC 7489 receivers apply the policy to: `pct`, 100 when absent
    /// or not an integer from 0 to 100.
    pub pct: u8,
    /// Whether `pct` was written (and valid).
    pub pct_explicit: bool,
    /// `t=y`: the owner is testing the policy.
    pub testing: bool,
    /// The effect on RFC 7489 receivers (they ignore `t`).
    pub rfc7489: String,
    /// The effect on DMARCbis receivers (they ignore `pct`).
    pub dmarcbis: String,
}

/// The enforcement a policy gets given the record's `pct` (as written) and `t` tags.
pub fn enforcement(policy: Policy, pct: Option<&str>, t: Option<&str>) -> Enforcement {
    let parsed = pct
        .and_then(|v| v.trim().parse::<u8>().ok())
        .filter(|p| *p <= 100);
    let share = parsed.unwrap_or(100);
    let testing = t.is_some_and(|t| t.eq_ignore_ascii_case("y"));
    let p = policy.as_str();
    let lower = policy.lower().as_str();
    let rfc7489 = if policy == Policy::None {
        "no enforcement: p=none only monitors".to_string()
    } else if share == 100 {
        format!("p={p} on all failing mail")
    } else if share == 0 {
        format!("p={p} on none of the failing mail (pct=0): it gets {lower} instead")
    } else {
        format!("p={p} on {share}% of failing mail, {lower} on the rest (pct={share})")
    };
    let dmarcbis = if policy == Policy::None {
        "no enforcement: p=none only monitors".to_string()
    } else if testing {
        format!("test mode (t=y): failing mail gets {lower} instead of {p}")
    } else {
        format!("p={p} on all failing mail (pct is not part of DMARCbis)")
    };
    Enforcement {
        pct: share,
        pct_explicit: parsed.is_some(),
        testing,
        rfc7489,
        dmarcbis,
    }
}

/// Why a domain has no usable DMARC policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmarcErrorKind {
    /// No record at the domain, its organisational domain, or on the tree walk.
    NotFound,
    /// A `v=DMARC1` record at the domain itself while `_dmarc.<domain>` exists without one.
    WrongLocation,
    /// More than one DMARC record at one name: receivers discard them all.
    MultipleRecords,
    /// The record starts with whitespace.
    StartsWithWhitespace,
    /// The record does not parse.
    Syntax,
    /// A tag appears twice.
    DuplicateTag,
    /// A tag has a value the standard does not allow.
    InvalidTagValue,
    /// A `rua`/`ruf` entry is not a URI.
    InvalidReportUri,
}

impl DmarcErrorKind {
    /// Stable finding code.
    pub fn code(self) -> &'static str {
        match self {
            DmarcErrorKind::NotFound => "dmarc_not_found",
            DmarcErrorKind::WrongLocation => "dmarc_wrong_location",
            DmarcErrorKind::MultipleRecords => "dmarc_multiple_records",
            DmarcErrorKind::StartsWithWhitespace => "dmarc_starts_with_whitespace",
            DmarcErrorKind::Syntax => "dmarc_syntax_error",
            DmarcErrorKind::DuplicateTag => "dmarc_duplicate_tag",
            DmarcErrorKind::InvalidTagValue => "dmarc_invalid_tag_value",
            DmarcErrorKind::InvalidReportUri => "dmarc_invalid_report_uri",
        }
    }
}

/// A DMARC problem that leaves the domain without a usable policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DmarcError {
    /// The class of error.
    pub kind: DmarcErrorKind,
    /// What happened.
    pub message: String,
}

fn err(kind: DmarcErrorKind, message: impl Into<String>) -> DmarcError {
    DmarcError {
        kind,
        message: message.into(),
    }
}

/// A parsed `rua`/`ruf` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportUri {
    /// Lowercase scheme, e.g. `mailto`.
    pub scheme: String,
    /// The mailbox for `mailto`, the whole URI otherwise.
    pub address: String,
    /// The obsolete `!size` suffix, if any.
    pub size_limit: Option<String>,
}

/// A record that parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedRecord {
    /// Effective tag values (explicit ones lowercased except `rua`/`ruf`, defaults filled in),
    /// by tag.
    pub tags: HashMap<String, String>,
    /// Tags written in the record, in order.
    pub explicit: Vec<String>,
    /// The requested policy (`p`, `none` when missing).
    pub policy: Option<Policy>,
    /// Raw `rua` entries.
    pub rua: Option<String>,
    /// Raw `ruf` entries.
    pub ruf: Option<String>,
    /// Tags DMARCbis removed (`pct`, `rf`, `ri`) as written, for pre-DMARCbis readers.
    pub removed: HashMap<String, String>,
    /// Warnings from parsing.
    pub findings: Findings,
}

/// Whether a TXT payload is a DMARC record: `v` (either case), optional blanks, `=`, `DMARC1`
/// (exact case), then `;` or the end (RFC 9989 §4.8).
pub fn is_dmarc_record(text: &str) -> bool {
    version_len(text).is_some_and(|n| {
        // The same separators the grammar skips (whitespace, including line breaks some DNS
        // tools leave in a record), so a record that parses is always recognised as DMARC.
        let rest = text[n..].trim_start_matches(|c: char| c.is_ascii_whitespace());
        rest.is_empty() || rest.starts_with(';')
    })
}

fn version_len(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    if b.first().is_none_or(|c| *c != b'v' && *c != b'V') {
        return None;
    }
    let mut i = 1;
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    if b.get(i) != Some(&b'=') {
        return None;
    }
    i += 1;
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    text.get(i..i + 6).filter(|v| *v == "DMARC1").map(|_| i + 6)
}

fn syntax_error(record: &str, pos: usize, expected: &str) -> DmarcError {
    let (a, b) = record.split_at(pos.min(record.len()));
    err(
        DmarcErrorKind::Syntax,
        format!(
            "the DMARC record has a syntax error: expected {expected} at position {pos} (marked with ➞) in: {a}➞{b}"
        ),
    )
}

/// Split a record into its tag/value pairs per the RFC 9989 §4.8 grammar:
/// `v=DMARC1 *(sep tag=value) [sep]`, tag names letters only, values any printable ASCII but `;`.
fn grammar(record: &str) -> Result<Vec<(String, String)>, DmarcError> {
    let Some(n) = version_len(record) else {
        return Err(syntax_error(record, 0, "v=DMARC1"));
    };
    let mut pairs = vec![("v".to_string(), "DMARC1".to_string())];
    let b = record.as_bytes();
    let mut pos = n;
    let skip = |mut p: usize| {
        while p < b.len() && (b[p] as char).is_ascii_whitespace() {
            p += 1;
        }
        p
    };
    loop {
        pos = skip(pos);
        if pos >= b.len() {
            return Ok(pairs);
        }
        if b[pos] != b';' {
            return Err(syntax_error(record, pos, "; or the end of the record"));
        }
        pos = skip(pos + 1);
        if pos >= b.len() {
            return Ok(pairs);
        }
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let tag_end = pos;
        while pos < b.len() && (b[pos] == b' ' || b[pos] == b'\t') {
            pos += 1;
        }
        if tag_end == start || b.get(pos) != Some(&b'=') {
            return Err(syntax_error(record, start, "a tag=value pair"));
        }
        pos += 1;
        while pos < b.len() && (b[pos] == b' ' || b[pos] == b'\t') {
            pos += 1;
        }
        let vstart = pos;
        while pos < b.len() && (0x20..=0x7e).contains(&b[pos]) && b[pos] != b';' {
            pos += 1;
        }
        if pos == vstart {
            return Err(syntax_error(record, start, "a tag=value pair"));
        }
        pairs.push((
            record[start..tag_end].to_ascii_lowercase(),
            record[vstart..pos].trim().to_string(),
        ));
    }
}

/// Parse a DMARC record found for `domain` (no DNS). Errors are what makes receivers ignore
/// the record; everything else is a finding.
pub fn parse_record(record: &str, domain: &str) -> Result<ParsedRecord, DmarcError> {
    let record = record.trim_matches('"');
    let mut findings = Findings::default();
    let pairs = grammar(record)?;
    let mut tags: HashMap<String, String> = HashMap::new();
    let mut explicit: Vec<String> = Vec::new();
    for (tag, value) in pairs {
        if !KNOWN_TAGS.contains(&tag.as_str()) && !REMOVED_TAGS.contains(&tag.as_str()) {
            findings.warn(
                "dmarc_unknown_tag",
                format!("the unknown DMARC tag {tag} is ignored by receivers"),
            );
            continue;
        }
        if explicit.contains(&tag)
            || (REMOVED_TAGS.contains(&tag.as_str())
                && tags.contains_key(&format!("removed:{tag}")))
        {
            return Err(err(
                DmarcErrorKind::DuplicateTag,
                format!("the DMARC tag {tag} appears more than once"),
            ));
        }
        if REMOVED_TAGS.contains(&tag.as_str()) {
            tags.insert(format!("removed:{tag}"), value);
            findings.warn(
                "dmarc_removed_tag",
                format!(
                    "the {tag} tag was removed by DMARCbis (RFC 9989) and newer receivers ignore it"
                ),
            );
            continue;
        }
        let value = if tag == "rua" || tag == "ruf" {
            value
        } else {
            value.to_ascii_lowercase()
        };
        explicit.push(tag.clone());
        tags.insert(tag, value);
    }
    let removed: HashMap<String, String> = tags
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("removed:")
                .map(|t| (t.to_string(), v.clone()))
        })
        .collect();
    tags.retain(|k, _| !k.starts_with("removed:"));
    for (tag, default) in [
        ("adkim", "r"),
        ("aspf", "r"),
        ("fo", "0"),
        ("psd", "u"),
        ("t", "n"),
    ] {
        tags.entry(tag.to_string())
            .or_insert_with(|| default.to_string());
    }
    if !tags.contains_key("p") {
        tags.insert("p".into(), "none".into());
        findings.warn(
            "dmarc_p_missing",
            "the record has no p tag: DMARCbis reads that as p=none, older receivers may ignore the record",
        );
    }
    if !tags.contains_key("sp") {
        let p = tags["p"].clone();
        tags.insert("sp".into(), p);
    }
    if !tags.contains_key("np") {
        let np = if explicit.iter().any(|t| t == "sp") {
            tags["sp"].clone()
        } else {
            tags["p"].clone()
        };
        tags.insert("np".into(), np);
    }
    if explicit.iter().any(|t| t == "p") && explicit.get(1).is_some_and(|t| t != "p") {
        findings.warn(
            "dmarc_p_not_second",
            "the p tag does not directly follow v=DMARC1; DMARCbis allows any order but some older receivers require p second",
        );
    }
    if tags["p"] == "none" {
        findings.warn(
            "dmarc_p_none",
            format!("p=none only monitors: mail failing DMARC as {domain} is still delivered (move to quarantine or reject once reports are clean)"),
        );
    }
    if tags["sp"] == "none" && explicit.iter().any(|t| t == "sp") {
        findings.warn(
            "dmarc_sp_none",
            format!("sp=none leaves DMARC unenforced on subdomains of {domain}"),
        );
    }
    for tag in ["adkim", "aspf"] {
        if tags[tag] != "r" && tags[tag] != "s" {
            findings.warn(
                "dmarc_invalid_alignment",
                format!(
                    "{}={} is not valid (r or s); receivers use the default r",
                    tag, tags[tag]
                ),
            );
            tags.insert(tag.into(), "r".into());
        }
    }
    let fo: Vec<String> = tags["fo"].split(':').map(str::to_string).collect();
    if let Some(bad) = fo
        .iter()
        .find(|o| !["0", "1", "d", "s"].contains(&o.as_str()))
    {
        return Err(err(
            DmarcErrorKind::InvalidTagValue,
            format!("{bad} is not a valid option for the DMARC fo tag"),
        ));
    }
    let mut dedup = fo.clone();
    dedup.sort();
    dedup.dedup();
    if (fo.contains(&"0".to_string()) && fo.contains(&"1".to_string())) || dedup.len() != fo.len() {
        findings.warn(
            "dmarc_invalid_fo",
            format!("fo={} is invalid (0 and 1 exclude each other, no option twice); receivers use fo=0", tags["fo"]),
        );
        tags.insert("fo".into(), "0".into());
    }
    for (tag, allowed) in [
        ("p", &["none", "quarantine", "reject"][..]),
        ("sp", &["none", "quarantine", "reject"][..]),
        ("np", &["none", "quarantine", "reject"][..]),
        ("psd", &["y", "n", "u"][..]),
        ("t", &["y", "n"][..]),
    ] {
        if !allowed.contains(&tags[tag].as_str()) {
            return Err(err(
                DmarcErrorKind::InvalidTagValue,
                format!(
                    "the DMARC tag {tag} must be one of {} — not {}",
                    allowed.join(", "),
                    tags[tag]
                ),
            ));
        }
    }
    let policy = Policy::parse(&tags["p"]);
    let rua = tags.get("rua").cloned();
    let ruf = tags.get("ruf").cloned();
    Ok(ParsedRecord {
        tags,
        explicit,
        policy,
        rua,
        ruf,
        removed,
        findings,
    })
}

fn is_mailto_local(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || "-!#$%&'*+,./=?^`{|}~".contains(c)
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?#[]%".contains(c)
}

/// Parse one `rua`/`ruf` entry: `mailto:addr[!size]`, or any other URI (kept, warned about).
pub fn parse_report_uri(uri: &str) -> Result<ReportUri, DmarcError> {
    let uri = uri.trim();
    let lower = uri.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("mailto:").map(|_| &uri[7..]) {
        let chars: Vec<char> = rest.chars().collect();
        let local = chars.iter().take_while(|c| is_mailto_local(**c)).count();
        if local > 0 && chars[0] != '.' && chars.get(local) == Some(&'@') {
            let dom = chars[local + 1..]
                .iter()
                .take_while(|c| is_word(**c) || **c == '-' || **c == '.')
                .count();
            if dom > 0 {
                let address: String = chars[..local + 1 + dom].iter().collect();
                let after = &chars[local + 1 + dom..];
                let size = if after.first() == Some(&'!') {
                    let n = after[1..].iter().take_while(|c| is_word(**c)).count();
                    (n > 0).then(|| after[1..=n].iter().collect::<String>())
                } else {
                    None
                };
                return Ok(ReportUri {
                    scheme: "mailto".into(),
                    address,
                    size_limit: size,
                });
            }
        }
        return Err(err(
            DmarcErrorKind::InvalidReportUri,
            format!("{uri} is not a valid DMARC report URI"),
        ));
    }
    let scheme_len = lower.find(':').filter(|&i| {
        i > 0
            && lower.as_bytes()[0].is_ascii_alphabetic()
            && lower[..i]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-'))
    });
    match scheme_len {
        Some(i) if uri.chars().all(is_uri_char) => Ok(ReportUri {
            scheme: lower[..i].to_string(),
            address: uri.to_string(),
            size_limit: None,
        }),
        _ => Err(err(
            DmarcErrorKind::InvalidReportUri,
            format!(
                "{uri} is not a valid DMARC report URI: it must start with a scheme such as mailto:"
            ),
        )),
    }
}

/// The outcome of checking one domain's DMARC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmarcReport {
    /// The domain checked.
    pub domain: String,
    /// The record that applies, when found.
    pub record: Option<String>,
    /// Where it was found (the domain itself or its organisational domain).
    pub location: Option<String>,
    /// The requested policy when the record is valid.
    pub policy: Option<Policy>,
    /// Effective tags when the record parsed.
    pub tags: HashMap<String, String>,
    /// Tags DMARCbis removed, as written (`pct` still matters to pre-DMARCbis receivers).
    pub removed_tags: HashMap<String, String>,
    /// Why there is no usable policy.
    pub error: Option<DmarcError>,
    /// Warnings (and the error, as a FAIL finding).
    pub findings: Findings,
}

impl DmarcReport {
    /// Valid: a policy record applies.
    pub fn is_valid(&self) -> bool {
        self.error.is_none()
    }

    /// What the policy does to failing mail (`pct`, `t=y`), when a policy applies.
    pub fn enforcement(&self) -> Option<Enforcement> {
        self.policy.map(|p| {
            enforcement(
                p,
                self.removed_tags.get("pct").map(String::as_str),
                self.tags.get("t").map(String::as_str),
            )
        })
    }
}

/// Finding codes funnelgate adds to checkdmarc's set.
pub const EXTENSION_CODES: [&str; 4] = [
    "dmarc_test_mode",
    "dmarc_unrelated_txt",
    "dmarc_partial_enforcement",
    "dmarc_invalid_pct",
];

enum Stop {
    Dmarc(DmarcError),
    Dns(DnsFailure),
}

impl From<DnsFailure> for Stop {
    fn from(f: DnsFailure) -> Self {
        Stop::Dns(f)
    }
}

impl From<DmarcError> for Stop {
    fn from(e: DmarcError) -> Self {
        Stop::Dmarc(e)
    }
}

struct Discovery<'a> {
    dns: &'a Dns,
    findings: Findings,
    /// `_dmarc.<name>` lookups already made: the single DMARC record there, if any.
    cache: HashMap<String, Option<String>>,
}

fn psd_of(record: &str) -> Option<char> {
    grammar(record)
        .ok()?
        .into_iter()
        .find(|(t, _)| t == "psd")
        .and_then(|(_, v)| v.to_ascii_lowercase().chars().next())
}

impl Discovery<'_> {
    /// Look up `_dmarc.<name>`. `Ok(None)` when there is no record there.
    async fn at(&mut self, name: &str, apex_fallback: bool) -> Result<Option<String>, Stop> {
        let target = format!("_dmarc.{name}");
        match self.dns.txt(&target).await? {
            Answer::Records(records) => {
                let mut dmarc = Vec::new();
                let mut unrelated = Vec::new();
                for r in records {
                    let text = r.text().unwrap_or_default();
                    if is_dmarc_record(&text) {
                        dmarc.push(text);
                    } else if is_dmarc_record(text.trim()) {
                        return Err(err(
                            DmarcErrorKind::StartsWithWhitespace,
                            format!("the DMARC record at {target} starts with whitespace, which some receivers reject: remove it"),
                        )
                        .into());
                    } else {
                        unrelated.push(text);
                    }
                }
                if dmarc.len() > 1 {
                    return Err(err(
                        DmarcErrorKind::MultipleRecords,
                        format!("{target} has {} DMARC records; receivers discard them all (RFC 9989 §4.10): keep one", dmarc.len()),
                    )
                    .into());
                }
                if !unrelated.is_empty() {
                    self.findings.warn(
                        "dmarc_unrelated_txt",
                        format!(
                            "{target} also holds TXT records that are not DMARC ({}); receivers skip them, but some tools do not: remove them",
                            unrelated.join(" | ")
                        ),
                    );
                }
                Ok(dmarc.pop())
            }
            Answer::NxDomain => Ok(None),
            Answer::NoData => {
                if apex_fallback {
                    match self.dns.txt(name).await? {
                        Answer::Records(r) => {
                            if r.iter()
                                .any(|t| t.text().is_some_and(|t| is_dmarc_record(&t)))
                            {
                                return Err(err(
                                    DmarcErrorKind::WrongLocation,
                                    format!("the DMARC record must be at {target}, not at {name}"),
                                )
                                .into());
                            }
                        }
                        Answer::NxDomain => {
                            return Err(err(
                                DmarcErrorKind::NotFound,
                                format!("the domain {name} does not exist"),
                            )
                            .into());
                        }
                        Answer::NoData => {}
                    }
                }
                Ok(None)
            }
        }
    }

    /// `_dmarc.<name>` for the tree walk, cached; errors at parents are reported, as checkdmarc
    /// does, except records that are not DMARC (skipped with a warning).
    async fn walk_at(&mut self, name: &str) -> Result<Option<String>, Stop> {
        if let Some(c) = self.cache.get(name) {
            return Ok(c.clone());
        }
        let r = self.at(name, false).await?;
        self.cache.insert(name.to_string(), r.clone());
        Ok(r)
    }

    /// The names a tree walk queries above `domain` (RFC 9989 §4.10: at most 8 queries in all).
    fn walk_names(domain: &str) -> Vec<(usize, String)> {
        let labels: Vec<&str> = domain.split('.').collect();
        let n = labels.len();
        if n <= 1 {
            return Vec::new();
        }
        let start = if n <= 8 { 1 } else { n - 7 };
        (start..n).map(|i| (i, labels[i..].join("."))).collect()
    }

    /// Policy discovery: the record at the domain, else the tree walk's pick.
    async fn discover(&mut self, domain: &str) -> Result<(String, String), Stop> {
        let own = match self.at(domain, true).await {
            Ok(r) => r,
            Err(Stop::Dmarc(e)) if e.kind == DmarcErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        self.cache.insert(domain.to_string(), own.clone());
        match self.dns.txt(domain).await {
            Ok(Answer::Records(r)) => {
                if r.iter()
                    .any(|t| t.text().is_some_and(|t| is_dmarc_record(&t)))
                {
                    self.findings.warn(
                        "dmarc_record_at_root",
                        format!("a DMARC record at the root of {domain} has no effect: receivers only look at _dmarc.{domain}"),
                    );
                }
            }
            Ok(Answer::NxDomain) if own.is_none() => {
                return Err(err(
                    DmarcErrorKind::NotFound,
                    format!("the domain {domain} does not exist"),
                )
                .into());
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Stop::Dns(e.during(format_args!(
                    "the TXT records at the root of {domain}, checked for a misplaced DMARC record"
                ))));
            }
        }
        if let Some(r) = own {
            return Ok((domain.to_string(), r));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let mut walked: Vec<(usize, String, String)> = Vec::new();
        for (i, parent) in Self::walk_names(domain) {
            if let Some(r) = self.walk_at(&parent).await? {
                let psd = psd_of(&r);
                walked.push((i, parent, r));
                if matches!(psd, Some('y' | 'n')) {
                    break;
                }
            }
        }
        let Some((index, location, record)) = walked.last().cloned() else {
            let msg = if labels.len() <= 2 {
                format!(
                    "{domain} has no DMARC record: publish one at _dmarc.{domain} (Gmail and Yahoo require it of bulk senders)"
                )
            } else {
                format!(
                    "neither {domain} nor its parent domains have a DMARC record: publish one at _dmarc.{domain} or at the organisational domain"
                )
            };
            return Err(err(DmarcErrorKind::NotFound, msg).into());
        };
        if psd_of(&record) == Some('y') {
            if walked.len() > 1 && walked[walked.len() - 2].0 + 1 == index {
                let (_, l, r) = walked[walked.len() - 2].clone();
                return Ok((l, r));
            }
            let org = labels[index.saturating_sub(1)..].join(".");
            self.findings.warn(
                "dmarc_psd_org_missing",
                format!(
                    "the organisational domain of {domain} is {org}, which has no DMARC record, so the public suffix record at {location} applies"
                ),
            );
        }
        Ok((location, record))
    }

    /// The organisational domain of `name` by the DMARCbis tree walk (RFC 9989 §4.10.2): the
    /// name with the fewest labels holding a DMARC record, bounded by `psd` flags; the name
    /// itself when no record is found.
    async fn org_domain(&mut self, name: &str) -> Result<String, DnsFailure> {
        let labels: Vec<&str> = name.split('.').collect();
        let mut names = vec![(0usize, name.to_string())];
        names.extend(Self::walk_names(name));
        let mut found: Vec<(usize, String, String)> = Vec::new();
        for (i, n) in names {
            let r = match self.walk_at(&n).await {
                Ok(r) => r,
                Err(Stop::Dns(f)) => return Err(f),
                Err(Stop::Dmarc(_)) => None,
            };
            if let Some(r) = r {
                let psd = psd_of(&r);
                found.push((i, n.clone(), r));
                match psd {
                    Some('n') => return Ok(n),
                    Some('y') => return Ok(labels[i.saturating_sub(1)..].join(".")),
                    _ => {}
                }
            }
        }
        Ok(found
            .last()
            .map(|(_, n, _)| n.clone())
            .unwrap_or_else(|| name.to_string()))
    }

    async fn destination_authorised(
        &mut self,
        source: &str,
        dest: &str,
    ) -> Result<bool, DnsFailure> {
        for name in [
            format!("*._report._dmarc.{dest}"),
            format!("{source}._report._dmarc.{dest}"),
        ] {
            if let Answer::Records(r) = self.dns.txt(&name).await?
                && r.iter()
                    .any(|t| t.text().is_some_and(|t| is_dmarc_record(&t)))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn check_uris(&mut self, tag: &str, value: &str, location: &str) -> Result<(), Stop> {
        let mut count = 0;
        for entry in value.split(',') {
            let uri = parse_report_uri(entry)?;
            count += 1;
            if uri.scheme != "mailto" {
                self.findings.warn(
                    "dmarc_uri_not_mailto",
                    format!("the {tag} URI {} uses the {} scheme; receivers only have to support mailto, most will ignore it", uri.address, uri.scheme),
                );
                continue;
            }
            if uri.size_limit.is_some() {
                self.findings.warn(
                    "dmarc_uri_size_limit",
                    format!("the !size limit on the {tag} address {} is obsolete (DMARCbis reporters ignore it)", uri.address),
                );
            }
            let email_domain = normalize(uri.address.rsplit('@').next().unwrap_or_default());
            if email_domain != location {
                let external =
                    self.org_domain(location).await? != self.org_domain(&email_domain).await?;
                if external && !self.destination_authorised(location, &email_domain).await? {
                    self.findings.warn(
                        "dmarc_uri_unverified",
                        format!(
                            "{email_domain} does not say it accepts DMARC reports about {location}, so receivers will not send {tag} reports there: \
                             publish {location}._report._dmarc.{email_domain} TXT \"v=DMARC1\""
                        ),
                    );
                    continue;
                }
            }
            match self.dns.mx(&email_domain).await? {
                Answer::Records(r) if r.iter().any(|(_, h)| h != ".") => {}
                Answer::NxDomain => self.findings.warn(
                    "dmarc_uri_no_mx",
                    format!("the domain of the {tag} address {} does not exist, so reports cannot be delivered", uri.address),
                ),
                _ => self.findings.warn(
                    "dmarc_uri_no_mx",
                    format!("the domain of the {tag} address {} has no MX records, so reports cannot be delivered", uri.address),
                ),
            }
        }
        if count > 2 {
            self.findings.warn(
                "dmarc_too_many_uris",
                format!("some reporters do not send to more than two {tag} URIs"),
            );
        }
        Ok(())
    }
}

/// Check a domain's DMARC policy. A DNS failure (no answer at all) is an `Err`; every DMARC
/// problem is in the report.
pub async fn check(dns: &Dns, domain: &str) -> Result<DmarcReport, DnsFailure> {
    let domain = normalize(domain);
    let mut report = DmarcReport {
        domain: domain.clone(),
        record: None,
        location: None,
        policy: None,
        tags: HashMap::new(),
        removed_tags: HashMap::new(),
        error: None,
        findings: Findings::default(),
    };
    let mut d = Discovery {
        dns,
        findings: Findings::default(),
        cache: HashMap::new(),
    };
    let outcome: Result<(), Stop> = async {
        let (location, record) = d.discover(&domain).await?;
        report.location = Some(location.clone());
        report.record = Some(record.clone());
        let parsed = parse_record(&record, &location)?;
        d.findings.extend(parsed.findings.clone());
        match &parsed.rua {
            Some(rua) => d.check_uris("rua", rua, &location).await?,
            None => d.findings.warn(
                "dmarc_no_rua",
                "no rua tag: nobody receives aggregate reports, so failures go unnoticed (add rua=mailto:…)",
            ),
        }
        if let Some(ruf) = &parsed.ruf {
            d.check_uris("ruf", ruf, &location).await?;
        }
        if parsed.tags.get("t").is_some_and(|t| t == "y") && parsed.policy.is_some_and(|p| p != Policy::None) {
            d.findings.warn(
                "dmarc_test_mode",
                format!(
                    "t=y asks receivers not to apply p={} yet (test mode): DMARCbis receivers give failing mail {} instead — remove t=y to enforce",
                    parsed.tags["p"],
                    parsed.policy.map(|p| p.lower().as_str()).unwrap_or("none")
                ),
            );
        }
        if let Some(policy) = parsed.policy.filter(|p| *p != Policy::None)
            && let Some(pct) = parsed.removed.get("pct")
        {
            let e = enforcement(policy, Some(pct), None);
            if !e.pct_explicit {
                d.findings.warn(
                    "dmarc_invalid_pct",
                    format!("pct={pct} is not an integer from 0 to 100: RFC 7489 receivers use 100"),
                );
            } else if e.pct < 100 {
                d.findings.warn(
                    "dmarc_partial_enforcement",
                    format!(
                        "pct={}: RFC 7489 receivers apply p={} to only {}% of failing mail and {} to the rest (DMARCbis receivers ignore pct) — raise it to 100 or remove it once reports look clean",
                        e.pct,
                        policy.as_str(),
                        e.pct,
                        policy.lower().as_str()
                    ),
                );
            }
        }
        report.policy = parsed.policy;
        report.tags = parsed.tags;
        report.removed_tags = parsed.removed;
        Ok(())
    }
    .await;
    report.findings = std::mem::take(&mut d.findings);
    match outcome {
        Ok(()) => {}
        Err(Stop::Dns(f)) => return Err(f),
        Err(Stop::Dmarc(e)) => {
            report.findings.fail(e.kind.code(), e.message.clone());
            report.policy = None;
            report.error = Some(e);
        }
    }
    Ok(report)
}

/// Short summary line for a report.
pub fn summary(r: &DmarcReport) -> String {
    let at = match &r.location {
        Some(l) if *l != r.domain => format!(" (from its organisational domain {l})"),
        _ => String::new(),
    };
    match (&r.error, r.policy) {
        (Some(_), _) => format!("DMARC of {} is missing or broken", r.domain),
        (None, Some(p)) if r.findings.worst() == Some(Level::Warn) => {
            format!(
                "DMARC of {} is valid with p={}{at} but needs attention",
                r.domain,
                p.as_str()
            )
        }
        (None, Some(p)) => format!("DMARC of {} is valid: p={}{at}", r.domain, p.as_str()),
        (None, None) => format!("DMARC of {} is valid{at}", r.domain),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pct_and_testing_flag_lower_enforcement() {
        let e = enforcement(Policy::Reject, Some("50"), None);
        assert_eq!((e.pct, e.pct_explicit, e.testing), (50, true, false));
        assert_eq!(
            e.rfc7489,
            "p=reject on 50% of failing mail, quarantine on the rest (pct=50)"
        );
        assert!(e.dmarcbis.starts_with("p=reject on all failing mail"));
        let e = enforcement(Policy::Quarantine, None, Some("y"));
        assert_eq!(e.pct, 100);
        assert_eq!(e.rfc7489, "p=quarantine on all failing mail");
        assert_eq!(
            e.dmarcbis,
            "test mode (t=y): failing mail gets none instead of quarantine"
        );
        let e = enforcement(Policy::Reject, Some("0"), None);
        assert!(e.rfc7489.contains("none of the failing mail"), "{e:?}");
        let e = enforcement(Policy::Reject, Some("150"), None);
        assert_eq!((e.pct, e.pct_explicit), (100, false));
        assert!(
            enforcement(Policy::None, Some("10"), Some("y"))
                .rfc7489
                .contains("no enforcement")
        );
    }

    #[test]
    fn record_selection_follows_rfc_9989() {
        assert!(is_dmarc_record("v=DMARC1; p=none"));
        assert!(is_dmarc_record("V = DMARC1;p=none"));
        assert!(is_dmarc_record("v=DMARC1"));
        assert!(!is_dmarc_record("v=dmarc1; p=none"));
        assert!(!is_dmarc_record("v=DMARC10"));
        assert!(!is_dmarc_record(" v=DMARC1"));
        assert!(!is_dmarc_record("v=spf1 -all"));
    }

    #[test]
    fn grammar_matches_the_abnf() {
        assert!(parse_record("v=DMARC1", "d.test").is_ok());
        assert!(parse_record("v=DMARC1;", "d.test").is_ok());
        assert!(parse_record("v=DMARC1 ; p = reject ; ", "d.test").is_ok());
        for bad in [
            "v=DMARC1;;p=none",
            "v=DMARC1; p=none; foo",
            "v=DMARC1 p=none",
            "v=DMARC1; p=none; x=",
            "v=dmarc1; p=none",
        ] {
            assert_eq!(
                parse_record(bad, "d.test").unwrap_err().kind,
                DmarcErrorKind::Syntax,
                "{bad}"
            );
        }
        let e = parse_record("v=DMARC1; p=none; foo", "d.test").unwrap_err();
        assert!(e.message.contains("position 18"), "{e}");
    }

    #[test]
    fn tags_and_defaults() {
        let p = parse_record("v=DMARC1; p=Reject; rua=mailto:Reports@D.test", "d.test").unwrap();
        assert_eq!(p.policy, Some(Policy::Reject));
        assert_eq!(p.tags["sp"], "reject");
        assert_eq!(p.tags["np"], "reject");
        assert_eq!(p.tags["adkim"], "r");
        assert_eq!(p.rua.as_deref(), Some("mailto:Reports@D.test"));
        assert!(p.findings.0.is_empty());
        let p = parse_record("v=DMARC1; p=reject; sp=quarantine", "d.test").unwrap();
        assert_eq!(p.tags["np"], "quarantine");
    }

    #[test]
    fn dmarcbis_edges() {
        let p = parse_record("v=DMARC1; rua=mailto:a@d.test", "d.test").unwrap();
        assert_eq!(p.policy, Some(Policy::None));
        assert!(p.findings.has("dmarc_p_missing") && p.findings.has("dmarc_p_none"));
        let p = parse_record("v=DMARC1; p=quarantine; pct=50; rf=afrf; ri=3600", "d.test").unwrap();
        assert_eq!(
            p.findings
                .codes()
                .iter()
                .filter(|c| **c == "dmarc_removed_tag")
                .count(),
            3
        );
        let p = parse_record("v=DMARC1; p=reject; np=reject; psd=n; t=y", "d.test").unwrap();
        assert!(p.findings.0.is_empty());
        assert_eq!(
            parse_record("v=DMARC1; p=block", "d.test")
                .unwrap_err()
                .kind,
            DmarcErrorKind::InvalidTagValue
        );
        assert_eq!(
            parse_record("v=DMARC1; p=none; psd=x", "d.test")
                .unwrap_err()
                .kind,
            DmarcErrorKind::InvalidTagValue
        );
        assert_eq!(
            parse_record("v=DMARC1; p=none; p=reject", "d.test")
                .unwrap_err()
                .kind,
            DmarcErrorKind::DuplicateTag
        );
        assert_eq!(
            parse_record("v=DMARC1; p=none; pct=1; pct=2", "d.test")
                .unwrap_err()
                .kind,
            DmarcErrorKind::DuplicateTag
        );
        assert_eq!(
            parse_record("v=DMARC1; p=none; fo=0:x", "d.test")
                .unwrap_err()
                .kind,
            DmarcErrorKind::InvalidTagValue
        );
        assert!(
            parse_record("v=DMARC1; p=none; fo=0:1", "d.test")
                .unwrap()
                .findings
                .has("dmarc_invalid_fo")
        );
        assert!(
            parse_record("v=DMARC1; p=none; adkim=x", "d.test")
                .unwrap()
                .findings
                .has("dmarc_invalid_alignment")
        );
        assert!(
            parse_record("v=DMARC1; rua=mailto:a@d.test; p=none", "d.test")
                .unwrap()
                .findings
                .has("dmarc_p_not_second")
        );
        assert!(
            !parse_record("v=DMARC1; pct=100; p=none", "d.test")
                .unwrap()
                .findings
                .has("dmarc_p_not_second")
        );
        assert!(
            parse_record("v=DMARC1; p=reject; sp=none", "d.test")
                .unwrap()
                .findings
                .has("dmarc_sp_none")
        );
        assert!(
            parse_record("v=DMARC1; p=reject; foo=bar", "d.test")
                .unwrap()
                .findings
                .has("dmarc_unknown_tag")
        );
    }

    #[test]
    fn report_uris() {
        let u = parse_report_uri(" mailto:dmarc+x@reports.example.com!10m ").unwrap();
        assert_eq!(u.scheme, "mailto");
        assert_eq!(u.address, "dmarc+x@reports.example.com");
        assert_eq!(u.size_limit.as_deref(), Some("10m"));
        let u = parse_report_uri("https://reports.example.com/dmarc").unwrap();
        assert_eq!(u.scheme, "https");
        assert_eq!(
            parse_report_uri("dmarc@example.com").unwrap_err().kind,
            DmarcErrorKind::InvalidReportUri
        );
        assert_eq!(
            parse_report_uri("mailto:example.com").unwrap_err().kind,
            DmarcErrorKind::InvalidReportUri
        );
    }

    #[test]
    fn tree_walk_names_are_bounded() {
        let names = Discovery::walk_names("a.b.c.d.e.f.g.h.i.j.example.test");
        assert_eq!(names.len(), 7);
        assert_eq!(names.last().unwrap().1, "test");
        assert_eq!(
            Discovery::walk_names("mail.example.test")
                .iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>(),
            ["example.test", "test"]
        );
        assert!(Discovery::walk_names("test").is_empty());
    }
}
