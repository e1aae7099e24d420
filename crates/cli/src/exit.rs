//! Exit codes (documented in `docs/cli.md` and `funnelgate --help`) and the one CLI error type.

use std::fmt;

/// Success; for `gate check`/`gate wait`: the gate is OPEN.
pub const OK: u8 = 0;
/// A server command (`up`, `coordinator`, `checker`) failed at run time (bind, store, checker).
pub const FAILURE: u8 = 1;
/// The gate HOLDs (for `probe run`: the probe reported NO_DATA).
pub const HOLD: u8 = 10;
/// The gate is CLOSED (for `probe run`: the probe FAILed).
pub const CLOSED: u8 = 11;
/// The server could not be reached or answered with an error (for `probe run`: ERROR).
pub const UNAVAILABLE: u8 = 12;
/// The funnel (or stored decision) does not exist.
pub const NOT_FOUND: u8 = 13;
/// `gate history --verify`: the decision ledger's hash chain does not verify.
pub const CHAIN_BROKEN: u8 = 14;
/// Bad usage or configuration (sysexits `EX_USAGE`).
pub const USAGE: u8 = 64;
/// Not authenticated or not allowed (sysexits `EX_NOPERM`).
pub const NO_PERMISSION: u8 = 77;

/// The exit-code table shown at the end of `funnelgate --help`.
pub const HELP_TABLE: &str = "\
Exit codes:
   0  success; `gate check`/`gate wait`: the gate is OPEN
   1  a server command (up, coordinator, checker) failed while running
  10  the gate HOLDs (probe run: NO_DATA)
  11  the gate is CLOSED (probe run: FAIL)
  12  the coordinator is unreachable or answered with an error (probe run: ERROR)
  13  no such funnel or decision
  14  gate history --verify: the hash chain is broken
  64  bad usage or configuration
  77  unauthenticated or permission denied (check --token / FUNNELGATE_TOKEN)";

/// An error to print (one line, lowercase, what and why) and the code to exit with.
#[derive(Debug)]
pub struct CliError {
    /// Process exit code.
    pub code: u8,
    /// What went wrong and why.
    pub message: String,
}

impl CliError {
    /// An error with an explicit exit code.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }

    /// Bad usage or configuration (exit 64).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(USAGE, message)
    }

    /// A run-time failure of a server command (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        CliError::new(FAILURE, message)
    }

    /// The server could not be reached or failed (exit 12).
    pub fn unavailable(message: impl Into<String>) -> Self {
        CliError::new(UNAVAILABLE, message)
    }

    /// Map a gRPC status from the coordinator to an exit code; `what` says what was attempted.
    pub fn from_status(what: &str, status: &tonic::Status) -> Self {
        use tonic::Code;
        let code = match status.code() {
            Code::NotFound => NOT_FOUND,
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => USAGE,
            Code::Unauthenticated | Code::PermissionDenied => NO_PERMISSION,
            _ => UNAVAILABLE,
        };
        let detail = if status.message().is_empty() {
            format!("{:?}", status.code()).to_lowercase()
        } else {
            status.message().to_string()
        };
        let hint = match status.code() {
            Code::Unauthenticated => " (pass --token or set FUNNELGATE_TOKEN)",
            Code::Unavailable if detail.contains("transport") || detail.contains("connect") => {
                " (is the coordinator running? see --server / FUNNELGATE_SERVER)"
            }
            _ => "",
        };
        CliError::new(code, format!("{what}: {detail}{hint}"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Join an error with its sources: `a: b: c` (transport errors hide the useful part in sources).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = e.source();
    }
    out
}

/// Result of a CLI command: the exit code on success (e.g. 10 for a HOLDing gate), an error
/// otherwise.
pub type CmdResult = Result<u8, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_documented_codes() {
        let code =
            |c: tonic::Code| CliError::from_status("get gate", &tonic::Status::new(c, "why")).code;
        assert_eq!(code(tonic::Code::NotFound), NOT_FOUND);
        assert_eq!(code(tonic::Code::InvalidArgument), USAGE);
        assert_eq!(code(tonic::Code::Unauthenticated), NO_PERMISSION);
        assert_eq!(code(tonic::Code::PermissionDenied), NO_PERMISSION);
        assert_eq!(code(tonic::Code::Unavailable), UNAVAILABLE);
        assert_eq!(code(tonic::Code::Internal), UNAVAILABLE);
        let e = CliError::from_status(
            "get gate of `x`",
            &tonic::Status::unauthenticated("missing token"),
        );
        assert_eq!(
            e.message,
            "get gate of `x`: missing token (pass --token or set FUNNELGATE_TOKEN)"
        );
    }

    #[test]
    fn help_table_lists_every_code() {
        for c in [
            OK,
            FAILURE,
            HOLD,
            CLOSED,
            UNAVAILABLE,
            NOT_FOUND,
            CHAIN_BROKEN,
            USAGE,
            NO_PERMISSION,
        ] {
            assert!(
                HELP_TABLE.contains(&format!("{c:>4}  ")),
                "exit code {c} is not documented in --help"
            );
        }
    }

    #[test]
    fn docs_list_every_code() {
        let docs = include_str!("../../../docs/cli.md");
        for c in [
            OK,
            FAILURE,
            HOLD,
            CLOSED,
            UNAVAILABLE,
            NOT_FOUND,
            CHAIN_BROKEN,
            USAGE,
            NO_PERMISSION,
        ] {
            assert!(
                docs.contains(&format!("\n| {c} |")),
                "exit code {c} is not in docs/cli.md"
            );
        }
    }
}
