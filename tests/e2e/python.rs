//! An outside client: the official Python grpcio (reflection-driven, no generated stubs) and its
//! health checking package, against a real coordinator.

use std::path::PathBuf;
use std::time::Duration;

use funnelgate_e2e::{state, wait_decision};
use funnelgate_proto::pb;

/// `FUNNELGATE_PYTHON`, or `<repo>/.venv/bin/python`; fails loudly when missing.
pub fn python() -> PathBuf {
    let p = std::env::var_os("FUNNELGATE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(".venv")
                .join("bin")
                .join("python")
        });
    assert!(
        p.exists(),
        "python with grpcio is missing at {}: run scripts/test.sh (it creates .venv) or set FUNNELGATE_PYTHON",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn python_grpcio_client_reads_the_gate_via_reflection_and_health() {
    let c = crate::quickstart_cluster().await;
    wait_decision(&c.grpc, "acme", Duration::from_secs(60), "evaluated", |d| {
        state(d) == pb::GateState::Closed && d.stages.iter().all(|s| s.checked_at.is_some())
    })
    .await
    .unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join("outside_client.py");
    let out = tokio::process::Command::new(python())
        .arg(&script)
        .arg(&c.grpc)
        .arg("acme")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["funnel"], "acme", "{v}");
    assert_eq!(v["state"], "GATE_STATE_CLOSED", "{v}");
    assert_eq!(
        v["stages"],
        serde_json::json!(["crm", "automation", "esp", "analytics"]),
        "{v}"
    );
    assert_eq!(v["unknown_funnel"], "NOT_FOUND", "{v}");
    assert_eq!(v["health"], "SERVING", "{v}");
    let services: Vec<&str> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert!(
        services.contains(&"funnelgate.v1.GateService")
            && services.contains(&"grpc.health.v1.Health"),
        "{v}"
    );
}
