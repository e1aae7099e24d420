//! `canary.lead_journey`: the steps, their stages, the cleanup that always runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeRegistry};
use funnelgate_core::{JourneyStep, Measurement, ProbeStatus};
use funnelgate_vendor_hubspot::{ApiVersion, Conn, HubSpot, filter};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::mailgun::{Delivery, Mailgun};
use super::{TAG, UTM_MEDIUM, UTM_SOURCE};
use crate::http::{is_not_found, validate_base_url};
use crate::kinds::{KindDoc, Validate, register_kind};
use crate::mautic::client::{Auth, Mautic, id_of};
use crate::params::check_names;

/// The canary kind's reference facts.
pub const KIND_DOC: KindDoc = KindDoc {
    kind: "canary.lead_journey",
    vendor: "canary",
    measure: None,
    permissions: "Mautic: create, view and delete contacts; HubSpot: `crm.objects.contacts.read`, \
                  `crm.objects.contacts.write` (cleanup); Mailgun: an API key that reads events \
                  and deletes bounces",
    calls: "sweep: Mautic `GET /api/contacts?search=tag:funnelgate-canary`, HubSpot `POST \
            /crm/objects/{version}/contacts/search` (email domain); submit: Mautic `POST \
            /api/contacts/new`; crm_record: HubSpot contact search by email, polled; enrolment: \
            Mautic `GET /api/contacts/{id}/campaigns`, polled; email: Mailgun `GET \
            /v3/{domain}/events?recipient=`, polled; cleanup: Mautic `DELETE \
            /api/contacts/{id}/delete`, HubSpot `DELETE /crm/objects/{version}/contacts/{id}`, \
            Mailgun `DELETE /v3/{domain}/bounces/{address}` after a bounce",
    notes: "Steps and the stage each evidences: `sweep` (automation; WARN when a previous run left \
            test leads, which it removes), `submit` (automation), `crm_record` (crm; FAIL when the \
            lead never arrives or arrives without its UTM attribution), `enrolment` (automation; \
            A4), `email` (esp; FAIL when bounced or not delivered in time), `cleanup` (automation; \
            WARN when refused — the next run's sweep removes what is left). A step after a failed \
            one is SKIPPED. The value counts FAIL/ERROR steps; the verdict is the worst step. \
            The coordinator attributes each step to its stage, so a lead that never reaches the CRM \
            holds the crm stage. The analytics key event (section 3 step 5) is not part of this \
            kind yet.",
};

/// Where the canary is submitted and enrolled.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutomationTarget {
    /// Mautic base URL (the automation tool the lead is submitted to).
    pub base_url: String,
    /// `basic` (secret = `username:password`) or `oauth2` (secret = access token).
    #[serde(default)]
    pub auth: Auth,
    /// Name of the secret holding the Mautic credentials.
    pub secret: String,
    /// The campaign the canary must be enrolled in, by id or exact name.
    pub flow: String,
}

/// Where the canary must land with its attribution.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrmTarget {
    /// HubSpot API base URL.
    #[serde(default = "default_hubspot")]
    pub base_url: String,
    /// HubSpot date-based API version.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Name of the secret holding the HubSpot token.
    pub secret: String,
    /// Contact properties that must carry the canary's UTM source, medium and campaign, in that
    /// order.
    #[serde(default = "default_attribution")]
    pub attribution_properties: Vec<String>,
}

/// Where the welcome email's delivery is read.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EspTarget {
    /// Mailgun API base URL (`https://api.mailgun.net` or `https://api.eu.mailgun.net`).
    #[serde(default = "default_mailgun")]
    pub base_url: String,
    /// The sending domain.
    pub domain: String,
    /// Name of the secret holding the Mailgun API key.
    pub secret: String,
}

fn default_hubspot() -> String {
    funnelgate_vendor_hubspot::DEFAULT_BASE_URL.to_string()
}
fn default_mailgun() -> String {
    "https://api.mailgun.net".into()
}
fn default_attribution() -> Vec<String> {
    ["utm_source", "utm_medium", "utm_campaign"]
        .map(String::from)
        .to_vec()
}
fn default_step_timeout() -> u64 {
    300
}
fn default_poll_ms() -> u64 {
    2000
}
fn default_cleanup_timeout() -> u64 {
    30
}

/// Params of `canary.lead_journey`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JourneyParams {
    /// A domain whose mailbox you control: canary leads are `canary+<run-id>@<domain>`.
    pub domain: String,
    /// The automation tool (where the lead is submitted and enrolled).
    pub automation: AutomationTarget,
    /// The CRM the lead must reach with its attribution (skipped when absent).
    #[serde(default)]
    pub crm: Option<CrmTarget>,
    /// The ESP that must deliver the welcome email (skipped when absent).
    #[serde(default)]
    pub esp: Option<EspTarget>,
    /// How long one polled step (CRM, enrolment, email) may wait, seconds.
    #[serde(default = "default_step_timeout")]
    pub step_timeout_secs: u64,
    /// Pause between two polls of a step, milliseconds (backs off to 4× this).
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Time kept for cleanup at the end of the probe's timeout, seconds.
    #[serde(default = "default_cleanup_timeout")]
    pub cleanup_timeout_secs: u64,
}

impl Validate for JourneyParams {
    fn validate(&self) -> Result<(), ProbeError> {
        let d = &self.domain;
        if d.is_empty()
            || !d.contains('.')
            || !d
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(ProbeError::params(format!(
                "`domain`: `{d}` is not a domain name"
            )));
        }
        validate_base_url("automation.base_url", &self.automation.base_url)?;
        check_names(
            "automation.flow",
            std::slice::from_ref(&self.automation.flow),
            false,
        )?;
        if let Some(c) = &self.crm {
            validate_base_url("crm.base_url", &c.base_url)?;
            if c.attribution_properties.len() > 3 {
                return Err(ProbeError::params(
                    "`crm.attribution_properties` names at most the source, medium and campaign properties",
                ));
            }
            check_names(
                "crm.attribution_properties",
                &c.attribution_properties,
                true,
            )?;
        }
        if let Some(e) = &self.esp {
            validate_base_url("esp.base_url", &e.base_url)?;
            check_names("esp.domain", std::slice::from_ref(&e.domain), false)?;
        }
        if self.step_timeout_secs == 0 || self.step_timeout_secs > 3600 {
            return Err(ProbeError::params(
                "`step_timeout_secs` must be between 1 and 3600",
            ));
        }
        if self.poll_interval_ms < 10 || self.poll_interval_ms > 60_000 {
            return Err(ProbeError::params(
                "`poll_interval_ms` must be between 10 and 60000",
            ));
        }
        if self.cleanup_timeout_secs == 0 || self.cleanup_timeout_secs > 600 {
            return Err(ProbeError::params(
                "`cleanup_timeout_secs` must be between 1 and 600",
            ));
        }
        Ok(())
    }
}

/// Register `canary.lead_journey`.
pub fn register(r: &mut ProbeRegistry) {
    register_kind(r, &KIND_DOC, JourneyProbe);
}

/// `canary.lead_journey`.
pub struct JourneyProbe(JourneyParams);

/// A context whose spec names another secret, so each vendor client resolves its own.
fn with_secret(ctx: &ProbeContext, name: &str) -> ProbeContext {
    let mut spec = (*ctx.spec).clone();
    spec.secret = Some(name.to_string());
    ProbeContext {
        spec: Arc::new(spec),
        secrets: ctx.secrets.clone(),
        http: ctx.http.clone(),
    }
}

/// A fresh run id: hex of the current time in microseconds (unique per run, sortable).
fn run_id() -> String {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{us:x}")
}

struct Clients {
    mautic: Mautic,
    crm: Option<(HubSpot, Vec<String>)>,
    esp: Option<Mailgun>,
}

/// What the run created, for cleanup.
#[derive(Default)]
struct Created {
    mautic_id: Option<String>,
    crm_id: Option<String>,
    bounced: bool,
}

struct Run {
    steps: Vec<JourneyStep>,
}

impl Run {
    fn push(
        &mut self,
        name: &str,
        stage: &str,
        status: ProbeStatus,
        started: Instant,
        message: String,
    ) {
        self.steps.push(JourneyStep {
            name: name.into(),
            stage: stage.into(),
            status,
            duration_ms: started.elapsed().as_millis() as u64,
            message,
        });
    }
    fn stopped(&self) -> Option<&JourneyStep> {
        self.steps
            .iter()
            .find(|s| matches!(s.status, ProbeStatus::Fail | ProbeStatus::Error))
    }
    fn skip(&mut self, name: &str, stage: &str) {
        let why = self
            .stopped()
            .map(|s| format!("not reached: step `{}` ({}) did not pass", s.name, s.stage))
            .unwrap_or_else(|| "not configured".into());
        self.steps.push(JourneyStep {
            name: name.into(),
            stage: stage.into(),
            status: ProbeStatus::Skipped,
            duration_ms: 0,
            message: why,
        });
    }
}

/// A step that could not measure is ERROR (unknown), never a guess.
fn err_status(_e: &ProbeError) -> ProbeStatus {
    ProbeStatus::Error
}

/// Poll `check` until it yields `Some`, an error, or `until` passes (then `None`).
async fn poll<T, F, Fut>(
    until: Instant,
    interval: Duration,
    mut check: F,
) -> Result<Option<T>, ProbeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, ProbeError>>,
{
    let mut wait = interval;
    loop {
        if let Some(v) = check().await? {
            return Ok(Some(v));
        }
        let now = Instant::now();
        if now >= until {
            return Ok(None);
        }
        tokio::time::sleep(wait.min(until - now)).await;
        wait = (wait * 2).min(interval * 4);
    }
}

fn contact_id(body: &Value) -> Option<String> {
    body.get("contact")
        .and_then(|c| c.get("id"))
        .and_then(id_of)
}

async fn crm_find(
    h: &HubSpot,
    email: &str,
    props: &[String],
) -> Result<Option<(String, Vec<Option<String>>)>, ProbeError> {
    let mut wanted: Vec<&str> = props.iter().map(String::as_str).collect();
    wanted.push("email");
    let (records, _) = h
        .search_records(
            "contacts",
            vec![vec![filter("email", "EQ", email.to_string())]],
            &wanted,
            "createdate",
            5,
        )
        .await?;
    Ok(records.first().map(|r| {
        (
            r.id.clone(),
            props
                .iter()
                .map(|p| r.prop(p).map(str::to_string))
                .collect(),
        )
    }))
}

impl JourneyProbe {
    async fn sweep(&self, c: &Clients, run: &mut Run) {
        let started = Instant::now();
        let mut found = 0usize;
        let mut failed = Vec::new();
        match c
            .mautic
            .search_contacts(&format!("tag:{TAG}"), 100, "id")
            .await
        {
            Ok(orphans) => {
                for o in orphans {
                    let Some(id) = o.get("id").and_then(id_of) else {
                        continue;
                    };
                    found += 1;
                    if let Err(e) = c.mautic.delete(&format!("/api/contacts/{id}/delete")).await
                        && !is_not_found(&e)
                    {
                        failed.push(format!("mautic contact {id}: {}", e.error));
                    }
                }
            }
            Err(e) => failed.push(format!("cannot list mautic test leads: {e}")),
        }
        if let Some((h, _)) = &c.crm {
            let token = format!("*@{}", self.0.domain);
            match h
                .search_records(
                    "contacts",
                    vec![vec![filter("email", "CONTAINS_TOKEN", token)]],
                    &["email"],
                    "createdate",
                    100,
                )
                .await
            {
                Ok((orphans, _)) => {
                    for o in orphans
                        .iter()
                        .filter(|o| o.prop("email").is_some_and(|e| e.starts_with("canary+")))
                    {
                        found += 1;
                        let path = h.paths().object("contacts", &o.id);
                        if let Err(e) = h.delete(&path, "crm.objects.contacts.write").await
                            && !is_not_found(&e)
                        {
                            failed.push(format!("hubspot contact {}: {}", o.id, e.error));
                        }
                    }
                }
                Err(e) => failed.push(format!("cannot list crm test leads: {}", e.error)),
            }
        }
        let (status, msg) = match (found, failed.is_empty()) {
            (0, true) => (
                ProbeStatus::Pass,
                "no test leads left by earlier runs".to_string(),
            ),
            (n, true) => (
                ProbeStatus::Warn,
                format!(
                    "an earlier run left {n} test leads behind (crashed or its cleanup failed); removed now"
                ),
            ),
            (_, false) => (
                ProbeStatus::Warn,
                format!(
                    "test leads from earlier runs could not all be removed: {}",
                    failed.join("; ")
                ),
            ),
        };
        run.push("sweep", "automation", status, started, msg);
    }

    async fn journey(
        &self,
        c: &Clients,
        run: &mut Run,
        created: &mut Created,
        id: &str,
        until: Instant,
    ) {
        let p = &self.0;
        let email = format!("canary+{id}@{}", p.domain);
        let interval = Duration::from_millis(p.poll_interval_ms);
        let step_deadline =
            |now: Instant| (now + Duration::from_secs(p.step_timeout_secs)).min(until);

        // submit
        let started = Instant::now();
        let body = json!({
            "email": email, "firstname": "Funnelgate", "lastname": "Canary",
            "utm_source": UTM_SOURCE, "utm_medium": UTM_MEDIUM, "utm_campaign": id,
            "tags": TAG,
        });
        match c.mautic.post("/api/contacts/new", &body).await {
            Ok(r) => match contact_id(&r.body) {
                Some(cid) => {
                    created.mautic_id = Some(cid.clone());
                    run.push(
                        "submit",
                        "automation",
                        ProbeStatus::Pass,
                        started,
                        format!("test lead {id} created in mautic (contact {cid})"),
                    );
                }
                None => run.push(
                    "submit",
                    "automation",
                    ProbeStatus::Error,
                    started,
                    "mautic accepted the lead but returned no contact id".into(),
                ),
            },
            Err(e) => run.push(
                "submit",
                "automation",
                ProbeStatus::Fail,
                started,
                format!("the test lead could not be submitted: {}", e.error),
            ),
        }
        if run.stopped().is_some() {
            return;
        }

        // crm_record
        if let Some((h, props)) = &c.crm {
            let started = Instant::now();
            let found = poll(step_deadline(started), interval, || {
                crm_find(h, &email, props)
            })
            .await;
            match found {
                Ok(Some((crm_id, values))) => {
                    created.crm_id = Some(crm_id.clone());
                    let expected = [UTM_SOURCE, UTM_MEDIUM, id];
                    let wrong: Vec<String> = props
                        .iter()
                        .zip(values.iter())
                        .zip(expected.iter())
                        .filter(|((_, v), want)| v.as_deref() != Some(**want))
                        .map(|((p, v), want)| {
                            format!(
                                "`{p}` is {} (expected `{want}`)",
                                v.as_deref()
                                    .map(|v| format!("`{v}`"))
                                    .unwrap_or_else(|| "empty".into())
                            )
                        })
                        .collect();
                    if wrong.is_empty() {
                        run.push(
                            "crm_record",
                            "crm",
                            ProbeStatus::Pass,
                            started,
                            format!(
                                "the lead reached the crm with its attribution in {:.1}s",
                                started.elapsed().as_secs_f64()
                            ),
                        );
                    } else {
                        run.push(
                            "crm_record",
                            "crm",
                            ProbeStatus::Fail,
                            started,
                            format!(
                                "the lead reached the crm without its attribution: {}",
                                wrong.join(", ")
                            ),
                        );
                    }
                }
                Ok(None) => run.push(
                    "crm_record",
                    "crm",
                    ProbeStatus::Fail,
                    started,
                    format!(
                        "the lead never reached the crm within {}s",
                        p.step_timeout_secs
                    ),
                ),
                Err(e) => run.push(
                    "crm_record",
                    "crm",
                    err_status(&e),
                    started,
                    format!("the crm could not be searched: {e}"),
                ),
            }
            if run.stopped().is_some() {
                return;
            }
        } else {
            run.skip("crm_record", "crm");
        }

        // enrolment
        let started = Instant::now();
        let Some(cid) = created.mautic_id.clone() else {
            return;
        };
        let flow = p.automation.flow.clone();
        let path = format!("/api/contacts/{cid}/campaigns");
        let enrolled = poll(step_deadline(started), interval, || {
            let path = path.clone();
            let flow = flow.clone();
            async move {
                let r = c.mautic.get(&path, &[]).await?;
                let camps: Vec<Value> = match r.body.get("campaigns") {
                    Some(Value::Object(m)) => m.values().cloned().collect(),
                    Some(Value::Array(a)) => a.clone(),
                    _ => Vec::new(),
                };
                Ok(camps
                    .iter()
                    .any(|c| {
                        c.get("id").and_then(id_of).as_deref() == Some(flow.as_str())
                            || c.get("name").and_then(Value::as_str) == Some(flow.as_str())
                    })
                    .then_some(()))
            }
        })
        .await;
        match enrolled {
            Ok(Some(())) => run.push(
                "enrolment",
                "automation",
                ProbeStatus::Pass,
                started,
                format!(
                    "enrolled in `{flow}` in {:.1}s",
                    started.elapsed().as_secs_f64()
                ),
            ),
            Ok(None) => run.push(
                "enrolment",
                "automation",
                ProbeStatus::Fail,
                started,
                format!("not enrolled in `{flow}` within {}s", p.step_timeout_secs),
            ),
            Err(e) => run.push(
                "enrolment",
                "automation",
                err_status(&e),
                started,
                format!("enrolment could not be read: {e}"),
            ),
        }
        if run.stopped().is_some() {
            return;
        }

        // email
        if let Some(esp) = &c.esp {
            let started = Instant::now();
            let state = poll(step_deadline(started), interval, || async {
                Ok(match esp.delivery(&email).await? {
                    Delivery::Pending => None,
                    other => Some(other),
                })
            })
            .await;
            match state {
                Ok(Some(Delivery::Delivered)) => run.push(
                    "email",
                    "esp",
                    ProbeStatus::Pass,
                    started,
                    format!(
                        "the welcome email was delivered in {:.1}s",
                        started.elapsed().as_secs_f64()
                    ),
                ),
                Ok(Some(Delivery::Bounced(why))) => {
                    created.bounced = true;
                    run.push(
                        "email",
                        "esp",
                        ProbeStatus::Fail,
                        started,
                        format!("the welcome email bounced: {why}"),
                    );
                }
                Ok(Some(Delivery::Pending)) | Ok(None) => run.push(
                    "email",
                    "esp",
                    ProbeStatus::Fail,
                    started,
                    format!(
                        "no delivery of the welcome email within {}s",
                        p.step_timeout_secs
                    ),
                ),
                Err(e) => run.push(
                    "email",
                    "esp",
                    err_status(&e),
                    started,
                    format!("delivery could not be read: {e}"),
                ),
            }
        } else {
            run.skip("email", "esp");
        }
    }

    async fn cleanup(&self, c: &Clients, created: &Created, email: &str, run: &mut Run) {
        let started = Instant::now();
        let mut failed = Vec::new();
        if let Some(id) = &created.mautic_id
            && let Err(e) = c.mautic.delete(&format!("/api/contacts/{id}/delete")).await
            && !is_not_found(&e)
        {
            failed.push(format!("mautic contact {id}: {}", e.error));
        }
        if let (Some((h, _)), Some(id)) = (&c.crm, &created.crm_id) {
            let path = h.paths().object("contacts", id);
            if let Err(e) = h.delete(&path, "crm.objects.contacts.write").await
                && !is_not_found(&e)
            {
                failed.push(format!("hubspot contact {id}: {}", e.error));
            }
        }
        if created.bounced
            && let Some(esp) = &c.esp
            && let Err(e) = esp.remove_bounce(email).await
        {
            failed.push(format!("mailgun bounce: {e}"));
        }
        if failed.is_empty() {
            run.push(
                "cleanup",
                "automation",
                ProbeStatus::Pass,
                started,
                "every test record removed".into(),
            );
        } else {
            run.push(
                "cleanup",
                "automation",
                ProbeStatus::Warn,
                started,
                format!(
                    "cleanup refused, the next run removes what is left: {}",
                    failed.join("; ")
                ),
            );
        }
    }

    fn clients(&self, ctx: &ProbeContext) -> Result<Clients, ProbeError> {
        let p = &self.0;
        let a = with_secret(ctx, &p.automation.secret);
        let mautic = Mautic::new(&a, &p.automation.base_url, p.automation.auth)?;
        let crm = match &p.crm {
            Some(c) => {
                let cctx = with_secret(ctx, &c.secret);
                let conn = Conn {
                    base_url: c.base_url.clone(),
                    api_version: c.api_version.clone(),
                    search_interval_ms: 0,
                    ..Conn::default()
                };
                Some((
                    HubSpot::new(&cctx, &conn)?,
                    c.attribution_properties.clone(),
                ))
            }
            None => None,
        };
        let esp = match &p.esp {
            Some(e) => Some(Mailgun::new(
                ctx.http.clone(),
                &e.base_url,
                &e.domain,
                ctx.secrets.get(&e.secret)?,
                ctx.timeout(),
            )),
            None => None,
        };
        Ok(Clients { mautic, crm, esp })
    }
}

/// The measurement of a finished run: FAIL/ERROR steps counted, the worst step as verdict.
pub fn summarize(id: &str, steps: Vec<JourneyStep>) -> Measurement {
    let bad = steps
        .iter()
        .filter(|s| matches!(s.status, ProbeStatus::Fail | ProbeStatus::Error))
        .count();
    let worst = steps
        .iter()
        .map(|s| s.status)
        .filter(|s| *s != ProbeStatus::Skipped)
        .max_by_key(|s| match s {
            ProbeStatus::Error => 4,
            ProbeStatus::Fail => 3,
            ProbeStatus::Warn => 2,
            _ => 0,
        })
        .unwrap_or(ProbeStatus::Pass);
    let first_bad = steps
        .iter()
        .find(|s| matches!(s.status, ProbeStatus::Fail | ProbeStatus::Error));
    let message = match first_bad {
        Some(s) => format!(
            "canary run {id}: step `{}` ({} stage) did not pass: {}",
            s.name, s.stage, s.message
        ),
        None => match steps.iter().find(|s| s.status == ProbeStatus::Warn) {
            Some(s) => format!(
                "canary run {id}: journey complete; step `{}`: {}",
                s.name, s.message
            ),
            None => format!("canary run {id}: journey complete and cleaned up"),
        },
    };
    let mut m = Measurement::value(bad as f64, "count", message).with_evidence("run_id", id);
    m.verdict = Some(worst);
    m.steps = steps;
    m
}

#[async_trait]
impl Probe for JourneyProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let clients = self.clients(ctx)?;
        let cleanup_budget = Duration::from_secs(self.0.cleanup_timeout_secs);
        // The steps end this early so cleanup fits inside the probe's timeout.
        let until = Instant::now()
            + ctx
                .timeout()
                .saturating_sub(cleanup_budget)
                .max(Duration::from_millis(100));
        let probe = JourneyProbe(self.0.clone());
        let id = run_id();
        // Its own task: if the runner stops waiting (timeout), the journey still cleans up.
        let task = tokio::spawn(async move {
            let mut run = Run { steps: Vec::new() };
            let mut created = Created::default();
            probe.sweep(&clients, &mut run).await;
            let email = format!("canary+{id}@{}", probe.0.domain);
            let body = tokio::time::timeout_at(
                tokio::time::Instant::from_std(until),
                probe.journey(&clients, &mut run, &mut created, &id, until),
            )
            .await;
            if body.is_err() {
                run.steps.push(JourneyStep {
                    name: "deadline".into(),
                    stage: "automation".into(),
                    status: ProbeStatus::Error,
                    duration_ms: 0,
                    message: "the probe's timeout ended the journey before its last step".into(),
                });
            }
            for (name, stage) in [
                ("crm_record", "crm"),
                ("enrolment", "automation"),
                ("email", "esp"),
            ] {
                if !run.steps.iter().any(|s| s.name == name) {
                    run.skip(name, stage);
                }
            }
            let _ = tokio::time::timeout(
                cleanup_budget,
                probe.cleanup(&clients, &created, &email, &mut run),
            )
            .await;
            if !run.steps.iter().any(|s| s.name == "cleanup") {
                run.steps.push(JourneyStep {
                    name: "cleanup".into(),
                    stage: "automation".into(),
                    status: ProbeStatus::Warn,
                    duration_ms: cleanup_budget.as_millis() as u64,
                    message: "cleanup did not finish in time; the next run removes what is left"
                        .into(),
                });
            }
            summarize(&id, run.steps)
        });
        task.await
            .map_err(|e| ProbeError::transient(format!("canary journey task failed: {e}")))
    }
}
