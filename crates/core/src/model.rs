//! What checkers measure and report: probe statuses, thresholds and how a value is judged against
//! them, probe results and stage reports.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::{HumanDuration, Timestamp};

/// Smallest denominator used when normalising badness (`|value − threshold| / max(|threshold|, ε)`).
pub const BADNESS_EPSILON: f64 = 1e-9;

/// Outcome of one probe run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProbeStatus {
    /// Within thresholds.
    Pass,
    /// Past a warn threshold.
    Warn,
    /// Past a fail threshold, or a boolean expectation not met.
    Fail,
    /// Could not measure (timeout, auth, vendor down, malformed data).
    Error,
    /// Measured, but nothing to judge (empty window, sample below the minimum).
    NoData,
    /// Not run.
    Skipped,
}

impl ProbeStatus {
    /// Stable upper-case name, as used on the wire and in reasons.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProbeStatus::Pass => "PASS",
            ProbeStatus::Warn => "WARN",
            ProbeStatus::Fail => "FAIL",
            ProbeStatus::Error => "ERROR",
            ProbeStatus::NoData => "NO_DATA",
            ProbeStatus::Skipped => "SKIPPED",
        }
    }

    /// Remediation order within a stage: FAIL before ERROR before NO_DATA before WARN.
    pub const fn remediation_rank(self) -> u8 {
        match self {
            ProbeStatus::Fail => 0,
            ProbeStatus::Error => 1,
            ProbeStatus::NoData => 2,
            ProbeStatus::Warn => 3,
            ProbeStatus::Skipped => 4,
            ProbeStatus::Pass => 5,
        }
    }

    /// Whether the probe could not be judged (ERROR or NO_DATA): subject to the `on_unknown` policy.
    pub const fn is_unknown(self) -> bool {
        matches!(self, ProbeStatus::Error | ProbeStatus::NoData)
    }
}

impl fmt::Display for ProbeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a non-passing probe blocks its stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A FAIL makes the stage FAILING; an ERROR/NO_DATA makes it UNKNOWN.
    #[default]
    Blocking,
    /// A FAIL or ERROR only degrades the stage.
    Advisory,
}

/// Whether a probe counts in the decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeMode {
    /// Counted in the decision.
    #[default]
    Enforce,
    /// Reported and stored, never counted: try a rule before enforcing it.
    Observe,
}

/// Structured thresholds. Any subset may be set; a value is judged against all of them and the
/// worst outcome wins. `expect` is for boolean measurements (value 1.0 = true, 0.0 = false).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// WARN when the value is strictly above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_above: Option<f64>,
    /// FAIL when the value is strictly above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_above: Option<f64>,
    /// WARN when the value is strictly below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_below: Option<f64>,
    /// FAIL when the value is strictly below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_below: Option<f64>,
    /// For boolean measurements: FAIL unless the value equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<bool>,
}

/// The verdict of a value against [`Thresholds`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judgement {
    pub status: ProbeStatus,
    /// The threshold crossed (or, when passing, the nearest configured one).
    pub threshold: Option<f64>,
    pub badness: f64,
}

/// `|value − threshold| / max(|threshold|, ε)`.
pub fn badness(value: f64, threshold: f64) -> f64 {
    let b = (value - threshold).abs() / threshold.abs().max(BADNESS_EPSILON);
    if b.is_finite() { b } else { f64::MAX }
}

impl Thresholds {
    /// True when no threshold is configured.
    pub fn is_empty(&self) -> bool {
        self.warn_above.is_none()
            && self.fail_above.is_none()
            && self.warn_below.is_none()
            && self.fail_below.is_none()
            && self.expect.is_none()
    }

    /// Judge a measured value. A non-finite value cannot be judged and is an ERROR.
    pub fn judge(&self, value: f64) -> Judgement {
        if !value.is_finite() {
            return Judgement {
                status: ProbeStatus::Error,
                threshold: None,
                badness: 1.0,
            };
        }
        if let Some(expect) = self.expect {
            let got = value != 0.0;
            let t = if expect { 1.0 } else { 0.0 };
            return if got == expect {
                Judgement {
                    status: ProbeStatus::Pass,
                    threshold: Some(t),
                    badness: 0.0,
                }
            } else {
                Judgement {
                    status: ProbeStatus::Fail,
                    threshold: Some(t),
                    badness: 1.0,
                }
            };
        }
        // Fail thresholds first; if both sides are crossed (misconfigured), take the worse badness.
        let mut worst: Option<Judgement> = None;
        let mut consider = |status: ProbeStatus, t: f64| {
            let j = Judgement {
                status,
                threshold: Some(t),
                badness: badness(value, t),
            };
            worst = Some(match worst {
                None => j,
                Some(w)
                    if (j.status.remediation_rank(), -j.badness)
                        < (w.status.remediation_rank(), -w.badness) =>
                {
                    j
                }
                Some(w) => w,
            });
        };
        if let Some(t) = self.fail_above.filter(|t| value > *t) {
            consider(ProbeStatus::Fail, t);
        }
        if let Some(t) = self.fail_below.filter(|t| value < *t) {
            consider(ProbeStatus::Fail, t);
        }
        if let Some(t) = self.warn_above.filter(|t| value > *t) {
            consider(ProbeStatus::Warn, t);
        }
        if let Some(t) = self.warn_below.filter(|t| value < *t) {
            consider(ProbeStatus::Warn, t);
        }
        if let Some(j) = worst {
            return j;
        }
        let nearest = [
            self.warn_above,
            self.fail_above,
            self.warn_below,
            self.fail_below,
        ]
        .into_iter()
        .flatten()
        .min_by(|a, b| (value - a).abs().total_cmp(&(value - b).abs()));
        Judgement {
            status: ProbeStatus::Pass,
            threshold: nearest,
            badness: 0.0,
        }
    }
}

/// What a probe implementation returns before thresholds are applied.
///
/// A probe either measured a value (judged against the spec's thresholds by the runner), or
/// decided a status itself (`verdict`, e.g. an SPF record with a syntax error is FAIL whatever
/// the thresholds), or both — then the worse of the two wins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub value: Option<f64>,
    pub unit: String,
    /// A status the probe decided itself.
    pub verdict: Option<ProbeStatus>,
    /// What a marketer reads: what was measured and what it means.
    pub message: String,
    pub sample_size: Option<u64>,
    pub window: Option<HumanDuration>,
    pub evidence: BTreeMap<String, String>,
    /// Journey probes (the canary lead): one timed result per step, each naming the stage it
    /// evidences. Empty for ordinary probes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<JourneyStep>,
}

impl Measurement {
    pub fn value(value: f64, unit: impl Into<String>, message: impl Into<String>) -> Self {
        Measurement {
            value: Some(value),
            unit: unit.into(),
            message: message.into(),
            ..Default::default()
        }
    }

    pub fn verdict(status: ProbeStatus, message: impl Into<String>) -> Self {
        Measurement {
            verdict: Some(status),
            message: message.into(),
            ..Default::default()
        }
    }

    pub fn with_sample(mut self, n: u64) -> Self {
        self.sample_size = Some(n);
        self
    }

    pub fn with_window(mut self, w: Duration) -> Self {
        self.window = Some(HumanDuration(w));
        self
    }

    pub fn with_evidence(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.evidence.insert(k.into(), v.into());
        self
    }
}

/// One timed step of a journey probe (the canary lead: submit → CRM → enrolment → email →
/// cleanup). A step evidences one stage: a lead that never reaches the CRM is a CRM problem, not
/// an automation one, whichever checker ran the journey.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JourneyStep {
    /// Step name, e.g. `crm_record`.
    pub name: String,
    /// The stage this step evidences, e.g. `crm`.
    pub stage: String,
    /// PASS/WARN/FAIL/ERROR, or SKIPPED when an earlier step stopped the journey.
    pub status: ProbeStatus,
    /// How long the step took.
    #[serde(default)]
    pub duration_ms: u64,
    /// What happened, for a marketer.
    #[serde(default)]
    pub message: String,
}

/// One probe's result, as reported by a checker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub id: String,
    pub kind: String,
    pub status: ProbeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default)]
    pub unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// 0 for PASS; normalised distance past the threshold otherwise; 1.0 for boolean/ERROR.
    #[serde(default)]
    pub badness: f64,
    #[serde(default)]
    pub message: String,
    pub observed_at: Timestamp,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, String>,
    /// Journey probes (the canary lead): the steps, each naming the stage it evidences; the
    /// coordinator attributes each step to that stage. Empty for ordinary probes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<JourneyStep>,
}

impl ProbeResult {
    /// An ERROR result: the probe could not measure, and says why.
    pub fn error(
        id: impl Into<String>,
        kind: impl Into<String>,
        message: impl Into<String>,
        at: Timestamp,
    ) -> Self {
        ProbeResult {
            steps: Vec::new(),
            id: id.into(),
            kind: kind.into(),
            status: ProbeStatus::Error,
            value: None,
            unit: String::new(),
            threshold: None,
            badness: 1.0,
            message: message.into(),
            observed_at: at,
            duration_ms: 0,
            sample_size: None,
            window: None,
            evidence: BTreeMap::new(),
        }
    }
}

/// Why a checker produced no report (the stage becomes UNKNOWN with this as the reason).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckFailure {
    /// `UNREACHABLE` (connect/transport error), `TIMEOUT` (deadline passed), or `CHECKER_ERROR`
    /// (the checker answered with an error status).
    pub code: String,
    pub checker: String,
    pub message: String,
}

/// A stage report: every probe result of one `Check`, or why the check could not be made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub funnel: String,
    pub stage: String,
    pub results: Vec<ProbeResult>,
    pub checked_at: Timestamp,
    #[serde(default)]
    pub duration_ms: u64,
    /// Name/version of the checker that produced it.
    #[serde(default)]
    pub checker: String,
    /// Set when the check itself failed; `results` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<CheckFailure>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(wa: Option<f64>, fa: Option<f64>, wb: Option<f64>, fb: Option<f64>) -> Thresholds {
        Thresholds {
            warn_above: wa,
            fail_above: fa,
            warn_below: wb,
            fail_below: fb,
            expect: None,
        }
    }

    #[test]
    fn judge_below_thresholds() {
        let th = t(None, None, Some(90.0), Some(70.0));
        assert_eq!(th.judge(95.0).status, ProbeStatus::Pass);
        let w = th.judge(80.0);
        assert_eq!((w.status, w.threshold), (ProbeStatus::Warn, Some(90.0)));
        let f = th.judge(35.0);
        assert_eq!((f.status, f.threshold), (ProbeStatus::Fail, Some(70.0)));
        assert!((f.badness - 0.5).abs() < 1e-12);
    }

    #[test]
    fn judge_above_thresholds_and_boundaries_are_exclusive() {
        let th = t(Some(0.1), Some(0.3), None, None);
        assert_eq!(th.judge(0.1).status, ProbeStatus::Pass);
        assert_eq!(th.judge(0.2).status, ProbeStatus::Warn);
        assert_eq!(th.judge(0.3).status, ProbeStatus::Warn);
        assert_eq!(th.judge(0.6).status, ProbeStatus::Fail);
        assert!((th.judge(0.6).badness - 1.0).abs() < 1e-12);
    }

    #[test]
    fn judge_boolean_expectation() {
        let th = Thresholds {
            expect: Some(true),
            ..Default::default()
        };
        assert_eq!(th.judge(1.0).status, ProbeStatus::Pass);
        let j = th.judge(0.0);
        assert_eq!((j.status, j.badness), (ProbeStatus::Fail, 1.0));
    }

    #[test]
    fn non_finite_values_are_errors() {
        assert_eq!(
            t(Some(1.0), None, None, None).judge(f64::NAN).status,
            ProbeStatus::Error
        );
    }

    #[test]
    fn badness_uses_epsilon_for_zero_threshold() {
        assert!(badness(1.0, 0.0) > 1e6);
        assert_eq!(badness(5.0, 5.0), 0.0);
    }
}
