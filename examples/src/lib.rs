//! Shared by the example programs and their tests: etcd's v3 gRPC services
//! and clients, generated from `raft-kv/proto` over the library's message
//! types (`raft_kv::pb`), so a request is the same value in a client, on the
//! wire and in the member.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use examples::services::kv_client::KvClient;
//! let mut kv = KvClient::connect("http://127.0.0.1:2379").await?;
//! kv.put(raft_kv::PutRequest::new("k", "v")).await?;
//! # Ok(())
//! # }
//! ```

pub mod bbolt;
pub mod etcd_backup;

/// The etcd v3 gRPC services (`*_server`) and clients (`*_client`).
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod services {
    tonic::include_proto!("etcdserverpb");
}
