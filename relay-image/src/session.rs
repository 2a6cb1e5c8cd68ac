//! One client connection: the plaintext phase before STARTTLS, the handshake, and the SMTP
//! dialogue over TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::request::receiver::RequestReceiver;
use smtp_proto::{Error as ProtoError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::audit::Event;
use crate::data::{DataProgress, DataReader};
use crate::metrics::Metrics;
use crate::peers::FailureOutcome;
use crate::relay::{Relay, Snapshot, kib};
use crate::submission::Submitter;

/// How long a client may stay silent before the relay hangs up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a TLS handshake may take; a peer that stalls it loses the connection.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a connection may stay before STARTTLS, or over TLS without a client certificate.
const PLAINTEXT_DEADLINE: Duration = Duration::from_secs(30);

/// How long one message's DATA may take in all, however steadily its bytes trickle in.
const DATA_DEADLINE: Duration = Duration::from_secs(600);

/// The longest SASL response line accepted (RFC 4954 section 4 allows 12288 octets).
const MAX_SASL_LINE: usize = 12288;

/// How long DATA waits for room in the receive budget before the client is told to retry.
const RESERVE_TIMEOUT: Duration = Duration::from_secs(60);

/// What follows a reply that hands the connection to something other than the command parser.
enum Continuation {
    /// `354`: the message (with the memory reserved for it), then the bytes after it.
    Data(Vec<u8>, OwnedSemaphorePermit, usize),
    /// `334`: one SASL response line, then the bytes after it.
    Sasl(Vec<u8>),
}

/// Serves one accepted connection on a submission port.
pub async fn serve(relay: Arc<Relay>, mut stream: TcpStream, peer: SocketAddr, implicit_tls: bool) {
    let snapshot = relay.snapshot();
    let hostname = snapshot.config.hostname.clone();
    if relay.peers.is_blocked(peer.ip(), Instant::now()) {
        let reply = format!("421 4.7.0 {hostname} too many authentication failures, try later\r\n");
        let _ = stream.write_all(reply.as_bytes()).await;
        return;
    }
    let Ok(_permit) = relay.connections.clone().try_acquire_owned() else {
        let reply = format!("421 4.3.2 {hostname} too many connections, try later\r\n");
        let _ = stream.write_all(reply.as_bytes()).await;
        return;
    };
    Metrics::add(&relay.metrics.connections_total, 1);
    let _open = OpenConnection::count(&relay);

    // A client that means to send does EHLO and STARTTLS at once; the slot is not held longer.
    if !implicit_tls {
        let plaintext = plaintext_phase(&mut stream, &hostname);
        if !tokio::time::timeout(PLAINTEXT_DEADLINE, plaintext)
            .await
            .unwrap_or(false)
        {
            return;
        }
    }
    let acceptor = TlsAcceptor::from(snapshot.tls.clone());
    let Ok(handshake) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
    else {
        // A peer that never finishes the handshake must not hold a connection slot.
        tracing::info!(%peer, "tls handshake timed out");
        return;
    };
    match handshake {
        Ok(tls) => {
            let mut session = Session::new(relay.clone(), snapshot, peer, tls);
            if session.submitter.has_certificate() {
                session.run(implicit_tls).await;
            } else {
                // Without a certificate nothing can be sent: such a session may not linger.
                let _ = tokio::time::timeout(PLAINTEXT_DEADLINE, session.run(implicit_tls)).await;
            }
        }
        Err(error) if is_certificate_error(&error) => {
            record_auth_failure(&relay, &snapshot, peer, &format!("tls handshake: {error}"))
        }
        // Protocol or suite mismatches (old clients, scanners) are not authentication attempts.
        Err(error) => tracing::info!(%peer, %error, "tls handshake failed"),
    }
}

/// Counts a connection in `connections_open` for as long as it lives.
struct OpenConnection(Arc<Relay>);

impl OpenConnection {
    fn count(relay: &Arc<Relay>) -> Self {
        Metrics::add(&relay.metrics.connections_open, 1);
        Self(relay.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0
            .metrics
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether a failed handshake failed on the client's certificate.
fn is_certificate_error(error: &std::io::Error) -> bool {
    let rustls_error = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    matches!(
        rustls_error,
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
    )
}

/// Audits a failed authentication and blocks the peer when it fails too often.
pub fn record_auth_failure(relay: &Relay, snapshot: &Snapshot, peer: SocketAddr, reason: &str) {
    Metrics::add(&relay.metrics.auth_failures_total, 1);
    let _ = relay.audit.record(&Event::AuthFailure {
        peer: peer.to_string(),
        reason,
    });
    let outcome =
        relay
            .peers
            .record_failure(peer.ip(), Instant::now(), &snapshot.config.auth_failures);
    if outcome == FailureOutcome::Blocked {
        Metrics::add(&relay.metrics.peers_blocked_total, 1);
        let until = chrono::Utc::now()
            + chrono::Duration::seconds(snapshot.config.auth_failures.block_seconds as i64);
        let _ = relay.audit.record(&Event::PeerBlocked {
            peer: peer.ip().to_string(),
            until: until.to_rfc3339(),
        });
    }
}

/// The dialogue before STARTTLS: only EHLO, HELO, STARTTLS, NOOP and QUIT. Returns true when the
/// client asked for TLS. Bytes pipelined after STARTTLS are discarded, never read as commands.
async fn plaintext_phase(stream: &mut TcpStream, hostname: &str) -> bool {
    let greeting = format!("220 {hostname} ESMTP mailwarden\r\n");
    if stream.write_all(greeting.as_bytes()).await.is_err() {
        return false;
    }
    let mut receiver = RequestReceiver::default();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        let mut iter = buf[..n].iter();
        let mut out = String::new();
        loop {
            let request = match receiver.ingest(&mut iter) {
                Ok(request) => Ok(request.into_owned()),
                Err(ProtoError::NeedsMoreData { .. }) => break,
                Err(error) => Err(error),
            };
            match request {
                Ok(Request::Ehlo { .. }) => out.push_str(&format!(
                    "250-{hostname}\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
                )),
                Ok(Request::Helo { .. }) => out.push_str(&format!("250 {hostname}\r\n")),
                Ok(Request::Noop { .. }) => out.push_str("250 2.0.0 ok\r\n"),
                Ok(Request::Quit) => {
                    out.push_str("221 2.0.0 bye\r\n");
                    let _ = stream.write_all(out.as_bytes()).await;
                    return false;
                }
                Ok(Request::StartTls) => {
                    out.push_str("220 2.0.0 ready to start TLS\r\n");
                    return stream.write_all(out.as_bytes()).await.is_ok();
                }
                _ => out.push_str("530 5.7.0 must issue a STARTTLS command first\r\n"),
            }
        }
        if stream.write_all(out.as_bytes()).await.is_err() {
            return false;
        }
    }
}

/// The dialogue over TLS.
struct Session<S> {
    stream: S,
    relay: Arc<Relay>,
    submitter: Submitter,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<TlsStream<S>> {
    fn new(
        relay: Arc<Relay>,
        snapshot: Arc<Snapshot>,
        peer: SocketAddr,
        stream: TlsStream<S>,
    ) -> Self {
        let connection = stream.get_ref().1;
        let client = connection
            .peer_certificates()
            .and_then(|c| c.first())
            .map(crate::tls::client_identity);
        let version = connection
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        let suite = connection
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        if let Some(client) = &client {
            let _ = relay.audit.record(&Event::AuthSuccess {
                peer: peer.to_string(),
                client,
                tls_version: &version,
                tls_suite: &suite,
            });
        }
        let submitter = Submitter::new(relay.clone(), snapshot, peer, client);
        Self {
            stream,
            relay,
            submitter,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    async fn run(&mut self, greet: bool) {
        if greet {
            let greeting = format!("220 {} ESMTP mailwarden\r\n", self.submitter.hostname());
            if self.stream.write_all(greeting.as_bytes()).await.is_err() {
                return;
            }
        }
        let mut receiver = RequestReceiver::default();
        let mut draining = self.relay.draining.clone();
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 65536];
        // After a line too long to parse, the rest of that line is dropped, never read as
        // commands, up to its line end (possibly several reads later).
        let mut skipping_line = false;
        loop {
            let mut out = String::new();
            let mut iter = pending.iter();
            let mut data_rest = None;
            loop {
                if skipping_line {
                    match iter.as_slice().iter().position(|&b| b == b'\n') {
                        Some(end) => {
                            iter.nth(end);
                            skipping_line = false;
                        }
                        None => {
                            iter.by_ref().for_each(drop);
                            break;
                        }
                    }
                }
                let request = match receiver.ingest(&mut iter) {
                    Ok(request) => Ok(request.into_owned()),
                    Err(ProtoError::NeedsMoreData { .. }) => break,
                    Err(ProtoError::ResponseTooLong) => {
                        receiver = RequestReceiver::default();
                        skipping_line = true;
                        Err(ProtoError::ResponseTooLong)
                    }
                    Err(error) => Err(error),
                };
                let reply = self.submitter.command(request);
                out.push_str(&reply.text);
                if reply.close {
                    let _ = self.stream.write_all(out.as_bytes()).await;
                    let _ = self.stream.shutdown().await;
                    return;
                }
                if reply.start_data {
                    // Replies to the commands before DATA go out before any wait for memory.
                    if !out.is_empty() && self.stream.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                    out.clear();
                    let bytes = self.submitter.data_reservation();
                    let Some(permit) = self.reserve(bytes).await else {
                        out.push_str("452 4.3.1 too much mail in progress, try again later\r\n");
                        continue;
                    };
                    out.push_str("354 end data with <CR><LF>.<CR><LF>\r\n");
                    data_rest = Some(Continuation::Data(iter.as_slice().to_vec(), permit, bytes));
                    break;
                }
                if reply.awaits_sasl_response {
                    data_rest = Some(Continuation::Sasl(iter.as_slice().to_vec()));
                    break;
                }
            }
            if !out.is_empty() && self.stream.write_all(out.as_bytes()).await.is_err() {
                return;
            }
            let rest = match data_rest {
                Some(Continuation::Data(rest, _permit, bytes)) => {
                    let receive = self.receive_message(rest, &mut buf, bytes);
                    match tokio::time::timeout(DATA_DEADLINE, receive).await {
                        Ok(rest) => rest,
                        Err(_) => {
                            let _ = self
                                .stream
                                .write_all(b"451 4.4.2 message data took too long\r\n")
                                .await;
                            None
                        }
                    }
                }
                Some(Continuation::Sasl(rest)) => self.receive_sasl_response(rest, &mut buf).await,
                None => Some(Vec::new()),
            };
            let Some(rest) = rest else {
                return;
            };
            pending = rest;
            if !pending.is_empty() {
                continue;
            }

            let read = tokio::select! {
                read = tokio::time::timeout(IDLE_TIMEOUT, self.stream.read(&mut buf)) => Some(read),
                _ = draining.wait_for(|d| *d) => None,
            };
            let Some(read) = read else {
                let _ = self
                    .stream
                    .write_all(b"421 4.3.2 shutting down, try again later\r\n")
                    .await;
                return;
            };
            match read {
                Ok(Ok(n)) if n > 0 => pending.extend_from_slice(&buf[..n]),
                _ => return,
            }
        }
    }

    /// Reads the line after `334`, answers it, and returns the bytes that follow it.
    async fn receive_sasl_response(
        &mut self,
        mut line: Vec<u8>,
        buf: &mut [u8],
    ) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = line.iter().position(|&b| b == b'\n') {
                let rest = line.split_off(end + 1);
                let text = String::from_utf8_lossy(&line);
                let reply = self
                    .submitter
                    .sasl_response(text.trim_end_matches(['\r', '\n']));
                self.stream.write_all(reply.text.as_bytes()).await.ok()?;
                return Some(rest);
            }
            if line.len() > MAX_SASL_LINE {
                let _ = self.stream.write_all(b"500 5.5.6 line too long\r\n").await;
                return None;
            }
            let n = self.read_more(buf).await?;
            line.extend_from_slice(&buf[..n]);
        }
    }

    /// Waits (a while) until `bytes` of the receive budget are free, and takes them.
    async fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let permits = u32::try_from(kib(bytes)).ok()?;
        let budget = self.relay.receive_budget.clone();
        tokio::time::timeout(RESERVE_TIMEOUT, budget.acquire_many_owned(permits))
            .await
            .ok()?
            .ok()
    }

    /// Reads one message of at most `limit` bytes after `354`, answers it, and returns the
    /// bytes that follow it.
    async fn receive_message(
        &mut self,
        first: Vec<u8>,
        buf: &mut [u8],
        limit: usize,
    ) -> Option<Vec<u8>> {
        let mut reader = DataReader::new(limit);
        let mut chunk = first;
        loop {
            if let DataProgress::Complete { consumed } = reader.feed(&chunk) {
                let rest = chunk[consumed..].to_vec();
                let reply = self.submitter.finish(reader).await;
                self.stream.write_all(reply.as_bytes()).await.ok()?;
                return Some(rest);
            }
            let n = self.read_more(buf).await?;
            chunk = buf[..n].to_vec();
        }
    }

    /// Reads what the client sent next; None when it went silent too long, failed or left.
    async fn read_more(&mut self, buf: &mut [u8]) -> Option<usize> {
        let n = tokio::time::timeout(IDLE_TIMEOUT, self.stream.read(buf))
            .await
            .ok()?
            .ok()?;
        (n > 0).then_some(n)
    }
}

/// A reply to one command and what it does to the session.
#[derive(Debug, Default)]
pub struct Reply {
    pub text: String,
    pub close: bool,
    pub start_data: bool,
    /// The reply is `334`: the next line is a SASL response, not a command.
    pub awaits_sasl_response: bool,
}

impl Reply {
    pub fn line(text: impl Into<String>) -> Self {
        Self {
            text: text.into() + "\r\n",
            ..Default::default()
        }
    }
}
