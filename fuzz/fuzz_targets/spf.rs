//! SPF records (RFC 7208) as DNS serves them: `funnelgate_checker_esp::spf::{is_spf_record,
//! parse_record, validate_macros}`.
//!
//! Input: the TXT payload. Invariants: no panic; a record that parses starts with the `v=spf1`
//! version term (and `is_spf_record` agrees when a space follows it); `all_present` holds
//! exactly when an `all` term was kept; every kept macro-bearing value passes the macro check
//! again; parsing is deterministic.
#![no_main]

use funnelgate_checker_esp::spf::{TermKind, is_spf_record, parse_record, validate_macros};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let is_spf = is_spf_record(text);
    let _ = validate_macros(text, false);
    let _ = validate_macros(text, true);
    let Ok(record) = parse_record(text) else {
        return;
    };
    let version_term = text
        .get(..6)
        .is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
        && text.as_bytes().get(6).is_none_or(u8::is_ascii_whitespace);
    assert!(
        version_term,
        "{text:?} parsed without a `v=spf1` version term"
    );
    if text.len() == 6 || text.as_bytes().get(6) == Some(&b' ') {
        assert!(is_spf, "{text:?} parsed but is_spf_record refuses it");
    }
    let has_all = record.terms.iter().any(|t| t.kind == TermKind::All);
    assert_eq!(
        record.all_present, has_all,
        "{text:?}: all_present disagrees with the kept terms {:?}",
        record.terms
    );
    for term in &record.terms {
        if matches!(
            term.kind,
            TermKind::Include | TermKind::Exists | TermKind::Redirect
        ) {
            assert!(
                validate_macros(&term.raw_value, false).is_ok(),
                "{text:?}: kept term {term:?} fails the macro check"
            );
        }
    }
    assert_eq!(
        parse_record(text),
        Ok(record),
        "parsing {text:?} is not deterministic"
    );
});
