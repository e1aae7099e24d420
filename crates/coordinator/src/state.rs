//! The engine owner: one task owns the [`Engine`], applies events in order (stage reports,
//! ticks, operator actions), records every decision change in the ledger, persists the engine's
//! snapshot, and publishes each funnel's decision to a lock-free snapshot that the Gate API reads
//! without ever waiting on the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use funnelgate_core::{
    Engine, EngineError, FunnelPolicy, GateDecision, Outcome, Override, Phase, StageReport,
    Timestamp,
};
use funnelgate_proto::convert::decision_to_pb;
use funnelgate_proto::encoded::EncodedDecision;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::error::{CoordinatorError, ServiceError};
use crate::leader::Cluster;
use crate::metrics::Metrics;
use crate::store::{EntryKind, NewEntry, Store, StoreError};

/// How many decision changes a watcher may lag behind before it is dropped.
pub const WATCH_CAPACITY: usize = 16;
/// How often the engine's snapshots of funnels that only saw reports are persisted.
const PERSIST_INTERVAL: Duration = Duration::from_secs(1);
/// Queue between the scheduler/API and the engine task.
const COMMAND_QUEUE: usize = 1024;

/// The current time as the engine sees it.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_millis(ms)
}

/// A decision as served: the core decision, its wire forms, and where it sits in the ledger.
#[derive(Debug)]
pub struct Published {
    /// The decision.
    pub decision: Arc<GateDecision>,
    /// The compact wire form, encoded once at publish time: `GetGate` and every `WatchGate`
    /// stream send these bytes as they are.
    pub compact: EncodedDecision,
    full: OnceLock<EncodedDecision>,
    compact_json: OnceLock<Arc<[u8]>>,
    full_json: OnceLock<Arc<[u8]>>,
    /// Ledger sequence of the last recorded change of this funnel (0 before the first).
    pub sequence: u64,
    /// Hash of the configuration that produced it.
    pub config_hash: Arc<str>,
}

impl Published {
    /// Build the published form of `decision`.
    pub fn new(decision: Arc<GateDecision>, config_hash: Arc<str>, sequence: u64) -> Self {
        let compact =
            EncodedDecision::new(&decision_to_pb(&decision, false, &config_hash, sequence));
        Published {
            decision,
            compact,
            full: OnceLock::new(),
            compact_json: OnceLock::new(),
            full_json: OnceLock::new(),
            sequence,
            config_hash,
        }
    }

    /// The HTTP JSON form: the core decision (compact: without probe results and with the head
    /// of the remediation list; or full) plus `config_hash` and `sequence`. Computed once.
    pub fn json(&self, full: bool) -> Arc<[u8]> {
        let cell = if full {
            &self.full_json
        } else {
            &self.compact_json
        };
        cell.get_or_init(|| {
            let decision = if full {
                (*self.decision).clone()
            } else {
                self.decision
                    .compact(funnelgate_proto::convert::COMPACT_REMEDIATION_HEAD)
            };
            let mut value =
                serde_json::to_value(&decision).unwrap_or_else(|_| serde_json::json!({}));
            if let Some(map) = value.as_object_mut() {
                map.insert("config_hash".into(), self.config_hash.to_string().into());
                map.insert("sequence".into(), self.sequence.into());
            }
            Arc::from(serde_json::to_vec(&value).unwrap_or_default())
        })
        .clone()
    }

    /// The full wire form (every probe result), encoded once on first use.
    pub fn full(&self) -> EncodedDecision {
        self.full
            .get_or_init(|| {
                EncodedDecision::new(&decision_to_pb(
                    &self.decision,
                    true,
                    &self.config_hash,
                    self.sequence,
                ))
            })
            .clone()
    }

    /// The compact or full wire form (a reference-counted clone of the encoded bytes).
    pub fn encoded(&self, full: bool) -> EncodedDecision {
        if full {
            self.full()
        } else {
            self.compact.clone()
        }
    }
}

/// One funnel's published state.
#[derive(Debug)]
pub struct FunnelSlot {
    /// The funnel's policy.
    pub policy: Arc<FunnelPolicy>,
    published: ArcSwap<Published>,
    changes: broadcast::Sender<Arc<Published>>,
    /// Stages not yet checked since start.
    pending: Mutex<BTreeSet<String>>,
    ready: AtomicBool,
}

impl FunnelSlot {
    /// The current decision.
    pub fn current(&self) -> Arc<Published> {
        self.published.load_full()
    }

    /// Subscribe to decision changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.changes.subscribe()
    }

    /// Has every stage been checked at least once since start?
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn stage_checked(&self, stage: &str) {
        if self.is_ready() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.remove(stage);
        if pending.is_empty() {
            self.ready.store(true, Ordering::Release);
        }
    }

    fn pending_stages(&self) -> Vec<String> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// Every funnel's published decision; the map is fixed at start, reads are lock-free.
#[derive(Debug)]
pub struct Gates {
    funnels: BTreeMap<String, Arc<FunnelSlot>>,
    config_hash: Arc<str>,
    cluster: Arc<Cluster>,
    /// A follower has caught up with the database at least once.
    synced: AtomicBool,
}

impl Gates {
    /// One funnel.
    pub fn get(&self, funnel: &str) -> Option<&Arc<FunnelSlot>> {
        self.funnels.get(funnel)
    }

    /// Every funnel, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Arc<FunnelSlot>)> {
        self.funnels.iter()
    }

    /// Funnel names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.funnels.keys().map(String::as_str).collect()
    }

    /// The configuration hash.
    pub fn config_hash(&self) -> &str {
        &self.config_hash
    }

    /// This replica's role.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Ready to serve: the database is reachable and, on a leader, every funnel had every stage
    /// checked since start, on a follower, it has caught up with the ledger. Otherwise what is
    /// missing.
    pub fn ready(&self) -> Result<(), Vec<String>> {
        let role = self.cluster.state();
        if !role.db_ok {
            return Err(vec!["the database is unreachable".to_string()]);
        }
        if self.cluster.is_replicated() && !role.leader {
            return if self.synced.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err(vec!["catching up with the ledger".to_string()])
            };
        }
        self.readiness()
    }

    /// `Ok` once every funnel had every stage checked since start; otherwise the
    /// `funnel/stage` pairs still waiting.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let waiting: Vec<String> = self
            .funnels
            .iter()
            .filter(|(_, s)| !s.is_ready())
            .flat_map(|(f, s)| {
                s.pending_stages()
                    .into_iter()
                    .map(move |st| format!("{f}/{st}"))
            })
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(waiting)
        }
    }
}

enum Command {
    Report(StageReport),
    Tick,
    SetOverride {
        funnel: String,
        ov: Override,
        reply: oneshot::Sender<Result<Arc<Published>, ServiceError>>,
    },
    ClearOverride {
        funnel: String,
        actor: String,
        reason: String,
        reply: oneshot::Sender<Result<Arc<Published>, ServiceError>>,
    },
    SetPhase {
        funnel: String,
        phase: Phase,
        actor: String,
        reason: String,
        reply: oneshot::Sender<Result<Arc<Published>, ServiceError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// Follower: catch up with the database (one funnel, or all).
    Follow {
        funnel: Option<String>,
    },
    /// Become the writer: catch up, record where the ledger lags the engine, then write.
    Promote {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Stop writing (leadership lost).
    Demote,
}

/// Sends events to the engine task.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
}

fn stopped() -> ServiceError {
    ServiceError::Unavailable("the coordinator is shutting down".into())
}

impl EngineHandle {
    /// Apply a stage report (waits only for queue space, not for the engine).
    pub async fn report(&self, report: StageReport) -> bool {
        self.tx.send(Command::Report(report)).await.is_ok()
    }

    /// Re-evaluate every funnel for the passage of time now.
    pub async fn tick(&self) -> bool {
        self.tx.send(Command::Tick).await.is_ok()
    }

    async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<Arc<Published>, ServiceError>>) -> Command,
    ) -> Result<Arc<Published>, ServiceError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Force a funnel's gate; resolves once the override is in the ledger and persisted.
    pub async fn set_override(
        &self,
        funnel: String,
        ov: Override,
    ) -> Result<Arc<Published>, ServiceError> {
        self.ask(|reply| Command::SetOverride { funnel, ov, reply })
            .await
    }

    /// Remove a funnel's override; resolves once recorded.
    pub async fn clear_override(
        &self,
        funnel: String,
        actor: String,
        reason: String,
    ) -> Result<Arc<Published>, ServiceError> {
        self.ask(|reply| Command::ClearOverride {
            funnel,
            actor,
            reason,
            reply,
        })
        .await
    }

    /// Set a funnel's phase; resolves once recorded.
    pub async fn set_phase(
        &self,
        funnel: String,
        phase: Phase,
        actor: String,
        reason: String,
    ) -> Result<Arc<Published>, ServiceError> {
        self.ask(|reply| Command::SetPhase {
            funnel,
            phase,
            actor,
            reason,
            reply,
        })
        .await
    }

    /// Follower: re-read `funnel` (or every funnel) from the database and publish it.
    pub async fn follow(&self, funnel: Option<String>) -> bool {
        self.tx.send(Command::Follow { funnel }).await.is_ok()
    }

    /// Take over writing (this replica was elected leader); resolves once caught up.
    pub async fn promote(&self) -> Result<(), ServiceError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Promote { reply })
            .await
            .map_err(|_| stopped())?;
        rx.await
            .map_err(|_| stopped())?
            .map_err(|e| ServiceError::Unavailable(format!("cannot take over: {e}")))
    }

    /// Stop writing (leadership was lost).
    pub async fn demote(&self) {
        let _ = self.tx.send(Command::Demote).await;
    }

    /// Persist everything and stop the engine task.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Build the engine from the config, restore every funnel's saved state, publish the first
/// decisions, and start the engine task (which ticks every `tick_interval`). A replica that does
/// not lead yet (`cluster` replicated) records nothing until it is promoted.
pub async fn start(
    funnels: &[FunnelPolicy],
    config_hash: &str,
    tick_interval: Duration,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    cluster: Arc<Cluster>,
) -> Result<(Arc<Gates>, EngineHandle, tokio::task::JoinHandle<()>), CoordinatorError> {
    let leading = !cluster.is_replicated();
    let config_hash: Arc<str> = Arc::from(config_hash);
    let mut engine = Engine::new();
    let now = now();
    let mut slots = BTreeMap::new();
    for policy in funnels {
        let name = policy.name.clone();
        let mut outcome = engine.upsert_funnel(policy.clone(), now)?;
        if let Some(snapshot) = store.load_state(&name).await? {
            match engine.restore(snapshot, now) {
                Ok(restored) => {
                    tracing::info!(funnel = %name, state = %restored.decision.state, "restored funnel state");
                    outcome = restored;
                }
                Err(error) => {
                    tracing::warn!(funnel = %name, %error, "saved state does not fit the current policy: starting this funnel afresh");
                }
            }
        }
        let last = store.last(&name, None).await?;
        let recorded = last
            .as_ref()
            .and_then(|e| e.payload.get("decision"))
            .and_then(|d| serde_json::from_value::<GateDecision>(d.clone()).ok());
        let mut sequence = last.as_ref().map_or(0, |e| e.seq);
        let differs = recorded
            .as_ref()
            .is_none_or(|r| r.materially_differs(&outcome.decision));
        if differs && leading {
            let entry = store
                .append(NewEntry {
                    funnel: name.clone(),
                    kind: EntryKind::Decision,
                    recorded_at: now,
                    config_hash: config_hash.to_string(),
                    payload: payload(&engine, &outcome.decision, serde_json::Map::new()),
                })
                .await?;
            sequence = entry.seq;
        }
        metrics.observe_decision(&outcome.decision);
        let published = Arc::new(Published::new(
            outcome.decision.clone(),
            config_hash.clone(),
            sequence,
        ));
        let (changes, _) = broadcast::channel(WATCH_CAPACITY);
        let pending: BTreeSet<String> = policy.stages.iter().map(|s| s.name.clone()).collect();
        let ready = pending.is_empty();
        slots.insert(
            name,
            Arc::new(FunnelSlot {
                policy: Arc::new(policy.clone()),
                published: ArcSwap::new(published),
                changes,
                pending: Mutex::new(pending),
                ready: AtomicBool::new(ready),
            }),
        );
    }
    let gates = Arc::new(Gates {
        funnels: slots,
        config_hash,
        cluster,
        synced: AtomicBool::new(leading),
    });
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let task = EngineTask {
        engine,
        gates: gates.clone(),
        store,
        metrics,
        dirty: BTreeSet::new(),
        leading,
    };
    let join = tokio::spawn(task.run(rx, tick_interval));
    Ok((gates, EngineHandle { tx }, join))
}

/// The ledger payload: the decision, the stage reports it was based on, and `extra` fields.
fn payload(
    engine: &Engine,
    decision: &GateDecision,
    extra: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let evidence = engine
        .snapshot(&decision.funnel)
        .map(|s| s.last_reports)
        .unwrap_or_default();
    let mut map = extra;
    map.insert(
        "decision".into(),
        serde_json::to_value(decision).unwrap_or(serde_json::Value::Null),
    );
    map.insert(
        "evidence".into(),
        serde_json::to_value(evidence).unwrap_or(serde_json::Value::Null),
    );
    serde_json::Value::Object(map)
}

fn engine_error(e: EngineError) -> ServiceError {
    match e {
        EngineError::UnknownFunnel(f) => ServiceError::UnknownFunnel(f),
        EngineError::InvalidOverride(m) => {
            ServiceError::InvalidArgument(format!("invalid override: {m}"))
        }
        other => ServiceError::Internal(other.to_string()),
    }
}

struct EngineTask {
    engine: Engine,
    gates: Arc<Gates>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    /// Funnels whose snapshot changed since it was last persisted.
    dirty: BTreeSet<String>,
    /// This replica writes (the only one, or the elected leader).
    leading: bool,
}

impl EngineTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, tick_interval: Duration) {
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + tick_interval, tick_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut persist = tokio::time::interval(PERSIST_INTERVAL);
        persist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = rx.recv() => match command {
                    Some(Command::Shutdown { reply }) => {
                        self.persist_dirty().await;
                        let _ = reply.send(());
                        break;
                    }
                    Some(command) => self.handle(command).await,
                    None => {
                        self.persist_dirty().await;
                        break;
                    }
                },
                _ = ticker.tick() => {
                    if self.leading {
                        self.tick().await
                    } else {
                        self.follower_tick(now())
                    }
                }
                _ = persist.tick() => self.persist_dirty().await,
            }
        }
        tracing::debug!("engine task stopped");
    }

    async fn handle(&mut self, command: Command) {
        let now = now();
        if !self.leading {
            return self.handle_as_follower(command, now).await;
        }
        match command {
            Command::Follow { .. } => {}
            Command::Demote => {
                tracing::warn!("no longer the leader: recording stops");
                self.leading = false;
                self.dirty.clear();
            }
            Command::Promote { reply } => {
                let _ = reply.send(Ok(()));
            }
            Command::Report(report) => {
                let funnel = report.funnel.clone();
                let stage = report.stage.clone();
                match self.engine.apply_report(report, now) {
                    Ok(outcome) => {
                        if let Some(slot) = self.gates.get(&funnel) {
                            slot.stage_checked(&stage);
                        }
                        self.dirty.insert(funnel.clone());
                        self.publish_or_log(
                            outcome,
                            EntryKind::Decision,
                            serde_json::Map::new(),
                            now,
                        )
                        .await;
                    }
                    Err(error) => {
                        tracing::warn!(funnel = %funnel, stage = %stage, %error, "report not applied")
                    }
                }
            }
            Command::Tick => self.tick().await,
            Command::SetOverride { funnel, ov, reply } => {
                let mut extra = serde_json::Map::new();
                extra.insert("actor".into(), ov.actor.clone().into());
                extra.insert("reason".into(), ov.reason.clone().into());
                extra.insert(
                    "override".into(),
                    serde_json::to_value(&ov).unwrap_or_default(),
                );
                let result = self
                    .operator_action(&funnel, EntryKind::Override, extra, now, |e| {
                        e.set_override(&funnel, ov, now)
                    })
                    .await;
                let _ = reply.send(result);
            }
            Command::ClearOverride {
                funnel,
                actor,
                reason,
                reply,
            } => {
                let active = self
                    .gates
                    .get(&funnel)
                    .and_then(|s| s.current().decision.override_.clone());
                let result = match active {
                    None if self.gates.get(&funnel).is_some() => {
                        Err(ServiceError::FailedPrecondition(format!(
                            "funnel `{funnel}` has no active override"
                        )))
                    }
                    _ => {
                        let mut extra = serde_json::Map::new();
                        extra.insert("actor".into(), actor.into());
                        extra.insert("reason".into(), reason.into());
                        extra.insert(
                            "cleared".into(),
                            serde_json::to_value(&active).unwrap_or_default(),
                        );
                        self.operator_action(&funnel, EntryKind::OverrideCleared, extra, now, |e| {
                            e.clear_override(&funnel, now)
                        })
                        .await
                    }
                };
                let _ = reply.send(result);
            }
            Command::SetPhase {
                funnel,
                phase,
                actor,
                reason,
                reply,
            } => {
                let mut extra = serde_json::Map::new();
                extra.insert("actor".into(), actor.into());
                extra.insert("reason".into(), reason.into());
                extra.insert("phase".into(), phase.as_str().into());
                let result = self
                    .operator_action(&funnel, EntryKind::Phase, extra, now, |e| {
                        e.set_phase(&funnel, phase, now)
                    })
                    .await;
                let _ = reply.send(result);
            }
            Command::Shutdown { .. } => {}
        }
    }

    /// Apply an operator action, record it (always, changed or not: it is audited) and persist
    /// the funnel before answering. If the store fails, the engine is put back as it was.
    async fn operator_action(
        &mut self,
        funnel: &str,
        kind: EntryKind,
        extra: serde_json::Map<String, serde_json::Value>,
        now: Timestamp,
        apply: impl FnOnce(&mut Engine) -> Result<Outcome, EngineError>,
    ) -> Result<Arc<Published>, ServiceError> {
        if self.gates.get(funnel).is_none() {
            return Err(ServiceError::UnknownFunnel(funnel.to_string()));
        }
        let before = self.engine.snapshot(funnel);
        let outcome = apply(&mut self.engine).map_err(engine_error)?;
        match self.publish(outcome, kind, extra, true, now).await {
            Ok(p) => Ok(p),
            Err(error) => {
                tracing::error!(funnel = %funnel, kind = %kind, %error, "cannot record operator action: undoing it");
                if let Some(before) = before
                    && let Err(e) = self.engine.restore(before, now)
                {
                    tracing::error!(funnel = %funnel, error = %e, "cannot undo the operator action in memory");
                }
                Err(ServiceError::Unavailable(format!(
                    "cannot record the {kind} durably: {error}"
                )))
            }
        }
    }

    async fn handle_as_follower(&mut self, command: Command, now: Timestamp) {
        let refuse =
            |cluster: &Cluster| ServiceError::FailedPrecondition(cluster.not_leader_message());
        match command {
            // A deposed leader's checks still in flight: their evidence is the new leader's to take.
            Command::Report(_) => {}
            Command::Tick => self.follower_tick(now),
            Command::SetOverride { reply, .. }
            | Command::ClearOverride { reply, .. }
            | Command::SetPhase { reply, .. } => {
                let _ = reply.send(Err(refuse(&self.gates.cluster)));
            }
            Command::Follow { funnel } => {
                let names: Vec<String> = match funnel {
                    Some(f) if self.gates.get(&f).is_some() => vec![f],
                    Some(_) => Vec::new(),
                    None => self.gates.names().into_iter().map(str::to_string).collect(),
                };
                let mut ok = true;
                for name in names {
                    if let Err(error) = self.follow(&name, now).await {
                        tracing::warn!(funnel = %name, %error, "cannot catch up with the leader");
                        ok = false;
                    }
                }
                if ok {
                    self.gates.synced.store(true, Ordering::Release);
                }
            }
            Command::Promote { reply } => {
                let result = self.promote(now).await;
                if result.is_ok() {
                    self.leading = true;
                }
                let _ = reply.send(result);
            }
            Command::Demote | Command::Shutdown { .. } => {}
        }
    }

    /// Follower: load a funnel's state as the leader last saved it, re-decide it at `now` (so
    /// evidence that went stale since counts as stale here too) and publish it with the ledger's
    /// sequence.
    async fn follow(&mut self, funnel: &str, now: Timestamp) -> Result<(), StoreError> {
        let Some(slot) = self.gates.get(funnel).cloned() else {
            return Ok(());
        };
        let sequence = self.store.last(funnel, None).await?.map_or(0, |e| e.seq);
        let outcome = match self.store.load_state(funnel).await? {
            Some(snapshot) => match self.engine.restore(snapshot, now) {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::warn!(funnel = %funnel, %error, "the leader's state does not fit this replica's policy (different configurations?)");
                    return Ok(());
                }
            },
            None => match self.engine.tick_funnel(funnel, now) {
                Ok(outcome) => outcome,
                Err(_) => return Ok(()),
            },
        };
        let current = slot.current();
        if sequence != current.sequence || current.decision.materially_differs(&outcome.decision) {
            self.publish_local(&slot, outcome.decision, sequence);
        }
        Ok(())
    }

    /// Follower: time passes here too (staleness, override expiry) without recording anything.
    fn follower_tick(&mut self, now: Timestamp) {
        let names: Vec<String> = self.gates.names().into_iter().map(str::to_string).collect();
        for funnel in names {
            if let (Ok(outcome), Some(slot)) = (
                self.engine.tick_funnel(&funnel, now),
                self.gates.get(&funnel).cloned(),
            ) && slot
                .current()
                .decision
                .materially_differs(&outcome.decision)
            {
                let sequence = slot.current().sequence;
                self.publish_local(&slot, outcome.decision, sequence);
            }
        }
    }

    fn publish_local(&self, slot: &FunnelSlot, decision: Arc<GateDecision>, sequence: u64) {
        let published = Arc::new(Published::new(
            decision,
            self.gates.config_hash.clone(),
            sequence,
        ));
        slot.published.store(published.clone());
        self.metrics.observe_decision(&published.decision);
        let _ = slot.changes.send(published);
    }

    /// Elected: catch up with what the previous leader persisted, then record each funnel's
    /// decision where the ledger's last one differs (under this replica's term).
    async fn promote(&mut self, now: Timestamp) -> Result<(), StoreError> {
        let names: Vec<String> = self.gates.names().into_iter().map(str::to_string).collect();
        for funnel in names {
            self.follow(&funnel, now).await?;
            let Some(slot) = self.gates.get(&funnel).cloned() else {
                continue;
            };
            let current = slot.current();
            let recorded = self
                .store
                .last(&funnel, None)
                .await?
                .and_then(|e| e.payload.get("decision").cloned())
                .and_then(|d| serde_json::from_value::<GateDecision>(d).ok());
            if recorded
                .as_ref()
                .is_none_or(|r| r.materially_differs(&current.decision))
            {
                let entry = self
                    .store
                    .append_with_state(
                        NewEntry {
                            funnel: funnel.clone(),
                            kind: EntryKind::Decision,
                            recorded_at: now,
                            config_hash: self.gates.config_hash.to_string(),
                            payload: payload(
                                &self.engine,
                                &current.decision,
                                serde_json::Map::new(),
                            ),
                        },
                        self.engine.snapshot(&funnel).as_ref(),
                    )
                    .await?;
                self.publish_local(&slot, current.decision.clone(), entry.seq);
            }
        }
        tracing::info!("took over: writing decisions from now on");
        Ok(())
    }

    async fn tick(&mut self) {
        let now = now();
        let names: Vec<String> = self.gates.names().into_iter().map(str::to_string).collect();
        for funnel in names {
            let had_override = self
                .gates
                .get(&funnel)
                .is_some_and(|s| s.current().decision.override_.is_some());
            match self.engine.tick_funnel(&funnel, now) {
                Ok(outcome) => {
                    let (kind, extra) = if had_override && outcome.decision.override_.is_none() {
                        let mut extra = serde_json::Map::new();
                        extra.insert("actor".into(), "system".into());
                        extra.insert("reason".into(), "override expired".into());
                        (EntryKind::OverrideCleared, extra)
                    } else {
                        (EntryKind::Decision, serde_json::Map::new())
                    };
                    self.publish_or_log(outcome, kind, extra, now).await;
                }
                Err(error) => tracing::warn!(funnel = %funnel, %error, "tick not applied"),
            }
        }
    }

    /// Publish; if recording fails, still serve the new decision (the gate must reflect health)
    /// and log loudly.
    async fn publish_or_log(
        &mut self,
        outcome: Outcome,
        kind: EntryKind,
        extra: serde_json::Map<String, serde_json::Value>,
        now: Timestamp,
    ) {
        let funnel = outcome.funnel.clone();
        let fallback = outcome.clone();
        if let Err(error) = self.publish(outcome, kind, extra, false, now).await {
            tracing::error!(funnel = %funnel, %error, "cannot record decision change: serving it unrecorded");
            self.dirty.insert(funnel.clone());
            if let Some(slot) = self.gates.get(&funnel) {
                let seq = slot.current().sequence;
                let published = Arc::new(Published::new(
                    fallback.decision,
                    self.gates.config_hash.clone(),
                    seq,
                ));
                slot.published.store(published.clone());
                self.metrics.observe_decision(&published.decision);
                let _ = slot.changes.send(published);
            }
        }
    }

    /// Publish an outcome. When it changed (or `force`), append it to the ledger and persist the
    /// funnel's snapshot first, then notify watchers, log and count.
    async fn publish(
        &mut self,
        outcome: Outcome,
        kind: EntryKind,
        extra: serde_json::Map<String, serde_json::Value>,
        force: bool,
        now: Timestamp,
    ) -> Result<Arc<Published>, StoreError> {
        let Some(slot) = self.gates.get(&outcome.funnel).cloned() else {
            tracing::warn!(funnel = %outcome.funnel, "decision for a funnel that is not configured");
            return Ok(Arc::new(Published::new(
                outcome.decision,
                self.gates.config_hash.clone(),
                0,
            )));
        };
        let record = force || outcome.changed;
        let mut sequence = slot.current().sequence;
        if record {
            let snapshot = self.engine.snapshot(&outcome.funnel);
            let appended = self
                .store
                .append_with_state(
                    NewEntry {
                        funnel: outcome.funnel.clone(),
                        kind,
                        recorded_at: now,
                        config_hash: self.gates.config_hash.to_string(),
                        payload: payload(&self.engine, &outcome.decision, extra),
                    },
                    snapshot.as_ref(),
                )
                .await;
            let entry = match appended {
                Ok(entry) => entry,
                Err(error) => {
                    if matches!(error, StoreError::Fenced { .. }) {
                        // Deposed: another replica leads. Stop writing at once.
                        self.leading = false;
                        self.dirty.clear();
                        self.gates.cluster.fenced();
                    }
                    return Err(error);
                }
            };
            sequence = entry.seq;
            self.dirty.remove(&outcome.funnel);
        }
        let published = Arc::new(Published::new(
            outcome.decision.clone(),
            self.gates.config_hash.clone(),
            sequence,
        ));
        slot.published.store(published.clone());
        if record {
            let d = &published.decision;
            tracing::info!(
                funnel = %d.funnel,
                state = %d.state,
                percent = d.allowed_rollout_percent,
                blocking_stage = %d.blocking_stage.as_deref().unwrap_or("-"),
                kind = %kind,
                sequence,
                "gate decision changed"
            );
            self.metrics.observe_decision(d);
            self.metrics.decision_changed(&d.funnel);
            // No receivers is fine; a full channel drops the slowest watchers, never blocks us.
            let _ = slot.changes.send(published.clone());
        }
        Ok(published)
    }

    async fn persist_dirty(&mut self) {
        if !self.leading {
            self.dirty.clear();
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        for funnel in dirty {
            if let Some(snapshot) = self.engine.snapshot(&funnel)
                && let Err(error) = self.store.save_state(&snapshot).await
            {
                tracing::error!(funnel = %funnel, %error, "cannot persist funnel state: will retry");
                self.dirty.insert(funnel);
            }
        }
    }
}
