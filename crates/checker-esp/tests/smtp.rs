//! `smtp.starttls` against aiosmtpd (a real SMTP server) with and without STARTTLS, and with
//! good, wrong-name and self-signed certificates made by `openssl` at test time.

#![allow(clippy::unwrap_used)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use funnelgate_checker_sdk::ProbeFactory;
use funnelgate_core::{Measurement, ProbeStatus};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (install the openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA, a leaf for mx.smtp.test (and 127.0.0.1) it signed, a leaf for another name, and a
/// self-signed certificate.
fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        // under cargo's per-target scratch directory, so `cargo clean` removes them
        let dir = tempfile::Builder::new().prefix("esp-certs-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap().keep();
        let d = dir.as_path();
        openssl(d, &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=funnelgate test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        for (name, san) in [("good", "DNS:mx.smtp.test,IP:127.0.0.1"), ("wrongname", "DNS:other.test")] {
            std::fs::write(d.join(format!("{name}.ext")), format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")).unwrap();
            openssl(d, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"), "-subj", "/CN=test leaf"]);
            openssl(d, &["x509", "-req", "-in", &format!("{name}.csr"), "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", &format!("{name}.pem"),
                "-days", "2", "-extfile", &format!("{name}.ext")]);
        }
        // self-signed, but a proper end-entity certificate for the right name
        std::fs::write(d.join("self.ext"), "subjectAltName=DNS:mx.smtp.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n").unwrap();
        openssl(d, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "self.key", "-out", "self.csr", "-subj", "/CN=mx.smtp.test"]);
        openssl(d, &["x509", "-req", "-in", "self.csr", "-signkey", "self.key", "-out", "self.pem", "-days", "2", "-extfile", "self.ext"]);
        Certs { dir }
    })
}

/// A running aiosmtpd; killed when dropped.
struct Smtpd {
    port: u16,
    _child: Child,
}

async fn smtpd(args: &[String]) -> Smtpd {
    let script = common::crate_dir().join("tests/support/smtpd.py");
    let mut child = Command::new(common::python())
        .arg(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // aiosmtpd logs a traceback for every refused handshake; keep test output readable
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("aiosmtpd starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line =
        lines.next_line().await.unwrap().unwrap_or_else(|| {
            panic!("aiosmtpd exited before it was ready ({})", script.display())
        });
    let port = line
        .strip_prefix("READY ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected aiosmtpd output {line:?}"));
    Smtpd {
        port,
        _child: child,
    }
}

async fn starttls_server(cert: &str) -> Smtpd {
    let c = certs();
    smtpd(&[
        "starttls".into(),
        c.path(&format!("{cert}.pem")),
        c.path(&format!("{cert}.key")),
    ])
    .await
}

async fn run(params: Value) -> Result<Measurement, funnelgate_checker_sdk::ProbeError> {
    let f = funnelgate_checker_esp::smtp::factory();
    let probe = f.build(&params).unwrap_or_else(|e| panic!("{params}: {e}"));
    probe.run(&common::ctx(f.kind(), params)).await
}

fn codes(m: &Measurement) -> String {
    m.evidence.get("findings").cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_valid_certificate_passes() {
    let s = starttls_server("good").await;
    let target = format!("127.0.0.1:{}", s.port);
    let m = run(json!({"hosts": [target], "tls_server_name": "mx.smtp.test", "ca_file": certs().path("ca.pem")})).await.unwrap();
    assert_eq!(
        (m.value, m.verdict),
        (Some(0.0), Some(ProbeStatus::Pass)),
        "{m:?}"
    );
    assert!(
        m.evidence[&format!("banner.{target}")].contains("funnelgate test ESMTP"),
        "{m:?}"
    );
    assert!(
        m.evidence[&format!("host.{target}")].starts_with("STARTTLS ok, TLSv1_3"),
        "{m:?}"
    );
    assert!(m.evidence[&format!("ehlo.{target}")].contains("STARTTLS"));
    // the certificate's IP SAN verifies when no name is given
    let m = run(json!({"hosts": [target], "ca_file": certs().path("ca.pem")}))
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{m:?}");
}

#[tokio::test]
async fn mx_hosts_of_a_domain_are_tested_under_their_own_name() {
    let s = starttls_server("good").await;
    let m = run(json!({"domain": "smtp.test", "port": s.port, "ca_file": certs().path("ca.pem"), "nameservers": common::nsd().nameservers()}))
        .await
        .unwrap();
    assert_eq!(
        (m.value, m.verdict),
        (Some(0.0), Some(ProbeStatus::Pass)),
        "{m:?}"
    );
    assert!(
        m.evidence
            .contains_key(&format!("host.mx.smtp.test:{}", s.port)),
        "{m:?}"
    );
    assert!(
        m.message.contains("1 MX host(s) of smtp.test"),
        "{}",
        m.message
    );
}

#[tokio::test]
async fn no_starttls_is_reported() {
    let s = smtpd(&["plain".into()]).await;
    let target = format!("127.0.0.1:{}", s.port);
    let m = run(json!({"hosts": [target]})).await.unwrap();
    assert_eq!(
        (m.value, m.verdict),
        (Some(1.0), Some(ProbeStatus::Fail)),
        "{m:?}"
    );
    assert!(
        m.message.contains("does not offer STARTTLS"),
        "{}",
        m.message
    );
    assert_eq!(m.evidence[&format!("host.{target}")], "no STARTTLS");
    let m = run(json!({"hosts": [target], "require_starttls": false}))
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Warn));
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_naming_the_tls_error() {
    let s = starttls_server("wrongname").await;
    let m = run(json!({"hosts": [format!("127.0.0.1:{}", s.port)], "tls_server_name": "mx.smtp.test", "ca_file": certs().path("ca.pem")}))
        .await
        .unwrap();
    assert_eq!(
        (m.value, m.verdict),
        (Some(1.0), Some(ProbeStatus::Fail)),
        "{m:?}"
    );
    assert!(codes(&m).contains("smtp_tls_handshake"));
    assert!(
        m.message.contains("certificate not valid for name"),
        "{}",
        m.message
    );
}

#[tokio::test]
async fn a_self_signed_certificate_fails_naming_the_tls_error() {
    let s = starttls_server("self").await;
    let m = run(json!({"hosts": [format!("127.0.0.1:{}", s.port)], "tls_server_name": "mx.smtp.test", "ca_file": certs().path("ca.pem")}))
        .await
        .unwrap();
    assert_eq!(m.verdict, Some(ProbeStatus::Fail), "{m:?}");
    assert!(m.message.contains("UnknownIssuer"), "{}", m.message);
    // and with the public roots, the test CA is unknown too
    let g = starttls_server("good").await;
    let m =
        run(json!({"hosts": [format!("127.0.0.1:{}", g.port)], "tls_server_name": "mx.smtp.test"}))
            .await
            .unwrap();
    assert!(m.message.contains("UnknownIssuer"), "{}", m.message);
}

#[tokio::test]
async fn unreachable_hosts_are_an_error_not_a_verdict() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = run(json!({"hosts": [format!("127.0.0.1:{port}")]}))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.message.contains("cannot connect to any SMTP host"),
        "{err}"
    );
    let missing = run(json!({"hosts": ["127.0.0.1:1"], "ca_file": "/nonexistent/ca.pem"}))
        .await
        .unwrap_err();
    assert!(missing.message.contains("cannot read ca_file"), "{missing}");
}
