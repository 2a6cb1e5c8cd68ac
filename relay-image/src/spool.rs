//! The durable spool: every accepted message is on disk, fsynced, before its `250`.
//!
//! Layout under the spool directory:
//!
//! - `tmp/<id>`: a message being written; never read, removed at start.
//! - `queue/<id>.msg`: the envelope as one JSON line, then the signed message. Written to `tmp/`,
//!   fsynced, renamed into `queue/`, and the directory fsynced, so it either exists whole or not
//!   at all.
//! - `queue/<id>.state`: delivery progress (recipients done, attempts, next attempt), replaced
//!   atomically the same way. A message without one has never been tried.
//!
//! A message leaves the spool when every recipient is delivered or bounced: the `.msg` goes first,
//! so a crash in between leaves only a stray `.state`, which the next start removes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who sent a message, to whom, and what the relay knew about the submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    /// The MAIL FROM address; empty for a delivery status notification.
    pub sender: String,
    pub recipients: Vec<String>,
    /// Unix seconds when the `250` was given.
    pub received_at: u64,
    /// The client's identity (certificate subject), for the audit log.
    pub client: String,
    /// The client asked for REQUIRETLS (RFC 8689); delivery requires TLS in any case.
    #[serde(default)]
    pub require_tls: bool,
}

/// Delivery progress of one spooled message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryState {
    pub delivered: Vec<String>,
    /// Recipients refused for good, with the reply that refused them.
    pub failed: Vec<(String, String)>,
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_attempt: u64,
    /// The last temporary failure, reported in a DSN if the message expires.
    #[serde(default)]
    pub last_error: String,
}

impl DeliveryState {
    /// Recipients neither delivered nor failed.
    pub fn pending<'a>(&self, envelope: &'a Envelope) -> Vec<&'a str> {
        envelope
            .recipients
            .iter()
            .filter(|r| !self.delivered.contains(r) && !self.failed.iter().any(|(f, _)| f == *r))
            .map(String::as_str)
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("spool file {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The spool directory.
#[derive(Clone, Debug)]
pub struct Spool {
    tmp: PathBuf,
    queue: PathBuf,
}

impl Spool {
    /// Opens (and creates) the spool, removing half-written files left by a crash.
    pub fn open(dir: &Path) -> Result<Self, SpoolError> {
        let spool = Self {
            tmp: dir.join("tmp"),
            queue: dir.join("queue"),
        };
        for sub in [&spool.tmp, &spool.queue] {
            fs::create_dir_all(sub).map_err(io_error("create spool directory", sub))?;
        }
        for entry in fs::read_dir(&spool.tmp).map_err(io_error("read", &spool.tmp))? {
            let path = entry.map_err(io_error("read", &spool.tmp))?.path();
            fs::remove_file(&path).map_err(io_error("remove half-written file", &path))?;
        }
        for id in spool.ids_with_extension("state")? {
            if !spool.message_path(&id).exists() {
                let path = spool.state_path(&id);
                fs::remove_file(&path).map_err(io_error("remove stray state file", &path))?;
            }
        }
        Ok(spool)
    }

    /// Writes a message durably; when this returns Ok the message survives a crash.
    pub fn store(&self, envelope: &Envelope, message: &[&[u8]]) -> Result<(), SpoolError> {
        let mut line = serde_json::to_vec(envelope).expect("an envelope always serializes");
        line.push(b'\n');
        let parts: Vec<&[u8]> = std::iter::once(line.as_slice())
            .chain(message.iter().copied())
            .collect();
        self.write_atomically(&format!("{}.msg", envelope.id), &parts)
    }

    /// Ids of all spooled messages.
    pub fn message_ids(&self) -> Result<Vec<String>, SpoolError> {
        self.ids_with_extension("msg")
    }

    /// Reads a message's envelope and content.
    pub fn load(&self, id: &str) -> Result<(Envelope, Vec<u8>), SpoolError> {
        let path = self.message_path(id);
        let content = fs::read(&path).map_err(io_error("read spool file", &path))?;
        let newline =
            content
                .iter()
                .position(|&b| b == b'\n')
                .ok_or_else(|| SpoolError::Damaged {
                    path: path.clone(),
                    reason: "no envelope line".into(),
                })?;
        let envelope =
            serde_json::from_slice(&content[..newline]).map_err(|e| SpoolError::Damaged {
                path: path.clone(),
                reason: format!("bad envelope: {e}"),
            })?;
        Ok((envelope, content[newline + 1..].to_vec()))
    }

    /// Reads a message's delivery progress; a message never tried has the default.
    pub fn state(&self, id: &str) -> Result<DeliveryState, SpoolError> {
        let path = self.state_path(id);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SpoolError::Damaged {
                path: path.clone(),
                reason: format!("bad delivery state: {e}"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DeliveryState::default()),
            Err(e) => Err(io_error("read", &path)(e)),
        }
    }

    /// Records delivery progress durably.
    pub fn save_state(&self, id: &str, state: &DeliveryState) -> Result<(), SpoolError> {
        let bytes = serde_json::to_vec(state).expect("a delivery state always serializes");
        self.write_atomically(&format!("{id}.state"), &[&bytes])
    }

    /// Removes a finished message.
    pub fn remove(&self, id: &str) -> Result<(), SpoolError> {
        let path = self.message_path(id);
        fs::remove_file(&path).map_err(io_error("remove spool file", &path))?;
        sync_dir(&self.queue)?;
        let state = self.state_path(id);
        match fs::remove_file(&state) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", &state)(e)),
            _ => Ok(()),
        }
    }

    fn message_path(&self, id: &str) -> PathBuf {
        self.queue.join(format!("{id}.msg"))
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.queue.join(format!("{id}.state"))
    }

    fn ids_with_extension(&self, extension: &str) -> Result<Vec<String>, SpoolError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.queue).map_err(io_error("read", &self.queue))? {
            let path = entry.map_err(io_error("read", &self.queue))?.path();
            if path.extension().and_then(|e| e.to_str()) == Some(extension)
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                ids.push(stem.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn write_atomically(&self, name: &str, parts: &[&[u8]]) -> Result<(), SpoolError> {
        let tmp = self.tmp.join(name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_error("create spool file", &tmp))?;
        for part in parts {
            file.write_all(part)
                .map_err(io_error("write spool file", &tmp))?;
        }
        file.sync_all()
            .map_err(io_error("fsync spool file", &tmp))?;
        drop(file);
        let target = self.queue.join(name);
        fs::rename(&tmp, &target).map_err(io_error("move into queue", &target))?;
        sync_dir(&self.queue)
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync spool directory", dir))
}

#[cfg(test)]
mod tests;
