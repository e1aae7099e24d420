//! What every automation kind is, in one table per vendor: the measure, the permissions it needs
//! and the calls it makes. The `register` functions and the reference pages
//! (`docs/probes/automation/`) are both built from it.

use std::sync::Arc;

use funnelgate_checker_sdk::{
    Probe, ProbeError, ProbeFactory, ProbeRegistry, parse_params, schema_of,
};
use funnelgate_core::Thresholds;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::measure::Measure;

/// Reference facts about one probe kind.
#[derive(Clone, Copy, Debug)]
pub struct KindDoc {
    /// The kind, e.g. `mautic.lead_nurture_active`.
    pub kind: &'static str,
    /// `mautic`, `marketo`, `hubspot` or `canary`.
    pub vendor: &'static str,
    /// The measure; `None` for the canary journey.
    pub measure: Option<Measure>,
    /// Vendor permissions (scopes, API roles) it needs.
    pub permissions: &'static str,
    /// The API calls it makes.
    pub calls: &'static str,
    /// Caveats, and how the vendor's data maps onto the measure.
    pub notes: &'static str,
}

impl KindDoc {
    /// The unit of the measured value.
    pub fn unit(&self) -> &'static str {
        self.measure.map(Measure::unit).unwrap_or("count")
    }

    /// One line: what the value is.
    pub fn meaning(&self) -> &'static str {
        self.measure.map(Measure::value_meaning).unwrap_or(
            "number of journey steps that did not pass (each step names the stage it evidences)",
        )
    }

    /// The default thresholds.
    pub fn default_thresholds(&self) -> Thresholds {
        match self.measure {
            Some(m) => m.default_thresholds(),
            None => Thresholds {
                fail_above: Some(0.0),
                ..Thresholds::default()
            },
        }
    }
}

/// A measure a vendor's API cannot answer, and why.
#[derive(Clone, Copy, Debug)]
pub struct Omission {
    /// The vendor.
    pub vendor: &'static str,
    /// The measure left out.
    pub measure: Measure,
    /// Why.
    pub reason: &'static str,
}

/// Params that can check themselves beyond their types.
pub trait Validate {
    /// Reject values serde accepts but the probe cannot use, naming the field.
    fn validate(&self) -> Result<(), ProbeError>;
}

/// A kind's factory: params parse into `P` (unknown fields rejected) and pass `P::validate`, in
/// `build` and `normalize_params` alike, so config validation catches what a run would.
pub struct KindFactory<P, R> {
    doc: KindDoc,
    make: fn(P) -> R,
}

impl<P, R> KindFactory<P, R>
where
    P: DeserializeOwned + Serialize + JsonSchema + Validate + 'static,
{
    fn parse(&self, params: &serde_json::Value) -> Result<P, ProbeError> {
        let p: P = parse_params(self.doc.kind, params)?;
        p.validate().map_err(|e| {
            ProbeError::params(format!("params of `{}`: {}", self.doc.kind, e.message))
        })?;
        Ok(p)
    }
}

impl<P, R> ProbeFactory for KindFactory<P, R>
where
    P: DeserializeOwned + Serialize + JsonSchema + Validate + Send + Sync + 'static,
    R: Probe + 'static,
{
    fn kind(&self) -> &'static str {
        self.doc.kind
    }
    fn description(&self) -> &'static str {
        self.doc.meaning()
    }
    fn unit(&self) -> &'static str {
        self.doc.unit()
    }
    fn vendors(&self) -> Vec<String> {
        vec![self.doc.vendor.to_string()]
    }
    fn params_schema(&self) -> serde_json::Value {
        schema_of::<P>()
    }
    fn build(&self, params: &serde_json::Value) -> Result<Arc<dyn Probe>, ProbeError> {
        Ok(Arc::new((self.make)(self.parse(params)?)))
    }
    fn default_thresholds(&self) -> Option<Thresholds> {
        Some(self.doc.default_thresholds())
    }
    fn normalize_params(
        &self,
        params: &serde_json::Value,
    ) -> Result<serde_json::Value, ProbeError> {
        let p = self.parse(params)?;
        serde_json::to_value(&p)
            .map_err(|e| ProbeError::params(format!("params of `{}`: {e}", self.doc.kind)))
    }
}

/// Register one kind from its params type and probe constructor.
pub fn register_kind<P, R>(registry: &mut ProbeRegistry, doc: &KindDoc, make: fn(P) -> R)
where
    P: DeserializeOwned + Serialize + JsonSchema + Validate + Send + Sync + 'static,
    R: Probe + 'static,
{
    registry.register(KindFactory { doc: *doc, make });
}
