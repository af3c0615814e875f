//! Certificates, keys and revocation lists read from PEM files. Errors name
//! the file and the flag, never the contents (a key is a secret).

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::RootCertStore;

/// Every certificate in `path` (a chain, leaf first).
pub fn certs(flag: &str, path: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("--{flag} {path}: cannot read PEM certificates"))?;
    if certs.is_empty() {
        bail!("--{flag} {path}: no certificate in the file");
    }
    Ok(certs)
}

/// The private key in `path` (PKCS#8, PKCS#1 or SEC1).
pub fn key(flag: &str, path: &str) -> Result<PrivateKeyDer<'static>> {
    // The pem error says what was malformed, not the key's bytes.
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| anyhow::anyhow!("--{flag} {path}: cannot read a PEM private key: {e}"))
}

/// The CA certificates in `path` as trust anchors.
pub fn roots(flag: &str, path: &str) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in certs(flag, path)? {
        store.add(cert).with_context(|| format!("--{flag} {path}: not a usable CA certificate"))?;
    }
    Ok(store)
}

/// The revocation lists in `path`.
pub fn crls(flag: &str, path: &str) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let crls = CertificateRevocationListDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("--{flag} {path}: cannot read PEM revocation lists"))?;
    if crls.is_empty() {
        bail!("--{flag} {path}: no revocation list in the file");
    }
    Ok(crls)
}
