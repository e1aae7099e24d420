//! UTC instants as the vendors write them: HubSpot's ISO-8601 strings and epoch milliseconds,
//! Salesforce's `2024-05-01T12:00:00.000+0000` and SOQL literals, Pipedrive's
//! `2024-05-01 12:00:00`, and the SQL literals the warehouse probes inline.
//!
//! Parsing and formatting are `jiff`'s (calendar-checked: `2024-02-31` is rejected); this module
//! only knows which forms each vendor writes. No time zones beyond fixed offsets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant in milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utc(pub i64);

impl Utc {
    /// The current instant from the system clock.
    pub fn now() -> Utc {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Utc(ms)
    }

    /// `self − d`, saturating.
    pub fn minus(self, d: Duration) -> Utc {
        Utc(self
            .0
            .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }

    /// `self − days`.
    pub fn minus_days(self, days: u32) -> Utc {
        self.minus(Duration::from_secs(u64::from(days) * 86_400))
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Hours from `earlier` to `self` (negative if `earlier` is later).
    pub fn hours_since(self, earlier: Utc) -> f64 {
        (self.0 - earlier.0) as f64 / 3_600_000.0
    }

    fn at(self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.0).unwrap_or(if self.0 < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        })
    }

    /// `2024-05-01T12:00:00Z` (RFC 3339, UTC, whole seconds): SOQL datetime literals, messages.
    pub fn rfc3339(self) -> String {
        self.at().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// `2024-05-01`: SOQL date literals.
    pub fn date(self) -> String {
        self.at().strftime("%Y-%m-%d").to_string()
    }

    /// `2024-05-01 12:00:00.000`: SQL timestamp literals (UTC).
    pub fn sql(self) -> String {
        self.at().strftime("%Y-%m-%d %H:%M:%S%.3f").to_string()
    }

    /// Parse the instants vendors send: `2024-05-01T12:00:00Z`, `…00.123Z`, `…00.000+0000`,
    /// `…00+02:00`, `…00+00` (PostgreSQL), `2024-05-01 12:00:00` (no offset: UTC), `2024-05-01` (midnight UTC), or a
    /// string of epoch milliseconds (HubSpot date properties sometimes come that way). Dates are
    /// checked against the calendar (`2024-02-31` is rejected) by `jiff`.
    pub fn parse(s: &str) -> Option<Utc> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if s.bytes().all(|b| b.is_ascii_digit()) && s.len() >= 10 {
            return s.parse::<i64>().ok().map(Utc);
        }
        let b = s.as_bytes();
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let ts = if b.len() == 10 {
            let date: jiff::civil::Date = s.parse().ok()?;
            date.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp()
        } else {
            if b[10] != b'T' && b[10] != b' ' {
                return None;
            }
            let (civil, offset) = split_offset(s)?;
            let dt: jiff::civil::DateTime = civil.parse().ok()?;
            let ts = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
            ts.checked_sub(jiff::SignedDuration::from_secs(offset))
                .ok()?
        };
        Some(Utc(ts.as_millisecond()))
    }
}

/// Split `2024-05-01T12:00:00.000+02:00` into the civil part and the offset in seconds: `Z`,
/// none (UTC), `±HH`, `±HHMM` or `±HH:MM`.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(civil) = s.strip_suffix(['Z', 'z']) {
        return Some((civil, 0));
    }
    // The offset sign comes after the time (past index 10, the date's own dashes).
    let Some(at) = s
        .get(11..)
        .and_then(|t| t.rfind(['+', '-']))
        .map(|i| i + 11)
    else {
        return Some((s, 0));
    };
    let (civil, off) = s.split_at(at);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let digits = &off[1..];
    // Byte slicing below is only sound on ASCII (found by the `durations` fuzz target).
    if !digits.is_ascii() {
        return None;
    }
    let (h, m) = match (digits.len(), digits.as_bytes().get(2)) {
        (2, _) => (digits, "0"),
        (4, _) => (&digits[..2], &digits[2..]),
        (5, Some(b':')) => (&digits[..2], &digits[3..]),
        _ => return None,
    };
    if !h.bytes().chain(m.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    Some((civil, sign * (h * 3600 + m * 60)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_non_ascii_offset_is_not_a_timestamp_and_never_panics() {
        // Found by the `durations` fuzz target: a 4-byte "offset" holding a multi-byte character.
        assert!(Utc::parse("2u!4-0.-41T12:0:0>0\0s852u!4-\u{f}\u{3a5}").is_none());
        assert!(Utc::parse("2024-05-01T12:00:00+0\u{e9}0").is_none());
    }

    #[test]
    fn formats_and_parses_vendor_instants() {
        let t = Utc(1_714_564_800_123); // 2024-05-01T12:00:00.123Z
        assert_eq!(t.rfc3339(), "2024-05-01T12:00:00Z");
        assert_eq!(t.date(), "2024-05-01");
        assert_eq!(t.sql(), "2024-05-01 12:00:00.123");
        assert_eq!(Utc::parse("2024-05-01T12:00:00.123Z"), Some(t));
        assert_eq!(Utc::parse("2024-05-01T12:00:00.123+0000"), Some(t));
        assert_eq!(Utc::parse("2024-05-01T14:00:00.123+02:00"), Some(t));
        assert_eq!(Utc::parse("2024-05-01 12:00:00.123+00"), Some(t));
        assert_eq!(
            Utc::parse("2024-05-01 12:00:00"),
            Some(Utc(1_714_564_800_000))
        );
        assert_eq!(Utc::parse("2024-05-01"), Some(Utc(1_714_521_600_000)));
        assert_eq!(Utc::parse("1714564800123"), Some(t));
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-05-01T25:00:00Z",
            "2024-05-01T12:00:00+2",
            "2024-05-01T12:00:00+123",
            "2024-05-01T12:00:00.Z",
            "2024-02-31",
            "2023-02-29T00:00:00Z",
            "2024-04-31 12:00:00",
        ] {
            assert_eq!(Utc::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn arithmetic_is_in_days_and_hours() {
        let t = Utc(1_714_564_800_000);
        assert_eq!(t.minus_days(1).rfc3339(), "2024-04-30T12:00:00Z");
        assert!((t.hours_since(t.minus(Duration::from_secs(5400))) - 1.5).abs() < 1e-9);
        assert_eq!(Utc::parse(&Utc(0).rfc3339()), Some(Utc(0)));
    }
}
