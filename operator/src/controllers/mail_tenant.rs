//! The MailTenant controller.
//!
//! One reconcile runs these steps, each with its own error:
//! 1. admit: refuse a second MailTenant in the namespace (reads the namespace's tenants);
//! 2. issue: read the PKI Secrets and renew what is due ([`crate::pki::plan`], pure);
//! 3. build: the desired objects ([`crate::tenant`], pure);
//! 4. apply: server-side apply of each object whose content changed ([`crate::apply`]);
//! 5. observe: read the StatefulSet's readiness and write the status if it changed.
//!
//! Owner references let garbage collection remove the tenant's objects; the finalizer removes
//! what garbage collection would keep, the relay's spool volume claims.

mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource, ResourceExt};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::Context;
use crate::apply::{Outcome, api_message, apply};
use crate::crd::sending_domain::SendingDomain;
use crate::crd::sending_ip_pool::EgressMode;
use crate::crd::{MailTenant, MailTenantStatus, SendingIPPool, merge_conditions};
use crate::pki::{self, PkiError};
use crate::tenant::{self, FIELD_MANAGER, Names};

pub use status::{Addresses, SigningDomains, signing_domains};

/// Finalizer that removes the relay's spool volume claims before the tenant goes.
pub const FINALIZER: &str = "mailwarden.io/tenant-cleanup";
const CONTROLLER: &str = "mailtenant";
/// Label selecting the objects the operator manages, for the owned-object watches.
const MANAGED: &str = "app.kubernetes.io/managed-by=mailwarden";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {what}: {}", api_message(source))]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to issue the tenant's certificates: {0}")]
    Pki(#[from] PkiError),
    #[error("failed to apply {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: crate::apply::ApplyError,
    },
    #[error("failed to update the status: {}", api_message(.0))]
    Status(#[source] kube::Error),
    #[error("failed to delete {what}: {}", api_message(source))]
    Cleanup {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to add or remove the finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A stable word for metrics, condition reasons and Events.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ReadFailed",
            Error::Pki(_) => "CertificateIssueFailed",
            Error::Apply { .. } => "ApplyFailed",
            Error::Status(_) => "StatusUpdateFailed",
            Error::Cleanup { .. } => "CleanupFailed",
            Error::Finalizer(_) => "FinalizerFailed",
        }
    }
}

fn read(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Read { what, source }
}

/// Watches MailTenants, the objects they own and the SendingDomains of their namespaces.
pub async fn run(context: Arc<Context>) {
    let client = context.client.clone();
    let owned = || watcher::Config::default().labels(MANAGED);
    let controller = Controller::new(
        Api::<MailTenant>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    controller
        .owns(Api::<StatefulSet>::all(client.clone()), owned())
        .owns(Api::<Secret>::all(client.clone()), owned())
        .owns(Api::<ConfigMap>::all(client.clone()), owned())
        .owns(Api::<Service>::all(client.clone()), owned())
        .owns(Api::<PodDisruptionBudget>::all(client.clone()), owned())
        .watches(
            Api::<SendingDomain>::all(client.clone()),
            watcher::Config::default(),
            same_namespace(store.clone()),
        )
        // Every policy of the namespace counts: a foreign one may open the relay.
        .watches(
            Api::<NetworkPolicy>::all(client.clone()),
            watcher::Config::default(),
            same_namespace(store.clone()),
        )
        .watches(
            Api::<SendingIPPool>::all(client.clone()),
            watcher::Config::default(),
            drawing_from(store.clone()),
        )
        // A tenant's admission depends on its siblings: when one goes, the next may take over.
        .watches(
            Api::<MailTenant>::all(client),
            watcher::Config::default(),
            same_namespace(store),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "mailtenant reconcile did not complete");
            }
        })
        .await;
}

/// Maps any namespaced object to the MailTenants of its namespace.
fn same_namespace<K: Resource>(
    store: Store<MailTenant>,
) -> impl Fn(K) -> Vec<ObjectRef<MailTenant>> + Send + Sync + 'static {
    move |object| {
        let namespace = object.meta().namespace.clone();
        store
            .state()
            .iter()
            .filter(|tenant| tenant.metadata.namespace == namespace)
            .map(|tenant| ObjectRef::from_obj(tenant.as_ref()))
            .collect()
    }
}

/// Maps a SendingIPPool to the MailTenants that draw from it.
fn drawing_from(
    store: Store<MailTenant>,
) -> impl Fn(SendingIPPool) -> Vec<ObjectRef<MailTenant>> + Send + Sync + 'static {
    move |pool| {
        let name = pool.name_any();
        store
            .state()
            .iter()
            .filter(|tenant| {
                tenant
                    .spec
                    .sending_ip_pool
                    .as_ref()
                    .is_some_and(|p| p.name == name)
            })
            .map(|tenant| ObjectRef::from_obj(tenant.as_ref()))
            .collect()
    }
}

fn error_policy(_tenant: Arc<MailTenant>, _error: &Error, _context: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(15))
}

async fn reconcile(tenant: Arc<MailTenant>, context: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        controller = CONTROLLER,
        namespace = tenant.namespace().unwrap_or_default(),
        name = tenant.name_any(),
        generation = tenant.metadata.generation.unwrap_or_default(),
    );
    async {
        let labels = crate::metrics::ReconcileLabels {
            controller: CONTROLLER.into(),
        };
        context.metrics.reconciles.get_or_create(&labels).inc();
        let started = std::time::Instant::now();

        let api: Api<MailTenant> = Api::namespaced(
            context.client.clone(),
            &tenant.namespace().unwrap_or_default(),
        );
        let result = finalizer(&api, FINALIZER, tenant.clone(), |event| async {
            match event {
                FinalizerEvent::Apply(tenant) => apply_tenant(&tenant, &context).await,
                FinalizerEvent::Cleanup(tenant) => cleanup(&tenant, &context).await,
            }
        })
        .await
        .map_err(|error| match error {
            kube::runtime::finalizer::Error::ApplyFailed(inner)
            | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner,
            other => Error::Finalizer(Box::new(other)),
        });
        // Adding the finalizer to an object the cache shows a little behind, or removing it
        // from one already gone, is refused harmlessly: look again soon, report nothing.
        let result = match result {
            Err(Error::Finalizer(error)) if finalizer_race(&error) => {
                tracing::debug!(%error, "finalizer update raced; retrying");
                Ok(Action::requeue(Duration::from_secs(1)))
            }
            other => other,
        };

        context
            .metrics
            .duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            report_failure(&tenant, &context, error).await;
        }
        result
    }
    .instrument(span)
    .await
}

fn finalizer_race(error: &kube::runtime::finalizer::Error<Error>) -> bool {
    use kube::runtime::finalizer::Error::{AddFinalizer, RemoveFinalizer};
    match error {
        AddFinalizer(kube::Error::Api(status)) => matches!(status.code, 409 | 422),
        RemoveFinalizer(kube::Error::Api(status)) => matches!(status.code, 404 | 409 | 422),
        _ => false,
    }
}

/// Shows a failed reconcile in the Ready condition and a Warning Event.
async fn report_failure(tenant: &MailTenant, context: &Context, error: &Error) {
    let category = error.category();
    tracing::warn!(category, error = %error, "reconcile failed");
    context.metrics.failed(CONTROLLER, category);
    let message = error.to_string();
    if tenant.meta().deletion_timestamp.is_none() {
        let fresh = status::failed(category, &message);
        if let Err(status_error) = write_status(tenant, context, fresh, None).await {
            tracing::warn!(error = %status_error, "failed to record the failure in status");
        }
    }
    context
        .event(tenant, true, category, "Reconcile", message)
        .await;
}

async fn apply_tenant(tenant: &MailTenant, context: &Context) -> Result<Action, Error> {
    let names = Names::of(tenant);
    let client = context.client.clone();

    // Step 1: admit. The oldest MailTenant of a namespace owns it.
    let tenants: Api<MailTenant> = Api::namespaced(client.clone(), &names.namespace);
    let siblings = tenants
        .list(&ListParams::default())
        .await
        .map_err(read("MailTenants"))?;
    if let Some(owner) = status::namespace_owner(&siblings.items)
        && owner.name_any() != names.tenant
    {
        let fresh = status::duplicate(&names.namespace, &owner.name_any());
        write_status(tenant, context, fresh, None).await?;
        return Ok(Action::await_change());
    }

    // Step 2: issue certificates.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let ca = get(&secrets, &names.ca_secret())
        .await?
        .as_ref()
        .and_then(tenant::read_ca);
    let server = get(&secrets, &names.server_secret())
        .await?
        .as_ref()
        .and_then(tenant::read_leaf);
    let mut clients = std::collections::BTreeMap::new();
    let mut stored_passwords = std::collections::BTreeMap::new();
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
    let passwords = tenant::client_passwords(tenant, &stored_passwords);
    let wanted = pki::Wanted {
        tenant: names.tenant.clone(),
        server_names: names.server_dns_names(&tenant.spec.relay.hostname),
        clients: tenant.spec.clients.iter().map(|c| c.name.clone()).collect(),
        ca_days: tenant.spec.certificates.ca_validity_days,
        leaf_days: tenant.spec.certificates.leaf_validity_days,
    };
    let issued = pki::plan(
        &wanted,
        time::OffsetDateTime::now_utc(),
        ca.as_ref(),
        server.as_ref(),
        &clients,
    )?;

    // Step 3: build the desired objects.
    let domains: Api<SendingDomain> = Api::namespaced(client.clone(), &names.namespace);
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
    let addresses = sending_addresses(tenant, &names, &client).await?;
    let relay_toml = tenant::relay_config(tenant, &configured, addresses.bound()).to_toml();
    let config_hash = config_hash(&relay_toml, &issued);

    // Step 4: apply. Secrets first, so the pods never start without their certificates.
    let mut applied = Vec::new();
    let ca_secret = tenant::ca_secret(tenant, names.ca_secret(), &issued.ca);
    apply_one(&secrets, ca_secret, "Secret", context, &mut applied).await?;
    let server_secret = tenant::leaf_secret(tenant, names.server_secret(), &issued.server);
    apply_one(&secrets, server_secret, "Secret", context, &mut applied).await?;
    for (name, leaf) in &issued.clients {
        let password = passwords.get(name).map(String::as_str);
        let secret = tenant::client_secret(tenant, names.client_secret(name), name, leaf, password);
        apply_one(&secrets, secret, "Secret", context, &mut applied).await?;
    }
    let smtp_auth = tenant::smtp_auth_required(tenant);
    if smtp_auth {
        let file = tenant::credentials_file(&passwords);
        let secret = tenant::credentials_secret(tenant, names.credentials_secret(), &file);
        apply_one(&secrets, secret, "Secret", context, &mut applied).await?;
    }
    let namespaced = |kind| (client.clone(), names.namespace.clone(), kind);
    let (c, ns, _) = namespaced("ConfigMap");
    apply_one(
        &Api::namespaced(c, &ns),
        tenant::config_map(tenant, &relay_toml),
        "ConfigMap",
        context,
        &mut applied,
    )
    .await?;
    for policy in tenant::network_policies(tenant) {
        apply_one(
            &Api::namespaced(client.clone(), &ns),
            policy,
            "NetworkPolicy",
            context,
            &mut applied,
        )
        .await?;
    }
    for service in tenant::services(tenant) {
        apply_one(
            &Api::namespaced(client.clone(), &ns),
            service,
            "Service",
            context,
            &mut applied,
        )
        .await?;
    }
    apply_one(
        &Api::namespaced(client.clone(), &ns),
        tenant::pod_disruption_budget(tenant),
        "PodDisruptionBudget",
        context,
        &mut applied,
    )
    .await?;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let set = tenant::stateful_set(tenant, &signing, &config_hash);
    apply_one(&sets, set, "StatefulSet", context, &mut applied).await?;

    // Identities removed from the spec lose their Secrets. Their certificates still chain to
    // the CA until they expire; see the README on revoking a client at once.
    let prefix = names.client_secret("");
    let selector = format!("{}={}", tenant::TENANT_LABEL, names.tenant);
    let owned = secrets
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(read("client Secrets"))?;
    for secret in owned.items {
        let name = secret.name_any();
        if name == names.credentials_secret() && !smtp_auth {
            delete_secret(&secrets, &name, context).await?;
            continue;
        }
        let Some(client_name) = name.strip_prefix(&prefix) else {
            continue;
        };
        if !issued.clients.contains_key(client_name) {
            delete_secret(&secrets, &name, context).await?;
            let note = format!(
                "client {client_name} was removed from spec.clients; deleted its Secret {name}"
            );
            context
                .event(tenant, false, "ClientRemoved", "RemoveClient", note)
                .await;
        }
    }

    if !issued.changes.is_empty() {
        context
            .event(
                tenant,
                false,
                "CertificatesIssued",
                "IssueCertificates",
                issued.changes.join("; "),
            )
            .await;
    }
    if !applied.is_empty() {
        tracing::info!(objects = ?applied, "applied changed objects");
    }

    // Step 5: observe and report.
    let live_set = sets
        .get_opt(&names.relay())
        .await
        .map_err(read("the relay StatefulSet"))?;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    let policies = policies
        .list(&ListParams::default())
        .await
        .map_err(read("NetworkPolicies"))?;
    let foreign = status::foreign_policies(&policies.items, &names);
    let fresh = status::observed(
        tenant,
        &issued,
        live_set.as_ref(),
        &waiting,
        &addresses,
        &foreign,
    );
    write_status(tenant, context, fresh.conditions, Some(fresh.fields)).await?;

    Ok(Action::requeue(status::next_check(&issued)))
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

/// Writes the status when it differs from the live one; an unchanged tenant costs no write.
/// Conditions whose status changed are also published as Events.
async fn write_status(
    tenant: &MailTenant,
    context: &Context,
    fresh: Vec<crate::crd::Condition>,
    fields: Option<MailTenantStatus>,
) -> Result<(), Error> {
    let previous = tenant.status.clone().unwrap_or_default();
    let generation = tenant.metadata.generation.unwrap_or_default();
    let types: Vec<String> = fresh.iter().map(|c| c.type_.clone()).collect();
    let (mut conditions, changed) =
        merge_conditions(&previous.conditions, fresh, generation, chrono::Utc::now());
    // Conditions this pass did not evaluate (after a failure) keep their last observation,
    // with the generation it was made at.
    conditions.extend(
        previous
            .conditions
            .iter()
            .filter(|c| !types.contains(&c.type_))
            .cloned(),
    );
    let mut next = fields.unwrap_or_else(|| MailTenantStatus { ..previous.clone() });
    next.conditions = conditions;
    next.observed_generation = generation;
    if next == previous {
        return Ok(());
    }

    let api: Api<MailTenant> = Api::namespaced(
        context.client.clone(),
        &tenant.namespace().unwrap_or_default(),
    );
    let patch = serde_json::json!({
        "apiVersion": "mailwarden.io/v1alpha1",
        "kind": "MailTenant",
        "status": next,
    });
    api.patch_status(
        &tenant.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Status)?;
    context.metrics.wrote(CONTROLLER, "MailTenantStatus");

    for condition in changed {
        let warning = condition.status != "True";
        let note = format!(
            "{} is {}: {}",
            condition.type_, condition.status, condition.message
        );
        context
            .event(tenant, warning, &condition.reason, "UpdateStatus", note)
            .await;
    }
    Ok(())
}

/// Removes the relay's spool volume claims, which outlive their StatefulSet by default.
async fn cleanup(tenant: &MailTenant, context: &Context) -> Result<Action, Error> {
    let names = Names::of(tenant);
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(context.client.clone(), &names.namespace);
    let selector = tenant::selector_labels(&names)
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",");
    let list = ListParams::default().labels(&selector);
    let existing = claims
        .list(&list)
        .await
        .map_err(read("spool volume claims"))?;
    if !existing.items.is_empty() {
        claims
            .delete_collection(&DeleteParams::background(), &list)
            .await
            .map_err(|source| Error::Cleanup {
                what: "spool volume claims".into(),
                source,
            })?;
    }
    let note = format!(
        "deleted tenant {}: {} spool volume claims removed; owned objects follow by garbage collection",
        names.tenant,
        existing.items.len()
    );
    context
        .event(tenant, false, "Deleted", "Cleanup", note)
        .await;
    Ok(Action::await_change())
}
