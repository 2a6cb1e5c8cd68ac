//! `MailTenant`: one tenant's dedicated relay, PKI and network isolation, one per namespace.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;
use super::rules;

/// A tenant of the mail platform. Applying one in a namespace gives that namespace its own
/// SMTP relay that accepts mail only over mutual TLS from the workloads listed in `submitters`,
/// a private certificate authority issuing the relay's and the clients' certificates, and
/// NetworkPolicies that deny everything else. The namespace is the tenant boundary: a second
/// MailTenant in the same namespace is refused.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "mailwarden.io",
    doc = "A mail tenant: its own SMTP relay accepting mail only over mutual TLS, a private CA, and NetworkPolicies denying everything else, one per namespace.",
    version = "v1alpha1",
    kind = "MailTenant",
    plural = "mailtenants",
    shortname = "mt",
    category = "mailwarden",
    namespaced,
    status = "MailTenantStatus",
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
        name = "Hostname",
        type_ = "string",
        json_path = ".spec.relay.hostname"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.readyReplicas"
    ),
    printcolumn(
        name = "Server-Cert-Expiry",
        type_ = "string",
        json_path = ".status.certificates.serverNotAfter",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[kube(validation = Rule::new("self.metadata.name.size() <= 40 && !self.metadata.name.contains('.')").message("metadata.name of a MailTenant must be at most 40 characters without dots: it prefixes the names of the relay's Services and pods"))]
#[serde(rename_all = "camelCase")]
pub struct MailTenantSpec {
    /// The relay that accepts this tenant's mail.
    pub relay: RelaySpec,

    /// Workloads allowed to connect to the relay's submission ports. Each entry admits the pods
    /// that match both its namespace selector and its pod selector; an omitted selector means the
    /// tenant's own namespace or all pods in the selected namespaces. No entry means no workload
    /// can submit.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub submitters: Vec<Submitter>,

    /// Client identities to issue certificates for. Each gets a Secret
    /// `<tenant>-client-<name>` holding `tls.crt`, `tls.key` and `ca.crt`, to mount into the
    /// application that sends mail.
    #[serde(default)]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub clients: Vec<ClientIdentity>,

    /// Lifetimes of the tenant's certificates. Each is re-issued when a third of its lifetime
    /// is left.
    #[serde(default)]
    pub certificates: CertificateSettings,

    /// How accepted mail leaves the relay.
    #[serde(default)]
    pub delivery: DeliverySpec,

    /// The SendingIPPool to draw dedicated sending addresses from, if any.
    #[serde(
        default,
        rename = "sendingIPPool",
        skip_serializing_if = "Option::is_none"
    )]
    pub sending_ip_pool: Option<SendingIPPoolRef>,

    /// Name of the cluster-scoped BackupPolicy that protects this tenant's spool and audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub backup_policy: Option<String>,
}

/// The relay workload.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName)").message("spec.relay.storageClassName cannot be added or removed after creation"))]
pub struct RelaySpec {
    /// Public DNS name of the relay. It is the name in the SMTP greeting and a subject
    /// alternative name of the relay's certificate, next to the in-cluster Service names.
    #[schemars(length(max = 253))]
    #[x_kube(validation = rules::dns_name("spec.relay.hostname"), validation = rules::dns_label_lengths("spec.relay.hostname"))]
    pub hostname: String,

    /// Number of relay pods, spread across zones. At least 2 keeps mail flowing through a node
    /// drain (a PodDisruptionBudget keeps one available).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 10))]
    pub replicas: i32,

    /// Container image of the relay.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// Size of each pod's spool volume, where accepted mail waits until delivered. Immutable,
    /// because a StatefulSet cannot change its volume claims.
    #[serde(default = "default_spool_size")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = rules::immutable("spec.relay.spoolSize"), validation = rules::storage_size("spec.relay.spoolSize"))]
    pub spool_size: String,

    /// StorageClass of the spool volumes; the cluster default when omitted. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = rules::immutable("spec.relay.storageClassName"))]
    pub storage_class_name: Option<String>,

    /// CPU and memory for the relay container; requests of 100m CPU and 128Mi memory and a
    /// limit of 512Mi memory when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Largest message accepted, in bytes.
    #[serde(default = "default_max_message_bytes")]
    #[schemars(range(min = 1024, max = 157286400))]
    pub max_message_bytes: u64,

    /// Most recipients in one message.
    #[serde(default = "default_max_recipients")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_recipients: u32,

    /// SMTP AUTH as a second factor. `Disabled` (the default): the client certificate alone
    /// authenticates. `Required`: after presenting its certificate, every client must also log
    /// in with `AUTH PLAIN` as its own name, using the `username` and `password` the operator
    /// adds to its Secret `<tenant>-client-<name>`; a password never works without the
    /// certificate of the same client.
    #[serde(default)]
    pub smtp_auth: SmtpAuthMode,
}

#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SmtpAuthMode {
    #[default]
    Disabled,
    Required,
}

/// Workloads admitted to the relay's submission ports.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Submitter {
    /// Namespaces whose pods may submit; the tenant's own namespace when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Pods, within those namespaces, that may submit; all of them when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
}

/// An application identity that receives a client certificate.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientIdentity {
    /// Name of the identity, unique in the list; it becomes the certificate's common name and
    /// appears in the relay's audit log for every message the client sends.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = rules::dns_label("spec.clients[].name"))]
    pub name: String,
}

/// Certificate lifetimes, in days.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.leafValidityDays < self.caValidityDays").message("spec.certificates.leafValidityDays must be shorter than caValidityDays"))]
pub struct CertificateSettings {
    /// Lifetime of the tenant's CA certificate.
    #[serde(default = "default_ca_days")]
    #[schemars(range(min = 30, max = 3650))]
    pub ca_validity_days: u32,
    /// Lifetime of the relay's server certificate and of each client certificate.
    #[serde(default = "default_leaf_days")]
    #[schemars(range(min = 1, max = 825))]
    pub leaf_validity_days: u32,
}

impl Default for CertificateSettings {
    fn default() -> Self {
        Self {
            ca_validity_days: default_ca_days(),
            leaf_validity_days: default_leaf_days(),
        }
    }
}

/// Delivery of accepted mail.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySpec {
    /// Hand all mail to this upstream instead of delivering to each recipient's MX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smarthost: Option<Smarthost>,

    /// What the relay requires of a destination that publishes neither an MTA-STS policy nor
    /// DANE records: `Verify` (STARTTLS with a verified certificate) or `EncryptOnly` (STARTTLS
    /// without certificate verification). Plaintext delivery is never allowed.
    #[serde(default)]
    pub fallback_tls: FallbackTls,
}

#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FallbackTls {
    #[default]
    Verify,
    EncryptOnly,
}

/// An upstream relay reached over TLS.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Smarthost {
    /// DNS name of the upstream.
    #[schemars(length(max = 253))]
    #[x_kube(validation = rules::dns_name("spec.delivery.smarthost.host"), validation = rules::dns_label_lengths("spec.delivery.smarthost.host"))]
    pub host: String,
    /// Submission port of the upstream: 465 (implicit TLS) or 587 (STARTTLS).
    #[serde(default = "default_smarthost_port")]
    #[x_kube(validation = Rule::new("self == 465 || self == 587").message("spec.delivery.smarthost.port must be 465 or 587"))]
    pub port: u16,
    /// Secret in the tenant's namespace with `username` and `password` for the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub credentials_secret: Option<String>,
}

/// A reference to a cluster-scoped SendingIPPool.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendingIPPoolRef {
    /// Name of the SendingIPPool.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// How many dedicated addresses this tenant needs.
    #[serde(default = "default_ip_count")]
    #[schemars(range(min = 1, max = 16))]
    pub count: u32,
}

/// What the operator observed and did.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailTenantStatus {
    /// `Ready`, `PKIReady`, `RelayReady`, `NetworkIsolated` and, when `spec.sendingIPPool` is
    /// set, `IPsAllocated`; each with a reason and message.
    #[serde(default)]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// Relay pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Expiry of the tenant's certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificateStatus>,
    /// Dedicated sending addresses allocated from `spec.sendingIPPool`; the relay sends from
    /// them and the SendingDomains publish them in SPF.
    #[serde(
        default,
        rename = "allocatedIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allocated_ips: Vec<String>,
    /// In-cluster address of the submission Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission_endpoint: Option<String>,
}

/// Expiry dates (RFC 3339) of the tenant's certificates.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// The CA that currently issues the tenant's certificates.
    pub ca_not_after: String,
    /// The relay's server certificate.
    pub server_not_after: String,
    /// Each client certificate, by identity name.
    #[serde(default)]
    pub clients: Vec<ClientCertificateStatus>,
    /// Number of CA certificates in the trust bundle: 2 while a CA rotation is in progress.
    pub trusted_cas: u32,
}

#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertificateStatus {
    pub name: String,
    pub not_after: String,
}

fn default_replicas() -> i32 {
    2
}
fn default_image() -> String {
    "ghcr.io/mailwarden/relay:0.1.0".to_string()
}
fn default_spool_size() -> String {
    "10Gi".to_string()
}
fn default_max_message_bytes() -> u64 {
    25 * 1024 * 1024
}
fn default_max_recipients() -> u32 {
    100
}
fn default_ca_days() -> u32 {
    1825
}
fn default_leaf_days() -> u32 {
    90
}
fn default_smarthost_port() -> u16 {
    465
}
fn default_ip_count() -> u32 {
    1
}
