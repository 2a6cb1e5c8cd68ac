//! Renders every record a sending domain wants from its settings, its DKIM public keys and the
//! tenant's sending addresses.

use std::net::IpAddr;

use super::record::DnsRecord;
use super::{dmarc, mta_sts, spf};
use crate::dkim::{self, DkimAlgorithm};

/// Why a record is wanted; shown in status next to each record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Purpose {
    Spf,
    Dkim { selector: String },
    Dmarc,
    MtaSts,
    TlsRpt,
    RelayHost,
}

impl Purpose {
    pub fn label(&self) -> &'static str {
        match self {
            Purpose::Spf => "SPF",
            Purpose::Dkim { .. } => "DKIM",
            Purpose::Dmarc => "DMARC",
            Purpose::MtaSts => "MTA-STS",
            Purpose::TlsRpt => "TLS-RPT",
            Purpose::RelayHost => "RelayHost",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedRecord {
    pub purpose: Purpose,
    pub record: DnsRecord,
}

/// A DKIM selector with its public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicSelector {
    pub name: String,
    pub algorithm: DkimAlgorithm,
    pub public_key_base64: String,
}

/// Everything the records are rendered from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainSettings {
    pub domain: String,
    pub spf: spf::SpfPolicy,
    pub spf_conflict: spf::ConflictPolicy,
    pub dmarc: dmarc::DmarcPolicy,
    pub mta_sts: Option<mta_sts::MtaStsPolicy>,
    pub tls_reports: Vec<String>,
    pub relay_host: Option<String>,
    pub relay_addresses: Vec<IpAddr>,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("domain {0:?} is not a valid domain name")]
    InvalidDomain(String),
    #[error("relay host {host:?} is not a name inside {domain}")]
    RelayHostOutsideDomain { host: String, domain: String },
    #[error(transparent)]
    Dmarc(#[from] dmarc::DmarcError),
    #[error(transparent)]
    Spf(#[from] spf::SpfError),
}

/// The rendered records, the MTA-STS policy text, and the authorization records other domains
/// must publish for DMARC reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub records: Vec<WantedRecord>,
    pub mta_sts_policy: Option<String>,
    pub report_authorizations: Vec<String>,
    /// Set when the SPF record could not be rendered (conflict with a foreign record, lookup
    /// limit); the other records are still rendered.
    pub spf_problem: Option<spf::SpfError>,
}

fn wanted(purpose: Purpose, record: DnsRecord) -> WantedRecord {
    WantedRecord { purpose, record }
}

/// Renders the records. `foreign_spf` holds the TXT values found at the domain that the
/// operator does not own.
pub fn render(
    settings: &DomainSettings,
    selectors: &[PublicSelector],
    foreign_spf: &[String],
) -> Result<Rendered, RenderError> {
    let domain = settings.domain.as_str();
    if !super::is_dns_name(domain) || domain.contains('_') || domain != domain.to_lowercase() {
        return Err(RenderError::InvalidDomain(domain.to_string()));
    }
    let mut records = Vec::new();

    let mut spf_policy = settings.spf.clone();
    spf_policy.addresses = settings.relay_addresses.clone();
    let spf_problem = match spf::combine(domain, &spf_policy, foreign_spf, settings.spf_conflict) {
        Ok(value) => {
            records.push(wanted(Purpose::Spf, DnsRecord::txt(domain, value)));
            None
        }
        Err(problem) => Some(problem),
    };

    for selector in selectors {
        let value = dkim::txt_value(selector.algorithm, &selector.public_key_base64);
        let name = format!("{}._domainkey.{domain}", selector.name);
        let purpose = Purpose::Dkim {
            selector: selector.name.clone(),
        };
        records.push(wanted(purpose, DnsRecord::txt(name, value)));
    }

    let dmarc_value = dmarc::render(&settings.dmarc)?;
    records.push(wanted(
        Purpose::Dmarc,
        DnsRecord::txt(format!("_dmarc.{domain}"), dmarc_value),
    ));
    let addresses = dmarc::report_addresses(&settings.dmarc)?;
    let report_authorizations = dmarc::external_authorization_names(domain, &addresses);

    let mta_sts_policy = settings.mta_sts.as_ref().map(mta_sts::policy_text);
    if let Some(text) = &mta_sts_policy {
        let record = DnsRecord::txt(format!("_mta-sts.{domain}"), mta_sts::txt_value(text));
        records.push(wanted(Purpose::MtaSts, record));
    }
    if !settings.tls_reports.is_empty() {
        for uri in &settings.tls_reports {
            dmarc::parse_report_uri("spec.tlsReports", uri)?;
        }
        let value = mta_sts::tls_rpt_value(&settings.tls_reports);
        records.push(wanted(
            Purpose::TlsRpt,
            DnsRecord::txt(format!("_smtp._tls.{domain}"), value),
        ));
    }

    if let Some(host) = &settings.relay_host {
        if host != domain && !host.ends_with(&format!(".{domain}")) {
            let (host, domain) = (host.clone(), domain.to_string());
            return Err(RenderError::RelayHostOutsideDomain { host, domain });
        }
        for address in &settings.relay_addresses {
            let record = match address {
                IpAddr::V4(v4) => DnsRecord::a(host.clone(), *v4),
                IpAddr::V6(v6) => DnsRecord::aaaa(host.clone(), *v6),
            };
            records.push(wanted(Purpose::RelayHost, record));
        }
    }

    Ok(Rendered {
        records,
        mta_sts_policy,
        report_authorizations,
        spf_problem,
    })
}

#[cfg(test)]
mod tests;
