//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate made at
//! start, for the hosts of the member's URLs (kept in memory: clients of
//! such a member do not verify it anyway, as with etcd).

use anyhow::{Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed certificate (valid for `hosts`, IPs or names) and its key.
pub fn self_signed(hosts: Vec<String>) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let mut hosts = hosts;
    hosts.sort();
    hosts.dedup();
    let made = rcgen::generate_simple_self_signed(hosts).context("cannot make a self-signed certificate")?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
    Ok((vec![made.cert.der().clone()], key))
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
    use super::*;

    #[test]
    fn hosts_of_urls() {
        let urls = ["https://127.0.0.1:2379".to_string(), "https://n1:2380/".into(), "https://[::1]:1".into()];
        assert_eq!(hosts(&urls), vec!["127.0.0.1", "n1", "::1"]);
        assert_eq!(self_signed(hosts(&urls)).unwrap().0.len(), 1);
    }
}
