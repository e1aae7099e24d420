//! In-process servers the load generator measures against: a stage checker whose probes pass at
//! once (so the coordinator has a realistic 4 × 25 funnel without any vendor), and the baseline,
//! a bare tonic `GateService` whose `GetGate` answers a canned response (the same message the
//! coordinator answers, so encoding cost is the same and only the serving path differs).

use std::pin::Pin;
use std::sync::Arc;

use funnelgate_proto::pb;
use funnelgate_proto::pb::gate_service_server::{GateService, GateServiceServer};
use funnelgate_proto::pb::stage_checker_server::{StageChecker, StageCheckerServer};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Accepted connections with TCP_NODELAY: `Server::tcp_nodelay` only applies to listeners tonic
/// binds itself, and without it every small response waits for the peer's delayed ACK (~40 ms).
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// The probe kind the fake checker serves.
pub const FAKE_KIND: &str = "loadgen.constant";

/// A stage checker whose every probe PASSes with value 1 immediately.
#[derive(Clone, Debug)]
pub struct FakeChecker {
    /// The stage it serves.
    pub stage: String,
}

#[tonic::async_trait]
impl StageChecker for FakeChecker {
    async fn describe(
        &self,
        _req: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        Ok(Response::new(pb::DescribeResponse {
            stage: self.stage.clone(),
            probe_kinds: vec![pb::ProbeKindInfo {
                kind: FAKE_KIND.into(),
                description: "always passes with value 1 (load generator)".into(),
                params_schema_json: r#"{"type":"object"}"#.into(),
                vendors: Vec::new(),
                unit: "count".into(),
                default_thresholds: None,
            }],
            version: env!("CARGO_PKG_VERSION").into(),
            name: "loadgen-fake".into(),
        }))
    }

    async fn check(
        &self,
        req: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let req = req.into_inner();
        let now = std::time::SystemTime::now();
        let ts = prost_types::Timestamp::from(now);
        let results = req
            .probes
            .iter()
            .map(|p| pb::ProbeResult {
                id: p.id.clone(),
                kind: p.kind.clone(),
                status: pb::ProbeStatus::Pass as i32,
                value: Some(1.0),
                unit: "count".into(),
                message: "constant 1".into(),
                observed_at: Some(ts),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(pb::CheckResponse {
            report: Some(pb::StageReport {
                funnel: req.funnel,
                stage: req.stage,
                results,
                checked_at: Some(ts),
                duration: Some(prost_types::Duration::default()),
                checker: "loadgen-fake".into(),
            }),
        }))
    }
}

/// Serve a fake checker on `listener` until the runtime stops.
pub async fn serve_checker(
    stage: &str,
    listener: TcpListener,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(StageCheckerServer::new(FakeChecker {
            stage: stage.to_string(),
        }))
        .serve_with_incoming(incoming(listener))
        .await
}

/// The baseline: a bare tonic unary service answering a canned `GetGate` response.
#[derive(Clone, Debug)]
pub struct Baseline {
    /// The response every `GetGate` gets (captured from the real coordinator).
    pub canned: Arc<pb::GetGateResponse>,
}

type WatchStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchGateResponse, Status>> + Send>>;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("the baseline serves GetGate only"))
}

#[tonic::async_trait]
impl GateService for Baseline {
    async fn get_gate(
        &self,
        _req: Request<pb::GetGateRequest>,
    ) -> Result<Response<pb::GetGateResponse>, Status> {
        Ok(Response::new((*self.canned).clone()))
    }

    type WatchGateStream = WatchStream;

    async fn watch_gate(
        &self,
        _req: Request<pb::WatchGateRequest>,
    ) -> Result<Response<Self::WatchGateStream>, Status> {
        unimplemented()
    }
    async fn list_decisions(
        &self,
        _req: Request<pb::ListDecisionsRequest>,
    ) -> Result<Response<pb::ListDecisionsResponse>, Status> {
        unimplemented()
    }
    async fn explain(
        &self,
        _req: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        unimplemented()
    }
    async fn list_funnels(
        &self,
        _req: Request<pb::ListFunnelsRequest>,
    ) -> Result<Response<pb::ListFunnelsResponse>, Status> {
        unimplemented()
    }
    async fn set_override(
        &self,
        _req: Request<pb::SetOverrideRequest>,
    ) -> Result<Response<pb::SetOverrideResponse>, Status> {
        unimplemented()
    }
    async fn clear_override(
        &self,
        _req: Request<pb::ClearOverrideRequest>,
    ) -> Result<Response<pb::ClearOverrideResponse>, Status> {
        unimplemented()
    }
    async fn set_phase(
        &self,
        _req: Request<pb::SetPhaseRequest>,
    ) -> Result<Response<pb::SetPhaseResponse>, Status> {
        unimplemented()
    }
}

/// Serve the baseline on `listener` until the runtime stops.
pub async fn serve_baseline(
    canned: pb::GetGateResponse,
    listener: TcpListener,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(GateServiceServer::new(Baseline {
            canned: Arc::new(canned),
        }))
        .serve_with_incoming(incoming(listener))
        .await
}
