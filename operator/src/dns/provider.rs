//! What every DNS provider offers the reconciler, and the errors it reports.

use std::future::Future;

use super::record::DnsRecord;

/// A record found at the provider. `owned` is true only for records the operator created
/// (or adopted by merging); only those are ever updated or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingRecord {
    pub record: DnsRecord,
    pub owned: bool,
    /// The provider's identifier, where it has one (Cloudflare record id).
    pub id: Option<String>,
}

/// Whether a record written by the operator is marked as its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    Owned,
    /// Used only to put back a foreign SPF record that a merge had taken over.
    Foreign,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider} rate limit still exceeded after {attempts} attempts")]
    RateLimited {
        provider: &'static str,
        attempts: u32,
    },
    #[error("{provider} failed with a server error after {attempts} attempts: {message}")]
    Unavailable {
        provider: &'static str,
        attempts: u32,
        message: String,
    },
    #[error("{provider} refused the credentials: {message}")]
    Unauthorized {
        provider: &'static str,
        message: String,
    },
    #[error("{provider} rejected {operation} of {name}: {message}")]
    Rejected {
        provider: &'static str,
        operation: &'static str,
        name: String,
        message: String,
    },
    #[error("failed to reach {provider} at {endpoint}")]
    Connect {
        provider: &'static str,
        endpoint: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{provider} returned a record that cannot be read: {message}")]
    Invalid {
        provider: &'static str,
        message: String,
    },
}

impl ProviderError {
    /// A stable word for conditions, Events and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            ProviderError::RateLimited { .. } => "ProviderRateLimited",
            ProviderError::Unavailable { .. } => "ProviderUnavailable",
            ProviderError::Unauthorized { .. } => "ProviderUnauthorized",
            ProviderError::Rejected { .. } => "ProviderRejected",
            ProviderError::Connect { .. } => "ProviderUnreachable",
            ProviderError::Invalid { .. } => "ProviderInvalidResponse",
        }
    }

    /// True when retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            ProviderError::Unauthorized { .. } | ProviderError::Rejected { .. }
        )
    }
}

/// A place DNS records are published.
pub trait DnsProvider: Send + Sync {
    /// `cloudflare`, `rfc2136` or `manual`.
    fn kind(&self) -> &'static str;

    /// False when the operator publishes nothing and only reports what it wants.
    fn publishes(&self) -> bool {
        true
    }

    /// Reads every record of the managed types at `names`. `known_owned` lists the records the
    /// operator recorded as published, for providers that cannot mark records themselves.
    fn read(
        &self,
        names: &[String],
        known_owned: &[DnsRecord],
    ) -> impl Future<Output = Result<Vec<ExistingRecord>, ProviderError>> + Send;

    /// Creates a record marked as owned.
    fn create(&self, record: &DnsRecord) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// Replaces `existing` by `record` in one step, marked as `ownership`.
    fn update(
        &self,
        existing: &ExistingRecord,
        record: &DnsRecord,
        ownership: Ownership,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// Deletes one record (never called for a record that is not owned).
    fn delete(
        &self,
        existing: &ExistingRecord,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
}

/// The provider selected by a SendingDomain's spec.
pub enum AnyProvider {
    Cloudflare(super::cloudflare::CloudflareProvider),
    Rfc2136(super::rfc2136::Rfc2136Provider),
    Manual(super::manual::ManualProvider),
}

impl DnsProvider for AnyProvider {
    fn kind(&self) -> &'static str {
        match self {
            AnyProvider::Cloudflare(p) => p.kind(),
            AnyProvider::Rfc2136(p) => p.kind(),
            AnyProvider::Manual(p) => p.kind(),
        }
    }

    fn publishes(&self) -> bool {
        !matches!(self, AnyProvider::Manual(_))
    }

    async fn read(
        &self,
        names: &[String],
        known_owned: &[DnsRecord],
    ) -> Result<Vec<ExistingRecord>, ProviderError> {
        match self {
            AnyProvider::Cloudflare(p) => p.read(names, known_owned).await,
            AnyProvider::Rfc2136(p) => p.read(names, known_owned).await,
            AnyProvider::Manual(p) => p.read(names, known_owned).await,
        }
    }

    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        match self {
            AnyProvider::Cloudflare(p) => p.create(record).await,
            AnyProvider::Rfc2136(p) => p.create(record).await,
            AnyProvider::Manual(p) => p.create(record).await,
        }
    }

    async fn update(
        &self,
        existing: &ExistingRecord,
        record: &DnsRecord,
        ownership: Ownership,
    ) -> Result<(), ProviderError> {
        match self {
            AnyProvider::Cloudflare(p) => p.update(existing, record, ownership).await,
            AnyProvider::Rfc2136(p) => p.update(existing, record, ownership).await,
            AnyProvider::Manual(p) => p.update(existing, record, ownership).await,
        }
    }

    async fn delete(&self, existing: &ExistingRecord) -> Result<(), ProviderError> {
        match self {
            AnyProvider::Cloudflare(p) => p.delete(existing).await,
            AnyProvider::Rfc2136(p) => p.delete(existing).await,
            AnyProvider::Manual(p) => p.delete(existing).await,
        }
    }
}
