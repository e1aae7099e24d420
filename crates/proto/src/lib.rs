//! Generated gRPC types for `funnelgate.v1` (behind [`pb`]) and the conversions between them and
//! the core model. Nothing outside the wire boundary should see a prost type.
