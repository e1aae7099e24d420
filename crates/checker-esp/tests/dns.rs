//! DNS probes against a real authoritative server (nsd) serving `tests/zones/`, with checkdmarc
//! run against the same server as the reference for SPF and DMARC.

#![allow(clippy::unwrap_used)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

use funnelgate_checker_esp::dmarc::{self, DmarcErrorKind, DmarcReport};
use funnelgate_checker_esp::dns::Dns;
use funnelgate_checker_esp::spf::{self, SpfErrorKind, SpfReport};
use serde_json::Value;

fn dns() -> Dns {
    Dns::new(vec![common::nsd().addr], Duration::from_secs(5)).expect("resolver builds")
}

/// Every domain whose SPF and DMARC are compared with checkdmarc.
const DOMAINS: &[&str] = &[
    "spf-ok.test",
    "spf-10.test",
    "spf-11.test",
    "spf-over-nested.test",
    "spf-void2.test",
    "spf-void3.test",
    "spf-loop.test",
    "spf-redirloop.test",
    "spf-two.test",
    "spf-split.test",
    "spf-syntax.test",
    "spf-badmech.test",
    "spf-badip.test",
    "spf-upper.test",
    "spf-plusall.test",
    "spf-neutral.test",
    "spf-noall.test",
    "spf-ptr.test",
    "spf-ptr-nx.test",
    "spf-none.test",
    "spf-nx.test",
    "spf-incmissing.test",
    "spf-incnx.test",
    "spf-redirect.test",
    "spf-redirect-all.test",
    "spf-mxnoaddr.test",
    "spf-dup.test",
    "spf-after.test",
    "spf-resembles.test",
    "spf-exp.test",
    "spf-exp-missing.test",
    "spf-senderid.test",
    "spf-large.test",
    "spf-unknownmod.test",
    "spf-cname.test",
    "dmarc-ok.test",
    "dmarc-none.test",
    "dmarc-nop.test",
    "dmarc-badp.test",
    "dmarc-removed.test",
    "dmarc-bis.test",
    "dmarc-testmode.test",
    "dmarc-ext.test",
    "dmarc-extnoauth.test",
    "dmarc-extwild.test",
    "dmarc-subrua.test",
    "dmarc-ruanomx.test",
    "sub.dmarc-org.test",
    "deep.sub.dmarc-org.test",
    "mail.shop.psd-parent.test",
    "dmarc-missing.test",
    "dmarc-multi.test",
    "dmarc-syntax.test",
    "dmarc-duptag.test",
    "dmarc-badrua.test",
    "dmarc-space.test",
    "dmarc-wrongloc.test",
    "dmarc-atroot.test",
    "dmarc-unrelated.test",
    "dmarc-spnone.test",
    "dmarc-fo.test",
    "dmarc-porder.test",
    "dmarc-norua.test",
    "dmarc-https.test",
    "dmarc-size.test",
    "dmarc-3rua.test",
    "dmarc-unknowntag.test",
    "dmarc-adkim.test",
];

/// The deliberate disagreements with checkdmarc, each explained in
/// `docs/deliverability-disagreements.md`: (domain, check, field, ours, checkdmarc's). The golden
/// test fails if one of these stops happening, or if any other difference appears.
const EXPECTED_DIFFERENCES: &[(&str, &str, &str, &str, &str)] = &[
    // D1: ABNF literals are case-insensitive (RFC 5234 §2.3); checkdmarc's grammar is not
    ("spf-upper.test", "spf", "valid", "true", "false"),
    // D2: we count every lookup of the tree; checkdmarc drops an include's count when that
    // include alone overflows
    ("spf-over-nested.test", "spf", "dns_lookups", "12", "1"),
    // D3: ptr cannot be evaluated without the sender's IP; checkdmarc resolves A records of the
    // ptr target instead and counts a void lookup when there are none
    ("spf-ptr-nx.test", "spf", "void_lookups", "0", "1"),
    (
        "spf-ptr-nx.test",
        "spf",
        "warnings",
        "spf_ptr",
        "spf_void_lookup",
    ),
    // D4: RFC 7489 §6.6.3 / RFC 9989 §4.10: TXT records that are not DMARC are discarded, not
    // an error
    ("dmarc-unrelated.test", "dmarc", "valid", "true", "false"),
];

#[derive(Debug, Default)]
struct Summary {
    valid: bool,
    error_class: Option<String>,
    dns_lookups: Option<u64>,
    void_lookups: Option<u64>,
    warnings: BTreeSet<String>,
}

fn spf_class(k: SpfErrorKind) -> &'static str {
    match k {
        SpfErrorKind::NotFound | SpfErrorKind::IncludeNotFound | SpfErrorKind::RedirectNotFound => {
            "SPFRecordNotFound"
        }
        SpfErrorKind::MultipleRecords => "MultipleSPFRTXTRecords",
        SpfErrorKind::Syntax => "SPFSyntaxError",
        SpfErrorKind::TooManyLookups => "SPFTooManyDNSLookups",
        SpfErrorKind::TooManyVoidLookups => "SPFTooManyVoidDNSLookups",
        SpfErrorKind::IncludeLoop => "SPFIncludeLoop",
        SpfErrorKind::RedirectLoop => "SPFRedirectLoop",
    }
}

fn dmarc_class(k: DmarcErrorKind) -> &'static str {
    match k {
        DmarcErrorKind::NotFound => "DMARCRecordNotFound",
        DmarcErrorKind::WrongLocation => "DMARCRecordInWrongLocation",
        DmarcErrorKind::MultipleRecords => "MultipleDMARCRecords",
        DmarcErrorKind::StartsWithWhitespace => "DMARCRecordStartsWithWhitespace",
        DmarcErrorKind::Syntax => "DMARCSyntaxError",
        DmarcErrorKind::DuplicateTag => "InvalidDMARCTag",
        DmarcErrorKind::InvalidTagValue => "InvalidDMARCTagValue",
        DmarcErrorKind::InvalidReportUri => "InvalidDMARCReportURI",
    }
}

fn ours_spf(r: &SpfReport) -> Summary {
    Summary {
        valid: r.is_valid(),
        error_class: r.error.as_ref().map(|e| spf_class(e.kind).to_string()),
        dns_lookups: Some(r.dns_lookups as u64),
        void_lookups: Some(r.void_lookups as u64),
        warnings: r
            .findings
            .0
            .iter()
            .filter(|f| f.level != funnelgate_checker_esp::findings::Level::Fail)
            .map(|f| f.code)
            .filter(|c| !spf::EXTENSION_CODES.contains(c))
            .map(str::to_string)
            .collect(),
    }
}

fn ours_dmarc(r: &DmarcReport) -> Summary {
    Summary {
        valid: r.is_valid(),
        error_class: r.error.as_ref().map(|e| dmarc_class(e.kind).to_string()),
        dns_lookups: None,
        void_lookups: None,
        warnings: r
            .findings
            .0
            .iter()
            .filter(|f| f.level != funnelgate_checker_esp::findings::Level::Fail)
            .map(|f| f.code)
            .filter(|c| !dmarc::EXTENSION_CODES.contains(c))
            .map(str::to_string)
            .collect(),
    }
}

/// checkdmarc's SPF warning texts, mapped to our finding codes.
fn spf_warning_code(w: &str) -> String {
    let code = if let Some(rest) = w.strip_prefix("Error when processing ") {
        let (value, inner) = rest.split_once(": ").unwrap_or((rest, ""));
        if inner.contains("ptr mechanism should not be used") {
            "spf_ptr"
        } else if inner.contains("mechanism points to") {
            "spf_void_lookup"
        } else if let Some(d) = inner
            .strip_prefix("The domain ")
            .and_then(|s| s.strip_suffix(" does not exist."))
        {
            if d == value {
                "spf_void_lookup"
            } else {
                "spf_mx_host_no_address"
            }
        } else {
            "unmapped"
        }
    } else if w.contains("deprecated Sender ID record") {
        "spf_sender_id"
    } else if w.contains("undecodable characters") {
        "spf_undecodable_txt"
    } else if w.contains("resembles an SPF record") {
        "spf_resembles_record"
    } else if w.starts_with("String ") && w.contains("TXT character-string") {
        "spf_string_too_long"
    } else if w.contains("bytes, over 512") {
        "spf_record_too_large"
    } else if w.contains("recommends keeping answers under about") {
        "spf_record_large"
    } else if w.contains("multiple all mechanisms") {
        "spf_multiple_all"
    } else if w.starts_with("Any text after the all mechanism") {
        "spf_text_after_all"
    } else if w.starts_with("The unknown modifier") {
        "spf_unknown_modifier"
    } else if w.contains("is not a fully-qualified domain name") {
        "spf_invalid_domain_spec"
    } else if w.starts_with("The redirect modifier was ignored") {
        "spf_redirect_ignored"
    } else if w.starts_with("No TXT records at exp")
        || w.starts_with("Failed to get TXT records at exp")
    {
        "spf_exp_missing"
    } else if w.starts_with("Too many TXT records at exp") {
        "spf_exp_multiple"
    } else if w.starts_with("The MX host") {
        "spf_mx_host_no_address"
    } else if w.starts_with("Duplicate include") {
        "spf_duplicate_include"
    } else {
        "unmapped"
    };
    if code == "unmapped" {
        format!("unmapped: {w}")
    } else {
        code.to_string()
    }
}

/// checkdmarc's DMARC warning texts, mapped to our finding codes.
fn dmarc_warning_code(w: &str) -> String {
    let code = if w.starts_with("Unknown DMARC tag") {
        "dmarc_unknown_tag"
    } else if w.starts_with("Support for the") && w.contains("removed in RFC 9989") {
        "dmarc_removed_tag"
    } else if w.starts_with("A missing p tag") {
        "dmarc_p_missing"
    } else if w.starts_with("The p tag does not immediately follow") {
        "dmarc_p_not_second"
    } else if w.starts_with("A p tag value of none") {
        "dmarc_p_none"
    } else if w.starts_with("An sp tag value of none") {
        "dmarc_sp_none"
    } else if w.contains("tag value (must be r or s)") {
        "dmarc_invalid_alignment"
    } else if w.starts_with("fo=") {
        "dmarc_invalid_fo"
    } else if w.contains("scheme. That is valid per RFC 9989") {
        "dmarc_uri_not_mailto"
    } else if w.starts_with("The size limit") {
        "dmarc_uri_size_limit"
    } else if w.contains("does not indicate that it accepts DMARC reports") {
        "dmarc_uri_unverified"
    } else if w.contains("has no MX records") || w.starts_with("Failed to retrieve MX records") {
        "dmarc_uri_no_mx"
    } else if w.contains("might not send to more than two") {
        "dmarc_too_many_uris"
    } else if w.starts_with("rua tag (destination for aggregate reports) not found") {
        "dmarc_no_rua"
    } else if w.starts_with("A DMARC record at the root of") {
        "dmarc_record_at_root"
    } else if w.starts_with("The Organizational Domain of") {
        "dmarc_psd_org_missing"
    } else {
        "unmapped"
    };
    if code == "unmapped" {
        format!("unmapped: {w}")
    } else {
        code.to_string()
    }
}

fn theirs(v: &Value, map: fn(&str) -> String) -> Summary {
    Summary {
        valid: v["valid"].as_bool().expect("checkdmarc result has `valid`"),
        error_class: v["error_class"].as_str().map(str::to_string),
        dns_lookups: v.get("dns_lookups").and_then(Value::as_u64),
        void_lookups: v.get("void_dns_lookups").and_then(Value::as_u64),
        warnings: v["warnings"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(map).collect())
            .unwrap_or_default(),
    }
}

fn checkdmarc_results() -> &'static Value {
    static RESULTS: OnceLock<Value> = OnceLock::new();
    RESULTS.get_or_init(|| {
        let mut args = vec![common::nsd().addr.to_string()];
        args.extend(DOMAINS.iter().map(|d| d.to_string()));
        let out = common::run_python("checkdmarc_golden.py", &args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("checkdmarc output is not json ({e}): {out}"))
    })
}

fn differences(
    domain: &str,
    check: &str,
    ours: &Summary,
    theirs: &Summary,
) -> Vec<(String, String, String, String, String)> {
    let mut d = Vec::new();
    let mut push = |field: &str, a: String, b: String| {
        if a != b {
            d.push((
                domain.to_string(),
                check.to_string(),
                field.to_string(),
                a,
                b,
            ));
        }
    };
    push("valid", ours.valid.to_string(), theirs.valid.to_string());
    if !ours.valid && !theirs.valid {
        push(
            "error_class",
            format!("{:?}", ours.error_class),
            format!("{:?}", theirs.error_class),
        );
    }
    if let (Some(a), Some(b)) = (ours.dns_lookups, theirs.dns_lookups) {
        push("dns_lookups", a.to_string(), b.to_string());
    }
    if let (Some(a), Some(b)) = (ours.void_lookups, theirs.void_lookups) {
        push("void_lookups", a.to_string(), b.to_string());
    }
    if ours.valid && theirs.valid {
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        push("warnings", join(&ours.warnings), join(&theirs.warnings));
    }
    d
}

#[tokio::test]
async fn spf_and_dmarc_agree_with_checkdmarc() {
    let reference = checkdmarc_results();
    let dns = dns();
    let mut found = BTreeSet::new();
    let mut table = BTreeMap::new();
    for domain in DOMAINS {
        let r = &reference["domains"][domain];
        let spf = spf::check(&dns, domain)
            .await
            .unwrap_or_else(|e| panic!("spf {domain}: {e}"));
        let dmarc = dmarc::check(&dns, domain)
            .await
            .unwrap_or_else(|e| panic!("dmarc {domain}: {e}"));
        let (os, ts) = (ours_spf(&spf), theirs(&r["spf"], spf_warning_code));
        let (od, td) = (ours_dmarc(&dmarc), theirs(&r["dmarc"], dmarc_warning_code));
        table.insert(
            *domain,
            format!("spf ours={os:?} theirs={ts:?}\n    dmarc ours={od:?} theirs={td:?}"),
        );
        found.extend(differences(domain, "spf", &os, &ts));
        found.extend(differences(domain, "dmarc", &od, &td));
    }
    let expected: BTreeSet<_> = EXPECTED_DIFFERENCES
        .iter()
        .map(|(a, b, c, d, e)| {
            (
                a.to_string(),
                b.to_string(),
                c.to_string(),
                d.to_string(),
                e.to_string(),
            )
        })
        .collect();
    let unexpected: Vec<_> = found.difference(&expected).collect();
    let vanished: Vec<_> = expected.difference(&found).collect();
    assert!(
        unexpected.is_empty() && vanished.is_empty(),
        "disagreements with checkdmarc {} changed\nunexpected: {unexpected:#?}\nexpected but not seen: {vanished:#?}\n\
         details of the domains involved:\n{}",
        reference["checkdmarc_version"],
        unexpected
            .iter()
            .chain(vanished.iter())
            .map(|d| format!(
                "  {}: {}",
                d.0,
                table.get(d.0.as_str()).cloned().unwrap_or_default()
            ))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

async fn spf_of(domain: &str) -> SpfReport {
    spf::check(&dns(), domain)
        .await
        .unwrap_or_else(|e| panic!("spf {domain}: {e}"))
}

async fn dmarc_of(domain: &str) -> DmarcReport {
    dmarc::check(&dns(), domain)
        .await
        .unwrap_or_else(|e| panic!("dmarc {domain}: {e}"))
}

#[tokio::test]
async fn spf_lookup_limit_is_ten() {
    let ten = spf_of("spf-10.test").await;
    assert!(ten.is_valid(), "{ten:?}");
    assert_eq!(ten.dns_lookups, 10);
    let eleven = spf_of("spf-11.test").await;
    assert_eq!(
        eleven.error.as_ref().map(|e| e.kind),
        Some(SpfErrorKind::TooManyLookups),
        "{eleven:?}"
    );
    assert_eq!(eleven.dns_lookups, 11);
    assert!(eleven.error.unwrap().message.contains("11 DNS lookups"));
}

#[tokio::test]
async fn spf_void_lookup_limit_is_two() {
    let two = spf_of("spf-void2.test").await;
    assert!(two.is_valid(), "{two:?}");
    assert_eq!(two.void_lookups, 2);
    let three = spf_of("spf-void3.test").await;
    assert_eq!(
        three.error.map(|e| e.kind),
        Some(SpfErrorKind::TooManyVoidLookups)
    );
    assert_eq!(three.void_lookups, 3);
}

#[tokio::test]
async fn spf_loops_multiple_records_and_syntax() {
    assert_eq!(
        spf_of("spf-loop.test").await.error.map(|e| e.kind),
        Some(SpfErrorKind::IncludeLoop)
    );
    assert_eq!(
        spf_of("spf-redirloop.test").await.error.map(|e| e.kind),
        Some(SpfErrorKind::RedirectLoop)
    );
    assert_eq!(
        spf_of("spf-two.test").await.error.map(|e| e.kind),
        Some(SpfErrorKind::MultipleRecords)
    );
    let syntax = spf_of("spf-syntax.test").await.error.expect("syntax error");
    assert_eq!(syntax.kind, SpfErrorKind::Syntax);
    assert!(syntax.message.contains("position 20"), "{}", syntax.message);
    let split = spf_of("spf-split.test").await;
    assert_eq!(
        split.record.as_deref(),
        Some("v=spf1 include:_spf.provider.test -all")
    );
    assert_eq!(split.dns_lookups, 1);
}

#[tokio::test]
async fn spf_flags_permissive_endings_and_ptr() {
    assert!(
        spf_of("spf-plusall.test")
            .await
            .findings
            .has("spf_all_pass")
    );
    assert!(
        spf_of("spf-neutral.test")
            .await
            .findings
            .has("spf_all_neutral")
    );
    assert!(spf_of("spf-noall.test").await.findings.has("spf_no_all"));
    assert!(spf_of("spf-ptr.test").await.findings.has("spf_ptr"));
    let ok = spf_of("spf-ok.test").await;
    assert_eq!(
        ok.findings.verdict(),
        funnelgate_core::ProbeStatus::Pass,
        "{ok:?}"
    );
    let redirected = spf_of("spf-redirect.test").await;
    assert_eq!(redirected.all, Some(spf::Qualifier::Fail));
    assert_eq!(
        spf_of("spf-cname.test").await.record.as_deref(),
        Some("v=spf1 ip4:192.0.2.1 -all")
    );
}

#[tokio::test]
async fn dmarc_policies_and_dmarcbis_tags() {
    let ok = dmarc_of("dmarc-ok.test").await;
    assert_eq!(ok.policy, Some(dmarc::Policy::Reject));
    assert!(ok.findings.0.is_empty(), "{ok:?}");
    assert!(
        dmarc_of("dmarc-none.test")
            .await
            .findings
            .has("dmarc_p_none")
    );
    let nop = dmarc_of("dmarc-nop.test").await;
    assert_eq!(nop.policy, Some(dmarc::Policy::None));
    assert!(nop.findings.has("dmarc_p_missing"));
    assert_eq!(
        dmarc_of("dmarc-badp.test").await.error.map(|e| e.kind),
        Some(DmarcErrorKind::InvalidTagValue)
    );
    let removed = dmarc_of("dmarc-removed.test").await;
    assert_eq!(
        removed
            .findings
            .codes()
            .iter()
            .filter(|c| **c == "dmarc_removed_tag")
            .count(),
        3
    );
    let bis = dmarc_of("dmarc-bis.test").await;
    assert!(bis.findings.0.is_empty(), "{bis:?}");
    assert_eq!(bis.tags["np"], "reject");
    assert!(
        dmarc_of("dmarc-testmode.test")
            .await
            .findings
            .has("dmarc_test_mode")
    );
}

#[tokio::test]
async fn dmarc_external_report_destinations() {
    assert!(dmarc_of("dmarc-ext.test").await.findings.0.is_empty());
    assert!(
        dmarc_of("dmarc-extnoauth.test")
            .await
            .findings
            .has("dmarc_uri_unverified")
    );
    assert!(dmarc_of("dmarc-extwild.test").await.findings.0.is_empty());
    assert!(dmarc_of("dmarc-subrua.test").await.findings.0.is_empty());
    assert!(
        dmarc_of("dmarc-ruanomx.test")
            .await
            .findings
            .has("dmarc_uri_no_mx")
    );
}

#[tokio::test]
async fn dmarc_falls_back_to_the_organisational_domain() {
    for d in ["sub.dmarc-org.test", "deep.sub.dmarc-org.test"] {
        let r = dmarc_of(d).await;
        assert_eq!(r.location.as_deref(), Some("dmarc-org.test"), "{r:?}");
        assert_eq!(r.policy, Some(dmarc::Policy::Quarantine));
    }
    let psd = dmarc_of("mail.shop.psd-parent.test").await;
    assert_eq!(psd.location.as_deref(), Some("psd-parent.test"));
    assert!(psd.findings.has("dmarc_psd_org_missing"));
    let missing = dmarc_of("dmarc-missing.test").await;
    assert_eq!(
        missing.error.map(|e| e.kind),
        Some(DmarcErrorKind::NotFound)
    );
}

// ------------------------------------------------------------------ probes, end to end

use funnelgate_checker_esp::kinds;
use funnelgate_checker_sdk::ProbeFactory;
use funnelgate_core::{Measurement, ProbeStatus};

async fn run(factory: &dyn ProbeFactory, mut params: Value) -> Measurement {
    params["nameservers"] = serde_json::json!(common::nsd().nameservers());
    let probe = factory
        .build(&params)
        .unwrap_or_else(|e| panic!("{} {params}: {e}", factory.kind()));
    let ctx = common::ctx(factory.kind(), params.clone());
    probe
        .run(&ctx)
        .await
        .unwrap_or_else(|e| panic!("{} {params}: {e}", factory.kind()))
}

fn codes(m: &Measurement) -> String {
    m.evidence.get("findings").cloned().unwrap_or_default()
}

#[tokio::test]
async fn spf_and_dmarc_probes_report_for_marketers() {
    let m = run(
        &kinds::spf_factory(),
        serde_json::json!({"domain": "spf-11.test"}),
    )
    .await;
    assert_eq!(m.verdict, Some(ProbeStatus::Fail));
    assert_eq!(m.value, Some(11.0));
    assert_eq!(m.evidence["dns_lookups"], "11/10");
    assert!(
        m.message.contains("more than the 10 receivers allow"),
        "{}",
        m.message
    );
    let m = run(
        &kinds::spf_factory(),
        serde_json::json!({"domain": "spf-ok.test"}),
    )
    .await;
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{m:?}");
    assert_eq!(m.evidence["all"], "~all (softfail)");
    let m = run(
        &kinds::spf_factory(),
        serde_json::json!({"domain": "spf-plusall.test"}),
    )
    .await;
    assert_eq!(m.verdict, Some(ProbeStatus::Warn));
    let m = run(
        &kinds::dmarc_factory(),
        serde_json::json!({"domain": "dmarc-none.test"}),
    )
    .await;
    assert_eq!((m.verdict, m.value), (Some(ProbeStatus::Warn), Some(0.0)));
    assert!(m.message.contains("p=none"), "{}", m.message);
    let m = run(
        &kinds::dmarc_factory(),
        serde_json::json!({"domain": "dmarc-ok.test"}),
    )
    .await;
    assert_eq!((m.verdict, m.value), (Some(ProbeStatus::Pass), Some(2.0)));
    let m = run(
        &kinds::dmarc_factory(),
        serde_json::json!({"domain": "dmarc-missing.test"}),
    )
    .await;
    assert_eq!((m.verdict, m.value), (Some(ProbeStatus::Fail), None));
}

#[tokio::test]
async fn dkim_key_lengths_are_measured_from_the_keys() {
    let f = kinds::dkim_factory();
    let cases: &[(&str, Option<f64>, ProbeStatus, &str)] = &[
        ("s512", Some(512.0), ProbeStatus::Fail, "dkim_key_too_short"),
        ("s1024", Some(1024.0), ProbeStatus::Warn, "dkim_key_weak"),
        ("s2048", Some(2048.0), ProbeStatus::Pass, ""),
        ("pkcs1", Some(1024.0), ProbeStatus::Warn, "dkim_key_weak"),
        ("revoked", Some(0.0), ProbeStatus::Fail, "dkim_key_revoked"),
        ("ed", Some(3072.0), ProbeStatus::Pass, "dkim_ed25519"),
        ("testing", Some(2048.0), ProbeStatus::Warn, "dkim_testing"),
        ("sha1", Some(2048.0), ProbeStatus::Warn, "dkim_sha1_only"),
        (
            "garbage",
            Some(0.0),
            ProbeStatus::Fail,
            "dkim_key_undecodable",
        ),
        (
            "badver",
            Some(0.0),
            ProbeStatus::Fail,
            "dkim_invalid_record",
        ),
        ("nothere", Some(0.0), ProbeStatus::Fail, "dkim_key_missing"),
        ("esp", Some(2048.0), ProbeStatus::Pass, ""),
    ];
    for (sel, value, status, code) in cases {
        let m = run(
            &f,
            serde_json::json!({"domain": "dkim.test", "selectors": [sel]}),
        )
        .await;
        assert_eq!(
            (m.value, m.verdict),
            (*value, Some(*status)),
            "selector {sel}: {m:?}"
        );
        assert!(codes(&m).contains(code), "selector {sel}: {m:?}");
    }
    let m = run(
        &f,
        serde_json::json!({"domain": "dkim.test", "selectors": ["s2048", "s1024"]}),
    )
    .await;
    assert_eq!(m.value, Some(1024.0), "the weakest key counts");
    assert_eq!(
        m.evidence["selector.s2048"],
        "rsa 2048 bits at s2048._domainkey.dkim.test"
    );
}

#[tokio::test]
async fn dkim_selectors_are_discovered_when_none_are_configured() {
    let m = run(
        &kinds::dkim_discovery_factory(),
        serde_json::json!({"domain": "dkim-disc.test"}),
    )
    .await;
    assert_eq!(m.value, Some(2.0), "{m:?}");
    assert_eq!(
        m.verdict,
        Some(ProbeStatus::Warn),
        "the 1024-bit selector1 key warns: {m:?}"
    );
    assert!(
        m.evidence.contains_key("selector.google") && m.evidence.contains_key("selector.selector1")
    );
    let m = run(
        &kinds::dkim_discovery_factory(),
        serde_json::json!({"domain": "dkim.test", "extra_selectors": ["s2048"]}),
    )
    .await;
    assert!(m.evidence.contains_key("selector.s2048"), "{m:?}");
    let m = run(
        &kinds::dkim_discovery_factory(),
        serde_json::json!({"domain": "dkim-none.test"}),
    )
    .await;
    assert_eq!((m.value, m.verdict), (Some(0.0), Some(ProbeStatus::Warn)));
    let m = run(
        &kinds::dkim_factory(),
        serde_json::json!({"domain": "dkim-disc.test"}),
    )
    .await;
    assert_eq!(
        m.value,
        Some(1024.0),
        "dns.dkim without selectors discovers: {m:?}"
    );
    let m = run(
        &kinds::dkim_factory(),
        serde_json::json!({"domain": "dkim-none.test"}),
    )
    .await;
    assert_eq!(m.verdict, Some(ProbeStatus::Fail));
}

#[tokio::test]
async fn mx_records_and_null_mx() {
    let f = kinds::mx_factory();
    let m = run(&f, serde_json::json!({"domain": "mx-ok.test"})).await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(2.0), Some(ProbeStatus::Pass)),
        "{m:?}"
    );
    assert_eq!(
        m.evidence["mx.mx2.mx-ok.test"],
        "preference 20 → 2001:db8::70"
    );
    let m = run(&f, serde_json::json!({"domain": "mx-null.test"})).await;
    assert_eq!((m.value, m.verdict), (Some(0.0), Some(ProbeStatus::Fail)));
    assert!(m.message.contains("null MX"), "{}", m.message);
    let m = run(
        &f,
        serde_json::json!({"domain": "mx-null.test", "allow_null_mx": true}),
    )
    .await;
    assert_eq!(m.verdict, Some(ProbeStatus::Pass));
    let m = run(&f, serde_json::json!({"domain": "mx-nullplus.test"})).await;
    assert_eq!(m.verdict, Some(ProbeStatus::Warn));
    assert!(codes(&m).contains("mx_null_with_others"));
    let m = run(&f, serde_json::json!({"domain": "mx-none.test"})).await;
    assert_eq!(m.verdict, Some(ProbeStatus::Warn));
    assert!(codes(&m).contains("mx_implicit"));
    for d in ["mx-noaddr.test", "mx-nx.test"] {
        let m = run(&f, serde_json::json!({"domain": d})).await;
        assert_eq!(m.verdict, Some(ProbeStatus::Fail), "{d}: {m:?}");
        assert!(codes(&m).contains("mx_no_usable_host"));
    }
    let m = run(&f, serde_json::json!({"domain": "nothing-here.test"})).await;
    assert!(codes(&m).contains("mx_domain_missing"));
}

async fn policy_server(body: &'static str, content_type: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/.well-known/mta-sts.txt",
        axum::routing::get(move || async move {
            ([(axum::http::header::CONTENT_TYPE, content_type)], body)
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/.well-known/mta-sts.txt")
}

#[tokio::test]
async fn mta_sts_records_and_policies() {
    let f = kinds::mta_sts_factory();
    let good = policy_server("version: STSv1\r\nmode: enforce\r\nmx: mx1.mx-ok.test\r\nmx: *.mx-ok.test\r\nmax_age: 604800\r\n", "text/plain").await;
    let m = run(
        &f,
        serde_json::json!({"domain": "mx-ok.test", "policy_url": good}),
    )
    .await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(1.0), Some(ProbeStatus::Pass)),
        "{m:?}"
    );
    let partial = policy_server(
        "version: STSv1\nmode: enforce\nmx: mx1.mx-ok.test\nmax_age: 604800\n",
        "text/plain; charset=utf-8",
    )
    .await;
    let m = run(
        &f,
        serde_json::json!({"domain": "mx-ok.test", "policy_url": partial}),
    )
    .await;
    assert_eq!(m.verdict, Some(ProbeStatus::Fail), "{m:?}");
    assert!(
        m.message.contains("mx2.mx-ok.test is not covered"),
        "{}",
        m.message
    );
    let html = policy_server("<html>oops</html>", "text/html").await;
    let m = run(
        &f,
        serde_json::json!({"domain": "mx-ok.test", "policy_url": html}),
    )
    .await;
    assert!(
        codes(&m).contains("mta_sts_content_type") && codes(&m).contains("mta_sts_policy_invalid"),
        "{m:?}"
    );
    let m = run(&f, serde_json::json!({"domain": "mx-ok.test", "policy_url": "http://127.0.0.1:9/.well-known/mta-sts.txt"})).await;
    assert!(codes(&m).contains("mta_sts_policy_unavailable"), "{m:?}");
    let m = run(
        &f,
        serde_json::json!({"domain": "mx-ok.test", "fetch_policy": false}),
    )
    .await;
    assert_eq!((m.value, m.verdict), (Some(1.0), Some(ProbeStatus::Pass)));
    let m = run(&f, serde_json::json!({"domain": "mx-none.test"})).await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(0.0), Some(ProbeStatus::Warn)),
        "missing MTA-STS is advisory"
    );
    let m = run(
        &f,
        serde_json::json!({"domain": "mx-bad.test", "fetch_policy": false}),
    )
    .await;
    assert!(codes(&m).contains("mta_sts_invalid"));
    let m = run(
        &f,
        serde_json::json!({"domain": "mx-two.test", "fetch_policy": false}),
    )
    .await;
    assert!(codes(&m).contains("mta_sts_multiple"));
}

#[tokio::test]
async fn tls_rpt_records() {
    let f = kinds::tls_rpt_factory();
    let m = run(&f, serde_json::json!({"domain": "mx-ok.test"})).await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(1.0), Some(ProbeStatus::Pass)),
        "{m:?}"
    );
    let m = run(&f, serde_json::json!({"domain": "mx-bad.test"})).await;
    assert_eq!((m.value, m.verdict), (Some(0.0), Some(ProbeStatus::Fail)));
    let m = run(&f, serde_json::json!({"domain": "mx-none.test"})).await;
    assert_eq!((m.value, m.verdict), (Some(0.0), Some(ProbeStatus::Warn)));
}

#[tokio::test]
async fn bimi_needs_dmarc_enforcement() {
    let f = kinds::bimi_factory();
    let m = run(&f, serde_json::json!({"domain": "dmarc-ok.test"})).await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(1.0), Some(ProbeStatus::Pass)),
        "{m:?}"
    );
    let m = run(&f, serde_json::json!({"domain": "dmarc-none.test"})).await;
    assert_eq!((m.value, m.verdict), (Some(0.0), Some(ProbeStatus::Fail)));
    assert!(
        codes(&m).contains("bimi_dmarc_not_enforced") && codes(&m).contains("bimi_no_certificate"),
        "{m:?}"
    );
    let m = run(&f, serde_json::json!({"domain": "bimi-pct.test"})).await;
    assert!(m.message.contains("pct=50"), "{}", m.message);
    let m = run(&f, serde_json::json!({"domain": "dmarc-removed.test"})).await;
    assert!(codes(&m).contains("bimi_invalid"), "http logo: {m:?}");
    let m = run(
        &f,
        serde_json::json!({"domain": "dmarc-ok.test", "selector": "brand"}),
    )
    .await;
    assert!(codes(&m).contains("bimi_declined"));
    let m = run(&f, serde_json::json!({"domain": "mx-ok.test"})).await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(0.0), Some(ProbeStatus::Pass)),
        "BIMI is optional"
    );
}

#[tokio::test]
async fn sending_ips_on_ip_blocklists() {
    let f = funnelgate_checker_esp::blocklist::ip_factory();
    let lists = serde_json::json!(["zen.bl.test", "clean.bl.test"]);
    let m = run(
        &f,
        serde_json::json!({"ips": ["203.0.113.10", "203.0.113.11"], "zones": lists}),
    )
    .await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(1.0), Some(ProbeStatus::Fail)),
        "{m:?}"
    );
    assert_eq!(
        m.evidence["listed.203.0.113.10.zen.bl.test"],
        "127.0.0.4 (listed: https://bl.test/lookup?ip=203.0.113.10)"
    );
    assert!(
        m.message
            .contains("203.0.113.10 is listed on zen.bl.test (return code 127.0.0.4)"),
        "{}",
        m.message
    );
    assert_eq!(m.evidence["list.clean.bl.test"], "answered");
    let m = run(
        &f,
        serde_json::json!({"ips": ["203.0.113.11", "2001:db8::25"], "zones": lists}),
    )
    .await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(0.0), Some(ProbeStatus::Pass)),
        "{m:?}"
    );
    // a refusal code is not a listing
    let m = run(
        &f,
        serde_json::json!({"ips": ["203.0.113.99"], "zones": lists}),
    )
    .await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(0.0), Some(ProbeStatus::Warn)),
        "{m:?}"
    );
    assert!(codes(&m).contains("blocklist_refused"));
    // lists failing their RFC 5782 test entries are reported and not trusted
    let m = run(&f, serde_json::json!({"ips": ["203.0.113.11"], "zones": ["zen.bl.test", "broken.bl.test", "silent.bl.test"]})).await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(0.0), Some(ProbeStatus::Warn)),
        "{m:?}"
    );
    assert!(
        m.evidence["list.broken.bl.test"].contains("lists 127.0.0.1"),
        "{m:?}"
    );
    assert!(
        m.evidence["list.silent.bl.test"].contains("does not list its RFC 5782 test entry"),
        "{m:?}"
    );
    // without the test the wildcard list "lists" everything
    let m = run(&f, serde_json::json!({"ips": ["203.0.113.11"], "zones": ["broken.bl.test"], "test_lists": false})).await;
    assert_eq!(m.value, Some(1.0));
    // nothing usable: the probe cannot measure
    let params = serde_json::json!({"ips": ["203.0.113.11"], "zones": ["silent.bl.test"], "nameservers": common::nsd().nameservers()});
    let probe = f.build(&params).unwrap();
    let err = probe.run(&common::ctx(f.kind(), params)).await.unwrap_err();
    assert!(
        err.message.contains("no blocklist gave a usable answer"),
        "{err}"
    );
}

#[tokio::test]
async fn sending_and_link_domains_on_domain_blocklists() {
    let f = funnelgate_checker_esp::blocklist::domain_factory();
    let m = run(&f, serde_json::json!({"domains": ["spammy.test", "dmarc-ok.test"], "zones": ["dbl.bl.test", "uri.bl.test"]})).await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(1.0), Some(ProbeStatus::Fail)),
        "{m:?}"
    );
    assert_eq!(
        m.evidence["listed.spammy.test.dbl.bl.test"],
        "127.0.1.2 (spam domain (test))"
    );
    let m = run(
        &f,
        serde_json::json!({"domains": ["dmarc-ok.test"], "zones": ["dbl.bl.test"]}),
    )
    .await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(0.0), Some(ProbeStatus::Pass)),
        "{m:?}"
    );
}

#[tokio::test]
async fn reverse_dns_must_be_forward_confirmed() {
    let f = funnelgate_checker_esp::ptr::factory();
    let m = run(
        &f,
        serde_json::json!({"ips": ["203.0.113.10", "2001:db8::25"]}),
    )
    .await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(0.0), Some(ProbeStatus::Pass)),
        "{m:?}"
    );
    assert_eq!(
        m.evidence["ptr.203.0.113.10"],
        "mail.ptr.test (forward-confirmed)"
    );
    assert_eq!(
        m.evidence["ptr.2001:db8::25"],
        "v6.ptr.test (forward-confirmed)"
    );
    let cases = [
        ("203.0.113.11", "ptr_not_confirmed"),
        ("203.0.113.12", "ptr_missing"),
        ("203.0.113.14", "ptr_not_confirmed"),
    ];
    for (ip, code) in cases {
        let m = run(&f, serde_json::json!({"ips": [ip]})).await;
        assert_eq!(
            (m.value, m.verdict),
            (Some(1.0), Some(ProbeStatus::Fail)),
            "{ip}: {m:?}"
        );
        assert!(codes(&m).contains(code), "{ip}: {m:?}");
    }
    let m = run(&f, serde_json::json!({"ips": ["203.0.113.13"]})).await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(0.0), Some(ProbeStatus::Warn)),
        "{m:?}"
    );
    assert!(codes(&m).contains("ptr_generic"));
    let m = run(
        &f,
        serde_json::json!({"ips": ["203.0.113.10", "203.0.113.12"]}),
    )
    .await;
    assert_eq!(m.value, Some(1.0));
    assert!(m.message.contains("1 of 2 sending IP(s)"), "{}", m.message);
}

// ------------------------------------------------------------------ DNS failures (issue 9)

async fn try_run(
    factory: &dyn ProbeFactory,
    mut params: Value,
) -> Result<Measurement, funnelgate_checker_sdk::ProbeError> {
    params["nameservers"] = serde_json::json!(common::nsd().nameservers());
    let probe = factory
        .build(&params)
        .unwrap_or_else(|e| panic!("{} {params}: {e}", factory.kind()));
    let ctx = common::ctx(factory.kind(), params.clone());
    probe.run(&ctx).await
}

/// A probe that must be ERROR (never a verdict), with a message naming the lookup and why.
async fn assert_dns_error(factory: &dyn ProbeFactory, params: Value, needles: &[&str]) {
    let kind = factory.kind().to_string();
    match try_run(factory, params.clone()).await {
        Ok(m) => panic!("{kind} {params}: expected an ERROR, got a verdict: {m:?}"),
        Err(e) => {
            assert_eq!(
                e.kind,
                funnelgate_checker_sdk::ProbeErrorKind::Transient,
                "{kind} {params}: {e}"
            );
            for n in needles {
                assert!(e.message.contains(n), "{kind} {params}: `{n}` not in: {e}");
            }
        }
    }
}

#[tokio::test]
async fn dns_failures_are_temperrors_never_no_record() {
    let spf = kinds::spf_factory();
    let loop_ = "cname loop: spf-cnameloop.test -> spf-cnameloop2.test -> spf-cnameloop.test";
    assert_dns_error(
        &spf,
        serde_json::json!({"domain": "spf-cnameloop.test"}),
        &["spf temperror", "TXT spf-cnameloop.test", loop_],
    )
    .await;
    assert_dns_error(
        &spf,
        serde_json::json!({"domain": "spf-inccnameloop.test"}),
        &["spf temperror", loop_, "include:spf-cnameloop.test"],
    )
    .await;
    assert_dns_error(
        &spf,
        serde_json::json!({"domain": "spf-redircnameloop.test"}),
        &[loop_, "redirect=spf-cnameloop.test"],
    )
    .await;
    assert_dns_error(
        &spf,
        serde_json::json!({"domain": "spf-amxloop.test"}),
        &["A spf-cnameloop.test", "a:spf-cnameloop.test"],
    )
    .await;
    assert_dns_error(
        &spf,
        serde_json::json!({"domain": "spf-incservfail.test"}),
        &[
            "TXT _spf.broken.test",
            "SERVFAIL",
            "include:_spf.broken.test",
        ],
    )
    .await;
    assert_dns_error(
        &spf,
        serde_json::json!({"domain": "spf-servfail.test"}),
        &["spf temperror", "SERVFAIL"],
    )
    .await;
    assert_dns_error(
        &spf,
        serde_json::json!({"domain": "spf-cnamelong.test"}),
        &["spf temperror", "cname chain", "l10.spf-cnamelong.test"],
    )
    .await;
    // A chain that ends at a name without TXT is a real "no record".
    let r = spf_of("spf-cnamenodata.test").await;
    assert_eq!(r.error.map(|e| e.kind), Some(SpfErrorKind::NotFound));

    assert_dns_error(
        &kinds::dmarc_factory(),
        serde_json::json!({"domain": "dmarc-cnameloop.test"}),
        &["dmarc temperror", "cname loop: _dmarc.dmarc-cnameloop.test"],
    )
    .await;
    assert_dns_error(
        &kinds::dmarc_factory(),
        serde_json::json!({"domain": "dmarc-servfail.test"}),
        &["dmarc temperror", "SERVFAIL"],
    )
    .await;
    assert_dns_error(
        &kinds::dkim_factory(),
        serde_json::json!({"domain": "dkim-cnameloop.test", "selectors": ["s1"]}),
        &["TXT s1._domainkey.dkim-cnameloop.test", "cname loop"],
    )
    .await;
    assert_dns_error(
        &kinds::mx_factory(),
        serde_json::json!({"domain": "mx-cnameloop.test"}),
        &["MX mx-cnameloop.test", "cname loop"],
    )
    .await;
    assert_dns_error(
        &kinds::mx_factory(),
        serde_json::json!({"domain": "mx-hostloop.test"}),
        &[
            "cname loop",
            "the MX host spf-cnameloop.test of mx-hostloop.test",
        ],
    )
    .await;
    assert_dns_error(
        &kinds::mta_sts_factory(),
        serde_json::json!({"domain": "sts-cnameloop.test", "fetch_policy": false}),
        &["TXT _mta-sts.sts-cnameloop.test", "cname loop"],
    )
    .await;
    assert_dns_error(
        &kinds::tls_rpt_factory(),
        serde_json::json!({"domain": "rpt-cnameloop.test"}),
        &["TXT _smtp._tls.rpt-cnameloop.test", "cname loop"],
    )
    .await;
    assert_dns_error(
        &kinds::bimi_factory(),
        serde_json::json!({"domain": "bimi-cnameloop.test"}),
        &["default._bimi.bimi-cnameloop.test", "cname loop"],
    )
    .await;
    assert_dns_error(
        &funnelgate_checker_esp::ptr::factory(),
        serde_json::json!({"ips": ["203.0.113.66"]}),
        &["PTR 66.113.0.203.in-addr.arpa", "cname loop"],
    )
    .await;
    assert_dns_error(
        &funnelgate_checker_esp::blocklist::ip_factory(),
        serde_json::json!({"ips": ["203.0.113.10"], "zones": ["loop.bl.test"]}),
        &["loop.bl.test", "cname loop"],
    )
    .await;
}

#[tokio::test]
async fn a_nameserver_that_never_answers_is_a_timeout_not_no_record() {
    // A UDP socket nobody reads and a TCP listener nobody accepts on: queries time out.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    let _tcp = std::net::TcpListener::bind(addr).ok();
    let dns = Dns::new(vec![addr], Duration::from_millis(800)).unwrap();
    let e = spf::check(&dns, "spf-ok.test").await.unwrap_err();
    assert_eq!(e.rtype, "TXT");
    assert!(
        e.reason.contains("timeout") || e.reason.contains("timed out"),
        "{e}"
    );
    let e = dmarc::check(&dns, "dmarc-ok.test").await.unwrap_err();
    assert!(e.to_string().contains("_dmarc.dmarc-ok.test"), "{e}");
}

// ------------------------------------------------------------------ MX targets (issue 10)

#[tokio::test]
async fn mx_targets_that_are_aliases_or_addresses() {
    let f = kinds::mx_factory();
    let m = run(&f, serde_json::json!({"domain": "mx-cname.test"})).await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(1.0), Some(ProbeStatus::Warn)),
        "{m:?}"
    );
    assert!(codes(&m).contains("mx_cname"), "{m:?}");
    assert!(m.message.contains("RFC 2181 §10.3"), "{}", m.message);
    assert_eq!(m.evidence["mx.alias.mx-cname.test.cname"], "mx1.mx-ok.test");
    // the MX of mx-ok.test names hosts with their own addresses: no flag
    let m = run(&f, serde_json::json!({"domain": "mx-ok.test"})).await;
    assert!(!codes(&m).contains("mx_cname"), "{m:?}");

    // An IP literal is an invalid MX, reported as such: no A query for an address.
    let m = run(&f, serde_json::json!({"domain": "mx-literal.test"})).await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(0.0), Some(ProbeStatus::Fail)),
        "{m:?}"
    );
    assert!(codes(&m).contains("mx_ip_literal"), "{m:?}");
    assert!(m.message.contains("none of the MX hosts"), "{}", m.message);
    assert!(
        m.evidence["mx.192.0.2.80"]
            .contains("invalid: the MX target 192.0.2.80 is an IP address literal"),
        "{m:?}"
    );
    let m = run(&f, serde_json::json!({"domain": "mx-literalplus.test"})).await;
    assert_eq!(
        (m.value, m.verdict),
        (Some(1.0), Some(ProbeStatus::Warn)),
        "{m:?}"
    );
    assert!(codes(&m).contains("mx_ip_literal"), "{m:?}");
}

// ------------------------------------------------------------------ check_host() in dns.spf (issue 9 item 13)

#[tokio::test]
async fn spf_probe_evaluates_the_sending_ips() {
    let f = kinds::spf_factory();
    // spf-ok.test: "v=spf1 ip4:192.0.2.0/24 include:_spf.provider.test ~all"
    let m = run(
        &f,
        serde_json::json!({"domain": "spf-ok.test", "ips": ["192.0.2.10", "198.51.100.7"]}),
    )
    .await;
    assert_eq!(m.verdict, Some(ProbeStatus::Pass), "{m:?}");
    assert_eq!(m.evidence["check_host.192.0.2.10"], "pass");
    assert_eq!(
        m.evidence["check_host.192.0.2.10.mechanism"],
        "ip4:192.0.2.0/24 (in the record of spf-ok.test)"
    );
    assert_eq!(
        m.evidence["check_host.198.51.100.7.mechanism"],
        "include:_spf.provider.test (in the record of spf-ok.test)"
    );
    assert!(
        m.message.contains("2 of 2 sending IPs pass"),
        "{}",
        m.message
    );

    let m = run(
        &f,
        serde_json::json!({"domain": "spf-ok.test", "ips": ["192.0.2.10", "203.0.113.5", "2001:db8::5"]}),
    )
    .await;
    assert_eq!(m.verdict, Some(ProbeStatus::Fail), "{m:?}");
    assert_eq!(m.evidence["check_host.203.0.113.5"], "softfail");
    assert_eq!(m.evidence["check_host.2001:db8::5"], "softfail");
    assert_eq!(
        m.evidence["check_host.203.0.113.5.mechanism"],
        "~all (in the record of spf-ok.test)"
    );
    assert!(codes(&m).contains("spf_ip_not_authorised"), "{m:?}");
    assert!(
        m.message.contains("203.0.113.5 gets softfail"),
        "{}",
        m.message
    );

    // no record: none; a record over the lookup limit: permerror
    let m = run(
        &f,
        serde_json::json!({"domain": "spf-none.test", "ips": ["192.0.2.10"]}),
    )
    .await;
    assert_eq!(m.evidence["check_host.192.0.2.10"], "none", "{m:?}");
    let m = run(
        &f,
        serde_json::json!({"domain": "spf-11.test", "ips": ["203.0.113.5"]}),
    )
    .await;
    assert_eq!(m.evidence["check_host.203.0.113.5"], "permerror", "{m:?}");
    assert!(codes(&m).contains("spf_check_host_permerror"), "{m:?}");

    // a DNS failure during the evaluation is a temperror: ERROR
    assert_dns_error(
        &f,
        serde_json::json!({"domain": "spf-redircnameloop.test", "ips": ["192.0.2.10"]}),
        &["spf temperror", "cname loop"],
    )
    .await;

    // bad params are refused with the field named
    for bad in [
        serde_json::json!({"domain": "spf-ok.test", "ips": ["192.0.2.300"]}),
        serde_json::json!({"domain": "spf-ok.test", "ips": ["192.0.2.1"], "sender": "nobody"}),
        serde_json::json!({"domain": "spf-ok.test", "helo": "not a name"}),
    ] {
        let e = f.build(&bad).err().expect("refused");
        assert!(e.message.contains('`'), "{e}");
    }
}

// ------------------------------------------------------------------ what the records say (issue 9 item 11)

#[tokio::test]
async fn dkim_key_type_and_real_size_are_reported_separately() {
    let f = kinds::dkim_factory();
    let m = run(
        &f,
        serde_json::json!({"domain": "dkim.test", "selectors": ["ed"]}),
    )
    .await;
    assert_eq!(m.evidence["selector.ed.key_type"], "ed25519", "{m:?}");
    assert_eq!(m.evidence["selector.ed.key_bits"], "256");
    assert_eq!(m.evidence["selector.ed.rsa_equivalent_bits"], "3072");
    assert_eq!(m.evidence["selector.ed.status"], "usable");
    assert_eq!(
        m.evidence["selector.ed"],
        "ed25519 256 bits at ed._domainkey.dkim.test"
    );
    assert!(
        m.message
            .contains("weakest key ed25519 256 bits (as strong as rsa 3072 bits)"),
        "{}",
        m.message
    );
    let m = run(
        &f,
        serde_json::json!({"domain": "dkim.test", "selectors": ["s1024"]}),
    )
    .await;
    assert_eq!(m.evidence["selector.s1024.key_type"], "rsa");
    assert_eq!(m.evidence["selector.s1024.key_bits"], "1024");
    assert!(
        m.message.contains("weakest key rsa 1024 bits"),
        "{}",
        m.message
    );

    // revoked and unusable keys keep their type
    for (sel, status, ty) in [
        ("revoked-ed", "revoked", "ed25519"),
        ("revoked", "revoked", "rsa"),
        ("short-ed", "unusable", "ed25519"),
        ("garbage", "unusable", "rsa"),
    ] {
        let m = run(
            &f,
            serde_json::json!({"domain": "dkim.test", "selectors": [sel]}),
        )
        .await;
        assert_eq!(m.verdict, Some(ProbeStatus::Fail), "{sel}: {m:?}");
        assert_eq!(
            m.evidence[&format!("selector.{sel}.status")],
            status,
            "{m:?}"
        );
        assert_eq!(m.evidence[&format!("selector.{sel}.key_type")], ty, "{m:?}");
        assert!(
            !m.evidence.contains_key(&format!("selector.{sel}.key_bits")),
            "{m:?}"
        );
        assert!(
            m.evidence[&format!("selector.{sel}")].starts_with(&format!("{status} {ty} key at")),
            "{m:?}"
        );
    }
    let m = run(
        &f,
        serde_json::json!({"domain": "dkim.test", "selectors": ["nothere"]}),
    )
    .await;
    assert_eq!(m.evidence["selector.nothere.status"], "missing");
    assert!(!m.evidence.contains_key("selector.nothere.key_type"));
}

#[tokio::test]
async fn dmarc_pct_and_testing_flag_are_exposed_with_their_effect() {
    let f = kinds::dmarc_factory();
    // p=quarantine; pct=50
    let m = run(&f, serde_json::json!({"domain": "dmarc-removed.test"})).await;
    assert_eq!(m.evidence["pct"], "50", "{m:?}");
    assert_eq!(m.evidence["testing"], "n");
    assert_eq!(
        m.evidence["enforcement.rfc7489"],
        "p=quarantine on 50% of failing mail, none on the rest (pct=50)"
    );
    assert_eq!(
        m.evidence["enforcement.dmarcbis"],
        "p=quarantine on all failing mail (pct is not part of DMARCbis)"
    );
    assert!(codes(&m).contains("dmarc_partial_enforcement"), "{m:?}");
    // p=reject; t=y
    let m = run(&f, serde_json::json!({"domain": "dmarc-testmode.test"})).await;
    assert_eq!(m.evidence["pct"], "100 (default)");
    assert_eq!(m.evidence["testing"], "y");
    assert_eq!(
        m.evidence["enforcement.rfc7489"],
        "p=reject on all failing mail"
    );
    assert_eq!(
        m.evidence["enforcement.dmarcbis"],
        "test mode (t=y): failing mail gets quarantine instead of reject"
    );
    assert!(codes(&m).contains("dmarc_test_mode"));
    // full enforcement
    let m = run(&f, serde_json::json!({"domain": "dmarc-ok.test"})).await;
    assert_eq!(m.evidence["pct"], "100 (default)");
    assert!(!codes(&m).contains("dmarc_partial_enforcement"));
}
