//! Real peers for the esp checker's integration tests: an nsd authoritative server serving the
//! zones in `tests/zones/` (started once per test binary, stopped when the binary exits), the
//! repo's Python virtualenv for checkdmarc and aiosmtpd, and `openssl` for test certificates.
#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use funnelgate_checker_sdk::{ProbeContext, SecretStore};
use funnelgate_core::ProbeSpec;

/// The crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root (two levels above the crate).
pub fn repo_root() -> PathBuf {
    crate_dir().join("../..")
}

/// The Python of the repo's virtualenv (`FUNNELGATE_PYTHON` overrides). Fails, never skips,
/// when it is missing.
pub fn python() -> PathBuf {
    let p = std::env::var_os("FUNNELGATE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "python for the esp tests not found at {} — create the virtualenv (python3 -m venv .venv && .venv/bin/pip install \
         -r scripts/python-requirements.txt) or set FUNNELGATE_PYTHON",
        p.display()
    );
    p
}

/// A running nsd serving the test zones on 127.0.0.1.
pub struct Nsd {
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    // The wrapper shell: nsd is killed (and its temp dir removed) when our end of its stdin closes,
    // i.e. when this test binary exits.
    _guard: Mutex<Child>,
}

impl Nsd {
    /// The `nameservers` param value pointing at this server.
    pub fn nameservers(&self) -> Vec<String> {
        vec![self.addr.to_string()]
    }
}

static NSD: OnceLock<Nsd> = OnceLock::new();

/// The shared nsd of this test binary, started on first use.
pub fn nsd() -> &'static Nsd {
    NSD.get_or_init(|| {
        let mut last = String::new();
        for _ in 0..5 {
            match start_nsd() {
                Ok(n) => return n,
                Err(e) => last = e,
            }
        }
        panic!("cannot start nsd: {last}")
    })
}

fn free_port() -> Result<u16, String> {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = udp.local_addr().map_err(|e| e.to_string())?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port with both udp and tcp".into())
}

fn start_nsd() -> Result<Nsd, String> {
    let bin = std::env::var_os("FUNNELGATE_NSD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nsd"));
    if !bin.exists() {
        return Err(format!(
            "{} not found: install the Debian package nsd (or set FUNNELGATE_NSD)",
            bin.display()
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("fg-esp-nsd-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let zones = crate_dir().join("tests/zones");
    let port = free_port()?;
    let conf = format!(
        r#"server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    do-ip6: no
    server-count: 1
    reuseport: no
    verbosity: 1
    username: ""
    database: ""
    zonesdir: "{dir}"
    pidfile: "{dir}/nsd.pid"
    zonelistfile: "{dir}/zone.list"
    xfrdfile: "{dir}/xfrd.state"
    xfrdir: "{dir}"
    logfile: "{dir}/nsd.log"
remote-control:
    control-enable: no
zone:
    name: "test"
    zonefile: "{zones}/test.zone"
zone:
    name: "broken.test"
    zonefile: "{dir}/broken.test.zone-never-written"
zone:
    name: "113.0.203.in-addr.arpa"
    zonefile: "{zones}/113.0.203.in-addr.arpa.zone"
zone:
    name: "8.b.d.0.1.0.0.2.ip6.arpa"
    zonefile: "{zones}/8.b.d.0.1.0.0.2.ip6.arpa.zone"
"#,
        dir = dir.display(),
        zones = zones.display()
    );
    let conf_path = dir.join("nsd.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let script = r#""$1" -d -c "$2" >"$3/nsd.out" 2>&1 & pid=$!; read _line; kill $pid 2>/dev/null; wait $pid; rm -rf "$3""#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("fg-esp-nsd")
        .arg(&bin)
        .arg(&conf_path)
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn nsd: {e}"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if soa_answers(addr) {
            return Ok(Nsd {
                addr,
                _guard: Mutex::new(child),
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let out = std::fs::read_to_string(dir.join("nsd.out")).unwrap_or_default();
            return Err(format!("nsd exited ({status}) before answering: {out}"));
        }
    }
    let out = std::fs::read_to_string(dir.join("nsd.out")).unwrap_or_default();
    let _ = child.stdin.take().map(|mut s| s.write_all(b"stop\n"));
    Err(format!(
        "nsd did not answer a SOA query for test. within 20s: {out}"
    ))
}

/// Send one `test. SOA` query; true when an answer with records comes back.
fn soa_answers(addr: SocketAddr) -> bool {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let mut q = vec![0x46, 0x47, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(&[4, b't', b'e', b's', b't', 0, 0, 6, 0, 1]);
    if sock.send_to(&q, addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => {
            n > 12
                && buf[0] == 0x46
                && buf[1] == 0x47
                && (buf[3] & 0x0f) == 0
                && (buf[6] != 0 || buf[7] != 0)
        }
        Err(_) => false,
    }
}

/// A probe context for a spec of `kind` with `params`.
pub fn ctx(kind: &str, params: serde_json::Value) -> ProbeContext {
    let mut spec = ProbeSpec::new(format!("test-{}", kind.replace('.', "-")), kind);
    spec.params = params;
    let http = funnelgate_checker_sdk::default_http_client().expect("http client builds");
    ProbeContext {
        spec: Arc::new(spec),
        secrets: SecretStore::default(),
        http,
    }
}

/// Run a Python script from `tests/support/` with the venv's interpreter; stdout on success.
pub fn run_python(script: &str, args: &[String]) -> String {
    let path = crate_dir().join("tests/support").join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python output is utf-8")
}

/// Path helper for messages.
pub fn show(p: &Path) -> String {
    p.display().to_string()
}
