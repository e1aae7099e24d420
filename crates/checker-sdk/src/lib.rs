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
//! ```ignore
//! /// The stage this checker serves by default.
//! pub const STAGE: &str = "crm";
//! /// The checker's name, reported by `Describe`.
//! pub const NAME: &str = "funnelgate-checker-crm";
//!
//! /// Register this plugin's own probe kinds (one typed factory per kind).
//! pub fn register(registry: &mut ProbeRegistry) {
//!     registry.register(hubspot::pipelines_factory());
//! }
//!
//! /// The generic kinds plus this plugin's.
//! pub fn registry() -> ProbeRegistry {
//!     let mut r = funnelgate_checker_sdk::generic_registry();
//!     register(&mut r);
//!     r
//! }
//! ```
//!
//! and serves them with:
//!
//! ```ignore
//! let cfg = CheckerServerConfig {
//!     stage: STAGE.into(),
//!     name: NAME.into(),
//!     registry: registry(),
//!     secrets: SecretStore::new(std::env::vars(), secrets_dir),
//!     max_concurrency: 0, // the default, 8
//! };
//! serve_checker(cfg, TcpListener::bind(addr).await?, shutdown_signal()).await?;
//! ```
//!
//! Each kind's tests call [`conformance::check_factory`] with valid params.

pub mod conformance;
pub mod probe;
pub mod probes;
pub mod registry;
pub mod runner;
pub mod secrets;
pub mod service;

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
