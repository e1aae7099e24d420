//! Every vendor failure mode, run against one probe kind: 401, 403, 404, 429 with Retry-After
//! (1 s, so the wait-and-retry is exercised without slowing the suite),
//! 500, an html 503, a timeout, malformed and truncated JSON, and a missing secret. Each must be an
//! ERROR-producing [`ProbeError`] of the right kind with a message naming the failure, and never
//! leak the secret.

use std::sync::Arc;
use std::time::Duration;

use funnelgate_checker_sdk::ProbeErrorKind;
use serde_json::Value;

use super::{MockVendor, Reply, Run, Spec, assert_error};

/// One probe kind to put through the failure modes.
pub struct Subject {
    pub kind: &'static str,
    /// Params pointing at the mock's base URL.
    pub params: Box<dyn Fn(&str) -> Value + Send + Sync>,
    pub secret_name: &'static str,
    pub secret_value: String,
    /// The vendor's error body shape, with this message in it.
    pub error_body: Box<dyn Fn(&str) -> Value + Send + Sync>,
    /// The start of a valid reply of the kind's first call, cut short (`[{"id": 1, ` for a list).
    pub truncated: &'static str,
    /// Whether the vendor's error bodies carry a message `vendor_http` quotes.
    pub quotes_vendor_message: bool,
}

/// Run every failure mode against `subject`.
pub async fn check_failure_modes(spec: Arc<Spec>, subject: Subject) {
    let kind = subject.kind;
    let eb = &subject.error_body;
    let cases: Vec<(&str, Reply, ProbeErrorKind, Vec<&str>)> = vec![
        (
            "401",
            Reply::json(401, eb("invalid api key")),
            ProbeErrorKind::Permanent,
            vec!["401", "rejected"],
        ),
        (
            "403",
            Reply::json(403, eb("access forbidden: missing scope stats.read")),
            ProbeErrorKind::Permanent,
            if subject.quotes_vendor_message {
                vec!["403", "permission", "missing scope stats.read"]
            } else {
                vec!["403", "permission"]
            },
        ),
        (
            "404",
            Reply::json(404, eb("not found")),
            ProbeErrorKind::Permanent,
            vec!["404"],
        ),
        (
            "429",
            Reply::json(429, eb("too many requests")).header("retry-after", "1"),
            ProbeErrorKind::Transient,
            vec!["429", "retry after 1s"],
        ),
        (
            "500",
            Reply::json(500, eb("internal error")),
            ProbeErrorKind::Transient,
            vec!["500", "failing"],
        ),
        (
            "503 html",
            Reply::raw(503, "<html><body>service unavailable</body></html>"),
            ProbeErrorKind::Transient,
            vec!["503"],
        ),
        (
            "timeout",
            Reply::hang(),
            ProbeErrorKind::Transient,
            vec!["timed out"],
        ),
        (
            "malformed",
            Reply::raw(200, "<html>maintenance</html>"),
            ProbeErrorKind::Permanent,
            vec!["malformed json"],
        ),
        (
            "truncated",
            Reply::raw(200, subject.truncated),
            ProbeErrorKind::Permanent,
            vec!["truncated json"],
        ),
    ];
    for (name, reply, want, needles) in cases {
        let r2 = reply.clone();
        let mock = MockVendor::start(spec.clone(), move |_| r2.clone()).await;
        // The 429 case: the 1 s wait fits the 1.5 s budget once (one retry after waiting),
        // the second does not, so the error carries the vendor's Retry-After.
        let timeout = match name {
            "timeout" => Duration::from_millis(300),
            "429" => Duration::from_millis(1500),
            _ => Duration::from_secs(10),
        };
        let result = Run::new(kind, (subject.params)(&mock.url))
            .secret(subject.secret_name, subject.secret_value.clone())
            .timeout(timeout)
            .go()
            .await;
        let e = assert_error(&result, want, &needles);
        assert!(
            !e.message.contains(&subject.secret_value),
            "{kind} {name}: the error message leaks the secret: {}",
            e.message
        );
        if name == "429" {
            assert_eq!(
                e.retry_after,
                Some(Duration::from_secs(1)),
                "{kind}: retry-after not honoured"
            );
            assert!(
                mock.seen().len() >= 2,
                "{kind}: retried after waiting the Retry-After: {} requests",
                mock.seen().len()
            );
        }
        mock.assert_contract();
    }
    // No secret named in the spec: a params error; a named secret that is not set: a permanent
    // error saying where it was looked for. Neither calls the vendor.
    let mock = MockVendor::start(spec.clone(), |_| Reply::json(500, Value::Null)).await;
    let result = Run::new(kind, (subject.params)(&mock.url)).go().await;
    assert_error(&result, ProbeErrorKind::InvalidParams, &["secret"]);
    let result = Run::new(kind, (subject.params)(&mock.url))
        .unset_secret(subject.secret_name)
        .go()
        .await;
    assert_error(
        &result,
        ProbeErrorKind::Permanent,
        &["is not set", subject.secret_name],
    );
    assert!(
        mock.seen().is_empty(),
        "{kind}: called the vendor without credentials"
    );
}
