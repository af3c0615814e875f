//! [`Reader`]: reads a bbolt file that may be damaged or hostile.
//!
//! Every page id is checked against the meta's high-water mark and the
//! file's length, every element against its page, and a page's span
//! against [`MAX_PAGE_SPAN`]. A walk visits each page at most once (a page
//! referenced twice is corruption), so a cycle or a shared subtree ends in
//! an error, never a loop, and the work is linear in the file's size. The
//! file is read page by page with positioned reads, so memory is one page
//! per tree level.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::*;

/// Largest page (with its overflow) the reader accepts: far above any
/// etcd value (its requests are at most a few MiB), far below memory.
const MAX_PAGE_SPAN: u64 = 256 << 20;
/// Deepest tree accepted (a B+tree of 4 KiB pages is a handful deep).
const MAX_DEPTH: usize = 64;

/// Visits one entry: key, value, whether the value is a nested bucket;
/// returns `false` to stop the walk.
pub type Visitor<'a> = dyn FnMut(&[u8], &[u8], bool) -> Result<bool> + 'a;

/// An open bbolt file (see the module docs).
pub struct Reader {
    file: File,
    page_size: u64,
    /// Pages in use (the meta's high-water mark, within the file).
    pages: u64,
    root: u64,
}

/// A bucket's tree: its root page, or the inline page held in its value.
#[derive(Debug, Clone)]
pub enum Bucket {
    /// A tree of pages starting at this page id.
    Pages(u64),
    /// A bucket small enough to live in its parent's leaf.
    Inline(Vec<u8>),
}

/// One decoded page.
struct Page {
    id: u64,
    flags: u16,
    count: usize,
    buf: Vec<u8>,
}

impl Reader {
    /// Opens `path` and checks its meta pages.
    pub fn open(path: &Path) -> Result<Reader> {
        let len = std::fs::metadata(path)?.len();
        Reader::open_len(path, len)
    }

    /// Opens the database that makes up the first `len` bytes of `path`
    /// (a snapshot file has a trailer after it).
    pub fn open_len(path: &Path, len: u64) -> Result<Reader> {
        let file = File::open(path)?;
        if file.metadata()?.len() < len {
            return Err(corrupt("the file is shorter than its database"));
        }
        let mut head = vec![0u8; 4096.min(len as usize)];
        file.read_exact_at(&mut head, 0)?;
        let first = parse_meta(&head).map_err(|e| corrupt(format!("not a bbolt file: {e}")))?;
        let page_size = u64::from(first.page_size);
        let mut best = first;
        if len >= 2 * page_size {
            let mut second = vec![0u8; PAGE_HEADER + META_LEN];
            file.read_exact_at(&mut second, page_size)?;
            if let Ok(m) = parse_meta(&second) {
                if m.page_size == first.page_size && m.txid > best.txid {
                    best = m;
                }
            }
        }
        if !len.is_multiple_of(page_size) {
            return Err(corrupt(format!("file size {len} is not a multiple of the page size {page_size}")));
        }
        if best.pgid.checked_mul(page_size).is_none_or(|end| end > len) {
            return Err(corrupt(format!(
                "the file is truncated: it holds {} pages, its meta says {}",
                len / page_size,
                best.pgid
            )));
        }
        let reader = Reader { file, page_size, pages: best.pgid, root: best.root };
        reader.check_id(best.root)?;
        Ok(reader)
    }

    /// The top-level bucket `name`, if the file has it.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket>> {
        let mut found = None;
        self.walk(&Bucket::Pages(self.root), &mut |k, v, is_bucket| {
            if k == name {
                if !is_bucket {
                    return Err(corrupt(format!("{:?} is a key, not a bucket", String::from_utf8_lossy(k))));
                }
                found = Some(parse_bucket(v)?);
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(found)
    }

    /// The names of the top-level buckets.
    pub fn bucket_names(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        self.walk(&Bucket::Pages(self.root), &mut |k, _, is_bucket| {
            if is_bucket {
                out.push(k.to_vec());
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Visits `bucket`'s keys in order with their values and whether the
    /// value is a nested bucket; the visitor returns `false` to stop.
    pub fn walk(&self, bucket: &Bucket, visit: &mut Visitor<'_>) -> Result<()> {
        let mut seen = Seen::default();
        let mut last: Option<Vec<u8>> = None;
        let mut ordered = |k: &[u8], v: &[u8], b: bool| -> Result<bool> {
            if last.as_deref().is_some_and(|l| l >= k) {
                return Err(corrupt(format!("keys out of order at {k:02x?}")));
            }
            last = Some(k.to_vec());
            visit(k, v, b)
        };
        match bucket {
            Bucket::Pages(id) => self.walk_page(*id, 0, &mut seen, &mut ordered).map(|_| ()),
            Bucket::Inline(buf) => {
                let page = decode_page(u64::MAX, buf.clone())?;
                if page.flags != LEAF_PAGE {
                    return Err(corrupt("an inline bucket is not a leaf"));
                }
                leaf_elements(&page, &mut ordered).map(|_| ())
            }
        }
    }

    fn check_id(&self, id: u64) -> Result<()> {
        if id < 2 || id >= self.pages {
            return Err(corrupt(format!("page {id} is out of range (the file has {} pages)", self.pages)));
        }
        Ok(())
    }

    fn read_page(&self, id: u64) -> Result<Page> {
        self.check_id(id)?;
        let mut head = [0u8; PAGE_HEADER];
        self.file.read_exact_at(&mut head, id * self.page_size)?;
        let overflow = u64::from(u32_at(&head, 12).unwrap_or(0));
        let span = (overflow + 1) * self.page_size;
        if span > MAX_PAGE_SPAN || id + overflow >= self.pages {
            return Err(corrupt(format!("page {id} spans {} pages, past the file or the limit", overflow + 1)));
        }
        let mut buf = vec![0u8; span as usize];
        self.file.read_exact_at(&mut buf, id * self.page_size)?;
        let page = decode_page(id, buf)?;
        if page.id != id {
            return Err(corrupt(format!("page {id} claims to be page {}", page.id)));
        }
        Ok(page)
    }

    /// Returns `false` once the visitor asked to stop.
    fn walk_page(&self, id: u64, depth: usize, seen: &mut Seen, visit: &mut Visitor<'_>) -> Result<bool> {
        if depth > MAX_DEPTH {
            return Err(corrupt(format!("tree deeper than {MAX_DEPTH} at page {id}")));
        }
        seen.mark(id)?;
        let page = self.read_page(id)?;
        match page.flags {
            LEAF_PAGE => leaf_elements(&page, visit),
            BRANCH_PAGE => {
                let mut children = Vec::with_capacity(page.count);
                for i in 0..page.count {
                    let at = PAGE_HEADER + i * ELEMENT;
                    let bad = || corrupt(format!("branch page {id} element {i} is out of bounds"));
                    let child = u64_at(&page.buf, at + 8).ok_or_else(bad)?;
                    children.push(child);
                }
                for child in children {
                    if !self.walk_page(child, depth + 1, seen, visit)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            f => Err(corrupt(format!("page {id} has flags {f:#x}, not a branch or leaf"))),
        }
    }
}

/// The pages a walk has visited.
#[derive(Default)]
struct Seen(std::collections::HashSet<u64>);

impl Seen {
    fn mark(&mut self, id: u64) -> Result<()> {
        if !self.0.insert(id) {
            return Err(corrupt(format!("page {id} is referenced twice")));
        }
        Ok(())
    }
}

fn decode_page(id: u64, buf: Vec<u8>) -> Result<Page> {
    let bad = || corrupt(format!("page {id} is too short"));
    let page_id = u64_at(&buf, 0).ok_or_else(bad)?;
    let flags = u16_at(&buf, 8).ok_or_else(bad)?;
    let count = usize::from(u16_at(&buf, 10).ok_or_else(bad)?);
    if PAGE_HEADER + count * ELEMENT > buf.len() {
        return Err(corrupt(format!("page {id} claims {count} elements, more than fit")));
    }
    Ok(Page { id: page_id, flags, count, buf })
}

/// Visits a leaf's elements: key, value, is-a-bucket.
fn leaf_elements(page: &Page, visit: &mut Visitor<'_>) -> Result<bool> {
    for i in 0..page.count {
        let at = PAGE_HEADER + i * ELEMENT;
        let bad = || corrupt(format!("leaf page {} element {i} is out of bounds", page.id));
        let flags = u32_at(&page.buf, at).ok_or_else(bad)?;
        let pos = u32_at(&page.buf, at + 4).ok_or_else(bad)? as usize;
        let ksize = u32_at(&page.buf, at + 8).ok_or_else(bad)? as usize;
        let vsize = u32_at(&page.buf, at + 12).ok_or_else(bad)? as usize;
        let kstart = at.checked_add(pos).ok_or_else(bad)?;
        let vstart = kstart.checked_add(ksize).ok_or_else(bad)?;
        let vend = vstart.checked_add(vsize).ok_or_else(bad)?;
        let key = page.buf.get(kstart..vstart).ok_or_else(bad)?;
        let value = page.buf.get(vstart..vend).ok_or_else(bad)?;
        if !visit(key, value, flags & BUCKET_LEAF != 0)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A bucket's header (root page, sequence) and, for an inline bucket, its
/// page.
fn parse_bucket(v: &[u8]) -> Result<Bucket> {
    let root = u64_at(v, 0).ok_or_else(|| corrupt("bucket header too short"))?;
    if v.len() < BUCKET_HEADER {
        return Err(corrupt("bucket header too short"));
    }
    if root == 0 {
        Ok(Bucket::Inline(v[BUCKET_HEADER..].to_vec()))
    } else {
        Ok(Bucket::Pages(root))
    }
}

#[derive(Clone, Copy)]
struct Meta {
    page_size: u32,
    root: u64,
    pgid: u64,
    txid: u64,
}

/// Checks a meta page (header and meta) as bbolt does.
fn parse_meta(page: &[u8]) -> std::result::Result<Meta, String> {
    let m = page.get(PAGE_HEADER..PAGE_HEADER + META_LEN).ok_or("shorter than a meta page")?;
    if u16_at(page, 8) != Some(META_PAGE) {
        return Err("its first page is not a meta page".into());
    }
    if u32_at(m, 0) != Some(MAGIC) {
        return Err("bad magic number".into());
    }
    let version = u32_at(m, 4).unwrap_or(0);
    if version != VERSION {
        return Err(format!("unsupported version {version}"));
    }
    if u64_at(m, 56) != Some(meta_checksum(m)) {
        return Err("meta page checksum mismatch".into());
    }
    let page_size = u32_at(m, 8).unwrap_or(0);
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(format!("bad page size {page_size}"));
    }
    Ok(Meta {
        page_size,
        root: u64_at(m, 16).unwrap_or(0),
        pgid: u64_at(m, 40).unwrap_or(0),
        txid: u64_at(m, 48).unwrap_or(0),
    })
}
