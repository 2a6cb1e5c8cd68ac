//! SMTP AUTH credentials: a second factor after the client certificate, never a replacement.
//!
//! The credentials file holds one `username:sha256:<hex digest of the password>` line per client
//! (see [`SmtpAuth::credentials_line`]; blank lines and `#` comments are skipped). The username
//! must be the identity of the client certificate the session presented, so one client's
//! password never works with another client's certificate.
//!
//! [`SmtpAuth::credentials_line`]: mailwarden_relay_config::SmtpAuth::credentials_line

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("failed to read SMTP AUTH credentials {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SMTP AUTH credentials {path} line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
}

/// The password digests of the clients allowed to authenticate, by username.
#[derive(Debug, Default)]
pub struct Credentials {
    digests: BTreeMap<String, [u8; 32]>,
}

impl Credentials {
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, reason)| CredentialsError::Line {
            path: path.into(),
            line,
            reason,
        })
    }

    /// Parses the file's text; an error names the 1-based line and what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, (usize, &'static str)> {
        let mut digests = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, rest)) = line.split_once(':') else {
                return Err((number, "expected username:sha256:<hex digest>"));
            };
            if user.is_empty() {
                return Err((number, "the username is empty"));
            }
            let Some(hex_digest) = rest.strip_prefix("sha256:") else {
                return Err((number, "only sha256 digests are supported"));
            };
            let mut digest = [0u8; 32];
            if hex::decode_to_slice(hex_digest, &mut digest).is_err() {
                return Err((number, "the digest is not 64 hexadecimal digits"));
            }
            if digests.insert(user.to_string(), digest).is_some() {
                return Err((number, "the username appears twice"));
            }
        }
        Ok(Self { digests })
    }

    /// Whether `user` is a configured username.
    pub fn knows(&self, user: &str) -> bool {
        self.digests.contains_key(user)
    }

    /// Whether `password` is the password of `user`.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some(expected) = self.digests.get(user) else {
            return false;
        };
        let actual: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        // Comparing digests leaks nothing useful through timing; fold anyway so the comparison
        // does not stop at the first differing byte.
        expected
            .iter()
            .zip(actual.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Why a SASL PLAIN response (RFC 4616) was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum PlainError {
    /// `*`: the client gave up (RFC 4954 section 4).
    Cancelled,
    /// Not base64, or not `authzid NUL authcid NUL passwd`.
    Malformed,
}

/// Decodes a SASL PLAIN response into the username and password. An authorization identity other
/// than empty or the username itself is refused: nobody may act as somebody else.
pub fn decode_plain(response: &str) -> Result<(String, String), PlainError> {
    let response = response.trim();
    if response == "*" {
        return Err(PlainError::Cancelled);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response)
        .map_err(|_| PlainError::Malformed)?;
    let text = String::from_utf8(bytes).map_err(|_| PlainError::Malformed)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PlainError::Malformed);
    };
    if user.is_empty() || (!authzid.is_empty() && authzid != user) {
        return Err(PlainError::Malformed);
    }
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use mailwarden_relay_config::SmtpAuth;

    use super::*;

    fn line(user: &str, password: &str) -> String {
        SmtpAuth::credentials_line(user, password)
    }

    fn plain(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn a_written_line_verifies_its_password_only() {
        let text = format!(
            "# clients\n\n{}\n{}\n",
            line("ehr", "s3cret"),
            line("portal", "other")
        );
        let credentials = Credentials::parse(&text).unwrap();
        assert!(credentials.verify("ehr", "s3cret"));
        assert!(!credentials.verify("ehr", "s3cret "));
        assert!(!credentials.verify("ehr", "other"));
        assert!(!credentials.verify("nobody", "s3cret"));
        assert_eq!(
            line("ehr", "s3cret"),
            "ehr:sha256:1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"
        );
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let digest = "a".repeat(64);
        assert_eq!(
            Credentials::parse("ehr").unwrap_err(),
            (1, "expected username:sha256:<hex digest>")
        );
        assert_eq!(
            Credentials::parse(&format!("\n:sha256:{digest}")).unwrap_err(),
            (2, "the username is empty")
        );
        assert_eq!(
            Credentials::parse("ehr:$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap_err(),
            (1, "only sha256 digests are supported")
        );
        assert_eq!(
            Credentials::parse("ehr:sha256:abc").unwrap_err(),
            (1, "the digest is not 64 hexadecimal digits")
        );
        assert_eq!(
            Credentials::parse(&format!("ehr:sha256:{digest}\nehr:sha256:{digest}")).unwrap_err(),
            (2, "the username appears twice")
        );
    }

    #[test]
    fn plain_responses_decode_and_impersonation_is_refused() {
        assert_eq!(
            decode_plain(&plain("\0ehr\0pw")),
            Ok(("ehr".into(), "pw".into()))
        );
        assert_eq!(
            decode_plain(&plain("ehr\0ehr\0pw")),
            Ok(("ehr".into(), "pw".into()))
        );
        assert_eq!(
            decode_plain(&plain("admin\0ehr\0pw")),
            Err(PlainError::Malformed)
        );
        assert_eq!(decode_plain(&plain("\0\0pw")), Err(PlainError::Malformed));
        assert_eq!(decode_plain(&plain("ehr\0pw")), Err(PlainError::Malformed));
        assert_eq!(
            decode_plain(&plain("\0ehr\0pw\0x")),
            Err(PlainError::Malformed)
        );
        assert_eq!(decode_plain("not base64!"), Err(PlainError::Malformed));
        assert_eq!(decode_plain("*"), Err(PlainError::Cancelled));
    }
}
