//! UTC instants as the vendors write them: HubSpot's ISO-8601 strings and epoch milliseconds,
//! Salesforce's `2024-05-01T12:00:00.000+0000` and SOQL literals, Pipedrive's
//! `2024-05-01 12:00:00`, and the SQL literals the warehouse probes inline.
//!
//! Only what the probes need: no time zones beyond fixed offsets, no leap seconds.

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

    fn parts(self) -> (i64, u32, u32, i64, i64, i64, i64) {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        (y, m, d, sod / 3600, sod % 3600 / 60, sod % 60, ms)
    }

    /// `2024-05-01T12:00:00Z` (RFC 3339, UTC, whole seconds): SOQL datetime literals, messages.
    pub fn rfc3339(self) -> String {
        let (y, m, d, hh, mm, ss, _) = self.parts();
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }

    /// `2024-05-01`: SOQL date literals.
    pub fn date(self) -> String {
        let (y, m, d, ..) = self.parts();
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// `2024-05-01 12:00:00.000`: SQL timestamp literals (UTC).
    pub fn sql(self) -> String {
        let (y, m, d, hh, mm, ss, ms) = self.parts();
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}.{ms:03}")
    }

    /// Parse the instants vendors send: `2024-05-01T12:00:00Z`, `…00.123Z`, `…00.000+0000`,
    /// `…00+02:00`, `…00+00` (PostgreSQL), `2024-05-01 12:00:00` (no offset: UTC), `2024-05-01` (midnight UTC), or a
    /// string of epoch milliseconds (HubSpot date properties sometimes come that way).
    pub fn parse(s: &str) -> Option<Utc> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if s.bytes().all(|b| b.is_ascii_digit()) && s.len() >= 10 {
            return s.parse::<i64>().ok().map(Utc);
        }
        let b = s.as_bytes();
        let num = |from: usize, len: usize| -> Option<i64> {
            let part = s.get(from..from + len)?;
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().ok()
            } else {
                None
            }
        };
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
            return None;
        }
        let days = days_from_civil(y, mo as u32, d as u32);
        if b.len() == 10 {
            return Some(Utc(days * 86_400_000));
        }
        if b[10] != b'T' && b[10] != b' ' {
            return None;
        }
        if b.len() < 19 || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (hh, mm, ss) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
        if hh > 23 || mm > 59 || ss > 60 {
            return None;
        }
        let mut i = 19;
        let mut ms = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let frac = s.get(start..i)?;
            if frac.is_empty() {
                return None;
            }
            let mut digits: String = frac.chars().take(3).collect();
            while digits.len() < 3 {
                digits.push('0');
            }
            ms = digits.parse().ok()?;
        }
        let offset_min: i64 = match s.get(i..)? {
            "" | "Z" | "z" => 0,
            rest => {
                let sign = match rest.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
                if !matches!(digits.len(), 2 | 4) || !digits.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                let h: i64 = digits[..2].parse().ok()?;
                let m: i64 = if digits.len() == 4 {
                    digits[2..].parse().ok()?
                } else {
                    0
                };
                sign * (h * 60 + m)
            }
        };
        let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - offset_min * 60;
        Some(Utc(secs * 1000 + ms))
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A proleptic Gregorian date to days since 1970-01-01 (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
