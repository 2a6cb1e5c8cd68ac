//! MTA-STS (RFC 8461) and SMTP TLS reporting (RFC 8460).

use sha2::{Digest, Sha256};

/// How receivers apply the MTA-STS policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtaStsPolicy {
    pub mode: Mode,
    pub mx: Vec<String>,
    pub max_age_seconds: u32,
}

/// The policy file served at `https://mta-sts.<domain>/.well-known/mta-sts.txt`.
pub fn policy_text(policy: &MtaStsPolicy) -> String {
    let mode = match policy.mode {
        Mode::Enforce => "enforce",
        Mode::Testing => "testing",
        Mode::None => "none",
    };
    let mut text = format!("version: STSv1\r\nmode: {mode}\r\n");
    for mx in &policy.mx {
        text.push_str(&format!("mx: {mx}\r\n"));
    }
    text.push_str(&format!("max_age: {}\r\n", policy.max_age_seconds));
    text
}

/// The policy id: derived from the policy text, so it changes exactly when the policy does.
pub fn policy_id(policy_text: &str) -> String {
    let digest = Sha256::digest(policy_text.as_bytes());
    hex::encode(&digest[..10])
}

/// The `_mta-sts` TXT value announcing the policy.
pub fn txt_value(policy_text: &str) -> String {
    format!("v=STSv1; id={}", policy_id(policy_text))
}

/// The `_smtp._tls` TXT value naming where TLS reports go.
pub fn tls_rpt_value(report_uris: &[String]) -> String {
    format!("v=TLSRPTv1; rua={}", report_uris.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> MtaStsPolicy {
        MtaStsPolicy {
            mode: Mode::Enforce,
            mx: vec!["mx1.example.org".into(), "*.mx.example.org".into()],
            max_age_seconds: 604800,
        }
    }

    #[test]
    fn policy_text_is_exact() {
        assert_eq!(
            policy_text(&policy()),
            "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.org\r\nmx: *.mx.example.org\r\n\
             max_age: 604800\r\n"
        );
    }

    #[test]
    fn id_changes_when_policy_changes() {
        let first = txt_value(&policy_text(&policy()));
        assert!(first.starts_with("v=STSv1; id="));
        assert_eq!(first.len(), "v=STSv1; id=".len() + 20);
        assert_eq!(first, txt_value(&policy_text(&policy())));
        let mut testing = policy();
        testing.mode = Mode::Testing;
        assert_ne!(first, txt_value(&policy_text(&testing)));
    }

    #[test]
    fn tls_rpt_value_is_exact() {
        let uris = vec![
            "mailto:tls@example.org".to_string(),
            "mailto:t@example.net".into(),
        ];
        assert_eq!(
            tls_rpt_value(&uris),
            "v=TLSRPTv1; rua=mailto:tls@example.org,mailto:t@example.net"
        );
    }
}
