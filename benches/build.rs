//! Generates the etcd v3 gRPC *client* used by `raft-kv-bench` from the
//! etcd protos (`raft-kv/proto`), with the `protoc` shipped by the
//! protoc-bin-vendored crate so no system protoc is needed.
//!
//! There is no `extern_path` to raft-kv's types: the bench speaks the wire
//! protocol only and must not depend on the library it measures.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    tonic_prost_build::configure().build_client(true).build_server(false).compile_protos(
        &["../raft-kv/proto/rpc.proto", "../raft-kv/proto/kv.proto", "../raft-kv/proto/auth.proto"],
        &["../raft-kv/proto"],
    )?;
    println!("cargo:rerun-if-changed=../raft-kv/proto");
    Ok(())
}
