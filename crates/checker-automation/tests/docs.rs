//! The reference pages in `docs/probes/automation/` are generated from the crate (the kind
//! tables, the measures' default thresholds, the params' doc comments via their JSON Schema) and
//! this test fails when they drift. Regenerate with:
//!
//! ```text
//! FUNNELGATE_BLESS=1 cargo test -p funnelgate-checker-automation --test docs
//! ```

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use funnelgate_checker_automation::{KindDoc, Measure, kind_docs, omissions, registry};
use funnelgate_core::Thresholds;
use serde_json::Value;

const GENERATED: &str = "<!-- Generated from crates/checker-automation (kind tables, measures, params doc comments). Edit those, then run\n     FUNNELGATE_BLESS=1 cargo test -p funnelgate-checker-automation --test docs -->";

fn docs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/probes/automation")
}

fn vendor_name(v: &str) -> &'static str {
    match v {
        "mautic" => "Mautic",
        "marketo" => "Marketo",
        "hubspot" => "HubSpot",
        _ => "canary",
    }
}

fn secret_line(v: &str) -> &'static str {
    match v {
        "mautic" => {
            "secret = \"MAUTIC\"          # `username:password` (auth = \"basic\") or an OAuth2 access token"
        }
        "marketo" => "secret = \"MARKETO\"         # `client_id:client_secret`",
        "hubspot" => "secret = \"HUBSPOT_TOKEN\"   # a private app's access token",
        _ => "",
    }
}

/// Example params: the required ones filled in.
fn example_params(kind: &str) -> String {
    let base = if kind.starts_with("mautic.") {
        "https://mautic.example.com"
    } else if kind.starts_with("marketo.") {
        "https://123-ABC-456.mktorest.com"
    } else {
        "https://api.hubapi.com"
    };
    let mut parts = vec![format!("base_url = \"{base}\"")];
    let suffix = kind.split_once('.').map(|(_, s)| s).unwrap_or("");
    match suffix {
        "lead_nurture_active" => parts.push("required = [\"Welcome series\"]".into()),
        "flow_errors" if kind.starts_with("marketo.") => {
            parts.push("error_activity_types = [\"Send Alert Failed\"]".into())
        }
        "unsubscribe_roundtrip" => parts.push("email = \"unsubscribed-test@example.com\"".into()),
        "email_assets_valid" if kind.starts_with("marketo.") => {
            parts.push("email_ids = [1042, 1043]".into())
        }
        "form_mapping" if kind.starts_with("hubspot.") => {
            parts.push("form_id = \"3b3c9e7a-2f9e-4d7a-9a51-1f0e0b3f6a11\"".into())
        }
        "form_mapping" => parts.push("form_id = 7".into()),
        _ => {}
    }
    format!("{{ {} }}", parts.join(", "))
}

fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        x.to_string()
    }
}

fn thresholds_toml(t: &Thresholds) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("warn_above", t.warn_above),
        ("fail_above", t.fail_above),
        ("warn_below", t.warn_below),
        ("fail_below", t.fail_below),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k} = {}", num(v)));
        }
    }
    if let Some(e) = t.expect {
        parts.push(format!("expect = {e}"));
    }
    format!("{{ {} }}", parts.join(", "))
}

fn json_inline(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        other => format!("`{}`", other.to_string().replace('|', "\\|")),
    }
}

fn type_of(p: &Value, defs: &Value) -> String {
    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        let def = &defs[name];
        if let Some(variants) = def.get("oneOf").and_then(Value::as_array) {
            return variants
                .iter()
                .filter_map(|v| v["const"].as_str().or_else(|| v["enum"][0].as_str()))
                .map(|c| format!("`\"{c}\"`"))
                .collect::<Vec<_>>()
                .join(" or ");
        }
        if let Some(e) = def.get("enum").and_then(Value::as_array) {
            return e
                .iter()
                .filter_map(Value::as_str)
                .map(|c| format!("`\"{c}\"`"))
                .collect::<Vec<_>>()
                .join(" or ");
        }
        if let Some(props) = def.get("properties").and_then(Value::as_object) {
            return format!(
                "table {{ {} }}",
                props.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        return name.to_string();
    }
    match &p["type"] {
        Value::String(s) if s == "array" => format!("list of {}", type_of(&p["items"], defs)),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    }
}

fn params_table(schema: &Value) -> String {
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = String::from("| param | type | default | meaning |\n|---|---|---|---|\n");
    for (name, p) in schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        let default = if required.contains(&name.as_str()) {
            "required".to_string()
        } else {
            json_inline(p.get("default").unwrap_or(&Value::Null))
        };
        out.push_str(&format!(
            "| `{name}` | {} | {default} | {} |\n",
            type_of(&p, &defs),
            one_line(p["description"].as_str().unwrap_or(""))
        ));
    }
    out
}

fn page(d: &KindDoc) -> String {
    let r = registry();
    let f = r.get(d.kind).unwrap();
    let schema = f.params_schema();
    let t = d.default_thresholds();
    let (catalogue, why, basis) = match d.measure {
        Some(m) => (
            format!(
                "Catalogue **{}** ({})",
                m.catalogue_id(),
                m.suffix().replace('_', " ")
            ),
            m.why().to_string(),
            if m.heuristic() {
                "`heuristic` (a starting point to tune, not a vendor or industry rule)"
            } else {
                "by definition"
            },
        ),
        None => (
            "Catalogue **A4, A6** and section 3 (the canary lead)".to_string(),
            String::new(),
            "by definition",
        ),
    };
    let mut example = format!(
        "```toml\n[[funnels.stages.probes]]\nid = \"{}\"\nkind = \"{}\"\n{}\nthresholds = {}\nparams = {}\n```\n",
        d.kind.replace(['.', '_'], "-"),
        d.kind,
        secret_line(d.vendor),
        thresholds_toml(&t),
        example_params(d.kind)
    );
    if d.vendor == "canary" {
        example = String::from("See [canary.lead_journey](canary.lead_journey.md) params above.\n");
    }
    format!(
        "# Probe kind `{kind}`\n\n{GENERATED}\n\n{catalogue} · vendor **{vendor}** · unit `{unit}` · stage `automation` · [all automation kinds](README.md)\n\n{why}\n\n## What it measures\n\n**Value** (`{unit}`): {meaning}.\n\n## Default thresholds\n\n`thresholds = {th}` — {basis}.\n\n## Params\n\n{params}\n## Permissions\n\n{perms}.\n\n## Calls\n\n{calls}.\n\n## Notes\n\n{notes}\n\n## Example\n\n{example}",
        kind = d.kind,
        vendor = vendor_name(d.vendor),
        unit = d.unit(),
        why = one_line(&why),
        meaning = d.meaning(),
        th = thresholds_toml(&t),
        params = params_table(&schema),
        perms = one_line(d.permissions).trim_end_matches('.'),
        calls = one_line(d.calls).trim_end_matches('.'),
        notes = one_line(d.notes),
    )
}

fn index() -> String {
    let docs = kind_docs();
    let mut by_measure: BTreeMap<String, Vec<&KindDoc>> = BTreeMap::new();
    for d in &docs {
        let key = d
            .measure
            .map(|m| format!("{} `{}`", m.catalogue_id(), m.suffix()))
            .unwrap_or_else(|| "A4, A6 canary lead".into());
        by_measure.entry(key).or_default().push(d);
    }
    let mut out = format!(
        "# Automation probe kinds\n\n{GENERATED}\n\nThe automation checker (`funnelgate checker automation`) serves the generic kinds (`http`, `sql`, `prometheus`) and one kind per (vendor, measure) of the probe catalogue's section 2. Every vendor answers a measure in the same unit, so one threshold means the same thing whichever tool a team runs.\n\n| measure | kinds |\n|---|---|\n"
    );
    for (m, kinds) in &by_measure {
        let links: Vec<String> = kinds
            .iter()
            .map(|d| format!("[`{}`]({}.md)", d.kind, d.kind))
            .collect();
        out.push_str(&format!("| {m} | {} |\n", links.join(", ")));
    }
    out.push_str("\n## Not measurable through a vendor's API\n\n");
    for o in omissions() {
        out.push_str(&format!(
            "- **{}** {} (`{}`): {}\n",
            vendor_name(o.vendor),
            o.measure.catalogue_id(),
            o.measure.suffix(),
            one_line(o.reason)
        ));
    }
    out.push_str("\n## Failure modes\n\nEvery vendor failure is its own ERROR with what and why: rejected credentials (FAIL for `*.auth_and_quota`), a missing permission or scope (named when the vendor names it), the daily quota exhausted (with when it resets), rate limiting (the wait from `Retry-After`, in seconds or as an HTTP-date; a wait of at most 2 s is waited out once inside the run), paging cut short (a listing that ends before the vendor's own total, or promises a page it does not deliver), vendor 5xx, malformed or truncated JSON, and an object listed by one call and gone by the next.\n\nCanary leads (tag `funnelgate-canary`) are excluded from the counts that could include them.\n");
    let _ = Measure::ALL;
    out
}

#[test]
fn reference_pages_match_the_code() {
    let dir = docs_dir();
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    expected.insert("README.md".into(), index());
    for d in kind_docs() {
        expected.insert(format!("{}.md", d.kind), page(&d));
    }
    if std::env::var_os("FUNNELGATE_BLESS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".md") && !expected.contains_key(&name) {
                std::fs::remove_file(p).unwrap();
            }
        }
        for (name, text) in &expected {
            std::fs::write(dir.join(name), text).unwrap();
        }
        return;
    }
    let mut drift = Vec::new();
    for (name, text) in &expected {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(t) if &t == text => {}
            Ok(_) => drift.push(format!("{name} differs")),
            Err(_) => drift.push(format!("{name} is missing")),
        }
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.ends_with(".md") && !expected.contains_key(&name) {
            drift.push(format!("{name} documents no registered kind"));
        }
    }
    assert!(
        drift.is_empty(),
        "docs/probes/automation drifted from the code: {}; regenerate with FUNNELGATE_BLESS=1 cargo test -p funnelgate-checker-automation --test docs",
        drift.join(", ")
    );
}
