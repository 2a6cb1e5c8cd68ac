//! MTA-STS (RFC 8461): the policy text, MX pattern matching, and fetching over HTTPS.
//!
//! A domain opts in with a `_mta-sts` TXT record (`v=STSv1; id=...`); the policy lives at
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt`, fetched with the certificate verified
//! against the public roots. In `enforce` mode only MX hosts matching a policy pattern are used,
//! and their certificates must verify for the MX name.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// MX patterns: exact names or `*.` followed by a parent domain.
    pub mx: Vec<String>,
    pub max_age: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("policy has no version STSv1")]
    Version,
    #[error("policy has no valid mode")]
    Mode,
    #[error("policy has no valid max_age")]
    MaxAge,
    #[error("policy in {0:?} mode lists no mx")]
    NoMx(Mode),
    #[error("failed to fetch policy: {0}")]
    Fetch(String),
}

/// The largest policy accepted (RFC 8461 section 3.3 recommends 64 KiB).
const MAX_POLICY_BYTES: usize = 64 * 1024;
/// max_age is capped at 31557600 seconds (one year).
const MAX_AGE_CAP: u64 = 31_557_600;

/// Parses a policy body (`key: value` lines, CRLF or LF).
pub fn parse(text: &str) -> Result<Policy, PolicyError> {
    let mut version = false;
    let mut mode = None;
    let mut max_age = None;
    let mut mx = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "version" => version = value == "STSv1",
            "mode" => {
                mode = match value {
                    "enforce" => Some(Mode::Enforce),
                    "testing" => Some(Mode::Testing),
                    "none" => Some(Mode::None),
                    _ => return Err(PolicyError::Mode),
                }
            }
            "max_age" => {
                let valid = !value.is_empty()
                    && value.len() <= 10
                    && value.bytes().all(|b| b.is_ascii_digit());
                max_age = valid
                    .then(|| value.parse::<u64>().ok())
                    .flatten()
                    .map(|a| a.min(MAX_AGE_CAP));
                if max_age.is_none() {
                    return Err(PolicyError::MaxAge);
                }
            }
            "mx" => mx.push(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    if !version {
        return Err(PolicyError::Version);
    }
    let mode = mode.ok_or(PolicyError::Mode)?;
    let max_age = max_age.ok_or(PolicyError::MaxAge)?;
    if mx.is_empty() && mode != Mode::None {
        return Err(PolicyError::NoMx(mode));
    }
    Ok(Policy { mode, mx, max_age })
}

impl Policy {
    /// Whether an MX host name is allowed by the policy. A `*.` pattern matches exactly one
    /// leftmost label.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => *pattern == host,
            })
    }
}

/// Whether a `_mta-sts` TXT value announces a policy (`v=STSv1` first, an `id`).
pub fn txt_announces_policy(txt: &str) -> bool {
    let mut fields = txt.split(';').map(str::trim).filter(|f| !f.is_empty());
    fields.next() == Some("v=STSv1")
        && fields.any(|f| {
            f.strip_prefix("id=").is_some_and(|id| {
                !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric())
            })
        })
}

/// Fetches and parses `https://mta-sts.<domain>/.well-known/mta-sts.txt`.
pub async fn fetch(
    domain: &str,
    port: u16,
    roots: Arc<ClientConfig>,
) -> Result<Policy, PolicyError> {
    let host = format!("mta-sts.{domain}");
    let failed = |e: String| PolicyError::Fetch(e);
    let work = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let name = ServerName::try_from(host.clone()).map_err(|e| failed(e.to_string()))?;
        let mut tls = TlsConnector::from(roots)
            .connect(name, tcp)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let request = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut response = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = tls
                .read(&mut chunk)
                .await
                .map_err(|e| failed(e.to_string()))?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
            if response.len() > MAX_POLICY_BYTES + 8192 {
                return Err(failed("response too large".into()));
            }
        }
        let body = http_body(&response).map_err(failed)?;
        parse(&String::from_utf8_lossy(&body))
    };
    tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .map_err(|_| failed("timed out".into()))?
}

/// The body of a `200` response with a `text/plain` type, de-chunked when needed.
pub fn http_body(response: &[u8]) -> Result<Vec<u8>, String> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header end")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = &response[split + 4..];
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("status line {status:?}"));
    }
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let header = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    if !header("content-type").is_some_and(|t| t.starts_with("text/plain")) {
        return Err("content type is not text/plain".into());
    }
    if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        return dechunk(body);
    }
    Ok(body.to_vec())
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 || out.len() + size > MAX_POLICY_BYTES {
            return Err("bad chunk".into());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests;
