//! The rules of a submission transaction: who may send, from which domain, to how many, and what
//! happens to an accepted message (checked, signed, spooled, audited, queued).

use std::net::SocketAddr;
use std::sync::Arc;

use smtp_proto::{AUTH_PLAIN, Error as ProtoError, MAIL_REQUIRETLS, MAIL_SMTPUTF8, Request};

use crate::audit::Event;
use crate::author::author_domain;
use crate::credentials::{PlainError, decode_plain};
use crate::data::DataReader;
use crate::metrics::Metrics;
use crate::relay::{Relay, Snapshot};
use crate::session::{Reply, record_auth_failure};
use crate::spool::Envelope;

/// An open MAIL transaction.
#[derive(Debug, Default)]
pub struct Transaction {
    sender: String,
    recipients: Vec<String>,
    require_tls: bool,
    /// The SIZE the client declared with MAIL FROM; 0 when it declared none.
    declared_size: u64,
}

/// The per-connection state of the dialogue over TLS.
pub struct Submitter {
    relay: Arc<Relay>,
    snapshot: Arc<Snapshot>,
    peer: SocketAddr,
    /// The verified client certificate's identity; None when the client sent none.
    client: Option<String>,
    /// Whether the client passed SMTP AUTH, where the configuration requires it.
    authenticated: bool,
    helo: Option<String>,
    transaction: Option<Transaction>,
    auth_failure_recorded: bool,
}

impl Submitter {
    pub fn new(
        relay: Arc<Relay>,
        snapshot: Arc<Snapshot>,
        peer: SocketAddr,
        client: Option<String>,
    ) -> Self {
        Self {
            relay,
            snapshot,
            peer,
            client,
            authenticated: false,
            helo: None,
            transaction: None,
            auth_failure_recorded: false,
        }
    }

    /// Whether the client presented a certificate of the tenant's CA.
    pub fn has_certificate(&self) -> bool {
        self.client.is_some()
    }

    pub fn hostname(&self) -> &str {
        &self.snapshot.config.hostname
    }

    pub fn max_message_bytes(&self) -> usize {
        self.snapshot.config.limits.max_message_bytes as usize
    }

    /// How many bytes of the coming message to make room for: its declared SIZE with a margin
    /// for line-ending differences, or the maximum message size when it declared none.
    pub fn data_reservation(&self) -> usize {
        let max = self.max_message_bytes();
        match self
            .transaction
            .as_ref()
            .map_or(0, |t| t.declared_size as usize)
        {
            0 => max,
            declared => max.min(declared + declared / 8 + 64 * 1024),
        }
    }

    /// Answers one command (or one unparsable line).
    pub fn command(&mut self, request: Result<Request<String>, ProtoError>) -> Reply {
        let request = match request {
            Ok(request) => request,
            Err(error) => return Reply::line(syntax_reply(&error)),
        };
        match request {
            Request::Ehlo { host } if !greeting_name(&host) => {
                Reply::line("501 5.5.4 EHLO needs a domain name or an address literal")
            }
            Request::Helo { host } if !greeting_name(&host) => {
                Reply::line("501 5.5.4 HELO needs a domain name or an address literal")
            }
            Request::Ehlo { host } => {
                self.helo = Some(host);
                self.transaction = None;
                let limits = &self.snapshot.config.limits;
                let auth = if self.snapshot.credentials.is_some() {
                    "250-AUTH PLAIN\r\n"
                } else {
                    ""
                };
                Reply {
                    text: format!(
                        "250-{}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
                         250-REQUIRETLS\r\n250-ENHANCEDSTATUSCODES\r\n{auth}250 SIZE {}\r\n",
                        self.hostname(),
                        limits.max_message_bytes
                    ),
                    ..Default::default()
                }
            }
            Request::Helo { host } => {
                self.helo = Some(host);
                self.transaction = None;
                Reply::line(format!("250 {}", self.hostname()))
            }
            Request::Mail { from } => Reply::line(self.mail(from)),
            Request::Rcpt { to } => Reply::line(self.rcpt(to.address)),
            Request::Data => match &self.transaction {
                None => Reply::line("503 5.5.1 MAIL first"),
                Some(t) if t.recipients.is_empty() => Reply::line("503 5.5.1 RCPT first"),
                // The session reserves memory for the message, then answers 354 or 452.
                Some(_) => Reply {
                    start_data: true,
                    ..Reply::default()
                },
            },
            Request::Rset => {
                self.transaction = None;
                Reply::line("250 2.0.0 reset")
            }
            Request::Noop { .. } => Reply::line("250 2.0.0 ok"),
            Request::Quit => Reply {
                close: true,
                ..Reply::line("221 2.0.0 bye")
            },
            Request::StartTls => Reply::line("503 5.5.1 TLS is already active"),
            Request::Vrfy { .. } | Request::Expn { .. } => {
                Reply::line("252 2.5.0 cannot verify, send the message")
            }
            Request::Help { .. } => Reply::line("214 2.0.0 see RFC 5321"),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            _ => Reply::line("502 5.5.1 command not implemented"),
        }
    }

    /// `AUTH`: offered only where the configuration requires it, and only after the client
    /// certificate, whose identity the username must be.
    fn auth(&mut self, mechanism: u64, initial_response: String) -> Reply {
        if self.snapshot.credentials.is_none() {
            return Reply::line("504 5.5.4 AUTH is not offered; present a client certificate");
        }
        if self.client.is_none() {
            return Reply::line(self.certificate_required());
        }
        if self.helo.is_none() {
            return Reply::line("503 5.5.1 EHLO first");
        }
        if self.authenticated {
            return Reply::line("503 5.5.1 already authenticated");
        }
        if self.transaction.is_some() {
            return Reply::line("503 5.5.1 AUTH is not allowed during a mail transaction");
        }
        if mechanism != AUTH_PLAIN {
            return Reply::line("504 5.5.4 unsupported mechanism, use PLAIN");
        }
        if initial_response.is_empty() {
            return Reply {
                awaits_sasl_response: true,
                ..Reply::line("334 ")
            };
        }
        // RFC 4954: "=" is an initial response of zero length.
        let response = if initial_response == "=" {
            ""
        } else {
            &initial_response
        };
        Reply::line(self.check_plain(response))
    }

    /// The client's answer to `334`: a SASL PLAIN response line.
    pub fn sasl_response(&mut self, line: &str) -> Reply {
        Reply::line(self.check_plain(line))
    }

    fn check_plain(&mut self, response: &str) -> String {
        let (user, password) = match decode_plain(response) {
            Ok(decoded) => decoded,
            Err(PlainError::Cancelled) => return "501 5.7.0 authentication cancelled".into(),
            Err(PlainError::Malformed) => {
                record_auth_failure(
                    &self.relay,
                    &self.snapshot,
                    self.peer,
                    "smtp auth: malformed PLAIN response",
                );
                return "501 5.5.2 malformed PLAIN response".into();
            }
        };
        let client = self.client.as_deref().unwrap_or_default();
        let credentials = self.snapshot.credentials.as_ref();
        let valid = credentials.is_some_and(|c| c.verify(&user, &password));
        if !valid || user != client {
            // Only a configured username is named: what a client sends as a name may be a
            // password typed in the wrong field.
            let reason = if credentials.is_some_and(|c| c.knows(&user)) {
                format!("smtp auth: invalid credentials for {user:?} with certificate {client:?}")
            } else {
                format!("smtp auth: unknown username with certificate {client:?}")
            };
            record_auth_failure(&self.relay, &self.snapshot, self.peer, &reason);
            return "535 5.7.8 authentication credentials invalid".into();
        }
        self.authenticated = true;
        let _ = self.relay.audit.record(&Event::SmtpAuthSuccess {
            peer: self.peer.to_string(),
            client,
        });
        "235 2.7.0 authentication successful".into()
    }

    /// Refuses a client without a certificate, auditing (once a session) the failed attempt.
    fn certificate_required(&mut self) -> String {
        if !self.auth_failure_recorded {
            self.auth_failure_recorded = true;
            record_auth_failure(
                &self.relay,
                &self.snapshot,
                self.peer,
                "no client certificate",
            );
        }
        "530 5.7.0 authentication required: present a client certificate".into()
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> String {
        if self.helo.is_none() {
            return "503 5.5.1 EHLO first".into();
        }
        if self.transaction.is_some() {
            return "503 5.5.1 nested MAIL command".into();
        }
        if self.client.is_none() {
            return self.certificate_required();
        }
        if self.snapshot.credentials.is_some() && !self.authenticated {
            return "530 5.7.0 authentication required: AUTH PLAIN first".into();
        }
        let limits = &self.snapshot.config.limits;
        if from.size as u64 > limits.max_message_bytes {
            return format!(
                "552 5.3.4 message size exceeds the maximum of {} bytes",
                limits.max_message_bytes
            );
        }
        if !from.address.is_ascii() && from.flags & MAIL_SMTPUTF8 == 0 {
            return "553 5.6.7 non-ASCII address requires SMTPUTF8".into();
        }
        let Some(domain) = self.sending_domain(&from.address) else {
            return self.refuse(
                &from.address,
                "553 5.7.1 sender domain is not a sending domain of this relay",
            );
        };
        if domain.selectors.is_empty() {
            return self.refuse(
                &from.address,
                "451 4.7.1 sending domain has no active DKIM selector yet",
            );
        }
        self.transaction = Some(Transaction {
            sender: from.address,
            recipients: Vec::new(),
            require_tls: from.flags & MAIL_REQUIRETLS != 0,
            declared_size: from.size as u64,
        });
        "250 2.1.0 sender ok".into()
    }

    fn rcpt(&mut self, address: String) -> String {
        let max = self.snapshot.config.limits.max_recipients as usize;
        let Some(transaction) = &mut self.transaction else {
            return "503 5.5.1 MAIL first".into();
        };
        if transaction.recipients.len() >= max {
            return format!("452 4.5.3 too many recipients, at most {max} per message");
        }
        if !address.contains('@') {
            return "501 5.1.3 recipient must be a full address".into();
        }
        transaction.recipients.push(address);
        "250 2.1.5 recipient ok".into()
    }

    /// The sending domain an address belongs to, if any.
    fn sending_domain(&self, address: &str) -> Option<&mailwarden_relay_config::SendingDomain> {
        let (_, domain) = address.rsplit_once('@')?;
        self.snapshot.config.domain(domain)
    }

    fn refuse(&self, sender: &str, reply: &str) -> String {
        Metrics::add(&self.relay.metrics.messages_refused_total, 1);
        let client = self.client.as_deref().unwrap_or("");
        let _ = self.relay.audit.record(&Event::MessageRefused {
            peer: self.peer.to_string(),
            client,
            sender,
            reply,
        });
        reply.to_string()
    }

    /// Checks, signs, spools and queues a received message; returns the reply line.
    pub async fn finish(&mut self, reader: DataReader) -> String {
        let Some(transaction) = self.transaction.take() else {
            return "503 5.5.1 MAIL first\r\n".into();
        };
        let reply = self.accept(transaction, reader).await;
        reply + "\r\n"
    }

    async fn accept(&mut self, transaction: Transaction, reader: DataReader) -> String {
        let sender = transaction.sender.as_str();
        if reader.oversized() {
            let max = self.max_message_bytes();
            let reply = if reader.limit() < max {
                "552 5.3.4 message is larger than the SIZE declared with MAIL FROM".to_string()
            } else {
                format!("552 5.3.4 message exceeds the maximum of {max} bytes")
            };
            return self.refuse(sender, &reply);
        }
        let message = reader.into_message();
        let from_domain = match author_domain(&message) {
            Ok(domain) => domain,
            Err(error) => return self.refuse(sender, error.reply()),
        };
        if self
            .snapshot
            .config
            .domain(&from_domain)
            .is_none_or(|d| d.selectors.is_empty())
        {
            return self.refuse(
                sender,
                "553 5.7.1 From header domain is not a sending domain of this relay",
            );
        }

        let (signatures, selectors) = match self.snapshot.signer.sign(&from_domain, &message) {
            Ok(signed) => signed,
            Err(error) => {
                tracing::error!(%error, "failed to sign a message");
                return self.refuse(sender, "451 4.3.0 failed to sign the message, try again");
            }
        };
        let id = new_message_id();
        let client = self.client.clone().unwrap_or_default();
        let received = format!(
            "Received: from {} ([{}]) by {} with ESMTPS id {}; {}\r\n",
            self.helo.as_deref().unwrap_or("unknown"),
            self.peer.ip(),
            self.hostname(),
            id,
            chrono::Utc::now().to_rfc2822()
        );
        let envelope = Envelope {
            id: id.clone(),
            sender: transaction.sender.clone(),
            recipients: transaction.recipients.clone(),
            received_at: chrono::Utc::now().timestamp() as u64,
            client: client.clone(),
            require_tls: transaction.require_tls,
        };
        let spool = self.relay.spool.clone();
        let size = received.len() + signatures.len() + message.len();
        let stored_envelope = envelope.clone();
        // Written in parts, so the message is never copied to prepend the new header fields.
        let result = tokio::task::spawn_blocking(move || {
            let parts = [received.as_bytes(), signatures.as_bytes(), &message];
            spool.store(&stored_envelope, &parts)
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(%error, "failed to spool a message");
                return self.refuse(sender, "451 4.3.0 failed to queue the message, try again");
            }
            Err(error) => {
                tracing::error!(%error, "spool task failed");
                return self.refuse(sender, "451 4.3.0 failed to queue the message, try again");
            }
        }

        let mut domains: Vec<&str> = envelope
            .recipients
            .iter()
            .filter_map(|r| r.rsplit_once('@'))
            .map(|(_, d)| d)
            .collect();
        domains.sort_unstable();
        domains.dedup();
        let event = Event::MessageAccepted {
            id: &id,
            client: &client,
            sender: &envelope.sender,
            recipients: envelope.recipients.len(),
            recipient_domains: domains,
            size,
            selectors,
        };
        if let Err(error) = self.relay.audit.record(&event) {
            tracing::error!(%error, "failed to audit an accepted message");
        }
        Metrics::add(&self.relay.metrics.messages_accepted_total, 1);
        Metrics::add(&self.relay.metrics.accepted_bytes_total, size as u64);
        let _ = self.relay.queued.send(id.clone());
        format!("250 2.0.0 queued as {id}")
    }
}

/// Whether an EHLO or HELO argument is a domain name or an address literal (RFC 5321 section
/// 4.1.3). It goes into the Received header the relay adds, so nothing else is let through.
pub fn greeting_name(host: &str) -> bool {
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    match literal {
        Some(address) => match address.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => address.parse::<std::net::Ipv4Addr>().is_ok(),
        },
        None => {
            !host.is_empty()
                && host.len() <= 255
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        }
    }
}

/// The reply to a line that did not parse.
pub fn syntax_reply(error: &ProtoError) -> String {
    match error {
        ProtoError::UnknownCommand => "500 5.5.2 command not recognized".into(),
        ProtoError::InvalidSenderAddress => "501 5.1.7 bad sender address syntax".into(),
        ProtoError::InvalidRecipientAddress => "501 5.1.3 bad recipient address syntax".into(),
        ProtoError::SyntaxError { syntax } => format!("501 5.5.4 syntax: {syntax}"),
        ProtoError::InvalidParameter { param } => format!("501 5.5.4 invalid parameter {param}"),
        ProtoError::UnsupportedParameter { param } => {
            format!("555 5.5.4 unsupported parameter {}", param.escape_default())
        }
        ProtoError::ResponseTooLong => "500 5.5.6 line too long".into(),
        _ => "500 5.5.2 command not recognized".into(),
    }
}

/// A new spool id: time-ordered and unique across restarts.
pub fn new_message_id() -> String {
    let mut random = [0u8; 6];
    let rng = rustls::crypto::ring::default_provider().secure_random;
    rng.fill(&mut random)
        .expect("the system random source works");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}{}", hex::encode(random))
}

#[cfg(test)]
mod tests {
    use super::greeting_name;

    #[test]
    fn greeting_names_are_domains_or_address_literals() {
        for good in [
            "client.example",
            "localhost",
            "mail_1.example",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
        ] {
            assert!(greeting_name(good), "{good}");
        }
        for bad in [
            "",
            "a\0b",
            "a b",
            "\u{1b}[31m",
            "[garbage",
            "[192.0.2.300]",
            "a..b",
            "x;y",
            "-",
            "[IPv6:192.0.2.1]",
            "[2001:db8::1]",
        ] {
            assert!(!greeting_name(bad), "{bad:?}");
        }
    }
}
