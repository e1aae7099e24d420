//! `funnelgate`: the one binary. Parse, validate, init telemetry, run the command, exit with its
//! documented code (see `exit.rs` and docs/cli.md). Every command lives in a module beside this one.

#[macro_use]
mod out;

mod client;
mod config_cmd;
mod exit;
mod gate;
mod hint;
mod ledger;
mod plugins;
mod probe_cmd;
mod quickstart;
mod quickstart_site;
mod render;
mod serve;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use funnelgate_server::LogFormat;

use crate::exit::CliError;

/// funnelgate tells a marketing team whether its funnel is ready for paid traffic.
///
/// Start everything on one machine with `funnelgate up --config funnelgate.toml`, then ask the
/// gate with `funnelgate gate status <funnel>`; gate a CI/CD pipeline with
/// `funnelgate gate wait <funnel> --until open --timeout 15m`.
///
/// Try it offline: `funnelgate quickstart init demo`, then
/// `funnelgate up --config demo/funnelgate.toml` (seconds with a built binary; building it from
/// source the first time — `scripts/quickstart.sh` — takes about ten minutes on two cores).
/// Docs: docs/cli.md, examples/quickstart.
#[derive(Parser, Debug)]
#[command(name = "funnelgate", version, after_help = exit::HELP_TABLE, disable_help_subcommand = true)]
struct Cli {
    /// Log filter (RUST_LOG syntax), e.g. `info` or `funnelgate_coordinator=debug`.
    #[arg(long, global = true, env = "FUNNELGATE_LOG")]
    log: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the coordinator and all four stage checkers in one process (SQLite; one machine).
    Up(serve::UpArgs),
    /// Run the coordinator alone (checkers at the endpoints in `[checkers.*]`).
    Coordinator(serve::CoordinatorArgs),
    /// Run one stage checker alone.
    Checker(serve::CheckerArgs),
    /// Ask about, wait for and change a funnel's gate (talks to a coordinator over gRPC).
    #[command(after_help = exit::HELP_TABLE)]
    Gate {
        #[command(subcommand)]
        cmd: gate::GateCmd,
        #[command(flatten)]
        client: gate::ClientArgs,
    },
    /// Check a configuration file.
    Config {
        #[command(subcommand)]
        cmd: config_cmd::ConfigCmd,
    },
    /// List probe kinds, or run one probe here as a checker would.
    Probe {
        #[command(subcommand)]
        cmd: probe_cmd::ProbeCmd,
    },
    /// Verify the decision ledger straight from the database (no coordinator needed).
    Ledger {
        #[command(subcommand)]
        cmd: ledger::LedgerCmd,
    },
    /// Set up the offline quickstart (a broken marketing warehouse in SQLite) and fix it.
    Quickstart {
        #[command(subcommand)]
        cmd: quickstart::QuickstartCmd,
    },
}

impl Command {
    /// Server commands log at `info`; client commands only show warnings (their output is the point).
    fn default_log(&self) -> &'static str {
        match self {
            Command::Up(_) | Command::Coordinator(_) | Command::Checker(_) => "info",
            _ => "warn",
        }
    }
}

async fn run(cmd: Command) -> exit::CmdResult {
    match cmd {
        Command::Up(args) => serve::up(args).await,
        Command::Coordinator(args) => serve::coordinator(args).await,
        Command::Checker(args) => serve::checker(args).await,
        Command::Gate { cmd, client } => gate::run(cmd, &client).await,
        Command::Config { cmd } => config_cmd::run(cmd).await,
        Command::Probe { cmd } => probe_cmd::run(cmd).await,
        Command::Quickstart { cmd } => quickstart::run(cmd).await,
        Command::Ledger { cmd } => ledger::run(cmd).await,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(exit::USAGE),
            };
        }
    };
    let format = match cli.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    };
    funnelgate_server::init_tracing(
        Some(cli.log.as_deref().unwrap_or(cli.command.default_log())),
        format,
    );

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(CliError::failure(format!(
                "cannot start the async runtime: {e}"
            )));
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(e),
    }
}

fn fail(e: CliError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.code)
}
