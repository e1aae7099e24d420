//! The one retry policy of the checkers: the runner's retries of a whole probe attempt and every
//! vendor adapter's retries of one HTTP call (CRM, the HubSpot crate, the ESP vendors) go through
//! [`retry`].
//!
//! - A wait the server asked for (`Retry-After` in either form — delay-seconds or an HTTP-date,
//!   RFC 9110 §10.2.3 — or a vendor's own reset header) is honoured, with a little jitter added
//!   so that parallel probes do not return at the same instant.
//! - Without one (a 429 without `Retry-After`, a 503, a reset connection) the wait is a brief
//!   exponential backoff: `base_delay · 2^(n−1)`, capped at `max_delay`, with ±50% jitter.
//! - A retry happens only if the wait fits in the time the probe has left: the runner sets the
//!   probe's deadline for the task ([`with_deadline`]) and every retry inside the probe sees it
//!   ([`deadline`]). A wait that does not fit ends the retries at once with the last error.

use std::future::Future;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Run `fut` with `end` as the deadline every [`retry`] inside it respects.
pub async fn with_deadline<F: Future>(end: Instant, fut: F) -> F::Output {
    DEADLINE.scope(end, fut).await
}

/// The deadline of the probe running on this task, if the runner set one.
pub fn deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// Time left before [`deadline`], `None` when no deadline is set.
pub fn remaining() -> Option<Duration> {
    deadline().map(|d| d.saturating_duration_since(Instant::now()))
}

/// How transient failures are retried.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// Delay before the first retry when the server gave no hint; doubled for each further one,
    /// with ±50% jitter.
    pub base_delay: Duration,
    /// Upper bound of one backoff delay (before jitter).
    pub max_delay: Duration,
    /// Longest server-requested wait honoured inside one attempt; a longer one ends the retries
    /// (the error keeps it, so the caller can report it).
    pub max_hinted_wait: Duration,
}

impl Default for RetryPolicy {
    /// The runner's policy for whole probe attempts.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_hinted_wait: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The policy of one vendor HTTP call: a few quick retries (a per-second burst limit clears
    /// within a second or two), never a wait longer than 10 s inside a call.
    pub fn vendor_call() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_hinted_wait: Duration::from_secs(10),
        }
    }

    /// Backoff before retry number `retry` (1-based) when the server gave no hint, jitter
    /// included.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        exp.min(self.max_delay)
            .mul_f64(rand::random_range(0.5..1.5))
    }

    /// The wait before retry number `retry`: the server's hint plus up to 10% (at most 250 ms)
    /// of jitter, or [`RetryPolicy::backoff`].
    pub fn wait(&self, retry: u32, hint: Option<Duration>) -> Duration {
        match hint {
            Some(h) => {
                let spread = h.mul_f64(0.1).min(Duration::from_millis(250));
                h + spread.mul_f64(rand::random_range(0.0..1.0))
            }
            None => self.backoff(retry),
        }
    }
}

/// What the caller's classifier says about one failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Retrying cannot help.
    Stop,
    /// Worth another try; the server asked to wait this long, if it said.
    After(Option<Duration>),
}

/// Why [`retry`] gave up: the last error, how many attempts ran, and the server's requested wait
/// when that wait was what did not fit (too long for the policy or the time left).
#[derive(Debug)]
pub struct GaveUp<E> {
    /// The last attempt's error.
    pub error: E,
    /// Attempts made.
    pub attempts: u32,
    /// Set when the retries ended because the server's requested wait did not fit.
    pub wait_did_not_fit: Option<Duration>,
}

/// Run `op` until it succeeds, `classify` says [`Retry::Stop`], the policy's retries are used up
/// or the next wait would pass `end` (or, without `end`, the task's [`deadline`]). Returns the
/// value and the number of attempts.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    end: Option<Instant>,
    mut op: F,
    classify: impl Fn(&E) -> Retry,
) -> Result<(T, u32), GaveUp<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let end = end.or_else(deadline);
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let error = match op().await {
            Ok(v) => return Ok((v, attempts)),
            Err(e) => e,
        };
        let hint = match classify(&error) {
            Retry::Stop => {
                return Err(GaveUp {
                    error,
                    attempts,
                    wait_did_not_fit: None,
                });
            }
            Retry::After(hint) => hint,
        };
        if attempts > policy.max_retries {
            return Err(GaveUp {
                error,
                attempts,
                wait_did_not_fit: None,
            });
        }
        let wait = policy.wait(attempts, hint);
        let too_long = hint.is_some_and(|h| h > policy.max_hinted_wait);
        let past_end = end.is_some_and(|end| Instant::now() + wait >= end);
        if too_long || past_end {
            return Err(GaveUp {
                error,
                attempts,
                wait_did_not_fit: hint,
            });
        }
        tracing::debug!(attempts, wait_ms = wait.as_millis() as u64, "retrying");
        tokio::time::sleep(wait).await;
    }
}

/// `Retry-After` in either form: delay-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2026 07:28:00 GMT`; a date in the past means "now"). `None` when absent or
/// unreadable.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    parse_retry_after(raw, SystemTime::now())
}

/// [`retry_after`]'s parser, relative to `now`.
pub fn parse_retry_after(raw: &str, now: SystemTime) -> Option<Duration> {
    let raw = raw.trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(raw.parse::<u64>().ok()?.min(86_400)));
    }
    // Some servers send fractional seconds; accept them as a courtesy.
    if let Ok(secs) = raw.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(raw)
        .ok()?;
    let now = jiff::Timestamp::try_from(now).ok()?;
    let secs = at.as_millisecond().saturating_sub(now.as_millisecond());
    Some(Duration::from_millis(u64::try_from(secs).unwrap_or(0)))
}

/// A vendor's own "seconds until the window resets" header (Pipedrive `x-ratelimit-reset`), used
/// on a 429 that carries no `Retry-After`.
pub fn reset_after(headers: &HeaderMap, header: &str) -> Option<Duration> {
    let secs = headers
        .get(header)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        // The IMF-fixdate one second after `now`.
        let later = jiff::Timestamp::from_second(1_790_000_001).unwrap();
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&later)
            .unwrap();
        assert!(date.ends_with("GMT"), "{date}");
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(1)));
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            max_hinted_wait: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(150));
            let d5 = p.backoff(5);
            assert!(d5 >= Duration::from_millis(200) && d5 <= Duration::from_millis(600));
            let h = p.wait(1, Some(Duration::from_secs(1)));
            assert!(h >= Duration::from_secs(1) && h <= Duration::from_millis(1100));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_and_stops_on_permanent_errors() {
        let calls = AtomicU32::new(0);
        let r = retry(
            &RetryPolicy::vendor_call(),
            None,
            || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err("busy")
                } else {
                    Ok(7)
                }
            },
            |_| Retry::After(None),
        )
        .await
        .unwrap();
        assert_eq!(r, (7, 3));
        let r = retry(
            &RetryPolicy::vendor_call(),
            None,
            || async { Err::<(), _>("bad token") },
            |_| Retry::Stop,
        )
        .await
        .unwrap_err();
        assert_eq!(r.attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_ends_the_retries() {
        let end = Instant::now() + Duration::from_secs(2);
        let r = with_deadline(end, async {
            retry(
                &RetryPolicy::vendor_call(),
                None,
                || async { Err::<(), _>("429") },
                |_| Retry::After(Some(Duration::from_secs(5))),
            )
            .await
        })
        .await
        .unwrap_err();
        assert_eq!(r.attempts, 1);
        assert_eq!(r.wait_did_not_fit, Some(Duration::from_secs(5)));
        // A one-second wait fits: it is taken.
        let start = Instant::now();
        let end = start + Duration::from_secs(30);
        let tries = AtomicU32::new(0);
        let r = retry(
            &RetryPolicy::vendor_call(),
            Some(end),
            || async {
                if tries.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err("429")
                } else {
                    Ok(())
                }
            },
            |_| Retry::After(Some(Duration::from_secs(1))),
        )
        .await
        .unwrap();
        assert_eq!(r.1, 2);
        assert!(start.elapsed() >= Duration::from_secs(1));
    }
}
