//! Step `validate`: reads a SendingDomain's spec into the settings the DNS model renders from.
//! Pure; everything the API server's CEL rules already refuse is checked again here, so that
//! an object that slipped past (older CRD, direct etcd write) still gets a clear message.

use std::net::{IpAddr, SocketAddr};

use crate::crd::sending_domain::{
    DmarcDisposition, DnsProviderKind, MtaStsMode, SendingDomainSpec, SpfAll, SpfConflictPolicy,
};
use crate::dns::dmarc::{self, Disposition, DmarcPolicy};
use crate::dns::mta_sts::{Mode, MtaStsPolicy};
use crate::dns::render::{self, DomainSettings};
use crate::dns::rfc2136::tsig_algorithm;
use crate::dns::spf::{AllQualifier, ConflictPolicy, SpfPolicy};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error(transparent)]
    Records(#[from] render::RenderError),
    #[error("spec.resolvers: {0:?} is not an address such as 192.0.2.53:53")]
    Resolver(String),
    #[error("spec.dns.{0} is required when spec.dns.provider is {1}")]
    MissingProvider(&'static str, &'static str),
    #[error("spec.dns.rfc2136.server: {0:?} is not an address such as 192.0.2.53:53")]
    Server(String),
    #[error("spec.dns.rfc2136.tsigAlgorithm: {0:?} is not hmac-sha256, hmac-sha384 or hmac-sha512")]
    TsigAlgorithm(String),
    #[error(
        "spec.spf: no sending addresses are allocated to the tenant and no includes are set, so the spf record would forbid all mail"
    )]
    NoSenders,
}

/// The validated spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidSpec {
    pub settings: DomainSettings,
    pub resolvers: Vec<SocketAddr>,
}

fn disposition(d: DmarcDisposition) -> Disposition {
    match d {
        DmarcDisposition::None => Disposition::None,
        DmarcDisposition::Quarantine => Disposition::Quarantine,
        DmarcDisposition::Reject => Disposition::Reject,
    }
}

/// Validates `spec`; `addresses` are the tenant's allocated sending addresses.
pub fn validate(spec: &SendingDomainSpec, addresses: &[IpAddr]) -> Result<ValidSpec, SpecError> {
    let resolvers = spec
        .resolvers
        .iter()
        .map(|r| r.parse().map_err(|_| SpecError::Resolver(r.clone())))
        .collect::<Result<Vec<SocketAddr>, _>>()?;
    match spec.dns.provider {
        DnsProviderKind::Cloudflare if spec.dns.cloudflare.is_none() => {
            return Err(SpecError::MissingProvider("cloudflare", "Cloudflare"));
        }
        DnsProviderKind::Rfc2136 => {
            let Some(rfc2136) = &spec.dns.rfc2136 else {
                return Err(SpecError::MissingProvider("rfc2136", "RFC2136"));
            };
            if rfc2136.server.parse::<SocketAddr>().is_err() {
                return Err(SpecError::Server(rfc2136.server.clone()));
            }
            if tsig_algorithm(&rfc2136.tsig_algorithm).is_none() {
                return Err(SpecError::TsigAlgorithm(rfc2136.tsig_algorithm.clone()));
            }
        }
        _ => {}
    }
    if addresses.is_empty() && spec.spf.includes.is_empty() {
        return Err(SpecError::NoSenders);
    }

    let settings = DomainSettings {
        domain: spec.domain.clone(),
        spf: SpfPolicy {
            addresses: Vec::new(),
            includes: spec.spf.includes.clone(),
            all: match spec.spf.all {
                SpfAll::Fail => AllQualifier::Fail,
                SpfAll::SoftFail => AllQualifier::SoftFail,
            },
        },
        spf_conflict: match spec.spf.conflict_policy {
            SpfConflictPolicy::Merge => ConflictPolicy::Merge,
            SpfConflictPolicy::Refuse => ConflictPolicy::Refuse,
        },
        dmarc: DmarcPolicy {
            policy: disposition(spec.dmarc.policy),
            subdomain_policy: spec.dmarc.subdomain_policy.map(disposition),
            percent: spec.dmarc.percent,
            aggregate_reports: spec.dmarc.aggregate_reports.clone(),
            failure_reports: spec.dmarc.failure_reports.clone(),
            strict_alignment: spec.dmarc.strict_alignment,
        },
        mta_sts: spec.mta_sts.as_ref().map(|m| MtaStsPolicy {
            mode: match m.mode {
                MtaStsMode::Enforce => Mode::Enforce,
                MtaStsMode::Testing => Mode::Testing,
                MtaStsMode::None => Mode::None,
            },
            mx: m.mx.clone(),
            max_age_seconds: m.max_age_seconds,
        }),
        tls_reports: spec.tls_reports.clone(),
        relay_host: spec.relay_host.clone(),
        relay_addresses: addresses.to_vec(),
    };
    // Render once without keys: every record-level problem is reported before any I/O.
    render::render(&settings, &[], &[])?;
    dmarc::report_addresses(&settings.dmarc).map_err(render::RenderError::from)?;
    Ok(ValidSpec {
        settings,
        resolvers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn spec() -> SendingDomainSpec {
        serde_json::from_value(serde_json::json!({
            "domain": "example.org",
            "dns": {"provider": "RFC2136", "rfc2136": {
                "server": "192.0.2.53:53", "zone": "example.org", "tsigKeyName": "k",
                "tsigSecretRef": {"name": "tsig", "key": "secret"}}},
            "resolvers": ["192.0.2.53:53"],
            "spf": {"conflictPolicy": "Refuse"},
            "dmarc": {"policy": "reject", "aggregateReports": ["mailto:d@example.org"]},
            "relayHost": "relay.example.org"
        }))
        .unwrap()
    }

    #[test]
    fn valid_spec_becomes_settings() {
        let valid = validate(&spec(), &["192.0.2.10".parse().unwrap()]).unwrap();
        assert_eq!(valid.resolvers, vec!["192.0.2.53:53".parse().unwrap()]);
        assert_eq!(valid.settings.spf_conflict, ConflictPolicy::Refuse);
        assert_eq!(
            valid.settings.dmarc.aggregate_reports,
            vec!["mailto:d@example.org"]
        );
    }

    #[test]
    fn invalid_specs_say_what_and_where() {
        let ip = ["192.0.2.10".parse().unwrap()];
        let mut bad = spec();
        bad.domain = "Example.org.".into();
        assert_eq!(
            validate(&bad, &ip).unwrap_err().to_string(),
            "domain \"Example.org.\" is not a valid domain name"
        );
        let mut bad = spec();
        bad.dmarc.aggregate_reports = vec!["d@example.org".into()];
        assert_eq!(
            validate(&bad, &ip).unwrap_err().to_string(),
            "dmarc report address \"d@example.org\" in spec.dmarc.aggregateReports is not a \
             mailto: uri"
        );
        let mut bad = spec();
        bad.dns.rfc2136.as_mut().unwrap().tsig_algorithm = "hmac-md5".into();
        assert_eq!(
            validate(&bad, &ip),
            Err(SpecError::TsigAlgorithm("hmac-md5".into()))
        );
        assert_eq!(validate(&spec(), &[]), Err(SpecError::NoSenders));
        let mut bad = spec();
        bad.resolvers = vec!["dns.example.org".into()];
        assert_eq!(
            validate(&bad, &ip),
            Err(SpecError::Resolver("dns.example.org".into()))
        );
    }

    #[test]
    fn spec_without_spf_conflict_policy_does_not_parse() {
        let mut json = serde_json::to_value(spec()).unwrap();
        json["spf"] = serde_json::json!({});
        let error = serde_json::from_value::<SendingDomainSpec>(json).unwrap_err();
        assert_eq!(error.to_string(), "missing field `conflictPolicy`");
    }
}
