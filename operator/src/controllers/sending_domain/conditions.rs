//! Step `status`: the conditions of a SendingDomain, derived only from what the pass observed.
//! Pure.

use crate::crd::Condition;
use crate::dkim::rotation::{KeyGeneration, Phase};
use crate::dns::spf::SpfError;
use crate::dns::verify::RecordState;

/// What one pass saw, for the conditions.
pub struct Observation<'a> {
    /// False for the manual provider.
    pub provider_publishes: bool,
    /// Names of wanted records and their verification.
    pub records: Vec<(&'a str, &'a RecordState)>,
    pub generations: &'a [KeyGeneration],
    pub spf_problem: Option<&'a SpfError>,
    /// Foreign report domains' authorization record names that hold no `v=DMARC1` record.
    pub unauthorized_reports: Vec<&'a str>,
}

fn ready(conditions: &[Condition]) -> Condition {
    let blocking = conditions.iter().find(|c| c.status == "False");
    match blocking.or_else(|| conditions.iter().find(|c| !c.is_true())) {
        None => Condition::new(
            "Ready",
            true,
            "Ready",
            "keys are published, served and signing",
        ),
        Some(blocking) => Condition::new(
            "Ready",
            false,
            &blocking.reason,
            format!("{}: {}", blocking.type_, blocking.message),
        ),
    }
}

/// The four conditions after a pass that completed.
pub fn observed(observation: &Observation<'_>) -> Vec<Condition> {
    let active = observation
        .generations
        .iter()
        .find(|g| g.phase == Phase::Active);
    let pending = observation
        .generations
        .iter()
        .find(|g| g.phase == Phase::Published);
    let dkim = match (active, pending) {
        (Some(a), Some(p)) => Condition::new(
            "DKIMReady",
            true,
            "Rotating",
            format!(
                "signing with generation {}; generation {} is published and awaits verification",
                a.generation, p.generation
            ),
        ),
        (Some(a), None) => {
            let names: Vec<&str> = a.selectors.iter().map(|s| s.name.as_str()).collect();
            Condition::new(
                "DKIMReady",
                true,
                "Signing",
                format!("signing with {}", names.join(", ")),
            )
        }
        (None, _) => Condition::new(
            "DKIMReady",
            false,
            "AwaitingVerification",
            "the first keys are published; the relay signs once resolvers serve them",
        ),
    };

    let missing: Vec<&str> = observation
        .records
        .iter()
        .filter(|(_, state)| **state != RecordState::Verified)
        .map(|(name, _)| *name)
        .collect();
    let published = match (observation.spf_problem, observation.provider_publishes) {
        (Some(problem @ SpfError::Conflict { .. }), _) => {
            Condition::new("DNSPublished", false, "Conflict", problem.to_string())
        }
        (Some(problem), _) => {
            Condition::new("DNSPublished", false, "SpfInvalid", problem.to_string())
        }
        (None, true) => Condition::new(
            "DNSPublished",
            true,
            "Published",
            "every record is published",
        ),
        (None, false) if missing.is_empty() => Condition::new(
            "DNSPublished",
            true,
            "PublishedManually",
            "every record listed in status.records is served",
        ),
        (None, false) => Condition::new(
            "DNSPublished",
            false,
            "ManualPublicationRequired",
            format!(
                "publish the records listed in status.records; not yet served: {}",
                missing.join(", ")
            ),
        ),
    };

    let mut verified = if missing.is_empty() {
        Condition::new(
            "DNSVerified",
            true,
            "Verified",
            "resolvers serve every record exactly",
        )
    } else {
        Condition::new(
            "DNSVerified",
            false,
            "RecordsNotServed",
            format!("resolvers do not yet serve: {}", missing.join(", ")),
        )
    };
    if !observation.unauthorized_reports.is_empty() {
        verified.message.push_str(&format!(
            "; warning: no DMARC report authorization at {}, so those receivers get no reports",
            observation.unauthorized_reports.join(", ")
        ));
    }

    let mut conditions = vec![dkim, published, verified];
    conditions.push(ready(&conditions));
    conditions
}

/// Conditions after a step failed: the failing step's condition carries the error category as
/// reason; the others keep their previous value.
pub fn failed(previous: &[Condition], step: &str, category: &str, message: &str) -> Vec<Condition> {
    let failing = match step {
        "keys" => "DKIMReady",
        "verify" => "DNSVerified",
        _ => "DNSPublished",
    };
    let mut conditions: Vec<Condition> = ["DKIMReady", "DNSPublished", "DNSVerified"]
        .into_iter()
        .map(|type_| {
            if type_ == failing {
                return Condition::new(type_, false, category, format!("step {step}: {message}"));
            }
            previous
                .iter()
                .find(|c| c.type_ == type_)
                .cloned()
                .unwrap_or_else(|| Condition::unknown(type_, "NotObserved", "not observed yet"))
        })
        .collect();
    conditions.push(ready(&conditions));
    conditions
}

#[cfg(test)]
mod tests;
