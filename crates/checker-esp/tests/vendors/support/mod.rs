//! Test support for the vendor adapters: the spec loader and contract validator, the mock vendor
//! server, and helpers to build and run a probe the way the checker does.

#![allow(dead_code)]

pub mod mock;
pub mod spec;

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use funnelgate_checker_esp::vendors::{self, ReadContract};
use funnelgate_checker_sdk::{
    ProbeContext, ProbeError, ProbeErrorKind, ProbeRegistry, SecretStore,
};
use funnelgate_core::{Measurement, ProbeSpec, ProbeStatus};
use serde_json::Value;

pub use mock::{MockVendor, Reply, Seen};
pub use spec::Spec;

pub mod failures;

/// SendGrid: the four stored OpenAPI files the adapter uses.
pub fn sendgrid_spec() -> Arc<Spec> {
    static SPEC: OnceLock<Arc<Spec>> = OnceLock::new();
    SPEC.get_or_init(|| {
        Arc::new(Spec::openapi(
            "sendgrid",
            [
                "sendgrid/tsg_domain_authentication_v3.json",
                "sendgrid/tsg_stats_v3.json",
                "sendgrid/tsg_suppressions_v3.json",
                "sendgrid/tsg_webhooks_v3.json",
            ]
            .into_iter()
            .map(spec::read_spec_file)
            .collect(),
        ))
    })
    .clone()
}

/// Mailgun: the stored official OpenAPI 3.1 YAML.
pub fn mailgun_spec() -> Arc<Spec> {
    static SPEC: OnceLock<Arc<Spec>> = OnceLock::new();
    SPEC.get_or_init(|| {
        Arc::new(Spec::openapi(
            "mailgun",
            vec![spec::read_spec_file("mailgun/openapi.yaml")],
        ))
    })
    .clone()
}

/// Amazon SES v2: the stored botocore model.
pub fn ses_spec() -> Arc<Spec> {
    static SPEC: OnceLock<Arc<Spec>> = OnceLock::new();
    SPEC.get_or_init(|| {
        Arc::new(Spec::botocore(
            "ses",
            spec::read_spec_file("amazon-ses/sesv2-2019-09-27.service-2.json"),
        ))
    })
    .clone()
}

/// A reqwest client like the checker's (rustls with ring).
pub fn http_client() -> reqwest::Client {
    funnelgate_checker_sdk::default_http_client().expect("http client")
}

/// The registry with every vendor kind.
pub fn registry() -> ProbeRegistry {
    let mut r = ProbeRegistry::new();
    vendors::register(&mut r);
    r
}

/// How to run one probe.
pub struct Run {
    pub kind: &'static str,
    pub params: Value,
    /// `(secret name, value)`; the value is passed as `FUNNELGATE_SECRET_<name>`.
    pub secret: Option<(&'static str, Option<String>)>,
    pub timeout: Duration,
}

impl Run {
    pub fn new(kind: &'static str, params: Value) -> Run {
        Run {
            kind,
            params,
            secret: None,
            timeout: Duration::from_secs(10),
        }
    }
    pub fn secret(mut self, name: &'static str, value: impl Into<String>) -> Run {
        self.secret = Some((name, Some(value.into())));
        self
    }
    /// Name a secret in the spec but leave it unset.
    pub fn unset_secret(mut self, name: &'static str) -> Run {
        self.secret = Some((name, None));
        self
    }
    pub fn timeout(mut self, t: Duration) -> Run {
        self.timeout = t;
        self
    }

    /// Build the probe (params errors surface here) and run it once.
    pub async fn go(self) -> Result<Measurement, ProbeError> {
        // `dns.spf` calls a vendor too (`ips_from`); it is not a vendor kind.
        let probe = if self.kind == "dns.spf" {
            use funnelgate_checker_sdk::ProbeFactory;
            funnelgate_checker_esp::kinds::spf_factory().build(&self.params)?
        } else {
            registry().build(self.kind, &self.params)?
        };
        let mut spec = ProbeSpec::new("vendor-test", self.kind);
        spec.params = self.params.clone();
        spec.timeout = self.timeout.into();
        let mut env = Vec::new();
        if let Some((name, value)) = &self.secret {
            spec.secret = Some(name.to_string());
            if let Some(value) = value {
                env.push((format!("FUNNELGATE_SECRET_{name}"), value.clone()));
            }
        }
        let ctx = ProbeContext {
            spec: Arc::new(spec),
            secrets: SecretStore::new(env, None),
            http: http_client(),
        };
        probe.run(&ctx).await
    }
}

/// Assert a measurement's verdict.
#[track_caller]
pub fn assert_verdict(m: &Measurement, status: ProbeStatus) {
    assert_eq!(m.verdict, Some(status), "unexpected verdict: {m:#?}");
}

/// Assert an error's kind and that its message contains every needle.
#[track_caller]
pub fn assert_error(
    r: &Result<Measurement, ProbeError>,
    kind: ProbeErrorKind,
    needles: &[&str],
) -> ProbeError {
    let e = match r {
        Ok(m) => panic!("expected a {kind:?} error, got {m:#?}"),
        Err(e) => e.clone(),
    };
    assert_eq!(e.kind, kind, "unexpected error kind: {e:?}");
    for n in needles {
        assert!(
            e.message.contains(n),
            "error message lacks `{n}`: {}",
            e.message
        );
    }
    e
}

/// The contract check every adapter passes: every field it reads exists in the spec's response
/// schema for that operation, and its decoding structs read exactly those fields (a response with
/// only those fields decodes, and re-encoding keeps every one of them and nothing else).
pub fn check_read_contracts(spec: &Spec, vendor: &str) {
    let contracts: Vec<ReadContract> = vendors::read_contracts()
        .into_iter()
        .filter(|c| c.vendor == vendor)
        .collect();
    assert!(
        !contracts.is_empty(),
        "{vendor}: no read contracts published"
    );
    let mut problems = Vec::new();
    for c in &contracts {
        for f in c.fields {
            if let Err(e) = spec.field_schema(c.operation, f) {
                problems.push(e);
            }
        }
        let minimal = match spec.minimal_document(c.operation, c.fields) {
            Ok(d) => d,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        match (c.reencode)(&minimal) {
            Err(e) => problems.push(format!(
                "{}: a response with only the fields the adapter declares does not decode: {e}\n    document: {minimal}",
                c.operation
            )),
            Ok(back) => {
                let declared: BTreeSet<String> = c.fields.iter().map(|s| s.to_string()).collect();
                let kept = spec::leaf_paths(&back);
                let extra: Vec<_> = kept.difference(&declared).collect();
                let dropped: Vec<_> = declared.difference(&kept).collect();
                if !extra.is_empty() {
                    problems.push(format!(
                        "{}: the decoding structs read fields not declared in the read contract: {extra:?}",
                        c.operation
                    ));
                }
                if !dropped.is_empty() {
                    problems.push(format!(
                        "{}: declared fields the decoding structs do not read: {dropped:?}",
                        c.operation
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{vendor} read contract broken:\n  {}",
        problems.join("\n  ")
    );
}
