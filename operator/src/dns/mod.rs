//! The DNS records a sending domain needs (pure), the providers that publish them, and the
//! verification that resolvers serve them.

pub mod cloudflare;
pub mod dmarc;
pub mod manual;
pub mod mta_sts;
pub mod provider;
pub mod publish;
pub mod record;
pub mod render;
pub mod rfc2136;
pub mod spf;
pub mod sync;
pub mod verify;

pub use provider::{AnyProvider, DnsProvider, ExistingRecord, ProviderError};
pub use record::{DnsRecord, RecordType};

/// True for a lower-case-insensitive DNS host name of two or more labels, each of letters,
/// digits and inner hyphens (underscores allowed for labels such as `_spf`), no trailing dot.
pub fn is_dns_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::is_dns_name;

    #[test]
    fn dns_names() {
        assert!(is_dns_name("example.org"));
        assert!(is_dns_name("_spf.mail.example.org"));
        assert!(!is_dns_name("example"));
        assert!(!is_dns_name("example.org."));
        assert!(!is_dns_name("-bad.example.org"));
        assert!(!is_dns_name("exa mple.org"));
        assert!(!is_dns_name(&format!("{}.org", "a".repeat(64))));
    }
}
