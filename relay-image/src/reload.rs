//! Reloading the configuration, certificates, DKIM keys and SMTP AUTH credentials when their files
//! change.
//!
//! Kubernetes updates mounted Secrets and ConfigMaps by swapping a symlink, which file-event APIs
//! report unreliably; the relay instead compares the modification times and sizes of every file
//! the configuration names, every few seconds. A new snapshot replaces the old one only when it
//! loads completely; open sessions keep the snapshot they started with, so nothing is dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::relay::{Relay, Snapshot};

const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Watches the mounted files and reloads on change, until the process ends.
pub async fn watch(relay: Arc<Relay>) {
    let mut seen = fingerprint(&watched_files(&relay));
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        let now = fingerprint(&watched_files(&relay));
        if now == seen {
            continue;
        }
        match Snapshot::load(&relay.config_path) {
            Ok(snapshot) => {
                relay.replace(snapshot);
                tracing::info!("reloaded configuration, certificates and DKIM keys");
                seen = fingerprint(&watched_files(&relay));
            }
            Err(error) => {
                // Keep serving with the last good snapshot; try again on the next change.
                tracing::error!(%error, "failed to reload; keeping the previous configuration");
                seen = now;
            }
        }
    }
}

fn watched_files(relay: &Relay) -> Vec<PathBuf> {
    let snapshot = relay.snapshot();
    let config = &snapshot.config;
    let mut files = vec![
        relay.config_path.clone(),
        config.tls.cert_file.clone(),
        config.tls.key_file.clone(),
        config.tls.client_ca_file.clone(),
    ];
    for domain in &config.sending_domains {
        files.extend(domain.selectors.iter().map(|s| s.key_file.clone()));
    }
    files.extend(config.smtp_auth.iter().map(|a| a.credentials_file.clone()));
    files
}

fn fingerprint(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}
