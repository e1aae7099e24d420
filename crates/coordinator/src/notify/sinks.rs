//! Delivering one change to one sink: HTTP POSTs for Slack, Teams and the signed CloudEvents
//! webhook (reqwest over rustls), SMTP with STARTTLS required for email (lettre over rustls).
//! Secrets are resolved once at start; no error message or log line ever contains them (HTTP
//! errors are stripped of their URL).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncTransport, Tokio1Executor};

use super::config::{Filter, SinkConfig, SinkKind};
use super::event::{Change, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};
use crate::config::{ConfigIssue, SECRET_ENV_PREFIX};

/// A secret value that never prints.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

enum Target {
    Slack {
        url: Secret,
    },
    Teams {
        url: Secret,
    },
    Webhook {
        url: Secret,
        key: Secret,
    },
    Email {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
        to: Vec<Mailbox>,
    },
}

/// A configured sink, ready to deliver.
pub struct Sink {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: SinkKind,
    /// Funnels it hears about (empty: all).
    pub funnels: Vec<String>,
    /// Which changes.
    pub on: Vec<Filter>,
    target: Target,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("funnels", &self.funnels)
            .field("on", &self.on)
            .finish_non_exhaustive()
    }
}

fn secret(
    env: &HashMap<String, String>,
    key: String,
    name: Option<&String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<Secret> {
    let name = name?;
    let var = format!("{SECRET_ENV_PREFIX}{name}");
    match env.get(&var).map(|v| v.trim()) {
        Some(v) if !v.is_empty() => Some(Secret(v.to_string())),
        _ => {
            issues.push(ConfigIssue::new(
                key,
                format!("secret `{name}` is not set: set the environment variable {var}"),
            ));
            None
        }
    }
}

fn web_url(url: &Secret, key: String, issues: &mut Vec<ConfigIssue>) -> bool {
    match reqwest::Url::parse(&url.0) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => true,
        // Never echo the value: a webhook URL is a credential.
        _ => {
            issues.push(ConfigIssue::new(
                key,
                "the secret's value is not an http(s) URL with a host",
            ));
            false
        }
    }
}

impl Sink {
    /// Resolve a sink's secrets from `env` and build its transport. `base` is the config
    /// file's directory (for `smtp.ca_file`). Every problem is a config issue.
    pub fn from_config(
        i: usize,
        cfg: &SinkConfig,
        env: &HashMap<String, String>,
        base: &Path,
    ) -> Result<Sink, Vec<ConfigIssue>> {
        let key = format!("notifications.sinks[{i}]");
        let mut issues = Vec::new();
        let url = secret(
            env,
            format!("{key}.url_secret"),
            cfg.url_secret.as_ref(),
            &mut issues,
        );
        let url_ok = url
            .as_ref()
            .is_some_and(|u| web_url(u, format!("{key}.url_secret"), &mut issues));
        let target = match cfg.kind {
            SinkKind::Slack => url.filter(|_| url_ok).map(|url| Target::Slack { url }),
            SinkKind::Teams => url.filter(|_| url_ok).map(|url| Target::Teams { url }),
            SinkKind::Webhook => {
                let key_secret = secret(
                    env,
                    format!("{key}.hmac_secret"),
                    cfg.hmac_secret.as_ref(),
                    &mut issues,
                );
                match (url.filter(|_| url_ok), key_secret) {
                    (Some(url), Some(key)) => Some(Target::Webhook { url, key }),
                    _ => None,
                }
            }
            SinkKind::Email => cfg.smtp.as_ref().and_then(|smtp| {
                let k = format!("{key}.smtp");
                let mut tls = TlsParameters::builder(smtp.host.clone());
                if let Some(ca) = &smtp.ca_file {
                    let path = base.join(ca);
                    match std::fs::read(&path)
                        .map_err(|e| e.to_string())
                        .and_then(|pem| Certificate::from_pem(&pem).map_err(|e| e.to_string()))
                    {
                        Ok(cert) => tls = tls.add_root_certificate(cert),
                        Err(e) => issues.push(ConfigIssue::new(
                            format!("{k}.ca_file"),
                            format!(
                                "cannot read a PEM certificate from `{}`: {e}",
                                path.display()
                            ),
                        )),
                    }
                }
                let tls = match tls.build_rustls() {
                    Ok(t) => t,
                    Err(e) => {
                        issues.push(ConfigIssue::new(
                            format!("{k}.host"),
                            format!("cannot set up TLS for `{}`: {e}", smtp.host),
                        ));
                        return None;
                    }
                };
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
                        .port(smtp.port)
                        // STARTTLS is required: no mail is ever sent in clear.
                        .tls(Tls::Required(tls));
                if let Some(user) = &smtp.username {
                    let password = secret(
                        env,
                        format!("{k}.password_secret"),
                        smtp.password_secret.as_ref(),
                        &mut issues,
                    )?;
                    builder = builder.credentials(Credentials::new(user.clone(), password.0));
                }
                let from = smtp.from.parse::<Mailbox>().ok()?;
                let to: Vec<Mailbox> = smtp.to.iter().filter_map(|t| t.parse().ok()).collect();
                Some(Target::Email {
                    transport: Box::new(builder.build()),
                    from,
                    to,
                })
            }),
        };
        match target {
            Some(target) if issues.is_empty() => Ok(Sink {
                name: cfg.name.clone(),
                kind: cfg.kind,
                funnels: cfg.funnels.clone(),
                on: cfg.on.clone(),
                target,
            }),
            _ => {
                if issues.is_empty() {
                    issues.push(ConfigIssue::new(key, "incomplete sink"));
                }
                Err(issues)
            }
        }
    }

    /// Whether this sink hears about `funnel`.
    pub fn covers(&self, funnel: &str) -> bool {
        self.funnels.is_empty() || self.funnels.iter().any(|f| f == funnel)
    }

    /// Deliver one change within `timeout`. The error says what failed, never a secret.
    pub async fn deliver(
        &self,
        client: &reqwest::Client,
        change: &Change,
        timeout: Duration,
    ) -> Result<(), String> {
        match tokio::time::timeout(timeout, self.deliver_inner(client, change)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    async fn deliver_inner(&self, client: &reqwest::Client, change: &Change) -> Result<(), String> {
        match &self.target {
            Target::Slack { url } => {
                post(client, url, "application/json", change.slack(), &[]).await
            }
            Target::Teams { url } => {
                post(client, url, "application/json", change.teams(), &[]).await
            }
            Target::Webhook { url, key } => {
                let timestamp = crate::state::now().as_millis() / 1000;
                let body = serde_json::to_vec(&change.cloudevent())
                    .map_err(|e| format!("cannot encode the event: {e}"))?;
                let sig = signature(key.0.as_bytes(), timestamp, &body);
                post_bytes(
                    client,
                    url,
                    "application/cloudevents+json; charset=utf-8",
                    body,
                    &[
                        (TIMESTAMP_HEADER, timestamp.to_string()),
                        (SIGNATURE_HEADER, sig),
                    ],
                )
                .await
            }
            Target::Email {
                transport,
                from,
                to,
            } => {
                let (subject, body) = change.email();
                let mut m = Message::builder()
                    .from(from.clone())
                    .subject(subject)
                    // The idempotency key, for receivers that dedupe mail.
                    .message_id(Some(format!(
                        "<{}@funnelgate>",
                        change
                            .id
                            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', ".")
                    )))
                    .header(ContentType::TEXT_PLAIN);
                for t in to {
                    m = m.to(t.clone());
                }
                let message = m
                    .body(body)
                    .map_err(|e| format!("cannot build the email: {e}"))?;
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("smtp: {e}"))
            }
        }
    }
}

/// An error and its causes, `: `-separated (the URL was already stripped by the caller).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

async fn post(
    client: &reqwest::Client,
    url: &Secret,
    content_type: &str,
    body: serde_json::Value,
    headers: &[(&str, String)],
) -> Result<(), String> {
    let bytes = serde_json::to_vec(&body).map_err(|e| format!("cannot encode the message: {e}"))?;
    post_bytes(client, url, content_type, bytes, headers).await
}

async fn post_bytes(
    client: &reqwest::Client,
    url: &Secret,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<(), String> {
    let mut req = client
        .post(url.0.as_str())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("request failed: {}", error_chain(&e.without_url())))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    Err(format!(
        "answered {status}: {}",
        text.chars().take(200).collect::<String>()
    ))
}
