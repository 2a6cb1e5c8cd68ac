//! Proves from outside that DNS serves the wanted records, through the resolvers the spec
//! names (or the system's), asking every resolver and trusting none alone.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType as WireType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, Resolver};

use super::record::{DnsRecord, RecordType, join_txt};

/// What resolvers serve for one wanted record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordState {
    /// Every resolver serves exactly the wanted value.
    Verified,
    /// A resolver has no record of that type at the name.
    Missing { resolver: String },
    /// A resolver serves other values at the name, but not the wanted one.
    Different {
        resolver: String,
        found: Vec<String>,
    },
    /// A resolver could not be asked.
    Failed { resolver: String, message: String },
}

impl RecordState {
    /// A stable word for status: `Verified`, `Missing`, `Different` or `ResolverFailed`.
    pub fn reason(&self) -> &'static str {
        match self {
            RecordState::Verified => "Verified",
            RecordState::Missing { .. } => "Missing",
            RecordState::Different { .. } => "Different",
            RecordState::Failed { .. } => "ResolverFailed",
        }
    }
}

/// The resolvers verification goes through; one per configured address, none cached.
pub struct Resolvers {
    resolvers: Vec<(String, Resolver<TokioConnectionProvider>)>,
}

fn options() -> ResolverOpts {
    let mut options = ResolverOpts::default();
    options.cache_size = 0;
    options.attempts = 2;
    options.timeout = Duration::from_secs(3);
    options
}

impl Resolvers {
    /// Resolvers at `servers` (UDP, falling back to TCP for truncated answers); the system's
    /// resolver configuration when `servers` is empty.
    pub fn new(servers: &[SocketAddr]) -> Result<Self, ResolveError> {
        if servers.is_empty() {
            let resolver = Resolver::builder_tokio()?.with_options(options()).build();
            return Ok(Self {
                resolvers: vec![("system".to_string(), resolver)],
            });
        }
        let resolvers = servers
            .iter()
            .map(|server| {
                let mut config = ResolverConfig::new();
                config.add_name_server(NameServerConfig::new(*server, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(*server, Protocol::Tcp));
                let provider = TokioConnectionProvider::default();
                let resolver = Resolver::builder_with_config(config, provider)
                    .with_options(options())
                    .build();
                (server.to_string(), resolver)
            })
            .collect();
        Ok(Self { resolvers })
    }

    /// Checks one record against every resolver.
    pub async fn check(&self, wanted: &DnsRecord) -> RecordState {
        for (label, resolver) in &self.resolvers {
            let state = match values(resolver, &wanted.name, wanted.record_type).await {
                Ok(found) => compare(label, wanted, found),
                Err(error) if error.is_no_records_found() || error.is_nx_domain() => {
                    RecordState::Missing {
                        resolver: label.clone(),
                    }
                }
                Err(error) => RecordState::Failed {
                    resolver: label.clone(),
                    message: error.to_string(),
                },
            };
            if state != RecordState::Verified {
                return state;
            }
        }
        RecordState::Verified
    }

    /// Checks every record, in order.
    pub async fn check_all(&self, wanted: &[DnsRecord]) -> Vec<RecordState> {
        let mut states = Vec::with_capacity(wanted.len());
        for record in wanted {
            states.push(self.check(record).await);
        }
        states
    }

    /// The TXT values served at `name` by the first resolver (for authorization checks).
    pub async fn txt_values(&self, name: &str) -> Result<Vec<String>, ResolveError> {
        match self.resolvers.first() {
            Some((_, resolver)) => values(resolver, name, RecordType::TXT).await,
            None => Ok(Vec::new()),
        }
    }
}

async fn values(
    resolver: &Resolver<TokioConnectionProvider>,
    name: &str,
    record_type: RecordType,
) -> Result<Vec<String>, ResolveError> {
    let wire_type = match record_type {
        RecordType::A => WireType::A,
        RecordType::AAAA => WireType::AAAA,
        RecordType::TXT => WireType::TXT,
    };
    let lookup = resolver.lookup(format!("{name}."), wire_type).await?;
    let values = lookup
        .record_iter()
        .filter_map(|record| match record.data() {
            RData::TXT(txt) => Some(join_txt(txt.txt_data())),
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(aaaa) => Some(aaaa.0.to_string()),
            _ => None,
        })
        .collect();
    Ok(values)
}

/// Compares what one resolver served with the wanted record.
pub fn compare(resolver: &str, wanted: &DnsRecord, mut found: Vec<String>) -> RecordState {
    if found.contains(&wanted.value) {
        return RecordState::Verified;
    }
    if found.is_empty() {
        return RecordState::Missing {
            resolver: resolver.to_string(),
        };
    }
    found.sort();
    RecordState::Different {
        resolver: resolver.to_string(),
        found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_whole_values() {
        let wanted = DnsRecord::txt("_dmarc.example.org", "v=DMARC1; p=reject");
        let found = vec![
            "v=DMARC1; p=none".to_string(),
            "v=DMARC1; p=reject".to_string(),
        ];
        assert_eq!(compare("r", &wanted, found), RecordState::Verified);
        assert_eq!(
            compare("127.0.0.1:53", &wanted, vec!["v=DMARC1; p=none".into()]),
            RecordState::Different {
                resolver: "127.0.0.1:53".into(),
                found: vec!["v=DMARC1; p=none".into()]
            }
        );
        assert_eq!(compare("r", &wanted, vec![]).reason(), "Missing");
    }
}
