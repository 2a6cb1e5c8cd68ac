//! RFC 2136 dynamic updates signed with TSIG (RFC 8945), over TCP to the primary server.
//!
//! DNS has no place to mark a record as someone's, so ownership is the exact set of records
//! the operator recorded in status as published: a record at the same name with another value
//! is someone else's and is left alone.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hickory_client::client::{Client, ClientHandle};
use hickory_client::proto::ProtoErrorKind;
use hickory_client::proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_client::proto::dnssec::tsig::TSigner;
use hickory_client::proto::op::update_message::UpdateMessage;
use hickory_client::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_client::proto::rr::rdata::{A, AAAA, TXT};
use hickory_client::proto::rr::{DNSClass, Name, RData, Record, RecordType as WireType};
use hickory_client::proto::runtime::TokioRuntimeProvider;
use hickory_client::proto::tcp::TcpClientStream;
use hickory_client::proto::xfer::DnsHandle;
use hickory_client::proto::xfer::DnsResponse;
use hickory_client::{ClientError, ClientErrorKind};
use rand_core::RngCore;

use super::provider::{DnsProvider, ExistingRecord, Ownership, ProviderError};
use super::record::{DnsRecord, RecordType, join_txt, split_txt};

const PROVIDER: &str = "rfc2136";

/// A primary server accepting TSIG-signed updates for one zone.
pub struct Rfc2136Provider {
    server: SocketAddr,
    zone: Name,
    signer: TSigner,
    ttl: u32,
}

/// Names a TSIG algorithm as in a server's key configuration, for example `hmac-sha256`.
pub fn tsig_algorithm(name: &str) -> Option<TsigAlgorithm> {
    match name {
        "hmac-sha256" => Some(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Some(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Some(TsigAlgorithm::HmacSha512),
        _ => None,
    }
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::Invalid {
        provider: PROVIDER,
        message: message.into(),
    }
}

fn fqdn(name: &str) -> Result<Name, ProviderError> {
    Name::from_str(&format!("{name}.")).map_err(|e| invalid(format!("bad name {name:?}: {e}")))
}

impl Rfc2136Provider {
    /// `secret` is the decoded TSIG key; it is held only in memory.
    pub fn new(
        server: SocketAddr,
        zone: &str,
        key_name: &str,
        algorithm: TsigAlgorithm,
        secret: Vec<u8>,
        ttl: u32,
    ) -> Result<Self, ProviderError> {
        let key = fqdn(key_name)?;
        let signer = TSigner::new(secret, algorithm, key, 300)
            .map_err(|e| invalid(format!("tsig key {key_name:?} cannot sign: {e}")))?;
        Ok(Self {
            server,
            zone: fqdn(zone)?,
            signer,
            ttl,
        })
    }

    async fn client(&self) -> Result<Client, ProviderError> {
        let provider = TokioRuntimeProvider::new();
        let timeout = Some(Duration::from_secs(10));
        let (stream, sender) = TcpClientStream::new(self.server, None, timeout, provider);
        let signer = Arc::new(self.signer.clone());
        let (client, background) = Client::new(stream, sender, Some(signer))
            .await
            .map_err(|e| self.connect_error(e))?;
        tokio::spawn(background);
        Ok(client)
    }

    fn connect_error(
        &self,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> ProviderError {
        let endpoint = self.server.to_string();
        ProviderError::Connect {
            provider: PROVIDER,
            endpoint,
            source: Box::new(error),
        }
    }

    fn wire_record(&self, record: &DnsRecord) -> Result<Record, ProviderError> {
        let rdata = match record.record_type {
            RecordType::TXT => RData::TXT(TXT::from_bytes(split_txt(&record.value))),
            RecordType::A => RData::A(A(record
                .value
                .parse()
                .map_err(|_| invalid(&record.value))?)),
            RecordType::AAAA => RData::AAAA(AAAA(
                record.value.parse().map_err(|_| invalid(&record.value))?,
            )),
        };
        let mut wire = Record::from_rdata(fqdn(&record.name)?, self.ttl, rdata);
        wire.set_dns_class(DNSClass::IN);
        Ok(wire)
    }

    /// Every exchange is TSIG-signed, so an answer that arrives but cannot be read is one whose
    /// signature did not verify: the key name, secret or algorithm is wrong.
    fn exchange_error(&self, error: ClientError) -> ProviderError {
        let unreachable = match error.kind() {
            ClientErrorKind::Io(_) | ClientErrorKind::Timeout => true,
            ClientErrorKind::Proto(proto) => {
                proto.is_io() || matches!(proto.kind(), ProtoErrorKind::Timeout)
            }
            _ => false,
        };
        if unreachable {
            return self.connect_error(error);
        }
        ProviderError::Unauthorized {
            provider: PROVIDER,
            message: format!(
                "the server's answer failed tsig verification (wrong tsig key or algorithm?): \
                 {error}"
            ),
        }
    }

    fn check(
        &self,
        operation: &'static str,
        name: &str,
        response: Result<DnsResponse, ClientError>,
    ) -> Result<DnsResponse, ProviderError> {
        let response = response.map_err(|e| self.exchange_error(e))?;
        match response.response_code() {
            ResponseCode::NoError => Ok(response),
            ResponseCode::NotAuth => Err(ProviderError::Unauthorized {
                provider: PROVIDER,
                message: format!("server answered NOTAUTH to {operation} of {name}"),
            }),
            code => Err(ProviderError::Rejected {
                provider: PROVIDER,
                operation,
                name: name.to_string(),
                message: format!("server answered {code}"),
            }),
        }
    }
}

impl DnsProvider for Rfc2136Provider {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    async fn read(
        &self,
        names: &[String],
        known_owned: &[DnsRecord],
    ) -> Result<Vec<ExistingRecord>, ProviderError> {
        let mut client = self.client().await?;
        let mut found = Vec::new();
        for name in names {
            for wire_type in [WireType::TXT, WireType::A, WireType::AAAA] {
                let response = client.query(fqdn(name)?, DNSClass::IN, wire_type).await;
                let response = match response {
                    Ok(r) if r.response_code() == ResponseCode::NXDomain => continue,
                    other => self.check("read", name, other)?,
                };
                for answer in response.answers() {
                    let record = match answer.data() {
                        RData::TXT(txt) => DnsRecord::txt(name, join_txt(txt.txt_data())),
                        RData::A(a) => DnsRecord::a(name, a.0),
                        RData::AAAA(aaaa) => DnsRecord::aaaa(name, aaaa.0),
                        _ => continue,
                    };
                    let owned = known_owned.contains(&record);
                    found.push(ExistingRecord {
                        record,
                        owned,
                        id: None,
                    });
                }
            }
        }
        Ok(found)
    }

    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let mut client = self.client().await?;
        let wire = self.wire_record(record)?;
        let response = client.append(wire, self.zone.clone(), false).await;
        self.check("create", &record.name, response).map(drop)
    }

    async fn update(
        &self,
        existing: &ExistingRecord,
        record: &DnsRecord,
        _ownership: Ownership,
    ) -> Result<(), ProviderError> {
        // One UPDATE message deleting exactly the old record and adding the new one: applied
        // atomically, and other records of the same name and type are left alone.
        let client = self.client().await?;
        let mut zone = Query::new();
        zone.set_name(self.zone.clone())
            .set_query_class(DNSClass::IN)
            .set_query_type(WireType::SOA);
        let mut message = Message::new();
        message
            .set_id(rand_core::OsRng.next_u32() as u16)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Update)
            .set_recursion_desired(false);
        message.add_zone(zone);
        let mut old = self.wire_record(&existing.record)?;
        old.set_dns_class(DNSClass::NONE);
        old.set_ttl(0);
        message.add_update(old);
        message.add_update(self.wire_record(record)?);
        let response = match client.send(message).next().await {
            Some(response) => response.map_err(ClientError::from),
            None => Err(ClientError::from(ClientErrorKind::Message(
                "no answer to the update",
            ))),
        };
        self.check("update", &record.name, response).map(drop)
    }

    async fn delete(&self, existing: &ExistingRecord) -> Result<(), ProviderError> {
        let mut client = self.client().await?;
        let wire = self.wire_record(&existing.record)?;
        let response = client.delete_by_rdata(wire, self.zone.clone()).await;
        self.check("delete", &existing.record.name, response)
            .map(drop)
    }
}
