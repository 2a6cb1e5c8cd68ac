//! SMTP AUTH as a second factor after the client certificate, against real peers on loopback:
//! smtplib logging in, and a raw dialogue for the replies a library would hide.

mod common;

use common::{CLIENT, DOMAIN, Fixture, message};

const PASSWORD: &str = "correct horse battery staple";
const OTHER_CLIENT: &str = "portal.st-olaf.test";
const OTHER_PASSWORD: &str = "another client's password";

fn started(name: &str) -> Fixture {
    let mut fixture = Fixture::new(name, "");
    fixture.require_smtp_auth(&[(CLIENT, PASSWORD), (OTHER_CLIENT, OTHER_PASSWORD)]);
    fixture.start_relay();
    fixture
}

fn plain(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

#[test]
fn smtplib_with_certificate_and_password_is_delivered() {
    let fixture = started("auth-ok");
    let replies = fixture.submit_python_as(
        Some((CLIENT, PASSWORD)),
        false,
        Some("client"),
        &format!("billing@{DOMAIN}"),
        "patient@dest.test",
        &message("auth-1"),
    );
    assert_eq!(replies[0], "220 2.0.0 ready to start TLS");
    assert_eq!(replies[1], "235 2.7.0 authentication successful");
    assert_eq!(replies[2], "250 2.1.0 sender ok");
    assert_eq!(replies[3], "250 2.1.5 recipient ok");
    assert!(
        replies[4].starts_with("250 2.0.0 queued as "),
        "{replies:?}"
    );
    assert_eq!(fixture.wait_for_delivered(1).len(), 1);

    let audit = fixture.audit_lines();
    let success = audit
        .iter()
        .find(|l| l["event"] == "smtp-auth-success")
        .unwrap();
    assert_eq!(success["client"], CLIENT);
    let text: String = audit.iter().map(|l| l.to_string()).collect();
    assert!(
        !text.contains(PASSWORD),
        "the audit log must never hold a password"
    );
}

#[test]
fn a_certificate_alone_is_not_enough_when_auth_is_required() {
    let fixture = started("auth-required");
    let replies = fixture.submit_python(
        true,
        Some("client"),
        &format!("billing@{DOMAIN}"),
        "patient@dest.test",
        &message("auth-2"),
    );
    assert_eq!(
        replies,
        ["530 5.7.0 authentication required: AUTH PLAIN first"]
    );
}

#[test]
fn a_password_without_a_certificate_is_refused() {
    let fixture = started("auth-nocert");
    let replies = fixture.submit_python_as(
        Some((CLIENT, PASSWORD)),
        false,
        None,
        &format!("billing@{DOMAIN}"),
        "patient@dest.test",
        &message("auth-3"),
    );
    assert_eq!(replies[0], "220 2.0.0 ready to start TLS");
    assert_eq!(
        replies[1],
        "530 5.7.0 authentication required: present a client certificate"
    );
}

#[test]
fn the_dialogue_gives_exact_replies_and_binds_the_password_to_the_certificate() {
    let fixture = started("auth-dialogue");
    let right = plain(CLIENT, PASSWORD);
    let replies = fixture.dialogue(&[
        "AUTH PLAIN",
        "EHLO auth.test",
        &format!("MAIL FROM:<billing@{DOMAIN}>"),
        "AUTH LOGIN",
        &format!("AUTH PLAIN {}", plain(CLIENT, "wrong")),
        // Another client's own, correct password does not go with this certificate.
        &format!("AUTH PLAIN {}", plain(OTHER_CLIENT, OTHER_PASSWORD)),
        // Name and password swapped: the password must not reach the audit log.
        &format!("AUTH PLAIN {}", plain(PASSWORD, CLIENT)),
        "AUTH PLAIN",
        "*",
        "AUTH PLAIN",
        &right,
        &format!("AUTH PLAIN {right}"),
        &format!("MAIL FROM:<billing@{DOMAIN}>"),
        "QUIT",
    ]);
    assert_eq!(
        replies,
        [
            "220 relay.st-olaf.test ESMTP mailwarden",
            "503 5.5.1 EHLO first",
            "250-relay.st-olaf.test",
            "250-PIPELINING",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-REQUIRETLS",
            "250-ENHANCEDSTATUSCODES",
            "250-AUTH PLAIN",
            "250 SIZE 200000",
            "530 5.7.0 authentication required: AUTH PLAIN first",
            "504 5.5.4 unsupported mechanism, use PLAIN",
            "535 5.7.8 authentication credentials invalid",
            "535 5.7.8 authentication credentials invalid",
            "535 5.7.8 authentication credentials invalid",
            "334 ",
            "501 5.7.0 authentication cancelled",
            "334 ",
            "235 2.7.0 authentication successful",
            "503 5.5.1 already authenticated",
            "250 2.1.0 sender ok",
            "221 2.0.0 bye",
        ]
    );

    let failures: Vec<String> = fixture
        .audit_lines()
        .iter()
        .filter(|l| l["event"] == "auth-failure")
        .map(|l| l["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        failures,
        [
            format!(
                "smtp auth: invalid credentials for \"{CLIENT}\" with certificate \"{CLIENT}\""
            ),
            format!(
                "smtp auth: invalid credentials for \"{OTHER_CLIENT}\" with certificate \"{CLIENT}\""
            ),
            format!("smtp auth: unknown username with certificate \"{CLIENT}\""),
        ]
    );
    let text = std::fs::read_to_string(fixture.dir.join("audit.jsonl")).unwrap();
    assert!(!text.contains(PASSWORD), "no password in the audit log");
}

#[test]
fn repeated_wrong_passwords_block_the_peer() {
    let fixture = started("auth-block");
    let wrong = format!("AUTH PLAIN {}", plain(CLIENT, "guess"));
    // The fixture blocks after five failures in a minute.
    let replies = fixture.dialogue(&["EHLO block.test", &wrong, &wrong, &wrong, &wrong, &wrong]);
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.starts_with("535 5.7.8"))
            .count(),
        5,
        "{replies:?}"
    );
    fixture.assert_peer_blocked();
    assert!(
        fixture
            .audit_lines()
            .iter()
            .any(|l| l["event"] == "peer-blocked")
    );
}
