//! A small JSON Schema validator for the subset that schemars 1.x emits for probe params
//! (draft 2020-12): `type` (one or several), `properties`, `required`, `additionalProperties`
//! (false or a schema), `enum`, `const`, `items`, `prefixItems`, `minItems`/`maxItems`,
//! `uniqueItems`, `minLength`/`maxLength`, `minimum`/`maximum` (and the exclusive forms),
//! `multipleOf`, `$ref` to `#/$defs/…` (or `#/definitions/…`, or any local JSON pointer),
//! `anyOf`/`oneOf`/`allOf`/`not`, and boolean schemas. Annotations (`format`, `description`,
//! `default`, `title`, …) and `pattern`/`patternProperties` are ignored.
//!
//! The coordinator uses it to reject a probe whose params the checker would refuse, at start,
//! with a message that names the field.

use serde_json::Value;

/// Recursion bound for `$ref` cycles and absurdly nested params.
const MAX_DEPTH: usize = 64;

/// One way the instance does not satisfy the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Path inside the instance, e.g. `query`, `headers.accept`, `urls[2]`; empty for the root.
    pub path: String,
    /// What is wrong, in words a config author understands.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Validate `instance` against `schema` (whose `$defs` resolve `$ref`s). Returns every violation
/// found; empty means valid.
pub fn validate(schema: &Value, instance: &Value) -> Vec<Violation> {
    let mut v = Validator {
        root: schema,
        out: Vec::new(),
    };
    v.check(schema, instance, "", 0);
    v.out
}

/// Is `instance` valid against `schema`?
pub fn is_valid(schema: &Value, instance: &Value) -> bool {
    validate(schema, instance).is_empty()
}

struct Validator<'a> {
    root: &'a Value,
    out: Vec<Violation>,
}

fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

fn matches_type(t: &str, v: &Value) -> bool {
    match (t, v) {
        ("null", Value::Null)
        | ("boolean", Value::Bool(_))
        | ("string", Value::String(_))
        | ("array", Value::Array(_))
        | ("object", Value::Object(_))
        | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => is_integer(n),
        _ => false,
    }
}

/// JSON equality where numbers compare by value (1 == 1.0).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

/// The `type` keyword as a list.
fn types_of(schema: &Value) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(a) => Some(a.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

impl<'a> Validator<'a> {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.out.push(Violation {
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Resolve a local reference (`#`, `#/$defs/X`, `#/definitions/X`, any `#/json/pointer`).
    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(pointer)
    }

    /// Validate in a scratch validator and return its violations (for anyOf/oneOf branches).
    fn trial(&self, schema: &Value, instance: &Value, path: &str, depth: usize) -> Vec<Violation> {
        let mut v = Validator {
            root: self.root,
            out: Vec::new(),
        };
        v.check(schema, instance, path, depth);
        v.out
    }

    fn check(&mut self, schema: &Value, instance: &Value, path: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.push(path, "schema or value nested too deeply to validate");
            return;
        }
        let obj = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                self.push(path, "no value is allowed here");
                return;
            }
            Value::Object(o) => o,
            // Not a schema: accept rather than invent a rule.
            _ => return,
        };

        if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
            match self.resolve(reference) {
                Some(target) => self.check(target, instance, path, depth + 1),
                None => self.push(
                    path,
                    format!("schema reference `{reference}` cannot be resolved"),
                ),
            }
        }

        if let Some(types) = types_of(schema)
            && !types.iter().any(|t| matches_type(t, instance))
        {
            let want = types.join(" or ");
            self.push(
                path,
                format!(
                    "expected {want}, found {} {}",
                    type_name(instance),
                    show(instance)
                ),
            );
            // Further keywords would only repeat the type mismatch.
            return;
        }

        if let Some(Value::Array(allowed)) = obj.get("enum")
            && !allowed.iter().any(|a| json_eq(a, instance))
        {
            let list = allowed.iter().map(show).collect::<Vec<_>>().join(", ");
            self.push(path, format!("{} is not one of: {list}", show(instance)));
        }
        if let Some(c) = obj.get("const")
            && !json_eq(c, instance)
        {
            self.push(
                path,
                format!("must be {}, found {}", show(c), show(instance)),
            );
        }

        match instance {
            Value::Object(map) => self.check_object(obj, map, path, depth),
            Value::Array(items) => self.check_array(obj, items, path, depth),
            Value::String(s) => {
                let len = s.chars().count() as u64;
                if let Some(min) = obj.get("minLength").and_then(Value::as_u64)
                    && len < min
                {
                    self.push(
                        path,
                        format!("must be at least {min} characters long, is {len}"),
                    );
                }
                if let Some(max) = obj.get("maxLength").and_then(Value::as_u64)
                    && len > max
                {
                    self.push(
                        path,
                        format!("must be at most {max} characters long, is {len}"),
                    );
                }
            }
            Value::Number(n) => self.check_number(obj, n, path),
            _ => {}
        }

        if let Some(Value::Array(all)) = obj.get("allOf") {
            for s in all {
                self.check(s, instance, path, depth + 1);
            }
        }
        if let Some(Value::Array(any)) = obj.get("anyOf") {
            self.check_alternatives(any, instance, path, depth, false);
        }
        if let Some(Value::Array(one)) = obj.get("oneOf") {
            self.check_alternatives(one, instance, path, depth, true);
        }
        if let Some(not) = obj.get("not")
            && self.trial(not, instance, path, depth + 1).is_empty()
        {
            self.push(path, format!("{} is not allowed here", show(instance)));
        }
    }

    fn check_number(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        n: &serde_json::Number,
        path: &str,
    ) {
        let Some(x) = n.as_f64() else { return };
        if let Some(min) = obj.get("minimum").and_then(Value::as_f64)
            && x < min
        {
            self.push(path, format!("{n} is below the minimum {min}"));
        }
        if let Some(max) = obj.get("maximum").and_then(Value::as_f64)
            && x > max
        {
            self.push(path, format!("{n} is above the maximum {max}"));
        }
        if let Some(min) = obj.get("exclusiveMinimum").and_then(Value::as_f64)
            && x <= min
        {
            self.push(path, format!("{n} must be greater than {min}"));
        }
        if let Some(max) = obj.get("exclusiveMaximum").and_then(Value::as_f64)
            && x >= max
        {
            self.push(path, format!("{n} must be less than {max}"));
        }
        if let Some(m) = obj.get("multipleOf").and_then(Value::as_f64)
            && m > 0.0
            && ((x / m).round() * m - x).abs() > 1e-9 * x.abs().max(1.0)
        {
            self.push(path, format!("{n} is not a multiple of {m}"));
        }
    }

    fn check_object(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        map: &serde_json::Map<String, Value>,
        path: &str,
        depth: usize,
    ) {
        let props = obj.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = obj.get("required") {
            for r in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(r) {
                    self.push(&join_key(path, r), "required field is missing");
                }
            }
        }
        let has_patterns = obj.get("patternProperties").is_some();
        let additional = obj.get("additionalProperties");
        for (k, v) in map {
            let child = join_key(path, k);
            if let Some(s) = props.and_then(|p| p.get(k)) {
                self.check(s, v, &child, depth + 1);
                continue;
            }
            if has_patterns {
                // We do not evaluate patterns; do not judge keys they might cover.
                continue;
            }
            match additional {
                Some(Value::Bool(false)) => {
                    let mut known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    known.sort_unstable();
                    let hint = if known.is_empty() {
                        "no fields are allowed here".to_string()
                    } else {
                        format!("expected one of: {}", known.join(", "))
                    };
                    self.push(&child, format!("unknown field `{k}`; {hint}"));
                }
                Some(s @ Value::Object(_)) => self.check(s, v, &child, depth + 1),
                _ => {}
            }
        }
        if let Some(min) = obj.get("minProperties").and_then(Value::as_u64)
            && (map.len() as u64) < min
        {
            self.push(path, format!("must have at least {min} fields"));
        }
        if let Some(max) = obj.get("maxProperties").and_then(Value::as_u64)
            && (map.len() as u64) > max
        {
            self.push(path, format!("must have at most {max} fields"));
        }
    }

    fn check_array(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        items: &[Value],
        path: &str,
        depth: usize,
    ) {
        let prefix = obj.get("prefixItems").and_then(Value::as_array);
        let n_prefix = prefix.map_or(0, Vec::len);
        if let Some(prefix) = prefix {
            for (i, (s, v)) in prefix.iter().zip(items).enumerate() {
                self.check(s, v, &format!("{path}[{i}]"), depth + 1);
            }
        }
        match obj.get("items") {
            Some(Value::Array(tuple)) => {
                // Older drafts' tuple form.
                for (i, (s, v)) in tuple.iter().zip(items).enumerate() {
                    self.check(s, v, &format!("{path}[{i}]"), depth + 1);
                }
            }
            Some(s) => {
                for (i, v) in items.iter().enumerate().skip(n_prefix) {
                    self.check(s, v, &format!("{path}[{i}]"), depth + 1);
                }
            }
            None => {}
        }
        let len = items.len() as u64;
        if let Some(min) = obj.get("minItems").and_then(Value::as_u64)
            && len < min
        {
            self.push(path, format!("must have at least {min} items, has {len}"));
        }
        if let Some(max) = obj.get("maxItems").and_then(Value::as_u64)
            && len > max
        {
            self.push(path, format!("must have at most {max} items, has {len}"));
        }
        if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
            for i in 0..items.len() {
                if items[..i].iter().any(|p| json_eq(p, &items[i])) {
                    self.push(
                        &format!("{path}[{i}]"),
                        format!("duplicate item {}", show(&items[i])),
                    );
                }
            }
        }
    }

    /// anyOf (`exactly_one = false`) or oneOf. Messages are made useful for the shapes schemars
    /// emits: a choice of constants (enums with doc comments) lists the allowed values; an
    /// `Option<T>` (`T` or null) reports `T`'s own violations.
    fn check_alternatives(
        &mut self,
        branches: &[Value],
        instance: &Value,
        path: &str,
        depth: usize,
        exactly_one: bool,
    ) {
        let results: Vec<Vec<Violation>> = branches
            .iter()
            .map(|b| self.trial(b, instance, path, depth + 1))
            .collect();
        let passing = results.iter().filter(|r| r.is_empty()).count();
        if passing == 1 || (!exactly_one && passing > 1) {
            return;
        }
        if passing > 1 {
            self.push(
                path,
                format!(
                    "{} matches {passing} of the alternatives, exactly one is allowed",
                    show(instance)
                ),
            );
            return;
        }
        // No branch matched.
        let constants: Option<Vec<&Value>> = branches
            .iter()
            .map(|b| {
                let b = match b.get("$ref").and_then(Value::as_str) {
                    Some(r) => self.resolve(r).unwrap_or(b),
                    None => b,
                };
                b.get("const").or_else(|| {
                    b.get("enum")
                        .and_then(Value::as_array)
                        .filter(|a| a.len() == 1)
                        .and_then(|a| a.first())
                })
            })
            .collect();
        if let Some(constants) = constants {
            let list = constants
                .iter()
                .map(|c| show(c))
                .collect::<Vec<_>>()
                .join(", ");
            self.push(path, format!("{} is not one of: {list}", show(instance)));
            return;
        }
        // Prefer the branches whose `type` fits the value: their violations are the real reasons.
        let fitting: Vec<usize> = branches
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                let b = match b.get("$ref").and_then(Value::as_str) {
                    Some(r) => self.resolve(r).unwrap_or(b),
                    None => b,
                };
                types_of(b).is_some_and(|ts| ts.iter().any(|t| matches_type(t, instance)))
            })
            .map(|(i, _)| i)
            .collect();
        if fitting.len() == 1 {
            self.out
                .extend(results.into_iter().nth(fitting[0]).unwrap_or_default());
            return;
        }
        // The branch with the fewest complaints is the most likely intent.
        if let Some(best) = results
            .iter()
            .filter(|r| !r.is_empty())
            .min_by_key(|r| r.len())
        {
            if results.len() == 1 {
                self.out.extend(best.clone());
                return;
            }
            let first = best.first().map(ToString::to_string).unwrap_or_default();
            self.push(
                path,
                format!(
                    "{} matches none of the {} allowed shapes (closest: {first})",
                    show(instance),
                    branches.len()
                ),
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Shaped like schemars 1.x output for:
    /// ```ignore
    /// #[derive(JsonSchema)] #[serde(deny_unknown_fields)]
    /// struct SqlParams { query: String, dsn_secret: Option<String>, timeout_ms: Option<u32>,
    ///                    mode: Mode, tags: Vec<String>, limits: Option<Limits>, ratio: f64 }
    /// enum Mode { /// doc
    ///   Count, /// doc
    ///   Rate }
    /// ```
    fn sql_schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "SqlParams",
            "type": "object",
            "properties": {
                "query": {"description": "the query", "type": "string", "minLength": 1},
                "dsn_secret": {"type": ["string", "null"]},
                "timeout_ms": {"type": ["integer", "null"], "format": "uint32", "minimum": 0, "maximum": 4294967295u64},
                "mode": {"$ref": "#/$defs/Mode", "default": "count"},
                "tags": {"type": "array", "items": {"type": "string"}, "default": []},
                "limits": {"anyOf": [{"$ref": "#/$defs/Limits"}, {"type": "null"}]},
                "ratio": {"type": "number", "format": "double", "minimum": 0.0, "maximum": 1.0},
            },
            "required": ["query", "ratio"],
            "additionalProperties": false,
            "$defs": {
                "Mode": {"oneOf": [
                    {"description": "count rows", "type": "string", "const": "count"},
                    {"description": "a rate", "type": "string", "const": "rate"},
                ]},
                "Limits": {
                    "type": "object",
                    "properties": {"max_rows": {"type": "integer", "format": "uint64", "minimum": 0}},
                    "required": ["max_rows"],
                    "additionalProperties": false,
                },
            },
        })
    }

    fn paths(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.path.as_str()).collect()
    }

    #[test]
    fn valid_params_pass() {
        let s = sql_schema();
        assert!(is_valid(&s, &json!({"query": "select 1", "ratio": 0.5})));
        assert!(is_valid(
            &s,
            &json!({"query": "q", "ratio": 1, "dsn_secret": null, "timeout_ms": 500, "mode": "rate",
                    "tags": ["a", "b"], "limits": {"max_rows": 10}})
        ));
    }

    #[test]
    fn unknown_field_is_named_with_the_known_ones() {
        let v = validate(
            &sql_schema(),
            &json!({"query": "q", "ratio": 0.1, "qeury": "x"}),
        );
        assert_eq!(paths(&v), vec!["qeury"]);
        assert!(
            v[0].message.contains("unknown field `qeury`"),
            "{}",
            v[0].message
        );
        assert!(v[0].message.contains("query"), "{}", v[0].message);
    }

    #[test]
    fn missing_required_and_wrong_types_are_all_reported() {
        let v = validate(
            &sql_schema(),
            &json!({"timeout_ms": "fast", "tags": ["a", 3]}),
        );
        let p = paths(&v);
        assert!(p.contains(&"query"), "{v:?}");
        assert!(p.contains(&"ratio"), "{v:?}");
        assert!(p.contains(&"timeout_ms"), "{v:?}");
        assert!(p.contains(&"tags[1]"), "{v:?}");
        let t = v.iter().find(|x| x.path == "timeout_ms").unwrap();
        assert!(
            t.message.contains("expected integer or null"),
            "{}",
            t.message
        );
    }

    #[test]
    fn integer_rejects_fractions_but_accepts_whole_floats() {
        let s = sql_schema();
        assert!(!is_valid(
            &s,
            &json!({"query": "q", "ratio": 0.1, "timeout_ms": 1.5})
        ));
        assert!(is_valid(
            &s,
            &json!({"query": "q", "ratio": 0.1, "timeout_ms": 15.0})
        ));
    }

    #[test]
    fn bounds_and_lengths() {
        let v = validate(&sql_schema(), &json!({"query": "", "ratio": 1.5}));
        assert_eq!(paths(&v), vec!["query", "ratio"], "{v:?}");
        assert!(
            v[1].message.contains("above the maximum 1"),
            "{}",
            v[1].message
        );
        let v = validate(
            &sql_schema(),
            &json!({"query": "q", "ratio": 0.5, "timeout_ms": -1}),
        );
        assert!(v[0].message.contains("below the minimum"), "{v:?}");
    }

    #[test]
    fn enum_via_one_of_constants_lists_the_allowed_values() {
        let v = validate(
            &sql_schema(),
            &json!({"query": "q", "ratio": 0.5, "mode": "sum"}),
        );
        assert_eq!(paths(&v), vec!["mode"]);
        assert!(
            v[0].message
                .contains(r#""sum" is not one of: "count", "rate""#),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn option_of_ref_reports_the_inner_violation() {
        let v = validate(
            &sql_schema(),
            &json!({"query": "q", "ratio": 0.5, "limits": {"max_row": 1}}),
        );
        let p = paths(&v);
        assert!(p.contains(&"limits.max_row"), "{v:?}");
        assert!(p.contains(&"limits.max_rows"), "{v:?}");
    }

    #[test]
    fn plain_enum_keyword_and_const() {
        let s = json!({"type": "string", "enum": ["a", "b"]});
        assert!(is_valid(&s, &json!("a")));
        assert!(validate(&s, &json!("c"))[0].message.contains("not one of"));
        let s = json!({"const": 3});
        assert!(is_valid(&s, &json!(3.0)));
        assert!(!is_valid(&s, &json!(4)));
    }

    #[test]
    fn one_of_requires_exactly_one() {
        let s = json!({"oneOf": [{"type": "integer"}, {"type": "number"}]});
        assert!(is_valid(&s, &json!(1.5)));
        let v = validate(&s, &json!(2));
        assert!(v[0].message.contains("exactly one"), "{v:?}");
    }

    #[test]
    fn internally_tagged_enum_shape() {
        // #[serde(tag = "type")] enum Auth { Bearer { secret: String }, Basic { user: String } }
        let s = json!({
            "oneOf": [
                {"type": "object", "properties": {"type": {"type": "string", "const": "bearer"}, "secret": {"type": "string"}},
                 "required": ["type", "secret"], "additionalProperties": false},
                {"type": "object", "properties": {"type": {"type": "string", "const": "basic"}, "user": {"type": "string"}},
                 "required": ["type", "user"], "additionalProperties": false},
            ]
        });
        assert!(is_valid(&s, &json!({"type": "bearer", "secret": "X"})));
        let v = validate(&s, &json!({"type": "digest"}));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("matches none of the 2 allowed shapes"),
            "{v:?}"
        );
    }

    #[test]
    fn map_values_via_additional_properties_schema() {
        // HashMap<String, u32>
        let s =
            json!({"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}});
        assert!(is_valid(&s, &json!({"a": 1, "b": 2})));
        assert_eq!(paths(&validate(&s, &json!({"a": "x"}))), vec!["a"]);
    }

    #[test]
    fn tuples_unique_items_and_boolean_schemas() {
        let s = json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "minItems": 2, "maxItems": 2});
        assert!(is_valid(&s, &json!(["a", 1])));
        assert_eq!(paths(&validate(&s, &json!([1, 1]))), vec!["[0]"]);
        assert!(!is_valid(&s, &json!(["a"])));
        let s = json!({"type": "array", "uniqueItems": true});
        assert_eq!(paths(&validate(&s, &json!([1, 2, 1.0]))), vec!["[2]"]);
        assert!(is_valid(&json!(true), &json!({"anything": [1]})));
        assert!(!is_valid(&json!(false), &json!(null)));
        // serde_json::Value fields are emitted as `true`
        let s =
            json!({"type": "object", "properties": {"extra": true}, "additionalProperties": false});
        assert!(is_valid(&s, &json!({"extra": {"x": [1]}})));
    }

    #[test]
    fn recursive_refs_terminate() {
        let s = json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}}, "additionalProperties": false}}});
        assert!(is_valid(&s, &json!({"next": {"next": null}})));
        let v = validate(&s, &json!({"next": {"nxt": null}}));
        assert_eq!(paths(&v), vec!["next.nxt"], "{v:?}");
        let cyclic = json!({"$ref": "#"});
        assert!(!is_valid(&cyclic, &json!(1)));
    }

    #[test]
    fn unresolvable_ref_is_reported() {
        let v = validate(&json!({"$ref": "#/$defs/Missing"}), &json!(1));
        assert!(v[0].message.contains("cannot be resolved"), "{v:?}");
    }

    #[test]
    fn legacy_definitions_are_resolved() {
        let s = json!({"type": "object", "properties": {"m": {"$ref": "#/definitions/M"}}, "definitions": {"M": {"type": "string", "enum": ["x"]}}});
        assert!(is_valid(&s, &json!({"m": "x"})));
        assert!(!is_valid(&s, &json!({"m": "y"})));
    }
}
