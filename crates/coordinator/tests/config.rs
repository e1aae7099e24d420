//! Loading and validating coordinator config files (TOML and YAML, env overrides, errors that
//! name the file and the key).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use funnelgate_coordinator::config::{DatabaseLocation, Role};
use funnelgate_coordinator::{Config, ConfigError, load};

const GOOD: &str = r#"
[coordinator]
grpc_listen = "127.0.0.1:7070"
http_listen = "127.0.0.1:7080"
database = "state/funnelgate.db"
tick_interval = "2s"

[auth]
operators = [
  { name = "alice", token_secret = "ALICE_TOKEN" },
  { name = "bob", token_secret = "BOB_TOKEN", role = "viewer" },
]

[checkers.crm]
endpoint = "http://127.0.0.1:7101"
timeout = "20s"

[checkers.esp]
endpoint = "http://127.0.0.1:7103"

[[funnels]]
name = "acme"

[[funnels.stages]]
name = "crm"
interval = "30s"

[[funnels.stages.probes]]
id = "leads"
kind = "sql"
params = { query = "select count(*) from leads", camelCaseKey = 1 }
thresholds = { fail_below = 10.0 }

[[funnels.stages]]
name = "esp"

[funnels.gate]
pilot_percent = 5
open_after = "1m"
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

fn load_err(name: &str, text: &str, env: &HashMap<String, String>) -> (PathBuf, ConfigError) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, text);
    let err = load(&path, env).unwrap_err();
    // keep the path string for assertions after the tempdir is gone
    (path, err)
}

#[test]
fn a_good_toml_file_loads_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "funnelgate.toml", GOOD);
    let config = load(&path, &no_env()).unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.coordinator.tick_interval.get(),
        Duration::from_secs(2)
    );
    assert_eq!(config.coordinator.max_watchers, 20_000, "default applies");
    assert_eq!(
        config.checkers["crm"].timeout.get(),
        Duration::from_secs(20)
    );
    assert_eq!(
        config.checkers["esp"].timeout.get(),
        Duration::from_secs(30)
    );
    assert_eq!(config.auth.operators[1].role, Role::Viewer);
    assert_eq!(config.auth.operators[0].role, Role::Operator);
    let funnel = &config.funnels[0];
    assert_eq!(funnel.stages[0].interval.get(), Duration::from_secs(30));
    assert_eq!(funnel.stages[0].probes[0].thresholds.fail_below, Some(10.0));
    // keys inside params keep their case
    assert_eq!(funnel.stages[0].probes[0].params["camelCaseKey"], 1);
    assert_eq!(
        config.database_location(),
        DatabaseLocation::File(dir.path().join("state/funnelgate.db")),
        "database is relative to the config file's directory"
    );
}

#[test]
fn unknown_key_names_the_key_and_the_file() {
    let text = GOOD.replace("tick_interval = \"2s\"", "tick_intervall = \"2s\"");
    let (path, err) = load_err("typo.toml", &text, &no_env());
    assert_eq!(err.keys(), vec!["coordinator.tick_intervall"], "{err}");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}: coordinator.tick_intervall: ", path.display())),
        "{shown}"
    );
    assert!(shown.contains("unknown field `tick_intervall`"), "{shown}");
}

#[test]
fn unknown_key_deep_in_a_probe_is_named_with_its_path() {
    let text = GOOD.replace("id = \"leads\"", "id = \"leads\"\nwieght = 2");
    let (_, err) = load_err("deep.toml", &text, &no_env());
    assert_eq!(
        err.keys(),
        vec!["funnels[0].stages[0].probes[0].wieght"],
        "{err}"
    );
}

#[test]
fn wrong_type_names_the_key() {
    let text = GOOD.replace("pilot_percent = 5", "pilot_percent = \"five\"");
    let (_, err) = load_err("type.toml", &text, &no_env());
    assert_eq!(err.keys(), vec!["funnels[0].gate.pilot_percent"], "{err}");
    let text = GOOD.replace("tick_interval = \"2s\"", "tick_interval = \"2 parsecs\"");
    let (_, err) = load_err("dur.toml", &text, &no_env());
    assert_eq!(err.keys(), vec!["coordinator.tick_interval"], "{err}");
    assert!(err.to_string().contains("invalid duration"), "{err}");
}

#[test]
fn syntax_errors_name_the_file() {
    let (path, err) = load_err("broken.toml", "[coordinator\ngrpc_listen = 1", &no_env());
    let shown = err.to_string();
    assert!(shown.starts_with(&path.display().to_string()), "{shown}");
    assert!(shown.contains("cannot parse"), "{shown}");
    assert!(shown.contains("line 1, column 13"), "{shown}");
    assert!(shown.contains("unclosed table"), "{shown}");
    assert_eq!(shown.lines().count(), 1, "one issue, one line: {shown}");
}

#[test]
fn missing_file_and_unknown_extension_are_clear() {
    let err = load(Path::new("/nonexistent/funnelgate.toml"), &no_env()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/funnelgate.toml: cannot read"),
        "{err}"
    );
    let (_, err) = load_err("funnelgate.ini", GOOD, &no_env());
    assert!(
        err.to_string()
            .contains("unsupported config file extension `.ini`"),
        "{err}"
    );
}

#[test]
fn several_problems_are_reported_together() {
    let text = format!(
        "{GOOD}\n[[funnels]]\nname = \"acme\"\n[[funnels.stages]]\nname = \"analytics\"\n[[funnels.stages]]\nname = \"pages\"\nchecker = \"web\"\n"
    )
    .replace("grpc_listen = \"127.0.0.1:7070\"", "grpc_listen = \"localhost\"")
    .replace("fail_below = 10.0", "fail_below = 10.0, warn_below = 5.0");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "many.toml", &text);
    let config = load(&path, &no_env()).unwrap();
    let err = config.validate().unwrap_err();
    let keys = err.keys();
    for expected in [
        "coordinator.grpc_listen",
        "funnels[0].stages[0].probes[0].thresholds",
        "funnels[1].name",
        "funnels[1].stages[0].checker",
        "funnels[1].stages[1].checker",
    ] {
        assert!(
            keys.contains(&expected),
            "missing {expected} in {keys:?}\n{err}"
        );
    }
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), err.issues.len(), "{shown}");
    for line in shown.lines() {
        assert!(line.starts_with(&format!("{}: ", path.display())), "{line}");
    }
    let checker = err
        .issues
        .iter()
        .find(|i| i.key == "funnels[1].stages[1].checker")
        .unwrap();
    assert!(
        checker.reason.contains("checker `web`"),
        "{}",
        checker.reason
    );
    assert!(
        checker.reason.contains("configured checkers: crm, esp"),
        "{}",
        checker.reason
    );
    let dup = err
        .issues
        .iter()
        .find(|i| i.key == "funnels[1].name")
        .unwrap();
    assert!(
        dup.reason.contains("duplicate funnel `acme`"),
        "{}",
        dup.reason
    );
}

#[test]
fn env_overrides_scalars() {
    let env = HashMap::from([
        (
            "FUNNELGATE__COORDINATOR__GRPC_LISTEN".to_string(),
            "0.0.0.0:9090".to_string(),
        ),
        (
            "FUNNELGATE__COORDINATOR__MAX_WATCHERS".to_string(),
            "7".to_string(),
        ),
        (
            "FUNNELGATE__CHECKERS__ESP__TIMEOUT".to_string(),
            "3s".to_string(),
        ),
        (
            "FUNNELGATE__CHECKERS__CRM__ENDPOINT".to_string(),
            "http://crm.internal:7101".to_string(),
        ),
        // secrets and unrelated variables are not config keys
        ("FUNNELGATE_SECRET_ALICE_TOKEN".to_string(), "t".to_string()),
        ("PATH".to_string(), "/bin".to_string()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "funnelgate.toml", GOOD);
    let config = load(&path, &env).unwrap();
    assert_eq!(config.coordinator.grpc_listen, "0.0.0.0:9090");
    assert_eq!(config.coordinator.max_watchers, 7);
    assert_eq!(config.checkers["esp"].timeout.get(), Duration::from_secs(3));
    assert_eq!(config.checkers["crm"].endpoint, "http://crm.internal:7101");
    assert_eq!(
        config.coordinator.http_listen, "127.0.0.1:7080",
        "untouched keys keep the file's value"
    );
    config.validate().unwrap();
}

#[test]
fn env_override_of_an_unknown_key_is_an_error() {
    let env = HashMap::from([(
        "FUNNELGATE__COORDINATOR__GRPC_LISTN".to_string(),
        "x".to_string(),
    )]);
    let (path, err) = load_err("funnelgate.toml", GOOD, &env);
    assert_eq!(err.keys(), vec!["coordinator.grpc_listn"], "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "environment variable FUNNELGATE__COORDINATOR__GRPC_LISTN: coordinator.grpc_listn: "
        ),
        "{text}"
    );
    assert!(
        !text.contains(&path.display().to_string()),
        "not the file: {text}"
    );
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable_not_the_file() {
    // wrong type, caught while loading
    let env = HashMap::from([(
        "FUNNELGATE__COORDINATOR__MAX_WATCHERS".to_string(),
        "lots".to_string(),
    )]);
    let (path, err) = load_err("funnelgate.toml", GOOD, &env);
    let text = err.to_string();
    assert!(
        text.starts_with(
            "environment variable FUNNELGATE__COORDINATOR__MAX_WATCHERS: coordinator.max_watchers: "
        ),
        "{text}"
    );
    assert!(!text.contains(&path.display().to_string()), "{text}");

    // a value of the right type that validation rejects
    let env = HashMap::from([(
        "FUNNELGATE__CHECKERS__ESP__ENDPOINT".to_string(),
        "esp:7103".to_string(),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "funnelgate.toml", GOOD);
    let err = load(&path, &env).unwrap().validate().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("environment variable FUNNELGATE__CHECKERS__ESP__ENDPOINT: checkers.esp.endpoint: `esp:7103`"),
        "{text}"
    );
    assert!(!text.contains(&path.display().to_string()), "{text}");

    // the same mistake in the file names the file
    let bad = GOOD.replace("http://127.0.0.1:7103", "esp:7103");
    assert_ne!(bad, GOOD, "the fixture has the esp endpoint");
    let path = write(dir.path(), "bad.toml", &bad);
    let text = load(&path, &no_env())
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with(&format!("{}: checkers.esp.endpoint", path.display())),
        "{text}"
    );
}

#[test]
fn yaml_works_the_same() {
    let yaml = r#"
coordinator:
  grpc_listen: "127.0.0.1:7070"
  http_listen: "127.0.0.1:7080"
  database: "sqlite::memory:"
checkers:
  crm:
    endpoint: "http://127.0.0.1:7101"
funnels:
  - name: acme
    stages:
      - name: crm
        probes:
          - id: leads
            kind: sql
            params: { query: "select 1" }
            thresholds: { fail_below: 1 }
    gate:
      open_after_evaluations: 1
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "funnelgate.yaml", yaml);
    let config = load(&path, &no_env()).unwrap();
    config.validate().unwrap();
    assert_eq!(config.database_location(), DatabaseLocation::InMemory);
    assert_eq!(config.funnels[0].gate.open_after_evaluations, 1);
    assert_eq!(
        config.funnels[0].stages[0].probes[0].params["query"],
        "select 1"
    );

    let bad = yaml.replace("open_after_evaluations: 1", "open_after_evaluationz: 1");
    let path = write(dir.path(), "bad.yml", &bad);
    let err = load(&path, &no_env()).unwrap_err();
    assert_eq!(
        err.keys(),
        vec!["funnels[0].gate.open_after_evaluationz"],
        "{err}"
    );
}

#[test]
fn config_hash_is_stable_and_tracks_funnels_only() {
    let dir = tempfile::tempdir().unwrap();
    let a = load(&write(dir.path(), "a.toml", GOOD), &no_env()).unwrap();
    let b = load(
        &write(
            dir.path(),
            "b.toml",
            &GOOD.replace("tick_interval = \"2s\"", "tick_interval = \"9s\""),
        ),
        &no_env(),
    )
    .unwrap();
    assert_eq!(
        a.hash(),
        b.hash(),
        "coordinator settings are not part of the funnels' hash"
    );
    assert_eq!(a.hash().len(), 64);
    let c = load(
        &write(
            dir.path(),
            "c.toml",
            &GOOD.replace("fail_below = 10.0", "fail_below = 11.0"),
        ),
        &no_env(),
    )
    .unwrap();
    assert_ne!(a.hash(), c.hash());
}

#[test]
fn operators_need_secret_names_not_tokens() {
    let text = GOOD.replace(
        "token_secret = \"ALICE_TOKEN\"",
        "token_secret = \"pat-na1-123\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let config: Config = load(&write(dir.path(), "f.toml", &text), &no_env()).unwrap();
    let err = config.validate().unwrap_err();
    assert_eq!(err.keys(), vec!["auth.operators[0].token_secret"], "{err}");
}

/// The complete example in docs/config.md loads and validates (the docs stay true).
#[test]
fn the_documented_example_is_valid() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md"))
            .unwrap();
    let start = docs
        .find("## A complete example")
        .expect("docs have the example section");
    let block = &docs[start..];
    let begin = block.find("```toml\n").unwrap() + "```toml\n".len();
    let end = begin + block[begin..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "example.toml", &block[begin..end]);
    let config = load(&path, &no_env()).unwrap();
    config.validate().unwrap();
    assert_eq!(config.funnels[0].stages.len(), 3);
    assert_eq!(config.funnels[0].stages[2].checker_name(), "analytics");
    assert_eq!(config.auth.operators[1].role, Role::Viewer);
}
