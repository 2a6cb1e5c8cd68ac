//! One reconcile pass over a SendingDomain: the named steps and their errors.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};

use super::ROTATE_ANNOTATION;
use super::cluster::{self, ClusterError};
use super::conditions::{self, Observation};
use super::spec::{self, SpecError};
use crate::crd::sending_domain::{
    OwnedRecord, RecordStatus, RelaySigning, ReportAuthorization, SendingDomain,
    SendingDomainStatus,
};
use crate::dkim::rotation::{self, Schedule, Selector, Step};
use crate::dkim::{self, DkimAlgorithm, KeyError, PrivateKeyPem};
use crate::dns::publish::{PublishError, publish};
use crate::dns::render::PublicSelector;
use crate::dns::verify::{RecordState, Resolvers};
use crate::dns::{DnsProvider, DnsRecord, dmarc};

const ALGORITHMS: [DkimAlgorithm; 2] = [DkimAlgorithm::RsaSha256, DkimAlgorithm::Ed25519Sha256];

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("invalid spec")]
    InvalidSpec(#[source] SpecError),
    #[error("domain {domain} is already managed by sendingdomain {by}")]
    Claimed { domain: String, by: String },
    #[error("failed to read the tenant's sending addresses")]
    Tenant(#[source] ClusterError),
    #[error("failed to prepare dkim keys")]
    Keys(#[source] KeyError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("failed to set up resolvers")]
    Resolvers(#[source] hickory_resolver::ResolveError),
}

impl PassError {
    /// A stable word for conditions, Events and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            PassError::InvalidSpec(_) => "InvalidSpec",
            PassError::Tenant(e) => e.category(),
            PassError::Claimed { .. } => "DomainClaimed",
            PassError::Keys(_) => "KeyGenerationFailed",
            PassError::Cluster(e) => e.category(),
            PassError::Publish(e) => e.category(),
            PassError::Resolvers(_) => "ResolverUnavailable",
        }
    }

    /// The step that failed.
    pub fn step(&self) -> &'static str {
        match self {
            PassError::InvalidSpec(_) | PassError::Tenant(_) | PassError::Claimed { .. } => {
                "validate"
            }
            PassError::Keys(_) => "keys",
            PassError::Cluster(ClusterError::Credentials { .. } | ClusterError::Provider(_)) => {
                "publish"
            }
            PassError::Cluster(_) => "keys",
            PassError::Publish(PublishError::Render { .. }) => "validate",
            PassError::Publish(_) => "publish",
            PassError::Resolvers(_) => "verify",
        }
    }
}

fn dkim_name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// What a pass produced: the new status (conditions not yet merged), when to look again, and
/// the writes it made.
pub struct Outcome {
    pub status: SendingDomainStatus,
    pub action: Action,
    pub secret_written: bool,
    pub dns_writes: usize,
}

/// Runs the steps.
pub async fn run(
    domain: &SendingDomain,
    client: &Client,
    previous: &SendingDomainStatus,
    now: DateTime<Utc>,
) -> Result<Outcome, PassError> {
    let namespace = domain.namespace().unwrap_or_default();
    let name = domain.spec.domain.as_str();

    // validate
    if let Some(by) = cluster::earlier_claim(client, domain)
        .await
        .map_err(PassError::Tenant)?
    {
        return Err(PassError::Claimed {
            domain: name.to_string(),
            by,
        });
    }
    let addresses = cluster::tenant_addresses(client, &namespace)
        .await
        .map_err(PassError::Tenant)?;
    let valid = spec::validate(&domain.spec, &addresses).map_err(PassError::InvalidSpec)?;
    let schedule = Schedule {
        period: chrono::Duration::days(domain.spec.dkim.rotation_period_days.into()),
        grace: chrono::Duration::days(domain.spec.dkim.grace_period_days.into()),
    };

    // keys: start a generation when due, make sure every recorded selector has its key
    let stored = cluster::dkim_keys(client, domain).await?;
    let mut keys = stored.keys.clone();
    let mut generations = previous.dkim.clone();
    let request = domain.annotations().get(ROTATE_ANNOTATION).cloned();
    let requested = request.is_some() && request != previous.handled_rotation_request;
    let served_before = |s: &Selector| {
        previous
            .records
            .iter()
            .any(|r| r.name == dkim_name(&s.name, name) && r.verification == "Verified")
    };
    let mut handled = previous.handled_rotation_request.clone();
    if let Step::Create { generation } =
        rotation::next_step(&generations, served_before, schedule, requested, now)
    {
        generations.push(rotation::new_generation(generation, &ALGORITHMS, now));
        handled = request.clone();
    }
    let selectors = rotation::published_selectors(&generations);
    for selector in &selectors {
        if !keys.contains_key(&selector.key) {
            let pem = dkim::generate(selector.algorithm).map_err(PassError::Keys)?;
            keys.insert(selector.key.clone(), pem);
        }
    }
    keys.retain(|key, _| selectors.iter().any(|s| s.key == *key));
    // Written when the keys changed, or to take ownership of a Secret restored from a backup.
    let secret_written = keys != stored.keys || !stored.owned;
    if secret_written {
        cluster::write_dkim_keys(client, domain, &keys).await?;
    }
    let public = public_selectors(&selectors, &keys)?;

    // publish (renders with the foreign SPF record found at the domain)
    let provider = cluster::provider(client, domain).await?;
    let owned: Vec<DnsRecord> = previous.owned_records.iter().map(Into::into).collect();
    let adopted = previous.adopted_spf.as_deref();
    let publication = publish(&provider, &valid.settings, &public, &owned, adopted).await?;

    // verify
    let resolvers = Resolvers::new(&valid.resolvers).map_err(PassError::Resolvers)?;
    let wanted: Vec<DnsRecord> = publication
        .rendered
        .records
        .iter()
        .map(|r| r.record.clone())
        .collect();
    let states = resolvers.check_all(&wanted).await;
    let mut authorizations = Vec::new();
    for authorization in &publication.rendered.report_authorizations {
        let values = resolvers
            .txt_values(authorization)
            .await
            .unwrap_or_default();
        let authorized = values.iter().any(|v| dmarc::is_authorization(v));
        authorizations.push(ReportAuthorization {
            name: authorization.clone(),
            authorized,
        });
    }

    // rotate: activate a verified generation, retire one whose grace period is over
    let served_now = |s: &Selector| {
        let record = dkim_name(&s.name, name);
        wanted
            .iter()
            .zip(&states)
            .any(|(r, st)| r.name == record && *st == RecordState::Verified)
    };
    let all_served = states.iter().all(|s| *s == RecordState::Verified);
    let mut requeue = Duration::from_secs(if all_served { 3600 } else { 30 });
    let step = rotation::next_step(&generations, served_now, schedule, false, now);
    match step {
        Step::Activate { .. } | Step::Retire { .. } => {
            generations = rotation::apply(generations, &step, schedule, now);
            requeue = Duration::from_secs(1);
        }
        Step::Wait { recheck: Some(at) } => {
            let until = (at - now).to_std().unwrap_or(Duration::from_secs(1));
            requeue = requeue.min(until.max(Duration::from_secs(1)));
        }
        Step::Wait { recheck: None } | Step::Create { .. } => {}
    }

    // status
    let records: Vec<RecordStatus> = publication
        .rendered
        .records
        .iter()
        .zip(&states)
        .map(|(wanted, state)| record_status(wanted.purpose.label(), &wanted.record, state))
        .collect();
    let unauthorized: Vec<&str> = authorizations
        .iter()
        .filter(|a| !a.authorized)
        .map(|a| a.name.as_str())
        .collect();
    let observation = Observation {
        provider_publishes: provider.publishes(),
        records: wanted
            .iter()
            .map(|r| r.name.as_str())
            .zip(&states)
            .collect(),
        generations: &generations,
        spf_problem: publication.rendered.spf_problem.as_ref(),
        unauthorized_reports: unauthorized,
    };
    let conditions = conditions::observed(&observation);
    let signing = rotation::signing_selectors(&generations);
    let relay_signing = (!signing.is_empty()).then(|| RelaySigning {
        secret_name: cluster::dkim_secret_name(domain),
        selectors: signing,
    });
    let mut owned_records: Vec<OwnedRecord> = publication.owned.iter().map(Into::into).collect();
    owned_records.sort();
    let status = SendingDomainStatus {
        conditions,
        observed_generation: previous.observed_generation,
        relay_signing,
        dkim: generations,
        records,
        mta_sts_policy: publication.rendered.mta_sts_policy.clone(),
        report_authorizations: authorizations,
        owned_records,
        adopted_spf: publication.adopted_spf.clone(),
        handled_rotation_request: handled,
    };
    let action = Action::requeue(requeue);
    Ok(Outcome {
        status,
        action,
        secret_written,
        dns_writes: publication.writes,
    })
}

fn public_selectors(
    selectors: &[Selector],
    keys: &BTreeMap<String, PrivateKeyPem>,
) -> Result<Vec<PublicSelector>, PassError> {
    selectors
        .iter()
        .map(|s| {
            let pem = &keys[&s.key];
            let public_key_base64 =
                dkim::public_key_base64(&s.key, s.algorithm, pem).map_err(PassError::Keys)?;
            Ok(PublicSelector {
                name: s.name.clone(),
                algorithm: s.algorithm,
                public_key_base64,
            })
        })
        .collect()
}

fn record_status(purpose: &str, record: &DnsRecord, state: &RecordState) -> RecordStatus {
    let detail = match state {
        RecordState::Verified => None,
        RecordState::Missing { resolver } => Some(format!("not served by {resolver}")),
        RecordState::Different { resolver, found } => {
            Some(format!("{resolver} serves {}", found.join(" | ")))
        }
        RecordState::Failed { resolver, message } => Some(format!("{resolver}: {message}")),
    };
    RecordStatus {
        purpose: purpose.to_string(),
        name: record.name.clone(),
        record_type: record.record_type,
        value: record.value.clone(),
        verification: state.reason().to_string(),
        detail,
    }
}
