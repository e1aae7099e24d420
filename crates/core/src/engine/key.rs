//! Material change: exactly what [`crate::GateDecision::materially_differs`] compares, packed
//! by position instead of by name, so that deciding whether anything changed allocates nothing
//! and the full decision is built only when someone needs it.

use crate::decision::{GateState, Phase, ReasonCode};

use super::Funnel;
use super::describe::KeySink;

/// Exactly what [`GateDecision::materially_differs`] compares, without names or messages (stage
/// and probe positions instead), so that deciding whether anything changed allocates nothing.
/// The override is compared separately.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct MaterialKey {
    pub(super) state: Option<GateState>,
    pub(super) underlying: Option<GateState>,
    pub(super) percent: u32,
    pub(super) blocking_stage: Option<usize>,
    pub(super) phase: Phase,
    pub(super) advice: bool,
    /// Each reason's code, stage position and probe reference, packed ([`reason_key`]).
    pub(super) reasons: Keys<6>,
    /// Each stage's health and readiness, packed.
    pub(super) stages: Keys<6>,
}

/// Pack a reason's identity: code (8 bits), stage position + 1 (24 bits, 0 = none), probe
/// reference (32 bits: 0 none, 1 the checker, 2 + position).
pub(super) fn reason_key(code: ReasonCode, stage: Option<usize>, probe: ProbeRef) -> u64 {
    let stage = stage.map_or(0, |i| (i as u64 + 1) & 0xff_ffff);
    let probe = match probe {
        ProbeRef::None => 0,
        ProbeRef::Probe(j) => (j as u64 + 2) & 0xffff_ffff,
    };
    ((code as u64) << 56) | (stage << 32) | probe
}

/// A short list of packed keys: inline up to `N` (a decision usually has a handful of reasons
/// and stages), on the heap beyond.
#[derive(Debug, Clone)]
pub(super) struct Keys<const N: usize> {
    pub(super) len: usize,
    pub(super) inline: [u64; N],
    pub(super) spill: Vec<u64>,
}

impl<const N: usize> Default for Keys<N> {
    fn default() -> Self {
        Keys {
            len: 0,
            inline: [0; N],
            spill: Vec::new(),
        }
    }
}

impl<const N: usize> Keys<N> {
    pub(super) fn clear(&mut self) {
        self.len = 0;
        self.spill.clear();
    }

    pub(super) fn push(&mut self, key: u64) {
        if self.len < N {
            self.inline[self.len] = key;
        } else {
            self.spill.push(key);
        }
        self.len += 1;
    }
}

impl<const N: usize> PartialEq for Keys<N> {
    fn eq(&self, other: &Self) -> bool {
        let n = self.len.min(N);
        self.len == other.len && self.inline[..n] == other.inline[..n] && self.spill == other.spill
    }
}

/// What a reason's `probe` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProbeRef {
    None,
    /// A probe of the stage, by position in the policy.
    Probe(usize),
}

impl Funnel {
    pub(super) fn key_into(&self, key: &mut MaterialKey) {
        let v = &self.verdict;
        key.reasons.clear();
        let mut sink = KeySink {
            reasons: &mut key.reasons,
            max_badness: 0.0,
        };
        self.describe(&mut sink);
        let max_badness = sink.max_badness;
        key.state = Some(v.state);
        key.underlying = Some(v.underlying);
        key.percent = v.percent;
        key.blocking_stage = v.blocking_stage;
        key.phase = self.mem.phase;
        key.advice = self.advice(max_badness);
        key.stages.clear();
        for st in &self.stages {
            key.stages
                .push(((st.now.health as u64) << 8) | st.now.readiness as u64);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn since_is_kept_while_the_state_stays_and_changed_flags_material_changes() {
        let p = three_stages();
        let mut e = engine(&p);
        let o = e.apply_report(passing(&p, "crm", at(5)), at(5)).unwrap();
        // Still HOLD for not-yet-evaluated stages, but crm's health changed.
        assert!(o.changed);
        assert_eq!((o.decision.since, o.decision.evaluated_at), (at(0), at(5)));
        let o = e.apply_report(passing(&p, "crm", at(6)), at(6)).unwrap();
        assert!(!o.changed);
        assert_eq!((o.decision.since, o.decision.evaluated_at), (at(0), at(6)));
    }

    #[test]
    fn a_cosmetic_policy_change_is_not_a_material_change() {
        let p = three_stages();
        let mut e = engine(&p);
        all_pass(&mut e, &p, at(0));
        let mut q = p.clone();
        q.stages[1].probes[0].description = Some("welcome series sends".into());
        let o = e.upsert_funnel(q.clone(), at(1)).unwrap();
        assert!(!o.changed);
        assert_eq!(e.policy("acme"), Some(&q));
        // Reordering stages is material (readiness is bottom-up).
        let mut r = q.clone();
        r.stages.swap(0, 2);
        assert!(e.upsert_funnel(r, at(2)).unwrap().changed);
    }
}
