//! Replicas on one PostgreSQL database: leader election and what a replica knows of its role.
//!
//! - **Election.** Each replica keeps a dedicated session (`application_name`
//!   `funnelgate-<node>-lock`) and tries `pg_try_advisory_lock` every fifth of the lease. The one
//!   that gets it increments `leadership.term`, writes its name and advertised address there, and
//!   from then on every store write checks that term in its own transaction
//!   ([`crate::store::Fence`]): a deposed leader can never append.
//! - **Lease.** The leader renews every fifth of the lease (`UPDATE leadership … WHERE term =
//!   mine`). Its lock session runs with `idle_session_timeout` = half the lease, so a leader that
//!   stops renewing (paused, partitioned) loses its session and lock on the server's side; a
//!   leader whose renewals fail for half the lease steps down on its own. A follower then takes
//!   over at its next try: within the lease.
//! - **Losing the database.** A replica whose lock session cannot reach PostgreSQL says so
//!   ([`RoleState::db_ok`] false): `/readyz` and gRPC health stop claiming ready.
//!
//! SQLite runs one process: [`Cluster::single`] is always the leader.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{Notify, watch};

use crate::store::Fence;

/// The advisory lock key all replicas of one database contend for ("funnelgt" in ASCII).
pub const LOCK_KEY: i64 = 0x66756e6e_656c6774;

/// gRPC health service name that is SERVING only on the leader (`grpc.health.v1`).
pub const LEADER_HEALTH_SERVICE: &str = "funnelgate.coordinator.Leader";

/// What a replica knows of its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleState {
    /// This replica leads (schedules checks, writes decisions).
    pub leader: bool,
    /// The leadership term (this replica's when leader; the last seen otherwise).
    pub term: i64,
    /// The leader's name, when known.
    pub leader_name: Option<String>,
    /// The leader's advertised gRPC address, when known.
    pub leader_address: Option<String>,
    /// The database is reachable (its lock session is up).
    pub db_ok: bool,
}

/// A replica's role, shared by the election, the engine, and the API.
#[derive(Debug)]
pub struct Cluster {
    state: watch::Sender<RoleState>,
    fence: Arc<Fence>,
    deposed: Notify,
    replicated: bool,
}

impl Cluster {
    /// One process on SQLite: always the leader, never fenced.
    pub fn single(fence: Arc<Fence>) -> Arc<Self> {
        let (state, _) = watch::channel(RoleState {
            leader: true,
            term: 0,
            leader_name: None,
            leader_address: None,
            db_ok: true,
        });
        Arc::new(Cluster {
            state,
            fence,
            deposed: Notify::new(),
            replicated: false,
        })
    }

    /// A replica that starts as a follower and contends for leadership.
    pub fn replica(fence: Arc<Fence>) -> Arc<Self> {
        fence.set(0);
        let (state, _) = watch::channel(RoleState {
            leader: false,
            term: 0,
            leader_name: None,
            leader_address: None,
            db_ok: false,
        });
        Arc::new(Cluster {
            state,
            fence,
            deposed: Notify::new(),
            replicated: true,
        })
    }

    /// Several replicas share the database (PostgreSQL).
    pub fn is_replicated(&self) -> bool {
        self.replicated
    }

    /// The current role.
    pub fn state(&self) -> RoleState {
        self.state.borrow().clone()
    }

    /// Does this replica lead now?
    pub fn is_leader(&self) -> bool {
        self.state.borrow().leader
    }

    /// Changes of role.
    pub fn subscribe(&self) -> watch::Receiver<RoleState> {
        self.state.subscribe()
    }

    /// The refusal a follower answers writes with: names the leader.
    pub fn not_leader_message(&self) -> String {
        let s = self.state();
        match (&s.leader_address, &s.leader_name) {
            (Some(addr), name) if !addr.is_empty() => format!(
                "this replica is a follower: send writes to the leader {}at {addr} (term {})",
                name.as_deref().map(|n| format!("`{n}` ")).unwrap_or_default(),
                s.term
            ),
            _ => "this replica is a follower and no leader is known right now (an election is under way): retry shortly".to_string(),
        }
    }

    /// A write was refused by the fence: this replica no longer leads. Step down at once.
    pub fn fenced(&self) {
        if self.replicated {
            self.set_follower(None);
            self.deposed.notify_one();
        }
    }

    fn set_follower(&self, leader: Option<(i64, String, String)>) {
        self.fence.set(0);
        self.state.send_modify(|s| {
            s.leader = false;
            if let Some((term, name, address)) = leader {
                s.term = term;
                s.leader_name = Some(name).filter(|n| !n.is_empty());
                s.leader_address = Some(address).filter(|a| !a.is_empty());
            }
        });
    }
}

/// How this replica takes part in the election.
#[derive(Clone, Debug)]
pub struct ElectionConfig {
    /// The database URL (the store's).
    pub url: String,
    /// The lease.
    pub lease: Duration,
    /// This replica's name.
    pub node: String,
    /// This replica's advertised gRPC address.
    pub address: String,
}

impl ElectionConfig {
    /// How often the leader renews and followers try to take over.
    pub fn renew_every(&self) -> Duration {
        self.lease / 5
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Run the election until `stop` turns true; a leader releases its lock (closes its session)
/// when stopping.
pub async fn run_election(
    cluster: Arc<Cluster>,
    config: ElectionConfig,
    mut stop: watch::Receiver<bool>,
) {
    let step = config.renew_every();
    loop {
        if *stop.borrow() {
            break;
        }
        match connect(&config).await {
            Ok(conn) => {
                cluster.state.send_modify(|s| s.db_ok = true);
                let lost = contend(&cluster, &config, conn, &mut stop).await;
                if let Err(error) = lost {
                    tracing::warn!(%error, "lost the database connection used for leader election: reconnecting");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot reach the database for leader election: not ready; retrying");
            }
        }
        cluster.set_follower(None);
        if *stop.borrow() {
            break;
        }
        cluster.state.send_modify(|s| s.db_ok = false);
        tokio::select! {
            _ = tokio::time::sleep(step) => {}
            _ = stopped(&mut stop) => break,
        }
    }
    cluster.set_follower(None);
}

async fn connect(config: &ElectionConfig) -> Result<PgConnection, sqlx::Error> {
    let options = PgConnectOptions::from_str(&config.url)?
        .application_name(&format!("funnelgate-{}-lock", config.node));
    let mut conn = tokio::time::timeout(config.lease, options.connect())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    // The server ends this session (and frees the lock) when it sits idle for half the lease:
    // a paused or cut-off leader loses leadership without having to notice.
    let idle_ms = (config.lease / 2).as_millis();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET idle_session_timeout = {idle_ms}"
    )))
    .execute(&mut conn)
    .await?;
    Ok(conn)
}

/// Contend for (and hold) leadership on `conn` until the connection fails (`Err`) or `stop`.
async fn contend(
    cluster: &Cluster,
    config: &ElectionConfig,
    mut conn: PgConnection,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), sqlx::Error> {
    let step = config.renew_every();
    loop {
        let got: bool = timed(
            step,
            sqlx::query("SELECT pg_try_advisory_lock($1) AS got")
                .bind(LOCK_KEY)
                .fetch_one(&mut conn),
        )
        .await?
        .try_get("got")?;
        if got {
            let row = timed(
                step,
                sqlx::query(
                    "UPDATE leadership SET term = term + 1, leader = $1, address = $2, renewed_at = $3 \
                     WHERE id = 1 RETURNING term",
                )
                .bind(&config.node)
                .bind(&config.address)
                .bind(now_millis())
                .fetch_one(&mut conn),
            )
            .await?;
            let term: i64 = row.try_get("term")?;
            cluster.fence.set(term);
            cluster.state.send_modify(|s| {
                s.leader = true;
                s.term = term;
                s.leader_name = Some(config.node.clone());
                s.leader_address = Some(config.address.clone());
                s.db_ok = true;
            });
            tracing::info!(term, node = %config.node, "this replica is now the leader");
            let result = lead(cluster, config, &mut conn, term, stop).await;
            cluster.set_follower(None);
            tracing::warn!(term, "this replica stepped down");
            // Close the session: it holds the lock. A fresh one contends again.
            let _ = conn.close().await;
            return result;
        }
        let row = timed(
            step,
            sqlx::query("SELECT term, leader, address FROM leadership WHERE id = 1")
                .fetch_one(&mut conn),
        )
        .await?;
        let leader = (
            row.try_get::<i64, _>("term")?,
            row.try_get::<String, _>("leader")?,
            row.try_get::<String, _>("address")?,
        );
        if cluster.state().leader_address.as_deref() != Some(leader.2.as_str()) {
            tracing::info!(term = leader.0, leader = %leader.1, address = %leader.2, "following");
        }
        cluster.set_follower(Some(leader));
        cluster.state.send_modify(|s| s.db_ok = true);
        tokio::select! {
            _ = tokio::time::sleep(step) => {}
            _ = stopped(stop) => return Ok(()),
        }
    }
}

/// Renew the lease until it cannot be renewed, leadership is taken, a write was fenced, or stop.
async fn lead(
    cluster: &Cluster,
    config: &ElectionConfig,
    conn: &mut PgConnection,
    term: i64,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), sqlx::Error> {
    let step = config.renew_every();
    let mut last_ok = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(step) => {}
            _ = cluster.deposed.notified() => {
                tracing::warn!(term, "a write was refused under this term: another replica leads");
                return Ok(());
            }
            _ = stopped(stop) => return Ok(()),
        }
        // Paused past half the lease: the server has ended the session; do not write on.
        if last_ok.elapsed() > config.lease / 2 {
            cluster.set_follower(None);
            return Err(sqlx::Error::Protocol(
                "the lease was not renewed for half its length".into(),
            ));
        }
        let renewed = timed(
            step,
            sqlx::query("UPDATE leadership SET renewed_at = $1 WHERE id = 1 AND term = $2")
                .bind(now_millis())
                .bind(term)
                .execute(&mut *conn),
        )
        .await?;
        if renewed.rows_affected() != 1 {
            tracing::warn!(term, "another replica took leadership");
            return Ok(());
        }
        last_ok = Instant::now();
    }
}

async fn timed<T>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
}

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
