//! [`EncodedDecision`]: a `GateDecision` encoded once and written as is by every response that
//! carries it.
//!
//! Protobuf encodes an embedded message field exactly like a length-delimited bytes field, so a
//! response whose decision field holds these bytes is byte-identical on the wire to the public
//! [`pb`] response: clients decode it as the public type. The server-side responses in
//! [`crate::pb_server`] use it so that fanning one decision out to many `WatchGate` streams (or
//! answering many `GetGate` calls) copies bytes instead of cloning and re-encoding the message.

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::pb;

/// The encoded bytes of one `funnelgate.v1.GateDecision` (without a length delimiter). Cloning
/// is cheap: the bytes are reference-counted.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EncodedDecision {
    bytes: Bytes,
}

impl EncodedDecision {
    /// Encode `decision` once.
    pub fn new(decision: &pb::GateDecision) -> Self {
        EncodedDecision {
            bytes: Bytes::from(decision.encode_to_vec()),
        }
    }

    /// The encoded decision.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Decode back into the public message.
    pub fn decode(&self) -> Result<pb::GateDecision, DecodeError> {
        pb::GateDecision::decode(self.bytes.clone())
    }
}

impl From<&pb::GateDecision> for EncodedDecision {
    fn from(decision: &pb::GateDecision) -> Self {
        EncodedDecision::new(decision)
    }
}

impl std::fmt::Debug for EncodedDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedDecision")
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Message for EncodedDecision {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes);
    }

    /// Servers never decode their responses; this keeps the field's bytes anyway (re-encoding
    /// its key and value), so decoding a server-side response yields the same decision. Groups
    /// (absent from proto3) are skipped.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        use prost::encoding::{decode_varint, encode_key, encode_varint, skip_field};
        let mut field = Vec::new();
        encode_key(tag, wire_type, &mut field);
        let len = match wire_type {
            WireType::Varint => {
                encode_varint(decode_varint(buf)?, &mut field);
                0
            }
            WireType::ThirtyTwoBit => 4,
            WireType::SixtyFourBit => 8,
            WireType::LengthDelimited => {
                let len = decode_varint(buf)?;
                encode_varint(len, &mut field);
                len
            }
            WireType::StartGroup | WireType::EndGroup => {
                return skip_field(wire_type, tag, buf, ctx);
            }
        };
        match usize::try_from(len) {
            Ok(len) if len <= buf.remaining() => field.put(buf.take(len)),
            // Too short: let prost report it (the length delimiter put back in front).
            _ => {
                let mut delimiter = Vec::new();
                if wire_type == WireType::LengthDelimited {
                    encode_varint(len, &mut delimiter);
                }
                return skip_field(wire_type, tag, &mut delimiter.as_slice().chain(buf), ctx);
            }
        }
        let mut bytes = Vec::with_capacity(self.bytes.len() + field.len());
        bytes.extend_from_slice(&self.bytes);
        bytes.extend_from_slice(&field);
        self.bytes = Bytes::from(bytes);
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.bytes = Bytes::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb_server;

    fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    /// A decision with every kind of field set: strings, enums, optionals, repeated messages,
    /// a map, nested timestamps and durations, and an override.
    fn decision() -> pb::GateDecision {
        let probe = pb::ProbeResult {
            journey_steps: vec![pb::JourneyStep {
                name: "crm_record".into(),
                stage: "crm".into(),
                status: pb::ProbeStatus::Fail as i32,
                duration: None,
                message: "not in the crm".into(),
            }],
            id: "spf".into(),
            kind: "dns.spf".into(),
            status: pb::ProbeStatus::Fail as i32,
            value: Some(3.5),
            unit: "lookups".into(),
            threshold: Some(10.0),
            badness: 1.0,
            message: "too many DNS lookups — ünïcode".into(),
            observed_at: ts(1_700_000_000),
            duration: Some(prost_types::Duration {
                seconds: 0,
                nanos: 250_000_000,
            }),
            sample_size: Some(42),
            window: "30d".into(),
            evidence: [("record".to_string(), "v=spf1 -all".to_string())].into(),
        };
        pb::GateDecision {
            funnel: "acme".into(),
            state: pb::GateState::Closed as i32,
            allowed_rollout_percent: 0,
            blocking_stage: "deliverability".into(),
            phase: pb::Phase::Operate as i32,
            reasons: vec![pb::Reason {
                code: "STAGE_FAILING".into(),
                stage: "deliverability".into(),
                probe: "spf".into(),
                value: Some(3.5),
                threshold: None,
                message: "spf fails".into(),
            }],
            remediation: vec![pb::RemediationItem {
                stage: "deliverability".into(),
                probe: "spf".into(),
                status: pb::ProbeStatus::Fail as i32,
                badness: 1.0,
                message: "fix spf".into(),
                value: None,
                threshold: Some(10.0),
            }],
            stages: vec![pb::StageSummary {
                stage: "deliverability".into(),
                health: pb::StageHealth::Failing as i32,
                readiness: pb::Readiness::NotReady as i32,
                score: 0.25,
                checked_at: ts(1_700_000_001),
                on_unknown: pb::OnUnknown::Hold as i32,
                probes: vec![probe.clone(), probe],
                summary: "1 of 2 probes failing".into(),
            }],
            since: ts(1_699_999_000),
            evaluated_at: ts(1_700_000_002),
            r#override: Some(pb::Override {
                state: pb::GateState::Closed as i32,
                actor: "ops".into(),
                reason: "incident 42".into(),
                until: ts(1_700_003_600),
                created_at: ts(1_700_000_000),
                percent: None,
            }),
            advice: String::new(),
            config_hash: "0123abcd".into(),
            sequence: 17,
            underlying_state: pb::GateState::Hold as i32,
        }
    }

    /// The server-side response encodes to exactly the public one's bytes, and those bytes
    /// decode as the public response with the decision intact.
    fn assert_wire_identical<S: Message, P: Message + Default + PartialEq + std::fmt::Debug>(
        server: S,
        public: P,
    ) {
        let bytes = server.encode_to_vec();
        assert_eq!(bytes, public.encode_to_vec());
        assert_eq!(P::decode(bytes.as_slice()).unwrap(), public);
    }

    #[test]
    fn every_response_carrying_a_decision_is_wire_identical() {
        for d in [decision(), pb::GateDecision::default()] {
            let e = EncodedDecision::new(&d);
            assert_wire_identical(
                pb_server::GetGateResponse {
                    decision: Some(e.clone()),
                },
                pb::GetGateResponse {
                    decision: Some(d.clone()),
                },
            );
            assert_wire_identical(
                pb_server::WatchGateResponse {
                    decision: Some(e.clone()),
                },
                pb::WatchGateResponse {
                    decision: Some(d.clone()),
                },
            );
            assert_wire_identical(
                pb_server::ExplainResponse {
                    decision: Some(e.clone()),
                    policy_json: "{\"stages\":[]}".into(),
                    explanation: vec!["one".into(), "two".into()],
                },
                pb::ExplainResponse {
                    decision: Some(d.clone()),
                    policy_json: "{\"stages\":[]}".into(),
                    explanation: vec!["one".into(), "two".into()],
                },
            );
            assert_wire_identical(
                pb_server::SetOverrideResponse {
                    decision: Some(e.clone()),
                },
                pb::SetOverrideResponse {
                    decision: Some(d.clone()),
                },
            );
            assert_wire_identical(
                pb_server::ClearOverrideResponse {
                    decision: Some(e.clone()),
                },
                pb::ClearOverrideResponse {
                    decision: Some(d.clone()),
                },
            );
            assert_wire_identical(
                pb_server::SetPhaseResponse {
                    decision: Some(e.clone()),
                },
                pb::SetPhaseResponse {
                    decision: Some(d.clone()),
                },
            );
            let server_record = |seq| pb_server::DecisionRecord {
                sequence: seq,
                decision: Some(e.clone()),
                recorded_at: ts(1_700_000_000),
                hash: "ab".into(),
                prev_hash: "cd".into(),
                kind: "decision".into(),
            };
            let public_record = |seq| pb::DecisionRecord {
                sequence: seq,
                decision: Some(d.clone()),
                recorded_at: ts(1_700_000_000),
                hash: "ab".into(),
                prev_hash: "cd".into(),
                kind: "decision".into(),
            };
            assert_wire_identical(
                pb_server::ListDecisionsResponse {
                    decisions: vec![server_record(2), server_record(1)],
                    next_page_token: "7631".into(),
                    chain_valid: Some(true),
                    chain_error: String::new(),
                    chain_length: 2,
                },
                pb::ListDecisionsResponse {
                    decisions: vec![public_record(2), public_record(1)],
                    next_page_token: "7631".into(),
                    chain_valid: Some(true),
                    chain_error: String::new(),
                    chain_length: 2,
                },
            );
        }
    }

    #[test]
    fn an_absent_decision_stays_absent() {
        assert_wire_identical(
            pb_server::WatchGateResponse { decision: None },
            pb::WatchGateResponse { decision: None },
        );
    }

    #[test]
    fn decoding_a_server_response_keeps_the_decision() {
        let d = decision();
        let bytes = pb::WatchGateResponse {
            decision: Some(d.clone()),
        }
        .encode_to_vec();
        let decoded = pb_server::WatchGateResponse::decode(bytes.as_slice()).unwrap();
        let encoded = decoded.decision.unwrap();
        assert_eq!(encoded.decode().unwrap(), d);
        assert_eq!(encoded, EncodedDecision::new(&d));
    }

    #[test]
    fn a_truncated_decision_is_a_decode_error() {
        let bytes = pb::WatchGateResponse {
            decision: Some(decision()),
        }
        .encode_to_vec();
        for cut in [bytes.len() - 1, bytes.len() / 2, 3] {
            assert!(
                pb_server::WatchGateResponse::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn the_encoded_length_is_the_message_length() {
        let d = decision();
        let e = EncodedDecision::new(&d);
        assert_eq!(e.encoded_len(), d.encoded_len());
        assert_eq!(e.as_bytes().as_ref(), d.encode_to_vec().as_slice());
        assert!(format!("{e:?}").contains("len"));
    }
}
