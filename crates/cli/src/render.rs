//! How decisions, evidence and history look on a terminal (`--output text`) and as JSON
//! (`--output json`: the core `GateDecision` serde shape, plus the wire's `sequence` and
//! `config_hash`).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use funnelgate_core as core;
use funnelgate_core::time::format_duration;
use funnelgate_proto::convert::timestamp_from_pb;
use funnelgate_proto::pb;
use serde_json::Value;

use crate::exit::{self, CliError};

/// Output format of client commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human-readable text.
    #[default]
    Text,
    /// Machine-readable JSON (one document; `watch` prints one JSON object per line).
    Json,
}

/// The wire decision as the core model (for JSON and for rendering).
pub fn to_core(d: &pb::GateDecision) -> Result<core::GateDecision, CliError> {
    core::GateDecision::try_from(d).map_err(|e| {
        CliError::unavailable(format!(
            "the coordinator sent a decision this cli cannot read: {e}"
        ))
    })
}

/// The decision as JSON: the core serde shape plus `sequence` and `config_hash`.
pub fn decision_json(d: &pb::GateDecision) -> Result<Value, CliError> {
    let core = to_core(d)?;
    let mut v = serde_json::to_value(&core)
        .map_err(|e| CliError::unavailable(format!("cannot encode the decision as json: {e}")))?;
    if let Value::Object(map) = &mut v {
        map.insert("sequence".into(), Value::from(d.sequence));
        map.insert("config_hash".into(), Value::from(d.config_hash.clone()));
    }
    Ok(v)
}

/// Pretty-printed JSON (serde_json cannot fail on a `Value`).
pub fn json_string(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// The gate state of a wire decision (`UNSPECIFIED` reads as CLOSED: never open by accident).
pub fn state_of(d: &pb::GateDecision) -> core::GateState {
    match pb::GateState::try_from(d.state) {
        Ok(pb::GateState::Open) => core::GateState::Open,
        Ok(pb::GateState::Hold) => core::GateState::Hold,
        _ => core::GateState::Closed,
    }
}

/// The exit code of `gate check` for a state.
pub fn exit_code(state: core::GateState) -> u8 {
    match state {
        core::GateState::Open => exit::OK,
        core::GateState::Hold => exit::HOLD,
        core::GateState::Closed => exit::CLOSED,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// "3m12s ago" for a timestamp (seconds precision).
pub fn ago(t: core::Timestamp) -> String {
    let elapsed = Duration::from_secs(now_ms().saturating_sub(t.as_millis()).max(0) as u64 / 1000);
    format!("{} ago", format_duration(elapsed))
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// " [value 35 vs threshold 70]" when known and the message does not already say it.
fn value_threshold(message: &str, value: Option<f64>, threshold: Option<f64>) -> String {
    if !message.is_empty() {
        return String::new();
    }
    match (value, threshold) {
        (Some(v), Some(t)) => format!(" [value {} vs threshold {}]", num(v), num(t)),
        (Some(v), None) => format!(" [value {}]", num(v)),
        (None, Some(t)) => format!(" [threshold {}]", num(t)),
        (None, None) => String::new(),
    }
}

/// One line: `acme: HOLD 5% · blocking crm · fix first: crm/leads: …`.
pub fn one_line(d: &core::GateDecision) -> String {
    let mut s = format!("{}: {} {}%", d.funnel, d.state, d.allowed_rollout_percent);
    if let Some(b) = &d.blocking_stage {
        let _ = write!(s, " · blocking {b}");
    }
    if let Some(r) = d.remediation.first() {
        // The engine's messages already name the stage, the probe and the status.
        let _ = write!(s, " · fix first: {}", r.message);
    } else if let Some(r) = d.reasons.first() {
        let _ = write!(s, " · {}: {}", r.code, r.message);
    }
    s
}

/// The full text view of a decision (`gate status`, `gate check`).
pub fn decision_text(d: &core::GateDecision, sequence: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} — {}% of traffic allowed (phase {}, since {}, {})",
        d.funnel,
        d.state,
        d.allowed_rollout_percent,
        d.phase.as_str(),
        d.since,
        ago(d.since)
    );
    if d.underlying_state != d.state {
        let _ = writeln!(s, "underlying state: {} (overridden)", d.underlying_state);
    }
    if let Some(o) = &d.override_ {
        let _ = writeln!(
            s,
            "override: {} by {} until {}: {}",
            o.state, o.actor, o.until, o.reason
        );
    }
    if let Some(b) = &d.blocking_stage {
        let _ = writeln!(s, "blocking stage: {b}");
    }
    if !d.reasons.is_empty() {
        let _ = writeln!(s, "\nreasons:");
        for r in &d.reasons {
            let _ = writeln!(
                s,
                "  {}: {}{}",
                r.code,
                r.message,
                value_threshold(&r.message, r.value, r.threshold)
            );
        }
    }
    if !d.stages.is_empty() {
        let _ = writeln!(s, "\nstages (bottom first):");
        let width = d.stages.iter().map(|st| st.stage.len()).max().unwrap_or(0);
        for st in &d.stages {
            let _ = writeln!(
                s,
                "  {:width$}  {:8}  {:9}  score {:>3.0}  {}",
                st.stage,
                st.health.as_str(),
                st.readiness.as_str(),
                st.score,
                st.summary,
            );
        }
    }
    if !d.remediation.is_empty() {
        let _ = writeln!(s, "\nfix first (in this order):");
        for (i, r) in d.remediation.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {}. {}{}",
                i + 1,
                r.message,
                value_threshold(&r.message, r.value, r.threshold)
            );
        }
    }
    if let Some(a) = &d.advice {
        let _ = writeln!(s, "\nadvice: {a}");
    }
    let _ = write!(s, "\nevaluated {} · decision #{sequence}", d.evaluated_at);
    s
}

/// The evidence tree of `gate explain`.
pub fn explain_text(d: &core::GateDecision, explanation: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", one_line(d));
    if !explanation.is_empty() {
        let _ = writeln!(s, "\nhow the decision was made:");
        for line in explanation {
            let _ = writeln!(s, "  {line}");
        }
    }
    let _ = writeln!(s, "\nevidence (stages bottom first):");
    for st in &d.stages {
        let checked = st
            .checked_at
            .map(|t| format!("checked {t}"))
            .unwrap_or_else(|| "never checked".into());
        let _ = writeln!(
            s,
            "├─ {} {} {} score {} ({checked}; on_unknown={})",
            st.stage,
            st.health.as_str(),
            st.readiness.as_str(),
            num(st.score),
            st.on_unknown.as_str(),
        );
        if !st.summary.is_empty() {
            let _ = writeln!(s, "│    {}", st.summary);
        }
        for (i, p) in st.probes.iter().enumerate() {
            let branch = if i + 1 == st.probes.len() {
                "└─"
            } else {
                "├─"
            };
            let mut extra = value_threshold(&p.message, p.value, p.threshold);
            if !p.unit.is_empty() && p.value.is_some() {
                extra.push_str(&format!(" {}", p.unit));
            }
            if let Some(n) = p.sample_size {
                extra.push_str(&format!(" n={n}"));
            }
            let _ = writeln!(
                s,
                "│  {branch} {} {} ({}): {}{extra}",
                p.id, p.status, p.kind, p.message
            );
            let cont = if i + 1 == st.probes.len() { " " } else { "│" };
            steps_text(&mut s, cont, &p.steps);
        }
    }
    if !d.remediation.is_empty() {
        let _ = writeln!(s, "\nremediation:");
        for (i, r) in d.remediation.iter().enumerate() {
            let _ = writeln!(s, "  {}. {} (badness {})", i + 1, r.message, num(r.badness));
        }
    }
    s.trim_end().to_string()
}

/// The steps of a journey probe (the canary lead), one line each: name, the stage it evidences,
/// status, time taken, message.
fn steps_text(s: &mut String, cont: &str, steps: &[core::JourneyStep]) {
    for (i, step) in steps.iter().enumerate() {
        let branch = if i + 1 == steps.len() {
            "└─"
        } else {
            "├─"
        };
        let _ = writeln!(
            s,
            "│  {cont}    {branch} step {} [{}] {} {}: {}",
            step.name,
            step.stage,
            step.status,
            core::HumanDuration(std::time::Duration::from_millis(step.duration_ms)),
            step.message
        );
    }
}

/// A stored decision as JSON.
pub fn record_json(r: &pb::DecisionRecord) -> Result<Value, CliError> {
    let decision = match &r.decision {
        Some(d) => decision_json(d)?,
        None => Value::Null,
    };
    Ok(serde_json::json!({
        "sequence": r.sequence,
        "kind": r.kind,
        "recorded_at": r.recorded_at.as_ref().map(|t| timestamp_from_pb(t).to_string()),
        "hash": r.hash,
        "prev_hash": r.prev_hash,
        "decision": decision,
    }))
}

/// A stored decision as one table row.
pub fn record_row(r: &pb::DecisionRecord) -> Result<String, CliError> {
    let at = r
        .recorded_at
        .as_ref()
        .map(|t| timestamp_from_pb(t).to_string())
        .unwrap_or_default();
    let (state, pct, blocking, first) = match &r.decision {
        Some(d) => {
            let c = to_core(d)?;
            let first = c
                .remediation
                .first()
                .map(|x| format!("{}/{}", x.stage, x.probe))
                .or_else(|| c.reasons.first().map(|x| x.code.to_string()))
                .unwrap_or_default();
            (
                c.state.to_string(),
                format!("{}%", c.allowed_rollout_percent),
                c.blocking_stage.unwrap_or_else(|| "-".into()),
                first,
            )
        }
        None => ("-".into(), "-".into(), "-".into(), String::new()),
    };
    let hash: String = r.hash.chars().take(12).collect();
    Ok(format!(
        "{:>6}  {:24}  {:8}  {:6}  {:>4}  {:12}  {hash}  {first}",
        r.sequence, at, r.kind, state, pct, blocking
    ))
}

/// Header of the history table.
pub const RECORD_HEADER: &str = "   seq  recorded at               kind      state   share  blocking      hash          first item";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_short() {
        assert_eq!(num(70.0), "70");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(1.0 / 3.0), "0.333");
    }

    #[test]
    fn journey_steps_show_their_stage_and_status() {
        let steps = vec![
            core::JourneyStep {
                name: "submit".into(),
                stage: "automation".into(),
                status: core::ProbeStatus::Pass,
                duration_ms: 120,
                message: "test lead created".into(),
            },
            core::JourneyStep {
                name: "crm_record".into(),
                stage: "crm".into(),
                status: core::ProbeStatus::Fail,
                duration_ms: 300_000,
                message: "the lead never reached the crm within 300s".into(),
            },
        ];
        let mut s = String::new();
        steps_text(&mut s, "│", &steps);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2, "{s}");
        assert!(lines[0].contains("├─ step submit [automation] PASS"), "{s}");
        assert!(
            lines[1].contains("└─ step crm_record [crm] FAIL 5m: the lead never reached the crm"),
            "{s}"
        );
    }

    #[test]
    fn unspecified_state_reads_as_closed() {
        let d = pb::GateDecision {
            state: 0,
            ..Default::default()
        };
        assert_eq!(state_of(&d), core::GateState::Closed);
        assert_eq!(exit_code(core::GateState::Hold), exit::HOLD);
    }
}
