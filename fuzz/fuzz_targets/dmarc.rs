//! DMARC records (RFC 7489 and DMARCbis) as DNS serves them:
//! `funnelgate_checker_esp::dmarc::{is_dmarc_record, parse_record, parse_report_uri}`.
//!
//! Input: the TXT payload. Invariants: no panic; a record that parses is a DMARC record by
//! `is_dmarc_record` (quotes around it aside); each tag written in it is kept (effective or removed); each `rua`/`ruf`
//! entry can be handed to `parse_report_uri` without a panic.
#![no_main]

use funnelgate_checker_esp::dmarc::{is_dmarc_record, parse_record, parse_report_uri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // parse_record reads a record the way DNS tools print it too: surrounding quotes dropped.
    let is_dmarc = is_dmarc_record(text.trim_matches('"'));
    let _ = parse_report_uri(text);
    let Ok(record) = parse_record(text, "example.com") else {
        return;
    };
    assert!(is_dmarc, "{text:?} parsed but is not a DMARC record");
    for tag in &record.explicit {
        assert!(
            record.tags.contains_key(tag) || record.removed.contains_key(tag),
            "{text:?}: written tag `{tag}` is neither kept nor listed as removed: {record:?}"
        );
    }
    for uris in [&record.rua, &record.ruf].into_iter().flatten() {
        for uri in uris.split(',') {
            let _ = parse_report_uri(uri.trim());
        }
    }
});
