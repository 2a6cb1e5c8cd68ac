//! Certificate verifiers for delivery, one per TLS policy.
//!
//! - `pkix`: the public roots (plus configured trust anchors) and the host name: used for MTA-STS
//!   `enforce` destinations, the smarthost, and the `verify` fallback.
//! - `dane`: the destination's DNSSEC-validated TLSA records (RFC 7672): DANE-EE matches the
//!   server's own certificate, DANE-TA makes the matched certificate the only trust anchor.
//! - `encrypt_only`: any certificate, but the handshake signature is still checked, so the
//!   session is encrypted to whoever holds the key (the `encrypt-only` fallback).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::dane::{Tlsa, TlsaUsage};

/// Public roots plus extra anchors.
pub fn pkix(extra: &[CertificateDer<'static>]) -> Arc<dyn ServerCertVerifier> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra {
        let _ = roots.add(cert.clone());
    }
    with_roots(roots)
}

fn with_roots(roots: RootCertStore) -> Arc<dyn ServerCertVerifier> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
        .build()
        .expect("a non-empty root store builds a verifier")
}

/// Encryption without authentication.
pub fn encrypt_only() -> Arc<dyn ServerCertVerifier> {
    Arc::new(EncryptOnly(crate::tls::provider()))
}

/// DANE verification against usable TLSA records.
pub fn dane(records: Vec<Tlsa>) -> Arc<dyn ServerCertVerifier> {
    Arc::new(Dane {
        records,
        provider: crate::tls::provider(),
    })
}

#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[derive(Debug)]
struct Dane {
    records: Vec<Tlsa>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Dane {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // DANE-EE: the server's own certificate matches; names and dates are not checked
        // (RFC 7672 section 3.1.1).
        if self
            .records
            .iter()
            .any(|r| r.usage == TlsaUsage::DaneEe && r.matches(end_entity))
        {
            return Ok(ServerCertVerified::assertion());
        }
        // DANE-TA: a certificate of the presented chain matches and becomes the trust anchor
        // for an ordinary chain and name check.
        for anchor in intermediates {
            if self
                .records
                .iter()
                .any(|r| r.usage == TlsaUsage::DaneTa && r.matches(anchor))
            {
                let mut roots = RootCertStore::empty();
                roots.add(anchor.clone().into_owned())?;
                return with_roots(roots).verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp,
                    now,
                );
            }
        }
        Err(Error::General(
            "no TLSA record matches the server's certificate chain".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
