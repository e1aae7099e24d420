//! The quickstart exactly as examples/quickstart/README.md tells it: init, up, CLOSED with a
//! bottom-up remediation list, fix, OPEN.

use std::time::Duration;

use funnelgate_e2e::{Proc, cli, free_addr, wait_serving};

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_up_closed_fix_open() {
    let dir = tempfile::tempdir().unwrap();
    let qs = dir.path().join("acme-demo");
    let (grpc, http) = (free_addr(), free_addr());
    let config = crate::quickstart_files(&qs, &grpc, &http).await;
    assert!(config.contains(&format!("http://{http}/healthz")));
    let config_path = qs.join("funnelgate.toml").display().to_string();

    let mut up = Proc::start("up", &["up", "--config", &config_path], &[], dir.path()).unwrap();
    wait_serving(
        &mut up,
        &grpc,
        "funnelgate.v1.GateService",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(
        up.output().contains(" gate status acme --server http://"),
        "{}",
        up.output()
    );
    let server = format!("http://{grpc}");

    // CLOSED once every stage was checked, remediation bottom-up (crm first).
    funnelgate_e2e::wait_decision(
        &grpc,
        "acme",
        Duration::from_secs(60),
        "CLOSED and fully checked",
        |d| {
            d.state == funnelgate_proto::pb::GateState::Closed as i32
                && d.stages.iter().all(|s| s.checked_at.is_some())
        },
    )
    .await
    .unwrap();
    let status = cli(&["gate", "status", "acme", "--server", &server], &[])
        .await
        .unwrap();
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status
            .stdout
            .starts_with("Don't start paid campaigns yet: in the CRM, ")
            && status.stdout.contains("\n\nacme: CLOSED"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("blocking stage: crm"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("1. crm: probe `"),
        "{}",
        status.stdout
    );
    let check = cli(
        &["gate", "check", "acme", "-o", "json", "--server", &server],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(check.code, 11, "{check:?}");
    let v: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    let stages: Vec<&str> = v["remediation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages.first(), Some(&"crm"), "{stages:?}");
    let rank = |s: &str| funnelgate_e2e::STAGES.iter().position(|x| *x == s).unwrap();
    assert!(
        stages.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "not bottom-up: {stages:?}"
    );
    let failing = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["code"] == "STAGE_FAILING");
    assert!(failing.count() >= 4, "every stage is broken: {v}");

    // The HTTP API and the landing-page probe agree.
    funnelgate_e2e::install_crypto();
    let body: serde_json::Value = reqwest::get(format!("http://{http}/v1/funnels/acme/gate"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["state"], "CLOSED", "{body}");

    let fix = cli(&["quickstart", "fix", &qs.display().to_string()], &[])
        .await
        .unwrap();
    assert_eq!(fix.code, 0, "{fix:?}");
    let waited = cli(
        &[
            "gate",
            "wait",
            "acme",
            "--until",
            "open",
            "--timeout",
            "3m",
            "--server",
            &server,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(waited.code, 0, "{waited:?}\n{}", up.output());
    assert!(waited.stdout.contains("acme: OPEN"), "{}", waited.stdout);

    // Ctrl-C / SIGTERM: clean shutdown.
    up.terminate().unwrap();
    let status = up.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "up exit: {status:?}\n{}", up.output());
}

/// A process started through `sh -c` in a fresh environment; killed when dropped.
struct Shell {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Shell {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh shell: no inherited environment but a minimal PATH and HOME (so `funnelgate` is not
/// on the PATH unless a hint put it there).
fn fresh_shell(cmd: &str, cwd: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new("/bin/sh");
    c.args(["-c", cmd])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", cwd)
        .stdin(std::process::Stdio::null());
    c
}

/// The command on the line after the first line of `text` that starts with `marker`, or on the
/// same line after the marker.
fn hint_after(text: &str, marker: &str) -> String {
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some(rest) = l.trim_start().strip_prefix(marker) {
            let rest = rest.trim();
            // `marker command` on one line; `marker some words:` then the command below
            if !rest.is_empty() && !rest.ends_with(':') {
                return rest.to_string();
            }
            return lines.next().unwrap_or_default().trim().to_string();
        }
    }
    panic!("no `{marker}` hint in:\n{text}")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_printed_hint_runs_as_printed_from_a_fresh_shell() {
    let dir = tempfile::tempdir().unwrap();
    let qs = dir.path().join("my demo");
    let (grpc, http) = (free_addr(), free_addr());
    let init = cli(
        &[
            "quickstart",
            "init",
            &qs.display().to_string(),
            "--grpc-listen",
            &grpc,
            "--http-listen",
            &http,
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(init.code, 0, "{init:?}");

    // init's hint starts everything
    let up_hint = hint_after(&init.stdout, "next:");
    assert!(up_hint.contains(" up --config "), "{up_hint}");
    let log = dir.path().join("up.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = fresh_shell(&format!("exec {up_hint}"), dir.path())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let up = Shell { child, log };
    // wait until the coordinator serves and `up` printed its hints
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if funnelgate_e2e::gate_client(&grpc).await.is_ok() && up.output().contains("wait for it:")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{up_hint}` did not serve; output:\n{}",
            up.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // up's hints, as printed
    let status_hint = hint_after(&up.output(), "query the gate:");
    let wait_hint = hint_after(&up.output(), "wait for it:");
    assert!(
        status_hint.contains(&format!("--server http://{grpc}")),
        "{status_hint}"
    );
    let status = fresh_shell(&status_hint, dir.path()).output().unwrap();
    assert!(
        status.status.code() == Some(0),
        "`{status_hint}`: {status:?}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(String::from_utf8_lossy(&status.stdout).contains("acme:"));

    // fix's hint waits for the gate to open
    let fix = cli(&["quickstart", "fix", &qs.display().to_string()], &[])
        .await
        .unwrap();
    assert_eq!(fix.code, 0, "{fix:?}");
    for stage in funnelgate_e2e::STAGES {
        assert!(
            fix.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(stage) && l.contains("changed")),
            "fix says what it changed in {stage}: {}",
            fix.stdout
        );
    }
    let watch_hint = hint_after(&fix.stdout, "watch it happen:");
    let waited = fresh_shell(&watch_hint, dir.path()).output().unwrap();
    assert_eq!(
        waited.status.code(),
        Some(0),
        "`{watch_hint}`: {}\n{}",
        String::from_utf8_lossy(&waited.stdout),
        String::from_utf8_lossy(&waited.stderr)
    );
    // and up's own wait hint, now that the gate is open
    let waited = fresh_shell(&wait_hint, dir.path()).output().unwrap();
    assert_eq!(waited.status.code(), Some(0), "`{wait_hint}`: {waited:?}");
}
