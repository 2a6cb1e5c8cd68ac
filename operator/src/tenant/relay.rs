//! The relay workload: its ConfigMap, StatefulSet, Services and PodDisruptionBudget.
//!
//! Objects are written as JSON in the shape a reader knows from YAML manifests and converted
//! into the typed k8s-openapi structs, which checks every field name at test time.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{Value, json};

use super::{Names, SigningDomain, owned_meta, selector_labels};
use crate::crd::MailTenant;

pub use mailwarden_relay_config::defaults::{ADMIN_PORT, SUBMISSION_PORT, SUBMISSIONS_PORT};
/// Seconds the pod gets to stop; the relay drains its sessions within [`DRAIN_SECONDS`].
pub const TERMINATION_GRACE_SECONDS: i64 = 60;
pub(super) const DRAIN_SECONDS: u64 = 45;
/// Non-root user and group the relay runs as: the image's own user.
pub const RELAY_UID: i64 = mailwarden_relay_config::defaults::RUN_AS_UID as i64;

pub(super) const CONFIG_DIR: &str = mailwarden_relay_config::defaults::CONFIG_DIR;
pub(super) const TLS_DIR: &str = "/etc/mailwarden/tls";
pub(super) const DKIM_DIR: &str = "/etc/mailwarden/dkim";
pub(super) const SMARTHOST_DIR: &str = "/etc/mailwarden/smarthost";
pub(super) const CREDENTIALS_DIR: &str = "/etc/mailwarden/credentials";
pub(super) const SPOOL_DIR: &str = "/var/spool/mailwarden";

fn typed<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("object literals match their k8s-openapi type")
}

fn with_meta(tenant: &MailTenant, name: String, mut object: Value) -> Value {
    object["metadata"] = serde_json::to_value(owned_meta(tenant, name)).expect("metadata");
    object
}

/// The ConfigMap holding `relay.toml`.
pub fn config_map(tenant: &MailTenant, relay_toml: &str) -> ConfigMap {
    let names = Names::of(tenant);
    typed(with_meta(
        tenant,
        names.config(),
        json!({ "data": { mailwarden_relay_config::CONFIG_FILE_NAME: relay_toml } }),
    ))
}

/// The submission Service (ClusterIP) and the headless Service that names the pods.
pub fn services(tenant: &MailTenant) -> [Service; 2] {
    let names = Names::of(tenant);
    let selector = selector_labels(&names);
    let ports = json!([
        { "name": "submissions", "port": SUBMISSIONS_PORT, "targetPort": "submissions", "protocol": "TCP" },
        { "name": "submission", "port": SUBMISSION_PORT, "targetPort": "submission", "protocol": "TCP" },
    ]);
    let submission = with_meta(
        tenant,
        names.relay(),
        json!({ "spec": { "type": "ClusterIP", "selector": selector, "ports": ports } }),
    );
    let headless = with_meta(
        tenant,
        names.headless(),
        json!({ "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": selector,
            "ports": ports,
        }}),
    );
    [typed(submission), typed(headless)]
}

/// Keeps at least one relay pod up through voluntary disruptions such as node drains.
pub fn pod_disruption_budget(tenant: &MailTenant) -> PodDisruptionBudget {
    let names = Names::of(tenant);
    typed(with_meta(
        tenant,
        names.relay(),
        json!({ "spec": {
            "maxUnavailable": 1,
            "selector": { "matchLabels": selector_labels(&names) },
        }}),
    ))
}

/// The relay StatefulSet. `config_hash` covers the configuration and the Secrets the pods
/// mount, so a change to any of them rolls the pods.
pub fn stateful_set(
    tenant: &MailTenant,
    domains: &[SigningDomain],
    config_hash: &str,
) -> StatefulSet {
    let names = Names::of(tenant);
    let spec = &tenant.spec.relay;
    let selector = selector_labels(&names);
    let mut pod_labels = super::labels(&names);
    pod_labels.extend(selector.clone());

    let resources = spec
        .resources
        .clone()
        .map(|r| serde_json::to_value(r).expect("resources"));
    let resources = resources.unwrap_or_else(|| {
        json!({ "requests": { "cpu": "100m", "memory": "128Mi" }, "limits": { "memory": "512Mi" } })
    });

    let mut volumes = vec![
        json!({ "name": "config", "configMap": { "name": names.config() } }),
        json!({ "name": "tls", "secret": { "secretName": names.server_secret(), "defaultMode": 0o440 } }),
        json!({ "name": "tmp", "emptyDir": { "sizeLimit": "64Mi" } }),
    ];
    let mut mounts = vec![
        json!({ "name": "config", "mountPath": super::relay::CONFIG_DIR, "readOnly": true }),
        json!({ "name": "tls", "mountPath": TLS_DIR, "readOnly": true }),
        json!({ "name": "spool", "mountPath": SPOOL_DIR }),
        json!({ "name": "tmp", "mountPath": "/tmp" }),
    ];
    if domains.iter().any(|domain| !domain.selectors.is_empty()) {
        volumes.push(json!({ "name": "dkim", "projected": {
            "defaultMode": 0o440,
            "sources": dkim_sources(domains),
        }}));
        mounts.push(json!({ "name": "dkim", "mountPath": DKIM_DIR, "readOnly": true }));
    }
    if super::smtp_auth_required(tenant) {
        volumes.push(json!({ "name": "credentials", "secret": { "secretName": names.credentials_secret(), "defaultMode": 0o440 } }));
        mounts
            .push(json!({ "name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": true }));
    }
    if let Some(secret) = tenant
        .spec
        .delivery
        .smarthost
        .as_ref()
        .and_then(|s| s.credentials_secret.as_ref())
    {
        volumes.push(json!({ "name": "smarthost", "secret": { "secretName": secret, "defaultMode": 0o440 } }));
        mounts.push(json!({ "name": "smarthost", "mountPath": SMARTHOST_DIR, "readOnly": true }));
    }

    let anti_affinity = |weight: i32, key: &str| {
        json!({ "weight": weight, "podAffinityTerm": {
            "topologyKey": key,
            "labelSelector": { "matchLabels": selector },
        }})
    };

    typed(with_meta(
        tenant,
        names.relay(),
        json!({ "spec": {
            "replicas": spec.replicas,
            "serviceName": names.headless(),
            "podManagementPolicy": "Parallel",
            "selector": { "matchLabels": selector },
            "persistentVolumeClaimRetentionPolicy": { "whenDeleted": "Delete", "whenScaled": "Retain" },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": { super::CONFIG_HASH_ANNOTATION: config_hash },
                },
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": RELAY_UID,
                        "runAsGroup": RELAY_UID,
                        "fsGroup": RELAY_UID,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "affinity": { "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            anti_affinity(100, "topology.kubernetes.io/zone"),
                            anti_affinity(50, "kubernetes.io/hostname"),
                        ],
                    }},
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": { "matchLabels": selector },
                    }],
                    "containers": [{
                        "name": "relay",
                        "image": spec.image,
                        "args": ["run", "--config", format!("{CONFIG_DIR}/{}", mailwarden_relay_config::CONFIG_FILE_NAME)],
                        "ports": [
                            { "name": "submissions", "containerPort": SUBMISSIONS_PORT, "protocol": "TCP" },
                            { "name": "submission", "containerPort": SUBMISSION_PORT, "protocol": "TCP" },
                            { "name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP" },
                        ],
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "capabilities": { "drop": ["ALL"] },
                            "seccompProfile": { "type": "RuntimeDefault" },
                        },
                        "readinessProbe": {
                            "httpGet": { "path": "/readyz", "port": "admin" },
                            "periodSeconds": 5,
                            "failureThreshold": 3,
                        },
                        "livenessProbe": {
                            "httpGet": { "path": "/healthz", "port": "admin" },
                            "periodSeconds": 10,
                            "failureThreshold": 6,
                        },
                        "resources": resources,
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "spool", "labels": selector },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": spec.storage_class_name,
                    "resources": { "requests": { "storage": spec.spool_size } },
                },
            }],
        }}),
    ))
}

/// One projected source per domain Secret, placing each selector's key at
/// `<domain>/<selector>.pem`, the path the relay configuration names.
fn dkim_sources(domains: &[SigningDomain]) -> Vec<Value> {
    let mut by_secret: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for domain in domains {
        for selector in &domain.selectors {
            by_secret
                .entry(&domain.secret_name)
                .or_default()
                .push(json!({
                    "key": selector.secret_key,
                    "path": format!("{}/{}.pem", domain.domain, selector.name),
                }));
        }
    }
    by_secret
        .into_iter()
        .map(|(secret, items)| json!({ "secret": { "name": secret, "items": items } }))
        .collect()
}
