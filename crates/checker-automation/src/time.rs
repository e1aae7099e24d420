//! Instants as the automation vendors write them: RFC 3339 (`2026-05-01T12:00:00+00:00`,
//! Mautic), Marketo's asset API `2026-05-01T12:00:00Z+0000`, and SQL-style
//! `2026-05-01 12:00:00` (UTC) that Mautic uses in some payloads.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset, macros::format_description};

/// Parse a vendor timestamp; `None` when it is not one of the known forms.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    // Marketo asset API: `2016-09-20T22:11:51Z+0000`.
    if let Some(stripped) = s.strip_suffix("+0000")
        && let Ok(t) = OffsetDateTime::parse(stripped, &Rfc3339)
    {
        return Some(t);
    }
    // `+0000` offsets without a colon.
    let with_colon = if s.len() > 5 {
        let (head, tail) = s.split_at(s.len() - 5);
        if (tail.starts_with('+') || tail.starts_with('-'))
            && tail[1..].bytes().all(|b| b.is_ascii_digit())
        {
            Some(format!("{head}{}:{}", &tail[..3], &tail[3..]))
        } else {
            None
        }
    } else {
        None
    };
    if let Some(w) = with_colon
        && let Ok(t) = OffsetDateTime::parse(&w, &Rfc3339)
    {
        return Some(t);
    }
    let sql = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    PrimitiveDateTime::parse(s, &sql)
        .ok()
        .map(|p| p.assume_offset(UtcOffset::UTC))
}

/// RFC 3339 in UTC, second precision (what the vendors accept in queries).
pub fn format(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// `now − d`.
pub fn ago(now: OffsetDateTime, d: Duration) -> OffsetDateTime {
    now - d
}

/// Hours from `earlier` to `later` (0 when `earlier` is later).
pub fn hours_between(earlier: OffsetDateTime, later: OffsetDateTime) -> f64 {
    ((later - earlier).as_seconds_f64() / 3600.0).max(0.0)
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
        assert_eq!(format(a), "2026-05-01T12:00:00Z");
    }
}
