//! The dashboard in a real headless Chromium (Debian's `/usr/bin/chromium`, driven over the
//! DevTools protocol): the quickstart funnel renders (list and funnel page), a decision change
//! made through the gRPC API reaches the open page live (no reload), a viewer sees no operator
//! buttons while an operator acts from the page, the evidence of a change opens in one click, the
//! layout fits a phone, and axe-core (tests/node, pinned) finds no serious or critical
//! violations. Screenshots are kept under `target/test-artifacts/dashboard/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::input::{DispatchKeyEventParams, DispatchKeyEventType};
use chromiumoxide::cdp::browser_protocol::page::{CaptureScreenshotFormat, SetBypassCspParams};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use funnelgate_e2e::Cluster;
use funnelgate_proto::pb;
use futures::StreamExt;

const OPERATOR_TOKEN: &str = "olivia-operator-token-1";
const VIEWER_TOKEN: &str = "victor-viewer-token-1";

/// The launch flags the project's browser tests use (besides chromiumoxide's `--headless`).
const FLAGS: [&str; 7] = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-default-browser-check",
];

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Chromium {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    async fn launch() -> Chromium {
        let exe = PathBuf::from("/usr/bin/chromium");
        assert!(
            exe.exists(),
            "/usr/bin/chromium is missing: install the Debian package chromium (scripts/debian-packages.txt)"
        );
        let profile = tempfile::tempdir().unwrap();
        let mut builder = BrowserConfig::builder()
            .chrome_executable(&exe)
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(1280, 1000)
            .viewport(None)
            .launch_timeout(Duration::from_secs(30))
            .request_timeout(Duration::from_secs(30));
        for f in FLAGS {
            builder = builder.arg(f);
        }
        let (browser, mut events) = Browser::launch(builder.build().unwrap()).await.unwrap();
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Chromium {
            browser,
            handler,
            _profile: profile,
        }
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // On a failed assertion the browser process is killed when its child handle drops
        // (chromiumoxide starts it with kill_on_drop); the profile directory is removed.
        self.handler.abort();
    }
}

/// Evaluate `async () => …` in the page and decode its result.
async fn js<T: serde::de::DeserializeOwned>(page: &Page, function: &str) -> T {
    page.evaluate_function(function)
        .await
        .unwrap_or_else(|e| panic!("evaluating {function}: {e}"))
        .into_value()
        .unwrap_or_else(|e| panic!("result of {function}: {e}"))
}

/// Poll a boolean expression until true (the page's own state, not a fixed sleep).
async fn wait_for(page: &Page, what: &str, expression: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let function =
        format!("() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }}");
    loop {
        let ok: bool = js(page, &function).await;
        if ok {
            return;
        }
        if Instant::now() > deadline {
            let body: String = js(page, "() => document.body ? document.body.innerText : ''").await;
            panic!(
                "timed out after {timeout:?} waiting for {what} ({expression}); page text:\n{body}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(page: &Page, name: &str) {
    let path = artifacts().join(name);
    page.save_screenshot(
        ScreenshotParams::builder()
            .format(CaptureScreenshotFormat::Png)
            .full_page(true)
            .build(),
        &path,
    )
    .await
    .unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 5_000, "{} is only {len} bytes", path.display());
}

/// Inject axe-core and fail on any serious or critical violation (WCAG 2 A/AA rules).
async fn axe(page: &Page, label: &str) {
    let source =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node/node_modules/axe-core/axe.min.js");
    let script = std::fs::read_to_string(&source).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: axe-core is provisioned by scripts/test.sh (cd tests/node && npm ci)",
            source.display()
        )
    });
    page.evaluate_expression(script).await.unwrap();
    let report: serde_json::Value = js(
        page,
        "async () => { const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }); return { passes: r.passes.length, violations: r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')) })) }; }",
    )
    .await;
    std::fs::write(
        artifacts().join(format!("axe-{label}.json")),
        serde_json::to_vec_pretty(&report).unwrap(),
    )
    .unwrap();
    let bad: Vec<&serde_json::Value> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(bad.is_empty(), "axe on {label}: {bad:#?}");
    assert!(
        report["passes"].as_u64().unwrap() > 10,
        "axe ran no rules: {report}"
    );
}

/// Press Tab as a keyboard user would (a trusted key event, not a script).
async fn tab(page: &Page) {
    for kind in [DispatchKeyEventType::KeyDown, DispatchKeyEventType::KeyUp] {
        page.execute(
            DispatchKeyEventParams::builder()
                .r#type(kind)
                .key("Tab")
                .code("Tab")
                .windows_virtual_key_code(9)
                .native_virtual_key_code(9)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    }
}

async fn sign_in(page: &Page, token: &str, expect_role: &str) {
    let set = format!(
        "() => {{ const i = document.getElementById('token'); i.focus(); i.value = {}; document.getElementById('token-save').click(); return true; }}",
        serde_json::to_string(token).unwrap()
    );
    let _: bool = js(page, &set).await;
    wait_for(
        page,
        "whoami",
        &format!("document.body.dataset.role === '{expect_role}'"),
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_renders_the_quickstart_updates_live_and_gates_operator_actions() {
    let mut c = Cluster::checkers(tempfile::tempdir().unwrap())
        .await
        .unwrap();
    let config = crate::quickstart_files(c.dir.path(), &c.grpc, &c.http).await;
    // A webhook sink whose receiver is down: the page must show it failing.
    let dead_hook = funnelgate_e2e::free_port();
    let sinks = "\n[notifications]\nretry_initial = \"200ms\"\nretry_max = \"1s\"\ntimeout = \"2s\"\n\n[[notifications.sinks]]\nname = \"ops-hook\"\nkind = \"webhook\"\nurl_secret = \"DASH_HOOK_URL\"\nhmac_secret = \"DASH_HOOK_KEY\"\non = [\"override\"]\n";
    let auth = "\n[[auth.operators]]\nname = \"olivia\"\ntoken_secret = \"OLIVIA\"\n\n[[auth.operators]]\nname = \"victor\"\ntoken_secret = \"VICTOR\"\nrole = \"viewer\"\n";
    std::fs::write(
        c.config_path(),
        format!("{config}\n{sinks}\n{auth}\n{}", c.checkers_toml()),
    )
    .unwrap();
    c.env = vec![
        ("FUNNELGATE_SECRET_OLIVIA".into(), OPERATOR_TOKEN.into()),
        ("FUNNELGATE_SECRET_VICTOR".into(), VIEWER_TOKEN.into()),
        (
            "FUNNELGATE_SECRET_DASH_HOOK_URL".into(),
            format!("http://127.0.0.1:{dead_hook}/hook"),
        ),
        ("FUNNELGATE_SECRET_DASH_HOOK_KEY".into(), "k".into()),
    ];
    c.start_coordinator().await.unwrap();
    funnelgate_e2e::wait_decision(
        &c.grpc,
        "acme",
        Duration::from_secs(60),
        "CLOSED and fully checked",
        |d| {
            d.state == pb::GateState::Closed as i32
                && d.stages.iter().all(|s| s.checked_at.is_some())
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", c.http);

    let chromium = Chromium::launch().await;
    let page = chromium.browser.new_page("about:blank").await.unwrap();
    page.execute(SetBypassCspParams::new(true)).await.unwrap();

    // The funnel list.
    page.goto(format!("{base}/dashboard")).await.unwrap();
    wait_for(
        &page,
        "the funnel list",
        "document.body.dataset.ready === 'list' && document.querySelector('tr[data-funnel=\"acme\"] .cell-state').innerText === 'CLOSED'",
        Duration::from_secs(20),
    )
    .await;
    let row: String = js(
        &page,
        "() => document.querySelector('tr[data-funnel=\"acme\"]').innerText",
    )
    .await;
    assert!(row.contains("0%") && row.contains("crm"), "{row}");
    screenshot(&page, "funnel-list.png").await;
    axe(&page, "funnel-list").await;

    // The funnel page: bottom stage broken, every stage above it BLOCKED, fix-first, probes,
    // history; no operator buttons without a token.
    page.goto(format!("{base}/dashboard/funnels/acme"))
        .await
        .unwrap();
    wait_for(
        &page,
        "the funnel page",
        "document.body.dataset.ready === 'funnel' && document.querySelectorAll('#history tbody tr').length > 0",
        Duration::from_secs(20),
    )
    .await;
    let drawn: serde_json::Value = js(
        &page,
        "() => Array.from(document.querySelectorAll('#funnel-graphic li')).map(li => [li.dataset.stage, li.dataset.readiness, li.getBoundingClientRect().top])",
    )
    .await;
    let drawn = drawn.as_array().unwrap();
    let names: Vec<&str> = drawn.iter().map(|d| d[0].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["analytics", "esp", "automation", "crm"],
        "top to bottom"
    );
    assert_eq!(drawn[3][1], "NOT_READY", "crm is broken: {drawn:?}");
    // Each stage shows the readiness the gate API reports (BLOCKED where a lower stage is not
    // ready), and a BLOCKED or broken stage is marked as such on the drawing.
    funnelgate_e2e::install_crypto();
    let gate: serde_json::Value = reqwest::get(format!("{base}/v1/funnels/acme/gate"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api: Vec<(String, String)> = gate["stages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_string(),
                s["readiness"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let shown: Vec<(String, String)> = drawn
        .iter()
        .map(|d| {
            (
                d[0].as_str().unwrap().to_string(),
                d[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(shown, api);
    let marked: Vec<String> = js(
        &page,
        "() => Array.from(document.querySelectorAll('#funnel-graphic li')).map(li => li.className + ':' + li.innerText.replace(/\\s+/g, ' '))",
    )
    .await;
    for (m, (_, readiness)) in marked.iter().zip(&api) {
        let class = match readiness.as_str() {
            "READY" => "ready:",
            "BLOCKED" => "blocked:",
            _ => "broken:",
        };
        assert!(m.starts_with(class), "{m} for {readiness}");
        assert!(
            m.contains(&readiness.replace('_', " ")),
            "{m} for {readiness}"
        );
    }
    assert!(
        drawn[3][2].as_f64().unwrap() > drawn[0][2].as_f64().unwrap(),
        "the bottom stage is drawn lowest"
    );
    let fix: Vec<String> = js(
        &page,
        "() => Array.from(document.querySelectorAll('#fix-first li')).map(li => li.innerText)",
    )
    .await;
    assert!(
        fix.first().is_some_and(|f| f.starts_with("crm")),
        "fix first: {fix:?}"
    );
    let probes: Vec<Vec<String>> = js(
        &page,
        "() => Array.from(document.querySelectorAll('#probes tbody tr')).map(tr => Array.from(tr.cells).map(c => c.innerText))",
    )
    .await;
    assert!(probes.len() >= 4, "{probes:?}");
    assert!(
        probes
            .iter()
            .any(|p| p[0] == "crm" && p[2] == "FAIL" && p[4] != "—"),
        "a failing crm probe with its thresholds: {probes:?}"
    );
    let state: String = js(
        &page,
        "() => document.getElementById('gate-state').dataset.state",
    )
    .await;
    assert_eq!(state, "CLOSED");
    let buttons: usize = js(
        &page,
        "() => document.querySelectorAll('#controls button').length",
    )
    .await;
    assert_eq!(buttons, 0, "no token: no operator buttons");
    screenshot(&page, "funnel-page.png").await;
    axe(&page, "funnel-page").await;

    // Keyboard: the first Tab lands on the skip link, visibly focused; the next ones reach the
    // funnel list link and the token field in reading order.
    let _: bool = js(
        &page,
        "() => { if (document.activeElement) document.activeElement.blur(); return true; }",
    )
    .await;
    tab(&page).await;
    let first: Vec<String> = js(
        &page,
        "() => { const e = document.activeElement; const s = getComputedStyle(e); return [e.className, e.innerText, s.outlineStyle, s.outlineWidth]; }",
    )
    .await;
    assert_eq!(first[0], "skip", "{first:?}");
    assert!(
        first[2] != "none" && first[3] != "0px",
        "no visible focus: {first:?}"
    );
    let mut order = Vec::new();
    for _ in 0..4 {
        tab(&page).await;
        let id: String = js(
            &page,
            "() => document.activeElement.id || document.activeElement.getAttribute('href') || document.activeElement.tagName",
        )
        .await;
        order.push(id);
    }
    assert_eq!(
        order,
        [
            "/dashboard",
            "/dashboard",
            "/dashboard/funnels/acme",
            "token"
        ],
        "focus order"
    );

    // The evidence of a recorded change is one click away.
    let _: bool = js(
        &page,
        "() => { document.querySelector('#history tbody tr details summary').click(); return true; }",
    )
    .await;
    wait_for(
        &page,
        "the evidence",
        "document.querySelector('#history tbody tr details pre').innerText.includes('\"evidence\"')",
        Duration::from_secs(10),
    )
    .await;

    // The HTTP writes the page uses check the token like the gRPC API: none is 401, a viewer's
    // is 403, and whoami tells the page who is who.
    let http = reqwest::Client::new();
    let body = serde_json::json!({"state": "OPEN", "reason": "x", "ttl_seconds": 60});
    let url = format!("{base}/v1/funnels/acme/override");
    let none = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let viewer = http
        .post(&url)
        .bearer_auth(VIEWER_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(viewer.status(), 403);
    let refused: serde_json::Value = viewer.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "PERMISSION_DENIED", "{refused}");
    let phase = http
        .post(format!("{base}/v1/funnels/acme/phase"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&serde_json::json!({"phase": "launch", "reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        phase.status(),
        400,
        "a bad phase is refused before the engine"
    );
    for (token, expect) in [
        (
            Some(VIEWER_TOKEN),
            serde_json::json!({"authenticated": true, "identity": "victor", "role": "viewer"}),
        ),
        (
            Some("nope"),
            serde_json::json!({"authenticated": false, "identity": null, "role": null}),
        ),
        (
            None,
            serde_json::json!({"authenticated": false, "identity": null, "role": null}),
        ),
    ] {
        let mut req = http.get(format!("{base}/v1/whoami"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let who: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
        assert_eq!(who, expect);
    }

    // A viewer sees no buttons that would fail.
    sign_in(&page, VIEWER_TOKEN, "viewer").await;
    let who: String = js(&page, "() => document.getElementById('whoami').innerText").await;
    assert!(who.contains("victor") && who.contains("viewer"), "{who}");
    let buttons: usize = js(
        &page,
        "() => document.querySelectorAll('#controls button').length",
    )
    .await;
    assert_eq!(buttons, 0, "a viewer sees no operator buttons");

    // Live: an override through the gRPC API reaches the open page with no reload.
    let _: bool = js(&page, "() => { window.__noReload = 4242; return true; }").await;
    let mut g = funnelgate_e2e::gate_client(&c.grpc).await.unwrap();
    let mut req = tonic::Request::new(pb::SetOverrideRequest {
        funnel: "acme".into(),
        state: pb::GateState::Open as i32,
        reason: "dashboard live test".into(),
        ttl_seconds: 600,
        percent: Some(25),
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {OPERATOR_TOKEN}").parse().unwrap(),
    );
    g.set_override(req).await.unwrap();
    wait_for(
        &page,
        "the live update",
        "document.getElementById('gate-state').dataset.state === 'OPEN' && document.getElementById('gate-share').innerText === '25%'",
        Duration::from_secs(15),
    )
    .await;
    // The override is a notification the dead webhook cannot take: the page shows the sink
    // failing (refreshed without a reload).
    wait_for(
        &page,
        "the failing sink",
        "document.querySelector('#sinks li.failing') && document.querySelector('#sinks li.failing').innerText.includes('ops-hook')",
        Duration::from_secs(20),
    )
    .await;
    let marker: u32 = js(&page, "() => window.__noReload || 0").await;
    assert_eq!(marker, 4242, "the page was reloaded");
    wait_for(
        &page,
        "the override in the history",
        "document.querySelector('#history tbody tr').innerText.includes('olivia')",
        Duration::from_secs(10),
    )
    .await;

    // An operator clears it from the page (HTTP write, same engine path as gRPC).
    sign_in(&page, OPERATOR_TOKEN, "operator").await;
    let _: bool = js(
        &page,
        "() => { document.getElementById('clr-reason').value = 'done testing'; document.getElementById('clr-submit').click(); return true; }",
    )
    .await;
    wait_for(
        &page,
        "the cleared override",
        "document.getElementById('gate-state').dataset.state === 'CLOSED'",
        Duration::from_secs(15),
    )
    .await;
    let d = g
        .get_gate(pb::GetGateRequest {
            funnel: "acme".into(),
            view: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(d.state, pb::GateState::Closed as i32);
    assert!(d.r#override.is_none());
    screenshot(&page, "funnel-page-operator.png").await;
    axe(&page, "funnel-page-operator").await;

    // A phone: nothing overflows sideways.
    page.execute(SetDeviceMetricsOverrideParams::new(375, 812, 2.0, true))
        .await
        .unwrap();
    page.reload().await.unwrap();
    wait_for(
        &page,
        "the funnel page on a phone",
        "document.body.dataset.ready === 'funnel'",
        Duration::from_secs(20),
    )
    .await;
    let fits: bool = js(
        &page,
        "() => document.documentElement.scrollWidth <= window.innerWidth + 1",
    )
    .await;
    assert!(fits, "the page scrolls sideways on a 375px phone");
    screenshot(&page, "funnel-page-phone.png").await;

    chromium.close().await;
}
