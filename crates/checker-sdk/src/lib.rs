//! The checker SDK: the [`Probe`] plugin interface and its registry, the [`Runner`] (bounded
//! concurrency, per-probe timeouts, retries for transient errors, cancellation at the
//! deadline), the `StageChecker` gRPC service, secrets by name, the generic probe kinds every
//! checker offers (`http`, `sql`, `prometheus`), and the [`conformance`] tests every kind passes.
//!
//! Depends on the core model and the wire contract; never on the coordinator or on any
//! particular checker plugin.
//!
//! # Writing a stage plugin
//!
//! A plugin crate (`funnelgate-checker-crm`, `-automation`, `-esp`, `-analytics`, or your own)
//! exposes the same four items, so the CLI and `funnelgate up` treat them alike:
//!
//! ```no_run
//! use funnelgate_checker_sdk::{CheckerServerConfig, ProbeRegistry, SecretStore, serve_checker};
//!
//! /// The stage this checker serves by default.
//! pub const STAGE: &str = "crm";
//! /// The checker's name, reported by `Describe`.
//! pub const NAME: &str = "funnelgate-checker-crm";
//!
//! /// Register this plugin's own probe kinds (one typed factory per kind), e.g.
//! /// `registry.register(hubspot::pipelines_factory());`.
//! pub fn register(registry: &mut ProbeRegistry) {
//!     let _ = registry;
//! }
//!
//! /// The generic kinds plus this plugin's.
//! pub fn registry() -> ProbeRegistry {
//!     let mut r = funnelgate_checker_sdk::generic_registry();
//!     register(&mut r);
//!     r
//! }
//!
//! // The CLI (`funnelgate checker crm`) then serves it:
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = CheckerServerConfig {
//!     stage: STAGE.into(),
//!     name: NAME.into(),
//!     registry: registry(),
//!     secrets: SecretStore::new(std::env::vars(), Some("/run/secrets/funnelgate".into())),
//!     max_concurrency: 0, // the default, 8
//! };
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:7001").await?;
//! serve_checker(cfg, listener, funnelgate_server::shutdown_signal()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Each kind's tests call [`conformance::check_factory`] with valid params.

pub mod conformance;
pub mod db;
pub mod pace;
pub mod probe;
pub mod probes;
pub mod registry;
pub mod retry;
pub mod runner;
pub mod secrets;
pub mod service;
pub mod vendor_http;

pub use probe::{
    Probe, ProbeContext, ProbeError, ProbeErrorKind, ProbeFactory, TypedFactory, parse_params,
    schema_of,
};
pub use probes::{generic_registry, register_generic};
pub use registry::ProbeRegistry;
pub use runner::{
    DEFAULT_MAX_CONCURRENCY, RetryPolicy, Runner, RunnerError, default_http_client,
    install_crypto_provider,
};
pub use secrets::SecretStore;
pub use service::{
    CheckerServeError, CheckerServerConfig, CheckerService, serve_checker,
    serve_checker_with_limits, stage_checker_service,
};
