//! Test helpers: a fake `StageChecker` whose answers the test controls, a coordinator config
//! builder, a tiny HTTP client, and `wait_for` (poll a condition with an overall timeout).

#![allow(clippy::unwrap_used, dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use funnelgate_coordinator::Config;
use funnelgate_coordinator::config::CheckerConfig;
use funnelgate_core::{FunnelPolicy, GatePolicy, HumanDuration, ProbeSpec, StagePolicy};
use funnelgate_proto::convert::timestamp_to_pb;
use funnelgate_proto::pb;
use funnelgate_proto::pb::gate_service_client::GateServiceClient;
use funnelgate_proto::pb::stage_checker_server::{StageChecker, StageCheckerServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// How long any condition may take to become true.
pub const WAIT: Duration = Duration::from_secs(20);

/// Poll `probe` every 50ms until it returns `Some`, or panic naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How the fake checker answers `Check`.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Judge each probe's configured value against its thresholds.
    Normal,
    /// Answer with this error status.
    Error(tonic::Code, String),
    /// Never answer.
    Hang,
    /// Answer with a report for another funnel.
    WrongFunnel,
}

#[derive(Debug)]
struct FakeState {
    values: HashMap<String, f64>,
    mode: Mode,
    checks: usize,
    kinds: Vec<pb::ProbeKindInfo>,
}

#[derive(Clone)]
struct FakeService {
    name: String,
    state: Arc<Mutex<FakeState>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tonic::async_trait]
impl StageChecker for FakeService {
    async fn describe(
        &self,
        _request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        let kinds = self.state.lock().unwrap().kinds.clone();
        Ok(Response::new(pb::DescribeResponse {
            stage: self.name.clone(),
            probe_kinds: kinds,
            version: "0.0.1".into(),
            name: format!("fake-{}", self.name),
        }))
    }

    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let req = request.into_inner();
        let (mode, values) = {
            let mut s = self.state.lock().unwrap();
            s.checks += 1;
            (s.mode.clone(), s.values.clone())
        };
        match mode {
            Mode::Error(code, message) => return Err(Status::new(code, message)),
            Mode::Hang => std::future::pending::<()>().await,
            Mode::Normal | Mode::WrongFunnel => {}
        }
        let at = funnelgate_core::Timestamp::from_millis(now_ms());
        let results = req
            .probes
            .iter()
            .map(|p| {
                let spec = funnelgate_core::ProbeSpec::try_from(p).unwrap();
                let value = values.get(&p.id).copied().unwrap_or(100.0);
                let j = spec.thresholds.judge(value);
                pb::ProbeResult {
                    id: p.id.clone(),
                    kind: p.kind.clone(),
                    status: pb::ProbeStatus::from(j.status) as i32,
                    value: Some(value),
                    unit: "count".into(),
                    threshold: j.threshold,
                    badness: j.badness,
                    message: format!("measured {value}"),
                    observed_at: Some(timestamp_to_pb(at)),
                    ..Default::default()
                }
            })
            .collect();
        let funnel = if mode == Mode::WrongFunnel {
            "someone-else".to_string()
        } else {
            req.funnel
        };
        Ok(Response::new(pb::CheckResponse {
            report: Some(pb::StageReport {
                funnel,
                stage: req.stage,
                results,
                checked_at: Some(timestamp_to_pb(at)),
                duration: None,
                checker: format!("fake-{}", self.name),
            }),
        }))
    }
}

/// A `sql` kind with a schemars-shaped params schema, and a second kind.
pub fn default_kinds() -> Vec<pb::ProbeKindInfo> {
    let sql_schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "SqlParams",
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "the query"},
            "timeout_ms": {"type": ["integer", "null"], "format": "uint32", "minimum": 0},
        },
        "required": ["query"],
        "additionalProperties": false,
    });
    vec![
        pb::ProbeKindInfo {
            kind: "sql".into(),
            description: "run a query".into(),
            params_schema_json: sql_schema.to_string(),
            unit: "count".into(),
            ..Default::default()
        },
        pb::ProbeKindInfo {
            kind: "http".into(),
            description: "fetch a page".into(),
            params_schema_json: String::new(),
            unit: "ms".into(),
            ..Default::default()
        },
    ]
}

/// A fake checker serving on 127.0.0.1:<random>.
pub struct FakeChecker {
    /// Its configured name (also its stage).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<()>>,
}

impl FakeChecker {
    /// Start a fake checker with the default kinds.
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, default_kinds()).await
    }

    /// Start a fake checker that advertises `kinds`.
    pub async fn start_with(name: &str, kinds: Vec<pb::ProbeKindInfo>) -> Self {
        Self::start_at(name, "127.0.0.1:0".parse().unwrap(), kinds).await
    }

    /// Start a fake checker on `addr` (e.g. where a stopped one listened).
    pub async fn start_at(name: &str, addr: SocketAddr, kinds: Vec<pb::ProbeKindInfo>) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(FakeState {
            values: HashMap::new(),
            mode: Mode::Normal,
            checks: 0,
            kinds,
        }));
        let service = FakeService {
            name: name.to_string(),
            state: state.clone(),
        };
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let join = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(StageCheckerServer::new(service))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
        FakeChecker {
            name: name.to_string(),
            addr,
            state,
            stop: Some(stop),
            join: Some(join),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The value the next checks report for probe `id` (default 100).
    pub fn set_value(&self, id: &str, value: f64) {
        self.state
            .lock()
            .unwrap()
            .values
            .insert(id.to_string(), value);
    }

    /// How the next checks are answered.
    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Checks answered so far.
    pub fn checks(&self) -> usize {
        self.state.lock().unwrap().checks
    }

    /// Stop serving and close connections.
    pub async fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            // A hung Check would keep the graceful shutdown waiting: bound it, then abort.
            if tokio::time::timeout(Duration::from_secs(5), join)
                .await
                .is_err()
            {
                panic!("fake checker `{}` did not stop", self.name);
            }
        }
    }
}

/// A stage served by the checker of the same name, checked every `interval`, min_score 40.
pub fn stage(name: &str, interval: &str, probes: Vec<ProbeSpec>) -> StagePolicy {
    let mut s = StagePolicy::new(name);
    s.interval = HumanDuration(funnelgate_core::time::parse_duration(interval).unwrap());
    s.stale_after = HumanDuration::from_secs(30);
    // one WARN out of one probe scores 50: let that be DEGRADED, not FAILING
    s.min_score = Some(40.0);
    s.probes = probes;
    s
}

/// A `sql` probe judged with `fail_below` 10 and `warn_below` 50.
pub fn leads_probe() -> ProbeSpec {
    let mut p = ProbeSpec::new("leads", "sql");
    p.params = serde_json::json!({"query": "select count(*) from leads"});
    p.thresholds.warn_below = Some(50.0);
    p.thresholds.fail_below = Some(10.0);
    p
}

/// An `http` probe that fails below 1.
pub fn page_probe(id: &str) -> ProbeSpec {
    let mut p = ProbeSpec::new(id, "http");
    p.params = serde_json::json!({"url": "https://example.com"});
    p.thresholds.fail_below = Some(1.0);
    p
}

/// A fast gate: open after one healthy evaluation and 1s, pilot 5%, ramp 10 → 100.
pub fn fast_gate() -> GatePolicy {
    GatePolicy {
        pilot_percent: 5,
        ramp: vec![10, 100],
        ramp_dwell: HumanDuration::from_secs(3600),
        open_after: HumanDuration::from_secs(1),
        open_after_evaluations: 1,
        close_after: 1,
        especially_broken: 0.5,
    }
}

/// Funnel `name`: stage `crm` (probe `leads`) then stage `esp` (probe `dmarc`), both every 1s.
pub fn two_stage_funnel(name: &str) -> FunnelPolicy {
    FunnelPolicy {
        name: name.to_string(),
        stages: vec![
            stage("crm", "1s", vec![leads_probe()]),
            stage("esp", "1s", vec![page_probe("dmarc")]),
        ],
        gate: fast_gate(),
    }
}

/// A coordinator config on 127.0.0.1:0 with the given checkers, funnels and database.
pub fn config(checkers: &[&FakeChecker], funnels: Vec<FunnelPolicy>, database: &str) -> Config {
    let checkers: BTreeMap<String, CheckerConfig> = checkers
        .iter()
        .map(|c| {
            let mut cfg = CheckerConfig::new(c.endpoint());
            cfg.timeout = HumanDuration::from_secs(2);
            cfg.connect_timeout = HumanDuration::from_secs(1);
            (c.name.clone(), cfg)
        })
        .collect();
    let mut config = Config::new(checkers, funnels);
    config.coordinator.grpc_listen = "127.0.0.1:0".into();
    config.coordinator.http_listen = "127.0.0.1:0".into();
    config.coordinator.database = database.to_string();
    config.coordinator.tick_interval = HumanDuration(Duration::from_millis(200));
    config.coordinator.startup_timeout = HumanDuration::from_secs(10);
    config
}

/// A database path inside `dir`.
pub fn db_in(dir: &Path) -> String {
    dir.join("funnelgate.db").display().to_string()
}

/// A connected GateService client.
pub async fn gate_client(url: String) -> GateServiceClient<Channel> {
    wait_for("the coordinator's gRPC port", WAIT, || {
        let url = url.clone();
        async move { GateServiceClient::connect(url).await.ok() }
    })
    .await
}

/// The current compact decision of `funnel`, if the coordinator answers.
pub async fn get_gate(
    client: &mut GateServiceClient<Channel>,
    funnel: &str,
) -> Option<pb::GateDecision> {
    client
        .get_gate(pb::GetGateRequest {
            funnel: funnel.into(),
            view: 0,
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().decision)
}

/// Wait until `funnel`'s gate is in `state`; returns that decision.
pub async fn wait_state(
    client: &mut GateServiceClient<Channel>,
    funnel: &str,
    state: pb::GateState,
) -> pb::GateDecision {
    let mut last = None;
    let what = format!("funnel `{funnel}` to be {state:?}");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(d) = get_gate(client, funnel).await {
            if d.state == state as i32 {
                return d;
            }
            last = Some(d);
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for {what}; last decision: {last:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GET `path` over HTTP/1.1; returns (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
