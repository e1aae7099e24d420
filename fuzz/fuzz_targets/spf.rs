//! SPF records (RFC 7208) as DNS serves them: `funnelgate_checker_esp::spf::{is_spf_record,
//! parse_record, validate_macros}`.
//!
//! Input: the TXT payload. Invariants: no panic; a record that parses is an SPF record by
//! `is_spf_record`; `all_present` holds exactly when an `all` term was kept; every kept
//! macro-bearing value passes the macro check again.
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
    assert!(is_spf, "{text:?} parsed but is not an SPF record");
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
