//! Generates the etcd v3 gRPC *client* used by `raft-kv-bench` from the
//! example server's protos (`examples/proto`), with the `protoc` shipped by
//! the protoc-bin-vendored crate so no system protoc is needed.
//!
//! Unlike `examples/build.rs` there is no `extern_path`: the bench speaks the
//! wire protocol only and must not depend on raft-kv's own message types.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    tonic_build::configure()
        .build_client(true)
        .build_server(false)
        .compile(&["../examples/proto/rpc.proto", "../examples/proto/kv.proto"], &["../examples/proto"])?;
    println!("cargo:rerun-if-changed=../examples/proto");
    Ok(())
}
