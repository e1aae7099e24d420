//! A decision, walked stage by stage in words: what `Explain` answers.

use funnelgate_core::{FunnelPolicy, GateDecision, Phase, Readiness, Timestamp};

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3339 UTC, second precision: `2026-11-23T05:13:00Z`.
pub fn format_timestamp(t: Timestamp) -> String {
    let secs = t.as_millis().div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Human-readable lines explaining `decision` under `policy`: the verdict, any override, the
/// phase, each stage bottom-up with its probes, the reasons, and what to fix first.
pub fn explain(decision: &GateDecision, policy: Option<&FunnelPolicy>) -> Vec<String> {
    let mut out = Vec::new();
    let d = decision;
    let blocking = d
        .blocking_stage
        .as_deref()
        .map(|s| format!("; blocking stage `{s}`"))
        .unwrap_or_default();
    out.push(format!(
        "funnel `{}`: gate {} with {}% of traffic allowed, since {}{blocking} (evaluated {})",
        d.funnel,
        d.state,
        d.allowed_rollout_percent,
        format_timestamp(d.since),
        format_timestamp(d.evaluated_at)
    ));
    if let Some(o) = &d.override_ {
        out.push(format!(
            "override: forced {} by `{}` until {} (reason: {}); without it the gate would be {}",
            o.state,
            o.actor,
            format_timestamp(o.until),
            o.reason,
            d.underlying_state
        ));
    }
    out.push(match d.phase {
        Phase::Build => {
            "phase build: the gate has not opened yet, so remediation goes strictly bottom-up"
                .to_string()
        }
        Phase::Operate => {
            "phase operate: the most broken metric comes first, whatever its stage".to_string()
        }
    });
    let n = d.stages.len();
    for (i, s) in d.stages.iter().enumerate() {
        let checked = s
            .checked_at
            .map(|t| format!("checked {}", format_timestamp(t)))
            .unwrap_or_else(|| "never checked".to_string());
        out.push(format!(
            "stage {}/{n} `{}`: {} and {}, score {} ({checked}; on_unknown {}): {}",
            i + 1,
            s.stage,
            s.health.as_str(),
            s.readiness.as_str(),
            num(s.score),
            s.on_unknown.as_str(),
            s.summary
        ));
        if s.readiness == Readiness::Blocked {
            out.push(format!("  `{}` passes on its own but a stage below it is not ready: bottom-up, it does not count yet", s.stage));
        }
        let stage_policy = policy.and_then(|p| p.stages.iter().find(|st| st.name == s.stage));
        for r in &s.probes {
            let spec = stage_policy.and_then(|st| st.probes.iter().find(|p| p.id == r.id));
            let mut tags = Vec::new();
            if let Some(spec) = spec {
                if !spec.counts_for_health() {
                    tags.push(if spec.proof { "proof" } else { "observe only" });
                }
                if spec.severity == funnelgate_core::Severity::Advisory {
                    tags.push("advisory");
                }
            }
            let tags = if tags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", tags.join(", "))
            };
            let value = r
                .value
                .map(|v| {
                    format!(
                        " value {}{}",
                        num(v),
                        if r.unit.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", r.unit)
                        }
                    )
                })
                .unwrap_or_default();
            let threshold = r
                .threshold
                .map(|t| format!(" threshold {}", num(t)))
                .unwrap_or_default();
            out.push(format!(
                "  probe `{}` ({}){tags}: {}{value}{threshold}: {}",
                r.id, r.kind, r.status, r.message
            ));
        }
    }
    if !d.reasons.is_empty() {
        out.push("reasons:".to_string());
        for r in &d.reasons {
            let at = match (&r.stage, &r.probe) {
                (Some(s), Some(p)) => format!(" {s}/{p}"),
                (Some(s), None) => format!(" {s}"),
                _ => String::new(),
            };
            let mut nums = Vec::new();
            if let Some(v) = r.value {
                nums.push(format!("value {}", num(v)));
            }
            if let Some(t) = r.threshold {
                nums.push(format!("threshold {}", num(t)));
            }
            let nums = if nums.is_empty() {
                String::new()
            } else {
                format!(" ({})", nums.join(", "))
            };
            out.push(format!("  {}{at}: {}{nums}", r.code, r.message));
        }
    }
    if !d.remediation.is_empty() {
        out.push("fix first:".to_string());
        for (i, r) in d.remediation.iter().take(5).enumerate() {
            // A stage- or checker-level item (never reported, stale, unreachable) has no probe.
            let at = if r.probe.is_empty() {
                r.stage.clone()
            } else {
                format!("{}/{}", r.stage, r.probe)
            };
            out.push(format!(
                "  {}. {at}: {} (badness {}): {}",
                i + 1,
                r.status,
                num(r.badness),
                r.message
            ));
        }
    }
    if let Some(advice) = &d.advice {
        out.push(format!("advice: {advice}"));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(
            format_timestamp(Timestamp::from_millis(0)),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            format_timestamp(Timestamp::from_millis(951_782_400_000)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            format_timestamp(Timestamp::from_millis(1_795_410_780_999)),
            "2026-11-23T05:13:00Z"
        );
        assert_eq!(
            format_timestamp(Timestamp::from_millis(-1000)),
            "1969-12-31T23:59:59Z"
        );
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(50.0), "50");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(1.0 / 3.0), "0.3333");
    }
}
