//! Bounces, reloads and the drain on SIGTERM, with the relay as a process and a real sink.

mod common;

use std::time::Duration;

use common::{DOMAIN, Fixture, message};

fn queued(line: &str) -> bool {
    line.starts_with("250 2.0.0 queued as ")
}

#[test]
fn a_permanently_refused_recipient_is_bounced_to_the_sender_with_a_signed_dsn() {
    let mut fixture = Fixture::new("bounce", "");
    fixture.start_relay();
    let sender = format!("billing@{DOMAIN}");
    let replies = fixture.submit_python(
        false,
        Some("client"),
        &sender,
        "nobody@dest.test,ok@dest.test",
        &message("b1"),
    );
    assert!(queued(replies.last().unwrap()), "{replies:?}");

    let delivered = fixture.wait_for_delivered(2);
    assert_eq!(delivered.len(), 2, "the message to ok@ and the DSN");
    let (original, _) = delivered
        .iter()
        .find(|(env, _)| env["to"][0] == "ok@dest.test")
        .unwrap();
    assert_eq!(original["from"], sender);
    let (dsn_envelope, dsn) = delivered
        .iter()
        .find(|(env, _)| env["to"][0] == sender)
        .unwrap();
    assert_eq!(
        dsn_envelope["from"], "<>",
        "a DSN has the null sender (aiosmtpd writes it as <>)"
    );
    let text = String::from_utf8_lossy(dsn);
    assert!(
        text.contains(&format!(
            "From: Mail Delivery System <mailer-daemon@{DOMAIN}>\r\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "Final-Recipient: rfc822; nobody@dest.test\r\nAction: failed\r\nStatus: 5.0.0\r\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"),
        "{text}"
    );
    assert!(
        !text.contains("Your statement is ready"),
        "a DSN carries headers only"
    );
    let (ok, lines) = fixture.dkim_verify(dsn);
    assert!(ok, "{lines:?}");
    assert_eq!(fixture.wait_for_empty_spool(), 0);
    let bounced = fixture
        .audit_lines()
        .into_iter()
        .find(|l| l["event"] == "message-bounced")
        .unwrap();
    assert_eq!(bounced["recipients"], 1);
}

#[test]
fn a_temporarily_refused_recipient_stays_spooled_and_is_retried() {
    let mut fixture = Fixture::new("retry", "");
    fixture.start_relay();
    let replies = fixture.submit_python(
        false,
        Some("client"),
        &format!("a@{DOMAIN}"),
        "later@dest.test",
        &message("r1"),
    );
    assert!(queued(replies.last().unwrap()), "{replies:?}");
    // initial-retry-seconds = 1, max-retry-seconds = 2: several attempts within a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let attempts = loop {
        let attempts = fixture
            .audit_lines()
            .into_iter()
            .filter(|l| l["event"] == "delivery-attempt" && l["result"] == "partial")
            .count();
        if attempts >= 3 || std::time::Instant::now() > deadline {
            break attempts;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(attempts >= 3, "only {attempts} attempts");
    assert!(fixture.delivered().is_empty());
    let spooled = std::fs::read_dir(fixture.dir.join("spool/queue"))
        .unwrap()
        .count();
    assert_eq!(
        spooled, 2,
        "the message and its delivery state stay in the spool"
    );
}

#[test]
fn a_new_server_certificate_is_served_without_dropping_open_sessions() {
    let mut fixture = Fixture::new("reload", "");
    fixture.start_relay();
    let before = server_cert_fingerprint(&fixture);

    // A session opened before the reload, finished after it.
    let script = format!(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile="{ca}")
ctx.load_cert_chain("{cert}", "{key}")
c = smtplib.SMTP_SSL("localhost", {port}, context=ctx, timeout=30)
c.ehlo("reload.test")
print("open", flush=True)
sys.stdin.readline()
c.sendmail("a@{DOMAIN}", ["x@dest.test"], sys.argv[1].encode())
print("sent", flush=True)
"#,
        ca = fixture.path("ca.pem"),
        cert = fixture.path("client.pem"),
        key = fixture.path("client.key"),
        port = fixture.ports.submissions,
    );
    let mut client = std::process::Command::new(common::python())
        .args(["-c", &script, &message("reload")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "open");

    // Re-issue the server certificate from the same CA under a new key, as cert-manager would.
    let other = Fixture::new("reload-source", "");
    std::fs::copy(other.dir.join("sink.pem"), fixture.dir.join("new.pem")).unwrap();
    std::fs::copy(other.dir.join("sink.key"), fixture.dir.join("new.key")).unwrap();
    drop(other);
    std::fs::rename(fixture.dir.join("new.key"), fixture.dir.join("server.key")).unwrap();
    std::fs::rename(fixture.dir.join("new.pem"), fixture.dir.join("server.pem")).unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server_cert_fingerprint(&fixture) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(fixture.dir.join("relay.log")).unwrap();
    assert!(
        log.contains("reloaded configuration, certificates and DKIM keys"),
        "{log}"
    );

    std::io::Write::write_all(client.stdin.as_mut().unwrap(), b"go\n").unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(
        line.trim(),
        "sent",
        "the session opened before the reload still submits"
    );
    client.wait().unwrap();
    assert_eq!(fixture.wait_for_delivered(1).len(), 1);
}

fn server_cert_fingerprint(fixture: &Fixture) -> String {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{} -servername localhost </dev/null 2>/dev/null \
             | openssl x509 -noout -fingerprint -sha256",
            fixture.ports.submissions
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn sigterm_drains_an_idle_session_with_421_and_exits_cleanly() {
    let mut fixture = Fixture::new("drain", "");
    fixture.start_relay();
    let script = format!(
        r#"
import smtplib, ssl, sys, time
ctx = ssl.create_default_context(cafile="{ca}")
ctx.load_cert_chain("{cert}", "{key}")
c = smtplib.SMTP_SSL("localhost", {port}, context=ctx, timeout=30)
c.ehlo("drain.test")
print("open", flush=True)
try:
    c.sock.settimeout(30)
    print(c.sock.recv(1000).decode().strip(), flush=True)
except Exception as e:
    print("error", e, flush=True)
"#,
        ca = fixture.path("ca.pem"),
        cert = fixture.path("client.pem"),
        key = fixture.path("client.key"),
        port = fixture.ports.submissions,
    );
    let mut client = std::process::Command::new(common::python())
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "open");

    let status = fixture.terminate_relay();
    assert!(status.success(), "{status}");
    line.clear();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "421 4.3.2 shutting down, try again later");
    client.wait().unwrap();
}

#[test]
fn a_bad_configuration_is_refused_at_start_naming_the_field() {
    let fixture = Fixture::new("badconfig", "");
    let run = |config: &str| {
        std::fs::write(fixture.dir.join("bad.toml"), config).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_mailwarden-relay"))
            .args(["run", "--config", &fixture.path("bad.toml")])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_string()
    };
    let good = std::fs::read_to_string(fixture.dir.join("relay.toml")).unwrap();
    assert_eq!(
        run(&good.replace("max-recipients = 3", "max-recipients = 0")),
        "mailwarden-relay: invalid relay configuration: limits.max-recipients: must be above 0"
    );
    let credentials = fixture.path("credentials");
    std::fs::write(
        &credentials,
        "ehr:$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\n",
    )
    .unwrap();
    let with_auth = format!("{good}\n[smtp-auth]\ncredentials-file = \"{credentials}\"\n");
    assert_eq!(
        run(&with_auth),
        format!(
            "mailwarden-relay: SMTP AUTH credentials {credentials} line 1: only sha256 digests \
             are supported"
        )
    );
    let missing_key = good.replace("dkim-ed.pem", "missing.pem");
    let missing = fixture.path("missing.pem");
    assert!(
        run(&missing_key).starts_with(&format!(
            "mailwarden-relay: failed to read DKIM key of selector mw-ed-1 from {missing}: "
        )),
        "{}",
        run(&missing_key)
    );
}
