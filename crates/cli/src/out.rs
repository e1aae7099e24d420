//! Writing to standard output without panicking when the reader goes away.
//!
//! Rust ignores `SIGPIPE`, so `println!` panics when stdout is a pipe whose reader has exited
//! (`funnelgate probe list | head`). Every command prints through [`outln!`] / [`out!`]
//! instead: a closed pipe ends the process quietly with the shell's convention for it, exit
//! status 141 (128 + SIGPIPE), as `yes | head` does; any other write error is reported on
//! stderr.

use std::fmt;
use std::io::{ErrorKind, Write};

/// Exit status after the reader closed our output (128 + SIGPIPE).
pub const BROKEN_PIPE_EXIT: i32 = 141;

/// Write `args` (and a newline when `newline`) to stdout, flushing it.
pub fn write(args: fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let result = out
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    if let Err(e) = result {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(BROKEN_PIPE_EXIT);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(crate::exit::FAILURE.into());
    }
}

/// `println!` that survives a closed pipe.
macro_rules! outln {
    () => {
        $crate::out::write(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*), true)
    };
}

/// `print!` that survives a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*), false)
    };
}
