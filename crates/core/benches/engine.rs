//! Gate engine benchmarks: 10,000 funnels × 4 stages × 25 probes.
//!
//! - `evaluate_all`: re-judge every probe of every stage of every funnel and rebuild every
//!   decision (target < 50 ms);
//! - `apply_report`: one incremental 25-probe stage report, funnels taken round-robin (target
//!   < 20 µs), built just before it is applied (`25_probes`) or hundreds at a time ahead of
//!   being applied, so cold in cache (`25_probes_cold_input`);
//! - `tick`: re-decide every funnel for time only.
//!
//! Run: `cargo bench -p funnelgate-core --bench engine`
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use funnelgate_core::{
    Engine, FunnelPolicy, GatePolicy, HumanDuration, ProbeResult, ProbeSpec, ProbeStatus,
    StagePolicy, StageReport, Timestamp,
};

const FUNNELS: usize = 10_000;
const STAGES: [&str; 4] = ["crm", "automation", "esp", "analytics"];
const PROBES: usize = 25;
const T0: i64 = 1_714_564_800_000;

fn policy(f: usize) -> FunnelPolicy {
    FunnelPolicy {
        name: format!("funnel-{f:05}"),
        stages: STAGES
            .iter()
            .map(|s| {
                let mut sp = StagePolicy::new(*s);
                // Keep reports fresh for the whole run: staleness is not what is measured.
                sp.stale_after = HumanDuration::from_secs(30 * 86_400);
                sp.min_score = Some(60.0);
                sp.probes = (0..PROBES)
                    .map(|p| {
                        let mut spec = ProbeSpec::new(format!("{s}-probe-{p:02}"), "sql");
                        spec.thresholds.warn_below = Some(90.0);
                        spec.thresholds.fail_below = Some(70.0);
                        spec
                    })
                    .collect();
                sp
            })
            .collect(),
        gate: GatePolicy::default(),
    }
}

/// A realistic report: every probe measured, a few funnels with a WARN and a FAIL.
fn report(f: usize, stage: &str, at: Timestamp) -> StageReport {
    let troubled = f.is_multiple_of(10);
    StageReport {
        funnel: format!("funnel-{f:05}"),
        stage: stage.to_string(),
        results: (0..PROBES)
            .map(|p| {
                let (status, value, threshold) = match (troubled, p) {
                    (true, 3) => (ProbeStatus::Warn, 85.0, Some(90.0)),
                    (true, 7) if stage == "esp" => (ProbeStatus::Fail, 62.0, Some(70.0)),
                    _ => (ProbeStatus::Pass, 95.0, Some(90.0)),
                };
                ProbeResult {
                    steps: Vec::new(),
                    id: format!("{stage}-probe-{p:02}"),
                    kind: "sql".into(),
                    status,
                    value: Some(value),
                    unit: "%".into(),
                    threshold,
                    badness: if status == ProbeStatus::Pass {
                        0.0
                    } else {
                        0.1
                    },
                    message: format!("attributed leads over the last 7 days: {value}%"),
                    observed_at: at,
                    duration_ms: 12,
                    sample_size: Some(1_200),
                    window: Some(HumanDuration::from_secs(7 * 86_400)),
                    evidence: Default::default(),
                }
            })
            .collect(),
        checked_at: at,
        duration_ms: 340,
        checker: format!("{stage}/0.1.0"),
        failure: None,
    }
}

fn loaded_engine() -> (Engine, Timestamp) {
    let t = Timestamp(T0);
    let mut e = Engine::new();
    for f in 0..FUNNELS {
        e.upsert_funnel(policy(f), t).unwrap();
        for s in STAGES {
            e.apply_report(report(f, s, t), t).unwrap();
        }
    }
    (e, t)
}

fn benches(c: &mut Criterion) {
    let (mut engine, t) = loaded_engine();
    let mut now = t;

    let mut g = c.benchmark_group("gate_engine");
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(15));
    g.bench_function("evaluate_all/10k_funnels_4x25_probes", |b| {
        b.iter(|| {
            now = now.add(Duration::from_secs(1));
            black_box(engine.evaluate_all(now))
        })
    });
    g.bench_function("tick/10k_funnels_4x25_probes", |b| {
        b.iter(|| {
            now = now.add(Duration::from_secs(1));
            black_box(engine.tick(now).len())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("gate_engine");
    g.sample_size(100);
    g.measurement_time(Duration::from_secs(10));
    let templates: Vec<StageReport> = STAGES.iter().map(|s| report(1, s, t)).collect();
    let mut n = 0usize;
    let mut next_report = move |now: &mut Timestamp| {
        // Round-robin over funnels and stages; the report is built outside the timing.
        n += 1;
        *now = now.add(Duration::from_millis(1));
        let mut r = templates[n % STAGES.len()].clone();
        r.funnel = format!("funnel-{:05}", (n * 7_919) % FUNNELS);
        r.checked_at = *now;
        (r, *now)
    };
    // As the coordinator does it: a report is applied right after it was decoded.
    g.bench_function("apply_report/25_probes", |b| {
        b.iter_batched(
            || next_report(&mut now),
            |(r, at)| black_box(engine.apply_report(r, at).unwrap()),
            BatchSize::PerIteration,
        )
    });
    // Worst case: hundreds of reports decoded ahead and applied later (cold in cache).
    g.bench_function("apply_report/25_probes_cold_input", |b| {
        b.iter_batched(
            || next_report(&mut now),
            |(r, at)| black_box(engine.apply_report(r, at).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
