//! The relay's configuration, rendered from the tenant's spec and its sending domains.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use mailwarden_relay_config::{
    Audit, AuthFailures, DeliveryMode, DkimSelector, FallbackTls, Limits, Listen, RelayConfig,
    SendingDomain, SmtpAuth, Spool, Tls,
};

use super::credentials::CREDENTIALS_KEY;
use super::relay::{
    ADMIN_PORT, CREDENTIALS_DIR, DKIM_DIR, DRAIN_SECONDS, SMARTHOST_DIR, SPOOL_DIR,
    SUBMISSION_PORT, SUBMISSIONS_PORT, TLS_DIR,
};
use super::{Names, SigningDomain};
use crate::crd::MailTenant;
use crate::crd::mail_tenant::FallbackTls as SpecFallbackTls;

/// Memory the relay may hold in messages being received, all sessions together.
const RECEIVE_BUDGET_BYTES: u64 = 128 * 1024 * 1024;

/// Renders the configuration the relay parses at start and on reload. `source_addresses` are
/// the tenant's allocated sending addresses the relay binds its outgoing connections to.
pub fn relay_config(
    tenant: &MailTenant,
    domains: &[SigningDomain],
    source_addresses: &[IpAddr],
) -> RelayConfig {
    let names = Names::of(tenant);
    let spec = &tenant.spec;
    let mode = match &spec.delivery.smarthost {
        Some(smarthost) => DeliveryMode::Smarthost {
            host: smarthost.host.clone(),
            port: smarthost.port,
            credentials_dir: smarthost
                .credentials_secret
                .as_ref()
                .map(|_| PathBuf::from(SMARTHOST_DIR)),
        },
        None => DeliveryMode::Direct {
            fallback_tls: match spec.delivery.fallback_tls {
                SpecFallbackTls::Verify => FallbackTls::Verify,
                SpecFallbackTls::EncryptOnly => FallbackTls::EncryptOnly,
            },
        },
    };

    let mut sending_domains: Vec<SendingDomain> = domains
        .iter()
        .map(|domain| SendingDomain {
            domain: domain.domain.clone(),
            selectors: domain
                .selectors
                .iter()
                .map(|selector| DkimSelector {
                    name: selector.name.clone(),
                    algorithm: selector.algorithm,
                    key_file: PathBuf::from(format!(
                        "{DKIM_DIR}/{}/{}.pem",
                        domain.domain, selector.name
                    )),
                })
                .collect(),
        })
        .collect();
    sending_domains.sort_by(|a, b| a.domain.cmp(&b.domain));

    RelayConfig {
        tenant: names.tenant.clone(),
        hostname: spec.relay.hostname.clone(),
        listen: Listen {
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            submissions_port: SUBMISSIONS_PORT,
            submission_port: SUBMISSION_PORT,
            admin_port: ADMIN_PORT,
        },
        tls: Tls {
            cert_file: format!("{TLS_DIR}/tls.crt").into(),
            key_file: format!("{TLS_DIR}/tls.key").into(),
            client_ca_file: format!("{TLS_DIR}/ca.crt").into(),
        },
        smtp_auth: super::smtp_auth_required(tenant).then(|| SmtpAuth {
            credentials_file: format!("{CREDENTIALS_DIR}/{CREDENTIALS_KEY}").into(),
        }),
        sending_domains,
        limits: Limits {
            max_message_bytes: spec.relay.max_message_bytes,
            max_recipients: spec.relay.max_recipients,
            max_connections: 200,
            drain_seconds: DRAIN_SECONDS,
            // A quarter of the default 512Mi memory limit, and always room for one message.
            max_buffered_bytes: spec.relay.max_message_bytes.max(RECEIVE_BUDGET_BYTES),
        },
        spool: Spool {
            dir: format!("{SPOOL_DIR}/queue").into(),
        },
        delivery: mailwarden_relay_config::Delivery {
            mode,
            source_addresses: source_addresses.to_vec(),
            per_destination_concurrency: 4,
            initial_retry_seconds: 60,
            max_retry_seconds: 3600,
            max_age_seconds: 5 * 24 * 3600,
            resolvers: Vec::new(),
            mx_override: None,
            trust_anchors_file: None,
        },
        audit: Audit {
            file: format!("{SPOOL_DIR}/audit/audit.jsonl").into(),
        },
        auth_failures: AuthFailures {
            max_failures: 5,
            window_seconds: 300,
            block_seconds: 900,
        },
    }
}
