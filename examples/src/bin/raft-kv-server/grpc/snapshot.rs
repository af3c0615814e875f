//! Maintenance.Snapshot: this member's state as an etcd 3.5 snapshot file,
//! streamed with bounded memory.
//!
//! The member's background thread writes the bbolt database into an
//! unnamed temporary file in the data directory from an engine view
//! ([`examples::etcd_backup::write_snapshot`]); a blocking task then reads
//! it in 64 KiB chunks into a channel of four, hashing as it goes, and
//! sends the SHA-256 last, as etcd does. So memory is a few chunks per
//! stream whatever the store's size; a client that stops reading stops the
//! reader, and the file is gone once the stream ends. At most
//! [`MAX_STREAMS`] streams run at once per member.

use std::io::Read;
use std::sync::Arc;

use raft_kv::pb::etcdserverpb as pb;
use sha2::Digest;
use tokio::sync::{mpsc, Semaphore};
use tonic::Status;

use super::ResponseStream;
use crate::etcd::{to_status, Shared, ETCD_VERSION};

/// Bytes per streamed chunk.
const CHUNK: usize = 64 * 1024;
/// Snapshot streams served at once per member.
pub const MAX_STREAMS: usize = 2;

fn streams() -> &'static Arc<Semaphore> {
    static STREAMS: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
    STREAMS.get_or_init(|| Arc::new(Semaphore::new(MAX_STREAMS)))
}

/// Writes this member's snapshot file and returns the stream of it (see
/// the module docs).
pub async fn snapshot_stream(ctx: Shared) -> Result<ResponseStream<pb::SnapshotResponse>, Status> {
    let permit = Arc::clone(streams())
        .try_acquire_owned()
        .map_err(|_| Status::resource_exhausted("etcdserver: too many requests"))?;
    let dir = ctx.data_dir.clone();
    let (file, len) = ctx
        .node
        .export(move |ex| Ok(examples::etcd_backup::write_snapshot(&ex, &dir)))
        .await
        .map_err(to_status)?
        .map_err(|e| Status::internal(format!("etcdserver: cannot write the snapshot: {e}")))?;
    let header = ctx.header(0);
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let chunk = |blob: Vec<u8>, remaining: u64| pb::SnapshotResponse {
            header,
            remaining_bytes: remaining,
            blob: blob.into(),
            version: ETCD_VERSION.into(),
        };
        let mut file = file;
        let mut hasher = sha2::Sha256::new();
        let mut sent = 0u64;
        while sent < len {
            let mut buf = vec![0u8; CHUNK.min((len - sent) as usize)];
            if let Err(e) = file.read_exact(&mut buf) {
                let _ = tx.blocking_send(Err(Status::internal(format!("etcdserver: reading the snapshot: {e}"))));
                return;
            }
            hasher.update(&buf);
            sent += buf.len() as u64;
            if tx.blocking_send(Ok(chunk(buf, len - sent))).is_err() {
                return; // the client went away
            }
        }
        let _ = tx.blocking_send(Ok(chunk(hasher.finalize().to_vec(), 0)));
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}
