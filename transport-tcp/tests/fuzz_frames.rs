//! Property-based fuzzing of the peer frame decoder (`frame::FrameDecoder`
//! and the group check it runs before rust-protobuf parses a body): the one
//! decoder of the transport that reads bytes from the network before the
//! peer is trusted with anything.
//!
//! Every property runs a bounded number of cases and writes no failure
//! files. Feeding stops at the first error, as the reader closes the
//! connection there.

#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use proptest::sample::Index;
use protobuf::{Message as _, ProtobufEnum as _};
use raft::eraftpb::{ConfState, Entry, EntryType, MessageType, Snapshot, SnapshotMetadata};
use raft_kv::RaftMessage;
use transport_tcp::frame::{encode_message, FrameDecoder, FrameError, FRAME_HEADER_LEN, FRAME_VERSION};

// ---- allocation accounting --------------------------------------------------

/// The system allocator, noting the largest single request made on the
/// current thread while that thread is measuring.
struct PeakAlloc;

thread_local! {
    /// Largest allocation (or reallocation target) seen; `usize::MAX` means
    /// "not measuring".
    static PEAK: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn note(size: usize) {
    let _ = PEAK.try_with(|p| {
        if p.get() != usize::MAX && size > p.get() {
            p.set(size);
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`; `note` neither
// allocates nor unwinds.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Runs `f` and returns its result with the largest single allocation it
/// made on this thread.
fn peak_alloc<R>(f: impl FnOnce() -> R) -> (R, usize) {
    PEAK.with(|p| p.set(0));
    let r = f();
    let peak = PEAK.with(|p| p.replace(usize::MAX));
    (r, peak)
}

// ---- feeding ----------------------------------------------------------------

/// Splits `wire` at the given points (any order, duplicates allowed).
fn split<'a>(wire: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
    at.push(0);
    at.push(wire.len());
    at.sort_unstable();
    at.windows(2).map(|w| &wire[w[0]..w[1]]).collect()
}

/// Splits `wire` into consecutive chunks of the given sizes, cycled.
fn chunk<'a>(wire: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = wire;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at((*size).clamp(1, rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// What a reader gets from a stream: the messages decoded before the
/// first error, and that error (after which nothing more is fed).
struct Fed {
    messages: Vec<RaftMessage>,
    error: Option<FrameError>,
    buffered: usize,
}

fn feed(max: usize, chunks: &[&[u8]]) -> Fed {
    let mut dec = FrameDecoder::new(max);
    let mut messages = Vec::new();
    for c in chunks {
        dec.extend(c);
        loop {
            match dec.next_message() {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => break,
                Err(e) => return Fed { messages, error: Some(e), buffered: dec.buffered() },
            }
        }
        // Whatever is left is the start of one frame no longer than `max`.
        assert!(dec.buffered() < FRAME_HEADER_LEN + max.max(1), "{} bytes left with max {max}", dec.buffered());
    }
    Fed { messages, error: None, buffered: dec.buffered() }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut wire = (body.len() as u32).to_be_bytes().to_vec();
    wire.push(FRAME_VERSION);
    wire.extend_from_slice(body);
    wire
}

fn encode(msgs: &[RaftMessage]) -> Vec<u8> {
    let mut wire = Vec::new();
    for m in msgs {
        encode_message(m, 1 << 20, &mut wire).expect("encode");
    }
    wire
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---- arbitrary raft messages ------------------------------------------------

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    (
        prop::sample::select(EntryType::values().to_vec()),
        // A genuine member's entries carry an index and a term (frames of
        // entries with neither are refused, see groups.rs).
        1..=u64::MAX,
        1..=u64::MAX,
        arb_bytes(256),
        arb_bytes(16),
        any::<bool>(),
    )
        .prop_map(|(entry_type, term, index, data, context, sync_log)| {
            let mut e =
                Entry { term, index, data: data.into(), context: context.into(), sync_log, ..Default::default() };
            e.set_entry_type(entry_type);
            e
        })
}

fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
    let ids = || prop::collection::vec(any::<u64>(), 0..5);
    (arb_bytes(128), any::<u64>(), any::<u64>(), ids(), ids(), ids(), ids(), any::<bool>()).prop_map(
        |(data, index, term, voters, learners, voters_outgoing, learners_next, auto_leave)| {
            let conf_state =
                ConfState { voters, learners, voters_outgoing, learners_next, auto_leave, ..Default::default() };
            let mut meta = SnapshotMetadata { index, term, ..Default::default() };
            meta.set_conf_state(conf_state);
            let mut s = Snapshot { data: data.into(), ..Default::default() };
            s.set_metadata(meta);
            s
        },
    )
}

fn arb_message() -> impl Strategy<Value = RaftMessage> {
    let header = (
        prop::sample::select(MessageType::values().to_vec()),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    );
    let rest = (
        prop::collection::vec(arb_entry(), 0..5),
        prop::option::weighted(0.25, arb_snapshot()),
        any::<u64>(),
        any::<bool>(),
        any::<u64>(),
        arb_bytes(32),
        any::<u64>(),
        any::<i64>(),
    );
    (header, rest).prop_map(
        |(
            (msg_type, from, to, term, log_term, index, commit, commit_term),
            (entries, snapshot, request_snapshot, reject, reject_hint, context, deprecated_priority, priority),
        )| {
            let mut m = RaftMessage {
                from,
                to,
                term,
                log_term,
                index,
                commit,
                commit_term,
                request_snapshot,
                reject,
                reject_hint,
                context: context.into(),
                deprecated_priority,
                priority,
                ..Default::default()
            };
            m.set_msg_type(msg_type);
            m.entries = entries.into();
            if let Some(s) = snapshot {
                m.set_snapshot(s);
            }
            m
        },
    )
}

// ---- protobuf-shaped bodies ---------------------------------------------------

/// A protobuf field as it may appear on the wire, well formed or not.
#[derive(Debug, Clone)]
enum Field {
    Varint(u64, u64),
    Fixed64(u64, [u8; 8]),
    Fixed32(u64, [u8; 4]),
    Bytes(u64, Vec<u8>),
    /// A length-delimited field holding more fields.
    Nested(u64, Vec<Field>),
    /// A start-group tag, its fields, and the end-group tag if `closed`.
    Group(u64, Vec<Field>, bool),
    /// A tag with wire type 6 or 7, which no protobuf message has.
    BadWire(u64, u8),
    /// A length-delimited field whose declared length is `extra` longer
    /// than its payload (it swallows what follows).
    BadLen(u64, u64, Vec<u8>),
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(field: u64, wire: u64, out: &mut Vec<u8>) {
    varint((field << 3) | wire, out);
}

fn encode_fields(fields: &[Field], out: &mut Vec<u8>) {
    for f in fields {
        match f {
            Field::Varint(n, v) => {
                tag(*n, 0, out);
                varint(*v, out);
            }
            Field::Fixed64(n, b) => {
                tag(*n, 1, out);
                out.extend_from_slice(b);
            }
            Field::Fixed32(n, b) => {
                tag(*n, 5, out);
                out.extend_from_slice(b);
            }
            Field::Bytes(n, b) => {
                tag(*n, 2, out);
                varint(b.len() as u64, out);
                out.extend_from_slice(b);
            }
            Field::Nested(n, inner) => {
                let mut body = Vec::new();
                encode_fields(inner, &mut body);
                tag(*n, 2, out);
                varint(body.len() as u64, out);
                out.extend_from_slice(&body);
            }
            Field::Group(n, inner, closed) => {
                tag(*n, 3, out);
                encode_fields(inner, out);
                if *closed {
                    tag(*n, 4, out);
                }
            }
            Field::BadWire(n, w) => tag(*n, u64::from(*w), out),
            Field::BadLen(n, extra, b) => {
                tag(*n, 2, out);
                varint((b.len() as u64).saturating_add(*extra), out);
                out.extend_from_slice(b);
            }
        }
    }
}

/// Field numbers: the ones `eraftpb` uses (and those the group check
/// descends into) most of the time, any other now and then.
fn arb_field_number() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 1u64..=16,
        2 => prop::sample::select(vec![1u64, 2, 7, 9]),
        1 => 0u64..(1 << 61),
    ]
}

fn arb_fields() -> impl Strategy<Value = Vec<Field>> {
    let leaf = prop_oneof![
        4 => (arb_field_number(), any::<u64>()).prop_map(|(n, v)| Field::Varint(n, v)),
        1 => (arb_field_number(), any::<[u8; 8]>()).prop_map(|(n, b)| Field::Fixed64(n, b)),
        1 => (arb_field_number(), any::<[u8; 4]>()).prop_map(|(n, b)| Field::Fixed32(n, b)),
        3 => (arb_field_number(), arb_bytes(24)).prop_map(|(n, b)| Field::Bytes(n, b)),
        1 => (arb_field_number(), 6u8..=7).prop_map(|(n, w)| Field::BadWire(n, w)),
        1 => (arb_field_number(), prop_oneof![1u64..16, Just(u64::MAX)], arb_bytes(8))
            .prop_map(|(n, e, b)| Field::BadLen(n, e, b)),
        1 => (arb_field_number(), any::<bool>()).prop_map(|(n, c)| Field::Group(n, Vec::new(), c)),
    ];
    let field = leaf.prop_recursive(6, 128, 6, |inner| {
        prop_oneof![
            3 => (arb_field_number(), prop::collection::vec(inner.clone(), 0..6)).prop_map(|(n, f)| Field::Nested(n, f)),
            1 => (arb_field_number(), prop::collection::vec(inner, 0..4), any::<bool>())
                .prop_map(|(n, f, c)| Field::Group(n, f, c)),
        ]
    });
    prop::collection::vec(field, 0..12)
}

/// The `eraftpb` messages rust-protobuf descends into, as the group check
/// must know them: a message field of a known message type is parsed
/// (groups and all); anything else length-delimited is skipped by length.
#[derive(Clone, Copy)]
enum Kind {
    Message,
    Entry,
    Snapshot,
    SnapshotMetadata,
    ConfState,
}

fn nested_kind(kind: Kind, field: u64) -> Option<Kind> {
    match (kind, field) {
        (Kind::Message, 7) => Some(Kind::Entry),
        (Kind::Message, 9) => Some(Kind::Snapshot),
        (Kind::Snapshot, 2) => Some(Kind::SnapshotMetadata),
        (Kind::SnapshotMetadata, 1) => Some(Kind::ConfState),
        _ => None,
    }
}

/// Whether rust-protobuf parsing `fields` as a `kind` would meet a group.
fn reaches_group(fields: &[Field], kind: Kind) -> bool {
    fields.iter().any(|f| match f {
        Field::Group(..) => true,
        Field::Nested(n, inner) => nested_kind(kind, *n).is_some_and(|k| reaches_group(inner, k)),
        _ => false,
    })
}

fn has_bad_len(fields: &[Field]) -> bool {
    fields.iter().any(|f| match f {
        Field::BadLen(..) => true,
        Field::Nested(_, inner) | Field::Group(_, inner, _) => has_bad_len(inner),
        _ => false,
    })
}

// ---- properties -----------------------------------------------------------------

/// Frame limits to run the decoder with.
fn arb_max() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0), 1usize..64, 64usize..=(64 << 10), Just(4 << 20), Just(64 << 20)]
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary bytes in arbitrary chunks: messages or an error, never a
    /// panic, and never more than one frame's worth left buffered.
    #[test]
    fn arbitrary_bytes_never_panic(
        wire in prop::collection::vec(any::<u8>(), 0..=(64 << 10)),
        sizes in prop::collection::vec(1usize..=8192, 1..16),
        max in arb_max(),
    ) {
        let fed = feed(max, &chunk(&wire, &sizes));
        prop_assert!(fed.error.is_some() || fed.buffered < FRAME_HEADER_LEN + max.max(1));
    }

    /// Arbitrary bytes behind a correct header (so they reach the group
    /// check and rust-protobuf), several frames to a stream.
    #[test]
    fn arbitrary_bodies_never_panic(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..=4096), 1..8),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let wire: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
        let fed = feed(1 << 20, &split(&wire, &cuts));
        prop_assert!(fed.messages.len() <= bodies.len());
        if fed.error.is_none() {
            prop_assert_eq!(fed.messages.len(), bodies.len());
            prop_assert_eq!(fed.buffered, 0);
        }
    }
}

proptest! {
    #![proptest_config(config(2048))]

    /// Valid frames round-trip exactly, however the stream is split.
    #[test]
    fn valid_messages_round_trip(
        msgs in prop::collection::vec(arb_message(), 1..6),
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let wire = encode(&msgs);
        let fed = feed(1 << 20, &split(&wire, &cuts));
        prop_assert!(fed.error.is_none(), "{:?}", fed.error);
        prop_assert_eq!(fed.buffered, 0);
        prop_assert_eq!(fed.messages, msgs);
    }

    /// The same, byte by byte and with the limit exactly the body's size.
    #[test]
    fn valid_message_round_trips_at_exact_limit(msg in arb_message()) {
        let wire = encode(std::slice::from_ref(&msg));
        let max = wire.len() - FRAME_HEADER_LEN;
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        let fed = feed(max, &bytes);
        prop_assert!(fed.error.is_none(), "{:?}", fed.error);
        prop_assert_eq!(fed.messages, vec![msg.clone()]);
        // One byte less of limit and it is refused from its header alone.
        if max > 0 {
            let fed = feed(max - 1, &bytes);
            prop_assert!(matches!(fed.error, Some(FrameError::TooLarge { len, .. }) if len == max), "{:?}", fed.error);
            prop_assert!(fed.messages.is_empty());
        }
    }
}

/// How a valid frame gets damaged.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Truncate(Index),
    Extend(Vec<u8>),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => arb_bytes(32).prop_map(Mutation::Extend),
        1 => (any::<Index>(), arb_bytes(8)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1usize..8).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Flip(i, x) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        Mutation::Flip(..) => {}
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
        Mutation::Extend(b) => bytes.extend_from_slice(b),
        Mutation::Insert(i, b) => {
            let i = i.index(bytes.len() + 1);
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::Remove(i, n) => {
            let i = i.index(bytes.len() + 1);
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
    }
}

proptest! {
    #![proptest_config(config(2048))]

    /// A valid frame with bytes flipped, cut, added or removed: decoded,
    /// refused or still incomplete, never a panic. With `whole` the damage
    /// is confined to the body and the length prefix rewritten to match,
    /// so every damaged body reaches the parser; without it the header is
    /// fair game too.
    #[test]
    fn damaged_frames_never_panic(
        msg in arb_message(),
        mutations in prop::collection::vec(arb_mutation(), 1..6),
        whole in any::<bool>(),
        cuts in prop::collection::vec(any::<Index>(), 0..4),
        max in prop_oneof![Just(1usize << 20), 0usize..4096],
    ) {
        let wire = encode(std::slice::from_ref(&msg));
        let damaged = if whole {
            let mut body = wire[FRAME_HEADER_LEN..].to_vec();
            for m in &mutations {
                mutate(&mut body, m);
            }
            frame(&body)
        } else {
            let mut w = wire.clone();
            for m in &mutations {
                mutate(&mut w, m);
            }
            w
        };
        let fed = feed(max, &split(&damaged, &cuts));
        prop_assert!(fed.messages.len() <= damaged.len() / FRAME_HEADER_LEN);
    }

    /// Protobuf-shaped bodies (known and unknown fields of every wire type,
    /// nested messages, groups, bad wire types, overlong lengths): never a
    /// panic, and a group anywhere rust-protobuf would parse it is refused.
    #[test]
    fn protobuf_shaped_bodies(fields in arb_fields(), cuts in prop::collection::vec(any::<Index>(), 0..4)) {
        let mut body = Vec::new();
        encode_fields(&fields, &mut body);
        let wire = frame(&body);
        let fed = feed(1 << 20, &split(&wire, &cuts));
        if reaches_group(&fields, Kind::Message) && !has_bad_len(&fields) {
            prop_assert!(fed.error.is_some(), "a reachable group was accepted: {:?}", fed.messages);
        }
    }
}

/// Where in a raft message a group is hidden.
#[derive(Debug, Clone, Copy)]
enum Spot {
    Message,
    Entry,
    Snapshot,
    SnapshotMetadata,
    ConfState,
}

fn length_delimited(field: u64, body: &[u8], out: &mut Vec<u8>) {
    tag(field, 2, out);
    varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

proptest! {
    #![proptest_config(config(128))]

    /// Deeply nested groups (rust-protobuf would recurse once per level,
    /// RUSTSEC-2024-0437) at every level the parser descends into are
    /// refused before parsing, with no stack overflow.
    #[test]
    fn deep_groups_are_refused(
        msg in arb_message(),
        spot in prop::sample::select(vec![Spot::Message, Spot::Entry, Spot::Snapshot, Spot::SnapshotMetadata, Spot::ConfState]),
        depth in prop_oneof![1usize..64, 64usize..=100_000],
        field in 1u64..=2047,
        closed in any::<bool>(),
    ) {
        let mut group = Vec::new();
        for _ in 0..depth {
            tag(field, 3, &mut group);
        }
        if closed {
            for _ in 0..depth {
                tag(field, 4, &mut group);
            }
        }
        let with = |bytes: Vec<u8>| [bytes, group.clone()].concat();
        let mut body = msg.write_to_bytes().expect("encode");
        let conf_state = || with(ConfState { voters: vec![1, 2, 3], ..Default::default() }.write_to_bytes().expect("encode"));
        let metadata = |inner: Vec<u8>| {
            let mut b = SnapshotMetadata { index: 5, term: 2, ..Default::default() }.write_to_bytes().expect("encode");
            length_delimited(1, &inner, &mut b);
            b
        };
        let snapshot = |inner: Vec<u8>| {
            let mut b = Snapshot { data: vec![9; 4].into(), ..Default::default() }.write_to_bytes().expect("encode");
            length_delimited(2, &inner, &mut b);
            b
        };
        match spot {
            Spot::Message => body.extend_from_slice(&group),
            Spot::Entry => {
                let entry = with(Entry { index: 1, data: vec![7; 3].into(), ..Default::default() }.write_to_bytes().expect("encode"));
                length_delimited(7, &entry, &mut body);
            }
            Spot::Snapshot => length_delimited(9, &with(Snapshot::default().write_to_bytes().expect("encode")), &mut body),
            Spot::SnapshotMetadata => {
                let meta = with(SnapshotMetadata { index: 5, ..Default::default() }.write_to_bytes().expect("encode"));
                length_delimited(9, &snapshot(meta), &mut body);
            }
            Spot::ConfState => length_delimited(9, &snapshot(metadata(conf_state())), &mut body),
        }
        let fed = feed(1 << 20, &[&frame(&body)]);
        prop_assert!(fed.messages.is_empty());
        prop_assert!(matches!(fed.error, Some(FrameError::Malformed(_))), "{:?}", fed.error);
    }
}

proptest! {
    #![proptest_config(config(1024))]

    /// A length prefix over the limit is refused from the header alone,
    /// whatever follows, without allocating the announced length.
    #[test]
    fn oversized_length_is_refused_without_allocating(
        max in prop_oneof![0usize..=4096, Just(4 << 20), 0usize..=(4 << 20)],
        over in any::<Index>(),
        version in any::<u8>(),
        tail in arb_bytes(1024),
    ) {
        // Any announced length in max+1 ..= u32::MAX.
        let span = u32::MAX as usize - max;
        let len = max + 1 + over.index(span);
        let mut wire = (len as u32).to_be_bytes().to_vec();
        wire.push(version);
        wire.extend_from_slice(&tail);
        let (r, peak) = peak_alloc(|| {
            let mut dec = FrameDecoder::new(max);
            dec.extend(&wire);
            dec.next_message().map(|m| m.is_some())
        });
        prop_assert!(matches!(r, Err(FrameError::TooLarge { len: l, max: m }) if l == len && m == max), "{:?}", r);
        prop_assert!(peak <= 2 * wire.len() + 4096, "peak allocation {peak} for a {}-byte input", wire.len());
    }

    /// A header within the limit makes the decoder reserve room for that
    /// body and no more: memory follows the limit, not the announcement.
    #[test]
    fn allowed_length_reserves_at_most_the_frame(
        max in prop_oneof![0usize..=4096, Just(4 << 20)],
        len in any::<Index>(),
        split_header in 0usize..FRAME_HEADER_LEN,
    ) {
        let len = len.index(max + 1);
        let mut header = (len as u32).to_be_bytes().to_vec();
        header.push(FRAME_VERSION);
        let (r, peak) = peak_alloc(|| {
            let mut dec = FrameDecoder::new(max);
            dec.extend(&header[..split_header]);
            let first = dec.next_message().map(|m| m.is_some());
            dec.extend(&header[split_header..]);
            (first, dec.next_message().map(|m| m.is_some()))
        });
        prop_assert!(matches!(r.0, Ok(false)), "{:?}", r.0);
        if len == 0 {
            // An empty body is the default message, complete with its header.
            prop_assert!(matches!(r.1, Ok(true)), "{:?}", r.1);
        } else {
            prop_assert!(matches!(r.1, Ok(false)), "{:?}", r.1);
        }
        prop_assert!(peak <= 2 * (FRAME_HEADER_LEN + len) + 4096, "peak allocation {peak} for a {len}-byte body");
    }
}

/// The brief's example, pinned: u32::MAX announced, 4 MiB allowed.
#[test]
fn u32_max_length_with_4_mib_limit_is_refused_at_once() {
    let mut header = u32::MAX.to_be_bytes().to_vec();
    header.push(FRAME_VERSION);
    let (r, peak) = peak_alloc(|| {
        let mut dec = FrameDecoder::new(4 << 20);
        dec.extend(&header);
        dec.next_message().map(|m| m.is_some())
    });
    assert!(matches!(r, Err(FrameError::TooLarge { len, max }) if len == u32::MAX as usize && max == 4 << 20), "{r:?}");
    assert!(peak < 4096, "peak allocation {peak}");
}
