//! What a check found, each item with a stable code (for tests, dashboards and the golden
//! comparison with checkdmarc) and a message a marketer can act on.

use funnelgate_core::{Measurement, ProbeStatus};

/// How bad one finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Worth knowing; does not change the verdict.
    Info,
    /// Weakens deliverability or breaks a best practice: WARN.
    Warn,
    /// Breaks the standard or a mailbox provider's rule: FAIL.
    Fail,
}

/// One thing a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub level: Level,
    /// Stable snake_case code, e.g. `spf_too_many_lookups`.
    pub code: &'static str,
    /// What it means and what to do, in plain words.
    pub message: String,
}

/// An ordered list of findings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings(pub Vec<Finding>);

impl Findings {
    /// Record a finding.
    pub fn push(&mut self, level: Level, code: &'static str, message: impl Into<String>) {
        self.0.push(Finding {
            level,
            code,
            message: message.into(),
        });
    }

    /// A warning.
    pub fn warn(&mut self, code: &'static str, message: impl Into<String>) {
        self.push(Level::Warn, code, message);
    }

    /// A failure.
    pub fn fail(&mut self, code: &'static str, message: impl Into<String>) {
        self.push(Level::Fail, code, message);
    }

    /// Something worth knowing.
    pub fn info(&mut self, code: &'static str, message: impl Into<String>) {
        self.push(Level::Info, code, message);
    }

    /// Append another list.
    pub fn extend(&mut self, other: Findings) {
        self.0.extend(other.0);
    }

    /// Whether a finding with this code was recorded.
    pub fn has(&self, code: &str) -> bool {
        self.0.iter().any(|f| f.code == code)
    }

    /// The codes, in order (duplicates kept).
    pub fn codes(&self) -> Vec<&'static str> {
        self.0.iter().map(|f| f.code).collect()
    }

    /// The worst level recorded.
    pub fn worst(&self) -> Option<Level> {
        self.0.iter().map(|f| f.level).max()
    }

    /// The status these findings amount to: FAIL, WARN or PASS.
    pub fn verdict(&self) -> ProbeStatus {
        match self.worst() {
            Some(Level::Fail) => ProbeStatus::Fail,
            Some(Level::Warn) => ProbeStatus::Warn,
            _ => ProbeStatus::Pass,
        }
    }

    /// The messages at a level or worse.
    pub fn messages(&self, at_least: Level) -> Vec<&str> {
        self.0
            .iter()
            .filter(|f| f.level >= at_least)
            .map(|f| f.message.as_str())
            .collect()
    }

    /// Put the findings into a measurement's evidence: `findings` (codes, comma-separated) and
    /// one `finding.NN` entry per finding (`LEVEL code: message`).
    pub fn into_evidence(&self, mut m: Measurement) -> Measurement {
        if !self.0.is_empty() {
            m.evidence.insert("findings".into(), self.codes().join(","));
        }
        for (i, f) in self.0.iter().enumerate() {
            let level = match f.level {
                Level::Info => "INFO",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            m.evidence.insert(
                format!("finding.{:02}", i + 1),
                format!("{level} {}: {}", f.code, f.message),
            );
        }
        m
    }
}

/// Build a measurement from a summary and findings: the verdict is the worst finding, the
/// message is the summary followed by the most important findings.
pub fn measurement(
    value: Option<f64>,
    unit: &str,
    summary: String,
    findings: &Findings,
) -> Measurement {
    let verdict = findings.verdict();
    let mut message = summary;
    let top: Vec<&str> = match findings.worst() {
        Some(Level::Fail) => findings.messages(Level::Fail),
        Some(Level::Warn) => findings.messages(Level::Warn),
        _ => Vec::new(),
    };
    for (i, msg) in top.iter().take(3).enumerate() {
        message.push_str(if i == 0 { ": " } else { "; " });
        message.push_str(msg);
    }
    if top.len() > 3 {
        message.push_str(&format!(" (and {} more, see evidence)", top.len() - 3));
    }
    let m = Measurement {
        value,
        unit: unit.to_string(),
        verdict: Some(verdict),
        message,
        ..Default::default()
    };
    findings.into_evidence(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn verdict_is_the_worst_finding() {
        let mut f = Findings::default();
        assert_eq!(f.verdict(), ProbeStatus::Pass);
        f.info("a", "x");
        assert_eq!(f.verdict(), ProbeStatus::Pass);
        f.warn("b", "y");
        assert_eq!(f.verdict(), ProbeStatus::Warn);
        f.fail("c", "z");
        assert_eq!(f.verdict(), ProbeStatus::Fail);
        assert_eq!(f.codes(), vec!["a", "b", "c"]);
    }

    #[test]
    fn measurement_message_leads_with_the_worst() {
        let mut f = Findings::default();
        f.warn("w", "weak");
        f.fail("f", "broken");
        let m = measurement(Some(3.0), "count", "spf for example.com".into(), &f);
        assert_eq!(m.verdict, Some(ProbeStatus::Fail));
        assert_eq!(m.message, "spf for example.com: broken");
        assert_eq!(m.evidence["findings"], "w,f");
        assert_eq!(m.evidence["finding.02"], "FAIL f: broken");
    }
}
