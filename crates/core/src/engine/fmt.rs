//! How numbers and durations read in messages.

use std::fmt::Write as _;
use std::time::Duration;

use crate::time::format_duration;

pub(super) fn push_detail(s: &mut String, message: &str) {
    if !message.is_empty() {
        let _ = write!(s, " ({message})");
    }
}

pub(super) fn with_unit(v: f64, unit: &str) -> String {
    match unit {
        "" => fmt_num(v),
        "%" | "percent" => format!("{}%", fmt_num(v)),
        u => format!("{} {u}", fmt_num(v)),
    }
}

/// A number as people read it: at least one decimal, a few more for small values.
pub(super) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    let decimals = if a >= 100.0 || a == 0.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        4
    };
    let mut s = format!("{v:.decimals$}");
    while s.ends_with('0') && !s.ends_with(".0") {
        s.pop();
    }
    s
}

/// A duration rounded to whole seconds (milliseconds below one second).
pub(super) fn fmt_dur(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format_duration(Duration::from_secs(d.as_secs()))
    } else {
        format_duration(d)
    }
}

pub(super) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_naturally() {
        assert_eq!(fmt_num(62.0), "62.0");
        assert_eq!(fmt_num(0.003), "0.003");
        assert_eq!(fmt_num(1234.56), "1234.6");
        assert_eq!(fmt_num(99.5), "99.5");
        assert_eq!(fmt_num(0.0), "0.0");
        assert_eq!(fmt_num(-2.25), "-2.25");
    }
}
