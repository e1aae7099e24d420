//! What a checker answers, as the coordinator reads it: a `CheckResponse` decoded by prost and its
//! report converted to the core model by `funnelgate_proto`'s `TryFrom` (the scheduler's
//! `accept`). The same bytes are also read as a `CheckRequest` (what a checker reads from the
//! coordinator: probe specs) and as a `GateDecision` (what clients read from the gate).
//!
//! Input: protobuf bytes. Invariants: no panic; a report that converts converts back to the wire
//! and again to the same core report (a fixed point after one trip); likewise a probe spec.
#![no_main]

use funnelgate_core::{GateDecision, ProbeSpec, StageReport};
use funnelgate_proto::pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = pb::CheckResponse::decode(data)
        && let Some(wire) = response.report.as_ref()
        && let Ok(report) = StageReport::try_from(wire)
    {
        let again = pb::CheckResponse {
            report: Some(pb::StageReport::from(&report)),
        };
        let bytes = again.encode_to_vec();
        let decoded =
            pb::CheckResponse::decode(bytes.as_slice()).expect("our own encoding decodes");
        let report2 = StageReport::try_from(decoded.report.as_ref().expect("report kept"))
            .unwrap_or_else(|e| {
                panic!("a converted report does not convert again: {e}: {report:?}")
            });
        let report3 = StageReport::try_from(&pb::StageReport::from(&report2))
            .expect("a twice-converted report converts");
        // Debug, not PartialEq: a NaN threshold must compare equal to itself.
        assert_eq!(
            format!("{report2:?}"),
            format!("{report3:?}"),
            "the report is not a fixed point"
        );
    }

    if let Ok(request) = pb::CheckRequest::decode(data) {
        for wire in &request.probes {
            if let Ok(spec) = ProbeSpec::try_from(wire) {
                let spec2 = ProbeSpec::try_from(&pb::ProbeSpec::from(&spec)).unwrap_or_else(|e| {
                    panic!("a converted spec does not convert again: {e}: {spec:?}")
                });
                let spec3 = ProbeSpec::try_from(&pb::ProbeSpec::from(&spec2)).expect("converts");
                assert_eq!(
                    format!("{spec2:?}"),
                    format!("{spec3:?}"),
                    "the spec is not a fixed point"
                );
            }
        }
    }

    if let Ok(decision) = pb::GateDecision::decode(data) {
        let _ = GateDecision::try_from(&decision);
    }
});
