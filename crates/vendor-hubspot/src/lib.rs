//! The HubSpot API client every checker that reads HubSpot shares (the CRM checker's
//! `hubspot.*` kinds, the automation checker's HubSpot kinds).
//!
//! - **Versions**: HubSpot's date-based API versions (`/crm/objects/2026-09/contacts`), the
//!   version a setting ([`ApiVersion`], default [`DEFAULT_API_VERSION`]). The numeric v1–v4 paths
//!   are used only where HubSpot has no date-based equivalent ([`Paths::legacy`]).
//! - **Credentials** ([`Credential`]): a legacy private-app access token, an account service key
//!   of a developer-platform project, or an OAuth access token; all three are sent as
//!   `Authorization: Bearer`, and they differ in which rate-limit headers come back.
//! - **Rate limits**: every call is paced to the account's published burst limit (a share of it,
//!   [`Conn::burst_per_10s`]) and to what `X-HubSpot-RateLimit-Remaining` /
//!   `-Interval-Milliseconds` report; searches additionally keep HubSpot's per-second search
//!   limit ([`Conn::search_interval_ms`]). The daily budget comes from
//!   `X-HubSpot-RateLimit-Daily(-Remaining)` when HubSpot sends them (private apps, service keys)
//!   and from the account's API-usage endpoint when it does not (OAuth apps), and calls stop when
//!   less than [`Conn::daily_reserve_percent`] is left. Retries follow the SDK's one policy
//!   ([`funnelgate_checker_sdk::retry`]).
//! - **Paging**: search (`paging.next.after`, 200 per page, 10,000 results per query), list
//!   paging, batch reads of 100, association batch reads.

mod client;
mod version;

pub use client::{
    BATCH, Credential, DAILY_HEADER, DAILY_REMAINING_HEADER, DailyBudget, HubSpot, LIST_PAGE,
    Pipeline, PipelineStage, Property, PropertyOption, Record, SEARCH_PAGE, SEARCH_RESULT_CAP,
    filter, filter_groups, filter_values, scope_objects, scope_schemas,
};
pub use version::{ApiVersion, DEFAULT_API_VERSION, Paths};

use funnelgate_checker_sdk::ProbeError;

/// The vendor name used in messages.
pub const VENDOR: &str = "hubspot";

/// HubSpot's API root.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

/// The most conservative published burst limit of an account (Free and Starter private apps:
/// 100 requests per 10 seconds; OAuth apps get 110, Professional and Enterprise 190).
pub const DEFAULT_BURST_PER_10S: u32 = 100;

/// Connection settings of one HubSpot client.
#[derive(Clone, Debug, PartialEq)]
pub struct Conn {
    /// API base URL.
    pub base_url: String,
    /// Date-based API version.
    pub api_version: ApiVersion,
    /// Which kind of credential the secret holds.
    pub credential: Credential,
    /// Percent of the daily budget never used.
    pub daily_reserve_percent: f64,
    /// Minimum pause between two search calls, ms.
    pub search_interval_ms: u64,
    /// The account's burst limit, requests per 10 seconds; a probe uses at most half of it.
    pub burst_per_10s: u32,
}

impl Default for Conn {
    fn default() -> Self {
        Conn {
            base_url: DEFAULT_BASE_URL.to_string(),
            api_version: ApiVersion::default(),
            credential: Credential::default(),
            daily_reserve_percent: 10.0,
            search_interval_ms: 200,
            burst_per_10s: DEFAULT_BURST_PER_10S,
        }
    }
}

impl Conn {
    /// Check the settings; `prefix` names the params in messages (e.g. "params of `x`: ").
    pub fn validate(&self) -> Result<(), ProbeError> {
        let parsed = reqwest::Url::parse(&self.base_url).map_err(|e| {
            ProbeError::params(format!("`base_url`: `{}` is not a url: {e}", self.base_url))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ProbeError::params(format!(
                "`base_url`: `{}` must be an http or https url",
                self.base_url
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(ProbeError::params(
                "`base_url`: credentials do not belong in a url; name a `secret` instead",
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(ProbeError::params(format!(
                "`base_url`: `{}` must not carry a query or fragment",
                self.base_url
            )));
        }
        if !(self.daily_reserve_percent.is_finite()
            && (0.0..=100.0).contains(&self.daily_reserve_percent))
        {
            return Err(ProbeError::params(
                "`daily_reserve_percent` must be between 0 and 100",
            ));
        }
        if self.search_interval_ms > 10_000 {
            return Err(ProbeError::params(
                "`search_interval_ms` must be at most 10000",
            ));
        }
        if !(10..=1000).contains(&self.burst_per_10s) {
            return Err(ProbeError::params(
                "`burst_per_10s` must be between 10 and 1000 (HubSpot publishes 100, 110 or 190)",
            ));
        }
        Ok(())
    }
}
