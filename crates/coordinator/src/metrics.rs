//! Prometheus metrics of the coordinator, served at `/metrics`. Every metric name is a constant
//! here; values are updated on change (decisions) or per check, never per scrape.

use funnelgate_core::{GateDecision, GateState, StageHealth};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Metric names, as exposed (counters get `_total` from the encoder: registered without it).
pub mod names {
    /// Gauge `{funnel, state}`: 1 for the funnel's current gate state, 0 for the others.
    pub const GATE_STATE: &str = "funnelgate_gate_state";
    /// Gauge `{funnel}`: the allowed rollout percent.
    pub const GATE_ALLOWED_ROLLOUT_PERCENT: &str = "funnelgate_gate_allowed_rollout_percent";
    /// Gauge `{funnel, stage, health}`: 1 for the stage's current health, 0 for the others.
    pub const STAGE_HEALTH: &str = "funnelgate_stage_health";
    /// Counter `{stage, outcome}` (exposed as `funnelgate_checks_total`): checks made, by
    /// outcome `ok`, `unreachable`, `timeout`, `checker_error`.
    pub const CHECKS: &str = "funnelgate_checks";
    /// Histogram `{stage}`: how long a `Check` call took.
    pub const CHECK_DURATION_SECONDS: &str = "funnelgate_check_duration_seconds";
    /// Counter `{funnel}` (exposed as `funnelgate_decision_changes_total`): decision changes.
    pub const DECISION_CHANGES: &str = "funnelgate_decision_changes";
    /// Gauge: open `WatchGate` streams.
    pub const WATCHERS: &str = "funnelgate_watchers";
    /// Counter `{sink, outcome}` (`delivered`, `retry`, `failed`): notification attempts.
    pub const NOTIFICATIONS: &str = "funnelgate_notifications";
    /// Gauge `{sink}`: failed attempts since the sink's last success (0: healthy).
    pub const NOTIFICATION_SINK_FAILING: &str = "funnelgate_notification_sink_failing";
    /// Gauge `{sink}`: notifications waiting in the outbox.
    pub const NOTIFICATIONS_PENDING: &str = "funnelgate_notifications_pending";
}

/// Outcome label of `funnelgate_checks_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The checker answered with a valid report.
    Ok,
    /// Transport error (connect refused, reset…).
    Unreachable,
    /// The deadline passed.
    Timeout,
    /// The checker answered with an error status or an invalid report.
    CheckerError,
}

impl CheckOutcome {
    /// Label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckOutcome::Ok => "ok",
            CheckOutcome::Unreachable => "unreachable",
            CheckOutcome::Timeout => "timeout",
            CheckOutcome::CheckerError => "checker_error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunnelLabels {
    funnel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunnelStateLabels {
    funnel: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageHealthLabels {
    funnel: String,
    stage: String,
    health: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    stage: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkOutcomeLabels {
    sink: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
}

fn duration_histogram() -> Histogram {
    // 5ms … ~41s
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The coordinator's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    gate_state: Family<FunnelStateLabels, Gauge>,
    rollout: Family<FunnelLabels, Gauge>,
    stage_health: Family<StageHealthLabels, Gauge>,
    checks: Family<CheckLabels, Counter>,
    check_duration: Family<StageLabels, Histogram, fn() -> Histogram>,
    decision_changes: Family<FunnelLabels, Counter>,
    watchers: Gauge,
    notifications: Family<SinkOutcomeLabels, Counter>,
    sink_failing: Family<SinkLabels, Gauge>,
    notifications_pending: Family<SinkLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let gate_state = Family::<FunnelStateLabels, Gauge>::default();
        let rollout = Family::<FunnelLabels, Gauge>::default();
        let stage_health = Family::<StageHealthLabels, Gauge>::default();
        let checks = Family::<CheckLabels, Counter>::default();
        let check_duration =
            Family::<StageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram as fn() -> Histogram,
            );
        let decision_changes = Family::<FunnelLabels, Counter>::default();
        let watchers = Gauge::default();
        registry.register(
            names::GATE_STATE,
            "1 for the funnel's current gate state, 0 for the others",
            gate_state.clone(),
        );
        registry.register(
            names::GATE_ALLOWED_ROLLOUT_PERCENT,
            "share of traffic the gate allows, in percent",
            rollout.clone(),
        );
        registry.register(
            names::STAGE_HEALTH,
            "1 for the stage's current health, 0 for the others",
            stage_health.clone(),
        );
        registry.register(
            names::CHECKS,
            "stage checks made, by outcome",
            checks.clone(),
        );
        registry.register(
            names::CHECK_DURATION_SECONDS,
            "duration of stage checks",
            check_duration.clone(),
        );
        registry.register(
            names::DECISION_CHANGES,
            "gate decision changes",
            decision_changes.clone(),
        );
        registry.register(names::WATCHERS, "open WatchGate streams", watchers.clone());
        let notifications = Family::<SinkOutcomeLabels, Counter>::default();
        let sink_failing = Family::<SinkLabels, Gauge>::default();
        let notifications_pending = Family::<SinkLabels, Gauge>::default();
        registry.register(
            names::NOTIFICATIONS,
            "notification delivery attempts by sink and outcome",
            notifications.clone(),
        );
        registry.register(
            names::NOTIFICATION_SINK_FAILING,
            "failed attempts since the sink's last success (0: healthy)",
            sink_failing.clone(),
        );
        registry.register(
            names::NOTIFICATIONS_PENDING,
            "notifications waiting in the outbox",
            notifications_pending.clone(),
        );
        Metrics {
            registry,
            gate_state,
            rollout,
            stage_health,
            checks,
            check_duration,
            decision_changes,
            watchers,
            notifications,
            sink_failing,
            notifications_pending,
        }
    }

    /// Record a funnel's current decision (state, share, stage health).
    pub fn observe_decision(&self, d: &GateDecision) {
        for s in [GateState::Open, GateState::Hold, GateState::Closed] {
            let v = i64::from(d.state == s);
            self.gate_state
                .get_or_create(&FunnelStateLabels {
                    funnel: d.funnel.clone(),
                    state: s.as_str().into(),
                })
                .set(v);
        }
        self.rollout
            .get_or_create(&FunnelLabels {
                funnel: d.funnel.clone(),
            })
            .set(i64::from(d.allowed_rollout_percent));
        for stage in &d.stages {
            for h in [
                StageHealth::Healthy,
                StageHealth::Degraded,
                StageHealth::Failing,
                StageHealth::Unknown,
            ] {
                let labels = StageHealthLabels {
                    funnel: d.funnel.clone(),
                    stage: stage.stage.clone(),
                    health: h.as_str().into(),
                };
                self.stage_health
                    .get_or_create(&labels)
                    .set(i64::from(stage.health == h));
            }
        }
    }

    /// Count a decision change.
    pub fn decision_changed(&self, funnel: &str) {
        self.decision_changes
            .get_or_create(&FunnelLabels {
                funnel: funnel.to_string(),
            })
            .inc();
    }

    /// Count one check and its duration.
    pub fn check_done(&self, stage: &str, outcome: CheckOutcome, seconds: f64) {
        self.checks
            .get_or_create(&CheckLabels {
                stage: stage.to_string(),
                outcome: outcome.as_str().into(),
            })
            .inc();
        self.check_duration
            .get_or_create(&StageLabels {
                stage: stage.to_string(),
            })
            .observe(seconds);
    }

    /// A watcher connected (`+1`) or left (`-1`).
    pub fn watchers_add(&self, delta: i64) {
        self.watchers.inc_by(delta);
    }

    /// Count one notification attempt (`delivered`, `retry` or `failed`).
    pub fn notification(&self, sink: &str, outcome: &str) {
        self.notifications
            .get_or_create(&SinkOutcomeLabels {
                sink: sink.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A sink's failures since its last success and its waiting notifications.
    pub fn notification_sink(&self, sink: &str, failing: u64, pending: u64) {
        let labels = SinkLabels {
            sink: sink.to_string(),
        };
        self.sink_failing
            .get_or_create(&labels)
            .set(i64::try_from(failing).unwrap_or(i64::MAX));
        self.notifications_pending
            .get_or_create(&labels)
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        out
    }
}
