//! Starting the relay: listeners, the delivery queue, the admin port, reloads and the drain on
//! SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::relay::{LoadError, Relay};
use crate::{admin, delivery, reload, session};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("failed to listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("failed to install the SIGTERM handler: {0}")]
    Signal(std::io::Error),
}

/// Runs the relay until SIGTERM (or SIGINT), then drains.
pub async fn run(config_path: &Path) -> Result<(), ServerError> {
    let (drain, draining) = watch::channel(false);
    let (relay, queued) = Relay::open(config_path, draining)?;
    let snapshot = relay.snapshot();
    let listen = &snapshot.config.listen;
    let bind = |port| async move {
        let address = SocketAddr::new(listen.address, port);
        TcpListener::bind(address)
            .await
            .map_err(|source| ServerError::Listen { address, source })
    };
    let submissions = bind(listen.submissions_port).await?;
    let submission = bind(listen.submission_port).await?;
    let admin_listener = bind(listen.admin_port).await?;

    let queue = tokio::spawn(delivery::run(relay.clone(), queued));
    tokio::spawn(admin::serve(relay.clone(), admin_listener));
    tokio::spawn(reload::watch(relay.clone()));
    let accept_submissions = tokio::spawn(accept(relay.clone(), submissions, true));
    let accept_submission = tokio::spawn(accept(relay.clone(), submission, false));
    tracing::info!(tenant = %snapshot.config.tenant, "relay started");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServerError::Signal)?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }

    tracing::info!("draining");
    let _ = drain.send(true);
    accept_submissions.abort();
    accept_submission.abort();
    let max = relay.snapshot().config.limits.max_connections;
    let deadline = Duration::from_secs(relay.snapshot().config.limits.drain_seconds);
    let _ = tokio::time::timeout(deadline, relay.connections.acquire_many(max)).await;
    queue.abort();
    tracing::info!("drained");
    Ok(())
}

async fn accept(relay: Arc<Relay>, listener: TcpListener, implicit_tls: bool) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(session::serve(relay.clone(), stream, peer, implicit_tls));
            }
            Err(error) => {
                tracing::warn!(%error, "failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
