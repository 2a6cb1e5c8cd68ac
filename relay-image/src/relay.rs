//! What every part of a running relay shares: the loaded configuration and the long-lived parts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use mailwarden_relay_config::{ConfigError, RelayConfig};
use rustls::ServerConfig;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::audit::{AuditError, AuditLog};
use crate::credentials::{Credentials, CredentialsError};
use crate::dkim::{DkimError, Signer};
use crate::metrics::Metrics;
use crate::peers::PeerBlocks;
use crate::spool::{Spool, SpoolError};
use crate::tls::{self, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("{0}")]
    Dkim(#[from] DkimError),
    #[error("{0}")]
    Spool(#[from] SpoolError),
    #[error("{0}")]
    Audit(#[from] AuditError),
    #[error("{0}")]
    Credentials(#[from] CredentialsError),
}

/// One consistent view of the mounted files: configuration, server TLS, DKIM keys and SMTP AUTH
/// credentials. Replaced as a whole on reload; a session keeps the snapshot it started with.
pub struct Snapshot {
    pub config: RelayConfig,
    pub tls: Arc<ServerConfig>,
    pub signer: Signer,
    /// Present when the configuration requires SMTP AUTH after the client certificate.
    pub credentials: Option<Credentials>,
}

impl Snapshot {
    /// Reads and validates everything the configuration names.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.into(),
            source,
        })?;
        let config = RelayConfig::from_toml(&text)?;
        let tls = tls::server_config(&config.tls)?;
        let signer = Signer::load(&config)?;
        let credentials = match &config.smtp_auth {
            Some(auth) => Some(Credentials::load(&auth.credentials_file)?),
            None => None,
        };
        Ok(Self {
            config,
            tls,
            signer,
            credentials,
        })
    }
}

/// The running relay.
pub struct Relay {
    snapshot: RwLock<Arc<Snapshot>>,
    pub config_path: PathBuf,
    pub spool: Spool,
    pub audit: AuditLog,
    pub peers: PeerBlocks,
    pub metrics: Metrics,
    pub connections: Arc<Semaphore>,
    /// Memory for messages being received, in KiB permits (`limits.max-buffered-bytes`, read at
    /// start).
    pub receive_budget: Arc<Semaphore>,
    /// Ids of newly spooled messages, for the delivery queue.
    pub queued: mpsc::UnboundedSender<String>,
    /// Becomes true when the relay starts draining.
    pub draining: watch::Receiver<bool>,
}

impl Relay {
    /// Loads the configuration and opens the spool and the audit log.
    pub fn open(
        config_path: &Path,
        draining: watch::Receiver<bool>,
    ) -> Result<(Arc<Self>, mpsc::UnboundedReceiver<String>), LoadError> {
        let snapshot = Snapshot::load(config_path)?;
        let spool = Spool::open(&snapshot.config.spool.dir)?;
        let audit = AuditLog::open(&snapshot.config.audit.file, &snapshot.config.tenant)?;
        let (queued, receiver) = mpsc::unbounded_channel();
        let connections = Arc::new(Semaphore::new(
            snapshot.config.limits.max_connections as usize,
        ));
        let receive_budget = Arc::new(Semaphore::new(kib(
            snapshot.config.limits.max_buffered_bytes as usize,
        )));
        let relay = Self {
            snapshot: RwLock::new(Arc::new(snapshot)),
            config_path: config_path.into(),
            spool,
            audit,
            peers: PeerBlocks::default(),
            metrics: Metrics::default(),
            connections,
            receive_budget,
            queued,
            draining,
        };
        Ok((Arc::new(relay), receiver))
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the snapshot; sessions already open keep theirs.
    pub fn replace(&self, snapshot: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
    }
}

/// Whole KiB covering `bytes`: the unit of [`Relay::receive_budget`].
pub fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}
