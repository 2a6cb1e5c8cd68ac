//! One DNS record as the operator wants it, and the character-string form of TXT values.
//!
//! A TXT record holds one or more character-strings of at most 255 bytes each; receivers
//! concatenate them without separator (RFC 6376 section 3.6.2.2, RFC 7208 section 3.3). Values
//! are kept whole everywhere in the operator and split only at the wire or zone-file edge.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The longest character-string a TXT record can hold.
pub const MAX_CHARACTER_STRING: usize = 255;

/// Record types the operator publishes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum RecordType {
    A,
    #[allow(clippy::upper_case_acronyms)]
    AAAA,
    #[allow(clippy::upper_case_acronyms)]
    TXT,
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordType::A => "A",
            RecordType::AAAA => "AAAA",
            RecordType::TXT => "TXT",
        })
    }
}

/// A record: a lower-case fully qualified name without trailing dot, a type, and the value
/// (an address, or the whole unsplit TXT value).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DnsRecord {
    pub name: String,
    pub record_type: RecordType,
    pub value: String,
}

impl DnsRecord {
    pub fn txt(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            record_type: RecordType::TXT,
            value: value.into(),
        }
    }

    pub fn a(name: impl Into<String>, address: Ipv4Addr) -> Self {
        Self {
            name: name.into(),
            record_type: RecordType::A,
            value: address.to_string(),
        }
    }

    pub fn aaaa(name: impl Into<String>, address: Ipv6Addr) -> Self {
        Self {
            name: name.into(),
            record_type: RecordType::AAAA,
            value: address.to_string(),
        }
    }

    /// The record's data as written in a zone file or shown by `dig`: quoted character-strings
    /// for TXT, the address otherwise.
    pub fn presentation_value(&self) -> String {
        match self.record_type {
            RecordType::TXT => quoted_character_strings(&self.value),
            _ => self.value.clone(),
        }
    }

    /// A zone-file line, for example `_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"`.
    pub fn zone_file_line(&self, ttl: u32) -> String {
        format!(
            "{}. {ttl} IN {} {}",
            self.name,
            self.record_type,
            self.presentation_value()
        )
    }
}

/// Splits a TXT value into character-strings of at most 255 bytes; nothing is added or lost.
/// An empty value is one empty character-string.
pub fn split_txt(value: &str) -> Vec<&[u8]> {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return vec![bytes];
    }
    bytes.chunks(MAX_CHARACTER_STRING).collect()
}

/// Joins character-strings read from DNS back into the value.
pub fn join_txt<T: AsRef<[u8]>>(strings: &[T]) -> String {
    let bytes: Vec<u8> = strings
        .iter()
        .flat_map(|s| s.as_ref().iter().copied())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The value as quoted character-strings separated by one space, with `"` and `\` escaped.
pub fn quoted_character_strings(value: &str) -> String {
    split_txt(value)
        .iter()
        .map(|chunk| {
            let mut quoted = String::with_capacity(chunk.len() + 2);
            quoted.push('"');
            for &byte in *chunk {
                if byte == b'"' || byte == b'\\' {
                    quoted.push('\\');
                }
                quoted.push(byte as char);
            }
            quoted.push('"');
            quoted
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a TXT value as an API or zone file presents it: one or more quoted character-strings
/// (concatenated, escapes removed), or a bare value taken as is.
pub fn normalize_txt_presentation(text: &str) -> String {
    let trimmed = text.trim();
    if !trimmed.starts_with('"') {
        return trimmed.to_string();
    }
    let mut value = String::with_capacity(trimmed.len());
    let mut in_quotes = false;
    let mut chars = trimmed.chars();
    while let Some(c) = chars.next() {
        match (c, in_quotes) {
            ('"', _) => in_quotes = !in_quotes,
            ('\\', true) => {
                if let Some(escaped) = chars.next() {
                    value.push(escaped);
                }
            }
            (c, true) => value.push(c),
            (_, false) => {}
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_of(len: usize) -> String {
        (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect()
    }

    #[test]
    fn value_of_255_bytes_is_one_character_string() {
        let value = value_of(255);
        let chunks = split_txt(&value);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].len(), 255);
        assert_eq!(join_txt(&chunks), value);
    }

    #[test]
    fn value_of_256_bytes_splits_255_then_1() {
        let value = value_of(256);
        let chunks = split_txt(&value);
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![255, 1]
        );
        assert_eq!(chunks[1], b"v");
        assert_eq!(join_txt(&chunks), value);
    }

    #[test]
    fn value_of_510_bytes_splits_into_two_full_strings() {
        let value = value_of(510);
        let chunks = split_txt(&value);
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![255, 255]
        );
        assert_eq!(join_txt(&chunks), value);
        let value = value_of(511);
        assert_eq!(
            split_txt(&value)
                .iter()
                .map(|c| c.len())
                .collect::<Vec<_>>(),
            [255, 255, 1]
        );
    }

    #[test]
    fn quoted_form_round_trips_through_normalisation() {
        let value = format!("v=DKIM1; k=rsa; p={}", value_of(380));
        let quoted = quoted_character_strings(&value);
        assert_eq!(quoted.matches('"').count(), 4);
        assert_eq!(&quoted[..20], "\"v=DKIM1; k=rsa; p=a");
        assert_eq!(normalize_txt_presentation(&quoted), value);
        assert_eq!(normalize_txt_presentation("v=spf1 -all"), "v=spf1 -all");
        assert_eq!(
            normalize_txt_presentation(r#""say \"hi\"" "\\x""#),
            r#"say "hi"\x"#
        );
    }

    #[test]
    fn zone_file_line_is_exact() {
        let record = DnsRecord::txt("_dmarc.example.org", "v=DMARC1; p=reject");
        assert_eq!(
            record.zone_file_line(300),
            r#"_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject""#
        );
        let host = DnsRecord::a("relay.example.org", Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(
            host.zone_file_line(60),
            "relay.example.org. 60 IN A 192.0.2.10"
        );
    }
}
