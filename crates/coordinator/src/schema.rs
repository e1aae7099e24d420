//! Probe params against the JSON Schema a checker publishes for the kind in `Describe`, with the
//! maintained [`jsonschema`] crate (every keyword of drafts 4 to 2020-12, including `pattern`
//! and the known `format`s; unknown formats such as schemars' `uint32` are annotations). No
//! remote or file `$ref` is ever fetched: a schema needing one does not compile and its params
//! are not checked at start (the checker still refuses bad params itself).
//!
//! This module only turns the crate's errors into messages a config author understands, each
//! quoting the key path inside the params (`query`, `headers.accept`, `urls[2]`), so the
//! coordinator can reject a probe whose params the checker would refuse, at start.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

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

/// A compiled params schema.
#[derive(Debug)]
pub struct ParamsSchema {
    root: Value,
    validator: Validator,
}

impl ParamsSchema {
    /// Compile `schema` (formats asserted, unknown formats ignored, no remote references).
    pub fn compile(schema: &Value) -> Result<Self, String> {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .should_ignore_unknown_formats(true)
            .build(schema)
            .map_err(|e| e.to_string())?;
        Ok(ParamsSchema {
            root: schema.clone(),
            validator,
        })
    }

    /// Every violation of `instance`; empty means valid.
    pub fn check(&self, instance: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        for error in self.validator.iter_errors(instance) {
            self.explain(&error, instance, &mut out);
        }
        // The crate's order follows its compiled keywords: sort by key path for stable output.
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup();
        out
    }

    fn explain(&self, e: &ValidationError<'_>, root: &Value, out: &mut Vec<Violation>) {
        let path = instance_path(e, root);
        let value = e.instance();
        let push = |out: &mut Vec<Violation>, path: String, message: String| {
            out.push(Violation { path, message })
        };
        match e.kind() {
            ValidationErrorKind::Required { property } => {
                let name = property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_string);
                push(
                    out,
                    join_key(&path, &name),
                    "required field is missing".into(),
                );
            }
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let mut known = self.known_properties(e);
                known.sort_unstable();
                let hint = if known.is_empty() {
                    "no fields are allowed here".to_string()
                } else {
                    format!("expected one of: {}", known.join(", "))
                };
                for k in unexpected {
                    push(
                        out,
                        join_key(&path, k),
                        format!("unknown field `{k}`; {hint}"),
                    );
                }
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => t.to_string(),
                    TypeKind::Multiple(ts) => ts
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                };
                push(
                    out,
                    path,
                    format!("must be {expected}, found {}", show(value)),
                );
            }
            ValidationErrorKind::Enum { options } => {
                let list = options
                    .as_array()
                    .map(|a| a.iter().map(show).collect::<Vec<_>>().join(", "))
                    .unwrap_or_else(|| show(options));
                push(out, path, format!("{} is not one of: {list}", show(value)));
            }
            ValidationErrorKind::Constant { expected_value } => push(
                out,
                path,
                format!("must be {}, found {}", show(expected_value), show(value)),
            ),
            ValidationErrorKind::Minimum { limit } => push(
                out,
                path,
                format!("{} is below the minimum {limit}", show(value)),
            ),
            ValidationErrorKind::Maximum { limit } => push(
                out,
                path,
                format!("{} is above the maximum {limit}", show(value)),
            ),
            ValidationErrorKind::ExclusiveMinimum { limit } => push(
                out,
                path,
                format!("{} must be greater than {limit}", show(value)),
            ),
            ValidationErrorKind::ExclusiveMaximum { limit } => push(
                out,
                path,
                format!("{} must be less than {limit}", show(value)),
            ),
            ValidationErrorKind::MinLength { limit } => push(
                out,
                path,
                format!(
                    "must be at least {limit} characters long, is {}",
                    value.as_str().map_or(0, |s| s.chars().count())
                ),
            ),
            ValidationErrorKind::MaxLength { limit } => push(
                out,
                path,
                format!(
                    "must be at most {limit} characters long, is {}",
                    value.as_str().map_or(0, |s| s.chars().count())
                ),
            ),
            ValidationErrorKind::MinItems { limit } => push(
                out,
                path,
                format!(
                    "must have at least {limit} items, has {}",
                    value.as_array().map_or(0, Vec::len)
                ),
            ),
            ValidationErrorKind::MaxItems { limit } => push(
                out,
                path,
                format!(
                    "must have at most {limit} items, has {}",
                    value.as_array().map_or(0, Vec::len)
                ),
            ),
            ValidationErrorKind::MinProperties { limit } => {
                push(out, path, format!("must have at least {limit} fields"))
            }
            ValidationErrorKind::MaxProperties { limit } => {
                push(out, path, format!("must have at most {limit} fields"))
            }
            ValidationErrorKind::UniqueItems => push(
                out,
                path,
                "items must be unique (there is a duplicate)".into(),
            ),
            ValidationErrorKind::Pattern { pattern } => push(
                out,
                path,
                format!("{} does not match the pattern `{pattern}`", show(value)),
            ),
            ValidationErrorKind::Format { format } => push(
                out,
                path,
                format!("{} is not a valid {format}", show(value)),
            ),
            ValidationErrorKind::FalseSchema => {
                push(out, path, format!("{} is not allowed here", show(value)))
            }
            ValidationErrorKind::OneOfMultipleValid { .. } => push(
                out,
                path,
                format!(
                    "{} matches more than one of the alternatives, exactly one is allowed",
                    show(value)
                ),
            ),
            ValidationErrorKind::AnyOf { context }
            | ValidationErrorKind::OneOfNotValid { context } => {
                self.explain_alternatives(context, &path, value, root, out)
            }
            _ => push(out, path, e.to_string()),
        }
    }

    /// No alternative matched: name the real reason where the value's shape says which
    /// alternative was meant, otherwise list what is allowed.
    fn explain_alternatives(
        &self,
        branches: &[Vec<ValidationError<'static>>],
        path: &str,
        value: &Value,
        root: &Value,
        out: &mut Vec<Violation>,
    ) {
        // Every alternative a constant (an enum as schemars writes it): list them.
        let constants: Option<Vec<String>> = branches
            .iter()
            .map(|errors| match errors.as_slice() {
                [e] if instance_path(e, root) == path => match e.kind() {
                    ValidationErrorKind::Constant { expected_value } => {
                        Some(vec![show(expected_value)])
                    }
                    ValidationErrorKind::Enum { options } => {
                        options.as_array().map(|a| a.iter().map(show).collect())
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect::<Option<Vec<Vec<String>>>>()
            .map(|v| v.into_iter().flatten().collect());
        if let Some(list) = constants {
            out.push(Violation {
                path: path.to_string(),
                message: format!("{} is not one of: {}", show(value), list.join(", ")),
            });
            return;
        }
        // Alternatives whose type does not even fit the value say nothing about it.
        let fitting: Vec<&Vec<ValidationError<'static>>> = branches
            .iter()
            .filter(|errors| {
                !errors.iter().all(|e| {
                    matches!(e.kind(), ValidationErrorKind::Type { .. })
                        && instance_path(e, root) == path
                })
            })
            .collect();
        if let [only] = fitting.as_slice() {
            for e in only.iter() {
                self.explain(e, root, out);
            }
            return;
        }
        let closest = branches
            .iter()
            .filter(|b| !b.is_empty())
            .min_by_key(|b| b.len())
            .and_then(|b| {
                let mut v = Vec::new();
                if let Some(e) = b.first() {
                    self.explain(e, root, &mut v);
                }
                v.into_iter().next()
            })
            .map(|v| format!(" (closest: {v})"))
            .unwrap_or_default();
        out.push(Violation {
            path: path.to_string(),
            message: format!(
                "{} matches none of the {} allowed shapes{closest}",
                show(value),
                branches.len()
            ),
        });
    }

    /// The `properties` of the (sub)schema an additional-properties error came from.
    fn known_properties(&self, e: &ValidationError<'_>) -> Vec<String> {
        let mut node = &self.root;
        let schema_path = e.schema_path().as_str().to_string();
        let mut segments: Vec<String> = schema_path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        // the last segment is the keyword itself
        segments.pop();
        for seg in &segments {
            let next = if seg == "$ref" {
                node.get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix('#'))
                    .and_then(|pointer| self.root.pointer(pointer))
            } else {
                match node {
                    Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => node.get(seg.as_str()),
                }
            };
            match next {
                Some(n) => node = n,
                None => return Vec::new(),
            }
        }
        node.get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// Validate `instance` against `schema` (compiled each time: use [`ParamsSchema`] to reuse).
/// A schema that does not compile is one violation at the root saying so.
pub fn validate(schema: &Value, instance: &Value) -> Vec<Violation> {
    match ParamsSchema::compile(schema) {
        Ok(s) => s.check(instance),
        Err(e) => vec![Violation {
            path: String::new(),
            message: format!("the params schema is not usable: {e}"),
        }],
    }
}

/// Is `instance` valid against `schema`?
pub fn is_valid(schema: &Value, instance: &Value) -> bool {
    validate(schema, instance).is_empty()
}

fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The error's instance location in our key syntax, walking `root` so an object key that looks
/// like a number stays a key (`headers.1`) and only array positions are indexes (`urls[2]`).
fn instance_path(e: &ValidationError<'_>, root: &Value) -> String {
    let mut out = String::new();
    let mut node = Some(root);
    for seg in e.instance_path().iter() {
        let key = match seg {
            LocationSegment::Property(p) => p.to_string(),
            LocationSegment::Index(i) => i.to_string(),
        };
        match node {
            Some(Value::Array(a)) => {
                let i = key.parse::<usize>().unwrap_or(usize::MAX);
                out.push_str(&format!("[{key}]"));
                node = a.get(i);
            }
            other => {
                node = other.and_then(|n| n.get(key.as_str()));
                out = join_key(&out, &key);
            }
        }
    }
    out
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(schema: Value, instance: Value) -> Vec<String> {
        validate(&schema, &instance)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn pattern_and_format_are_enforced() {
        let schema = json!({
            "type": "object",
            "properties": {
                "domain": {"type": "string", "pattern": "^[a-z0-9.-]+$"},
                "email": {"type": "string", "format": "email"},
                "since": {"type": "string", "format": "date"},
                "count": {"type": "integer", "format": "uint32", "minimum": 0}
            }
        });
        assert!(is_valid(
            &schema,
            &json!({"domain": "example.com", "email": "ops@example.com", "since": "2024-02-29", "count": 3})
        ));
        assert_eq!(
            messages(schema.clone(), json!({"domain": "Example COM"})),
            vec!["domain: \"Example COM\" does not match the pattern `^[a-z0-9.-]+$`"]
        );
        assert_eq!(
            messages(schema.clone(), json!({"email": "not an address"})),
            vec!["email: \"not an address\" is not a valid email"]
        );
        assert_eq!(
            messages(schema, json!({"since": "2024-02-31"})),
            vec!["since: \"2024-02-31\" is not a valid date"]
        );
    }

    #[test]
    fn paths_index_arrays_and_keep_numeric_keys() {
        let schema = json!({
            "type": "object",
            "properties": {
                "urls": {"type": "array", "items": {"type": "string", "format": "uri"}},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        });
        assert_eq!(
            messages(
                schema,
                json!({"urls": ["https://a.example", "no scheme"], "headers": {"1": 2}})
            ),
            vec![
                "headers.1: must be string, found 2",
                "urls[1]: \"no scheme\" is not a valid uri"
            ]
        );
    }

    #[test]
    fn remote_references_are_never_fetched() {
        let schema = json!({"$ref": "https://example.com/schema.json"});
        let v = validate(&schema, &json!({}));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.starts_with("the params schema is not usable"),
            "{v:?}"
        );
    }
}
