//! TCP transport for raft-kv: one long-lived connection per peer pair.
//!
//! Not implemented yet; see the transport-tcp issue. The crate exists so the
//! workspace layout matches the design.
