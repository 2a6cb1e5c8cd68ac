//! The author of a message: the one address of its one `From` header (RFC 5322 section 3.6.2).
//!
//! DKIM vouches for the `From` domain that a receiver shows, so the relay must know that domain
//! beyond doubt before it signs. Parsers disagree on ambiguous headers (two `From` fields, two
//! mailboxes, an address in the display name, comments), so rather than pick one reading the
//! relay refuses every form in which two honest parsers could see different authors, and every
//! display name that could pass for an address.

use mail_parser::MessageParser;

/// Why a message's author could not be determined.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthorError {
    NoFrom,
    SeveralFrom,
    Ambiguous,
    /// A display name that shows an address, or hides text direction or invisible characters.
    DeceptiveName,
    /// A line in the header section that is not a header field (nor a continuation of one).
    MalformedHeader,
}

impl AuthorError {
    /// The SMTP reply refusing the message.
    pub fn reply(&self) -> &'static str {
        match self {
            AuthorError::NoFrom => "550 5.6.0 message has no From header with an address",
            AuthorError::SeveralFrom => "550 5.6.0 message must have exactly one From header",
            AuthorError::Ambiguous => {
                "550 5.6.0 From header must hold exactly one address, as addr@domain or \
                 Name <addr@domain>"
            }
            AuthorError::DeceptiveName => {
                "550 5.6.0 From display name must not look like an address or hold invisible \
                 or direction characters"
            }
            AuthorError::MalformedHeader => {
                "550 5.6.0 header section has a line that is not a header field"
            }
        }
    }
}

/// The lower-cased domain of the message's author.
pub fn author_domain(message: &[u8]) -> Result<String, AuthorError> {
    let headers = &message[..header_end(message)];
    let fields = fields(headers)?;
    let mut froms = fields
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"from"));
    let (_, value) = froms.next().ok_or(AuthorError::NoFrom)?;
    if froms.next().is_some() {
        return Err(AuthorError::SeveralFrom);
    }
    let address = single_address(value)?;
    let (_, domain) = address.rsplit_once('@').ok_or(AuthorError::Ambiguous)?;
    let domain = domain.to_ascii_lowercase();

    // A second, independent parser must read the same author, and the display name it decodes
    // (RFC 2047 encoded words included) must not pass for an address.
    let parsed = MessageParser::new()
        .parse_headers(message)
        .ok_or(AuthorError::Ambiguous)?;
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .ok_or(AuthorError::Ambiguous)?;
    let theirs = from
        .address()
        .and_then(|a| a.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase());
    if theirs.as_deref() != Some(domain.as_str()) {
        return Err(AuthorError::Ambiguous);
    }
    if from.name().is_some_and(deceptive) {
        return Err(AuthorError::DeceptiveName);
    }
    Ok(domain)
}

/// Whether a decoded display name could make a reader see another author: it holds an `@`
/// (or a look-alike), angle brackets, or characters that are invisible or turn text around.
fn deceptive(name: &str) -> bool {
    name.chars().any(|c| {
        matches!(
            c,
            '@' | '<' | '>' | '\u{FF20}' | '\u{FE6B}' | '\u{FF1C}' | '\u{FF1E}'
                | '\u{00AD}' | '\u{061C}' | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        ) || c.is_control()
    })
}

/// Length of the header section, up to and including the empty line (or all of it).
fn header_end(message: &[u8]) -> usize {
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 4)
}

/// A header field: its name and its unfolded value.
type Field = (Vec<u8>, Vec<u8>);

/// Every header field as (name, unfolded value). Each line must be a field (`name:` with a name
/// of printable ASCII and no space, though obsolete syntax allows spaces before the colon) or
/// the continuation of one; anything else would be read differently by different receivers.
fn fields(headers: &[u8]) -> Result<Vec<Field>, AuthorError> {
    let mut fields: Vec<Field> = Vec::new();
    for line in headers.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.first() {
            None => {}
            Some(b' ' | b'\t') => match fields.last_mut() {
                Some((_, value)) => value.extend_from_slice(line),
                None => return Err(AuthorError::MalformedHeader),
            },
            Some(_) => {
                let colon = line
                    .iter()
                    .position(|&b| b == b':')
                    .ok_or(AuthorError::MalformedHeader)?;
                let name = line[..colon].trim_ascii_end();
                if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
                    return Err(AuthorError::MalformedHeader);
                }
                if !line[name.len()..colon].iter().all(|&b| b == b' ') {
                    return Err(AuthorError::MalformedHeader);
                }
                fields.push((name.to_vec(), line[colon + 1..].to_vec()));
            }
        }
    }
    Ok(fields)
}

/// The one address of a `From` value, accepting only `addr-spec` and
/// `display-name <addr-spec>`, where the display name is plain words, or a quoted string.
fn single_address(value: &[u8]) -> Result<String, AuthorError> {
    let value = std::str::from_utf8(value).map_err(|_| AuthorError::Ambiguous)?;
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(AuthorError::Ambiguous);
    }
    let value = value.trim();
    let address = match value.rfind('<') {
        None => value,
        Some(open) => {
            let rest = value[open + 1..]
                .strip_suffix('>')
                .ok_or(AuthorError::Ambiguous)?;
            display_name_is_plain(&value[..open])?;
            rest
        }
    };
    plain_addr_spec(address)?;
    Ok(address.to_string())
}

/// A display name that cannot hide another address: plain words, or one quoted string; no
/// `<`, `>` or `@` even inside the quotes, and no `,`, `;`, `(`, `)` or `:` outside them.
fn display_name_is_plain(name: &str) -> Result<(), AuthorError> {
    let name = name.trim();
    let outside = match name.strip_prefix('"') {
        Some(quoted) => {
            let inner = quoted.strip_suffix('"').ok_or(AuthorError::Ambiguous)?;
            if inner.contains(['"', '\\']) {
                return Err(AuthorError::Ambiguous);
            }
            if inner.contains(['<', '>', '@']) {
                return Err(AuthorError::DeceptiveName);
            }
            ""
        }
        None => name,
    };
    if outside.contains([',', ';', '(', ')', '"', ':', '<', '>']) {
        return Err(AuthorError::Ambiguous);
    }
    if outside.contains('@') {
        return Err(AuthorError::DeceptiveName);
    }
    Ok(())
}

/// `local@domain` with a dot-atom local part and a DNS domain: nothing a parser could split.
fn plain_addr_spec(address: &str) -> Result<(), AuthorError> {
    let (local, domain) = address.split_once('@').ok_or(AuthorError::Ambiguous)?;
    let atom = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    let domain_char = |c: char| c.is_alphanumeric() || c == '-' || c == '.';
    let dots_ok =
        |s: &str| !s.is_empty() && !s.starts_with('.') && !s.ends_with('.') && !s.contains("..");
    if !dots_ok(local)
        || !local.chars().all(atom)
        || !dots_ok(domain)
        || !domain.chars().all(domain_char)
    {
        return Err(AuthorError::Ambiguous);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author(headers: &str) -> Result<String, AuthorError> {
        author_domain(format!("{headers}\r\n\r\nbody\r\nFrom: <x@body.example>\r\n").as_bytes())
    }

    #[test]
    fn plain_forms_give_the_domain() {
        for from in [
            "From: billing@Mail.St-Olaf.test",
            "From: <billing@mail.st-olaf.test>",
            "From: St Olaf Billing <billing@mail.st-olaf.test>",
            "From: \"Billing, St Olaf\" <billing@mail.st-olaf.test>",
            "From: =?utf-8?q?St_Olaf?= <billing@mail.st-olaf.test>",
            "FROM:billing@mail.st-olaf.test",
            "From: St Olaf\r\n Billing <billing@mail.st-olaf.test>",
        ] {
            assert_eq!(
                author(&format!("Subject: x\r\n{from}\r\nTo: <p@dest.test>")),
                Ok("mail.st-olaf.test".into()),
                "{from}"
            );
        }
    }

    #[test]
    fn ambiguous_authors_are_refused() {
        for from in [
            "From: <billing@mail.st-olaf.test>, CEO <ceo@bank.example>",
            "From: <ceo@bank.example> <billing@mail.st-olaf.test>",
            "From: ceo@bank.example\0<billing@mail.st-olaf.test>",
            "From: \"CEO\" ceo@bank.example <billing@mail.st-olaf.test>",
            "From: billing@mail.st-olaf.test (ceo@bank.example)",
            "From: Group: <billing@mail.st-olaf.test>;",
            "From: \"a\\\"b\" <billing@mail.st-olaf.test>",
            "From: <billing@mail.st-olaf.test",
            "From: billing@@mail.st-olaf.test",
            "From: <\"ceo@bank.example\"@mail.st-olaf.test>",
        ] {
            assert_eq!(author(from), Err(AuthorError::Ambiguous), "{from}");
        }
    }

    #[test]
    fn display_names_that_pass_for_addresses_are_refused() {
        for from in [
            "From: \"ceo@bank.example\" <billing@mail.st-olaf.test>",
            "From: ceo@bank.example <billing@mail.st-olaf.test>",
            "From: =?utf-8?b?Y2VvQGJhbmsuZXhhbXBsZQ==?= <billing@mail.st-olaf.test>",
            "From: =?utf-8?q?CEO_=3Cceo=40bank.example=3E?= <billing@mail.st-olaf.test>",
            "From: ceo\u{FF20}bank.example <billing@mail.st-olaf.test>",
            "From: \"\u{202E}elpmaxe.knab@oec\" <billing@mail.st-olaf.test>",
            "From: Billing\u{200B} <billing@mail.st-olaf.test>",
        ] {
            assert_eq!(author(from), Err(AuthorError::DeceptiveName), "{from}");
        }
        assert_eq!(
            author("From: =?utf-8?q?Sj=C3=BAkrah=C3=BAs?= <billing@mail.st-olaf.test>"),
            Ok("mail.st-olaf.test".into())
        );
    }

    #[test]
    fn lines_that_are_not_header_fields_are_refused() {
        for headers in [
            " From: ceo@bank.example\r\nFrom: <billing@mail.st-olaf.test>",
            "X-Junk\r\nFrom: <billing@mail.st-olaf.test>",
            "From\t: <billing@mail.st-olaf.test>",
            "From\0: x\r\nFrom: <billing@mail.st-olaf.test>",
            "Fr\u{f6}m: x\r\nFrom: <billing@mail.st-olaf.test>",
            ": x\r\nFrom: <billing@mail.st-olaf.test>",
        ] {
            assert_eq!(
                author(headers),
                Err(AuthorError::MalformedHeader),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn exactly_one_from_field_is_required() {
        assert_eq!(
            author("From: CEO <ceo@bank.example>\r\nFrom: <billing@mail.st-olaf.test>"),
            Err(AuthorError::SeveralFrom)
        );
        assert_eq!(
            author("From : <ceo@bank.example>\r\nFrom: <billing@mail.st-olaf.test>"),
            Err(AuthorError::SeveralFrom)
        );
        assert_eq!(author("Subject: no author"), Err(AuthorError::NoFrom));
        assert_eq!(
            AuthorError::NoFrom.reply(),
            "550 5.6.0 message has no From header with an address"
        );
    }
}
