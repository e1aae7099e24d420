//! `email.one_click_unsubscribe` on sample messages in `tests/messages/`.

#![allow(clippy::unwrap_used)]
mod common;

use funnelgate_checker_sdk::ProbeFactory;
use funnelgate_core::{Measurement, ProbeStatus};
use serde_json::json;

async fn run(file: &str, require: bool) -> Result<Measurement, funnelgate_checker_sdk::ProbeError> {
    let f = funnelgate_checker_esp::unsubscribe::factory();
    let path = common::crate_dir()
        .join("tests/messages")
        .join(file)
        .display()
        .to_string();
    let params = json!({"eml_path": path, "require_dkim_coverage": require});
    let probe = f.build(&params).unwrap();
    probe.run(&common::ctx(f.kind(), params)).await
}

#[tokio::test]
async fn a_compliant_marketing_message_passes() {
    let m = run("one-click.eml", true).await.unwrap();
    assert_eq!(
        (m.value, m.verdict),
        (Some(1.0), Some(ProbeStatus::Pass)),
        "{m:?}"
    );
    assert_eq!(
        m.evidence["unsubscribe_uri"],
        "https://news.example.com/unsubscribe/one-click/abc123?sig=f00d"
    );
    assert_eq!(m.evidence["dkim_d"], "news.example.com");
}

#[tokio::test]
async fn missing_pieces_fail_with_a_reason() {
    let cases = [
        ("mailto-only.eml", "unsubscribe_no_https", "no https URI"),
        (
            "no-post-header.eml",
            "unsubscribe_post_missing",
            "List-Unsubscribe-Post",
        ),
        ("post-not-signed.eml", "unsubscribe_not_covered", "h= tag"),
        (
            "unsigned.eml",
            "unsubscribe_not_signed",
            "no DKIM-Signature",
        ),
    ];
    for (file, code, words) in cases {
        let m = run(file, true).await.unwrap();
        assert_eq!(
            (m.value, m.verdict),
            (Some(0.0), Some(ProbeStatus::Fail)),
            "{file}: {m:?}"
        );
        assert!(m.evidence["findings"].contains(code), "{file}: {m:?}");
        assert!(m.message.contains(words), "{file}: {}", m.message);
    }
    let m = run("post-not-signed.eml", false).await.unwrap();
    assert_eq!(
        (m.value, m.verdict),
        (Some(1.0), Some(ProbeStatus::Warn)),
        "{m:?}"
    );
}

#[tokio::test]
async fn an_unreadable_sample_is_an_error() {
    let err = run("does-not-exist.eml", true).await.unwrap_err();
    assert!(
        err.message.contains("cannot read the sample message"),
        "{err}"
    );
}
