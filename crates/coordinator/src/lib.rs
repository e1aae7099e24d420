//! The funnelgate coordinator: loads and validates the configuration (including asking every
//! stage checker what it supports), schedules checks, feeds stage reports to the pure gate
//! engine, records every decision change in a hash-chained ledger, and serves the gate over gRPC
//! (`GateService`, health, reflection) and HTTP (JSON for Argo Rollouts and CI, `/metrics`,
//! `/healthz`, `/readyz`).
//!
//! Layering: it depends on `funnelgate-core` (semantics), `funnelgate-proto` (the wire contract)
//! and `funnelgate-server` (how a tonic service is served). It talks to checkers only through the
//! `StageChecker` gRPC contract and must never depend on a checker plugin crate or the SDK: any
//! process implementing the contract is a checker. The CLI wraps it (`funnelgate coordinator`,
//! `funnelgate up`).
//!
//! Start-up order: validate everything (static checks, operator tokens, `Describe` of every
//! checker that answers within `startup_timeout`) before serving anything, open the store,
//! restore each funnel, then supervise the checkers, schedule and serve. A checker that does not
//! answer at start is not a configuration error: its stages are UNKNOWN (`UNREACHABLE`) until it
//! answers, and it is validated then ([`liveness`]). Shutdown: stop serving new work, stop
//! scheduling, persist, drain.

pub mod attribution;
pub mod auth;
pub mod canonical;
pub mod checkers;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod explain;
pub mod follower;
pub mod grpc;
pub mod http;
pub mod json_time;
pub mod leader;
pub mod liveness;
pub mod metrics;
pub mod notify;
pub mod scheduler;
pub mod schema;
pub mod state;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use funnelgate_proto::pb;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{Config, ConfigError, ConfigIssue, load};
pub use error::{CoordinatorError, ServiceError, ServiceErrorCode};
pub use store::{SqlStore, SqliteStore, Store, StoreError, VerifyReport};

use crate::auth::Authorizer;
use crate::checkers::CheckerClient;
use crate::config::{DatabaseLocation, SqliteSynchronous};
use crate::grpc::{ApiState, GateApi};
use crate::leader::{Cluster, ElectionConfig};
use crate::metrics::Metrics;

/// How long servers get to finish in-flight requests at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The two bound listeners the coordinator serves on (bind first, then [`run`]).
#[derive(Debug)]
pub struct Listeners {
    /// gRPC: `GateService`, health, reflection.
    pub grpc: TcpListener,
    /// HTTP: JSON API, metrics, health.
    pub http: TcpListener,
}

impl Listeners {
    /// The bound addresses `(grpc, http)`.
    pub fn local_addrs(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.grpc.local_addr()?, self.http.local_addr()?))
    }
}

/// Bind `coordinator.grpc_listen` and `coordinator.http_listen`.
pub async fn bind(config: &Config) -> Result<Listeners, CoordinatorError> {
    let grpc = TcpListener::bind(config.coordinator.grpc_listen.trim())
        .await
        .map_err(|source| CoordinatorError::Bind {
            what: "grpc",
            addr: config.coordinator.grpc_listen.clone(),
            source,
        })?;
    let http = TcpListener::bind(config.coordinator.http_listen.trim())
        .await
        .map_err(|source| CoordinatorError::Bind {
            what: "http",
            addr: config.coordinator.http_listen.clone(),
            source,
        })?;
    Ok(Listeners { grpc, http })
}

/// What a successful preflight established.
#[derive(Debug)]
pub struct Preflight {
    /// Operator tokens, resolved.
    pub authorizer: Authorizer,
    /// A client per configured checker.
    pub clients: BTreeMap<String, CheckerClient>,
    /// The `Describe` answer of each used checker that answered within `startup_timeout`.
    pub described: BTreeMap<String, pb::DescribeResponse>,
    /// The used checkers that did not answer within `startup_timeout`, with why: not an error
    /// for the coordinator (they are validated when they first answer), but
    /// `funnelgate config validate --with-checkers` reports them.
    pub unreachable: BTreeMap<String, String>,
}

impl Preflight {
    /// The checkers that did not answer, as configuration issues (`checkers.<name>.endpoint`).
    pub fn unreachable_issues(&self) -> Vec<ConfigIssue> {
        self.unreachable
            .iter()
            .map(|(name, reason)| {
                ConfigIssue::new(format!("checkers.{name}.endpoint"), reason.clone())
            })
            .collect()
    }
}

/// Validate everything that can be validated before serving: the file itself
/// ([`Config::validate`]), operator tokens in `env`, and — only when those pass, so a broken file
/// fails at once — every used checker's `Describe` (retried until `startup_timeout`) with every
/// probe's kind and params checked against the checkers that answered. All problems of a phase
/// are reported together. A checker that does not answer is listed in
/// [`Preflight::unreachable`], not an error. `funnelgate config validate` calls this directly.
pub async fn preflight(
    config: &Config,
    env: &HashMap<String, String>,
) -> Result<Preflight, ConfigError> {
    let file = config.file_label();
    let mut issues = match config.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.issues,
    };
    let authorizer = match Authorizer::from_config(&config.auth, env) {
        Ok(a) => Some(a),
        Err(more) => {
            issues.extend(more);
            None
        }
    };
    let clients = match checkers::clients(config) {
        Ok(c) => Some(c),
        Err(more) => {
            issues.extend(more);
            None
        }
    };
    let (Some(authorizer), Some(clients)) = (authorizer, clients) else {
        return Err(ConfigError { file, issues });
    };
    if !issues.is_empty() {
        return Err(ConfigError { file, issues });
    }
    let used = checkers::used_checkers(config);
    tracing::info!(checkers = used.len(), timeout = %config.coordinator.startup_timeout, "asking checkers what they support");
    let described =
        checkers::describe_all(&clients, &used, config.coordinator.startup_timeout.get()).await;
    let issues = checkers::validate_probes(config, &described.answered);
    if !issues.is_empty() {
        return Err(ConfigError { file, issues });
    }
    Ok(Preflight {
        authorizer,
        clients,
        described: described.answered,
        unreachable: described.unreachable,
    })
}

/// This replica's name: `coordinator.node_name`, or host name and pid.
pub fn node_name(config: &Config) -> String {
    config.coordinator.node_name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "node".into());
        format!("{host}-{}", std::process::id())
    })
}

/// Open the configured store.
pub async fn open_store(config: &Config) -> Result<SqlStore, StoreError> {
    let location = config.database_location();
    match &location {
        DatabaseLocation::File(path) => tracing::info!(path = %path.display(), "opening database"),
        DatabaseLocation::Postgres(url) => {
            tracing::info!(url = %store::redact_url(url), "opening database")
        }
        DatabaseLocation::InMemory => {}
    }
    let options = store::StoreOptions {
        sqlite_synchronous_full: config.coordinator.sqlite_synchronous == SqliteSynchronous::Full,
        application_name: format!("funnelgate-{}", node_name(config)),
        postgres_idle_in_transaction: Some(config.coordinator.lease.get() / 2),
    };
    SqlStore::open_with(&location, &options).await
}

/// Run the coordinator on `listeners` until `shutdown` resolves.
///
/// Nothing is served before the configuration (including every checker's `Describe`) has been
/// validated and the store opened; an invalid configuration returns
/// [`CoordinatorError::InvalidConfig`] listing every problem. On shutdown: watch streams end,
/// scheduling stops, the engine persists every funnel, servers drain, the store closes.
pub async fn run(
    config: Config,
    listeners: Listeners,
    env: HashMap<String, String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CoordinatorError> {
    let preflight = preflight(&config, &env).await?;
    if preflight.authorizer.is_open() {
        tracing::warn!(
            "auth.operators is empty: anyone who can reach the gRPC port may set overrides and phases"
        );
    }
    let sql_store = open_store(&config).await?;
    let cluster = match sql_store.backend() {
        store::Backend::Sqlite => Cluster::single(sql_store.fence().clone()),
        store::Backend::Postgres => Cluster::replica(sql_store.fence().clone()),
    };
    let store: Arc<dyn Store> = Arc::new(sql_store.clone());
    let metrics = Arc::new(Metrics::new());
    let (gates, engine, engine_task) = state::start(
        &config.funnels,
        &config.hash(),
        config.coordinator.tick_interval.get(),
        store.clone(),
        metrics.clone(),
        cluster.clone(),
    )
    .await?;
    let notifier = notify::Notifier::from_config(
        &config.notifications,
        &env,
        config
            .source
            .as_ref()
            .and_then(|p| p.parent())
            .unwrap_or(std::path::Path::new("")),
        sql_store.pool().clone(),
    )
    .map_err(|issues| ConfigError {
        file: config.file_label(),
        issues,
    })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let api = Arc::new(ApiState {
        gates: gates.clone(),
        engine: engine.clone(),
        store: store.clone(),
        auth: Arc::new(preflight.authorizer),
        metrics: metrics.clone(),
        max_watchers: config.coordinator.max_watchers,
        watchers: AtomicUsize::new(0),
        shutdown: stop_rx.clone(),
        notify: notifier.status(),
    });
    let mut notify_tasks = notifier.spawn(
        gates.clone(),
        store.clone(),
        metrics.clone(),
        stop_rx.clone(),
    );
    // Checker liveness is watched on every replica; only the leader's scheduler acts on it.
    let supervisors = Arc::new(liveness::Supervisors::start(
        Arc::new(config.clone()),
        &preflight.clients,
        &preflight.described,
        &preflight.unreachable,
    ));
    let (grpc_addr, http_addr) =
        listeners
            .local_addrs()
            .map_err(|source| CoordinatorError::Bind {
                what: "grpc",
                addr: config.coordinator.grpc_listen.clone(),
                source,
            })?;
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (reporter, health_service) = funnelgate_server::health();
    let mut background = tokio::task::JoinSet::new();
    if cluster.is_replicated() {
        let election = ElectionConfig {
            url: sql_store.url().to_string(),
            lease: config.coordinator.lease.get(),
            node: node_name(&config),
            address: config
                .coordinator
                .advertise
                .clone()
                .unwrap_or_else(|| grpc_addr.to_string()),
        };
        background.spawn(leader::run_election(
            cluster.clone(),
            election.clone(),
            stop_rx.clone(),
        ));
        background.spawn(follower::run_sync(
            sql_store.url().to_string(),
            election,
            engine.clone(),
            stop_rx.clone(),
        ));
    }
    let role_task = tokio::spawn(follower::control_role(
        cluster.clone(),
        follower::Scheduling {
            funnels: config.funnels.clone(),
            clients: preflight.clients.clone(),
            liveness: supervisors.clone(),
            max_inflight: config.coordinator.max_inflight_checks,
        },
        engine.clone(),
        metrics.clone(),
        reporter.clone(),
        stop_rx.clone(),
    ));
    let routes = tonic::service::Routes::new(GateApi::new(api.clone()).into_server());
    let limits = funnelgate_server::ServeLimits {
        drain_timeout: DRAIN_TIMEOUT,
        ..Default::default()
    };
    let mut grpc_task = tokio::spawn(funnelgate_server::serve_grpc_with_health(
        routes,
        &[funnelgate_proto::GATE_SERVICE],
        listeners.grpc,
        limits,
        reporter,
        health_service,
        stopped(stop_rx.clone()),
    ));
    let router = http::router(api.clone());
    let http_stop = stopped(stop_rx.clone());
    let mut http_task = tokio::spawn(async move {
        axum::serve(listeners.http, router)
            .with_graceful_shutdown(http_stop)
            .await
    });
    tracing::info!(grpc = %grpc_addr, http = %http_addr, funnels = gates.names().len(), config_hash = %gates.config_hash(), "coordinator serving");

    // Serve until asked to stop, or until a server fails.
    let mut failure: Option<CoordinatorError> = None;
    tokio::pin!(shutdown);
    let mut grpc_done = false;
    let mut http_done = false;
    tokio::select! {
        _ = &mut shutdown => tracing::info!("coordinator shutting down"),
        r = &mut grpc_task => {
            grpc_done = true;
            failure = Some(match r {
                Ok(Ok(())) => CoordinatorError::Task { task: "grpc server", reason: "stopped unexpectedly".into() },
                Ok(Err(e)) => e.into(),
                Err(e) => CoordinatorError::Task { task: "grpc server", reason: e.to_string() },
            });
        }
        r = &mut http_task => {
            http_done = true;
            failure = Some(match r {
                Ok(Ok(())) => CoordinatorError::Task { task: "http server", reason: "stopped unexpectedly".into() },
                Ok(Err(source)) => CoordinatorError::Http { addr: http_addr.to_string(), source },
                Err(e) => CoordinatorError::Task { task: "http server", reason: e.to_string() },
            });
        }
    }

    let _ = stop_tx.send(true);
    // The role task stops the scheduler; the election releases leadership.
    let _ = role_task.await;
    while background.join_next().await.is_some() {}
    while notify_tasks.join_next().await.is_some() {}
    if let Ok(supervisors) = Arc::try_unwrap(supervisors) {
        supervisors.stop().await;
    }
    engine.shutdown().await;
    if let Err(e) = engine_task.await {
        failure.get_or_insert(CoordinatorError::Task {
            task: "engine",
            reason: e.to_string(),
        });
    }
    if !grpc_done {
        match tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(1), &mut grpc_task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                failure.get_or_insert(e.into());
            }
            Ok(Err(e)) => {
                failure.get_or_insert(CoordinatorError::Task {
                    task: "grpc server",
                    reason: e.to_string(),
                });
            }
            Err(_) => grpc_task.abort(),
        }
    }
    if !http_done {
        match tokio::time::timeout(DRAIN_TIMEOUT, &mut http_task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(source))) => {
                failure.get_or_insert(CoordinatorError::Http {
                    addr: http_addr.to_string(),
                    source,
                });
            }
            Ok(Err(e)) => {
                failure.get_or_insert(CoordinatorError::Task {
                    task: "http server",
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                tracing::warn!(
                    "http connections did not close within the drain timeout: closing them"
                );
                http_task.abort();
            }
        }
    }
    store.close().await;
    tracing::info!("coordinator stopped");
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A coordinator running in this process (tests, `funnelgate up`): started with
/// [`Coordinator::spawn`], stopped with [`Coordinator::shutdown`]. Dropping the handle also
/// stops it (gracefully, in the background).
#[derive(Debug)]
pub struct Coordinator {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<(), CoordinatorError>>,
}

impl Coordinator {
    /// Bind the configured addresses (use port 0 to let the OS choose) and run the coordinator
    /// in a task. Returns at once: validation happens in the task, so a bad configuration shows
    /// up as the result of [`Coordinator::shutdown`] / [`Coordinator::wait`] (and nothing is
    /// served).
    pub async fn spawn(
        config: Config,
        env: HashMap<String, String>,
    ) -> Result<Self, CoordinatorError> {
        let listeners = bind(&config).await?;
        Self::spawn_on(config, listeners, env)
    }

    /// Like [`Coordinator::spawn`], on listeners the caller bound.
    pub fn spawn_on(
        config: Config,
        listeners: Listeners,
        env: HashMap<String, String>,
    ) -> Result<Self, CoordinatorError> {
        let (grpc_addr, http_addr) =
            listeners
                .local_addrs()
                .map_err(|source| CoordinatorError::Bind {
                    what: "grpc",
                    addr: config.coordinator.grpc_listen.clone(),
                    source,
                })?;
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(config, listeners, env, async move {
            let _ = stop_rx.await;
        }));
        Ok(Coordinator {
            grpc_addr,
            http_addr,
            stop: Some(stop),
            task,
        })
    }

    /// Where gRPC is served.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where HTTP is served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// `http://<grpc addr>` for tonic clients.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Has the coordinator stopped (e.g. refused its configuration)?
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stop and wait for a clean shutdown.
    pub async fn shutdown(mut self) -> Result<(), CoordinatorError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait().await
    }

    /// Wait until the coordinator stops by itself (or fails to start).
    pub async fn wait(self) -> Result<(), CoordinatorError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(CoordinatorError::Task {
                task: "coordinator",
                reason: e.to_string(),
            }),
        }
    }
}
