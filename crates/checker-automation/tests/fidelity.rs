//! Fidelity of the local vendor servers: `marketorestpython` (the Marketo client most teams
//! script with) must parse the local Marketo's replies, including paging and error envelopes.
//! Runs `tests/fidelity/check_marketo.py` with the repository's virtualenv (`FUNNELGATE_PYTHON`,
//! default `<repo>/.venv/bin/python`) and fails loudly when it is missing.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;

use serde_json::json;
use support::hours_ago;
use support::marketo::{
    CHANGE_SCORE, CLIENT_ID, CLIENT_SECRET, Marketo, MarketoState, NEW_LEAD, activity, email_asset,
    form_field, lead_fields, smart_campaign,
};

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("FUNNELGATE_PYTHON") {
        return PathBuf::from(p);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&repo)
        .unwrap_or(repo)
        .join(".venv/bin/python")
}

#[tokio::test]
async fn marketorestpython_parses_the_local_marketo() {
    let mut st = MarketoState {
        usage_today: 1234,
        lead_fields: lead_fields(true),
        page_size: 3,
        ..Default::default()
    };
    st.campaigns = (1..=250)
        .map(|i| smart_campaign(i, &format!("C{i}"), true))
        .collect();
    for i in 0..5 {
        st.activities
            .push(activity(i, i, NEW_LEAD, &hours_ago(2.0), &[]));
    }
    for i in 5..7 {
        st.activities.push(activity(
            i,
            i,
            CHANGE_SCORE,
            &hours_ago(1.0),
            &[("Old Value", json!(90)), ("New Value", json!(110))],
        ));
    }
    st.leads.insert(
        1,
        json!({"id": 1, "email": "unsub@acme.io", "unsubscribed": true}),
    );
    st.emails.insert(1, email_asset(1, "Welcome", "approved"));
    st.forms.insert(
        1001,
        vec![
            form_field("Email", "email"),
            form_field("utm_source", "hidden"),
        ],
    );
    let m = Marketo::start(st).await;
    let py = python();
    assert!(
        py.exists(),
        "the python virtualenv is missing: {} does not exist (create it with `python3 -m venv .venv && .venv/bin/pip install -r scripts/python-requirements.txt`, or set FUNNELGATE_PYTHON)",
        py.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/check_marketo.py");
    let since = hours_ago(24.0);
    let out = tokio::process::Command::new(&py)
        .arg(script)
        .args([m.base().as_str(), CLIENT_ID, CLIENT_SECRET, since.as_str()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all fidelity checks passed"),
        "fidelity script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
