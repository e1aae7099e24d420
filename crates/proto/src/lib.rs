//! Generated gRPC types for `funnelgate.v1` (behind [`pb`]) and the conversions between them and
//! the core model ([`convert`]).
//!
//! Prost types stay at the edge: handlers convert wire types to core types on entry and back on
//! exit, so business logic never sees `Option<Message>`. This crate depends on `funnelgate-core`,
//! never the other way round, and knows nothing of servers, stores or probes.

pub mod convert;
pub mod encoded;

/// Generated code for package `funnelgate.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("funnelgate.v1");

    /// Encoded `FileDescriptorSet` of the funnelgate.v1 protos, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/funnelgate_descriptor.bin"));
}

/// Server-side `GateService` types: the public request types, and responses whose decision is
/// an [`encoded::EncodedDecision`] (byte-identical on the wire to the [`pb`] responses).
#[allow(clippy::all, missing_docs)]
pub mod pb_server {
    include!(concat!(env!("OUT_DIR"), "/server/funnelgate.v1.rs"));
}

pub use convert::ConversionError;

/// Fully-qualified gRPC service names, for health reporting.
pub const STAGE_CHECKER_SERVICE: &str = "funnelgate.v1.StageChecker";
pub const GATE_SERVICE: &str = "funnelgate.v1.GateService";
