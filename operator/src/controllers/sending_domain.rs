//! The SendingDomain reconciler. Each pass runs the named steps
//! `validate → keys → publish (render inside) → verify → rotate → status`; only `keys` and
//! `status` write to the API server and only `publish` writes to DNS, each only when something
//! changed, so an unchanged, verified domain makes no writes at all. A finalizer removes the
//! DNS records the operator owns (and puts back an SPF record a merge replaced) on deletion.

mod cluster;
mod conditions;
mod pass;
mod spec;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{Instrument, info, info_span, warn};

pub use cluster::FIELD_MANAGER;
pub use pass::PassError;

use super::Context;
use crate::crd::MailTenant;
use crate::crd::merge_conditions;
use crate::crd::sending_domain::SendingDomain;
use crate::dns::DnsRecord;
use crate::dns::publish::unpublish;
use crate::metrics::ReconcileLabels;

/// The controller's name in metrics.
const CONTROLLER: &str = "sendingdomain";

/// Finalizer guarding the removal of the records the operator published.
pub const FINALIZER: &str = "mailwarden.io/dns-records";
/// Setting this annotation to a new value rotates the DKIM keys now.
pub const ROTATE_ANNOTATION: &str = "mailwarden.io/rotate-dkim";

/// Runs the SendingDomain controller until the process is asked to stop. It watches every
/// SendingDomain, the DKIM Secrets it owns, and the MailTenants whose sending addresses the
/// domains' SPF and host records are rendered from.
pub async fn run(ctx: Arc<Context>) {
    let domains: Api<SendingDomain> = Api::all(ctx.client.clone());
    let secrets: Api<Secret> = Api::all(ctx.client.clone());
    let tenants: Api<MailTenant> = Api::all(ctx.client.clone());
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=mailwarden");
    let controller = Controller::new(domains, watcher::Config::default());
    let store = controller.store();
    controller
        .owns(secrets, owned)
        // A tenant that gets (or loses) sending addresses changes what its domains publish, and
        // may turn a domain refused for having none into a valid one.
        .watches(tenants, watcher::Config::default(), move |tenant| {
            let namespace = tenant.metadata.namespace.clone();
            store
                .state()
                .iter()
                .filter(|domain| domain.metadata.namespace == namespace)
                .map(|domain| ObjectRef::from_obj(domain.as_ref()))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                // A deleted object's last queued reconcile: nothing to do.
                Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
                Err(error) => warn!(error = %chain(&error), "sendingdomain reconcile failed"),
            }
        })
        .await;
}

/// The error of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error("failed to manage finalizer {FINALIZER}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<PassError>>),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Pass(e) => e.category(),
            Error::Finalizer(_) => "FinalizerFailed",
        }
    }
}

/// An error and its sources on one line.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Many errors already print their source; each text appears once.
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Reconciles one SendingDomain.
pub async fn reconcile(domain: Arc<SendingDomain>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = domain.namespace().unwrap_or_default();
    let name = domain.name_any();
    let span = info_span!("reconcile", kind = "SendingDomain", %namespace, %name);
    let api: Api<SendingDomain> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, domain, |event| async {
        match event {
            Finalizer::Apply(domain) => apply(domain, &ctx).await,
            Finalizer::Cleanup(domain) => cleanup(domain, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Transient failures retry after a pause; the condition already says why.
pub fn error_policy(_domain: Arc<SendingDomain>, error: &Error, _ctx: Arc<Context>) -> Action {
    match error.category() {
        "ProviderRateLimited" => Action::requeue(Duration::from_secs(120)),
        _ => Action::requeue(Duration::from_secs(30)),
    }
}

async fn apply(domain: Arc<SendingDomain>, ctx: &Context) -> Result<Action, PassError> {
    let now = chrono::Utc::now();
    let previous = domain.status.clone().unwrap_or_default();
    let generation = domain.meta().generation.unwrap_or_default();

    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            controller: CONTROLLER.into(),
        })
        .inc();
    let outcome = pass::run(&domain, &ctx.client, &previous, now).await;
    let (mut status, action, failure) = match outcome {
        Ok(outcome) => {
            if outcome.secret_written {
                ctx.metrics.wrote(CONTROLLER, "Secret");
            }
            for _ in 0..outcome.dns_writes {
                ctx.metrics.wrote(CONTROLLER, "DnsRecord");
            }
            (outcome.status, outcome.action, None)
        }
        Err(error) => {
            ctx.metrics.failed(CONTROLLER, error.category());
            let mut status = previous.clone();
            let message = chain(&error);
            status.conditions = conditions::failed(
                &previous.conditions,
                error.step(),
                error.category(),
                &message,
            );
            (
                status,
                Action::requeue(Duration::from_secs(30)),
                Some(error),
            )
        }
    };

    let (merged, changed) =
        merge_conditions(&previous.conditions, status.conditions, generation, now);
    status.conditions = merged;
    status.observed_generation = generation;
    if domain.status.as_ref() != Some(&status) {
        cluster::write_status(&ctx.client, &domain, &status)
            .await
            .map_err(PassError::Cluster)?;
        ctx.metrics.wrote(CONTROLLER, "SendingDomainStatus");
    }
    // An Event per condition that changed to True or False; `Unknown` says nothing new.
    for condition in changed.iter().filter(|c| c.status != "Unknown") {
        let note = format!("{}: {}", condition.type_, condition.message);
        let warning = !condition.is_true();
        ctx.event(&*domain, warning, &condition.reason, "Reconcile", note)
            .await;
    }

    match failure {
        None => {
            info!(
                ready = status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.is_true()),
                "reconciled"
            );
            Ok(action)
        }
        Some(error) if error.category() == "InvalidSpec" => Ok(Action::await_change()),
        Some(error) => Err(error),
    }
}

async fn cleanup(domain: Arc<SendingDomain>, ctx: &Context) -> Result<Action, PassError> {
    let status = domain.status.clone().unwrap_or_default();
    let owned: Vec<DnsRecord> = status.owned_records.iter().map(Into::into).collect();
    if owned.is_empty() {
        return Ok(Action::await_change());
    }
    let provider = match cluster::provider(&ctx.client, &domain).await {
        Ok(provider) => provider,
        Err(error) if namespace_terminating(&ctx.client, &domain).await => {
            warn!(error = %chain(&error), records = owned.len(),
                "namespace is terminating and provider credentials are gone; records are left");
            return Ok(Action::await_change());
        }
        Err(error) => return Err(PassError::Cluster(error)),
    };
    let adopted = status.adopted_spf.as_deref();
    let writes = unpublish(&provider, &domain.spec.domain, &owned, adopted).await?;
    for _ in 0..writes {
        ctx.metrics.wrote(CONTROLLER, "DnsRecord");
    }
    info!(writes, "removed owned dns records");
    Ok(Action::await_change())
}

async fn namespace_terminating(client: &Client, domain: &SendingDomain) -> bool {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = domain.namespace().unwrap_or_default();
    match namespaces.get_opt(&namespace).await {
        Ok(Some(ns)) => ns.status.and_then(|s| s.phase).as_deref() == Some("Terminating"),
        Ok(None) => true,
        Err(_) => false,
    }
}
