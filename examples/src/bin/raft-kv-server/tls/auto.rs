//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate for the
//! hosts of the member's URLs, kept as etcd 3.5 keeps it: written once to
//! `<data-dir>/fixtures/client` (or `peer`) as `cert.pem` and `key.pem`,
//! and reused as it is on every later start (clients of such a member do not
//! verify it anyway).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::pem;

/// A certificate chain and its key.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The auto-TLS identity kept in `dir`: read back when `cert.pem` and
/// `key.pem` are both there, else made for `hosts`, valid for
/// `validity_years` from now, and written there (directory 0700, key 0600,
/// certificate 0644, as etcd).
pub fn kept_in(dir: &Path, hosts: Vec<String>, validity_years: u32) -> Result<Identity> {
    if validity_years == 0 {
        // etcd 3.5's words.
        bail!("--self-signed-cert-validity: selfSignedCertValidity is invalid,it should be greater than 0");
    }
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_path.exists() && key_path.exists() {
        let (cert, key) = (cert_path.to_string_lossy(), key_path.to_string_lossy());
        tracing::info!(path = %cert, "reusing the auto TLS certificate");
        return Ok((pem::certs("auto-tls", &cert)?, pem::key("auto-tls", &key)?));
    }
    tracing::warn!(hosts = ?hosts, dir = %dir.display(), "automatically generating a self-signed certificate");
    let made = self_signed(hosts, validity_years)?;
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

/// A self-signed certificate for `hosts` (IPs or names), valid from now
/// for `years` of 365 days (as etcd counts them).
fn self_signed(mut hosts: Vec<String>, years: u32) -> Result<rcgen::CertifiedKey> {
    hosts.sort();
    hosts.dedup();
    let mut params = rcgen::CertificateParams::new(hosts).context("cannot make a self-signed certificate")?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(365 * i64::from(years));
    let key_pair = rcgen::KeyPair::generate().context("cannot make a key for the self-signed certificate")?;
    let cert = params.self_signed(&key_pair).context("cannot make a self-signed certificate")?;
    Ok(rcgen::CertifiedKey { cert, key_pair })
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
        let (first, _) = kept_in(&dir, vec!["127.0.0.1".into()], 3).unwrap();
        let mode = |p: &str| fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("cert.pem"), mode("key.pem")), (0o644, 0o600));
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        // A later start (even for other hosts) reuses what is there.
        let (again, _) = kept_in(&dir, vec!["10.0.0.1".into()], 1).unwrap();
        assert_eq!(first, again);
    }

    /// `--self-signed-cert-validity`: valid from now for that many years of
    /// 365 days; 0 is refused, as etcd 3.5 refuses it.
    #[test]
    fn validity_in_years() {
        let tmp = tempfile::tempdir().unwrap();
        let (certs, _) = kept_in(&tmp.path().join("c"), vec!["127.0.0.1".into()], 3).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(certs[0].as_ref()).unwrap();
        let (from, to) = (parsed.validity().not_before.timestamp(), parsed.validity().not_after.timestamp());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!((now - 600..=now + 5).contains(&from), "not valid from now: {from} vs {now}");
        assert_eq!(to - from, 3 * 365 * 86_400);
        let e = kept_in(&tmp.path().join("z"), vec!["127.0.0.1".into()], 0).unwrap_err();
        assert!(e.to_string().contains("should be greater than 0"), "{e}");
    }
}
