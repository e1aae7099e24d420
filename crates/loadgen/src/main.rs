//! `funnelgate-loadgen`: in one run on loopback, measure (a) `GetGate` against a real coordinator
//! serving a 4-stage × 25-probe funnel, beside (b) a bare tonic unary server answering the same
//! message under the same load — their ratio is the figure, because absolute numbers swing with
//! whatever else runs on the machine — and (c) `WatchGate` fan-out: the time until each of
//! 10,000 subscribers has a decision change.
//!
//! Servers run on their own runtime (`--server-threads` workers), the client on another
//! (`--client-threads`), so both phases get the same resources.

mod fake;
mod load;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use funnelgate_coordinator::config::{CheckerConfig, Config};
use funnelgate_core::{FunnelPolicy, HumanDuration, ProbeSpec, StagePolicy};
use funnelgate_proto::pb;
use hdrhistogram::Histogram;
use tokio::net::TcpListener;

/// Load generator: GetGate vs a bare tonic baseline, and WatchGate fan-out.
#[derive(Parser, Debug)]
#[command(name = "funnelgate-loadgen", version)]
struct Args {
    /// Measured time of each unary phase.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up before each unary phase.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Client connections for the unary phases.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// GetGate view: compact (the default answer) or full (every probe result).
    #[arg(long, value_enum, default_value_t = View::Compact)]
    view: View,
    /// Stages of the measured funnel.
    #[arg(long, default_value_t = 4)]
    stages: usize,
    /// Probes per stage.
    #[arg(long, default_value_t = 25)]
    probes: usize,
    /// WatchGate subscribers (0 skips the fan-out phase).
    #[arg(long, default_value_t = 10_000)]
    watchers: usize,
    /// Connections the subscribers share (HTTP/2 streams per connection are capped at 1024).
    #[arg(long, default_value_t = 100)]
    watch_connections: usize,
    /// Slices each unary phase is cut into, alternating baseline and coordinator.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Decision changes triggered in the fan-out phase.
    #[arg(long, default_value_t = 10)]
    watch_rounds: usize,
    /// Worker threads of the server runtime (coordinator, baseline, fake checkers).
    #[arg(long, default_value_t = 1)]
    server_threads: usize,
    /// Worker threads of the client runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum View {
    Compact,
    Full,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    funnelgate_core::time::parse_duration(s).map_err(|e| e.to_string())
}

const FUNNEL: &str = "loadgen";

fn main() -> Result<()> {
    let args = Args::parse();
    funnelgate_server::init_tracing(Some("warn"), funnelgate_server::LogFormat::Text);
    raise_fd_limit(args.watchers);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads.max(1))
        .thread_name("server")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .thread_name("client")
        .enable_all()
        .build()?;
    let report = client_rt.block_on(run(&args, server_rt.handle()))?;
    println!("{}", report.text);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    server_rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

/// Raise the open-files limit to what 2 × `watchers` sockets need, up to the hard limit.
fn raise_fd_limit(watchers: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if (n as usize) < watchers / 50 + 256 => eprintln!(
            "warning: the open-files limit is {n}: raise it (ulimit -n 65536) if connections fail"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: cannot raise the open-files limit: {e}"),
    }
}

struct Report {
    text: String,
    json: serde_json::Value,
}

async fn bind() -> Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding 127.0.0.1:0")
}

/// A funnel of `stages` × `probes` cheap probes served by the fake checkers.
fn config(args: &Args, checker_addrs: &[(String, String)]) -> Config {
    let mut checkers = BTreeMap::new();
    let mut stages = Vec::new();
    for (stage, addr) in checker_addrs {
        checkers.insert(stage.clone(), CheckerConfig::new(format!("http://{addr}")));
        let mut s = StagePolicy::new(stage.clone());
        s.interval = HumanDuration::from_secs(3600);
        s.stale_after = HumanDuration::from_secs(7200);
        s.unknown_grace = HumanDuration::from_secs(7200);
        s.probes = (0..args.probes)
            .map(|i| {
                let mut p = ProbeSpec::new(format!("{stage}-probe-{i:02}"), fake::FAKE_KIND);
                p.thresholds.fail_below = Some(0.5);
                p
            })
            .collect();
        stages.push(s);
    }
    let mut funnel = FunnelPolicy {
        name: FUNNEL.into(),
        stages,
        gate: Default::default(),
    };
    funnel.gate.open_after = HumanDuration::from_secs(0);
    funnel.gate.open_after_evaluations = 1;
    let mut c = Config::new(checkers, vec![funnel]);
    c.coordinator.database = funnelgate_coordinator::config::IN_MEMORY_DATABASE.into();
    c.coordinator.grpc_listen = "127.0.0.1:0".into();
    c.coordinator.http_listen = "127.0.0.1:1".into();
    c.coordinator.max_watchers = args.watchers.max(1) + 100;
    c
}

async fn run(args: &Args, server: &tokio::runtime::Handle) -> Result<Report> {
    let view = match args.view {
        View::Compact => pb::GateView::Compact,
        View::Full => pb::GateView::Full,
    };
    // Fake checkers, one per stage.
    let names = ["crm", "automation", "esp", "analytics"];
    let mut checker_addrs = Vec::new();
    for i in 0..args.stages {
        let stage = names
            .get(i)
            .map(|s| s.to_string())
            .unwrap_or_else(|| format!("stage-{i}"));
        let listener = server.spawn(bind()).await??;
        checker_addrs.push((stage.clone(), listener.local_addr()?.to_string()));
        server.spawn(async move { fake::serve_checker(&stage, listener).await });
    }
    // The coordinator, in process on the server runtime.
    let cfg = config(args, &checker_addrs);
    let (grpc, http) = server
        .spawn(async { anyhow::Ok((bind().await?, bind().await?)) })
        .await??;
    let coord_url = format!("http://{}", grpc.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let coordinator = server.spawn(funnelgate_coordinator::run(
        cfg,
        funnelgate_coordinator::Listeners { grpc, http },
        HashMap::new(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let canned = wait_evaluated(&coord_url, view, args.stages).await?;
    let size = prost::Message::encoded_len(&canned);

    // The baseline, answering the very same message.
    let listener = server.spawn(bind()).await??;
    let base_url = format!("http://{}", listener.local_addr()?);
    server.spawn(fake::serve_baseline(canned, listener));

    // Alternate baseline and coordinator in short slices so that load from anything else on
    // the machine falls on both alike; each gets `duration` in total.
    let rounds = args.rounds.max(1);
    let slice = args.duration / rounds as u32;
    eprintln!(
        "measuring the bare tonic baseline and GetGate, alternating {rounds} × {slice:?} each (+ {:?} warm-up)…",
        args.warmup
    );
    let mut base = load::UnaryResult::empty()?;
    let mut coord = load::UnaryResult::empty()?;
    let mut round_ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let warmup = if round == 0 {
            args.warmup
        } else {
            Duration::from_millis(200)
        };
        let b = load::unary(
            &base_url,
            FUNNEL,
            view,
            args.connections,
            args.in_flight,
            warmup,
            slice,
        )
        .await?;
        let c = load::unary(
            &coord_url,
            FUNNEL,
            view,
            args.connections,
            args.in_flight,
            warmup,
            slice,
        )
        .await?;
        round_ratios.push(c.rps / b.rps.max(f64::MIN_POSITIVE));
        base.merge(b, slice)?;
        coord.merge(c, slice)?;
    }
    let fanout = if args.watchers > 0 {
        eprintln!(
            "measuring WatchGate fan-out to {} subscribers…",
            args.watchers
        );
        Some(
            load::fanout(
                &coord_url,
                FUNNEL,
                args.watchers,
                args.watch_connections,
                args.watch_rounds,
                Duration::from_secs(30),
            )
            .await?,
        )
    } else {
        None
    };
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(15), coordinator).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => bail!("the coordinator failed: {e}"),
        Ok(Err(e)) => bail!("the coordinator task failed: {e}"),
        Err(_) => eprintln!("warning: the coordinator did not stop within 15s"),
    }

    let ratio = coord.rps / base.rps.max(f64::MIN_POSITIVE);
    let mut text = String::new();
    text.push_str(&format!(
        "funnel: {} stages × {} probes, GetGate view {:?} ({size} bytes), {} connections × {} in flight, {:?} per phase, server threads {}, client threads {}\n",
        args.stages, args.probes, args.view, args.connections, args.in_flight, args.duration, args.server_threads, args.client_threads
    ));
    text.push_str(&format!(
        "{:28} {:>10} {:>9} {:>9} {:>9} {:>7}\n",
        "phase", "rps", "p50 ms", "p99 ms", "max ms", "errors"
    ));
    for (name, r) in [
        ("baseline (bare tonic unary)", &base),
        ("coordinator GetGate", &coord),
    ] {
        text.push_str(&format!(
            "{:28} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>7}\n",
            name,
            r.rps,
            ms(&r.latency, 0.5),
            ms(&r.latency, 0.99),
            r.latency.max() as f64 / 1000.0,
            r.errors
        ));
    }
    let (lo, hi) = round_ratios
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    text.push_str(&format!(
        "GetGate / baseline throughput ratio: {ratio:.2} (target ≥ 0.80; per round {lo:.2}–{hi:.2})\n"
    ));
    let mut json = serde_json::json!({
        "stages": args.stages, "probes_per_stage": args.probes, "view": format!("{:?}", args.view).to_lowercase(),
        "response_bytes": size, "connections": args.connections, "in_flight": args.in_flight,
        "duration_s": args.duration.as_secs_f64(), "server_threads": args.server_threads, "client_threads": args.client_threads,
        "baseline": unary_json(&base), "get_gate": unary_json(&coord), "ratio": ratio, "round_ratios": round_ratios, "rounds": rounds,
    });
    if let Some(f) = &fanout {
        text.push_str(&format!(
            "WatchGate fan-out: {} subscribers over {} connections (all connected in {:.1}s), {} changes (trigger RPC p50 {:.1} ms): first {:.1} ms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, missed {} (target p99 < 100 ms)\n",
            f.subscribers,
            args.watch_connections,
            f.connect_time.as_secs_f64(),
            f.rounds,
            ms(&f.trigger, 0.5),
            f.latency.min() as f64 / 1000.0,
            ms(&f.latency, 0.5),
            ms(&f.latency, 0.99),
            f.latency.max() as f64 / 1000.0,
            f.missed
        ));
        if let serde_json::Value::Object(m) = &mut json {
            m.insert("watch_fanout".into(), serde_json::json!({
                "subscribers": f.subscribers, "connections": args.watch_connections, "rounds": f.rounds,
                "trigger_p50_ms": ms(&f.trigger, 0.5), "min_ms": f.latency.min() as f64 / 1000.0, "p50_ms": ms(&f.latency, 0.5), "p99_ms": ms(&f.latency, 0.99),
                "max_ms": f.latency.max() as f64 / 1000.0, "missed": f.missed, "connect_s": f.connect_time.as_secs_f64(),
            }));
        }
    }
    Ok(Report { text, json })
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn unary_json(r: &load::UnaryResult) -> serde_json::Value {
    serde_json::json!({
        "rps": r.rps, "requests": r.ok, "errors": r.errors,
        "p50_ms": ms(&r.latency, 0.5), "p99_ms": ms(&r.latency, 0.99), "max_ms": r.latency.max() as f64 / 1000.0,
    })
}

/// Poll GetGate until every stage has been checked once; returns that response (the canned
/// answer of the baseline).
async fn wait_evaluated(
    url: &str,
    view: pb::GateView,
    stages: usize,
) -> Result<pb::GetGateResponse> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last_error = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        if let Ok(ch) = tonic::transport::Endpoint::from_shared(url.to_string())?
            .connect()
            .await
        {
            let mut c = pb::gate_service_client::GateServiceClient::new(ch);
            match c
                .get_gate(pb::GetGateRequest {
                    funnel: FUNNEL.into(),
                    view: view as i32,
                })
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    let checked = r
                        .decision
                        .as_ref()
                        .map(|d| d.stages.iter().filter(|s| s.checked_at.is_some()).count())
                        .unwrap_or(0);
                    if checked == stages {
                        return Ok(r);
                    }
                    last_error = format!("{checked} of {stages} stages checked");
                }
                Err(s) => last_error = format!("{:?}: {}", s.code(), s.message()),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the coordinator did not evaluate every stage within 60s: {last_error}")
}
