//! [`Fnv64`], the hasher behind
//! the state machine's hash (`Mvcc::hash`)'s cross-member consistency checks.

/// 64-bit FNV-1a: fast, deterministic across platforms and runs, and not
/// cryptographic (the same bytes always give the same hash).
#[derive(Debug, Clone)]
pub struct Fnv64(u64);

impl Fnv64 {
    /// A hasher that has seen no bytes (its hash is the FNV-1a offset basis).
    pub fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    /// Feeds `bytes` to the hash, one byte at a time.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash of every byte written so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    /// The same as [`Fnv64::new`].
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Fnv64;

    /// The published FNV-1a 64-bit test vectors.
    #[test]
    fn known_vectors() {
        assert_eq!(Fnv64::new().finish(), 0xcbf2_9ce4_8422_2325);
        let mut h = Fnv64::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
