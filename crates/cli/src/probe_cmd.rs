//! `funnelgate probe list` (every probe kind and its params) and `funnelgate probe run` (one
//! probe, locally, exactly as a checker runs it).

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use funnelgate_checker_sdk::{Runner, SecretStore};
use funnelgate_core::{HumanDuration, ProbeSpec, ProbeStatus, Thresholds};
use serde_json::Value;

use crate::exit::{self, CliError, CmdResult};
use crate::gate::parse_duration;
use crate::plugins::{PLUGINS, Plugin, StageArg};
use crate::render::Output;

/// `probe` subcommands.
#[derive(Subcommand, Debug)]
pub enum ProbeCmd {
    /// List every probe kind with its params (from the built-in checkers' registries).
    List {
        /// Only this stage's checker.
        #[arg(long, value_enum)]
        stage: Option<StageArg>,
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Run one probe here, as a checker would, and print its result (exit 0 PASS/WARN, 10
    /// NO_DATA, 11 FAIL, 12 ERROR, 64 bad params).
    Run {
        /// Probe kind, e.g. `sql`, `http`, `dns.dmarc`.
        #[arg(long)]
        kind: String,
        /// Params as a JSON object, e.g. '{"url": "https://example.com"}'.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Name of the secret the probe uses (`FUNNELGATE_SECRET_<NAME>` or `<secrets-dir>/<NAME>`).
        #[arg(long)]
        secret: Option<String>,
        /// Thresholds as JSON, e.g. '{"fail_below": 70, "warn_below": 85}'.
        #[arg(long)]
        thresholds: Option<String>,
        /// Minimum sample size for a judgement.
        #[arg(long)]
        min_sample: Option<u64>,
        /// The probe's timeout.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
        /// Use this stage's checker (default: the first one that knows the kind).
        #[arg(long, value_enum)]
        stage: Option<StageArg>,
        /// Directory of secret files.
        #[arg(long, env = "FUNNELGATE_SECRETS_DIR")]
        secrets_dir: Option<PathBuf>,
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

/// Run a `probe` subcommand.
pub async fn run(cmd: ProbeCmd) -> CmdResult {
    match cmd {
        ProbeCmd::List { stage, output } => list(stage, output),
        ProbeCmd::Run {
            kind,
            params,
            secret,
            thresholds,
            min_sample,
            timeout,
            stage,
            secrets_dir,
            output,
        } => {
            let params: Value = serde_json::from_str(&params)
                .map_err(|e| CliError::usage(format!("--params is not JSON: {e}")))?;
            if !params.is_object() {
                return Err(CliError::usage("--params must be a JSON object"));
            }
            let thresholds: Thresholds = match thresholds {
                Some(t) => serde_json::from_str(&t)
                    .map_err(|e| CliError::usage(format!("--thresholds: {e}")))?,
                None => Thresholds::default(),
            };
            let plugin = find_plugin(&kind, stage)?;
            let registry = plugin.registry();
            if let Some(factory) = registry.get(&kind) {
                factory
                    .normalize_params(&params)
                    .map_err(|e| CliError::usage(e.message))?;
            }
            // Without thresholds (given or the kind's defaults) the probe judges nothing: run
            // it as an observation, reported as informational (never PASS).
            let informational = thresholds.is_empty()
                && registry
                    .get(&kind)
                    .and_then(|f| f.default_thresholds())
                    .is_none();
            let mut spec = ProbeSpec::new("cli", kind);
            spec.params = params;
            spec.thresholds = thresholds;
            if informational {
                spec.mode = funnelgate_core::ProbeMode::Observe;
            }
            spec.min_sample = min_sample;
            spec.timeout = HumanDuration(timeout);
            spec.secret = secret;
            let env: Vec<(String, String)> = std::env::vars().collect();
            let runner = Runner::new(registry, SecretStore::new(env, secrets_dir))
                .map_err(|e| CliError::failure(format!("cannot set up the probe runner: {e}")))?;
            let result = runner.run_one(spec).await;
            match output {
                Output::Json => {
                    let v = serde_json::to_value(&result).unwrap_or(Value::Null);
                    outln!("{}", crate::render::json_string(&v));
                }
                Output::Text => outln!("{}", result_text(&result, informational)),
            }
            Ok(match result.status {
                ProbeStatus::Pass | ProbeStatus::Warn | ProbeStatus::Skipped => exit::OK,
                // measured, nothing to judge: informational
                ProbeStatus::NoData if informational && result.value.is_some() => exit::OK,
                ProbeStatus::NoData => exit::HOLD,
                ProbeStatus::Fail => exit::CLOSED,
                ProbeStatus::Error => exit::UNAVAILABLE,
            })
        }
    }
}

fn find_plugin(kind: &str, stage: Option<StageArg>) -> Result<Plugin, CliError> {
    if let Some(s) = stage {
        let p = s.plugin();
        if p.registry().get(kind).is_none() {
            return Err(CliError::usage(format!(
                "the {} checker has no probe kind `{kind}`; it supports: {}",
                p.stage,
                kinds_of(&p).join(", ")
            )));
        }
        return Ok(p);
    }
    PLUGINS
        .iter()
        .find(|p| p.registry().get(kind).is_some())
        .copied()
        .ok_or_else(|| {
            let mut all: Vec<String> = PLUGINS.iter().flat_map(kinds_of).collect();
            all.sort();
            all.dedup();
            CliError::usage(format!(
                "unknown probe kind `{kind}`; known kinds: {}",
                all.join(", ")
            ))
        })
}

fn kinds_of(p: &Plugin) -> Vec<String> {
    p.registry().kinds().map(|f| f.kind().to_string()).collect()
}

/// A value with its unit: `60%`, `72 hours`, `3 count`, `true`.
fn with_unit(v: f64, unit: &str) -> String {
    let n = if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    match unit {
        "percent" | "%" => format!("{n}%"),
        "bool" => (if v != 0.0 { "true" } else { "false" }).to_string(),
        "" => n,
        u => format!("{n} {u}"),
    }
}

fn result_text(r: &funnelgate_core::ProbeResult, informational: bool) -> String {
    let status = if informational && r.status == ProbeStatus::NoData && r.value.is_some() {
        "INFO".to_string()
    } else {
        r.status.to_string()
    };
    let mut s = format!("{status} {}", r.kind);
    if let Some(v) = r.value {
        s.push_str(&format!("  value {}", with_unit(v, &r.unit)));
    }
    if let Some(t) = r.threshold {
        s.push_str(&format!("  threshold {}", with_unit(t, &r.unit)));
    }
    if let Some(n) = r.sample_size {
        s.push_str(&format!("  n={n}"));
    }
    if r.badness > 0.0 {
        s.push_str(&format!("  badness {:.3}", r.badness));
    }
    s.push_str(&format!("  ({} ms)", r.duration_ms));
    if !r.message.is_empty() {
        s.push_str(&format!("\n{}", r.message));
    }
    for (k, v) in &r.evidence {
        s.push_str(&format!("\n  {k}: {v}"));
    }
    s
}

/// A schema with a local `$ref` (`#/$defs/X`) resolved.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let target = schema.get("$ref").and_then(Value::as_str).and_then(|r| {
        let name = r
            .strip_prefix("#/$defs/")
            .or_else(|| r.strip_prefix("#/definitions/"))?;
        root.get("$defs")
            .or_else(|| root.get("definitions"))?
            .get(name)
    });
    target.unwrap_or(schema)
}

/// A short type name: `string`, `integer|string`, `one of a|b|c`.
fn type_name(root: &Value, schema: &Value) -> String {
    let s = resolve(root, schema);
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        let v: Vec<String> = values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        return format!("one of {}", v.join("|"));
    }
    if let Some(alts) = s
        .get("oneOf")
        .or_else(|| s.get("anyOf"))
        .and_then(Value::as_array)
    {
        let consts: Vec<&str> = alts
            .iter()
            .filter_map(|a| a.get("const").and_then(Value::as_str))
            .collect();
        if consts.len() == alts.len() && !consts.is_empty() {
            return format!("one of {}", consts.join("|"));
        }
        let types: Vec<String> = alts
            .iter()
            .map(|a| type_name(root, a))
            .filter(|t| t != "null")
            .collect();
        return types.join("|");
    }
    match s.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join("|"),
        _ => "value".into(),
    }
}

/// Params of a kind as lines: `name (type, required): description`.
fn params_lines(schema: &Value) -> Vec<String> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, p)| {
            let ty = type_name(schema, p);
            let req = if required.contains(&name.as_str()) {
                ", required"
            } else {
                ""
            };
            let desc = p
                .get("description")
                .or_else(|| resolve(schema, p).get("description"))
                .and_then(Value::as_str)
                .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            format!("{name} ({ty}{req}): {desc}")
        })
        .collect()
}

fn list(stage: Option<StageArg>, output: Output) -> CmdResult {
    let plugins: Vec<Plugin> = match stage {
        Some(s) => vec![s.plugin()],
        None => PLUGINS.to_vec(),
    };
    let generic: Vec<String> = funnelgate_checker_sdk::generic_registry()
        .kinds()
        .map(|f| f.kind().to_string())
        .collect();
    let mut json = Vec::new();
    let mut text = String::new();
    let mut generic_done = false;
    for p in &plugins {
        let registry = p.registry();
        let mut header = false;
        for f in registry.kinds() {
            let is_generic = generic.iter().any(|g| g == f.kind());
            json.push(serde_json::json!({
                "stage": p.stage, "checker": p.name, "kind": f.kind(), "generic": is_generic,
                "description": f.description(), "unit": f.unit(), "vendors": f.vendors(),
                "params_schema": f.params_schema(),
            }));
            // In text, the generic kinds (in every checker) are listed once.
            if is_generic && stage.is_none() && generic_done {
                continue;
            }
            if !header {
                text.push_str(&format!("{} ({}):\n", p.stage, p.name));
                header = true;
            }
            let vendors = f.vendors();
            let vendors = if vendors.is_empty() {
                String::new()
            } else {
                format!(" [{}]", vendors.join(", "))
            };
            text.push_str(&format!(
                "  {} — {} (unit: {}){vendors}\n",
                f.kind(),
                f.description(),
                f.unit()
            ));
            for line in params_lines(&f.params_schema()) {
                text.push_str(&format!("      {line}\n"));
            }
        }
        generic_done = true;
        if stage.is_none() && header && p.stage == PLUGINS[0].stage {
            text.push_str(&format!(
                "  (generic kinds {} are served by every checker)\n",
                generic.join(", ")
            ));
        }
    }
    match output {
        Output::Json => outln!("{}", crate::render::json_string(&Value::Array(json))),
        Output::Text => out!("{text}"),
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_lines_resolve_refs_and_enums() {
        let schema = serde_json::json!({
            "properties": {
                "url": {"type": "string", "description": "The URL."},
                "measure": {"$ref": "#/$defs/M", "description": "What to measure."},
                "limit": {"type": ["integer", "null"]}
            },
            "required": ["url"],
            "$defs": {"M": {"oneOf": [{"const": "ok"}, {"const": "status"}]}}
        });
        let lines = params_lines(&schema);
        assert!(
            lines.contains(&"url (string, required): The URL.".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"measure (one of ok|status): What to measure.".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"limit (integer): ".to_string()),
            "{lines:?}"
        );
    }
}
