//! The steps of one MailTenant reconcile, in order. Each reads what it needs, and only `apply`
//! (and `observe`, for the status) writes:
//! 1. admit: the oldest MailTenant of a namespace owns it; a later one only gets a condition;
//! 2. issue: read the PKI Secrets and decide what to renew ([`pki::plan`], pure), and the
//!    clients' SMTP AUTH passwords;
//! 3. build: the relay configuration from the spec, the namespace's SendingDomains and the
//!    tenant's sending addresses;
//! 4. apply: every desired object whose content changed, Secrets first; Secrets of removed
//!    clients go;
//! 5. observe: the StatefulSet's readiness and foreign NetworkPolicies, into the status.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::status::{self, Addresses, SigningDomains, signing_domains};
use super::{CONTROLLER, Error, read, write_status};
use crate::apply::{Outcome, apply};
use crate::controllers::Context;
use crate::crd::sending_domain::SendingDomain;
use crate::crd::sending_ip_pool::EgressMode;
use crate::crd::{MailTenant, SendingIPPool};
use crate::pki;
use crate::tenant::{self, Names};

/// Runs the steps for a tenant that is not being deleted.
pub(super) async fn apply_tenant(tenant: &MailTenant, context: &Context) -> Result<Action, Error> {
    let names = Names::of(tenant);
    if !admit(tenant, &names, context).await? {
        return Ok(Action::await_change());
    }
    let credentials = issue(tenant, &names, context).await?;
    let desired = build(tenant, &names, context, &credentials.issued).await?;
    apply_objects(tenant, &names, context, &credentials, &desired).await?;
    observe(tenant, &names, context, &credentials.issued, &desired).await
}

/// What `issue` decided: the certificates to hold, and each client's SMTP AUTH password (none
/// unless the spec requires SMTP AUTH).
struct Credentials {
    issued: pki::Issued,
    passwords: BTreeMap<String, String>,
}

/// What `build` made of the spec and the cluster around the tenant.
struct Desired {
    relay_toml: String,
    config_hash: String,
    /// Domains whose verified keys the relay signs with.
    signing: Vec<tenant::SigningDomain>,
    /// Domains whose keys are not verified yet.
    waiting: Vec<String>,
    addresses: Addresses,
}

/// Step 1. Whether this tenant owns its namespace; a later one gets `DuplicateTenant`.
async fn admit(tenant: &MailTenant, names: &Names, context: &Context) -> Result<bool, Error> {
    let tenants: Api<MailTenant> = Api::namespaced(context.client.clone(), &names.namespace);
    let siblings = tenants
        .list(&ListParams::default())
        .await
        .map_err(read("MailTenants"))?;
    match status::namespace_owner(&siblings.items) {
        Some(owner) if owner.name_any() != names.tenant => {
            let fresh = status::duplicate(&names.namespace, &owner.name_any());
            write_status(tenant, context, fresh, None).await?;
            Ok(false)
        }
        _ => Ok(true),
    }
}

/// Step 2. Reads the PKI Secrets and the stored passwords, and plans what to (re)issue.
async fn issue(
    tenant: &MailTenant,
    names: &Names,
    context: &Context,
) -> Result<Credentials, Error> {
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), &names.namespace);
    let ca = get(&secrets, &names.ca_secret())
        .await?
        .as_ref()
        .and_then(tenant::read_ca);
    let server = get(&secrets, &names.server_secret())
        .await?
        .as_ref()
        .and_then(tenant::read_leaf);
    let mut clients = BTreeMap::new();
    let mut stored_passwords = BTreeMap::new();
    for client_identity in &tenant.spec.clients {
        let name = names.client_secret(&client_identity.name);
        let Some(secret) = get(&secrets, &name).await? else {
            continue;
        };
        if let Some(leaf) = tenant::read_leaf(&secret) {
            clients.insert(client_identity.name.clone(), leaf);
        }
        if let Some(password) = tenant::read_password(&secret) {
            stored_passwords.insert(client_identity.name.clone(), password);
        }
    }

    let wanted = pki::Wanted {
        tenant: names.tenant.clone(),
        server_names: names.server_dns_names(&tenant.spec.relay.hostname),
        clients: tenant.spec.clients.iter().map(|c| c.name.clone()).collect(),
        ca_days: tenant.spec.certificates.ca_validity_days,
        leaf_days: tenant.spec.certificates.leaf_validity_days,
    };
    let now = time::OffsetDateTime::now_utc();
    let issued = pki::plan(&wanted, now, ca.as_ref(), server.as_ref(), &clients)?;
    let passwords = tenant::client_passwords(tenant, &stored_passwords);
    Ok(Credentials { issued, passwords })
}

/// Step 3. The relay configuration and the hash that rolls the pods when it changes.
async fn build(
    tenant: &MailTenant,
    names: &Names,
    context: &Context,
    issued: &pki::Issued,
) -> Result<Desired, Error> {
    let domains: Api<SendingDomain> = Api::namespaced(context.client.clone(), &names.namespace);
    let domains = domains
        .list(&ListParams::default())
        .await
        .map_err(read("SendingDomains"))?;
    let SigningDomains { signing, waiting } = signing_domains(&domains.items);
    // Domains still waiting for verified keys are configured without selectors: the relay
    // answers their mail with a temporary error instead of refusing it outright.
    let configured: Vec<_> = signing
        .iter()
        .cloned()
        .chain(waiting.iter().map(|domain| tenant::SigningDomain {
            domain: domain.clone(),
            secret_name: String::new(),
            selectors: Vec::new(),
        }))
        .collect();
    let addresses = sending_addresses(tenant, names, &context.client).await?;
    let relay_toml = tenant::relay_config(tenant, &configured, addresses.bound()).to_toml();
    let config_hash = config_hash(&relay_toml, issued);
    Ok(Desired {
        relay_toml,
        config_hash,
        signing,
        waiting,
        addresses,
    })
}

/// Step 4. Applies every object whose content changed, Secrets first so that the pods never
/// start without their certificates, then removes the Secrets of clients no longer listed.
async fn apply_objects(
    tenant: &MailTenant,
    names: &Names,
    context: &Context,
    credentials: &Credentials,
    desired: &Desired,
) -> Result<(), Error> {
    let client = &context.client;
    let ns = names.namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let issued = &credentials.issued;
    let mut applied = Vec::new();

    let ca_secret = tenant::ca_secret(tenant, names.ca_secret(), &issued.ca);
    apply_one(&secrets, ca_secret, "Secret", context, &mut applied).await?;
    let server_secret = tenant::leaf_secret(tenant, names.server_secret(), &issued.server);
    apply_one(&secrets, server_secret, "Secret", context, &mut applied).await?;
    for (name, leaf) in &issued.clients {
        let password = credentials.passwords.get(name).map(String::as_str);
        let secret = tenant::client_secret(tenant, names.client_secret(name), name, leaf, password);
        apply_one(&secrets, secret, "Secret", context, &mut applied).await?;
    }
    let smtp_auth = tenant::smtp_auth_required(tenant);
    if smtp_auth {
        let file = tenant::credentials_file(&credentials.passwords);
        let secret = tenant::credentials_secret(tenant, names.credentials_secret(), &file);
        apply_one(&secrets, secret, "Secret", context, &mut applied).await?;
    }

    let config_map = tenant::config_map(tenant, &desired.relay_toml);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    apply_one(&maps, config_map, "ConfigMap", context, &mut applied).await?;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    for policy in tenant::network_policies(tenant) {
        apply_one(&policies, policy, "NetworkPolicy", context, &mut applied).await?;
    }
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    for service in tenant::services(tenant) {
        apply_one(&services, service, "Service", context, &mut applied).await?;
    }
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let budget = tenant::pod_disruption_budget(tenant);
    apply_one(
        &budgets,
        budget,
        "PodDisruptionBudget",
        context,
        &mut applied,
    )
    .await?;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let set = tenant::stateful_set(tenant, &desired.signing, &desired.config_hash);
    apply_one(&sets, set, "StatefulSet", context, &mut applied).await?;

    remove_stale_secrets(tenant, names, context, &secrets, issued, smtp_auth).await?;
    if !issued.changes.is_empty() {
        let note = issued.changes.join("; ");
        context
            .event(
                tenant,
                false,
                "CertificatesIssued",
                "IssueCertificates",
                note,
            )
            .await;
    }
    if !applied.is_empty() {
        tracing::info!(objects = ?applied, "applied changed objects");
    }
    Ok(())
}

/// Identities removed from the spec lose their Secrets (their certificates still chain to the
/// CA until they expire; see the README on removing a client), and the relay's credentials
/// Secret goes when SMTP AUTH is no longer required.
async fn remove_stale_secrets(
    tenant: &MailTenant,
    names: &Names,
    context: &Context,
    secrets: &Api<Secret>,
    issued: &pki::Issued,
    smtp_auth: bool,
) -> Result<(), Error> {
    let prefix = names.client_secret("");
    let selector = format!("{}={}", tenant::TENANT_LABEL, names.tenant);
    let owned = secrets
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(read("client Secrets"))?;
    for secret in owned.items {
        let name = secret.name_any();
        if name == names.credentials_secret() && !smtp_auth {
            delete_secret(secrets, &name, context).await?;
            continue;
        }
        let Some(client_name) = name.strip_prefix(&prefix) else {
            continue;
        };
        if !issued.clients.contains_key(client_name) {
            delete_secret(secrets, &name, context).await?;
            let note = format!(
                "client {client_name} was removed from spec.clients; deleted its Secret {name}"
            );
            context
                .event(tenant, false, "ClientRemoved", "RemoveClient", note)
                .await;
        }
    }
    Ok(())
}

/// Step 5. Derives the status from what the cluster now shows and writes it if it changed.
async fn observe(
    tenant: &MailTenant,
    names: &Names,
    context: &Context,
    issued: &pki::Issued,
    desired: &Desired,
) -> Result<Action, Error> {
    let sets: Api<StatefulSet> = Api::namespaced(context.client.clone(), &names.namespace);
    let live_set = sets
        .get_opt(&names.relay())
        .await
        .map_err(read("the relay StatefulSet"))?;
    let policies: Api<NetworkPolicy> = Api::namespaced(context.client.clone(), &names.namespace);
    let policies = policies
        .list(&ListParams::default())
        .await
        .map_err(read("NetworkPolicies"))?;
    let foreign = status::foreign_policies(&policies.items, names);
    let fresh = status::observed(
        tenant,
        issued,
        live_set.as_ref(),
        &desired.waiting,
        &desired.addresses,
        &foreign,
    );
    write_status(tenant, context, fresh.conditions, Some(fresh.fields)).await?;
    Ok(Action::requeue(status::next_check(issued)))
}

/// The addresses the tenant's SendingIPPool allocated to it, read from the pool's status.
async fn sending_addresses(
    tenant: &MailTenant,
    names: &Names,
    client: &kube::Client,
) -> Result<Addresses, Error> {
    let Some(wanted) = &tenant.spec.sending_ip_pool else {
        return Ok(Addresses::NotRequested);
    };
    let pools: Api<SendingIPPool> = Api::all(client.clone());
    let pool_name = wanted.name.clone();
    let Some(pool) = pools
        .get_opt(&pool_name)
        .await
        .map_err(read("the SendingIPPool"))?
    else {
        return Ok(Addresses::PoolMissing { pool: pool_name });
    };
    if pool.spec.egress.mode != EgressMode::SourceBinding {
        return Ok(Addresses::Unsupported { pool: pool_name });
    }
    let owner = format!("{}/{}", names.namespace, names.tenant);
    let mut addresses: Vec<std::net::IpAddr> = pool
        .status
        .unwrap_or_default()
        .allocations
        .iter()
        .filter(|allocation| allocation.tenant == owner)
        .filter_map(|allocation| allocation.address.parse().ok())
        .collect();
    addresses.sort();
    Ok(Addresses::Allocated {
        pool: pool_name,
        wanted: wanted.count,
        addresses,
    })
}

async fn delete_secret(secrets: &Api<Secret>, name: &str, context: &Context) -> Result<(), Error> {
    secrets
        .delete(name, &DeleteParams::default())
        .await
        .map_err(|source| Error::Cleanup {
            what: format!("Secret {name}"),
            source,
        })?;
    context.metrics.wrote(CONTROLLER, "Secret");
    Ok(())
}

async fn get(secrets: &Api<Secret>, name: &str) -> Result<Option<Secret>, Error> {
    secrets
        .get_opt(name)
        .await
        .map_err(read(format!("Secret {name}")))
}

async fn apply_one<K>(
    api: &Api<K>,
    object: K,
    kind: &'static str,
    context: &Context,
    applied: &mut Vec<String>,
) -> Result<(), Error>
where
    K: Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    let name = object.name_any();
    match apply(api, object).await {
        Ok(Outcome::Unchanged) => Ok(()),
        Ok(Outcome::Applied) => {
            context.metrics.wrote(CONTROLLER, kind);
            applied.push(format!("{kind}/{name}"));
            Ok(())
        }
        Err(source) => Err(Error::Apply { kind, name, source }),
    }
}

/// Hash of everything the relay pods read at start: their configuration and their TLS files.
/// It goes into the pod template, so a change rolls the pods.
fn config_hash(relay_toml: &str, issued: &pki::Issued) -> String {
    let mut hasher = Sha256::new();
    for part in [
        relay_toml,
        &issued.server.cert_pem,
        &issued.server.key_pem,
        &issued.server.bundle_pem,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}
