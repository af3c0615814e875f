//! Client and peer TLS end to end (issue 14): real `raft-kv-server`
//! processes with `https://` client and peer URLs and a PKI made here with
//! rcgen (a CA, a member certificate for 127.0.0.1/localhost, a client, a
//! client of another CA, an expired client, a revoked client and its CRL),
//! driven by etcdctl 3.4 and 3.5.1, Python `etcd3` and curl.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
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

    /// Signs a leaf for `sans` with common name `cn` (server and client
    /// use), edited by `edit`; writes `<dir>/<name>.pem` and `.key`.
    fn leaf(&self, dir: &Path, name: &str, cn: &str, edit: impl FnOnce(&mut CertificateParams)) {
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
        p.distinguished_name.push(DnType::CommonName, cn);
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

impl Pki {
    fn new(dir: &Path) -> Pki {
        let ca = Ca::new("raft-kv test CA");
        std::fs::write(dir.join("ca.pem"), ca.cert.pem()).expect("write ca");
        ca.leaf(dir, "member", "member", |_| {});
        ca.leaf(dir, "client", "alice", |_| {});
        ca.leaf(dir, "expired", "alice", |p| {
            p.not_before = rcgen::date_time_ymd(2001, 1, 1);
            p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        });
        ca.leaf(dir, "revoked", "alice", |p| p.serial_number = Some(SerialNumber::from(REVOKED_SERIAL)));
        let crl = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2100, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(REVOKED_SERIAL),
                revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
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
