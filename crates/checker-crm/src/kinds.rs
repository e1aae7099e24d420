//! What every CRM kind is, in one table: vendor, measure, the permissions it needs and the calls it
//! makes. `register` functions and the reference pages (`docs/probes/crm/`) are both built from it.

use std::sync::Arc;

use funnelgate_checker_sdk::{
    Probe, ProbeError, ProbeFactory, ProbeRegistry, parse_params, schema_of,
};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::measure::Measure;

/// Reference facts about one probe kind.
#[derive(Clone, Copy, Debug)]
pub struct KindDoc {
    /// The kind, e.g. `hubspot.duplicates`.
    pub kind: &'static str,
    /// `hubspot`, `salesforce`, `pipedrive` or `warehouse`.
    pub vendor: &'static str,
    /// The measure.
    pub measure: Measure,
    /// The vendor API and version the kind calls.
    pub api: &'static str,
    /// Vendor permissions (scopes, profile permissions, database grants) it needs.
    pub permissions: &'static str,
    /// The API calls or queries it makes.
    pub calls: &'static str,
    /// Caveats, caps, and how the vendor's data maps onto the measure.
    pub notes: &'static str,
}

/// A measure a vendor cannot answer, and why.
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

/// A kind's factory: params must be a JSON object, parse into `P` (unknown fields rejected) and
/// pass `P::validate`, in `build` and `normalize_params` alike, so config validation catches
/// what a run would.
pub struct CrmFactory<P, R> {
    doc: KindDoc,
    make: Box<dyn Fn(P) -> R + Send + Sync>,
}

impl<P, R> CrmFactory<P, R>
where
    P: DeserializeOwned + Serialize + JsonSchema + Validate + 'static,
{
    fn parse(&self, params: &serde_json::Value) -> Result<P, ProbeError> {
        if !params.is_object() {
            return Err(ProbeError::params(format!(
                "params of `{}` must be a table of settings, got {}",
                self.doc.kind,
                json_type(params)
            )));
        }
        let p: P = parse_params(self.doc.kind, params)?;
        p.validate().map_err(|e| {
            ProbeError::params(format!("params of `{}`: {}", self.doc.kind, e.message))
        })?;
        Ok(p)
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a table",
    }
}

impl<P, R> ProbeFactory for CrmFactory<P, R>
where
    P: DeserializeOwned + Serialize + JsonSchema + Validate + Send + Sync + 'static,
    R: Probe + 'static,
{
    fn default_thresholds(&self) -> Option<funnelgate_core::Thresholds> {
        Some(self.doc.measure.default_thresholds())
    }

    fn kind(&self) -> &'static str {
        self.doc.kind
    }
    fn description(&self) -> &'static str {
        self.doc.measure.value_meaning()
    }
    fn unit(&self) -> &'static str {
        self.doc.measure.unit()
    }
    fn vendors(&self) -> Vec<String> {
        match self.doc.vendor {
            "warehouse" => ["postgresql", "mysql", "mariadb", "sqlite"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            v => vec![v.to_string()],
        }
    }
    fn params_schema(&self) -> serde_json::Value {
        schema_of::<P>()
    }
    fn build(&self, params: &serde_json::Value) -> Result<Arc<dyn Probe>, ProbeError> {
        Ok(Arc::new((self.make)(self.parse(params)?)))
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
pub fn register_kind<P, R>(
    registry: &mut ProbeRegistry,
    doc: &KindDoc,
    make: impl Fn(P) -> R + Send + Sync + 'static,
) where
    P: DeserializeOwned + Serialize + JsonSchema + Validate + Send + Sync + 'static,
    R: Probe + 'static,
{
    registry.register(CrmFactory {
        doc: *doc,
        make: Box::new(make),
    });
}
