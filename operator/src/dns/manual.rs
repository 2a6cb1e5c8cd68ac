//! The manual provider: the operator publishes nothing; status lists the wanted records so a
//! team without API access can paste them, and verification tells when they are live.

use super::provider::{DnsProvider, ExistingRecord, Ownership, ProviderError};
use super::record::DnsRecord;

#[derive(Clone, Debug, Default)]
pub struct ManualProvider;

impl DnsProvider for ManualProvider {
    fn kind(&self) -> &'static str {
        "manual"
    }

    fn publishes(&self) -> bool {
        false
    }

    async fn read(
        &self,
        _names: &[String],
        _known_owned: &[DnsRecord],
    ) -> Result<Vec<ExistingRecord>, ProviderError> {
        Ok(Vec::new())
    }

    async fn create(&self, _record: &DnsRecord) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn update(
        &self,
        _existing: &ExistingRecord,
        _record: &DnsRecord,
        _ownership: Ownership,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn delete(&self, _existing: &ExistingRecord) -> Result<(), ProviderError> {
        Ok(())
    }
}
