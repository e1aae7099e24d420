//! The checker SDK: the [`Probe`] plugin interface and its registry, the runner (bounded
//! concurrency, per-probe timeouts, retries for transient errors, cancellation), the
//! `StageChecker` gRPC service, secrets by name, and the generic probe kinds every checker
//! offers: `http`, `sql`, `prometheus`.
//!
//! Depends on the core model and the wire contract; never on the coordinator or on any
//! particular checker plugin.

pub mod probe;
pub mod registry;
pub mod secrets;
pub mod vendor_http;

pub use probe::{
    Probe, ProbeContext, ProbeError, ProbeErrorKind, ProbeFactory, TypedFactory, parse_params,
    schema_of,
};
pub use secrets::SecretStore;
pub use registry::ProbeRegistry;
