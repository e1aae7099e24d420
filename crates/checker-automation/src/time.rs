//! Instants as the automation vendors write them: RFC 3339 (`2026-05-01T12:00:00+00:00`,
//! Mautic), Marketo's asset API `2026-05-01T12:00:00Z+0000`, and SQL-style
//! `2026-05-01 12:00:00` (UTC) that Mautic uses in some payloads. All on `jiff`, the time
//! crate of the rest of the workspace.

use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Parse a vendor timestamp; `None` when it is not one of the known forms.
pub fn parse(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    // Marketo asset API: `2016-09-20T22:11:51Z+0000`.
    if let Some(stripped) = s.strip_suffix("+0000")
        && let Ok(t) = stripped.parse::<Timestamp>()
    {
        return Some(t);
    }
    // `+0000` offsets without a colon.
    let with_colon = match s.len().checked_sub(5).and_then(|i| s.split_at_checked(i)) {
        Some((head, tail))
            if (tail.starts_with('+') || tail.starts_with('-'))
                && tail[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(format!("{head}{}:{}", &tail[..3], &tail[3..]))
        }
        _ => None,
    };
    if let Some(w) = with_colon
        && let Ok(t) = w.parse::<Timestamp>()
    {
        return Some(t);
    }
    DateTime::strptime("%Y-%m-%d %H:%M:%S", s)
        .ok()
        .and_then(|dt| TimeZone::UTC.to_timestamp(dt).ok())
}

/// RFC 3339 in UTC, second precision (what the vendors accept in queries).
pub fn format(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

/// `now − d` (the earliest instant when that is out of range).
pub fn ago(now: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| now.checked_sub(d).ok())
        .unwrap_or(Timestamp::MIN)
}

/// Hours from `earlier` to `later` (0 when `earlier` is later).
pub fn hours_between(earlier: Timestamp, later: Timestamp) -> f64 {
    (later.duration_since(earlier).as_secs_f64() / 3600.0).max(0.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vendor_forms_parse() {
        let a = parse("2026-05-01T12:00:00+00:00").unwrap();
        assert_eq!(parse("2026-05-01T12:00:00Z").unwrap(), a);
        assert_eq!(parse("2026-05-01T12:00:00Z+0000").unwrap(), a);
        assert_eq!(parse("2026-05-01T07:00:00-0500").unwrap(), a);
        assert_eq!(parse("2026-05-01 12:00:00").unwrap(), a);
        assert!(parse("yesterday").is_none());
        assert!(parse("2026-02-31 12:00:00").is_none());
        assert!(parse("2026-05-01").is_none());
        assert!(parse("+0000").is_none());
        assert_eq!(format(a), "2026-05-01T12:00:00Z");
        assert_eq!(
            format(parse("2026-05-01T12:00:00.987Z").unwrap()),
            "2026-05-01T12:00:00Z"
        );
        assert_eq!(hours_between(a, ago(a, Duration::from_secs(3600))), 0.0);
        assert_eq!(hours_between(ago(a, Duration::from_secs(7200)), a), 2.0);
        assert_eq!(ago(a, Duration::MAX), Timestamp::MIN);
    }
}
