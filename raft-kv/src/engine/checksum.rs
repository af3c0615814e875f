//! A checksum on every stored value, verified on every read, so a disk or
//! cable that hands back wrong bytes is refused ([`Error::Corruption`])
//! instead of served: raft log entries, MVCC versions and every other
//! state-machine record alike.
//!
//! On disk a value is its bytes followed by the CRC-32 (IEEE) of them, 4
//! bytes big-endian. Both engines seal a batch's values as they write it and
//! check them as they read, so nothing above the engine sees the suffix.

use super::{Cf, WriteBatch, WriteOp};
use crate::{Error, Result};

/// Bytes the checksum adds to each stored value.
pub const CHECKSUM_BYTES: usize = 4;

/// The CRC-32 (IEEE, reflected polynomial 0xEDB88320) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// `value` as stored: followed by its checksum.
fn seal(mut value: Vec<u8>) -> Vec<u8> {
    let sum = crc32(&value);
    value.extend_from_slice(&sum.to_be_bytes());
    value
}

/// `value` as stored, built in `scratch` (reused from value to value, so
/// sealing a batch on its way into RocksDB allocates nothing per value).
pub(super) fn sealed<'a>(value: &[u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    scratch.clear();
    scratch.extend_from_slice(value);
    scratch.extend_from_slice(&crc32(value).to_be_bytes());
    scratch
}

/// `batch` with every value sealed.
pub(super) fn seal_batch(batch: WriteBatch) -> WriteBatch {
    let mut sealed = WriteBatch::new();
    for op in batch.ops {
        match op {
            WriteOp::Put { cf, key, value } => sealed.put(cf, key, seal(value)),
            WriteOp::Delete { cf, key } => sealed.delete(cf, key),
            WriteOp::DeleteRange { cf, start, end } => sealed.delete_range(cf, start, end),
        }
    }
    sealed
}

/// The value stored under `key` of `cf` as `stored`, once its checksum
/// matches.
pub(super) fn unseal<'a>(cf: Cf, key: &[u8], stored: &'a [u8]) -> Result<&'a [u8]> {
    let split = stored.len().checked_sub(CHECKSUM_BYTES);
    let Some((value, sum)) = split.map(|at| stored.split_at(at)) else {
        return Err(corrupt(cf, key, "shorter than its checksum"));
    };
    if crate::mutation::active("corrupt-read-unchecked") || sum == crc32(value).to_be_bytes() {
        Ok(value)
    } else {
        Err(corrupt(cf, key, "checksum mismatch"))
    }
}

fn corrupt(cf: Cf, key: &[u8], what: &str) -> Error {
    Error::Corruption(format!("{} value of key {:02x?}: {what}", cf.name(), &key[..key.len().min(32)]))
}

/// Runs `scan` (an engine's raw scan) with `visit` seeing unsealed values;
/// the first value whose checksum fails stops the scan with its error.
pub(super) fn scan_unsealed(
    cf: Cf,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    scan: impl FnOnce(&mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()>,
) -> Result<()> {
    let mut bad = None;
    scan(&mut |k, stored| match unseal(cf, k, stored) {
        Ok(v) => visit(k, v),
        Err(e) => {
            bad = Some(e);
            false
        }
    })?;
    bad.map_or(Ok(()), Err)
}

/// A stored value back to its bytes (`get`).
pub(super) fn unseal_owned(cf: Cf, key: &[u8], stored: Option<Vec<u8>>) -> Result<Option<Vec<u8>>> {
    let Some(mut stored) = stored else { return Ok(None) };
    let len = unseal(cf, key, &stored)?.len();
    stored.truncate(len);
    Ok(Some(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_flipped_bit_is_refused() {
        let mut stored = seal(b"value".to_vec());
        assert_eq!(sealed(b"value", &mut Vec::new()), stored);
        assert_eq!(unseal(Cf::Kv, b"k", &stored).unwrap(), b"value");
        stored[1] ^= 0x10;
        assert!(matches!(unseal(Cf::Kv, b"k", &stored), Err(Error::Corruption(_))));
        assert!(matches!(unseal(Cf::Kv, b"k", b"ab"), Err(Error::Corruption(_))));
    }
}
