//! The coordinator as a `StageChecker` client: lazily connected channels with timeouts, the
//! `Describe` handshake at start (retried until `startup_timeout`; a checker that does not answer
//! by then is not an error, see [`crate::liveness`]), and validation of every configured probe
//! against what its checker supports (kind and params schema).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use funnelgate_proto::pb;
use funnelgate_proto::pb::stage_checker_client::StageCheckerClient;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::config::{CheckerConfig, Config, ConfigIssue};
use crate::schema;

/// One configured checker.
#[derive(Clone, Debug)]
pub struct CheckerClient {
    name: String,
    endpoint: String,
    timeout: Duration,
    connect_timeout: Duration,
    channel: Channel,
    client: StageCheckerClient<Channel>,
}

/// Why a `Check` produced no report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Connecting or talking to the checker failed.
    Unreachable(String),
    /// The deadline passed.
    Timeout(Duration),
    /// The checker answered with an error status.
    Status(tonic::Code, String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(m) => write!(f, "unreachable: {m}"),
            CallError::Timeout(d) => {
                write!(f, "no answer within {}", funnelgate_core::HumanDuration(*d))
            }
            CallError::Status(code, m) => write!(f, "answered {code:?}: {m}"),
        }
    }
}

/// The status message plus its transport cause, which tonic keeps in `source`.
fn status_text(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        let s = e.to_string();
        if !text.contains(&s) {
            text = if text.is_empty() {
                s
            } else {
                format!("{text}: {s}")
            };
        }
        source = e.source();
    }
    if text.is_empty() {
        format!("{:?}", status.code())
    } else {
        text
    }
}

impl CallError {
    /// Classify a failed call's status (`timeout` is the deadline the call had).
    pub fn from_status(status: tonic::Status, timeout: Duration) -> Self {
        classify(status, timeout)
    }
}

fn classify(status: tonic::Status, timeout: Duration) -> CallError {
    match status.code() {
        tonic::Code::DeadlineExceeded => CallError::Timeout(timeout),
        tonic::Code::Cancelled if status.message().to_ascii_lowercase().contains("timeout") => {
            CallError::Timeout(timeout)
        }
        tonic::Code::Unavailable => CallError::Unreachable(status_text(&status)),
        tonic::Code::Unknown if status.message().to_ascii_lowercase().contains("transport") => {
            CallError::Unreachable(status_text(&status))
        }
        code => CallError::Status(code, status_text(&status)),
    }
}

impl CheckerClient {
    /// A client for checker `name`; connects on first use.
    pub fn new(name: &str, config: &CheckerConfig) -> Result<Self, String> {
        let endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|e| format!("`{}` is not a valid endpoint: {e}", config.endpoint))?
            .connect_timeout(config.connect_timeout.get())
            .tcp_nodelay(true)
            // A peer that vanishes without closing its socket is noticed within ~15 s.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        Ok(CheckerClient {
            name: name.to_string(),
            endpoint: config.endpoint.clone(),
            timeout: config.timeout.get(),
            connect_timeout: config.connect_timeout.get(),
            client: StageCheckerClient::new(channel.clone()),
            channel,
        })
    }

    /// The checker's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The `Check` deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connection timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The (lazily connected, shared) channel, for other services of the same checker (health).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// `name at endpoint`, as messages show it.
    pub fn label(&self) -> String {
        format!("{} at {}", self.name, self.endpoint)
    }

    /// Call `Describe` with a deadline.
    pub async fn describe(&self, timeout: Duration) -> Result<pb::DescribeResponse, CallError> {
        let mut request = tonic::Request::new(pb::DescribeRequest {});
        request.set_timeout(timeout);
        let mut client = self.client.clone();
        match tokio::time::timeout(timeout, client.describe(request)).await {
            Err(_) => Err(CallError::Timeout(timeout)),
            Ok(Err(status)) => Err(classify(status, timeout)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    /// Call `Check` with the checker's deadline; never waits longer than that.
    pub async fn check(&self, request: pb::CheckRequest) -> Result<pb::CheckResponse, CallError> {
        let mut request = tonic::Request::new(request);
        request.set_timeout(self.timeout);
        let mut client = self.client.clone();
        match tokio::time::timeout(self.timeout, client.check(request)).await {
            Err(_) => Err(CallError::Timeout(self.timeout)),
            Ok(Err(status)) => Err(classify(status, self.timeout)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }
}

/// Build a client for every configured checker.
pub fn clients(config: &Config) -> Result<BTreeMap<String, CheckerClient>, Vec<ConfigIssue>> {
    let mut out = BTreeMap::new();
    let mut issues = Vec::new();
    for (name, cfg) in &config.checkers {
        match CheckerClient::new(name, cfg) {
            Ok(c) => {
                out.insert(name.clone(), c);
            }
            Err(reason) => issues.push(ConfigIssue::new(
                format!("checkers.{name}.endpoint"),
                reason,
            )),
        }
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

/// Names of the checkers some stage uses.
pub fn used_checkers(config: &Config) -> BTreeSet<String> {
    config
        .funnels
        .iter()
        .flat_map(|f| f.stages.iter().map(|s| s.checker_name().to_string()))
        .collect()
}

/// Call `Describe` on one checker until it answers or `deadline` passes, with backoff; the
/// error says how often it was asked and why it did not answer.
async fn describe_until(
    client: &CheckerClient,
    deadline: Instant,
    budget: Duration,
) -> Result<pb::DescribeResponse, String> {
    let mut backoff = Duration::from_millis(100);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let per_try = remaining
            .min(Duration::from_secs(5))
            .max(Duration::from_millis(50));
        let error = match client.describe(per_try).await {
            Ok(d) => {
                tracing::info!(checker = %client.name(), endpoint = %client.endpoint(), name = %d.name, version = %d.version,
                    kinds = d.probe_kinds.len(), "checker described itself");
                return Ok(d);
            }
            Err(e) => e,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(format!(
                "checker `{}` did not answer Describe within {} ({attempt} attempts): {error}",
                client.label(),
                funnelgate_core::HumanDuration(budget)
            ));
        }
        tracing::info!(checker = %client.name(), endpoint = %client.endpoint(), attempt, %error,
            retry_in = ?backoff.min(remaining), "waiting for checker to answer Describe");
        tokio::time::sleep(backoff.min(remaining)).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// What asking every checker `Describe` at start established.
#[derive(Debug, Default)]
pub struct Described {
    /// The checkers that answered, with their answer.
    pub answered: BTreeMap<String, pb::DescribeResponse>,
    /// The checkers that did not answer within the start-up budget, with why. Not an error:
    /// they are validated when they first answer ([`crate::liveness`]).
    pub unreachable: BTreeMap<String, String>,
}

/// Describe every checker a stage uses, concurrently, each retried until `startup_timeout`.
pub async fn describe_all(
    clients: &BTreeMap<String, CheckerClient>,
    used: &BTreeSet<String>,
    startup_timeout: Duration,
) -> Described {
    let deadline = Instant::now() + startup_timeout;
    let calls =
        clients
            .iter()
            .filter(|(name, _)| used.contains(*name))
            .map(|(name, client)| async move {
                (
                    name.clone(),
                    describe_until(client, deadline, startup_timeout).await,
                )
            });
    let mut out = Described::default();
    for (name, result) in futures::future::join_all(calls).await {
        match result {
            Ok(d) => {
                out.answered.insert(name, d);
            }
            Err(reason) => {
                tracing::warn!(checker = %name, %reason, "starting without this checker: its stages are UNKNOWN (UNREACHABLE) until it answers");
                out.unreachable.insert(name, reason);
            }
        }
    }
    for name in clients.keys().filter(|n| !used.contains(*n)) {
        tracing::warn!(checker = %name, "checker is configured but no stage uses it");
    }
    out
}

/// Check every probe of every stage against its checker's `Describe`: the kind must be
/// supported and the params must satisfy the published schema.
pub fn validate_probes(
    config: &Config,
    described: &BTreeMap<String, pb::DescribeResponse>,
) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    // Parse each published schema once.
    let mut schemas: BTreeMap<(&str, &str), Option<schema::ParamsSchema>> = BTreeMap::new();
    for (name, d) in described {
        for k in &d.probe_kinds {
            let parsed = if k.params_schema_json.trim().is_empty() {
                None
            } else {
                match serde_json::from_str(&k.params_schema_json)
                    .map_err(|e| e.to_string())
                    .and_then(|v| schema::ParamsSchema::compile(&v))
                {
                    Ok(v) => Some(v),
                    Err(error) => {
                        tracing::warn!(checker = %name, kind = %k.kind, %error,
                            "checker published an unreadable params schema: params of this kind are not checked at start");
                        None
                    }
                }
            };
            schemas.insert((name.as_str(), k.kind.as_str()), parsed);
        }
    }
    for (fi, funnel) in config.funnels.iter().enumerate() {
        for (si, stage) in funnel.stages.iter().enumerate() {
            let checker = stage.checker_name();
            let Some(d) = described.get(checker) else {
                continue;
            };
            let endpoint = config
                .checkers
                .get(checker)
                .map(|c| c.endpoint.as_str())
                .unwrap_or("");
            for (pi, probe) in stage.probes.iter().enumerate() {
                let key = format!("funnels[{fi}].stages[{si}].probes[{pi}]");
                match schemas.get(&(checker, probe.kind.as_str())) {
                    None => {
                        let mut kinds: Vec<&str> =
                            d.probe_kinds.iter().map(|k| k.kind.as_str()).collect();
                        kinds.sort_unstable();
                        let supported = if kinds.is_empty() {
                            "nothing".to_string()
                        } else {
                            kinds.join(", ")
                        };
                        issues.push(ConfigIssue::new(
                            format!("{key}.kind"),
                            format!(
                                "checker `{checker}` at {endpoint} does not support probe kind `{}`; it supports: {supported}",
                                probe.kind
                            ),
                        ));
                    }
                    Some(None) => {}
                    Some(Some(schema)) => {
                        for v in schema.check(&probe.params) {
                            let k = if v.path.is_empty() {
                                format!("{key}.params")
                            } else if v.path.starts_with('[') {
                                format!("{key}.params{}", v.path)
                            } else {
                                format!("{key}.params.{}", v.path)
                            };
                            issues.push(ConfigIssue::new(
                                k,
                                format!(
                                    "{} (probe kind `{}` of checker `{checker}`)",
                                    v.message, probe.kind
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    issues
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use funnelgate_core::{FunnelPolicy, GatePolicy, ProbeSpec, StagePolicy};

    fn config() -> Config {
        let mut crm = StagePolicy::new("crm");
        let mut p = ProbeSpec::new("leads", "sql");
        p.params = serde_json::json!({"query": "select 1", "extra": 1});
        crm.probes.push(p);
        crm.probes.push(ProbeSpec::new("pipes", "hubspot.x"));
        let funnel = FunnelPolicy {
            name: "acme".into(),
            stages: vec![crm],
            gate: GatePolicy::default(),
        };
        Config::new(
            BTreeMap::from([("crm".to_string(), CheckerConfig::new("http://127.0.0.1:1"))]),
            vec![funnel],
        )
    }

    fn describe() -> pb::DescribeResponse {
        let schema = serde_json::json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"], "additionalProperties": false});
        pb::DescribeResponse {
            stage: "crm".into(),
            probe_kinds: vec![
                pb::ProbeKindInfo {
                    kind: "sql".into(),
                    params_schema_json: schema.to_string(),
                    ..Default::default()
                },
                pb::ProbeKindInfo {
                    kind: "http".into(),
                    ..Default::default()
                },
            ],
            version: "1".into(),
            name: "fake".into(),
        }
    }

    #[test]
    fn unsupported_kinds_and_bad_params_are_reported_together() {
        let issues = validate_probes(
            &config(),
            &BTreeMap::from([("crm".to_string(), describe())]),
        );
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "funnels[0].stages[0].probes[0].params.extra",
                "funnels[0].stages[0].probes[1].kind"
            ]
        );
        assert_eq!(
            issues[1].reason,
            "checker `crm` at http://127.0.0.1:1 does not support probe kind `hubspot.x`; it supports: http, sql"
        );
    }
}
