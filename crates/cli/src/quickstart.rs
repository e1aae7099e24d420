//! `funnelgate quickstart init DIR` and `funnelgate quickstart fix DIR`: the offline quickstart
//! (examples/quickstart) needs nothing but this binary, so the example files and the SQL that
//! builds the "marketing warehouse" are embedded, and the SQLite file is written with sqlx.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use crate::exit::{self, CliError, CmdResult};

/// The quickstart configuration (examples/quickstart/funnelgate.toml).
pub const CONFIG: &str = include_str!("../../../examples/quickstart/funnelgate.toml");
/// Schema and seed of the broken warehouse.
pub const WAREHOUSE_SQL: &str = include_str!("../../../examples/quickstart/warehouse.sql");
/// The data fixes that open the gate.
pub const FIX_SQL: &str = include_str!("../../../examples/quickstart/fix.sql");

const DEFAULT_GRPC: &str = "127.0.0.1:7070";
const DEFAULT_HTTP: &str = "127.0.0.1:7080";

/// `quickstart` subcommands.
#[derive(Subcommand, Debug)]
pub enum QuickstartCmd {
    /// Write the quickstart into DIR: funnelgate.toml, warehouse.sql, fix.sql and a fresh
    /// warehouse.db (an existing funnelgate.toml is kept unless --force).
    Init {
        /// Where to put it.
        #[arg(default_value = "funnelgate-quickstart")]
        dir: PathBuf,
        /// Overwrite an existing funnelgate.toml.
        #[arg(long)]
        force: bool,
        /// Coordinator gRPC address written into the config.
        #[arg(long, default_value = DEFAULT_GRPC)]
        grpc_listen: String,
        /// Coordinator HTTP address written into the config (the http probe checks its /healthz).
        #[arg(long, default_value = DEFAULT_HTTP)]
        http_listen: String,
    },
    /// Serve the demo's landing pages (DIR/site) for the analytics stage's tag audit.
    Site {
        /// The quickstart directory.
        #[arg(default_value = "funnelgate-quickstart")]
        dir: PathBuf,
        /// Address to serve on (the quickstart config audits http://127.0.0.1:7090/).
        #[arg(long, default_value = crate::quickstart_site::DEFAULT_LISTEN)]
        listen: String,
    },
    /// Apply DIR/fix.sql (or the built-in fixes) to DIR/warehouse.db: the gate then opens.
    Fix {
        /// The quickstart directory.
        #[arg(default_value = "funnelgate-quickstart")]
        dir: PathBuf,
    },
}

/// Run a `quickstart` subcommand.
pub async fn run(cmd: QuickstartCmd) -> CmdResult {
    match cmd {
        QuickstartCmd::Init {
            dir,
            force,
            grpc_listen,
            http_listen,
        } => init(&dir, force, &grpc_listen, &http_listen).await,
        QuickstartCmd::Site { dir, listen } => crate::quickstart_site::serve(&dir, &listen).await,
        QuickstartCmd::Fix { dir } => fix(&dir).await,
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> CliError {
    CliError::failure(format!("cannot {what} {}: {e}", path.display()))
}

/// The config with absolute paths and the chosen addresses.
pub fn render_config(db: &Path, grpc_listen: &str, http_listen: &str) -> String {
    let db = db
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    CONFIG
        .replace(
            "sqlite_path = \"warehouse.db\"",
            &format!("sqlite_path = \"{db}\""),
        )
        .replace(DEFAULT_GRPC, grpc_listen)
        .replace(DEFAULT_HTTP, http_listen)
}

async fn exec(db: &Path, create: bool, sql: &str) -> Result<(), CliError> {
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(create)
        .connect()
        .await
        .map_err(|e| CliError::failure(format!("cannot open {}: {e}", db.display())))?;
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .map_err(|e| CliError::failure(format!("cannot apply sql to {}: {e}", db.display())))?;
    conn.close()
        .await
        .map_err(|e| CliError::failure(format!("cannot close {}: {e}", db.display())))
}

async fn init(dir: &Path, force: bool, grpc_listen: &str, http_listen: &str) -> CmdResult {
    std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    let dir = std::path::absolute(dir).map_err(|e| io_err("resolve", dir, e))?;
    let db = dir.join("warehouse.db");
    let config = dir.join("funnelgate.toml");
    if config.exists() && !force {
        println!("kept {} (use --force to overwrite)", config.display());
    } else {
        std::fs::write(&config, render_config(&db, grpc_listen, http_listen))
            .map_err(|e| io_err("write", &config, e))?;
        println!("wrote {}", config.display());
    }
    for (name, text) in [("warehouse.sql", WAREHOUSE_SQL), ("fix.sql", FIX_SQL)] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| io_err("write", &path, e))?;
        println!("wrote {}", path.display());
    }
    let site = crate::quickstart_site::write(&dir)?;
    println!(
        "wrote {} (landing pages for the analytics stage)",
        site.display()
    );
    for stale in [
        "warehouse.db",
        "warehouse.db-journal",
        "warehouse.db-wal",
        "warehouse.db-shm",
    ] {
        let path = dir.join(stale);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &path, e)),
        }
    }
    exec(&db, true, WAREHOUSE_SQL).await?;
    println!(
        "created {} (a marketing warehouse with a broken funnel)",
        db.display()
    );
    println!("\nnext:\n  funnelgate up --config {}", config.display());
    Ok(exit::OK)
}

async fn fix(dir: &Path) -> CmdResult {
    let db = dir.join("warehouse.db");
    if !db.exists() {
        return Err(CliError::usage(format!(
            "{} does not exist: run `funnelgate quickstart init {}` first",
            db.display(),
            dir.display()
        )));
    }
    let script_path = dir.join("fix.sql");
    let script = match std::fs::read_to_string(&script_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FIX_SQL.to_string(),
        Err(e) => return Err(io_err("read", &script_path, e)),
    };
    exec(&db, false, &script).await?;
    println!(
        "applied the fixes to {}: watch the gate open with",
        db.display()
    );
    println!("  funnelgate gate wait acme --until open --timeout 3m");
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_renders_absolute_paths_and_addresses() {
        let c = render_config(
            Path::new("/tmp/q/warehouse.db"),
            "127.0.0.1:1",
            "127.0.0.1:2",
        );
        assert!(c.contains("sqlite_path = \"/tmp/q/warehouse.db\""));
        assert!(!c.contains("sqlite_path = \"warehouse.db\""));
        assert!(c.contains("http://127.0.0.1:2/healthz"));
        assert!(c.contains("grpc_listen = \"127.0.0.1:1\""));
    }
}
