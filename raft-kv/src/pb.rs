//! etcd's v3 wire types, generated from the `.proto` files in `proto/`: the
//! one definition of every request, response and record that crosses the
//! API. The library's own request and response types ([`crate::api`]) are
//! these messages; a server hands them to tonic unchanged, and with the
//! `json` feature they also carry serde implementations following proto3's
//! JSON mapping as etcd's gateway applies it.
//!
//! Fields only the log needs (for example a conditional revoke) are not
//! here: they live in [`crate::command`], which no client request can reach.

#![allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]

/// Key-value records and watch events (`mvccpb`).
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
}

/// Users, roles and permissions (`authpb`).
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
}

/// Requests, responses and services of the v3 API (`etcdserverpb`).
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
}
