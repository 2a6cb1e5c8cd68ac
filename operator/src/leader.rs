//! Leader election through a `coordination.k8s.io/v1` Lease, so that two replicas of the
//! operator never reconcile at once.
//!
//! A replica takes the Lease when it is free or its holder stopped renewing it for longer than
//! the lease duration, then renews it every third of that duration. Every write names the
//! resourceVersion it read, so two candidates racing for a free Lease cannot both win: the
//! API server refuses the second write with a conflict. A leader that fails to renew before its
//! lease runs out stops leading; `main` then exits so that the replica restarts as a candidate.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

#[derive(Clone, Debug)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    holder: String,
    duration: Duration,
}

/// Whether this replica holds the Lease after one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Leading,
    Following,
}

impl LeaseLock {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        holder: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            holder: holder.to_string(),
            duration,
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) -> Result<(), kube::Error> {
        loop {
            if self.try_acquire_or_renew().await? == Attempt::Leading {
                tracing::info!(lease = %self.name, holder = %self.holder, "became leader");
                return Ok(());
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews the Lease until renewal fails for a whole lease duration; returns then, which
    /// means this replica must stop reconciling.
    pub async fn keep(&self) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => last_renewal = tokio::time::Instant::now(),
                Ok(Attempt::Following) => {
                    tracing::error!(lease = %self.name, "lost the leader lease to another replica");
                    return;
                }
                Err(error) => {
                    tracing::warn!(lease = %self.name, %error, "failed to renew the leader lease")
                }
            }
            if last_renewal.elapsed() >= self.duration {
                tracing::error!(lease = %self.name, "leader lease expired without renewal");
                return;
            }
        }
    }

    /// Gives the Lease up at shutdown, so that another replica takes over at once instead of
    /// waiting for it to expire. Only a Lease this replica still holds is touched.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.holder.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        let released = Lease {
            spec: Some(spec),
            ..lease
        };
        self.api
            .replace(&self.name, &PostParams::default(), &released)
            .await?;
        tracing::info!(lease = %self.name, "released the leader lease");
        Ok(())
    }

    /// One election round: create the Lease, renew it, or take it over when expired.
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Following),
                Err(error) => Err(error),
            };
        };

        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.holder;
        if !ours && !holder.is_empty() && !expired(&spec, now) {
            return Ok(Attempt::Following);
        }
        let acquired = if ours {
            spec.acquire_time.map_or(now, |t| t.0)
        } else {
            now
        };
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let renewed = Lease {
            spec: Some(self.spec(now, acquired, transitions)),
            ..lease
        };
        match self
            .api
            .replace(&self.name, &PostParams::default(), &renewed)
            .await
        {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Following),
            Err(error) => Err(error),
        }
    }

    fn spec(&self, now: Timestamp, acquired: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref() else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    now.as_second() - renewed.0.as_second() > duration
}
