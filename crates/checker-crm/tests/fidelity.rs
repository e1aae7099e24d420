//! Fidelity of the local vendor servers: the vendors' official client libraries
//! (`hubspot-api-client`, `simple-salesforce`) must parse their replies, including paging and
//! error replies and the Salesforce UI API's picklist values the pipeline kind reads. Runs `tests/fidelity/check_clients.py` with the repository's virtualenv
//! (`FUNNELGATE_PYTHON`, default `<repo>/.venv/bin/python`) and fails loudly when it is missing.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::json;
use support::hubspot::{
    HubSpotMock, HubState, Obj, TOKEN, missing_scope, pipeline, rate_limited, stage,
    standard_properties,
};

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("FUNNELGATE_PYTHON") {
        return PathBuf::from(p);
    }
    // Canonicalise the repository, not the interpreter: a venv's python is a symlink that must
    // keep its venv path to find its packages.
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&repo)
        .unwrap_or(repo)
        .join(".venv/bin/python")
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/check_clients.py")
}

async fn run_script(args: &[String]) -> String {
    let py = python();
    assert!(
        py.exists(),
        "the python virtualenv is missing: {} does not exist (create it with `python3 -m venv .venv && .venv/bin/pip install -r scripts/python-requirements.txt`, or set FUNNELGATE_PYTHON)",
        py.display()
    );
    let out = tokio::process::Command::new(&py)
        .arg(script())
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "fidelity script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("all fidelity checks passed"),
        "{stdout}\n{stderr}"
    );
    println!("{stdout}");
    stdout.into_owned()
}

use support::salesforce::{Answer, SESSION, SalesforceMock, SfState, describe, record};

fn hubspot_state() -> HubState {
    let mut objects = HashMap::new();
    objects.insert(
        "contacts".to_string(),
        (1..=5)
            .map(|i| {
                Obj::new(
                    i,
                    &support::days_ago(i as f64),
                    &[
                        ("email", &format!("p{i}@acme.io")),
                        ("hs_analytics_source", "PAID_SEARCH"),
                    ],
                )
            })
            .collect(),
    );
    objects.insert(
        "deals".to_string(),
        vec![
            Obj::new(
                101,
                &support::days_ago(9.0),
                &[
                    ("hs_is_closed_won", "true"),
                    ("closedate", &support::days_ago(1.0)),
                ],
            ),
            Obj::new(
                102,
                &support::days_ago(9.0),
                &[
                    ("hs_is_closed_won", "true"),
                    ("closedate", &support::days_ago(2.0)),
                ],
            ),
        ],
    );
    let mut pipelines = HashMap::new();
    pipelines.insert(
        "deals".to_string(),
        vec![pipeline(
            "default",
            "Sales",
            vec![
                stage("a", "New", 0, "0.2", false),
                stage("w", "Won", 1, "1.0", true),
                stage("l", "Lost", 2, "0.0", true),
            ],
        )],
    );
    let mut associations = HashMap::new();
    associations.insert("101".to_string(), vec!["1".to_string()]);
    HubState {
        objects,
        properties: standard_properties(),
        pipelines,
        associations,
        daily: Some((500_000, 400_000)),
        ..Default::default()
    }
}

#[tokio::test]
async fn hubspot_api_client_parses_the_local_hubspot() {
    support::init();
    let m = HubSpotMock::start(hubspot_state()).await;
    m.fault(
        "/crm/v3/objects/companies",
        missing_scope("crm.objects.companies.read"),
        None,
    );
    // The client (urllib3) honours Retry-After and retries three times before raising.
    m.fault("/crm/v3/objects/tickets", rate_limited("1"), None);
    run_script(&[
        "--hubspot".into(),
        m.base(),
        "--hubspot-token".into(),
        TOKEN.into(),
    ])
    .await;
    // The client sent what the probes send: the Bearer token, the search body shape.
    let log = m.log();
    let search = log
        .iter()
        .find(|r| r.path == "/crm/v3/objects/contacts/search")
        .unwrap();
    assert_eq!(
        search.header("authorization").as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert!(
        search.body["filterGroups"][0]["filters"].is_array(),
        "{}",
        search.body
    );
}

#[tokio::test]
async fn simple_salesforce_parses_the_local_salesforce() {
    support::init();
    let leads: Vec<serde_json::Value> = (1..=5)
        .map(|i| {
            record(
                "Lead",
                &format!("00Q00000000000{i}"),
                json!({ "Email": format!("p{i}@acme.io") }),
            )
        })
        .collect();
    let mut state = SfState::default()
        .on(&["SELECT COUNT() FROM Lead"], Answer::Count(5))
        .on(&["SELECT Id, Email FROM Lead"], Answer::Records(leads));
    state.page_size = 2;
    state.describes.insert(
        "Lead".into(),
        describe(
            "Lead",
            &[
                ("Email", "email", &[]),
                ("LeadSource", "picklist", &["Web"]),
            ],
        ),
    );
    state.describes.insert(
        "Opportunity".into(),
        describe("Opportunity", &[("Amount", "currency", &[])]),
    );
    // The UI API reply the pipeline kind reads per sales process (record type).
    state.stage_values.insert(
        "012000000000001AAA".into(),
        vec![
            "Prospecting".into(),
            "Negotiation".into(),
            "Closed Won".into(),
        ],
    );
    let m = SalesforceMock::start(state).await;
    let out = run_script(&[
        "--salesforce".into(),
        m.base(),
        "--salesforce-session".into(),
        SESSION.into(),
        "--salesforce-version".into(),
        "60.0".into(),
        "--salesforce-record-type".into(),
        "012000000000001AAA".into(),
    ])
    .await;
    assert!(
        out.contains(r#"stage values: ["Prospecting", "Negotiation", "Closed Won"]"#),
        "{out}"
    );
    assert!(m.log().iter().any(|r| r.path
        == "/services/data/v60.0/ui-api/object-info/Opportunity/picklist-values/012000000000001AAA/StageName"));
    // simple-salesforce pinned the same version the probes pin, and sent the session as Bearer.
    let log = m.log();
    assert!(
        log.iter()
            .all(|r| r.path.starts_with("/services/data/v60.0/")),
        "{:?}",
        log.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert!(
        log.iter()
            .any(|r| r.path.starts_with("/services/data/v60.0/query/01g")),
        "query_all followed nextRecordsUrl"
    );
    assert!(log.iter().any(
        |r| r.header("authorization").as_deref() == Some(format!("Bearer {SESSION}").as_str())
    ));
}

fn pipedrive_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/pipedrive")
}

/// A deal as the official client's v2 `Deal` model declares it (`channel` is the numeric id of
/// the "Source channel" option).
fn pd_deal(id: u64, hours: f64) -> serde_json::Value {
    json!({ "id": id, "title": format!("Deal {id}"), "owner_id": 1, "person_id": null, "org_id": null,
            "pipeline_id": 1, "stage_id": 11, "value": 100, "currency": "EUR",
            "add_time": support::hours_ago(hours), "update_time": support::hours_ago(hours),
            "stage_change_time": null, "is_deleted": false, "is_archived": false, "status": "open",
            "probability": null, "lost_reason": null, "visible_to": 3, "close_time": null,
            "won_time": null, "lost_time": null, "expected_close_date": null, "label_ids": [],
            "origin": "ManuallyCreated", "origin_id": null, "channel": 7, "channel_id": null,
            "source_lead_id": null, "custom_fields": {} })
}

/// The local Pipedrive's API v2 replies (deals, persons, pipelines, stages; cursor paging through
/// `additional_data.next_cursor`) as the official Pipedrive client (npm `pipedrive`) reads them,
/// type-checked against that client's v2 models. Needs node and the packages of
/// `tests/fidelity/pipedrive/package.json` (`npm ci` there; `scripts/test.sh` provisions them).
#[tokio::test]
async fn official_pipedrive_client_reads_the_local_v2_replies() {
    use support::pipedrive::{PdState, PipedriveMock, TOKEN};
    support::init();
    let dir = pipedrive_dir();
    assert!(
        dir.join("node_modules/pipedrive/package.json").exists()
            && dir.join("node_modules/typescript/package.json").exists(),
        "the official pipedrive client is not installed: run `npm ci` in {} (scripts/test.sh does)",
        dir.display()
    );
    let mut lists = HashMap::new();
    lists.insert(
        "/api/v2/deals".to_string(),
        (1..=5).map(|i| pd_deal(i, i as f64)).collect::<Vec<_>>(),
    );
    lists.insert(
        "/api/v2/persons".to_string(),
        (1..=3)
            .map(|i| {
                json!({ "id": i, "name": format!("P{i}"), "first_name": "P", "last_name": format!("{i}"),
                        "owner_id": 1, "add_time": support::hours_ago(1.0),
                        "update_time": support::hours_ago(1.0), "is_deleted": false, "visible_to": 3,
                        "emails": [{ "value": format!("p{i}@acme.io"), "primary": true, "label": "work" }],
                        "phones": [], "label_ids": [], "custom_fields": {} })
            })
            .collect(),
    );
    lists.insert(
        "/api/v2/pipelines".to_string(),
        vec![
            json!({ "id": 1, "name": "Sales", "order_nr": 1, "is_deleted": false,
                     "is_deal_probability_enabled": false, "add_time": support::hours_ago(500.0),
                     "update_time": support::hours_ago(500.0) }),
        ],
    );
    let state = PdState {
        lists,
        stages: (11..=13)
            .map(|id| {
                json!({ "id": id, "order_nr": id - 10, "name": format!("Stage {id}"), "is_deleted": false,
                        "deal_probability": 50, "pipeline_id": 1, "is_deal_rot_enabled": false,
                        "days_to_rotten": null, "add_time": support::hours_ago(500.0),
                        "update_time": support::hours_ago(500.0) })
            })
            .collect(),
        ..Default::default()
    };
    let m = PipedriveMock::start(state).await;
    let out = tokio::process::Command::new("node")
        .arg(dir.join("check_v2.js"))
        .args([m.base(), TOKEN.to_string(), "2".to_string()])
        .current_dir(&dir)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all pipedrive v2 fidelity checks passed"),
        "{stdout}\n{stderr}"
    );
    // The client paged through next_cursor: 3 pages of deals, 2 of persons.
    assert!(
        stdout.contains(r#""deals":{"pages":3,"items":5}"#)
            && stdout.contains(r#""persons":{"pages":2,"items":3}"#),
        "{stdout}"
    );
    let log = m.log();
    assert!(
        log.iter().all(|r| r.path.starts_with("/api/v2/")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .all(|r| r.header("x-api-token").as_deref() == Some(TOKEN))
    );
    assert!(
        log.iter()
            .any(|r| r.path == "/api/v2/deals" && r.query.contains_key("cursor"))
    );
}
