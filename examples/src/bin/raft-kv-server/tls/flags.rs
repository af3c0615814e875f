//! etcd's TLS flags, and their value spellings (`TLS1.2`, Go cipher-suite
//! names) turned into rustls settings.

use anyhow::{bail, Result};
use clap::Args;
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedCipherSuite, SupportedProtocolVersion};

/// The client (`--cert-file`, ...) and peer (`--peer-cert-file`, ...) TLS
/// flags, named and meant as etcd's.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsFlags {
    /// Client server TLS certificate (PEM); serves `https://` client URLs.
    #[arg(long, env = "RAFT_KV_CERT_FILE")]
    pub cert_file: Option<String>,
    /// Client server TLS key (PEM).
    #[arg(long, env = "RAFT_KV_KEY_FILE")]
    pub key_file: Option<String>,
    /// CA bundle (PEM) that client certificates must chain to; as with
    /// etcd, setting it requires client certificates.
    #[arg(long, env = "RAFT_KV_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<String>,
    /// Require every client to present a certificate signed by
    /// `--trusted-ca-file`; its CN is the user under authentication.
    #[arg(long, env = "RAFT_KV_CLIENT_CERT_AUTH")]
    pub client_cert_auth: bool,
    /// Client TLS with a self-signed certificate, made on the first start
    /// and kept in `<data-dir>/fixtures/client`.
    #[arg(long, env = "RAFT_KV_AUTO_TLS")]
    pub auto_tls: bool,
    /// Certificate revocation list (PEM) checked on client certificates.
    #[arg(long, env = "RAFT_KV_CLIENT_CRL_FILE")]
    pub client_crl_file: Option<String>,
    /// Accept only client certificates valid for this host name (a SAN);
    /// needs `--trusted-ca-file`.
    #[arg(long, env = "RAFT_KV_CLIENT_CERT_ALLOWED_HOSTNAME")]
    pub client_cert_allowed_hostname: Option<String>,
    /// Peer TLS certificate (PEM), served and presented to other members.
    #[arg(long, env = "RAFT_KV_PEER_CERT_FILE")]
    pub peer_cert_file: Option<String>,
    /// Peer TLS key (PEM).
    #[arg(long, env = "RAFT_KV_PEER_KEY_FILE")]
    pub peer_key_file: Option<String>,
    /// CA bundle (PEM) that other members' certificates must chain to (and
    /// requires members dialing in to present one).
    #[arg(long, env = "RAFT_KV_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<String>,
    /// Require members dialing in to present a certificate signed by
    /// `--peer-trusted-ca-file`.
    #[arg(long, env = "RAFT_KV_PEER_CLIENT_CERT_AUTH")]
    pub peer_client_cert_auth: bool,
    /// Peer TLS with a self-signed certificate, made on the first start and
    /// kept in `<data-dir>/fixtures/peer` (members do not verify each other).
    #[arg(long, env = "RAFT_KV_PEER_AUTO_TLS")]
    pub peer_auto_tls: bool,
    /// Certificate revocation list (PEM) checked on peer certificates.
    #[arg(long, env = "RAFT_KV_PEER_CRL_FILE")]
    pub peer_crl_file: Option<String>,
    /// Accept only peer certificates with this common name.
    #[arg(long, env = "RAFT_KV_PEER_CERT_ALLOWED_CN")]
    pub peer_cert_allowed_cn: Option<String>,
    /// Accept only peer certificates valid for this host name (a SAN).
    #[arg(long, env = "RAFT_KV_PEER_CERT_ALLOWED_HOSTNAME")]
    pub peer_cert_allowed_hostname: Option<String>,
    /// Validity of the certificates `--auto-tls` and `--peer-auto-tls`
    /// make, in years (365 days each) from their making; at least 1.
    #[arg(long, env = "RAFT_KV_SELF_SIGNED_CERT_VALIDITY", default_value_t = 1)]
    pub self_signed_cert_validity: u32,
    /// Lowest TLS version served: TLS1.2 or TLS1.3 (TLS1.0 and TLS1.1 are
    /// taken as TLS1.2: rustls does not speak them).
    #[arg(long, env = "RAFT_KV_TLS_MIN_VERSION", default_value = "TLS1.2")]
    pub tls_min_version: String,
    /// Highest TLS version served (empty: the highest there is).
    #[arg(long, env = "RAFT_KV_TLS_MAX_VERSION", default_value = "")]
    pub tls_max_version: String,
    /// TLS 1.2 cipher suites allowed, by their Go names, comma-separated
    /// (default: every suite rustls implements). TLS 1.3's are always on.
    #[arg(long, env = "RAFT_KV_CIPHER_SUITES", value_delimiter = ',')]
    pub cipher_suites: Vec<String>,
}

/// A TLS version as etcd spells it, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

fn version(flag: &str, s: &str) -> Result<Option<Version>> {
    Ok(Some(match s {
        "" => return Ok(None),
        "TLS1.0" => Version::Tls10,
        "TLS1.1" => Version::Tls11,
        "TLS1.2" => Version::Tls12,
        "TLS1.3" => Version::Tls13,
        _ => bail!("--{flag} {s:?}: unexpected TLS version (use TLS1.0, TLS1.1, TLS1.2 or TLS1.3)"),
    }))
}

/// The protocol versions between `--tls-min-version` and
/// `--tls-max-version`.
pub fn versions(flags: &TlsFlags) -> Result<Vec<&'static SupportedProtocolVersion>> {
    let min = version("tls-min-version", &flags.tls_min_version)?.unwrap_or(Version::Tls12);
    let max = version("tls-max-version", &flags.tls_max_version)?.unwrap_or(Version::Tls13);
    if max < min {
        bail!("--tls-max-version {} is lower than --tls-min-version {}", flags.tls_max_version, flags.tls_min_version);
    }
    if max < Version::Tls12 {
        bail!("--tls-max-version {}: this server speaks TLS1.2 and TLS1.3 only", flags.tls_max_version);
    }
    if min < Version::Tls12 {
        tracing::warn!(min = %flags.tls_min_version, "TLS1.0 and TLS1.1 are not supported; the lowest version served is TLS1.2");
    }
    if !flags.cipher_suites.is_empty() && min == Version::Tls13 {
        bail!("--cipher-suites cannot be set when only TLS1.3 is enabled (its suites are fixed)");
    }
    let mut out = Vec::new();
    if min <= Version::Tls12 {
        out.push(&rustls::version::TLS12);
    }
    if max == Version::Tls13 {
        out.push(&rustls::version::TLS13);
    }
    Ok(out)
}

/// rustls's name of a suite Go names differently: Go's short aliases of
/// the ChaCha20 suites.
fn canonical(go: &str) -> &str {
    match go {
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        other => other,
    }
}

/// The name of a suite as Go and etcd spell it (rustls's TLS 1.3 names
/// carry a `TLS13_` prefix Go's lack).
fn go_name(suite: CipherSuite) -> String {
    let name = format!("{suite:?}");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// The ring provider with `--cipher-suites` applied: every TLS 1.3 suite,
/// and of TLS 1.2's the ones named (all when none are).
pub fn provider(flags: &TlsFlags) -> Result<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    if flags.cipher_suites.is_empty() {
        return Ok(provider);
    }
    let all: Vec<SupportedCipherSuite> = provider.cipher_suites.clone();
    let mut chosen: Vec<SupportedCipherSuite> =
        all.iter().filter(|s| matches!(s, SupportedCipherSuite::Tls13(_))).copied().collect();
    for name in flags.cipher_suites.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let Some(suite) = all.iter().find(|s| go_name(s.suite()) == canonical(name)) else {
            let known: Vec<String> = all.iter().map(|s| go_name(s.suite())).collect();
            bail!("unexpected TLS cipher suite {name:?} (supported: {})", known.join(", "));
        };
        if !chosen.iter().any(|c| c.suite() == suite.suite()) {
            chosen.push(*suite);
        }
    }
    provider.cipher_suites = chosen;
    Ok(provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(min: &str, max: &str, suites: &[&str]) -> TlsFlags {
        TlsFlags {
            tls_min_version: min.into(),
            tls_max_version: max.into(),
            cipher_suites: suites.iter().map(|s| s.to_string()).collect(),
            ..TlsFlags::default()
        }
    }

    #[test]
    fn version_ranges() {
        assert_eq!(versions(&flags("TLS1.2", "", &[])).unwrap().len(), 2);
        assert_eq!(versions(&flags("TLS1.3", "", &[])).unwrap(), vec![&rustls::version::TLS13]);
        assert_eq!(versions(&flags("TLS1.0", "TLS1.2", &[])).unwrap(), vec![&rustls::version::TLS12]);
        assert!(versions(&flags("TLS1.3", "TLS1.2", &[])).is_err());
        assert!(versions(&flags("TLS1.0", "TLS1.1", &[])).is_err());
        assert!(versions(&flags("tls1.2", "", &[])).is_err());
        assert!(versions(&flags("TLS1.3", "", &["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])).is_err());
    }

    #[test]
    fn cipher_suites_by_go_name() {
        let p = provider(&flags("TLS1.2", "", &["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"])).unwrap();
        let tls12: Vec<String> = p
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
            .map(|s| go_name(s.suite()))
            .collect();
        assert_eq!(tls12, vec!["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"]);
        assert!(p.cipher_suites.iter().any(|s| go_name(s.suite()) == "TLS_AES_128_GCM_SHA256"));
        let err = provider(&flags("TLS1.2", "", &["TLS_RSA_WITH_RC4_128_SHA"])).unwrap_err();
        assert!(err.to_string().contains("unexpected TLS cipher suite"), "{err}");
    }
}
