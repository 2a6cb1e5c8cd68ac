//! One publication pass: read what the provider holds at the domain's names, render the
//! records (the SPF record depends on a foreign one found there), plan, write, and report
//! what the operator now owns. Removal puts the provider back as it was before the operator.

use super::provider::{DnsProvider, ExistingRecord, ProviderError};
use super::record::{DnsRecord, RecordType};
use super::render::{self, DomainSettings, PublicSelector, RenderError, Rendered};
use super::spf::{self, ConflictPolicy};
use super::sync;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("failed to render records for {domain}")]
    Render { domain: String, source: RenderError },
    #[error("failed to publish records for {domain} through {provider}")]
    Provider {
        domain: String,
        provider: &'static str,
        source: ProviderError,
    },
}

impl PublishError {
    /// A stable word for conditions, Events and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            PublishError::Render { .. } => "InvalidSpec",
            PublishError::Provider { source, .. } => source.category(),
        }
    }
}

/// What a publication pass did and left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    pub rendered: Rendered,
    /// Records the operator owns after the pass.
    pub owned: Vec<DnsRecord>,
    /// The foreign SPF value a merge replaced, to put back on removal.
    pub adopted_spf: Option<String>,
    /// Provider writes made (creates, updates, deletes); zero in steady state.
    pub writes: usize,
}

fn provider_error(
    domain: &str,
    provider: &impl DnsProvider,
) -> impl Fn(ProviderError) -> PublishError {
    let (domain, name) = (domain.to_string(), provider.kind());
    move |source| PublishError::Provider {
        domain: domain.clone(),
        provider: name,
        source,
    }
}

/// Publishes the records of `settings` with DKIM `selectors`. `owned` and `adopted_spf` come
/// from the previous pass (status). With the manual provider nothing is read or written.
pub async fn publish(
    provider: &impl DnsProvider,
    settings: &DomainSettings,
    selectors: &[PublicSelector],
    owned: &[DnsRecord],
    adopted_spf: Option<&str>,
) -> Result<Publication, PublishError> {
    let domain = settings.domain.as_str();
    let render_error = |source| PublishError::Render {
        domain: domain.to_string(),
        source,
    };
    let failed = provider_error(domain, provider);

    let draft = render::render(settings, selectors, &[]).map_err(render_error)?;
    let mut names: Vec<String> = draft
        .records
        .iter()
        .map(|r| r.record.name.clone())
        .collect();
    names.push(domain.to_string());
    names.extend(owned.iter().map(|r| r.name.clone()));
    names.sort();
    names.dedup();
    let existing = provider.read(&names, owned).await.map_err(&failed)?;

    let mut foreign_spf: Vec<String> = existing
        .iter()
        .filter(|e| !e.owned && e.record.name == domain && spf::is_spf(&e.record.value))
        .map(|e| e.record.value.clone())
        .collect();
    foreign_spf.extend(adopted_spf.map(str::to_string));
    foreign_spf.dedup();
    let rendered = render::render(settings, selectors, &foreign_spf).map_err(render_error)?;
    if !provider.publishes() {
        let writes = 0;
        return Ok(Publication {
            rendered,
            owned: Vec::new(),
            adopted_spf: None,
            writes,
        });
    }

    let wanted: Vec<DnsRecord> = rendered.records.iter().map(|r| r.record.clone()).collect();
    let merge_at = (settings.spf_conflict == ConflictPolicy::Merge).then_some(domain);
    let plan = sync::plan(&wanted, &existing, merge_at);
    sync::execute(provider, &plan).await.map_err(&failed)?;

    let newly_adopted = plan
        .update
        .iter()
        .find(|(old, _, _)| !old.owned)
        .map(|(old, _, _)| old.record.value.clone());
    let foreign_identical = |w: &DnsRecord| existing.iter().any(|e| !e.owned && e.record == *w);
    let owned = wanted
        .iter()
        .filter(|w| !foreign_identical(w))
        .cloned()
        .collect();
    let wants_spf = rendered
        .records
        .iter()
        .any(|r| r.purpose == render::Purpose::Spf);
    let adopted_spf = newly_adopted
        .or(adopted_spf.map(str::to_string))
        .filter(|_| wants_spf);
    Ok(Publication {
        rendered,
        owned,
        adopted_spf,
        writes: plan.writes(),
    })
}

/// Removes every record the operator owns and puts back the SPF record a merge replaced.
/// Returns the number of writes.
pub async fn unpublish(
    provider: &impl DnsProvider,
    domain: &str,
    owned: &[DnsRecord],
    adopted_spf: Option<&str>,
) -> Result<usize, PublishError> {
    if !provider.publishes() || owned.is_empty() {
        return Ok(0);
    }
    let mut names: Vec<String> = owned.iter().map(|r| r.name.clone()).collect();
    names.sort();
    names.dedup();
    let existing: Vec<ExistingRecord> = provider
        .read(&names, owned)
        .await
        .map_err(provider_error(domain, provider))?;
    let adopted = adopted_spf.map(|value| DnsRecord {
        name: domain.to_string(),
        record_type: RecordType::TXT,
        value: value.to_string(),
    });
    let plan = sync::plan_removal(&existing, adopted.as_ref());
    sync::execute(provider, &plan)
        .await
        .map_err(provider_error(domain, provider))?;
    Ok(plan.writes())
}
