//! The whole DNS loop against a real authoritative server (Knot) updated with RFC 2136 and
//! TSIG: render, publish, resolve, verify (with dkimpy as independent DKIM verifier), rotate,
//! remove; and steady state that writes nothing.

mod support;

use mailwarden_operator::dkim::rotation::{self, Schedule, Step};
use mailwarden_operator::dns::DnsRecord;
use mailwarden_operator::dns::publish::{publish, unpublish};
use mailwarden_operator::dns::record::quoted_character_strings;
use mailwarden_operator::dns::rfc2136::{Rfc2136Provider, tsig_algorithm};
use mailwarden_operator::dns::spf::{ConflictPolicy, SpfError};
use mailwarden_operator::dns::verify::{RecordState, Resolvers};

use support::domain::{Keys, day, settings};
use support::knot::{KEY_NAME, Knot, ZONE};

const VERIFICATION: &str = "\"site-verification=abc\"";
const LEGACY_SPF: &str = "\"v=spf1 include:_spf.legacy.example -all\"";

fn provider(knot: &Knot) -> Rfc2136Provider {
    let algorithm = tsig_algorithm("hmac-sha256").unwrap();
    Rfc2136Provider::new(
        knot.addr,
        ZONE,
        KEY_NAME,
        algorithm,
        Knot::tsig_secret(),
        300,
    )
    .unwrap()
}

fn schedule() -> Schedule {
    Schedule {
        period: chrono::Duration::days(30),
        grace: chrono::Duration::days(2),
    }
}

#[tokio::test]
async fn publish_verify_rotate_and_remove_through_knot() {
    let knot = Knot::start(&[
        &format!("@ TXT {VERIFICATION}"),
        &format!("legacy TXT {LEGACY_SPF}"),
    ]);
    let dns = provider(&knot);
    let resolvers = Resolvers::new(&[knot.addr]).unwrap();
    let settings = settings(ZONE, ConflictPolicy::Refuse);
    let first = Keys::new(1, day(1));

    // Publish: eight records, exactly as rendered.
    let published = publish(&dns, &settings, &first.public(), &[], None)
        .await
        .unwrap();
    assert_eq!(published.writes, 8);
    assert_eq!(
        knot.dig("TXT", ZONE),
        format!("{VERIFICATION}\n\"v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all\"")
    );
    assert_eq!(
        knot.dig("TXT", "_dmarc.example.test"),
        "\"v=DMARC1; p=reject; rua=mailto:dmarc@example.test; adkim=s; aspf=s\""
    );
    assert_eq!(
        knot.dig("TXT", "_smtp._tls.example.test"),
        "\"v=TLSRPTv1; rua=mailto:tls@example.test\""
    );
    let sts = published.rendered.mta_sts_policy.as_deref().unwrap();
    assert_eq!(
        sts,
        "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 604800\r\n"
    );
    let sts_id = mailwarden_operator::dns::mta_sts::policy_id(sts);
    assert_eq!(
        knot.dig("TXT", "_mta-sts.example.test"),
        format!("\"v=STSv1; id={sts_id}\"")
    );
    assert_eq!(knot.dig("A", "relay.example.test"), "192.0.2.10");
    assert_eq!(knot.dig("AAAA", "relay.example.test"), "2001:db8::10");
    for record in published.rendered.records.iter().map(|r| &r.record) {
        if record.name.contains("._domainkey.") {
            // The 410-byte RSA record comes back as two character-strings (255 + 155).
            assert_eq!(
                knot.dig("TXT", &record.name),
                quoted_character_strings(&record.value)
            );
        }
    }
    assert_eq!(
        knot.dig("TXT", "mw1-20260301-rsa._domainkey.example.test")
            .matches('"')
            .count(),
        4
    );

    // Resolve and verify every record; dkimpy verifies signatures by both keys.
    let wanted: Vec<DnsRecord> = published
        .rendered
        .records
        .iter()
        .map(|r| r.record.clone())
        .collect();
    assert!(
        resolvers
            .check_all(&wanted)
            .await
            .iter()
            .all(|s| *s == RecordState::Verified)
    );
    verify_signatures(&knot, &first);

    // Steady state: nothing written, the zone serial does not move.
    let serial = knot.serial();
    let again = publish(&dns, &settings, &first.public(), &published.owned, None)
        .await
        .unwrap();
    assert_eq!(again.writes, 0);
    assert_eq!(knot.serial(), serial);

    // Rotate: the second generation is published next to the first; both verify.
    let verified = |_: &rotation::Selector| true;
    let mut gens = vec![first.generation.clone()];
    let step = rotation::next_step(&gens, verified, schedule(), false, day(1));
    gens = rotation::apply(gens, &step, schedule(), day(1));
    assert_eq!(
        rotation::next_step(&gens, verified, schedule(), false, day(31)),
        Step::Create { generation: 2 }
    );
    let second = Keys::new(2, day(31));
    gens.push(second.generation.clone());
    let both: Vec<_> = first.public().into_iter().chain(second.public()).collect();
    let overlap = publish(&dns, &settings, &both, &again.owned, None)
        .await
        .unwrap();
    assert_eq!(overlap.writes, 2);
    let states = resolvers.check_all(&overlap.owned).await;
    assert_eq!(states, vec![RecordState::Verified; 10]);
    verify_signatures(&knot, &first);
    verify_signatures(&knot, &second);

    let step = rotation::next_step(&gens, verified, schedule(), false, day(31));
    assert_eq!(step, Step::Activate { generation: 2 });
    gens = rotation::apply(gens, &step, schedule(), day(31));
    assert_eq!(
        rotation::signing_selectors(&gens)[0].name,
        "mw2-20260331-rsa"
    );
    let step = rotation::next_step(
        &gens,
        verified,
        schedule(),
        false,
        day(31) + chrono::Duration::days(2),
    );
    assert_eq!(step, Step::Retire { generation: 1 });

    let retired = publish(&dns, &settings, &second.public(), &overlap.owned, None)
        .await
        .unwrap();
    assert_eq!(retired.writes, 2);
    assert_eq!(
        knot.dig("TXT", "mw1-20260301-rsa._domainkey.example.test"),
        ""
    );
    assert_eq!(
        knot.dig("TXT", "mw1-20260301-ed._domainkey.example.test"),
        ""
    );
    verify_signatures(&knot, &second);

    // Remove: only owned records go; the foreign records stay exactly as they were.
    let removed = unpublish(&dns, ZONE, &retired.owned, None).await.unwrap();
    assert_eq!(removed, 8);
    assert_eq!(knot.dig("TXT", ZONE), VERIFICATION);
    assert_eq!(knot.dig("TXT", "legacy.example.test"), LEGACY_SPF);
    assert_eq!(knot.dig("TXT", "_dmarc.example.test"), "");
    assert_eq!(knot.dig("A", "relay.example.test"), "");
    assert_eq!(
        knot.dig("TXT", "mw2-20260331-ed._domainkey.example.test"),
        ""
    );
}

fn verify_signatures(knot: &Knot, keys: &Keys) {
    for (selector, (_, pem)) in keys.generation.selectors.iter().zip(&keys.pems) {
        let algorithm = selector.algorithm.as_str();
        support::dkimpy::sign_and_verify(knot.addr, ZONE, &selector.name, algorithm, &pem.0);
    }
}

#[tokio::test]
async fn merged_spf_replaces_the_foreign_record_and_is_restored_on_removal() {
    let foreign = "\"v=spf1 include:_spf.legacy.example ~all\"";
    let knot = Knot::start(&[
        &format!("@ TXT {foreign}"),
        &format!("@ TXT {VERIFICATION}"),
    ]);
    let dns = provider(&knot);
    let settings = settings(ZONE, ConflictPolicy::Merge);
    let keys = Keys::new(1, day(1));

    let published = publish(&dns, &settings, &keys.public(), &[], None)
        .await
        .unwrap();
    assert_eq!(
        knot.dig("TXT", ZONE),
        format!(
            "{VERIFICATION}\n\"v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 include:_spf.legacy.example \
             -all\""
        )
    );
    assert_eq!(
        published.adopted_spf.as_deref(),
        Some("v=spf1 include:_spf.legacy.example ~all")
    );

    let adopted = published.adopted_spf.as_deref();
    let again = publish(&dns, &settings, &keys.public(), &published.owned, adopted)
        .await
        .unwrap();
    assert_eq!(again.writes, 0);
    assert_eq!(again.adopted_spf, published.adopted_spf);

    unpublish(&dns, ZONE, &again.owned, adopted).await.unwrap();
    assert_eq!(knot.dig("TXT", ZONE), format!("{VERIFICATION}\n{foreign}"));
}

#[tokio::test]
async fn refused_spf_conflict_leaves_the_foreign_record_alone() {
    let foreign = "\"v=spf1 include:_spf.legacy.example ~all\"";
    let knot = Knot::start(&[&format!("@ TXT {foreign}")]);
    let dns = provider(&knot);
    let keys = Keys::new(1, day(1));

    let published = publish(
        &dns,
        &settings(ZONE, ConflictPolicy::Refuse),
        &keys.public(),
        &[],
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        published.rendered.spf_problem,
        Some(SpfError::Conflict {
            name: ZONE.into(),
            foreign: "v=spf1 include:_spf.legacy.example ~all".into()
        })
    );
    assert_eq!(published.writes, 7);
    assert_eq!(knot.dig("TXT", ZONE), foreign);
    unpublish(&dns, ZONE, &published.owned, None).await.unwrap();
    assert_eq!(knot.dig("TXT", ZONE), foreign);
}

#[tokio::test]
async fn wrong_tsig_key_is_refused_with_a_stable_category() {
    let knot = Knot::start(&[]);
    let algorithm = tsig_algorithm("hmac-sha256").unwrap();
    let wrong = b"not-the-key-the-server-knows-abc".to_vec();
    let dns = Rfc2136Provider::new(knot.addr, ZONE, KEY_NAME, algorithm, wrong, 300).unwrap();
    let keys = Keys::new(1, day(1));
    let error = publish(
        &dns,
        &settings(ZONE, ConflictPolicy::Refuse),
        &keys.public(),
        &[],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(error.category(), "ProviderUnauthorized", "{error:?}");
    assert_eq!(
        error.to_string(),
        "failed to publish records for example.test through rfc2136"
    );
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert!(
        source.starts_with(
            "rfc2136 refused the credentials: the server's answer failed tsig verification"
        ),
        "{source}"
    );
    assert_eq!(knot.dig("TXT", ZONE), "");
}
