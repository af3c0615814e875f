//! Compiles etcd's v3 API (`proto/`) with tonic-build, using the `protoc`
//! shipped by the protoc-bin-vendored crate so no system protoc is needed.
//!
//! Messages whose wire form is identical to raft-kv's own request types are
//! mapped onto them (`extern_path`), so requests pass to the library without
//! conversion.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    let shared = [
        (".mvccpb.KeyValue", "::raft_kv::KeyValue"),
        (".mvccpb.Event", "::raft_kv::Event"),
        (".etcdserverpb.RangeRequest", "::raft_kv::RangeRequest"),
        (".etcdserverpb.PutRequest", "::raft_kv::PutRequest"),
        (".etcdserverpb.DeleteRangeRequest", "::raft_kv::DeleteRangeRequest"),
        (".etcdserverpb.Compare", "::raft_kv::Compare"),
        (".etcdserverpb.RequestOp", "::raft_kv::RequestOp"),
        (".etcdserverpb.TxnRequest", "::raft_kv::TxnRequest"),
        (".etcdserverpb.CompactionRequest", "::raft_kv::CompactionRequest"),
        (".etcdserverpb.LeaseGrantRequest", "::raft_kv::LeaseGrantRequest"),
        (".etcdserverpb.LeaseRevokeRequest", "::raft_kv::LeaseRevokeRequest"),
        (".etcdserverpb.LeaseKeepAliveRequest", "::raft_kv::LeaseKeepAliveRequest"),
        (".etcdserverpb.Member", "::raft_kv::Member"),
    ];
    let mut b = tonic_build::configure().build_client(true).build_server(true).bytes(["."]);
    for (proto, rust) in shared {
        b = b.extern_path(proto, rust);
    }
    b.compile(&["proto/rpc.proto", "proto/kv.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
