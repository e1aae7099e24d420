//! The GateService client every `gate` command uses: one channel to the coordinator, the bearer
//! token on every call, a deadline on every unary call.

use std::future::Future;
use std::time::Duration;

use funnelgate_proto::pb;
use funnelgate_proto::pb::gate_service_client::GateServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::exit::{self, CliError};

/// Default coordinator gRPC address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// Adds `authorization: Bearer <token>` to every request when a token is set.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A connected GateService client.
pub type GateClient = GateServiceClient<InterceptedService<Channel, BearerToken>>;

/// Where and how to reach the coordinator.
#[derive(Clone, Debug)]
pub struct Target {
    /// `http://host:port` of the coordinator's gRPC listener.
    pub server: String,
    /// Bearer token for changing gates (overrides, phase).
    pub token: Option<String>,
    /// Deadline of each unary request (also the connect timeout).
    pub request_timeout: Duration,
}

/// A gRPC endpoint for `server` (http:// only: this build has no TLS client).
pub fn endpoint(server: &str, connect_timeout: Duration) -> Result<Endpoint, CliError> {
    let url = server.trim();
    if url.starts_with("https://") {
        return Err(CliError::usage(format!(
            "`{url}`: https is not supported by this build of the cli (use http:// or a local proxy)"
        )));
    }
    if !url.starts_with("http://") {
        return Err(CliError::usage(format!(
            "`{url}` is not a server url (want e.g. {DEFAULT_SERVER})"
        )));
    }
    Endpoint::from_shared(url.to_string())
        .map(|e| e.connect_timeout(connect_timeout).tcp_nodelay(true))
        .map_err(|e| CliError::usage(format!("`{url}` is not a server url: {}", exit::chain(&e))))
}

/// Connect to the coordinator.
pub async fn connect(target: &Target) -> Result<GateClient, CliError> {
    let token = match &target.token {
        Some(t) if !t.trim().is_empty() => Some(
            format!("Bearer {}", t.trim())
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| {
                    CliError::usage("the token contains characters not allowed in a header")
                })?,
        ),
        _ => None,
    };
    let channel = endpoint(&target.server, target.request_timeout)?
        .connect()
        .await
        .map_err(|e| {
            CliError::unavailable(format!(
                "cannot reach the coordinator at {}: {} (is it running? see --server / FUNNELGATE_SERVER)",
                target.server,
                exit::chain(&e)
            ))
        })?;
    Ok(
        GateServiceClient::with_interceptor(channel, BearerToken(token))
            .max_decoding_message_size(64 * 1024 * 1024),
    )
}

/// Run one unary call with the target's deadline, mapping failures to exit codes.
pub async fn call<T, F>(target: &Target, what: &str, fut: F) -> Result<T, CliError>
where
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(target.request_timeout, fut).await {
        Ok(Ok(resp)) => Ok(resp.into_inner()),
        Ok(Err(status)) => Err(CliError::from_status(what, &status)),
        Err(_) => Err(CliError::unavailable(format!(
            "{what}: no answer from {} within {:?}",
            target.server, target.request_timeout
        ))),
    }
}

/// A request carrying a `grpc-timeout` equal to the target's deadline.
pub fn request<T>(target: &Target, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(target.request_timeout);
    req
}

/// The decision inside a response, or an error naming the call.
pub fn decision(what: &str, d: Option<pb::GateDecision>) -> Result<pb::GateDecision, CliError> {
    d.ok_or_else(|| {
        CliError::unavailable(format!(
            "{what}: the coordinator answered without a decision"
        ))
    })
}
