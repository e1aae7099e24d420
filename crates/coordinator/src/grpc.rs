//! The gRPC `GateService`: reads come from the lock-free published snapshot; operator actions go
//! through the engine task and are answered once recorded; history comes from the store within
//! the request's deadline.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use funnelgate_core::{GateDecision, GateState, Override, Phase};
use funnelgate_proto::convert::{
    decision_to_pb, gate_state_from_pb, phase_from_pb, timestamp_to_pb,
};
use funnelgate_proto::encoded::EncodedDecision;
use funnelgate_proto::pb;
use funnelgate_proto::pb_server;
use funnelgate_proto::pb_server::gate_service_server::GateService;
use futures::Stream;
use tokio::sync::{broadcast, watch};
use tonic::{Request, Response, Status};

use crate::auth::Authorizer;
use crate::error::ServiceError;
use crate::explain::explain;
use crate::metrics::Metrics;
use crate::state::{EngineHandle, FunnelSlot, Gates, Published, now};
use crate::store::{LedgerEntry, Store};

/// Default and maximum `ListDecisions` page sizes.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// See [`DEFAULT_PAGE_SIZE`].
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Longest accepted override ttl (7 days).
pub const MAX_OVERRIDE_TTL_SECONDS: u64 = 7 * 24 * 3600;
/// Longest accepted reason text.
pub const MAX_REASON_LEN: usize = 1024;

/// Everything the Gate API needs; shared by the gRPC and HTTP front ends.
pub struct ApiState {
    /// Published decisions.
    pub gates: Arc<Gates>,
    /// The engine task.
    pub engine: EngineHandle,
    /// History.
    pub store: Arc<dyn Store>,
    /// Who may change gates.
    pub auth: Arc<Authorizer>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Bound on open `WatchGate` streams.
    pub max_watchers: usize,
    /// Open `WatchGate` streams.
    pub watchers: AtomicUsize,
    /// Becomes true when the coordinator shuts down (ends watch streams).
    pub shutdown: watch::Receiver<bool>,
    /// Notification sinks' health (the dashboard shows it).
    pub notify: Arc<crate::notify::NotifyStatus>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("max_watchers", &self.max_watchers)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// The slot of a funnel named in a request: INVALID_ARGUMENT for an empty or malformed name,
    /// NOT_FOUND for a funnel this coordinator does not serve.
    pub fn slot(&self, funnel: &str) -> Result<&Arc<FunnelSlot>, ServiceError> {
        if funnel.is_empty() {
            return Err(ServiceError::InvalidArgument("`funnel` is required".into()));
        }
        if !funnelgate_core::policy::is_valid_funnel_name(funnel) {
            return Err(ServiceError::InvalidArgument(format!(
                "`{}` is not a valid funnel name (want [a-z0-9][a-z0-9-]{{0,62}})",
                funnel.chars().take(80).collect::<String>()
            )));
        }
        self.gates
            .get(funnel)
            .ok_or_else(|| ServiceError::UnknownFunnel(funnel.to_string()))
    }
}

/// The tonic service.
#[derive(Clone, Debug)]
pub struct GateApi {
    state: Arc<ApiState>,
}

impl GateApi {
    /// Wrap the shared state.
    pub fn new(state: Arc<ApiState>) -> Self {
        GateApi { state }
    }

    /// As a tonic server (with size limits on requests). Its responses carry decisions encoded
    /// once per change ([`EncodedDecision`]), byte-identical on the wire to the public types.
    pub fn into_server(self) -> pb_server::gate_service_server::GateServiceServer<Self> {
        pb_server::gate_service_server::GateServiceServer::new(self)
            .max_decoding_message_size(64 * 1024)
    }
}

fn view_is_full(view: i32) -> Result<bool, ServiceError> {
    match pb::GateView::try_from(view) {
        Ok(pb::GateView::Unspecified | pb::GateView::Compact) => Ok(false),
        Ok(pb::GateView::Full) => Ok(true),
        Err(_) => Err(ServiceError::InvalidArgument(format!(
            "`view` {view} is not a gate view (COMPACT, FULL)"
        ))),
    }
}

/// The request deadline from the `grpc-timeout` header (`<digits><H|M|S|m|u|n>`).
pub fn request_deadline<T>(request: &Request<T>) -> Option<Duration> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Run a store operation within the request's deadline.
async fn within<T>(
    deadline: Option<Duration>,
    what: &str,
    fut: impl Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    match deadline {
        None => fut.await,
        Some(d) => tokio::time::timeout(d, fut).await.map_err(|_| {
            ServiceError::DeadlineExceeded(format!(
                "{what} did not finish within the request deadline of {d:?}"
            ))
        })?,
    }
}

fn authorization<T>(request: &Request<T>) -> Option<&str> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}

pub(crate) fn reason(text: &str, required: bool) -> Result<String, ServiceError> {
    let text = text.trim();
    if required && text.is_empty() {
        return Err(ServiceError::InvalidArgument(
            "`reason` is required: say why, it is recorded in the audit log".into(),
        ));
    }
    if text.chars().count() > MAX_REASON_LEN {
        return Err(ServiceError::InvalidArgument(format!(
            "`reason` is longer than {MAX_REASON_LEN} characters"
        )));
    }
    Ok(text.to_string())
}

/// Page tokens: hex of `v1:<seq>`, the sequence to continue below.
pub fn encode_page_token(seq: u64) -> String {
    hex::encode(format!("v1:{seq}"))
}

/// Parse a page token made by [`encode_page_token`].
pub fn decode_page_token(token: &str) -> Result<u64, ServiceError> {
    let bad = || {
        ServiceError::InvalidArgument(
            "invalid `page_token`: pass the `next_page_token` of a previous response unchanged"
                .into(),
        )
    };
    let bytes = hex::decode(token).map_err(|_| bad())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let seq: u64 = text
        .strip_prefix("v1:")
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    if seq == 0 { Err(bad()) } else { Ok(seq) }
}

/// A stored ledger entry as a wire record (compact decision).
fn record_to_pb(entry: &LedgerEntry) -> Result<pb_server::DecisionRecord, ServiceError> {
    let decision = stored_decision(entry)?;
    Ok(pb_server::DecisionRecord {
        sequence: entry.seq,
        decision: Some(EncodedDecision::new(&decision_to_pb(
            &decision,
            false,
            &entry.config_hash,
            entry.seq,
        ))),
        recorded_at: Some(timestamp_to_pb(entry.recorded_at)),
        hash: entry.hash.clone(),
        prev_hash: entry.prev_hash.clone(),
        kind: entry.kind.as_str().to_string(),
    })
}

fn stored_decision(entry: &LedgerEntry) -> Result<GateDecision, ServiceError> {
    let value = entry.payload.get("decision").cloned().ok_or_else(|| {
        ServiceError::Internal(format!(
            "ledger entry {} of `{}` has no decision",
            entry.seq, entry.funnel
        ))
    })?;
    serde_json::from_value(value).map_err(|e| {
        ServiceError::Internal(format!(
            "ledger entry {} of `{}` has an unreadable decision: {e}",
            entry.seq, entry.funnel
        ))
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb_server::WatchGateResponse, Status>> + Send>>;

/// Decrements the watcher count when a stream ends, however it ends.
struct WatchGuard {
    state: Arc<ApiState>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.state.watchers.fetch_sub(1, Ordering::AcqRel);
        self.state.metrics.watchers_add(-1);
    }
}

struct WatchLoop {
    first: Option<Arc<Published>>,
    rx: broadcast::Receiver<Arc<Published>>,
    last_sequence: u64,
    full: bool,
    funnel: String,
    shutdown: watch::Receiver<bool>,
    done: bool,
    _guard: Option<WatchGuard>,
}

/// The encoded decision, shared by every stream: sending it copies bytes, never re-encodes.
fn watch_response(p: &Published, full: bool) -> pb_server::WatchGateResponse {
    pb_server::WatchGateResponse {
        decision: Some(p.encoded(full)),
    }
}

impl WatchLoop {
    async fn next(mut self) -> Option<(Result<pb_server::WatchGateResponse, Status>, Self)> {
        if self.done {
            return None;
        }
        if let Some(first) = self.first.take() {
            let item = watch_response(&first, self.full);
            return Some((Ok(item), self));
        }
        enum Event {
            Shutdown,
            Change(Arc<Published>),
            Lagged(u64),
            Closed,
        }
        loop {
            let event = tokio::select! {
                _ = self.shutdown.wait_for(|s| *s) => Event::Shutdown,
                received = self.rx.recv() => match received {
                    Ok(p) => Event::Change(p),
                    Err(broadcast::error::RecvError::Lagged(missed)) => Event::Lagged(missed),
                    Err(broadcast::error::RecvError::Closed) => Event::Closed,
                },
            };
            match event {
                Event::Shutdown => {
                    self.done = true;
                    let status = Status::unavailable(
                        "the coordinator is shutting down: reconnect to keep watching",
                    );
                    return Some((Err(status), self));
                }
                Event::Change(p) => {
                    if p.sequence <= self.last_sequence {
                        continue;
                    }
                    self.last_sequence = p.sequence;
                    let item = watch_response(&p, self.full);
                    return Some((Ok(item), self));
                }
                Event::Lagged(missed) => {
                    self.done = true;
                    let status = Status::resource_exhausted(format!(
                        "watcher too slow: it missed {missed} decision changes of funnel `{}`; reconnect to get the current decision",
                        self.funnel
                    ));
                    return Some((Err(status), self));
                }
                Event::Closed => return None,
            }
        }
    }
}

#[tonic::async_trait]
impl GateService for GateApi {
    async fn get_gate(
        &self,
        request: Request<pb::GetGateRequest>,
    ) -> Result<Response<pb_server::GetGateResponse>, Status> {
        let req = request.get_ref();
        let slot = self.state.slot(&req.funnel)?;
        let full = view_is_full(req.view)?;
        Ok(Response::new(pb_server::GetGateResponse {
            decision: Some(slot.current().encoded(full)),
        }))
    }

    type WatchGateStream = WatchStream;

    async fn watch_gate(
        &self,
        request: Request<pb::WatchGateRequest>,
    ) -> Result<Response<Self::WatchGateStream>, Status> {
        let req = request.get_ref();
        let slot = self.state.slot(&req.funnel)?;
        let full = view_is_full(req.view)?;
        let open = self.state.watchers.fetch_add(1, Ordering::AcqRel) + 1;
        self.state.metrics.watchers_add(1);
        let guard = WatchGuard {
            state: self.state.clone(),
        };
        if open > self.state.max_watchers {
            drop(guard);
            return Err(ServiceError::ResourceExhausted(format!(
                "too many watchers: {} streams are open (coordinator.max_watchers); retry later or poll GetGate",
                self.state.max_watchers
            ))
            .into());
        }
        // Subscribe before reading the current decision so no change falls in between.
        let rx = slot.subscribe();
        let first = slot.current();
        let state = WatchLoop {
            last_sequence: first.sequence,
            first: Some(first),
            rx,
            full,
            funnel: req.funnel.clone(),
            shutdown: self.state.shutdown.clone(),
            done: false,
            _guard: Some(guard),
        };
        let stream = futures::stream::unfold(state, WatchLoop::next);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_decisions(
        &self,
        request: Request<pb::ListDecisionsRequest>,
    ) -> Result<Response<pb_server::ListDecisionsResponse>, Status> {
        let deadline = request_deadline(&request);
        let req = request.into_inner();
        self.state.slot(&req.funnel)?;
        let page_size = match req.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let before = if req.page_token.is_empty() {
            None
        } else {
            Some(decode_page_token(&req.page_token)?)
        };
        let store = self.state.store.clone();
        let funnel = req.funnel.clone();
        let response = within(deadline, "listing decisions", async move {
            let mut entries = store.list(&funnel, before, page_size + 1).await?;
            let more = entries.len() > page_size as usize;
            entries.truncate(page_size as usize);
            let next_page_token = match entries.last() {
                Some(last) if more => encode_page_token(last.seq),
                _ => String::new(),
            };
            let decisions = entries
                .iter()
                .map(record_to_pb)
                .collect::<Result<Vec<_>, _>>()?;
            let mut response = pb_server::ListDecisionsResponse {
                decisions,
                next_page_token,
                ..Default::default()
            };
            if req.verify {
                let report = store.verify(&funnel).await?;
                response.chain_valid = Some(report.valid);
                response.chain_error = report.first_error.unwrap_or_default();
                response.chain_length = report.length;
            }
            Ok(response)
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb_server::ExplainResponse>, Status> {
        let deadline = request_deadline(&request);
        let req = request.into_inner();
        let slot = self.state.slot(&req.funnel)?;
        let policy = slot.policy.clone();
        let policy_json = serde_json::to_string_pretty(&*policy)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let (decision, encoded, config_hash) = if req.sequence == 0 {
            let current = slot.current();
            (
                current.decision.clone(),
                current.full(),
                current.config_hash.to_string(),
            )
        } else {
            let store = self.state.store.clone();
            let funnel = req.funnel.clone();
            let entry = within(deadline, "reading the stored decision", async move {
                store
                    .get(&funnel, req.sequence)
                    .await
                    .map_err(ServiceError::from)
            })
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "funnel `{}` has no stored decision {}: list them with ListDecisions",
                    req.funnel, req.sequence
                ))
            })?;
            let decision = Arc::new(stored_decision(&entry)?);
            let encoded = EncodedDecision::new(&decision_to_pb(
                &decision,
                true,
                &entry.config_hash,
                entry.seq,
            ));
            (decision, encoded, entry.config_hash)
        };
        let mut explanation = explain(&decision, Some(&policy));
        if config_hash != self.state.gates.config_hash() {
            explanation.push(format!(
                "note: this decision was made under configuration {}, the current one is {}: policy_json shows the current policy",
                config_hash,
                self.state.gates.config_hash()
            ));
        }
        Ok(Response::new(pb_server::ExplainResponse {
            decision: Some(encoded),
            policy_json,
            explanation,
        }))
    }

    async fn list_funnels(
        &self,
        _request: Request<pb::ListFunnelsRequest>,
    ) -> Result<Response<pb::ListFunnelsResponse>, Status> {
        let funnels = self
            .state
            .gates
            .iter()
            .map(|(name, slot)| {
                let p = slot.current();
                let d = &p.decision;
                pb::FunnelSummary {
                    funnel: name.clone(),
                    state: pb::GateState::from(d.state) as i32,
                    allowed_rollout_percent: d.allowed_rollout_percent,
                    blocking_stage: d.blocking_stage.clone().unwrap_or_default(),
                    phase: pb::Phase::from(d.phase) as i32,
                    since: Some(timestamp_to_pb(d.since)),
                }
            })
            .collect();
        Ok(Response::new(pb::ListFunnelsResponse { funnels }))
    }

    async fn set_override(
        &self,
        request: Request<pb::SetOverrideRequest>,
    ) -> Result<Response<pb_server::SetOverrideResponse>, Status> {
        let caller = self
            .state
            .auth
            .authorize_change(authorization(&request), "setting an override")?;
        let req = request.into_inner();
        self.state.slot(&req.funnel)?;
        let state = gate_state_from_pb(req.state, "state")
            .map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        if state == GateState::Hold {
            return Err(ServiceError::InvalidArgument(
                "an override forces OPEN or CLOSED, not HOLD".into(),
            )
            .into());
        }
        let reason = reason(&req.reason, true)?;
        if !(1..=MAX_OVERRIDE_TTL_SECONDS).contains(&req.ttl_seconds) {
            return Err(ServiceError::InvalidArgument(format!(
                "`ttl_seconds` must be within 1..={MAX_OVERRIDE_TTL_SECONDS} (7 days), got {}",
                req.ttl_seconds
            ))
            .into());
        }
        let created_at = now();
        let ov = Override {
            state,
            actor: caller.name.clone(),
            reason,
            until: created_at.add(Duration::from_secs(req.ttl_seconds)),
            created_at,
            // The engine checks it (1..=100, OPEN only) and fills in the first ramp step.
            percent: req.percent,
        };
        let published = self
            .state
            .engine
            .set_override(req.funnel.clone(), ov)
            .await?;
        tracing::info!(funnel = %req.funnel, actor = %caller.name, state = %state, percent = ?req.percent, ttl_seconds = req.ttl_seconds, "override set");
        Ok(Response::new(pb_server::SetOverrideResponse {
            decision: Some(published.compact.clone()),
        }))
    }

    async fn clear_override(
        &self,
        request: Request<pb::ClearOverrideRequest>,
    ) -> Result<Response<pb_server::ClearOverrideResponse>, Status> {
        let caller = self
            .state
            .auth
            .authorize_change(authorization(&request), "clearing an override")?;
        let req = request.into_inner();
        self.state.slot(&req.funnel)?;
        let mut reason = reason(&req.reason, false)?;
        if reason.is_empty() {
            reason = format!("cleared by {}", caller.name);
        }
        let published = self
            .state
            .engine
            .clear_override(req.funnel.clone(), caller.name.clone(), reason)
            .await?;
        tracing::info!(funnel = %req.funnel, actor = %caller.name, "override cleared");
        Ok(Response::new(pb_server::ClearOverrideResponse {
            decision: Some(published.compact.clone()),
        }))
    }

    async fn set_phase(
        &self,
        request: Request<pb::SetPhaseRequest>,
    ) -> Result<Response<pb_server::SetPhaseResponse>, Status> {
        let caller = self
            .state
            .auth
            .authorize_change(authorization(&request), "setting the phase")?;
        let req = request.into_inner();
        self.state.slot(&req.funnel)?;
        let phase: Phase = phase_from_pb(req.phase, "phase")
            .map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        let reason = reason(&req.reason, true)?;
        let published = self
            .state
            .engine
            .set_phase(req.funnel.clone(), phase, caller.name.clone(), reason)
            .await?;
        tracing::info!(funnel = %req.funnel, actor = %caller.name, phase = %phase.as_str(), "phase set");
        Ok(Response::new(pb_server::SetPhaseResponse {
            decision: Some(published.compact.clone()),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_page_token(&encode_page_token(42)).unwrap(), 42);
        for bad in [
            "",
            "zz",
            "7631",
            &hex::encode("v2:3"),
            &hex::encode("v1:x"),
            &hex::encode("v1:0"),
        ] {
            assert!(
                matches!(
                    decode_page_token(bad),
                    Err(ServiceError::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn grpc_timeout_header_is_parsed() {
        let mut r = Request::new(());
        r.metadata_mut()
            .insert("grpc-timeout", "250m".parse().unwrap());
        assert_eq!(request_deadline(&r), Some(Duration::from_millis(250)));
        r.metadata_mut()
            .insert("grpc-timeout", "3S".parse().unwrap());
        assert_eq!(request_deadline(&r), Some(Duration::from_secs(3)));
        r.metadata_mut()
            .insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(request_deadline(&r), None);
    }

    fn published(seq: u64) -> Arc<Published> {
        let d = GateDecision {
            funnel: "acme".into(),
            state: GateState::Hold,
            underlying_state: GateState::Hold,
            allowed_rollout_percent: 5,
            blocking_stage: None,
            phase: Phase::Build,
            reasons: Vec::new(),
            remediation: Vec::new(),
            stages: Vec::new(),
            since: funnelgate_core::Timestamp::from_millis(0),
            evaluated_at: funnelgate_core::Timestamp::from_millis(0),
            override_: None,
            advice: None,
        };
        Arc::new(Published::new(Arc::new(d), Arc::from("h"), seq))
    }

    fn watch_loop(
        rx: broadcast::Receiver<Arc<Published>>,
        shutdown: watch::Receiver<bool>,
    ) -> WatchLoop {
        WatchLoop {
            first: Some(published(1)),
            rx,
            last_sequence: 1,
            full: false,
            funnel: "acme".into(),
            shutdown,
            done: false,
            _guard: None,
        }
    }

    #[tokio::test]
    async fn a_watcher_gets_the_current_decision_then_changes_once_each() {
        let (tx, rx) = broadcast::channel(4);
        let (_stop, stop_rx) = watch::channel(false);
        let w = watch_loop(rx, stop_rx);
        tx.send(published(1)).unwrap(); // already sent as the current decision
        tx.send(published(2)).unwrap();
        let (first, w) = w.next().await.unwrap();
        assert_eq!(
            first.unwrap().decision.unwrap().decode().unwrap().sequence,
            1
        );
        let (second, _) = w.next().await.unwrap();
        assert_eq!(
            second.unwrap().decision.unwrap().decode().unwrap().sequence,
            2
        );
    }

    #[tokio::test]
    async fn a_lagging_watcher_is_dropped_with_resource_exhausted() {
        let (tx, rx) = broadcast::channel(2);
        let (_stop, stop_rx) = watch::channel(false);
        let w = watch_loop(rx, stop_rx);
        for seq in 2..=6 {
            tx.send(published(seq)).unwrap();
        }
        let (first, w) = w.next().await.unwrap();
        assert!(first.is_ok());
        let (lagged, w) = w.next().await.unwrap();
        let status = lagged.unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().starts_with("watcher too slow"),
            "{}",
            status.message()
        );
        assert!(w.next().await.is_none(), "the stream ends");
    }

    #[tokio::test]
    async fn shutdown_ends_a_watch_with_unavailable() {
        let (_tx, rx) = broadcast::channel(2);
        let (stop, stop_rx) = watch::channel(false);
        let w = watch_loop(rx, stop_rx);
        let (_, w) = w.next().await.unwrap();
        stop.send(true).unwrap();
        let (end, w) = w.next().await.unwrap();
        assert_eq!(end.unwrap_err().code(), tonic::Code::Unavailable);
        assert!(w.next().await.is_none());
    }

    #[test]
    fn views() {
        assert!(!view_is_full(0).unwrap());
        assert!(view_is_full(2).unwrap());
        assert!(view_is_full(9).is_err());
    }
}
