//! The quickstart exactly as examples/quickstart/README.md tells it: init, up, CLOSED with a
//! bottom-up remediation list, fix, OPEN.

use std::time::Duration;

use funnelgate_e2e::{Proc, cli, free_addr, wait_serving};

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_up_closed_fix_open() {
    let dir = tempfile::tempdir().unwrap();
    let qs = dir.path().join("acme-demo");
    let (grpc, http) = (free_addr(), free_addr());
    let config = crate::quickstart_files(&qs, &grpc, &http).await;
    assert!(config.contains(&format!("http://{http}/healthz")));
    let config_path = qs.join("funnelgate.toml").display().to_string();

    let mut up = Proc::start("up", &["up", "--config", &config_path], &[], dir.path()).unwrap();
    wait_serving(
        &mut up,
        &grpc,
        "funnelgate.v1.GateService",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(
        up.output().contains("funnelgate gate status acme"),
        "{}",
        up.output()
    );
    let server = format!("http://{grpc}");

    // CLOSED once every stage was checked, remediation bottom-up (crm first).
    funnelgate_e2e::wait_decision(
        &grpc,
        "acme",
        Duration::from_secs(60),
        "CLOSED and fully checked",
        |d| {
            d.state == funnelgate_proto::pb::GateState::Closed as i32
                && d.stages.iter().all(|s| s.checked_at.is_some())
        },
    )
    .await
    .unwrap();
    let status = cli(&["gate", "status", "acme", "--server", &server], &[])
        .await
        .unwrap();
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.starts_with("acme: CLOSED"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("blocking stage: crm"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("1. crm: probe `"),
        "{}",
        status.stdout
    );
    let check = cli(
        &["gate", "check", "acme", "-o", "json", "--server", &server],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(check.code, 11, "{check:?}");
    let v: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    let stages: Vec<&str> = v["remediation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages.first(), Some(&"crm"), "{stages:?}");
    let rank = |s: &str| funnelgate_e2e::STAGES.iter().position(|x| *x == s).unwrap();
    assert!(
        stages.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "not bottom-up: {stages:?}"
    );
    let failing = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["code"] == "STAGE_FAILING");
    assert!(failing.count() >= 4, "every stage is broken: {v}");

    // The HTTP API and the landing-page probe agree.
    funnelgate_e2e::install_crypto();
    let body: serde_json::Value = reqwest::get(format!("http://{http}/v1/funnels/acme/gate"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["state"], "CLOSED", "{body}");

    let fix = cli(&["quickstart", "fix", &qs.display().to_string()], &[])
        .await
        .unwrap();
    assert_eq!(fix.code, 0, "{fix:?}");
    let waited = cli(
        &[
            "gate",
            "wait",
            "acme",
            "--until",
            "open",
            "--timeout",
            "3m",
            "--server",
            &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(waited.code, 0, "{waited:?}\n{}", up.output());
    assert!(waited.stdout.starts_with("acme: OPEN"), "{}", waited.stdout);

    // Ctrl-C / SIGTERM: clean shutdown.
    up.terminate().unwrap();
    let status = up.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "up exit: {status:?}\n{}", up.output());
}
