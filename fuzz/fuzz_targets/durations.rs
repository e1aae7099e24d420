//! Durations and timestamps as users and vendors write them: `funnelgate_core::time`
//! (`parse_duration`, `format_duration`, `HumanDuration`'s serde form, `Timestamp`'s display) and
//! the CRM adapters' vendor timestamp parser (`funnelgate_checker_crm::time::Utc::parse`).
//!
//! Input: any text. Invariants: no panic; a parsed duration formats to text that parses back to
//! the same duration (and formats the same); the serde form agrees with `parse_duration`; a parsed
//! vendor timestamp (years 0–9999) printed as an SQL literal parses back to the same instant.
#![no_main]

use std::time::Duration;

use funnelgate_core::time::{HumanDuration, Timestamp, format_duration, parse_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 8 {
        let mut millis = [0u8; 8];
        millis.copy_from_slice(&data[..8]);
        let _ = Timestamp(i64::from_le_bytes(millis)).to_string();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let parsed = parse_duration(text);
    if let Ok(d) = parsed {
        let shown = format_duration(d);
        let again = parse_duration(&shown)
            .unwrap_or_else(|e| panic!("{text:?} parsed to {d:?}, formatted {shown:?}: {e}"));
        assert_eq!(again, d, "{text:?} -> {shown:?} does not round-trip");
        assert_eq!(format_duration(again), shown);
        assert_eq!(HumanDuration(d).to_string(), shown);
    }
    let via_serde = serde_json::from_value::<HumanDuration>(serde_json::Value::String(text.into()));
    assert_eq!(
        via_serde.as_ref().ok().map(|h| h.get()),
        parsed.as_ref().ok().copied(),
        "serde and parse_duration disagree on {text:?}"
    );
    let _: Option<Duration> = via_serde.ok().map(HumanDuration::get);

    if let Some(t) = funnelgate_checker_crm::time::Utc::parse(text) {
        let _ = (t.rfc3339(), t.date());
        // Years 0000..=9999 print as four digits, which is what the parser reads back.
        const MIN: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
        const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let shown = t.sql();
        if (MIN..=MAX).contains(&t.0) {
            let back = funnelgate_checker_crm::time::Utc::parse(&shown).unwrap_or_else(|| {
                panic!(
                    "{text:?} parsed to {}, printed {shown:?}, which does not parse",
                    t.0
                )
            });
            assert_eq!(back.0, t.0, "{text:?} -> {shown:?} does not round-trip");
        }
    }
});
