//! The audit log: JSON lines, each sealed with a hash over the line before it and itself.
//!
//! Every line is `{"seq":N,"ts":"...","tenant":"...","event":"...",...,"prev":P,"hash":H}` where
//! `P` is the previous line's `hash` (64 zeros for the first line) and `H` is the SHA-256 of the
//! line as written without its `,"hash":"..."` suffix. Editing a line breaks its own hash; removing
//! or reordering lines breaks the next line's `prev`. Subjects, bodies, keys and passwords are
//! never written: events carry only the fields listed in [`Event`].

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited happening; its fields become the JSON line.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event<'a> {
    AuthSuccess {
        peer: String,
        client: &'a str,
        tls_version: &'a str,
        tls_suite: &'a str,
    },
    /// The client passed SMTP AUTH after its certificate (where the configuration requires it).
    SmtpAuthSuccess {
        peer: String,
        client: &'a str,
    },
    AuthFailure {
        peer: String,
        reason: &'a str,
    },
    PeerBlocked {
        peer: String,
        until: String,
    },
    MessageAccepted {
        id: &'a str,
        client: &'a str,
        sender: &'a str,
        recipients: usize,
        recipient_domains: Vec<&'a str>,
        size: usize,
        selectors: Vec<String>,
    },
    MessageRefused {
        peer: String,
        client: &'a str,
        sender: &'a str,
        reply: &'a str,
    },
    DeliveryAttempt {
        id: &'a str,
        domain: &'a str,
        host: &'a str,
        tls_policy: &'a str,
        result: &'a str,
        reply: &'a str,
    },
    MessageBounced {
        id: &'a str,
        recipients: usize,
        dsn: &'a str,
    },
    /// A crash (power loss) left a line half written; it was cut off before appending.
    TornLineDropped {
        bytes: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("failed to {action} audit log {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("audit log {path} line {line}: {reason}")]
    Broken {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

/// The open audit log.
pub struct AuditLog {
    tenant: String,
    path: PathBuf,
    inner: Mutex<Chain>,
}

struct Chain {
    file: File,
    seq: u64,
    prev: String,
}

impl AuditLog {
    /// Opens the log for appending, after checking the whole chain so far.
    pub fn open(path: &Path, tenant: &str) -> Result<Self, AuditError> {
        let io = |action| {
            move |source| AuditError::Io {
                action,
                path: path.into(),
                source,
            }
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create the directory of"))?;
        }
        let torn = if path.exists() {
            cut_torn_line(path).map_err(io("repair"))?
        } else {
            0
        };
        let (seq, prev) = if path.exists() {
            verify(path)?
        } else {
            (0, GENESIS.to_string())
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io("open"))?;
        let chain = Mutex::new(Chain { file, seq, prev });
        let log = Self {
            tenant: tenant.into(),
            path: path.into(),
            inner: chain,
        };
        if torn > 0 {
            log.record(&Event::TornLineDropped { bytes: torn })?;
        }
        Ok(log)
    }

    /// Appends one event. A failure to write is returned so the caller can refuse the action.
    pub fn record(&self, event: &Event<'_>) -> Result<(), AuditError> {
        let mut fields = match serde_json::to_value(event).expect("events always serialize") {
            Value::Object(fields) => fields,
            _ => unreachable!("events are structs"),
        };
        let mut chain = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut line = Map::new();
        line.insert("seq".into(), (chain.seq + 1).into());
        line.insert("ts".into(), chrono::Utc::now().to_rfc3339().into());
        line.insert("tenant".into(), self.tenant.clone().into());
        line.insert(
            "event".into(),
            fields.remove("event").unwrap_or(Value::Null),
        );
        line.append(&mut fields);
        line.insert("prev".into(), chain.prev.clone().into());

        let body = Value::Object(line).to_string();
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        let sealed = format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]);
        chain
            .file
            .write_all(sealed.as_bytes())
            .map_err(|source| AuditError::Io {
                action: "append to",
                path: self.path.clone(),
                source,
            })?;
        chain.seq += 1;
        chain.prev = hash;
        Ok(())
    }
}

/// Cuts a last line that has no newline (a write torn by power loss); returns its length.
fn cut_torn_line(path: &Path) -> io::Result<u64> {
    let content = std::fs::read(path)?;
    if content.is_empty() || content.ends_with(b"\n") {
        return Ok(0);
    }
    let keep = content
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(keep as u64)?;
    file.sync_all()?;
    Ok((content.len() - keep) as u64)
}

/// Checks the chain of a log file; returns the number of lines and the last hash, or the first
/// broken line (1-based).
pub fn verify(path: &Path) -> Result<(u64, String), AuditError> {
    let file = File::open(path).map_err(|source| AuditError::Io {
        action: "open",
        path: path.into(),
        source,
    })?;
    let mut prev = GENESIS.to_string();
    let mut count = 0;
    for line in BufReader::new(file).lines() {
        count += 1;
        let line = line.map_err(|source| AuditError::Io {
            action: "read",
            path: path.into(),
            source,
        })?;
        let broken = |reason: String| AuditError::Broken {
            path: path.into(),
            line: count,
            reason,
        };
        prev = check_line(&line, &prev, count).map_err(broken)?;
    }
    Ok((count, prev))
}

/// Checks one line against the previous hash; returns its own hash.
fn check_line(line: &str, prev: &str, seq: u64) -> Result<String, String> {
    const SUFFIX_LEN: usize = ",\"hash\":\"\"}".len() + 64;
    if line.len() < SUFFIX_LEN || !line.is_char_boundary(line.len() - SUFFIX_LEN) {
        return Err("line is too short to carry a hash".into());
    }
    let (body, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    let hash = suffix
        .strip_prefix(",\"hash\":\"")
        .and_then(|s| s.strip_suffix("\"}"))
        .ok_or("line does not end with its hash")?;
    let body = format!("{body}}}");
    if hex::encode(Sha256::digest(body.as_bytes())) != hash {
        return Err("hash does not match the line's content".into());
    }
    let fields: Value = serde_json::from_str(&body).map_err(|e| format!("not JSON: {e}"))?;
    if fields["prev"] != prev {
        return Err("prev does not match the hash of the line before".into());
    }
    if fields["seq"] != seq {
        return Err(format!("seq is {} where {seq} was expected", fields["seq"]));
    }
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests;
