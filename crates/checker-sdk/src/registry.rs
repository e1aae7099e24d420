//! One explicit registry of probe kinds per checker. A plugin crate exposes
//! `pub fn register(registry: &mut ProbeRegistry)`; the checker binary builds its registry from
//! the generic kinds plus its plugin's.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::probe::{Probe, ProbeError, ProbeFactory};

/// Probe kinds by name.
#[derive(Clone, Default)]
pub struct ProbeRegistry {
    kinds: BTreeMap<&'static str, Arc<dyn ProbeFactory>>,
}

impl std::fmt::Debug for ProbeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl ProbeRegistry {
    pub fn new() -> Self {
        ProbeRegistry::default()
    }

    /// Register a kind. Registering the same kind twice is a programming error and panics at
    /// start-up, never at run time.
    pub fn register(&mut self, factory: impl ProbeFactory) -> &mut Self {
        let kind = factory.kind();
        let previous = self.kinds.insert(kind, Arc::new(factory));
        assert!(previous.is_none(), "probe kind `{kind}` registered twice");
        self
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn ProbeFactory>> {
        self.kinds.get(kind)
    }

    /// Build a probe; an unknown kind lists the known ones.
    pub fn build(
        &self,
        kind: &str,
        params: &serde_json::Value,
    ) -> Result<Arc<dyn Probe>, ProbeError> {
        match self.kinds.get(kind) {
            Some(f) => f.build(params),
            None => Err(ProbeError::params(format!(
                "unknown probe kind `{kind}`; this checker supports: {}",
                self.kinds.keys().copied().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    pub fn kinds(&self) -> impl Iterator<Item = &Arc<dyn ProbeFactory>> {
        self.kinds.values()
    }

    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }
}
