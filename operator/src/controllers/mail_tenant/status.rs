//! The MailTenant's status, derived only from what was issued, applied and observed.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;
use mailwarden_relay_config::DkimAlgorithm as RelayAlgorithm;

use crate::crd::mail_tenant::{CertificateStatus, ClientCertificateStatus};
use crate::crd::sending_domain::SendingDomain;
use crate::crd::{Condition, MailTenant, MailTenantStatus, find_condition as find};
use crate::dkim::DkimAlgorithm;
use crate::pki::{self, Issued};
use crate::tenant::{Names, SigningDomain, SigningSelector};

pub const READY: &str = "Ready";
pub const PKI_READY: &str = "PKIReady";
pub const RELAY_READY: &str = "RelayReady";
pub const NETWORK_ISOLATED: &str = "NetworkIsolated";
pub const IPS_ALLOCATED: &str = "IPsAllocated";

/// Longest wait between two reconciles of a healthy tenant.
const RESYNC: Duration = Duration::from_secs(3600);

/// The MailTenant that owns a namespace: one already admitted (it has issued certificates)
/// keeps it; otherwise the oldest, then the first by name. Tenants being deleted give way.
pub fn namespace_owner(tenants: &[MailTenant]) -> Option<&MailTenant> {
    let admitted = |t: &MailTenant| {
        let conditions = t
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        find(conditions, PKI_READY).is_some()
    };
    tenants
        .iter()
        .filter(|tenant| tenant.metadata.deletion_timestamp.is_none())
        .min_by(|a, b| {
            let created = |t: &MailTenant| t.metadata.creation_timestamp.clone().map(|c| c.0);
            admitted(b)
                .cmp(&admitted(a))
                .then_with(|| created(a).cmp(&created(b)))
                .then_with(|| a.name_any().cmp(&b.name_any()))
        })
}

/// Conditions of a tenant refused because its namespace already has one.
pub fn duplicate(namespace: &str, owner: &str) -> Vec<Condition> {
    vec![Condition::new(
        READY,
        false,
        "DuplicateTenant",
        format!(
            "namespace {namespace} already has MailTenant {owner}; a namespace holds one tenant, \
             so nothing was created for this one. Delete it, or move it to its own namespace"
        ),
    )]
}

/// Conditions after a failed reconcile: Ready is False with the error's category.
pub fn failed(category: &str, message: &str) -> Vec<Condition> {
    vec![Condition::new(READY, false, category, message)]
}

/// What the SendingDomains of the namespace give the relay to sign with.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SigningDomains {
    /// Domains whose keys are verified in DNS.
    pub signing: Vec<SigningDomain>,
    /// Domains without verified keys yet; the relay refuses their mail until then.
    pub waiting: Vec<String>,
}

pub fn signing_domains(domains: &[SendingDomain]) -> SigningDomains {
    let mut result = SigningDomains::default();
    for domain in domains {
        let signing = domain
            .status
            .as_ref()
            .and_then(|s| s.relay_signing.as_ref());
        match signing {
            Some(signing) if !signing.selectors.is_empty() => {
                result.signing.push(SigningDomain {
                    domain: domain.spec.domain.clone(),
                    secret_name: signing.secret_name.clone(),
                    selectors: signing
                        .selectors
                        .iter()
                        .map(|selector| SigningSelector {
                            name: selector.name.clone(),
                            algorithm: match selector.algorithm {
                                DkimAlgorithm::RsaSha256 => RelayAlgorithm::RsaSha256,
                                DkimAlgorithm::Ed25519Sha256 => RelayAlgorithm::Ed25519Sha256,
                            },
                            secret_key: selector.key.clone(),
                        })
                        .collect(),
                });
            }
            _ => result.waiting.push(domain.spec.domain.clone()),
        }
    }
    result.signing.sort_by(|a, b| a.domain.cmp(&b.domain));
    result.waiting.sort();
    result
}

/// The tenant's share of the SendingIPPool it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addresses {
    NotRequested,
    PoolMissing {
        pool: String,
    },
    /// The pool's egress mode is one this operator does not configure.
    Unsupported {
        pool: String,
    },
    Allocated {
        pool: String,
        wanted: u32,
        addresses: Vec<std::net::IpAddr>,
    },
}

impl Addresses {
    /// The addresses the relay binds to.
    pub fn bound(&self) -> &[std::net::IpAddr] {
        match self {
            Addresses::Allocated { addresses, .. } => addresses,
            _ => &[],
        }
    }

    fn condition(&self) -> Option<Condition> {
        let condition = match self {
            Addresses::NotRequested => return None,
            Addresses::PoolMissing { pool } => Condition::new(
                IPS_ALLOCATED,
                false,
                "PoolNotFound",
                format!("SendingIPPool {pool} does not exist"),
            ),
            Addresses::Unsupported { pool } => Condition::new(
                IPS_ALLOCATED,
                false,
                "EgressModeUnsupported",
                format!(
                    "SendingIPPool {pool} uses CiliumEgressGateway, which this operator version \
                     does not configure; use SourceBinding"
                ),
            ),
            Addresses::Allocated {
                pool,
                wanted,
                addresses,
            } if addresses.len() < *wanted as usize => Condition::new(
                IPS_ALLOCATED,
                false,
                "WaitingForAddresses",
                format!(
                    "{} of {wanted} addresses allocated from SendingIPPool {pool}; its status \
                         says why",
                    addresses.len()
                ),
            ),
            Addresses::Allocated {
                pool, addresses, ..
            } => {
                let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                Condition::new(
                    IPS_ALLOCATED,
                    true,
                    "Allocated",
                    format!("{} from SendingIPPool {pool}", list.join(", ")),
                )
            }
        };
        Some(condition)
    }
}

/// The status after a successful apply.
pub struct Observed {
    pub conditions: Vec<Condition>,
    pub fields: MailTenantStatus,
}

pub fn observed(
    tenant: &MailTenant,
    issued: &Issued,
    set: Option<&StatefulSet>,
    waiting_domains: &[String],
    addresses: &Addresses,
    foreign_policies: &[String],
) -> Observed {
    let names = Names::of(tenant);
    let certificates = certificate_status(issued);
    let pki = Condition::new(
        PKI_READY,
        true,
        "CertificatesIssued",
        format!(
            "CA valid until {}; server certificate valid until {}; {} client certificate(s)",
            certificates.ca_not_after,
            certificates.server_not_after,
            certificates.clients.len()
        ),
    );

    let (relay, ready_replicas) = relay_condition(tenant, set);

    let submitters = tenant.spec.submitters.len();
    let network = if foreign_policies.is_empty() {
        Condition::new(
            NETWORK_ISOLATED,
            true,
            "PoliciesApplied",
            format!(
                "relay pods deny all traffic except submission from {submitters} submitter \
                 selector(s), cluster DNS and outbound mail"
            ),
        )
    } else {
        Condition::new(
            NETWORK_ISOLATED,
            false,
            "ForeignPolicySelectsRelay",
            format!(
                "NetworkPolicy {} also selects the relay pods; policies add up, so it may allow \
                 traffic the tenant's policies deny. Narrow its podSelector or remove it",
                foreign_policies.join(", ")
            ),
        )
    };

    let ips = addresses.condition();
    let failing = [Some(&pki), Some(&relay), Some(&network), ips.as_ref()]
        .into_iter()
        .flatten()
        .find(|c| !c.is_true());
    let ready = match failing {
        Some(condition) => Condition::new(
            READY,
            false,
            &condition.reason,
            format!("{}: {}", condition.type_, condition.message),
        ),
        None if waiting_domains.is_empty() => Condition::new(
            READY,
            true,
            "TenantReady",
            "relay running with verified certificates",
        ),
        None => Condition::new(
            READY,
            true,
            "TenantReady",
            format!(
                "relay running; mail from {} is refused until its DKIM keys are verified",
                waiting_domains.join(", ")
            ),
        ),
    };

    let mut conditions = vec![ready, pki, relay, network];
    conditions.extend(ips);
    Observed {
        conditions,
        fields: MailTenantStatus {
            ready_replicas,
            allocated_ips: addresses.bound().iter().map(ToString::to_string).collect(),
            certificates: Some(certificates),
            submission_endpoint: Some(names.submission_endpoint()),
            ..MailTenantStatus::default()
        },
    }
}

/// NetworkPolicies of the namespace, other than the tenant's own, that select the relay pods. A
/// selector with expressions is counted as selecting them: whether it does depends on labels
/// the operator does not control.
pub fn foreign_policies(
    policies: &[k8s_openapi::api::networking::v1::NetworkPolicy],
    names: &Names,
) -> Vec<String> {
    let pod_labels = crate::tenant::labels(names);
    let ours = format!("{}-", names.relay());
    let mut foreign: Vec<String> = policies
        .iter()
        .filter(|policy| !policy.name_any().starts_with(&ours))
        .filter(|policy| {
            let selector = policy
                .spec
                .as_ref()
                .and_then(|spec| spec.pod_selector.clone())
                .unwrap_or_default();
            let expressions = selector.match_expressions.unwrap_or_default();
            let labels = selector.match_labels.unwrap_or_default();
            !expressions.is_empty() || labels.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
        })
        .map(|policy| policy.name_any())
        .collect();
    foreign.sort();
    foreign
}

/// RelayReady from the StatefulSet's own status: every replica updated to the current
/// revision and ready.
fn relay_condition(tenant: &MailTenant, set: Option<&StatefulSet>) -> (Condition, i32) {
    let wanted = tenant.spec.relay.replicas;
    let Some(set) = set else {
        return (
            Condition::new(
                RELAY_READY,
                false,
                "RelayPending",
                "the relay StatefulSet does not exist yet",
            ),
            0,
        );
    };
    let status = set.status.clone().unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let current_generation = status.observed_generation >= set.metadata.generation;
    let rolled = current_generation
        && updated >= wanted
        && status.update_revision.is_some()
        && status.current_revision == status.update_revision;
    let condition = if !rolled {
        Condition::new(
            RELAY_READY,
            false,
            "RollingOut",
            format!(
                "{updated} of {wanted} relay pods run the current configuration, {ready} ready"
            ),
        )
    } else if ready < wanted {
        Condition::new(
            RELAY_READY,
            false,
            "ReplicasNotReady",
            format!("{ready} of {wanted} relay pods are ready"),
        )
    } else {
        Condition::new(
            RELAY_READY,
            true,
            "ReplicasReady",
            format!("{ready} of {wanted} relay pods are ready"),
        )
    };
    (condition, ready)
}

fn rfc3339(timestamp: i64) -> String {
    DateTime::<Utc>::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn not_after(pem: &str) -> i64 {
    pki::parse_certs(pem)
        .first()
        .map(|c| c.not_after)
        .unwrap_or_default()
}

fn certificate_status(issued: &Issued) -> CertificateStatus {
    CertificateStatus {
        ca_not_after: rfc3339(not_after(&issued.ca.cert_pem)),
        server_not_after: rfc3339(not_after(&issued.server.cert_pem)),
        clients: issued
            .clients
            .iter()
            .map(|(name, leaf)| ClientCertificateStatus {
                name: name.clone(),
                not_after: rfc3339(not_after(&leaf.cert_pem)),
            })
            .collect(),
        trusted_cas: pki::parse_certs(&issued.bundle_pem).len() as u32,
    }
}

/// When to look again: at the earliest renewal point of any certificate, within the resync.
pub fn next_check(issued: &Issued) -> Duration {
    let now = Utc::now().timestamp();
    std::iter::once(&issued.ca.cert_pem)
        .chain(std::iter::once(&issued.server.cert_pem))
        .chain(issued.clients.values().map(|leaf| &leaf.cert_pem))
        .filter_map(|pem| pki::parse_certs(pem).into_iter().next())
        .map(|info| info.not_after - (info.not_after - info.not_before) / 3)
        // The end of a CA rotation's grace period, when leaves move to the new CA.
        .chain(
            issued
                .ca
                .rotated_at
                .map(|at| at + pki::BUNDLE_GRACE_SECONDS)
                .filter(|at| *at > now),
        )
        .map(|at| Duration::from_secs((at - now).max(1) as u64 + 1))
        .fold(RESYNC, Duration::min)
}

#[cfg(test)]
mod tests;
