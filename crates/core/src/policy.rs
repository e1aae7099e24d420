//! Policy types: what a funnel's stages are, which probes they run with which thresholds, and how
//! the gate turns stage health into a decision. These are plain serde data; [`FunnelPolicy::validate`]
//! rejects nonsense with a message that names the offending key.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{ProbeMode, Severity, Thresholds};
use crate::time::HumanDuration;

/// The default stage order, bottom (closest to the sale) first.
pub const DEFAULT_STAGES: [&str; 4] = ["crm", "automation", "esp", "analytics"];

/// What ERROR, NO_DATA and staleness mean for the gate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnknown {
    /// UNKNOWN holds the gate, and closes it once it lasts past `unknown_grace`.
    #[default]
    Hold,
    /// UNKNOWN counts as FAILING at once.
    Fail,
}

impl OnUnknown {
    pub const fn as_str(self) -> &'static str {
        match self {
            OnUnknown::Hold => "hold",
            OnUnknown::Fail => "fail",
        }
    }
}

/// One validation problem: the key path (e.g. `funnels.acme.stages[1].probes[0].thresholds`)
/// and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyIssue {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for PolicyIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.reason)
    }
}

/// Every problem found in a policy, not just the first.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub issues: Vec<PolicyIssue>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid policy: ")?;
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// Is `name` a valid funnel name (`[a-z0-9][a-z0-9-]{0,62}`)?
pub fn is_valid_funnel_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Is `id` a valid stage name or probe id (`[a-z0-9][a-z0-9_.-]{0,62}`)?
pub fn is_valid_ident(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(*c, b'-' | b'_' | b'.')
        })
}

fn default_weight() -> f64 {
    1.0
}
fn default_probe_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_params() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}
fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// One probe: a measured assertion run by the stage's checker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// Unique id within the funnel, e.g. `new-leads-attributed`.
    pub id: String,
    /// Probe kind, e.g. `sql`, `http`, `hubspot.pipeline_shape`, `dns.dmarc`.
    pub kind: String,
    /// Kind-specific parameters; checked against the schema the checker publishes.
    #[serde(default = "default_params")]
    pub params: serde_json::Value,
    /// Structured thresholds applied to the measured value.
    #[serde(default, skip_serializing_if = "Thresholds::is_empty")]
    pub thresholds: Thresholds,
    /// Weight in the stage score (default 1).
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// `blocking` (default): a FAIL fails the stage; `advisory`: it only degrades it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub severity: Severity,
    /// `enforce` (default) or `observe`: reported and stored, never counted in the decision.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: ProbeMode,
    /// A conversion-proof probe: not counted in stage health; the gate caps at HOLD until it passes.
    #[serde(default, skip_serializing_if = "is_default")]
    pub proof: bool,
    /// Minimum sample size for a judgement; below it the probe reports NO_DATA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sample: Option<u64>,
    /// The probe's own timeout (default 10s).
    #[serde(default = "default_probe_timeout")]
    pub timeout: HumanDuration,
    /// Name of a secret the checker resolves (`FUNNELGATE_SECRET_<NAME>` or a file); never the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// What ERROR/NO_DATA of this probe mean; defaults to the stage's `on_unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_unknown: Option<OnUnknown>,
    /// Free text shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ProbeSpec {
    /// A blocking, enforced probe with default weight and timeout: handy in tests and examples.
    pub fn new(id: impl Into<String>, kind: impl Into<String>) -> Self {
        ProbeSpec {
            id: id.into(),
            kind: kind.into(),
            params: default_params(),
            thresholds: Thresholds::default(),
            weight: 1.0,
            severity: Severity::Blocking,
            mode: ProbeMode::Enforce,
            proof: false,
            min_sample: None,
            timeout: default_probe_timeout(),
            secret: None,
            on_unknown: None,
            description: None,
        }
    }

    /// Does this probe count in its stage's health? (Not observe-only, not a proof probe.)
    pub fn counts_for_health(&self) -> bool {
        self.mode == ProbeMode::Enforce && !self.proof
    }
}

fn default_stale_after() -> HumanDuration {
    HumanDuration::from_secs(600)
}
fn default_unknown_grace() -> HumanDuration {
    HumanDuration::from_secs(15 * 60)
}
fn default_interval() -> HumanDuration {
    HumanDuration::from_secs(60)
}

/// One stage of a funnel, with its probes and its missing-data policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagePolicy {
    /// Stage name, e.g. `crm`.
    pub name: String,
    /// Which checker serves this stage; defaults to the stage name (an extra stage such as
    /// `landing-pages` names e.g. `analytics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checker: Option<String>,
    /// How often the stage is checked (default 60s).
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// A report older than this makes the stage UNKNOWN (default 10m; at least twice `interval`).
    #[serde(default = "default_stale_after")]
    pub stale_after: HumanDuration,
    /// Score (0–100) below which the stage is FAILING even without a blocking FAIL. Off unless
    /// set: by default warnings alone never make a stage FAILING (any WARN is DEGRADED). The
    /// score weighs PASS 1, WARN 0.5, FAIL 0 over the blocking, enforcing probes that were judged
    /// (advisory, observe-only and proof probes never count; ERROR and NO_DATA are `on_unknown`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    /// What UNKNOWN (stale, unreachable, blocking ERROR/NO_DATA) means: `hold` (default) or `fail`.
    #[serde(default)]
    pub on_unknown: OnUnknown,
    /// How long UNKNOWN may hold the gate before it closes it (default 15m).
    #[serde(default = "default_unknown_grace")]
    pub unknown_grace: HumanDuration,
    /// The probes this stage runs.
    #[serde(default)]
    pub probes: Vec<ProbeSpec>,
}

impl StagePolicy {
    pub fn new(name: impl Into<String>) -> Self {
        StagePolicy {
            name: name.into(),
            checker: None,
            interval: default_interval(),
            stale_after: default_stale_after(),
            min_score: None,
            on_unknown: OnUnknown::Hold,
            unknown_grace: default_unknown_grace(),
            probes: Vec::new(),
        }
    }

    /// The checker serving this stage.
    pub fn checker_name(&self) -> &str {
        self.checker.as_deref().unwrap_or(&self.name)
    }

    /// The effective `on_unknown` of one of this stage's probes.
    pub fn probe_on_unknown(&self, probe: &ProbeSpec) -> OnUnknown {
        probe.on_unknown.unwrap_or(self.on_unknown)
    }
}

fn default_pilot_percent() -> u32 {
    5
}
fn default_ramp() -> Vec<u32> {
    vec![10, 25, 50, 100]
}
fn default_ramp_dwell() -> HumanDuration {
    HumanDuration::from_secs(3600)
}
fn default_open_after() -> HumanDuration {
    HumanDuration::from_secs(10 * 60)
}
fn default_open_after_evaluations() -> u32 {
    3
}
fn default_close_after() -> u32 {
    1
}
fn default_especially_broken() -> f64 {
    0.5
}

/// How stage health becomes a gate decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatePolicy {
    /// Share of traffic allowed while the gate HOLDs (default 5%).
    #[serde(default = "default_pilot_percent")]
    pub pilot_percent: u32,
    /// Rollout steps once OPEN, ending at 100 (default 10, 25, 50, 100).
    #[serde(default = "default_ramp")]
    pub ramp: Vec<u32>,
    /// Healthy time spent on a ramp step before moving to the next (default 1h).
    #[serde(default = "default_ramp_dwell")]
    pub ramp_dwell: HumanDuration,
    /// Healthy time required before the gate opens (soak; default 10m).
    #[serde(default = "default_open_after")]
    pub open_after: HumanDuration,
    /// Consecutive healthy evaluations required before the gate opens (default 3).
    #[serde(default = "default_open_after_evaluations")]
    pub open_after_evaluations: u32,
    /// Consecutive failing evaluations before the gate closes (default 1: fail fast).
    #[serde(default = "default_close_after")]
    pub close_after: u32,
    /// Badness above which a metric counts as "especially broken" in operate phase (default 0.5).
    #[serde(default = "default_especially_broken")]
    pub especially_broken: f64,
}

impl Default for GatePolicy {
    fn default() -> Self {
        GatePolicy {
            pilot_percent: default_pilot_percent(),
            ramp: default_ramp(),
            ramp_dwell: default_ramp_dwell(),
            open_after: default_open_after(),
            open_after_evaluations: default_open_after_evaluations(),
            close_after: default_close_after(),
            especially_broken: default_especially_broken(),
        }
    }
}

/// A funnel: its stages bottom-up, and its gate policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelPolicy {
    /// Funnel name (`[a-z0-9][a-z0-9-]{0,62}`).
    pub name: String,
    /// Stages, bottom (closest to the sale) first.
    pub stages: Vec<StagePolicy>,
    #[serde(default)]
    pub gate: GatePolicy,
}

impl FunnelPolicy {
    /// Validate everything; `prefix` is the key path of this funnel in the config file
    /// (e.g. `funnels.acme`), so messages point at the right place.
    pub fn validate(&self, prefix: &str) -> Result<(), PolicyError> {
        let mut issues = Vec::new();
        let mut push = |key: String, reason: String| issues.push(PolicyIssue { key, reason });

        if !is_valid_funnel_name(&self.name) {
            push(
                format!("{prefix}.name"),
                format!(
                    "`{}` is not a valid funnel name (want [a-z0-9][a-z0-9-]{{0,62}})",
                    self.name
                ),
            );
        }
        if self.stages.is_empty() {
            push(
                format!("{prefix}.stages"),
                "a funnel needs at least one stage".into(),
            );
        }
        let mut stage_names = HashSet::new();
        let mut probe_ids = HashSet::new();
        for (si, stage) in self.stages.iter().enumerate() {
            let sk = format!("{prefix}.stages[{si}]");
            if !is_valid_ident(&stage.name) {
                push(
                    format!("{sk}.name"),
                    format!("`{}` is not a valid stage name", stage.name),
                );
            }
            if !stage_names.insert(stage.name.as_str()) {
                push(
                    format!("{sk}.name"),
                    format!("duplicate stage `{}`", stage.name),
                );
            }
            if stage.interval.get().is_zero() {
                push(format!("{sk}.interval"), "must be greater than 0s".into());
            }
            if stage.stale_after.get() < stage.interval.get() {
                push(
                    format!("{sk}.stale_after"),
                    format!(
                        "{} is shorter than the check interval {}: every report would be stale",
                        stage.stale_after, stage.interval
                    ),
                );
            }
            if let Some(min) = stage.min_score
                && !(0.0..=100.0).contains(&min)
            {
                push(
                    format!("{sk}.min_score"),
                    format!("{min} is not within 0..=100"),
                );
            }
            for (pi, probe) in stage.probes.iter().enumerate() {
                let pk = format!("{sk}.probes[{pi}]");
                if !is_valid_ident(&probe.id) {
                    push(
                        format!("{pk}.id"),
                        format!("`{}` is not a valid probe id", probe.id),
                    );
                }
                if !probe_ids.insert(probe.id.as_str()) {
                    push(
                        format!("{pk}.id"),
                        format!("duplicate probe id `{}`", probe.id),
                    );
                }
                if probe.kind.trim().is_empty() {
                    push(format!("{pk}.kind"), "must not be empty".into());
                }
                if !probe.params.is_object() {
                    push(format!("{pk}.params"), "must be a table/object".into());
                }
                if !(probe.weight.is_finite() && probe.weight > 0.0) {
                    push(
                        format!("{pk}.weight"),
                        format!("{} must be a positive number", probe.weight),
                    );
                }
                if probe.timeout.get().is_zero() {
                    push(format!("{pk}.timeout"), "must be greater than 0s".into());
                }
                if let Some(secret) = &probe.secret
                    && (secret.is_empty()
                        || !secret
                            .bytes()
                            .all(|c| c.is_ascii_alphanumeric() || c == b'_'))
                {
                    push(
                        format!("{pk}.secret"),
                        format!("`{secret}` must be a secret name of [A-Za-z0-9_], not a value"),
                    );
                }
                for reason in threshold_problems(&probe.thresholds) {
                    push(format!("{pk}.thresholds"), reason);
                }
            }
        }
        let g = &self.gate;
        let gk = format!("{prefix}.gate");
        if g.pilot_percent > 100 {
            push(
                format!("{gk}.pilot_percent"),
                format!("{} is over 100", g.pilot_percent),
            );
        }
        if g.ramp.is_empty() {
            push(
                format!("{gk}.ramp"),
                "must have at least one step and end at 100".into(),
            );
        } else {
            if g.ramp.last() != Some(&100) {
                push(
                    format!("{gk}.ramp"),
                    format!("must end at 100, ends at {:?}", g.ramp.last()),
                );
            }
            if g.ramp.windows(2).any(|w| w[0] >= w[1]) {
                push(
                    format!("{gk}.ramp"),
                    format!("{:?} must be strictly increasing", g.ramp),
                );
            }
            if g.ramp.iter().any(|s| *s == 0 || *s > 100) {
                push(format!("{gk}.ramp"), "steps must be within 1..=100".into());
            }
            if g.ramp.first().is_some_and(|f| *f < g.pilot_percent) {
                push(
                    format!("{gk}.ramp"),
                    format!(
                        "the first step {} is below pilot_percent {}: opening would cut traffic",
                        g.ramp[0], g.pilot_percent
                    ),
                );
            }
        }
        if g.close_after == 0 {
            push(format!("{gk}.close_after"), "must be at least 1".into());
        }
        if !(g.especially_broken.is_finite() && g.especially_broken >= 0.0) {
            push(
                format!("{gk}.especially_broken"),
                "must be a non-negative number".into(),
            );
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(PolicyError { issues })
        }
    }

    /// Index of a stage by name.
    pub fn stage_index(&self, stage: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == stage)
    }
}

/// Problems with a set of thresholds (fail looser than warn, crossed bounds, boolean mixed in).
pub fn threshold_problems(t: &Thresholds) -> Vec<String> {
    let mut out = Vec::new();
    for (name, v) in [
        ("warn_above", t.warn_above),
        ("fail_above", t.fail_above),
        ("warn_below", t.warn_below),
        ("fail_below", t.fail_below),
    ] {
        if v.is_some_and(|v| !v.is_finite()) {
            out.push(format!("{name} must be a finite number"));
        }
    }
    if let (Some(w), Some(f)) = (t.warn_above, t.fail_above)
        && f < w
    {
        out.push(format!(
            "fail_above {f} is looser than warn_above {w}: fail must be >= warn"
        ));
    }
    if let (Some(w), Some(f)) = (t.warn_below, t.fail_below)
        && f > w
    {
        out.push(format!(
            "fail_below {f} is looser than warn_below {w}: fail must be <= warn"
        ));
    }
    let lo = t.fail_below.or(t.warn_below);
    let hi = t.fail_above.or(t.warn_above);
    if let (Some(lo), Some(hi)) = (lo, hi)
        && lo > hi
    {
        out.push(format!(
            "the lower bound {lo} is above the upper bound {hi}: nothing can pass"
        ));
    }
    if t.expect.is_some()
        && (t.warn_above.is_some()
            || t.fail_above.is_some()
            || t.warn_below.is_some()
            || t.fail_below.is_some())
    {
        out.push("`expect` (boolean) cannot be combined with numeric thresholds".into());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn funnel() -> FunnelPolicy {
        let mut crm = StagePolicy::new("crm");
        let mut p = ProbeSpec::new("leads", "sql");
        p.thresholds.warn_below = Some(90.0);
        p.thresholds.fail_below = Some(70.0);
        crm.probes.push(p);
        FunnelPolicy {
            name: "acme".into(),
            stages: vec![crm, StagePolicy::new("esp")],
            gate: GatePolicy::default(),
        }
    }

    fn keys(err: PolicyError) -> Vec<String> {
        err.issues.into_iter().map(|i| i.key).collect()
    }

    #[test]
    fn valid_policy_passes() {
        funnel().validate("funnels.acme").unwrap();
    }

    #[test]
    fn fail_looser_than_warn_is_rejected_with_key() {
        let mut f = funnel();
        f.stages[0].probes[0].thresholds.fail_below = Some(95.0);
        let err = f.validate("funnels.acme").unwrap_err();
        assert_eq!(
            keys(err.clone()),
            vec!["funnels.acme.stages[0].probes[0].thresholds"]
        );
        assert!(err.to_string().contains("looser"), "{err}");
    }

    #[test]
    fn duplicate_probe_ids_and_stages_are_rejected() {
        let mut f = funnel();
        let dup = f.stages[0].probes[0].clone();
        f.stages[1].probes.push(dup);
        f.stages.push(StagePolicy::new("crm"));
        let k = keys(f.validate("f").unwrap_err());
        assert!(k.contains(&"f.stages[1].probes[0].id".to_string()), "{k:?}");
        assert!(k.contains(&"f.stages[2].name".to_string()), "{k:?}");
    }

    #[test]
    fn ramp_must_end_at_100_and_increase() {
        let mut f = funnel();
        f.gate.ramp = vec![10, 50, 40];
        let err = f.validate("f").unwrap_err();
        assert!(err.to_string().contains("must end at 100"), "{err}");
        assert!(err.to_string().contains("strictly increasing"), "{err}");
    }

    #[test]
    fn bad_funnel_name_and_secret_value_rejected() {
        let mut f = funnel();
        f.name = "Acme Corp".into();
        f.stages[0].probes[0].secret = Some("pat-na1-1234-abcd".into());
        let k = keys(f.validate("f").unwrap_err());
        assert_eq!(k, vec!["f.name", "f.stages[0].probes[0].secret"]);
    }

    #[test]
    fn stale_after_shorter_than_interval_rejected() {
        let mut f = funnel();
        f.stages[0].interval = HumanDuration::from_secs(600);
        f.stages[0].stale_after = HumanDuration::from_secs(60);
        assert_eq!(
            keys(f.validate("f").unwrap_err()),
            vec!["f.stages[0].stale_after"]
        );
    }

    #[test]
    fn unknown_fields_rejected_by_serde() {
        let err =
            serde_json::from_str::<ProbeSpec>(r#"{"id":"a","kind":"sql","wieght":2}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `wieght`"), "{err}");
    }

    #[test]
    fn funnel_names() {
        assert!(is_valid_funnel_name("acme-2"));
        assert!(!is_valid_funnel_name("-acme"));
        assert!(!is_valid_funnel_name(&"a".repeat(64)));
        assert!(is_valid_funnel_name(&"a".repeat(63)));
    }
}
