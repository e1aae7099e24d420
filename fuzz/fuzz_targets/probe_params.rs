//! Probe params as a config gives them: every kind registered by the CRM, automation and ESP
//! plugins (their `registry()`, the generic kinds included) built from arbitrary JSON through
//! `ProbeRegistry::build` and `ProbeFactory::normalize_params`.
//!
//! Input: a first line naming the kind, then the params as JSON. Invariants (the SDK's
//! conformance rules): no panic; a failed build is `InvalidParams`; an unknown kind is refused;
//! params that build normalise, normalisation is idempotent and its output builds too.
//! The analytics plugin is left out: its headless-browser client (chromiumoxide) alone would
//! double the build of this crate, and its kinds read HTML, not JSON.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use funnelgate_checker_sdk::{ProbeErrorKind, ProbeFactory, ProbeRegistry};
use funnelgate_fuzz::first_line;
use libfuzzer_sys::fuzz_target;

struct Kinds {
    registries: Vec<ProbeRegistry>,
    factories: BTreeMap<&'static str, Arc<dyn ProbeFactory>>,
    runtime: tokio::runtime::Runtime,
}

fn kinds() -> &'static Kinds {
    static KINDS: OnceLock<Kinds> = OnceLock::new();
    KINDS.get_or_init(|| {
        let registries = vec![
            funnelgate_checker_crm::registry(),
            funnelgate_checker_automation::registry(),
            funnelgate_checker_esp::registry(),
        ];
        let factories = registries
            .iter()
            .flat_map(|r| r.kinds().map(|f| (f.kind(), Arc::clone(f))))
            .collect();
        // Checkers build probes inside their runtime; some kinds set up clients that need one.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Kinds {
            registries,
            factories,
            runtime,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let (kind, params) = first_line(data);
    let Ok(kind) = std::str::from_utf8(kind) else {
        return;
    };
    let Ok(params) = serde_json::from_slice::<serde_json::Value>(params) else {
        return;
    };
    let k = kinds();
    let _guard = k.runtime.enter();
    let Some(factory) = k.factories.get(kind) else {
        for r in &k.registries {
            let e = r
                .build(kind, &params)
                .err()
                .expect("an unknown kind is refused");
            assert_eq!(e.kind, ProbeErrorKind::InvalidParams, "{e}");
        }
        return;
    };
    let built = factory.build(&params);
    if let Err(e) = &built {
        assert_eq!(
            e.kind,
            ProbeErrorKind::InvalidParams,
            "kind `{kind}`: params {params} refused with {:?}, not InvalidParams: {e}",
            e.kind
        );
    }
    let normalized = factory.normalize_params(&params);
    if let Err(e) = &normalized {
        assert_eq!(
            e.kind,
            ProbeErrorKind::InvalidParams,
            "kind `{kind}`: normalize_params({params}) failed with {:?}: {e}",
            e.kind
        );
    }
    if built.is_ok() && normalized.is_err() {
        panic!("kind `{kind}`: params {params} build but do not normalise: {normalized:?}");
    }
    let Ok(n1) = normalized else {
        return;
    };
    let n2 = factory
        .normalize_params(&n1)
        .unwrap_or_else(|e| panic!("kind `{kind}`: normalised params {n1} do not normalise: {e}"));
    assert_eq!(
        n1, n2,
        "kind `{kind}`: normalize_params is not idempotent on {params}"
    );
    if built.is_ok() {
        if let Err(e) = factory.build(&n1) {
            panic!("kind `{kind}`: {params} builds but its normalised form {n1} does not: {e}");
        }
    }
});
