//! Highly available coordinator: three `funnelgate coordinator` processes on one fresh
//! PostgreSQL database (the machine's server, `FUNNELGATE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; the database is dropped afterwards) and four
//! checker processes. Leases are 2 s so the whole story takes seconds.
//!
//! One scenario, in order: a leader is elected; a follower refuses writes naming the leader; an
//! acknowledged override reaches follower watchers through LISTEN/NOTIFY; the leader is killed
//! (SIGKILL) and another takes over within the lease; followers' watchers keep receiving; the new
//! leader is paused (SIGSTOP) past its lease, a third takes over, and once resumed (SIGCONT) the
//! deposed one writes nothing; one replica's database sessions are terminated
//! (`pg_terminate_backend`, found by `application_name`) and it comes back. Then: the ledger
//! verifies end to end (`funnelgate ledger verify --storage URL`), sequences are continuous, the
//! writers' terms never decrease along the chain, every acknowledged write is there exactly
//! once, and no watcher ever saw OPEN on evidence older than the policy's `stale_after`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use funnelgate_e2e::{Cluster, Proc, cli, free_addr, gate_client, wait_serving};
use funnelgate_proto::pb;
use tokio_stream::StreamExt;
use tonic::Code;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::quickstart_files;

/// The `grpc.health.v1` service SERVING only on the leader.
const LEADER_SERVICE: &str = "funnelgate.coordinator.Leader";

/// The lease the replicas run with.
const LEASE: Duration = Duration::from_secs(2);
/// The quickstart's `stale_after` for every stage.
const STALE_AFTER: Duration = Duration::from_secs(30);

fn admin_url() -> String {
    std::env::var("FUNNELGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql `{sql}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A database for one test, dropped (sessions and all) when the guard goes.
struct PgDb {
    name: String,
    url: String,
}

impl PgDb {
    fn create() -> PgDb {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("fg_ha_{}_{nanos}", std::process::id());
        psql(&admin_url(), &format!("CREATE DATABASE \"{name}\""));
        let admin = admin_url();
        let base = admin.rsplit_once('/').unwrap().0.to_string();
        PgDb {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                &admin_url(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            ])
            .output();
    }
}

struct Replica {
    name: String,
    grpc: String,
    http: String,
    proc: Proc,
    config: std::path::PathBuf,
}

impl Replica {
    /// Start this replica's process again (after a kill) and wait until it serves.
    async fn restart(&mut self, dir: &std::path::Path) {
        let mut proc = Proc::start(
            &format!("coordinator {}", self.name),
            &[
                "coordinator",
                "--config",
                &self.config.display().to_string(),
            ],
            &[],
            dir,
        )
        .unwrap();
        wait_serving(
            &mut proc,
            &self.grpc,
            "funnelgate.v1.GateService",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        self.proc = proc;
    }
}

#[derive(Debug, Clone)]
struct Role {
    leader: bool,
    ready: bool,
    term: i64,
}

async fn role(http: &reqwest::Client, addr: &str) -> Option<Role> {
    let r = http
        .get(format!("http://{addr}/readyz"))
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .ok()?;
    let ready = r.status().is_success();
    let v: serde_json::Value = r.json().await.ok()?;
    Some(Role {
        leader: v["role"] == "leader",
        ready,
        term: v["term"].as_i64().unwrap_or(0),
    })
}

/// Wait until exactly one of `candidates` says it leads under a term newer than `after`; its
/// index, term and the time it took.
async fn wait_leader(
    http: &reqwest::Client,
    replicas: &[Replica],
    candidates: &[usize],
    after: i64,
    limit: Duration,
) -> (usize, i64, Duration) {
    let start = Instant::now();
    loop {
        let mut leaders = Vec::new();
        for &i in candidates {
            if let Some(r) = role(http, &replicas[i].http).await
                && r.leader
                && r.term > after
            {
                leaders.push((i, r.term));
            }
        }
        if leaders.len() == 1 {
            return (leaders[0].0, leaders[0].1, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "no single leader among {candidates:?} within {limit:?} (saw {leaders:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a watcher saw: when, and the decision.
type Seen = Arc<Mutex<Vec<(SystemTime, pb::GateDecision)>>>;

fn watch(addr: String) -> Seen {
    let seen: Seen = Arc::default();
    let out = seen.clone();
    tokio::spawn(async move {
        let mut g = gate_client(&addr).await.unwrap();
        let mut stream = g
            .watch_gate(pb::WatchGateRequest {
                funnel: "acme".into(),
                view: pb::GateView::Full as i32,
            })
            .await
            .unwrap()
            .into_inner();
        while let Some(Ok(m)) = stream.next().await {
            if let Some(d) = m.decision {
                out.lock().unwrap().push((SystemTime::now(), d));
            }
        }
    });
    seen
}

async fn wait_seen(
    seen: &Seen,
    what: &str,
    limit: Duration,
    ok: impl Fn(&pb::GateDecision) -> bool,
) {
    let start = Instant::now();
    loop {
        if seen.lock().unwrap().iter().any(|(_, d)| ok(d)) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "watcher did not see {what} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn override_req(state: pb::GateState, reason: &str) -> pb::SetOverrideRequest {
    pb::SetOverrideRequest {
        funnel: "acme".into(),
        state: state as i32,
        reason: reason.into(),
        ttl_seconds: 600,
        percent: None,
    }
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid}");
}

/// Start `n` coordinators named `r0…` on the quickstart config `base`, sharing `url`.
async fn start_replicas(c: &Cluster, base: &str, url: &str, n: usize) -> Vec<Replica> {
    start_replicas_with(c, base, url, n, LEASE).await
}

async fn start_replicas_with(
    c: &Cluster,
    base: &str,
    url: &str,
    n: usize,
    lease: Duration,
) -> Vec<Replica> {
    let mut replicas = Vec::new();
    for i in 0..n {
        let (grpc, http) = (free_addr(), free_addr());
        let name = format!("r{i}");
        let text = base
            .replace(
                "grpc_listen = \"127.0.0.1:1\"",
                &format!("grpc_listen = \"{grpc}\""),
            )
            .replace(
                "http_listen = \"127.0.0.1:2\"",
                &format!("http_listen = \"{http}\""),
            )
            .replace(
                "database = \"funnelgate.db\"",
                &format!(
                    "database = \"{url}\"\nlease = \"{}s\"\nnode_name = \"{name}\"",
                    lease.as_secs()
                ),
            );
        assert!(text.contains(url), "the quickstart config changed shape");
        let path = c.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, format!("{text}\n{}", c.checkers_toml())).unwrap();
        let mut proc = Proc::start(
            &format!("coordinator {name}"),
            &["coordinator", "--config", &path.display().to_string()],
            &[],
            c.dir.path(),
        )
        .unwrap();
        wait_serving(
            &mut proc,
            &grpc,
            "funnelgate.v1.GateService",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        replicas.push(Replica {
            name,
            grpc,
            http,
            proc,
            config: path,
        });
    }
    replicas
}

/// Checkers and the fixed quickstart warehouse; the config text with its addresses as template
/// variables.
async fn fixed_quickstart() -> (Cluster, String) {
    let c = Cluster::checkers(tempfile::tempdir().unwrap())
        .await
        .unwrap();
    let base = quickstart_files(c.dir.path(), "127.0.0.1:1", "127.0.0.1:2").await;
    let fix = cli(
        &["quickstart", "fix", &c.dir.path().display().to_string()],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(fix.code, 0, "{fix:?}");
    (c, base)
}

/// `grpc.health.v1` status of `service` at `addr`.
async fn health(addr: &str, service: &str) -> i32 {
    let ch = funnelgate_e2e::channel(addr).await.unwrap();
    HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .unwrap_or(-1)
}

/// The ledger of `acme`: `(seq, term, kind)` in order; asserts it verifies end to end (through
/// the CLI), is continuous and that terms never decrease along it.
async fn checked_ledger(url: &str) -> Vec<(u64, i64, String)> {
    let verify = cli(&["ledger", "verify", "--storage", url], &[])
        .await
        .unwrap();
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(
        verify.stdout.contains("acme: hash chain verified"),
        "{verify:?}"
    );
    let rows = psql(
        url,
        "SELECT seq || ' ' || term || ' ' || kind FROM ledger WHERE funnel = 'acme' ORDER BY seq",
    );
    let rows: Vec<(u64, i64, String)> = rows
        .lines()
        .map(|l| {
            let mut p = l.split(' ');
            (
                p.next().unwrap().parse().unwrap(),
                p.next().unwrap().parse().unwrap(),
                p.next().unwrap().to_string(),
            )
        })
        .collect();
    for (i, (seq, _, _)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "sequences are continuous: {rows:?}");
    }
    assert!(
        rows.windows(2).all(|w| w[0].1 <= w[1].1),
        "a deposed leader appended after a newer term: {rows:?}"
    );
    rows
}

/// No decision a watcher saw was OPEN on evidence older than `stale_after`.
fn assert_no_stale_open(seen: &Seen) {
    for (at, d) in seen.lock().unwrap().iter() {
        if d.state == pb::GateState::Open as i32 {
            for s in &d.stages {
                let checked = s.checked_at.as_ref().expect("an OPEN stage was checked");
                let checked = SystemTime::UNIX_EPOCH
                    + Duration::new(checked.seconds as u64, checked.nanos as u32);
                let age = at.duration_since(checked).unwrap_or_default();
                assert!(
                    age <= STALE_AFTER,
                    "OPEN served on evidence {age:?} old (stage {}): {d:?}",
                    s.stage
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_hand_over_without_losing_or_duplicating_anything() {
    funnelgate_e2e::install_crypto();
    let db = PgDb::create();
    let (c, base) = fixed_quickstart().await;
    let mut replicas = start_replicas(&c, &base, &db.url, 3).await;
    let http = reqwest::Client::new();
    let all = [0, 1, 2];
    let (leader, term1, _) = wait_leader(&http, &replicas, &all, 0, Duration::from_secs(20)).await;
    let followers: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    assert_eq!(
        health(&replicas[leader].grpc, LEADER_SERVICE).await,
        ServingStatus::Serving as i32
    );
    for &f in &followers {
        assert_eq!(
            health(&replicas[f].grpc, LEADER_SERVICE).await,
            ServingStatus::NotServing as i32,
            "a follower does not claim leadership in grpc.health.v1"
        );
    }
    let watchers: Vec<(usize, Seen)> = followers
        .iter()
        .map(|&i| (i, watch(replicas[i].grpc.clone())))
        .collect();

    // A follower refuses writes and names the leader.
    let mut f = gate_client(&replicas[followers[0]].grpc).await.unwrap();
    let refused = f
        .set_override(override_req(pb::GateState::Closed, "to a follower"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains(&replicas[leader].grpc),
        "the refusal names the leader: {refused:?}"
    );

    // An acknowledged override reaches the followers' watchers.
    let mut l = gate_client(&replicas[leader].grpc).await.unwrap();
    let ack1 = l
        .set_override(override_req(pb::GateState::Closed, "ack-1"))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .sequence;
    for (_, seen) in &watchers {
        wait_seen(seen, "the first override", Duration::from_secs(5), |d| {
            d.sequence >= ack1
        })
        .await;
    }

    // kill -9 the leader: another takes over within the lease.
    replicas[leader].proc.kill().unwrap();
    let (leader2, term2, takeover_kill) =
        wait_leader(&http, &replicas, &followers, term1, LEASE * 3).await;
    assert!(
        takeover_kill <= LEASE,
        "takeover after kill -9 took {takeover_kill:?}, lease {LEASE:?}"
    );
    let survivor = followers.iter().copied().find(|&i| i != leader2).unwrap();
    let mut l2 = gate_client(&replicas[leader2].grpc).await.unwrap();
    let current = l2
        .get_gate(pb::GetGateRequest {
            funnel: "acme".into(),
            view: pb::GateView::Compact as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(
        current.r#override.as_ref().map(|o| o.reason.as_str()),
        Some("ack-1"),
        "the acknowledged override survived the hand-over: {current:?}"
    );
    let ack2 = l2
        .clear_override(pb::ClearOverrideRequest {
            funnel: "acme".into(),
            reason: "ack-2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .sequence;
    assert!(ack2 > ack1);
    let survivor_seen = &watchers.iter().find(|(i, _)| *i == survivor).unwrap().1;
    wait_seen(
        survivor_seen,
        "the new leader's write",
        Duration::from_secs(5),
        |d| d.sequence >= ack2,
    )
    .await;

    // SIGSTOP the new leader past its lease: the survivor takes over; resumed, the deposed one
    // writes nothing and follows.
    let paused_pid = replicas[leader2].proc.pid();
    signal(paused_pid, "STOP");
    let (leader3, term3, takeover_pause) =
        wait_leader(&http, &replicas, &[survivor], term2, LEASE * 3).await;
    assert_eq!(leader3, survivor);
    assert!(
        // Design bound: half the lease (the server ends the paused session) plus a fifth (the
        // next try), counted from the last renewal; a second of slack for a loaded machine.
        takeover_pause <= LEASE + Duration::from_secs(1),
        "takeover after SIGSTOP took {takeover_pause:?}, lease {LEASE:?}"
    );
    let mut l3 = gate_client(&replicas[leader3].grpc).await.unwrap();
    let ack3 = l3
        .set_override(override_req(pb::GateState::Closed, "ack-3"))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .sequence;
    signal(paused_pid, "CONT");
    let start = Instant::now();
    loop {
        if let Some(r) = role(&http, &replicas[leader2].http).await
            && !r.leader
            && r.ready
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the resumed replica did not become a ready follower"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resumed_seen = watch(replicas[leader2].grpc.clone());
    wait_seen(
        &resumed_seen,
        "the current leader's write on the resumed follower",
        Duration::from_secs(5),
        |d| d.sequence >= ack3,
    )
    .await;

    // Cut the leader's database sessions: it loses leadership and comes back as a replica.
    let cut = &replicas[leader3].name;
    let terminated = psql(
        &admin_url(),
        &format!(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND application_name LIKE 'funnelgate-{cut}-%') t",
            db.name
        ),
    );
    assert!(
        terminated.parse::<u32>().unwrap() >= 1,
        "no sessions of {cut}"
    );
    let (leader4, term4, takeover_cut) =
        wait_leader(&http, &replicas, &[leader2, leader3], term3, LEASE * 3).await;
    assert!(
        takeover_cut <= LEASE,
        "takeover after cutting the leader's sessions took {takeover_cut:?}"
    );
    let mut l4 = gate_client(&replicas[leader4].grpc).await.unwrap();
    let ack4 = l4
        .clear_override(pb::ClearOverrideRequest {
            funnel: "acme".into(),
            reason: "ack-4".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .sequence;
    let start = Instant::now();
    loop {
        let r = role(&http, &replicas[leader3].http).await;
        if r.as_ref().is_some_and(|r| r.ready) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the cut replica did not come back: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The ledger: verifies end to end, continuous, terms never decrease, every acknowledged
    // write present exactly once.
    let rows = checked_ledger(&db.url).await;
    // Every acknowledged write was made under the term of the leader that acknowledged it.
    for (ack, term) in [(ack1, term1), (ack2, term2), (ack3, term3), (ack4, term4)] {
        let row = rows.iter().find(|r| r.0 == ack).unwrap();
        assert_eq!(
            row.1, term,
            "entry {ack} written under term {term}: {rows:?}"
        );
    }
    for (ack, kind) in [
        (ack1, "override"),
        (ack2, "override_cleared"),
        (ack3, "override"),
        (ack4, "override_cleared"),
    ] {
        let found: Vec<_> = rows.iter().filter(|r| r.0 == ack).collect();
        assert_eq!(found.len(), 1, "acknowledged write {ack} once: {rows:?}");
        assert_eq!(found[0].2, kind, "{rows:?}");
    }
    for (marker, n) in [("ack-1", 1), ("ack-2", 1), ("ack-3", 1), ("ack-4", 1)] {
        let count = psql(
            &db.url,
            &format!("SELECT count(*) FROM ledger WHERE payload::jsonb->>'reason' = '{marker}'"),
        );
        assert_eq!(count, n.to_string(), "{marker} written exactly once");
    }
    let terms = psql(&db.url, "SELECT term FROM leadership");
    assert!(
        terms.parse::<i64>().unwrap() >= term4,
        "the leadership table holds the newest term: {terms} < {term4}"
    );

    // Nothing a follower served was OPEN on stale evidence.
    for seen in watchers.iter().map(|(_, s)| s).chain([&resumed_seen]) {
        assert_no_stale_open(seen);
    }
    eprintln!(
        "takeover: kill -9 {takeover_kill:?}, SIGSTOP {takeover_pause:?}, sessions cut {takeover_cut:?}"
    );
    for r in &mut replicas {
        if !r.proc.has_exited() {
            r.proc.terminate().unwrap();
            r.proc.wait_exit(Duration::from_secs(15)).await.unwrap();
        }
    }
    drop(c);
}

/// A PostgreSQL server owned by one test: `initdb` into a temp dir with the machine's
/// `/usr/lib/postgresql/<version>/bin`, a free port, run as the `postgres` OS user (`runuser`;
/// PostgreSQL refuses to run as root), stopped by its postmaster pid (SIGINT: fast shutdown).
/// The machine's shared server is never touched.
struct PrivatePg {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
    /// `runuser` running the server (exits with it).
    server: Mutex<Option<std::process::Child>>,
    /// Extra `-c name=value` server settings.
    settings: Vec<String>,
}

impl PrivatePg {
    async fn init() -> PrivatePg {
        let pg = PrivatePg::initdb();
        pg.start().await;
        pg
    }

    /// `initdb` only; not started.
    fn initdb() -> PrivatePg {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        let owned = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres", &dir.path().display().to_string()])
            .status()
            .unwrap();
        assert!(owned.success());
        let data = dir.path().join("data");
        let out = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PrivatePg {
            dir,
            bin,
            port: funnelgate_e2e::free_port(),
            server: Mutex::new(None),
            settings: Vec::new(),
        }
    }

    /// A private server that speaks only TLS: a throwaway CA (`ca.pem` in the returned dir) signs
    /// a server certificate for `127.0.0.1` / `localhost`; `pg_hba.conf` has only `hostssl`
    /// lines, so plaintext connections are refused.
    async fn init_tls() -> (PrivatePg, std::path::PathBuf) {
        let mut pg = PrivatePg::initdb();
        let tls = pg.dir.path().join("tls");
        std::fs::create_dir(&tls).unwrap();
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&tls)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for (prefix, cn) in [("ca", "funnelgate-test-ca"), ("other-ca", "unrelated-ca")] {
            let (key, pem, subj) = (
                format!("{prefix}.key"),
                format!("{prefix}.pem"),
                format!("/CN={cn}"),
            );
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
            openssl(&args);
        }
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(&args);
        std::fs::write(
            tls.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        // PostgreSQL refuses a key that others can read: the server's user owns it, mode 0600.
        let key = tls.join("server.key");
        let owned = std::process::Command::new("chown")
            .args(["postgres:postgres", &key.display().to_string()])
            .status()
            .unwrap();
        assert!(owned.success());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Only TLS over TCP (plus the local socket the harness never uses for the store).
        std::fs::write(
            pg.dir.path().join("data/pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        pg.settings = vec![
            "ssl=on".into(),
            format!("ssl_cert_file={}", tls.join("server.crt").display()),
            format!("ssl_key_file={}", key.display()),
        ];
        pg.start().await;
        (pg, tls)
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Start the server and wait until it accepts connections.
    async fn start(&self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        // `runuser` waits for the server: it is reaped by `stop`.
        let child = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(self.settings.iter().flat_map(|s| ["-c", s]))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        *self.server.lock().unwrap() = Some(child);
        let start = Instant::now();
        loop {
            let ok = std::process::Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .unwrap()
                .success();
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the private PostgreSQL did not start: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The postmaster's pid (first line of `postmaster.pid`), while it runs.
    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Ask the postmaster (by its pid) for a fast shutdown; the running `runuser`, if any.
    fn signal_stop(&self) -> Option<std::process::Child> {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
        }
        self.server.lock().unwrap().take()
    }

    /// Fast shutdown; returns once the server has exited.
    async fn stop(&self) {
        if let Some(mut child) = self.signal_stop() {
            tokio::task::spawn_blocking(move || child.wait())
                .await
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        if let Some(mut child) = self.signal_stop() {
            let _ = child.wait();
        }
    }
}

/// The store over TLS (issue 14: managed PostgreSQL requires it). A private server accepting
/// only `hostssl`: a coordinator whose URL says `sslmode=verify-full&sslrootcert=CA` becomes
/// leader and writes a ledger that verifies; `sslmode=disable` is refused by the server, and
/// `verify-full` against the wrong root CA fails on the certificate.
#[tokio::test(flavor = "multi_thread")]
async fn store_connects_over_verified_tls_and_refuses_plaintext_or_an_unknown_ca() {
    funnelgate_e2e::install_crypto();
    let (pg, tls) = PrivatePg::init_tls().await;
    let base = format!("postgres://postgres@127.0.0.1:{}", pg.port);
    let ca = tls.join("ca.pem").display().to_string();
    psql(
        &format!("{base}/postgres?sslmode=verify-full&sslrootcert={ca}"),
        "CREATE DATABASE fg",
    );
    let url = format!("{base}/fg?sslmode=verify-full&sslrootcert={ca}");

    // (a) Verified TLS: leader, an acknowledged write, the chain verifies through the CLI.
    let (c, cfg) = fixed_quickstart().await;
    let mut replicas = start_replicas(&c, &cfg, &url, 1).await;
    let http = reqwest::Client::new();
    wait_leader(&http, &replicas, &[0], 0, Duration::from_secs(20)).await;
    let ack = gate_client(&replicas[0].grpc)
        .await
        .unwrap()
        .set_override(override_req(pb::GateState::Closed, "over-tls"))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .sequence;
    let rows = checked_ledger(&url).await;
    assert!(
        rows.iter()
            .any(|(seq, _, kind)| *seq == ack && kind == "override"),
        "the acknowledged override is in the ledger: {rows:?}"
    );
    // The server says the coordinator's sessions (store pool and election lock) are encrypted.
    let sessions = psql(
        &url,
        "SELECT a.application_name || ' ' || s.ssl FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name LIKE 'funnelgate-%' ORDER BY 1",
    );
    assert!(
        sessions.lines().any(|l| l == "funnelgate-r0 true")
            && sessions.lines().any(|l| l == "funnelgate-r0-lock true")
            && sessions.lines().all(|l| l.ends_with(" true")),
        "every coordinator session is encrypted: {sessions}"
    );
    replicas[0].proc.terminate().unwrap();
    replicas[0]
        .proc
        .wait_exit(Duration::from_secs(15))
        .await
        .unwrap();

    // (b) Plaintext is refused by the server (hostssl only).
    let disabled = cli(
        &[
            "ledger",
            "verify",
            "--storage",
            &format!("{base}/fg?sslmode=disable"),
        ],
        &[],
    )
    .await
    .unwrap();
    assert_ne!(disabled.code, 0, "{disabled:?}");
    assert!(
        disabled.stderr.contains("no pg_hba.conf entry")
            && disabled.stderr.contains("no encryption"),
        "plaintext refusal is named: {disabled:?}"
    );
    // ... and a server certificate from another CA is rejected.
    let other = tls.join("other-ca.pem").display().to_string();
    let wrong = cli(
        &[
            "ledger",
            "verify",
            "--storage",
            &format!("{base}/fg?sslmode=verify-full&sslrootcert={other}"),
        ],
        &[],
    )
    .await
    .unwrap();
    assert_ne!(wrong.code, 0, "{wrong:?}");
    assert!(
        wrong
            .stderr
            .contains("invalid peer certificate: UnknownIssuer"),
        "the certificate failure is named: {wrong:?}"
    );
    drop(c);
}

/// Two coordinators on a private PostgreSQL: kill -9 the leader while it evaluates, then restart
/// PostgreSQL under the survivor. While the database is down the replica stops claiming ready
/// (`/readyz` 503, health NOT_SERVING) but still answers reads; when it is back a leader is
/// elected again and nothing acknowledged was lost.
#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_survive_a_leader_kill_and_a_database_restart() {
    funnelgate_e2e::install_crypto();
    let pg = PrivatePg::init().await;
    psql(&pg.url("postgres"), "CREATE DATABASE fg");
    let url = pg.url("fg");
    let (c, base) = fixed_quickstart().await;
    let mut replicas = start_replicas(&c, &base, &url, 2).await;
    let http = reqwest::Client::new();
    let (leader, term1, _) =
        wait_leader(&http, &replicas, &[0, 1], 0, Duration::from_secs(20)).await;
    let follower = 1 - leader;
    let seen = watch(replicas[follower].grpc.clone());

    // Mid-evaluation: the leader has checked every stage and keeps checking (5 s intervals,
    // 1 s ticks) when it is killed.
    funnelgate_e2e::wait_decision(
        &replicas[leader].grpc,
        "acme",
        Duration::from_secs(30),
        "every stage checked",
        |d| d.stages.iter().all(|s| s.checked_at.is_some()),
    )
    .await
    .unwrap();
    replicas[leader].proc.kill().unwrap();
    let (new, term2, takeover) = wait_leader(&http, &replicas, &[follower], term1, LEASE * 3).await;
    assert_eq!(new, follower);
    assert!(takeover <= LEASE, "takeover took {takeover:?}");
    let mut g = gate_client(&replicas[new].grpc).await.unwrap();
    let ack = g
        .set_override(override_req(pb::GateState::Closed, "before-restart"))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .sequence;
    wait_seen(
        &seen,
        "the new leader's override",
        Duration::from_secs(5),
        |d| d.sequence >= ack,
    )
    .await;

    // The database goes away: not ready, not serving, reads still answered from memory.
    pg.stop().await;
    let start = Instant::now();
    loop {
        let r = role(&http, &replicas[new].http).await;
        if r.as_ref().is_some_and(|r| !r.ready && !r.leader) {
            break;
        }
        assert!(
            start.elapsed() < LEASE * 2,
            "the replica kept claiming ready without its database: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        health(&replicas[new].grpc, "").await,
        ServingStatus::NotServing as i32
    );
    let during = g
        .get_gate(pb::GetGateRequest {
            funnel: "acme".into(),
            view: pb::GateView::Compact as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_ne!(during.state, pb::GateState::Open as i32, "{during:?}");

    // Back: a leader again, ready, the acknowledged override still in force.
    pg.start().await;
    let (back, term3, recovery) =
        wait_leader(&http, &replicas, &[new], term2, Duration::from_secs(15)).await;
    assert_eq!(back, new);
    let start = Instant::now();
    while !role(&http, &replicas[back].http)
        .await
        .is_some_and(|r| r.ready)
    {
        assert!(start.elapsed() < Duration::from_secs(15), "not ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        health(&replicas[back].grpc, "").await,
        ServingStatus::Serving as i32
    );
    let now = g
        .get_gate(pb::GetGateRequest {
            funnel: "acme".into(),
            view: pb::GateView::Compact as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(
        now.r#override.as_ref().map(|o| o.reason.as_str()),
        Some("before-restart"),
        "{now:?}"
    );
    let after = g
        .clear_override(pb::ClearOverrideRequest {
            funnel: "acme".into(),
            reason: "after-restart".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .sequence;

    let rows = checked_ledger(&url).await;
    for (seq, term) in [(ack, term2), (after, term3)] {
        let found: Vec<_> = rows.iter().filter(|r| r.0 == seq).collect();
        assert_eq!(found.len(), 1, "acknowledged write {seq} once: {rows:?}");
        assert_eq!(found[0].1, term, "{rows:?}");
    }
    for marker in ["before-restart", "after-restart"] {
        let count = psql(
            &url,
            &format!("SELECT count(*) FROM ledger WHERE payload::jsonb->>'reason' = '{marker}'"),
        );
        assert_eq!(count, "1", "{marker} written exactly once");
    }
    assert_no_stale_open(&seen);
    eprintln!("takeover after kill -9: {takeover:?}; leader again {recovery:?} after the restart");
    for r in &mut replicas {
        if !r.proc.has_exited() {
            r.proc.terminate().unwrap();
            r.proc.wait_exit(Duration::from_secs(15)).await.unwrap();
        }
    }
    drop(c);
}

/// Soak (not in CI; run by hand, figures in BENCHMARKS.md): three coordinators on one
/// PostgreSQL (lease 5 s) under a steady GetGate and WatchGate load on every replica, the leader
/// killed (SIGKILL) every `FUNNELGATE_SOAK_KILL_EVERY` seconds (default 60) and restarted, for
/// `FUNNELGATE_SOAK_SECS` (default 600). Prints takeover times, failed requests per kill (on
/// the killed replica and on the others) and GetGate throughput served as leader and as
/// follower; the ledger must verify and every takeover stay within the lease.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "10-minute soak: cargo test -p funnelgate-e2e --test e2e ha::soak -- --ignored --nocapture"]
async fn soak() {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    funnelgate_e2e::install_crypto();
    let secs = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let total = Duration::from_secs(secs("FUNNELGATE_SOAK_SECS", 600));
    let every = Duration::from_secs(secs("FUNNELGATE_SOAK_KILL_EVERY", 60));
    let lease = Duration::from_secs(5);
    let db = PgDb::create();
    let (c, base) = fixed_quickstart().await;
    let mut replicas = start_replicas_with(&c, &base, &db.url, 3, lease).await;
    let http = reqwest::Client::new();
    let (mut leader, mut term, _) =
        wait_leader(&http, &replicas, &[0, 1, 2], 0, Duration::from_secs(30)).await;
    let current_leader = Arc::new(AtomicUsize::new(leader));
    // ok[replica][0 = as follower, 1 = as leader], failures per replica
    let ok: Arc<Vec<[AtomicU64; 2]>> = Arc::new((0..3).map(|_| Default::default()).collect());
    let failed: Arc<Vec<AtomicU64>> = Arc::new((0..3).map(|_| AtomicU64::new(0)).collect());
    let watch_msgs: Arc<Vec<AtomicU64>> = Arc::new((0..3).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, r) in replicas.iter().enumerate() {
        for _ in 0..4 {
            let (addr, ok, failed, cl, stop) = (
                r.grpc.clone(),
                ok.clone(),
                failed.clone(),
                current_leader.clone(),
                stop.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut client = None;
                while !stop.load(Ordering::Relaxed) {
                    if client.is_none() {
                        client = gate_client(&addr).await.ok();
                    }
                    let Some(g) = client.as_mut() else {
                        failed[i].fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let r = tokio::time::timeout(
                        Duration::from_secs(2),
                        g.get_gate(pb::GetGateRequest {
                            funnel: "acme".into(),
                            view: pb::GateView::Compact as i32,
                        }),
                    )
                    .await;
                    match r {
                        Ok(Ok(_)) => {
                            let as_leader = usize::from(cl.load(Ordering::Relaxed) == i);
                            ok[i][as_leader].fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed[i].fetch_add(1, Ordering::Relaxed);
                            client = None;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }));
        }
        for _ in 0..25 {
            let (addr, msgs, stop) = (r.grpc.clone(), watch_msgs.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut g) = gate_client(&addr).await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let Ok(stream) = g
                        .watch_gate(pb::WatchGateRequest {
                            funnel: "acme".into(),
                            view: pb::GateView::Compact as i32,
                        })
                        .await
                    else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let mut stream = stream.into_inner();
                    while let Some(Ok(_)) = stream.next().await {
                        msgs[i].fetch_add(1, Ordering::Relaxed);
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                    }
                }
            }));
        }
    }
    let started = Instant::now();
    let mut takeovers = Vec::new();
    let mut kills = Vec::new();
    while started.elapsed() + every <= total {
        tokio::time::sleep(every).await;
        let before: Vec<u64> = failed.iter().map(|f| f.load(Ordering::Relaxed)).collect();
        let killed = leader;
        replicas[killed].proc.kill().unwrap();
        let others: Vec<usize> = (0..3).filter(|&i| i != killed).collect();
        let (next, t, took) = wait_leader(&http, &replicas, &others, term, lease * 3).await;
        current_leader.store(next, Ordering::Relaxed);
        takeovers.push(took);
        replicas[killed].restart(c.dir.path()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after: Vec<u64> = failed.iter().map(|f| f.load(Ordering::Relaxed)).collect();
        kills.push((
            after[killed] - before[killed],
            others.iter().map(|&o| after[o] - before[o]).sum::<u64>(),
        ));
        leader = next;
        term = t;
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let mut sorted = takeovers.clone();
    sorted.sort();
    let (as_leader, as_follower): (u64, u64) = ok.iter().fold((0, 0), |(l, f), r| {
        (
            l + r[1].load(Ordering::Relaxed),
            f + r[0].load(Ordering::Relaxed),
        )
    });
    let summary = serde_json::json!({
        "duration_s": elapsed.as_secs_f64(),
        "kills": kills.len(),
        "takeover_ms": {
            "min": sorted.first().map(|d| d.as_millis()),
            "median": sorted.get(sorted.len() / 2).map(|d| d.as_millis()),
            "max": sorted.last().map(|d| d.as_millis()),
            "all": takeovers.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        },
        "failed_get_gate_per_kill": kills.iter().map(|(k, o)| serde_json::json!({"killed_replica": k, "other_replicas": o})).collect::<Vec<_>>(),
        "get_gate_ok_as_leader": as_leader,
        "get_gate_ok_as_follower": as_follower,
        "watch_messages": watch_msgs.iter().map(|m| m.load(Ordering::Relaxed)).collect::<Vec<_>>(),
    });
    eprintln!("SOAK {summary}");
    let rows = checked_ledger(&db.url).await;
    assert!(!rows.is_empty());
    for t in &takeovers {
        assert!(*t <= lease, "a takeover took {t:?}");
    }
    for r in &mut replicas {
        if !r.proc.has_exited() {
            r.proc.terminate().unwrap();
            r.proc.wait_exit(Duration::from_secs(15)).await.unwrap();
        }
    }
    drop(c);
}
