//! The sending domain used by the scenarios, and its DKIM keys.

use chrono::{DateTime, TimeZone, Utc};
use mailwarden_operator::dkim::rotation::{KeyGeneration, new_generation};
use mailwarden_operator::dkim::{self, DkimAlgorithm, PrivateKeyPem};
use mailwarden_operator::dns::dmarc::{Disposition, DmarcPolicy};
use mailwarden_operator::dns::mta_sts::{Mode, MtaStsPolicy};
use mailwarden_operator::dns::render::{DomainSettings, PublicSelector};
use mailwarden_operator::dns::spf::{AllQualifier, ConflictPolicy, SpfPolicy};

pub const BOTH: [DkimAlgorithm; 2] = [DkimAlgorithm::RsaSha256, DkimAlgorithm::Ed25519Sha256];

pub fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, 12, 0, 0).unwrap()
}

pub fn settings(domain: &str, conflict: ConflictPolicy) -> DomainSettings {
    DomainSettings {
        domain: domain.into(),
        spf: SpfPolicy {
            addresses: vec![],
            includes: vec![],
            all: AllQualifier::Fail,
        },
        spf_conflict: conflict,
        dmarc: DmarcPolicy {
            policy: Disposition::Reject,
            subdomain_policy: None,
            percent: None,
            aggregate_reports: vec![format!("mailto:dmarc@{domain}")],
            failure_reports: vec![],
            strict_alignment: true,
        },
        mta_sts: Some(MtaStsPolicy {
            mode: Mode::Enforce,
            mx: vec![format!("mx.{domain}")],
            max_age_seconds: 604800,
        }),
        tls_reports: vec![format!("mailto:tls@{domain}")],
        relay_host: Some(format!("relay.{domain}")),
        relay_addresses: vec![
            "192.0.2.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ],
    }
}

/// A generation with freshly generated keys, keyed by selector name.
pub struct Keys {
    pub generation: KeyGeneration,
    pub pems: Vec<(String, PrivateKeyPem)>,
}

impl Keys {
    pub fn new(generation: u32, now: DateTime<Utc>) -> Keys {
        let generation = new_generation(generation, &BOTH, now);
        let pems = generation
            .selectors
            .iter()
            .map(|s| (s.name.clone(), dkim::generate(s.algorithm).unwrap()))
            .collect();
        Keys { generation, pems }
    }

    pub fn public(&self) -> Vec<PublicSelector> {
        self.generation
            .selectors
            .iter()
            .zip(&self.pems)
            .map(|(s, (_, pem))| PublicSelector {
                name: s.name.clone(),
                algorithm: s.algorithm,
                public_key_base64: dkim::public_key_base64(&s.key, s.algorithm, pem).unwrap(),
            })
            .collect()
    }
}
