//! Notifications on gate changes: after a change is recorded in the ledger, each configured sink
//! whose funnels and filters select it gets a message (Slack, Microsoft Teams, email over SMTP
//! with STARTTLS, a signed CloudEvents webhook).
//!
//! Delivery is **at-least-once with an idempotency key**: the outbox rows of a change are
//! derived from the ledger (a cursor per sink and funnel moves in the same transaction that
//! queues them), a row is marked delivered only after the receiver accepted it, so a crash
//! between sending and marking sends it again after the restart, with the same `id`
//! (`<funnel>:<seq>:<hash prefix>`: the CloudEvents `id`, in Slack/Teams text, the email
//! Message-ID). Nothing is lost: rows and cursors live in the database, and a change recorded
//! before a crash is still read from the ledger after it.
//!
//! The work happens in background tasks owned by [`Notifier::spawn`]: one that turns ledger
//! entries into outbox rows, and one per sink that delivers, retrying with exponential backoff
//! (`retry_initial` doubling up to `retry_max`, at most `max_attempts`), each attempt bounded by
//! `timeout`. The gate never waits for them. A failing sink is visible in `/metrics`
//! (`funnelgate_notification_sink_failing`, `funnelgate_notifications_total{outcome}`,
//! `funnelgate_notifications_pending`) and on the dashboard ([`NotifyStatus`]). Only the leader
//! (or the single SQLite coordinator) sends.

pub mod config;
pub mod event;
pub mod outbox;
pub mod sinks;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::config::ConfigIssue;
use crate::metrics::Metrics;
use crate::state::{Gates, now};
use crate::store::Store;
use config::NotificationsConfig;
use event::Change;
use outbox::Outbox;
use sinks::Sink;

/// Ledger entries read per round and funnel.
const SCAN_BATCH: u32 = 100;
/// Outbox rows delivered per round and sink.
const DELIVERY_BATCH: u32 = 16;
/// How often the outbox is looked at when nothing wakes the tasks.
const POLL: Duration = Duration::from_secs(1);

/// What the dashboard and `/metrics` show of one sink.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SinkState {
    /// Sink name.
    pub name: String,
    /// `slack`, `teams`, `webhook`, `email`.
    pub kind: String,
    /// Funnels it covers (empty: all).
    pub funnels: Vec<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u64,
    /// The last error (no secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Rows waiting.
    pub pending: u64,
    /// Rows given up.
    pub failed: u64,
    /// Rows delivered.
    pub delivered: u64,
}

/// Live state of every sink.
#[derive(Debug, Default)]
pub struct NotifyStatus {
    sinks: Mutex<BTreeMap<String, SinkState>>,
}

impl NotifyStatus {
    fn update(&self, name: &str, f: impl FnOnce(&mut SinkState)) {
        if let Ok(mut map) = self.sinks.lock()
            && let Some(s) = map.get_mut(name)
        {
            f(s);
        }
    }

    /// The sinks covering `funnel`, as JSON for the dashboard.
    pub fn json(&self, funnel: &str) -> serde_json::Value {
        let sinks: Vec<SinkState> = self
            .sinks
            .lock()
            .map(|m| {
                m.values()
                    .filter(|s| s.funnels.is_empty() || s.funnels.iter().any(|f| f == funnel))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        serde_json::json!({ "sinks": sinks })
    }
}

/// The configured sinks and their outbox.
#[derive(Debug)]
pub struct Notifier {
    sinks: Vec<Arc<Sink>>,
    outbox: Outbox,
    retry_initial: Duration,
    retry_max: Duration,
    max_attempts: u32,
    timeout: Duration,
    status: Arc<NotifyStatus>,
}

/// The delay before attempt `attempts + 1`: `initial * 2^(attempts-1)`, at most `max`.
pub fn backoff(initial: Duration, max: Duration, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    initial.saturating_mul(1u32 << exp).min(max)
}

impl Notifier {
    /// Resolve every sink's secrets (all problems reported) over the store's pool.
    pub fn from_config(
        cfg: &NotificationsConfig,
        env: &HashMap<String, String>,
        base: &Path,
        pool: sqlx::AnyPool,
    ) -> Result<Notifier, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let mut sinks = Vec::new();
        for (i, s) in cfg.sinks.iter().enumerate() {
            match Sink::from_config(i, s, env, base) {
                Ok(sink) => sinks.push(Arc::new(sink)),
                Err(more) => issues.extend(more),
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let status = NotifyStatus::default();
        if let Ok(mut map) = status.sinks.lock() {
            for s in &sinks {
                map.insert(
                    s.name.clone(),
                    SinkState {
                        name: s.name.clone(),
                        kind: s.kind.as_str().to_string(),
                        funnels: s.funnels.clone(),
                        ..Default::default()
                    },
                );
            }
        }
        Ok(Notifier {
            sinks,
            outbox: Outbox::new(pool),
            retry_initial: cfg.retry_initial.get(),
            retry_max: cfg.retry_max.get(),
            max_attempts: cfg.max_attempts,
            timeout: cfg.timeout.get(),
            status: Arc::new(status),
        })
    }

    /// The live status the dashboard reads.
    pub fn status(&self) -> Arc<NotifyStatus> {
        self.status.clone()
    }

    /// Start the background tasks (none without sinks); they stop when `stop` turns true.
    pub fn spawn(
        self,
        gates: Arc<Gates>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
    ) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        if self.sinks.is_empty() {
            return tasks;
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = match reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(error) => {
                tracing::error!(%error, "notifications: cannot build the http client: notifications are off");
                return tasks;
            }
        };
        let me = Arc::new(self);
        let changed = Arc::new(Notify::new());
        // Wake the scanner on every published decision change (the WatchGate feed).
        for (_, slot) in gates.iter() {
            let mut rx = slot.subscribe();
            let changed = changed.clone();
            let mut stop = stop.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        r = rx.recv() => match r {
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => changed.notify_one(),
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        },
                    }
                }
            });
        }
        let wakes: Vec<Arc<Notify>> = me.sinks.iter().map(|_| Arc::new(Notify::new())).collect();
        {
            let me = me.clone();
            let gates = gates.clone();
            let wakes = wakes.clone();
            let mut stop = stop.clone();
            tasks.spawn(async move {
                loop {
                    if gates.cluster().state().leader {
                        me.scan(&gates, store.as_ref()).await;
                        wakes.iter().for_each(|w| w.notify_one());
                    }
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = changed.notified() => {}
                        _ = tokio::time::sleep(POLL) => {}
                    }
                }
            });
        }
        for (i, sink) in me.sinks.iter().enumerate() {
            let me = me.clone();
            let sink = sink.clone();
            let wake = wakes[i].clone();
            let client = client.clone();
            let gates = gates.clone();
            let metrics = metrics.clone();
            let mut stop = stop.clone();
            tasks.spawn(async move {
                loop {
                    if gates.cluster().state().leader {
                        me.deliver_due(&sink, &client, &metrics).await;
                    }
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(POLL) => {}
                    }
                }
            });
        }
        tasks
    }

    /// Turn new ledger entries into outbox rows, for every sink and funnel it covers.
    async fn scan(&self, gates: &Gates, store: &dyn Store) {
        for sink in &self.sinks {
            for funnel in gates.names() {
                if !sink.covers(funnel) {
                    continue;
                }
                if let Err(error) = self.scan_one(sink, funnel, store).await {
                    tracing::warn!(sink = %sink.name, funnel, %error, "notifications: cannot read new changes: will retry");
                }
            }
        }
    }

    async fn scan_one(&self, sink: &Sink, funnel: &str, store: &dyn Store) -> Result<(), String> {
        let now_ms = now().as_millis();
        let Some(mut cursor) = self
            .outbox
            .cursor(&sink.name, funnel)
            .await
            .map_err(|e| e.to_string())?
        else {
            // A new sink hears of changes from now on, not of the whole history.
            let last = store
                .last(funnel, None)
                .await
                .map_err(|e| e.to_string())?
                .map_or(0, |e| e.seq);
            self.outbox
                .enqueue(&sink.name, funnel, &[], last, now_ms)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(());
        };
        loop {
            let entries = store
                .since(funnel, cursor, SCAN_BATCH)
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                return Ok(());
            };
            let mut previous = if cursor > 0 {
                store.get(funnel, cursor).await.map_err(|e| e.to_string())?
            } else {
                None
            };
            let mut changes = Vec::new();
            for e in &entries {
                if let Some(c) = Change::from_entries(e, previous.as_ref())
                    && c.matches_any(&sink.on)
                {
                    changes.push(c);
                }
                previous = Some(e.clone());
            }
            self.outbox
                .enqueue(&sink.name, funnel, &changes, last, now_ms)
                .await
                .map_err(|e| e.to_string())?;
            if !changes.is_empty() {
                tracing::debug!(sink = %sink.name, funnel, queued = changes.len(), "notifications queued");
            }
            cursor = last;
            if entries.len() < SCAN_BATCH as usize {
                return Ok(());
            }
        }
    }

    async fn deliver_due(&self, sink: &Sink, client: &reqwest::Client, metrics: &Metrics) {
        let due = match self
            .outbox
            .due(&sink.name, now().as_millis(), DELIVERY_BATCH)
            .await
        {
            Ok(d) => d,
            Err(error) => {
                tracing::warn!(sink = %sink.name, %error, "notifications: cannot read the outbox: will retry");
                return;
            }
        };
        for p in due {
            let result = sink.deliver(client, &p.change, self.timeout).await;
            let now_ms = now().as_millis();
            let attempts = p.attempts.saturating_add(1);
            let recorded = match &result {
                Ok(()) => {
                    metrics.notification(&sink.name, "delivered");
                    self.status.update(&sink.name, |s| {
                        s.consecutive_failures = 0;
                        s.last_error = None;
                    });
                    tracing::info!(sink = %sink.name, funnel = %p.funnel, sequence = p.seq, id = %p.id, attempts, "notification delivered");
                    self.outbox
                        .finish(&sink.name, &p.funnel, p.seq, true, None, now_ms)
                        .await
                }
                Err(error) => {
                    self.status.update(&sink.name, |s| {
                        s.consecutive_failures += 1;
                        s.last_error = Some(error.clone());
                    });
                    if attempts >= self.max_attempts {
                        metrics.notification(&sink.name, "failed");
                        tracing::error!(sink = %sink.name, funnel = %p.funnel, sequence = p.seq, id = %p.id, attempts, %error, "notification given up");
                        self.outbox
                            .finish(&sink.name, &p.funnel, p.seq, false, Some(error), now_ms)
                            .await
                    } else {
                        metrics.notification(&sink.name, "retry");
                        let delay = backoff(self.retry_initial, self.retry_max, attempts);
                        tracing::warn!(sink = %sink.name, funnel = %p.funnel, sequence = p.seq, attempts, retry_in = ?delay, %error, "notification failed: will retry");
                        let next = now_ms
                            .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                        self.outbox
                            .retry_at(&sink.name, &p.funnel, p.seq, error, next)
                            .await
                    }
                }
            };
            if let Err(error) = recorded {
                tracing::warn!(sink = %sink.name, %error, "notifications: cannot record the attempt (it may be repeated)");
            }
            if result.is_err() {
                // A failing sink waits for its backoff; later rows are not hammered at it.
                break;
            }
        }
        if let Ok(c) = self.outbox.counts(&sink.name).await {
            self.status.update(&sink.name, |s| {
                s.pending = c.pending;
                s.failed = c.failed;
                s.delivered = c.delivered;
            });
            let failing = self
                .status
                .sinks
                .lock()
                .ok()
                .and_then(|m| m.get(&sink.name).map(|s| s.consecutive_failures))
                .unwrap_or(0);
            metrics.notification_sink(&sink.name, failing, c.pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(1), s(60), 1), s(1));
        assert_eq!(backoff(s(1), s(60), 2), s(2));
        assert_eq!(backoff(s(1), s(60), 4), s(8));
        assert_eq!(backoff(s(1), s(60), 7), s(60));
        assert_eq!(backoff(s(1), s(60), u32::MAX), s(60));
    }
}
