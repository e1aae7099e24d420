//! The `StageChecker` service over a real tonic server on 127.0.0.1:0: Describe, Check
//! validation, the caller's deadline, health and reflection (Rust clients and the official
//! Python grpcio health client).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use funnelgate_checker_sdk::{
    CheckerServeError, CheckerServerConfig, Probe, ProbeContext, ProbeError, ProbeRegistry,
    SecretStore, TypedFactory, generic_registry, serve_checker,
};
use funnelgate_core::Measurement;
use funnelgate_proto::convert::json_object_to_struct;
use funnelgate_proto::pb;
use funnelgate_proto::pb::stage_checker_client::StageCheckerClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

#[derive(serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SleepParams {
    /// Seconds to sleep before answering.
    seconds: u64,
}

struct SleepProbe(u64);

#[async_trait]
impl Probe for SleepProbe {
    async fn run(&self, _ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        tokio::time::sleep(Duration::from_secs(self.0)).await;
        Ok(Measurement::value(1.0, "", "woke up"))
    }
}

fn registry() -> ProbeRegistry {
    let mut r = generic_registry();
    r.register(
        TypedFactory::<SleepParams, _>::new(
            "test.sleep",
            "sleeps, then measures 1",
            "count",
            |p| Ok(Arc::new(SleepProbe(p.seconds)) as Arc<dyn Probe>),
        )
        // Waking up is the expectation: 1 passes, anything below fails.
        .default_thresholds(funnelgate_core::Thresholds {
            fail_below: Some(1.0),
            ..Default::default()
        }),
    );
    r
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), CheckerServeError>>,
}

impl Server {
    async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let cfg = CheckerServerConfig {
            stage: "automation".into(),
            name: "funnelgate-checker-test".into(),
            registry: registry(),
            secrets: SecretStore::default(),
            max_concurrency: 4,
        };
        let task = tokio::spawn(serve_checker(cfg, listener, async move {
            let _ = stopped.await;
        }));
        let server = Server {
            addr,
            stop: Some(stop),
            task,
        };
        server.wait_serving().await;
        server
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    /// Wait until `grpc.health.v1` reports the checker SERVING (no fixed sleep).
    async fn wait_serving(&self) {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;
        let started = std::time::Instant::now();
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "checker did not report SERVING in 30s"
            );
            if let Ok(ch) = Channel::from_shared(format!("http://{}", self.addr))
                .expect("uri")
                .connect()
                .await
            {
                let req = HealthCheckRequest {
                    service: funnelgate_proto::STAGE_CHECKER_SERVICE.into(),
                };
                if let Ok(r) = HealthClient::new(ch).check(req).await
                    && r.into_inner().status == 1
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let res = (&mut self.task).await.expect("server task");
        res.expect("server ended cleanly");
    }
}

fn probe(id: &str, kind: &str, params: serde_json::Value, timeout: Duration) -> pb::ProbeSpec {
    let params = match params {
        serde_json::Value::Object(m) => Some(json_object_to_struct(&m)),
        _ => None,
    };
    pb::ProbeSpec {
        id: id.into(),
        kind: kind.into(),
        params,
        timeout: Some(funnelgate_proto::convert::duration_to_pb(timeout)),
        ..Default::default()
    }
}

#[tokio::test]
async fn describe_lists_kinds_with_parseable_schemas() {
    let server = Server::start().await;
    let mut client = StageCheckerClient::new(server.channel().await);
    let d = client
        .describe(pb::DescribeRequest {})
        .await
        .expect("describe")
        .into_inner();
    assert_eq!(d.stage, "automation");
    assert_eq!(d.name, "funnelgate-checker-test");
    assert_eq!(d.version, env!("CARGO_PKG_VERSION"));
    let kinds: Vec<&str> = d.probe_kinds.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(kinds, ["http", "prometheus", "sql", "test.sleep"]);
    for k in &d.probe_kinds {
        let schema: serde_json::Value = serde_json::from_str(&k.params_schema_json)
            .unwrap_or_else(|e| panic!("kind `{}`: schema is not JSON: {e}", k.kind));
        assert_eq!(schema["type"], "object", "kind `{}`", k.kind);
        assert!(
            !k.description.is_empty() && !k.unit.is_empty(),
            "kind `{}`",
            k.kind
        );
    }
    let sql = d.probe_kinds.iter().find(|k| k.kind == "sql").expect("sql");
    assert_eq!(sql.vendors, ["postgresql", "mysql", "mariadb", "sqlite"]);
    server.stop().await;
}

#[tokio::test]
async fn bad_checks_are_invalid_argument() {
    let server = Server::start().await;
    let mut client = StageCheckerClient::new(server.channel().await);
    let ok_probe = probe(
        "a",
        "test.sleep",
        serde_json::json!({"seconds": 0}),
        Duration::from_secs(5),
    );
    let mut negative_timeout = ok_probe.clone();
    if let Some(t) = negative_timeout.timeout.as_mut() {
        t.seconds = -1;
    }

    let cases = [
        (
            pb::CheckRequest {
                funnel: "".into(),
                probes: vec![ok_probe.clone()],
                ..Default::default()
            },
            "`funnel` must not be empty",
        ),
        (
            pb::CheckRequest {
                funnel: "f".into(),
                probes: vec![ok_probe.clone(), ok_probe.clone()],
                ..Default::default()
            },
            "duplicate probe id `a`",
        ),
        (
            pb::CheckRequest {
                funnel: "f".into(),
                probes: (0..501)
                    .map(|i| {
                        probe(
                            &format!("p{i}"),
                            "http",
                            serde_json::json!({}),
                            Duration::from_secs(1),
                        )
                    })
                    .collect(),
                ..Default::default()
            },
            "at most 500",
        ),
        (
            pb::CheckRequest {
                funnel: "f".into(),
                probes: vec![negative_timeout.clone()],
                ..Default::default()
            },
            "probes[a].timeout",
        ),
    ];
    for (req, want) in cases {
        let status = client.check(req).await.expect_err("rejected");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(want),
            "{} does not contain {want}",
            status.message()
        );
    }

    // Bad params are not a bad request: the probe reports ERROR naming the field.
    let req = pb::CheckRequest {
        funnel: "f".into(),
        probes: vec![probe(
            "bad",
            "test.sleep",
            serde_json::json!({"seconds": "soon"}),
            Duration::from_secs(5),
        )],
        ..Default::default()
    };
    let report = client
        .check(req)
        .await
        .expect("check")
        .into_inner()
        .report
        .expect("report");
    assert_eq!(report.results[0].status, pb::ProbeStatus::Error as i32);
    assert!(
        report.results[0].message.contains("params of `test.sleep`"),
        "{}",
        report.results[0].message
    );
    server.stop().await;
}

#[tokio::test]
async fn the_callers_deadline_is_honoured() {
    let server = Server::start().await;
    let mut client = StageCheckerClient::new(server.channel().await);
    let mut req = tonic::Request::new(pb::CheckRequest {
        funnel: "spring-launch".into(),
        stage: "landing-pages".into(),
        probes: vec![
            probe(
                "slow",
                "test.sleep",
                serde_json::json!({"seconds": 30}),
                Duration::from_secs(60),
            ),
            probe(
                "fast",
                "test.sleep",
                serde_json::json!({"seconds": 0}),
                Duration::from_secs(60),
            ),
        ],
        max_concurrency: 0,
    });
    req.set_timeout(Duration::from_secs(1));
    let report = client
        .check(req)
        .await
        .expect("a report within the deadline, not DEADLINE_EXCEEDED")
        .into_inner()
        .report
        .expect("report");
    assert_eq!(report.funnel, "spring-launch");
    assert_eq!(report.stage, "landing-pages");
    assert!(
        report.checker.starts_with("funnelgate-checker-test/"),
        "{}",
        report.checker
    );
    let slow = &report.results[0];
    assert_eq!(slow.status, pb::ProbeStatus::Error as i32);
    assert!(
        slow.message.contains("the check's deadline passed"),
        "{}",
        slow.message
    );
    assert_eq!(
        report.results[1].status,
        pb::ProbeStatus::Pass as i32,
        "{}",
        report.results[1].message
    );

    // An absurdly long timeout (about 11,000 years, the most the header can say) is just long.
    let mut req = tonic::Request::new(pb::CheckRequest {
        funnel: "spring-launch".into(),
        probes: vec![probe(
            "fast",
            "test.sleep",
            serde_json::json!({"seconds": 0}),
            Duration::from_secs(60),
        )],
        ..Default::default()
    });
    req.metadata_mut()
        .insert("grpc-timeout", "99999999H".parse().expect("header value"));
    let report = client
        .check(req)
        .await
        .expect("check")
        .into_inner()
        .report
        .expect("report");
    assert_eq!(
        report.stage, "automation",
        "an empty stage means the checker's own"
    );
    assert_eq!(
        report.results[0].status,
        pb::ProbeStatus::Pass as i32,
        "{}",
        report.results[0].message
    );
    server.stop().await;
}

#[tokio::test]
async fn health_and_reflection() {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = Server::start().await;
    let ch = server.channel().await;

    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    for service in ["", funnelgate_proto::STAGE_CHECKER_SERVICE] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "`{service}`"
        );
    }

    let mut reflection = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::once(req))
        .await
        .expect("reflection")
        .into_inner();
    let resp = stream.next().await.expect("one response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer: {resp:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names
            .iter()
            .any(|n| n == funnelgate_proto::STAGE_CHECKER_SERVICE),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn python_grpcio_health_client_sees_serving() {
    let python = std::env::var("FUNNELGATE_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python").to_string()
    });
    assert!(
        std::path::Path::new(&python).exists(),
        "python with grpcio-health-checking not found at {python}: run scripts/test.sh (it creates .venv from scripts/python-requirements.txt) or set FUNNELGATE_PYTHON"
    );
    let server = Server::start().await;
    let script = format!(
        r#"
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
with grpc.insecure_channel("{addr}") as ch:
    stub = health_pb2_grpc.HealthStub(ch)
    r = stub.Check(health_pb2.HealthCheckRequest(service="{svc}"), timeout=10)
    print(health_pb2.HealthCheckResponse.ServingStatus.Name(r.status))
"#,
        addr = server.addr,
        svc = funnelgate_proto::STAGE_CHECKER_SERVICE
    );
    let out = tokio::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SERVING");
    server.stop().await;
}
