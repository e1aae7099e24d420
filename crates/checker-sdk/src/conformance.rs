//! The conformance tests every probe kind passes (STYLE.md: "every kind passes the same
//! conformance test"). Call them from a plugin's tests:
//!
//! ```no_run
//! // in a plugin's tests: one call per kind, with params that must build
//! let registry = funnelgate_checker_sdk::generic_registry();
//! let factory = registry.get("http").expect("registered");
//! funnelgate_checker_sdk::conformance::check_factory(
//!     factory.as_ref(),
//!     serde_json::json!({"url": "https://example.com/health"}),
//! );
//! ```
//!
//! They panic with a message naming the kind and the rule broken.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use funnelgate_core::{Measurement, ProbeSpec};
use serde_json::{Value, json};

use crate::probe::{ProbeContext, ProbeError, ProbeErrorKind, ProbeFactory};
use crate::runner::default_http_client;
use crate::secrets::SecretStore;

/// Check a factory against the rules every kind follows:
///
/// - kind, description and unit are set;
/// - the params schema is a JSON object describing an object (`type: object` or
///   `properties`), every property has a `description`, and every key of `valid_params` is a
///   property;
/// - `valid_params` build;
/// - `normalize_params` is idempotent and its output builds;
/// - garbage (`null`, `42`, `"x"`, `[]`, `{"__unknown__": 1}`, the valid params plus an
///   unknown field, the valid params with every field of a wrong type, and with each field
///   alone of a wrong type) is rejected with
///   [`ProbeErrorKind::InvalidParams`] by both `build` and `normalize_params`, never a panic.
pub fn check_factory(factory: &dyn ProbeFactory, valid_params: Value) {
    check_factory_with(factory, valid_params, &[]);
}

/// [`check_factory`], skipping the wrong-type check for `lenient_fields` (fields that
/// legitimately accept several JSON types).
pub fn check_factory_with(
    factory: &dyn ProbeFactory,
    valid_params: Value,
    lenient_fields: &[&str],
) {
    let kind = factory.kind();
    assert!(!kind.is_empty(), "a probe kind has an empty name");
    assert!(
        !factory.description().is_empty(),
        "kind `{kind}`: description is empty"
    );
    assert!(!factory.unit().is_empty(), "kind `{kind}`: unit is empty");

    check_schema(factory, &valid_params);

    match guarded(|| factory.build(&valid_params)) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("kind `{kind}`: valid params {valid_params} do not build: {e}"),
        Err(p) => panic!("kind `{kind}`: build panicked on valid params {valid_params}: {p}"),
    }

    let n1 = match guarded(|| factory.normalize_params(&valid_params)) {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            panic!("kind `{kind}`: normalize_params rejected valid params {valid_params}: {e}")
        }
        Err(p) => panic!("kind `{kind}`: normalize_params panicked on {valid_params}: {p}"),
    };
    let n2 = match guarded(|| factory.normalize_params(&n1)) {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => panic!("kind `{kind}`: normalized params {n1} do not normalize again: {e}"),
        Err(p) => panic!("kind `{kind}`: normalize_params panicked on its own output {n1}: {p}"),
    };
    assert_eq!(n1, n2, "kind `{kind}`: normalize_params is not idempotent");
    match guarded(|| factory.build(&n1)) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("kind `{kind}`: normalized params {n1} do not build: {e}"),
        Err(p) => panic!("kind `{kind}`: build panicked on normalized params {n1}: {p}"),
    }

    for (label, garbage) in garbage_inputs(&valid_params, lenient_fields) {
        expect_invalid(
            kind,
            "build",
            &label,
            guarded(|| factory.build(&garbage).map(|_| ())),
        );
        expect_invalid(
            kind,
            "normalize_params",
            &label,
            guarded(|| factory.normalize_params(&garbage).map(|_| ())),
        );
    }
}

fn check_schema(factory: &dyn ProbeFactory, valid_params: &Value) {
    let kind = factory.kind();
    let schema = match guarded(|| factory.params_schema()) {
        Ok(s) => s,
        Err(p) => panic!("kind `{kind}`: params_schema panicked: {p}"),
    };
    let Some(obj) = schema.as_object() else {
        panic!("kind `{kind}`: params schema is not a JSON object: {schema}");
    };
    let is_object = obj.get("type") == Some(&json!("object")) || obj.contains_key("properties");
    assert!(
        is_object,
        "kind `{kind}`: params schema does not describe an object (no `type: object`, no `properties`): {schema}"
    );
    // Describe sends it as a JSON string: it must survive the trip.
    let text = schema.to_string();
    let back: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("kind `{kind}`: params schema does not re-parse from JSON: {e}")
    });
    assert_eq!(
        back, schema,
        "kind `{kind}`: params schema changes through JSON text"
    );

    let props = obj.get("properties").and_then(Value::as_object);
    if let Some(props) = props {
        for (name, p) in props {
            let documented = p
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            assert!(
                documented,
                "kind `{kind}`: params field `{name}` has no description (add a `///` doc comment)"
            );
        }
    }
    if let Some(valid) = valid_params.as_object() {
        for key in valid.keys() {
            assert!(
                props.is_some_and(|p| p.contains_key(key)),
                "kind `{kind}`: valid params use `{key}`, which the params schema does not list"
            );
        }
    }
}

/// A value of another JSON type than `v`, that no sane field of `v`'s type accepts.
fn wrong_type(v: &Value) -> Value {
    match v {
        Value::String(_) => json!(42),
        Value::Number(_) => json!("not a number"),
        Value::Bool(_) => json!("yes"),
        Value::Array(_) => json!("not a list"),
        Value::Object(_) => json!(42),
        Value::Null => json!({"__wrong_type__": true}),
    }
}

fn garbage_inputs(valid: &Value, lenient_fields: &[&str]) -> Vec<(String, Value)> {
    let mut out = vec![
        ("null".to_string(), Value::Null),
        ("42".to_string(), json!(42)),
        ("\"x\"".to_string(), json!("x")),
        ("[]".to_string(), json!([])),
        ("{\"__unknown__\":1}".to_string(), json!({"__unknown__": 1})),
    ];
    if let Some(obj) = valid.as_object() {
        let mut with_unknown = obj.clone();
        with_unknown.insert("__unknown__".into(), json!(1));
        out.push((
            "valid params plus `__unknown__`".into(),
            Value::Object(with_unknown),
        ));
        let all_wrong: serde_json::Map<String, Value> = obj
            .iter()
            .map(|(k, v)| {
                let v = if lenient_fields.contains(&k.as_str()) {
                    v.clone()
                } else {
                    wrong_type(v)
                };
                (k.clone(), v)
            })
            .collect();
        if !obj.is_empty() {
            out.push((
                "valid params with every field of a wrong type".into(),
                Value::Object(all_wrong),
            ));
        }
        for (k, v) in obj {
            if lenient_fields.contains(&k.as_str()) {
                continue;
            }
            let mut wrong = obj.clone();
            let replacement = wrong_type(v);
            out.push((format!("valid params with `{k}` = {replacement}"), {
                wrong.insert(k.clone(), replacement);
                Value::Object(wrong)
            }));
        }
    }
    out
}

fn expect_invalid(
    kind: &str,
    what: &str,
    label: &str,
    outcome: Result<Result<(), ProbeError>, String>,
) {
    match outcome {
        Ok(Ok(())) => panic!("kind `{kind}`: {what} accepted garbage params ({label})"),
        Ok(Err(e)) if e.kind == ProbeErrorKind::InvalidParams => {}
        Ok(Err(e)) => panic!(
            "kind `{kind}`: {what} rejected garbage params ({label}) with {:?} instead of InvalidParams: {e}",
            e.kind
        ),
        Err(p) => panic!("kind `{kind}`: {what} panicked on garbage params ({label}): {p}"),
    }
}

/// Run `f`, turning a panic into its message.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-text panic payload".to_string()
        }
    })
}

/// Build a probe from `spec.params` and run it once (within `spec.timeout`) in its own task;
/// panics if building fails or the run panics. Returns what the probe returned (a timeout is
/// a transient error). Use it to feed a kind hostile answers from a local server.
pub async fn check_runs_without_panic(
    factory: &dyn ProbeFactory,
    spec: ProbeSpec,
    secrets: SecretStore,
) -> Result<Measurement, ProbeError> {
    let kind = factory.kind();
    let probe = factory
        .build(&spec.params)
        .unwrap_or_else(|e| panic!("kind `{kind}`: params {} do not build: {e}", spec.params));
    let http = default_http_client().unwrap_or_else(|e| panic!("{e}"));
    let timeout = spec.timeout.get();
    let ctx = ProbeContext {
        spec: Arc::new(spec),
        secrets,
        http,
    };
    // As the runner does: vendor retries inside the probe see its deadline.
    let end = tokio::time::Instant::now() + timeout;
    let task = tokio::spawn(crate::retry::with_deadline(end, async move {
        tokio::time::timeout(timeout, probe.run(&ctx)).await
    }));
    match task.await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(ProbeError::transient(format!(
            "timed out after {timeout:?}"
        ))),
        Err(e) if e.is_panic() => panic!("kind `{kind}`: the probe panicked while running"),
        Err(e) => panic!("kind `{kind}`: the probe task failed: {e}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::probe::{Probe, TypedFactory};

    #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Good {
        /// A name.
        name: String,
        /// A count.
        #[serde(default)]
        count: u32,
    }

    #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    struct Undocumented {
        name: String,
    }

    struct Noop;

    #[async_trait::async_trait]
    impl Probe for Noop {
        async fn run(&self, _ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
            Ok(Measurement::value(1.0, "", ""))
        }
    }

    fn noop<P>(_: P) -> Result<Arc<dyn Probe>, ProbeError> {
        Ok(Arc::new(Noop))
    }

    #[test]
    fn a_well_behaved_factory_passes() {
        let f = TypedFactory::<Good, _>::new("good", "a good kind", "count", noop::<Good>);
        check_factory(&f, json!({"name": "x", "count": 3}));
    }

    #[test]
    fn undocumented_fields_fail() {
        let f =
            TypedFactory::<Undocumented, _>::new("undoc", "no docs", "count", noop::<Undocumented>);
        let err = guarded(|| check_factory(&f, json!({"name": "x"}))).unwrap_err();
        assert!(err.contains("`name` has no description"), "{err}");
    }

    #[test]
    fn a_panicking_build_is_reported() {
        let f = TypedFactory::<Good, _>::new("panicky", "panics", "count", |p: Good| {
            if p.count == 7 {
                panic!("seven");
            }
            noop(p)
        });
        let err = guarded(|| check_factory(&f, json!({"name": "x", "count": 7}))).unwrap_err();
        assert!(err.contains("build panicked on valid params"), "{err}");
    }
}
