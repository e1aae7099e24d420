//! DKIM public keys in DNS (RFC 6376 §3.6.1): `<selector>._domainkey.<domain>` TXT, possibly
//! through a CNAME the ESP gave you. The key is decoded and measured from the key itself: an
//! RSA key's modulus length is read from its SubjectPublicKeyInfo (or a bare PKCS#1
//! RSAPublicKey) DER; an Ed25519 key (RFC 8463) must be 32 raw bytes. Mailbox providers require
//! at least 1024-bit RSA and recommend 2048 (Gmail, Yahoo; RFC 8301 forbids < 1024).
//!
//! Parsing is pure ([`parse_key_record`], [`rsa_modulus_bits`]); only [`check_selector`] and
//! [`discover`] do I/O.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::dns::{Answer, Dns, DnsFailure, normalize};
use crate::findings::{Findings, Level};

/// RSA keys shorter than this fail (RFC 8301 §3.2, Gmail and Yahoo sender rules).
pub const MIN_RSA_BITS: u32 = 1024;
/// RSA keys shorter than this warn (2048 is what Gmail recommends).
pub const RECOMMENDED_RSA_BITS: u32 = 2048;
/// The RSA-equivalent strength reported for an Ed25519 key (128-bit security, the level NIST
/// SP 800-57 Part 1 equates with 3072-bit RSA), so that one value orders keys of both types.
pub const ED25519_RSA_EQUIVALENT_BITS: u32 = 3072;

/// Selector names mailbox providers and ESPs commonly use, tried when none is configured.
pub const COMMON_SELECTORS: &[&str] = &[
    "default",
    "dkim",
    "mail",
    "email",
    "smtp",
    "google",
    "selector1",
    "selector2",
    "k1",
    "k2",
    "k3",
    "s1",
    "s2",
    "s1024",
    "s2048",
    "key1",
    "key2",
    "sig1",
    "mandrill",
    "mxvault",
    "mailjet",
    "mg",
    "mailo",
    "krs",
    "pm",
    "cm",
    "hs1",
    "hs2",
    "zmail",
    "zoho",
    "fm1",
    "fm2",
    "fm3",
    "protonmail",
    "protonmail2",
    "protonmail3",
    "everlytickey1",
    "everlytickey2",
    "dk",
    "mta",
    "sendgrid",
    "smtpapi",
    "amazonses",
    "sparkpost",
    "scph0123",
];

/// The key algorithm (`k=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// `k=rsa` (the default).
    Rsa,
    /// `k=ed25519` (RFC 8463).
    Ed25519,
    /// Anything else: receivers cannot verify it.
    Other(String),
}

/// A key record's tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// `k=`.
    pub key_type: KeyType,
    /// `p=` with whitespace removed; empty means revoked.
    pub public_key: String,
    /// `h=`: acceptable hash algorithms, if restricted.
    pub hashes: Option<Vec<String>>,
    /// `t=`: flags (`y` testing, `s` strict).
    pub flags: Vec<String>,
    /// `s=`: service types, if restricted.
    pub services: Option<Vec<String>>,
}

/// Parse a DKIM key record (RFC 6376 §3.2 tag list, §3.6.1 tags).
pub fn parse_key_record(text: &str) -> Result<KeyRecord, String> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for (i, spec) in text.split(';').enumerate() {
        if spec.trim().is_empty() {
            if i == 0 && !text.trim().is_empty() {
                return Err("the record starts with an empty tag".into());
            }
            continue;
        }
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("`{}` is not a tag=value pair", spec.trim()))?;
        let name = name.trim();
        if name.is_empty()
            || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
            || !name.as_bytes()[0].is_ascii_alphabetic()
        {
            return Err(format!("`{name}` is not a valid tag name"));
        }
        if tags.iter().any(|(n, _)| n == name) {
            return Err(format!("the tag {name} appears more than once"));
        }
        tags.push((name.to_string(), value.trim().to_string()));
    }
    if let Some(pos) = tags.iter().position(|(n, _)| n == "v") {
        if pos != 0 {
            return Err("the v tag must come first".into());
        }
        if tags[0].1 != "DKIM1" {
            return Err(format!("the version is {}, not DKIM1", tags[0].1));
        }
    }
    let get = |n: &str| tags.iter().find(|(t, _)| t == n).map(|(_, v)| v.clone());
    let public_key = get("p").ok_or("the record has no p= tag (the public key)")?;
    let public_key: String = public_key.chars().filter(|c| !c.is_whitespace()).collect();
    let list = |v: String| {
        v.split(':')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    let key_type = match get("k").map(|k| k.to_ascii_lowercase()) {
        None => KeyType::Rsa,
        Some(k) if k == "rsa" => KeyType::Rsa,
        Some(k) if k == "ed25519" => KeyType::Ed25519,
        Some(k) => KeyType::Other(k),
    };
    Ok(KeyRecord {
        key_type,
        public_key,
        hashes: get("h").map(list),
        flags: get("t").map(list).unwrap_or_default(),
        services: get("s").map(list),
    })
}

fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "the key is not valid DER".to_string();
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The rsaEncryption algorithm OID, 1.2.840.113549.1.1.1.
const RSA_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

fn pkcs1_modulus_bits(der: &[u8]) -> Result<u32, String> {
    let (tag, seq, rest) = tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return Err("the RSA key is not a DER SEQUENCE".into());
    }
    let (tag, n, rest) = tlv(seq)?;
    if tag != 0x02 {
        return Err("the RSA key has no modulus INTEGER".into());
    }
    let (tag, e, _) = tlv(rest)?;
    if tag != 0x02 || e.is_empty() {
        return Err("the RSA key has no exponent INTEGER".into());
    }
    let n: Vec<u8> = n.iter().copied().skip_while(|b| *b == 0).collect();
    let Some(&top) = n.first() else {
        return Err("the RSA modulus is zero".into());
    };
    Ok((n.len() as u32 - 1) * 8 + (8 - top.leading_zeros()))
}

/// The modulus length in bits of an RSA public key given as SubjectPublicKeyInfo DER (what RFC
/// 6376 specifies) or as a bare PKCS#1 RSAPublicKey (which some signers publish).
pub fn rsa_modulus_bits(der: &[u8]) -> Result<u32, String> {
    let (tag, content, rest) = tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return Err("the key is not a DER SEQUENCE".into());
    }
    let (t1, alg, after_alg) = tlv(content)?;
    match t1 {
        0x30 => {
            let (toid, oid, _) = tlv(alg)?;
            if toid != 0x06 || oid != RSA_OID {
                return Err("the key's algorithm is not rsaEncryption".into());
            }
            let (tb, bits, _) = tlv(after_alg)?;
            if tb != 0x03 || bits.first() != Some(&0) {
                return Err("the key has no BIT STRING holding the RSA key".into());
            }
            pkcs1_modulus_bits(&bits[1..])
        }
        0x02 => pkcs1_modulus_bits(der),
        _ => Err("the key is neither a SubjectPublicKeyInfo nor an RSAPublicKey".into()),
    }
}

/// What was found at one selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorReport {
    /// The selector.
    pub selector: String,
    /// The name queried.
    pub name: String,
    /// The key record text, when one was found.
    pub record: Option<String>,
    /// The key's algorithm, when parsed.
    pub key_type: Option<KeyType>,
    /// The key's real size in bits (RSA modulus; 256 for Ed25519).
    pub bits: Option<u32>,
    /// RSA-equivalent strength in bits, for ordering (Ed25519 = 3072).
    pub strength: Option<u32>,
    /// What is wrong or notable.
    pub findings: Findings,
}

impl SelectorReport {
    /// A usable key (found, parsed, not revoked, long enough).
    pub fn usable(&self) -> bool {
        self.strength.is_some() && self.findings.worst() != Some(Level::Fail)
    }
}

/// Judge a key record's text (pure).
pub fn judge_record(selector: &str, text: &str) -> SelectorReport {
    let mut r = SelectorReport {
        selector: selector.to_string(),
        name: String::new(),
        record: Some(text.to_string()),
        key_type: None,
        bits: None,
        strength: None,
        findings: Findings::default(),
    };
    let rec = match parse_key_record(text) {
        Ok(k) => k,
        Err(e) => {
            r.findings.fail(
                "dkim_invalid_record",
                format!("the DKIM key record of selector {selector} is invalid: {e}"),
            );
            return r;
        }
    };
    r.key_type = Some(rec.key_type.clone());
    if rec.public_key.is_empty() {
        r.findings.fail(
            "dkim_key_revoked",
            format!("the key of selector {selector} is revoked (empty p=): mail signed with it fails DKIM"),
        );
        return r;
    }
    let raw = match STANDARD.decode(rec.public_key.as_bytes()) {
        Ok(b) => b,
        Err(e) => {
            r.findings.fail(
                "dkim_key_undecodable",
                format!("the key of selector {selector} is not valid base64: {e}"),
            );
            return r;
        }
    };
    match &rec.key_type {
        KeyType::Rsa => match rsa_modulus_bits(&raw) {
            Ok(bits) => {
                r.bits = Some(bits);
                r.strength = Some(bits);
                if bits < MIN_RSA_BITS {
                    r.findings.fail(
                        "dkim_key_too_short",
                        format!("the RSA key of selector {selector} is {bits} bits; Gmail, Yahoo and RFC 8301 require at least {MIN_RSA_BITS} — rotate to a 2048-bit key"),
                    );
                } else if bits < RECOMMENDED_RSA_BITS {
                    r.findings.warn(
                        "dkim_key_weak",
                        format!("the RSA key of selector {selector} is {bits} bits; {RECOMMENDED_RSA_BITS} is recommended — rotate when you can"),
                    );
                }
            }
            Err(e) => r.findings.fail(
                "dkim_key_unparsable",
                format!("the RSA key of selector {selector} cannot be read: {e}"),
            ),
        },
        KeyType::Ed25519 => {
            if raw.len() == 32 {
                r.bits = Some(256);
                r.strength = Some(ED25519_RSA_EQUIVALENT_BITS);
                r.findings.info(
                    "dkim_ed25519",
                    format!("selector {selector} is an Ed25519 key (RFC 8463); sign with an RSA key as well, not every receiver verifies Ed25519"),
                );
            } else {
                r.findings.fail(
                    "dkim_key_unparsable",
                    format!("the Ed25519 key of selector {selector} is {} bytes; RFC 8463 wants the raw 32-byte key", raw.len()),
                );
            }
        }
        KeyType::Other(k) => r.findings.fail(
            "dkim_unknown_key_type",
            format!("selector {selector} declares key type k={k}, which receivers cannot verify"),
        ),
    }
    if rec.flags.iter().any(|f| f == "y") {
        r.findings.warn(
            "dkim_testing",
            format!("selector {selector} is in testing mode (t=y): receivers may ignore its signatures — remove t=y"),
        );
    }
    if let Some(h) = rec
        .hashes
        .as_ref()
        .filter(|h| !h.iter().any(|a| a == "sha256"))
    {
        r.findings.warn(
            "dkim_sha1_only",
            format!(
                "selector {selector} only allows h={}; RFC 8301 forbids rsa-sha1, allow sha256",
                h.join(":")
            ),
        );
    }
    if let Some(s) = rec
        .services
        .as_ref()
        .filter(|s| !s.iter().any(|x| x == "*" || x == "email"))
    {
        r.findings.fail(
            "dkim_not_for_email",
            format!(
                "selector {selector} is restricted to s={}, not email",
                s.join(":")
            ),
        );
    }
    r
}

/// Look up and judge one selector.
pub async fn check_selector(
    dns: &Dns,
    domain: &str,
    selector: &str,
) -> Result<SelectorReport, DnsFailure> {
    let name = format!("{}._domainkey.{}", selector.trim(), normalize(domain));
    let records: Vec<String> = match dns.txt(&name).await? {
        Answer::Records(r) => r.iter().filter_map(|t| t.text()).collect(),
        Answer::NoData | Answer::NxDomain => Vec::new(),
    };
    let keys: Vec<&String> = records.iter().filter(|t| looks_like_key(t)).collect();
    let mut r = match keys.first() {
        None => {
            let mut f = Findings::default();
            f.fail("dkim_key_missing", format!("no DKIM key is published at {name}: mail signed with selector {selector} fails DKIM"));
            SelectorReport {
                selector: selector.to_string(),
                name: name.clone(),
                record: None,
                key_type: None,
                bits: None,
                strength: None,
                findings: f,
            }
        }
        Some(text) => judge_record(selector, text),
    };
    r.name = name.clone();
    if keys.len() > 1 {
        r.findings.warn(
            "dkim_multiple_records",
            format!("{name} has {} key records; receivers pick one at random (RFC 6376 §3.6.2.2) — keep one", keys.len()),
        );
    }
    Ok(r)
}

fn looks_like_key(t: &str) -> bool {
    let l = t.to_ascii_lowercase();
    l.starts_with("v=dkim1")
        || l.split(';')
            .any(|s| s.trim_start().starts_with("p=") || s.trim_start().starts_with("p ="))
}

/// Try every selector concurrently; reports for the selectors that publish something.
pub async fn discover(
    dns: &Dns,
    domain: &str,
    selectors: &[String],
) -> Result<Vec<SelectorReport>, DnsFailure> {
    let mut set = tokio::task::JoinSet::new();
    for (i, s) in selectors.iter().enumerate() {
        let (dns, domain, s) = (dns.clone(), domain.to_string(), s.clone());
        set.spawn(async move { (i, check_selector(&dns, &domain, &s).await) });
    }
    let mut found = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.map_err(|e| DnsFailure {
            name: domain.to_string(),
            rtype: "TXT".into(),
            reason: format!("selector lookup task failed: {e}"),
        })?;
        let r = r?;
        if r.record.is_some() {
            found.push((i, r));
        }
    }
    found.sort_by_key(|(i, _)| *i);
    Ok(found.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // A real 1024-bit key (SubjectPublicKeyInfo, base64), generated with openssl for these tests.
    const RSA1024: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC54NaTAxQ421kFX1kNagTIc9/N/WQaNyobLKI7WKbbZngNXqrGcEBimXSyiA3wivqk5hy+Q8MmsFPjl7fR/yGRG3f7YlqraCWnnE9q4xg+CoD+Ko4oGQrMC2Tv99Yls3p1kvkF0vQA9GgSIVi0alBu6EfVy2dIDDtrz2jz8URWLwIDAQAB";

    #[test]
    fn tag_lists_follow_rfc_6376() {
        let k = parse_key_record("v=DKIM1; k=rsa; h=sha256; t=y:s; p=AB CD\tEF").unwrap();
        assert_eq!(k.key_type, KeyType::Rsa);
        assert_eq!(k.public_key, "ABCDEF");
        assert_eq!(k.flags, vec!["y", "s"]);
        assert_eq!(k.hashes, Some(vec!["sha256".to_string()]));
        assert_eq!(parse_key_record("p=").unwrap().public_key, "");
        assert_eq!(
            parse_key_record("k=ed25519; p=x").unwrap().key_type,
            KeyType::Ed25519
        );
        assert!(parse_key_record("k=rsa; v=DKIM1; p=x").is_err());
        assert!(parse_key_record("v=DKIM2; p=x").is_err());
        assert!(parse_key_record("v=DKIM1; k=rsa").is_err());
        assert!(parse_key_record("v=DKIM1; p=a; p=b").is_err());
        assert!(parse_key_record("v=DKIM1; garbage; p=x").is_err());
    }

    #[test]
    fn modulus_length_is_read_from_the_der() {
        let der = STANDARD.decode(RSA1024).unwrap();
        assert_eq!(rsa_modulus_bits(&der).unwrap(), 1024);
        // the PKCS#1 RSAPublicKey inside the BIT STRING, on its own
        let pkcs1 = &der[22..];
        assert_eq!(rsa_modulus_bits(pkcs1).unwrap(), 1024);
        // a modulus with a top byte that is not 0xff-aligned: 1023 bits
        let mut n = vec![0x00, 0x7f];
        n.extend(std::iter::repeat_n(0xab, 127));
        let mut seq = vec![0x02, 0x81, n.len() as u8];
        seq.extend(&n);
        seq.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        let mut der2 = vec![0x30, 0x81, seq.len() as u8];
        der2.extend(&seq);
        assert_eq!(rsa_modulus_bits(&der2).unwrap(), 1023);
        assert!(rsa_modulus_bits(&der[..40]).is_err());
        assert!(rsa_modulus_bits(b"not der").is_err());
        assert!(rsa_modulus_bits(&[]).is_err());
    }

    #[test]
    fn judging_keys() {
        let r = judge_record("s", &format!("v=DKIM1; k=rsa; p={RSA1024}"));
        assert_eq!(r.bits, Some(1024));
        assert!(r.findings.has("dkim_key_weak"));
        assert_eq!(r.findings.verdict(), funnelgate_core::ProbeStatus::Warn);
        assert!(
            judge_record("s", "v=DKIM1; p=")
                .findings
                .has("dkim_key_revoked")
        );
        assert!(
            judge_record("s", "v=DKIM1; p=!!")
                .findings
                .has("dkim_key_undecodable")
        );
        let ed = judge_record(
            "s",
            "v=DKIM1; k=ed25519; p=mMIk3bn9Lx9/gJJOXbXEviNIL4wwZWV+NEE7xkpGVy4=",
        );
        assert_eq!(
            (ed.bits, ed.strength),
            (Some(256), Some(ED25519_RSA_EQUIVALENT_BITS))
        );
        assert!(ed.usable());
        assert!(
            judge_record("s", "v=DKIM1; k=ed25519; p=AAAA")
                .findings
                .has("dkim_key_unparsable")
        );
        assert!(
            judge_record("s", "v=DKIM1; k=dsa; p=AAAA")
                .findings
                .has("dkim_unknown_key_type")
        );
        assert!(
            judge_record("s", &format!("v=DKIM1; t=y; p={RSA1024}"))
                .findings
                .has("dkim_testing")
        );
        assert!(
            judge_record("s", &format!("v=DKIM1; h=sha1; p={RSA1024}"))
                .findings
                .has("dkim_sha1_only")
        );
        assert!(
            judge_record("s", &format!("v=DKIM1; s=tlsrpt; p={RSA1024}"))
                .findings
                .has("dkim_not_for_email")
        );
    }
}
