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

/// Pretty-printed JSON (serde_json cannot fail on a `Value`), every timestamp as RFC 3339 UTC
/// (the one format of every JSON answer, HTTP and CLI alike).
pub fn json_string(v: &Value) -> String {
    let mut v = v.clone();
    funnelgate_coordinator::json_time::rfc3339_timestamps(&mut v);
    serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
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

/// A stage in a marketer's words.
fn stage_words(stage: &str) -> String {
    match stage {
        "crm" => "the CRM".to_string(),
        "automation" => "marketing automation".to_string(),
        "esp" => "the email service provider".to_string(),
        "analytics" => "web analytics".to_string(),
        other => format!("the {other} stage"),
    }
}

/// The probe's description at the end of an engine message (`… (share of new leads …)`).
fn trailing_description(message: &str) -> Option<&str> {
    let body = message.strip_suffix(')')?;
    let mut depth = 0usize;
    for (i, c) in body.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' if depth == 0 => return Some(body[i + 1..].trim()).filter(|s| !s.is_empty()),
            '(' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// A number as a marketer reads it, with `%` when the engine's message shows it as a percentage.
fn plain_number(v: f64, message: &str) -> String {
    let percent =
        message.contains(&format!("{v:.1}%")) || message.contains(&format!("{}%", num(v)));
    let rounded = if v.abs() >= 10.0 {
        v.round()
    } else {
        (v * 10.0).round() / 10.0
    };
    if percent {
        format!("{}%", num(rounded))
    } else {
        num(rounded)
    }
}

/// What is wrong, in a marketer's words, from the head of the remediation list or the reasons.
fn plain_problem(d: &core::GateDecision) -> String {
    if let Some(r) = d.remediation.first() {
        let place = stage_words(&r.stage);
        let what = trailing_description(&r.message)
            .map(str::to_string)
            .unwrap_or_else(|| format!("the check `{}`", r.probe));
        return match (r.status, r.value, r.threshold) {
            (core::ProbeStatus::Fail | core::ProbeStatus::Warn, Some(v), Some(t)) => {
                let (how, need) = if v < t {
                    ("too low", "at least")
                } else {
                    ("too high", "at most")
                };
                format!(
                    "in {place}, {what} is {how} ({}, needs {need} {})",
                    plain_number(v, &r.message),
                    plain_number(t, &r.message)
                )
            }
            (core::ProbeStatus::Error, ..) => {
                format!("funnelgate cannot measure {what} in {place}")
            }
            (core::ProbeStatus::NoData, ..) => {
                format!("there is no data yet for {what} in {place}")
            }
            _ => format!("in {place}, {what} needs attention"),
        };
    }
    let Some(r) = d.reasons.first() else {
        return "nothing is known about the funnel yet".to_string();
    };
    let place = r
        .stage
        .as_deref()
        .map(stage_words)
        .unwrap_or_else(|| "the funnel".to_string());
    match r.code {
        core::ReasonCode::Unreachable => {
            format!(
                "funnelgate cannot reach the checker of {place}, so nobody can tell if it works"
            )
        }
        core::ReasonCode::Stale => format!("the last check of {place} is too old to trust"),
        core::ReasonCode::UnknownGraceExceeded => {
            format!("{place} has not been checked successfully for too long")
        }
        core::ReasonCode::NotYetEvaluated => {
            "funnelgate is still running its first checks of the funnel".to_string()
        }
        core::ReasonCode::Soaking => {
            "the funnel looks healthy; funnelgate watches it a little longer before allowing more"
                .to_string()
        }
        core::ReasonCode::ProofPending => {
            "the funnel works, but it has not yet shown a conversion end to end".to_string()
        }
        core::ReasonCode::Closing => format!("{place} has started failing"),
        core::ReasonCode::Overridden => "an operator set the gate by hand".to_string(),
        _ => format!("something in {place} needs attention"),
    }
}

/// One plain sentence a marketing lead understands, e.g. "Don't start paid campaigns yet: in
/// the CRM, share of new leads assigned to a sales rep is too low (60%, needs at least 90%)."
pub fn plain_sentence(d: &core::GateDecision) -> String {
    let operating = d.phase == core::Phase::Operate;
    let pct = d.allowed_rollout_percent;
    let mut s = match d.state {
        core::GateState::Open if pct >= 100 => {
            "Paid campaigns can run at full budget: every stage of the funnel checks out"
                .to_string()
        }
        core::GateState::Open => format!(
            "Paid campaigns can run at {pct}% of the planned traffic: the funnel checks out and              the share grows step by step while it stays healthy"
        ),
        core::GateState::Hold if pct == 0 => {
            format!("Don't start paid campaigns yet: {}", plain_problem(d))
        }
        core::GateState::Hold => format!(
            "Keep paid campaigns at {pct}% of the planned traffic for now: {}",
            plain_problem(d)
        ),
        core::GateState::Closed if operating => {
            format!("Pause paid campaigns: {}", plain_problem(d))
        }
        core::GateState::Closed => format!("Don't start paid campaigns yet: {}", plain_problem(d)),
    };
    if let Some(o) = &d.override_ {
        let _ = write!(s, " (set by hand by {}: {})", o.actor, o.reason);
    }
    s.push('.');
    s
}

/// The full text view of a decision (`gate status`, `gate check`): the plain sentence first,
/// then the details for engineers.
pub fn decision_text(d: &core::GateDecision, sequence: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}\n", plain_sentence(d));
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
    let _ = writeln!(s, "{}\n", plain_sentence(d));
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

    fn decision(state: core::GateState, pct: u32) -> core::GateDecision {
        let t = core::Timestamp::from_millis(0);
        core::GateDecision {
            funnel: "acme".into(),
            state,
            underlying_state: state,
            allowed_rollout_percent: pct,
            blocking_stage: None,
            phase: core::Phase::Build,
            reasons: Vec::new(),
            remediation: Vec::new(),
            stages: Vec::new(),
            since: t,
            evaluated_at: t,
            override_: None,
            advice: None,
        }
    }

    #[test]
    fn a_marketer_reads_one_plain_sentence() {
        let mut d = decision(core::GateState::Closed, 0);
        d.remediation.push(core::RemediationItem {
            stage: "crm".into(),
            probe: "leads-have-owner".into(),
            status: core::ProbeStatus::Fail,
            badness: 1.0,
            message: "crm: probe `leads-have-owner` FAIL: 60.0% below fail threshold 90.0% (share of new leads (30 days) assigned to a sales rep)".into(),
            value: Some(60.0),
            threshold: Some(90.0),
        });
        assert_eq!(
            plain_sentence(&d),
            "Don't start paid campaigns yet: in the CRM, share of new leads (30 days) assigned to a sales rep is too low (60%, needs at least 90%)."
        );
        let text = decision_text(&d, 3);
        assert!(text.starts_with("Don't start paid campaigns yet"), "{text}");
        assert!(
            text.contains("\n\nacme: CLOSED — 0% of traffic allowed"),
            "{text}"
        );

        let mut open = decision(core::GateState::Open, 10);
        assert!(
            plain_sentence(&open)
                .starts_with("Paid campaigns can run at 10% of the planned traffic")
        );
        open.allowed_rollout_percent = 100;
        assert!(plain_sentence(&open).starts_with("Paid campaigns can run at full budget"));

        let mut hold = decision(core::GateState::Hold, 5);
        hold.reasons.push(core::Reason {
            code: core::ReasonCode::Unreachable,
            stage: Some("esp".into()),
            probe: None,
            value: None,
            threshold: None,
            message: "esp: checker could not be reached".into(),
        });
        assert_eq!(
            plain_sentence(&hold),
            "Keep paid campaigns at 5% of the planned traffic for now: funnelgate cannot reach the checker of the email service provider, so nobody can tell if it works."
        );
    }

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
