//! The load itself: N connections × M requests in flight for a fixed time, latencies in an HDR
//! histogram; and the WatchGate fan-out measurement.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use funnelgate_proto::pb;
use funnelgate_proto::pb::gate_service_client::GateServiceClient;
use hdrhistogram::Histogram;
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

/// Latency histogram in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("creating a latency histogram")
}

/// What one unary phase measured.
#[derive(Debug)]
pub struct UnaryResult {
    /// Completed requests per second.
    pub rps: f64,
    /// Requests that completed (in the measured window).
    pub ok: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Latency histogram (µs).
    pub latency: Histogram<u64>,
    /// Measured time.
    pub measured: Duration,
}

impl UnaryResult {
    /// Nothing measured yet (to [`UnaryResult::merge`] slices into).
    pub fn empty() -> Result<UnaryResult> {
        Ok(UnaryResult {
            rps: 0.0,
            ok: 0,
            errors: 0,
            latency: histogram()?,
            measured: Duration::ZERO,
        })
    }

    /// Add a slice measured over `duration`.
    pub fn merge(&mut self, other: UnaryResult, duration: Duration) -> Result<()> {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latency
            .add(other.latency)
            .context("merging histograms")?;
        self.measured += duration;
        self.rps = self.ok as f64 / self.measured.as_secs_f64().max(f64::MIN_POSITIVE);
        Ok(())
    }
}

async fn channel(url: &str) -> Result<Channel> {
    Endpoint::from_shared(url.to_string())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// `connections` channels, each with `in_flight` loops calling GetGate for `funnel`; `warmup`
/// first (not recorded), then `duration` recorded.
pub async fn unary(
    url: &str,
    funnel: &str,
    view: pb::GateView,
    connections: usize,
    in_flight: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<UnaryResult> {
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(channel(url).await?);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let record_from = start + warmup;
    let stop_at = record_from + duration;
    let failed = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for ch in &channels {
        for _ in 0..in_flight {
            let mut client = GateServiceClient::new(ch.clone()).max_decoding_message_size(64 << 20);
            let req = pb::GetGateRequest {
                funnel: funnel.to_string(),
                view: view as i32,
            };
            let failed = failed.clone();
            tasks.push(tokio::spawn(async move {
                let mut h = histogram()?;
                let (mut ok, mut errors) = (0u64, 0u64);
                let mut first_error: Option<String> = None;
                tokio::time::sleep_until(start).await;
                loop {
                    let t0 = Instant::now();
                    if t0 >= stop_at || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = client.get_gate(req.clone()).await;
                    let t1 = Instant::now();
                    if t0 < record_from {
                        continue;
                    }
                    match r {
                        Ok(_) => {
                            ok += 1;
                            h.saturating_record(t1.duration_since(t0).as_micros() as u64);
                        }
                        Err(s) => {
                            errors += 1;
                            first_error
                                .get_or_insert_with(|| format!("{:?}: {}", s.code(), s.message()));
                            if errors > 1000 {
                                failed.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                }
                anyhow::Ok((h, ok, errors, first_error))
            }));
        }
    }
    let mut latency = histogram()?;
    let (mut ok, mut errors) = (0, 0);
    let mut first_error = None;
    for t in tasks {
        let (h, o, e, fe) = t.await.context("load task panicked")??;
        latency.add(h).context("merging histograms")?;
        ok += o;
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    if failed.load(Ordering::Relaxed) {
        bail!(
            "more than 1000 failed requests against {url}: first: {}",
            first_error.unwrap_or_default()
        );
    }
    Ok(UnaryResult {
        rps: ok as f64 / duration.as_secs_f64(),
        ok,
        errors,
        latency,
        measured: duration,
    })
}

/// What the WatchGate fan-out measured.
#[derive(Debug)]
pub struct FanoutResult {
    /// Subscribers that were connected.
    pub subscribers: usize,
    /// Changes triggered.
    pub rounds: usize,
    /// Time from triggering a change until a subscriber had it (µs), every subscriber × round.
    pub latency: Histogram<u64>,
    /// Deliveries that did not arrive within the round timeout.
    pub missed: u64,
    /// How long it took to open every stream and receive the first decision.
    pub connect_time: Duration,
    /// How long the triggering SetOverride/ClearOverride call took (µs): the change is stored
    /// in the ledger before it is published, so this bounds the fastest delivery from below.
    pub trigger: Histogram<u64>,
}

/// Open `subscribers` WatchGate streams over `connections` channels; then `rounds` times toggle an
/// override (CLOSED, then clear) and measure, per subscriber, the time until it received a
/// decision whose override state differs from the previous one.
pub async fn fanout(
    url: &str,
    funnel: &str,
    subscribers: usize,
    connections: usize,
    rounds: usize,
    round_timeout: Duration,
) -> Result<FanoutResult> {
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        channels.push(channel(url).await?);
    }
    // Every subscriber reports (subscriber, has_override, when) for each decision it receives.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, bool, Instant)>();
    let connect_start = Instant::now();
    let mut tasks = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let ch = channels[i % channels.len()].clone();
        let tx = tx.clone();
        let funnel = funnel.to_string();
        tasks.push(tokio::spawn(async move {
            let mut client = GateServiceClient::new(ch).max_decoding_message_size(64 << 20);
            let req = pb::WatchGateRequest {
                funnel,
                view: pb::GateView::Compact as i32,
            };
            let mut stream = client.watch_gate(req).await?.into_inner();
            while let Some(msg) = stream.next().await {
                let d = msg?.decision.unwrap_or_default();
                if tx
                    .send((i, d.r#override.is_some(), Instant::now()))
                    .is_err()
                {
                    break;
                }
            }
            anyhow::Ok(())
        }));
    }
    drop(tx);
    // Wait until every subscriber has its first decision.
    let mut state = vec![None::<bool>; subscribers];
    let mut seen = 0;
    let connect_deadline = Instant::now() + Duration::from_secs(120);
    while seen < subscribers {
        let (i, ov, _) = tokio::time::timeout_at(connect_deadline, rx.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "only {seen} of {subscribers} watchers got their first decision within 120s"
                )
            })?
            .ok_or_else(|| {
                anyhow::anyhow!("every watcher stream ended before the first decision")
            })?;
        if state[i].is_none() {
            seen += 1;
        }
        state[i] = Some(ov);
    }
    let connect_time = connect_start.elapsed();

    let mut control = GateServiceClient::new(channel(url).await?);
    let mut latency = histogram()?;
    let mut missed = 0u64;
    let mut trigger = histogram()?;
    let mut current = state[0].unwrap_or(false);
    for round in 0..rounds {
        let want = !current;
        let t0 = Instant::now();
        if want {
            control
                .set_override(pb::SetOverrideRequest {
                    funnel: funnel.to_string(),
                    state: pb::GateState::Closed as i32,
                    reason: format!("loadgen fan-out round {round}"),
                    ttl_seconds: 600,
                    percent: None,
                })
                .await
                .context("setting the override that triggers a change")?;
        } else {
            control
                .clear_override(pb::ClearOverrideRequest {
                    funnel: funnel.to_string(),
                    reason: format!("loadgen fan-out round {round}"),
                })
                .await
                .context("clearing the override that triggers a change")?;
        }
        trigger.saturating_record(t0.elapsed().as_micros() as u64);
        let mut got = vec![false; subscribers];
        let mut n = 0;
        let deadline = t0 + round_timeout;
        while n < subscribers {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((i, ov, at))) => {
                    if ov == want && !got[i] {
                        got[i] = true;
                        n += 1;
                        latency.saturating_record(at.duration_since(t0).as_micros() as u64);
                    }
                }
                Ok(None) => bail!("every watcher stream ended during round {round}"),
                Err(_) => break,
            }
        }
        missed += (subscribers - n) as u64;
        current = want;
    }
    // Leave the funnel without an override.
    if current {
        let _ = control
            .clear_override(pb::ClearOverrideRequest {
                funnel: funnel.to_string(),
                reason: "loadgen done".into(),
            })
            .await;
    }
    for t in &tasks {
        t.abort();
    }
    Ok(FanoutResult {
        subscribers,
        rounds,
        latency,
        missed,
        connect_time,
        trigger,
    })
}
