//! No command panics when its output is closed early (`funnelgate probe list | head`).

use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    for args in [
        &["probe", "list"][..],
        &["probe", "list", "--output", "json"][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_funnelgate"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn funnelgate");
        // Read one byte, then close the pipe as `head -c1` would.
        let mut stdout = child.stdout.take().expect("stdout");
        let mut first = [0u8; 1];
        stdout.read_exact(&mut first).expect("some output");
        drop(stdout);
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read stderr");
        let status = child.wait().expect("wait");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // Either it finished writing before the pipe closed (0) or it stopped at the closed
        // pipe with the shell's convention for it (141), never a panic (101).
        assert!(
            matches!(status.code(), Some(0) | Some(141)),
            "{args:?}: {status:?}: {stderr}"
        );
    }
}

#[test]
fn a_large_listing_into_a_closed_pipe_stops_with_141() {
    // The listing is far larger than a pipe buffer (64 KiB): with the reader gone the write
    // fails with EPIPE, which must end the process with 141 and no panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_funnelgate"))
        .args(["probe", "list", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn funnelgate");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}
