//! The runner: turns probe specs into judged [`ProbeResult`]s.
//!
//! For every spec it builds (or reuses) the probe, runs it in its own task with bounded
//! concurrency, enforces the per-probe timeout and the check's deadline, retries transient errors
//! with exponential backoff and jitter, turns panics into ERROR results, and judges the
//! [`Measurement`] against the spec's thresholds and minimum sample.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use funnelgate_core::time::format_duration;
use funnelgate_core::{
    Judgement, Measurement, ProbeResult, ProbeSpec, ProbeStatus, StageReport, Timestamp,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::probe::{Probe, ProbeContext, ProbeError};
use crate::registry::ProbeRegistry;
use crate::retry::{self, GaveUp, Retry};
use crate::secrets::SecretStore;

/// Probes run at once within one check unless configured otherwise.
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;

/// Built probes kept for reuse (their connection pools live inside them).
const PROBE_CACHE_CAPACITY: usize = 4096;

/// Errors setting up a runner.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The shared HTTP client could not be built (TLS set-up).
    #[error("cannot build the shared http client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

pub use crate::retry::RetryPolicy;

/// Install the ring crypto provider for rustls (once per process; later calls are no-ops).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client probes share: rustls with ring, pooled connections, at most 10 redirects.
/// Installs the ring provider first.
pub fn default_http_client() -> Result<reqwest::Client, RunnerError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("funnelgate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()
        .map_err(RunnerError::HttpClient)
}

/// Runs probe specs. Cheap to clone: clones share the probe cache, secrets and HTTP client.
#[derive(Clone)]
pub struct Runner {
    registry: ProbeRegistry,
    secrets: SecretStore,
    http: reqwest::Client,
    max_concurrency: usize,
    retry: RetryPolicy,
    checker: String,
    cache: Arc<Mutex<ProbeCache>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("kinds", &self.registry)
            .field("max_concurrency", &self.max_concurrency)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner with the default HTTP client ([`default_http_client`]), at most
    /// [`DEFAULT_MAX_CONCURRENCY`] probes at once and the default [`RetryPolicy`].
    pub fn new(registry: ProbeRegistry, secrets: SecretStore) -> Result<Runner, RunnerError> {
        Ok(Runner::with_http_client(
            registry,
            secrets,
            default_http_client()?,
        ))
    }

    /// A runner sharing the given HTTP client (build it after [`install_crypto_provider`]).
    pub fn with_http_client(
        registry: ProbeRegistry,
        secrets: SecretStore,
        http: reqwest::Client,
    ) -> Runner {
        Runner {
            registry,
            secrets,
            http,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            retry: RetryPolicy::default(),
            checker: concat!("funnelgate/", env!("CARGO_PKG_VERSION")).to_string(),
            cache: Arc::new(Mutex::new(ProbeCache::default())),
        }
    }

    /// Bound the number of probes running at once within one check (at least 1).
    pub fn with_max_concurrency(mut self, n: usize) -> Runner {
        self.max_concurrency = n.max(1);
        self
    }

    /// Replace the retry policy (tests use short delays).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Runner {
        self.retry = retry;
        self
    }

    /// Name and version written into [`StageReport::checker`].
    pub fn with_checker_name(mut self, checker: impl Into<String>) -> Runner {
        self.checker = checker.into();
        self
    }

    /// The probe kinds this runner can build.
    pub fn registry(&self) -> &ProbeRegistry {
        &self.registry
    }

    /// The default bound on concurrent probes.
    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    /// Run `specs` for one funnel stage and judge the results, in spec order.
    ///
    /// When `deadline` passes, every unfinished probe is reported ERROR (timed out) and its task
    /// aborted, so the report is always complete by the deadline.
    pub async fn check(
        &self,
        funnel: &str,
        stage: &str,
        specs: Vec<ProbeSpec>,
        deadline: Option<Instant>,
    ) -> StageReport {
        self.check_with_concurrency(funnel, stage, specs, deadline, None)
            .await
    }

    /// Like [`Runner::check`], with a per-check bound on concurrent probes (`None` or 0: the
    /// runner's default; never more than the runner's default).
    pub async fn check_with_concurrency(
        &self,
        funnel: &str,
        stage: &str,
        specs: Vec<ProbeSpec>,
        deadline: Option<Instant>,
        max_concurrency: Option<usize>,
    ) -> StageReport {
        let started = Instant::now();
        let checked_at = now_timestamp();
        let limit = match max_concurrency {
            Some(n) if n > 0 => n.min(self.max_concurrency),
            _ => self.max_concurrency,
        };
        let slots = Arc::new(Semaphore::new(limit));
        let mut tasks = JoinSet::new();
        let mut index_of = HashMap::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let runner = self.clone();
            let spec = spec.clone();
            let slots = Arc::clone(&slots);
            let handle = tasks.spawn(async move {
                let queued = Instant::now();
                let permit = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, slots.acquire_owned()).await {
                        Ok(p) => p,
                        Err(_) => {
                            return timeout_result(
                                &spec,
                                &runner.unit_of(&spec.kind),
                                queued,
                                true,
                            );
                        }
                    },
                    None => slots.acquire_owned().await,
                };
                let Ok(_permit) = permit else {
                    return error_result(
                        &spec,
                        "",
                        "runner shut down before the probe ran",
                        queued,
                    );
                };
                runner.run_spec(spec, deadline).await
            });
            index_of.insert(handle.id(), i);
        }

        let mut results: Vec<Option<ProbeResult>> = vec![None; specs.len()];
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, tasks.join_next_with_id()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
                None => tasks.join_next_with_id().await,
            };
            match next {
                None => break,
                Some(Ok((id, result))) => {
                    if let Some(&i) = index_of.get(&id) {
                        results[i] = Some(result);
                    }
                }
                Some(Err(e)) => {
                    if let Some(&i) = index_of.get(&e.id()) {
                        let message = join_error_message(e);
                        results[i] = Some(error_result(&specs[i], "", &message, started));
                    }
                }
            }
        }
        tasks.abort_all();

        let results = results
            .into_iter()
            .zip(&specs)
            .map(|(r, spec)| {
                r.unwrap_or_else(|| timeout_result(spec, &self.unit_of(&spec.kind), started, true))
            })
            .collect();
        StageReport {
            funnel: funnel.to_string(),
            stage: stage.to_string(),
            results,
            checked_at,
            duration_ms: millis(started.elapsed()),
            checker: self.checker.clone(),
            failure: None,
        }
    }

    /// Run one probe on its own (no check deadline, only its timeout): `funnelgate probe run`.
    pub async fn run_one(&self, spec: ProbeSpec) -> ProbeResult {
        let started = Instant::now();
        let fallback = spec.clone();
        let runner = self.clone();
        match tokio::spawn(async move { runner.run_spec(spec, None).await }).await {
            Ok(r) => r,
            Err(e) => error_result(&fallback, "", &join_error_message(e), started),
        }
    }

    fn unit_of(&self, kind: &str) -> String {
        self.registry
            .get(kind)
            .map(|f| f.unit().to_string())
            .unwrap_or_default()
    }

    /// Build the probe for a spec, reusing one built earlier from the same kind and params.
    fn probe_for(&self, spec: &ProbeSpec) -> Result<Arc<dyn Probe>, ProbeError> {
        let key = (spec.kind.clone(), canonical_json(&spec.params));
        if let Some(p) = lock(&self.cache).get(&key) {
            return Ok(p);
        }
        let probe = self.registry.build(&spec.kind, &spec.params)?;
        lock(&self.cache).insert(key, Arc::clone(&probe));
        Ok(probe)
    }

    async fn run_spec(&self, mut spec: ProbeSpec, deadline: Option<Instant>) -> ProbeResult {
        let start = Instant::now();
        let unit = self.unit_of(&spec.kind);
        // A spec without thresholds is judged by the kind's documented defaults, if it has any.
        if spec.thresholds.is_empty()
            && let Some(t) = self
                .registry
                .get(&spec.kind)
                .and_then(|f| f.default_thresholds())
        {
            spec.thresholds = t;
        }
        let probe = match self.probe_for(&spec) {
            Ok(p) => p,
            Err(e) => return error_result(&spec, &unit, &e.message, start),
        };
        let own_end = far_instant(start, spec.timeout.get());
        let (end, cut_by_deadline) = match deadline {
            Some(d) if d < own_end => (d, true),
            _ => (own_end, false),
        };
        let spec = Arc::new(spec);
        let ctx = ProbeContext {
            spec: Arc::clone(&spec),
            secrets: self.secrets.clone(),
            http: self.http.clone(),
        };
        let outcome = tokio::time::timeout_at(end, self.attempts(probe, ctx, end)).await;
        let result = match outcome {
            Ok(Ok((m, attempts))) => {
                let mut r = judge(&spec, m, &unit, now_timestamp(), millis(start.elapsed()));
                if attempts > 1 {
                    r.evidence.insert("attempts".into(), attempts.to_string());
                }
                r
            }
            Ok(Err((e, attempts))) => {
                let message = if attempts > 1 {
                    format!("{} (gave up after {attempts} attempts)", e.message)
                } else {
                    e.message
                };
                let mut r = error_result(&spec, &unit, &message, start);
                if attempts > 1 {
                    r.evidence.insert("attempts".into(), attempts.to_string());
                }
                r
            }
            Err(_) => timeout_result(&spec, &unit, start, cut_by_deadline),
        };
        tracing::debug!(
            probe = %result.id,
            kind = %result.kind,
            status = %result.status,
            duration_ms = result.duration_ms,
            "probe finished"
        );
        result
    }

    /// Run the probe under the one retry policy ([`crate::retry`]): transient errors are retried
    /// while the wait fits before `end`.
    async fn attempts(
        &self,
        probe: Arc<dyn Probe>,
        ctx: ProbeContext,
        end: Instant,
    ) -> Result<(Measurement, u32), (ProbeError, u32)> {
        let id = ctx.spec.id.clone();
        let attempt = || run_isolated(Arc::clone(&probe), ctx.clone(), end);
        let classify = |e: &ProbeError| {
            if e.is_transient() {
                tracing::debug!(probe = %id, error = %e, "probe attempt failed, may retry");
                Retry::After(e.retry_after)
            } else {
                Retry::Stop
            }
        };
        match retry::retry(&self.retry, Some(end), attempt, classify).await {
            Ok(ok) => Ok(ok),
            Err(GaveUp {
                mut error,
                attempts,
                wait_did_not_fit,
            }) => {
                if let Some(ra) = wait_did_not_fit {
                    error.message = format!(
                        "{}; asked to retry after {}, which does not fit in the time left",
                        error.message,
                        format_duration(ra)
                    );
                }
                Err((error, attempts))
            }
        }
    }
}

/// Aborts the task when dropped, so an abandoned probe does not keep running.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One attempt in its own task: a panic becomes a permanent error, never a crash.
/// Vendor calls inside it see `end` as their deadline ([`retry::deadline`]).
async fn run_isolated(
    probe: Arc<dyn Probe>,
    ctx: ProbeContext,
    end: Instant,
) -> Result<Measurement, ProbeError> {
    let mut task = AbortOnDrop(tokio::spawn(retry::with_deadline(end, async move {
        probe.run(&ctx).await
    })));
    match (&mut task.0).await {
        Ok(r) => r,
        Err(e) => Err(ProbeError::permanent(join_error_message(e))),
    }
}

fn join_error_message(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        let payload = e.into_panic();
        let text = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-text panic payload".to_string()
        };
        format!("probe panicked: {text}")
    } else {
        "probe task was cancelled".to_string()
    }
}

#[derive(Default)]
struct ProbeCache {
    entries: HashMap<(String, String), (Arc<dyn Probe>, u64)>,
    tick: u64,
}

impl ProbeCache {
    fn get(&mut self, key: &(String, String)) -> Option<Arc<dyn Probe>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(p, used)| {
            *used = tick;
            Arc::clone(p)
        })
    }

    fn insert(&mut self, key: (String, String), probe: Arc<dyn Probe>) {
        self.tick += 1;
        if self.entries.len() >= PROBE_CACHE_CAPACITY && !self.entries.contains_key(&key) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(key, (probe, self.tick));
    }
}

fn lock(cache: &Mutex<ProbeCache>) -> std::sync::MutexGuard<'_, ProbeCache> {
    // A panic while holding the lock cannot leave the cache inconsistent: keep using it.
    cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// JSON with object keys sorted, whatever map type serde_json was built with.
pub(crate) fn canonical_json(v: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// `from + d`, capped at a year so absurd timeouts from a request cannot overflow.
pub(crate) fn far_instant(from: Instant, d: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 86_400);
    from.checked_add(d.min(YEAR)).unwrap_or(from)
}

/// The current time as a core [`Timestamp`].
pub fn now_timestamp() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn error_result(spec: &ProbeSpec, unit: &str, message: &str, started: Instant) -> ProbeResult {
    let mut r = ProbeResult::error(&spec.id, &spec.kind, message, now_timestamp());
    r.unit = unit.to_string();
    r.duration_ms = millis(started.elapsed());
    r
}

fn timeout_result(
    spec: &ProbeSpec,
    unit: &str,
    started: Instant,
    cut_by_deadline: bool,
) -> ProbeResult {
    let message = if cut_by_deadline {
        format!(
            "timed out after {}: the check's deadline passed",
            format_duration(round_to_millis(started.elapsed()))
        )
    } else {
        format!("timed out after {}", format_duration(spec.timeout.get()))
    };
    error_result(spec, unit, &message, started)
}

fn round_to_millis(d: Duration) -> Duration {
    Duration::from_millis(millis(d))
}

/// The worse of two statuses: FAIL > ERROR > NO_DATA > WARN > PASS.
fn worse(a: ProbeStatus, b: ProbeStatus) -> ProbeStatus {
    if b.remediation_rank() < a.remediation_rank() {
        b
    } else {
        a
    }
}

fn join_message(prefix: &str, message: &str) -> String {
    match (prefix.is_empty(), message.is_empty()) {
        (true, _) => message.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}; {message}"),
    }
}

/// A number for people: one decimal at least, at most four, no float noise.
pub(crate) fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.1}");
    }
    let s = format!("{v:.4}");
    let trimmed = s.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

fn format_value(v: f64, unit: &str) -> String {
    match unit {
        "percent" | "%" => format!("{}%", format_number(v)),
        "bool" => (if v != 0.0 { "true" } else { "false" }).to_string(),
        "ms" | "s" | "hours" | "days" => format!("{} {unit}", format_number(v)),
        _ => format_number(v),
    }
}

fn judgement_text(spec: &ProbeSpec, value: f64, unit: &str, j: &Judgement) -> String {
    if spec.thresholds.is_empty() {
        return String::new();
    }
    let shown = format_value(value, unit);
    if let Some(expect) = spec.thresholds.expect {
        return match j.status {
            ProbeStatus::Pass => format!(
                "{} as expected",
                if value != 0.0 { "true" } else { "false" }
            ),
            _ => format!(
                "{}, expected {expect}",
                if value != 0.0 { "true" } else { "false" }
            ),
        };
    }
    match (j.status, j.threshold) {
        (ProbeStatus::Warn | ProbeStatus::Fail, Some(t)) => {
            let side = if value > t { "above" } else { "below" };
            let level = if j.status == ProbeStatus::Fail {
                "fail"
            } else {
                "warn"
            };
            format!("{shown} {side} {level} threshold {}", format_number(t))
        }
        _ => format!("{shown} within thresholds"),
    }
}

/// Judge a measurement against the spec: thresholds, the probe's own verdict (the worse wins),
/// a missing value, the minimum sample.
pub fn judge(
    spec: &ProbeSpec,
    m: Measurement,
    default_unit: &str,
    at: Timestamp,
    duration_ms: u64,
) -> ProbeResult {
    let unit = if m.unit.is_empty() {
        default_unit.to_string()
    } else {
        m.unit.clone()
    };
    let mut value = m.value;
    let mut threshold = None;
    let mut badness = 0.0;
    let mut prefix = String::new();

    // What the value says.
    let from_value: Option<ProbeStatus> = match m.value {
        Some(v) if !v.is_finite() => {
            value = None;
            prefix = format!("probe measured a non-finite value ({v})");
            badness = 1.0;
            Some(ProbeStatus::Error)
        }
        Some(v) => {
            let j = spec.thresholds.judge(v);
            threshold = j.threshold;
            badness = j.badness;
            prefix = judgement_text(spec, v, &unit, &j);
            Some(j.status)
        }
        None => None,
    };

    let mut status = match (from_value, m.verdict) {
        (Some(a), Some(b)) => {
            if b.remediation_rank() < a.remediation_rank() && b != ProbeStatus::Pass {
                badness = verdict_badness(b);
            }
            worse(a, b)
        }
        (Some(a), None) => a,
        (None, Some(b)) => {
            badness = verdict_badness(b);
            b
        }
        (None, None) => {
            badness = 1.0;
            prefix = "probe measured no value".to_string();
            ProbeStatus::NoData
        }
    };

    // Too small a sample: nothing to judge (a probe's own FAIL/ERROR verdict still stands).
    if let Some(min) = spec.min_sample {
        let sample_text = match m.sample_size {
            Some(n) if n < min => Some(format!("sample of {n} below the minimum {min}")),
            None if m.value.is_some() => Some(format!(
                "min_sample is {min} but probe kind `{}` reported no sample size",
                spec.kind
            )),
            _ => None,
        };
        if let Some(text) = sample_text {
            let s = worse(status, ProbeStatus::NoData);
            if s == ProbeStatus::NoData {
                status = s;
                badness = 1.0;
                prefix = text;
            }
        }
    }

    if status == ProbeStatus::Pass {
        badness = 0.0;
    }
    ProbeResult {
        id: spec.id.clone(),
        kind: spec.kind.clone(),
        status,
        value,
        unit,
        threshold,
        badness,
        message: join_message(&prefix, &m.message),
        observed_at: at,
        duration_ms,
        sample_size: m.sample_size,
        window: m.window,
        evidence: m.evidence,
        steps: m.steps,
    }
}

fn verdict_badness(s: ProbeStatus) -> f64 {
    match s {
        ProbeStatus::Pass | ProbeStatus::Skipped => 0.0,
        _ => 1.0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use funnelgate_core::{HumanDuration, Thresholds};

    use super::*;
    use crate::probe::TypedFactory;

    fn spec(id: &str, kind: &str) -> ProbeSpec {
        ProbeSpec::new(id, kind)
    }

    fn below(warn: f64, fail: f64) -> Thresholds {
        Thresholds {
            warn_below: Some(warn),
            fail_below: Some(fail),
            ..Default::default()
        }
    }

    #[test]
    fn judge_prefixes_the_threshold_verdict() {
        let mut s = spec("rate", "sql");
        s.thresholds = below(90.0, 70.0);
        let m = Measurement::value(62.0, "percent", "lead to customer over 30d");
        let r = judge(&s, m, "count", Timestamp(1), 5);
        assert_eq!(r.status, ProbeStatus::Fail);
        assert_eq!(
            r.message,
            "62.0% below fail threshold 70.0; lead to customer over 30d"
        );
        assert_eq!(r.threshold, Some(70.0));
        assert!((r.badness - 8.0 / 70.0).abs() < 1e-12);
        assert_eq!(r.unit, "percent");

        let pass = judge(
            &s,
            Measurement::value(95.0, "", "ok"),
            "percent",
            Timestamp(1),
            5,
        );
        assert_eq!(pass.status, ProbeStatus::Pass);
        assert_eq!(pass.badness, 0.0);
        assert_eq!(pass.message, "95.0% within thresholds; ok");
    }

    #[test]
    fn judge_takes_the_worse_of_verdict_and_threshold() {
        let mut s = spec("spf", "dns.spf");
        s.thresholds = below(90.0, 70.0);
        let mut m = Measurement::value(95.0, "", "record has a syntax error");
        m.verdict = Some(ProbeStatus::Fail);
        let r = judge(&s, m, "", Timestamp(1), 1);
        assert_eq!((r.status, r.badness), (ProbeStatus::Fail, 1.0));

        let mut m = Measurement::value(50.0, "", "");
        m.verdict = Some(ProbeStatus::Warn);
        let r = judge(&s, m, "", Timestamp(1), 1);
        assert_eq!(
            r.status,
            ProbeStatus::Fail,
            "threshold FAIL beats a WARN verdict"
        );
        assert!((r.badness - 20.0 / 70.0).abs() < 1e-12);

        let mut m = Measurement::value(95.0, "", "");
        m.verdict = Some(ProbeStatus::Error);
        assert_eq!(judge(&s, m, "", Timestamp(1), 1).status, ProbeStatus::Error);

        let r = judge(
            &s,
            Measurement::verdict(ProbeStatus::Warn, "close to limit"),
            "",
            Timestamp(1),
            1,
        );
        assert_eq!(
            (r.status, r.badness, r.value),
            (ProbeStatus::Warn, 1.0, None)
        );
    }

    #[test]
    fn judge_no_value_is_no_data_and_nan_is_error() {
        let s = spec("x", "sql");
        let r = judge(
            &s,
            Measurement {
                message: "empty window".into(),
                ..Default::default()
            },
            "",
            Timestamp(1),
            1,
        );
        assert_eq!(r.status, ProbeStatus::NoData);
        assert_eq!(r.message, "probe measured no value; empty window");
        let r = judge(
            &s,
            Measurement::value(f64::NAN, "", ""),
            "",
            Timestamp(1),
            1,
        );
        assert_eq!((r.status, r.value), (ProbeStatus::Error, None));
    }

    #[test]
    fn judge_min_sample() {
        let mut s = spec("proof", "sql");
        s.min_sample = Some(30);
        s.thresholds = below(20.0, 10.0);
        let r = judge(
            &s,
            Measurement::value(50.0, "percent", "won/lead").with_sample(12),
            "",
            Timestamp(1),
            1,
        );
        assert_eq!(r.status, ProbeStatus::NoData);
        assert_eq!(r.message, "sample of 12 below the minimum 30; won/lead");
        assert_eq!(r.sample_size, Some(12));
        let r = judge(
            &s,
            Measurement::value(50.0, "percent", "").with_sample(30),
            "",
            Timestamp(1),
            1,
        );
        assert_eq!(r.status, ProbeStatus::Pass);
        let r = judge(
            &s,
            Measurement::value(50.0, "percent", ""),
            "",
            Timestamp(1),
            1,
        );
        assert_eq!(r.status, ProbeStatus::NoData);
        assert!(
            r.message.contains("reported no sample size"),
            "{}",
            r.message
        );
        // A probe's own FAIL stands even on a small sample.
        let mut m = Measurement::value(50.0, "", "broken").with_sample(1);
        m.verdict = Some(ProbeStatus::Fail);
        assert_eq!(judge(&s, m, "", Timestamp(1), 1).status, ProbeStatus::Fail);
    }

    #[test]
    fn judge_boolean_expectation_message() {
        let mut s = spec("ok", "http");
        s.thresholds = Thresholds {
            expect: Some(true),
            ..Default::default()
        };
        let r = judge(
            &s,
            Measurement::value(0.0, "bool", "status 503"),
            "",
            Timestamp(1),
            1,
        );
        assert_eq!((r.status, r.badness), (ProbeStatus::Fail, 1.0));
        assert_eq!(r.message, "false, expected true; status 503");
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(format_number(62.0), "62.0");
        assert_eq!(format_number(0.1 + 0.2), "0.3");
        assert_eq!(format_number(0.00314), "0.0031");
        assert_eq!(format_number(-3.5), "-3.5");
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let a = serde_json::json!({"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": null}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":null,"y":[1,{"c":3,"d":2}]},"b":1}"#
        );
    }

    // ------------------------------------------------------------ runner behaviour (fake probes)

    #[derive(serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct FakeParams {
        /// What the probe does.
        #[serde(default)]
        behaviour: String,
        /// Milliseconds to sleep.
        #[serde(default)]
        sleep_ms: u64,
        /// Value to return.
        #[serde(default)]
        value: f64,
        /// Failures before success.
        #[serde(default)]
        fail_times: usize,
        /// Retry-after hint in ms.
        #[serde(default)]
        retry_after_ms: Option<u64>,
    }

    struct FakeProbe {
        p: FakeParams,
        calls: AtomicUsize,
        shared: Arc<Shared>,
    }

    #[derive(Default)]
    struct Shared {
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        builds: AtomicUsize,
        ended: AtomicUsize,
        call_times: Mutex<Vec<Instant>>,
    }

    /// Counts probe runs that ended, by completion or by being dropped (aborted).
    struct Ended<'a>(&'a AtomicUsize);

    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl Probe for FakeProbe {
        async fn run(&self, _ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let _ended = Ended(&self.shared.ended);
            self.shared.call_times.lock().unwrap().push(Instant::now());
            let now = self.shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(self.p.sleep_ms)).await;
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            match self.p.behaviour.as_str() {
                "panic" => panic!("boom in fake probe"),
                "transient" if n < self.p.fail_times => {
                    let e = ProbeError::transient("vendor answered 503");
                    Err(match self.p.retry_after_ms {
                        Some(ms) => e.with_retry_after(Duration::from_millis(ms)),
                        None => e,
                    })
                }
                "permanent" => Err(ProbeError::permanent("vendor answered 401: bad token")),
                _ => Ok(Measurement::value(self.p.value, "", "measured")),
            }
        }
    }

    fn runner_with(shared: Arc<Shared>) -> Runner {
        install_crypto_provider();
        let mut registry = ProbeRegistry::new();
        let make = move |p| {
            shared.builds.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(FakeProbe {
                p,
                calls: AtomicUsize::new(0),
                shared: Arc::clone(&shared),
            }) as Arc<dyn Probe>)
        };
        let with_defaults = make.clone();
        registry.register(TypedFactory::<FakeParams, _>::new(
            "fake",
            "a fake probe",
            "count",
            make,
        ));
        registry.register(
            TypedFactory::<FakeParams, _>::new(
                "fake.defaults",
                "a fake probe with default thresholds",
                "count",
                with_defaults,
            )
            .default_thresholds(below(90.0, 70.0)),
        );
        let http = reqwest::Client::builder().build().unwrap();
        Runner::with_http_client(registry, SecretStore::default(), http).with_retry_policy(
            RetryPolicy {
                max_retries: 2,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
                ..RetryPolicy::default()
            },
        )
    }

    fn fake(id: &str, params: serde_json::Value) -> ProbeSpec {
        let mut s = spec(id, "fake");
        s.params = params;
        s
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_timeouts_do_not_overflow() {
        let runner = runner_with(Arc::default());
        let mut s = fake("forever", serde_json::json!({"value": 1.0}));
        s.timeout = HumanDuration(Duration::from_secs(u64::MAX));
        assert_eq!(runner.run_one(s).await.status, ProbeStatus::Pass);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_becomes_error() {
        let runner = runner_with(Arc::default());
        let mut s = fake("slow", serde_json::json!({"sleep_ms": 60_000}));
        s.timeout = HumanDuration::from_secs(10);
        let r = runner.run_one(s).await;
        assert_eq!(r.status, ProbeStatus::Error);
        assert_eq!(r.message, "timed out after 10s");
        assert_eq!(r.badness, 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_permanent_ones_not() {
        let shared = Arc::new(Shared::default());
        let runner = runner_with(Arc::clone(&shared));
        let r = runner
            .run_one(fake(
                "flaky",
                serde_json::json!({"behaviour": "transient", "fail_times": 2, "value": 3.0}),
            ))
            .await;
        assert_eq!(r.status, ProbeStatus::Pass, "{}", r.message);
        assert_eq!(r.value, Some(3.0));
        assert_eq!(r.evidence.get("attempts").map(String::as_str), Some("3"));

        let r = runner
            .run_one(fake(
                "down",
                serde_json::json!({"behaviour": "transient", "fail_times": 100}),
            ))
            .await;
        assert_eq!(r.status, ProbeStatus::Error);
        assert_eq!(r.message, "vendor answered 503 (gave up after 3 attempts)");

        let before = shared.call_times.lock().unwrap().len();
        let r = runner
            .run_one(fake("auth", serde_json::json!({"behaviour": "permanent"})))
            .await;
        assert_eq!(r.status, ProbeStatus::Error);
        assert_eq!(r.message, "vendor answered 401: bad token");
        assert_eq!(
            shared.call_times.lock().unwrap().len(),
            before + 1,
            "permanent errors are not retried"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_when_it_fits() {
        let shared = Arc::new(Shared::default());
        let runner = runner_with(Arc::clone(&shared));
        let r = runner
            .run_one(fake(
                "limited",
                serde_json::json!({"behaviour": "transient", "fail_times": 1, "retry_after_ms": 3000}),
            ))
            .await;
        assert_eq!(r.status, ProbeStatus::Pass, "{}", r.message);
        let times = shared.call_times.lock().unwrap().clone();
        assert_eq!(times.len(), 2);
        assert!(
            times[1] - times[0] >= Duration::from_millis(3000),
            "waited {:?}",
            times[1] - times[0]
        );

        // A retry-after beyond the probe's timeout: give up at once with the error.
        let shared = Arc::new(Shared::default());
        let runner = runner_with(Arc::clone(&shared));
        let started = Instant::now();
        let r = runner
            .run_one(fake(
                "limited-long",
                serde_json::json!({"behaviour": "transient", "fail_times": 5, "retry_after_ms": 60_000}),
            ))
            .await;
        assert_eq!(r.status, ProbeStatus::Error);
        assert!(
            r.message
                .starts_with("vendor answered 503; asked to retry after 1m"),
            "{}",
            r.message
        );
        assert_eq!(shared.call_times.lock().unwrap().len(), 1);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "gave up without waiting for the timeout"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn panic_becomes_error() {
        let runner = runner_with(Arc::default());
        let report = runner
            .check(
                "f",
                "crm",
                vec![
                    fake("bad", serde_json::json!({"behaviour": "panic"})),
                    fake("good", serde_json::json!({"value": 1.0})),
                ],
                None,
            )
            .await;
        assert_eq!(report.results[0].status, ProbeStatus::Error);
        assert_eq!(
            report.results[0].message,
            "probe panicked: boom in fake probe"
        );
        assert_eq!(report.results[1].status, ProbeStatus::Pass);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded() {
        let shared = Arc::new(Shared::default());
        let runner = runner_with(Arc::clone(&shared)).with_max_concurrency(3);
        let specs: Vec<_> = (0..20)
            .map(|i| {
                fake(
                    &format!("p{i}"),
                    serde_json::json!({"sleep_ms": 100, "value": i}),
                )
            })
            .collect();
        let report = runner.check("f", "crm", specs, None).await;
        assert_eq!(report.results.len(), 20);
        assert!(report.results.iter().all(|r| r.status == ProbeStatus::Pass));
        assert_eq!(shared.max_in_flight.load(Ordering::SeqCst), 3);
        assert_eq!(report.results[7].id, "p7", "results keep spec order");
        assert_eq!(report.results[7].value, Some(7.0));

        // A per-check bound lower than the runner's.
        let shared = Arc::new(Shared::default());
        let runner = runner_with(Arc::clone(&shared)).with_max_concurrency(3);
        let specs: Vec<_> = (0..6)
            .map(|i| fake(&format!("q{i}"), serde_json::json!({"sleep_ms": 100})))
            .collect();
        runner
            .check_with_concurrency("f", "crm", specs, None, Some(1))
            .await;
        assert_eq!(shared.max_in_flight.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_cancels_unfinished_probes() {
        let shared = Arc::new(Shared::default());
        let runner = runner_with(Arc::clone(&shared)).with_max_concurrency(1);
        let mut slow = fake("slow", serde_json::json!({"sleep_ms": 600_000}));
        slow.timeout = HumanDuration::from_secs(3600);
        let specs = vec![
            fake("fast", serde_json::json!({"value": 1.0})),
            slow.clone(),
            fake("queued", serde_json::json!({})),
        ];
        let start = Instant::now();
        let report = runner
            .check("f", "crm", specs, Some(start + Duration::from_secs(2)))
            .await;
        assert!(start.elapsed() <= Duration::from_secs(2) + Duration::from_millis(50));
        assert_eq!(report.results[0].status, ProbeStatus::Pass);
        for r in &report.results[1..] {
            assert_eq!(r.status, ProbeStatus::Error, "{}", r.id);
            assert!(
                r.message.contains("the check's deadline passed"),
                "{}",
                r.message
            );
        }
        // The slow probe's task was aborted: its run ended (dropped) long before its 600s sleep.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            shared.call_times.lock().unwrap().len(),
            2,
            "the queued probe never started"
        );
        assert_eq!(
            shared.ended.load(Ordering::SeqCst),
            2,
            "the slow probe's run was dropped"
        );
        assert_eq!(
            shared.in_flight.load(Ordering::SeqCst),
            1,
            "it never finished its sleep"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bad_params_and_unknown_kinds_are_errors_and_probes_are_reused() {
        let shared = Arc::new(Shared::default());
        let runner = runner_with(Arc::clone(&shared));
        let r = runner
            .run_one(fake("bad", serde_json::json!({"nope": 1})))
            .await;
        assert_eq!(r.status, ProbeStatus::Error);
        assert!(r.message.contains("unknown field `nope`"), "{}", r.message);
        let r = runner.run_one(spec("x", "sql")).await;
        assert!(
            r.message
                .contains("unknown probe kind `sql`; this checker supports: fake"),
            "{}",
            r.message
        );

        let a = fake("a", serde_json::json!({"value": 2.0, "sleep_ms": 1}));
        let b = fake("b", serde_json::json!({"sleep_ms": 1, "value": 2.0}));
        runner.check("f", "crm", vec![a.clone(), b], None).await;
        runner.check("f", "crm", vec![a], None).await;
        assert_eq!(
            shared.builds.load(Ordering::SeqCst),
            1,
            "same kind and params build once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn observe_mode_probes_run_like_others() {
        let runner = runner_with(Arc::default());
        let mut s = fake("watch", serde_json::json!({"value": 5.0}));
        s.mode = funnelgate_core::ProbeMode::Observe;
        s.thresholds = Thresholds {
            fail_above: Some(1.0),
            ..Default::default()
        };
        let report = runner.check("f", "crm", vec![s], None).await;
        assert_eq!(report.results[0].status, ProbeStatus::Fail);
        assert_eq!(
            report.results[0].message,
            "5.0 above fail threshold 1.0; measured"
        );
    }

    #[tokio::test]
    async fn kind_defaults_apply_only_when_the_spec_sets_no_thresholds() {
        let runner = runner_with(Arc::new(Shared::default()));
        let mut s = spec("d", "fake.defaults");
        s.params = serde_json::json!({"value": 50.0});
        let r = runner.run_one(s.clone()).await;
        assert_eq!(r.status, ProbeStatus::Fail, "{}", r.message);
        assert_eq!(r.threshold, Some(70.0));

        s.thresholds = below(40.0, 30.0);
        let r = runner.run_one(s).await;
        assert_eq!(
            r.status,
            ProbeStatus::Pass,
            "the spec's own thresholds win: {}",
            r.message
        );

        let mut plain = spec("p", "fake");
        plain.params = serde_json::json!({"value": 50.0});
        let r = runner.run_one(plain).await;
        assert_eq!(
            r.status,
            ProbeStatus::Pass,
            "no defaults, no thresholds: {}",
            r.message
        );
    }
}
