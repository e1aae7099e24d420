//! The probe plugin interface: a [`ProbeFactory`] per kind builds a [`Probe`] from its typed
//! params; the runner gives each run a [`ProbeContext`] and turns the [`Measurement`] (or the
//! [`ProbeError`]) into a judged result.
//!
//! INTERFACE FROZEN — checker plugins code against this file.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use funnelgate_core::{Measurement, ProbeSpec, Thresholds};
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::secrets::{SecretError, SecretStore};

/// Why a probe could not measure. Its message is shown to users: say what and why, lowercase,
/// and never include a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProbeError {
    pub kind: ProbeErrorKind,
    pub message: String,
    /// For rate limits: how long the vendor asked us to wait.
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeErrorKind {
    /// The params are wrong (unknown field, bad type, bad value). Never retried.
    InvalidParams,
    /// Worth retrying with backoff: timeout, connection refused, 5xx, 429.
    Transient,
    /// Retrying will not help: 401/403/404, malformed vendor data, a missing secret.
    Permanent,
}

impl ProbeError {
    pub fn params(message: impl Into<String>) -> Self {
        ProbeError {
            kind: ProbeErrorKind::InvalidParams,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn transient(message: impl Into<String>) -> Self {
        ProbeError {
            kind: ProbeErrorKind::Transient,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        ProbeError {
            kind: ProbeErrorKind::Permanent,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn with_retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }
    pub fn is_transient(&self) -> bool {
        self.kind == ProbeErrorKind::Transient
    }
}

/// A bad secret name is a params error; a secret that is not there is permanent.
impl From<SecretError> for ProbeError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::InvalidName { message } => ProbeError::params(message),
            SecretError::Unavailable { message } => ProbeError::permanent(message),
        }
    }
}

/// What a probe run gets: its spec, secrets (by name), a shared HTTP client.
#[derive(Clone)]
pub struct ProbeContext {
    pub spec: Arc<ProbeSpec>,
    pub secrets: SecretStore,
    /// Shared HTTP client (rustls, connection pooling). Set per-request timeouts no longer than
    /// the spec's timeout; the runner enforces the timeout anyway.
    pub http: reqwest::Client,
}

impl std::fmt::Debug for ProbeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeContext")
            .field("probe", &self.spec.id)
            .finish_non_exhaustive()
    }
}

impl ProbeContext {
    /// Resolve the secret the probe's spec names (`secret = "NAME"`). Missing → a permanent
    /// error saying where it was looked for (never its value).
    pub fn secret(&self) -> Result<SecretString, ProbeError> {
        match &self.spec.secret {
            Some(name) => self.secrets.get(name).map_err(ProbeError::from),
            None => Err(ProbeError::params(format!(
                "probe `{}` of kind `{}` needs a `secret` naming its credentials",
                self.spec.id, self.spec.kind
            ))),
        }
    }

    /// The spec's timeout.
    pub fn timeout(&self) -> Duration {
        self.spec.timeout.get()
    }
}

/// One configured probe, ready to run many times.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Measure once. Never panic on vendor or network data: return a [`ProbeError`].
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError>;
}

/// Builds probes of one kind. Register one per kind in a [`crate::ProbeRegistry`].
pub trait ProbeFactory: Send + Sync + 'static {
    /// e.g. `sql`, `http`, `hubspot.pipeline_shape`.
    fn kind(&self) -> &'static str;
    /// One line: what the probe measures.
    fn description(&self) -> &'static str;
    /// Unit of the measured value: `percent`, `ms`, `count`, `bool`, `ratio`, `hours`…
    fn unit(&self) -> &'static str;
    /// Vendors or back ends it supports, if several.
    fn vendors(&self) -> Vec<String> {
        Vec::new()
    }
    /// JSON Schema of its params.
    fn params_schema(&self) -> serde_json::Value;
    /// Build a probe from params; unknown or invalid params → [`ProbeErrorKind::InvalidParams`]
    /// naming the field.
    fn build(&self, params: &serde_json::Value) -> Result<Arc<dyn Probe>, ProbeError>;
    /// The thresholds a spec of this kind is judged by when it sets none (documented per kind).
    fn default_thresholds(&self) -> Option<Thresholds> {
        None
    }
    /// Parse params into the typed struct and serialise them back, defaults filled in (the
    /// conformance tests check that this round-trips).
    fn normalize_params(&self, params: &serde_json::Value)
    -> Result<serde_json::Value, ProbeError>;
}

/// Parse typed params (`#[serde(deny_unknown_fields)]` structs), turning serde's error into a
/// params error that names the field.
pub fn parse_params<P: DeserializeOwned>(
    kind: &str,
    params: &serde_json::Value,
) -> Result<P, ProbeError> {
    if !params.is_object() {
        return Err(ProbeError::params(format!(
            "params of `{kind}` must be an object (a table), got {}",
            json_type_name(params)
        )));
    }
    serde_json::from_value(params.clone())
        .map_err(|e| ProbeError::params(format!("params of `{kind}`: {e}")))
}

/// The JSON Schema of a params type, as published in `Describe`.
pub fn schema_of<P: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(P)).unwrap_or(serde_json::Value::Null)
}

/// A factory from a params type and a constructor: the common case.
///
/// ```text
/// registry.register(TypedFactory::<SqlParams, _>::new("sql", "…", "count", |p| Ok(Arc::new(SqlProbe::new(p)?))));
/// ```
pub struct TypedFactory<P, F> {
    kind: &'static str,
    description: &'static str,
    unit: &'static str,
    vendors: &'static [&'static str],
    defaults: Option<Thresholds>,
    make: F,
    _params: std::marker::PhantomData<fn() -> P>,
}

impl<P, F> TypedFactory<P, F>
where
    P: DeserializeOwned + Serialize + schemars::JsonSchema + 'static,
    F: Fn(P) -> Result<Arc<dyn Probe>, ProbeError> + Send + Sync + 'static,
{
    pub fn new(kind: &'static str, description: &'static str, unit: &'static str, make: F) -> Self {
        TypedFactory {
            kind,
            description,
            unit,
            vendors: &[],
            defaults: None,
            make,
            _params: std::marker::PhantomData,
        }
    }

    pub fn vendors(mut self, vendors: &'static [&'static str]) -> Self {
        self.vendors = vendors;
        self
    }

    /// The thresholds used when a spec of this kind sets none.
    pub fn default_thresholds(mut self, thresholds: Thresholds) -> Self {
        self.defaults = Some(thresholds);
        self
    }
}

impl<P, F> ProbeFactory for TypedFactory<P, F>
where
    P: DeserializeOwned + Serialize + schemars::JsonSchema + 'static,
    F: Fn(P) -> Result<Arc<dyn Probe>, ProbeError> + Send + Sync + 'static,
{
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn description(&self) -> &'static str {
        self.description
    }
    fn unit(&self) -> &'static str {
        self.unit
    }
    fn vendors(&self) -> Vec<String> {
        self.vendors.iter().map(|s| s.to_string()).collect()
    }
    fn params_schema(&self) -> serde_json::Value {
        schema_of::<P>()
    }
    fn build(&self, params: &serde_json::Value) -> Result<Arc<dyn Probe>, ProbeError> {
        (self.make)(parse_params(self.kind, params)?)
    }
    fn default_thresholds(&self) -> Option<Thresholds> {
        self.defaults.clone()
    }
    fn normalize_params(
        &self,
        params: &serde_json::Value,
    ) -> Result<serde_json::Value, ProbeError> {
        let typed: P = parse_params(self.kind, params)?;
        serde_json::to_value(&typed)
            .map_err(|e| ProbeError::params(format!("params of `{}`: {e}", self.kind)))
    }
}

fn json_type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
