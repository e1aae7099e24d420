//! The server commands: `up` (coordinator and all four checkers in one process), `coordinator`
//! and `checker <stage>` (each part alone, for a cluster).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Args;
use funnelgate_checker_sdk::{CheckerServeError, CheckerServerConfig, SecretStore, serve_checker};
use funnelgate_coordinator::config::{CheckerConfig, Config, DatabaseLocation};
use funnelgate_coordinator::{CoordinatorError, Listeners};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::exit::{self, CliError, CmdResult};
use crate::plugins::{PLUGINS, StageArg};

/// `funnelgate up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// The configuration file (TOML or YAML).
    #[arg(long, short = 'c', env = "FUNNELGATE_CONFIG")]
    pub config: PathBuf,
    /// Keep the SQLite database here (`<dir>/funnelgate.db`) instead of `coordinator.database`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Directory of secret files for the built-in checkers (`<dir>/<NAME>`), besides
    /// `FUNNELGATE_SECRET_<NAME>` variables.
    #[arg(long)]
    pub secrets_dir: Option<PathBuf>,
}

/// `funnelgate coordinator`.
#[derive(Args, Debug)]
pub struct CoordinatorArgs {
    /// The configuration file (TOML or YAML).
    #[arg(long, short = 'c', env = "FUNNELGATE_CONFIG")]
    pub config: PathBuf,
    /// Keep the SQLite database here (`<dir>/funnelgate.db`) instead of `coordinator.database`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `funnelgate checker`.
#[derive(Args, Debug)]
pub struct CheckerArgs {
    /// Which stage checker to run.
    #[arg(value_enum)]
    pub stage: StageArg,
    /// `host:port` to serve gRPC on.
    #[arg(
        long,
        env = "FUNNELGATE_CHECKER_LISTEN",
        default_value = "127.0.0.1:7101"
    )]
    pub listen: String,
    /// Directory of secret files (`<dir>/<NAME>`, e.g. a mounted Kubernetes Secret), besides
    /// `FUNNELGATE_SECRET_<NAME>` variables.
    #[arg(long, env = "FUNNELGATE_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Probes run at once within one check (0: the default, 8).
    #[arg(long, default_value_t = 0)]
    pub max_concurrency: usize,
}

fn process_env() -> HashMap<String, String> {
    std::env::vars().collect()
}

/// Load and statically validate a configuration; every problem is printed as `file: key: reason`.
fn load(path: &Path, env: &HashMap<String, String>) -> Result<Config, CliError> {
    funnelgate_coordinator::config::load(path, env).map_err(|e| CliError::usage(e.to_string()))
}

fn apply_data_dir(config: &mut Config, data_dir: Option<&Path>) -> Result<(), CliError> {
    if let Some(dir) = data_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::failure(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })?;
        let db = std::path::absolute(dir.join("funnelgate.db"))
            .unwrap_or_else(|_| dir.join("funnelgate.db"));
        config.coordinator.database = db.display().to_string();
    }
    Ok(())
}

fn coordinator_error(e: CoordinatorError) -> CliError {
    match e {
        CoordinatorError::InvalidConfig(c) => {
            CliError::usage(format!("invalid configuration\n{c}"))
        }
        other => CliError::failure(other.to_string()),
    }
}

async fn bind_coordinator(config: &Config) -> Result<Listeners, CliError> {
    funnelgate_coordinator::bind(config)
        .await
        .map_err(coordinator_error)
}

/// `funnelgate coordinator --config F`.
pub async fn coordinator(args: CoordinatorArgs) -> CmdResult {
    let env = process_env();
    let mut config = load(&args.config, &env)?;
    apply_data_dir(&mut config, args.data_dir.as_deref())?;
    config
        .validate()
        .map_err(|e| CliError::usage(e.to_string()))?;
    let listeners = bind_coordinator(&config).await?;
    funnelgate_coordinator::run(config, listeners, env, funnelgate_server::shutdown_signal())
        .await
        .map_err(coordinator_error)?;
    Ok(exit::OK)
}

/// `funnelgate checker <stage> --listen ADDR`.
pub async fn checker(args: CheckerArgs) -> CmdResult {
    let plugin = args.stage.plugin();
    let listener = TcpListener::bind(args.listen.trim()).await.map_err(|e| {
        CliError::failure(format!(
            "cannot listen on {} ({} checker): {e}",
            args.listen, plugin.stage
        ))
    })?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| args.listen.clone());
    let cfg = CheckerServerConfig {
        stage: plugin.stage.to_string(),
        name: plugin.name.to_string(),
        registry: plugin.registry(),
        secrets: SecretStore::new(process_env(), args.secrets_dir),
        max_concurrency: args.max_concurrency,
    };
    tracing::info!(stage = plugin.stage, %addr, kinds = cfg.registry.len(), "checker serving");
    serve_checker(cfg, listener, funnelgate_server::shutdown_signal())
        .await
        .map_err(|e| {
            CliError::failure(format!(
                "{} checker on {addr}: {}",
                plugin.stage,
                exit::chain(&e)
            ))
        })?;
    tracing::info!(stage = plugin.stage, "checker stopped");
    Ok(exit::OK)
}

/// `funnelgate up --config F`: every built-in checker on 127.0.0.1:0, the config's
/// `[checkers.*]` endpoints pointed at them (missing ones added), then the coordinator.
pub async fn up(args: UpArgs) -> CmdResult {
    let env = process_env();
    let mut config = load(&args.config, &env)?;
    apply_data_dir(&mut config, args.data_dir.as_deref())?;

    let builtin = BuiltinCheckers::start(&mut config, &env, args.secrets_dir.clone()).await?;
    // Validate with the embedded checkers in place, before binding the coordinator's ports.
    config
        .validate()
        .map_err(|e| CliError::usage(e.to_string()))?;
    let listeners = bind_coordinator(&config).await?;
    let (grpc, http) = listeners
        .local_addrs()
        .map_err(|e| CliError::failure(format!("the coordinator has no local address: {e}")))?;
    let funnels: Vec<&str> = config.funnels.iter().map(|f| f.name.as_str()).collect();
    let server_flag = if grpc.to_string() == "127.0.0.1:7070" {
        String::new()
    } else {
        format!(" --server http://{grpc}")
    };
    println!(
        "funnelgate up: coordinator and {} checkers in one process",
        PLUGINS.len()
    );
    println!("  gate API (gRPC) http://{grpc}");
    println!(
        "  HTTP            http://{http}  (/v1/funnels/<funnel>/gate, /metrics, /healthz, /readyz)"
    );
    for l in &builtin.lines {
        println!("{l}");
    }
    let db = match config.database_location() {
        DatabaseLocation::InMemory => "in memory (lost on exit)".to_string(),
        DatabaseLocation::File(p) => p.display().to_string(),
        DatabaseLocation::Postgres(url) => funnelgate_coordinator::store::redact_url(&url),
    };
    println!("  database        {db}");
    if let Some(first) = funnels.first() {
        println!("query the gate:   funnelgate gate status {first}{server_flag}");
        println!(
            "wait for it:      funnelgate gate wait {first} --until open --timeout 15m{server_flag}"
        );
        println!("or over HTTP:     curl http://{http}/v1/funnels/{first}/gate");
    }
    println!("stop with Ctrl-C");

    let result =
        funnelgate_coordinator::run(config, listeners, env, funnelgate_server::shutdown_signal())
            .await;
    let stopped = builtin.stop().await;
    result.map_err(coordinator_error)?;
    stopped?;
    Ok(exit::OK)
}

/// The built-in checkers running in this process (`up`, `config validate --up --with-checkers`).
pub struct BuiltinCheckers {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<Result<(), CheckerServeError>>)>,
    /// One line per checker: stage and endpoint.
    pub lines: Vec<String>,
}

impl BuiltinCheckers {
    /// Serve every built-in checker on 127.0.0.1:0 and point `config`'s `[checkers.<stage>]`
    /// at them (adding missing entries, keeping their timeouts).
    pub async fn start(
        config: &mut Config,
        env: &HashMap<String, String>,
        secrets_dir: Option<PathBuf>,
    ) -> Result<BuiltinCheckers, CliError> {
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut lines = Vec::new();
        for plugin in PLUGINS {
            let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| {
                CliError::failure(format!(
                    "cannot listen on 127.0.0.1:0 ({} checker): {e}",
                    plugin.stage
                ))
            })?;
            let addr = listener.local_addr().map_err(|e| {
                CliError::failure(format!(
                    "{} checker has no local address: {e}",
                    plugin.stage
                ))
            })?;
            let endpoint = format!("http://{addr}");
            config
                .checkers
                .entry(plugin.stage.to_string())
                .and_modify(|c| c.endpoint = endpoint.clone())
                .or_insert_with(|| CheckerConfig::new(endpoint.clone()));
            lines.push(format!("  checker {:10} {endpoint}", plugin.stage));
            let cfg = CheckerServerConfig {
                stage: plugin.stage.to_string(),
                name: plugin.name.to_string(),
                registry: plugin.registry(),
                secrets: SecretStore::new(env.clone(), secrets_dir.clone()),
                max_concurrency: 0,
            };
            let mut rx = stop_rx.clone();
            let until = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            tasks.push((
                plugin.stage,
                tokio::spawn(serve_checker(cfg, listener, until)),
            ));
        }
        Ok(BuiltinCheckers { stop, tasks, lines })
    }

    /// Stop them all and wait; the first failure, if any.
    pub async fn stop(self) -> Result<(), CliError> {
        let _ = self.stop.send(true);
        let mut failure = None;
        for (stage, task) in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failure.get_or_insert(CliError::failure(format!(
                        "{stage} checker: {}",
                        exit::chain(&e)
                    )));
                }
                Err(e) => {
                    failure.get_or_insert(CliError::failure(format!(
                        "{stage} checker task failed: {e}"
                    )));
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}
