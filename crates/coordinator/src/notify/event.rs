//! What a notification says, built from ledger entries (pure: no I/O). A [`Change`] is one
//! recorded ledger entry compared with the entry before it; the filters decide which sinks hear
//! of it; the payload builders give each sink its shape: a CloudEvents 1.0 structured-mode JSON
//! body (webhook), Slack `text` + Block Kit `blocks`, a Teams message with an Adaptive Card, and
//! an email subject and body.

use funnelgate_core::{GateDecision, GateState};
use serde::{Deserialize, Serialize};

use super::config::Filter;
use crate::store::{EntryKind, LedgerEntry};

/// CloudEvents `type` of a gate change.
pub const EVENT_TYPE: &str = "dev.funnelgate.gate.changed.v1";
/// Header carrying the signing time (unix seconds) of a webhook delivery.
pub const TIMESTAMP_HEADER: &str = "Funnelgate-Timestamp";
/// Header carrying `v1=<hex HMAC-SHA256(key, timestamp + "." + body)>`.
pub const SIGNATURE_HEADER: &str = "Funnelgate-Signature";

/// One recorded change of a funnel's gate, as notifications describe it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The idempotency key: `<funnel>:<seq>:<first 16 hex of the entry hash>`; the CloudEvents
    /// `id`, the same at every retry and after a restart.
    pub id: String,
    /// The funnel.
    pub funnel: String,
    /// Ledger sequence of the entry.
    pub sequence: u64,
    /// `decision`, `override`, `override_cleared` or `phase`.
    pub kind: String,
    /// When it was recorded (RFC 3339 UTC).
    pub recorded_at: String,
    /// The gate state now.
    pub state: GateState,
    /// The gate state before (absent for the first entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<GateState>,
    /// The allowed share now.
    pub allowed_rollout_percent: u32,
    /// The lowest stage holding or closing the gate now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocking_stage: Option<String>,
    /// The blocking stage before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_blocking_stage: Option<String>,
    /// `build` or `operate`.
    pub phase: String,
    /// Operator actions: who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Operator actions: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the gate is where it is (the decision's reasons, at most 5).
    pub reasons: Vec<String>,
    /// What to fix first (the head of the remediation list, at most 3).
    pub fix_first: Vec<String>,
}

fn decision(entry: &LedgerEntry) -> Option<GateDecision> {
    entry
        .payload
        .get("decision")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
}

impl Change {
    /// The change `entry` makes after `previous` (the funnel's entry before it, if any). `None`
    /// when the entry holds no readable decision.
    pub fn from_entries(entry: &LedgerEntry, previous: Option<&LedgerEntry>) -> Option<Change> {
        let d = decision(entry)?;
        let before = previous.and_then(decision);
        let text = |k: &str| {
            entry
                .payload
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        Some(Change {
            id: format!(
                "{}:{}:{}",
                entry.funnel,
                entry.seq,
                entry.hash.get(..16).unwrap_or(&entry.hash)
            ),
            funnel: entry.funnel.clone(),
            sequence: entry.seq,
            kind: entry.kind.as_str().to_string(),
            recorded_at: entry.recorded_at.to_string(),
            state: d.state,
            previous_state: before.as_ref().map(|b| b.state),
            allowed_rollout_percent: d.allowed_rollout_percent,
            blocking_stage: d.blocking_stage.clone(),
            previous_blocking_stage: before.as_ref().and_then(|b| b.blocking_stage.clone()),
            phase: d.phase.as_str().to_string(),
            actor: text("actor"),
            reason: text("reason"),
            reasons: d
                .reasons
                .iter()
                .take(5)
                .map(|r| r.message.clone())
                .collect(),
            fix_first: d
                .remediation
                .iter()
                .take(3)
                .map(|r| format!("{}: {}", r.stage, r.message))
                .collect(),
        })
    }

    /// Whether `filter` selects this change. `previous_state` absent counts as a change.
    pub fn matches(&self, filter: Filter) -> bool {
        match filter {
            Filter::StateChange => self.previous_state != Some(self.state),
            Filter::Closed => {
                self.state == GateState::Closed && self.previous_state != Some(GateState::Closed)
            }
            Filter::BlockingStage => {
                self.previous_state.is_none() || self.blocking_stage != self.previous_blocking_stage
            }
            Filter::Override => {
                self.kind == EntryKind::Override.as_str()
                    || self.kind == EntryKind::OverrideCleared.as_str()
            }
        }
    }

    /// Whether any of `filters` selects it.
    pub fn matches_any(&self, filters: &[Filter]) -> bool {
        filters.iter().any(|f| self.matches(*f))
    }

    /// One line: `acme: CLOSED (was OPEN), 0% allowed, blocking stage crm`.
    pub fn headline(&self) -> String {
        let mut s = format!("{}: {}", self.funnel, self.state);
        if let Some(p) = self.previous_state
            && p != self.state
        {
            s.push_str(&format!(" (was {p})"));
        }
        s.push_str(&format!(", {}% allowed", self.allowed_rollout_percent));
        if let Some(b) = &self.blocking_stage {
            s.push_str(&format!(", blocking stage {b}"));
        }
        s
    }

    fn detail_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match self.kind.as_str() {
            "override" | "override_cleared" | "phase" => lines.push(format!(
                "{} by {}: {}",
                self.kind.replace('_', " "),
                self.actor.as_deref().unwrap_or("unknown"),
                self.reason.as_deref().unwrap_or("")
            )),
            _ => {}
        }
        lines.extend(self.reasons.iter().cloned());
        if !self.fix_first.is_empty() {
            lines.push("Fix first:".to_string());
            lines.extend(
                self.fix_first
                    .iter()
                    .enumerate()
                    .map(|(i, f)| format!("{}. {f}", i + 1)),
            );
        }
        lines.push(format!(
            "Recorded {} as ledger entry {} ({}).",
            self.recorded_at, self.sequence, self.id
        ));
        lines
    }

    /// The CloudEvents 1.0 structured-mode body (`application/cloudevents+json`).
    pub fn cloudevent(&self) -> serde_json::Value {
        serde_json::json!({
            "specversion": "1.0",
            "id": self.id,
            "source": format!("/funnelgate/funnels/{}", self.funnel),
            "type": EVENT_TYPE,
            "subject": self.funnel,
            "time": self.recorded_at,
            "datacontenttype": "application/json",
            "data": self,
        })
    }

    /// A Slack incoming-webhook message: `text` (the notification fallback) and `blocks`.
    pub fn slack(&self) -> serde_json::Value {
        let details = self.detail_lines().join("\n");
        serde_json::json!({
            "text": self.headline(),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": truncate(&self.headline(), 150)}},
                {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&slack_escape(&details), 3000)}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(&format!("funnelgate · {} · id {}", self.kind, self.id))}]}
            ]
        })
    }

    /// A Microsoft Teams incoming-webhook message carrying an Adaptive Card.
    pub fn teams(&self) -> serde_json::Value {
        let mut body = vec![serde_json::json!({
            "type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true,
            "text": self.headline(),
        })];
        body.extend(
            self.detail_lines()
                .into_iter()
                .map(|l| serde_json::json!({"type": "TextBlock", "wrap": true, "text": l})),
        );
        serde_json::json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                }
            }]
        })
    }

    /// Email subject and plain-text body.
    pub fn email(&self) -> (String, String) {
        (
            format!("[funnelgate] {}", self.headline()),
            format!(
                "{}\n\n{}\n",
                self.headline(),
                self.detail_lines().join("\n")
            ),
        )
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Slack mrkdwn needs `&`, `<` and `>` escaped.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`, by `ring` (already in the tree via rustls).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, message);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The `Funnelgate-Signature` value: `v1=` + lower-case hex of
/// `HMAC-SHA256(key, "<timestamp>." + body)`.
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    format!("v1={}", hex::encode(hmac_sha256(key, &message)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use funnelgate_core::Timestamp;

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex::encode(hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let s = signature(b"k", 1700000000, b"{}");
        assert!(s.starts_with("v1=") && s.len() == 3 + 64, "{s}");
        assert_ne!(s, signature(b"k", 1700000001, b"{}"));
        assert_ne!(s, signature(b"k", 1700000000, b"{ }"));
        assert_eq!(
            s,
            format!("v1={}", hex::encode(hmac_sha256(b"k", b"1700000000.{}")))
        );
    }

    fn entry(seq: u64, kind: EntryKind, state: &str, blocking: Option<&str>) -> LedgerEntry {
        let mut d = serde_json::json!({
            "funnel": "acme", "state": state, "underlying_state": state,
            "allowed_rollout_percent": if state == "OPEN" { 100 } else { 0 },
            "phase": "build", "reasons": [{"code": "STAGE_FAILING", "message": "crm: broken"}],
            "remediation": [], "stages": [], "since": 0, "evaluated_at": 0
        });
        if let Some(b) = blocking {
            d["blocking_stage"] = b.into();
        }
        let mut payload = serde_json::json!({"decision": d, "evidence": []});
        if kind != EntryKind::Decision {
            payload["actor"] = "olivia".into();
            payload["reason"] = "testing".into();
        }
        LedgerEntry {
            funnel: "acme".into(),
            seq,
            kind,
            recorded_at: Timestamp::from_millis(1_700_000_000_000),
            config_hash: "c".into(),
            payload,
            prev_hash: "p".into(),
            hash_scheme: crate::store::HashScheme::Jcs,
            hash: format!("{seq:064}"),
        }
    }

    #[test]
    fn filters_select_the_changes_they_name() {
        let e1 = entry(1, EntryKind::Decision, "HOLD", Some("crm"));
        let e2 = entry(2, EntryKind::Decision, "CLOSED", Some("crm"));
        let e3 = entry(3, EntryKind::Decision, "CLOSED", Some("esp"));
        let e4 = entry(4, EntryKind::Override, "OPEN", None);
        let first = Change::from_entries(&e1, None).unwrap();
        assert!(first.matches(Filter::StateChange) && first.matches(Filter::BlockingStage));
        assert!(!first.matches(Filter::Closed));
        let closed = Change::from_entries(&e2, Some(&e1)).unwrap();
        assert!(closed.matches(Filter::StateChange) && closed.matches(Filter::Closed));
        assert!(!closed.matches(Filter::BlockingStage) && !closed.matches(Filter::Override));
        let moved = Change::from_entries(&e3, Some(&e2)).unwrap();
        assert!(moved.matches(Filter::BlockingStage));
        assert!(!moved.matches(Filter::StateChange) && !moved.matches(Filter::Closed));
        let ov = Change::from_entries(&e4, Some(&e3)).unwrap();
        assert!(ov.matches(Filter::Override) && ov.matches(Filter::StateChange));
        assert_eq!(ov.actor.as_deref(), Some("olivia"));
        assert!(!ov.matches_any(&[Filter::Closed]));
    }

    #[test]
    fn payloads_have_the_documented_shapes() {
        let e1 = entry(1, EntryKind::Decision, "OPEN", None);
        let e2 = entry(2, EntryKind::Decision, "CLOSED", Some("crm"));
        let c = Change::from_entries(&e2, Some(&e1)).unwrap();
        assert_eq!(c.id, format!("acme:2:{}", "0".repeat(16)));
        let ce = c.cloudevent();
        for k in [
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "datacontenttype",
            "data",
        ] {
            assert!(ce.get(k).is_some(), "{k}");
        }
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["data"]["state"], "CLOSED");
        assert_eq!(ce["data"]["previous_state"], "OPEN");
        let slack = c.slack();
        assert_eq!(
            slack["text"],
            "acme: CLOSED (was OPEN), 0% allowed, blocking stage crm"
        );
        assert_eq!(slack["blocks"][0]["type"], "header");
        let teams = c.teams();
        assert_eq!(teams["type"], "message");
        assert_eq!(
            teams["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
        let (subject, body) = c.email();
        assert!(subject.starts_with("[funnelgate] acme: CLOSED"));
        assert!(body.contains("crm: broken"));
    }
}
