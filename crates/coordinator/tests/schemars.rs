//! The params validator against what schemars 1.x really emits for typical probe params types
//! (the shapes checkers publish in `Describe`).

#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;

use funnelgate_coordinator::schema::{is_valid, validate};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// How rows are counted.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Aggregate {
    /// Count rows.
    Count,
    /// Sum a column.
    Sum,
}

/// How the probe authenticates.
#[derive(Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Auth {
    /// A bearer token from a secret.
    Bearer {
        /// Secret name.
        secret: String,
    },
    /// No authentication.
    None,
}

/// Paging limits.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Limits {
    /// Maximum rows.
    max_rows: u32,
    /// Give up after this many pages.
    #[serde(default)]
    max_pages: Option<u16>,
}

/// Params of a made-up `warehouse.query` probe.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The SQL.
    query: String,
    /// How rows are aggregated.
    #[serde(default = "default_aggregate")]
    aggregate: Aggregate,
    /// Optional aggregate of a second query.
    #[serde(default)]
    fallback: Option<Aggregate>,
    /// Labels.
    #[serde(default)]
    tags: Vec<String>,
    /// Extra headers.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Paging.
    #[serde(default)]
    limits: Option<Limits>,
    /// Auth.
    #[serde(default = "default_auth")]
    auth: Auth,
    /// A share.
    #[serde(default)]
    ratio: f64,
    /// A count.
    #[serde(default)]
    retries: u8,
    /// A free-form value.
    #[serde(default)]
    extra: serde_json::Value,
}

fn default_aggregate() -> Aggregate {
    Aggregate::Count
}
fn default_auth() -> Auth {
    Auth::None
}

fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Params)).unwrap()
}

fn paths(params: serde_json::Value) -> Vec<String> {
    validate(&schema(), &params)
        .into_iter()
        .map(|v| v.path)
        .collect()
}

#[test]
fn valid_params_pass_including_every_optional_shape() {
    let s = schema();
    assert!(is_valid(&s, &json!({"query": "select 1"})), "{s:#}");
    let full = json!({
        "query": "select 1",
        "aggregate": "sum",
        "fallback": null,
        "tags": ["a"],
        "headers": {"Accept": "application/json"},
        "limits": {"max_rows": 10, "max_pages": null},
        "auth": {"type": "bearer", "secret": "TOKEN"},
        "ratio": 0.25,
        "retries": 3,
        "extra": {"anything": [1, "two"]},
    });
    let v = validate(&s, &full);
    assert!(v.is_empty(), "{v:?}\n{s:#}");
    assert!(is_valid(
        &s,
        &json!({"query": "q", "fallback": "count", "auth": {"type": "none"}})
    ));
}

#[test]
fn invalid_params_are_named_by_path() {
    assert_eq!(paths(json!({})), vec!["query"]);
    assert_eq!(paths(json!({"query": "q", "qeury": 1})), vec!["qeury"]);
    assert_eq!(paths(json!({"query": 1})), vec!["query"]);
    assert_eq!(
        paths(json!({"query": "q", "aggregate": "avg"})),
        vec!["aggregate"]
    );
    assert_eq!(
        paths(json!({"query": "q", "fallback": "avg"})),
        vec!["fallback"]
    );
    assert_eq!(
        paths(json!({"query": "q", "tags": ["a", 2]})),
        vec!["tags[1]"]
    );
    assert_eq!(
        paths(json!({"query": "q", "headers": {"x": 1}})),
        vec!["headers.x"]
    );
    assert_eq!(
        paths(json!({"query": "q", "retries": 300})),
        vec!["retries"]
    );
    assert_eq!(paths(json!({"query": "q", "retries": -1})), vec!["retries"]);
    assert_eq!(
        paths(json!({"query": "q", "retries": 1.5})),
        vec!["retries"]
    );
    assert!(!paths(json!({"query": "q", "auth": {"type": "bearer"}})).is_empty());
    assert!(!paths(json!({"query": "q", "auth": {"type": "basic"}})).is_empty());
    let v = validate(
        &schema(),
        &json!({"query": "q", "limits": {"max_rows": "ten"}}),
    );
    assert_eq!(
        v.iter().map(|v| v.path.as_str()).collect::<Vec<_>>(),
        vec!["limits.max_rows"],
        "{v:?}"
    );
    let v = validate(&schema(), &json!({"query": "q", "aggregate": "avg"}));
    assert!(
        v[0].message
            .contains(r#""avg" is not one of: "count", "sum""#),
        "{}",
        v[0].message
    );
}
