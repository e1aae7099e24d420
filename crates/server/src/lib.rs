//! Serve a tonic service the way every funnelgate process does: standard `grpc.health.v1` with a
//! status per service, server reflection (funnelgate.v1 and health), bounded streams and request
//! sizes, and a graceful drain on SIGTERM/SIGINT. Also the one place logging is initialised.
//!
//! This crate knows the wire contract (for the reflection descriptors) but nothing of checkers,
//! the coordinator or the gate engine.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use tonic_health::server::HealthReporter as Health;

/// Errors serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC server on {addr}: {source}")]
    Transport {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("building reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Limits applied to every server.
#[derive(Clone, Debug)]
pub struct ServeLimits {
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// How long to wait for in-flight requests after a shutdown signal.
    pub drain_timeout: Duration,
    /// TCP keepalive / HTTP/2 keepalive interval.
    pub keepalive: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_concurrent_streams: 1024,
            drain_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(30),
        }
    }
}

/// Create the health reporter and its service; mark `services` (fully-qualified names) and the
/// overall server ("") as SERVING once they are registered.
pub fn health() -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

/// Serve `routes` (plus health and reflection) on `listener` until `shutdown` resolves, then mark
/// every service NOT_SERVING and drain in-flight requests.
///
/// `services` are the fully-qualified names reported SERVING by `grpc.health.v1`.
pub async fn serve_grpc(
    routes: Routes,
    services: &[&str],
    listener: TcpListener,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (reporter, health_service) = health();
    serve_grpc_with_health(
        routes,
        services,
        listener,
        limits,
        reporter,
        health_service,
        shutdown,
    )
    .await
}

/// Like [`serve_grpc`], with a health reporter the caller keeps (to flip readiness itself).
pub async fn serve_grpc_with_health<H>(
    routes: Routes,
    services: &[&str],
    listener: TcpListener,
    limits: ServeLimits,
    reporter: HealthReporter,
    health_service: tonic_health::pb::health_server::HealthServer<H>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError>
where
    H: tonic_health::pb::health_server::Health,
{
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    // Both reflection versions: v1 for current tools, v1alpha for grpcurl < 1.9 and the Python
    // grpcio-reflection client.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(funnelgate_proto::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let routes = routes
        .add_service(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);
    for s in services {
        reporter
            .set_service_status(*s, ServingStatus::Serving)
            .await;
    }
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;

    let drain_reporter = reporter.clone();
    let names: Vec<String> = services.iter().map(|s| s.to_string()).collect();
    let drain_timeout = limits.drain_timeout;
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutdown requested: draining in-flight requests");
        for s in &names {
            drain_reporter
                .set_service_status(s, ServingStatus::NotServing)
                .await;
        }
        drain_reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        let _ = drained_tx.send(());
    };
    // `Server::tcp_nodelay` only applies to listeners tonic binds itself: set it on the accepted
    // connections of ours too, or every small reply waits for Nagle's delayed ACK (~40 ms).
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(limits.keepalive));
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(limits.keepalive))
        .layer(tower::util::MapResponseLayer::new(
            too_large_is_resource_exhausted::<tonic::body::Body>,
        ))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(server);
    // Serve until the server stops by itself, or until the drain after a signal takes too long.
    let res = tokio::select! {
        r = &mut server => r,
        _ = async {
            let _ = drained_rx.await;
            tokio::time::sleep(drain_timeout).await;
        } => {
            tracing::warn!(timeout = ?drain_timeout, "drain timed out: closing remaining connections");
            Ok(())
        }
    };
    res.map_err(|source| ServeError::Transport { addr, source })
}

/// tonic answers a request message larger than the service's decoding limit with OUT_OF_RANGE;
/// gRPC's code for it is RESOURCE_EXHAUSTED ("a message larger than the limit", in
/// grpc/doc/statuscodes.md, and what grpc-go and grpc-java answer). The status travels in the
/// headers of a trailers-only response: rewrite its code there, keep tonic's message.
fn too_large_is_resource_exhausted<B>(
    mut response: tonic::codegen::http::Response<B>,
) -> tonic::codegen::http::Response<B> {
    use tonic::codegen::http::HeaderValue;
    let headers = response.headers_mut();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"11");
    let too_large = || {
        headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| m.replace("%20", " ").contains("message length too large"))
    };
    if out_of_range && too_large() {
        headers.insert("grpc-status", HeaderValue::from_static("8"));
    }
    response
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = term => tracing::info!("received SIGTERM"),
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Initialise `tracing` once per process: `RUST_LOG`-style filter from `filter` (default
/// `info`), text or JSON lines on stderr. Calling it twice is harmless.
pub fn init_tracing(filter: Option<&str>, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_new(filter.unwrap_or("info")).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_too_large_out_of_range_becomes_resource_exhausted() {
        let too_large = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 70000 bytes, the limit is: 65536 bytes",
        )
        .into_http::<()>();
        let mapped = too_large_is_resource_exhausted(too_large);
        assert_eq!(mapped.headers()["grpc-status"], "8");
        assert!(
            mapped.headers()["grpc-message"]
                .to_str()
                .unwrap()
                .contains("too%20large")
        );

        let other = tonic::Status::out_of_range("page 9 of 3").into_http::<()>();
        let kept = too_large_is_resource_exhausted(other);
        assert_eq!(kept.headers()["grpc-status"], "11");
    }
}
