//! Certificate checks rustls's WebPKI verifiers do not make:
//! `--peer-cert-allowed-cn` / `--peer-cert-allowed-hostname` on top of a
//! verified chain, and the no-check server verifier of `--peer-auto-tls`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// The subject common name of a DER certificate.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

/// A client-certificate verifier that, once `inner` has verified the chain,
/// also requires the leaf's CN to be `cn` and/or the leaf to be valid for
/// `hostname` (etcd's allowed CN and hostname).
#[derive(Debug)]
pub struct AllowedNames {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub cn: Option<String>,
    pub hostname: Option<ServerName<'static>>,
}

impl ClientCertVerifier for AllowedNames {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        // Either refusal reaches the peer as a `bad_certificate` alert, as
        // Go's TLS sends when etcd's own check of the name fails.
        if let Some(cn) = &self.cn {
            let presented = common_name(end_entity);
            if presented.as_deref() != Some(cn.as_str()) {
                tracing::warn!(allowed = %cn, ?presented, "a certificate's CN is not the allowed one");
                return Err(Error::InvalidCertificate(CertificateError::NotValidForName));
            }
        }
        if let Some(host) = &self.hostname {
            // rustls's error names the host wanted and those presented.
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, host)?;
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any server certificate (but still checks the handshake's
/// signatures): the dialer of `--peer-auto-tls` without a trusted CA, as
/// etcd skips verification there.
#[derive(Debug)]
pub struct AnyServerCert(pub WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;

    fn checked(cn: Option<&str>, hostname: Option<&str>, cert_cn: &str, cert_san: &str) -> Result<(), Error> {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca.self_signed(&ca_key).unwrap();
        let mut leaf = CertificateParams::new(vec![cert_san.to_string()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, cert_cn);
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let leaf = leaf.signed_by(&KeyPair::generate().unwrap(), &ca, &ca_key).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
        let v = AllowedNames {
            inner,
            cn: cn.map(str::to_string),
            hostname: hostname.map(|h| ServerName::try_from(h.to_string()).unwrap()),
        };
        assert_eq!(common_name(leaf.der()).as_deref(), Some(cert_cn));
        v.verify_client_cert(leaf.der(), &[], UnixTime::now()).map(|_| ())
    }

    #[test]
    fn allowed_cn_and_hostname() {
        assert!(checked(Some("member"), None, "member", "n1").is_ok());
        assert!(checked(Some("member"), None, "intruder", "n1").is_err());
        assert!(checked(None, Some("n1"), "x", "n1").is_ok());
        assert!(checked(None, Some("n1"), "x", "n2").is_err());
        assert!(checked(Some("member"), Some("n1"), "member", "n2").is_err());
    }
}
