//! The relay against real SMTP peers on loopback: swaks and Python's smtplib submitting, an
//! aiosmtpd sink receiving, dkimpy verifying the signatures.

mod common;

use std::process::Command;

use common::{CLIENT, DOMAIN, ED_SELECTOR, Fixture, RSA_SELECTOR, message};

fn started(name: &str) -> Fixture {
    let mut fixture = Fixture::new(name, "");
    fixture.start_relay();
    fixture
}

fn queued(line: &str) -> bool {
    line.starts_with("250 2.0.0 queued as ")
}

#[test]
fn smtplib_with_a_client_certificate_is_delivered_with_both_signatures_valid() {
    let fixture = started("smtplib-ok");
    let replies = fixture.submit_python(
        false,
        Some("client"),
        &format!("billing@{DOMAIN}"),
        "patient@dest.test,clinic@other.test",
        &message("statement-1"),
    );
    assert_eq!(replies[0], "220 2.0.0 ready to start TLS");
    assert_eq!(replies[1], "250 2.1.0 sender ok");
    assert_eq!(replies[2], "250 2.1.5 recipient ok");
    assert_eq!(replies[3], "250 2.1.5 recipient ok");
    assert!(queued(&replies[4]), "{replies:?}");

    let delivered = fixture.wait_for_delivered(2);
    assert_eq!(delivered.len(), 2, "one transaction per recipient domain");
    let mut recipients: Vec<String> = delivered
        .iter()
        .map(|(env, _)| env["to"][0].as_str().unwrap().to_string())
        .collect();
    recipients.sort();
    assert_eq!(recipients, ["clinic@other.test", "patient@dest.test"]);
    for (envelope, body) in &delivered {
        assert_eq!(envelope["from"], format!("billing@{DOMAIN}"));
        assert_eq!(envelope["tls"], true);
        let (ok, lines) = fixture.dkim_verify(body);
        assert!(ok, "{lines:?}");
        assert_eq!(
            lines,
            [
                format!("{DOMAIN} {RSA_SELECTOR} rsa-sha256 pass"),
                format!("{DOMAIN} {ED_SELECTOR} ed25519-sha256 pass")
            ]
        );
        let text = String::from_utf8_lossy(body);
        assert!(
            text.contains("\r\n.leading dot\r\n"),
            "dot-stuffing must round-trip"
        );
        // Present headers are signed, and each name once more, so that nobody can add a
        // second one (or an absent one) and keep the signature.
        let unfolded = text.replace("\r\n\t", "");
        assert!(
            unfolded.contains(
                "h=Content-Type:MIME-Version:Message-ID:Date:Subject:To:From:From:Reply-To:\
                 Reply-To:Subject:Date:To:Cc:Cc:Message-ID:In-Reply-To:In-Reply-To:References:\
                 References:MIME-Version:Content-Type:Content-Transfer-Encoding:\
                 Content-Transfer-Encoding:List-Id:List-Id:List-Unsubscribe:List-Unsubscribe:\
                 List-Unsubscribe-Post:List-Unsubscribe-Post;"
            ),
            "{text}"
        );
        for added in [
            "Subject: URGENT wire transfer\r\n",
            "Reply-To: <ceo@bank.example>\r\n",
        ] {
            let at = text.find("From: ").unwrap();
            let tampered = format!("{}{added}{}", &text[..at], &text[at..]);
            let (ok, lines) = fixture.dkim_verify(tampered.as_bytes());
            assert!(!ok);
            assert_eq!(
                lines,
                [
                    format!("{DOMAIN} {RSA_SELECTOR} rsa-sha256 fail"),
                    format!("{DOMAIN} {ED_SELECTOR} ed25519-sha256 fail")
                ],
                "an added {added:?} must break both signatures"
            );
        }
    }

    let audit = fixture.audit_lines();
    let accepted = audit
        .iter()
        .find(|l| l["event"] == "message-accepted")
        .unwrap();
    assert_eq!(accepted["client"], CLIENT);
    assert_eq!(accepted["recipients"], 2);
    assert_eq!(
        accepted["recipient_domains"],
        serde_json::json!(["dest.test", "other.test"])
    );
    assert_eq!(
        accepted["selectors"],
        serde_json::json!([RSA_SELECTOR, ED_SELECTOR])
    );
    let success = audit.iter().find(|l| l["event"] == "auth-success").unwrap();
    assert_eq!(success["tls_version"], "TLSv1_3");
    let text = std::fs::read_to_string(fixture.dir.join("audit.jsonl")).unwrap();
    assert!(
        !text.contains("statement-1") && !text.contains("Your statement"),
        "no subject or body"
    );
}

#[test]
fn smtplib_over_implicit_tls_is_accepted() {
    let fixture = started("smtplib-465");
    let replies = fixture.submit_python(
        true,
        Some("client"),
        &format!("a@{DOMAIN}"),
        "x@dest.test",
        &message("m465"),
    );
    assert_eq!(replies[0], "250 2.1.0 sender ok");
    assert_eq!(replies[1], "250 2.1.5 recipient ok");
    assert!(queued(&replies[2]), "{replies:?}");
}

#[test]
fn smtplib_without_a_client_certificate_gets_530() {
    let fixture = started("smtplib-nocert");
    for implicit in [false, true] {
        let replies = fixture.submit_python(
            implicit,
            None,
            &format!("a@{DOMAIN}"),
            "x@dest.test",
            &message("n"),
        );
        assert_eq!(
            replies.last().unwrap(),
            "530 5.7.0 authentication required: present a client certificate"
        );
    }
    let failures = fixture
        .audit_lines()
        .iter()
        .filter(|l| l["event"] == "auth-failure")
        .count();
    assert_eq!(failures, 2);
}

#[test]
fn smtplib_with_a_certificate_from_another_ca_fails_the_handshake() {
    let fixture = started("smtplib-otherca");
    let replies = fixture.submit_python(
        true,
        Some("other-client"),
        &format!("a@{DOMAIN}"),
        "x@dest.test",
        &message("o"),
    );
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(replies[0].starts_with("tls-error "), "{replies:?}");
    assert!(replies[0].contains("TLSV1_ALERT_UNKNOWN_CA"), "{replies:?}");
    let audit = fixture.audit_lines();
    let failure = audit.iter().find(|l| l["event"] == "auth-failure").unwrap();
    assert!(
        failure["reason"]
            .as_str()
            .unwrap()
            .starts_with("tls handshake:"),
        "{failure}"
    );
}

#[test]
fn swaks_with_a_client_certificate_is_accepted() {
    let fixture = started("swaks-ok");
    let output = fixture.swaks(&[
        "--tls",
        "--tls-cert",
        &fixture.path("client.pem"),
        "--tls-key",
        &fixture.path("client.key"),
        "--from",
        &format!("billing@{DOMAIN}"),
        "--to",
        "patient@dest.test",
        "--h-From",
        &format!("<billing@{DOMAIN}>"),
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("<~  250 2.1.0 sender ok"), "{text}");
    assert!(text.contains("<~  250 2.0.0 queued as "), "{text}");
    assert!(output.status.success(), "{text}");
    let delivered = fixture.wait_for_delivered(1);
    let (ok, lines) = fixture.dkim_verify(&delivered[0].1);
    assert!(ok, "{lines:?}");
}

#[test]
fn swaks_without_a_client_certificate_gets_530() {
    let fixture = started("swaks-nocert");
    let output = fixture.swaks(&[
        "--tls",
        "--from",
        &format!("a@{DOMAIN}"),
        "--to",
        "x@dest.test",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("<~* 530 5.7.0 authentication required: present a client certificate"),
        "{text}"
    );
}

#[test]
fn the_audit_chain_verifies_and_a_tampered_line_is_named() {
    let mut fixture = started("audit");
    let replies = fixture.submit_python(
        false,
        Some("client"),
        &format!("a@{DOMAIN}"),
        "x@dest.test",
        &message("a1"),
    );
    assert!(queued(replies.last().unwrap()), "{replies:?}");
    fixture.wait_for_delivered(1);
    fixture.wait_for_empty_spool();
    fixture.terminate_relay();

    let verify = |path: &str| {
        Command::new(env!("CARGO_BIN_EXE_mailwarden-relay"))
            .args(["audit", "verify", path])
            .output()
            .unwrap()
    };
    let path = fixture.path("audit.jsonl");
    let lines = fixture.audit_lines().len();
    assert!(lines >= 3, "auth, accept and delivery are audited");
    let output = verify(&path);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("audit log {path}: {lines} lines, chain intact\n")
    );

    let text = std::fs::read_to_string(&path).unwrap();
    let tampered = text.replacen("\"recipients\":1", "\"recipients\":0", 1);
    assert_ne!(tampered, text);
    std::fs::write(&path, &tampered).unwrap();
    let line = tampered
        .lines()
        .position(|l| l.contains("\"recipients\":0"))
        .unwrap()
        + 1;
    let output = verify(&path);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("audit log {path} line {line}: hash does not match the line's content\n")
    );
}

#[test]
fn health_readiness_and_metrics_are_served() {
    let fixture = started("admin");
    assert_eq!(
        common::http_get(fixture.ports.admin, "/healthz").as_deref(),
        Some("ok\n")
    );
    assert_eq!(
        common::http_get(fixture.ports.admin, "/readyz").as_deref(),
        Some("ready\n")
    );
    let replies = fixture.submit_python(
        false,
        Some("client"),
        &format!("a@{DOMAIN}"),
        "x@dest.test",
        &message("m"),
    );
    assert!(queued(replies.last().unwrap()));
    let metrics = common::http_get(fixture.ports.admin, "/metrics").unwrap();
    assert!(metrics.contains("# TYPE mailwarden_relay_messages_accepted_total counter\nmailwarden_relay_messages_accepted_total 1\n"), "{metrics}");
}
