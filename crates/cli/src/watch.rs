//! `gate wait` and `gate watch`: follow a funnel's decisions over `WatchGate`, reconnecting when
//! the stream drops.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use funnelgate_core::GateState;
use funnelgate_core::time::format_duration;
use funnelgate_proto::pb;
use tokio::time::Instant;
use tokio_stream::StreamExt;

use crate::client::{self, Target};
use crate::exit::{self, CliError, CmdResult};
use crate::gate::Until;
use crate::render::{self, Output};

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Errors that reconnecting cannot fix.
fn is_final(e: &CliError) -> bool {
    matches!(e.code, exit::NOT_FOUND | exit::USAGE | exit::NO_PERMISSION)
}

async fn open(
    t: &Target,
    funnel: &str,
) -> Result<tonic::Streaming<pb::WatchGateResponse>, CliError> {
    let mut c = client::connect(t).await?;
    let what = format!("watch the gate of `{funnel}`");
    let msg = pb::WatchGateRequest {
        funnel: funnel.to_string(),
        view: pb::GateView::Compact as i32,
    };
    client::call(t, &what, c.watch_gate(tonic::Request::new(msg))).await
}

/// Is what `gate wait` waits for there? Never on a decision that allows no share (one that is
/// still waiting for its first evidence holds at 0%): there is nothing to roll out yet.
fn satisfied(until: Until, d: &funnelgate_core::GateDecision) -> bool {
    let awaiting = d
        .reasons
        .iter()
        .any(|r| r.code == funnelgate_core::ReasonCode::AwaitingEvidence);
    let state_ok = match until {
        Until::Open => d.state == GateState::Open,
        Until::NotClosed => d.state != GateState::Closed,
    };
    state_ok && d.allowed_rollout_percent > 0 && !awaiting
}

/// The progress display on stderr: a live line on a terminal, plain lines otherwise.
struct Progress {
    tty: bool,
    dirty: bool,
}

impl Progress {
    fn line(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let clipped: String = text.chars().take(160).collect();
            let _ = write!(err, "\r\x1b[2K{clipped}");
            self.dirty = true;
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }

    fn done(&mut self) {
        if self.dirty {
            let _ = writeln!(std::io::stderr());
            self.dirty = false;
        }
    }
}

fn status_line(last: Option<&funnelgate_core::GateDecision>, left: Duration, note: &str) -> String {
    let left = format_duration(Duration::from_secs(left.as_secs()));
    match last {
        Some(d) => format!("waiting ({left} left){note} · {}", render::one_line(d)),
        None => format!("waiting ({left} left){note} · no decision yet"),
    }
}

/// Wait until the gate satisfies `until` or `timeout` passes.
pub async fn wait(
    t: &Target,
    out: Output,
    funnel: &str,
    until: Until,
    timeout: Duration,
    interval: Duration,
) -> CmdResult {
    let deadline = Instant::now() + timeout;
    let mut progress = Progress {
        tty: std::io::stderr().is_terminal(),
        dirty: false,
    };
    let refresh = if progress.tty {
        Duration::from_secs(1)
    } else {
        interval.max(Duration::from_secs(1))
    };
    let mut last: Option<pb::GateDecision> = None;
    let mut last_core: Option<funnelgate_core::GateDecision> = None;
    let mut last_error: Option<CliError> = None;
    let mut backoff = Duration::from_millis(200);
    let mut ticker = tokio::time::interval_at(Instant::now() + refresh, refresh);

    'outer: while Instant::now() < deadline {
        let stream = tokio::select! {
            s = open(t, funnel) => s,
            _ = tokio::time::sleep_until(deadline) => break 'outer,
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) if is_final(&e) => {
                progress.done();
                return Err(e);
            }
            Err(e) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // On a terminal the line is redrawn; in logs, say each distinct problem once.
                if progress.tty || last_error.as_ref().is_none_or(|p| p.message != e.message) {
                    progress.line(&status_line(
                        last_core.as_ref(),
                        left,
                        &format!(" · reconnecting: {e}"),
                    ));
                }
                last_error = Some(e);
                tokio::time::sleep(backoff.min(left)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(resp)) => {
                        let Some(d) = resp.decision else { continue };
                        let core = render::to_core(&d)?;
                        let changed = last_core.as_ref().is_none_or(|p| render::one_line(p) != render::one_line(&core));
                        let done = satisfied(until, &core);
                        last = Some(d);
                        last_core = Some(core);
                        if done {
                            break 'outer;
                        }
                        if changed || progress.tty {
                            let left = deadline.saturating_duration_since(Instant::now());
                            progress.line(&status_line(last_core.as_ref(), left, ""));
                        }
                    }
                    Some(Err(status)) => {
                        let e = CliError::from_status(&format!("watch the gate of `{funnel}`"), &status);
                        if is_final(&e) {
                            progress.done();
                            return Err(e);
                        }
                        let left = deadline.saturating_duration_since(Instant::now());
                        progress.line(&status_line(last_core.as_ref(), left, &format!(" · stream dropped, reconnecting: {e}")));
                        last_error = Some(e);
                        continue 'outer;
                    }
                    None => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        progress.line(&status_line(last_core.as_ref(), left, " · stream ended, reconnecting"));
                        continue 'outer;
                    }
                },
                _ = ticker.tick() => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    progress.line(&status_line(last_core.as_ref(), left, ""));
                }
                _ = tokio::time::sleep_until(deadline) => break 'outer,
            }
        }
    }
    progress.done();
    let Some(d) = last else {
        return Err(last_error.unwrap_or_else(|| {
            CliError::unavailable(format!(
                "timed out after {} without a decision for `{funnel}`",
                format_duration(timeout)
            ))
        }));
    };
    let state = render::state_of(&d);
    let core = render::to_core(&d)?;
    match out {
        Output::Json => println!("{}", render::json_string(&render::decision_json(&d)?)),
        Output::Text => println!(
            "{}",
            render::decision_text(&render::to_core(&d)?, d.sequence)
        ),
    }
    if !satisfied(until, &core) {
        eprintln!(
            "error: timed out after {}: the gate of `{funnel}` is {state} at {}%",
            format_duration(timeout),
            core.allowed_rollout_percent
        );
        // A gate that allows nothing never exits 0, even if forced OPEN.
        if state == GateState::Open {
            return Ok(exit::HOLD);
        }
    }
    Ok(render::exit_code(state))
}

/// Print every change of the gate until interrupted (or `count` decisions were printed).
pub async fn watch(t: &Target, out: Output, funnel: &str, count: Option<u64>) -> CmdResult {
    let mut printed = 0u64;
    let mut last_seq: Option<u64> = None;
    let mut last_core: Option<funnelgate_core::GateDecision> = None;
    let mut backoff = Duration::from_millis(200);
    let shutdown = funnelgate_server::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            s = open(t, funnel) => s,
            _ = &mut shutdown => return Ok(exit::OK),
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) if is_final(&e) => return Err(e),
            Err(e) => {
                eprintln!("reconnecting: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = &mut shutdown => return Ok(exit::OK),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        loop {
            let msg = tokio::select! {
                m = stream.next() => m,
                _ = &mut shutdown => return Ok(exit::OK),
            };
            match msg {
                Some(Ok(resp)) => {
                    let Some(d) = resp.decision else { continue };
                    let core = render::to_core(&d)?;
                    // After a reconnect the stream starts with the current decision: skip repeats.
                    let repeat = last_seq == Some(d.sequence)
                        && last_core
                            .as_ref()
                            .is_some_and(|p| !p.materially_differs(&core));
                    if repeat {
                        continue;
                    }
                    match out {
                        Output::Json => println!("{}", render::decision_json(&d)?),
                        Output::Text => {
                            println!("{} {}", core.evaluated_at, render::one_line(&core))
                        }
                    }
                    last_seq = Some(d.sequence);
                    last_core = Some(core);
                    printed += 1;
                    if count.is_some_and(|c| printed >= c) {
                        return Ok(exit::OK);
                    }
                }
                Some(Err(status)) => {
                    let e =
                        CliError::from_status(&format!("watch the gate of `{funnel}`"), &status);
                    if is_final(&e) {
                        return Err(e);
                    }
                    eprintln!("stream dropped, reconnecting: {e}");
                    break;
                }
                None => {
                    eprintln!("stream ended, reconnecting");
                    break;
                }
            }
        }
    }
}
