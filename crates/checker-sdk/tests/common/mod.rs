//! Helpers shared by the SDK's integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use funnelgate_checker_sdk::{
    ProbeContext, ProbeError, Runner, SecretStore, default_http_client, generic_registry,
};
use funnelgate_core::{HumanDuration, Measurement, ProbeResult, ProbeSpec};

/// A spec of `kind` with `params` and a timeout.
pub fn spec(id: &str, kind: &str, params: serde_json::Value, timeout: Duration) -> ProbeSpec {
    let mut s = ProbeSpec::new(id, kind);
    s.params = params;
    s.timeout = HumanDuration(timeout);
    s
}

/// Secrets from a map of NAME → value (no process environment involved).
pub fn secrets(pairs: &[(&str, &str)]) -> SecretStore {
    SecretStore::new(
        pairs
            .iter()
            .map(|(k, v)| (format!("FUNNELGATE_SECRET_{k}"), v.to_string())),
        None,
    )
}

/// A runner over the generic kinds.
pub fn runner(secrets: SecretStore) -> Runner {
    Runner::new(generic_registry(), secrets).expect("runner")
}

/// Run a spec through the runner (build, timeout, retries, judging).
pub async fn run(spec: ProbeSpec, secrets: SecretStore) -> ProbeResult {
    runner(secrets).run_one(spec).await
}

/// Build and run the probe directly, without the runner's timeout, so the probe's own
/// timeout handling (e.g. a database statement timeout) is what ends it. Guarded by 60s.
pub async fn run_direct(spec: ProbeSpec, secrets: SecretStore) -> Result<Measurement, ProbeError> {
    let registry = generic_registry();
    let probe = registry
        .build(&spec.kind, &spec.params)
        .expect("params build");
    let ctx = ProbeContext {
        spec: Arc::new(spec),
        secrets,
        http: default_http_client().expect("http client"),
    };
    tokio::time::timeout(Duration::from_secs(60), probe.run(&ctx))
        .await
        .expect("the probe ended by itself within 60s")
}
