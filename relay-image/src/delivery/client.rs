//! The outbound SMTP transaction: STARTTLS is required before any envelope is sent, and the
//! certificate is checked by the verifier the destination's policy chose.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::ClientConfig;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

/// How long one step of the dialogue may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Where and how to hand over one domain's recipients.
pub struct Handover<'a> {
    pub host: &'a str,
    pub address: SocketAddr,
    pub source: Option<IpAddr>,
    pub helo: &'a str,
    pub verifier: Arc<dyn ServerCertVerifier>,
    pub credentials: Option<(String, String)>,
    pub sender: &'a str,
    pub recipients: &'a [&'a str],
    pub require_tls: bool,
    pub message: &'a [u8],
}

/// The fate of one recipient in a transaction that reached DATA (or was refused before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientResult {
    Delivered,
    Refused(String),
    Deferred(String),
}

/// A failure before any recipient got an answer; the next MX may be tried.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("failed to connect to {host} ({address}): {source}")]
    Connect {
        host: String,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("connection to {host} failed: {reason}")]
    Dialogue { host: String, reason: String },
    #[error("{host} does not offer STARTTLS; refusing to send in plaintext")]
    NoStartTls { host: String },
    #[error("TLS with {host} failed: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("{host} refused the transaction: {reply}")]
    Refused {
        host: String,
        reply: String,
        permanent: bool,
    },
}

impl HandoverError {
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                permanent: true,
                ..
            }
        )
    }
}

/// One SMTP reply: code and the text of all its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl ServerReply {
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }

    fn has_extension(&self, name: &str) -> bool {
        self.lines.iter().skip(1).any(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(name))
        })
    }
}

/// Runs a whole transaction; returns a result per recipient.
pub async fn hand_over(h: &Handover<'_>) -> Result<Vec<RecipientResult>, HandoverError> {
    let host = h.host.to_string();
    let dialogue = |reason: String| HandoverError::Dialogue {
        host: host.clone(),
        reason,
    };
    let socket = if h.address.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    };
    let connect_error = |source| HandoverError::Connect {
        host: host.clone(),
        address: h.address,
        source,
    };
    let socket = socket.map_err(connect_error)?;
    if let Some(source) = h.source.filter(|s| s.is_ipv4() == h.address.is_ipv4()) {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(connect_error)?;
    }
    let stream = tokio::time::timeout(STEP_TIMEOUT, socket.connect(h.address))
        .await
        .map_err(|_| dialogue("connect timed out".into()))?
        .map_err(connect_error)?;
    let mut plain = Wire::new(stream);

    expect(
        &plain.read_reply().await.map_err(&dialogue)?,
        220,
        h.host,
        false,
    )?;
    let ehlo = plain
        .command(&format!("EHLO {}", h.helo))
        .await
        .map_err(&dialogue)?;
    expect(&ehlo, 250, h.host, false)?;
    if !ehlo.has_extension("STARTTLS") {
        return Err(HandoverError::NoStartTls { host });
    }
    expect(
        &plain.command("STARTTLS").await.map_err(&dialogue)?,
        220,
        h.host,
        false,
    )?;

    let config = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| dialogue(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(h.verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(h.host.to_string()).map_err(|e| dialogue(e.to_string()))?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, plain.stream)
        .await
        .map_err(|source| HandoverError::Tls {
            host: host.clone(),
            source,
        })?;
    let mut wire = Wire::new(tls);

    let ehlo = wire
        .command(&format!("EHLO {}", h.helo))
        .await
        .map_err(&dialogue)?;
    expect(&ehlo, 250, h.host, false)?;
    if let Some((user, password)) = &h.credentials {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        let reply = wire
            .command(&format!("AUTH PLAIN {token}"))
            .await
            .map_err(&dialogue)?;
        expect(&reply, 235, h.host, false)?;
    }
    let mut mail = format!("MAIL FROM:<{}>", h.sender);
    if !h.sender.is_ascii() || h.recipients.iter().any(|r| !r.is_ascii()) {
        mail.push_str(" SMTPUTF8");
    }
    if h.require_tls {
        if !ehlo.has_extension("REQUIRETLS") {
            return Err(HandoverError::Refused {
                host,
                reply: "550 5.7.30 REQUIRETLS not supported by the destination".into(),
                permanent: true,
            });
        }
        mail.push_str(" REQUIRETLS");
    }
    expect(
        &wire.command(&mail).await.map_err(&dialogue)?,
        250,
        h.host,
        true,
    )?;

    let mut results = Vec::new();
    for recipient in h.recipients {
        let reply = wire
            .command(&format!("RCPT TO:<{recipient}>"))
            .await
            .map_err(&dialogue)?;
        results.push(match reply.code {
            200..=299 => RecipientResult::Delivered,
            500..=599 => RecipientResult::Refused(reply.text()),
            _ => RecipientResult::Deferred(reply.text()),
        });
    }
    if !results.contains(&RecipientResult::Delivered) {
        let _ = wire.command("QUIT").await;
        return Ok(results);
    }
    let data = wire.command("DATA").await.map_err(&dialogue)?;
    expect(&data, 354, h.host, true)?;
    wire.send(&dot_stuffed(h.message))
        .await
        .map_err(&dialogue)?;
    let end = wire.read_reply().await.map_err(&dialogue)?;
    let _ = wire.command("QUIT").await;
    let outcome = match end.code {
        200..=299 => RecipientResult::Delivered,
        500..=599 => RecipientResult::Refused(end.text()),
        _ => RecipientResult::Deferred(end.text()),
    };
    Ok(results
        .into_iter()
        .map(|r| {
            if r == RecipientResult::Delivered {
                outcome.clone()
            } else {
                r
            }
        })
        .collect())
}

fn expect(reply: &ServerReply, code: u16, host: &str, refusal: bool) -> Result<(), HandoverError> {
    if reply.code == code {
        return Ok(());
    }
    let permanent = refusal && reply.code >= 500;
    Err(HandoverError::Refused {
        host: host.into(),
        reply: reply.text(),
        permanent,
    })
}

/// The message as sent after DATA: lines starting with a dot get another, and the terminator.
pub fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A connection with a read buffer, plain or TLS.
struct Wire<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    async fn command(&mut self, line: &str) -> Result<ServerReply, String> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply().await
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(STEP_TIMEOUT, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err("write timed out".into()),
        }
    }

    async fn read_reply(&mut self) -> Result<ServerReply, String> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code.filter(|c| (200..600).contains(c)) else {
                return Err(format!("malformed reply line {line:?}"));
            };
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(ServerReply { code, lines });
            }
        }
    }

    async fn read_line(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                return Ok(text);
            }
            if self.buf.len() > 65536 {
                return Err("reply line too long".into());
            }
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout(STEP_TIMEOUT, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) => return Err("connection closed".into()),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(format!("read failed: {e}")),
                Err(_) => return Err("read timed out".into()),
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Wire<TcpStream> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_starting_with_a_dot_are_stuffed_and_the_terminator_added() {
        assert_eq!(dot_stuffed(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n.\r\n");
        assert_eq!(dot_stuffed(b"no newline"), b"no newline\r\n.\r\n");
    }
}
