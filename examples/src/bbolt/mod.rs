//! The bbolt file format (etcd's backend database), as much of it as etcd's
//! snapshots use: written once in key order ([`Writer`]) and read with every
//! page reference checked ([`Reader`]).
//!
//! A file is a sequence of pages of one size. Pages 0 and 1 are the two
//! meta pages (the valid one with the higher transaction id wins); a meta
//! names the root bucket's B+tree and the freelist page. A tree is branch
//! pages (first key and page id of each child) over leaf pages (keys and
//! values, or for a bucket entry, the nested bucket's header). A bucket's
//! header is its root page id and a sequence; root page 0 means the bucket
//! is *inline*: its single leaf page follows the header in the value.
//! Every integer is little-endian (bbolt writes native order; etcd runs on
//! little-endian machines).
//!
//! We write this format ourselves rather than use the `bbolt-rs` crate:
//! that crate is a full read-write database over a memory map (a transaction
//! holds its dirty pages in an arena, so writing a large file is not bounded
//! in memory), its page decoding trusts the file, and it pulls in some
//! thirty dependencies. A snapshot needs neither transactions nor a free
//! page allocator, only a bulk load of sorted keys and a careful reader.

mod read;
mod write;

pub use read::{Bucket, Reader, Visitor};
pub use write::{TreeWriter, Writer};

/// The magic number in every meta page.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The file format version bbolt writes.
pub const VERSION: u32 = 2;
/// The page size etcd's files have on x86-64 Linux.
pub const PAGE_SIZE: usize = 4096;

const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;
/// Bytes of a meta covered by its checksum (everything before it).
const META_SUMMED: usize = 56;
const META_LEN: usize = 64;

const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
/// Leaf element flag: the value is a nested bucket.
const BUCKET_LEAF: u32 = 0x01;

/// A malformed or unreadable bbolt file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is not a bbolt database, or is damaged.
    #[error("{0}")]
    Corrupt(String),
    /// The writer was used out of order (keys not ascending, too long).
    #[error("{0}")]
    Usage(String),
}

/// The result type of this module.
pub type Result<T> = std::result::Result<T, Error>;

fn corrupt(msg: impl Into<String>) -> Error {
    Error::Corrupt(msg.into())
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// The FNV-64a checksum a meta page carries over its first 56 bytes.
fn meta_checksum(meta: &[u8]) -> u64 {
    let mut h = raft_kv::hash::Fnv64::new();
    h.write(&meta[..META_SUMMED]);
    h.finish()
}

#[cfg(test)]
mod tests;
