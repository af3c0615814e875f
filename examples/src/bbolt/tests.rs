use std::io::{BufWriter, Write};

use proptest::prelude::*;

use super::*;

/// A file with `keys` under bucket "b", `big` under "c", "a" empty.
fn sample(keys: &[(Vec<u8>, Vec<u8>)], page_size: usize) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    let mut w = Writer::new(BufWriter::new(f.reopen().expect("reopen")), page_size).expect("writer");
    w.bucket(b"a").expect("a").finish().expect("finish a");
    let mut b = w.bucket(b"b").expect("b");
    for (k, v) in keys {
        b.put(k, v).expect("put");
    }
    b.finish().expect("finish b");
    let mut c = w.bucket(b"c").expect("c");
    c.put(b"big", &vec![7u8; 3 * page_size + 5]).expect("big");
    c.finish().expect("finish c");
    let (mut out, len) = w.finish().expect("finish");
    out.flush().expect("flush");
    assert_eq!(f.as_file().metadata().expect("meta").len(), len);
    f
}

fn read_all(r: &Reader, name: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let b = r.bucket(name)?.ok_or_else(|| corrupt("no bucket"))?;
    let mut out = Vec::new();
    r.walk(&b, &mut |k, v, _| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(true)
    })?;
    Ok(out)
}

fn keys(n: u32, vlen: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n).map(|i| (format!("key-{i:08}").into_bytes(), vec![(i % 251) as u8; vlen])).collect()
}

#[test]
fn round_trip_small_and_multi_level_trees() {
    for (n, vlen, ps) in [(0, 0, 4096), (1, 1, 4096), (300, 10, 4096), (50_000, 20, 1024), (2_000, 3000, 4096)] {
        let data = keys(n, vlen);
        let f = sample(&data, ps);
        let r = Reader::open(f.path()).expect("open");
        assert_eq!(r.bucket_names().expect("names"), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(read_all(&r, b"b").expect("b"), data, "n={n} vlen={vlen} ps={ps}");
        assert!(read_all(&r, b"a").expect("a").is_empty());
        assert_eq!(read_all(&r, b"c").expect("c")[0].1.len(), 3 * ps + 5);
        assert!(r.bucket(b"zz").expect("lookup").is_none());
    }
}

#[test]
fn writer_refuses_out_of_order_keys_and_buckets() {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    let mut w = Writer::new(f.reopen().expect("reopen"), 4096).expect("writer");
    let mut b = w.bucket(b"m").expect("m");
    b.put(b"2", b"").expect("put");
    assert!(matches!(b.put(b"1", b""), Err(Error::Usage(_))));
    assert!(matches!(b.put(b"2", b""), Err(Error::Usage(_))));
    assert!(matches!(b.put(b"", b""), Err(Error::Usage(_))));
    b.finish().expect("finish");
    assert!(matches!(w.bucket(b"a"), Err(Error::Usage(_))));
}

#[test]
fn truncated_not_bbolt_and_bad_checksum_are_clear_errors() {
    let f = sample(&keys(500, 50), 4096);
    let bytes = std::fs::read(f.path()).expect("read");
    let write = |b: &[u8]| {
        let t = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(t.path(), b).expect("write");
        t
    };
    let err = |b: &[u8]| match Reader::open(write(b).path()) {
        Ok(_) => panic!("opened"),
        Err(e) => e.to_string(),
    };
    assert!(err(&bytes[..bytes.len() - 4096]).contains("truncated"), "{}", err(&bytes[..bytes.len() - 4096]));
    assert!(err(b"hello, this is not a database").contains("not a bbolt file"));
    assert!(err(&[]).contains("not a bbolt file"));
    let mut bad = bytes.clone();
    bad[16 + 20] ^= 1; // meta 0's root page
    bad[4096 + 16 + 20] ^= 1; // meta 1's too
    assert!(err(&bad).contains("checksum"), "{}", err(&bad));
}

#[test]
fn a_page_referenced_twice_is_corruption_not_a_loop() {
    // Point every branch element of the tree at the same child.
    let f = sample(&keys(5_000, 20), 4096);
    let mut bytes = std::fs::read(f.path()).expect("read");
    let mut patched = false;
    for page in bytes.chunks_mut(4096).skip(3) {
        if u16_at(page, 8) == Some(BRANCH_PAGE) && u16_at(page, 10).unwrap_or(0) > 1 {
            let first = page[PAGE_HEADER + 8..PAGE_HEADER + 16].to_vec();
            page[PAGE_HEADER + ELEMENT + 8..PAGE_HEADER + ELEMENT + 16].copy_from_slice(&first);
            patched = true;
        }
    }
    assert!(patched);
    let t = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(t.path(), &bytes).expect("write");
    let r = Reader::open(t.path()).expect("metas are intact");
    let e = read_all(&r, b"b").expect_err("walk");
    assert!(e.to_string().contains("twice"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any damage to any page gives an answer or an error, never a panic
    /// or a hang.
    #[test]
    fn damaged_files_never_panic(flips in proptest::collection::vec((0usize..40_000, any::<u8>()), 1..40)) {
        let f = sample(&keys(800, 30), 1024);
        let mut bytes = std::fs::read(f.path()).expect("read");
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x | 1;
        }
        let t = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(t.path(), &bytes).expect("write");
        if let Ok(r) = Reader::open(t.path()) {
            for name in [&b"a"[..], b"b", b"c"] {
                let _ = read_all(&r, name);
            }
        }
    }
}
