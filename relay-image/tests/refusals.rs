//! What the relay refuses, with the exact reply, to real peers on loopback: plaintext, forged
//! senders, smuggling, limits, and peers that keep failing to authenticate.

mod common;

use common::{DOMAIN, Fixture, message};

fn started(name: &str) -> Fixture {
    let mut fixture = Fixture::new(name, "");
    fixture.start_relay();
    fixture
}

#[test]
fn swaks_in_plaintext_gets_530_must_starttls() {
    let fixture = started("swaks-plain");
    let output = fixture.swaks(&["--from", &format!("a@{DOMAIN}"), "--to", "x@dest.test"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("<-  250 STARTTLS"), "{text}");
    assert!(
        text.contains("<** 530 5.7.0 must issue a STARTTLS command first"),
        "{text}"
    );
}

#[test]
fn swaks_with_a_forged_sender_gets_553() {
    let fixture = started("swaks-forged");
    let output =
        fixture.swaks_with_certificate(&["--from", "ceo@bank.example", "--to", "x@dest.test"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("<~* 553 5.7.1 sender domain is not a sending domain of this relay"),
        "{text}"
    );

    let sender = format!("a@{DOMAIN}");
    let output = fixture.swaks_with_certificate(&[
        "--from",
        &sender,
        "--to",
        "x@dest.test",
        "--h-From",
        "<ceo@bank.example>",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("<~* 553 5.7.1 From header domain is not a sending domain of this relay"),
        "{text}"
    );

    let output = fixture.swaks_with_certificate(&[
        "--from",
        "a@pending.st-olaf.test",
        "--to",
        "x@dest.test",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("<~* 451 4.7.1 sending domain has no active DKIM selector yet"),
        "{text}"
    );
    assert!(fixture.delivered().is_empty());
}

#[test]
fn smuggled_end_of_data_sequences_stay_inside_one_message() {
    let fixture = started("smuggle");
    let script = format!(
        r#"
s = connect()
s.sendall(b"EHLO smuggler.test\r\nMAIL FROM:<a@{DOMAIN}>\r\nRCPT TO:<x@dest.test>\r\nDATA\r\n")
s.sendall(b"From: <a@{DOMAIN}>\r\n\r\nhello\n.\nMAIL FROM:<a@{DOMAIN}>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\nsmuggled\r.\rmore\r\n.\r\nQUIT\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
"#
    );
    let output = fixture.python_over_tls(&script, true, &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.matches("250 2.0.0 queued as").count(), 1, "{text}");
    assert!(text.ends_with("221 2.0.0 bye\r\n"), "{text}");
    let delivered = fixture.wait_for_delivered(1);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let delivered_after = fixture.delivered();
    assert_eq!(delivered_after.len(), 1);
    assert_eq!(delivered[0].0["to"], serde_json::json!(["x@dest.test"]));
    let body = String::from_utf8_lossy(&delivered[0].1);
    assert!(body.contains("hello\r\n.\r\nMAIL FROM:"), "{body}");
}

#[test]
fn repeated_auth_failures_block_the_peer_and_are_audited() {
    let mut fixture = Fixture::new("block", "");
    let config = std::fs::read_to_string(fixture.dir.join("relay.toml")).unwrap();
    std::fs::write(
        fixture.dir.join("relay.toml"),
        config.replace("max-failures = 5", "max-failures = 2"),
    )
    .unwrap();
    fixture.start_relay();
    for _ in 0..2 {
        let replies = fixture.submit_python(
            false,
            None,
            &format!("a@{DOMAIN}"),
            "x@dest.test",
            &message("b"),
        );
        assert_eq!(
            replies.last().unwrap(),
            "530 5.7.0 authentication required: present a client certificate"
        );
    }
    fixture.assert_peer_blocked();
    let audit = fixture.audit_lines();
    let blocked = audit.iter().find(|l| l["event"] == "peer-blocked").unwrap();
    assert_eq!(blocked["peer"], "127.0.0.1");
}

#[test]
fn limits_give_exact_replies() {
    let fixture = started("limits");
    let output = fixture.swaks_with_certificate(&[
        "--from",
        &format!("a@{DOMAIN}"),
        "--to",
        "a@d.test,b@d.test,c@d.test,d@d.test",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("<~* 452 4.5.3 too many recipients, at most 3 per message"),
        "{text}"
    );

    let big = fixture.dir.join("big-body.txt");
    std::fs::write(&big, ("x".repeat(998) + "\r\n").repeat(250)).unwrap();
    let big = big.display().to_string();
    let output = fixture.swaks_with_certificate(&[
        "--from",
        &format!("a@{DOMAIN}"),
        "--to",
        "a@d.test",
        "--h-From",
        &format!("<a@{DOMAIN}>"),
        "--body",
        &big,
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("<~* 552 5.3.4 message exceeds the maximum of 200000 bytes"),
        "{text}"
    );
}

#[test]
fn ambiguous_authors_are_refused_before_signing() {
    let fixture = started("ambiguous-from");
    let sender = format!("billing@{DOMAIN}");
    let refused = [
        (
            format!("From: CEO <ceo@bank.example>\r\nFrom: <{sender}>\r\n"),
            "550 5.6.0 message must have exactly one From header",
        ),
        (
            format!("From: <{sender}>, CEO <ceo@bank.example>\r\n"),
            "550 5.6.0 From header must hold exactly one address, as addr@domain or Name <addr@domain>",
        ),
        (
            format!("From: \"ceo@bank.example\" <{sender}>\r\n"),
            "550 5.6.0 From display name must not look like an address or hold invisible or direction characters",
        ),
        (
            format!(" From: ceo@bank.example\r\nFrom: <{sender}>\r\n"),
            "550 5.6.0 header section has a line that is not a header field",
        ),
        (
            format!("From: <ceo@bank.example> <{sender}>\r\n"),
            "550 5.6.0 From header must hold exactly one address, as addr@domain or Name <addr@domain>",
        ),
    ];
    for (from, reply) in refused {
        let message = format!("{from}To: <p@dest.test>\r\nSubject: spoof\r\n\r\nhello\r\n");
        let replies = fixture.submit_python(true, Some("client"), &sender, "p@dest.test", &message);
        assert_eq!(replies.last().unwrap(), reply, "{from}");
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(fixture.delivered().is_empty(), "nothing was signed or sent");
}

#[test]
fn a_stalled_tls_handshake_loses_its_connection() {
    use std::io::Read;
    let fixture = started("stalled-handshake");
    let mut socket =
        std::net::TcpStream::connect(("127.0.0.1", fixture.ports.submissions)).unwrap();
    // Generous: the relay gives up after its handshake timeout, well before this.
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    let mut buf = [0u8; 16];
    let read = loop {
        match socket.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other.unwrap(),
        }
    };
    assert_eq!(read, 0, "the relay closes the connection");
}

#[test]
fn data_waits_for_room_in_the_receive_budget() {
    let mut fixture = Fixture::new("budget", "");
    // Room for exactly one message of the maximum size.
    let config = std::fs::read_to_string(fixture.dir.join("relay.toml")).unwrap();
    std::fs::write(
        fixture.dir.join("relay.toml"),
        config.replace("[limits]\n", "[limits]\nmax-buffered-bytes = 200000\n"),
    )
    .unwrap();
    fixture.start_relay();
    let script = format!(
        r#"
def session():
    s = connect()
    f = s.makefile("rb")
    def reply():
        while True:
            line = f.readline().decode().rstrip("\r\n")
            if len(line) < 4 or line[3] != "-":
                return line
    reply()
    return s, reply
def begin(s, reply, size):
    for line in ["EHLO budget.test", "MAIL FROM:<a@{DOMAIN}>" + size, "RCPT TO:<x@dest.test>"]:
        s.sendall(line.encode() + b"\r\n")
        reply()
    s.sendall(b"DATA\r\n")
a, a_reply = session()
begin(a, a_reply, "")
print("a", a_reply())
b, b_reply = session()
begin(b, b_reply, " SIZE=1000")
# While the first message holds the whole budget, the second one waits for its 354.
print("b waits", not select.select([b], [], [], 1.5)[0] and b.pending() == 0)
a.sendall(b"From: <a@{DOMAIN}>\r\n\r\nfirst\r\n.\r\n")
print("a", a_reply()[:19])
print("b", b_reply())
"#
    );
    let output = fixture.python_over_tls(&script, true, &[]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "a 354 end data with <CR><LF>.<CR><LF>\nb waits True\na 250 2.0.0 queued as\n\
         b 354 end data with <CR><LF>.<CR><LF>\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn bad_greetings_are_refused() {
    let fixture = started("greeting");
    let replies = fixture.dialogue(&[
        "EHLO a\u{1b}[31m",
        "EHLO [garbage",
        "HELO [192.0.2.300]",
        "EHLO [IPv6:2001:db8::1]",
        "QUIT",
    ]);
    assert_eq!(replies[0], "220 relay.st-olaf.test ESMTP mailwarden");
    assert_eq!(
        replies[1..4],
        [
            "501 5.5.4 EHLO needs a domain name or an address literal",
            "501 5.5.4 EHLO needs a domain name or an address literal",
            "501 5.5.4 HELO needs a domain name or an address literal",
        ]
    );
    assert_eq!(replies[4], "250-relay.st-olaf.test");
    assert_eq!(replies.last().unwrap(), "221 2.0.0 bye");
}

#[test]
fn the_tail_of_an_overlong_line_is_never_run_as_a_command() {
    let fixture = started("overlong");
    // The line arrives in two reads, so the parser gives up on it in the middle.
    let script = r#"
s = connect()
f = s.makefile("rb")
f.readline()
s.sendall(b"NOOP " + b"A" * 95)
time.sleep(1.5)
s.sendall(b"A" * 8000 + b"HELO injected.example\r\nNOOP\r\nQUIT\r\n")
print(f.read().decode(), end="")
"#;
    let output = fixture.python_over_tls(script, true, &[]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "500 5.5.6 line too long\r\n250 2.0.0 ok\r\n221 2.0.0 bye\r\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_session_without_a_certificate_cannot_hold_its_slot() {
    let fixture = started("no-cert-linger");
    let script = r#"
s = connect()
s.settimeout(120)
f = s.makefile("rb")
f.readline()
started = time.time()
# NOOP keeps an idle timeout at bay, but not the relay's limit on sessions without a certificate.
while time.time() - started < 110:
    try:
        s.sendall(b"NOOP\r\n")
        if not f.readline():
            break
    except (ConnectionError, ssl.SSLError):
        break
    time.sleep(1)
print("closed" if time.time() - started < 110 else "still open")
"#;
    let output = fixture.python_over_tls(script, false, &[]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "closed",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
