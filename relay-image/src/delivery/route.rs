//! Choosing where a domain's mail goes and which TLS policy guards each hop.
//!
//! Order of policies for a direct delivery, per MX host: DANE when the host has usable,
//! DNSSEC-validated TLSA records; else MTA-STS when the domain publishes a policy (in `enforce`
//! mode MX hosts outside the policy are skipped); else the configured fallback. Every one of them
//! requires STARTTLS; none falls back to plaintext.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use mailwarden_relay_config::{DeliveryMode, FallbackTls, RelayConfig};
use rustls::ClientConfig;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::CertificateDer;

use super::dane::Tlsa;
use super::mta_sts::{self, Mode, Policy};
use super::verify;

/// One host to try, with the verifier its policy demands.
pub struct Destination {
    pub host: String,
    pub addresses: Vec<SocketAddr>,
    pub verifier: Arc<dyn ServerCertVerifier>,
    /// `dane`, `mta-sts`, `fallback-verify`, `fallback-encrypt-only`, `smarthost`, `override`.
    pub policy: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("failed to set up the DNS resolver: {0}")]
    Resolver(String),
    #[error("failed to look up {what} for {name}: {reason}")]
    Lookup {
        what: &'static str,
        name: String,
        reason: String,
    },
    #[error("{0} publishes a null MX and accepts no mail")]
    NullMx(String),
    #[error("no MX host of {0} is allowed by its MTA-STS policy")]
    NoAllowedMx(String),
    #[error("failed to read trust anchors: {0}")]
    Anchors(String),
}

impl RouteError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::NullMx(_))
    }
}

/// Resolvers, verifiers and the MTA-STS policy cache.
pub struct Router {
    resolver: TokioResolver,
    validating: TokioResolver,
    pkix: Arc<dyn ServerCertVerifier>,
    policy_fetch: Arc<ClientConfig>,
    policies: Mutex<HashMap<String, (Option<Policy>, Instant)>>,
}

impl Router {
    pub fn new(config: &RelayConfig) -> Result<Self, RouteError> {
        let anchors: Vec<CertificateDer<'static>> = match &config.delivery.trust_anchors_file {
            Some(path) => crate::tls::read_certs(path, "delivery trust anchors")
                .map_err(|e| RouteError::Anchors(e.to_string()))?,
            None => Vec::new(),
        };
        let pkix = verify::pkix(&anchors);
        let policy_fetch = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| RouteError::Resolver(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(pkix.clone())
            .with_no_client_auth();
        Ok(Self {
            resolver: resolver(&config.delivery.resolvers, false)?,
            validating: resolver(&config.delivery.resolvers, true)?,
            pkix,
            policy_fetch: Arc::new(policy_fetch),
            policies: Mutex::new(HashMap::new()),
        })
    }

    /// The hosts to try for a recipient domain, best first.
    pub async fn destinations(
        &self,
        config: &RelayConfig,
        domain: &str,
    ) -> Result<Vec<Destination>, RouteError> {
        let fallback = match &config.delivery.mode {
            DeliveryMode::Smarthost { host, port, .. } => {
                let addresses = self.addresses(host, *port).await?;
                let verifier = self.pkix.clone();
                return Ok(vec![Destination {
                    host: host.clone(),
                    addresses,
                    verifier,
                    policy: "smarthost",
                }]);
            }
            DeliveryMode::Direct { fallback_tls } => *fallback_tls,
        };
        let fallback_verifier = |host: &str| -> (Arc<dyn ServerCertVerifier>, &'static str) {
            let _ = host;
            match fallback {
                FallbackTls::Verify => (self.pkix.clone(), "fallback-verify"),
                FallbackTls::EncryptOnly => (verify::encrypt_only(), "fallback-encrypt-only"),
            }
        };
        if let Some(target) = &config.delivery.mx_override {
            let (host, port) = target.rsplit_once(':').expect("validated as host:port");
            let port = port.parse().expect("validated as host:port");
            let addresses = tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| lookup_error("address", host, e))?
                .collect();
            let (verifier, _) = fallback_verifier(host);
            return Ok(vec![Destination {
                host: host.into(),
                addresses,
                verifier,
                policy: "override",
            }]);
        }

        let hosts = self.mx_hosts(domain).await?;
        let policy = self.mta_sts_policy(domain).await;
        let mut destinations = Vec::new();
        for host in hosts {
            if let Some(policy) = policy.as_ref().filter(|p| p.mode == Mode::Enforce)
                && !policy.allows(&host)
            {
                continue;
            }
            let tlsa = self.tlsa(&host).await;
            let (verifier, label) = if !tlsa.is_empty() {
                (verify::dane(tlsa), "dane")
            } else if policy.as_ref().is_some_and(|p| p.mode == Mode::Enforce) {
                (self.pkix.clone(), "mta-sts")
            } else {
                fallback_verifier(&host)
            };
            let Ok(addresses) = self.addresses(&host, 25).await else {
                continue;
            };
            destinations.push(Destination {
                host,
                addresses,
                verifier,
                policy: label,
            });
        }
        if destinations.is_empty() && policy.is_some_and(|p| p.mode == Mode::Enforce) {
            return Err(RouteError::NoAllowedMx(domain.into()));
        }
        Ok(destinations)
    }

    /// MX hosts by preference; the domain itself when it has no MX (RFC 5321 section 5.1).
    async fn mx_hosts(&self, domain: &str) -> Result<Vec<String>, RouteError> {
        let name = format!("{}.", domain.trim_end_matches('.'));
        match self.resolver.mx_lookup(name.as_str()).await {
            Ok(lookup) => {
                let mut mx: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| r.try_borrow::<hickory_resolver::proto::rr::rdata::MX>())
                    .map(|r| (r.data().preference, r.data().exchange.to_ascii()))
                    .collect();
                mx.sort();
                if mx.len() == 1 && mx[0].1 == "." {
                    return Err(RouteError::NullMx(domain.into()));
                }
                Ok(mx
                    .into_iter()
                    .map(|(_, h)| h.trim_end_matches('.').to_string())
                    .collect())
            }
            Err(e) if e.is_no_records_found() => Ok(vec![domain.to_string()]),
            Err(e) => Err(lookup_error("MX", domain, e)),
        }
    }

    async fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, RouteError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let lookup = self
            .resolver
            .lookup_ip(format!("{host}."))
            .await
            .map_err(|e| lookup_error("address", host, e))?;
        Ok(lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect())
    }

    /// Usable TLSA records of an MX host, only when every answer is DNSSEC-secure.
    async fn tlsa(&self, host: &str) -> Vec<Tlsa> {
        let name = format!("_25._tcp.{host}.");
        let Ok(lookup) = self.validating.tlsa_lookup(name.as_str()).await else {
            return Vec::new();
        };
        let answers = lookup.answers();
        if answers.is_empty() || !answers.iter().all(|r| r.proof.is_secure()) {
            return Vec::new();
        }
        answers
            .iter()
            .filter_map(|r| r.try_borrow::<hickory_resolver::proto::rr::rdata::TLSA>())
            .filter_map(|r| {
                let t = r.data();
                Tlsa::usable(
                    t.cert_usage.into(),
                    t.selector.into(),
                    t.matching.into(),
                    t.cert_data.clone(),
                )
            })
            .collect()
    }

    /// The domain's MTA-STS policy, cached for its max_age (failures for an hour).
    async fn mta_sts_policy(&self, domain: &str) -> Option<Policy> {
        let now = Instant::now();
        if let Some((policy, expires)) = self.policies.lock().ok()?.get(domain)
            && now < *expires
        {
            return policy.clone();
        }
        let txt = self
            .resolver
            .txt_lookup(format!("_mta-sts.{domain}."))
            .await
            .ok();
        let announced = txt.is_some_and(|txt| {
            txt.answers()
                .iter()
                .filter_map(|r| r.try_borrow::<hickory_resolver::proto::rr::rdata::TXT>())
                .any(|r| {
                    let text: String = r
                        .data()
                        .txt_data
                        .iter()
                        .map(|d| String::from_utf8_lossy(d))
                        .collect();
                    mta_sts::txt_announces_policy(&text)
                })
        });
        let policy = if announced {
            match mta_sts::fetch(domain, 443, self.policy_fetch.clone()).await {
                Ok(policy) => Some(policy),
                Err(error) => {
                    tracing::warn!(%domain, %error, "failed to fetch the MTA-STS policy");
                    None
                }
            }
        } else {
            None
        };
        let ttl = Duration::from_secs(policy.as_ref().map_or(3600, |p| p.max_age));
        if let Ok(mut cache) = self.policies.lock() {
            cache.insert(domain.into(), (policy.clone(), now + ttl));
        }
        policy
    }
}

fn lookup_error(what: &'static str, name: &str, error: impl std::fmt::Display) -> RouteError {
    RouteError::Lookup {
        what,
        name: name.into(),
        reason: error.to_string(),
    }
}

fn resolver(servers: &[String], validate: bool) -> Result<TokioResolver, RouteError> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if servers.is_empty() {
        TokioResolver::builder(provider).map_err(|e| RouteError::Resolver(e.to_string()))?
    } else {
        let mut name_servers = Vec::new();
        for server in servers {
            let address: SocketAddr = server.parse().expect("validated as ip:port");
            let mut ns = NameServerConfig::udp_and_tcp(address.ip());
            for connection in &mut ns.connections {
                connection.port = address.port();
            }
            name_servers.push(ns);
        }
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            provider,
        )
    };
    let options: &mut ResolverOpts = builder.options_mut();
    options.validate = validate;
    builder
        .build()
        .map_err(|e| RouteError::Resolver(e.to_string()))
}
