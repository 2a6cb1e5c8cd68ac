//! The MailTenant controller.
//!
//! One reconcile runs the steps in `steps` (admit, issue, build, apply, observe), each with its
//! own error category; this file wires the controller, the finalizer and failure reporting.
//!
//! Owner references let garbage collection remove the tenant's objects; the finalizer removes
//! what garbage collection would keep, the relay's spool volume claims.

mod status;
mod steps;

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
use tracing::Instrument;

use super::Context;
use crate::apply::api_message;
use crate::crd::sending_domain::SendingDomain;
use crate::crd::{MailTenant, MailTenantStatus, SendingIPPool, merge_conditions};
use crate::pki::PkiError;
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
                FinalizerEvent::Apply(tenant) => steps::apply_tenant(&tenant, &context).await,
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
