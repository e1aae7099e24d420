//! `funnelgate quickstart init DIR` and `funnelgate quickstart fix DIR`: the offline quickstart
//! (examples/quickstart) needs nothing but this binary, so the example files and the SQL that
//! builds the "marketing warehouse" are embedded, and the SQLite file is written with sqlx.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use crate::exit::{self, CliError, CmdResult};
use crate::hint;

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
        outln!("kept {} (use --force to overwrite)", config.display());
    } else {
        std::fs::write(&config, render_config(&db, grpc_listen, http_listen))
            .map_err(|e| io_err("write", &config, e))?;
        outln!("wrote {}", config.display());
    }
    for (name, text) in [("warehouse.sql", WAREHOUSE_SQL), ("fix.sql", FIX_SQL)] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| io_err("write", &path, e))?;
        outln!("wrote {}", path.display());
    }
    let site = crate::quickstart_site::write(&dir)?;
    outln!(
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
    outln!(
        "created {} (a marketing warehouse with a broken funnel)",
        db.display()
    );
    let config_arg = config.display().to_string();
    outln!(
        "\nnext: start the coordinator and the four checkers (leave it running):\n  {}",
        hint::command(&["up", "--config", &config_arg])
    );
    Ok(exit::OK)
}

/// One block of a fix script: the stage its leading `-- <stage>: …` comment names, what the
/// comment says, and its statements.
#[derive(Debug, Default, PartialEq)]
struct FixStep {
    stage: String,
    what: String,
    statements: Vec<String>,
}

/// Split a fix script into steps: a comment `-- <stage>: <what>` (continued on the following
/// comment lines) starts a step; its statements end with `;` at the end of a line.
fn fix_steps(script: &str) -> Vec<FixStep> {
    let mut steps: Vec<FixStep> = Vec::new();
    let mut current = FixStep::default();
    let mut statement = String::new();
    let mut in_header = false;
    for line in script.lines() {
        let trimmed = line.trim();
        if let Some(comment) = trimmed.strip_prefix("--") {
            let comment = comment.trim();
            let header = comment.split_once(':').filter(|(stage, _)| {
                !stage.is_empty()
                    && stage
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
            match header {
                Some((stage, what)) if statement.trim().is_empty() => {
                    if !current.statements.is_empty() || !current.stage.is_empty() {
                        steps.push(std::mem::take(&mut current));
                    }
                    current.stage = stage.to_string();
                    current.what = what.trim().to_string();
                    in_header = true;
                }
                _ if in_header && !comment.is_empty() => {
                    current.what.push(' ');
                    current.what.push_str(comment);
                }
                _ => {}
            }
            continue;
        }
        in_header = false;
        if trimmed.is_empty() {
            continue;
        }
        statement.push_str(line);
        statement.push('\n');
        if trimmed.ends_with(';') {
            current.statements.push(std::mem::take(&mut statement));
        }
    }
    if !statement.trim().is_empty() {
        current.statements.push(statement);
    }
    if !current.statements.is_empty() {
        steps.push(current);
    }
    steps.retain(|s| !s.statements.is_empty());
    steps
}

async fn fix(dir: &Path) -> CmdResult {
    let db = dir.join("warehouse.db");
    if !db.exists() {
        return Err(CliError::usage(format!(
            "{} does not exist: run `{}` first",
            db.display(),
            hint::command(&["quickstart", "init", &dir.display().to_string()])
        )));
    }
    let script_path = dir.join("fix.sql");
    let (script, source) = match std::fs::read_to_string(&script_path) {
        Ok(s) => (s, script_path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (FIX_SQL.to_string(), "the built-in fixes".to_string())
        }
        Err(e) => return Err(io_err("read", &script_path, e)),
    };
    let steps = fix_steps(&script);
    let mut conn = SqliteConnectOptions::new()
        .filename(&db)
        .connect()
        .await
        .map_err(|e| CliError::failure(format!("cannot open {}: {e}", db.display())))?;
    // All or nothing: a failing statement leaves the warehouse as it was.
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| CliError::failure(format!("cannot write {}: {e}", db.display())))?;
    let mut changed = Vec::new();
    for step in &steps {
        let mut rows = 0u64;
        for statement in &step.statements {
            let done = sqlx::raw_sql(AssertSqlSafe(statement.as_str()))
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    CliError::failure(format!(
                        "cannot apply {source} to {} (nothing was changed): {e}\nin: {}",
                        db.display(),
                        statement.trim()
                    ))
                })?;
            rows += done.rows_affected();
        }
        changed.push(rows);
    }
    tx.commit()
        .await
        .map_err(|e| CliError::failure(format!("cannot commit to {}: {e}", db.display())))?;
    conn.close()
        .await
        .map_err(|e| CliError::failure(format!("cannot close {}: {e}", db.display())))?;

    outln!("applied {source} to {}:", db.display());
    for (step, rows) in steps.iter().zip(&changed) {
        let stage = if step.stage.is_empty() {
            "(no stage)"
        } else {
            step.stage.as_str()
        };
        let plural = if *rows == 1 { "" } else { "s" };
        outln!(
            "  {stage:<11} {rows:>4} record{plural} changed: {}",
            step.what
        );
    }
    let stages: Vec<&str> = steps
        .iter()
        .map(|s| s.stage.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    outln!(
        "\nwhat happens next: at their next check (every few seconds in this demo) the stages {} \
         turn HEALTHY, bottom-up; the gate HOLDs at the 5% pilot share while it soaks (15s and two \
         healthy evaluations here), then OPENs at the first ramp step (10%).",
        stages.join(", ")
    );
    let mut args = vec!["gate", "wait", "acme", "--until", "open", "--timeout", "3m"];
    let server = server_of(dir);
    if let Some(server) = &server {
        args.extend(["--server", server.as_str()]);
    }
    outln!("watch it happen:\n  {}", hint::command(&args));
    Ok(exit::OK)
}

/// `--server` for the quickstart in `dir` when its coordinator is not on the default address.
fn server_of(dir: &Path) -> Option<String> {
    let config = funnelgate_coordinator::config::load(
        &dir.join("funnelgate.toml"),
        &std::collections::HashMap::new(),
    )
    .ok()?;
    let grpc = config.coordinator.grpc_listen.trim().to_string();
    (grpc != DEFAULT_GRPC).then(|| format!("http://{grpc}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_fix_script_splits_into_stages() {
        let steps = fix_steps(FIX_SQL);
        let stages: Vec<&str> = steps.iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(stages, vec!["crm", "automation", "esp", "analytics"]);
        assert_eq!(steps[0].statements.len(), 3);
        assert!(
            steps[0]
                .what
                .starts_with("route every unassigned lead to a rep"),
            "{:?}",
            steps[0]
        );
        assert!(steps[0].what.contains("campaign column"), "{:?}", steps[0]);
        assert_eq!(steps[3].statements.len(), 1);
        let total: usize = steps.iter().map(|s| s.statements.len()).sum();
        assert_eq!(
            total,
            FIX_SQL.matches(";\n").count()
                + usize::from(FIX_SQL.trim_end().ends_with(';') && !FIX_SQL.ends_with(";\n"))
        );
    }

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
