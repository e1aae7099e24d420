//! Validation helpers and named defaults shared by every vendor's params.

use funnelgate_checker_sdk::ProbeError;

/// Longest window a probe accepts, in hours (90 days).
pub const MAX_WINDOW_HOURS: u32 = 90 * 24;

/// A window in hours: 1 to [`MAX_WINDOW_HOURS`].
pub fn check_window_hours(field: &str, hours: u32) -> Result<(), ProbeError> {
    if hours == 0 || hours > MAX_WINDOW_HOURS {
        return Err(ProbeError::params(format!(
            "`{field}` must be between 1 and {MAX_WINDOW_HOURS} hours, got {hours}"
        )));
    }
    Ok(())
}

/// A window in days: 1 to 90.
pub fn check_window_days(field: &str, days: u32) -> Result<(), ProbeError> {
    if days == 0 || days > MAX_WINDOW_HOURS / 24 {
        return Err(ProbeError::params(format!(
            "`{field}` must be between 1 and {} days, got {days}",
            MAX_WINDOW_HOURS / 24
        )));
    }
    Ok(())
}

/// A non-empty list of non-empty names without control characters.
pub fn check_names(field: &str, v: &[String], may_be_empty: bool) -> Result<(), ProbeError> {
    if v.is_empty() && !may_be_empty {
        return Err(ProbeError::params(format!(
            "`{field}` must name at least one entry"
        )));
    }
    for n in v {
        if n.trim().is_empty() || n.len() > 256 || n.chars().any(char::is_control) {
            return Err(ProbeError::params(format!(
                "`{field}`: entries must be non-empty text of at most 256 characters without control characters"
            )));
        }
    }
    Ok(())
}

/// A finite, non-negative number.
pub fn check_non_negative(field: &str, v: f64) -> Result<(), ProbeError> {
    if !v.is_finite() || v < 0.0 {
        return Err(ProbeError::params(format!(
            "`{field}` must be a non-negative number, got {v}"
        )));
    }
    Ok(())
}

/// An email address (one `@`, something on both sides, no spaces).
pub fn check_email(field: &str, v: &str) -> Result<(), ProbeError> {
    let ok = v
        .split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'))
        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(ProbeError::params(format!(
            "`{field}`: `{v}` is not an email address"
        )));
    }
    Ok(())
}

/// Named defaults (serde needs functions).
pub mod defaults {
    /// A3/A5 window.
    pub fn window_hours_24() -> u32 {
        24
    }
    /// A7 window.
    pub fn window_days_14() -> u32 {
        14
    }
    /// A7 threshold.
    pub fn mql_threshold() -> f64 {
        100.0
    }
    /// A7 minimum sample.
    pub fn min_new_leads() -> u64 {
        50
    }
    /// A10: the UTM fields every form must carry as hidden fields.
    pub fn utm_fields() -> Vec<String> {
        ["utm_source", "utm_medium", "utm_campaign"]
            .map(String::from)
            .to_vec()
    }
    /// The tag/field value that marks canary leads (excluded from counts).
    pub fn canary_tag() -> String {
        crate::canary::TAG.to_string()
    }
}
