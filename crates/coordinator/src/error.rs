//! Errors: [`ServiceError`] for requests (one closed code enum mapped to both gRPC and HTTP
//! status, in one place) and [`CoordinatorError`] for starting and running the coordinator.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::config::ConfigError;
use crate::store::StoreError;

/// The closed set of error codes the Gate API answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceErrorCode {
    /// The request is malformed (bad funnel name, missing reason, bad page token…).
    InvalidArgument,
    /// The funnel (or stored decision) does not exist.
    NotFound,
    /// No or an unknown bearer token where one is needed.
    Unauthenticated,
    /// The caller is known but may not do this.
    PermissionDenied,
    /// The request is valid but the funnel is not in a state that allows it.
    FailedPrecondition,
    /// A bound was reached (watchers) or a watcher fell behind.
    ResourceExhausted,
    /// The request's deadline passed before the answer was ready.
    DeadlineExceeded,
    /// The coordinator is shutting down or a dependency is down.
    Unavailable,
    /// A bug or a storage failure.
    Internal,
}

impl ServiceErrorCode {
    /// The gRPC status code.
    pub const fn grpc(self) -> tonic::Code {
        match self {
            ServiceErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ServiceErrorCode::NotFound => tonic::Code::NotFound,
            ServiceErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
            ServiceErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
            ServiceErrorCode::FailedPrecondition => tonic::Code::FailedPrecondition,
            ServiceErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            ServiceErrorCode::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ServiceErrorCode::Unavailable => tonic::Code::Unavailable,
            ServiceErrorCode::Internal => tonic::Code::Internal,
        }
    }

    /// The HTTP status.
    pub const fn http(self) -> StatusCode {
        match self {
            ServiceErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
            ServiceErrorCode::NotFound => StatusCode::NOT_FOUND,
            ServiceErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ServiceErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ServiceErrorCode::FailedPrecondition => StatusCode::CONFLICT,
            ServiceErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            ServiceErrorCode::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ServiceErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ServiceErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable upper-case name, as in the HTTP error body.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ServiceErrorCode::NotFound => "NOT_FOUND",
            ServiceErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ServiceErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ServiceErrorCode::FailedPrecondition => "FAILED_PRECONDITION",
            ServiceErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ServiceErrorCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ServiceErrorCode::Unavailable => "UNAVAILABLE",
            ServiceErrorCode::Internal => "INTERNAL",
        }
    }
}

/// A request that cannot be answered, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The funnel is not served here.
    #[error(
        "unknown funnel `{0}`: see the served funnels with `funnelgate gate list`, GET /v1/funnels or gRPC ListFunnels"
    )]
    UnknownFunnel(String),
    /// Something else does not exist.
    #[error("{0}")]
    NotFound(String),
    /// No or an unknown bearer token.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The funnel's state does not allow this.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A bound was reached.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The deadline passed.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Shutting down or a dependency is down.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or a storage failure.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// The error's code.
    pub const fn code(&self) -> ServiceErrorCode {
        match self {
            ServiceError::InvalidArgument(_) => ServiceErrorCode::InvalidArgument,
            ServiceError::UnknownFunnel(_) | ServiceError::NotFound(_) => {
                ServiceErrorCode::NotFound
            }
            ServiceError::Unauthenticated(_) => ServiceErrorCode::Unauthenticated,
            ServiceError::PermissionDenied(_) => ServiceErrorCode::PermissionDenied,
            ServiceError::FailedPrecondition(_) => ServiceErrorCode::FailedPrecondition,
            ServiceError::ResourceExhausted(_) => ServiceErrorCode::ResourceExhausted,
            ServiceError::DeadlineExceeded(_) => ServiceErrorCode::DeadlineExceeded,
            ServiceError::Unavailable(_) => ServiceErrorCode::Unavailable,
            ServiceError::Internal(_) => ServiceErrorCode::Internal,
        }
    }

    /// The JSON body of an HTTP error: `{"error": {"code": "NOT_FOUND", "message": "…"}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code().as_str(), "message": self.to_string()}})
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

/// The one mapping from service errors to gRPC statuses.
impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> Self {
        tonic::Status::new(e.code().grpc(), e.to_string())
    }
}

/// The one mapping from service errors to HTTP responses.
impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        (self.code().http(), axum::Json(self.to_json())).into_response()
    }
}

/// Why the coordinator did not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The configuration has problems (every one is listed); nothing was served.
    #[error("refusing to start: invalid configuration\n{0}")]
    InvalidConfig(ConfigError),
    /// The database cannot be opened, migrated or written.
    #[error("refusing to start: {0}")]
    Store(#[from] StoreError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// `grpc` or `http`.
        what: &'static str,
        /// The configured address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The engine refused the configuration or a restored snapshot.
    #[error("refusing to start: gate engine: {0}")]
    Engine(#[from] funnelgate_core::EngineError),
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] funnelgate_server::ServeError),
    /// The HTTP server failed.
    #[error("HTTP server on {addr} failed: {source}")]
    Http {
        /// Where it listened.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A coordinator task ended unexpectedly (a bug).
    #[error("coordinator task `{task}` failed: {reason}")]
    Task {
        /// Which task.
        task: &'static str,
        /// What happened.
        reason: String,
    },
}

impl From<ConfigError> for CoordinatorError {
    fn from(e: ConfigError) -> Self {
        CoordinatorError::InvalidConfig(e)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_grpc_and_http() {
        let e = ServiceError::UnknownFunnel("acme".into());
        let s = tonic::Status::from(e.clone());
        assert_eq!(s.code(), tonic::Code::NotFound);
        assert!(s.message().contains("unknown funnel `acme`"));
        assert_eq!(e.code().http(), StatusCode::NOT_FOUND);
        assert_eq!(e.to_json()["error"]["code"], "NOT_FOUND");
        assert_eq!(
            ServiceError::PermissionDenied("x".into()).code().grpc(),
            tonic::Code::PermissionDenied
        );
    }
}
