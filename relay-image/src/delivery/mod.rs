//! Delivery of spooled messages.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::relay::Relay;

pub async fn run(_relay: Arc<Relay>, mut queued: mpsc::UnboundedReceiver<String>) {
    while queued.recv().await.is_some() {}
}
