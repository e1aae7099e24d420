//! The scheduler: one task per (funnel, stage) that calls the stage's checker every `interval`
//! (±10% jitter; the first check at once, the second at a random point of the first interval so
//! many funnels spread out), with the checker's deadline, and hands the report — or a report
//! saying why there is none (UNREACHABLE, TIMEOUT, CHECKER_ERROR) — to the engine.
//!
//! Each job follows its checker's [`Liveness`]: while the checker is unreachable it reports the
//! stage UNREACHABLE without calling it (at once when the checker is lost, abandoning a check in
//! flight, then every interval); while its configured probes are rejected it reports
//! CHECKER_ERROR; when the checker is back it checks at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use funnelgate_core::{CheckFailure, FunnelPolicy, StageReport, Timestamp};
use funnelgate_proto::pb;
use rand::Rng;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::checkers::{CallError, CheckerClient};
use crate::liveness::{Liveness, LivenessRx, Supervisors};
use crate::metrics::{CheckOutcome, Metrics};
use crate::state::{EngineHandle, now};

/// Failure codes of a check that produced no report.
pub mod failure_codes {
    /// Connecting or talking to the checker failed.
    pub const UNREACHABLE: &str = "UNREACHABLE";
    /// The checker did not answer within its deadline.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// The checker answered with an error status or an invalid report.
    pub const CHECKER_ERROR: &str = "CHECKER_ERROR";
}

/// How far a checker's clock may be off before its `checked_at` is replaced by ours.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Runs every stage's checks until stopped.
#[derive(Debug)]
pub struct Scheduler {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Scheduler {
    /// Start one task per (funnel, stage).
    pub fn start(
        funnels: &[FunnelPolicy],
        clients: &BTreeMap<String, CheckerClient>,
        liveness: &Supervisors,
        engine: EngineHandle,
        metrics: Arc<Metrics>,
        max_inflight: usize,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(max_inflight.max(1)));
        let mut tasks = JoinSet::new();
        for funnel in funnels {
            for stage in &funnel.stages {
                let Some(client) = clients.get(stage.checker_name()).cloned() else {
                    // validate() guarantees every stage has a checker.
                    tracing::error!(funnel = %funnel.name, stage = %stage.name, "stage has no checker: not scheduled");
                    continue;
                };
                let Some(live) = liveness.receiver(stage.checker_name()) else {
                    tracing::error!(funnel = %funnel.name, stage = %stage.name, "stage's checker is not supervised: not scheduled");
                    continue;
                };
                let job = StageJob {
                    funnel: funnel.name.clone(),
                    stage: stage.name.clone(),
                    probes: stage.probes.iter().map(pb::ProbeSpec::from).collect(),
                    interval: stage.interval.get(),
                    client,
                    engine: engine.clone(),
                    metrics: metrics.clone(),
                    permits: permits.clone(),
                };
                let span = tracing::info_span!("stage", funnel = %funnel.name, stage = %stage.name);
                tasks.spawn(job.run(live, stop_rx.clone()).instrument(span));
            }
        }
        Scheduler { tasks, stop }
    }

    /// Stop scheduling: in-flight checks are abandoned, no new ones start.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        // Tasks notice the stop signal at once; abort whatever is still waiting on a checker.
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// `interval` ±10%.
fn jittered(interval: Duration) -> Duration {
    let factor = rand::rng().random_range(0.9..=1.1);
    interval.mul_f64(factor)
}

/// The delay before the second check: a random point of the first interval (at least 10% in).
fn initial_offset(interval: Duration) -> Duration {
    let factor = rand::rng().random_range(0.1..=1.0);
    interval.mul_f64(factor)
}

struct StageJob {
    funnel: String,
    stage: String,
    probes: Vec<pb::ProbeSpec>,
    interval: Duration,
    client: CheckerClient,
    engine: EngineHandle,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
}

impl StageJob {
    async fn run(self, mut live: LivenessRx, mut stop: watch::Receiver<bool>) {
        let mut delay = Duration::ZERO;
        let mut first = true;
        loop {
            // Wait for the next check, or for the checker's liveness to change.
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                changed = live.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = stop.wait_for(|s| *s) => return,
            }
            let state = live.borrow_and_update().clone();
            let report = match state {
                Liveness::Up => {
                    // A check in flight is abandoned when the checker is lost meanwhile.
                    let lost = async {
                        loop {
                            if live.changed().await.is_err() {
                                return std::future::pending::<String>().await;
                            }
                            if let Liveness::Unreachable(reason) = &*live.borrow_and_update() {
                                return reason.clone();
                            }
                        }
                    };
                    tokio::select! {
                        r = self.check_once() => r,
                        reason = lost => self.not_checked(failure_codes::UNREACHABLE, reason),
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
                Liveness::Unreachable(reason) => {
                    self.not_checked(failure_codes::UNREACHABLE, reason)
                }
                Liveness::Rejected(reason) => {
                    self.not_checked(failure_codes::CHECKER_ERROR, reason)
                }
            };
            if !self.engine.report(report).await {
                return;
            }
            delay = if first {
                initial_offset(self.interval)
            } else {
                jittered(self.interval)
            };
            first = false;
        }
    }

    /// A report for a check that was not made because of the checker's state.
    fn not_checked(&self, code: &str, reason: String) -> StageReport {
        let outcome = if code == failure_codes::UNREACHABLE {
            CheckOutcome::Unreachable
        } else {
            CheckOutcome::CheckerError
        };
        self.metrics.check_done(&self.stage, outcome, 0.0);
        tracing::debug!(code, %reason, "stage not checked");
        self.failure(code, reason, now(), Duration::ZERO)
    }

    fn failure(
        &self,
        code: &str,
        message: String,
        started: Timestamp,
        elapsed: Duration,
    ) -> StageReport {
        StageReport {
            funnel: self.funnel.clone(),
            stage: self.stage.clone(),
            results: Vec::new(),
            checked_at: started,
            duration_ms: elapsed.as_millis() as u64,
            checker: self.client.name().to_string(),
            failure: Some(CheckFailure {
                code: code.to_string(),
                checker: self.client.label(),
                message,
            }),
        }
    }

    /// One check, always ending in a report: the checker's, or one that says why there is none.
    async fn check_once(&self) -> StageReport {
        let _permit = match self.permits.acquire().await {
            Ok(p) => p,
            Err(_) => {
                return self.failure(
                    failure_codes::CHECKER_ERROR,
                    "scheduler is stopping".into(),
                    now(),
                    Duration::ZERO,
                );
            }
        };
        let started_at = now();
        let started = Instant::now();
        let request = pb::CheckRequest {
            funnel: self.funnel.clone(),
            stage: self.stage.clone(),
            probes: self.probes.clone(),
            max_concurrency: 0,
        };
        let result = self.client.check(request).await;
        let elapsed = started.elapsed();
        let (outcome, report) = match result {
            Ok(response) => match self.accept(response, started_at, elapsed) {
                Ok(report) => (CheckOutcome::Ok, report),
                Err(message) => (
                    CheckOutcome::CheckerError,
                    self.failure(
                        failure_codes::CHECKER_ERROR,
                        format!("invalid report: {message}"),
                        started_at,
                        elapsed,
                    ),
                ),
            },
            Err(CallError::Unreachable(m)) => (
                CheckOutcome::Unreachable,
                self.failure(failure_codes::UNREACHABLE, m, started_at, elapsed),
            ),
            Err(CallError::Timeout(d)) => (
                CheckOutcome::Timeout,
                self.failure(
                    failure_codes::TIMEOUT,
                    format!("no answer within {}", funnelgate_core::HumanDuration(d)),
                    started_at,
                    elapsed,
                ),
            ),
            Err(CallError::Status(code, m)) => (
                CheckOutcome::CheckerError,
                self.failure(
                    failure_codes::CHECKER_ERROR,
                    format!("answered {code:?}: {m}"),
                    started_at,
                    elapsed,
                ),
            ),
        };
        self.metrics
            .check_done(&self.stage, outcome, elapsed.as_secs_f64());
        if let Some(f) = &report.failure {
            tracing::debug!(code = %f.code, message = %f.message, "check failed");
        } else {
            tracing::debug!(
                results = report.results.len(),
                ms = report.duration_ms,
                "check done"
            );
        }
        report
    }

    /// Convert and sanity-check a checker's answer.
    fn accept(
        &self,
        response: pb::CheckResponse,
        started_at: Timestamp,
        elapsed: Duration,
    ) -> Result<StageReport, String> {
        let pb_report = response
            .report
            .ok_or_else(|| "the response has no report".to_string())?;
        let mut report = StageReport::try_from(&pb_report).map_err(|e| e.to_string())?;
        if report.funnel != self.funnel || report.stage != self.stage {
            return Err(format!(
                "it is for `{}/{}`, but `{}/{}` was asked",
                report.funnel, report.stage, self.funnel, self.stage
            ));
        }
        // Staleness is judged on checked_at: do not let a skewed checker clock decide it.
        let ours = now();
        if report.checked_at.as_millis().abs_diff(ours.as_millis())
            > MAX_CLOCK_SKEW.as_millis() as u64
        {
            tracing::warn!(checker = %self.client.label(), their = report.checked_at.as_millis(), ours = ours.as_millis(),
                "checker clock is off by more than a minute: using the coordinator's time for checked_at");
            report.checked_at = started_at;
        }
        if report.duration_ms == 0 {
            report.duration_ms = elapsed.as_millis() as u64;
        }
        if report.checker.is_empty() {
            report.checker = self.client.name().to_string();
        }
        Ok(report)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        let i = Duration::from_secs(10);
        for _ in 0..1000 {
            let j = jittered(i);
            assert!(
                j >= Duration::from_secs(9) && j <= Duration::from_secs(11),
                "{j:?}"
            );
            let o = initial_offset(i);
            assert!(o >= Duration::from_secs(1) && o <= i, "{o:?}");
        }
    }
}
