//! Time as the engine sees it: instants passed in by the caller (never read from a clock here),
//! and durations written the way people write them in config ("90s", "15m", "1h30m", "7d").

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, in milliseconds since the Unix epoch (UTC). The engine never reads a clock: callers
/// pass `now` in, which keeps every decision a pure function of its inputs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The instant `ms` milliseconds after the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// `self + d`, saturating.
    #[allow(clippy::should_implement_trait)] // saturating, and takes a `Duration`: not `Add`
    pub fn add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_millis(d)))
    }

    /// `self - d`, saturating.
    #[allow(clippy::should_implement_trait)] // saturating, and takes a `Duration`: not `Sub`
    pub fn sub(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_millis(d)))
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        if self.0 <= earlier.0 {
            Duration::ZERO
        } else {
            Duration::from_millis((self.0 - earlier.0) as u64)
        }
    }
}

impl Timestamp {
    /// This instant as a [`jiff::Timestamp`], when it is within jiff's range (years -9999 to
    /// 9999).
    pub fn to_jiff(self) -> Option<jiff::Timestamp> {
        jiff::Timestamp::from_millisecond(self.0).ok()
    }

    /// A [`jiff::Timestamp`], truncated to whole milliseconds.
    pub fn from_jiff(ts: jiff::Timestamp) -> Self {
        Timestamp(ts.as_millisecond())
    }

    /// Parse an RFC 3339 timestamp with its offset (`2024-05-01T12:00:00Z`,
    /// `2024-05-01T14:00:00.250+02:00`). Impossible dates (`2024-02-31`), a missing offset and
    /// trailing text are errors; precision below a millisecond is truncated.
    pub fn parse_rfc3339(input: &str) -> Result<Self, TimestampParseError> {
        input
            .trim()
            .parse::<jiff::Timestamp>()
            .map(Timestamp::from_jiff)
            .map_err(|e| TimestampParseError {
                input: input.to_string(),
                reason: e.to_string(),
            })
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse_rfc3339(s)
    }
}

/// Error parsing an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp `{input}`: {reason} (expected RFC 3339, e.g. \"2024-05-01T12:00:00Z\")")]
pub struct TimestampParseError {
    pub input: String,
    pub reason: String,
}

/// RFC 3339 in UTC, e.g. `2024-05-01T12:00:00Z` (milliseconds shown only when not zero). An
/// instant outside the years -9999..=9999 prints as its milliseconds since the epoch.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(ts) = self.to_jiff() else {
            return write!(f, "{}ms after 1970-01-01T00:00:00Z", self.0);
        };
        let precision = if self.0.rem_euclid(1000) == 0 { 0 } else { 3 };
        let printer = jiff::fmt::temporal::DateTimePrinter::new().precision(Some(precision));
        let mut out = String::with_capacity(24);
        printer
            .print_timestamp(&ts, jiff::fmt::StdFmtWrite(&mut out))
            .map_err(|_| fmt::Error)?;
        f.write_str(&out)
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Error parsing a human duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{input}`: {reason} (expected e.g. \"30s\", \"15m\", \"1h30m\", \"2 days\")"
)]
pub struct DurationParseError {
    pub input: String,
    pub reason: String,
}

/// The longest duration [`parse_duration`] accepts: 100 years of 365 days.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parse a duration the way people write it in config: "500ms", "30s", "15m", "1h30m",
/// "1h 30m", "7d", "2 days", "2w", "90 minutes" (jiff's friendly format; ISO 8601 `PT15M` too).
/// Units are required (a bare number is rejected); days and weeks are 24 hours and 7 days;
/// months and years (not a fixed length) and negative durations are rejected.
pub fn parse_duration(input: &str) -> Result<Duration, DurationParseError> {
    let err = |reason: String| DurationParseError {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty".into()));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("missing unit".into()));
    }
    let span: jiff::Span = s.parse().map_err(|e: jiff::Error| err(e.to_string()))?;
    if span.is_negative() {
        return Err(err("negative".into()));
    }
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(err(
            "months and years have no fixed length: use days or weeks".into(),
        ));
    }
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| err(e.to_string()))?;
    let d = Duration::try_from(d).map_err(|e| err(e.to_string()))?;
    // No setting needs more than a century; far longer spans would not print back in a form
    // that reads again (found by the `durations` fuzz target).
    if d > MAX_DURATION {
        return Err(err("longer than 100 years".into()));
    }
    // Durations are kept and shown in whole milliseconds: a finer one would silently change.
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(err(
            "finer than a millisecond: durations are whole milliseconds or coarser".into(),
        ));
    }
    Ok(d)
}

/// Format a duration the way [`parse_duration`] reads it ("1h30m", "2d3h", "45s", "250ms",
/// "0s"): whole milliseconds, days of 24 hours as the largest unit.
pub fn format_duration(d: Duration) -> String {
    let ms = duration_millis(d);
    let span = jiff::Span::new().try_milliseconds(ms).and_then(|s| {
        s.round(
            jiff::SpanRound::new()
                .largest(jiff::Unit::Day)
                .days_are_24_hours(),
        )
    });
    match span {
        Ok(span) => jiff::fmt::friendly::SpanPrinter::new()
            .designator(jiff::fmt::friendly::Designator::Compact)
            .spacing(jiff::fmt::friendly::Spacing::None)
            .span_to_string(&span),
        // Beyond what a span holds (about 20,000 years): still exact, in milliseconds.
        Err(_) => format!("{ms}ms"),
    }
}

/// A [`Duration`] that (de)serialises as a human string such as "15m".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_display_as_rfc3339_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp(1_714_564_800_000).to_string(),
            "2024-05-01T12:00:00Z"
        );
        assert_eq!(
            Timestamp(951_782_400_250).to_string(),
            "2000-02-29T00:00:00.250Z"
        );
        assert_eq!(Timestamp(-1_000).to_string(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn sub_millisecond_durations_are_refused_not_truncated() {
        // Found by the `durations` fuzz target: "1us" read as 1µs but was stored as "0s".
        for input in ["1us", "1µs", "1500us", "1ns", "1ms 1ns"] {
            let e = parse_duration(input).unwrap_err();
            assert!(
                e.reason.contains("finer than a millisecond"),
                "{input}: {e:?}"
            );
        }
        assert_eq!(parse_duration("1000us").unwrap(), Duration::from_millis(1));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn durations_longer_than_a_century_are_refused() {
        // Found by the `durations` fuzz target: it formatted to text that did not read back.
        let e = parse_duration("808404233.99989h").unwrap_err();
        assert!(e.reason.contains("100 years"), "{e:?}");
        assert_eq!(parse_duration("36500d").unwrap(), MAX_DURATION);
        let shown = format_duration(MAX_DURATION);
        assert_eq!(parse_duration(&shown).unwrap(), MAX_DURATION);
    }

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
    }

    #[test]
    fn rejects_bare_numbers_unknown_units_and_negatives() {
        assert_eq!(parse_duration("15").unwrap_err().reason, "missing unit");
        assert!(parse_duration("15x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(parse_duration("-5m").unwrap_err().reason, "negative");
        assert_eq!(parse_duration("5m ago").unwrap_err().reason, "negative");
        let e = parse_duration("1 month").unwrap_err();
        assert!(e.reason.contains("no fixed length"), "{e}");
        assert!(parse_duration("2y").is_err());
        assert!(
            parse_duration("1h30")
                .unwrap_err()
                .to_string()
                .starts_with("invalid duration `1h30`"),
        );
    }

    #[test]
    fn parses_humantime_style_durations() {
        for (s, secs) in [
            ("15m", 900),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("2 days", 172_800),
            ("2d", 172_800),
            ("1w", 604_800),
            ("90 minutes", 5400),
            ("1 hour, 2 minutes", 3720),
            ("PT15M", 900),
            (" 30s ", 30),
        ] {
            assert_eq!(parse_duration(s).unwrap(), Duration::from_secs(secs), "{s}");
        }
    }

    #[test]
    fn parses_rfc3339_and_rejects_impossible_dates() {
        assert_eq!(
            Timestamp::parse_rfc3339("2024-05-01T12:00:00Z").unwrap(),
            Timestamp(1_714_564_800_000)
        );
        assert_eq!(
            "2024-05-01T14:00:00.250+02:00"
                .parse::<Timestamp>()
                .unwrap(),
            Timestamp(1_714_564_800_250)
        );
        for bad in [
            "2024-02-31T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-01T24:00:01Z",
            "2024-05-01T12:00:00",
            "2024-05-01",
            "yesterday",
        ] {
            let e = Timestamp::parse_rfc3339(bad).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid timestamp `{bad}`")),
                "{e}"
            );
        }
        // Display and parse round-trip.
        for ms in [0, 1_714_564_800_000, 951_782_400_250, -1_000] {
            let t = Timestamp(ms);
            assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        }
    }

    #[test]
    fn stored_forms_are_unchanged() {
        // Timestamps serialise as epoch milliseconds, durations as compact strings: what
        // snapshots, ledger payloads and the config hash already hold.
        assert_eq!(
            serde_json::to_string(&Timestamp(1_714_564_800_250)).unwrap(),
            "1714564800250"
        );
        for (secs, s) in [
            (0, "0s"),
            (90, "1m30s"),
            (7 * 86_400, "7d"),
            (183_600, "2d3h"),
        ] {
            assert_eq!(
                serde_json::to_string(&HumanDuration::from_secs(secs)).unwrap(),
                format!("\"{s}\"")
            );
        }
        assert_eq!(format_duration(Duration::from_millis(1_250)), "1s250ms");
        assert_eq!(
            Timestamp(i64::MAX).to_string(),
            format!("{}ms after 1970-01-01T00:00:00Z", i64::MAX)
        );
    }

    #[test]
    fn format_round_trips() {
        for s in ["0s", "45s", "1h30m", "2d3h", "1s250ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }

    #[test]
    fn timestamp_arithmetic_saturates() {
        let t = Timestamp(1_000);
        assert_eq!(t.add(Duration::from_secs(1)), Timestamp(2_000));
        assert_eq!(t.since(Timestamp(5_000)), Duration::ZERO);
        assert_eq!(
            Timestamp(i64::MAX).add(Duration::from_secs(1)),
            Timestamp(i64::MAX)
        );
    }
}
