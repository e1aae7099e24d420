//! DKIM key records (RFC 6376 §3.6.1, RFC 8463) as DNS serves them:
//! `funnelgate_checker_esp::dkim::{parse_key_record, judge_record, rsa_modulus_bits}`, and the
//! DER reader behind the key-size check fed raw bytes.
//!
//! Input: the TXT payload. Invariants: no panic; `judge_record` reports a key type exactly when the
//! record parses, and a usable key has a size.
#![no_main]

use funnelgate_checker_esp::dkim::{judge_record, parse_key_record, rsa_modulus_bits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rsa_modulus_bits(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_key_record(text);
    let report = judge_record("fuzz", text);
    if let Ok(record) = &parsed {
        assert_eq!(
            report.key_type.as_ref(),
            Some(&record.key_type),
            "{text:?}: judge_record and parse_key_record disagree on the key type"
        );
    }
    if report.usable() {
        assert!(
            report.bits.is_some(),
            "{text:?}: a usable key without a size: {report:?}"
        );
    }
});
