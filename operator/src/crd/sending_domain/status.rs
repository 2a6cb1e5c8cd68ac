//! What the SendingDomain controller observed and did.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::crd::Condition;
use crate::dkim::rotation::{KeyGeneration, Selector};
use crate::dns::{DnsRecord, RecordType};

/// Status of a SendingDomain.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendingDomainStatus {
    /// `DKIMReady`, `DNSPublished`, `DNSVerified` and `Ready`, each with a reason and message.
    #[serde(default)]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// What the tenant's relay signs with now. The MailTenant controller mounts this Secret and
    /// configures these selectors; absent until the first keys are verified in DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_signing: Option<RelaySigning>,
    /// DKIM key generations: the active one, one being published, and retiring ones with the
    /// date they leave DNS.
    #[serde(default)]
    pub dkim: Vec<KeyGeneration>,
    /// Every record the domain needs, exactly as wanted, with what resolvers serve.
    #[serde(default)]
    pub records: Vec<RecordStatus>,
    /// The MTA-STS policy file to serve at `https://mta-sts.<domain>/.well-known/mta-sts.txt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mta_sts_policy: Option<String>,
    /// Report domains outside this domain and whether they authorize receiving its DMARC
    /// reports (RFC 7489 section 7.1).
    #[serde(default)]
    pub report_authorizations: Vec<ReportAuthorization>,
    /// The records the operator wrote and owns at the provider; only these are ever changed
    /// or deleted.
    #[serde(default)]
    pub owned_records: Vec<OwnedRecord>,
    /// An SPF record that existed before, which a `Merge` replaced; put back on deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_spf: Option<String>,
    /// The last value of the `mailwarden.io/rotate-dkim` annotation acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_rotation_request: Option<String>,
}

/// The DKIM keys the relay signs with now.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelaySigning {
    /// Secret in this namespace holding the DKIM private keys (PKCS#8 PEM).
    pub secret_name: String,
    /// Selectors to sign every message with, one per algorithm (RFC 8463 dual signing).
    pub selectors: Vec<Selector>,
}

/// One wanted record.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordStatus {
    /// `SPF`, `DKIM`, `DMARC`, `MTA-STS`, `TLS-RPT` or `RelayHost`.
    pub purpose: String,
    /// Fully qualified name, without trailing dot.
    pub name: String,
    /// `TXT`, `A` or `AAAA`.
    #[serde(rename = "type")]
    pub record_type: RecordType,
    /// The whole value; TXT values over 255 bytes are published as several strings.
    pub value: String,
    /// `Verified`, `Missing`, `Different` or `ResolverFailed`.
    pub verification: String,
    /// What a resolver served instead, when `Different`, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A record written by the operator.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedRecord {
    /// Fully qualified name, without trailing dot.
    pub name: String,
    /// `TXT`, `A` or `AAAA`.
    #[serde(rename = "type")]
    pub record_type: RecordType,
    /// The whole value.
    pub value: String,
}

impl From<&DnsRecord> for OwnedRecord {
    fn from(r: &DnsRecord) -> Self {
        Self {
            name: r.name.clone(),
            record_type: r.record_type,
            value: r.value.clone(),
        }
    }
}

impl From<&OwnedRecord> for DnsRecord {
    fn from(r: &OwnedRecord) -> Self {
        Self {
            name: r.name.clone(),
            record_type: r.record_type,
            value: r.value.clone(),
        }
    }
}

/// Whether a foreign report domain authorizes reports for this domain.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportAuthorization {
    /// The authorization record's name, `<domain>._report._dmarc.<report-domain>`.
    pub name: String,
    /// True when it holds a `v=DMARC1` record; otherwise receivers drop the reports.
    pub authorized: bool,
}
