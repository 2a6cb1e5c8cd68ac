//! DKIM keys: generation (RSA-2048 and Ed25519, RFC 8463), the PKCS#8 PEM the relay signs
//! with, and the DNS public key derived from that same private key.

pub mod rotation;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand_core::OsRng;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// RSA modulus size; 2048 bits is what RFC 8301 requires receivers to accept.
pub const RSA_BITS: usize = 2048;

/// A DKIM signing algorithm, named as in the `a=` tag of a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DkimAlgorithm {
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    #[serde(rename = "ed25519-sha256")]
    Ed25519Sha256,
}

impl DkimAlgorithm {
    /// The `k=` tag of the DNS record.
    pub fn key_type(self) -> &'static str {
        match self {
            DkimAlgorithm::RsaSha256 => "rsa",
            DkimAlgorithm::Ed25519Sha256 => "ed25519",
        }
    }

    /// The suffix of selector names using this algorithm.
    pub fn selector_suffix(self) -> &'static str {
        match self {
            DkimAlgorithm::RsaSha256 => "rsa",
            DkimAlgorithm::Ed25519Sha256 => "ed",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::RsaSha256 => "rsa-sha256",
            DkimAlgorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("failed to generate {algorithm} dkim key")]
    Generate {
        algorithm: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("dkim key {key:?} is not a valid {algorithm} pkcs#8 pem private key")]
    Parse {
        key: String,
        algorithm: &'static str,
    },
}

/// A private key in PKCS#8 PEM. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(pub String);

impl std::fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKeyPem(<redacted>)")
    }
}

/// Generates a new private key for `algorithm`.
pub fn generate(algorithm: DkimAlgorithm) -> Result<PrivateKeyPem, KeyError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| KeyError::Generate {
        algorithm: algorithm.as_str(),
        source,
    };
    let pem = match algorithm {
        DkimAlgorithm::RsaSha256 => rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS)
            .map_err(|e| failed(e.into()))?
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| failed(e.to_string().into()))?,
        DkimAlgorithm::Ed25519Sha256 => ed25519_dalek::SigningKey::generate(&mut OsRng)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| failed(e.to_string().into()))?,
    };
    Ok(PrivateKeyPem(pem.to_string()))
}

/// The base64 `p=` value for the private key: the DER SubjectPublicKeyInfo for RSA (RFC 6376
/// section 3.6.1), the raw 32-byte public key for Ed25519 (RFC 8463 section 4).
pub fn public_key_base64(
    key_name: &str,
    algorithm: DkimAlgorithm,
    pem: &PrivateKeyPem,
) -> Result<String, KeyError> {
    let invalid = || KeyError::Parse {
        key: key_name.to_string(),
        algorithm: algorithm.as_str(),
    };
    let public = match algorithm {
        DkimAlgorithm::RsaSha256 => {
            let private = rsa::RsaPrivateKey::from_pkcs8_pem(&pem.0).map_err(|_| invalid())?;
            if private.size() * 8 < RSA_BITS {
                return Err(invalid());
            }
            let der = rsa::RsaPublicKey::from(&private)
                .to_public_key_der()
                .map_err(|_| invalid())?;
            der.as_bytes().to_vec()
        }
        DkimAlgorithm::Ed25519Sha256 => {
            let private =
                ed25519_dalek::SigningKey::from_pkcs8_pem(&pem.0).map_err(|_| invalid())?;
            private.verifying_key().to_bytes().to_vec()
        }
    };
    Ok(STANDARD.encode(public))
}

/// The `<selector>._domainkey` TXT value, for example `v=DKIM1; k=ed25519; p=...`.
pub fn txt_value(algorithm: DkimAlgorithm, public_key_base64: &str) -> String {
    format!("v=DKIM1; k={}; p={public_key_base64}", algorithm.key_type())
}

/// The `p=` value of a DKIM TXT record, if any.
pub fn public_key_of_txt(value: &str) -> Option<&str> {
    value
        .split(';')
        .map(str::trim)
        .find_map(|tag| tag.strip_prefix("p="))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_public_key_is_derived_from_the_private_key() {
        let pem = generate(DkimAlgorithm::Ed25519Sha256).unwrap();
        assert!(pem.0.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let p = public_key_base64("k", DkimAlgorithm::Ed25519Sha256, &pem).unwrap();
        assert_eq!(STANDARD.decode(&p).unwrap().len(), 32);
        let parsed = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem.0).unwrap();
        assert_eq!(STANDARD.encode(parsed.verifying_key().as_bytes()), p);
        assert_eq!(
            txt_value(DkimAlgorithm::Ed25519Sha256, &p),
            format!("v=DKIM1; k=ed25519; p={p}")
        );
    }

    #[test]
    fn rsa_key_is_2048_bits_and_record_needs_two_strings() {
        let pem = generate(DkimAlgorithm::RsaSha256).unwrap();
        assert!(pem.0.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let p = public_key_base64("k", DkimAlgorithm::RsaSha256, &pem).unwrap();
        // 294 bytes of SubjectPublicKeyInfo for a 2048-bit key with exponent 65537.
        assert_eq!(STANDARD.decode(&p).unwrap().len(), 294);
        let value = txt_value(DkimAlgorithm::RsaSha256, &p);
        assert_eq!(value.len(), 410);
        assert_eq!(crate::dns::record::split_txt(&value).len(), 2);
        assert_eq!(public_key_of_txt(&value), Some(p.as_str()));
    }

    #[test]
    fn wrong_algorithm_or_garbage_is_refused_and_never_shown() {
        let pem = generate(DkimAlgorithm::Ed25519Sha256).unwrap();
        let err = public_key_base64("mw1-rsa.pem", DkimAlgorithm::RsaSha256, &pem).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dkim key \"mw1-rsa.pem\" is not a valid rsa-sha256 pkcs#8 pem private key"
        );
        assert_eq!(format!("{pem:?}"), "PrivateKeyPem(<redacted>)");
    }
}
