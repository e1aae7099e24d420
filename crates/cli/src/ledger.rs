//! `funnelgate ledger verify --storage URL`: re-check the decision ledger straight from the
//! database (SQLite file or PostgreSQL URL), without a running coordinator.

use std::path::Path;

use clap::Subcommand;
use funnelgate_coordinator::Store;
use funnelgate_coordinator::config::DatabaseLocation;
use funnelgate_coordinator::store::{SqlStore, redact_url};

use crate::exit::{self, CliError, CmdResult};

/// `ledger` subcommands.
#[derive(Subcommand, Debug)]
pub enum LedgerCmd {
    /// Recompute every funnel's hash chain (or only `--funnel`s) and name the first broken link
    /// (exit 14 when a chain is broken).
    Verify {
        /// The store: a SQLite file (`path` or `sqlite://path`) or `postgres://…` URL (TLS
        /// options such as `sslmode=verify-full&sslrootcert=ca.pem` included).
        #[arg(long)]
        storage: String,
        /// Only these funnels (repeatable); default every funnel with a ledger.
        #[arg(long)]
        funnel: Vec<String>,
        /// Print JSON (`{"funnels": [{"funnel", "valid", "length", "first_error"}]}`).
        #[arg(long)]
        json: bool,
    },
}

/// Run a `ledger` subcommand.
pub async fn run(cmd: LedgerCmd) -> CmdResult {
    match cmd {
        LedgerCmd::Verify {
            storage,
            funnel,
            json,
        } => verify(&storage, funnel, json).await,
    }
}

async fn verify(storage: &str, only: Vec<String>, json: bool) -> CmdResult {
    let storage = storage.trim();
    let location = if storage.starts_with("postgres://") || storage.starts_with("postgresql://") {
        DatabaseLocation::Postgres(storage.to_string())
    } else {
        let path = Path::new(storage.strip_prefix("sqlite://").unwrap_or(storage));
        if !path.is_file() {
            return Err(CliError::usage(format!(
                "--storage `{storage}`: no such SQLite file (give a file path, `sqlite://path` or a `postgres://` URL)"
            )));
        }
        DatabaseLocation::File(path.to_path_buf())
    };
    let shown = redact_url(storage);
    let store = SqlStore::open(&location)
        .await
        .map_err(|e| CliError::unavailable(e.to_string()))?;
    let funnels = if only.is_empty() {
        store
            .funnels()
            .await
            .map_err(|e| CliError::unavailable(e.to_string()))?
    } else {
        only
    };
    let mut results = Vec::new();
    let mut broken = Vec::new();
    for f in &funnels {
        let report = store
            .verify(f)
            .await
            .map_err(|e| CliError::unavailable(e.to_string()))?;
        if !report.valid {
            broken.push(format!(
                "`{f}`: {}",
                report.first_error.clone().unwrap_or_default()
            ));
        }
        results.push((f.clone(), report));
    }
    store.close().await;
    if json {
        let v = serde_json::json!({
            "storage": shown,
            "funnels": results.iter().map(|(f, r)| serde_json::json!({
                "funnel": f,
                "valid": r.valid,
                "length": r.length,
                "first_error": r.first_error,
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        if results.is_empty() {
            println!("{shown}: no ledger entries");
        }
        for (f, r) in &results {
            match &r.first_error {
                None => println!("{f}: hash chain verified: {} entries", r.length),
                Some(e) => println!("{f}: hash chain BROKEN ({} entries stored): {e}", r.length),
            }
        }
    }
    if broken.is_empty() {
        Ok(exit::OK)
    } else {
        Err(CliError::new(
            exit::CHAIN_BROKEN,
            format!(
                "the ledger in {shown} does not verify: {}",
                broken.join("; ")
            ),
        ))
    }
}
