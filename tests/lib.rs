//! End-to-end test harness for funnelgate: finds the built `funnelgate` binary, starts it as
//! real processes on loopback with free ports, waits on readiness (gRPC health SERVING, never a
//! fixed sleep), and kills every process it started when its handle drops.
//!
//! The binary is not built by the tests: run `cargo build -p funnelgate` first (scripts/test.sh
//! does), or set `FUNNELGATE_BIN` to a binary. It is looked up as `<target>/<profile>/funnelgate`
//! beside the test executable (`<target>/<profile>/deps/e2e-…`).

use std::collections::BTreeMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use funnelgate_proto::pb;
use funnelgate_proto::pb::gate_service_client::GateServiceClient;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The `funnelgate` binary under test.
pub fn funnelgate_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FUNNELGATE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // <target>/<profile>/deps/<test exe> → <target>/<profile>/funnelgate
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = profile_dir.join(format!("funnelgate{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "the funnelgate binary is not built at {}: run `cargo build -p funnelgate` first (same profile and target dir), or set FUNNELGATE_BIN",
        bin.display()
    );
    bin
}

/// A port that was free a moment ago on 127.0.0.1 (bound to :0 and released).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A started process; killed (SIGKILL) when dropped unless it already exited.
#[derive(Debug)]
pub struct Proc {
    /// A label for messages (`coordinator`, `checker crm`…).
    pub name: String,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Start `funnelgate <args>` with `env` added to a clean-ish environment (the test's own
    /// `FUNNELGATE_*` variables are not inherited), stdout and stderr to `<log_dir>/<name>.log`.
    pub fn start(name: &str, args: &[&str], env: &[(&str, &str)], log_dir: &Path) -> Result<Proc> {
        let log = log_dir.join(format!("{}.log", name.replace(' ', "-")));
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(funnelgate_bin());
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        for (k, _) in std::env::vars() {
            if k.starts_with("FUNNELGATE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("FUNNELGATE_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log,
            exited: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send SIGTERM (through `kill(1)`: this workspace forbids `unsafe`).
    pub fn terminate(&self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", self.pid());
        }
        Ok(())
    }

    /// Kill it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.exited = Some(self.child.wait()?);
        Ok(())
    }

    /// Wait for it to exit, at most `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited {
                return Ok(s);
            }
            if let Some(s) = self.child.try_wait()? {
                self.exited = Some(s);
                return Ok(s);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not exit within {timeout:?}; output:\n{}",
                    self.name,
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        self.exited.is_some() || matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A gRPC channel to `addr` (`host:port`).
pub async fn channel(addr: &str) -> Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await?)
}

/// Wait until `service` on `addr` reports SERVING over `grpc.health.v1` (the process must stay
/// alive meanwhile).
pub async fn wait_serving(
    proc_: &mut Proc,
    addr: &str,
    service: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("not reachable yet");
    while Instant::now() < deadline {
        if proc_.has_exited() {
            bail!(
                "{} exited before serving; output:\n{}",
                proc_.name,
                proc_.output()
            );
        }
        if let Ok(ch) = channel(addr).await {
            match HealthClient::new(ch)
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
            {
                Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => return Ok(()),
                Ok(r) => last = format!("status {}", r.get_ref().status),
                Err(s) => last = format!("{:?}: {}", s.code(), s.message()),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{} at {addr} did not serve {service} within {timeout:?} ({last}); output:\n{}",
        proc_.name,
        proc_.output()
    )
}

/// A GateService client for the coordinator at `addr`.
pub async fn gate_client(addr: &str) -> Result<GateServiceClient<Channel>> {
    Ok(GateServiceClient::new(channel(addr).await?))
}

/// Poll `GetGate` (full view) until `pred` holds; fails with the last decision after `timeout`.
pub async fn wait_decision(
    addr: &str,
    funnel: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&pb::GateDecision) -> bool,
) -> Result<pb::GateDecision> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<pb::GateDecision> = None;
    let mut client = gate_client(addr).await?;
    while Instant::now() < deadline {
        let req = pb::GetGateRequest {
            funnel: funnel.into(),
            view: pb::GateView::Full as i32,
        };
        if let Ok(r) = client.get_gate(req).await
            && let Some(d) = r.into_inner().decision
        {
            if pred(&d) {
                return Ok(d);
            }
            last = Some(d);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("gate of `{funnel}` never became {what} within {timeout:?}; last decision: {last:#?}")
}

/// The gate state of a decision.
pub fn state(d: &pb::GateDecision) -> pb::GateState {
    pb::GateState::try_from(d.state).unwrap_or(pb::GateState::Unspecified)
}

/// What a finished CLI invocation printed and returned.
#[derive(Debug)]
pub struct CliRun {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Run `funnelgate <args>` to completion (client commands), with `env` added.
pub async fn cli(args: &[&str], env: &[(&str, &str)]) -> Result<CliRun> {
    let mut cmd = tokio::process::Command::new(funnelgate_bin());
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("FUNNELGATE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .with_context(|| format!("funnelgate {args:?} did not finish within 300s"))??;
    Ok(CliRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// A coordinator and four checkers, each its own `funnelgate` process, sharing a temp dir.
#[derive(Debug)]
pub struct Cluster {
    /// Working directory (config, databases, logs).
    pub dir: tempfile::TempDir,
    /// The coordinator's gRPC address.
    pub grpc: String,
    /// The coordinator's HTTP address.
    pub http: String,
    /// The coordinator process.
    pub coordinator: Option<Proc>,
    /// Checker processes by stage.
    pub checkers: BTreeMap<String, Proc>,
    /// Checker addresses by stage.
    pub checker_addrs: BTreeMap<String, String>,
    /// Environment of the coordinator (e.g. operator tokens).
    pub env: Vec<(String, String)>,
}

/// The four built-in stages, bottom first.
pub const STAGES: [&str; 4] = ["crm", "automation", "esp", "analytics"];

impl Cluster {
    /// Start the four checkers (each `funnelgate checker <stage>`) on free ports; the coordinator
    /// is started by [`Cluster::start_coordinator`] with a config that names them.
    pub async fn checkers(dir: tempfile::TempDir) -> Result<Cluster> {
        let mut c = Cluster {
            grpc: free_addr(),
            http: free_addr(),
            dir,
            coordinator: None,
            checkers: BTreeMap::new(),
            checker_addrs: BTreeMap::new(),
            env: Vec::new(),
        };
        for stage in STAGES {
            c.start_checker(stage, &free_addr()).await?;
        }
        Ok(c)
    }

    /// Start (or restart) one checker on `addr` and wait until it serves.
    pub async fn start_checker(&mut self, stage: &str, addr: &str) -> Result<()> {
        let name = format!("checker {stage}");
        let mut p = Proc::start(
            &name,
            &["checker", stage, "--listen", addr],
            &[],
            self.dir.path(),
        )?;
        wait_serving(
            &mut p,
            addr,
            "funnelgate.v1.StageChecker",
            Duration::from_secs(60),
        )
        .await?;
        self.checkers.insert(stage.to_string(), p);
        self.checker_addrs
            .insert(stage.to_string(), addr.to_string());
        Ok(())
    }

    /// `[checkers.*]` tables for the running checkers.
    pub fn checkers_toml(&self) -> String {
        self.checker_addrs
            .iter()
            .map(|(s, a)| format!("\n[checkers.{s}]\nendpoint = \"http://{a}\"\ntimeout = \"5s\"\nconnect_timeout = \"1s\"\n"))
            .collect()
    }

    /// Path of the config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("funnelgate.toml")
    }

    /// Write the config file: `[coordinator]` with this cluster's addresses, `body` (funnels,
    /// auth…), and the checkers.
    pub fn write_config(&self, coordinator_extra: &str, body: &str) -> Result<()> {
        let text = format!(
            "[coordinator]\ngrpc_listen = \"{}\"\nhttp_listen = \"{}\"\ndatabase = \"funnelgate.db\"\ntick_interval = \"500ms\"\nstartup_timeout = \"20s\"\n{coordinator_extra}\n{body}\n{}",
            self.grpc,
            self.http,
            self.checkers_toml()
        );
        std::fs::write(self.config_path(), text)?;
        Ok(())
    }

    /// Start the coordinator on the written config and wait until it serves.
    pub async fn start_coordinator(&mut self) -> Result<()> {
        let config = self.config_path().display().to_string();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut p = Proc::start(
            "coordinator",
            &["coordinator", "--config", &config],
            &env,
            self.dir.path(),
        )?;
        wait_serving(
            &mut p,
            &self.grpc,
            "funnelgate.v1.GateService",
            Duration::from_secs(60),
        )
        .await?;
        self.coordinator = Some(p);
        Ok(())
    }

    /// `http://<grpc addr>` for `--server`.
    pub fn server_url(&self) -> String {
        format!("http://{}", self.grpc)
    }
}

/// Install the ring crypto provider for reqwest (once per process; later calls are no-ops).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
