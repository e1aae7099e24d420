//! Server-sent events from the same per-funnel change feed as `WatchGate`: the page opens one
//! `EventSource` and re-renders on every `decision` event, with no reload.
//!
//! `GET /v1/funnels/{funnel}/events`: first the current decision (full JSON, as
//! `GET …/gate?view=full`), then every recorded change, each as `event: decision` with
//! `id: <ledger sequence>`. `GET /v1/events`: the same for every funnel, compact. A client that
//! falls more than the feed's capacity behind gets the current decision again (it never misses
//! the latest state). Open streams count against `coordinator.max_watchers` together with
//! `WatchGate` streams; the stream ends when the coordinator shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use futures::StreamExt;
use tokio::sync::{broadcast, watch};

use crate::error::ServiceError;
use crate::grpc::ApiState;
use crate::state::{FunnelSlot, Published};

/// Counts an open stream against `max_watchers` until dropped.
struct StreamGuard {
    state: Arc<ApiState>,
}

impl StreamGuard {
    fn open(state: &Arc<ApiState>) -> Result<Self, ServiceError> {
        let open = state.watchers.fetch_add(1, Ordering::AcqRel) + 1;
        state.metrics.watchers_add(1);
        let guard = StreamGuard {
            state: state.clone(),
        };
        if open > state.max_watchers {
            return Err(ServiceError::ResourceExhausted(format!(
                "too many watchers: {} streams are open (coordinator.max_watchers); retry later or poll GET /v1/funnels/{{funnel}}/gate",
                state.max_watchers
            )));
        }
        Ok(guard)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.state.watchers.fetch_sub(1, Ordering::AcqRel);
        self.state.metrics.watchers_add(-1);
    }
}

fn decision_event(p: &Published, full: bool) -> Event {
    let data = String::from_utf8_lossy(&p.json(full)).into_owned();
    Event::default()
        .event("decision")
        .id(p.sequence.to_string())
        .data(data)
}

struct Feed {
    slot: Arc<FunnelSlot>,
    rx: broadcast::Receiver<Arc<Published>>,
    pending: Option<Arc<Published>>,
    last_sequence: u64,
    full: bool,
    shutdown: watch::Receiver<bool>,
    done: bool,
}

impl Feed {
    fn new(slot: Arc<FunnelSlot>, full: bool, shutdown: watch::Receiver<bool>) -> Self {
        // Subscribe before reading the current decision so no change falls in between.
        let rx = slot.subscribe();
        let first = slot.current();
        Feed {
            slot,
            rx,
            last_sequence: first.sequence,
            pending: Some(first),
            full,
            shutdown,
            done: false,
        }
    }

    async fn next(mut self) -> Option<(Event, Self)> {
        if self.done {
            return None;
        }
        if let Some(p) = self.pending.take() {
            let event = decision_event(&p, self.full);
            return Some((event, self));
        }
        enum Got {
            Shutdown,
            Change(Arc<Published>),
            Lagged,
            Closed,
        }
        loop {
            let got = tokio::select! {
                _ = self.shutdown.wait_for(|s| *s) => Got::Shutdown,
                received = self.rx.recv() => match received {
                    Ok(p) => Got::Change(p),
                    Err(broadcast::error::RecvError::Lagged(_)) => Got::Lagged,
                    Err(broadcast::error::RecvError::Closed) => Got::Closed,
                },
            };
            match got {
                Got::Shutdown => {
                    self.done = true;
                    let event = Event::default()
                        .event("shutdown")
                        .data("the coordinator is shutting down: reconnect");
                    return Some((event, self));
                }
                Got::Change(p) => {
                    if p.sequence != 0 && p.sequence <= self.last_sequence {
                        continue;
                    }
                    self.last_sequence = p.sequence;
                    let event = decision_event(&p, self.full);
                    return Some((event, self));
                }
                Got::Lagged => {
                    // Behind: send the current decision, which supersedes what was missed.
                    let p = self.slot.current();
                    self.last_sequence = p.sequence;
                    let event = decision_event(&p, self.full);
                    return Some((event, self));
                }
                Got::Closed => return None,
            }
        }
    }
}

type EventStream = Sse<
    axum::response::sse::KeepAliveStream<
        std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>,
    >,
>;

fn sse(
    guard: StreamGuard,
    streams: Vec<futures::stream::BoxStream<'static, Event>>,
) -> EventStream {
    let merged = futures::stream::select_all(streams).map(move |e| {
        let _keep = &guard;
        Ok::<_, Infallible>(e)
    });
    Sse::new(Box::pin(merged) as std::pin::Pin<Box<dyn Stream<Item = _> + Send>>)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// One funnel's decisions, full.
pub async fn funnel_events(
    State(state): State<Arc<ApiState>>,
    Path(funnel): Path<String>,
) -> Result<EventStream, ServiceError> {
    let slot = state.slot(&funnel)?.clone();
    let guard = StreamGuard::open(&state)?;
    let feed = Feed::new(slot, true, state.shutdown.clone());
    Ok(sse(
        guard,
        vec![futures::stream::unfold(feed, Feed::next).boxed()],
    ))
}

/// Every funnel's decisions, compact.
pub async fn all_events(State(state): State<Arc<ApiState>>) -> Result<EventStream, ServiceError> {
    let guard = StreamGuard::open(&state)?;
    let streams = state
        .gates
        .iter()
        .map(|(_, slot)| {
            let feed = Feed::new(slot.clone(), false, state.shutdown.clone());
            futures::stream::unfold(feed, Feed::next).boxed()
        })
        .collect();
    Ok(sse(guard, streams))
}
