//! SPF (RFC 7208): find the one `v=spf1` TXT record of a domain, parse it term by term, and
//! walk its `include`/`redirect` tree counting what a receiver's evaluation would cost: the
//! terms that query DNS (`include`, `a`, `mx`, `ptr`, `exists`, `redirect`: at most 10) and the
//! void lookups among them (NXDOMAIN or no records: at most 2), §4.6.4. No sender IP is known,
//! so this is a static evaluation of the record, like checkdmarc's; the rules it applies and
//! where it deliberately differs are listed in `docs/deliverability-disagreements.md`.
//!
//! Parsing is pure ([`parse_record`]); only [`check`] does I/O.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::dns::{Answer, Dns, DnsFailure, normalize};
use crate::findings::{Findings, Level};

/// RFC 7208 §4.6.4: at most 10 terms that cause DNS queries.
pub const MAX_DNS_LOOKUPS: u32 = 10;
/// RFC 7208 §4.6.4: at most 2 void lookups.
pub const MAX_VOID_LOOKUPS: u32 = 2;
/// Marks the position of a syntax error inside the quoted record.
pub const SYNTAX_ERROR_MARKER: char = '➞';
/// Beyond this many lookups the walk stops following includes: the record is far past the limit
/// and the exact count no longer matters.
const WALK_CAP: u32 = 50;

/// A mechanism's qualifier (RFC 7208 §4.6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qualifier {
    /// `+` (or none): the host is authorised.
    Pass,
    /// `-`: the host is not authorised.
    Fail,
    /// `~`: probably not authorised.
    SoftFail,
    /// `?`: no statement.
    Neutral,
}

impl Qualifier {
    fn from_char(c: Option<char>) -> Qualifier {
        match c {
            Some('-') => Qualifier::Fail,
            Some('~') => Qualifier::SoftFail,
            Some('?') => Qualifier::Neutral,
            _ => Qualifier::Pass,
        }
    }

    /// `pass`, `fail`, `softfail` or `neutral` (checkdmarc's words).
    pub fn as_str(self) -> &'static str {
        match self {
            Qualifier::Pass => "pass",
            Qualifier::Fail => "fail",
            Qualifier::SoftFail => "softfail",
            Qualifier::Neutral => "neutral",
        }
    }

    /// The qualifier as written: `+`, `-`, `~`, `?`.
    pub fn symbol(self) -> char {
        match self {
            Qualifier::Pass => '+',
            Qualifier::Fail => '-',
            Qualifier::SoftFail => '~',
            Qualifier::Neutral => '?',
        }
    }
}

/// The kinds of term that survive parsing (unknown and reporting modifiers are dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermKind {
    All,
    Include,
    A,
    Mx,
    Ptr,
    Ip4,
    Ip6,
    Exists,
    Redirect,
    Exp,
}

/// One validated term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    /// The qualifier (modifiers have none: `Pass`).
    pub qualifier: Qualifier,
    /// What the term is.
    pub kind: TermKind,
    /// The value, lowercased; for `a`/`mx` it may carry a `/cidr` suffix.
    pub value: String,
    /// The value as written (exp keeps its case: macro letters' case matters, §7.3).
    pub raw_value: String,
}

/// A record that passed the syntax checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedRecord {
    /// The terms up to and including the first `all`, in order (modifiers included).
    pub terms: Vec<Term>,
    /// The `exp` modifier's value, wherever it was written.
    pub exp: Option<String>,
    /// Whether an `all` mechanism appears anywhere (then `redirect` is ignored, §6.1).
    pub all_present: bool,
    /// Warnings found while parsing.
    pub findings: Findings,
}

/// A syntax error: a permanent error (permerror) for receivers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    /// Where it is, in characters from the start of the record, when known.
    pub position: Option<usize>,
    /// What is wrong.
    pub message: String,
}

fn syntax(message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        position: None,
        message: message.into(),
    }
}

fn syntax_at(record: &[char], pos: usize, what: &str) -> SyntaxError {
    let marked: String = record[..pos.min(record.len())]
        .iter()
        .chain(std::iter::once(&SYNTAX_ERROR_MARKER))
        .chain(record[pos.min(record.len())..].iter())
        .collect();
    SyntaxError {
        position: Some(pos),
        message: format!(
            "{what} at position {pos} (marked with {SYNTAX_ERROR_MARKER}) in: {marked}"
        ),
    }
}

/// Whether a TXT payload is an SPF record: `v=spf1` alone or followed by a space (§4.5).
pub fn is_spf_record(text: &str) -> bool {
    let l = text.to_ascii_lowercase();
    l == "v=spf1" || l.starts_with("v=spf1 ")
}

fn is_sender_id(text: &str) -> bool {
    let l = text.to_ascii_lowercase();
    let Some(rest) = l.strip_prefix("v=spf2.0/") else {
        return false;
    };
    let scope_end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let scopes = &rest[..scope_end];
    let parts: Vec<&str> = scopes.split(',').collect();
    !parts.is_empty() && parts.len() <= 2 && parts.iter().all(|p| *p == "pra" || *p == "mfrom")
}

/// A term split by the checkdmarc/RFC 7208 §12 term shape:
/// `[qualifier] name [(":" | "/" | "=") value]`, name = ALPHA *(ALNUM / "_" / "." / "-").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RawTerm<'a> {
    qualifier: Option<char>,
    name: &'a str,
    sep: Option<char>,
    value: &'a str,
}

/// Length in bytes of the longest prefix of `s` that has the term shape (0 if none).
fn term_prefix_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && matches!(b[i], b'+' | b'-' | b'~' | b'?') {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_alphabetic() {
        return 0;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'-')) {
        i += 1;
    }
    if i < b.len() && matches!(b[i], b':' | b'/' | b'=') {
        i += 1;
        while i < b.len() && (0x21..=0x7e).contains(&b[i]) {
            i += 1;
        }
    }
    i
}

fn split_term(s: &str) -> Option<RawTerm<'_>> {
    if term_prefix_len(s) != s.len() || s.is_empty() {
        return None;
    }
    let (qualifier, rest) = match s.chars().next() {
        Some(c @ ('+' | '-' | '~' | '?')) => (Some(c), &s[1..]),
        _ => (None, s),
    };
    match rest.find([':', '/', '=']) {
        Some(i) => Some(RawTerm {
            qualifier,
            name: &rest[..i],
            sep: rest[i..].chars().next(),
            value: &rest[i + 1..],
        }),
        None => Some(RawTerm {
            qualifier,
            name: rest,
            sep: None,
            value: "",
        }),
    }
}

fn is_all_term(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-', '~', '?']).unwrap_or(s);
    t.eq_ignore_ascii_case("all")
}

/// Validate macro syntax (RFC 7208 §7.1) in a domain-spec or explanation string.
pub fn validate_macros(value: &str, allow_exp_letters: bool) -> Result<(), SyntaxError> {
    let v: Vec<char> = value.chars().collect();
    let err = |pos: usize| syntax_at(&v, pos, "invalid spf macro syntax");
    let mut i = 0;
    while i < v.len() {
        if v[i] != '%' {
            i += 1;
            continue;
        }
        let Some(&next) = v.get(i + 1) else {
            return Err(err(i));
        };
        if matches!(next, '%' | '_' | '-') {
            i += 2;
            continue;
        }
        if next != '{' {
            return Err(err(i));
        }
        let Some(close) = (i + 2..v.len()).find(|&k| v[k] == '}') else {
            return Err(err(i));
        };
        let body = &v[i + 2..close];
        let Some(&letter) = body.first() else {
            return Err(err(i));
        };
        let lower = letter.to_ascii_lowercase();
        if !"slodiphcrtv".contains(lower) {
            return Err(err(i + 2));
        }
        if !allow_exp_letters && "crt".contains(lower) {
            return Err(syntax(format!(
                "the macro letter {letter} is only allowed in exp explanation text (RFC 7208 §7.2): {value}"
            )));
        }
        let rest = &body[1..];
        let mut j = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if j > 0 && rest[..j].iter().all(|c| *c == '0') {
            return Err(err(i + 3));
        }
        if rest.get(j).is_some_and(|c| *c == 'r' || *c == 'R') {
            j += 1;
        }
        for (k, d) in rest[j..].iter().enumerate() {
            if !".-+,/_=".contains(*d) {
                return Err(err(i + 3 + j + k));
            }
        }
        i = close + 1;
    }
    Ok(())
}

/// RFC 7208 §12 toplabel: letters and digits with at least one letter, or a hyphenated label.
fn is_toplabel(l: &str) -> bool {
    let b = l.as_bytes();
    if b.is_empty()
        || !b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    {
        return false;
    }
    if !l.contains('-') {
        return b.iter().any(|c| c.is_ascii_lowercase());
    }
    b[0] != b'-' && b[b.len() - 1] != b'-' && b[0].is_ascii_alphanumeric()
}

fn warn_domain_spec(findings: &mut Findings, name: &str, value: &str) {
    let labels: Vec<&str> = value.trim_end_matches('.').split('.').collect();
    if labels.len() < 2 || !labels.last().is_some_and(|l| is_toplabel(l)) {
        findings.warn(
            "spf_invalid_domain_spec",
            format!(
                "the {name} value {value} is not a fully-qualified domain name ending in a valid top-level label \
                 (RFC 7208 §12); receivers may treat it as a no-match"
            ),
        );
    }
}

fn valid_prefix(p: &str) -> bool {
    p == "0" || (!p.is_empty() && !p.starts_with('0') && p.bytes().all(|c| c.is_ascii_digit()))
}

/// Split an `a`/`mx` value into (domain, ipv4 prefix, ipv6 prefix), checking the dual CIDR
/// length (`/nn`, `//nn`, `/nn//nn`, no leading zeros, ≤ 32 / ≤ 128).
fn split_domain_cidr(
    value: &str,
    name: &str,
) -> Result<(String, Option<u32>, Option<u32>), SyntaxError> {
    let Some((domain, rest)) = value.split_once('/') else {
        return Ok((value.to_string(), None, None));
    };
    let s = format!("/{rest}");
    let bad = || {
        syntax(format!(
            "{s} is not a valid CIDR prefix length for the {name} mechanism (RFC 7208 §12)"
        ))
    };
    let mut rest: &str = &s;
    let mut ip4 = None;
    let mut ip6 = None;
    if rest.starts_with('/') && !rest.starts_with("//") {
        let digits: String = rest[1..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if !valid_prefix(&digits) {
            return Err(bad());
        }
        ip4 = Some(digits.parse::<u32>().unwrap_or(u32::MAX));
        rest = &rest[1 + digits.len()..];
    }
    if let Some(r) = rest.strip_prefix("//") {
        let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !valid_prefix(&digits) {
            return Err(bad());
        }
        ip6 = Some(digits.parse::<u32>().unwrap_or(u32::MAX));
        rest = &r[digits.len()..];
    }
    if !rest.is_empty() {
        return Err(bad());
    }
    if let Some(p) = ip4.filter(|p| *p > 32) {
        return Err(syntax(format!(
            "the ipv4 prefix length /{p} in the {name} mechanism must be between 0 and 32"
        )));
    }
    if let Some(p) = ip6.filter(|p| *p > 128) {
        return Err(syntax(format!(
            "the ipv6 prefix length //{p} in the {name} mechanism must be between 0 and 128"
        )));
    }
    Ok((domain.to_string(), ip4, ip6))
}

fn check_ip(name: &str, value: &str) -> Result<(), SyntaxError> {
    let (addr, prefix) = match value.split_once('/') {
        Some((a, p)) => {
            if !valid_prefix(p) {
                return Err(syntax(format!(
                    "{value} is not a valid {name} value: cidr prefix lengths must be digits without leading zeros"
                )));
            }
            (a, Some(p.parse::<u32>().unwrap_or(u32::MAX)))
        }
        None => (value, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| syntax(format!("{value} is not a valid {name} value")))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix.is_some_and(|p| p > max) {
        return Err(syntax(format!("{value} is not a valid {name} value")));
    }
    match (name, ip) {
        ("ip4", IpAddr::V6(_)) => Err(syntax(format!(
            "{value} is not a valid ipv4 value (it looks like ipv6)"
        ))),
        ("ip6", IpAddr::V4(_)) => Err(syntax(format!(
            "{value} is not a valid ipv6 value (it looks like ipv4)"
        ))),
        _ => Ok(()),
    }
}

/// Where the text after the first `all` starts, if something follows it (checkdmarc's
/// `(?:^|\s)[+\-~?]?all\s+(.+)`): returns the char index of that text.
fn after_all_start(chars: &[char]) -> Option<usize> {
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        let token: String = chars[start..i].iter().collect();
        if is_all_term(&token) {
            let remaining = chars.len() - i;
            if remaining >= 2 {
                let ws = chars[i..].iter().take_while(|c| c.is_whitespace()).count();
                return Some(i + ws.min(remaining - 1));
            }
        }
    }
    None
}

/// Parse and check an SPF record without DNS. Whitespace-separated terms, each validated as in
/// RFC 7208 §12; everything after the first `all` is ignored except `exp` (warned otherwise).
pub fn parse_record(record: &str) -> Result<ParsedRecord, SyntaxError> {
    let chars: Vec<char> = record.chars().collect();
    let mut findings = Findings::default();

    // An `all` glued to the previous term ("ip4:192.0.2.1~all").
    for i in 1..chars.len() {
        if matches!(chars[i], '+' | '-' | '~' | '?')
            && !chars[i - 1].is_whitespace()
            && chars.len() >= i + 4
            && chars[i + 1..i + 4]
                .iter()
                .collect::<String>()
                .eq_ignore_ascii_case("all")
            && chars.get(i + 4).is_none_or(|c| c.is_whitespace())
        {
            return Err(syntax_at(&chars, i, "expected whitespace before 'all'"));
        }
    }

    let after_all = after_all_start(&chars);
    let grammar_end = match after_all {
        Some(s) => {
            let mut e = s;
            while e > 0 && chars[e - 1].is_whitespace() {
                e -= 1;
            }
            e
        }
        None => chars.len(),
    };
    let grammar: String = chars[..grammar_end].iter().collect();

    // Grammar: "v=spf1" (ABNF literals are case-insensitive, RFC 5234 §2.3) then terms, each
    // of the term shape.
    if !grammar
        .get(..6)
        .is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
    {
        return Err(syntax_at(&chars, 0, "expected v=spf1"));
    }
    let mut pos = "v=spf1".len();
    let gb = grammar.as_bytes();
    loop {
        while pos < gb.len() && (gb[pos] as char).is_ascii_whitespace() {
            pos += 1;
        }
        if pos >= gb.len() {
            break;
        }
        if !grammar.is_char_boundary(pos) {
            let cpos = grammar[..pos.saturating_sub(1)].chars().count();
            return Err(syntax_at(&chars, cpos, "expected a mechanism or modifier"));
        }
        let n = term_prefix_len(&grammar[pos..]);
        if n == 0 {
            let cpos = grammar[..pos].chars().count();
            return Err(syntax_at(&chars, cpos, "expected a mechanism or modifier"));
        }
        pos += n;
    }

    let all_present = record.split_whitespace().any(is_all_term);
    let mut exp: Option<String> = None;

    // Text after the first all.
    if let Some(s) = after_all {
        let tail: String = chars[s..].iter().collect();
        let (mut extra_all, mut ignored) = (false, false);
        for token in tail.split_whitespace() {
            if is_all_term(token) {
                extra_all = true;
                continue;
            }
            match split_term(token) {
                Some(t) if t.sep == Some('=') && t.qualifier.is_none() => {
                    let name = t.name.to_ascii_lowercase();
                    if name == "exp" {
                        if t.value.is_empty() {
                            return Err(syntax("the exp modifier is missing a value"));
                        }
                        if exp.is_some() {
                            return Err(syntax(
                                "multiple exp modifiers are not permitted (RFC 7208 §6)",
                            ));
                        }
                        exp = Some(t.value.to_string());
                    } else if !matches!(name.as_str(), "ra" | "rp" | "rr") {
                        ignored = true;
                    }
                }
                _ => ignored = true,
            }
        }
        if extra_all {
            findings.warn(
                "spf_multiple_all",
                "the record contains more than one all mechanism; only the first is used (RFC 7208 §4.6.2)",
            );
        }
        if ignored {
            findings.warn(
                "spf_text_after_all",
                "text after the all mechanism is ignored by receivers; remove it or move it before all",
            );
        }
    }

    let mut terms = Vec::new();
    let mut words: Vec<&str> = grammar.split_whitespace().collect();
    if words
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case("v=spf1"))
    {
        words.remove(0);
    }
    for word in words {
        let t =
            split_term(word).ok_or_else(|| syntax(format!("{word} is not a valid spf term")))?;
        let name = t.name.to_ascii_lowercase();
        let raw_value = t.value.to_string();
        let mut value = t.value.to_ascii_lowercase();
        let qualifier = Qualifier::from_char(t.qualifier);
        let kind = if t.sep == Some('=') {
            if t.qualifier.is_some() {
                return Err(syntax(format!(
                    "qualifiers are not allowed on modifiers (RFC 7208 §12): {word}"
                )));
            }
            match name.as_str() {
                "redirect" => {
                    if value.is_empty() {
                        return Err(syntax("the redirect modifier is missing a value"));
                    }
                    validate_macros(&value, false)?;
                    if !value.contains('%') {
                        warn_domain_spec(&mut findings, "redirect", &value);
                    }
                    TermKind::Redirect
                }
                "exp" => {
                    if value.is_empty() {
                        return Err(syntax("the exp modifier is missing a value"));
                    }
                    if exp.is_some() {
                        return Err(syntax(
                            "multiple exp modifiers are not permitted (RFC 7208 §6)",
                        ));
                    }
                    exp = Some(raw_value.clone());
                    TermKind::Exp
                }
                "ra" | "rp" | "rr" => continue,
                other => {
                    findings.warn(
                        "spf_unknown_modifier",
                        format!(
                            "the unknown modifier {other} is ignored by receivers (RFC 7208 §6)"
                        ),
                    );
                    continue;
                }
            }
        } else {
            match name.as_str() {
                "all" => {
                    if t.sep.is_some() {
                        return Err(syntax(format!(
                            "the all mechanism does not accept a value: {word}"
                        )));
                    }
                    TermKind::All
                }
                "ip4" | "ip6" => {
                    if t.sep != Some(':') || value.is_empty() {
                        return Err(syntax(format!("{name} must have a value")));
                    }
                    if value.contains('%') {
                        return Err(syntax(format!(
                            "spf macros are not allowed in {name} mechanisms: {value}"
                        )));
                    }
                    check_ip(&name, &value)?;
                    if name == "ip4" {
                        TermKind::Ip4
                    } else {
                        TermKind::Ip6
                    }
                }
                "include" | "exists" => {
                    if t.sep != Some(':') || value.is_empty() {
                        return Err(syntax(format!("{name} must have a value")));
                    }
                    validate_macros(&value, false)?;
                    if !value.contains('%') {
                        warn_domain_spec(&mut findings, &name, &value);
                    }
                    if name == "include" {
                        TermKind::Include
                    } else {
                        TermKind::Exists
                    }
                }
                "a" | "mx" => {
                    if t.sep == Some(':') && value.is_empty() {
                        return Err(syntax(format!("{name} must have a value after the :")));
                    }
                    if t.sep == Some('/') {
                        value = format!("/{value}");
                    }
                    validate_macros(&value, false)?;
                    if !value.contains('%') {
                        let (domain_part, _, _) = split_domain_cidr(&value, &name)?;
                        if t.sep == Some(':') && domain_part.is_empty() {
                            return Err(syntax(format!("{name} must have a value after the :")));
                        }
                        if !domain_part.is_empty() {
                            warn_domain_spec(&mut findings, &name, &domain_part);
                        }
                    }
                    if name == "a" {
                        TermKind::A
                    } else {
                        TermKind::Mx
                    }
                }
                "ptr" => {
                    if t.sep == Some('/') {
                        return Err(syntax(format!(
                            "the ptr mechanism does not accept a cidr prefix length: {word}"
                        )));
                    }
                    if t.sep == Some(':') && value.is_empty() {
                        return Err(syntax("ptr must have a value after the :"));
                    }
                    validate_macros(&value, false)?;
                    if !value.contains('%') && !value.is_empty() {
                        warn_domain_spec(&mut findings, "ptr", &value);
                    }
                    TermKind::Ptr
                }
                _ => {
                    return Err(syntax(format!(
                        "{} is not a valid spf mechanism or modifier",
                        t.name
                    )));
                }
            }
        };
        terms.push(Term {
            qualifier,
            kind,
            value,
            raw_value,
        });
    }
    if terms
        .iter()
        .filter(|t| t.kind == TermKind::Redirect)
        .count()
        > 1
    {
        return Err(syntax(
            "multiple redirect modifiers are not permitted (RFC 7208 §6)",
        ));
    }
    Ok(ParsedRecord {
        terms,
        exp,
        all_present,
        findings,
    })
}

/// Why an SPF record is a permanent error (permerror) or missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpfErrorKind {
    /// No SPF record at the domain (or the domain does not exist).
    NotFound,
    /// More than one SPF record at one name (§4.5).
    MultipleRecords,
    /// The record (or an included one) does not parse.
    Syntax,
    /// More than 10 DNS-querying terms, or an `mx` with more than 10 hosts (§4.6.4).
    TooManyLookups,
    /// More than 2 void lookups (§4.6.4).
    TooManyVoidLookups,
    /// An include chain that comes back to a domain already being evaluated.
    IncludeLoop,
    /// A redirect chain that comes back to a domain already being evaluated.
    RedirectLoop,
    /// An include target without an SPF record (§5.2: permerror).
    IncludeNotFound,
    /// A redirect target without an SPF record (§6.1: permerror).
    RedirectNotFound,
}

impl SpfErrorKind {
    /// Stable finding code.
    pub fn code(self) -> &'static str {
        match self {
            SpfErrorKind::NotFound => "spf_not_found",
            SpfErrorKind::MultipleRecords => "spf_multiple_records",
            SpfErrorKind::Syntax => "spf_syntax_error",
            SpfErrorKind::TooManyLookups => "spf_too_many_lookups",
            SpfErrorKind::TooManyVoidLookups => "spf_too_many_void_lookups",
            SpfErrorKind::IncludeLoop => "spf_include_loop",
            SpfErrorKind::RedirectLoop => "spf_redirect_loop",
            SpfErrorKind::IncludeNotFound => "spf_include_not_found",
            SpfErrorKind::RedirectNotFound => "spf_redirect_not_found",
        }
    }
}

/// An SPF problem that makes the record unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpfError {
    /// The class of error.
    pub kind: SpfErrorKind,
    /// What happened, for a marketer.
    pub message: String,
}

/// The outcome of checking one domain's SPF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpfReport {
    /// The domain checked.
    pub domain: String,
    /// Its SPF record, when exactly one was found.
    pub record: Option<String>,
    /// DNS-querying terms in the whole evaluation tree.
    pub dns_lookups: u32,
    /// Void lookups in the whole tree.
    pub void_lookups: u32,
    /// The result of the final `all` (taken from a redirect target when redirected); `None`
    /// when the record has neither `all` nor a followed redirect (default neutral, §4.7).
    pub all: Option<Qualifier>,
    /// The permanent error, if any.
    pub error: Option<SpfError>,
    /// Warnings (and the error, as a FAIL finding).
    pub findings: Findings,
}

impl SpfReport {
    /// Valid: no permanent error.
    pub fn is_valid(&self) -> bool {
        self.error.is_none()
    }
}

enum Fatal {
    Spf(SpfError),
    Dns(DnsFailure),
}

impl From<DnsFailure> for Fatal {
    fn from(f: DnsFailure) -> Self {
        Fatal::Dns(f)
    }
}

fn fatal(kind: SpfErrorKind, message: impl Into<String>) -> Fatal {
    Fatal::Spf(SpfError {
        kind,
        message: message.into(),
    })
}

struct Lookup {
    record: String,
    findings: Findings,
}

/// Query a name's SPF record (§4.5): exactly one TXT record starting `v=spf1`.
async fn query_record(
    dns: &Dns,
    domain: &str,
) -> Result<Result<Lookup, (SpfErrorKind, String, Findings)>, DnsFailure> {
    let mut findings = Findings::default();
    let answer = dns.txt(domain).await?;
    let records = match answer {
        Answer::NxDomain => {
            return Ok(Err((
                SpfErrorKind::NotFound,
                format!("the domain {domain} does not exist"),
                findings,
            )));
        }
        Answer::NoData => {
            return Ok(Err((
                SpfErrorKind::NotFound,
                format!("{domain} has no SPF record"),
                findings,
            )));
        }
        Answer::Records(r) => r,
    };
    let mut spf = Vec::new();
    for r in records {
        let Some(text) = r.text() else {
            findings.warn(
                "spf_undecodable_txt",
                format!("a TXT record of {domain} with undecodable characters was skipped"),
            );
            continue;
        };
        if is_sender_id(&text) {
            findings.warn(
                "spf_sender_id",
                format!("{domain} still publishes a deprecated Sender ID record (spf2.0); remove it: {text}"),
            );
            continue;
        }
        if is_spf_record(&text) {
            spf.push((text, r.chunks));
        } else if text.to_ascii_lowercase().starts_with("v=spf1") {
            findings.warn(
                "spf_resembles_record",
                format!("a TXT record of {domain} resembles SPF but its version is not exactly v=spf1, so receivers ignore it: {text}"),
            );
        }
    }
    if spf.len() > 1 {
        return Ok(Err((
            SpfErrorKind::MultipleRecords,
            format!(
                "{domain} publishes {} SPF records; receivers treat more than one as a permanent error (RFC 7208 §4.5): merge them into one",
                spf.len()
            ),
            findings,
        )));
    }
    let Some((record, chunks)) = spf.pop() else {
        return Ok(Err((
            SpfErrorKind::NotFound,
            format!("{domain} has no SPF record"),
            findings,
        )));
    };
    for (i, c) in chunks.iter().enumerate() {
        if c.len() > 255 {
            findings.warn(
                "spf_string_too_long",
                format!("string {} of the SPF record of {domain} is {} bytes; a TXT string holds at most 255", i + 1, c.len()),
            );
        }
    }
    let total: usize = chunks.iter().map(Vec::len).sum();
    if total > 512 {
        findings.warn(
            "spf_record_too_large",
            format!("the SPF record of {domain} is {total} bytes, over 512: some receivers may not get it over UDP (RFC 7208 §3.4)"),
        );
    } else if total > 450 {
        findings.warn(
            "spf_record_large",
            format!("the SPF record of {domain} is {total} bytes; RFC 7208 §3.4 advises staying under about 450"),
        );
    }
    Ok(Ok(Lookup { record, findings }))
}

struct Walker<'a> {
    dns: &'a Dns,
    lookups: u32,
    voids: u32,
    limit: Option<SpfError>,
    findings: Findings,
    seen: Vec<String>,
    cache: HashMap<String, (u32, u32)>,
    capped: bool,
}

impl Walker<'_> {
    fn count(&mut self, n: u32) {
        self.lookups += n;
        if self.lookups > MAX_DNS_LOOKUPS && self.limit.is_none() {
            self.limit = Some(SpfError {
                kind: SpfErrorKind::TooManyLookups,
                message: String::new(),
            });
        }
    }

    fn void(&mut self, n: u32) {
        self.voids += n;
        if self.voids > MAX_VOID_LOOKUPS && self.limit.is_none() {
            self.limit = Some(SpfError {
                kind: SpfErrorKind::TooManyVoidLookups,
                message: String::new(),
            });
        }
    }

    /// Evaluate one record; returns its final `all` (own or from its redirect).
    fn walk<'s>(
        &'s mut self,
        record: String,
        domain: String,
        recursion: Vec<String>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<Qualifier>, Fatal>> + Send + 's>,
    > {
        Box::pin(async move {
            let parsed = parse_record(&record).map_err(|e| {
                fatal(
                    SpfErrorKind::Syntax,
                    format!(
                        "the SPF record of {domain} has a syntax error: {}",
                        e.message
                    ),
                )
            })?;
            self.findings.extend(parsed.findings.clone());
            let mut all: Option<Qualifier> = None;
            if let Some(exp) = &parsed.exp {
                self.check_exp(exp).await?;
            }
            for term in &parsed.terms {
                match term.kind {
                    TermKind::All => all = Some(term.qualifier),
                    TermKind::Ip4 | TermKind::Ip6 | TermKind::Exp => {}
                    TermKind::Exists => self.count(1),
                    TermKind::A => {
                        self.count(1);
                        if term.value.contains('%') {
                            continue;
                        }
                        let (d, _, _) = split_domain_cidr(&term.value, "a")
                            .map_err(|e| fatal(SpfErrorKind::Syntax, e.message))?;
                        let target = if d.is_empty() { domain.clone() } else { d };
                        match self.dns.addresses(&target).await.map_err(|e| {
                            e.during(format_args!("a:{target} in the SPF record of {domain}"))
                        })? {
                            Answer::Records(_) => {}
                            Answer::NxDomain => self.void_target(
                                &target,
                                format!("the domain {target} does not exist"),
                            ),
                            Answer::NoData => self.void_target(
                                &target,
                                format!(
                                    "an a mechanism points to {target}, which has no A/AAAA records"
                                ),
                            ),
                        }
                    }
                    TermKind::Mx => {
                        self.count(1);
                        if term.value.contains('%') {
                            continue;
                        }
                        let (d, _, _) = split_domain_cidr(&term.value, "mx")
                            .map_err(|e| fatal(SpfErrorKind::Syntax, e.message))?;
                        let target = if d.is_empty() { domain.clone() } else { d };
                        let hosts: Vec<String> = match self.dns.mx(&target).await.map_err(|e| {
                            e.during(format_args!("mx:{target} in the SPF record of {domain}"))
                        })? {
                            Answer::NxDomain => {
                                self.void_target(
                                    &target,
                                    format!("the domain {target} does not exist"),
                                );
                                continue;
                            }
                            Answer::NoData => Vec::new(),
                            Answer::Records(r) => r
                                .into_iter()
                                .filter(|(_, h)| h != ".")
                                .map(|(_, h)| h)
                                .collect(),
                        };
                        if hosts.is_empty() {
                            self.void_target(
                                &target,
                                format!(
                                    "an mx mechanism points to {target}, which has no MX records"
                                ),
                            );
                            continue;
                        }
                        if hosts.len() > 10 {
                            return Err(fatal(
                                SpfErrorKind::TooManyLookups,
                                format!(
                                    "{target} has {} MX hosts; an mx mechanism may resolve at most 10 (RFC 7208 §4.6.4)",
                                    hosts.len()
                                ),
                            ));
                        }
                        for h in hosts {
                            match self.dns.addresses(&h).await.map_err(|e| {
                                e.during(format_args!(
                                    "the MX host {h} of mx:{target} in the SPF record of {domain}"
                                ))
                            })? {
                                Answer::Records(_) => {}
                                Answer::NxDomain => {
                                    self.findings.warn(
                                        "spf_mx_host_no_address",
                                        format!("the MX host {h} (of {target}) does not exist"),
                                    );
                                    break;
                                }
                                Answer::NoData => self.findings.warn(
                                    "spf_mx_host_no_address",
                                    format!("the MX host {h} (of {target}) has no A/AAAA records"),
                                ),
                            }
                        }
                    }
                    TermKind::Ptr => {
                        self.count(1);
                        self.findings.warn(
                            "spf_ptr",
                            "the ptr mechanism should not be used (RFC 7208 §5.5): it is slow and some receivers skip it; list the IPs or include your provider instead",
                        );
                    }
                    TermKind::Include => {
                        let target = term.value.clone();
                        if target.contains('%') {
                            self.count(1);
                            continue;
                        }
                        if recursion.contains(&target) {
                            let mut chain = recursion.clone();
                            chain.push(target.clone());
                            return Err(fatal(
                                SpfErrorKind::IncludeLoop,
                                format!("include loop: {}", chain.join(" -> ")),
                            ));
                        }
                        if self.seen.contains(&target) {
                            self.findings.warn(
                                "spf_duplicate_include",
                                format!("{target} is included more than once; every copy counts toward the lookup limit"),
                            );
                            if let Some((l, v)) = self.cache.get(&target).copied() {
                                self.count(1 + l);
                                self.void(v);
                                continue;
                            }
                        } else {
                            self.seen.push(target.clone());
                        }
                        self.count(1);
                        if self.lookups > WALK_CAP {
                            self.capped = true;
                            continue;
                        }
                        let found = match query_record(self.dns, &target).await.map_err(|e| {
                            e.during(format_args!(
                                "include:{target} in the SPF record of {domain}"
                            ))
                        })? {
                            Ok(l) => l,
                            Err((kind, msg, f)) => {
                                self.findings.extend(f);
                                if kind == SpfErrorKind::MultipleRecords {
                                    return Err(fatal(kind, msg));
                                }
                                self.void(1);
                                return Err(fatal(
                                    SpfErrorKind::IncludeNotFound,
                                    format!(
                                        "the include target {target} has no SPF record ({msg}), which RFC 7208 §5.2 makes a permanent error"
                                    ),
                                ));
                            }
                        };
                        self.findings.extend(found.findings);
                        let (l0, v0) = (self.lookups, self.voids);
                        let mut chain = recursion.clone();
                        chain.push(target.clone());
                        self.walk(found.record, target.clone(), chain).await?;
                        self.cache
                            .insert(target, (self.lookups - l0, self.voids - v0));
                    }
                    TermKind::Redirect => {
                        if parsed.all_present {
                            self.findings.warn(
                                "spf_redirect_ignored",
                                "the redirect modifier is ignored because the record also has an all mechanism (RFC 7208 §6.1)",
                            );
                            continue;
                        }
                        self.count(1);
                        let target = term.value.clone();
                        if target.contains('%') {
                            continue;
                        }
                        if recursion.contains(&target) {
                            let mut chain = recursion.clone();
                            chain.push(target.clone());
                            return Err(fatal(
                                SpfErrorKind::RedirectLoop,
                                format!("redirect loop: {}", chain.join(" -> ")),
                            ));
                        }
                        self.seen.push(target.clone());
                        if self.lookups > WALK_CAP {
                            self.capped = true;
                            continue;
                        }
                        let found = match query_record(self.dns, &target).await.map_err(|e| {
                            e.during(format_args!(
                                "redirect={target} in the SPF record of {domain}"
                            ))
                        })? {
                            Ok(l) => l,
                            Err((kind, msg, f)) => {
                                self.findings.extend(f);
                                let kind = if kind == SpfErrorKind::MultipleRecords {
                                    kind
                                } else {
                                    SpfErrorKind::RedirectNotFound
                                };
                                return Err(fatal(
                                    kind,
                                    format!(
                                        "the redirect target {target} has no usable SPF record ({msg}), which RFC 7208 §6.1 makes a permanent error"
                                    ),
                                ));
                            }
                        };
                        self.findings.extend(found.findings);
                        let mut chain = recursion.clone();
                        chain.push(target.clone());
                        all = self.walk(found.record, target, chain).await?;
                    }
                }
            }
            Ok(all)
        })
    }

    fn void_target(&mut self, target: &str, why: String) {
        self.void(1);
        self.findings.warn(
            "spf_void_lookup",
            format!("{why}: a void lookup ({target})"),
        );
    }

    async fn check_exp(&mut self, exp: &str) -> Result<(), Fatal> {
        if exp.contains('%') {
            return validate_macros(exp, true).map_err(|e| {
                fatal(
                    SpfErrorKind::Syntax,
                    format!("the exp modifier has a syntax error: {}", e.message),
                )
            });
        }
        match self
            .dns
            .txt(exp)
            .await
            .map_err(|e| e.during(format_args!("the exp={exp} explanation")))?
        {
            Answer::Records(r) if r.len() > 1 => self.findings.warn(
                "spf_exp_multiple",
                format!("there is more than one TXT record at the exp target {exp}"),
            ),
            Answer::Records(_) => {}
            Answer::NoData | Answer::NxDomain => self.findings.warn(
                "spf_exp_missing",
                format!("the exp target {exp} has no TXT record to explain failures"),
            ),
        }
        Ok(())
    }
}

/// Check a domain's SPF. A DNS failure (no answer at all) is an `Err`; every SPF problem is in
/// the report.
pub async fn check(dns: &Dns, domain: &str) -> Result<SpfReport, DnsFailure> {
    let domain = normalize(domain);
    let mut report = SpfReport {
        domain: domain.clone(),
        record: None,
        dns_lookups: 0,
        void_lookups: 0,
        all: None,
        error: None,
        findings: Findings::default(),
    };
    let lookup = match query_record(dns, &domain).await? {
        Ok(l) => l,
        Err((kind, message, f)) => {
            report.findings.extend(f);
            let message = if kind == SpfErrorKind::NotFound {
                format!("{message}: receivers cannot tell which servers may send its mail")
            } else {
                message
            };
            report.findings.fail(kind.code(), message.clone());
            report.error = Some(SpfError { kind, message });
            return Ok(report);
        }
    };
    report.record = Some(lookup.record.clone());
    report.findings.extend(lookup.findings);
    let mut w = Walker {
        dns,
        lookups: 0,
        voids: 0,
        limit: None,
        findings: Findings::default(),
        seen: vec![domain.clone()],
        cache: HashMap::new(),
        capped: false,
    };
    let outcome = w
        .walk(lookup.record, domain.clone(), vec![domain.clone()])
        .await;
    report.dns_lookups = w.lookups;
    report.void_lookups = w.voids;
    report.findings.extend(std::mem::take(&mut w.findings));
    if w.capped {
        report.findings.info(
            "spf_walk_capped",
            format!(
                "stopped following includes after {WALK_CAP} lookups; the real count is higher"
            ),
        );
    }
    match outcome {
        Err(Fatal::Dns(f)) => return Err(f),
        Err(Fatal::Spf(e)) => report.error = Some(e),
        Ok(all) => {
            report.all = all;
            if let Some(mut limit) = w.limit.take() {
                limit.message = match limit.kind {
                    SpfErrorKind::TooManyVoidLookups => format!(
                        "SPF evaluation hits {} void lookups (names that do not exist or have no records), more than the {MAX_VOID_LOOKUPS} \
                         receivers allow (RFC 7208 §4.6.4): they will treat the record as a permanent error",
                        w.voids
                    ),
                    _ => format!(
                        "SPF needs {} DNS lookups, more than the {MAX_DNS_LOOKUPS} receivers allow (RFC 7208 §4.6.4): they will treat \
                         the record as a permanent error and mail as unauthenticated; remove or flatten includes",
                        w.lookups
                    ),
                };
                report.error = Some(limit);
            }
        }
    }
    if let Some(e) = &report.error {
        report.findings.fail(e.kind.code(), e.message.clone());
    } else {
        match report.all {
            Some(Qualifier::Pass) => report.findings.warn(
                "spf_all_pass",
                "the record ends in +all, which authorises every server on the internet to send as this domain: use -all or ~all",
            ),
            Some(Qualifier::Neutral) => report.findings.warn(
                "spf_all_neutral",
                "the record ends in ?all, which makes no statement about other servers: use -all or ~all",
            ),
            None => report.findings.warn(
                "spf_no_all",
                "the record ends without -all or ~all, so unlisted servers get a neutral result: add -all or ~all",
            ),
            Some(Qualifier::Fail | Qualifier::SoftFail) => {}
        }
    }
    Ok(report)
}

/// The codes of SPF findings that checkdmarc does not produce (funnelgate's own additions).
pub const EXTENSION_CODES: [&str; 4] = [
    "spf_all_pass",
    "spf_all_neutral",
    "spf_no_all",
    "spf_walk_capped",
];

/// Short summary line for a report.
pub fn summary(r: &SpfReport) -> String {
    match (&r.error, r.findings.worst()) {
        (Some(_), _) => format!("SPF of {} is broken", r.domain),
        (None, Some(Level::Warn)) => format!(
            "SPF of {} is valid ({} of {MAX_DNS_LOOKUPS} DNS lookups) but needs attention",
            r.domain, r.dns_lookups
        ),
        (None, _) => format!(
            "SPF of {} is valid: {} of {MAX_DNS_LOOKUPS} DNS lookups, ends in {}all",
            r.domain,
            r.dns_lookups,
            r.all.map(|q| q.symbol()).unwrap_or('?')
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kinds(r: &str) -> Vec<TermKind> {
        parse_record(r)
            .unwrap()
            .terms
            .iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn parses_every_mechanism() {
        assert_eq!(
            kinds(
                "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx:mail.example.com/24 include:_spf.example.net exists:%{i}.x.example ptr ~all"
            ),
            vec![
                TermKind::Ip4,
                TermKind::Ip6,
                TermKind::A,
                TermKind::Mx,
                TermKind::Include,
                TermKind::Exists,
                TermKind::Ptr,
                TermKind::All
            ]
        );
        let p = parse_record("v=spf1 -all").unwrap();
        assert_eq!(p.terms[0].qualifier, Qualifier::Fail);
        assert!(p.all_present);
        assert!(parse_record("v=spf1").unwrap().terms.is_empty());
    }

    #[test]
    fn syntax_errors_name_their_position() {
        let e = parse_record("v=spf1 ip4:192.0.2.1~all").unwrap_err();
        assert_eq!(e.position, Some(20));
        assert!(e.message.contains("ip4:192.0.2.1➞~all"), "{e}");
        let e = parse_record("v=spf1 include:a.example 1bad -all").unwrap_err();
        assert_eq!(e.position, Some(25), "{e}");
        assert!(
            parse_record("v=spf1 foo:bar -all")
                .unwrap_err()
                .message
                .contains("not a valid spf mechanism")
        );
        assert!(parse_record("v=spf1 ip4:300.1.1.1 -all").is_err());
        assert!(
            parse_record("v=spf1 ip4:2001:db8::1 -all")
                .unwrap_err()
                .message
                .contains("ipv6")
        );
        assert!(
            parse_record("v=spf1 ip6:192.0.2.1 -all")
                .unwrap_err()
                .message
                .contains("ipv4")
        );
        assert!(parse_record("v=spf1 ip4:192.0.2.0/033 -all").is_err());
        assert!(parse_record("v=spf1 ip4:192.0.2.0/33 -all").is_err());
        assert!(parse_record("v=spf1 a/33 -all").is_err());
        assert!(parse_record("v=spf1 a/24//129 -all").is_err());
        assert!(parse_record("v=spf1 a/24//64 -all").is_ok());
        assert!(parse_record("v=spf1 include -all").is_err());
        assert!(parse_record("v=spf1 -all:x").is_err());
        assert!(parse_record("v=spf1 ptr/24 -all").is_err());
        assert!(parse_record("v=spf1 +redirect=x.example").is_err());
        assert!(parse_record("v=spf1 redirect=a.example redirect=b.example").is_err());
        assert!(parse_record("v=spf1 exp= -all").is_err());
        assert!(parse_record("v=spf1 exp=a.example -all exp=b.example").is_err());
    }

    #[test]
    fn macros_follow_rfc_7208_section_7() {
        assert!(validate_macros("%{i}._spf.%{d}", false).is_ok());
        assert!(validate_macros("%{ir}.%{l1r-}.example", false).is_ok());
        assert!(validate_macros("%{S}.example", false).is_ok());
        assert!(validate_macros("%%%_%-", false).is_ok());
        assert!(validate_macros("%{x}.example", false).is_err());
        assert!(validate_macros("%{i0}.example", false).is_err());
        assert!(validate_macros("%{i", false).is_err());
        assert!(validate_macros("%a", false).is_err());
        assert!(validate_macros("%", false).is_err());
        assert!(validate_macros("%{i!}", false).is_err());
        assert!(
            validate_macros("%{c}", false)
                .unwrap_err()
                .message
                .contains("only allowed in exp")
        );
        assert!(validate_macros("%{c} %{r} %{t}", true).is_ok());
        assert!(parse_record("v=spf1 exists:%{x}.example -all").is_err());
    }

    #[test]
    fn warnings_for_text_after_all_and_modifiers() {
        let p = parse_record("v=spf1 -all include:x.example").unwrap();
        assert!(p.findings.has("spf_text_after_all"));
        let p = parse_record("v=spf1 -all ~all").unwrap();
        assert!(p.findings.has("spf_multiple_all"));
        let p = parse_record("v=spf1 -all exp=explain.example").unwrap();
        assert_eq!(p.exp.as_deref(), Some("explain.example"));
        assert!(p.findings.0.is_empty());
        let p = parse_record("v=spf1 foo=bar -all").unwrap();
        assert!(p.findings.has("spf_unknown_modifier"));
        let p = parse_record("v=spf1 ra=postmaster rp=10 rr=e:f -all").unwrap();
        assert!(p.findings.0.is_empty());
        let p = parse_record("v=spf1 include:localhost -all").unwrap();
        assert!(p.findings.has("spf_invalid_domain_spec"));
        let p = parse_record("v=spf1 include:example.123 -all").unwrap();
        assert!(p.findings.has("spf_invalid_domain_spec"));
        // trailing whitespace is not text after all
        assert!(parse_record("v=spf1 -all  ").unwrap().findings.0.is_empty());
    }

    #[test]
    fn record_selection() {
        assert!(is_spf_record("v=spf1 -all"));
        assert!(is_spf_record("V=SPF1 -all"));
        assert!(is_spf_record("v=spf1"));
        assert!(!is_spf_record("v=spf10 -all"));
        assert!(!is_spf_record(" v=spf1 -all"));
        assert!(is_sender_id("v=spf2.0/pra,mfrom +all"));
        assert!(!is_sender_id("v=spf2.0/xyz +all"));
    }

    #[test]
    fn toplabels() {
        assert!(is_toplabel("com"));
        assert!(is_toplabel("xn--p1ai"));
        assert!(!is_toplabel("123"));
        assert!(!is_toplabel("-a"));
        assert!(!is_toplabel(""));
    }
}
