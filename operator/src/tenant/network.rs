//! NetworkPolicies that isolate the relay.
//!
//! Three policies select the relay pods: one denies all traffic in and out, one admits the
//! submitters to the submission ports, one lets the relay reach cluster DNS and remote mail
//! servers. Policies are additive, so the deny policy is what remains if the others are
//! removed. The policies select only the relay's pods, never the whole namespace, so a tenant's
//! own applications in the same namespace keep their own policies.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

use super::relay::{SUBMISSION_PORT, SUBMISSIONS_PORT};
use super::{Names, owned_meta, selector_labels};
use crate::crd::MailTenant;
use crate::crd::mail_tenant::Submitter;

/// Link-local and cloud metadata addresses the relay must never reach, whatever the port.
pub const DENIED_V4: [&str; 2] = ["169.254.0.0/16", "100.100.100.200/32"];
pub const DENIED_V6: [&str; 2] = ["fe80::/10", "fd00:ec2::254/128"];
/// Private and shared ranges, where cluster Pods and Services live. Recipients' MX hosts are
/// public, so direct delivery never needs them; a smarthost may be private, so its mode keeps
/// them open.
pub const PRIVATE_V4: [&str; 4] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
];
pub const PRIVATE_V6: [&str; 1] = ["fc00::/7"];

/// HTTPS, for fetching recipients' MTA-STS policies (RFC 8461) in direct delivery.
const MTA_STS_POLICY_PORT: u16 = 443;
const SMTP_PORT: u16 = 25;

pub fn network_policies(tenant: &MailTenant) -> [NetworkPolicy; 3] {
    let names = Names::of(tenant);
    let pods = json!({ "matchLabels": selector_labels(&names) });
    let policy = |suffix: &str, spec: Value| -> NetworkPolicy {
        let mut object = json!({ "spec": spec });
        object["metadata"] =
            serde_json::to_value(owned_meta(tenant, format!("{}-{suffix}", names.relay())))
                .expect("metadata");
        serde_json::from_value(object).expect("NetworkPolicy literal")
    };

    let deny = policy(
        "deny-all",
        json!({ "podSelector": pods, "policyTypes": ["Ingress", "Egress"] }),
    );

    let submitters: Vec<Value> = tenant.spec.submitters.iter().map(peer).collect();
    let ingress = if submitters.is_empty() {
        json!([])
    } else {
        json!([{
            "from": submitters,
            "ports": [
                { "protocol": "TCP", "port": SUBMISSIONS_PORT },
                { "protocol": "TCP", "port": SUBMISSION_PORT },
            ],
        }])
    };
    let submission = policy(
        "allow-submission",
        json!({ "podSelector": pods, "policyTypes": ["Ingress"], "ingress": ingress }),
    );

    let (remote_ports, except_v4, except_v6): (Vec<u16>, Vec<&str>, Vec<&str>) =
        match &tenant.spec.delivery.smarthost {
            Some(smarthost) => (vec![smarthost.port], DENIED_V4.to_vec(), DENIED_V6.to_vec()),
            None => (
                vec![SMTP_PORT, MTA_STS_POLICY_PORT],
                [DENIED_V4.as_slice(), PRIVATE_V4.as_slice()].concat(),
                [DENIED_V6.as_slice(), PRIVATE_V6.as_slice()].concat(),
            ),
        };
    let egress = policy(
        "allow-egress",
        json!({
            "podSelector": pods,
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{
                        "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } },
                        "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } },
                    }],
                    "ports": [
                        { "protocol": "UDP", "port": 53 },
                        { "protocol": "TCP", "port": 53 },
                    ],
                },
                {
                    "to": [
                        { "ipBlock": { "cidr": "0.0.0.0/0", "except": except_v4 } },
                        { "ipBlock": { "cidr": "::/0", "except": except_v6 } },
                    ],
                    "ports": remote_ports
                        .iter()
                        .map(|port| json!({ "protocol": "TCP", "port": port }))
                        .collect::<Vec<_>>(),
                },
            ],
        }),
    );
    [deny, submission, egress]
}

/// A submitter as a NetworkPolicy peer. Without a namespace selector the peer is limited to the
/// tenant's own namespace; without a pod selector it is every pod of the selected namespaces.
fn peer(submitter: &Submitter) -> Value {
    let pods = submitter
        .pod_selector
        .as_ref()
        .map(|s| serde_json::to_value(s).expect("selector"))
        .unwrap_or_else(|| json!({}));
    match &submitter.namespace_selector {
        Some(namespaces) => json!({ "namespaceSelector": namespaces, "podSelector": pods }),
        None => json!({ "podSelector": pods }),
    }
}
