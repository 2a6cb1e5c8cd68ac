use chrono::TimeZone;

use super::*;
use crate::dkim::DkimAlgorithm;
use crate::dkim::rotation::{Step, apply, new_generation};

fn generations(active: bool) -> Vec<KeyGeneration> {
    let now = chrono::Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let generation = new_generation(
        1,
        &[DkimAlgorithm::RsaSha256, DkimAlgorithm::Ed25519Sha256],
        now,
    );
    if !active {
        return vec![generation];
    }
    let schedule = crate::dkim::rotation::Schedule {
        period: chrono::Duration::days(90),
        grace: chrono::Duration::days(7),
    };
    apply(
        vec![generation],
        &Step::Activate { generation: 1 },
        schedule,
        now,
    )
}

#[test]
fn verified_and_signing_is_ready() {
    let gens = generations(true);
    let verified = RecordState::Verified;
    let observation = Observation {
        provider_publishes: true,
        records: vec![("example.org", &verified)],
        generations: &gens,
        spf_problem: None,
        unauthorized_reports: vec![],
    };
    let conditions = observed(&observation);
    let summary: Vec<(&str, &str, &str)> = conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("DKIMReady", "True", "Signing"),
            ("DNSPublished", "True", "Published"),
            ("DNSVerified", "True", "Verified"),
            ("Ready", "True", "Ready"),
        ]
    );
    assert_eq!(
        conditions[0].message,
        "signing with mw1-20260301-rsa, mw1-20260301-ed"
    );
}

#[test]
fn spf_conflict_blocks_ready_and_shows_the_foreign_value() {
    let gens = generations(false);
    let missing = RecordState::Missing {
        resolver: "192.0.2.53:53".into(),
    };
    let conflict = SpfError::Conflict {
        name: "example.org".into(),
        foreign: "v=spf1 ~all".into(),
    };
    let observation = Observation {
        provider_publishes: true,
        records: vec![("_dmarc.example.org", &missing)],
        generations: &gens,
        spf_problem: Some(&conflict),
        unauthorized_reports: vec!["example.org._report._dmarc.example.net"],
    };
    let conditions = observed(&observation);
    assert_eq!(conditions[0].reason, "AwaitingVerification");
    assert_eq!(conditions[1].reason, "Conflict");
    assert_eq!(
        conditions[1].message,
        "example.org already has an spf record not owned by mailwarden: v=spf1 ~all"
    );
    assert_eq!(
        conditions[2].message,
        "resolvers do not yet serve: _dmarc.example.org; warning: no DMARC report authorization at \
         example.org._report._dmarc.example.net, so those receivers get no reports"
    );
    assert_eq!(
        (conditions[3].status.as_str(), conditions[3].reason.as_str()),
        ("False", "AwaitingVerification")
    );
}

#[test]
fn manual_provider_asks_for_publication() {
    let gens = generations(false);
    let missing = RecordState::Missing {
        resolver: "system".into(),
    };
    let observation = Observation {
        provider_publishes: false,
        records: vec![("mw1-20260301-ed._domainkey.example.org", &missing)],
        generations: &gens,
        spf_problem: None,
        unauthorized_reports: vec![],
    };
    let conditions = observed(&observation);
    assert_eq!(conditions[1].reason, "ManualPublicationRequired");
    assert_eq!(
        conditions[1].message,
        "publish the records listed in status.records; not yet served: \
         mw1-20260301-ed._domainkey.example.org"
    );
}

#[test]
fn failed_step_sets_its_condition_with_the_category() {
    let previous = vec![Condition::new("DNSVerified", true, "Verified", "served")];
    let conditions = failed(
        &previous,
        "publish",
        "ProviderRateLimited",
        "cloudflare rate limit",
    );
    assert_eq!(conditions[0].reason, "NotObserved");
    assert_eq!(conditions[2].reason, "Verified");
    assert_eq!(conditions[1].reason, "ProviderRateLimited");
    assert_eq!(conditions[1].message, "step publish: cloudflare rate limit");
    // Ready takes the first False condition, not the earlier Unknown one.
    assert_eq!(conditions[3].reason, "ProviderRateLimited");
    assert_eq!(
        conditions[3].message,
        "DNSPublished: step publish: cloudflare rate limit"
    );
}
