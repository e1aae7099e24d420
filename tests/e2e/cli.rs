//! The CLI's contract: `gate check` exit codes, `config validate` messages, `probe` commands.

use std::time::Duration;

use funnelgate_e2e::{Cluster, STAGES, cli, state, wait_decision};
use funnelgate_proto::pb;

/// Three funnels on one coordinator: `ready` opens at once, `soaking` holds (long soak),
/// `broken` closes (a failing probe).
fn three_funnels(db: &str) -> String {
    let mut s = String::new();
    for (name, open_after, fail_below) in [
        ("ready", "0s", 1),
        ("soaking", "1h", 1),
        ("broken", "0s", 1000),
    ] {
        s.push_str(&format!(
            "[[funnels]]\nname = \"{name}\"\n[funnels.gate]\nopen_after = \"{open_after}\"\nopen_after_evaluations = 1\n"
        ));
        for stage in STAGES {
            s.push_str(&format!(
                "[[funnels.stages]]\nname = \"{stage}\"\ninterval = \"1s\"\nstale_after = \"30s\"\n\
                 [[funnels.stages.probes]]\nid = \"{stage}-{name}\"\nkind = \"sql\"\nthresholds = {{ fail_below = {fail_below} }}\n\
                 params = {{ sqlite_path = \"{db}\", query = \"SELECT count(*) FROM workflows\" }}\n"
            ));
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn gate_check_exit_codes() {
    let mut c = Cluster::checkers(tempfile::tempdir().unwrap())
        .await
        .unwrap();
    crate::quickstart_files(c.dir.path(), &c.grpc, &c.http).await;
    let db = c.dir.path().join("warehouse.db").display().to_string();
    c.write_config("", &three_funnels(&db)).unwrap();
    c.start_coordinator().await.unwrap();
    let t = Duration::from_secs(60);
    wait_decision(&c.grpc, "ready", t, "OPEN", |d| {
        state(d) == pb::GateState::Open
    })
    .await
    .unwrap();
    wait_decision(&c.grpc, "soaking", t, "HOLD", |d| {
        state(d) == pb::GateState::Hold && d.reasons.iter().any(|r| r.code == "SOAKING")
    })
    .await
    .unwrap();
    wait_decision(&c.grpc, "broken", t, "CLOSED", |d| {
        state(d) == pb::GateState::Closed
    })
    .await
    .unwrap();

    let server = c.server_url();
    for (funnel, code, text) in [
        ("ready", 0, "ready: OPEN"),
        ("soaking", 10, "soaking: HOLD"),
        ("broken", 11, "broken: CLOSED"),
    ] {
        let r = cli(&["gate", "check", funnel, "--server", &server], &[])
            .await
            .unwrap();
        assert_eq!(r.code, code, "{funnel}: {r:?}");
        assert!(r.stdout.contains(text), "{funnel}: {r:?}");
    }
    // JSON output is the core decision shape.
    let r = cli(
        &["gate", "check", "broken", "-o", "json", "--server", &server],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 11, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["state"], "CLOSED");
    assert_eq!(v["blocking_stage"], "crm");
    assert_eq!(v["allowed_rollout_percent"], 0);
    assert_eq!(v["remediation"][0]["status"], "FAIL");

    // Not found, bad usage, unreachable; server from the environment.
    let r = cli(&["gate", "check", "missing", "--server", &server], &[])
        .await
        .unwrap();
    assert_eq!(r.code, 13, "{r:?}");
    assert!(
        r.stderr.starts_with("error: ") && r.stderr.lines().count() == 1,
        "{r:?}"
    );
    let r = cli(
        &["gate", "check", "Bad_Name"],
        &[("FUNNELGATE_SERVER", &server)],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 64, "{r:?}");
    let r = cli(&["gate", "check"], &[]).await.unwrap();
    assert_eq!(r.code, 64, "missing argument: {r:?}");
    let dead = format!("http://127.0.0.1:{}", funnelgate_e2e::free_port());
    let r = cli(&["gate", "check", "ready", "--server", &dead], &[])
        .await
        .unwrap();
    assert_eq!(r.code, 12, "{r:?}");
    let r = cli(
        &["gate", "check", "ready"],
        &[("FUNNELGATE_SERVER", &server)],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{r:?}");

    // `wait` times out with the current state's code; `--until not-closed` accepts HOLD.
    let r = cli(
        &[
            "gate",
            "wait",
            "soaking",
            "--timeout",
            "2s",
            "--server",
            &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 10, "{r:?}");
    assert!(r.stderr.contains("timed out"), "{r:?}");
    let r = cli(
        &[
            "gate",
            "wait",
            "soaking",
            "--until",
            "not-closed",
            "--timeout",
            "30s",
            "--server",
            &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 10, "HOLD is not closed: {r:?}");
    let r = cli(
        &[
            "gate",
            "wait",
            "broken",
            "--timeout",
            "2s",
            "--server",
            &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 11, "{r:?}");

    // `watch --count 1` prints the current decision as one JSON line; `explain` the evidence.
    let r = cli(
        &[
            "gate", "watch", "broken", "--count", "1", "-o", "json", "--server", &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    let line: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["funnel"], "broken");
    let r = cli(&["gate", "explain", "broken", "--server", &server], &[])
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("crm-broken FAIL"), "{}", r.stdout);
    let r = cli(&["gate", "list", "-o", "json", "--server", &server], &[])
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_validate_names_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[checkers.crm]\nendpoint = \"http://127.0.0.1:7101\"\n[[funnels]]\nname = \"acme\"\n[[funnels.stages]]\nname = \"crm\"\n\
         [[funnels.stages.probes]]\nid = \"leads\"\nkind = \"sql\"\nparams = { sqlite_path = \"x.db\", query = \"select 1\" }\n",
    )
    .unwrap();
    let r = cli(&["config", "validate", &good.display().to_string()], &[])
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{r:?}");

    // An unknown key: the file, the key path and why.
    let typo = dir.path().join("typo.toml");
    std::fs::write(
        &typo,
        std::fs::read_to_string(&good)
            .unwrap()
            .replace("kind = \"sql\"", "kind = \"sql\"\nwieght = 2"),
    )
    .unwrap();
    let f = typo.display().to_string();
    let r = cli(&["config", "validate", &f], &[]).await.unwrap();
    assert_eq!(r.code, 64, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("{f}: funnels[0].stages[0].probes[0]")),
        "{r:?}"
    );
    assert!(r.stderr.contains("wieght"), "{r:?}");

    // Several semantic problems: every one on its own line.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[funnels]]\nname = \"Acme!\"\n[[funnels.stages]]\nname = \"crm\"\ninterval = \"1m\"\nstale_after = \"10s\"\n\
         [[funnels.stages.probes]]\nid = \"leads\"\nkind = \"sql\"\nthresholds = { fail_below = 90, warn_below = 50 }\n",
    )
    .unwrap();
    let f = bad.display().to_string();
    let r = cli(&["config", "validate", &f], &[]).await.unwrap();
    assert_eq!(r.code, 64, "{r:?}");
    for key in [
        "funnels[0].name",
        "funnels[0].stages[0].stale_after",
        "funnels[0].stages[0].checker",
    ] {
        assert!(
            r.stderr
                .lines()
                .any(|l| l.starts_with(&format!("{f}: {key}: "))),
            "no line for {key}: {}",
            r.stderr
        );
    }
    // A missing file is a usage error too.
    let r = cli(&["config", "validate", "/nonexistent/funnelgate.toml"], &[])
        .await
        .unwrap();
    assert_eq!(r.code, 64, "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_list_and_run() {
    let r = cli(&["probe", "list", "-o", "json"], &[]).await.unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let kinds: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kind"].as_str())
        .collect();
    for k in ["sql", "http", "prometheus"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let sql = v
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "sql")
        .unwrap();
    assert!(
        sql["params_schema"]["properties"]["query"].is_object(),
        "{sql}"
    );
    let r = cli(&["probe", "list", "--stage", "esp"], &[])
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("esp ("), "{}", r.stdout);

    // Run an sql probe on a real SQLite file, as a checker would.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let init = cli(&["quickstart", "init", &d], &[]).await.unwrap();
    assert_eq!(init.code, 0, "{init:?}");
    let db = dir.path().join("warehouse.db").display().to_string();
    let params = serde_json::json!({"sqlite_path": db, "query": "SELECT 100.0 * sum(owner IS NOT NULL) / count(*), count(*) FROM contacts", "unit": "percent"}).to_string();
    let r = cli(
        &[
            "probe",
            "run",
            "--kind",
            "sql",
            "--params",
            &params,
            "--thresholds",
            r#"{"fail_below": 90}"#,
            "-o",
            "json",
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 11, "FAIL exits 11: {r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["status"], "FAIL");
    assert_eq!(v["value"], 60.0);
    assert_eq!(v["threshold"], 90.0);
    assert_eq!(v["sample_size"], 200);
    let r = cli(
        &[
            "probe",
            "run",
            "--kind",
            "sql",
            "--params",
            &params,
            "--thresholds",
            r#"{"fail_below": 50}"#,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 0, "PASS exits 0: {r:?}");
    assert!(r.stdout.starts_with("PASS sql"), "{r:?}");
    // No thresholds: nothing judged, so informational (never PASS), the value with its unit.
    let r = cli(&["probe", "run", "--kind", "sql", "--params", &params], &[])
        .await
        .unwrap();
    assert_eq!(r.code, 0, "informational exits 0: {r:?}");
    assert!(r.stdout.starts_with("INFO sql  value 60%"), "{r:?}");
    assert!(!r.stdout.contains("PASS"), "{r:?}");
    assert!(r.stdout.contains("informational: measured 60"), "{r:?}");
    let broken =
        serde_json::json!({"sqlite_path": db, "query": "SELECT nope FROM nowhere"}).to_string();
    let r = cli(&["probe", "run", "--kind", "sql", "--params", &broken], &[])
        .await
        .unwrap();
    assert_eq!(r.code, 12, "ERROR exits 12: {r:?}");
    let r = cli(
        &[
            "probe",
            "run",
            "--kind",
            "sql",
            "--params",
            r#"{"query": "select 1", "bogus": 1}"#,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 64, "bad params exit 64: {r:?}");
    let r = cli(&["probe", "run", "--kind", "no.such.kind"], &[])
        .await
        .unwrap();
    assert_eq!(r.code, 64, "{r:?}");
}

/// The configs we ship (the cluster deploy base, the quickstart) must validate against the real
/// built-in checkers: every probe kind exists and every params object fits its published schema.
#[tokio::test(flavor = "multi_thread")]
async fn shipped_configs_validate_against_the_builtin_checkers() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let deploy = repo.join("deploy/kustomize/base/funnelgate.toml");
    let r = cli(
        &[
            "config",
            "validate",
            "--up",
            "--with-checkers",
            &deploy.display().to_string(),
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("checked against the checkers"), "{r:?}");

    // And the check has teeth: a probe kind no checker offers is refused, naming the key.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("funnelgate.toml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&deploy)
            .unwrap()
            .replace("kind = \"dns.dmarc\"", "kind = \"dns.dmarcc\""),
    )
    .unwrap();
    let r = cli(
        &[
            "config",
            "validate",
            "--up",
            "--with-checkers",
            &broken.display().to_string(),
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.code, 64, "{r:?}");
    assert!(r.stderr.contains("dns.dmarcc"), "{r:?}");
    assert!(
        r.stderr.contains("funnels[0].stages[2].probes[0].kind"),
        "{r:?}"
    );
}
