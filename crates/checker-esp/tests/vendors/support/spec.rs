//! A small API-contract validator over the vendors' own published specs.
//!
//! Both spec formats are turned into one model: operations (method, path template, parameters,
//! request body schema, response schemas by status) whose schemas are JSON Schema as OpenAPI 3.1
//! writes it (`$ref`, `type` as a string or a list, `nullable`, `allOf`/`anyOf`/`oneOf`,
//! `required`, `properties`, `items`, `additionalProperties`, `enum`, `minItems`/`maxItems`).
//! - OpenAPI 3.x (SendGrid JSON, Mailgun YAML, the hand-written Postmark document): used as is.
//! - botocore `service-2` models (SES v2): every shape becomes a schema under `#/shapes/<Name>`
//!   (structure → object, list → array, map → object with `additionalProperties`, integer and long →
//!   integer, double and float → number, timestamp → number: rest-json's default epoch seconds);
//!   members with a `location` become path, query or header parameters of the operation.
//!
//! What it checks: a request matches exactly one operation by method and path template (literal
//! segments win over `{params}`), sends every required query and header parameter, sends no
//! query parameter the operation does not declare, scalar parameters have the declared type or
//! enum, and a JSON body validates against the request schema; a response body validates against
//! the response schema of its status; a field path (`a.b`, `[]` for array items) exists in a
//! response schema. `oneOf` is checked as `anyOf`; `format` and `pattern` are not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};

/// Path parameters bound by a template match: (name, decoded value).
type Bindings = Vec<(String, String)>;

/// Where a parameter goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
    Header,
}

#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub location: In,
    pub required: bool,
    pub schema: Option<Value>,
}

/// One operation of a spec.
#[derive(Clone, Debug)]
pub struct Operation {
    /// `operationId` (OpenAPI) or the operation name (botocore).
    pub id: String,
    pub method: String,
    /// Path template, e.g. `/v3/whitelabel/domains/{id}/validate`.
    pub template: String,
    pub params: Vec<Param>,
    pub request_body: Option<Value>,
    pub request_body_required: bool,
    /// Response schema by status (`200`, `2XX`, `default`); `None` when the spec gives no body.
    pub responses: BTreeMap<String, Option<Value>>,
    /// The document the schemas' `$ref`s resolve in.
    pub doc: Arc<Value>,
    /// Which spec file, for messages.
    pub source: String,
}

impl Operation {
    /// `METHOD /template`.
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    /// The schema of the first 2xx response.
    pub fn success_schema(&self) -> Option<&Value> {
        self.responses
            .iter()
            .find(|(k, _)| k.starts_with('2'))
            .and_then(|(_, v)| v.as_ref())
    }
}

/// A vendor's spec: every operation of its documents.
#[derive(Debug)]
pub struct Spec {
    pub vendor: String,
    pub operations: Vec<Operation>,
}

/// A request as the mock server saw it.
#[derive(Clone, Debug)]
pub struct RequestFacts {
    pub method: String,
    /// Raw (percent-encoded) path.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------
// Loading

/// Root of the stored vendor specs: env `FUNNELGATE_VENDOR_SPECS`, else `<repo>/../shared/vendor-specs`.
/// Panics (the test fails) when the folder is missing.
pub fn spec_root() -> PathBuf {
    let root = match std::env::var_os("FUNNELGATE_VENDOR_SPECS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vendor-specs"),
    };
    assert!(
        root.is_dir(),
        "vendor specs not found at {}: the contract tests validate against the vendors' published API specs; \
         put them there (see shared/vendor-specs/README.md) or set FUNNELGATE_VENDOR_SPECS",
        root.display()
    );
    root
}

/// Read one spec file under [`spec_root`]; panics naming the file when it is missing or unreadable.
pub fn read_spec_file(rel: &str) -> (String, Value) {
    let path = spec_root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "vendor spec {} is missing or unreadable: {e}",
            path.display()
        )
    });
    let value = if rel.ends_with(".yaml") || rel.ends_with(".yml") {
        let y: serde_norway::Value = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("vendor spec {} is not valid yaml: {e}", path.display()));
        yaml_to_json(y)
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("vendor spec {} is not valid json: {e}", path.display()))
    };
    (rel.to_string(), value)
}

fn yaml_to_json(y: serde_norway::Value) -> Value {
    match y {
        serde_norway::Value::Null => Value::Null,
        serde_norway::Value::Bool(b) => Value::Bool(b),
        serde_norway::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_norway::Value::String(s) => Value::String(s),
        serde_norway::Value::Sequence(s) => Value::Array(s.into_iter().map(yaml_to_json).collect()),
        serde_norway::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    serde_norway::Value::String(s) => s,
                    serde_norway::Value::Number(n) => n.to_string(),
                    serde_norway::Value::Bool(b) => b.to_string(),
                    other => format!("{other:?}"),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        serde_norway::Value::Tagged(t) => yaml_to_json(t.value),
    }
}

impl Spec {
    /// Operations of one or more OpenAPI 3.x documents.
    pub fn openapi(vendor: &str, docs: Vec<(String, Value)>) -> Spec {
        let mut operations = Vec::new();
        for (source, doc) in docs {
            let version = doc
                .get("openapi")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            assert!(
                version.starts_with('3'),
                "{source}: not an OpenAPI 3 document"
            );
            let doc = Arc::new(doc);
            let paths = doc
                .get("paths")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (template, item) in paths {
                let shared: Vec<Value> = item
                    .get("parameters")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                    let Some(op) = item.get(method) else { continue };
                    let mut params = Vec::new();
                    let own: Vec<Value> = op
                        .get("parameters")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    for p in shared.iter().chain(own.iter()) {
                        let p = resolve(&doc, p);
                        let location = match p.get("in").and_then(Value::as_str) {
                            Some("path") => In::Path,
                            Some("query") => In::Query,
                            Some("header") => In::Header,
                            _ => continue,
                        };
                        params.push(Param {
                            name: p
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            location,
                            required: p
                                .get("required")
                                .and_then(Value::as_bool)
                                .unwrap_or(location == In::Path),
                            schema: p.get("schema").cloned(),
                        });
                    }
                    let (request_body, request_body_required) = match op.get("requestBody") {
                        Some(rb) => {
                            let rb = resolve(&doc, rb);
                            (
                                json_schema_of(&rb),
                                rb.get("required").and_then(Value::as_bool).unwrap_or(false),
                            )
                        }
                        None => (None, false),
                    };
                    let mut responses = BTreeMap::new();
                    if let Some(rs) = op.get("responses").and_then(Value::as_object) {
                        for (status, r) in rs {
                            let r = resolve(&doc, r);
                            responses.insert(status.clone(), json_schema_of(&r));
                        }
                    }
                    operations.push(Operation {
                        id: op
                            .get("operationId")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        method: method.to_ascii_uppercase(),
                        template: template.clone(),
                        params,
                        request_body,
                        request_body_required,
                        responses,
                        doc: doc.clone(),
                        source: source.clone(),
                    });
                }
            }
        }
        assert!(
            !operations.is_empty(),
            "{vendor}: the spec defines no operations"
        );
        Spec {
            vendor: vendor.to_string(),
            operations,
        }
    }

    /// Operations of a botocore `service-2` model (rest-json protocol).
    pub fn botocore(vendor: &str, (source, model): (String, Value)) -> Spec {
        let protocol = model
            .pointer("/metadata/protocol")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert_eq!(
            protocol, "rest-json",
            "{source}: only rest-json botocore models are supported"
        );
        let shapes = model
            .get("shapes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut converted = Map::new();
        for (name, shape) in &shapes {
            converted.insert(name.clone(), shape_schema(shape));
        }
        let doc = Arc::new(json!({ "shapes": converted }));
        let mut operations = Vec::new();
        let ops = model
            .get("operations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (name, op) in ops {
            let method = op
                .pointer("/http/method")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let uri = op
                .pointer("/http/requestUri")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let template = uri.split('?').next().unwrap_or_default().replace('+', "");
            let mut params = Vec::new();
            let mut request_body = None;
            let mut request_body_required = false;
            if let Some(input) = op.pointer("/input/shape").and_then(Value::as_str) {
                let shape = &shapes[input];
                let required: BTreeSet<&str> = shape
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut body_props = Map::new();
                let mut body_required = Vec::new();
                for (m, member) in shape
                    .get("members")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
                {
                    let target = member
                        .get("shape")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let schema = json!({ "$ref": format!("#/shapes/{target}") });
                    let wire = member
                        .get("locationName")
                        .and_then(Value::as_str)
                        .unwrap_or(&m)
                        .to_string();
                    let location = match member.get("location").and_then(Value::as_str) {
                        Some("uri") => Some(In::Path),
                        Some("querystring") => Some(In::Query),
                        Some("header") => Some(In::Header),
                        Some(_) => continue,
                        None => None,
                    };
                    match location {
                        Some(location) => params.push(Param {
                            name: wire,
                            location,
                            required: required.contains(m.as_str()) || location == In::Path,
                            schema: Some(schema),
                        }),
                        None => {
                            if required.contains(m.as_str()) {
                                body_required.push(Value::String(m.clone()));
                            }
                            body_props.insert(m.clone(), schema);
                        }
                    }
                }
                if !body_props.is_empty() {
                    request_body_required = !body_required.is_empty();
                    request_body = Some(json!({
                        "type": "object", "properties": body_props, "required": body_required,
                        "additionalProperties": false
                    }));
                }
            }
            let mut responses = BTreeMap::new();
            let code = op
                .pointer("/http/responseCode")
                .and_then(Value::as_u64)
                .unwrap_or(200);
            let body = op
                .pointer("/output/shape")
                .and_then(Value::as_str)
                .map(|output| {
                    let shape = &shapes[output];
                    let mut props = Map::new();
                    let mut req = Vec::new();
                    let required: BTreeSet<&str> = shape
                        .get("required")
                        .and_then(Value::as_array)
                        .map(|r| r.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    for (m, member) in shape
                        .get("members")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default()
                    {
                        if member.get("location").is_some() {
                            continue;
                        }
                        let target = member
                            .get("shape")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if required.contains(m.as_str()) {
                            req.push(Value::String(m.clone()));
                        }
                        props.insert(m.clone(), json!({ "$ref": format!("#/shapes/{target}") }));
                    }
                    json!({ "type": "object", "properties": props, "required": req })
                });
            responses.insert(code.to_string(), body);
            operations.push(Operation {
                id: name.clone(),
                method,
                template,
                params,
                request_body,
                request_body_required,
                responses,
                doc: doc.clone(),
                source: source.clone(),
            });
        }
        Spec {
            vendor: vendor.to_string(),
            operations,
        }
    }

    /// The operation named `METHOD /template`; panics when the spec lacks it.
    pub fn operation(&self, name: &str) -> &Operation {
        self.operations
            .iter()
            .find(|o| o.name() == name)
            .unwrap_or_else(|| panic!("{}: the spec defines no operation `{name}`", self.vendor))
    }

    /// Match a request to an operation and check it. Errors say what the spec lacks.
    pub fn check_request(&self, req: &RequestFacts) -> Result<&Operation, Vec<String>> {
        let what = format!("{} {}", req.method, req.path);
        let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        let mut best: Option<(&Operation, usize, Bindings)> = None;
        for op in self.operations.iter().filter(|o| o.method == req.method) {
            let tmpl: Vec<&str> = op.template.trim_start_matches('/').split('/').collect();
            if tmpl.len() != segments.len() {
                continue;
            }
            let mut literal = 0;
            let mut bound = Vec::new();
            let ok = tmpl.iter().zip(&segments).all(|(t, s)| {
                if t.starts_with('{') && t.ends_with('}') {
                    bound.push((t[1..t.len() - 1].to_string(), percent_decode(s)));
                    !s.is_empty()
                } else {
                    literal += 1;
                    t == s
                }
            });
            if ok && best.as_ref().is_none_or(|(_, l, _)| literal > *l) {
                best = Some((op, literal, bound));
            }
        }
        let Some((op, _, bound)) = best else {
            return Err(vec![format!(
                "{}: the spec defines no operation matching {what}",
                self.vendor
            )]);
        };
        let mut errors = Vec::new();
        let here = format!("{} ({}, {})", what, op.name(), op.source);
        for (name, value) in &bound {
            if let Some(p) = op
                .params
                .iter()
                .find(|p| p.location == In::Path && &p.name == name)
                && let Some(s) = &p.schema
            {
                check_scalar(
                    &op.doc,
                    s,
                    value,
                    &format!("{here}: path parameter `{name}`"),
                    &mut errors,
                );
            }
        }
        for p in &op.params {
            match p.location {
                In::Query if p.required && !req.query.iter().any(|(k, _)| k == &p.name) => {
                    errors.push(format!(
                        "{here}: required query parameter `{}` is missing",
                        p.name
                    ));
                }
                In::Header
                    if p.required
                        && !req
                            .headers
                            .iter()
                            .any(|(k, _)| k.eq_ignore_ascii_case(&p.name)) =>
                {
                    errors.push(format!("{here}: required header `{}` is missing", p.name));
                }
                _ => {}
            }
        }
        for (k, v) in &req.query {
            match op
                .params
                .iter()
                .find(|p| p.location == In::Query && &p.name == k)
            {
                None => errors.push(format!(
                    "{here}: query parameter `{k}` is not defined by the spec"
                )),
                Some(p) => {
                    if let Some(s) = &p.schema {
                        check_scalar(
                            &op.doc,
                            s,
                            v,
                            &format!("{here}: query parameter `{k}`"),
                            &mut errors,
                        );
                    }
                }
            }
        }
        match (&op.request_body, req.body.is_empty()) {
            (None, false) => errors.push(format!("{here}: sends a body the spec does not define")),
            (Some(_), true) if op.request_body_required => {
                errors.push(format!("{here}: the spec requires a request body"))
            }
            (Some(schema), false) => match serde_json::from_slice::<Value>(&req.body) {
                Ok(body) => validate(
                    &op.doc,
                    schema,
                    &body,
                    &format!("{here}: request body"),
                    &mut errors,
                ),
                Err(e) => errors.push(format!("{here}: request body is not json: {e}")),
            },
            _ => {}
        }
        if errors.is_empty() {
            Ok(op)
        } else {
            Err(errors)
        }
    }

    /// Validate a response body for `op` and `status`. A 2xx status the spec does not define is an
    /// error; other undefined statuses (simulated failures like 429) are not checked.
    pub fn check_response(&self, op: &Operation, status: u16, body: &Value) -> Vec<String> {
        let s = status.to_string();
        let class = format!("{}XX", status / 100);
        let schema = op
            .responses
            .get(&s)
            .or_else(|| op.responses.get(&class))
            .or_else(|| {
                if (200..300).contains(&status) {
                    op.responses.get("default")
                } else {
                    None
                }
            });
        let mut errors = Vec::new();
        match schema {
            Some(Some(schema)) => validate(
                &op.doc,
                schema,
                body,
                &format!("{} response {status}", op.name()),
                &mut errors,
            ),
            Some(None) => {}
            None if (200..300).contains(&status) => errors.push(format!(
                "{}: the spec defines no {status} response",
                op.name()
            )),
            None => {}
        }
        errors
    }

    /// The schema of field `path` in the 2xx response of operation `name`; an error when the
    /// spec lacks it.
    pub fn field_schema(&self, name: &str, path: &str) -> Result<Value, String> {
        let op = self.operation(name);
        let root = op
            .success_schema()
            .ok_or_else(|| format!("{name}: the spec gives no 2xx response schema"))?;
        walk(&op.doc, root, &split_path(path)).ok_or_else(|| {
            format!("{name}: response field `{path}` is not in the spec's response schema")
        })
    }

    /// A document holding exactly `fields` (each with a value of its spec type): what a
    /// response with only the fields the adapter reads looks like.
    pub fn minimal_document(&self, name: &str, fields: &[&str]) -> Result<Value, String> {
        let mut doc = Value::Null;
        for f in fields {
            let schema = self.field_schema(name, f)?;
            let op = self.operation(name);
            let sample = sample_value(&op.doc, &schema);
            insert_path(&mut doc, &split_path(f), sample);
        }
        Ok(doc)
    }
}

// ---------------------------------------------------------------------------------------------
// Paths

/// `a.b[].c` → `["a", "b", "[]", "c"]`; `[].x` → `["[]", "x"]`.
pub fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut p = part;
        let mut arrays = 0;
        while let Some(stripped) = p.strip_suffix("[]") {
            p = stripped;
            arrays += 1;
        }
        if !p.is_empty() {
            out.push(p.to_string());
        }
        out.extend(std::iter::repeat_n("[]".to_string(), arrays));
    }
    out
}

fn join(prefix: &str, seg: &str) -> String {
    if seg == "[]" {
        format!("{prefix}[]")
    } else if prefix.is_empty() {
        seg.to_string()
    } else {
        format!("{prefix}.{seg}")
    }
}

/// Every leaf path of a JSON value (scalars, nulls, empty objects and arrays).
pub fn leaf_paths(v: &Value) -> BTreeSet<String> {
    fn go(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    go(x, &join(prefix, k), out);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for x in a {
                    go(x, &join(prefix, "[]"), out);
                }
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    go(v, "", &mut out);
    out
}

fn insert_path(doc: &mut Value, segs: &[String], leaf: Value) {
    let Some((first, rest)) = segs.split_first() else {
        *doc = leaf;
        return;
    };
    if first == "[]" {
        if !doc.is_array() {
            *doc = Value::Array(vec![Value::Null]);
        }
        if let Value::Array(a) = doc {
            if a.is_empty() {
                a.push(Value::Null);
            }
            insert_path(&mut a[0], rest, leaf);
        }
    } else {
        if !doc.is_object() {
            *doc = Value::Object(Map::new());
        }
        if let Value::Object(m) = doc {
            insert_path(m.entry(first.clone()).or_insert(Value::Null), rest, leaf);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas

fn resolve(doc: &Value, v: &Value) -> Value {
    let mut cur = v.clone();
    for _ in 0..32 {
        match cur.get("$ref").and_then(Value::as_str) {
            Some(r) if r.starts_with('#') => {
                let target = doc
                    .pointer(&r[1..])
                    .cloned()
                    .unwrap_or_else(|| panic!("unresolvable $ref {r}"));
                // OpenAPI 3.1 allows siblings next to $ref: keep them.
                let mut merged = target;
                if let (Value::Object(t), Value::Object(c)) = (&mut merged, &cur) {
                    for (k, x) in c {
                        if k != "$ref" {
                            t.entry(k.clone()).or_insert(x.clone());
                        }
                    }
                }
                cur = merged;
            }
            _ => return cur,
        }
    }
    panic!("$ref chain too deep");
}

fn json_schema_of(body: &Value) -> Option<Value> {
    let content = body.get("content")?.as_object()?;
    let media = content.get("application/json").or_else(|| {
        content
            .iter()
            .find(|(k, _)| k.contains("json"))
            .map(|(_, v)| v)
    })?;
    media.get("schema").cloned()
}

fn shape_schema(shape: &Value) -> Value {
    let r = |s: &Value| json!({ "$ref": format!("#/shapes/{}", s.as_str().unwrap_or_default()) });
    match shape
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "structure" => {
            let mut props = Map::new();
            for (m, member) in shape
                .get("members")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
            {
                props.insert(m, r(&member["shape"]));
            }
            json!({
                "type": "object",
                "properties": props,
                "required": shape.get("required").cloned().unwrap_or(json!([])),
                "additionalProperties": false
            })
        }
        "list" => {
            let mut s = json!({ "type": "array", "items": r(&shape["member"]["shape"]) });
            if let Some(min) = shape.get("min") {
                s["minItems"] = min.clone();
            }
            if let Some(max) = shape.get("max") {
                s["maxItems"] = max.clone();
            }
            s
        }
        "map" => json!({ "type": "object", "additionalProperties": r(&shape["value"]["shape"]) }),
        "string" => match shape.get("enum") {
            Some(e) => json!({ "type": "string", "enum": e }),
            None => json!({ "type": "string" }),
        },
        "integer" | "long" => json!({ "type": "integer" }),
        "double" | "float" => json!({ "type": "number" }),
        "boolean" => json!({ "type": "boolean" }),
        "timestamp" => match shape.get("timestampFormat").and_then(Value::as_str) {
            Some("iso8601") | Some("rfc822") => json!({ "type": "string" }),
            _ => json!({ "type": "number" }),
        },
        "blob" => json!({ "type": "string" }),
        other => panic!("unsupported botocore shape type `{other}`"),
    }
}

fn types_of(schema: &Value) -> Option<Vec<String>> {
    let mut t: Vec<String> = match schema.get("type") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => return None,
    };
    if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        t.push("null".into());
    }
    Some(t)
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "number" => v.is_number(),
        "integer" => {
            v.as_i64().is_some()
                || v.as_u64().is_some()
                || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

/// Validate `v` against `schema`, appending errors (with their JSON path) to `errors`.
pub fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(doc, s, v, at, errors);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(any) = schema.get(key).and_then(Value::as_array) {
            let ok = any.iter().any(|s| {
                let mut e = Vec::new();
                validate(doc, s, v, at, &mut e);
                e.is_empty()
            });
            if !ok {
                errors.push(format!("{at}: matches none of the {key} alternatives: {v}"));
                return;
            }
        }
    }
    if let Some(types) = types_of(&schema)
        && !types.iter().any(|t| has_type(v, t))
    {
        errors.push(format!("{at}: expected {}, got {v}", types.join(" or ")));
        return;
    }
    if v.is_null() {
        return;
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        errors.push(format!(
            "{at}: {v} is not one of {}",
            Value::Array(e.clone())
        ));
    }
    if let Value::Object(obj) = v {
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errors.push(format!("{at}: required field `{r}` is missing"));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, x, &join(at, k), errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{at}: field `{k}` is not in the spec"))
                    }
                    Some(s @ Value::Object(_)) => validate(doc, s, x, &join(at, k), errors),
                    _ => {}
                },
            }
        }
    }
    if let Value::Array(items) = v {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            errors.push(format!("{at}: fewer than {min} items"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && (items.len() as u64) > max
        {
            errors.push(format!("{at}: more than {max} items"));
        }
        if let Some(s) = schema.get("items") {
            for x in items {
                validate(doc, s, x, &join(at, "[]"), errors);
            }
        }
    }
}

/// Check a path/query/header value (a string on the wire) against a scalar schema.
fn check_scalar(doc: &Value, schema: &Value, raw: &str, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    let types = types_of(&schema).unwrap_or_default();
    let parsed = if types.iter().any(|t| t == "integer") {
        match raw.parse::<i64>() {
            Ok(i) => json!(i),
            Err(_) => {
                errors.push(format!("{at}: `{raw}` is not an integer"));
                return;
            }
        }
    } else if types.iter().any(|t| t == "number") {
        match raw.parse::<f64>() {
            Ok(f) => json!(f),
            Err(_) => {
                errors.push(format!("{at}: `{raw}` is not a number"));
                return;
            }
        }
    } else if types.iter().any(|t| t == "boolean") {
        match raw {
            "true" | "false" => json!(raw == "true"),
            _ => {
                errors.push(format!("{at}: `{raw}` is not a boolean"));
                return;
            }
        }
    } else if types.iter().any(|t| t == "array" || t == "object") {
        return;
    } else {
        json!(raw)
    };
    validate(doc, &schema, &parsed, at, errors);
}

/// Follow `segs` through a schema (through `$ref`, `allOf`, `anyOf`, `oneOf`); `None` when a
/// segment is not declared.
fn walk(doc: &Value, schema: &Value, segs: &[String]) -> Option<Value> {
    let schema = resolve(doc, schema);
    let Some((first, rest)) = segs.split_first() else {
        return Some(schema);
    };
    let mut branches: Vec<Value> = Vec::new();
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(a) = schema.get(key).and_then(Value::as_array) {
            branches.extend(a.iter().cloned());
        }
    }
    let direct = if first == "[]" {
        schema.get("items").cloned()
    } else {
        schema
            .get("properties")
            .and_then(|p| p.get(first.as_str()))
            .cloned()
    };
    if let Some(next) = direct
        && let Some(found) = walk(doc, &next, rest)
    {
        return Some(found);
    }
    branches.iter().find_map(|b| walk(doc, b, segs))
}

/// A value of the schema's type: `true`, `1`, the first enum value or `"x"`, `{}`, `[]`.
fn sample_value(doc: &Value, schema: &Value) -> Value {
    let schema = resolve(doc, schema);
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(a) = schema.get(key).and_then(Value::as_array) {
            for b in a {
                let b = resolve(doc, b);
                if types_of(&b).is_some_and(|t| t.iter().all(|t| t == "null")) {
                    continue;
                }
                let v = sample_value(doc, &b);
                if !v.is_null() {
                    return v;
                }
            }
        }
    }
    if let Some(e) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.iter().find(|v| !v.is_null()))
    {
        return e.clone();
    }
    let types = types_of(&schema).unwrap_or_default();
    match types.iter().find(|t| *t != "null").map(String::as_str) {
        Some("boolean") => json!(true),
        Some("integer") | Some("number") => json!(1),
        Some("string") => json!("x"),
        Some("array") => json!([]),
        Some("object") => json!({}),
        _ if schema.get("properties").is_some() => json!({}),
        _ => Value::Null,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
