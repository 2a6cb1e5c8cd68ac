//! CEL rules shared by the CRD schemas. The API server evaluates them, so a bad manifest is
//! refused at `kubectl apply` with the message given here, before the operator ever sees it.

use kube::core::{Message, Rule};

/// Syntax of a lower-case DNS name of at least two labels, without a trailing dot. The last
/// label starts with a letter, so an IPv4 address is not mistaken for a name.
const DNS_NAME: &str = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?[.])+[a-z]([-a-z0-9]*[a-z0-9])?$";

/// A string field that must be a DNS name (paired with [`dns_label_lengths`]).
pub fn dns_name(what: &str) -> Rule {
    Rule::new(format!("self.matches('{DNS_NAME}')")).message(Message::Message(format!(
        "{what} must be a lower-case DNS name such as mail.example.org: labels of letters, \
         digits and inner hyphens separated by dots, no trailing dot, not an IP address"
    )))
}

/// Every label of a DNS name is at most 63 bytes (RFC 1035).
pub fn dns_label_lengths(what: &str) -> Rule {
    Rule::new("self.split('.').all(label, label.size() <= 63)").message(Message::Message(format!(
        "{what} has a label longer than 63 bytes"
    )))
}

/// A string field that must be one DNS label (RFC 1123), such as a client or selector name.
pub fn dns_label(what: &str) -> Rule {
    Rule::new("self.size() <= 63 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message(
        Message::Message(format!(
            "{what} must be a DNS label: at most 63 lower-case letters, digits or inner hyphens"
        )),
    )
}

/// A field that cannot change once the object exists.
pub fn immutable(what: &str) -> Rule {
    Rule::new("self == oldSelf").message(Message::Message(format!("{what} is immutable once set")))
}

/// A Kubernetes quantity for storage in binary units, such as `10Gi`; above zero and at most
/// 64Ti, so that a typo cannot ask for a volume no cluster can give.
pub fn storage_size(what: &str) -> Rule {
    Rule::new(
        "self.matches('^[1-9][0-9]{0,7}(Mi|Gi|Ti)$') && quantity(self).compareTo(quantity('64Ti')) <= 0",
    )
    .message(Message::Message(format!(
        "{what} must be a whole number of Mi, Gi or Ti above zero and at most 64Ti, such as 10Gi"
    )))
}
