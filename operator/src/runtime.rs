//! Start-up of the operator process: logs, admin endpoint, leader election, controllers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::registry::Registry;

use crate::admin::{self, AdminState};
use crate::controllers::{self, Context};
use crate::leader::LeaseLock;
use crate::metrics::Metrics;

#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// Address of the admin endpoint (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "MAILWARDEN_ADMIN_ADDRESS", default_value = "0.0.0.0:8080")]
    pub admin_address: SocketAddr,
    /// Namespace of the leader-election Lease; the operator's own namespace in a cluster.
    #[arg(
        long,
        env = "MAILWARDEN_LEASE_NAMESPACE",
        default_value = "mailwarden-system"
    )]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "MAILWARDEN_LEASE_NAME",
        default_value = "mailwarden-operator"
    )]
    pub lease_name: String,
    /// Identity of this replica in the Lease; the pod name in a cluster.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a leader may go without renewing before another replica takes over.
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
}

pub fn run(options: Options) -> anyhow::Result<()> {
    crate::telemetry::init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?
        .block_on(serve(options))
}

async fn serve(options: Options) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let ready = Arc::new(AtomicBool::new(false));
    let state = AdminState {
        registry: Arc::new(registry),
        ready: ready.clone(),
    };
    let admin = tokio::spawn(admin::serve(options.admin_address, state));

    let client = kube::Client::try_default()
        .await
        .context("failed to build a Kubernetes client")?;
    let identity = options.identity.clone().unwrap_or_else(default_identity);
    let lease = LeaseLock::new(
        client.clone(),
        &options.lease_namespace,
        &options.lease_name,
        &identity,
        Duration::from_secs(options.lease_seconds),
    );
    tracing::info!(identity = %identity, lease = %options.lease_name, "waiting for the leader lease");
    tokio::select! {
        acquired = lease.acquire() => acquired.context("failed to acquire the leader lease")?,
        _ = tokio::signal::ctrl_c() => return Ok(()),
    }
    ready.store(true, Ordering::Relaxed);

    let context = Arc::new(Context::new(client, metrics, Some(identity)));
    tokio::select! {
        () = controllers::run(context) => tracing::info!("controllers stopped"),
        () = lease.keep() => anyhow::bail!("lost the leader lease; exiting so that a fresh replica takes over"),
        served = admin => served.context("admin endpoint task failed")?.context("admin endpoint failed")?,
    }
    ready.store(false, Ordering::Relaxed);
    if let Err(error) = lease.release().await {
        tracing::warn!(%error, "failed to release the leader lease; it expires on its own");
    }
    Ok(())
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "mailwarden".into());
    format!("{host}-{}", std::process::id())
}
