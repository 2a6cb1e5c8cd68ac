//! Delivery status notifications (RFC 3464) for recipients that failed for good or expired.

/// Builds the DSN message. It carries the original headers only, never the body.
pub fn build(
    hostname: &str,
    id: &str,
    sender: &str,
    sender_domain: &str,
    failures: &[(String, String)],
    original: &[u8],
) -> Vec<u8> {
    let boundary = format!("{id}/{hostname}");
    let date = chrono::Utc::now().to_rfc2822();
    let mut text = String::new();
    text.push_str(&format!(
        "From: Mail Delivery System <mailer-daemon@{sender_domain}>\r\n"
    ));
    text.push_str(&format!("To: <{sender}>\r\n"));
    text.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    text.push_str(&format!("Date: {date}\r\n"));
    text.push_str(&format!("Message-ID: <{id}.dsn@{hostname}>\r\n"));
    text.push_str("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
    text.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\r\n"
    ));
    text.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ));
    text.push_str(&format!(
        "The relay {hostname} could not deliver message {id} to:\r\n\r\n"
    ));
    for (recipient, reason) in failures {
        text.push_str(&format!("  <{recipient}>: {}\r\n", one_line(reason)));
    }
    text.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
    ));
    text.push_str(&format!(
        "Reporting-MTA: dns; {hostname}\r\nX-Mailwarden-Queue-ID: {id}\r\n"
    ));
    for (recipient, reason) in failures {
        let status = if reason.starts_with('5') {
            "5.0.0"
        } else {
            "4.4.7"
        };
        text.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n\
             Diagnostic-Code: smtp; {}\r\n",
            one_line(reason)
        ));
    }
    text.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ));
    let mut message = text.into_bytes();
    message.extend_from_slice(headers_only(original));
    message.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    message
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The header section of a message, up to and including the blank line.
fn headers_only(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsn_lists_each_recipient_and_never_the_body() {
        let original = b"From: a@mail.example\r\nSubject: secret diagnosis\r\n\r\nbody text\r\n";
        let failures = vec![(
            "x@dest.example".to_string(),
            "550 5.1.1 no such user".to_string(),
        )];
        let dsn = build(
            "relay.example",
            "m1",
            "a@mail.example",
            "mail.example",
            &failures,
            original,
        );
        let text = String::from_utf8(dsn).unwrap();
        assert!(text.starts_with(
            "From: Mail Delivery System <mailer-daemon@mail.example>\r\nTo: <a@mail.example>\r\n"
        ));
        assert!(text.contains("\r\nFinal-Recipient: rfc822; x@dest.example\r\nAction: failed\r\nStatus: 5.0.0\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n"));
        assert!(text.contains("Subject: secret diagnosis\r\n"));
        assert!(!text.contains("body text"));
    }
}
