//! `[notifications]`: where decision changes are announced (Slack, Microsoft Teams, email over
//! SMTP with STARTTLS, a signed CloudEvents webhook), for which funnels and which changes, and
//! how failing sinks are retried. Secrets (webhook URLs, the SMTP password, the HMAC key) are
//! secret names read from `FUNNELGATE_SECRET_<name>`, never values in the file.

use std::collections::HashSet;
use std::path::PathBuf;

use funnelgate_core::{FunnelPolicy, HumanDuration};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigIssue, SECRET_ENV_PREFIX, is_secret_name};

fn default_retry_initial() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_retry_max() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_max_attempts() -> u32 {
    20
}
fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_on() -> Vec<Filter> {
    vec![Filter::StateChange]
}
fn default_smtp_port() -> u16 {
    587
}

/// `[notifications]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Delay before the first retry of a failed delivery (default `1s`); it doubles at every
    /// further failure up to `retry_max`.
    #[serde(default = "default_retry_initial")]
    pub retry_initial: HumanDuration,
    /// Longest delay between two attempts (default `5m`).
    #[serde(default = "default_retry_max")]
    pub retry_max: HumanDuration,
    /// Attempts before a notification is given up and marked `failed` (default 20).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Time limit of one delivery attempt (default `10s`).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// The sinks (`[[notifications.sinks]]`).
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            max_attempts: default_max_attempts(),
            timeout: default_timeout(),
            sinks: Vec::new(),
        }
    }
}

/// What kind of receiver a sink is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// A Slack incoming webhook (`text` + Block Kit `blocks`).
    Slack,
    /// A Microsoft Teams incoming webhook (a message with an Adaptive Card attachment).
    Teams,
    /// Any HTTPS endpoint: a CloudEvents 1.0 JSON body (structured mode), HMAC-SHA256 signed.
    Webhook,
    /// Email over SMTP, STARTTLS required.
    Email,
}

impl SinkKind {
    /// Config form.
    pub const fn as_str(self) -> &'static str {
        match self {
            SinkKind::Slack => "slack",
            SinkKind::Teams => "teams",
            SinkKind::Webhook => "webhook",
            SinkKind::Email => "email",
        }
    }
}

/// Which recorded changes a sink hears about (any listed filter matching is enough).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// The gate state changed (OPEN, HOLD, CLOSED).
    StateChange,
    /// The gate closed (entered CLOSED from another state).
    Closed,
    /// The blocking stage changed (appeared, moved, or cleared).
    BlockingStage,
    /// An operator set or cleared an override (or one expired).
    Override,
}

/// `[[notifications.sinks]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Unique name (metrics label, dashboard, outbox rows): `[a-z0-9][a-z0-9-_]*`.
    pub name: String,
    /// `slack`, `teams`, `webhook` or `email`.
    pub kind: SinkKind,
    /// Funnels this sink hears about; empty (default): every funnel.
    #[serde(default)]
    pub funnels: Vec<String>,
    /// Which changes: any of `state_change` (default), `closed`, `blocking_stage`, `override`.
    #[serde(default = "default_on")]
    pub on: Vec<Filter>,
    /// slack, teams, webhook: the secret name of the webhook URL (`FUNNELGATE_SECRET_<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret: Option<String>,
    /// webhook: the secret name of the HMAC-SHA256 signing key (required for webhooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<String>,
    /// email: the SMTP server and the message's addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpConfig>,
}

/// `[notifications.sinks.smtp]`: SMTP submission with STARTTLS (required: a server that does
/// not offer STARTTLS is a failed delivery, the mail is never sent in clear).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name (also the name its certificate must carry).
    pub host: String,
    /// Port (default 587, submission).
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// User name for SMTP AUTH (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Secret name of the SMTP password (with `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
    /// Sender address (`gate@example.com` or `Funnel gate <gate@example.com>`).
    pub from: String,
    /// Recipients (at least one).
    pub to: Vec<String>,
    /// PEM file of an extra root certificate to trust (a private CA), relative to the config
    /// file's directory; the public web PKI roots are always trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

fn secret_issue(out: &mut Vec<ConfigIssue>, key: String, value: &Option<String>, required: bool) {
    match value {
        Some(v) if !is_secret_name(v) => out.push(ConfigIssue::new(
            key,
            format!(
                "`{v}` must be a secret name of [A-Za-z0-9_] (the value is read from {SECRET_ENV_PREFIX}<name>), not the secret itself"
            ),
        )),
        None if required => out.push(ConfigIssue::new(
            key,
            "is required for this kind of sink (a secret name)",
        )),
        _ => {}
    }
}

impl NotificationsConfig {
    /// Every problem, each with its key path.
    pub fn issues(&self, funnels: &[FunnelPolicy]) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        if self.retry_initial.get().is_zero() {
            out.push(ConfigIssue::new(
                "notifications.retry_initial",
                "must be greater than 0s",
            ));
        }
        if self.retry_max.get() < self.retry_initial.get() {
            out.push(ConfigIssue::new(
                "notifications.retry_max",
                format!(
                    "`{}` is shorter than retry_initial `{}`",
                    self.retry_max, self.retry_initial
                ),
            ));
        }
        if self.max_attempts == 0 {
            out.push(ConfigIssue::new(
                "notifications.max_attempts",
                "must be at least 1",
            ));
        }
        if self.timeout.get().is_zero() {
            out.push(ConfigIssue::new(
                "notifications.timeout",
                "must be greater than 0s",
            ));
        }
        let known: HashSet<&str> = funnels.iter().map(|f| f.name.as_str()).collect();
        let mut names = HashSet::new();
        for (i, s) in self.sinks.iter().enumerate() {
            let key = format!("notifications.sinks[{i}]");
            let valid_name = !s.name.is_empty()
                && s.name.len() <= 63
                && s.name
                    .starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && s.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !valid_name {
                out.push(ConfigIssue::new(
                    format!("{key}.name"),
                    format!(
                        "`{}` is not a sink name (want [a-z0-9][a-z0-9_-]{{0,62}})",
                        s.name
                    ),
                ));
            } else if !names.insert(s.name.as_str()) {
                out.push(ConfigIssue::new(
                    format!("{key}.name"),
                    format!("duplicate sink `{}`", s.name),
                ));
            }
            for (j, f) in s.funnels.iter().enumerate() {
                if !known.contains(f.as_str()) {
                    out.push(ConfigIssue::new(
                        format!("{key}.funnels[{j}]"),
                        format!("`{f}` is not a configured funnel"),
                    ));
                }
            }
            if s.on.is_empty() {
                out.push(ConfigIssue::new(
                    format!("{key}.on"),
                    "must list at least one of state_change, closed, blocking_stage, override",
                ));
            }
            let web = matches!(
                s.kind,
                SinkKind::Slack | SinkKind::Teams | SinkKind::Webhook
            );
            secret_issue(&mut out, format!("{key}.url_secret"), &s.url_secret, web);
            secret_issue(
                &mut out,
                format!("{key}.hmac_secret"),
                &s.hmac_secret,
                s.kind == SinkKind::Webhook,
            );
            if !web && s.url_secret.is_some() {
                out.push(ConfigIssue::new(
                    format!("{key}.url_secret"),
                    "only slack, teams and webhook sinks have a URL",
                ));
            }
            if s.kind != SinkKind::Webhook && s.hmac_secret.is_some() {
                out.push(ConfigIssue::new(
                    format!("{key}.hmac_secret"),
                    "only webhook sinks are signed",
                ));
            }
            match (&s.smtp, s.kind) {
                (None, SinkKind::Email) => out.push(ConfigIssue::new(
                    format!("{key}.smtp"),
                    "is required for an email sink",
                )),
                (Some(_), k) if k != SinkKind::Email => out.push(ConfigIssue::new(
                    format!("{key}.smtp"),
                    "only email sinks have an smtp section",
                )),
                (Some(smtp), _) => {
                    let key = format!("{key}.smtp");
                    if smtp.host.trim().is_empty() {
                        out.push(ConfigIssue::new(format!("{key}.host"), "must not be empty"));
                    }
                    if smtp.port == 0 {
                        out.push(ConfigIssue::new(format!("{key}.port"), "must not be 0"));
                    }
                    secret_issue(
                        &mut out,
                        format!("{key}.password_secret"),
                        &smtp.password_secret,
                        smtp.username.is_some(),
                    );
                    if smtp.password_secret.is_some() && smtp.username.is_none() {
                        out.push(ConfigIssue::new(
                            format!("{key}.username"),
                            "is required with password_secret",
                        ));
                    }
                    if let Err(e) = smtp.from.parse::<lettre::message::Mailbox>() {
                        out.push(ConfigIssue::new(
                            format!("{key}.from"),
                            format!("`{}` is not an address: {e}", smtp.from),
                        ));
                    }
                    if smtp.to.is_empty() {
                        out.push(ConfigIssue::new(
                            format!("{key}.to"),
                            "must list at least one recipient",
                        ));
                    }
                    for (j, to) in smtp.to.iter().enumerate() {
                        if let Err(e) = to.parse::<lettre::message::Mailbox>() {
                            out.push(ConfigIssue::new(
                                format!("{key}.to[{j}]"),
                                format!("`{to}` is not an address: {e}"),
                            ));
                        }
                    }
                }
                (None, _) => {}
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NotificationsConfig {
        toml_from(text)
    }

    fn toml_from(text: &str) -> NotificationsConfig {
        let c = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap();
        c.try_deserialize().unwrap()
    }

    #[test]
    fn a_valid_config_has_no_issues_and_defaults_apply() {
        let c = parse(
            r#"
[[sinks]]
name = "ops-slack"
kind = "slack"
url_secret = "SLACK_URL"
on = ["closed", "override"]

[[sinks]]
name = "hook"
kind = "webhook"
url_secret = "HOOK_URL"
hmac_secret = "HOOK_KEY"

[[sinks]]
name = "mail"
kind = "email"
[sinks.smtp]
host = "smtp.example.com"
username = "gate"
password_secret = "SMTP_PASSWORD"
from = "Funnel gate <gate@example.com>"
to = ["ops@example.com"]
"#,
        );
        assert_eq!(c.issues(&[]), Vec::new());
        assert_eq!(c.sinks[1].on, vec![Filter::StateChange]);
        assert_eq!(c.sinks[2].smtp.as_ref().unwrap().port, 587);
        assert_eq!(c.max_attempts, 20);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let c = parse(
            r#"
retry_initial = "0s"
[[sinks]]
name = "Bad Name"
kind = "webhook"
url_secret = "https://hooks.example.com/x"
funnels = ["nope"]
on = []

[[sinks]]
name = "m"
kind = "email"
url_secret = "X"
[sinks.smtp]
host = ""
username = "u"
from = "not an address"
to = []
"#,
        );
        let keys: Vec<String> = c.issues(&[]).into_iter().map(|i| i.key).collect();
        for k in [
            "notifications.retry_initial",
            "notifications.sinks[0].name",
            "notifications.sinks[0].funnels[0]",
            "notifications.sinks[0].on",
            "notifications.sinks[0].url_secret",
            "notifications.sinks[0].hmac_secret",
            "notifications.sinks[1].url_secret",
            "notifications.sinks[1].smtp.host",
            "notifications.sinks[1].smtp.password_secret",
            "notifications.sinks[1].smtp.from",
            "notifications.sinks[1].smtp.to",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }
}
