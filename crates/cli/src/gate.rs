//! `funnelgate gate …`: ask the coordinator about a funnel's gate, wait for it, change it.

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use funnelgate_core::policy::is_valid_funnel_name;
use funnelgate_proto::convert::timestamp_from_pb;
use funnelgate_proto::pb;
use serde_json::Value;

use crate::client::{self, DEFAULT_SERVER, Target, call, request};
use crate::exit::{self, CliError, CmdResult};
use crate::render::{self, Output};
use crate::watch;

/// Options shared by every `gate` command.
#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// Coordinator gRPC address.
    #[arg(long, global = true, env = "FUNNELGATE_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Bearer token (needed for override, clear-override and phase when the coordinator has
    /// operators configured).
    #[arg(long, global = true, env = "FUNNELGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Deadline of each request, e.g. 10s.
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

impl ClientArgs {
    /// The coordinator to talk to.
    pub fn target(&self) -> Target {
        Target {
            server: self.server.clone(),
            token: self.token.clone(),
            request_timeout: self.request_timeout,
        }
    }
}

/// `gate` subcommands.
#[derive(Subcommand, Debug)]
pub enum GateCmd {
    /// Print a funnel's gate decision (exit 0 whatever the state; see `check`).
    Status {
        funnel: String,
        /// Include every probe result and the whole remediation list.
        #[arg(long)]
        full: bool,
    },
    /// Print the decision and exit by state: 0 OPEN, 10 HOLD, 11 CLOSED (12 unreachable, 13 not found).
    Check { funnel: String },
    /// Wait until the gate opens (or is not closed), showing progress; exit codes as `check`.
    Wait {
        funnel: String,
        /// What to wait for.
        #[arg(long, value_enum, default_value_t = Until::Open)]
        until: Until,
        /// Give up after this long and exit with the current state's code, e.g. 15m.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        timeout: Duration,
        /// When stderr is not a terminal: print a status line at least this often.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        interval: Duration,
    },
    /// Print every change of a funnel's gate until interrupted (JSON: one object per line).
    Watch {
        funnel: String,
        /// Stop after this many decisions (the first one is the current decision).
        #[arg(long)]
        count: Option<u64>,
    },
    /// List stored decisions and overrides, newest first.
    History {
        funnel: String,
        /// Entries per page.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Continue from a previous page.
        #[arg(long)]
        page_token: Option<String>,
        /// Follow every page to the first entry.
        #[arg(long)]
        all: bool,
        /// Verify the funnel's whole hash chain; exit 14 when it is broken.
        #[arg(long)]
        verify: bool,
    },
    /// Print the evidence tree behind the current (or a stored) decision.
    Explain {
        funnel: String,
        /// A stored decision's sequence number (default: the current decision).
        #[arg(long)]
        sequence: Option<u64>,
    },
    /// List every funnel with its gate state.
    List,
    /// Force a funnel's gate OPEN or CLOSED for a bounded time (audited; needs an operator token).
    Override {
        funnel: String,
        /// The forced state.
        #[arg(long, value_enum)]
        state: OverrideState,
        /// Why (recorded in the ledger).
        #[arg(long)]
        reason: String,
        /// How long the override lasts, e.g. 2h (at most 7d).
        #[arg(long, value_parser = parse_duration)]
        ttl: Duration,
        /// The share (1-100) a forced OPEN allows; default the first step of the funnel's ramp.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        percent: Option<u32>,
    },
    /// Remove an active override (audited).
    ClearOverride {
        funnel: String,
        /// Why (recorded in the ledger).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Put a funnel back in `build` phase (bottom-up remediation) or mark it `operate`.
    Phase {
        funnel: String,
        #[arg(value_enum)]
        phase: PhaseArg,
        /// Why (recorded in the ledger).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// What `gate wait` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Until {
    /// The gate is OPEN.
    Open,
    /// The gate is OPEN or HOLDs (a pilot share is allowed).
    NotClosed,
}

/// An override's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OverrideState {
    Open,
    Closed,
}

/// A funnel phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PhaseArg {
    Build,
    Operate,
}

/// Parse "30s", "15m", "1h30m" (units required).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    funnelgate_core::time::parse_duration(s).map_err(|e| e.to_string())
}

fn check_funnel(funnel: &str) -> Result<(), CliError> {
    if is_valid_funnel_name(funnel) {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "`{funnel}` is not a funnel name (want [a-z0-9][a-z0-9-]{{0,62}})"
        )))
    }
}

/// Run a `gate` subcommand.
pub async fn run(cmd: GateCmd, args: &ClientArgs) -> CmdResult {
    let t = args.target();
    let out = args.output;
    match cmd {
        GateCmd::Status { funnel, full } => status(&t, out, &funnel, full).await.map(|_| exit::OK),
        GateCmd::Check { funnel } => {
            let state = status(&t, out, &funnel, false).await?;
            Ok(render::exit_code(state))
        }
        GateCmd::Wait {
            funnel,
            until,
            timeout,
            interval,
        } => {
            check_funnel(&funnel)?;
            watch::wait(&t, out, &funnel, until, timeout, interval).await
        }
        GateCmd::Watch { funnel, count } => {
            check_funnel(&funnel)?;
            watch::watch(&t, out, &funnel, count).await
        }
        GateCmd::History {
            funnel,
            limit,
            page_token,
            all,
            verify,
        } => history(&t, out, &funnel, limit, page_token, all, verify).await,
        GateCmd::Explain { funnel, sequence } => explain(&t, out, &funnel, sequence).await,
        GateCmd::List => list(&t, out).await,
        GateCmd::Override {
            funnel,
            state,
            reason,
            ttl,
            percent,
        } => {
            check_funnel(&funnel)?;
            if ttl.is_zero() {
                return Err(CliError::usage("--ttl must be greater than 0s"));
            }
            if percent.is_some() && state == OverrideState::Closed {
                return Err(CliError::usage(
                    "--percent is the share a forced OPEN allows: a CLOSED gate allows none",
                ));
            }
            let state = match state {
                OverrideState::Open => pb::GateState::Open,
                OverrideState::Closed => pb::GateState::Closed,
            };
            let mut c = client::connect(&t).await?;
            let msg = pb::SetOverrideRequest {
                funnel: funnel.clone(),
                state: state as i32,
                reason,
                ttl_seconds: ttl.as_secs().max(1),
                percent,
            };
            let what = format!("set override on `{funnel}`");
            let resp = call(&t, &what, c.set_override(request(&t, msg))).await?;
            print_decision(out, &client::decision(&what, resp.decision)?, false)
        }
        GateCmd::ClearOverride { funnel, reason } => {
            check_funnel(&funnel)?;
            let mut c = client::connect(&t).await?;
            let what = format!("clear override on `{funnel}`");
            let msg = pb::ClearOverrideRequest {
                funnel: funnel.clone(),
                reason,
            };
            let resp = call(&t, &what, c.clear_override(request(&t, msg))).await?;
            print_decision(out, &client::decision(&what, resp.decision)?, false)
        }
        GateCmd::Phase {
            funnel,
            phase,
            reason,
        } => {
            check_funnel(&funnel)?;
            let phase = match phase {
                PhaseArg::Build => pb::Phase::Build,
                PhaseArg::Operate => pb::Phase::Operate,
            };
            let mut c = client::connect(&t).await?;
            let what = format!("set phase of `{funnel}`");
            let msg = pb::SetPhaseRequest {
                funnel: funnel.clone(),
                phase: phase as i32,
                reason,
            };
            let resp = call(&t, &what, c.set_phase(request(&t, msg))).await?;
            print_decision(out, &client::decision(&what, resp.decision)?, false)
        }
    }
}

/// Print a decision in the chosen format; returns exit 0.
fn print_decision(out: Output, d: &pb::GateDecision, _full: bool) -> CmdResult {
    match out {
        Output::Json => println!("{}", render::json_string(&render::decision_json(d)?)),
        Output::Text => println!(
            "{}",
            render::decision_text(&render::to_core(d)?, d.sequence)
        ),
    }
    Ok(exit::OK)
}

async fn status(
    t: &Target,
    out: Output,
    funnel: &str,
    full: bool,
) -> Result<funnelgate_core::GateState, CliError> {
    check_funnel(funnel)?;
    let mut c = client::connect(t).await?;
    let view = if full {
        pb::GateView::Full
    } else {
        pb::GateView::Compact
    };
    let what = format!("get gate of `{funnel}`");
    let msg = pb::GetGateRequest {
        funnel: funnel.to_string(),
        view: view as i32,
    };
    let resp = call(t, &what, c.get_gate(request(t, msg))).await?;
    let d = client::decision(&what, resp.decision)?;
    print_decision(out, &d, full)?;
    Ok(render::state_of(&d))
}

async fn explain(t: &Target, out: Output, funnel: &str, sequence: Option<u64>) -> CmdResult {
    check_funnel(funnel)?;
    let mut c = client::connect(t).await?;
    let what = match sequence {
        Some(s) => format!("explain decision #{s} of `{funnel}`"),
        None => format!("explain the gate of `{funnel}`"),
    };
    let msg = pb::ExplainRequest {
        funnel: funnel.to_string(),
        sequence: sequence.unwrap_or(0),
    };
    let resp = call(t, &what, c.explain(request(t, msg))).await?;
    let d = client::decision(&what, resp.decision)?;
    match out {
        Output::Json => {
            let policy: Value = serde_json::from_str(&resp.policy_json).unwrap_or(Value::Null);
            let v = serde_json::json!({
                "decision": render::decision_json(&d)?,
                "policy": policy,
                "explanation": resp.explanation,
            });
            println!("{}", render::json_string(&v));
        }
        Output::Text => println!(
            "{}",
            render::explain_text(&render::to_core(&d)?, &resp.explanation)
        ),
    }
    Ok(exit::OK)
}

async fn list(t: &Target, out: Output) -> CmdResult {
    let mut c = client::connect(t).await?;
    let resp = call(
        t,
        "list funnels",
        c.list_funnels(request(t, pb::ListFunnelsRequest {})),
    )
    .await?;
    match out {
        Output::Json => {
            let v: Vec<Value> = resp
                .funnels
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "funnel": f.funnel,
                        "state": render::state_of(&pb::GateDecision { state: f.state, ..Default::default() }),
                        "allowed_rollout_percent": f.allowed_rollout_percent,
                        "blocking_stage": (!f.blocking_stage.is_empty()).then(|| f.blocking_stage.clone()),
                        "phase": if f.phase == pb::Phase::Operate as i32 { "operate" } else { "build" },
                        "since": f.since.as_ref().map(|s| timestamp_from_pb(s).to_string()),
                    })
                })
                .collect();
            println!("{}", render::json_string(&Value::Array(v)));
        }
        Output::Text => {
            if resp.funnels.is_empty() {
                println!("no funnels");
            }
            for f in &resp.funnels {
                let state = render::state_of(&pb::GateDecision {
                    state: f.state,
                    ..Default::default()
                });
                let blocking = if f.blocking_stage.is_empty() {
                    "-"
                } else {
                    f.blocking_stage.as_str()
                };
                println!(
                    "{:24} {:6} {:>4}%  blocking {blocking}",
                    f.funnel,
                    state.as_str(),
                    f.allowed_rollout_percent
                );
            }
        }
    }
    Ok(exit::OK)
}

async fn history(
    t: &Target,
    out: Output,
    funnel: &str,
    limit: u32,
    page_token: Option<String>,
    all: bool,
    verify: bool,
) -> CmdResult {
    check_funnel(funnel)?;
    if limit == 0 || limit > 1000 {
        return Err(CliError::usage("--limit must be within 1..=1000"));
    }
    let mut c = client::connect(t).await?;
    let what = format!("list decisions of `{funnel}`");
    let mut token = page_token.unwrap_or_default();
    let mut records = Vec::new();
    let mut verdict: Option<(bool, String, u64)> = None;
    let mut next;
    loop {
        let msg = pb::ListDecisionsRequest {
            funnel: funnel.to_string(),
            page_size: limit,
            page_token: token.clone(),
            verify: verify && verdict.is_none(),
        };
        let resp = call(t, &what, c.list_decisions(request(t, msg))).await?;
        if let Some(valid) = resp.chain_valid {
            verdict = Some((valid, resp.chain_error.clone(), resp.chain_length));
        }
        records.extend(resp.decisions);
        next = resp.next_page_token;
        if !all || next.is_empty() {
            break;
        }
        token = next.clone();
    }
    if verify && verdict.is_none() {
        return Err(CliError::unavailable(format!(
            "{what}: verification was asked but the coordinator did not report a result"
        )));
    }
    match out {
        Output::Json => {
            let mut v = serde_json::json!({
                "decisions": records.iter().map(render::record_json).collect::<Result<Vec<_>, _>>()?,
                "next_page_token": (!next.is_empty()).then(|| next.clone()),
            });
            if let (Some((valid, error, length)), Value::Object(map)) = (&verdict, &mut v) {
                map.insert("chain_valid".into(), Value::from(*valid));
                map.insert("chain_length".into(), Value::from(*length));
                if !error.is_empty() {
                    map.insert("chain_error".into(), Value::from(error.clone()));
                }
            }
            println!("{}", render::json_string(&v));
        }
        Output::Text => {
            if records.is_empty() {
                println!("no stored decisions for `{funnel}`");
            } else {
                println!("{}", render::RECORD_HEADER);
                for r in &records {
                    println!("{}", render::record_row(r)?);
                }
            }
            if !next.is_empty() {
                println!("more: --page-token {next} (or --all)");
            }
            if let Some((valid, error, length)) = &verdict {
                if *valid {
                    println!("hash chain verified: {length} entries");
                } else {
                    println!("hash chain broken after checking {length} entries: {error}");
                }
            }
        }
    }
    match verdict {
        Some((false, error, _)) => Err(CliError::new(
            exit::CHAIN_BROKEN,
            format!("the decision ledger of `{funnel}` does not verify: {error}"),
        )),
        _ => Ok(exit::OK),
    }
}
