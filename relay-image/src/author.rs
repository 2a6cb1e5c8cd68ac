//! The author of a message: the one address of its one `From` header (RFC 5322 section 3.6.2).
//!
//! DKIM vouches for the `From` domain that a receiver shows, so the relay must know that domain
//! beyond doubt before it signs. Parsers disagree on ambiguous headers (two `From` fields, two
//! mailboxes, an address in the display name, comments), so rather than pick one reading the
//! relay refuses every form in which two honest parsers could see different authors.

/// Why a message's author could not be determined.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthorError {
    NoFrom,
    SeveralFrom,
    Ambiguous,
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
        }
    }
}

/// The lower-cased domain of the message's author.
pub fn author_domain(message: &[u8]) -> Result<String, AuthorError> {
    let headers = &message[..header_end(message)];
    let mut values = from_values(headers);
    let value = values.next().ok_or(AuthorError::NoFrom)?;
    if values.next().is_some() {
        return Err(AuthorError::SeveralFrom);
    }
    let address = single_address(&value)?;
    let (_, domain) = address.rsplit_once('@').ok_or(AuthorError::Ambiguous)?;
    Ok(domain.to_ascii_lowercase())
}

/// Length of the header section, up to and including the empty line (or all of it).
fn header_end(message: &[u8]) -> usize {
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 4)
}

/// The unfolded values of every `From` field.
fn from_values(headers: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for line in headers.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.first() {
            Some(b' ' | b'\t') => {
                if let Some(last) = fields.last_mut() {
                    last.extend_from_slice(line);
                }
            }
            Some(_) => fields.push(line.to_vec()),
            None => {}
        }
    }
    fields.into_iter().filter_map(|field| {
        let colon = field.iter().position(|&b| b == b':')?;
        let name = &field[..colon];
        // "From :" (space before the colon) is obsolete syntax some parsers still accept.
        let name = name.trim_ascii_end();
        name.eq_ignore_ascii_case(b"from")
            .then(|| field[colon + 1..].to_vec())
    })
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

/// A display name that cannot hide another address: no `<`, `>`, `@`, `,`, `;`, `(` or `)`
/// outside one quoted string.
fn display_name_is_plain(name: &str) -> Result<(), AuthorError> {
    let name = name.trim();
    let outside = match name.strip_prefix('"') {
        Some(quoted) => {
            let inner = quoted.strip_suffix('"').ok_or(AuthorError::Ambiguous)?;
            if inner.contains('"') || inner.contains('\\') {
                return Err(AuthorError::Ambiguous);
            }
            ""
        }
        None => name,
    };
    if outside.contains(['<', '>', '@', ',', ';', '(', ')', '"', ':']) {
        return Err(AuthorError::Ambiguous);
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
            "From: ceo@bank.example <billing@mail.st-olaf.test>",
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
