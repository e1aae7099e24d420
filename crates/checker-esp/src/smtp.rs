//! SMTP of a domain's MX hosts (or given hosts): connect, read the banner, EHLO, and when the
//! server offers STARTTLS, upgrade and verify its certificate (webpki roots, or a configured CA
//! file), then EHLO again over TLS. Gmail requires TLS for transmission; a host without
//! STARTTLS receives mail in clear text, and one with a broken certificate fails any sender
//! that verifies (MTA-STS enforce).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use funnelgate_checker_sdk::{Probe, ProbeContext, ProbeError, ProbeFactory, TypedFactory};
use funnelgate_core::Measurement;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;

use crate::dns::{Answer, Dns, parse_nameservers, validate_domain};
use crate::findings::{Findings, Level, measurement};
use crate::mx;

/// At most this many lines in one reply, and bytes in one line.
const MAX_REPLY_LINES: usize = 100;
const MAX_LINE: usize = 4096;

/// One SMTP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line (after `code-` / `code `).
    pub lines: Vec<String>,
}

/// Read one (possibly multi-line) reply (RFC 5321 §4.2).
pub async fn read_reply<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Reply, String> {
    let mut lines = Vec::new();
    loop {
        let mut buf = Vec::new();
        let n = (&mut *r)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        let line = String::from_utf8_lossy(&buf)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        if line.len() < 3 || !line.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
            return Err(format!("not an SMTP reply: {line:?}"));
        }
        let code: u16 = line[..3]
            .parse()
            .map_err(|_| format!("not an SMTP reply: {line:?}"))?;
        let sep = line.as_bytes().get(3).copied();
        lines.push(line.get(4..).unwrap_or("").to_string());
        match sep {
            Some(b'-') if lines.len() < MAX_REPLY_LINES => continue,
            Some(b'-') => return Err("the reply has too many lines".into()),
            _ => return Ok(Reply { code, lines }),
        }
    }
}

async fn command<S: AsyncBufRead + AsyncWrite + Unpin>(
    s: &mut S,
    cmd: &str,
) -> Result<Reply, String> {
    s.write_all(format!("{cmd}\r\n").as_bytes())
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    s.flush().await.map_err(|e| format!("write failed: {e}"))?;
    read_reply(s).await
}

/// What talking to one host showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostReport {
    /// `host:port` as tested.
    pub target: String,
    /// The address connected to.
    pub address: Option<SocketAddr>,
    /// The banner (first line of the 220 greeting).
    pub banner: Option<String>,
    /// EHLO extensions (keywords, upper case).
    pub extensions: Vec<String>,
    /// STARTTLS was offered.
    pub starttls: bool,
    /// TLS version and cipher suite after a verified handshake.
    pub tls: Option<String>,
    /// Could not connect at all.
    pub unreachable: bool,
    /// What is wrong or notable.
    pub findings: Findings,
}

/// How to verify certificates.
#[derive(Clone)]
pub struct TlsSettings {
    /// The client config (roots, protocol versions).
    pub config: Arc<rustls::ClientConfig>,
    /// Name to verify instead of the host's own.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// A rustls client config trusting the webpki roots, or only the certificates in `ca_pem`.
pub fn tls_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("cannot read the CA file: {e}"))?;
            if certs.is_empty() {
                return Err("the CA file holds no certificate".into());
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("cannot use a certificate of the CA file: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure tls: {e}"))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// Talk to one host: banner, EHLO, STARTTLS, verified handshake, EHLO over TLS, QUIT.
pub async fn check_host(
    target: &str,
    addresses: &[SocketAddr],
    name: &str,
    ehlo: &str,
    tls: &TlsSettings,
    step_timeout: Duration,
    require_starttls: bool,
) -> HostReport {
    let mut r = HostReport {
        target: target.to_string(),
        ..Default::default()
    };
    let mut stream = None;
    let mut last_err = String::from("no address to connect to");
    for a in addresses {
        match tokio::time::timeout(step_timeout, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                r.address = Some(*a);
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last_err = e.to_string(),
            Err(_) => last_err = "connection timed out".into(),
        }
    }
    let Some(stream) = stream else {
        r.unreachable = true;
        r.findings.warn(
            "smtp_unreachable",
            format!("cannot connect to {target}: {last_err}"),
        );
        return r;
    };
    let mut s = BufReader::new(stream);
    let step = |what: &'static str, e: String| format!("{target}: {what}: {e}");
    macro_rules! timed {
        ($what:expr, $fut:expr) => {
            match tokio::time::timeout(step_timeout, $fut).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    r.findings.fail("smtp_protocol", step($what, e));
                    return r;
                }
                Err(_) => {
                    r.findings.fail(
                        "smtp_timeout",
                        step($what, "no answer before the timeout".into()),
                    );
                    return r;
                }
            }
        };
    }
    let banner = timed!("reading the banner", read_reply(&mut s));
    r.banner = banner.lines.first().cloned();
    if banner.code != 220 {
        r.findings.fail(
            "smtp_banner",
            format!(
                "{target} greets with {} {}: it does not accept mail",
                banner.code,
                banner.lines.join(" ")
            ),
        );
        return r;
    }
    let ehlo_reply = timed!("EHLO", command(&mut s, &format!("EHLO {ehlo}")));
    if ehlo_reply.code != 250 {
        r.findings.fail(
            "smtp_ehlo",
            format!(
                "{target} answered EHLO with {} {}",
                ehlo_reply.code,
                ehlo_reply.lines.join(" ")
            ),
        );
        return r;
    }
    r.extensions = ehlo_reply
        .lines
        .iter()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(|k| k.to_ascii_uppercase())
        .collect();
    r.starttls = r.extensions.iter().any(|e| e == "STARTTLS");
    if !r.starttls {
        let msg = format!(
            "{target} does not offer STARTTLS: mail to it travels unencrypted (Gmail requires TLS)"
        );
        if require_starttls {
            r.findings.fail("smtp_no_starttls", msg);
        } else {
            r.findings.warn("smtp_no_starttls", msg);
        }
        let _ = tokio::time::timeout(step_timeout, command(&mut s, "QUIT")).await;
        return r;
    }
    let go = timed!("STARTTLS", command(&mut s, "STARTTLS"));
    if go.code != 220 {
        r.findings.fail(
            "smtp_starttls_refused",
            format!(
                "{target} offers STARTTLS but answered it with {} {}",
                go.code,
                go.lines.join(" ")
            ),
        );
        return r;
    }
    if !s.buffer().is_empty() {
        r.findings.fail(
            "smtp_starttls_injection",
            format!("{target} sent data before the TLS handshake (a STARTTLS injection risk)"),
        );
        return r;
    }
    let verify_name = tls.server_name.clone().unwrap_or_else(|| name.to_string());
    let server_name = match verify_name.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => match ServerName::try_from(verify_name.clone()) {
            Ok(n) => n,
            Err(e) => {
                r.findings.fail(
                    "smtp_tls_name",
                    format!("{verify_name} cannot be verified as a TLS server name: {e}"),
                );
                return r;
            }
        },
    };
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let tcp = s.into_inner();
    let tls_stream =
        match tokio::time::timeout(step_timeout, connector.connect(server_name, tcp)).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                r.findings.fail(
                "smtp_tls_handshake",
                format!(
                    "the TLS handshake with {target} (verifying the name {verify_name}) failed: {}",
                    root_cause(&e)
                ),
            );
                return r;
            }
            Err(_) => {
                r.findings.fail(
                    "smtp_timeout",
                    format!("{target}: the TLS handshake did not finish before the timeout"),
                );
                return r;
            }
        };
    let (_, conn) = tls_stream.get_ref();
    let version = conn
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    r.tls = Some(format!("{version} {suite}").trim().to_string());
    let mut t = BufReader::new(tls_stream);
    let again = timed!("EHLO over TLS", command(&mut t, &format!("EHLO {ehlo}")));
    if again.code != 250 {
        r.findings.fail(
            "smtp_ehlo",
            format!(
                "{target} answered EHLO over TLS with {} {}",
                again.code,
                again.lines.join(" ")
            ),
        );
        return r;
    }
    let _ = tokio::time::timeout(step_timeout, command(&mut t, "QUIT")).await;
    r
}

fn root_cause(e: &std::io::Error) -> String {
    let mut msg = e.to_string();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e
        .get_ref()
        .map(|inner| inner as &(dyn std::error::Error + 'static));
    while let Some(c) = cur {
        msg = c.to_string();
        cur = c.source();
    }
    msg
}

fn default_port() -> u16 {
    25
}

fn default_ehlo() -> String {
    "localhost".to_string()
}

fn default_true() -> bool {
    true
}

/// Params of `smtp.starttls`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StarttlsParams {
    /// Test the MX hosts of this domain (the domain that receives replies and bounces). Give
    /// this or `hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Test these hosts instead, as `host` or `host:port` (e.g. `mx1.example.com`,
    /// `127.0.0.1:2525`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Port for MX hosts and for `hosts` entries without one.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The name sent in EHLO.
    #[serde(default = "default_ehlo")]
    pub ehlo_name: String,
    /// A PEM file of CA certificates to trust instead of the public web PKI (a private CA, or
    /// tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The name certificates must match, instead of each host's own name (needed when `hosts`
    /// are IP addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// A host without STARTTLS fails (true) or only warns (false).
    #[serde(default = "default_true")]
    pub require_starttls: bool,
    /// Nameservers to ask for MX and host addresses, as `ip` or `ip:port`. Empty: the ones in
    /// `/etc/resolv.conf`, else 1.1.1.1 and 8.8.8.8.
    #[serde(default)]
    pub nameservers: Vec<String>,
}

struct StarttlsProbe(StarttlsParams);

fn split_host_port(entry: &str, default: u16) -> Result<(String, u16), String> {
    if let Ok(sa) = entry.parse::<SocketAddr>() {
        return Ok((sa.ip().to_string(), sa.port()));
    }
    if entry.parse::<IpAddr>().is_ok() {
        return Ok((entry.to_string(), default));
    }
    match entry.rsplit_once(':') {
        Some((h, p)) => Ok((
            h.to_string(),
            p.parse()
                .map_err(|_| format!("`{entry}` has an invalid port"))?,
        )),
        None => Ok((entry.to_string(), default)),
    }
}

#[async_trait]
impl Probe for StarttlsProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let p = &self.0;
        let dns = Dns::from_param(&p.nameservers, ctx.timeout()).await?;
        let ca =
            match &p.ca_file {
                Some(path) => Some(tokio::fs::read(path).await.map_err(|e| {
                    ProbeError::permanent(format!("cannot read ca_file {path}: {e}"))
                })?),
                None => None,
            };
        let config = tls_config(ca.as_deref()).map_err(ProbeError::permanent)?;
        let tls = TlsSettings {
            config: Arc::new(config),
            server_name: p.tls_server_name.clone(),
        };
        let mut f = Findings::default();
        // (target label, addresses, name to verify)
        let mut targets: Vec<(String, Vec<SocketAddr>, String)> = Vec::new();
        if let Some(domain) = &p.domain {
            let m = mx::check(&dns, domain, false).await?;
            if m.hosts.is_empty() {
                f.extend(m.findings);
                let mm = measurement(
                    None,
                    "count",
                    format!("SMTP of {domain}: no MX host to test"),
                    &f,
                );
                return Ok(mm.with_evidence("domain", domain.clone()));
            }
            for h in m.hosts {
                let addrs = h
                    .addresses
                    .iter()
                    .map(|a| SocketAddr::new(*a, p.port))
                    .collect();
                targets.push((format!("{}:{}", h.host, p.port), addrs, h.host));
            }
        }
        for entry in &p.hosts {
            let (host, port) = split_host_port(entry, p.port).map_err(ProbeError::params)?;
            let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                Err(_) => match dns.addresses(&host).await? {
                    Answer::Records(a) => {
                        a.into_iter().map(|ip| SocketAddr::new(ip, port)).collect()
                    }
                    _ => Vec::new(),
                },
            };
            targets.push((format!("{host}:{port}"), addrs, host));
        }
        let mut reports = Vec::new();
        for (label, addrs, name) in &targets {
            reports.push(
                check_host(
                    label,
                    addrs,
                    name,
                    &p.ehlo_name,
                    &tls,
                    ctx.timeout(),
                    p.require_starttls,
                )
                .await,
            );
        }
        if reports.iter().all(|r| r.unreachable) {
            let why = reports
                .iter()
                .flat_map(|r| r.findings.messages(Level::Info))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ProbeError::transient(format!(
                "cannot connect to any SMTP host ({why}); outbound port {} may be blocked from this network",
                p.port
            )));
        }
        let failing = reports
            .iter()
            .filter(|r| r.findings.worst() == Some(Level::Fail))
            .count();
        let mut evidence: Vec<(String, String)> = Vec::new();
        for r in &reports {
            let state = if r.unreachable {
                "unreachable".to_string()
            } else if let Some(t) = &r.tls {
                format!("STARTTLS ok, {t}")
            } else if r.starttls {
                "STARTTLS failed".to_string()
            } else if r.banner.is_some() {
                "no STARTTLS".to_string()
            } else {
                "failed".to_string()
            };
            evidence.push((format!("host.{}", r.target), state));
            if let Some(b) = &r.banner {
                evidence.push((format!("banner.{}", r.target), b.clone()));
            }
            if !r.extensions.is_empty() {
                evidence.push((format!("ehlo.{}", r.target), r.extensions.join(" ")));
            }
            f.extend(r.findings.clone());
        }
        let what = p
            .domain
            .as_ref()
            .map(|d| format!("MX host(s) of {d}"))
            .unwrap_or_else(|| "host(s)".into());
        let summary = if failing == 0 {
            let tls_ok = reports.iter().filter(|r| r.tls.is_some()).count();
            format!(
                "SMTP of {} {what}: {tls_ok} offer STARTTLS with a valid certificate",
                reports.len()
            )
        } else {
            format!("SMTP of {} {what}: {failing} fail", reports.len())
        };
        let m = measurement(Some(failing as f64), "count", summary, &f);
        Ok(evidence
            .into_iter()
            .fold(m, |m, (k, v)| m.with_evidence(k, v)))
    }
}

/// `smtp.starttls`: STARTTLS and certificate of a domain's MX hosts (or given hosts).
pub fn factory() -> impl ProbeFactory {
    TypedFactory::<StarttlsParams, _>::new(
        "smtp.starttls",
        "SMTP of a domain's MX hosts: banner, EHLO, STARTTLS offered and a verified TLS handshake; value is the number of hosts failing",
        "count",
        |mut p: StarttlsParams| {
            if p.domain.is_none() && p.hosts.is_empty() {
                return Err(ProbeError::params(
                    "`domain`: give a domain (its MX hosts are tested) or `hosts`",
                ));
            }
            if let Some(d) = &p.domain {
                p.domain = Some(validate_domain("domain", d)?);
            }
            for h in &p.hosts {
                split_host_port(h, p.port)
                    .map_err(|e| ProbeError::params(format!("`hosts`: {e}")))?;
            }
            if p.port == 0 {
                return Err(ProbeError::params("`port`: 0 is not a port"));
            }
            if p.ehlo_name.trim().is_empty() || p.ehlo_name.contains(char::is_whitespace) {
                return Err(ProbeError::params(format!(
                    "`ehlo_name`: `{}` is not a host name",
                    p.ehlo_name
                )));
            }
            parse_nameservers(&p.nameservers)?;
            Ok(Arc::new(StarttlsProbe(p)) as Arc<dyn Probe>)
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_single_and_multi_line() {
        let mut r =
            BufReader::new(&b"250-mx.example.com hello\r\n250-PIPELINING\r\n250 STARTTLS\r\n"[..]);
        let reply = read_reply(&mut r).await.unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(
            reply.lines,
            vec!["mx.example.com hello", "PIPELINING", "STARTTLS"]
        );
        let mut r = BufReader::new(&b"220 mx ESMTP\n"[..]);
        assert_eq!(read_reply(&mut r).await.unwrap().lines, vec!["mx ESMTP"]);
        assert!(
            read_reply(&mut BufReader::new(&b"hello\r\n"[..]))
                .await
                .is_err()
        );
        assert!(
            read_reply(&mut BufReader::new(&b"250-unterminated\r\n"[..]))
                .await
                .is_err()
        );
    }

    #[test]
    fn host_port_entries() {
        assert_eq!(
            split_host_port("127.0.0.1:2525", 25).unwrap(),
            ("127.0.0.1".into(), 2525)
        );
        assert_eq!(split_host_port("[::1]:26", 25).unwrap(), ("::1".into(), 26));
        assert_eq!(split_host_port("::1", 25).unwrap(), ("::1".into(), 25));
        assert_eq!(
            split_host_port("mx.example.com", 25).unwrap(),
            ("mx.example.com".into(), 25)
        );
        assert!(split_host_port("mx.example.com:x", 25).is_err());
    }

    #[test]
    fn tls_configs() {
        assert!(tls_config(None).is_ok());
        assert!(tls_config(Some(b"not pem")).is_err());
    }
}
