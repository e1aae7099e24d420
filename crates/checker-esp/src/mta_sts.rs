//! MTA-STS (RFC 8461) and SMTP TLS reporting (RFC 8460): advisory checks of how a domain asks
//! senders to protect mail to it. MTA-STS is a `_mta-sts.<domain>` TXT record plus a policy
//! file at `https://mta-sts.<domain>/.well-known/mta-sts.txt`; TLS-RPT is a `_smtp._tls.<domain>`
//! TXT record naming where failure reports go.
//!
//! Parsing is pure ([`parse_sts_record`], [`parse_policy`], [`parse_tlsrpt_record`]).

use std::time::Duration;

use crate::dns::{Answer, Dns, DnsFailure, normalize};
use crate::findings::Findings;

/// The largest `max_age` RFC 8461 §3.2 allows (one year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

fn fields(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (s.to_string(), String::new()),
        })
        .collect()
}

/// Parse an `_mta-sts` TXT record; returns the policy `id`.
pub fn parse_sts_record(text: &str) -> Result<String, String> {
    let f = fields(text);
    match f.first() {
        Some((k, v)) if k == "v" && v == "STSv1" => {}
        _ => return Err("the record must start with v=STSv1".into()),
    }
    let mut id = None;
    for (k, v) in &f[1..] {
        if k == "id" {
            if id.is_some() {
                return Err("the id field appears more than once".into());
            }
            if v.is_empty() || v.len() > 32 || !v.bytes().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!("id={v} must be 1 to 32 letters and digits"));
            }
            id = Some(v.clone());
        } else {
            let name_ok = !k.is_empty()
                && k.len() <= 32
                && k.as_bytes()[0].is_ascii_alphanumeric()
                && k.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
            let value_ok = !v.is_empty()
                && v.bytes()
                    .all(|c| (0x21..=0x7e).contains(&c) && c != b';' && c != b'=');
            if !name_ok || !value_ok {
                return Err(format!("`{k}={v}` is not a valid extension field"));
            }
        }
    }
    id.ok_or_else(|| "the record has no id field".into())
}

/// The policy mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Senders must use verified TLS.
    Enforce,
    /// Senders report failures but deliver anyway.
    Testing,
    /// No policy.
    None,
}

impl Mode {
    /// As written in the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A parsed policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `mode`.
    pub mode: Mode,
    /// `mx` patterns (`mail.example.com`, `*.example.com`).
    pub mx: Vec<String>,
    /// `max_age` in seconds.
    pub max_age: u64,
}

/// Parse a policy file (RFC 8461 §3.2): `key: value` lines.
pub fn parse_policy(body: &str) -> Result<Policy, String> {
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("the line `{line}` is not `key: value`"))?;
        let v = v.trim().to_string();
        match k.trim() {
            "version" => version = Some(v),
            "mode" => {
                mode = Some(match v.as_str() {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("mode {other} is not enforce, testing or none")),
                })
            }
            "max_age" => {
                let n: u64 = v
                    .parse()
                    .map_err(|_| format!("max_age {v} is not a number of seconds"))?;
                if n > MAX_AGE_LIMIT {
                    return Err(format!("max_age {n} exceeds {MAX_AGE_LIMIT} seconds"));
                }
                max_age = Some(n);
            }
            "mx" => mx.push(v.to_ascii_lowercase()),
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("the policy must say version: STSv1".into());
    }
    let mode = mode.ok_or("the policy has no mode")?;
    let max_age = max_age.ok_or("the policy has no max_age")?;
    if mx.is_empty() && mode != Mode::None {
        return Err("the policy lists no mx patterns".into());
    }
    Ok(Policy { mode, mx, max_age })
}

/// Whether an MX host matches a policy pattern (a `*.` wildcard covers exactly one label).
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (normalize(pattern), normalize(host));
    match p.strip_prefix("*.") {
        Some(suffix) => h.split_once('.').is_some_and(|(_, rest)| rest == suffix),
        None => p == h,
    }
}

/// Outcome of an MTA-STS check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsReport {
    /// The TXT record, when exactly one was found.
    pub record: Option<String>,
    /// The policy, when fetched and valid.
    pub policy: Option<Policy>,
    /// What is wrong or notable.
    pub findings: Findings,
}

/// Records at `name` whose text starts with `prefix` (case-sensitive, as both RFCs specify).
async fn records_with_prefix(
    dns: &Dns,
    name: &str,
    prefix: &str,
) -> Result<Vec<String>, DnsFailure> {
    Ok(match dns.txt(name).await? {
        Answer::Records(r) => r
            .iter()
            .filter_map(|t| t.text())
            .filter(|t| t.starts_with(prefix))
            .collect(),
        _ => Vec::new(),
    })
}

/// Where to fetch the policy from, and how.
#[derive(Clone, Debug)]
pub struct PolicyFetch<'a> {
    /// The HTTP client.
    pub http: &'a reqwest::Client,
    /// The URL (normally `https://mta-sts.<domain>/.well-known/mta-sts.txt`).
    pub url: String,
    /// Request timeout.
    pub timeout: Duration,
}

/// Check a domain's MTA-STS: the TXT record, then (when `fetch` is given) the policy, and that
/// the domain's MX hosts are covered by it.
pub async fn check(
    dns: &Dns,
    domain: &str,
    fetch: Option<PolicyFetch<'_>>,
    mx_hosts: &[String],
) -> Result<StsReport, DnsFailure> {
    let domain = normalize(domain);
    let name = format!("_mta-sts.{domain}");
    let mut f = Findings::default();
    let mut report = StsReport {
        record: None,
        policy: None,
        findings: Findings::default(),
    };
    let recs = records_with_prefix(dns, &name, "v=STSv1").await?;
    match recs.len() {
        0 => {
            f.warn(
                "mta_sts_missing",
                format!("{domain} publishes no MTA-STS record ({name}): senders may deliver to it without verified TLS"),
            );
            report.findings = f;
            return Ok(report);
        }
        1 => {}
        n => {
            f.fail(
                "mta_sts_multiple",
                format!(
                    "{name} has {n} MTA-STS records; senders then ignore MTA-STS (RFC 8461 §3.1)"
                ),
            );
            report.findings = f;
            return Ok(report);
        }
    }
    let record = recs[0].clone();
    report.record = Some(record.clone());
    if let Err(e) = parse_sts_record(&record) {
        f.fail(
            "mta_sts_invalid",
            format!("the MTA-STS record of {domain} is invalid: {e}"),
        );
        report.findings = f;
        return Ok(report);
    }
    if let Some(fetch) = fetch {
        match fetch_policy(&fetch).await {
            Err(e) => f.fail(
                "mta_sts_policy_unavailable",
                format!("the MTA-STS policy {} cannot be fetched: {e}", fetch.url),
            ),
            Ok((body, content_type)) => {
                if !content_type
                    .as_deref()
                    .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/plain"))
                {
                    f.warn(
                        "mta_sts_content_type",
                        format!(
                            "the MTA-STS policy is served as {}, not text/plain",
                            content_type.as_deref().unwrap_or("no content type")
                        ),
                    );
                }
                match parse_policy(&body) {
                    Err(e) => f.fail(
                        "mta_sts_policy_invalid",
                        format!("the MTA-STS policy of {domain} is invalid: {e}"),
                    ),
                    Ok(p) => {
                        match p.mode {
                            Mode::Testing => f.info("mta_sts_testing", "the MTA-STS policy is in testing mode: failures are reported, not enforced"),
                            Mode::None => f.warn("mta_sts_mode_none", "the MTA-STS policy has mode none: it protects nothing"),
                            Mode::Enforce => {}
                        }
                        for h in mx_hosts {
                            if p.mode != Mode::None && !p.mx.iter().any(|pat| mx_matches(pat, h)) {
                                let msg = format!(
                                    "the MX host {h} is not covered by the MTA-STS policy's mx patterns ({})",
                                    p.mx.join(", ")
                                );
                                if p.mode == Mode::Enforce {
                                    f.fail("mta_sts_mx_not_covered", format!("{msg}: senders enforcing the policy will not deliver to it"));
                                } else {
                                    f.warn("mta_sts_mx_not_covered", msg);
                                }
                            }
                        }
                        report.policy = Some(p);
                    }
                }
            }
        }
    }
    report.findings = f;
    Ok(report)
}

async fn fetch_policy(fetch: &PolicyFetch<'_>) -> Result<(String, Option<String>), String> {
    let resp = fetch
        .http
        .get(&fetch.url)
        .timeout(fetch.timeout)
        .send()
        .await
        .map_err(|e| describe_reqwest(&e))?;
    if resp.url().as_str() != fetch.url {
        return Err(format!(
            "it was served through a redirect to {}, which senders must not follow (RFC 8461 §3.3)",
            resp.url()
        ));
    }
    if !resp.status().is_success() {
        return Err(format!("the server answered {}", resp.status()));
    }
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().await.map_err(|e| describe_reqwest(&e))?;
    Ok((body, ct))
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    let mut msg = e.to_string();
    while let Some(next) = cur.source() {
        msg = next.to_string();
        cur = next;
    }
    if e.is_timeout() {
        "timed out".to_string()
    } else {
        msg
    }
}

/// Parse a TLS-RPT record (RFC 8460 §3): `v=TLSRPTv1; rua=<mailto: or https: URI>[,…]`.
pub fn parse_tlsrpt_record(text: &str) -> Result<Vec<String>, String> {
    let f = fields(text);
    match f.first() {
        Some((k, v)) if k == "v" && v == "TLSRPTv1" => {}
        _ => return Err("the record must start with v=TLSRPTv1".into()),
    }
    let rua: Vec<&(String, String)> = f.iter().filter(|(k, _)| k == "rua").collect();
    match rua.as_slice() {
        [] => Err("the record has no rua field".into()),
        [(_, v)] => {
            let uris: Vec<String> = v.split(',').map(|u| u.trim().to_string()).collect();
            for u in &uris {
                let l = u.to_ascii_lowercase();
                let ok = (l.starts_with("mailto:") && u[7..].contains('@'))
                    || (l.starts_with("https://") && u.len() > 8);
                if !ok {
                    return Err(format!("rua entry `{u}` is not a mailto: or https: URI"));
                }
            }
            Ok(uris)
        }
        _ => Err("the rua field appears more than once".into()),
    }
}

/// Outcome of a TLS-RPT check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsRptReport {
    /// The record, when exactly one was found.
    pub record: Option<String>,
    /// Where reports go.
    pub rua: Vec<String>,
    /// What is wrong or notable.
    pub findings: Findings,
}

/// Check a domain's `_smtp._tls` record.
pub async fn check_tlsrpt(dns: &Dns, domain: &str) -> Result<TlsRptReport, DnsFailure> {
    let domain = normalize(domain);
    let name = format!("_smtp._tls.{domain}");
    let mut r = TlsRptReport {
        record: None,
        rua: Vec::new(),
        findings: Findings::default(),
    };
    let recs = records_with_prefix(dns, &name, "v=TLSRPTv1").await?;
    match recs.as_slice() {
        [] => r.findings.warn(
            "tls_rpt_missing",
            format!("{domain} publishes no TLS-RPT record ({name}): nobody hears about TLS failures delivering to it"),
        ),
        [one] => {
            r.record = Some(one.clone());
            match parse_tlsrpt_record(one) {
                Ok(rua) => r.rua = rua,
                Err(e) => r.findings.fail("tls_rpt_invalid", format!("the TLS-RPT record of {domain} is invalid: {e}")),
            }
        }
        many => r.findings.fail(
            "tls_rpt_multiple",
            format!("{name} has {} TLS-RPT records; senders then ignore TLS-RPT (RFC 8460 §3)", many.len()),
        ),
    }
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sts_records() {
        assert_eq!(
            parse_sts_record("v=STSv1; id=20240101T000000;").unwrap(),
            "20240101T000000"
        );
        assert_eq!(parse_sts_record("v=STSv1;id=abc; ext-1=x").unwrap(), "abc");
        assert!(parse_sts_record("id=1; v=STSv1").is_err());
        assert!(parse_sts_record("v=STSv1").is_err());
        assert!(parse_sts_record("v=STSv1; id=not valid!").is_err());
        assert!(parse_sts_record("v=STSv1; id=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_err());
        assert!(parse_sts_record("v=STSv1; id=1; id=2").is_err());
    }

    #[test]
    fn policies() {
        let p = parse_policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n").unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.mx.len(), 2);
        assert!(parse_policy("version: STSv1\nmode: enforce\nmax_age: 1\n").is_err());
        assert!(parse_policy("version: STSv1\nmode: sometimes\nmx: a\nmax_age: 1\n").is_err());
        assert!(parse_policy("version: STSv1\nmode: none\nmax_age: 99999999999\n").is_err());
        assert!(parse_policy("mode: none\nmax_age: 1\n").is_err());
        assert!(parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n").is_ok());
    }

    #[test]
    fn mx_patterns() {
        assert!(mx_matches("mail.example.com", "MAIL.example.com."));
        assert!(mx_matches("*.example.com", "mx1.example.com"));
        assert!(!mx_matches("*.example.com", "a.b.example.com"));
        assert!(!mx_matches("*.example.com", "example.com"));
    }

    #[test]
    fn tlsrpt_records() {
        assert_eq!(
            parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:tls@example.com").unwrap(),
            vec!["mailto:tls@example.com"]
        );
        assert_eq!(
            parse_tlsrpt_record("v=TLSRPTv1;rua=mailto:a@x.com,https://r.example/tls")
                .unwrap()
                .len(),
            2
        );
        assert!(parse_tlsrpt_record("v=TLSRPTv1; rua=tls@example.com").is_err());
        assert!(parse_tlsrpt_record("v=TLSRPTv1").is_err());
        assert!(parse_tlsrpt_record("rua=mailto:a@b.c; v=TLSRPTv1").is_err());
    }
}
