use std::process::Command;

use super::*;

const DAY: i64 = 86_400;

fn wanted() -> Wanted {
    Wanted {
        tenant: "st-olaf".into(),
        server_names: vec!["relay.st-olaf.example".into(), "relay.tenant-a.svc".into()],
        clients: vec!["ehr".into(), "billing".into()],
        ca_days: 300,
        leaf_days: 90,
    }
}

fn at(ts: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(ts).unwrap()
}

const T0: i64 = 1_790_000_000;

fn first() -> Issued {
    plan(&wanted(), at(T0), None, None, &BTreeMap::new()).unwrap()
}

fn again(previous: &Issued, wanted: &Wanted, now: i64) -> Issued {
    plan(
        wanted,
        at(now),
        Some(&previous.ca),
        Some(&previous.server),
        &previous.clients,
    )
    .unwrap()
}

#[test]
fn first_plan_issues_ca_server_and_every_client_with_exact_windows() {
    let issued = first();
    assert_eq!(
        issued.changes,
        [
            "issued the tenant CA",
            "issued the server certificate",
            "issued the client ehr certificate",
            "issued the client billing certificate"
        ]
    );
    let ca = &parse_certs(&issued.ca.cert_pem)[0];
    assert_eq!((ca.not_before, ca.not_after), (T0 - 300, T0 + 300 * DAY));
    assert_eq!(
        ca.subject,
        format!("O=mailwarden, CN=st-olaf tenant CA {T0}")
    );

    let server = &parse_certs(&issued.server.cert_pem)[0];
    assert_eq!(
        (server.not_before, server.not_after),
        (T0 - 300, T0 + 90 * DAY)
    );
    assert_eq!(
        server.dns_names,
        ["relay.st-olaf.example", "relay.tenant-a.svc"]
    );
    assert_eq!(server.issuer, ca.subject);

    let ehr = &parse_certs(&issued.clients["ehr"].cert_pem)[0];
    assert_eq!(ehr.subject, "O=mailwarden, CN=ehr");
    assert_eq!(issued.bundle_pem, issued.ca.cert_pem);
}

#[test]
fn unchanged_inputs_keep_everything() {
    let issued = first();
    let next = again(&issued, &wanted(), T0 + DAY);
    assert!(next.changes.is_empty(), "{:?}", next.changes);
    assert_eq!(
        next,
        Issued {
            changes: vec![],
            ..issued
        }
    );
}

#[test]
fn leaves_renew_when_a_third_of_their_lifetime_is_left() {
    let issued = first();
    // 90 days plus 300 s of backdating is 7_776_300 s; a third of it (2_592_100 s) is left at
    // 60 days minus 100 s after T0.
    let renew_at = T0 + 60 * DAY - 100;
    let kept = again(&issued, &wanted(), renew_at);
    assert!(kept.changes.is_empty(), "{:?}", kept.changes);
    let renewed = again(&issued, &wanted(), renew_at + 1);
    assert_eq!(
        renewed.changes,
        [
            "issued the server certificate",
            "issued the client ehr certificate",
            "issued the client billing certificate"
        ]
    );
    let server = &parse_certs(&renewed.server.cert_pem)[0];
    assert_eq!(server.not_after, renew_at + 1 + 90 * DAY);
}

#[test]
fn changed_names_reissue_only_the_affected_leaf() {
    let issued = first();
    let mut wanted = wanted();
    wanted
        .server_names
        .push("relay.st-olaf.svc.cluster.local".into());
    wanted.clients.push("lab".into());
    let next = again(&issued, &wanted, T0 + DAY);
    assert_eq!(
        next.changes,
        [
            "issued the server certificate",
            "issued the client lab certificate"
        ]
    );
    assert_eq!(next.clients["ehr"], issued.clients["ehr"]);
}

#[test]
fn ca_rotation_publishes_the_bundle_before_leaves_move() {
    let issued = first();
    let rotate_at = T0 + 201 * DAY;

    // Leaves renewed on the way so that only the CA is due.
    let mut wanted = wanted();
    wanted.leaf_days = 90;
    let refreshed = again(&issued, &wanted, rotate_at - 10 * DAY);
    let old_ca = refreshed.ca.cert_pem.clone();

    let rotated = again(&refreshed, &wanted, rotate_at);
    assert_eq!(
        rotated.changes,
        ["rotated the tenant CA; leaves move to it once the bundle is published"]
    );
    assert_ne!(rotated.ca.cert_pem, old_ca);
    assert_eq!(rotated.ca.retired_pem, old_ca);
    assert_eq!(parse_certs(&rotated.bundle_pem).len(), 2);
    assert_eq!(
        rotated.server.cert_pem, refreshed.server.cert_pem,
        "leaf kept in phase one"
    );
    assert_eq!(
        rotated.server.bundle_pem, rotated.bundle_pem,
        "bundle published in phase one"
    );

    assert_eq!(rotated.ca.rotated_at, Some(rotate_at));

    // Within the grace period, holders get time to load the bundle; leaves stay.
    let waiting = again(&rotated, &wanted, rotate_at + BUNDLE_GRACE_SECONDS - 1);
    assert!(waiting.changes.is_empty(), "{:?}", waiting.changes);

    let moved = again(&rotated, &wanted, rotate_at + BUNDLE_GRACE_SECONDS);
    assert_eq!(
        moved.changes,
        [
            "issued the server certificate",
            "issued the client ehr certificate",
            "issued the client billing certificate"
        ]
    );
    let new_ca = &parse_certs(&moved.ca.cert_pem)[0];
    assert_eq!(
        parse_certs(&moved.server.cert_pem)[0].issuer,
        new_ca.subject
    );
    assert_eq!(
        parse_certs(&moved.bundle_pem).len(),
        2,
        "old CA trusted until it expires"
    );

    let after_old_expiry = again(&moved, &wanted, T0 + 301 * DAY);
    assert_eq!(parse_certs(&after_old_expiry.bundle_pem).len(), 1);
}

#[test]
fn leaves_never_outlive_their_ca() {
    let mut wanted = wanted();
    wanted.ca_days = 60;
    wanted.leaf_days = 90;
    let issued = plan(&wanted, at(T0), None, None, &BTreeMap::new()).unwrap();
    let ca = &parse_certs(&issued.ca.cert_pem)[0];
    assert_eq!(
        parse_certs(&issued.server.cert_pem)[0].not_after,
        ca.not_after
    );
}

#[test]
fn openssl_verifies_every_leaf_against_the_bundle() {
    let now = OffsetDateTime::now_utc();
    let issued = plan(&wanted(), now, None, None, &BTreeMap::new()).unwrap();
    let dir = std::env::temp_dir().join(format!("mailwarden-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bundle.pem"), &issued.bundle_pem).unwrap();
    for (name, leaf, purpose) in [
        ("server", &issued.server, "sslserver"),
        ("ehr", &issued.clients["ehr"], "sslclient"),
    ] {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, &leaf.cert_pem).unwrap();
        let output = Command::new("openssl")
            .args(["verify", "-purpose", purpose, "-CAfile"])
            .arg(dir.join("bundle.pem"))
            .arg(&path)
            .output()
            .expect("openssl must be installed (Debian package openssl)");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            format!("{}: OK", path.display())
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_ca_key_that_does_not_match_its_certificate_is_replaced_not_used() {
    let issued = first();
    let stranger = plan(&wanted(), at(T0), None, None, &BTreeMap::new()).unwrap();
    let mut broken = issued.clone();
    broken.ca.key_pem = stranger.ca.key_pem.clone();
    let next = again(&broken, &wanted(), T0 + DAY);
    assert_eq!(
        next.changes,
        [
            "replaced the tenant CA because its key does not match its certificate; leaves move to \
          the new CA once the bundle is published"
        ]
    );
    assert!(key_matches(&next.ca.cert_pem, &next.ca.key_pem));
    assert_eq!(
        next.ca.retired_pem, issued.ca.cert_pem,
        "the old CA stays trusted"
    );
}

#[test]
fn leaves_with_a_foreign_key_or_signature_are_reissued() {
    let issued = first();
    let stranger = plan(&wanted(), at(T0), None, None, &BTreeMap::new()).unwrap();

    let mut wrong_key = issued.clone();
    wrong_key.server.key_pem = stranger.server.key_pem.clone();
    let next = again(&wrong_key, &wanted(), T0 + DAY);
    assert_eq!(next.changes, ["issued the server certificate"]);
    assert!(key_matches(&next.server.cert_pem, &next.server.key_pem));

    // Same issuer name (same tenant and second), another CA's signature.
    let mut forged = issued.clone();
    forged
        .clients
        .insert("ehr".into(), stranger.clients["ehr"].clone());
    assert_eq!(
        parse_certs(&forged.clients["ehr"].cert_pem)[0].issuer,
        parse_certs(&issued.ca.cert_pem)[0].subject
    );
    let next = again(&forged, &wanted(), T0 + DAY);
    assert_eq!(next.changes, ["issued the client ehr certificate"]);
    assert!(signed_by(
        &next.clients["ehr"].cert_pem,
        &issued.ca.cert_pem
    ));

    let mut garbage = issued.clone();
    garbage.clients.get_mut("billing").unwrap().key_pem = "garbage".into();
    let next = again(&garbage, &wanted(), T0 + DAY);
    assert_eq!(next.changes, ["issued the client billing certificate"]);
}
