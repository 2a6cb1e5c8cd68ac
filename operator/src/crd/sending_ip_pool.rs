//! `SendingIPPool`: public addresses that tenants' relays send from, each owned by one tenant.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// A pool of public IP addresses for outbound mail. A tenant's reputation rides on its
/// addresses, so each address belongs to at most one tenant at a time; a conflict is reported in
/// status, never resolved silently. Cluster-scoped.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "mailwarden.io",
    doc = "Public addresses tenants' relays send from, each allocated to one tenant at a time.",
    version = "v1alpha1",
    kind = "SendingIPPool",
    plural = "sendingippools",
    shortname = "mwip",
    category = "mailwarden",
    status = "SendingIPPoolStatus",
    printcolumn(name = "Egress", type_ = "string", json_path = ".spec.egress.mode"),
    printcolumn(
        name = "Allocated",
        type_ = "integer",
        json_path = ".status.allocatedCount"
    ),
    printcolumn(name = "Free", type_ = "integer", json_path = ".status.freeCount"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SendingIPPoolSpec {
    /// Addresses (`192.0.2.10`, `2001:db8::10`) or CIDR ranges (`192.0.2.0/28`) in the pool.
    #[schemars(length(min = 1, max = 64), inner(length(max = 64)))]
    #[x_kube(validation = Rule::new("self.all(a, isIP(a) || isCIDR(a))").message("spec.addresses must be IP addresses or CIDR ranges such as 192.0.2.10 or 192.0.2.0/28"))]
    #[x_kube(validation = Rule::new("self.all(a, isIP(a) ? ip(a).isGlobalUnicast() : !isCIDR(a) || cidr(a).ip().isGlobalUnicast())").message("spec.addresses must be unicast addresses a mail server can send from: not loopback, link-local (such as the 169.254.169.254 metadata address), multicast, broadcast or unspecified"))]
    pub addresses: Vec<String>,

    /// How a relay's traffic is made to leave from its allocated addresses.
    pub egress: EgressSpec,

    /// Optional daily sending limits while a new address builds reputation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<Warmup>,
}

/// The egress mechanism.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressSpec {
    /// `SourceBinding`: the relay binds its outgoing connections to the address (the address
    /// must be routed to the node). `CiliumEgressGateway`: the operator writes a
    /// CiliumEgressGatewayPolicy per tenant.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.egress.mode is immutable once set"))]
    pub mode: EgressMode,
    /// For `CiliumEgressGateway`: labels selecting the gateway nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_node_labels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EgressMode {
    SourceBinding,
    CiliumEgressGateway,
}

/// A warm-up schedule: the daily message limit for a newly allocated address, doubling each day
/// from `initialDailyLimit` until it reaches `targetDailyLimit`.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.targetDailyLimit >= self.initialDailyLimit").message("spec.warmup.targetDailyLimit must not be below initialDailyLimit"))]
pub struct Warmup {
    /// Messages per day a newly allocated address may send on its first day.
    #[schemars(range(min = 1))]
    pub initial_daily_limit: u32,
    /// The daily limit the doubling stops at, once the address has a sending reputation.
    #[schemars(range(min = 1))]
    pub target_daily_limit: u32,
}

/// Which address belongs to which tenant.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendingIPPoolStatus {
    #[serde(default)]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub observed_generation: i64,
    /// Each allocated address and the tenant (`namespace/name`) that owns it.
    #[serde(default)]
    pub allocations: Vec<Allocation>,
    #[serde(default)]
    pub allocated_count: u32,
    #[serde(default)]
    pub free_count: u32,
}

#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    pub address: String,
    pub tenant: String,
}
