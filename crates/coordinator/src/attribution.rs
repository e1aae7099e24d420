//! Journey probes (the canary lead) report timed steps, each naming the stage it evidences. This
//! module attributes each step to that stage, so the gate holds the layer that is actually
//! broken: a lead that never reaches the CRM holds the `crm` stage, not the `automation` stage
//! whose checker ran the journey.
//!
//! How: every journey probe of a stage (a kind starting with `canary.`) gets an evidence slot —
//! a probe spec with the same id and policy — in every other stage of its funnel, in the
//! engine's copy of the policy only (the scheduler never sends it to a checker). When the
//! journey reports, each slot receives a result built from the steps that evidence its stage
//! (SKIPPED when none did), the source stage keeps the status of its own steps only, and the
//! target stages' latest reports are applied again with their new evidence. Until a journey has
//! run, its slots are SKIPPED (they never count).

use std::collections::BTreeMap;

use funnelgate_core::{FunnelPolicy, JourneyStep, ProbeResult, ProbeStatus, StageReport};

/// Kinds whose results carry journey steps.
pub const JOURNEY_KIND_PREFIX: &str = "canary.";

type StageKey = (String, String);

/// Attribution state of the engine task.
#[derive(Debug, Default)]
pub struct Attribution {
    /// (funnel, target stage) → (probe id, source stage) of its evidence slots.
    slots: BTreeMap<StageKey, Vec<(String, String)>>,
    /// (funnel, target stage, probe id) → the attributed result.
    attributed: BTreeMap<(String, String, String), ProbeResult>,
    /// The latest report of each stage as its checker sent it.
    last: BTreeMap<StageKey, StageReport>,
}

fn rank(s: ProbeStatus) -> u8 {
    match s {
        ProbeStatus::Error => 5,
        ProbeStatus::Fail => 4,
        ProbeStatus::NoData => 3,
        ProbeStatus::Warn => 2,
        ProbeStatus::Pass => 1,
        ProbeStatus::Skipped => 0,
    }
}

/// The worst status of `steps`, SKIPPED when none was judged.
fn worst(steps: &[&JourneyStep]) -> ProbeStatus {
    steps
        .iter()
        .map(|s| s.status)
        .max_by_key(|s| rank(*s))
        .unwrap_or(ProbeStatus::Skipped)
}

fn badness(s: ProbeStatus) -> f64 {
    if matches!(s, ProbeStatus::Pass | ProbeStatus::Skipped) {
        0.0
    } else {
        1.0
    }
}

fn describe(steps: &[&JourneyStep]) -> String {
    steps
        .iter()
        .map(|s| format!("step `{}` {}: {}", s.name, s.status, s.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Attribution {
    /// The engine's copy of the policies, with an evidence slot for every journey probe in every
    /// other stage of its funnel, and the attribution state that fills them.
    pub fn for_funnels(funnels: &[FunnelPolicy]) -> (Vec<FunnelPolicy>, Attribution) {
        let mut out = funnels.to_vec();
        let mut a = Attribution::default();
        for f in out.iter_mut() {
            let journeys: Vec<(String, funnelgate_core::ProbeSpec)> = f
                .stages
                .iter()
                .flat_map(|s| {
                    s.probes
                        .iter()
                        .filter(|p| p.kind.starts_with(JOURNEY_KIND_PREFIX))
                        .map(|p| (s.name.clone(), p.clone()))
                        .collect::<Vec<_>>()
                })
                .collect();
            for (source, spec) in journeys {
                for st in f.stages.iter_mut().filter(|s| s.name != source) {
                    if st.probes.iter().any(|p| p.id == spec.id) {
                        continue;
                    }
                    st.probes.push(spec.clone());
                    a.slots
                        .entry((f.name.clone(), st.name.clone()))
                        .or_default()
                        .push((spec.id.clone(), source.clone()));
                }
            }
        }
        (out, a)
    }

    fn slot_result(
        &self,
        funnel: &str,
        stage: &str,
        id: &str,
        source: &str,
        at: funnelgate_core::Timestamp,
    ) -> ProbeResult {
        match self
            .attributed
            .get(&(funnel.to_string(), stage.to_string(), id.to_string()))
        {
            Some(r) => r.clone(),
            None => {
                let mut r = ProbeResult::error(
                    id,
                    "canary.evidence",
                    format!("no `{id}` journey from the {source} stage has run yet"),
                    at,
                );
                r.status = ProbeStatus::Skipped;
                r.badness = 0.0;
                r
            }
        }
    }

    /// `report` with this stage's evidence slots filled.
    fn merged(&self, report: &StageReport) -> StageReport {
        let mut r = report.clone();
        let key = (r.funnel.clone(), r.stage.clone());
        for (id, source) in self.slots.get(&key).into_iter().flatten() {
            r.results.retain(|x| &x.id != id);
            let slot = self.slot_result(&key.0, &key.1, id, source, r.checked_at);
            r.results.push(slot);
        }
        r
    }

    /// The reports to apply for an incoming one: the stage's own (journey results judged on their
    /// own steps, slots filled), then every stage whose evidence the report changed, re-applied
    /// with it.
    pub fn route(&mut self, report: StageReport) -> Vec<StageReport> {
        let funnel = report.funnel.clone();
        let stage = report.stage.clone();
        self.last
            .insert((funnel.clone(), stage.clone()), report.clone());
        let mut own = report;
        let mut touched: Vec<String> = Vec::new();
        for r in own.results.iter_mut().filter(|r| !r.steps.is_empty()) {
            let targets: Vec<String> = self
                .slots
                .iter()
                .filter(|((f, _), v)| {
                    *f == funnel && v.iter().any(|(id, src)| *id == r.id && *src == stage)
                })
                .map(|((_, t), _)| t.clone())
                .collect();
            if targets.is_empty() {
                continue;
            }
            for t in &targets {
                let steps: Vec<&JourneyStep> = r
                    .steps
                    .iter()
                    .filter(|s| &s.stage == t && s.status != ProbeStatus::Skipped)
                    .collect();
                let status = worst(&steps);
                let mut a = r.clone();
                a.status = status;
                a.badness = badness(status);
                a.value = None;
                a.threshold = None;
                a.message = if steps.is_empty() {
                    format!(
                        "journey `{}` (run by the {stage} stage) did not reach a {t} step",
                        r.id
                    )
                } else {
                    format!(
                        "journey `{}` (run by the {stage} stage): {}",
                        r.id,
                        describe(&steps)
                    )
                };
                a.steps = r.steps.iter().filter(|s| &s.stage == t).cloned().collect();
                self.attributed
                    .insert((funnel.clone(), t.clone(), r.id.clone()), a);
                touched.push(t.clone());
            }
            // The source stage is judged on its own steps (and steps naming no known stage).
            let own_steps: Vec<&JourneyStep> = r
                .steps
                .iter()
                .filter(|s| !targets.contains(&s.stage) && s.status != ProbeStatus::Skipped)
                .collect();
            let status = worst(&own_steps);
            if status != r.status {
                let moved: Vec<String> = r
                    .steps
                    .iter()
                    .filter(|s| {
                        targets.contains(&s.stage)
                            && matches!(
                                s.status,
                                ProbeStatus::Fail | ProbeStatus::Error | ProbeStatus::Warn
                            )
                    })
                    .map(|s| format!("`{}` → {}", s.name, s.stage))
                    .collect();
                r.status = status;
                r.badness = badness(status);
                if !moved.is_empty() {
                    r.message = format!(
                        "{} (attributed to their stages: {})",
                        r.message,
                        moved.join(", ")
                    );
                }
            }
        }
        let mut out = vec![self.merged(&own)];
        touched.sort();
        touched.dedup();
        for t in touched {
            if let Some(last) = self.last.get(&(funnel.clone(), t)) {
                out.push(self.merged(last));
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use funnelgate_core::{ProbeSpec, StagePolicy, Timestamp};

    fn policy() -> FunnelPolicy {
        let mut crm = StagePolicy::new("crm");
        crm.probes.push(ProbeSpec::new("leads", "sql"));
        let mut auto = StagePolicy::new("automation");
        auto.probes
            .push(ProbeSpec::new("canary", "canary.lead_journey"));
        let esp = StagePolicy::new("esp");
        FunnelPolicy {
            name: "acme".into(),
            stages: vec![crm, auto, esp],
            gate: Default::default(),
        }
    }

    fn step(name: &str, stage: &str, status: ProbeStatus) -> JourneyStep {
        JourneyStep {
            name: name.into(),
            stage: stage.into(),
            status,
            duration_ms: 10,
            message: format!("{name} said so"),
        }
    }

    fn report(stage: &str, results: Vec<ProbeResult>, at: i64) -> StageReport {
        StageReport {
            funnel: "acme".into(),
            stage: stage.into(),
            results,
            checked_at: Timestamp::from_millis(at),
            duration_ms: 1,
            checker: "x".into(),
            failure: None,
        }
    }

    fn journey(crm: ProbeStatus) -> ProbeResult {
        let mut r = ProbeResult::error(
            "canary",
            "canary.lead_journey",
            "canary run 1: step `crm_record` failed",
            Timestamp::from_millis(5),
        );
        r.status = ProbeStatus::Fail;
        r.steps = vec![
            step("submit", "automation", ProbeStatus::Pass),
            step("crm_record", "crm", crm),
            step("enrolment", "automation", ProbeStatus::Skipped),
            step("email", "esp", ProbeStatus::Skipped),
            step("cleanup", "automation", ProbeStatus::Pass),
        ];
        r
    }

    #[test]
    fn journeys_get_evidence_slots_in_the_other_stages_only() {
        let (policies, a) = Attribution::for_funnels(&[policy()]);
        let ids = |i: usize| {
            policies[0].stages[i]
                .probes
                .iter()
                .map(|p| p.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(0), ["leads", "canary"]);
        assert_eq!(ids(1), ["canary"]);
        assert_eq!(ids(2), ["canary"]);
        assert_eq!(a.slots.len(), 2);
    }

    #[test]
    fn a_lead_that_never_reaches_the_crm_holds_crm_not_automation() {
        let (_, mut a) = Attribution::for_funnels(&[policy()]);
        let mut ok = ProbeResult::error("leads", "sql", "fine", Timestamp::from_millis(1));
        ok.status = ProbeStatus::Pass;
        // Before any journey the crm stage's slot is SKIPPED (never counted).
        let out = a.route(report("crm", vec![ok], 1));
        assert_eq!(out.len(), 1);
        let slot = out[0].results.iter().find(|r| r.id == "canary").unwrap();
        assert_eq!(slot.status, ProbeStatus::Skipped);

        let out = a.route(report("automation", vec![journey(ProbeStatus::Fail)], 2));
        assert_eq!(
            out.len(),
            2,
            "the automation report and the crm report again"
        );
        let own = out[0].results.iter().find(|r| r.id == "canary").unwrap();
        assert_eq!(
            own.status,
            ProbeStatus::Pass,
            "automation is judged on its own steps: {own:?}"
        );
        assert!(
            own.message.contains("`crm_record` → crm"),
            "{}",
            own.message
        );
        assert_eq!(own.steps.len(), 5, "every step stays visible in explain");
        assert_eq!(out[1].stage, "crm");
        let crm = out[1].results.iter().find(|r| r.id == "canary").unwrap();
        assert_eq!(crm.status, ProbeStatus::Fail, "{crm:?}");
        assert!(
            crm.message.contains("step `crm_record` FAIL"),
            "{}",
            crm.message
        );
        assert_eq!(
            out[1].results.len(),
            2,
            "the crm checker's own result is kept"
        );

        // The next crm report keeps the evidence until the next journey replaces it.
        let mut ok = ProbeResult::error("leads", "sql", "fine", Timestamp::from_millis(3));
        ok.status = ProbeStatus::Pass;
        let out = a.route(report("crm", vec![ok], 3));
        assert_eq!(
            out[0]
                .results
                .iter()
                .find(|r| r.id == "canary")
                .unwrap()
                .status,
            ProbeStatus::Fail
        );
        let out = a.route(report("automation", vec![journey(ProbeStatus::Pass)], 4));
        assert_eq!(
            out[1]
                .results
                .iter()
                .find(|r| r.id == "canary")
                .unwrap()
                .status,
            ProbeStatus::Pass
        );
    }
}
