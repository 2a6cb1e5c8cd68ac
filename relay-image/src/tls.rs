//! The relay's TLS policy towards submitting clients.
//!
//! TLS 1.2 and 1.3 only; AEAD suites with forward secrecy only (AES-GCM and ChaCha20-Poly1305
//! with ECDHE); X25519 and the NIST P-256/P-384 groups. Client certificates are verified against
//! the tenant's CA bundle with `WebPkiClientVerifier`. A client may complete the handshake without
//! a certificate (so that it gets an SMTP reply saying why it is refused), but a certificate that
//! does not chain to the bundle fails the handshake itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mailwarden_relay_config::Tls;
use rustls::crypto::{CryptoProvider, ring};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The only suites the relay negotiates, strongest first.
pub fn cipher_suites() -> Vec<SupportedCipherSuite> {
    use ring::cipher_suite::*;
    vec![
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS13_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ]
}

/// The crypto provider restricted to the policy's suites and groups.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: cipher_suites(),
        kx_groups: vec![
            ring::kx_group::X25519,
            ring::kx_group::SECP256R1,
            ring::kx_group::SECP384R1,
        ],
        ..ring::default_provider()
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read {what} from {path}: {reason}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("no certificate in {0}")]
    Empty(PathBuf),
    #[error("failed to build the TLS configuration: {0}")]
    Build(String),
}

/// Reads certificates from a PEM file.
pub fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Read {
            what,
            path: path.into(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty(path.into()));
    }
    Ok(certs)
}

/// Builds the server configuration from the mounted files.
pub fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certs(&tls.cert_file, "server certificate")?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| TlsError::Read {
        what: "server key",
        path: tls.key_file.clone(),
        reason: e.to_string(),
    })?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&tls.client_ca_file, "client CA bundle")? {
        roots.add(ca).map_err(|e| TlsError::Read {
            what: "client CA bundle",
            path: tls.client_ca_file.clone(),
            reason: e.to_string(),
        })?;
    }

    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Build(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Build(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Build(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The name a client certificate identifies: its first DNS or URI subject alternative name, else
/// its subject common name.
pub fn client_identity(cert: &CertificateDer<'_>) -> String {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(cert.as_ref()) else {
        return "unparsable-certificate".into();
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::URI(n) => return (*n).to_string(),
                _ => {}
            }
        }
    }
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map_or_else(|| cert.subject().to_string(), str::to_string)
}
