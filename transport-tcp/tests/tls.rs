//! Peer TLS between transports on loopback: mutual TLS carries raft
//! messages; a dialer without a certificate, with one from another CA, an
//! expired one or one its CRL revokes, or speaking cleartext is refused
//! before any frame is decoded (and the member still takes good dialers);
//! idle and garbage hellos do not lock a member out.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use raft_kv::{Config, Node, NodeBuilder, Transport};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use transport_tcp::handshake::{Handshake, Lane};
use transport_tcp::{PeerTls, TcpTransport};

/// A CA that signs member certificates valid for 127.0.0.1.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        Ca { cert: p.self_signed(&key).expect("ca"), key }
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut r = RootCertStore::empty();
        r.add(self.cert.der().clone()).expect("root");
        Arc::new(r)
    }

    /// A member certificate (server and client use) and its key.
    fn member(&self, cn: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        self.member_with(cn, |_| {})
    }

    /// [`Ca::member`] with its parameters edited by `edit` (validity,
    /// serial).
    fn member_with(
        &self,
        cn: &str,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        p.distinguished_name.push(DnType::CommonName, cn);
        edit(&mut p);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("sign");
        (vec![cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
    }

    /// A revocation list of this CA listing `serial`.
    fn crl(&self, serial: u64) -> CertificateRevocationListDer<'static> {
        let crl = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2100, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(serial),
                revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.cert, &self.key)
        .expect("crl");
        crl.der().clone()
    }
}

/// Mutual TLS trusting `trust`, presenting `ident` (none: no client
/// certificate when dialing).
fn peer_tls(trust: &Ca, ident: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), present: bool) -> PeerTls {
    peer_tls_with_crls(trust, ident, present, Vec::new())
}

/// [`peer_tls`] whose acceptor also checks `crls` (as raft-kv-server's
/// `--peer-crl-file`: certificates the lists do not cover pass).
fn peer_tls_with_crls(
    trust: &Ca,
    ident: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    present: bool,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> PeerTls {
    let mut verifier = WebPkiClientVerifier::builder(trust.roots());
    if !crls.is_empty() {
        verifier = verifier.with_crls(crls).allow_unknown_revocation_status();
    }
    let verifier = verifier.build().expect("verifier");
    let server = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(ident.0.clone(), ident.1.clone_key())
        .expect("server config");
    let client = ClientConfig::builder().with_root_certificates(trust.roots());
    let client = if present {
        client.with_client_auth_cert(ident.0, ident.1).expect("client config")
    } else {
        client.with_no_client_auth()
    };
    PeerTls { server: Arc::new(server), client: Arc::new(client) }
}

fn idle_builder(id: u64) -> NodeBuilder<()> {
    Node::builder(Config::new(id))
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// Member 2 with mutual TLS under `ca`, and member 1 dialing it with `tls`.
fn pair(ca: &Ca, tls: Option<PeerTls>) -> (TcpTransport, TcpTransport, [NodeBuilder<()>; 2]) {
    pair_with(peer_tls(ca, ca.member("n2"), true), tls)
}

/// Member 2 with TLS `b_tls`, and member 1 dialing it with `tls`.
fn pair_with(b_tls: PeerTls, tls: Option<PeerTls>) -> (TcpTransport, TcpTransport, [NodeBuilder<()>; 2]) {
    init_logs();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builders = [idle_builder(1), idle_builder(2)];
    let b = TcpTransport::start(tcp_config(2, local()).tls(b_tls), builders[1].mailbox()).expect("start b");
    let mut cfg = tcp_config(1, local()).peer(2, b.local_addr().to_string());
    cfg.tls = tls;
    let a = TcpTransport::start(cfg, builders[0].mailbox()).expect("start a");
    (a, b, builders)
}

/// Sends heartbeats from `a` until `b` rejected two handshakes; asserts
/// nothing reached `b`'s frame decoder.
fn assert_refused(a: &mut TcpTransport, b: &TcpTransport) {
    assert!(eventually(WAIT, || {
        a.send(vec![heartbeat(1, 2, 1)]);
        b.metrics().handshakes_rejected >= 2
    }));
    assert_eq!(b.metrics().messages_received, 0);
    assert_eq!(b.metrics().frames_rejected, 0);
    assert_eq!(b.metrics().bytes_received, 0);
}

#[test]
fn mutual_tls_carries_messages_on_both_lanes() {
    let ca = Ca::new("ca");
    let (mut a, b, _builders) = pair(&ca, Some(peer_tls(&ca, ca.member("n1"), true)));
    let mut snap = heartbeat(1, 2, 1);
    snap.set_msg_type(raft::eraftpb::MessageType::MsgSnapshot);
    snap.mut_snapshot().data = vec![7u8; 256 << 10].into();
    assert!(eventually(WAIT, || {
        a.send(vec![heartbeat(1, 2, 1), snap.clone()]);
        b.metrics().messages_received >= 4
    }));
    assert_eq!(b.metrics().handshakes_rejected, 0);
    assert_eq!(a.peer_metrics()[&2].connects, 2, "one connection per lane");
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let (ca, other) = (Ca::new("ca"), Ca::new("other"));
    // Trusts the right CA (so it verifies member 2) but presents a
    // certificate the other CA signed.
    let (mut a, b, _builders) = pair(&ca, Some(peer_tls(&ca, other.member("n1"), true)));
    assert_refused(&mut a, &b);
    assert_eq!(a.metrics().messages_sent, 0);
}

/// After refusals, `b` still takes a member with a good certificate: a
/// new dialer presenting `good` gets messages through.
fn still_serves(b: &TcpTransport, ca: &Ca, good: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)) {
    let builder = idle_builder(1);
    let mut c = TcpTransport::start(
        tcp_config(1, local()).peer(2, b.local_addr().to_string()).tls(peer_tls(ca, good, true)),
        builder.mailbox(),
    )
    .expect("start c");
    assert!(eventually(WAIT, || {
        c.send(vec![heartbeat(1, 2, 1)]);
        b.metrics().messages_received >= 1
    }));
}

#[test]
fn an_expired_certificate_is_refused_before_the_frame_decoder() {
    let ca = Ca::new("ca");
    let expired = ca.member_with("n1", |p| {
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    });
    let (mut a, b, _builders) = pair(&ca, Some(peer_tls(&ca, expired, true)));
    assert_refused(&mut a, &b);
    assert_eq!(a.metrics().messages_sent, 0);
    still_serves(&b, &ca, ca.member("n1"));
}

#[test]
fn a_revoked_certificate_is_refused_before_the_frame_decoder() {
    const SERIAL: u64 = 0x5EED;
    let ca = Ca::new("ca");
    let b_tls = peer_tls_with_crls(&ca, ca.member("n2"), true, vec![ca.crl(SERIAL)]);
    let revoked = ca.member_with("n1", |p| p.serial_number = Some(SerialNumber::from(SERIAL)));
    let (mut a, b, _builders) = pair_with(b_tls, Some(peer_tls(&ca, revoked, true)));
    assert_refused(&mut a, &b);
    assert_eq!(a.metrics().messages_sent, 0);
    // The list revokes that certificate only.
    still_serves(&b, &ca, ca.member("n1"));
}

#[test]
fn a_dialer_without_a_certificate_is_refused() {
    let ca = Ca::new("ca");
    let (mut a, b, _builders) = pair(&ca, Some(peer_tls(&ca, ca.member("n1"), false)));
    assert_refused(&mut a, &b);
}

#[test]
fn a_dialer_that_does_not_trust_the_member_gives_up() {
    let (ca, other) = (Ca::new("ca"), Ca::new("other"));
    let (mut a, b, _builders) = pair(&ca, Some(peer_tls(&other, other.member("n1"), true)));
    assert!(eventually(WAIT, || {
        a.send(vec![heartbeat(1, 2, 1)]);
        a.metrics().connect_failures >= 2
    }));
    assert_eq!(a.metrics().messages_sent, 0);
    assert_eq!(b.metrics().messages_received, 0);
}

#[test]
fn cleartext_to_a_tls_peer_port_is_refused() {
    let ca = Ca::new("ca");
    // A cleartext transport...
    let (mut a, b, _builders) = pair(&ca, None);
    assert_refused(&mut a, &b);
    // ... and a raw cleartext handshake: no verdict comes back, the
    // connection is closed.
    let mut s = TcpStream::connect(b.local_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(&Handshake::new(Lane::Raft, CLUSTER, 1, 2).encode()).expect("write");
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(reply.len() != 2 && !reply.starts_with(&[1, 0]), "a cleartext handshake got a verdict: {reply:?}");
    assert_eq!(b.metrics().messages_received, 0);
}

#[test]
fn idle_and_garbage_hellos_do_not_lock_members_out() {
    let ca = Ca::new("ca");
    init_logs();
    let builders = [idle_builder(1), idle_builder(2)];
    let mut cfg = tcp_config(2, local()).peer(1, "127.0.0.1:1").tls(peer_tls(&ca, ca.member("n2"), true));
    cfg.handshake_timeout = Duration::from_secs(1);
    let b = TcpTransport::start(cfg, builders[1].mailbox()).expect("start b");
    // Garbage where a ClientHello belongs: closed, the member unharmed.
    for junk in [&b"GET / HTTP/1.1\r\n\r\n"[..], &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0][..], &[0u8; 4096][..]] {
        let mut s = TcpStream::connect(b.local_addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let _ = s.write_all(junk);
        assert!(closed_by_peer(&mut s), "garbage {:?}... left open", &junk[..4]);
    }
    // Hellos that never come: past the per-address handshake slots the
    // member closes connections at once; the rest time out.
    let idle: Vec<TcpStream> = (0..24).map(|_| TcpStream::connect(b.local_addr()).expect("connect")).collect();
    let mut a = TcpTransport::start(
        tcp_config(1, local()).peer(2, b.local_addr().to_string()).tls(peer_tls(&ca, ca.member("n1"), true)),
        builders[0].mailbox(),
    )
    .expect("start a");
    assert!(eventually(WAIT, || {
        a.send(vec![heartbeat(1, 2, 1)]);
        b.metrics().messages_received >= 1
    }));
    assert!(eventually(WAIT, || b.metrics().handshakes_rejected >= 3 + 8));
    drop(idle);
}

/// Over TLS, senders write to an idle raft lane themselves too (rustls
/// buffers what the socket does not take, and the writer flushes it): a
/// peer that reads nothing, then slowly, gets every message whole and in
/// order while they keep coming.
#[test]
fn a_tls_raft_lane_to_a_slow_reader_keeps_every_message_in_order() {
    use transport_tcp::frame::FrameDecoder;
    use transport_tcp::handshake::{Verdict, HANDSHAKE_LEN};
    const PAYLOAD: usize = 32 << 10;
    const COUNT: u64 = 600;
    init_logs();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = Ca::new("ca");
    let server_tls = peer_tls(&ca, ca.member("n2"), true).server;
    let listener = std::net::TcpListener::bind(local()).expect("bind");
    let builder = idle_builder(1);
    let cfg = tcp_config(1, local()).peer(2, listener.local_addr().expect("addr").to_string()).tls(peer_tls(
        &ca,
        ca.member("n1"),
        true,
    ));
    let mut a = TcpTransport::start(cfg, builder.mailbox()).expect("start a");
    let append = |index: u64, payload: usize| {
        let mut m = heartbeat(1, 2, 1);
        m.set_msg_type(raft::eraftpb::MessageType::MsgAppend);
        m.index = index;
        m.mut_entries().push(raft::eraftpb::Entry {
            index: index + 1,
            data: vec![5; payload].into(),
            ..Default::default()
        });
        m
    };
    a.send(vec![append(0, 10)]);
    // Member 2, played here: TLS, then the raft-kv handshake.
    let (sock, _) = listener.accept().expect("accept");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let conn = rustls::ServerConnection::new(server_tls).expect("server connection");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut hs = [0u8; HANDSHAKE_LEN];
    tls.read_exact(&mut hs).expect("handshake");
    assert_eq!(Handshake::decode(&hs).expect("decode").lane, Lane::Raft);
    tls.write_all(&Verdict::Accepted.reply()).expect("reply");
    tls.flush().expect("flush");

    let sender = std::thread::spawn(move || {
        for i in 1..=COUNT {
            a.send(vec![append(i, PAYLOAD)]);
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        a
    });
    std::thread::sleep(Duration::from_millis(50));
    let mut dec = FrameDecoder::new(64 << 20);
    let mut buf = vec![0u8; 16 << 10];
    let mut next = 0;
    while next <= COUNT {
        while let Some(m) = dec.next_message().expect("frame") {
            assert_eq!(m.index, next, "out of order");
            next += 1;
        }
        if next > COUNT {
            break;
        }
        let n = tls.read(&mut buf).expect("read");
        assert!(n > 0, "closed after {next} messages");
        dec.extend(&buf[..n]);
        std::thread::sleep(Duration::from_micros(100));
    }
    let a = sender.join().expect("sender");
    assert_eq!(a.metrics().messages_dropped, 0);
    assert_eq!(a.metrics().messages_sent, COUNT + 1);
}
