//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate for the
//! hosts of the member's URLs, kept as etcd 3.5 keeps it: written once to
//! `<data-dir>/fixtures/client` (or `peer`) as `cert.pem` and `key.pem`,
//! and reused as it is on every later start (clients of such a member do not
//! verify it anyway).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::pem;

/// A certificate chain and its key.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The auto-TLS identity kept in `dir`: read back when `cert.pem` and
/// `key.pem` are both there, else made for `hosts` and written there
/// (directory 0700, key 0600, certificate 0644, as etcd).
pub fn kept_in(dir: &Path, hosts: Vec<String>) -> Result<Identity> {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_path.exists() && key_path.exists() {
        let (cert, key) = (cert_path.to_string_lossy(), key_path.to_string_lossy());
        tracing::info!(path = %cert, "reusing the auto TLS certificate");
        return Ok((pem::certs("auto-tls", &cert)?, pem::key("auto-tls", &key)?));
    }
    tracing::warn!(hosts = ?hosts, dir = %dir.display(), "automatically generating a self-signed certificate");
    let made = self_signed(hosts)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    write(&cert_path, 0o644, made.cert.pem().as_bytes())?;
    write(&key_path, 0o600, made.key_pair.serialize_pem().as_bytes())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
    Ok((vec![made.cert.der().clone()], key))
}

/// Writes `bytes` to `path` with `mode`, through a temporary file renamed
/// into place (a crash never leaves half a key behind).
fn write(path: &Path, mode: u32, bytes: &[u8]) -> Result<()> {
    let part = path.with_extension("pem.part");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&part)
        .with_context(|| format!("cannot create {}", part.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", part.display()))?;
    fs::rename(&part, path).with_context(|| format!("cannot create {}", path.display()))
}

/// A self-signed certificate valid for `hosts` (IPs or names).
fn self_signed(mut hosts: Vec<String>) -> Result<rcgen::CertifiedKey> {
    hosts.sort();
    hosts.dedup();
    rcgen::generate_simple_self_signed(hosts).context("cannot make a self-signed certificate")
}

/// The hosts of `urls` (`scheme://host:port`), for a certificate's SANs.
pub fn hosts<'a>(urls: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    urls.into_iter()
        .filter_map(|u| {
            let rest = u.split_once("://").map_or(u.as_str(), |(_, r)| r).trim_end_matches('/');
            let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            (!host.is_empty()).then(|| host.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn hosts_of_urls() {
        let urls = ["https://127.0.0.1:2379".to_string(), "https://n1:2380/".into(), "https://[::1]:1".into()];
        assert_eq!(hosts(&urls), vec!["127.0.0.1", "n1", "::1"]);
    }

    #[test]
    fn kept_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("fixtures/client");
        let (first, _) = kept_in(&dir, vec!["127.0.0.1".into()]).unwrap();
        let mode = |p: &str| fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("cert.pem"), mode("key.pem")), (0o644, 0o600));
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        // A later start (even for other hosts) reuses what is there.
        let (again, _) = kept_in(&dir, vec!["10.0.0.1".into()]).unwrap();
        assert_eq!(first, again);
    }
}
