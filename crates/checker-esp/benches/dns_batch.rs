//! Batch speed of the DNS email-authentication kinds: `dns.spf`, `dns.dmarc`, `dns.dkim` and
//! `dns.mx` for many distinct domains, run as one check by the SDK runner at a concurrency of
//! 1, 8 (the default) and 32, against a local nsd serving a generated zone (`bulk.`, one
//! organisation per domain: SPF with an include, DMARC, a 2048-bit DKIM key, MX with an
//! address). Throughput is reported in domains per second (4 probes per domain).
//!
//! Run: `cargo bench -p funnelgate-checker-esp --bench dns_batch` (needs `/usr/sbin/nsd`, or
//! `FUNNELGATE_NSD`).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use funnelgate_checker_sdk::{Runner, SecretStore};
use funnelgate_core::{ProbeSpec, ProbeStatus};

const DOMAINS: usize = 200;
const DKIM_KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAsf+vkroBVwCGCuT0HCI8HgMYl4pJa0ciBs/zERqj84CHZhqJK4SkprlUshgAYYL306M/60USsYIIa6V6VT6quihouxUlr0VuuszjAF3YjpCMQTM2ahdvOxTwx94xyaMeXmOmdhcXC0IfHzKRCI+sba5cLZeL2udQ6Myd8PwpaWkk1faSagMO5/f1OAacOJg84HSqFmhrHfvT9DaFZhKfbtzgV1p+3oO2dHW0gwiPsf8b2h76WAMcP04IVUL09EO5BUuESbsocibtg4US1v0p0X1u9PxsJ0QPrzkhVI4qLAi0ZlMIc7VFDAQbuqJvyRyMsNqwvwJk2uPIbNkCOYUL1wIDAQAB";

fn zone() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulk.zone");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(
        f,
        "$ORIGIN bulk.\n$TTL 60\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n@ IN NS ns.test.\n\
         _spf.provider IN TXT \"v=spf1 ip4:198.51.100.0/24 -all\""
    )
    .unwrap();
    // DKIM keys are longer than one TXT string: split at 255.
    let (k1, k2) = DKIM_KEY.split_at(200);
    for i in 0..DOMAINS {
        writeln!(
            f,
            "d{i} IN TXT \"v=spf1 ip4:192.0.2.0/24 include:_spf.provider.bulk. -all\"\n\
             d{i} IN MX 10 mx.d{i}.bulk.\n\
             mx.d{i} IN A 192.0.2.{}\n\
             _dmarc.d{i} IN TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@d{i}.bulk\"\n\
             s1._domainkey.d{i} IN TXT \"v=DKIM1; k=rsa; p={k1}\" \"{k2}\"",
            i % 250 + 1
        )
        .unwrap();
    }
    (dir, path)
}

fn specs(ns: &str) -> Vec<ProbeSpec> {
    let mut out = Vec::new();
    for i in 0..DOMAINS {
        let d = format!("d{i}.bulk");
        for (kind, extra) in [
            ("dns.spf", serde_json::json!({})),
            ("dns.dmarc", serde_json::json!({})),
            ("dns.dkim", serde_json::json!({"selectors": ["s1"]})),
            ("dns.mx", serde_json::json!({})),
        ] {
            let mut spec = ProbeSpec::new(format!("{kind}-{i}"), kind);
            let mut params = extra;
            params["domain"] = serde_json::json!(d);
            params["nameservers"] = serde_json::json!([ns]);
            spec.params = params;
            out.push(spec);
        }
    }
    out
}

fn batch(c: &mut Criterion) {
    let (_dir, path) = zone();
    let nsd = common::start_nsd_with(&[("bulk".to_string(), path)]).unwrap();
    let ns = nsd.addr.to_string();
    let mut g = c.benchmark_group("dns_auth_batch");
    g.throughput(Throughput::Elements(DOMAINS as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    for concurrency in [1usize, 8, 32] {
        g.bench_function(
            format!("{DOMAINS}_domains_concurrency_{concurrency}"),
            |b| {
                b.iter_batched(
                    || {
                        // A fresh runtime and runner per batch: the shared resolvers of the
                        // previous batch (and their caches) go with its runtime, so every batch
                        // starts cold, as a check does when its interval is over the 60 s cache.
                        let rt = tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(2)
                            .enable_all()
                            .build()
                            .unwrap();
                        let runner =
                            Runner::new(funnelgate_checker_esp::registry(), SecretStore::default())
                                .unwrap()
                                .with_max_concurrency(concurrency);
                        (rt, runner)
                    },
                    |(rt, runner)| {
                        let report = rt.block_on(runner.check("bench", "esp", specs(&ns), None));
                        let bad: Vec<_> = report
                            .results
                            .iter()
                            .filter(|r| r.status == ProbeStatus::Error)
                            .map(|r| format!("{}: {}", r.id, r.message))
                            .collect();
                        assert!(
                            bad.is_empty(),
                            "{} errors, e.g. {:?}",
                            bad.len(),
                            bad.first()
                        );
                        // the runtime is dropped after the measurement
                        (report, rt)
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);
