//! The `StageChecker` gRPC service: `Describe` publishes the stage, the probe kinds and their
//! params schemas; `Check` validates the request, runs the probes with the [`Runner`] within the
//! caller's deadline and returns the stage report.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use funnelgate_core::ProbeSpec;
use funnelgate_proto::pb;
use funnelgate_proto::pb::stage_checker_server::{StageChecker, StageCheckerServer};
use funnelgate_server::ServeLimits;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::registry::ProbeRegistry;
use crate::runner::{DEFAULT_MAX_CONCURRENCY, Runner, RunnerError, far_instant};
use crate::secrets::SecretStore;

/// Most probes one `Check` may carry (bounded fan-out).
pub const MAX_PROBES_PER_CHECK: usize = 500;

/// Version of this checker build, reported by `Describe`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a stage checker serves.
#[derive(Clone, Debug)]
pub struct CheckerServerConfig {
    /// The stage served by default, e.g. `crm` (a `Check` may name another stage).
    pub stage: String,
    /// Name of the checker implementation, e.g. `funnelgate-checker-crm`.
    pub name: String,
    /// Probe kinds served: the generic ones plus the plugin's.
    pub registry: ProbeRegistry,
    /// Where probe secrets are resolved.
    pub secrets: SecretStore,
    /// Probes run at once within one check; 0 means the default (8).
    pub max_concurrency: usize,
}

/// Errors starting or running a checker server.
#[derive(Debug, thiserror::Error)]
pub enum CheckerServeError {
    /// The runner could not be set up.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] funnelgate_server::ServeError),
}

/// The `StageChecker` implementation.
#[derive(Debug)]
pub struct CheckerService {
    runner: Runner,
    stage: String,
    describe: pb::DescribeResponse,
}

impl CheckerService {
    /// Build the service with its own [`Runner`] (and shared HTTP client).
    pub fn new(cfg: CheckerServerConfig) -> Result<CheckerService, RunnerError> {
        let max = if cfg.max_concurrency == 0 {
            DEFAULT_MAX_CONCURRENCY
        } else {
            cfg.max_concurrency
        };
        let runner = Runner::new(cfg.registry, cfg.secrets)?.with_max_concurrency(max);
        Ok(CheckerService::with_runner(cfg.stage, cfg.name, runner))
    }

    /// Build the service around an existing runner (e.g. one shared with `funnelgate probe run`).
    pub fn with_runner(stage: String, name: String, runner: Runner) -> CheckerService {
        let runner = runner.with_checker_name(format!("{name}/{VERSION}"));
        let probe_kinds = runner
            .registry()
            .kinds()
            .map(|f| pb::ProbeKindInfo {
                kind: f.kind().to_string(),
                description: f.description().to_string(),
                params_schema_json: f.params_schema().to_string(),
                vendors: f.vendors(),
                unit: f.unit().to_string(),
                default_thresholds: f.default_thresholds().as_ref().map(Into::into),
            })
            .collect();
        let describe = pb::DescribeResponse {
            stage: stage.clone(),
            probe_kinds,
            version: VERSION.to_string(),
            name,
        };
        CheckerService {
            runner,
            stage,
            describe,
        }
    }

    /// The runner behind the service.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }
}

/// Parse a `grpc-timeout` header value: at most 8 digits and a unit `H`, `M`, `S`, `m`
/// (milliseconds), `u` (microseconds) or `n` (nanoseconds), per the gRPC HTTP/2 protocol.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 || !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Time kept back from the caller's timeout so the reply reaches it before its deadline.
fn reply_margin(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(20), Duration::from_millis(500))
}

/// Validate a `Check` request and convert its probes (INVALID_ARGUMENT naming the field).
fn validate(req: &pb::CheckRequest) -> Result<Vec<ProbeSpec>, Status> {
    if req.funnel.trim().is_empty() {
        return Err(Status::invalid_argument("`funnel` must not be empty"));
    }
    if req.probes.len() > MAX_PROBES_PER_CHECK {
        return Err(Status::invalid_argument(format!(
            "`probes`: {} probes in one check, at most {MAX_PROBES_PER_CHECK}",
            req.probes.len()
        )));
    }
    let mut seen = HashSet::with_capacity(req.probes.len());
    let mut specs = Vec::with_capacity(req.probes.len());
    for p in &req.probes {
        let spec = ProbeSpec::try_from(p)?;
        if !seen.insert(spec.id.clone()) {
            return Err(Status::invalid_argument(format!(
                "`probes[{}].id`: duplicate probe id `{}`",
                spec.id, spec.id
            )));
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[tonic::async_trait]
impl StageChecker for CheckerService {
    async fn describe(
        &self,
        _request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        Ok(Response::new(self.describe.clone()))
    }

    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let received = Instant::now();
        let timeout = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let req = request.into_inner();
        let specs = validate(&req)?;
        let stage = if req.stage.is_empty() {
            self.stage.clone()
        } else {
            req.stage.clone()
        };
        let deadline = timeout.map(|t| far_instant(received, t.saturating_sub(reply_margin(t))));
        tracing::debug!(funnel = %req.funnel, %stage, probes = specs.len(), ?timeout, "check");
        let max_concurrency = usize::try_from(req.max_concurrency).ok();
        let report = self
            .runner
            .check_with_concurrency(&req.funnel, &stage, specs, deadline, max_concurrency)
            .await;
        Ok(Response::new(pb::CheckResponse {
            report: Some((&report).into()),
        }))
    }
}

/// The `StageChecker` service for `cfg`, ready to mount with other services.
pub fn stage_checker_service(
    cfg: CheckerServerConfig,
) -> Result<StageCheckerServer<CheckerService>, RunnerError> {
    Ok(StageCheckerServer::new(CheckerService::new(cfg)?))
}

/// Serve a stage checker (with health and reflection) on `listener` until `shutdown`
/// resolves, then drain.
pub async fn serve_checker(
    cfg: CheckerServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CheckerServeError> {
    serve_checker_with_limits(cfg, listener, ServeLimits::default(), shutdown).await
}

/// [`serve_checker`] with explicit server limits.
pub async fn serve_checker_with_limits(
    cfg: CheckerServerConfig,
    listener: TcpListener,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CheckerServeError> {
    let routes = tonic::service::Routes::new(stage_checker_service(cfg)?);
    funnelgate_server::serve_grpc(
        routes,
        &[funnelgate_proto::STAGE_CHECKER_SERVICE],
        listener,
        limits,
        shutdown,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("1S"), Some(Duration::from_secs(1)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("999m"), Some(Duration::from_millis(999)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("123456789S"), None, "at most 8 digits");
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("10s"), None, "units are case-sensitive");
        assert_eq!(parse_grpc_timeout("-1S"), None);
    }

    #[test]
    fn margin_is_bounded() {
        assert_eq!(
            reply_margin(Duration::from_secs(1)),
            Duration::from_millis(100)
        );
        assert_eq!(
            reply_margin(Duration::from_millis(50)),
            Duration::from_millis(20)
        );
        assert_eq!(
            reply_margin(Duration::from_secs(60)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn requests_are_validated() {
        let probe = |id: &str| pb::ProbeSpec {
            id: id.into(),
            kind: "http".into(),
            ..Default::default()
        };
        let ok = pb::CheckRequest {
            funnel: "f".into(),
            probes: vec![probe("a"), probe("b")],
            ..Default::default()
        };
        assert_eq!(validate(&ok).unwrap().len(), 2);
        let e = validate(&pb::CheckRequest {
            funnel: " ".into(),
            ..ok.clone()
        })
        .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let e = validate(&pb::CheckRequest {
            probes: vec![probe("a"), probe("a")],
            ..ok.clone()
        })
        .unwrap_err();
        assert!(
            e.message().contains("duplicate probe id `a`"),
            "{}",
            e.message()
        );
        let many = (0..501).map(|i| probe(&format!("p{i}"))).collect();
        let e = validate(&pb::CheckRequest {
            probes: many,
            ..ok.clone()
        })
        .unwrap_err();
        assert!(e.message().contains("at most 500"), "{}", e.message());
        let e = validate(&pb::CheckRequest {
            probes: vec![probe("")],
            ..ok
        })
        .unwrap_err();
        assert!(e.message().contains("probes.id"), "{}", e.message());
    }
}
