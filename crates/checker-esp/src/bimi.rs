//! BIMI (optional): `<selector>._bimi.<domain>` TXT `v=BIMI1; l=<https SVG>; a=<https PEM mark
//! certificate>`. Mailbox providers show the logo only when DMARC is at enforcement
//! (`p=quarantine` or `p=reject`, subdomains not exempted with `sp=none`, and for pre-DMARCbis
//! receivers no `pct` below 100), and most only with a verified mark certificate.

use crate::dmarc::{self, Policy};
use crate::dns::{Answer, Dns, DnsFailure, normalize};
use crate::findings::Findings;

/// A parsed BIMI record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BimiRecord {
    /// `l=` logo locations (empty when declining).
    pub logos: Vec<String>,
    /// `a=` mark certificate location.
    pub authority: Option<String>,
}

/// Parse a BIMI assertion record.
pub fn parse_record(text: &str) -> Result<BimiRecord, String> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for part in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not a tag=value pair"))?;
        let k = k.trim().to_ascii_lowercase();
        if tags.iter().any(|(t, _)| *t == k) {
            return Err(format!("the tag {k} appears more than once"));
        }
        tags.push((k, v.trim().to_string()));
    }
    match tags.first() {
        Some((k, v)) if k == "v" && v == "BIMI1" => {}
        _ => return Err("the record must start with v=BIMI1".into()),
    }
    let get = |n: &str| tags.iter().find(|(t, _)| t == n).map(|(_, v)| v.clone());
    let logos: Vec<String> = match get("l") {
        None => return Err("the record has no l= tag (logo location)".into()),
        Some(l) => l
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    for l in &logos {
        if !l.to_ascii_lowercase().starts_with("https://") {
            return Err(format!("the logo location {l} must be an https URL"));
        }
    }
    let authority = get("a").filter(|a| !a.is_empty());
    if let Some(a) = authority
        .as_ref()
        .filter(|a| !a.to_ascii_lowercase().starts_with("https://"))
    {
        return Err(format!(
            "the mark certificate location {a} must be an https URL"
        ));
    }
    Ok(BimiRecord { logos, authority })
}

/// Outcome of a BIMI check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BimiReport {
    /// The record found.
    pub record: Option<String>,
    /// Parsed, when valid.
    pub parsed: Option<BimiRecord>,
    /// The record is valid and DMARC allows the logo to show.
    pub eligible: bool,
    /// What is wrong or notable.
    pub findings: Findings,
}

/// Check BIMI for a domain and selector (`default` normally).
pub async fn check(dns: &Dns, domain: &str, selector: &str) -> Result<BimiReport, DnsFailure> {
    let domain = normalize(domain);
    let name = format!("{selector}._bimi.{domain}");
    let mut r = BimiReport {
        record: None,
        parsed: None,
        eligible: false,
        findings: Findings::default(),
    };
    let recs: Vec<String> = match dns.txt(&name).await? {
        Answer::Records(t) => t
            .iter()
            .filter_map(|t| t.text())
            .filter(|t| t.trim_start().starts_with("v=BIMI1"))
            .collect(),
        _ => Vec::new(),
    };
    let record = match recs.as_slice() {
        [] => {
            r.findings.info(
                "bimi_missing",
                format!("{domain} publishes no BIMI record at {name} (optional)"),
            );
            return Ok(r);
        }
        [one] => one.clone(),
        many => {
            r.findings.fail(
                "bimi_multiple",
                format!(
                    "{name} has {} BIMI records; receivers then show no logo",
                    many.len()
                ),
            );
            return Ok(r);
        }
    };
    r.record = Some(record.clone());
    let parsed = match parse_record(&record) {
        Ok(p) => p,
        Err(e) => {
            r.findings.fail(
                "bimi_invalid",
                format!("the BIMI record at {name} is invalid: {e}"),
            );
            return Ok(r);
        }
    };
    if parsed.logos.is_empty() && parsed.authority.is_none() {
        r.findings.info(
            "bimi_declined",
            format!("{domain} declines to publish a BIMI logo"),
        );
        r.parsed = Some(parsed);
        return Ok(r);
    }
    if parsed.logos.is_empty() {
        r.findings.fail(
            "bimi_no_logo",
            format!("the BIMI record at {name} names no logo"),
        );
    }
    if parsed.authority.is_none() {
        r.findings.warn(
            "bimi_no_certificate",
            "the BIMI record has no mark certificate (a=): Gmail and Apple Mail only show logos with a verified mark certificate",
        );
    }
    let d = dmarc::check(dns, &domain).await?;
    match (&d.error, d.policy) {
        (Some(e), _) => r.findings.fail("bimi_dmarc_missing", format!("BIMI needs a valid DMARC policy: {}", e.message)),
        (None, Some(Policy::None)) | (None, None) => r.findings.fail(
            "bimi_dmarc_not_enforced",
            format!("BIMI needs DMARC at enforcement, but {domain} has p=none: move to quarantine or reject"),
        ),
        (None, Some(_)) => {
            if d.tags.get("sp").is_some_and(|s| s == "none") {
                r.findings.fail("bimi_dmarc_not_enforced", "BIMI needs subdomains enforced too, but DMARC has sp=none");
            }
            if let Some(pct) = d.removed_tags.get("pct").filter(|p| p.trim() != "100") {
                r.findings.fail(
                    "bimi_dmarc_not_enforced",
                    format!("BIMI needs DMARC applied to all mail, but pct={pct} (remove pct or set it to 100)"),
                );
            }
        }
    }
    r.eligible = r.findings.worst() != Some(crate::findings::Level::Fail);
    r.parsed = Some(parsed);
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        let r =
            parse_record("v=BIMI1; l=https://example.com/logo.svg; a=https://example.com/vmc.pem")
                .unwrap();
        assert_eq!(r.logos, vec!["https://example.com/logo.svg"]);
        assert!(r.authority.is_some());
        let d = parse_record("v=BIMI1; l=; a=;").unwrap();
        assert!(d.logos.is_empty() && d.authority.is_none());
        assert!(parse_record("v=BIMI1; l=http://example.com/logo.svg").is_err());
        assert!(parse_record("l=https://x/y.svg; v=BIMI1").is_err());
        assert!(parse_record("v=BIMI1").is_err());
        assert!(parse_record("v=BIMI1; l=https://x/y.svg; a=ftp://x/y.pem").is_err());
    }
}
