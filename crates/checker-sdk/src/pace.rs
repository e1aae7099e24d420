//! Pacing vendor calls to the vendor's published burst limit: a token bucket per client (one
//! probe run) that starts with `burst` tokens and refills at `burst / window`, and that also
//! follows what the vendor reports on each reply (calls left in the current window and when it
//! resets), so a probe never spends a whole account's burst that the team's own integrations
//! also draw from.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A published burst limit: `requests` per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BurstLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window.
    pub window: Duration,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    updated: Instant,
    /// No call before this instant (the vendor said the window is spent).
    blocked_until: Option<Instant>,
}

/// A token bucket pacing one client's calls.
#[derive(Debug)]
pub struct Pacer {
    capacity: f64,
    per_second: f64,
    state: Mutex<State>,
}

impl Pacer {
    /// Pace to `share` (0–1] of `limit`: a burst of `share × requests`, refilled over the window.
    pub fn new(limit: BurstLimit, share: f64) -> Pacer {
        let share = if share.is_finite() && share > 0.0 {
            share.min(1.0)
        } else {
            1.0
        };
        let capacity = (f64::from(limit.requests) * share).max(1.0);
        let per_second = capacity / limit.window.as_secs_f64().max(0.001);
        Pacer {
            capacity,
            per_second,
            state: Mutex::new(State {
                tokens: capacity,
                updated: Instant::now(),
                blocked_until: None,
            }),
        }
    }

    /// The pause the next call must wait (and take its token).
    fn reserve(&self) -> Duration {
        let Ok(mut s) = self.state.lock() else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(s.updated).as_secs_f64();
        s.tokens = (s.tokens + elapsed * self.per_second).min(self.capacity);
        s.updated = now;
        s.tokens -= 1.0;
        let mut wait = if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.tokens / self.per_second)
        };
        if let Some(b) = s.blocked_until {
            wait = wait.max(b.saturating_duration_since(now));
        }
        wait
    }

    /// Wait for the next call's turn.
    pub async fn wait(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tracing::debug!(wait_ms = wait.as_millis() as u64, "pacing a vendor call");
            tokio::time::sleep(wait).await;
        }
    }

    /// What the vendor reported: `remaining` calls in the current window, which resets in
    /// `resets_in`. With nothing left, no call goes out before the reset.
    pub fn observe(&self, remaining: u64, resets_in: Duration) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        if remaining == 0 {
            let until = now + resets_in.min(Duration::from_secs(60));
            s.blocked_until = Some(s.blocked_until.map_or(until, |b| b.max(until)));
            s.tokens = s.tokens.min(0.0);
        } else {
            s.tokens = s.tokens.min(remaining as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_spread_over_the_window() {
        let p = Pacer::new(
            BurstLimit {
                requests: 10,
                window: Duration::from_secs(10),
            },
            0.5,
        );
        let start = Instant::now();
        for _ in 0..5 {
            p.wait().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "the share goes at once"
        );
        for _ in 0..5 {
            p.wait().await;
        }
        // Five more at 0.5 per second.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(9) && took <= Duration::from_secs(11),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_window_blocks_until_it_resets() {
        let p = Pacer::new(
            BurstLimit {
                requests: 100,
                window: Duration::from_secs(10),
            },
            1.0,
        );
        p.observe(0, Duration::from_secs(3));
        let start = Instant::now();
        p.wait().await;
        assert!(start.elapsed() >= Duration::from_secs(3));
    }
}
