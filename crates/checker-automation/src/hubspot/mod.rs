//! HubSpot automation kinds (`hubspot.*` in the automation checker): workflows (automation
//! flows), marketing forms and emails, contact scoring and subscription status, through the
//! shared `funnelgate-vendor-hubspot` client and HubSpot's date-based API versions (`2026-09` by
//! default, param `api_version`; paths such as `/automation/flows/2026-09`).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeRegistry};
use funnelgate_core::Measurement;
use funnelgate_vendor_hubspot::{ApiVersion, Conn, Credential, HubSpot, Paths, VENDOR, filter};
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::evaluate::{self, Budget, EmailRef, Flow, FormField, Scoring};
use crate::http::{is_not_found, paging_cut_short, validate_base_url, vanished};
use crate::kinds::{KindDoc, Omission, Validate, register_kind};
use crate::measure::Measure;
use crate::params::{check_email, check_names, check_non_negative, check_window_days, defaults};

/// The HubSpot automation kinds.
pub const KINDS: [KindDoc; 6] = [
    KindDoc {
        kind: "hubspot.auth_and_quota",
        vendor: VENDOR,
        measure: Some(Measure::AuthAndQuota),
        permissions: "`crm.objects.contacts.read`",
        calls: "`GET /crm/objects/{version}/contacts?limit=1`; the daily budget from `X-HubSpot-RateLimit-Daily`/`-Remaining` (private apps, service keys) or `GET /account-info/{version}/api-usage/daily/private-apps` (OAuth)",
        notes: "The same credential check as the CRM checker's, for the token the automation \
                checker holds. 401/403 are FAIL; a spent daily budget is 100 %. Budget resets at \
                midnight in the account's time zone.",
    },
    KindDoc {
        kind: "hubspot.lead_nurture_active",
        vendor: VENDOR,
        measure: Some(Measure::LeadNurtureActive),
        permissions: "`automation`",
        calls: "`GET /automation/flows/{version}` (paged by `after`)",
        notes: "A flow is on when `isEnabled` is true. Required flows are named by id or exact \
                name. A reply promising another page (`paging.next.after`) without results is \
                paging cut short.",
    },
    KindDoc {
        kind: "hubspot.email_assets_valid",
        vendor: VENDOR,
        measure: Some(Measure::EmailAssetsValid),
        permissions: "`automation`, `content`",
        calls: "`GET /automation/flows/{version}`; per enabled flow `GET /automation/flows/{version}/{flowId}`; per email `GET /marketing/emails/{version}/{emailId}`",
        notes: "Send-email actions (`actionTypeId` `0-4`, email id in `fields.content_id`) of \
                enabled flows must point at an email that exists, is not archived and whose \
                `state` is published (`PUBLISHED`, or `AUTOMATED*` for automated emails). A flow \
                listed then gone is an ERROR.",
    },
    KindDoc {
        kind: "hubspot.form_mapping",
        vendor: VENDOR,
        measure: Some(Measure::FormMapping),
        permissions: "`forms`",
        calls: "`GET /marketing/forms/{version}/{formId}`",
        notes: "Form fields are contact properties by name (`fieldGroups[].fields[].name`); \
                hidden fields need `hidden = true`.",
    },
    KindDoc {
        kind: "hubspot.scoring_configured",
        vendor: VENDOR,
        measure: Some(Measure::ScoringConfigured),
        permissions: "`crm.objects.contacts.read`, `crm.schemas.contacts.read`",
        calls: "`GET /crm/properties/{version}/contacts`; two `POST /crm/objects/{version}/contacts/search` counts",
        notes: "Configured when the score property (default `hubspotscore`) exists and is not \
                archived. Crossing: contacts created in the window whose score reached the \
                threshold (the search API has no score history). Canary contacts (email domain \
                of the canary) are not excluded here: the canary deletes itself.",
    },
    KindDoc {
        kind: "hubspot.unsubscribe_roundtrip",
        vendor: VENDOR,
        measure: Some(Measure::UnsubscribeRoundtrip),
        permissions: "`communication_preferences.read`",
        calls: "`GET /communication-preferences/v3/status/email/{email}` (no date-based version published yet)",
        notes: "Blocked when no subscription type has status `SUBSCRIBED` for the test identity. \
                A 404 (no such recipient) is ERROR.",
    },
];

/// Measures HubSpot's API cannot answer.
pub const OMISSIONS: [Omission; 2] = [
    Omission {
        vendor: VENDOR,
        measure: Measure::FlowErrors,
        reason: "the flow performance endpoint's response fields are not published (PROBES.md marks \
                 them unverified), and action errors are not exposed per flow",
    },
    Omission {
        vendor: VENDOR,
        measure: Measure::SegmentFreshness,
        reason: "active lists are recomputed by HubSpot itself, continuously; there is no cron to \
                 stall and no rebuild time to read",
    },
];

macro_rules! hubspot_params {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// HubSpot API base URL. Change it only for a proxy or a test server.
            #[serde(default = "default_base_url")]
            pub base_url: String,
            /// HubSpot date-based API version (`YYYY-MM`, a March or September release from
            /// 2026-03 on).
            #[serde(default)]
            pub api_version: ApiVersion,
            /// Which credential the secret holds: `private_app`, `service_key` or `oauth`.
            #[serde(default)]
            pub credential: Credential,
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $name {
            fn conn(&self) -> Conn {
                Conn {
                    base_url: self.base_url.clone(),
                    api_version: self.api_version.clone(),
                    credential: self.credential,
                    ..Conn::default()
                }
            }
            fn validate_conn(&self) -> Result<(), ProbeError> {
                validate_base_url("base_url", &self.base_url)?;
                self.conn().validate()
            }
        }
    };
}

fn default_base_url() -> String {
    funnelgate_vendor_hubspot::DEFAULT_BASE_URL.to_string()
}

fn default_score_property() -> String {
    "hubspotscore".into()
}

hubspot_params! {
    /// Params of `hubspot.auth_and_quota`.
    AuthParams {}
}
impl Validate for AuthParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()
    }
}

hubspot_params! {
    /// Params of `hubspot.lead_nurture_active`.
    NurtureParams {
        /// Flows (workflows) that must be enabled, by id or exact name.
        required: Vec<String>,
    }
}
impl Validate for NurtureParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_names("required", &self.required, false)
    }
}

hubspot_params! {
    /// Params of `hubspot.email_assets_valid`.
    EmailAssetsParams {}
}
impl Validate for EmailAssetsParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()
    }
}

hubspot_params! {
    /// Params of `hubspot.form_mapping`.
    FormParams {
        /// The form's id (a GUID).
        form_id: String,
        /// Visible fields the form must have (contact property names), e.g. `email`.
        #[serde(default)]
        expected_fields: Vec<String>,
        /// Fields that must be hidden fields on the form (the UTM set by default).
        #[serde(default = "defaults::utm_fields")]
        hidden_fields: Vec<String>,
    }
}
impl Validate for FormParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_names("form_id", std::slice::from_ref(&self.form_id), false)?;
        if self.form_id.contains('/') {
            return Err(ProbeError::params("`form_id` must not contain `/`"));
        }
        check_names("expected_fields", &self.expected_fields, true)?;
        check_names("hidden_fields", &self.hidden_fields, true)?;
        if self.expected_fields.is_empty() && self.hidden_fields.is_empty() {
            return Err(ProbeError::params(
                "`expected_fields` and `hidden_fields` are both empty: nothing to check",
            ));
        }
        Ok(())
    }
}

hubspot_params! {
    /// Params of `hubspot.scoring_configured`.
    ScoringParams {
        /// The contact score property.
        #[serde(default = "default_score_property")]
        score_property: String,
        /// The score a contact needs to count as an MQL.
        #[serde(default = "defaults::mql_threshold")]
        mql_threshold: f64,
        /// Look-back window in days.
        #[serde(default = "defaults::window_days_14")]
        window_days: u32,
        /// Fewer new contacts than this in the window is NO_DATA.
        #[serde(default = "defaults::min_new_leads")]
        min_new_leads: u64,
    }
}
impl Validate for ScoringParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        if !self
            .score_property
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || self.score_property.is_empty()
        {
            return Err(ProbeError::params(
                "`score_property` must be a property name (letters, digits, `_`)",
            ));
        }
        check_non_negative("mql_threshold", self.mql_threshold)?;
        check_window_days("window_days", self.window_days)
    }
}

hubspot_params! {
    /// Params of `hubspot.unsubscribe_roundtrip`.
    UnsubscribeParams {
        /// Email of the test identity that was unsubscribed through a real email's link.
        email: String,
    }
}
impl Validate for UnsubscribeParams {
    fn validate(&self) -> Result<(), ProbeError> {
        self.validate_conn()?;
        check_email("email", &self.email)
    }
}

/// Register the HubSpot automation kinds.
pub fn register(r: &mut ProbeRegistry) {
    register_kind(r, &KINDS[0], AuthProbe);
    register_kind(r, &KINDS[1], NurtureProbe);
    register_kind(r, &KINDS[2], EmailAssetsProbe);
    register_kind(r, &KINDS[3], FormProbe);
    register_kind(r, &KINDS[4], ScoringProbe);
    register_kind(r, &KINDS[5], UnsubscribeProbe);
}

/// `hubspot.auth_and_quota`.
pub struct AuthProbe(AuthParams);
/// `hubspot.lead_nurture_active`.
pub struct NurtureProbe(NurtureParams);
/// `hubspot.email_assets_valid`.
pub struct EmailAssetsProbe(EmailAssetsParams);
/// `hubspot.form_mapping`.
pub struct FormProbe(FormParams);
/// `hubspot.scoring_configured`.
pub struct ScoringProbe(ScoringParams);
/// `hubspot.unsubscribe_roundtrip`.
pub struct UnsubscribeProbe(UnsubscribeParams);

const BUDGET_RESETS: &str = "at midnight in the account's time zone";

#[async_trait]
impl Probe for AuthProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let h = HubSpot::new(ctx, &self.0.conn())?;
        match h.ping().await {
            Ok(_) => {
                if self.0.credential == Credential::Oauth {
                    h.read_daily_usage().await;
                }
                let budget = h.budget().map(|b| Budget {
                    used: b.max.saturating_sub(b.remaining),
                    limit: b.max,
                    resets: BUDGET_RESETS.into(),
                });
                Ok(evaluate::auth_ok(VENDOR, budget.as_ref()))
            }
            Err(e) if e.quota_exhausted => Ok(evaluate::quota_exhausted(VENDOR, BUDGET_RESETS)),
            Err(e) if e.is_auth() => Ok(evaluate::auth_failed(&e.error.message)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Every flow, following `paging.next.after`.
async fn flows(h: &HubSpot) -> Result<Vec<Value>, ProbeError> {
    let path = h.paths().flows();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let mut q = vec![("limit", "100".to_string())];
        if let Some(a) = &after {
            q.push(("after", a.clone()));
        }
        let r: funnelgate_checker_sdk::vendor_http::Reply<Value> =
            h.get(&path, &q, "automation").await?;
        let page = r.body["results"].as_array().cloned().ok_or_else(|| {
            ProbeError::permanent(format!("{VENDOR}: GET {path}: reply has no `results` list"))
        })?;
        let n = page.len();
        out.extend(page);
        after = r.body["paging"]["next"]["after"]
            .as_str()
            .map(str::to_string);
        match &after {
            None => return Ok(out),
            Some(_) if n == 0 => {
                return Err(paging_cut_short(
                    VENDOR,
                    &format!("GET {path}"),
                    out.len() as u64,
                    None,
                ));
            }
            Some(_) => {}
        }
    }
    Err(paging_cut_short(
        VENDOR,
        &format!("GET {path}"),
        out.len() as u64,
        None,
    ))
}

fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn to_flow(v: &Value) -> Option<Flow> {
    Some(Flow {
        id: id_of(&v["id"])?,
        name: v["name"].as_str().unwrap_or_default().to_string(),
        enabled: v["isEnabled"].as_bool().unwrap_or(false),
    })
}

#[async_trait]
impl Probe for NurtureProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let h = HubSpot::new(ctx, &self.0.conn())?;
        let all: Vec<Flow> = flows(&h).await?.iter().filter_map(to_flow).collect();
        Ok(evaluate::nurture_active(VENDOR, &all, &self.0.required))
    }
}

/// Why a marketing email cannot send, `None` when it can.
fn email_problem(e: &Value) -> Option<String> {
    if e["archived"].as_bool() == Some(true) {
        return Some("archived (deleted)".into());
    }
    let state = e["state"].as_str().unwrap_or("");
    let published = e["isPublished"].as_bool() == Some(true)
        || state == "PUBLISHED"
        || (state.starts_with("AUTOMATED") && !state.contains("DRAFT"));
    (!published).then(|| {
        format!(
            "not published (state `{}`)",
            if state.is_empty() { "unknown" } else { state }
        )
    })
}

#[async_trait]
impl Probe for EmailAssetsProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let h = HubSpot::new(ctx, &self.0.conn())?;
        let listed = flows(&h).await?;
        let mut checked: HashMap<String, Option<String>> = HashMap::new();
        let mut refs = Vec::new();
        for f in listed.iter().filter_map(to_flow).filter(|f| f.enabled) {
            let path = h.paths().flow(&f.id);
            let detail: Value = match h.get::<Value>(&path, &[], "automation").await {
                Ok(r) => r.body,
                Err(e) if is_not_found(&e) => {
                    return Err(vanished(VENDOR, &format!("flow {} (`{}`)", f.id, f.name)));
                }
                Err(e) => return Err(e.into()),
            };
            for a in detail["actions"].as_array().into_iter().flatten() {
                if a["actionTypeId"].as_str() != Some("0-4") {
                    continue;
                }
                let Some(email) = id_of(&a["fields"]["content_id"]) else {
                    refs.push(EmailRef {
                        flow: f.name.clone(),
                        email: format!("in action {}", a["actionId"]),
                        problem: Some("not set (the send-email action has no email)".into()),
                    });
                    continue;
                };
                if !checked.contains_key(&email) {
                    let epath = h.paths().marketing_email(&email);
                    let problem = match h.get::<Value>(&epath, &[], "content").await {
                        Ok(r) => email_problem(&r.body),
                        Err(e) if is_not_found(&e) => Some("deleted".into()),
                        Err(e) => return Err(e.into()),
                    };
                    checked.insert(email.clone(), problem);
                }
                refs.push(EmailRef {
                    flow: f.name.clone(),
                    email: email.clone(),
                    problem: checked.get(&email).cloned().flatten(),
                });
            }
        }
        Ok(evaluate::email_assets(VENDOR, &refs))
    }
}

#[async_trait]
impl Probe for FormProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let h = HubSpot::new(ctx, &p.conn())?;
        let path = h.paths().form(&p.form_id);
        let form: Value = match h.get::<Value>(&path, &[], "forms").await {
            Ok(r) => r.body,
            Err(e) if is_not_found(&e) => {
                return Err(ProbeError::permanent(format!(
                    "{VENDOR}: form {} does not exist (deleted, or the wrong id in `form_id`)",
                    p.form_id
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let groups = form["fieldGroups"].as_array().ok_or_else(|| {
            ProbeError::permanent(format!("{VENDOR}: GET {path}: reply has no `fieldGroups`"))
        })?;
        let fields: Vec<FormField> = groups
            .iter()
            .flat_map(|g| g["fields"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| {
                let name = f["name"].as_str()?.to_string();
                Some(FormField {
                    hidden: f["hidden"].as_bool().unwrap_or(false),
                    mapped_to: Some(name.clone()),
                    name,
                })
            })
            .collect();
        let label = format!(
            "{} (`{}`)",
            p.form_id,
            form["name"].as_str().unwrap_or("unnamed")
        );
        Ok(evaluate::form_mapping(
            VENDOR,
            &label,
            &fields,
            &p.expected_fields,
            &p.hidden_fields,
            false,
        ))
    }
}

#[async_trait]
impl Probe for ScoringProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let h = HubSpot::new(ctx, &p.conn())?;
        let window = Duration::from_secs(u64::from(p.window_days) * 86_400);
        let props = h.properties("contacts").await?;
        let exists = props
            .iter()
            .any(|q| q.name == p.score_property && !q.archived);
        let mut s = Scoring {
            not_configured: (!exists)
                .then(|| format!("the contact property `{}` does not exist", p.score_property)),
            created: 0,
            crossed: 0,
        };
        if exists {
            let since = crate::time::ago(Timestamp::now(), window).as_millisecond();
            let created = filter("createdate", "GTE", since.to_string());
            s.created = h
                .search_total("contacts", vec![vec![created.clone()]])
                .await?;
            let scored = filter(&p.score_property, "GTE", p.mql_threshold.to_string());
            s.crossed = h
                .search_total("contacts", vec![vec![created, scored]])
                .await?;
        }
        Ok(evaluate::scoring(
            VENDOR,
            &s,
            p.mql_threshold,
            p.min_new_leads,
            window,
        ))
    }
}

#[async_trait]
impl Probe for UnsubscribeProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let h = HubSpot::new(ctx, &p.conn())?;
        let path = Paths::legacy(&format!(
            "/communication-preferences/v3/status/email/{}",
            p.email
        ));
        let body: Value = match h
            .get::<Value>(&path, &[], "communication_preferences.read")
            .await
        {
            Ok(r) => r.body,
            Err(e) if is_not_found(&e) => {
                return Err(ProbeError::permanent(format!(
                    "{VENDOR}: the unsubscribe test identity is not a known recipient: create it, unsubscribe it once through a real email's link, then this probe proves the opt-out sticks"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let statuses = body["subscriptionStatuses"].as_array().ok_or_else(|| {
            ProbeError::permanent(format!(
                "{VENDOR}: GET {path}: reply has no `subscriptionStatuses`"
            ))
        })?;
        let subscribed: Vec<String> = statuses
            .iter()
            .filter(|s| s["status"].as_str() == Some("SUBSCRIBED"))
            .map(|s| s["name"].as_str().unwrap_or("?").to_string())
            .collect();
        Ok(if subscribed.is_empty() {
            evaluate::unsubscribe(VENDOR, true, "no subscription type is SUBSCRIBED")
        } else {
            evaluate::unsubscribe(
                VENDOR,
                false,
                &format!("still SUBSCRIBED to {}", subscribed.join(", ")),
            )
        })
    }
}
