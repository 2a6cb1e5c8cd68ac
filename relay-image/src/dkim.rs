//! DKIM signing with every active selector of the sending domain.
//!
//! Keys are PKCS#8 PEM files mounted from the domain's Secret; they are read when the
//! configuration is loaded (and reloaded) and held only in memory. Signatures use relaxed/relaxed
//! canonicalisation and cover the headers below when the message has them.

use std::collections::HashMap;
use std::path::PathBuf;

use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use mailwarden_relay_config::{DkimAlgorithm, RelayConfig};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

/// Headers a signature covers. Each is listed twice in `h=` ([`oversigned`]): RFC 6376 section
/// 5.4.2 makes an `h=` entry with no matching header sign its absence, so nobody can add a
/// second `From`, `Subject` or `Date` above the signed one and keep the signature valid. `From`
/// is always present (the relay refuses mail without exactly one).
pub const SIGNED_HEADERS: [&str; 15] = [
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// [`SIGNED_HEADERS`], each twice: one entry signs the header, the other the absence of more.
pub fn oversigned() -> Vec<&'static str> {
    SIGNED_HEADERS.iter().flat_map(|h| [*h, *h]).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("failed to read DKIM key of selector {selector} from {path}: {reason}")]
    Key {
        selector: String,
        path: PathBuf,
        reason: String,
    },
    #[error("failed to sign with DKIM selector {selector} of {domain}: {reason}")]
    Sign {
        domain: String,
        selector: String,
        reason: String,
    },
}

struct Selector {
    name: String,
    signer: DkimSigner<DkimKey, Done>,
}

/// The loaded keys of every sending domain.
#[derive(Default)]
pub struct Signer {
    domains: HashMap<String, Vec<Selector>>,
}

impl Signer {
    /// Reads every selector's key named in the configuration.
    pub fn load(config: &RelayConfig) -> Result<Self, DkimError> {
        let mut domains = HashMap::new();
        for domain in &config.sending_domains {
            let mut selectors = Vec::new();
            for selector in &domain.selectors {
                let failed = |reason: String| DkimError::Key {
                    selector: selector.name.clone(),
                    path: selector.key_file.clone(),
                    reason,
                };
                let der = PrivateKeyDer::from_pem_file(&selector.key_file)
                    .map_err(|e| failed(e.to_string()))?;
                let key = match (selector.algorithm, der) {
                    (DkimAlgorithm::RsaSha256, PrivateKeyDer::Pkcs8(der)) => DkimKey::Rsa(
                        RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(der))
                            .map_err(|e| failed(e.to_string()))?,
                    ),
                    (DkimAlgorithm::Ed25519Sha256, PrivateKeyDer::Pkcs8(der)) => DkimKey::Ed25519(
                        Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der())
                            .map_err(|e| failed(e.to_string()))?,
                    ),
                    _ => return Err(failed("not a PKCS#8 private key".into())),
                };
                let signer = DkimSigner::from_key(key)
                    .domain(domain.domain.to_ascii_lowercase())
                    .selector(&selector.name)
                    .headers(oversigned())
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed);
                selectors.push(Selector {
                    name: selector.name.clone(),
                    signer,
                });
            }
            domains.insert(domain.domain.to_ascii_lowercase(), selectors);
        }
        Ok(Self { domains })
    }

    /// Signs a message for a domain with each of its selectors; returns the `DKIM-Signature`
    /// header fields to prepend and the selector names used.
    pub fn sign(&self, domain: &str, message: &[u8]) -> Result<(String, Vec<String>), DkimError> {
        let domain = domain.to_ascii_lowercase();
        let mut headers = String::new();
        let mut used = Vec::new();
        for selector in self
            .domains
            .get(&domain)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let failed = |reason: String| DkimError::Sign {
                domain: domain.clone(),
                selector: selector.name.clone(),
                reason,
            };
            let signature = selector
                .signer
                .sign(message)
                .map_err(|e| failed(e.to_string()))?;
            headers.push_str(&join_lone_terminator(&signature.to_header()));
            used.push(selector.name.clone());
        }
        Ok((headers, used))
    }
}

/// mail-auth folds a signature so that the `;` after `b=` can land alone on a continuation line;
/// verifiers then canonicalise that folding whitespace into the signed text and the signature
/// fails. Joining the `;` back onto the line before keeps the header valid and verifiable.
fn join_lone_terminator(header: &str) -> String {
    header.replace("\r\n\t;", ";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_semicolon_is_joined_to_the_b_value() {
        let folded = "DKIM-Signature: v=1; a=rsa-sha256; b=abc\r\n\tdef==\r\n\t;\r\n";
        assert_eq!(
            join_lone_terminator(folded),
            "DKIM-Signature: v=1; a=rsa-sha256; b=abc\r\n\tdef==;\r\n"
        );
    }
}
