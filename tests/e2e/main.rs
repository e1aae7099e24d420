//! funnelgate end to end: real `funnelgate` processes (coordinator, checkers, `up`, the CLI) on
//! loopback, a real SQLite warehouse, the official Python gRPC client.
//!
//! Build the binary first: `cargo build -p funnelgate && cargo test -p funnelgate-e2e`.

#![allow(clippy::unwrap_used)]

mod cli;
mod cluster;
mod dashboard;
mod gate_semantics;
mod ha;
mod notify;
mod python;
mod quickstart;
mod robustness;

use std::path::Path;

use funnelgate_e2e::{Cluster, cli};

/// A warehouse DB and the quickstart config for `cluster`, created by `funnelgate quickstart init`
/// (so the tests exercise that command too); returns the config text without `[checkers.*]`.
pub async fn quickstart_files(dir: &Path, grpc: &str, http: &str) -> String {
    let d = dir.display().to_string();
    let r = cli(
        &[
            "quickstart",
            "init",
            &d,
            "--grpc-listen",
            grpc,
            "--http-listen",
            http,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 0, "quickstart init failed: {r:?}");
    std::fs::read_to_string(dir.join("funnelgate.toml")).unwrap()
}

/// Start four checkers and a coordinator on the quickstart config (the coordinator's config
/// gets `[checkers.*]` for the separate checker processes).
pub async fn quickstart_cluster() -> Cluster {
    let mut c = Cluster::checkers(tempfile::tempdir().unwrap())
        .await
        .unwrap();
    let config = quickstart_files(c.dir.path(), &c.grpc, &c.http).await;
    std::fs::write(c.config_path(), format!("{config}\n{}", c.checkers_toml())).unwrap();
    c.start_coordinator().await.unwrap();
    c
}
