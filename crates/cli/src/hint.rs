//! Commands printed as hints ("next: …") exactly as they can be run from a fresh shell: the
//! program is `funnelgate` only when that name on `PATH` is this very binary; otherwise it is
//! this binary's path (e.g. `target/release/funnelgate` was run by its path and nothing put it
//! on the PATH). Arguments that need it are shell-quoted.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How to invoke this binary from a fresh shell.
pub fn program() -> &'static str {
    static PROGRAM: OnceLock<String> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let exe = std::env::current_exe().ok();
        let path = std::env::var_os("PATH");
        resolve(exe.as_deref(), path.as_deref())
    })
}

fn resolve(exe: Option<&Path>, path: Option<&std::ffi::OsStr>) -> String {
    let Some(exe) = exe else {
        return "funnelgate".to_string();
    };
    let exe_real = exe.canonicalize().unwrap_or_else(|_| exe.to_path_buf());
    if let Some(path) = path {
        for dir in std::env::split_paths(path) {
            let candidate: PathBuf = dir.join("funnelgate");
            if candidate.canonicalize().is_ok_and(|c| c == exe_real) {
                return "funnelgate".to_string();
            }
        }
    }
    quote(&exe_real.display().to_string())
}

/// `program()` followed by `args`, each quoted for a POSIX shell where needed.
pub fn command(args: &[&str]) -> String {
    let mut out = program().to_string();
    for a in args {
        out.push(' ');
        out.push_str(&quote(a));
    }
    out
}

/// Quote `s` for a POSIX shell if it has anything but safe characters.
pub fn quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'/' | b'.' | b'_' | b'-' | b':' | b'=' | b'@' | b',' | b'+'
                )
        });
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_short_name_only_when_path_finds_this_binary() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("real").join("funnelgate");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, b"").unwrap();
        let real = bin.canonicalize().unwrap().display().to_string();
        // not on PATH: the full path
        assert_eq!(resolve(Some(&bin), Some("/usr/bin:/bin".as_ref())), real);
        // a symlink named funnelgate on PATH that points at it: the short name
        let on_path = dir.path().join("bin");
        std::fs::create_dir_all(&on_path).unwrap();
        std::os::unix::fs::symlink(&bin, on_path.join("funnelgate")).unwrap();
        let path = std::env::join_paths([Path::new("/usr/bin"), &on_path]).unwrap();
        assert_eq!(resolve(Some(&bin), Some(&path)), "funnelgate");
    }

    #[test]
    fn quoting() {
        assert_eq!(
            quote("acme-demo/funnelgate.toml"),
            "acme-demo/funnelgate.toml"
        );
        assert_eq!(quote("my demo"), "'my demo'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("http://127.0.0.1:7070"), "http://127.0.0.1:7070");
    }
}
