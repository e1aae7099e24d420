//! The canary lead end to end against local Mautic (automation), HubSpot (CRM) and Mailgun (ESP)
//! servers wired together like a real stack: a new Mautic contact is synced to HubSpot with its
//! UTM attribution, enrolled in the welcome campaign, and its welcome email delivered. A failure
//! is injected at every step; each run must name the right step and stage, and leave no test
//! data in any of the servers (asserted by listing them).

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use funnelgate_core::{JourneyStep, Measurement, ProbeStatus};
use serde_json::{Value, json};
use support::hubspot::{HubSpotMock, HubState, TOKEN};
use support::mailgun::{KEY, MailgunMock, bounced, delivered};
use support::mautic::{BASIC, Mautic, MauticState, campaign};
use support::{Fault, run};

/// How the local stack reacts to a new lead.
#[derive(Clone, Copy, Default)]
struct Faults {
    no_crm: bool,
    no_attribution: bool,
    no_enrol: bool,
    bounce: bool,
}

struct Stack {
    mautic: Mautic,
    hubspot: HubSpotMock,
    mailgun: MailgunMock,
}

impl Stack {
    async fn start(f: Faults) -> Stack {
        let hubspot = HubSpotMock::start(HubState::default()).await;
        let mailgun = MailgunMock::start().await;
        let hs = hubspot.state.clone();
        let mg = mailgun.state.clone();
        let mut st = MauticState::default();
        st.campaigns.insert(1, campaign(1, "Welcome", true, &[11]));
        if !f.no_enrol {
            st.auto_enrol = Some(1);
        }
        st.on_create = Some(Arc::new(move |c: &Value| {
            let all = &c["fields"]["all"];
            let email = all["email"].as_str().unwrap_or_default().to_string();
            if !f.no_crm {
                let mut h = hs.lock().unwrap();
                h.next_id += 1;
                let id = (500 + h.next_id).to_string();
                let campaign = if f.no_attribution {
                    Value::Null
                } else {
                    all["utm_campaign"].clone()
                };
                h.contacts.push(json!({"id": id, "properties": {
                    "email": email, "utm_source": all["utm_source"], "utm_medium": all["utm_medium"],
                    "utm_campaign": campaign, "createdate": "1765000000000"}}));
            }
            if !f.no_enrol {
                let mut m = mg.lock().unwrap();
                if f.bounce {
                    m.events.insert(email.clone(), vec![bounced(&email)]);
                    m.bounces.push(email);
                } else {
                    m.events.insert(email.clone(), vec![delivered(&email)]);
                }
            }
        }));
        let mautic = Mautic::start(st).await;
        Stack {
            mautic,
            hubspot,
            mailgun,
        }
    }

    fn params(&self) -> Value {
        json!({
            "domain": "canary.example.com",
            "automation": {"base_url": self.mautic.base(), "secret": "MAUTIC", "flow": "Welcome"},
            "crm": {"base_url": self.hubspot.base(), "secret": "HUBSPOT_TOKEN"},
            "esp": {"base_url": self.mailgun.server.base, "domain": "mg.example.com", "secret": "MAILGUN"},
            "step_timeout_secs": 1,
            "poll_interval_ms": 50,
            "cleanup_timeout_secs": 3
        })
    }

    async fn run(&self) -> Measurement {
        run(
            "canary.lead_journey",
            self.params(),
            &[
                ("MAUTIC", BASIC),
                ("HUBSPOT_TOKEN", TOKEN),
                ("MAILGUN", KEY),
            ],
            Duration::from_secs(15),
        )
        .await
        .unwrap()
    }

    /// Nothing of the canary is left anywhere.
    fn assert_clean(&self) {
        let m = self.mautic.state.lock().unwrap();
        assert!(
            m.contacts.is_empty(),
            "mautic still has {:?}",
            m.contacts.keys().collect::<Vec<_>>()
        );
        assert!(
            m.enrolments.is_empty(),
            "mautic enrolments left: {:?}",
            m.enrolments
        );
        let h = self.hubspot.state.lock().unwrap();
        assert!(h.contacts.is_empty(), "hubspot still has {:?}", h.contacts);
        let g = self.mailgun.state.lock().unwrap();
        assert!(
            g.bounces.is_empty(),
            "mailgun bounce list still has {:?}",
            g.bounces
        );
    }
}

fn step<'a>(m: &'a Measurement, name: &str) -> &'a JourneyStep {
    m.steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step `{name}` in {:?}", m.steps))
}

#[tokio::test]
async fn a_healthy_journey_passes_every_step_and_leaves_nothing() {
    let s = Stack::start(Faults::default()).await;
    let m = s.run().await;
    assert_eq!(
        m.verdict,
        Some(ProbeStatus::Pass),
        "{}: {:?}",
        m.message,
        m.steps
    );
    assert_eq!(m.value, Some(0.0));
    let names: Vec<(&str, &str)> = m
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.stage.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("sweep", "automation"),
            ("submit", "automation"),
            ("crm_record", "crm"),
            ("enrolment", "automation"),
            ("email", "esp"),
            ("cleanup", "automation")
        ]
    );
    assert!(
        m.steps.iter().all(|s| s.status == ProbeStatus::Pass),
        "{:?}",
        m.steps
    );
    // The lead is recognisable: tagged, named, with the fixed UTM set.
    let created = s
        .mautic
        .log()
        .into_iter()
        .find(|r| r.path == "/api/contacts/new")
        .unwrap();
    assert_eq!(created.body["tags"], "funnelgate-canary");
    assert_eq!(created.body["utm_medium"], "canary");
    assert!(
        created.body["email"]
            .as_str()
            .unwrap()
            .starts_with("canary+")
    );
    s.assert_clean();
}

#[tokio::test]
async fn a_lead_that_never_reaches_the_crm_holds_the_crm_stage() {
    let s = Stack::start(Faults {
        no_crm: true,
        ..Faults::default()
    })
    .await;
    let m = s.run().await;
    let c = step(&m, "crm_record");
    assert_eq!(
        (c.status, c.stage.as_str()),
        (ProbeStatus::Fail, "crm"),
        "{c:?}"
    );
    assert!(c.message.contains("never reached the crm"), "{}", c.message);
    assert_eq!(step(&m, "enrolment").status, ProbeStatus::Skipped);
    assert_eq!(step(&m, "email").status, ProbeStatus::Skipped);
    assert!(
        m.message.contains("`crm_record` (crm stage)"),
        "{}",
        m.message
    );
    assert_eq!(step(&m, "cleanup").status, ProbeStatus::Pass);
    s.assert_clean();
}

#[tokio::test]
async fn a_submit_the_automation_tool_refuses_fails_the_submit_step() {
    let s = Stack::start(Faults::default()).await;
    s.mautic.fault(
        "/api/contacts/new",
        Fault::status(
            500,
            r#"{"errors":[{"code":500,"message":"Internal Server Error"}]}"#,
        ),
        None,
    );
    let m = s.run().await;
    let c = step(&m, "submit");
    assert_eq!(
        (c.status, c.stage.as_str()),
        (ProbeStatus::Fail, "automation"),
        "{c:?}"
    );
    s.assert_clean();
}

#[tokio::test]
async fn a_lead_without_attribution_fails_the_crm_step() {
    let s = Stack::start(Faults {
        no_attribution: true,
        ..Faults::default()
    })
    .await;
    let m = s.run().await;
    let c = step(&m, "crm_record");
    assert_eq!((c.status, c.stage.as_str()), (ProbeStatus::Fail, "crm"));
    assert!(
        c.message.contains("without its attribution")
            && c.message.contains("`utm_campaign` is empty"),
        "{}",
        c.message
    );
    s.assert_clean();
}

#[tokio::test]
async fn a_lead_not_enrolled_fails_the_automation_step() {
    let s = Stack::start(Faults {
        no_enrol: true,
        ..Faults::default()
    })
    .await;
    let m = s.run().await;
    let c = step(&m, "enrolment");
    assert_eq!(
        (c.status, c.stage.as_str()),
        (ProbeStatus::Fail, "automation"),
        "{c:?}"
    );
    assert!(
        c.message.contains("not enrolled in `Welcome`"),
        "{}",
        c.message
    );
    assert_eq!(step(&m, "crm_record").status, ProbeStatus::Pass);
    s.assert_clean();
}

#[tokio::test]
async fn a_bounced_welcome_email_fails_the_esp_step_and_is_unsuppressed() {
    let s = Stack::start(Faults {
        bounce: true,
        ..Faults::default()
    })
    .await;
    let m = s.run().await;
    let c = step(&m, "email");
    assert_eq!(
        (c.status, c.stage.as_str()),
        (ProbeStatus::Fail, "esp"),
        "{c:?}"
    );
    assert!(c.message.contains("bounced: 5.1.1"), "{}", c.message);
    assert!(
        s.mailgun
            .state
            .lock()
            .unwrap()
            .log
            .iter()
            .any(|r| r.method == "DELETE")
    );
    s.assert_clean();
}

#[tokio::test]
async fn a_refused_cleanup_warns_and_the_next_run_removes_the_leftovers() {
    let s = Stack::start(Faults::default()).await;
    s.mautic.fault("/delete", Fault::status(403, r#"{"errors":[{"code":403,"message":"You do not have access to the requested area/action."}]}"#), Some(1));
    let m = s.run().await;
    let c = step(&m, "cleanup");
    assert_eq!(
        (c.status, c.stage.as_str()),
        (ProbeStatus::Warn, "automation"),
        "{c:?}"
    );
    assert!(c.message.contains("cleanup refused"), "{}", c.message);
    assert_eq!(m.verdict, Some(ProbeStatus::Warn));
    assert_eq!(
        s.mautic.state.lock().unwrap().contacts.len(),
        1,
        "the refused lead is still there"
    );
    let m = s.run().await;
    let sweep = step(&m, "sweep");
    assert_eq!(sweep.status, ProbeStatus::Warn, "{sweep:?}");
    assert!(
        sweep.message.contains("left 1 test leads"),
        "{}",
        sweep.message
    );
    s.assert_clean();
}

#[tokio::test]
async fn a_journey_killed_mid_way_is_swept_by_the_next_run() {
    let s = Stack::start(Faults {
        no_enrol: true,
        ..Faults::default()
    })
    .await;
    // A process that dies mid-journey: its own runtime is dropped while the enrolment step polls
    // (every task, the journey's cleanup included, is cancelled).
    let mut params = s.params();
    params["step_timeout_secs"] = json!(60);
    let mautic_state = s.mautic.state.clone();
    // Its own thread and runtime (the local servers keep running on the test's runtime).
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let journey = run(
                "canary.lead_journey",
                params,
                &[
                    ("MAUTIC", BASIC),
                    ("HUBSPOT_TOKEN", TOKEN),
                    ("MAILGUN", KEY),
                ],
                Duration::from_secs(120),
            );
            // Killed once the lead exists and the journey is polling for its enrolment.
            let created = async {
                for _ in 0..1000 {
                    if !mautic_state.lock().unwrap().contacts.is_empty() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            tokio::select! {
                _ = journey => panic!("the journey ended before it was killed"),
                _ = created => {}
            }
        });
        drop(rt);
    })
    .await
    .unwrap();
    let log: Vec<String> = s
        .mautic
        .log()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        s.mautic.state.lock().unwrap().contacts.len(),
        1,
        "the killed run left its lead: {log:?}"
    );
    assert_eq!(s.hubspot.state.lock().unwrap().contacts.len(), 1);
    let m = s.run().await;
    let sweep = step(&m, "sweep");
    assert_eq!(sweep.status, ProbeStatus::Warn, "{sweep:?}");
    assert!(
        sweep.message.contains("left 2 test leads"),
        "{}",
        sweep.message
    );
    s.assert_clean();
}
