//! Compile `proto/funnelgate/v1/*.proto` with protox (pure Rust: no `protoc` needed) and generate
//! the tonic/prost code plus a descriptor set for server reflection.
//!
//! A second compile of `gate.proto` generates the server-side response types (`pb_server`): every
//! message maps to the public `crate::pb` type except `GateDecision`, which maps to
//! `crate::encoded::EncodedDecision` (bytes encoded once, written as is), so the messages that
//! carry a decision are generated again around it, together with the `GateService` server.

use std::collections::BTreeSet;
use std::path::PathBuf;

use prost::Message;
use prost_types::FileDescriptorSet;

const PACKAGE: &str = "funnelgate.v1";
const DECISION: &str = ".funnelgate.v1.GateDecision";
const GATE_PROTO: &str = "funnelgate/v1/gate.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest.join("../../proto");
    let files = [
        "funnelgate/v1/types.proto",
        "funnelgate/v1/checker.proto",
        GATE_PROTO,
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", proto_dir.join(f).display());
    }
    let fds = protox::compile(files, [&proto_dir])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("funnelgate_descriptor.bin"),
        fds.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds.clone())?;
    compile_server(fds, out_dir.join("server"))
}

/// The server-side compile: only the messages that (transitively) contain a `GateDecision` are
/// generated; every other funnelgate.v1 type is the public `crate::pb` one.
fn compile_server(fds: FileDescriptorSet, out: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&out)?;
    let mut types = Vec::new();
    for file in fds.file.iter().filter(|f| f.package() == PACKAGE) {
        for m in &file.message_type {
            // Nested types (map entries) follow their message: mapped, or generated with it.
            types.push((format!(".{PACKAGE}.{}", m.name()), Some(m.clone())));
        }
        for e in &file.enum_type {
            types.push((format!(".{PACKAGE}.{}", e.name()), None));
        }
    }
    // Carriers: messages with a field whose type is the decision or another carrier.
    let mut carriers: BTreeSet<String> = BTreeSet::from([DECISION.to_string()]);
    loop {
        let before = carriers.len();
        for (name, message) in &types {
            let Some(message) = message else { continue };
            if message
                .field
                .iter()
                .any(|f| carriers.contains(f.type_name()))
            {
                carriers.insert(name.clone());
            }
        }
        if carriers.len() == before {
            break;
        }
    }
    let mut builder = tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .out_dir(&out)
        .extern_path(DECISION, "crate::encoded::EncodedDecision");
    for (name, _) in &types {
        if !carriers.contains(name) {
            let rust = name
                .strip_prefix(&format!(".{PACKAGE}."))
                .ok_or("type outside the package")?;
            builder = builder.extern_path(name, format!("crate::pb::{rust}"));
        }
    }
    let mut gate_only = fds;
    gate_only.file.retain(|f| f.name() == GATE_PROTO);
    builder.compile_fds(gate_only)?;
    Ok(())
}
