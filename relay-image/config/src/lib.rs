//! The configuration of one tenant's relay.
//!
//! The operator renders a [`RelayConfig`] into the tenant's ConfigMap as TOML; the relay parses the
//! same type at start and on reload. Keeping one type for both sides means a field the operator
//! writes is a field the relay understands, and [`RelayConfig::validate`] is the single place where
//! a bad configuration is refused, with the path of the offending field in the message.
//!
//! Nothing secret lives here: keys, certificates and credentials are referenced by the path of a
//! file mounted from a Secret.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// File name of the rendered configuration inside the ConfigMap and the mounted directory.
pub const CONFIG_FILE_NAME: &str = "relay.toml";

/// The values the relay image is built around (its Dockerfile is tested against them).
pub mod defaults {
    /// Implicit-TLS submission (RFC 8314).
    pub const SUBMISSIONS_PORT: u16 = 465;
    /// STARTTLS submission.
    pub const SUBMISSION_PORT: u16 = 587;
    /// Health and metrics.
    pub const ADMIN_PORT: u16 = 9090;
    /// The image's non-root user and group (distroless `nonroot`).
    pub const RUN_AS_UID: u32 = 65532;
    /// Where the configuration is mounted; the image's default `--config` is this directory's
    /// `relay.toml`.
    pub const CONFIG_DIR: &str = "/etc/mailwarden/config";
}

/// Everything the relay needs to accept, sign, keep and deliver a tenant's mail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RelayConfig {
    /// The tenant this relay serves (its MailTenant name); written into every audit line.
    pub tenant: String,
    /// Public host name: announced in the greeting and EHLO, and present in the server certificate.
    pub hostname: String,
    pub listen: Listen,
    pub tls: Tls,
    #[serde(default)]
    pub smtp_auth: Option<SmtpAuth>,
    /// Domains the relay may send for; MAIL FROM outside these is refused.
    pub sending_domains: Vec<SendingDomain>,
    pub limits: Limits,
    pub spool: Spool,
    pub delivery: Delivery,
    pub audit: Audit,
    pub auth_failures: AuthFailures,
}

/// Ports the relay listens on. The submission ports take mail; the admin port serves health and
/// metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Listen {
    /// Address to bind, `0.0.0.0` in a pod.
    pub address: IpAddr,
    /// Implicit-TLS submission (RFC 8314), normally 465.
    pub submissions_port: u16,
    /// STARTTLS submission, normally 587.
    pub submission_port: u16,
    /// Plain HTTP for `/healthz`, `/readyz` and `/metrics`.
    pub admin_port: u16,
}

/// Files of the relay's server identity and of the trust bundle for client certificates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Tls {
    /// PEM certificate chain presented to clients.
    pub cert_file: PathBuf,
    /// PEM private key of that certificate.
    pub key_file: PathBuf,
    /// PEM bundle of the tenant's CA certificates (old and new during a rotation); client
    /// certificates must chain to one of them.
    pub client_ca_file: PathBuf,
}

/// Optional SMTP AUTH over TLS, in addition to (never instead of) client certificates. When set,
/// every client must present its certificate and then `AUTH PLAIN` with the username of that
/// certificate's identity before `MAIL FROM`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SmtpAuth {
    /// File of [`SmtpAuth::credentials_line`] lines, mounted from a Secret.
    pub credentials_file: PathBuf,
}

impl SmtpAuth {
    /// The credentials file line of one client: `username:sha256:<hex digest of the password>`.
    /// Passwords are 32 random bytes from the operator, so a fast digest is enough: there is no
    /// guessable space to search, and a slow hash would only let peers load the relay.
    pub fn credentials_line(user: &str, password: &str) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(password.as_bytes());
        format!("{user}:sha256:{}", hex::encode(digest))
    }
}

/// One domain the relay signs for, and the DKIM selectors it signs with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SendingDomain {
    pub domain: String,
    /// Every active selector signs every message; an empty list means the domain's keys are not
    /// published yet and mail from it is refused with a temporary error.
    #[serde(default)]
    pub selectors: Vec<DkimSelector>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DkimSelector {
    /// The DNS label published under `_domainkey`.
    pub name: String,
    pub algorithm: DkimAlgorithm,
    /// PEM private key (PKCS#8), mounted from the domain's Secret.
    pub key_file: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DkimAlgorithm {
    /// `rsa-sha256` with a 2048-bit key.
    RsaSha256,
    /// `ed25519-sha256` (RFC 8463).
    Ed25519Sha256,
}

/// Bounds on what one client may send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Largest message accepted, in bytes (announced with the SIZE extension).
    pub max_message_bytes: u64,
    /// Most recipients in one transaction.
    pub max_recipients: u32,
    /// Most simultaneous client connections.
    pub max_connections: u32,
    /// On SIGTERM, how long open sessions may finish before the relay exits; keep it below the
    /// pod's termination grace period.
    #[serde(default = "default_drain_seconds")]
    pub drain_seconds: u64,
    /// Most message bytes all sessions together may hold in memory while receiving. Each DATA
    /// reserves its declared SIZE (or the maximum message size) first and waits when the budget
    /// is spent, so many large messages at once slow down instead of exhausting memory. At
    /// least `max-message-bytes`.
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: u64,
}

fn default_drain_seconds() -> u64 {
    25
}

fn default_max_buffered_bytes() -> u64 {
    128 * 1024 * 1024
}

/// Where accepted messages are kept until delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Spool {
    /// Directory on the pod's persistent volume.
    pub dir: PathBuf,
}

/// How accepted mail leaves the relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Delivery {
    pub mode: DeliveryMode,
    /// Local addresses to send from (the tenant's allocated sending IPs); empty means the pod's own.
    #[serde(default)]
    pub source_addresses: Vec<IpAddr>,
    /// Most simultaneous connections to one destination domain.
    pub per_destination_concurrency: u32,
    /// First retry delay, in seconds; doubled after each failure.
    pub initial_retry_seconds: u64,
    /// Longest delay between retries, in seconds.
    pub max_retry_seconds: u64,
    /// After this many seconds undelivered, a message is bounced with a DSN to its sender.
    pub max_age_seconds: u64,
    /// Resolvers for MX, TLSA and MTA-STS lookups (`ip:port`); empty means the system's.
    #[serde(default)]
    pub resolvers: Vec<String>,
    /// Send every message to this `host:port` instead of the recipient domain's MX (tests and
    /// staging); TLS is still required and the certificate verified against `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx_override: Option<String>,
    /// Extra PEM CA certificates trusted when verifying destination certificates, in addition to
    /// the public roots (a private smarthost, or tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_anchors_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case",
    tag = "kind"
)]
pub enum DeliveryMode {
    /// Look up each recipient domain's MX and deliver with STARTTLS required.
    Direct {
        /// What to verify when the destination publishes neither MTA-STS nor DANE.
        fallback_tls: FallbackTls,
    },
    /// Hand every message to one upstream over TLS.
    Smarthost {
        host: String,
        port: u16,
        /// Directory holding the files `username` and `password`, mounted from a
        /// `kubernetes.io/basic-auth` Secret.
        #[serde(default)]
        credentials_dir: Option<PathBuf>,
    },
}

/// TLS requirement towards destinations without an MTA-STS policy or DANE records. Plaintext is
/// never an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FallbackTls {
    /// STARTTLS required and the certificate verified against public roots and the MX name.
    Verify,
    /// STARTTLS required; the certificate is not verified (opportunistic authentication).
    EncryptOnly,
}

/// The append-only, hash-chained audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Audit {
    /// JSON-lines file on the persistent volume.
    pub file: PathBuf,
}

/// Blocking of peers that keep failing to authenticate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuthFailures {
    /// Failures from one address within the window that trigger a block.
    pub max_failures: u32,
    pub window_seconds: u64,
    pub block_seconds: u64,
}

/// A configuration the relay refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to parse relay configuration: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid relay configuration: {field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl RelayConfig {
    /// Parses and validates a rendered configuration.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Renders the configuration as the operator writes it into the ConfigMap.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("relay configuration always serializes")
    }

    /// Checks what the types alone cannot, naming the first offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tenant.is_empty() {
            return Err(invalid("tenant", "must not be empty"));
        }
        if !is_dns_name(&self.hostname) {
            return Err(invalid(
                "hostname",
                format!("{:?} is not a DNS name", self.hostname),
            ));
        }

        let ports = [
            ("listen.submissions-port", self.listen.submissions_port),
            ("listen.submission-port", self.listen.submission_port),
            ("listen.admin-port", self.listen.admin_port),
        ];
        for (i, (field, port)) in ports.iter().enumerate() {
            if *port == 0 {
                return Err(invalid(*field, "must not be 0"));
            }
            if ports[..i].iter().any(|(_, other)| other == port) {
                return Err(invalid(*field, format!("port {port} is used twice")));
            }
        }

        let mut seen = Vec::new();
        for (i, domain) in self.sending_domains.iter().enumerate() {
            let field = format!("sending-domains[{i}]");
            if !is_dns_name(&domain.domain) {
                return Err(invalid(
                    format!("{field}.domain"),
                    format!("{:?} is not a DNS name", domain.domain),
                ));
            }
            let name = domain.domain.to_ascii_lowercase();
            if seen.contains(&name) {
                return Err(invalid(
                    format!("{field}.domain"),
                    format!("{name} is listed twice"),
                ));
            }
            seen.push(name);
            for (j, selector) in domain.selectors.iter().enumerate() {
                if !is_dns_label(&selector.name) {
                    return Err(invalid(
                        format!("{field}.selectors[{j}].name"),
                        format!("{:?} is not a DNS label", selector.name),
                    ));
                }
            }
        }

        if self.limits.max_message_bytes == 0 {
            return Err(invalid("limits.max-message-bytes", "must be above 0"));
        }
        if self.limits.max_recipients == 0 {
            return Err(invalid("limits.max-recipients", "must be above 0"));
        }
        if self.limits.max_buffered_bytes < self.limits.max_message_bytes {
            return Err(invalid(
                "limits.max-buffered-bytes",
                "must be at least limits.max-message-bytes",
            ));
        }
        if self.limits.max_connections == 0 {
            return Err(invalid("limits.max-connections", "must be above 0"));
        }

        if self.delivery.per_destination_concurrency == 0 {
            return Err(invalid(
                "delivery.per-destination-concurrency",
                "must be above 0",
            ));
        }
        if self.delivery.initial_retry_seconds == 0 {
            return Err(invalid("delivery.initial-retry-seconds", "must be above 0"));
        }
        if self.delivery.max_retry_seconds < self.delivery.initial_retry_seconds {
            return Err(invalid(
                "delivery.max-retry-seconds",
                "must not be below delivery.initial-retry-seconds",
            ));
        }
        if self.delivery.max_age_seconds < self.delivery.initial_retry_seconds {
            return Err(invalid(
                "delivery.max-age-seconds",
                "must not be below delivery.initial-retry-seconds",
            ));
        }
        if let DeliveryMode::Smarthost { host, port, .. } = &self.delivery.mode {
            if !is_dns_name(host) && host.parse::<IpAddr>().is_err() {
                return Err(invalid(
                    "delivery.mode.host",
                    format!("{host:?} is neither a DNS name nor an IP address"),
                ));
            }
            if *port == 0 {
                return Err(invalid("delivery.mode.port", "must not be 0"));
            }
        }
        if let Some(target) = &self.delivery.mx_override {
            let valid = target.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !valid {
                return Err(invalid(
                    "delivery.mx-override",
                    format!("{target:?} is not a host:port address"),
                ));
            }
        }
        for (i, resolver) in self.delivery.resolvers.iter().enumerate() {
            if resolver.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid(
                    format!("delivery.resolvers[{i}]"),
                    format!("{resolver:?} is not an ip:port address"),
                ));
            }
        }

        if self.auth_failures.max_failures == 0 {
            return Err(invalid("auth-failures.max-failures", "must be above 0"));
        }
        Ok(())
    }

    /// The signing selectors for a sender domain, matched case-insensitively.
    pub fn domain(&self, domain: &str) -> Option<&SendingDomain> {
        self.sending_domains
            .iter()
            .find(|d| d.domain.eq_ignore_ascii_case(domain))
    }
}

/// A DNS label: 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen.
pub fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A fully qualified host or domain name of at least two labels, 253 bytes at most, without a
/// trailing dot.
pub fn is_dns_name(name: &str) -> bool {
    name.len() <= 253 && name.split('.').count() >= 2 && name.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests;
