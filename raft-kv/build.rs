//! Generates etcd's v3 wire types from `proto/` with prost, and their
//! proto3-JSON serde implementations with pbjson from the same descriptors,
//! using the `protoc` shipped by protoc-bin-vendored (no system protoc).
//!
//! The JSON follows grpc-gateway as etcd 3.5 configures it: original proto
//! field names on output (both those and lowerCamel names accepted on
//! input), 64-bit integers as strings, bytes as base64, enums by name,
//! fields holding their default left out, unknown fields ignored.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = out.join("etcd_descriptors.bin");
    prost_build::Config::new()
        .bytes(["."])
        .file_descriptor_set_path(&descriptors)
        .compile_protos(&["proto/rpc.proto", "proto/kv.proto", "proto/auth.proto"], &["proto"])?;
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptors)?)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(&[".etcdserverpb", ".mvccpb", ".authpb"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
