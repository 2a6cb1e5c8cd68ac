//! Brings a provider to the wanted records: a pure plan over what the provider holds, then
//! its execution. Only owned records are updated or deleted; a foreign SPF record is touched
//! only when the spec asks to merge with it, and then it is put back when the domain goes.

use super::provider::{DnsProvider, ExistingRecord, Ownership, ProviderError};
use super::record::{DnsRecord, RecordType};
use super::spf;

/// The writes that bring the provider to the wanted records. Empty in steady state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub create: Vec<DnsRecord>,
    /// Replace in one step (same name and type): keeps one SPF or DMARC record per name.
    pub update: Vec<(ExistingRecord, DnsRecord, Ownership)>,
    pub delete: Vec<ExistingRecord>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }

    pub fn writes(&self) -> usize {
        self.create.len() + self.update.len() + self.delete.len()
    }
}

fn same(a: &DnsRecord, b: &DnsRecord) -> bool {
    a.name == b.name && a.record_type == b.record_type && a.value == b.value
}

/// Plans the writes. `merge_spf_at` names the domain whose foreign SPF record the wanted SPF
/// record replaces (merge policy); `None` leaves every foreign record alone.
pub fn plan(wanted: &[DnsRecord], existing: &[ExistingRecord], merge_spf_at: Option<&str>) -> Plan {
    let mut to_create: Vec<DnsRecord> = wanted
        .iter()
        .filter(|w| !existing.iter().any(|e| same(&e.record, w)))
        .cloned()
        .collect();
    let mut stale: Vec<ExistingRecord> = existing
        .iter()
        .filter(|e| e.owned && !wanted.iter().any(|w| same(&e.record, w)))
        .cloned()
        .collect();
    if let Some(domain) = merge_spf_at {
        let wants_spf = wanted
            .iter()
            .any(|w| w.name == domain && spf::is_spf(&w.value));
        let adopted = existing
            .iter()
            .filter(|e| !e.owned && e.record.name == domain && spf::is_spf(&e.record.value));
        if wants_spf {
            stale.extend(
                adopted
                    .filter(|_| to_create.iter().any(|c| c.name == domain))
                    .cloned(),
            );
        }
    }

    let mut plan = Plan::default();
    for old in stale {
        let replacement = to_create.iter().position(|new| {
            new.name == old.record.name
                && new.record_type == old.record.record_type
                && new.record_type == RecordType::TXT
                && (spf::is_spf(&new.value) == spf::is_spf(&old.record.value))
        });
        match replacement {
            Some(index) => {
                let new = to_create.remove(index);
                plan.update.push((old, new, Ownership::Owned));
            }
            None => plan.delete.push(old),
        }
    }
    plan.create = to_create;
    plan
}

/// Plans the removal of everything the operator owns, putting back `adopted_spf` (the foreign
/// SPF record a merge replaced) in place of the merged record.
pub fn plan_removal(existing: &[ExistingRecord], adopted_spf: Option<&DnsRecord>) -> Plan {
    let mut plan = Plan::default();
    for record in existing.iter().filter(|e| e.owned) {
        match adopted_spf {
            Some(foreign)
                if foreign.name == record.record.name
                    && record.record.record_type == RecordType::TXT
                    && spf::is_spf(&record.record.value) =>
            {
                plan.update
                    .push((record.clone(), foreign.clone(), Ownership::Foreign));
            }
            _ => plan.delete.push(record.clone()),
        }
    }
    plan
}

/// Carries out a plan, stopping at the first failure.
pub async fn execute(provider: &impl DnsProvider, plan: &Plan) -> Result<(), ProviderError> {
    for (old, new, ownership) in &plan.update {
        provider.update(old, new, *ownership).await?;
    }
    for record in &plan.create {
        provider.create(record).await?;
    }
    for record in &plan.delete {
        provider.delete(record).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(record: DnsRecord) -> ExistingRecord {
        ExistingRecord {
            record,
            owned: true,
            id: None,
        }
    }

    fn foreign(record: DnsRecord) -> ExistingRecord {
        ExistingRecord {
            record,
            owned: false,
            id: None,
        }
    }

    #[test]
    fn steady_state_plans_nothing() {
        let wanted = vec![DnsRecord::txt("_dmarc.example.org", "v=DMARC1; p=reject")];
        let existing = vec![owned(wanted[0].clone())];
        assert!(plan(&wanted, &existing, None).is_empty());
    }

    #[test]
    fn changed_value_is_updated_in_place_and_old_selector_deleted() {
        let wanted = vec![
            DnsRecord::txt("example.org", "v=spf1 ip4:192.0.2.11 -all"),
            DnsRecord::txt(
                "mw2-20260301-ed._domainkey.example.org",
                "v=DKIM1; k=ed25519; p=B",
            ),
        ];
        let old_spf = owned(DnsRecord::txt("example.org", "v=spf1 ip4:192.0.2.10 -all"));
        let old_dkim = owned(DnsRecord::txt(
            "mw1-20260201-ed._domainkey.example.org",
            "v=DKIM1; k=ed25519; p=A",
        ));
        let verification = foreign(DnsRecord::txt("example.org", "site-verification=x"));
        let existing = vec![old_spf.clone(), old_dkim.clone(), verification];
        let planned = plan(&wanted, &existing, None);
        assert_eq!(
            planned.update,
            vec![(old_spf, wanted[0].clone(), Ownership::Owned)]
        );
        assert_eq!(planned.create, vec![wanted[1].clone()]);
        assert_eq!(planned.delete, vec![old_dkim]);
    }

    #[test]
    fn foreign_spf_is_replaced_only_when_merging() {
        let wanted = vec![DnsRecord::txt(
            "example.org",
            "v=spf1 ip4:192.0.2.10 include:x.net -all",
        )];
        let theirs = foreign(DnsRecord::txt("example.org", "v=spf1 include:x.net ~all"));
        let refuse = plan(&wanted, std::slice::from_ref(&theirs), None);
        assert!(refuse.update.is_empty() && refuse.delete.is_empty());
        let merge = plan(&wanted, std::slice::from_ref(&theirs), Some("example.org"));
        assert_eq!(
            merge.update,
            vec![(theirs.clone(), wanted[0].clone(), Ownership::Owned)]
        );
        assert!(merge.create.is_empty() && merge.delete.is_empty());

        let merged = owned(wanted[0].clone());
        let other = foreign(DnsRecord::txt("legacy.example.org", "v=spf1 -all"));
        let removal = plan_removal(&[merged.clone(), other], Some(&theirs.record));
        assert_eq!(
            removal.update,
            vec![(merged, theirs.record, Ownership::Foreign)]
        );
        assert!(removal.delete.is_empty() && removal.create.is_empty());
    }
}
