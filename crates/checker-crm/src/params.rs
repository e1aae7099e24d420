//! Validation helpers and named defaults shared by every vendor's params.

use funnelgate_checker_sdk::ProbeError;

/// Longest window a probe accepts (10 years).
pub const MAX_WINDOW_DAYS: u32 = 3650;

/// A window of days: 1 to [`MAX_WINDOW_DAYS`].
pub fn check_window(field: &str, days: u32) -> Result<(), ProbeError> {
    if days == 0 || days > MAX_WINDOW_DAYS {
        return Err(ProbeError::params(format!(
            "`{field}` must be between 1 and {MAX_WINDOW_DAYS} days, got {days}"
        )));
    }
    Ok(())
}

/// A percentage: finite, 0 to 100.
pub fn check_percent(field: &str, v: f64) -> Result<(), ProbeError> {
    if !v.is_finite() || !(0.0..=100.0).contains(&v) {
        return Err(ProbeError::params(format!(
            "`{field}` must be a percentage between 0 and 100, got {v}"
        )));
    }
    Ok(())
}

/// A positive count no larger than `max`.
pub fn check_count(field: &str, v: u64, max: u64) -> Result<(), ProbeError> {
    if v == 0 || v > max {
        return Err(ProbeError::params(format!(
            "`{field}` must be between 1 and {max}, got {v}"
        )));
    }
    Ok(())
}

/// A vendor field/property/column name: letters, digits, `_`, and (when `dots`) `.` between parts.
/// Names are interpolated into queries (SOQL, SQL identifiers, HubSpot filters), so nothing else
/// is accepted.
pub fn check_name(field: &str, v: &str, dots: bool) -> Result<(), ProbeError> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 128
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !p.as_bytes()[0].is_ascii_digit()
    };
    let ok = if dots {
        v.split('.').all(ok_part)
    } else {
        ok_part(v)
    };
    if !ok {
        let allowed = if dots {
            "letters, digits, `_` and `.` between parts"
        } else {
            "letters, digits and `_`"
        };
        return Err(ProbeError::params(format!(
            "`{field}`: `{v}` is not a valid name (allowed: {allowed}, not starting with a digit)"
        )));
    }
    Ok(())
}

/// A free-text value list entry (picklist value, stage name): non-empty, no control characters.
pub fn check_value(field: &str, v: &str) -> Result<(), ProbeError> {
    if v.trim().is_empty() || v.len() > 256 || v.chars().any(char::is_control) {
        return Err(ProbeError::params(format!(
            "`{field}`: values must be non-empty text of at most 256 characters without control characters"
        )));
    }
    Ok(())
}

/// Named defaults (serde needs functions).
pub mod defaults {
    /// C4 window.
    pub fn window_30() -> u32 {
        30
    }
    /// C5 window.
    pub fn window_90() -> u32 {
        90
    }
    /// C8 window.
    pub fn window_7() -> u32 {
        7
    }
    /// C7: a touch this close to a lead's creation was made by automation at creation.
    pub fn automation_touch_seconds() -> u32 {
        60
    }
    /// C8 grace period before an unassigned lead counts.
    pub fn grace_minutes() -> u32 {
        60
    }
    /// C6: a step needs this many entrants before a zero conversion FAILs.
    pub fn min_entrants() -> u64 {
        20
    }
    /// C6: relative week-over-week change that WARNs.
    pub fn max_weekly_change_percent() -> f64 {
        50.0
    }
    /// Record cap for probes that fetch records (C7, C10).
    pub fn max_records_2000() -> u64 {
        2000
    }
    /// Record cap for the duplicates scan (C9).
    pub fn max_records_10000() -> u64 {
        10_000
    }
    /// Won-deal cap when tracing deals to contacts (C5).
    pub fn max_deals() -> u64 {
        1000
    }
    /// Role mailboxes (C10).
    pub fn role_local_parts() -> Vec<String> {
        crate::evaluate::default_role_local_parts()
    }
    /// Values that mean "no source" besides an empty field (C4, C5).
    pub fn unknown_source_values() -> Vec<String> {
        ["unknown", "(not set)", "none", "n/a"]
            .into_iter()
            .map(str::to_string)
            .collect()
    }
    /// serde helper.
    pub fn is_false(b: &bool) -> bool {
        !*b
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_injection() {
        assert!(check_name("f", "hs_analytics_source", false).is_ok());
        assert!(check_name("f", "Owner.Type", true).is_ok());
        assert!(check_name("f", "Owner.Type", false).is_err());
        for bad in ["", "a b", "a;drop", "a'", "1abc", "a..b", ".a", "é"] {
            assert!(check_name("f", bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert!(check_window("window_days", 0).is_err());
        assert!(check_window("window_days", 30).is_ok());
        assert!(check_percent("p", f64::NAN).is_err());
        assert!(check_percent("p", 101.0).is_err());
        assert!(check_count("c", 0, 10).is_err());
        assert!(check_value("v", "Paid Search").is_ok());
        assert!(check_value("v", " ").is_err());
    }
}
