//! What a MailTenant needs, as pure functions from its spec to Kubernetes objects.
//!
//! Nothing here talks to the API server: the controller reads the cluster, calls these
//! functions and applies their result, so every object can be tested from fixtures.

mod config;
mod credentials;
mod network;
mod relay;
mod secrets;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use mailwarden_relay_config::DkimAlgorithm;

pub use config::relay_config;
pub use credentials::{client_passwords, credentials_file, smtp_auth_required};
pub use network::network_policies;
pub use relay::{
    ADMIN_PORT, SUBMISSION_PORT, SUBMISSIONS_PORT, config_map, pod_disruption_budget, services,
    stateful_set,
};
pub use secrets::{
    ca_secret, client_secret, credentials_secret, leaf_secret, read_ca, read_leaf, read_password,
};

use crate::crd::MailTenant;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "mailwarden";
/// Pod template annotation holding the hash of the relay's configuration and Secrets.
pub const CONFIG_HASH_ANNOTATION: &str = "mailwarden.io/config-hash";
/// Label naming the tenant that owns an object.
pub const TENANT_LABEL: &str = "mailwarden.io/tenant";

/// A sending domain the relay signs for, as the SendingDomain controller reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningDomain {
    pub domain: String,
    /// Secret in the tenant's namespace holding the domain's DKIM private keys.
    pub secret_name: String,
    pub selectors: Vec<SigningSelector>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningSelector {
    pub name: String,
    pub algorithm: DkimAlgorithm,
    /// Key of the Secret holding this selector's PKCS#8 PEM private key.
    pub secret_key: String,
}

/// Names of the objects one tenant owns, all derived from the MailTenant's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub tenant: String,
    pub namespace: String,
}

impl Names {
    pub fn of(tenant: &MailTenant) -> Self {
        Self {
            tenant: tenant.metadata.name.clone().unwrap_or_default(),
            namespace: tenant.metadata.namespace.clone().unwrap_or_default(),
        }
    }
    pub fn relay(&self) -> String {
        format!("{}-relay", self.tenant)
    }
    pub fn headless(&self) -> String {
        format!("{}-relay-pods", self.tenant)
    }
    pub fn config(&self) -> String {
        format!("{}-relay-config", self.tenant)
    }
    pub fn ca_secret(&self) -> String {
        format!("{}-ca", self.tenant)
    }
    pub fn server_secret(&self) -> String {
        format!("{}-relay-tls", self.tenant)
    }
    pub fn client_secret(&self, client: &str) -> String {
        format!("{}-client-{client}", self.tenant)
    }
    /// The digests of the clients' SMTP AUTH passwords, mounted by the relay.
    pub fn credentials_secret(&self) -> String {
        format!("{}-relay-credentials", self.tenant)
    }
    /// DNS names the relay's certificate must carry: the public name, then the Service's
    /// in-cluster names.
    pub fn server_dns_names(&self, hostname: &str) -> Vec<String> {
        let (relay, ns) = (self.relay(), &self.namespace);
        vec![
            hostname.to_string(),
            format!("{relay}.{ns}.svc"),
            format!("{relay}.{ns}.svc.cluster.local"),
        ]
    }
    pub fn submission_endpoint(&self) -> String {
        format!("{}.{}.svc:{SUBMISSIONS_PORT}", self.relay(), self.namespace)
    }
}

/// Labels that select the tenant's relay pods.
pub fn selector_labels(names: &Names) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "mailwarden-relay".to_string(),
        ),
        (
            "app.kubernetes.io/instance".to_string(),
            names.tenant.clone(),
        ),
    ])
}

/// Labels on every object the operator creates for a tenant.
pub fn labels(names: &Names) -> BTreeMap<String, String> {
    let mut labels = selector_labels(names);
    labels.insert("app.kubernetes.io/managed-by".into(), "mailwarden".into());
    labels.insert(TENANT_LABEL.into(), names.tenant.clone());
    labels
}

/// Metadata of an owned object: name, namespace, labels and the owner reference that lets
/// garbage collection remove it with the tenant.
pub fn owned_meta(tenant: &MailTenant, name: String) -> ObjectMeta {
    let names = Names::of(tenant);
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(labels(&names)),
        owner_references: Some(vec![owner_reference(tenant)]),
        ..ObjectMeta::default()
    }
}

fn owner_reference(tenant: &MailTenant) -> OwnerReference {
    tenant
        .controller_owner_ref(&())
        .expect("a stored MailTenant has a name and uid")
}

#[cfg(test)]
mod tests;
