//! [`Writer`]: bulk-loads a bbolt file from keys given in ascending order,
//! one bucket after another, holding at most one page per tree level in
//! memory — so a file of any size is written in bounded memory.
//!
//! Pages are written as they fill: a full leaf goes to the file and its
//! first key joins the branch above it, and a full branch does the same one
//! level up. When a bucket ends, the partial pages are written bottom-up and
//! the last level's single page is the bucket's root. The root bucket (one
//! leaf of bucket entries), the empty freelist and the two meta pages are
//! written last, at the pages reserved for them.

use std::io::{Seek, SeekFrom, Write};

use super::*;

/// bbolt's largest key.
const MAX_KEY: usize = 32 * 1024;
/// bbolt's largest value.
const MAX_VALUE: usize = (1 << 31) - 2;
/// Pages 0 and 1 are the metas, page 2 the freelist.
const FIRST_DATA_PAGE: u64 = 3;

/// Writes a bbolt file (see the module docs).
pub struct Writer<W: Write + Seek> {
    out: W,
    page_size: usize,
    /// The next page id to allocate.
    next: u64,
    /// Top-level buckets written so far: name and root page.
    buckets: Vec<(Vec<u8>, u64)>,
}

/// The entries of one page being filled.
#[derive(Default)]
struct Pending {
    /// Key, then the value (leaf) or the child page id (branch).
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// The page's size so far, header included.
    bytes: usize,
}

impl Pending {
    fn new() -> Self {
        Pending { entries: Vec::new(), bytes: PAGE_HEADER }
    }
}

impl<W: Write + Seek> Writer<W> {
    /// A writer of `page_size`-byte pages (a power of two, at least 1 KiB)
    /// into `out`, which must be empty.
    pub fn new(mut out: W, page_size: usize) -> Result<Self> {
        if !page_size.is_power_of_two() || !(1024..=65536).contains(&page_size) {
            return Err(Error::Usage(format!("page size {page_size} is not a power of two in 1 KiB..64 KiB")));
        }
        out.seek(SeekFrom::Start(FIRST_DATA_PAGE * page_size as u64))?;
        Ok(Writer { out, page_size, next: FIRST_DATA_PAGE, buckets: Vec::new() })
    }

    /// Starts top-level bucket `name`; names must come in ascending order.
    /// Its keys are given to the returned [`TreeWriter`], which must be
    /// [finished](TreeWriter::finish).
    pub fn bucket(&mut self, name: &[u8]) -> Result<TreeWriter<'_, W>> {
        if name.is_empty() || name.len() > MAX_KEY {
            return Err(Error::Usage(format!("bad bucket name length {}", name.len())));
        }
        if self.buckets.last().is_some_and(|(last, _)| last.as_slice() >= name) {
            return Err(Error::Usage(format!("bucket {:?} is out of order", String::from_utf8_lossy(name))));
        }
        Ok(TreeWriter { w: self, name: name.to_vec(), levels: vec![Pending::new()], last: None, count: 0 })
    }

    /// Writes the root bucket, freelist and metas; returns the output and
    /// the file's length.
    pub fn finish(mut self) -> Result<(W, u64)> {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = std::mem::take(&mut self.buckets)
            .into_iter()
            .map(|(name, root)| {
                let mut header = root.to_le_bytes().to_vec();
                header.extend_from_slice(&0u64.to_le_bytes());
                (name, header)
            })
            .collect();
        let root = self.write_page(Kind::Leaf(BUCKET_LEAF), &entries)?;
        let high_water = self.next;
        let ps = self.page_size;
        let mut head = vec![0u8; FIRST_DATA_PAGE as usize * ps];
        for (id, txid) in [(0usize, 0u64), (1, 1)] {
            let page = &mut head[id * ps..(id + 1) * ps];
            page[..8].copy_from_slice(&(id as u64).to_le_bytes());
            page[8..10].copy_from_slice(&META_PAGE.to_le_bytes());
            let meta = &mut page[PAGE_HEADER..PAGE_HEADER + META_LEN];
            meta[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            meta[4..8].copy_from_slice(&VERSION.to_le_bytes());
            meta[8..12].copy_from_slice(&(ps as u32).to_le_bytes());
            // flags (12..16) stay 0; the root bucket's sequence (24..32) too.
            meta[16..24].copy_from_slice(&root.to_le_bytes());
            meta[32..40].copy_from_slice(&2u64.to_le_bytes());
            meta[40..48].copy_from_slice(&high_water.to_le_bytes());
            meta[48..56].copy_from_slice(&txid.to_le_bytes());
            let sum = meta_checksum(meta);
            meta[56..64].copy_from_slice(&sum.to_le_bytes());
        }
        // The freelist: page 2, no free pages.
        let free = &mut head[2 * ps..3 * ps];
        free[..8].copy_from_slice(&2u64.to_le_bytes());
        free[8..10].copy_from_slice(&FREELIST_PAGE.to_le_bytes());
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&head)?;
        self.out.flush()?;
        Ok((self.out, high_water * ps as u64))
    }

    /// Writes one page (spanning more than one if its entries need it) and
    /// returns its id. Leaf elements get `kind`'s flag.
    fn write_page(&mut self, kind: Kind, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<u64> {
        let leaf = !matches!(kind, Kind::Branch);
        let data: usize = entries.iter().map(|(k, v)| k.len() + if leaf { v.len() } else { 0 }).sum();
        let size = PAGE_HEADER + entries.len() * ELEMENT + data;
        let pages = size.div_ceil(self.page_size);
        let count = u16::try_from(entries.len()).map_err(|_| Error::Usage("too many entries in a page".into()))?;
        let overflow = u32::try_from(pages - 1).map_err(|_| Error::Usage("page too large".into()))?;
        let id = self.next;
        let mut buf = Vec::with_capacity(pages * self.page_size);
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&if leaf { LEAF_PAGE } else { BRANCH_PAGE }.to_le_bytes());
        buf.extend_from_slice(&count.to_le_bytes());
        buf.extend_from_slice(&overflow.to_le_bytes());
        // Each element's `pos` is the distance from the element to its key.
        let mut at = PAGE_HEADER + entries.len() * ELEMENT;
        for (i, (k, v)) in entries.iter().enumerate() {
            let pos = (at - (PAGE_HEADER + i * ELEMENT)) as u32;
            match kind {
                Kind::Leaf(flag) => {
                    buf.extend_from_slice(&flag.to_le_bytes());
                    buf.extend_from_slice(&pos.to_le_bytes());
                    buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
                    buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    at += k.len() + v.len();
                }
                Kind::Branch => {
                    buf.extend_from_slice(&pos.to_le_bytes());
                    buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
                    buf.extend_from_slice(v);
                    at += k.len();
                }
            }
        }
        for (k, v) in entries {
            buf.extend_from_slice(k);
            if leaf {
                buf.extend_from_slice(v);
            }
        }
        buf.resize(pages * self.page_size, 0);
        self.out.write_all(&buf)?;
        self.next += pages as u64;
        Ok(id)
    }
}

/// What a page holds.
#[derive(Clone, Copy)]
enum Kind {
    /// Keys and values; each element has this flag.
    Leaf(u32),
    /// Keys and child page ids.
    Branch,
}

/// The keys of one bucket being written (see [`Writer::bucket`]).
pub struct TreeWriter<'a, W: Write + Seek> {
    w: &'a mut Writer<W>,
    name: Vec<u8>,
    /// `levels[0]` is the leaf being filled, `levels[i]` the branch above.
    levels: Vec<Pending>,
    last: Option<Vec<u8>>,
    count: u64,
}

impl<W: Write + Seek> TreeWriter<'_, W> {
    /// Adds `key` (greater than every key before it) with `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if key.is_empty() || key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(Error::Usage(format!("key or value too long ({} / {} bytes)", key.len(), value.len())));
        }
        if self.last.as_deref().is_some_and(|last| last >= key) {
            return Err(Error::Usage(format!("key {key:02x?} is not above the previous key")));
        }
        self.last = Some(key.to_vec());
        self.count += 1;
        self.add(0, key.to_vec(), value.to_vec())
    }

    /// Keys put so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True before the first key.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds an entry to the page being filled at `level`, writing that page
    /// first when the entry would not fit.
    fn add(&mut self, level: usize, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        let cost = ELEMENT + key.len() + if level == 0 { value.len() } else { 0 };
        let page_size = self.w.page_size;
        let p = &self.levels[level];
        if !p.entries.is_empty() && (p.bytes + cost > page_size || p.entries.len() >= usize::from(u16::MAX)) {
            self.flush(level)?;
        }
        let p = &mut self.levels[level];
        p.bytes += cost;
        p.entries.push((key, value));
        Ok(())
    }

    /// Writes the page being filled at `level` and adds it to the level
    /// above.
    fn flush(&mut self, level: usize) -> Result<()> {
        let page = std::mem::replace(&mut self.levels[level], Pending::new());
        let kind = if level == 0 { Kind::Leaf(0) } else { Kind::Branch };
        let id = self.w.write_page(kind, &page.entries)?;
        let first = page.entries.into_iter().next().map(|(k, _)| k).unwrap_or_default();
        if self.levels.len() == level + 1 {
            self.levels.push(Pending::new());
        }
        self.add(level + 1, first, id.to_le_bytes().to_vec())
    }

    /// Writes the partial pages bottom-up and records the bucket.
    pub fn finish(mut self) -> Result<()> {
        let mut level = 0;
        let root = loop {
            let top = level + 1 == self.levels.len();
            if top && level > 0 && self.levels[level].entries.len() == 1 {
                break u64::from_le_bytes(
                    self.levels[level].entries[0]
                        .1
                        .as_slice()
                        .try_into()
                        .map_err(|_| Error::Usage("bad child".into()))?,
                );
            }
            if top && level == 0 {
                // One leaf (possibly empty) is the whole tree.
                let page = std::mem::take(&mut self.levels[0]);
                break self.w.write_page(Kind::Leaf(0), &page.entries)?;
            }
            self.flush(level)?;
            level += 1;
        };
        self.w.buckets.push((std::mem::take(&mut self.name), root));
        Ok(())
    }
}
