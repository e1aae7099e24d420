//! State persistence: what a funnel remembers (hysteresis counters, ramp step, phase, override,
//! UNKNOWN episodes) besides its last reports, serialised so that the coordinator can restore it
//! after a restart. Restoring matches stages by name: state for stages the policy no longer has
//! is skipped, stages the snapshot does not know start fresh; a snapshot that cannot be read, is
//! of another version, or carries reports of another funnel is rejected.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::decision::{GateState, Override, Phase};
use crate::model::StageReport;
use crate::time::Timestamp;

use super::health::{StageState, evaluate_stage};
use super::hysteresis::RampMemory;
use super::{EngineError, Funnel, FunnelSnapshot};

/// Version of the serialised [`FunnelSnapshot::memory`].
pub const SNAPSHOT_VERSION: u32 = 1;

/// The serialisable part of a funnel's state (besides the reports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Memory {
    /// When the funnel was added.
    pub(super) added_at: Timestamp,
    pub(super) phase: Phase,
    /// Effective state of the last decision, and since when.
    pub(super) state: Option<GateState>,
    pub(super) since: Timestamp,
    /// Computed (pre-override) state of the last decision.
    pub(super) underlying: Option<GateState>,
    /// Consecutive evaluations with every stage HEALTHY.
    pub(super) healthy_streak: u32,
    /// Start of the current all-HEALTHY period.
    pub(super) healthy_since: Option<Timestamp>,
    /// Consecutive failing evaluations.
    pub(super) failing_streak: u32,
    /// Position on the ramp while OPEN.
    pub(super) ramp: Option<RampMemory>,
    #[serde(rename = "override")]
    pub(super) override_: Option<Override>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StageMemory {
    pub(super) stage: String,
    pub(super) unknown_since: Option<Timestamp>,
    /// The stage has completed one evaluation (absent in snapshots written before this was
    /// remembered: then the last report says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) evidenced: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SnapshotMemory {
    pub(super) version: u32,
    pub(super) gate: Memory,
    pub(super) stages: Vec<StageMemory>,
}

impl Funnel {
    pub(super) fn snapshot(&self) -> FunnelSnapshot {
        let name = &self.policy.name;
        let last_reports = self
            .policy
            .stages
            .iter()
            .zip(&self.stages)
            .filter_map(|(sp, st)| {
                st.report.as_ref().map(|r| StageReport {
                    funnel: name.clone(),
                    stage: sp.name.clone(),
                    results: r.results.to_vec(),
                    checked_at: r.checked_at,
                    duration_ms: r.duration_ms,
                    checker: r.checker.clone(),
                    failure: r.failure.clone(),
                })
            })
            .collect();
        let memory = SnapshotMemory {
            version: SNAPSHOT_VERSION,
            gate: self.mem.clone(),
            stages: self
                .policy
                .stages
                .iter()
                .zip(&self.stages)
                .map(|(sp, st)| StageMemory {
                    stage: sp.name.clone(),
                    unknown_since: st.unknown_since,
                    evidenced: Some(st.evidenced),
                })
                .collect(),
        };
        // Serialising these plain structs cannot fail; a `null` would be rejected on restore.
        let memory = serde_json::to_value(memory).unwrap_or(serde_json::Value::Null);
        FunnelSnapshot {
            funnel: name.clone(),
            last_reports,
            memory,
        }
    }

    pub(super) fn restore(
        &mut self,
        snapshot: FunnelSnapshot,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let funnel = snapshot.funnel;
        let mismatch = |reason: String| EngineError::SnapshotMismatch {
            funnel: funnel.clone(),
            reason,
        };
        let mem: SnapshotMemory = serde_json::from_value(snapshot.memory)
            .map_err(|e| mismatch(format!("memory cannot be read: {e}")))?;
        if mem.version != SNAPSHOT_VERSION {
            return Err(mismatch(format!(
                "memory version {} is not the supported version {SNAPSHOT_VERSION}",
                mem.version
            )));
        }
        let mut reports: HashMap<String, StageReport> = HashMap::new();
        for r in snapshot.last_reports {
            if r.funnel != funnel {
                return Err(mismatch(format!(
                    "it carries a report of funnel `{}`",
                    r.funnel
                )));
            }
            if !mem.stages.iter().any(|s| s.stage == r.stage) {
                return Err(mismatch(format!(
                    "it carries a report of stage `{}` its memory does not know",
                    r.stage
                )));
            }
            if reports.contains_key(&r.stage) {
                return Err(mismatch(format!(
                    "it carries two reports of stage `{}`",
                    r.stage
                )));
            }
            reports.insert(r.stage.clone(), r);
        }
        let mut stages = Vec::with_capacity(self.policy.stages.len());
        for sp in &self.policy.stages {
            let mut st = StageState::new(sp, now);
            if let Some(sm) = mem.stages.iter().find(|s| s.stage == sp.name) {
                st.unknown_since = sm.unknown_since;
                st.evidenced = sm.evidenced.unwrap_or(false);
            }
            if let Some(r) = reports.remove(&sp.name) {
                st.set_report(sp, r);
            }
            st.eval = evaluate_stage(&st, None);
            stages.push(st);
        }
        self.stages = stages;
        self.mem = mem.gate;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::FunnelSnapshot;
    use super::super::testkit::*;

    #[test]
    fn snapshot_and_restore_give_identical_decisions() {
        let mut p = with_proof();
        p.gate.close_after = 2;
        p.gate.open_after_evaluations = 2;
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        e.tick_funnel("acme", mins(70)).unwrap();
        let r = with(&p, "crm", mins(71), vec![res("a", ProbeStatus::Fail)]);
        e.apply_report(r, mins(71)).unwrap();
        let mut esp = report("esp", vec![], mins(72));
        esp.failure = Some(CheckFailure {
            code: "UNREACHABLE".into(),
            checker: "esp".into(),
            message: "connection refused".into(),
        });
        e.apply_report(esp, mins(72)).unwrap();
        e.set_override("acme", ov(GateState::Open, mins(200)), mins(73))
            .unwrap();
        let before = e.tick_funnel("acme", mins(74)).unwrap().decision;

        let snap = e.snapshot("acme").unwrap();
        let json = serde_json::to_string(&snap).unwrap();
        let snap: FunnelSnapshot = serde_json::from_str(&json).unwrap();
        let mut fresh = Engine::new();
        fresh.upsert_funnel(p.clone(), mins(74)).unwrap();
        let after = fresh.restore(snap, mins(74)).unwrap().decision;
        assert_eq!(*after, *before);
        // And they keep agreeing.
        for (t, stage) in [(80, "crm"), (81, "esp"), (95, "automation")] {
            let r = passing(&p, stage, mins(t));
            let a = e.apply_report(r.clone(), mins(t)).unwrap().decision;
            let b = fresh.apply_report(r, mins(t)).unwrap().decision;
            assert_eq!(*a, *b);
        }
        assert_eq!(
            *e.tick_funnel("acme", mins(300)).unwrap().decision,
            *fresh.tick_funnel("acme", mins(300)).unwrap().decision
        );
    }

    #[test]
    fn restore_rejects_unreadable_snapshots_and_skips_removed_stages() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, mins(0));
        let snap = e.snapshot("acme").unwrap();
        let mut bad = snap.clone();
        bad.memory = serde_json::json!({"version": 1});
        assert!(matches!(
            e.restore(bad, mins(1)).unwrap_err(),
            EngineError::SnapshotMismatch { .. }
        ));
        let mut bad = snap.clone();
        bad.memory["version"] = serde_json::json!(99);
        let err = e.restore(bad, mins(1)).unwrap_err();
        assert!(err.to_string().contains("memory version 99"), "{err}");
        let mut bad = snap.clone();
        bad.last_reports[0].funnel = "beta".into();
        assert!(e.restore(bad, mins(1)).is_err());
        let mut bad = snap.clone();
        bad.funnel = "beta".into();
        assert_eq!(
            e.restore(bad, mins(1)).unwrap_err(),
            EngineError::UnknownFunnel("beta".into())
        );

        // The funnel lost its esp stage and gained analytics.
        let mut q = p.clone();
        q.stages.remove(2);
        q.stages.push(stage("analytics", &["h"]));
        let mut fresh = Engine::new();
        fresh.upsert_funnel(q, mins(1)).unwrap();
        let d = fresh.restore(snap, mins(1)).unwrap().decision;
        assert_eq!(d.stages.len(), 3);
        assert_eq!(
            health(&d),
            vec![
                StageHealth::Healthy,
                StageHealth::Healthy,
                StageHealth::Unknown
            ]
        );
        assert_eq!(d.phase, Phase::Operate);
    }
}
