//! The Cloudflare provider (the real `cloudflare` crate client) against the contract server
//! written from Cloudflare's v4 DNS API: pagination, comments as ownership, chunked TXT read
//! back without an update loop, error bodies, 429 and 5xx retries, and removal that leaves
//! foreign records as they were.

mod support;

use std::time::Duration;

use mailwarden_operator::dns::cloudflare::{CloudflareProvider, Retry};
use mailwarden_operator::dns::publish::{publish, unpublish};
use mailwarden_operator::dns::record::quoted_character_strings;
use mailwarden_operator::dns::spf::ConflictPolicy;

use support::cloudflare::{Contract, TOKEN, ZONE, ZONE_ID};
use support::domain::{Keys, day, settings};

const OWNER: &str = "managed by mailwarden for clinic-a/example-test";

fn provider(contract: &Contract, token: &str) -> CloudflareProvider {
    let retry = Retry {
        attempts: 3,
        first_delay: Duration::from_millis(20),
    };
    let base = contract.api_base();
    CloudflareProvider::new(
        token.into(),
        ZONE_ID.into(),
        "clinic-a/example-test",
        Some(&base),
        retry,
    )
    .unwrap()
}

type Row = (String, String, String, Option<String>);

fn row(name: &str, rtype: &str, content: &str, comment: Option<&str>) -> Row {
    (
        name.into(),
        rtype.into(),
        content.into(),
        comment.map(Into::into),
    )
}

fn foreign_rows() -> Vec<Row> {
    let it = Some("managed by the hospital's it team");
    let mut rows: Vec<Row> = (0..6)
        .map(|i| row(ZONE, "TXT", &format!("\"site-verification={i}\""), it))
        .collect();
    rows.push(row(
        "legacy.example.test",
        "TXT",
        "\"v=spf1 include:_spf.legacy.example -all\"",
        it,
    ));
    rows
}

fn seed_foreign(contract: &Contract) {
    for (name, rtype, content, _) in foreign_rows() {
        contract.seed(&rtype, &name, &content);
    }
}

#[tokio::test]
async fn publish_paginate_retry_rotate_and_remove_against_the_contract() {
    // Five records per page: the apex alone holds seven records once published.
    let contract = Contract::start(5);
    seed_foreign(&contract);
    let cloudflare = provider(&contract, TOKEN);
    let settings = settings(ZONE, ConflictPolicy::Refuse);
    let first = Keys::new(1, day(1));

    let published = publish(&cloudflare, &settings, &first.public(), &[], None)
        .await
        .unwrap();
    assert_eq!(published.writes, 8);
    assert_eq!(contract.writes(), 8);
    let records = contract.records();
    assert_eq!(records[..7], foreign_rows()[..]);
    let ours: Vec<Row> = records[7..].to_vec();
    let wanted: Vec<Row> = published
        .rendered
        .records
        .iter()
        .map(|w| {
            let r = &w.record;
            let content = match r.record_type {
                mailwarden_operator::dns::RecordType::TXT => quoted_character_strings(&r.value),
                _ => r.value.clone(),
            };
            row(&r.name, &r.record_type.to_string(), &content, Some(OWNER))
        })
        .collect();
    assert_eq!(ours, wanted);
    assert_eq!(
        ours[0],
        row(
            ZONE,
            "TXT",
            "\"v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all\"",
            Some(OWNER)
        )
    );
    // The RSA record is stored as two quoted character-strings.
    assert_eq!(ours[1].2.matches('"').count(), 4);

    // Steady state, even through rate limiting: zero writes.
    contract.fail_next(429, 2);
    let again = publish(
        &cloudflare,
        &settings,
        &first.public(),
        &published.owned,
        None,
    )
    .await
    .unwrap();
    assert_eq!(again.writes, 0);
    assert_eq!(contract.writes(), 8);

    // Rotation overlap, then retirement of the first generation.
    let second = Keys::new(2, day(31));
    let both: Vec<_> = first.public().into_iter().chain(second.public()).collect();
    let overlap = publish(&cloudflare, &settings, &both, &again.owned, None)
        .await
        .unwrap();
    assert_eq!(overlap.writes, 2);
    let retired = publish(
        &cloudflare,
        &settings,
        &second.public(),
        &overlap.owned,
        None,
    )
    .await
    .unwrap();
    assert_eq!(retired.writes, 2);
    let names: Vec<String> = contract.records().into_iter().map(|r| r.0).collect();
    assert!(!names.iter().any(|n| n.starts_with("mw1-")));
    assert_eq!(names.iter().filter(|n| n.starts_with("mw2-")).count(), 2);

    // Removal deletes exactly the owned records.
    let removed = unpublish(&cloudflare, ZONE, &retired.owned, None)
        .await
        .unwrap();
    assert_eq!(removed, 8);
    assert_eq!(contract.records(), foreign_rows());
}

#[tokio::test]
async fn merge_takes_over_the_foreign_spf_and_puts_it_back() {
    let contract = Contract::start(100);
    let foreign = "\"v=spf1 include:_spf.legacy.example ~all\"";
    contract.seed("TXT", ZONE, foreign);
    let cloudflare = provider(&contract, TOKEN);
    let settings = settings(ZONE, ConflictPolicy::Merge);
    let keys = Keys::new(1, day(1));

    let published = publish(&cloudflare, &settings, &keys.public(), &[], None)
        .await
        .unwrap();
    let merged = "\"v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 include:_spf.legacy.example -all\"";
    assert_eq!(contract.records()[0], row(ZONE, "TXT", merged, Some(OWNER)));
    assert_eq!(
        contract
            .records()
            .iter()
            .filter(|r| r.2.starts_with("\"v=spf1"))
            .count(),
        1
    );

    let adopted = published.adopted_spf.as_deref();
    let again = publish(
        &cloudflare,
        &settings,
        &keys.public(),
        &published.owned,
        adopted,
    )
    .await
    .unwrap();
    assert_eq!(again.writes, 0);

    unpublish(&cloudflare, ZONE, &again.owned, adopted)
        .await
        .unwrap();
    assert_eq!(contract.records(), vec![row(ZONE, "TXT", foreign, None)]);
}

#[tokio::test]
async fn api_errors_surface_with_stable_categories() {
    let contract = Contract::start(100);
    let settings = settings(ZONE, ConflictPolicy::Refuse);
    let keys = Keys::new(1, day(1));

    let wrong = provider(&contract, "not-the-token");
    let error = publish(&wrong, &settings, &keys.public(), &[], None)
        .await
        .unwrap_err();
    assert_eq!(error.category(), "ProviderUnauthorized");
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert_eq!(
        source,
        "cloudflare refused the credentials: code 10000: Authentication error"
    );

    let cloudflare = provider(&contract, TOKEN);
    contract.fail_next(500, 3);
    let error = publish(&cloudflare, &settings, &keys.public(), &[], None)
        .await
        .unwrap_err();
    assert_eq!(error.category(), "ProviderUnavailable");
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert_eq!(
        source,
        "cloudflare failed with a server error after 3 attempts: code 10000: Internal server error"
    );

    contract.fail_next(429, 3);
    let error = publish(&cloudflare, &settings, &keys.public(), &[], None)
        .await
        .unwrap_err();
    assert_eq!(error.category(), "ProviderRateLimited");
    assert_eq!(contract.writes(), 0);
}
