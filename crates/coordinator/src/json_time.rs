//! One timestamp format in every JSON answer: RFC 3339 in UTC with a `Z`
//! (`2026-12-06T03:41:07Z`, milliseconds when not zero: `…07.250Z`).
//!
//! The core types serialise their [`Timestamp`]s as epoch milliseconds — the form stored in the
//! ledger and the engine snapshots, which must not change. The edges (HTTP JSON replies and the
//! CLI's `--output json`) rewrite them with [`rfc3339_timestamps`] just before answering.

use funnelgate_core::Timestamp;
use serde_json::Value;

/// Keys whose integer value is a core [`Timestamp`] (epoch milliseconds) in the serde form of
/// the decision, its stages, probe results, override and ledger records.
pub const TIMESTAMP_KEYS: &[&str] = &[
    "since",
    "evaluated_at",
    "checked_at",
    "observed_at",
    "until",
    "created_at",
    "recorded_at",
];

/// Rewrite, anywhere in `v`, every integer under a [`TIMESTAMP_KEYS`] key as RFC 3339 UTC text.
/// Strings (already formatted) and other keys are left alone.
pub fn rfc3339_timestamps(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if TIMESTAMP_KEYS.contains(&k.as_str())
                    && let Some(ms) = child.as_i64()
                {
                    *child = Value::String(Timestamp::from_millis(ms).to_string());
                } else {
                    rfc3339_timestamps(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rfc3339_timestamps),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn epoch_millis_become_rfc3339_utc_everywhere() {
        let mut v = json!({
            "since": 1_714_564_800_000i64,
            "evaluated_at": 1_714_564_800_250i64,
            "allowed_rollout_percent": 10,
            "override": {"until": 0, "created_at": 1_714_564_800_000i64, "reason": "x"},
            "stages": [{"checked_at": 1_714_564_800_000i64, "score": 100,
                        "probes": [{"observed_at": 1_714_564_800_000i64, "value": 1_714_564_800_000i64,
                                    "evidence": {"since": "yesterday"}}]}]
        });
        rfc3339_timestamps(&mut v);
        assert_eq!(v["since"], "2024-05-01T12:00:00Z");
        assert_eq!(v["evaluated_at"], "2024-05-01T12:00:00.250Z");
        assert_eq!(v["override"]["until"], "1970-01-01T00:00:00Z");
        assert_eq!(v["stages"][0]["checked_at"], "2024-05-01T12:00:00Z");
        assert_eq!(
            v["stages"][0]["probes"][0]["observed_at"],
            "2024-05-01T12:00:00Z"
        );
        // not timestamps: untouched
        assert_eq!(v["allowed_rollout_percent"], 10);
        assert_eq!(v["stages"][0]["probes"][0]["value"], 1_714_564_800_000i64);
        assert_eq!(
            v["stages"][0]["probes"][0]["evidence"]["since"],
            "yesterday"
        );
    }
}
