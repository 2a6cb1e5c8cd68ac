//! TLSA records for SMTP (RFC 6698, RFC 7671, RFC 7672).
//!
//! Only DANE-TA(2) and DANE-EE(3) are usable for SMTP; PKIX-TA(0) and PKIX-EE(1) records are
//! unusable and ignored, as are unknown selectors and matching types. When TLSA records exist but
//! none is usable, delivery still requires TLS but falls back to the configured policy
//! (RFC 7672 section 2.2).

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256, Sha512};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsaUsage {
    DaneTa,
    DaneEe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsaSelector {
    /// The whole certificate.
    Cert,
    /// The SubjectPublicKeyInfo.
    Spki,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsaMatching {
    Full,
    Sha256,
    Sha512,
}

/// One usable TLSA record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: TlsaUsage,
    pub selector: TlsaSelector,
    pub matching: TlsaMatching,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// The record from its wire fields; None when it is unusable for SMTP.
    pub fn usable(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Option<Self> {
        let usage = match usage {
            2 => TlsaUsage::DaneTa,
            3 => TlsaUsage::DaneEe,
            _ => return None,
        };
        let selector = match selector {
            0 => TlsaSelector::Cert,
            1 => TlsaSelector::Spki,
            _ => return None,
        };
        let matching = match matching {
            0 => TlsaMatching::Full,
            1 => TlsaMatching::Sha256,
            2 => TlsaMatching::Sha512,
            _ => return None,
        };
        let expected_len = match matching {
            TlsaMatching::Full => None,
            TlsaMatching::Sha256 => Some(32),
            TlsaMatching::Sha512 => Some(64),
        };
        if data.is_empty() || expected_len.is_some_and(|len| data.len() != len) {
            return None;
        }
        Some(Self {
            usage,
            selector,
            matching,
            data,
        })
    }

    /// Whether a certificate matches this record.
    pub fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let selected = match self.selector {
            TlsaSelector::Cert => cert.as_ref().to_vec(),
            TlsaSelector::Spki => match spki(cert) {
                Some(spki) => spki,
                None => return false,
            },
        };
        let digest = match self.matching {
            TlsaMatching::Full => selected,
            TlsaMatching::Sha256 => Sha256::digest(&selected).to_vec(),
            TlsaMatching::Sha512 => Sha512::digest(&selected).to_vec(),
        };
        digest == self.data
    }
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn spki(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    Some(parsed.tbs_certificate.subject_pki.raw.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(name: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn dane_ee_spki_sha256_matches_only_its_key() {
        let mx = cert("mx.example.net");
        let other = cert("mx.example.net");
        let digest = Sha256::digest(spki(&mx).unwrap()).to_vec();
        let record = Tlsa::usable(3, 1, 1, digest).unwrap();
        assert!(record.matches(&mx));
        assert!(!record.matches(&other));
    }

    #[test]
    fn full_certificate_and_sha512_matching() {
        let mx = cert("mx.example.net");
        assert!(
            Tlsa::usable(3, 0, 0, mx.as_ref().to_vec())
                .unwrap()
                .matches(&mx)
        );
        let digest = Sha512::digest(mx.as_ref()).to_vec();
        assert!(Tlsa::usable(2, 0, 2, digest).unwrap().matches(&mx));
    }

    #[test]
    fn pkix_usages_and_malformed_records_are_unusable() {
        assert_eq!(Tlsa::usable(0, 1, 1, vec![0; 32]), None);
        assert_eq!(Tlsa::usable(1, 1, 1, vec![0; 32]), None);
        assert_eq!(Tlsa::usable(3, 2, 1, vec![0; 32]), None);
        assert_eq!(Tlsa::usable(3, 1, 3, vec![0; 32]), None);
        assert_eq!(Tlsa::usable(3, 1, 1, vec![0; 31]), None);
        assert_eq!(Tlsa::usable(3, 1, 0, vec![]), None);
    }
}
