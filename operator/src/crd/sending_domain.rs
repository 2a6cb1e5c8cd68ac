//! `SendingDomain`: a domain this tenant sends from, with its DKIM keys and DNS records.

// Each `printcolumn(...)` repeats `type_ = ...`, which clippy takes for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Lower-case DNS name of two or more labels, no trailing dot.
// CEL string literals accept no `\.` or `\s` escapes: character classes stand in for them.
const DOMAIN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?[.])+[a-z]([-a-z0-9]*[a-z0-9])?$";
/// A `mailto:` URI with one address and an optional size limit.
/// An MTA-STS `mx` pattern (RFC 8461 section 3.2): a host name, or `*.` and a host name.
const MX_PATTERN: &str = r"^(\*[.])?([a-z0-9]([-a-z0-9]*[a-z0-9])?[.])+[a-z]([-a-z0-9]*[a-z0-9])?$";
const MAILTO: &str = r"^mailto:[^@,;! \t]+@([a-z0-9]([-a-z0-9]*[a-z0-9])?[.])+[a-z0-9]([-a-z0-9]*[a-z0-9])?(![0-9]+[kmgt]?)?$";

/// A domain the tenant sends mail from. The operator generates its DKIM keys (RSA-2048 and
/// Ed25519) into a Secret, publishes SPF, DKIM, DMARC, MTA-STS, TLS-RPT and relay host records
/// through the chosen DNS provider, checks through resolvers that they are served, and rotates
/// the keys without a moment where signatures fail. It only ever changes records it created.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "mailwarden.io",
    doc = "A domain the tenant sends from: its DKIM keys, the SPF, DKIM, DMARC, MTA-STS and TLS-RPT records it needs, published and verified.",
    version = "v1alpha1",
    kind = "SendingDomain",
    plural = "sendingdomains",
    shortname = "sd",
    category = "mailwarden",
    namespaced,
    status = "SendingDomainStatus",
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.domain"),
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.dns.provider"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Selectors",
        type_ = "string",
        json_path = ".status.relaySigning.selectors[*].name",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SendingDomainSpec {
    /// The domain mail is sent from, for example `mail.example.org`: lower case, no trailing
    /// dot. It cannot change; create another SendingDomain for another domain.
    #[x_kube(
        validation = Rule::new(format!("self.matches(r'{DOMAIN}')")).message("spec.domain must be a lower-case DNS name such as mail.example.org: labels of letters, digits and inner hyphens separated by dots, no trailing dot"),
        validation = Rule::new("self.size() <= 253 && self.split('.').all(l, l.size() <= 63)").message("spec.domain is longer than 253 bytes or has a label longer than 63 bytes"),
        validation = Rule::new("self == oldSelf").message("spec.domain is immutable once set")
    )]
    #[schemars(length(max = 253))]
    pub domain: String,
    /// Where the records are published.
    pub dns: DnsSpec,
    /// Addresses (`ip:port`) of the resolvers that verification asks; every one must serve
    /// every record. Empty means the operator's system resolvers.
    #[serde(default)]
    #[schemars(length(max = 4), inner(length(max = 64)))]
    #[x_kube(validation = Rule::new("self.all(r, r.matches(r'^([0-9.]+|\\[[0-9a-fA-F:]+\\]):[0-9]{1,5}$') && isIP(r.substring(0, r.lastIndexOf(':')).replace('[', '').replace(']', '')) && int(r.substring(r.lastIndexOf(':') + 1)) <= 65535)").message("spec.resolvers must be addresses with a port, such as 192.0.2.53:53 or [2001:db8::53]:53"))]
    pub resolvers: Vec<String>,
    /// DKIM key rotation.
    #[serde(default)]
    pub dkim: DkimSpec,
    /// The SPF record published at the domain.
    pub spf: SpfSpec,
    /// The DMARC record published at `_dmarc.<domain>`.
    pub dmarc: DmarcSpec,
    /// MTA-STS for mail sent to this domain; omitted means no MTA-STS records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mta_sts: Option<MtaStsSpec>,
    /// Where receivers send SMTP TLS reports (`mailto:` URIs), published at
    /// `_smtp._tls.<domain>`. Empty means no TLS-RPT record.
    #[serde(default)]
    #[x_kube(validation = Rule::new(format!("self.all(u, u.matches(r'{MAILTO}'))")).message("spec.tlsReports must be mailto: URIs such as mailto:tls-reports@example.org"))]
    #[schemars(length(max = 8), inner(length(max = 254)))]
    pub tls_reports: Vec<String>,
    /// Public name of the tenant's relay inside this domain, for example
    /// `relay.mail.example.org`; A and AAAA records for the tenant's allocated sending
    /// addresses are published there. Omitted means no host records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self.matches(r'{DOMAIN}')")).message("spec.relayHost must be a lower-case DNS name"))]
    #[schemars(length(max = 253))]
    pub relay_host: Option<String>,
}

/// A DNS provider and its settings.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.provider != 'Cloudflare' || has(self.cloudflare)").message("spec.dns.cloudflare is required when spec.dns.provider is Cloudflare"))]
#[x_kube(validation = Rule::new("self.provider != 'RFC2136' || has(self.rfc2136)").message("spec.dns.rfc2136 is required when spec.dns.provider is RFC2136"))]
pub struct DnsSpec {
    /// `Cloudflare`, `RFC2136` (dynamic updates signed with TSIG) or `Manual` (the operator
    /// publishes nothing and lists the records it wants in status, to be pasted by hand).
    pub provider: DnsProviderKind,
    /// Cloudflare settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudflare: Option<CloudflareSpec>,
    /// RFC 2136 settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc2136: Option<Rfc2136Spec>,
    /// Time to live of published records, in seconds.
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 60, max = 86400))]
    pub ttl: u32,
}

fn default_ttl() -> u32 {
    300
}

#[derive(JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsProviderKind {
    Cloudflare,
    #[serde(rename = "RFC2136")]
    Rfc2136,
    Manual,
}

/// Cloudflare: one zone, reached with an API token limited to that zone's DNS.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudflareSpec {
    /// The zone id of the zone holding the domain (Cloudflare dashboard, zone overview).
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-f]{32}$')").message("spec.dns.cloudflare.zoneId must be 32 lower-case hex digits"))]
    #[schemars(length(max = 32))]
    pub zone_id: String,
    /// The Secret key holding the API token (permission Zone.DNS edit on that zone).
    pub api_token_secret_ref: SecretKeyRef,
    /// API base URL; only for testing against a server that implements the same API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
}

/// RFC 2136: a primary server that accepts TSIG-signed updates for the zone.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rfc2136Spec {
    /// `ip:port` of the primary server, for example `192.0.2.53:53`.
    #[schemars(length(max = 64))]
    pub server: String,
    /// The zone the updates are for, for example `example.org`.
    #[x_kube(validation = Rule::new(format!("self.matches(r'{DOMAIN}')")).message("spec.dns.rfc2136.zone must be a lower-case DNS name"))]
    #[schemars(length(max = 253))]
    pub zone: String,
    /// Name of the TSIG key as the server knows it.
    pub tsig_key_name: String,
    /// `hmac-sha256`, `hmac-sha384` or `hmac-sha512`.
    #[serde(default = "default_tsig_algorithm")]
    #[x_kube(validation = Rule::new("self in ['hmac-sha256', 'hmac-sha384', 'hmac-sha512']").message("spec.dns.rfc2136.tsigAlgorithm must be hmac-sha256, hmac-sha384 or hmac-sha512"))]
    pub tsig_algorithm: String,
    /// The Secret key holding the base64 TSIG secret.
    pub tsig_secret_ref: SecretKeyRef,
}

fn default_tsig_algorithm() -> String {
    "hmac-sha256".to_string()
}

/// A key of a Secret in the SendingDomain's namespace.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// When DKIM keys rotate. Rotation on demand: set the annotation `mailwarden.io/rotate-dkim`
/// to a new value.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DkimSpec {
    /// Days between rotations.
    #[serde(default = "default_rotation_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub rotation_period_days: u32,
    /// Days a replaced selector stays published so that mail in flight still verifies.
    #[serde(default = "default_grace_days")]
    #[schemars(range(min = 1, max = 90))]
    pub grace_period_days: u32,
}

impl Default for DkimSpec {
    fn default() -> Self {
        Self {
            rotation_period_days: default_rotation_days(),
            grace_period_days: default_grace_days(),
        }
    }
}

fn default_rotation_days() -> u32 {
    90
}

fn default_grace_days() -> u32 {
    7
}

/// The SPF record at the domain.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpfSpec {
    /// What to do when the domain already has an SPF record the operator did not create:
    /// `Merge` publishes one record with both sets of mechanisms (and restores the original
    /// when this SendingDomain is deleted); `Refuse` publishes no SPF record and reports a
    /// `Conflict` showing the existing value. Required: there is no safe default.
    pub conflict_policy: SpfConflictPolicy,
    /// Other senders to include, for example `_spf.example.net`.
    #[serde(default)]
    #[schemars(length(max = 10), inner(length(max = 253)))]
    pub includes: Vec<String>,
    /// `Fail` ends the record with `-all`, `SoftFail` with `~all`.
    #[serde(default = "default_all")]
    pub all: SpfAll,
}

fn default_all() -> SpfAll {
    SpfAll::Fail
}

#[derive(JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpfConflictPolicy {
    Merge,
    Refuse,
}

#[derive(JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpfAll {
    Fail,
    SoftFail,
}

/// The DMARC record.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DmarcSpec {
    /// `none`, `quarantine` or `reject`: what receivers do with mail that fails DMARC.
    pub policy: DmarcDisposition,
    /// The same for subdomains; omitted means as `policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain_policy: Option<DmarcDisposition>,
    /// Percentage of failing mail the policy applies to (0 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub percent: Option<u8>,
    /// `mailto:` URIs receiving aggregate reports (`rua`). An address in another domain needs
    /// that domain to authorize it; status shows whether it does.
    #[serde(default)]
    #[x_kube(validation = Rule::new(format!("self.all(u, u.matches(r'{MAILTO}'))")).message("spec.dmarc.aggregateReports must be mailto: URIs such as mailto:dmarc@example.org"))]
    #[schemars(length(max = 8), inner(length(max = 254)))]
    pub aggregate_reports: Vec<String>,
    /// `mailto:` URIs receiving failure reports (`ruf`).
    #[serde(default)]
    #[x_kube(validation = Rule::new(format!("self.all(u, u.matches(r'{MAILTO}'))")).message("spec.dmarc.failureReports must be mailto: URIs such as mailto:dmarc@example.org"))]
    #[schemars(length(max = 8), inner(length(max = 254)))]
    pub failure_reports: Vec<String>,
    /// Require strict DKIM and SPF alignment (`adkim=s; aspf=s`).
    #[serde(default)]
    pub strict_alignment: bool,
}

#[derive(JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcDisposition {
    None,
    Quarantine,
    Reject,
}

/// The MTA-STS policy of the domain.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MtaStsSpec {
    /// `enforce`, `testing` or `none`.
    pub mode: MtaStsMode,
    /// MX host patterns the policy allows, for example `mx1.example.org` or `*.example.org`.
    #[schemars(length(min = 1, max = 10), inner(length(max = 253)))]
    #[x_kube(validation = Rule::new(format!("self.all(m, m.matches(r'{MX_PATTERN}'))")).message("spec.mtaSts.mx must be lower-case host names, optionally starting with one '*.' label, such as mx1.example.org or *.example.org"))]
    pub mx: Vec<String>,
    /// How long senders cache the policy, in seconds.
    #[serde(default = "default_max_age")]
    #[schemars(range(min = 86400, max = 31557600))]
    pub max_age_seconds: u32,
}

fn default_max_age() -> u32 {
    604800
}

#[derive(JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtaStsMode {
    Enforce,
    Testing,
    None,
}

mod status;
pub use status::*;

#[cfg(test)]
mod tests;
