//! Probe thresholds as configs and wire messages carry them: `funnelgate_core::Thresholds` read
//! from JSON, checked by `policy::threshold_problems`, and a value judged by `Thresholds::judge`.
//!
//! Input: a first line with the value to judge (Rust float syntax, `nan`/`inf` included), then
//! the thresholds as JSON. Invariants: no panic; a non-finite value is ERROR; with thresholds that
//! have no problems a finite value is PASS, WARN or FAIL with a finite, non-negative badness (0
//! when it passes), FAIL whenever a fail bound is crossed; a JSON round trip keeps them.
#![no_main]

use funnelgate_core::policy::threshold_problems;
use funnelgate_core::{ProbeStatus, Thresholds};
use funnelgate_fuzz::first_line;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (value, json) = first_line(data);
    let Ok(value) = std::str::from_utf8(value)
        .unwrap_or("")
        .trim()
        .parse::<f64>()
    else {
        return;
    };
    let Ok(t) = serde_json::from_slice::<Thresholds>(json) else {
        return;
    };
    let problems = threshold_problems(&t);
    let j = t.judge(value);
    if !value.is_finite() {
        assert_eq!(j.status, ProbeStatus::Error, "{value} judged {j:?}");
        return;
    }
    if !problems.is_empty() {
        return;
    }
    assert!(
        matches!(
            j.status,
            ProbeStatus::Pass | ProbeStatus::Warn | ProbeStatus::Fail
        ),
        "{value} against {t:?} judged {j:?}"
    );
    assert!(
        j.badness.is_finite() && j.badness >= 0.0,
        "{value} against {t:?}: badness {}",
        j.badness
    );
    if j.status == ProbeStatus::Pass {
        assert_eq!(j.badness, 0.0, "{value} passes {t:?} with badness");
    }
    let crossed =
        t.fail_above.is_some_and(|f| value > f) || t.fail_below.is_some_and(|f| value < f);
    if crossed {
        assert_eq!(
            j.status,
            ProbeStatus::Fail,
            "{value} crosses a fail bound of {t:?}: {j:?}"
        );
    }
    let back: Thresholds = serde_json::from_value(serde_json::to_value(&t).expect("serialises"))
        .expect("thresholds read back from their own JSON");
    assert_eq!(back, t);
});
