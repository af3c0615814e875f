//! Client and peer TLS end to end (issue 14): real `raft-kv-server`
//! processes with `https://` client and peer URLs and a PKI made here with
//! rcgen (a CA, a member certificate for 127.0.0.1/localhost, clients with
//! the CN of a user, of no user and without a CN, a client of another CA,
//! an expired client, a revoked client and its CRL, and member certificates
//! expired, revoked or for another host), driven by etcdctl 3.4
//! and 3.5.1, Python `etcd3` and curl; the client certificate's CN as the
//! user is compared with real etcd 3.5.1.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
    SerialNumber,
};

/// A certificate authority that writes what it signs as PEM files.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("key");
        Ca { cert: p.self_signed(&key).expect("self-signed"), key }
    }

    /// Signs a leaf for 127.0.0.1 and localhost with common name `cn` (none
    /// when empty; server and client use), edited by `edit`; writes
    /// `<dir>/<name>.pem` and `.key`.
    fn leaf(&self, dir: &Path, name: &str, cn: &str, edit: impl FnOnce(&mut CertificateParams)) {
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
        // rcgen's default subject has a CN of its own.
        p.distinguished_name = DistinguishedName::new();
        if !cn.is_empty() {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        edit(&mut p);
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("sign");
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write cert");
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write key");
    }
}

/// The test PKI, as files in one directory.
struct Pki {
    dir: PathBuf,
}

const REVOKED_SERIAL: u64 = 0x5EED;
/// The serial of `peer-revoked.pem`, a member certificate the CRL lists.
const REVOKED_PEER_SERIAL: u64 = 0x5EEE;

impl Pki {
    fn new(dir: &Path) -> Pki {
        let ca = Ca::new("raft-kv test CA");
        std::fs::write(dir.join("ca.pem"), ca.cert.pem()).expect("write ca");
        ca.leaf(dir, "member", "member", |_| {});
        ca.leaf(dir, "client", "alice", |_| {});
        ca.leaf(dir, "root", "root", |_| {});
        ca.leaf(dir, "mallory", "mallory", |_| {});
        ca.leaf(dir, "nocn", "", |_| {});
        ca.leaf(dir, "expired", "alice", |p| {
            p.not_before = rcgen::date_time_ymd(2001, 1, 1);
            p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        });
        ca.leaf(dir, "revoked", "alice", |p| p.serial_number = Some(SerialNumber::from(REVOKED_SERIAL)));
        // Member certificates a peer port must refuse: expired, revoked,
        // valid for another host only.
        ca.leaf(dir, "peer-expired", "member", |p| {
            p.not_before = rcgen::date_time_ymd(2001, 1, 1);
            p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        });
        ca.leaf(dir, "peer-revoked", "member", |p| p.serial_number = Some(SerialNumber::from(REVOKED_PEER_SERIAL)));
        ca.leaf(dir, "peer-elsewhere", "member", |p| {
            p.subject_alt_names = vec![rcgen::SanType::DnsName("n9.example".try_into().expect("dns name"))];
        });
        let crl = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2100, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: [REVOKED_SERIAL, REVOKED_PEER_SERIAL]
                .into_iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca.cert, &ca.key)
        .expect("crl");
        std::fs::write(dir.join("crl.pem"), crl.pem().expect("crl pem")).expect("write crl");
        Ca::new("another CA").leaf(dir, "stranger", "alice", |_| {});
        Pki { dir: dir.to_path_buf() }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().to_string()
    }

    /// etcdctl's (and curl's) `--cacert/--cert/--key` for identity `who`.
    fn client_args(&self, who: &str) -> Vec<String> {
        vec![
            "--cacert".into(),
            self.path("ca.pem"),
            "--cert".into(),
            self.path(&format!("{who}.pem")),
            "--key".into(),
            self.path(&format!("{who}.key")),
        ]
    }

    /// The member flags: mutual TLS on both ports, CRL on client certs,
    /// peers must be called `member`.
    fn member_flags(&self) -> Vec<String> {
        let (cert, key, ca) = (self.path("member.pem"), self.path("member.key"), self.path("ca.pem"));
        [
            ("--cert-file", cert.as_str()),
            ("--key-file", key.as_str()),
            ("--trusted-ca-file", ca.as_str()),
            ("--client-crl-file", &self.path("crl.pem")),
            ("--peer-cert-file", cert.as_str()),
            ("--peer-key-file", key.as_str()),
            ("--peer-trusted-ca-file", ca.as_str()),
            ("--peer-cert-allowed-cn", "member"),
        ]
        .iter()
        .map(|(f, v)| format!("{f}={v}"))
        .chain(["--client-cert-auth".to_string(), "--peer-client-cert-auth".to_string()])
        .collect()
    }
}

/// `n` members with `https://` client and peer URLs and `flags`, waited
/// for with `curl` (client certificate `client_args`) on `/health`.
fn tls_cluster(n: usize, flags: &[String], client_args: &[String]) -> Cluster {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Cluster::start_as(n, "https", &flags, &[], &|m| tls_healthy(m, client_args))
}

/// True when `m` answers `/health` with a leader over TLS.
fn tls_healthy(m: &Member, client_args: &[String]) -> bool {
    let out = curl(client_args, &format!("{}/health", m.client_url), None);
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\"true\"")
}

/// Waits until every member lists the others' published client URLs.
fn wait_published(c: &Cluster, tls: &[String]) {
    let url = format!("{}/v3/cluster/member/list", c.members[0].client_url);
    let deadline = Instant::now() + Duration::from_secs(30);
    while text(&curl(tls, &url, Some("{}"))).matches("clientURLs").count() < c.members.len() {
        assert!(Instant::now() < deadline, "members did not publish their client URLs");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// curl with TLS options `tls`, POSTing `body` when given.
fn curl(tls: &[String], url: &str, body: Option<&str>) -> Output {
    let mut args: Vec<&str> = vec!["-sS", "--max-time", "10"];
    args.extend(tls.iter().map(String::as_str));
    if let Some(b) = body {
        args.extend(["-X", "POST", "-d", b]);
    }
    args.push(url);
    run(20, "curl", &args, &[], None)
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// etcdctl 3.4 (Debian's) or 3.5.1 with TLS arguments.
fn ctl(v35: bool, endpoints: &str, tls: &[String], args: &[&str]) -> Output {
    let mut all: Vec<&str> = tls.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    if v35 {
        etcdctl35_raw(endpoints, &all, None)
    } else {
        etcdctl_raw(endpoints, &all, None)
    }
}

/// etcdctl 3.5.1 with TLS arguments, feeding `stdin`.
fn ctl_in(endpoints: &str, tls: &[String], args: &[&str], stdin: Option<&str>) -> Output {
    let mut all: Vec<&str> = tls.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    etcdctl35_raw(endpoints, &all, stdin)
}

fn ctl_ok(v35: bool, endpoints: &str, tls: &[String], args: &[&str]) -> String {
    let out = ctl(v35, endpoints, tls, args);
    assert!(out.status.success(), "etcdctl{} {args:?} failed: {}", if v35 { " 3.5" } else { "" }, text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

const PYTHON: &str = r#"
import sys, threading, time
import etcd3

ca, cert, key = sys.argv[1:4]
ports = [int(p) for p in sys.argv[4:]]
cs = [etcd3.client(host='127.0.0.1', port=p, ca_cert=ca, cert_cert=cert, cert_key=key) for p in ports]
cs[0].put('/py/a', 'over tls')
print('get', cs[1].get('/py/a')[0].decode())
events, cancel = cs[2].watch_prefix('/py/w/')
def writer():
    time.sleep(1)
    cs[0].put('/py/w/x', 'watched')
threading.Thread(target=writer, daemon=True).start()
for ev in events:
    print('watch', ev.key.decode(), ev.value.decode())
    break
cancel()
try:
    etcd3.client(host='127.0.0.1', port=ports[0], ca_cert=ca, timeout=5).get('/py/a')
    print('no-cert accepted')
except Exception as e:
    print('no-cert refused', type(e).__name__)
print('done')
"#;

/// Python etcd3 over TLS signing in with a user and password.
const PYTHON_AUTH: &str = r#"
import sys
import etcd3

ca, cert, key, port = sys.argv[1:5]
def client(password):
    return etcd3.client(host='127.0.0.1', port=int(port), ca_cert=ca, cert_cert=cert, cert_key=key,
                        user='bob', password=password, timeout=10)
c = client('bobpw')
c.put('/py/auth', 'bob over tls')
print('get', c.get('/py/auth')[0].decode())
try:
    c.put('/other', 'x')
    print('put /other allowed')
except Exception as e:
    print('put /other denied', 'permission denied' in str(e))
try:
    client('wrong')
    print('wrong password accepted')
except Exception as e:
    print('wrong password refused', 'authentication failed' in str(e))
"#;

#[test]
fn mutual_tls_cluster_serves_real_clients_and_refuses_bad_certificates() {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(pki_dir.path());
    let good = pki.client_args("client");
    let flags = [pki.member_flags(), vec!["--bcrypt-cost=4".to_string()]].concat();
    let c = tls_cluster(3, &flags, &good);
    wait_published(&c, &good);
    let eps = c.endpoints();
    assert!(eps.starts_with("https://"), "{eps}");

    // etcdctl 3.4 and 3.5.1 with --cacert/--cert/--key, every member.
    for v35 in [false, true] {
        let key = format!("/tls/{}", if v35 { "35" } else { "34" });
        ctl_ok(v35, &eps, &good, &["put", &key, "v"]);
        for m in &c.members {
            let got = ctl_ok(v35, &m.client_url, &good, &["get", &key, "--print-value-only"]);
            assert_eq!(got.trim(), "v");
        }
        let status = ctl_ok(v35, &eps, &good, &["endpoint", "status", "-w", "json"]);
        assert_eq!(status.matches("\"leader\"").count(), 3, "{status}");
        let members = ctl_ok(v35, &eps, &good, &["member", "list"]);
        assert_eq!(members.matches("https://127.0.0.1:").count(), 6, "{members}");
    }

    // The JSON gateway shares the TLS port.
    let out = curl(
        &good,
        &format!("{}/v3/kv/range", c.members[1].client_url),
        Some(&format!(r#"{{"key":"{}"}}"#, b64("/tls/34"))),
    );
    assert!(text(&out).contains(&b64("v")), "{}", text(&out));

    // Python etcd3 over TLS.
    let python = python_with_etcd3();
    let script = c.tmp.path().join("tls.py");
    std::fs::write(&script, PYTHON).expect("script");
    let mut args =
        vec![script.to_string_lossy().to_string(), pki.path("ca.pem"), pki.path("client.pem"), pki.path("client.key")];
    args.extend(c.members.iter().map(|m| m.port().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(120, &python.to_string_lossy(), &args, &[], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python failed:\n{}", text(&out));
    for e in ["get over tls\n", "watch /py/w/x watched\n", "no-cert refused", "done\n"] {
        assert!(stdout.contains(e), "missing {e:?} in:\n{stdout}");
    }

    // Refusals: no certificate, another CA's, expired, revoked; cleartext.
    let ca_only = vec!["--cacert".to_string(), pki.path("ca.pem")];
    let ep = c.members[0].client_url.as_str();
    for v35 in [false, true] {
        for (what, args) in [
            ("no certificate", ca_only.clone()),
            ("another CA", pki.client_args("stranger")),
            ("expired", pki.client_args("expired")),
            ("revoked", pki.client_args("revoked")),
        ] {
            // A short command timeout: a refused client retries until it.
            let out = ctl(v35, ep, &args, &["--command-timeout=4s", "get", "/tls/34"]);
            assert!(!out.status.success(), "{what} (3.5: {v35}) was served: {}", text(&out));
        }
        let cleartext = ep.replace("https://", "http://");
        let out = ctl(v35, &cleartext, &[], &["--command-timeout=4s", "get", "/tls/34"]);
        assert!(!out.status.success(), "cleartext (3.5: {v35}) was served: {}", text(&out));
    }
    for who in ["stranger", "expired", "revoked"] {
        let out = curl(&pki.client_args(who), &format!("{ep}/health"), None);
        assert!(!out.status.success(), "curl as {who} was served: {}", text(&out));
    }

    // Garbage before the handshake, on the client and the peer port; a
    // cleartext raft-kv handshake on a TLS peer port gets no verdict.
    for addr in [c.members[0].client_addr(), c.members[0].peer_url.replace("https://", "")] {
        for junk in
            [&b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0x16, 3, 1, 0xff, 0xff, 1, 2, 3][..], b"RKVT\x01\x00"]
        {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
            let _ = s.write_all(junk);
            let mut reply = Vec::new();
            let _ = s.take(1 << 16).read_to_end(&mut reply);
            assert!(!String::from_utf8_lossy(&reply).contains("true"), "{addr} answered garbage: {reply:?}");
            assert!(reply.len() != 2, "{addr} gave a handshake verdict to cleartext: {reply:?}");
        }
    }

    // The members kept serving, and no private key reached a log.
    ctl_ok(true, &eps, &good, &["put", "/tls/after", "still serving"]);
    let key_pem = std::fs::read_to_string(pki.dir.join("member.key")).expect("key");
    let key_line = key_pem.lines().nth(1).expect("key body");
    for m in &c.members {
        let log = std::fs::read_to_string(m.dir.with_extension("log")).expect("log");
        assert!(!log.contains("PRIVATE KEY") && !log.contains(key_line), "{} logged a private key", m.name);
    }

    // Authentication over TLS: etcdctl sets users up, Python etcd3 signs
    // in as bob with his password and the client certificate.
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["role", "add", "py"],
        &["role", "grant-permission", "py", "readwrite", "/py/", "--prefix"],
        &["user", "add", "bob:bobpw"],
        &["user", "grant-role", "bob", "py"],
        &["auth", "enable"],
    ] {
        ctl_ok(true, &eps, &good, args);
    }
    let script = c.tmp.path().join("tls_auth.py");
    std::fs::write(&script, PYTHON_AUTH).expect("script");
    let args =
        [script.to_string_lossy().to_string(), pki.path("ca.pem"), pki.path("client.pem"), pki.path("client.key")];
    let port = c.members[1].port().to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).chain([port.as_str()]).collect();
    let out = run(120, &python.to_string_lossy(), &args, &[], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python (auth) failed:\n{}", text(&out));
    for e in ["get bob over tls\n", "put /other denied True\n", "wrong password refused True\n"] {
        assert!(stdout.contains(e), "missing {e:?} in:\n{stdout}");
    }
}

#[test]
fn auto_tls_members_serve_clients_that_skip_verification() {
    let flags = ["--auto-tls", "--peer-auto-tls"].map(String::from);
    let insecure = vec!["--insecure".to_string()];
    let c = tls_cluster(3, &flags, &insecure);
    let eps = c.endpoints();
    let skip = vec!["--insecure-skip-tls-verify".to_string(), "--insecure-transport=false".to_string()];
    ctl_ok(true, &eps, &skip, &["put", "/auto", "tls"]);
    assert_eq!(ctl_ok(false, &eps, &skip, &["get", "/auto", "--print-value-only"]).trim(), "tls");
    // A client that verifies cannot: the certificate is self-signed.
    let out = curl(&[], &format!("{}/health", c.members[0].client_url), None);
    assert!(!out.status.success(), "a self-signed certificate verified: {}", text(&out));

    // As etcd 3.5, the certificates are kept in <data-dir>/fixtures/{client,
    // peer}/{cert,key}.pem (the keys private) and served from there ...
    let mut c = c;
    let fixtures = c.members[0].dir.join("fixtures");
    let pems: Vec<(PathBuf, String)> = ["client/cert.pem", "client/key.pem", "peer/cert.pem", "peer/key.pem"]
        .iter()
        .map(|f| (fixtures.join(f), std::fs::read_to_string(fixtures.join(f)).expect("auto TLS file")))
        .collect();
    for (path, _) in pems.iter().filter(|(p, _)| p.ends_with("key.pem")) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    let own = |m: &Member| vec!["--cacert".to_string(), m.dir.join("fixtures/client/cert.pem").display().to_string()];
    let health = |m: &Member| curl(&own(m), &format!("{}/health", m.client_url), None);
    assert!(health(&c.members[0]).status.success(), "not the kept certificate: {}", text(&health(&c.members[0])));
    // ... and reused as they are by a restart.
    c.kill(0);
    c.restart_with(0, &flags.each_ref().map(String::as_str));
    c.wait_until(&c.members[0], Duration::from_secs(30), &|m| tls_healthy(m, &insecure));
    for (path, before) in &pems {
        assert_eq!(&std::fs::read_to_string(path).expect("auto TLS file"), before, "{} was remade", path.display());
    }
    assert!(health(&c.members[0]).status.success(), "a new certificate after restart");
    ctl_ok(true, &c.members[0].client_url, &skip, &["put", "/auto/after", "restart"]);
}

#[test]
fn tls_versions_and_cipher_suites_follow_the_flags() {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(pki_dir.path());
    let (cert, key) =
        (format!("--cert-file={}", pki.path("member.pem")), format!("--key-file={}", pki.path("member.key")));
    let ca = vec!["--cacert".to_string(), pki.path("ca.pem")];
    let peer = "--peer-auto-tls".to_string();
    let c = tls_cluster(1, &[cert.clone(), key.clone(), peer.clone(), "--tls-min-version=TLS1.3".into()], &ca);
    let url = format!("{}/health", c.members[0].client_url);
    assert!(curl(&ca, &url, None).status.success());
    let tls12: Vec<String> = ca.iter().cloned().chain(["--tls-max".to_string(), "1.2".to_string()]).collect();
    assert!(!curl(&tls12, &url, None).status.success(), "TLS1.2 was served under --tls-min-version=TLS1.3");
    drop(c);

    let suite = "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384";
    let c = tls_cluster(1, &[cert.clone(), key.clone(), peer, "--tls-max-version=TLS1.2".into(), suite.into()], &ca);
    let url = format!("{}/health", c.members[0].client_url);
    let with =
        |cipher: &str| -> Vec<String> { ca.iter().cloned().chain(["--ciphers".into(), cipher.into()]).collect() };
    assert!(curl(&with("ECDHE-ECDSA-AES256-GCM-SHA384"), &url, None).status.success());
    assert!(!curl(&with("ECDHE-ECDSA-CHACHA20-POLY1305"), &url, None).status.success(), "an unlisted suite was served");
    drop(c);

    // Bad values stop the member at start, with etcd's spellings in the
    // message.
    for (flags, says) in [
        (&["--tls-min-version=TLS1.4"][..], "unexpected TLS version"),
        (&["--tls-min-version=TLS1.0", "--tls-max-version=TLS1.1"][..], "TLS1.2 and TLS1.3 only"),
        (&["--cipher-suites=TLS_RSA_WITH_RC4_128_SHA"][..], "unexpected TLS cipher suite"),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let m = Member {
            name: "m1".into(),
            client_url: format!("https://127.0.0.1:{}", free_port()),
            peer_url: format!("http://127.0.0.1:{}", free_port()),
            dir: tmp.path().join("m1"),
            child: None,
        };
        let args: Vec<&str> = [cert.as_str(), key.as_str()].into_iter().chain(flags.iter().copied()).collect();
        let mut child = spawn(&m, &initial_cluster(std::slice::from_ref(&m)), "new", &args);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "{flags:?} did not stop the member");
            std::thread::sleep(Duration::from_millis(100));
        };
        let log = std::fs::read_to_string(m.dir.with_extension("log")).unwrap_or_default();
        assert!(!status.success() && log.contains(says), "{flags:?}: {status:?}\n{log}");
    }
}

/// One step of [`cn_script`] per line: `name: outcome`.
type Steps = Vec<String>;

/// curl on the gateway of `ep` as certificate `who`, with `token` in
/// `Authorization`: the HTTP status, and the body unless it is 200 (whose
/// headers carry member ids).
fn gw_as(pki: &Pki, ep: &str, who: &str, path: &str, body: Option<&str>, token: Option<&str>) -> (u16, String) {
    let mut tls = pki.client_args(who);
    tls.extend(["-w".to_string(), "\n%{http_code}".to_string()]);
    if let Some(t) = token {
        tls.extend(["-H".to_string(), format!("Authorization: {t}")]);
    }
    let out = curl(&tls, &format!("{ep}{path}"), body);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code: u16 = code.parse().unwrap_or_else(|_| panic!("curl {ep}{path}: {}", self::text(&out)));
    if code == 0 {
        // No response: curl's error is the outcome.
        return (0, self::text(&out).trim().to_string());
    }
    // JSON in one key order (grpc-gateway's and serde's differ).
    let body = serde_json::from_str::<serde_json::Value>(body).map_or(body.trim().to_string(), |v| v.to_string());
    (code, body)
}

/// A fixed script under `--client-cert-auth`, run on one member at `ep`
/// with etcdctl 3.5.1 and curl: users set up, auth enabled, then calls
/// with no token or password, each as a client certificate: alice's (CN of
/// a user with readwrite on `/app/`), mallory's (CN of no user), root's,
/// one without a CN; a token beside a certificate; the gateway.
fn cn_script(ep: &str, pki: &Pki, scratch: &Path) -> Steps {
    let mut out = Steps::new();
    let mut step = |name: &str, who: &str, args: &[&str]| {
        let o = ctl(true, ep, &pki.client_args(who), args);
        out.push(format!("{name}: {}", outcome(&o).replace(ep, "<endpoint>")));
    };
    for (name, args) in [
        ("user add root", &["user", "add", "root:rootpw"][..]),
        ("grant root", &["user", "grant-role", "root", "root"]),
        ("role add app", &["role", "add", "app"]),
        ("grant rw", &["role", "grant-permission", "app", "readwrite", "/app/", "--prefix"]),
        ("user add alice", &["user", "add", "alice:alicepw"]),
        ("grant-role alice", &["user", "grant-role", "alice", "app"]),
        ("seed", &["put", "/other", "seed"]),
        ("auth enable", &["auth", "enable"]),
    ] {
        step(name, "client", args);
    }
    let snap = scratch.join(format!("cn-{}.db", free_port()));
    let snap = snap.to_string_lossy();
    let calls: [(&str, &[&str]); 21] = [
        ("put", &["put", "/app/x", "1"]),
        ("get", &["get", "/app/x"]),
        ("put outside", &["put", "/other", "1"]),
        ("get outside", &["get", "/other"]),
        ("del outside", &["del", "/other"]),
        ("txn outside", &["txn"]),
        ("watch outside", &["watch", "/other"]),
        ("member list", &["member", "list"]),
        ("member add", &["member", "add", "x", "--peer-urls=http://127.0.0.1:1"]),
        ("status", &["endpoint", "status"]),
        ("hashkv", &["endpoint", "hashkv"]),
        ("defrag", &["defrag"]),
        ("snapshot", &["snapshot", "save", &snap]),
        ("alarm list", &["alarm", "list"]),
        ("user list", &["user", "list"]),
        ("user get", &["user", "get", "alice"]),
        ("role list", &["role", "list"]),
        ("auth status", &["auth", "status"]),
        ("user add", &["user", "add", "bob:x"]),
        ("role add", &["role", "add", "x"]),
        ("auth disable", &["auth", "disable"]),
    ];
    // (A certificate without a CN is left out here: etcd 3.5.1 takes it
    // for a user named "" that does not exist, raft-kv for no user; both
    // refuse it, with "permission denied" and "user name is empty".)
    for who in ["client", "mallory"] {
        for (name, args) in calls {
            // txn reads its operations from stdin: a write outside /app/.
            let stdin = (name == "txn outside").then_some("\n\nput /other 2\n\n\n");
            let o = ctl_in(ep, &pki.client_args(who), args, stdin);
            out.push(format!("{who} {name}: {}", outcome(&o).replace(ep, "<endpoint>")));
        }
    }
    let mut step = |name: &str, who: &str, args: &[&str]| {
        let o = ctl(true, ep, &pki.client_args(who), args);
        out.push(format!("{name}: {}", outcome(&o).replace(ep, "<endpoint>")));
    };
    step("root user list", "root", &["user", "list"]);
    step("root get outside", "root", &["get", "/other"]);
    // A token (or a password) wins over the certificate.
    step("alice cert, root password", "client", &["--user", "root:rootpw", "user", "list"]);
    step("mallory cert, alice password", "mallory", &["--user", "alice:alicepw", "put", "/app/m", "1"]);
    step("alice cert, wrong password", "client", &["--user", "alice:wrong", "get", "/app/x"]);
    // The gateway takes no CN for the user: a certificate with one is
    // refused, whatever token comes with it; one without a CN signs in.
    let read = format!(r#"{{"key":"{}"}}"#, b64("/app/x"));
    let (code, body) =
        gw_as(pki, ep, "nocn", "/v3/auth/authenticate", Some(r#"{"name":"alice","password":"alicepw"}"#), None);
    out.push(format!("gw nocn authenticate: {code}"));
    let token = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_string))
        .unwrap_or_default();
    for (name, who, token) in [
        ("gw alice cert", "client", None),
        ("gw alice cert with token", "client", Some(token.as_str())),
        ("gw mallory cert", "mallory", None),
        ("gw nocn cert", "nocn", None),
        ("gw nocn cert with token", "nocn", Some(token.as_str())),
    ] {
        let (code, body) = gw_as(pki, ep, who, "/v3/kv/range", Some(&read), token);
        out.push(format!("{name}: {code} {}", if code == 200 { "" } else { &body }));
    }
    let (code, _) = gw_as(pki, ep, "client", "/health", None, None);
    out.push(format!("gw alice cert /health: {code}"));
    out
}

/// Under `--client-cert-auth` with auth enabled the client certificate's
/// CN is the user when a request carries no token: alice's certificate
/// alone puts in `/app/` and is refused elsewhere with `etcdserver:
/// permission denied`; a certificate naming no user, one without a CN, and
/// the gateway (which never takes a CN as the user) get what etcd 3.5.1
/// gives, call for call, against a real etcd 3.5.1 over the same PKI.
#[test]
fn the_client_certificate_cn_is_the_user_as_in_etcd_3_5_1() {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(pki_dir.path());
    let good = pki.client_args("client");
    let client_tls = [
        format!("--cert-file={}", pki.path("member.pem")),
        format!("--key-file={}", pki.path("member.key")),
        format!("--trusted-ca-file={}", pki.path("ca.pem")),
        "--client-cert-auth".to_string(),
    ];
    let etcd_flags: Vec<&str> = client_tls.iter().map(String::as_str).collect();
    let ready = |url: &str| {
        let out = curl(&good, &format!("{url}/health"), None);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\"true\"")
    };
    let etcd = RealEtcd::start_temp_as("https", &etcd_flags, &ready);
    let flags = [&client_tls[..], &["--peer-auto-tls".to_string(), "--bcrypt-cost=4".to_string()]].concat();
    let c = tls_cluster(1, &flags, &good);
    let ep = c.members[0].client_url.as_str();
    let (want, got) = std::thread::scope(|s| {
        let want = s.spawn(|| cn_script(&etcd.client_url, &pki, pki_dir.path()));
        let got = cn_script(ep, &pki, pki_dir.path());
        (want.join().expect("etcd's script"), got)
    });
    let diff: Vec<String> =
        want.iter().zip(&got).filter(|(w, g)| w != g).map(|(w, g)| format!("etcd:    {w}\nraft-kv: {g}")).collect();
    assert!(diff.is_empty() && want.len() == got.len(), "{}\n\nall of etcd's:\n{}", diff.join("\n"), want.join("\n"));
    // What the issue asks of alice's certificate alone, and of a CN that
    // names no user.
    for line in [
        "client put: ok",
        "client put outside: Error: etcdserver: permission denied",
        "mallory put: Error: etcdserver: permission denied",
        "mallory user list: Error: etcdserver: user name not found",
    ] {
        assert!(got.iter().any(|g| g == line), "missing {line:?} in:\n{}", got.join("\n"));
    }
    let alice = ctl_ok(true, ep, &good, &["get", "/app/x", "--print-value-only"]);
    assert_eq!(alice.trim(), "1");

    // Where raft-kv is stricter than 3.5.1: a certificate naming no user
    // may not grant leases or compact (etcd 3.5.1 checks neither).
    let mallory = pki.client_args("mallory");
    for args in [&["lease", "grant", "60"][..], &["compaction", "1"]] {
        let o = ctl(true, &etcd.client_url, &mallory, args);
        assert!(o.status.success(), "etcd 3.5.1 {args:?}: {}", text(&o));
        let o = ctl(true, ep, &mallory, args);
        assert!(!o.status.success() && text(&o).contains("etcdserver: permission denied"), "{args:?}: {}", text(&o));
    }
    // A certificate without a CN is nobody to raft-kv.
    let o = ctl(true, ep, &pki.client_args("nocn"), &["put", "/app/n", "1"]);
    assert_eq!(outcome(&o), "Error: etcdserver: user name is empty");
}

/// Dials the peer port at `addr` (`host:port`) over TLS as certificate
/// `who` (trusting the test CA), and sends a raft-kv handshake inside: the
/// acceptor's two-byte verdict when the TLS handshake passed (the
/// handshake decoder was reached), else the TLS error.
fn dial_peer(pki: &Pki, addr: &str, who: &str) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(pki.path("ca.pem")).expect("ca")).expect("root");
    let certs = vec![CertificateDer::from_pem_file(pki.path(&format!("{who}.pem"))).expect("cert")];
    let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{who}.key"))).expect("key");
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("client config");
    let conn = rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("127.0.0.1").expect("name"))
        .expect("connection");
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    sock.set_write_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let hs = transport_tcp::handshake::Handshake::new(transport_tcp::handshake::Lane::Raft, 1, 99, 1);
    tls.write_all(&hs.encode()).and_then(|()| tls.flush()).map_err(|e| e.to_string())?;
    let mut reply = [0u8; transport_tcp::handshake::REPLY_LEN];
    tls.read_exact(&mut reply).map_err(|e| e.to_string())?;
    Ok(reply.to_vec())
}

/// A member's counter from its `/metrics` (0 when absent).
fn metric(client_args: &[String], m: &Member, name: &str) -> f64 {
    let text =
        String::from_utf8_lossy(&curl(client_args, &format!("{}/metrics", m.client_url), None).stdout).to_string();
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

/// The peer port refuses, in the TLS handshake, a member certificate that
/// expired, one `--peer-crl-file` revokes, and one not valid for
/// `--peer-cert-allowed-hostname`: no raft-kv handshake verdict comes back
/// (the bytes sent inside TLS never reach the handshake or frame decoders),
/// the refusal is logged, no raft message is received, and the member keeps
/// serving and still accepts a good certificate.
#[test]
fn peer_port_refuses_expired_revoked_and_misnamed_certificates_before_the_decoders() {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(pki_dir.path());
    let good = pki.client_args("client");
    let (cert, key, ca) = (pki.path("member.pem"), pki.path("member.key"), pki.path("ca.pem"));
    let flags: Vec<String> = [
        ("--cert-file", cert.as_str()),
        ("--key-file", key.as_str()),
        ("--trusted-ca-file", ca.as_str()),
        ("--peer-cert-file", cert.as_str()),
        ("--peer-key-file", key.as_str()),
        ("--peer-trusted-ca-file", ca.as_str()),
        ("--peer-crl-file", &pki.path("crl.pem")),
        ("--peer-cert-allowed-hostname", "localhost"),
    ]
    .iter()
    .map(|(f, v)| format!("{f}={v}"))
    .chain(["--peer-client-cert-auth".to_string()])
    .collect();
    let c = tls_cluster(1, &flags, &good);
    let m = &c.members[0];
    let peer = m.peer_url.replace("https://", "");
    // The member's own certificate (valid for localhost) passes TLS and
    // gets a verdict from the handshake decoder.
    let verdict = dial_peer(&pki, &peer, "member");
    assert!(matches!(&verdict, Ok(r) if r.len() == 2), "a good certificate got no verdict: {verdict:?}");
    for (who, alert) in [
        ("peer-expired", "CertificateExpired"),
        ("peer-revoked", "CertificateRevoked"),
        ("peer-elsewhere", "BadCertificate"),
    ] {
        let refused = dial_peer(&pki, &peer, who);
        match &refused {
            Err(e) => assert!(e.contains(alert), "{who}: refused with {e:?}, wanted the alert {alert:?}"),
            Ok(reply) => panic!("{who} reached the handshake decoder: verdict {reply:?}"),
        }
    }
    // One TLS refusal logged per bad certificate (the member logs it once
    // the connection is closed, maybe after the dialer saw the alert).
    let deadline = Instant::now() + Duration::from_secs(15);
    let log = loop {
        let log = std::fs::read_to_string(m.dir.with_extension("log")).expect("log");
        let logged = log.matches("TLS handshake failed").count() >= 3 && log.contains("refusing peer handshake");
        if logged || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let rejected: Vec<&str> =
        log.lines().filter(|l| l.contains("rejected peer connection") && l.contains("TLS handshake failed")).collect();
    assert_eq!(rejected.len(), 3, "one TLS refusal per bad certificate:\n{log}");
    for why in ["certificate expired", "Revoked", "not valid for name \"localhost\""] {
        assert!(rejected.iter().any(|l| l.contains(why)), "no refusal for {why:?} in:\n{}", rejected.join("\n"));
    }
    assert_eq!(log.matches("refusing peer handshake").count(), 1, "only the good dial was decoded:\n{log}");
    assert_eq!(metric(&good, m, "raft_kv_transport_messages_received_total"), 0.0);
    // Still serving, and still taking a good certificate.
    ctl_ok(true, &m.client_url, &good, &["put", "/peer/after", "still serving"]);
    assert!(matches!(dial_peer(&pki, &peer, "member"), Ok(r) if r.len() == 2));
}

/// `--client-cert-allowed-hostname`: a client certificate chaining to the
/// CA but not valid for that host is refused at the TLS handshake.
/// `--self-signed-cert-validity`: the auto-TLS certificate is valid from
/// its making for that many years of 365 days.
#[test]
fn client_cert_allowed_hostname_and_self_signed_cert_validity_follow_the_flags() {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(pki_dir.path());
    let good = pki.client_args("client");
    let flags = [
        format!("--cert-file={}", pki.path("member.pem")),
        format!("--key-file={}", pki.path("member.key")),
        format!("--trusted-ca-file={}", pki.path("ca.pem")),
        "--client-cert-auth".to_string(),
        "--client-cert-allowed-hostname=localhost".to_string(),
        "--peer-auto-tls".to_string(),
        "--self-signed-cert-validity=2".to_string(),
    ];
    let c = tls_cluster(1, &flags, &good);
    let m = &c.members[0];
    ctl_ok(true, &m.client_url, &good, &["put", "/host", "ok"]);
    // Same CA, valid for n9.example only.
    let elsewhere = pki.client_args("peer-elsewhere");
    let out = curl(&elsewhere, &format!("{}/health", m.client_url), None);
    assert!(!out.status.success(), "a certificate for another host was served: {}", text(&out));
    let out = ctl(true, &m.client_url, &elsewhere, &["--command-timeout=4s", "get", "/host"]);
    assert!(!out.status.success(), "etcdctl with a certificate for another host was served: {}", text(&out));

    let pem = std::fs::read(m.dir.join("fixtures/peer/cert.pem")).expect("auto TLS certificate");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("pem");
    let cert = pem.parse_x509().expect("certificate");
    let (from, to) = (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    assert!((now - 600..=now).contains(&from), "valid from {from}, not from its making ({now})");
    assert_eq!(to - from, 2 * 365 * 86_400, "not valid for 2 years");
}

/// Token shapes in `text`: JWTs (`eyJ...`, a JSON header in base64) and
/// etcd simple tokens (16 random letters and digits, `.`, a counter).
fn token_shapes(text: &str) -> Vec<String> {
    let mut found: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_'))
        .filter(|w| w.starts_with("eyJ") && w.matches('.').count() >= 2)
        .map(str::to_string)
        .collect();
    for w in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.')) {
        if let Some((random, n)) = w.split_once('.') {
            let mixed =
                random.chars().any(|c| c.is_ascii_uppercase()) && random.chars().any(|c| c.is_ascii_lowercase());
            let alnum = random.len() == 16 && random.chars().all(|c| c.is_ascii_alphanumeric());
            if alnum && mixed && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) {
                found.push(w.to_string());
            }
        }
    }
    found
}

/// The base64 lines of the PEM private key in `path` (each unique to it).
fn key_lines(path: &Path) -> Vec<String> {
    let pem = std::fs::read_to_string(path).expect("key");
    pem.lines().filter(|l| !l.starts_with("-----") && l.len() >= 32).map(str::to_string).collect()
}

/// No secret reaches a member's log (at debug level) or its `/metrics`
/// after a session over mutual TLS on both ports that signs in with
/// passwords (etcdctl and the gateway), uses the tokens (simple, then
/// JWT), changes a password, fails a sign-in and sends a forged token: no
/// password, bcrypt hash, token (those seen, and anything shaped like one)
/// or line of the member's or the JWT's private key.
#[test]
fn no_secret_reaches_logs_or_metrics_under_tls_and_auth() {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(pki_dir.path());
    let good = pki.client_args("client");
    let jwt = jwt_spec(pki_dir.path(), "5m");
    for (kind, tokens) in [("simple", "simple"), ("jwt", jwt.as_str())] {
        let (root_pw, alice_pw, new_pw, wrong_pw) = ("R00t-Pw-x1", "Al1ce-Pw-x2", "Al1ce-N3w-x3", "Wr0ng-Pw-x4");
        let flags = [pki.member_flags(), vec!["--bcrypt-cost=4".into(), format!("--auth-token={tokens}")]].concat();
        let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        let c = Cluster::start_as(3, "https", &flag_refs, &[("RUST_LOG", "debug")], &|m| tls_healthy(m, &good));
        wait_published(&c, &good);
        let eps = c.endpoints();
        let ep = c.members[1].client_url.as_str();
        for args in [
            &["user", "add", &format!("root:{root_pw}")][..],
            &["role", "add", "app"],
            &["role", "grant-permission", "app", "readwrite", "/app/", "--prefix"],
            &["user", "add", &format!("alice:{alice_pw}")],
            &["user", "grant-role", "alice", "app"],
            &["auth", "enable"],
        ] {
            ctl_ok(true, &eps, &good, args);
        }
        // etcdctl signs in (a token each time) and uses its tokens.
        let alice = format!("alice:{alice_pw}");
        ctl_ok(true, &eps, &good, &["--user", &alice, "put", "/app/a", "1"]);
        ctl_ok(false, ep, &good, &["--user", &alice, "get", "/app/a"]);
        let root = format!("root:{root_pw}");
        let o = ctl_in(ep, &good, &["--user", &root, "user", "passwd", "alice", "--interactive=false"], Some(new_pw));
        assert!(o.status.success(), "{}", text(&o));
        let o = ctl(true, ep, &good, &["--user", &format!("alice:{wrong_pw}"), "get", "/app/a"]);
        assert!(text(&o).contains("authentication failed"), "{}", text(&o));
        // The gateway (a certificate without a CN, as etcd's wants): sign
        // in, use the token on every member, then a forged one.
        let signin = format!(r#"{{"name":"alice","password":"{new_pw}"}}"#);
        let (code, body) = gw_as(&pki, ep, "nocn", "/v3/auth/authenticate", Some(&signin), None);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        let token = v["token"].as_str().expect("token").to_string();
        let put = format!(r#"{{"key":"{}","value":"{}"}}"#, b64("/app/gw"), b64("v"));
        for m in &c.members {
            let (code, body) = gw_as(&pki, &m.client_url, "nocn", "/v3/kv/put", Some(&put), Some(&token));
            assert_eq!(code, 200, "{body}");
        }
        let forged = format!("{}x", &token[..token.len() - 1]);
        let (code, _) = gw_as(&pki, ep, "nocn", "/v3/kv/put", Some(&put), Some(&forged));
        assert_eq!(code, 401);

        let mut secrets: Vec<String> =
            [root_pw, alice_pw, new_pw, wrong_pw, "$2a$", "$2b$", "$2y$", "PRIVATE KEY"].map(String::from).to_vec();
        secrets.extend([token.clone(), forged.clone()]);
        // The random part of a simple token, the signature of a JWT.
        secrets.extend(token.split('.').filter(|p| p.len() >= 16).map(str::to_string));
        secrets.extend(key_lines(&pki.dir.join("member.key")));
        secrets.extend(key_lines(&pki_dir.path().join("jwt.key")));
        for m in &c.members {
            let log = std::fs::read_to_string(m.dir.with_extension("log")).expect("log");
            assert!(log.lines().count() > 50 && log.contains("DEBUG"), "{} logged too little to tell", m.name);
            let metrics = text(&curl(&good, &format!("{}/metrics", m.client_url), None));
            assert!(metrics.contains("etcd_server_id"), "no metrics from {}: {metrics}", m.name);
            for (what, text) in [("log", &log), ("/metrics", &metrics)] {
                for s in &secrets {
                    assert!(!text.contains(s.as_str()), "{kind}: {}'s {what} holds the secret {s:?}", m.name);
                }
                let shapes = token_shapes(text);
                assert!(shapes.is_empty(), "{kind}: {}'s {what} holds tokens {shapes:?}", m.name);
            }
        }
    }
}
