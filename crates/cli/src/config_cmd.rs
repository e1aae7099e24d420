//! `funnelgate config validate F [--with-checkers]`.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Subcommand;

use crate::exit::{self, CmdResult};
use crate::serve::BuiltinCheckers;

/// `config` subcommands.
#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Load and validate a configuration; print every problem as `file: key: reason` (exit 64).
    Validate {
        /// The configuration file (TOML or YAML).
        file: PathBuf,
        /// Also ask every configured checker what it supports (`Describe`) and check each probe's
        /// kind and params against it (needs the checkers running).
        #[arg(long)]
        with_checkers: bool,
        /// Validate the file as `funnelgate up` runs it: the built-in checkers are added (with
        /// --with-checkers they are started in this process and asked).
        #[arg(long)]
        up: bool,
    },
}

/// Run a `config` subcommand.
pub async fn run(cmd: ConfigCmd) -> CmdResult {
    match cmd {
        ConfigCmd::Validate {
            file,
            with_checkers,
            up,
        } => {
            let env: HashMap<String, String> = std::env::vars().collect();
            let mut config = match funnelgate_coordinator::config::load(&file, &env) {
                Ok(c) => c,
                Err(e) => return Ok(report(&e)),
            };
            let builtin = if up {
                Some(BuiltinCheckers::start(&mut config, &env, None).await?)
            } else {
                None
            };
            let checked = if with_checkers {
                // Here a checker that does not answer is a finding: the user asked to check
                // against the checkers (the coordinator itself would start and hold).
                funnelgate_coordinator::preflight(&config, &env)
                    .await
                    .and_then(|p| {
                        let issues = p.unreachable_issues();
                        if issues.is_empty() {
                            Ok(())
                        } else {
                            Err(funnelgate_coordinator::ConfigError {
                                file: config.file_label(),
                                issues,
                            })
                        }
                    })
            } else {
                config.validate()
            };
            if let Some(b) = builtin {
                b.stop().await?;
            }
            if let Err(e) = checked {
                let code = report(&e);
                if !up
                    && e.issues
                        .iter()
                        .any(|i| i.reason.contains("has no [checkers."))
                {
                    eprintln!(
                        "hint: a config for `funnelgate up` lists no checkers: validate it with --up"
                    );
                }
                return Ok(code);
            }
            let stages: usize = config.funnels.iter().map(|f| f.stages.len()).sum();
            let probes: usize = config
                .funnels
                .iter()
                .flat_map(|f| &f.stages)
                .map(|s| s.probes.len())
                .sum();
            println!(
                "{}: ok ({} funnels, {stages} stages, {probes} probes{})",
                file.display(),
                config.funnels.len(),
                if with_checkers {
                    ", checked against the checkers"
                } else {
                    ""
                }
            );
            Ok(exit::OK)
        }
    }
}

/// Print every issue on its own line (`file: key: reason`) and return exit 64.
fn report(e: &funnelgate_coordinator::ConfigError) -> u8 {
    eprintln!("{e}");
    exit::USAGE
}
