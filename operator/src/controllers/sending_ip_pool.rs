//! The SendingIPPool controller: decides which tenant holds which address and records it in the
//! pool's status, which the MailTenant controller reads.
//!
//! Steps: expand the pool's addresses; hold back those another pool lists too; collect the
//! demands of the MailTenants that name the pool, oldest first; allocate ([`crate::ippool`],
//! pure); write the status when it changed.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use tracing::Instrument;

use super::Context;
use crate::crd::sending_ip_pool::SendingIPPoolStatus;
use crate::crd::{Condition, MailTenant, SendingIPPool, merge_conditions};
use crate::ippool::{self, Demand};
use crate::tenant::FIELD_MANAGER;

const CONTROLLER: &str = "sendingippool";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {what}: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("failed to update the status of SendingIPPool {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ReadFailed",
            Error::Status { .. } => "StatusUpdateFailed",
        }
    }
}

/// Watches pools and the tenants that draw from them.
pub async fn run(context: Arc<Context>) {
    let client = context.client.clone();
    let controller = Controller::new(
        Api::<SendingIPPool>::all(client.clone()),
        watcher::Config::default(),
    );
    let pools = controller.store();
    controller
        // A tenant's demand, or its deletion, changes its pool's allocation.
        .watches(
            Api::<MailTenant>::all(client.clone()),
            watcher::Config::default(),
            |tenant| {
                tenant
                    .spec
                    .sending_ip_pool
                    .map(|pool| ObjectRef::<SendingIPPool>::new(&pool.name))
            },
        )
        // Exclusivity spans pools: one pool's change may free or block another's addresses.
        .watches(
            Api::<SendingIPPool>::all(client.clone()),
            watcher::Config::default(),
            move |_| {
                pools
                    .state()
                    .iter()
                    .map(|pool| ObjectRef::from_obj(pool.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "sendingippool reconcile did not complete");
            }
        })
        .await;
}

fn error_policy(_pool: Arc<SendingIPPool>, _error: &Error, _context: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(15))
}

async fn reconcile(pool: Arc<SendingIPPool>, context: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!("reconcile", controller = CONTROLLER, name = pool.name_any());
    async {
        let labels = crate::metrics::ReconcileLabels {
            controller: CONTROLLER.into(),
        };
        context.metrics.reconciles.get_or_create(&labels).inc();
        let result = allocate(&pool, &context).await;
        if let Err(error) = &result {
            tracing::warn!(category = error.category(), %error, "reconcile failed");
            context.metrics.failed(CONTROLLER, error.category());
            context
                .event(
                    pool.as_ref(),
                    true,
                    error.category(),
                    "Allocate",
                    error.to_string(),
                )
                .await;
        }
        result
    }
    .instrument(span)
    .await
}

async fn allocate(pool: &SendingIPPool, context: &Context) -> Result<Action, Error> {
    let name = pool.name_any();
    let client = context.client.clone();
    let previous = pool.status.clone().unwrap_or_default();

    let (conditions, plan) = match ippool::expand(&pool.spec.addresses) {
        Err(reason) => {
            let invalid = Condition::new("Ready", false, "InvalidAddresses", reason);
            (vec![invalid], ippool::Plan::default())
        }
        Ok(addresses) => {
            // Addresses another pool lists too are nobody's until the overlap is removed.
            let pools: Api<SendingIPPool> = Api::all(client.clone());
            let others =
                pools
                    .list(&ListParams::default())
                    .await
                    .map_err(|source| Error::Read {
                        what: "SendingIPPools",
                        source,
                    })?;
            let mut shared = BTreeSet::new();
            let mut sharing = BTreeSet::new();
            let mut taken_elsewhere = BTreeSet::new();
            for other in others.items.iter().filter(|other| other.name_any() != name) {
                let theirs: BTreeSet<_> = ippool::expand(&other.spec.addresses)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                for address in addresses.iter().filter(|a| theirs.contains(a)) {
                    shared.insert(*address);
                    sharing.insert(other.name_any());
                }
                let given: BTreeSet<IpAddr> = other
                    .status
                    .iter()
                    .flat_map(|s| &s.allocations)
                    .filter_map(|a| a.address.parse().ok())
                    .collect();
                taken_elsewhere.extend(shared.intersection(&given).copied());
            }

            let tenants: Api<MailTenant> = Api::all(client.clone());
            let tenants = tenants
                .list(&ListParams::default())
                .await
                .map_err(|source| Error::Read {
                    what: "MailTenants",
                    source,
                })?;
            let mut drawing: Vec<&MailTenant> = tenants
                .items
                .iter()
                .filter(|t| t.metadata.deletion_timestamp.is_none())
                .filter(|t| {
                    t.spec
                        .sending_ip_pool
                        .as_ref()
                        .is_some_and(|p| p.name == name)
                })
                .collect();
            drawing.sort_by_key(|t| {
                (
                    t.metadata.creation_timestamp.clone().map(|c| c.0),
                    t.namespace(),
                    t.name_any(),
                )
            });
            let demands: Vec<Demand> = drawing
                .iter()
                .map(|t| Demand {
                    tenant: format!("{}/{}", t.namespace().unwrap_or_default(), t.name_any()),
                    count: t.spec.sending_ip_pool.as_ref().map_or(0, |p| p.count),
                })
                .collect();

            let plan = ippool::allocate(
                &addresses,
                &shared,
                &taken_elsewhere,
                &previous.allocations,
                &demands,
            );
            (pool_conditions(&plan, &shared, &sharing), plan)
        }
    };

    let generation = pool.metadata.generation.unwrap_or_default();
    let (conditions, changed) = merge_conditions(
        &previous.conditions,
        conditions,
        generation,
        chrono::Utc::now(),
    );
    let next = SendingIPPoolStatus {
        conditions,
        observed_generation: generation,
        allocated_count: plan.allocations.len() as u32,
        free_count: plan.free as u32,
        allocations: plan.allocations,
    };
    if next != previous {
        let patch = serde_json::json!({
            "apiVersion": "mailwarden.io/v1alpha1",
            "kind": "SendingIPPool",
            "status": next,
        });
        let pools: Api<SendingIPPool> = Api::all(client);
        pools
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|source| Error::Status {
                name: name.clone(),
                source,
            })?;
        context.metrics.wrote(CONTROLLER, "SendingIPPoolStatus");
        for condition in changed {
            let note = format!(
                "{} is {}: {}",
                condition.type_, condition.status, condition.message
            );
            context
                .event(
                    pool,
                    !condition.is_true(),
                    &condition.reason,
                    "Allocate",
                    note,
                )
                .await;
        }
    }
    Ok(Action::requeue(Duration::from_secs(3600)))
}

/// `Ready` says whether every tenant got its addresses; `Exclusive` whether any address is
/// shared with another pool.
fn pool_conditions(
    plan: &ippool::Plan,
    shared: &BTreeSet<std::net::IpAddr>,
    sharing: &BTreeSet<String>,
) -> Vec<Condition> {
    let ready = if plan.short.is_empty() {
        Condition::new(
            "Ready",
            true,
            "Allocated",
            format!(
                "{} addresses allocated, {} free",
                plan.allocations.len(),
                plan.free
            ),
        )
    } else {
        let short: Vec<String> = plan
            .short
            .iter()
            .map(|(tenant, missing)| format!("{tenant} ({missing} missing)"))
            .collect();
        Condition::new(
            "Ready",
            false,
            "AddressesExhausted",
            format!("not enough free addresses for {}", short.join(", ")),
        )
    };
    let exclusive = if shared.is_empty() {
        Condition::new(
            "Exclusive",
            true,
            "NoOverlap",
            "no address is listed in another pool",
        )
    } else {
        let addresses: Vec<String> = shared.iter().map(ToString::to_string).collect();
        Condition::new(
            "Exclusive",
            false,
            "AddressesShared",
            format!(
                "{} also listed in pool(s) {}; these addresses are held back until only one pool lists them",
                addresses.join(", "),
                sharing.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    };
    vec![ready, exclusive]
}
