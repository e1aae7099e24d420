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

use crate::quickstart_files;

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
    }
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_hand_over_without_losing_or_duplicating_anything() {
    funnelgate_e2e::install_crypto();
    let db = PgDb::create();
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
    let mut replicas = Vec::new();
    for i in 0..3 {
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
                    "database = \"{}\"\nlease = \"{}s\"\nnode_name = \"{name}\"",
                    db.url,
                    LEASE.as_secs()
                ),
            );
        assert!(
            text.contains(&db.url),
            "the quickstart config changed shape"
        );
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
        });
    }
    let http = reqwest::Client::new();
    let all = [0, 1, 2];
    let (leader, term1, _) = wait_leader(&http, &replicas, &all, 0, Duration::from_secs(20)).await;
    let followers: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
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
    let verify = cli(&["ledger", "verify", "--storage", &db.url], &[])
        .await
        .unwrap();
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(
        verify.stdout.contains("acme: hash chain verified"),
        "{verify:?}"
    );
    let rows = psql(
        &db.url,
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
