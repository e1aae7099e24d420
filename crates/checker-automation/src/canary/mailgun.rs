//! The ESP evidence of the canary's welcome email through Mailgun's Events API
//! (`GET /v3/{domain}/events?recipient=…`), and the bounce-suppression cleanup
//! (`DELETE /v3/{domain}/bounces/{address}`). Basic auth `api:<key>`.

use funnelgate_checker_sdk::ProbeError;
use funnelgate_checker_sdk::vendor_http::{status_error, transport_error};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::http::{call_retrying, join, request_timeout};

const VENDOR: &str = "mailgun";

/// What the ESP says about the canary's email so far.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery {
    /// Nothing yet.
    Pending,
    /// Accepted by the recipient's server.
    Delivered,
    /// Permanently failed (bounced), with the reason.
    Bounced(String),
}

/// A Mailgun events reader for one run.
pub struct Mailgun {
    http: reqwest::Client,
    base: String,
    domain: String,
    key: SecretString,
    timeout: std::time::Duration,
}

impl Mailgun {
    /// A reader for `domain` at `base` (e.g. `https://api.mailgun.net`).
    pub fn new(
        http: reqwest::Client,
        base: &str,
        domain: &str,
        key: SecretString,
        timeout: std::time::Duration,
    ) -> Mailgun {
        Mailgun {
            http,
            base: base.to_string(),
            domain: domain.to_string(),
            key,
            timeout: request_timeout(timeout),
        }
    }

    /// The delivery state of mail to `recipient`.
    pub async fn delivery(&self, recipient: &str) -> Result<Delivery, ProbeError> {
        let path = format!("/v3/{}/events", self.domain);
        let url = join(&self.base, &path);
        let reply = call_retrying::<Value>(
            VENDOR,
            &format!("GET {path}"),
            || {
                Ok(self
                    .http
                    .get(&url)
                    .basic_auth("api", Some(self.key.expose_secret()))
                    .timeout(self.timeout)
                    .query(&[("recipient", recipient), ("limit", "100")]))
            },
            None,
        )
        .await?;
        let items = reply.body["items"].as_array().cloned().ok_or_else(|| {
            ProbeError::permanent(format!("{VENDOR}: GET {path}: reply has no `items` list"))
        })?;
        let mut state = Delivery::Pending;
        for i in &items {
            match i["event"].as_str() {
                Some("delivered") => return Ok(Delivery::Delivered),
                Some("failed") if i["severity"].as_str() == Some("permanent") => {
                    let reason = i["delivery-status"]["message"]
                        .as_str()
                        .or_else(|| i["reason"].as_str())
                        .unwrap_or("permanent failure");
                    state = Delivery::Bounced(reason.chars().take(200).collect());
                }
                _ => {}
            }
        }
        Ok(state)
    }

    /// Remove `address` from the bounce list (after a bounced canary).
    pub async fn remove_bounce(&self, address: &str) -> Result<(), ProbeError> {
        let path = format!("/v3/{}/bounces/{address}", self.domain);
        let what = format!("DELETE {path}");
        let resp = self
            .http
            .delete(join(&self.base, &path))
            .basic_auth("api", Some(self.key.expose_secret()))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| transport_error(VENDOR, &what, &e))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) || status == 404 {
            return Ok(());
        }
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Err(status_error(VENDOR, &what, status, &headers, &body))
    }
}
