//! What a replica does with its role: followers keep their snapshot current from the database,
//! the leader schedules checks; gRPC health follows.
//!
//! - [`run_sync`] (PostgreSQL): `LISTEN funnelgate_changes` on its own session
//!   (`funnelgate-<node>-listen`); every notification (`ledger <funnel> <seq>`,
//!   `state <funnel>`) makes the engine re-read that funnel. After (re)connecting, and every fifth
//!   of the lease whatever happens, every funnel is re-read: a missed notification delays a
//!   follower by at most that long and loses nothing (the ledger and the saved state are the
//!   source, notifications only wake the follower up).
//! - [`control_role`]: on becoming leader, the engine catches up and takes over writing, then the
//!   scheduler starts; on losing leadership the scheduler stops first, then the engine stops
//!   writing. `grpc.health.v1`: [`LEADER_HEALTH_SERVICE`] is SERVING only on the leader; the
//!   overall status (`""`) and `GateService` are NOT_SERVING while the database is unreachable.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use funnelgate_core::FunnelPolicy;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::watch;
use tonic_health::ServingStatus;

use crate::checkers::CheckerClient;
use crate::leader::{Cluster, ElectionConfig, LEADER_HEALTH_SERVICE, RoleState};
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::state::EngineHandle;

/// The notification channel the store's triggers write to.
pub const CHANNEL: &str = "funnelgate_changes";

/// The funnel a notification names (`ledger <funnel> <seq>` or `state <funnel>`).
fn notified_funnel(payload: &str) -> Option<String> {
    if let Some(rest) = payload.strip_prefix("ledger ") {
        return rest.rsplit_once(' ').map(|(f, _)| f.to_string());
    }
    payload.strip_prefix("state ").map(str::to_string)
}

/// Follow the database until `stop`: see the module docs.
pub async fn run_sync(
    url: String,
    election: ElectionConfig,
    engine: EngineHandle,
    mut stop: watch::Receiver<bool>,
) {
    let poll = election.renew_every();
    loop {
        if *stop.borrow() {
            return;
        }
        match listen(&url, &election.node).await {
            Ok(mut listener) => {
                // Whatever happened while not listening is in the database.
                if !engine.follow(None).await {
                    return;
                }
                loop {
                    tokio::select! {
                        n = listener.try_recv() => match n {
                            Ok(Some(n)) => {
                                if !engine.follow(notified_funnel(n.payload())).await {
                                    return;
                                }
                            }
                            Ok(None) => {
                                tracing::warn!("the change notification session was lost: catching up from the ledger");
                                if !engine.follow(None).await {
                                    return;
                                }
                            }
                            Err(error) => {
                                tracing::warn!(%error, "change notifications failed: reconnecting");
                                break;
                            }
                        },
                        _ = tokio::time::sleep(poll) => {
                            if !engine.follow(None).await {
                                return;
                            }
                        }
                        _ = crate::leader::stopped(&mut stop) => return,
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for changes: retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = crate::leader::stopped(&mut stop) => return,
        }
    }
}

async fn listen(url: &str, node: &str) -> Result<PgListener, sqlx::Error> {
    let options =
        PgConnectOptions::from_str(url)?.application_name(&format!("funnelgate-{node}-listen"));
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// What the leader schedules.
#[derive(Debug)]
pub struct Scheduling {
    /// The funnels.
    pub funnels: Vec<FunnelPolicy>,
    /// A client per checker.
    pub clients: BTreeMap<String, CheckerClient>,
    /// Each checker's liveness, watched on every replica.
    pub liveness: Arc<crate::liveness::Supervisors>,
    /// `coordinator.max_inflight_checks`.
    pub max_inflight: usize,
}

/// Start and stop scheduling with leadership, and keep gRPC health in step, until `stop`.
pub async fn control_role(
    cluster: Arc<Cluster>,
    scheduling: Scheduling,
    engine: EngineHandle,
    metrics: Arc<Metrics>,
    health: funnelgate_server::Health,
    mut stop: watch::Receiver<bool>,
) {
    let mut roles = cluster.subscribe();
    let mut scheduler: Option<Scheduler> = None;
    let mut refresh = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let role = roles.borrow_and_update().clone();
        if role.leader && scheduler.is_none() && !*stop.borrow() {
            match engine.promote().await {
                Ok(()) => {
                    scheduler = Some(Scheduler::start(
                        &scheduling.funnels,
                        &scheduling.clients,
                        &scheduling.liveness,
                        engine.clone(),
                        metrics.clone(),
                        scheduling.max_inflight,
                    ));
                }
                Err(error) => {
                    tracing::error!(%error, "elected, but cannot take over: stepping down");
                    cluster.fenced();
                }
            }
        } else if !role.leader
            && let Some(s) = scheduler.take()
        {
            s.stop().await;
            engine.demote().await;
        }
        set_health(&health, &cluster.state(), cluster.is_replicated()).await;
        tokio::select! {
            changed = roles.changed() => if changed.is_err() { break },
            // The server marks everything SERVING when it starts: re-assert ours.
            _ = refresh.tick() => {}
            _ = crate::leader::stopped(&mut stop) => break,
        }
    }
    if let Some(s) = scheduler.take() {
        s.stop().await;
    }
}

async fn set_health(health: &funnelgate_server::Health, role: &RoleState, replicated: bool) {
    let serving = |yes: bool| {
        if yes {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    };
    health
        .set_service_status(LEADER_HEALTH_SERVICE, serving(role.leader))
        .await;
    if replicated {
        health.set_service_status("", serving(role.db_ok)).await;
        health
            .set_service_status(funnelgate_proto::GATE_SERVICE, serving(role.db_ok))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_name_their_funnel() {
        assert_eq!(notified_funnel("ledger acme 12").as_deref(), Some("acme"));
        assert_eq!(notified_funnel("state acme").as_deref(), Some("acme"));
        assert_eq!(notified_funnel("other"), None);
    }
}
