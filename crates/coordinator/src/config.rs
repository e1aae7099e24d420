//! The coordinator's configuration: one TOML or YAML file, every scalar key overridable by a
//! `FUNNELGATE__SECTION__KEY` environment variable, validated completely before anything starts.
//!
//! The structs below are the reference: every field's `///` is what `docs/config.md` explains.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use funnelgate_core::{FunnelPolicy, HumanDuration};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canonical::canonical_json;

/// Prefix of environment variables that override config keys (`FUNNELGATE__COORDINATOR__GRPC_LISTEN`).
pub const ENV_PREFIX: &str = "FUNNELGATE";
/// Separator between the prefix and key segments in override variables.
pub const ENV_SEPARATOR: &str = "__";
/// Prefix of the environment variables holding secrets (`FUNNELGATE_SECRET_ALICE_TOKEN`).
pub const SECRET_ENV_PREFIX: &str = "FUNNELGATE_SECRET_";
/// The `database` value that selects a private in-memory SQLite database (tests, demos).
pub const IN_MEMORY_DATABASE: &str = "sqlite::memory:";

// ---------------------------------------------------------------- errors

/// One configuration problem: where (key path) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Key path such as `funnels[0].stages[2].checker`; empty when the problem is the whole file.
    pub key: String,
    /// What is wrong and, where possible, how to fix it.
    pub reason: String,
    /// The environment variable the offending value came from (`FUNNELGATE__…`), when it did
    /// not come from the file: messages then name the variable instead of the file.
    pub env_var: Option<String>,
}

impl ConfigIssue {
    /// An issue at `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigIssue {
            key: key.into(),
            reason: reason.into(),
            env_var: None,
        }
    }

    /// Attribute the issue to `env_var` if its key was set by that override variable.
    fn attribute(mut self, overrides: &BTreeMap<String, String>) -> Self {
        if self.env_var.is_none() {
            self.env_var = overrides.get(&self.key).cloned();
        }
        self
    }
}

/// Every problem found in a configuration, each printed on its own line as
/// `<file>: <key>: <reason>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The configuration file (as given), for messages.
    pub file: String,
    /// Every problem, not just the first.
    pub issues: Vec<ConfigIssue>,
}

impl ConfigError {
    /// An error with a single issue.
    pub fn single(
        file: impl Into<String>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.into(),
            issues: vec![ConfigIssue::new(key, reason)],
        }
    }

    /// The keys of every issue (handy in tests and for tooling).
    pub fn keys(&self) -> Vec<&str> {
        self.issues.iter().map(|i| i.key.as_str()).collect()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let origin = match &issue.env_var {
                Some(var) => format!("environment variable {var}"),
                None => self.file.clone(),
            };
            if issue.key.is_empty() {
                write!(f, "{origin}: {}", issue.reason)?;
            } else {
                write!(f, "{origin}: {}: {}", issue.key, issue.reason)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- shape

fn default_grpc_listen() -> String {
    "127.0.0.1:7070".to_string()
}
fn default_http_listen() -> String {
    "127.0.0.1:7080".to_string()
}
fn default_database() -> String {
    "funnelgate.db".to_string()
}
fn default_lease() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_tick_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_startup_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_max_watchers() -> usize {
    20_000
}
fn default_max_inflight_checks() -> usize {
    256
}
fn default_checker_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

/// The whole coordinator configuration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the coordinator listens, where it keeps its state, and its timing.
    #[serde(default)]
    pub coordinator: CoordinatorSection,
    /// Who may change gates (overrides, phase).
    #[serde(default)]
    pub auth: AuthConfig,
    /// The stage checkers, by name (`[checkers.crm]`); a stage uses the checker named like the
    /// stage unless it names another with `checker = "…"`.
    #[serde(default)]
    pub checkers: BTreeMap<String, CheckerConfig>,
    /// The funnels this coordinator gates (`[[funnels]]`), each with its stages bottom-up, their
    /// probes and its gate policy.
    #[serde(default)]
    pub funnels: Vec<FunnelPolicy>,
    /// Notifications on gate changes (`[notifications]`, `[[notifications.sinks]]`).
    #[serde(default)]
    pub notifications: crate::notify::config::NotificationsConfig,
    /// The file this configuration was loaded from (not a config key).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Keys set by `FUNNELGATE__…` environment variables, with the variable (not a config key):
    /// problems with those keys name the variable, not the file.
    #[serde(skip)]
    pub env_overrides: BTreeMap<String, String>,
}

/// `[coordinator]`: listeners, storage and timing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorSection {
    /// `host:port` of the gRPC GateService, health and reflection (default `127.0.0.1:7070`).
    #[serde(default = "default_grpc_listen")]
    pub grpc_listen: String,
    /// `host:port` of the HTTP JSON API, `/metrics`, `/healthz` and `/readyz` (default `127.0.0.1:7080`).
    #[serde(default = "default_http_listen")]
    pub http_listen: String,
    /// Where state lives: a SQLite file, relative to the config file's directory (default
    /// `funnelgate.db`; `sqlite://path` also works); `sqlite::memory:` keeps everything in memory
    /// (lost on exit: tests and demos only); `postgres://user@host/db?sslmode=verify-full&sslrootcert=ca.pem`
    /// selects PostgreSQL, shared by replicas with leader election.
    #[serde(default = "default_database")]
    pub database: String,
    /// SQLite only: `normal` (default; WAL, a power loss may lose the last commits but never
    /// corrupts) or `full` (every acknowledged write survives a power loss; slower commits).
    #[serde(default)]
    pub sqlite_synchronous: SqliteSynchronous,
    /// PostgreSQL only: how long a leader may go without renewing its lease before another
    /// replica takes over (default `10s`).
    #[serde(default = "default_lease")]
    pub lease: HumanDuration,
    /// PostgreSQL only: the gRPC address other replicas and clients reach this replica at,
    /// named by followers when they refuse writes (default: the bound `grpc_listen` address).
    #[serde(default)]
    pub advertise: Option<String>,
    /// PostgreSQL only: this replica's name in `pg_stat_activity.application_name`
    /// (`funnelgate-<node_name>`) and in the leadership table (default: host name and pid).
    #[serde(default)]
    pub node_name: Option<String>,
    /// How often time-based rules (staleness, grace, soak, ramp, override expiry) are
    /// re-evaluated (default `5s`).
    #[serde(default = "default_tick_interval")]
    pub tick_interval: HumanDuration,
    /// How long start-up waits for every checker to answer `Describe` before serving without
    /// the ones that have not (they are validated when they first answer; default `10s`).
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout: HumanDuration,
    /// Maximum concurrent `WatchGate` streams (default 20000).
    #[serde(default = "default_max_watchers")]
    pub max_watchers: usize,
    /// Maximum checks in flight at once across all funnels and stages (default 256).
    #[serde(default = "default_max_inflight_checks")]
    pub max_inflight_checks: usize,
}

impl Default for CoordinatorSection {
    fn default() -> Self {
        CoordinatorSection {
            grpc_listen: default_grpc_listen(),
            http_listen: default_http_listen(),
            database: default_database(),
            sqlite_synchronous: SqliteSynchronous::default(),
            lease: default_lease(),
            advertise: None,
            node_name: None,
            tick_interval: default_tick_interval(),
            startup_timeout: default_startup_timeout(),
            max_watchers: default_max_watchers(),
            max_inflight_checks: default_max_inflight_checks(),
        }
    }
}

/// SQLite `synchronous` setting (`coordinator.sqlite_synchronous`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqliteSynchronous {
    /// WAL with `synchronous = NORMAL`: durable across process crashes; a power loss may lose
    /// the most recent commits (never corrupts the file).
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit is fsynced before it is acknowledged.
    Full,
}

/// `[auth]`: who may change gates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Operators and their tokens. Empty (the default) means anyone who can reach the gRPC port
    /// may set overrides and phases (recorded as actor `anonymous`; a warning is logged at start).
    #[serde(default)]
    pub operators: Vec<OperatorConfig>,
}

/// What an operator may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read everything and change gates (overrides, phase).
    #[default]
    Operator,
    /// Read everything; changing gates is PERMISSION_DENIED.
    Viewer,
}

impl Role {
    /// Lower-case name, as written in config.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

/// One operator (`auth.operators = [{ name = "alice", token_secret = "ALICE_TOKEN" }]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Who this is; recorded as the actor of every override and phase change they make.
    pub name: String,
    /// Name of the secret holding their bearer token, read from the environment variable
    /// `FUNNELGATE_SECRET_<token_secret>` (never the token itself).
    pub token_secret: String,
    /// `operator` (default: may change gates) or `viewer` (read only).
    #[serde(default)]
    pub role: Role,
}

/// `[checkers.<name>]`: one stage checker service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckerConfig {
    /// gRPC endpoint of the checker, e.g. `http://127.0.0.1:7101`.
    pub endpoint: String,
    /// Deadline of one `Check` call; past it the stage reports TIMEOUT (default `30s`).
    #[serde(default = "default_checker_timeout")]
    pub timeout: HumanDuration,
    /// Deadline for opening a connection to the checker (default `5s`).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
}

impl CheckerConfig {
    /// A checker at `endpoint` with default timeouts.
    pub fn new(endpoint: impl Into<String>) -> Self {
        CheckerConfig {
            endpoint: endpoint.into(),
            timeout: default_checker_timeout(),
            connect_timeout: default_connect_timeout(),
        }
    }
}

/// Where the database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// A private in-memory database.
    InMemory,
    /// A SQLite file (`path` or `sqlite://path`).
    File(PathBuf),
    /// A PostgreSQL database (`postgres://…` or `postgresql://…` URL, sqlx options such as
    /// `sslmode` and `sslrootcert` included).
    Postgres(String),
}

// ---------------------------------------------------------------- loading

impl Config {
    /// A configuration with default settings and the given checkers and funnels (for tests and
    /// for building a config in code, e.g. `funnelgate up`).
    pub fn new(checkers: BTreeMap<String, CheckerConfig>, funnels: Vec<FunnelPolicy>) -> Self {
        Config {
            coordinator: CoordinatorSection::default(),
            auth: AuthConfig::default(),
            checkers,
            funnels,
            notifications: Default::default(),
            source: None,
            env_overrides: BTreeMap::new(),
        }
    }

    /// The file name used in messages.
    pub fn file_label(&self) -> String {
        self.source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<config>".to_string())
    }

    /// The database location: `sqlite::memory:`, or the file resolved against the config
    /// file's directory.
    pub fn database_location(&self) -> DatabaseLocation {
        let db = self.coordinator.database.trim();
        if db == IN_MEMORY_DATABASE {
            return DatabaseLocation::InMemory;
        }
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            return DatabaseLocation::Postgres(db.to_string());
        }
        let db = db.strip_prefix("sqlite://").unwrap_or(db);
        let path = Path::new(db);
        if path.is_absolute() {
            return DatabaseLocation::File(path.to_path_buf());
        }
        let base = self
            .source
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        DatabaseLocation::File(base.join(path))
    }

    /// Hex SHA-256 of the canonical JSON of the effective funnels configuration (defaults filled
    /// in); stored with every decision so history says which config produced it.
    pub fn hash(&self) -> String {
        let value = serde_json::to_value(&self.funnels).unwrap_or(serde_json::Value::Null);
        hex::encode(Sha256::digest(canonical_json(&value).as_bytes()))
    }

    /// The funnel named `name`.
    pub fn funnel(&self, name: &str) -> Option<&FunnelPolicy> {
        self.funnels.iter().find(|f| f.name == name)
    }

    /// Check everything that can be checked without the network: funnel policies, duplicate
    /// funnels, stages whose checker is not configured, listen addresses, checker endpoints,
    /// timings, operators. Every problem is reported, each with its key path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let issues: Vec<ConfigIssue> = self
            .issues()
            .into_iter()
            .map(|i| i.attribute(&self.env_overrides))
            .collect();
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                file: self.file_label(),
                issues,
            })
        }
    }

    fn issues(&self) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        let c = &self.coordinator;
        for (key, addr) in [
            ("coordinator.grpc_listen", &c.grpc_listen),
            ("coordinator.http_listen", &c.http_listen),
        ] {
            if let Err(reason) = check_listen_address(addr) {
                out.push(ConfigIssue::new(key, reason));
            }
        }
        // Port 0 lets the OS pick a free port for each listener, so equal strings are fine then.
        if c.grpc_listen.trim() == c.http_listen.trim() && !c.grpc_listen.trim().ends_with(":0") {
            out.push(ConfigIssue::new(
                "coordinator.http_listen",
                format!(
                    "`{}` is also grpc_listen: gRPC and HTTP need different ports",
                    c.http_listen
                ),
            ));
        }
        if c.database.trim().is_empty() {
            out.push(ConfigIssue::new(
                "coordinator.database",
                "must name a SQLite file, `sqlite::memory:` or a `postgres://` URL",
            ));
        }
        if c.lease.get() < std::time::Duration::from_millis(500) {
            out.push(ConfigIssue::new(
                "coordinator.lease",
                format!(
                    "`{}` is too short: at least 500ms (renewals happen every fifth of the lease)",
                    c.lease
                ),
            ));
        }
        if c.tick_interval.get().is_zero() {
            out.push(ConfigIssue::new(
                "coordinator.tick_interval",
                "must be greater than 0s",
            ));
        }
        if c.startup_timeout.get().is_zero() {
            out.push(ConfigIssue::new(
                "coordinator.startup_timeout",
                "must be greater than 0s",
            ));
        }
        if c.max_watchers == 0 {
            out.push(ConfigIssue::new(
                "coordinator.max_watchers",
                "must be at least 1",
            ));
        }
        if c.max_inflight_checks == 0 {
            out.push(ConfigIssue::new(
                "coordinator.max_inflight_checks",
                "must be at least 1",
            ));
        }

        out.extend(self.notifications.issues(&self.funnels));

        let mut names = HashSet::new();
        let mut secrets = HashSet::new();
        for (i, op) in self.auth.operators.iter().enumerate() {
            let key = format!("auth.operators[{i}]");
            if op.name.trim().is_empty() {
                out.push(ConfigIssue::new(format!("{key}.name"), "must not be empty"));
            } else if !names.insert(op.name.as_str()) {
                out.push(ConfigIssue::new(
                    format!("{key}.name"),
                    format!("duplicate operator `{}`", op.name),
                ));
            }
            if !is_secret_name(&op.token_secret) {
                out.push(ConfigIssue::new(
                    format!("{key}.token_secret"),
                    format!(
                        "`{}` must be a secret name of [A-Za-z0-9_] (the token is read from {SECRET_ENV_PREFIX}<name>), not a token",
                        op.token_secret
                    ),
                ));
            } else if !secrets.insert(op.token_secret.as_str()) {
                out.push(ConfigIssue::new(
                    format!("{key}.token_secret"),
                    format!(
                        "secret `{}` is already used by another operator: tokens must be distinct",
                        op.token_secret
                    ),
                ));
            }
        }

        for (name, checker) in &self.checkers {
            let key = format!("checkers.{name}");
            if !funnelgate_core::policy::is_valid_ident(name) {
                out.push(ConfigIssue::new(
                    key.clone(),
                    format!("`{name}` is not a valid checker name"),
                ));
            }
            if let Err(reason) = check_endpoint(&checker.endpoint) {
                out.push(ConfigIssue::new(format!("{key}.endpoint"), reason));
            }
            if checker.timeout.get().is_zero() {
                out.push(ConfigIssue::new(
                    format!("{key}.timeout"),
                    "must be greater than 0s",
                ));
            }
            if checker.connect_timeout.get().is_zero() {
                out.push(ConfigIssue::new(
                    format!("{key}.connect_timeout"),
                    "must be greater than 0s",
                ));
            }
        }

        if self.funnels.is_empty() {
            out.push(ConfigIssue::new(
                "funnels",
                "no funnels configured: add at least one [[funnels]] table",
            ));
        }
        let mut funnel_names: HashMap<&str, usize> = HashMap::new();
        let configured = self
            .checkers
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        for (i, funnel) in self.funnels.iter().enumerate() {
            let prefix = format!("funnels[{i}]");
            if let Err(e) = funnel.validate(&prefix) {
                out.extend(
                    e.issues
                        .into_iter()
                        .map(|p| ConfigIssue::new(p.key, p.reason)),
                );
            }
            if let Some(first) = funnel_names.insert(funnel.name.as_str(), i) {
                out.push(ConfigIssue::new(
                    format!("{prefix}.name"),
                    format!("duplicate funnel `{}` (also funnels[{first}])", funnel.name),
                ));
            }
            for (si, stage) in funnel.stages.iter().enumerate() {
                let checker = stage.checker_name();
                if !self.checkers.contains_key(checker) {
                    let configured = if configured.is_empty() {
                        "none".to_string()
                    } else {
                        configured.clone()
                    };
                    out.push(ConfigIssue::new(
                        format!("{prefix}.stages[{si}].checker"),
                        format!(
                            "stage `{}` uses checker `{checker}`, which has no [checkers.{checker}] entry (configured checkers: {configured})",
                            stage.name
                        ),
                    ));
                }
            }
        }
        out
    }
}

pub(crate) fn is_secret_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `host:port` with a numeric port; the host may be an IP or a name.
fn check_listen_address(addr: &str) -> Result<(), String> {
    let addr = addr.trim();
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    match addr.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty()
                && port.parse::<u16>().is_ok()
                && host
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.') =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{addr}` is not a listen address (want host:port, e.g. 127.0.0.1:7070)"
        )),
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let uri: axum::http::Uri = endpoint
        .parse()
        .map_err(|e| format!("`{endpoint}` is not a URL: {e} (want e.g. http://127.0.0.1:7101)"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "`{endpoint}`: https endpoints are not supported by this build yet (TLS to checkers is not wired in); use http://"
            ));
        }
        _ => {
            return Err(format!(
                "`{endpoint}` must start with http:// (e.g. http://127.0.0.1:7101)"
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{endpoint}` has no host"));
    }
    Ok(())
}

/// Load a configuration file (format from its extension: `.toml`, `.yaml`/`.yml`), apply
/// `FUNNELGATE__…` overrides from `env` (keys lowercased, segments separated by `__`), and
/// deserialise it. Unknown keys are errors naming the key. Does not call [`Config::validate`].
pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let format = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("toml") => config::FileFormat::Toml,
        Some("yaml" | "yml") => config::FileFormat::Yaml,
        other => {
            return Err(ConfigError::single(
                file,
                "",
                format!(
                    "unsupported config file extension {}: use .toml, .yaml or .yml",
                    other
                        .map(|e| format!("`.{e}`"))
                        .unwrap_or_else(|| "(none)".to_string())
                ),
            ));
        }
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::single(
            file.clone(),
            "",
            format!("cannot read the config file: {e}"),
        )
    })?;
    let mut config = from_str(&text, format, &file, env)?;
    config.source = Some(path.to_path_buf());
    Ok(config)
}

/// Parse configuration text (as [`load`] does for a file). `file` is used in messages.
pub fn from_str(
    text: &str,
    format: config::FileFormat,
    file: &str,
    env: &HashMap<String, String>,
) -> Result<Config, ConfigError> {
    let overrides: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let env_keys = override_keys(overrides.keys());
    let built = config::Config::builder()
        .add_source(config::File::from_str(text, format))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .source(Some(overrides)),
        )
        .build()
        .map_err(|e| {
            ConfigError::single(file, "", format!("cannot parse: {}", config_error_text(&e)))
        })?;
    let mut config = serde_path_to_error::deserialize::<_, Config>(built).map_err(|e| {
        let key = path_to_key(e.path());
        let reason = config_error_text(e.inner());
        ConfigError {
            file: file.to_string(),
            issues: vec![ConfigIssue::new(key, reason).attribute(&env_keys)],
        }
    })?;
    config.env_overrides = env_keys;
    Ok(config)
}

/// The config key each `FUNNELGATE__A__B_C` variable sets (`a.b_c`), with the variable.
fn override_keys<'a>(vars: impl Iterator<Item = &'a String>) -> BTreeMap<String, String> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    vars.filter_map(|var| {
        let rest = var.strip_prefix(&prefix)?;
        let key = rest
            .split(ENV_SEPARATOR)
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(".");
        Some((key, var.clone()))
    })
    .collect()
}

/// serde_path_to_error's path as our key syntax (`funnels[0].stages[1].name`).
fn path_to_key(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// A parser's multi-line message (with a source excerpt) as one line: the excerpt is dropped,
/// the location and the reason are kept.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| {
            let rest = l
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            !rest.starts_with('|')
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// The config crate's message without its own key/origin decorations (we print the key).
fn config_error_text(e: &config::ConfigError) -> String {
    match e {
        config::ConfigError::At { error, .. } => config_error_text(error),
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        config::ConfigError::FileParse { cause, .. } => one_line(&cause.to_string()),
        other => one_line(&other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert!(check_listen_address("127.0.0.1:7070").is_ok());
        assert!(check_listen_address("[::1]:7070").is_ok());
        assert!(check_listen_address("localhost:0").is_ok());
        assert!(check_listen_address("7070").is_err());
        assert!(check_listen_address("127.0.0.1:70700").is_err());
        assert!(check_listen_address("http://x:1").is_err());
    }

    #[test]
    fn endpoints() {
        assert!(check_endpoint("http://127.0.0.1:7101").is_ok());
        assert!(
            check_endpoint("https://crm:7101")
                .unwrap_err()
                .contains("https")
        );
        assert!(check_endpoint("127.0.0.1:7101").is_err());
        assert!(check_endpoint("not a url").is_err());
    }

    #[test]
    fn error_display_one_issue_per_line() {
        let e = ConfigError {
            file: "f.toml".into(),
            issues: vec![
                ConfigIssue::new("a.b", "bad"),
                ConfigIssue::new("", "worse"),
            ],
        };
        assert_eq!(e.to_string(), "f.toml: a.b: bad\nf.toml: worse");
    }
}
