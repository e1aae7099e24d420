//! RFC 8058 one-click unsubscribe on a sample message: a `List-Unsubscribe` header with an https
//! URI, `List-Unsubscribe-Post: List-Unsubscribe=One-Click`, and both headers covered by a
//! DKIM signature's `h=` list (Gmail and Yahoo require this of bulk senders' marketing mail).
//!
//! Headers are parsed here (RFC 5322 §2.2: `name: value`, folded lines unfolded); no MIME
//! parsing is needed. The signature's coverage is checked, not its cryptographic validity.

use std::sync::Arc;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeFactory, TypedFactory};
use funnelgate_core::Measurement;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::findings::{Findings, Level, measurement};

/// The only value RFC 8058 §3.1 allows in `List-Unsubscribe-Post`.
pub const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

/// The header section of a message: everything before the first empty line.
pub fn header_section(message: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < message.len() {
        let line_end = message[i..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| i + p + 1)
            .unwrap_or(message.len());
        let line = &message[i..line_end];
        if line == b"\n" || line == b"\r\n" {
            return &message[..i];
        }
        i = line_end;
    }
    message
}

/// Parse header fields, unfolding continuation lines (a line starting with a space or tab
/// continues the previous field, RFC 5322 §2.2.3). Names keep their case; values are trimmed.
/// Lines that are neither a field nor a continuation are skipped.
pub fn parse_headers(message: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(header_section(message));
    let mut fields: Vec<(String, String)> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push_str(line);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name_ok = !name.is_empty() && name.bytes().all(|c| (33..=126).contains(&c));
            if name_ok {
                fields.push((name.to_string(), value.to_string()));
            }
        }
    }
    fields
        .into_iter()
        .map(|(n, v)| (n, v.trim().to_string()))
        .collect()
}

/// All values of a header, case-insensitively.
pub fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The `<…>` URIs of a `List-Unsubscribe` value (RFC 2369 §2).
pub fn list_unsubscribe_uris(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start + 1..].find('>') else {
            break;
        };
        let uri: String = rest[start + 1..start + 1 + len]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        out.push(uri);
        rest = &rest[start + 1 + len + 1..];
    }
    out
}

/// A DKIM-Signature's tags (RFC 6376 §3.5), whitespace inside values removed.
pub fn dkim_signature_tags(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .filter_map(|spec| spec.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.chars().filter(|c| !c.is_whitespace()).collect(),
            )
        })
        .collect()
}

/// What the sample message shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsubscribeReport {
    /// The https unsubscribe URI, when present.
    pub https_uri: Option<String>,
    /// The `d=` of a signature covering both headers.
    pub covered_by: Option<String>,
    /// What is wrong or notable.
    pub findings: Findings,
}

impl UnsubscribeReport {
    /// One-click unsubscribe is in place.
    pub fn ready(&self) -> bool {
        self.https_uri.is_some() && self.findings.worst() != Some(Level::Fail)
    }
}

/// Check a message's headers (pure).
pub fn check_message(message: &[u8], require_dkim_coverage: bool) -> UnsubscribeReport {
    let headers = parse_headers(message);
    let mut f = Findings::default();
    let mut report = UnsubscribeReport {
        https_uri: None,
        covered_by: None,
        findings: Findings::default(),
    };
    let lu = header_values(&headers, "List-Unsubscribe");
    let lup = header_values(&headers, "List-Unsubscribe-Post");
    match lu.as_slice() {
        [] => f.fail("unsubscribe_missing", "the message has no List-Unsubscribe header: Gmail and Yahoo require one-click unsubscribe for marketing mail"),
        [value, rest @ ..] => {
            if !rest.is_empty() {
                f.warn("unsubscribe_multiple", "the message has more than one List-Unsubscribe header; receivers may use either");
            }
            let uris = list_unsubscribe_uris(value);
            report.https_uri = uris.iter().find(|u| u.to_ascii_lowercase().starts_with("https://")).cloned();
            match &report.https_uri {
                Some(u) => {
                    let after_host = u[8..].find('/').map(|i| &u[8 + i..]).unwrap_or("");
                    if after_host.len() <= 1 {
                        f.warn(
                            "unsubscribe_uri_not_opaque",
                            format!("the unsubscribe URI {u} carries no subscriber token: a one-click POST to it cannot tell who unsubscribes"),
                        );
                    }
                }
                None if uris.iter().any(|u| u.to_ascii_lowercase().starts_with("http://")) => f.fail(
                    "unsubscribe_not_https",
                    "List-Unsubscribe has an http URI but no https one: one-click unsubscribe needs https (RFC 8058 §3.1)",
                ),
                None => f.fail(
                    "unsubscribe_no_https",
                    format!("List-Unsubscribe has no https URI ({}): one-click unsubscribe needs one (mailto alone is not enough for Gmail)", if uris.is_empty() { "no <URI> at all".to_string() } else { uris.join(", ") }),
                ),
            }
        }
    }
    match lup.as_slice() {
        [] => f.fail(
            "unsubscribe_post_missing",
            format!("the message has no List-Unsubscribe-Post header: add `List-Unsubscribe-Post: {ONE_CLICK}` (RFC 8058)"),
        ),
        [value, ..] if value.trim().eq_ignore_ascii_case(ONE_CLICK) => {}
        [value, ..] => f.fail(
            "unsubscribe_post_invalid",
            format!("List-Unsubscribe-Post is `{value}`; RFC 8058 §3.1 requires exactly `{ONE_CLICK}`"),
        ),
    }
    let sigs = header_values(&headers, "DKIM-Signature");
    let covering = sigs.iter().find_map(|s| {
        let tags = dkim_signature_tags(s);
        let h = tags
            .iter()
            .find(|(k, _)| k == "h")
            .map(|(_, v)| v.to_ascii_lowercase())?;
        let signed: Vec<&str> = h.split(':').collect();
        (signed.contains(&"list-unsubscribe") && signed.contains(&"list-unsubscribe-post")).then(
            || {
                tags.iter()
                    .find(|(k, _)| k == "d")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            },
        )
    });
    let push = |f: &mut Findings, code: &'static str, msg: String| {
        if require_dkim_coverage {
            f.fail(code, msg);
        } else {
            f.warn(code, msg);
        }
    };
    match (&covering, sigs.is_empty()) {
        (Some(d), _) => report.covered_by = Some(d.clone()),
        (None, true) => push(
            &mut f,
            "unsubscribe_not_signed",
            "the message has no DKIM-Signature: RFC 8058 §4 needs the unsubscribe headers covered by a DKIM signature".into(),
        ),
        (None, false) => push(
            &mut f,
            "unsubscribe_not_covered",
            "no DKIM-Signature lists both List-Unsubscribe and List-Unsubscribe-Post in its h= tag: receivers will not trust the one-click headers (RFC 8058 §4)".into(),
        ),
    }
    report.findings = f;
    report
}

fn default_true() -> bool {
    true
}

/// Params of `email.one_click_unsubscribe`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OneClickParams {
    /// Path of a sample marketing message as sent (an `.eml` file with its full headers, e.g.
    /// saved from a seed inbox or the canary journey).
    pub eml_path: String,
    /// Both headers must be covered by a DKIM signature's `h=` list (RFC 8058 §4); false only
    /// warns.
    #[serde(default = "default_true")]
    pub require_dkim_coverage: bool,
}

struct OneClickProbe(OneClickParams);

#[async_trait]
impl Probe for OneClickProbe {
    async fn run(&self, _ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let path = &self.0.eml_path;
        let bytes = tokio::fs::read(path).await.map_err(|e| {
            ProbeError::permanent(format!("cannot read the sample message {path}: {e}"))
        })?;
        if bytes.is_empty() {
            return Err(ProbeError::permanent(format!(
                "the sample message {path} is empty"
            )));
        }
        let r = check_message(&bytes, self.0.require_dkim_coverage);
        let summary = if r.ready() {
            "the sample message supports one-click unsubscribe (RFC 8058)".to_string()
        } else {
            "the sample message does not support one-click unsubscribe".to_string()
        };
        let mut m = measurement(
            Some(if r.ready() { 1.0 } else { 0.0 }),
            "bool",
            summary,
            &r.findings,
        )
        .with_evidence("eml_path", path.clone());
        if let Some(u) = &r.https_uri {
            m = m.with_evidence("unsubscribe_uri", u.clone());
        }
        if let Some(d) = &r.covered_by {
            m = m.with_evidence("dkim_d", d.clone());
        }
        Ok(m)
    }
}

/// `email.one_click_unsubscribe`: RFC 8058 headers on a sample message.
pub fn factory() -> impl ProbeFactory {
    TypedFactory::<OneClickParams, _>::new(
        "email.one_click_unsubscribe",
        "One-click unsubscribe (RFC 8058) on a sample message: an https List-Unsubscribe, List-Unsubscribe-Post: List-Unsubscribe=One-Click, both covered by the DKIM signature; 1 when ready",
        "bool",
        |p: OneClickParams| {
            if p.eml_path.trim().is_empty() {
                return Err(ProbeError::params(
                    "`eml_path`: give the path of a sample .eml message",
                ));
            }
            Ok(Arc::new(OneClickProbe(p)) as Arc<dyn Probe>)
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GOOD: &str = "Received: from a by b;\r\n Tue, 1 Apr 2025 10:00:00 +0000\r\n\
DKIM-Signature: v=1; a=rsa-sha256; d=news.example.com; s=s1;\r\n\th=From:To:Subject:Date:List-Unsubscribe:\r\n\t List-Unsubscribe-Post:Message-ID; bh=abc=; b=def\r\n\
From: News <news@example.com>\r\n\
List-Unsubscribe: <mailto:unsub@example.com?subject=u>,\r\n <https://example.com/u/opaque-token-123>\r\n\
List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
Subject: Hello\r\n\r\nbody: not a header\r\nList-Unsubscribe: <https://evil.example/>\r\n";

    #[test]
    fn folded_headers_are_unfolded() {
        let h = parse_headers(GOOD.as_bytes());
        assert_eq!(
            header_values(&h, "received"),
            vec!["from a by b; Tue, 1 Apr 2025 10:00:00 +0000"]
        );
        assert_eq!(
            header_values(&h, "List-Unsubscribe"),
            vec!["<mailto:unsub@example.com?subject=u>, <https://example.com/u/opaque-token-123>"]
        );
        assert_eq!(
            header_values(&h, "subject"),
            vec!["Hello"],
            "the body is not parsed"
        );
        let lf = parse_headers(b"A: 1\n  continued\nB:2\n\nC: body");
        assert_eq!(
            lf,
            vec![
                ("A".to_string(), "1  continued".to_string()),
                ("B".to_string(), "2".to_string())
            ]
        );
    }

    #[test]
    fn uris_and_signature_tags() {
        assert_eq!(
            list_unsubscribe_uris("<mailto:a@b.c>, <https://x.example/u?t=1>"),
            vec!["mailto:a@b.c", "https://x.example/u?t=1"]
        );
        assert_eq!(
            list_unsubscribe_uris("<https://x.example/u\r\n ?t=1>"),
            vec!["https://x.example/u?t=1"]
        );
        assert!(list_unsubscribe_uris("https://no-brackets.example").is_empty());
        let t = dkim_signature_tags("v=1; d=example.com; h=From:\r\n\t To ; b=a b c");
        assert!(t.contains(&("h".to_string(), "From:To".to_string())));
        assert!(t.contains(&("b".to_string(), "abc".to_string())));
    }

    #[test]
    fn a_compliant_message_passes() {
        let r = check_message(GOOD.as_bytes(), true);
        assert!(r.ready(), "{r:?}");
        assert_eq!(
            r.https_uri.as_deref(),
            Some("https://example.com/u/opaque-token-123")
        );
        assert_eq!(r.covered_by.as_deref(), Some("news.example.com"));
        assert!(r.findings.0.is_empty());
    }

    #[test]
    fn each_missing_piece_is_named() {
        let m = GOOD.replace(
            "<https://example.com/u/opaque-token-123>",
            "<http://example.com/u/t>",
        );
        assert!(
            check_message(m.as_bytes(), true)
                .findings
                .has("unsubscribe_not_https")
        );
        let m = GOOD.replace(",\r\n <https://example.com/u/opaque-token-123>", "");
        assert!(
            check_message(m.as_bytes(), true)
                .findings
                .has("unsubscribe_no_https")
        );
        let m = GOOD.replace("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "");
        assert!(
            check_message(m.as_bytes(), true)
                .findings
                .has("unsubscribe_post_missing")
        );
        let m = GOOD.replace("List-Unsubscribe=One-Click", "One-Click");
        assert!(
            check_message(m.as_bytes(), true)
                .findings
                .has("unsubscribe_post_invalid")
        );
        let m = GOOD.replace("\r\n\t List-Unsubscribe-Post", "");
        let r = check_message(m.as_bytes(), true);
        assert!(r.findings.has("unsubscribe_not_covered") && !r.ready());
        let r = check_message(m.as_bytes(), false);
        assert!(r.ready() && r.findings.verdict() == funnelgate_core::ProbeStatus::Warn);
        let m = GOOD.replace(
            "https://example.com/u/opaque-token-123",
            "https://example.com/",
        );
        assert!(
            check_message(m.as_bytes(), true)
                .findings
                .has("unsubscribe_uri_not_opaque")
        );
        assert!(
            check_message(b"From: a@b.c\r\n\r\n", true)
                .findings
                .has("unsubscribe_missing")
        );
    }
}
