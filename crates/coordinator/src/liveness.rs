//! Each checker's liveness, watched at run time: a checker that is down is a runtime fact, not a
//! configuration error. One supervisor task per used checker
//!
//! - asks `Describe` until the checker answers (backoff with jitter, capped), then validates the
//!   probes configured for it against what it publishes (a checker that was down at start is
//!   validated when it first answers; one whose probes do not fit is `REJECTED`, re-asked later);
//! - then watches it: the standard `grpc.health.v1.Health/Watch` stream of the whole server
//!   (service `""`), so a checker that dies (`kill -9`), drains or reports NOT_SERVING is noticed
//!   within moments instead of at its next scheduled check; a checker without the health service
//!   (UNIMPLEMENTED) is pinged with `Describe` every [`PING_INTERVAL`] instead;
//! - when the watch is lost, marks the checker unreachable, and starts again from `Describe`.
//!
//! The stage jobs ([`crate::scheduler`]) follow this state: they report a stage UNKNOWN
//! (`UNREACHABLE`) at once when its checker is lost, and check it at once when it is back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use funnelgate_proto::pb;
use rand::Rng;
use tokio::sync::watch;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::checkers::{self, CallError, CheckerClient};
use crate::config::Config;

/// How often a checker without `grpc.health.v1` is pinged with `Describe`.
pub const PING_INTERVAL: Duration = Duration::from_secs(2);
/// First reconnection delay; doubles up to [`MAX_BACKOFF`] (each with ±20% jitter).
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reconnection delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long before a checker whose probes did not fit is asked again (it may be upgraded).
const REJECTED_RETRY: Duration = Duration::from_secs(30);

/// What the coordinator knows of a checker right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// It answered `Describe`, the configured probes fit, and its connection is up.
    Up,
    /// It cannot be reached (not yet since start, or no longer), and why.
    Unreachable(String),
    /// It answers, but the probes configured for it do not fit what it supports; the issues.
    Rejected(String),
}

/// The receiving side of one checker's liveness, for the stage jobs.
pub type LivenessRx = watch::Receiver<Liveness>;

/// Backoff with jitter: 100 ms doubling to 5 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff { next: MIN_BACKOFF }
    }

    fn reset(&mut self) {
        self.next = MIN_BACKOFF;
    }

    fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        base.mul_f64(rand::rng().random_range(0.8..=1.2))
    }
}

/// Supervises every used checker until stopped.
#[derive(Debug)]
pub struct Supervisors {
    receivers: BTreeMap<String, LivenessRx>,
    tasks: tokio::task::JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Supervisors {
    /// Start one supervisor per client in `clients`. A checker in `described` answered at start
    /// and its probes were validated: it starts `Up`. Any other starts `Unreachable` with the
    /// reason in `unreachable` and is validated when it first answers.
    pub fn start(
        config: Arc<Config>,
        clients: &BTreeMap<String, CheckerClient>,
        described: &BTreeMap<String, pb::DescribeResponse>,
        unreachable: &BTreeMap<String, String>,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let mut receivers = BTreeMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        for (name, client) in clients {
            let initial = if described.contains_key(name) {
                Liveness::Up
            } else {
                Liveness::Unreachable(unreachable.get(name).cloned().unwrap_or_else(|| {
                    format!("`{}` has not answered Describe yet", client.label())
                }))
            };
            let validated = initial == Liveness::Up;
            let (tx, rx) = watch::channel(initial);
            receivers.insert(name.clone(), rx);
            let supervisor = Supervisor {
                client: client.clone(),
                config: config.clone(),
                tx,
                backoff: Backoff::new(),
            };
            let span = tracing::info_span!("checker", checker = %name);
            tasks.spawn(tracing::Instrument::instrument(
                supervisor.run(validated, stop_rx.clone()),
                span,
            ));
        }
        Supervisors {
            receivers,
            tasks,
            stop,
        }
    }

    /// The liveness of checker `name` (None if it is not supervised).
    pub fn receiver(&self, name: &str) -> Option<LivenessRx> {
        self.receivers.get(name).cloned()
    }

    /// Every supervised checker's current liveness.
    pub fn snapshot(&self) -> BTreeMap<String, Liveness> {
        self.receivers
            .iter()
            .map(|(n, rx)| (n.clone(), rx.borrow().clone()))
            .collect()
    }

    /// Stop every supervisor.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

struct Supervisor {
    client: CheckerClient,
    config: Arc<Config>,
    tx: watch::Sender<Liveness>,
    backoff: Backoff,
}

impl Supervisor {
    /// Publish `state` if it differs from the current one, logging the transition.
    fn set(&self, state: Liveness) {
        self.tx.send_if_modified(|current| {
            if *current == state {
                return false;
            }
            match &state {
                Liveness::Up => tracing::info!(endpoint = %self.client.endpoint(), "checker is up"),
                Liveness::Unreachable(reason) => {
                    tracing::warn!(endpoint = %self.client.endpoint(), %reason, "checker is unreachable")
                }
                Liveness::Rejected(reason) => {
                    tracing::error!(endpoint = %self.client.endpoint(), %reason, "checker does not support the probes configured for it")
                }
            }
            *current = state;
            true
        });
    }

    async fn run(mut self, mut validated: bool, mut stop: watch::Receiver<bool>) {
        loop {
            let delay = if validated {
                let reason = tokio::select! {
                    r = self.watch() => r,
                    _ = stop.wait_for(|s| *s) => return,
                };
                self.set(Liveness::Unreachable(reason));
                // Re-describe on reconnection: a restarted checker may be another version.
                validated = false;
                self.backoff.next_delay()
            } else {
                let describe = tokio::select! {
                    r = self.client.describe(self.client.connect_timeout().max(Duration::from_millis(500))) => r,
                    _ = stop.wait_for(|s| *s) => return,
                };
                match describe {
                    Ok(d) => {
                        let issues = checkers::validate_probes(
                            &self.config,
                            &BTreeMap::from([(self.client.name().to_string(), d)]),
                        );
                        if issues.is_empty() {
                            tracing::info!(endpoint = %self.client.endpoint(), "checker answered Describe; its configured probes fit");
                            validated = true;
                            self.set(Liveness::Up);
                            Duration::ZERO
                        } else {
                            let text = issues
                                .iter()
                                .map(|i| format!("{}: {}", i.key, i.reason))
                                .collect::<Vec<_>>()
                                .join("; ");
                            self.set(Liveness::Rejected(format!(
                                "the configured probes do not fit what checker `{}` supports: {text}",
                                self.client.label()
                            )));
                            REJECTED_RETRY
                        }
                    }
                    Err(e) => {
                        self.set(Liveness::Unreachable(unreachable_text(&self.client, &e)));
                        self.backoff.next_delay()
                    }
                }
            };
            if !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }

    /// Watch a validated checker until its connection is lost; returns why.
    async fn watch(&mut self) -> String {
        let mut health = HealthClient::new(self.client.channel());
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let mut stream = match health.watch(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                return self.ping().await;
            }
            Err(status) => {
                return format!(
                    "lost the health watch of `{}`: {}",
                    self.client.label(),
                    checkers::CallError::from_status(status, PING_INTERVAL)
                );
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    if message.status() == ServingStatus::Serving {
                        self.backoff.reset();
                        self.set(Liveness::Up);
                    } else {
                        self.set(Liveness::Unreachable(format!(
                            "checker `{}` reports {} on grpc.health.v1",
                            self.client.label(),
                            message.status().as_str_name()
                        )));
                    }
                }
                Ok(None) => {
                    return format!(
                        "checker `{}` ended its health watch stream",
                        self.client.label()
                    );
                }
                Err(status) => {
                    return format!(
                        "lost the connection to checker `{}`: {}",
                        self.client.label(),
                        checkers::CallError::from_status(status, PING_INTERVAL)
                    );
                }
            }
        }
    }

    /// For a checker without `grpc.health.v1`: ping `Describe` until it fails.
    async fn ping(&mut self) -> String {
        tracing::debug!(endpoint = %self.client.endpoint(), "checker has no grpc.health.v1: pinging Describe every 2s instead");
        loop {
            match self.client.describe(PING_INTERVAL).await {
                Ok(_) => {
                    self.backoff.reset();
                    self.set(Liveness::Up);
                }
                Err(e) => return unreachable_text(&self.client, &e),
            }
            tokio::time::sleep(PING_INTERVAL).await;
        }
    }
}

fn unreachable_text(client: &CheckerClient, e: &CallError) -> String {
    format!("checker `{}` does not answer: {e}", client.label())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(80) && delays[0] <= Duration::from_millis(120));
        assert!(delays[1] >= Duration::from_millis(160) && delays[1] <= Duration::from_millis(240));
        for d in &delays[6..] {
            assert!(
                *d >= Duration::from_secs(4) && *d <= Duration::from_secs(6),
                "{d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }
}
