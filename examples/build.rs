//! Generates the etcd v3 gRPC services (server and client) with
//! tonic-prost-build from the library's `.proto` files, using the `protoc`
//! shipped by protoc-bin-vendored so no system protoc is needed.
//!
//! Every message is mapped onto the library's generated types
//! (`raft_kv::pb`, `extern_path`): the schema is defined once, and requests
//! pass between tonic and the library without conversion.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(".etcdserverpb", "::raft_kv::pb::etcdserverpb")
        .extern_path(".mvccpb", "::raft_kv::pb::mvccpb")
        .extern_path(".authpb", "::raft_kv::pb::authpb")
        .compile_protos(
            &["../raft-kv/proto/rpc.proto", "../raft-kv/proto/kv.proto", "../raft-kv/proto/auth.proto"],
            &["../raft-kv/proto"],
        )?;
    println!("cargo:rerun-if-changed=../raft-kv/proto");
    Ok(())
}
