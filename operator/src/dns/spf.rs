//! SPF (RFC 7208): the one `v=spf1` record of a name, its DNS-lookup budget, and how the
//! operator's record combines with one it does not own.

use std::net::IpAddr;

/// RFC 7208 section 4.6.4: evaluating a record may cause at most ten DNS lookups.
pub const MAX_LOOKUPS: usize = 10;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpfError {
    #[error("spf record for {name} needs {count} dns lookups, more than the limit of 10")]
    TooManyLookups { name: String, count: usize },
    #[error("foreign spf record at {name} uses redirect=, which cannot be merged: {foreign}")]
    ForeignRedirect { name: String, foreign: String },
    #[error("{name} already has more than one spf record, which receivers treat as an error")]
    SeveralForeign { name: String },
    #[error("{name} already has an spf record not owned by mailwarden: {foreign}")]
    Conflict { name: String, foreign: String },
    #[error("spf include {include:?} is not a dns name")]
    InvalidInclude { include: String },
}

/// What `-all`/`~all` ends the record with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllQualifier {
    Fail,
    SoftFail,
}

/// How to treat an SPF record at the same name that the operator does not own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// Publish one record holding the mechanisms of both; the foreign value is kept in status
    /// and restored when the domain is deleted.
    Merge,
    /// Publish nothing at that name and report the conflict.
    Refuse,
}

/// The operator's own SPF content for a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpfPolicy {
    pub addresses: Vec<IpAddr>,
    pub includes: Vec<String>,
    pub all: AllQualifier,
}

/// True when a TXT value is an SPF record (`v=spf1` alone or followed by a space).
pub fn is_spf(value: &str) -> bool {
    let lower = value.trim_start().to_ascii_lowercase();
    lower == "v=spf1" || lower.starts_with("v=spf1 ")
}

fn own_terms(policy: &SpfPolicy) -> Vec<String> {
    let addresses = policy.addresses.iter().map(|address| match address {
        IpAddr::V4(v4) => format!("ip4:{v4}"),
        IpAddr::V6(v6) => format!("ip6:{v6}"),
    });
    let includes = policy
        .includes
        .iter()
        .map(|include| format!("include:{include}"));
    addresses.chain(includes).collect()
}

fn all_term(all: AllQualifier) -> &'static str {
    match all {
        AllQualifier::Fail => "-all",
        AllQualifier::SoftFail => "~all",
    }
}

/// Counts the terms that cost a DNS lookup: include, a, mx, ptr, exists and redirect.
pub fn lookup_count(value: &str) -> usize {
    value
        .split_whitespace()
        .skip(1)
        .filter(|term| {
            let term = term
                .trim_start_matches(['+', '-', '~', '?'])
                .to_ascii_lowercase();
            let mechanism = term.split([':', '/', '=']).next().unwrap_or_default();
            matches!(
                mechanism,
                "include" | "a" | "mx" | "ptr" | "exists" | "redirect"
            )
        })
        .count()
}

fn checked(name: &str, value: String) -> Result<String, SpfError> {
    let count = lookup_count(&value);
    if count > MAX_LOOKUPS {
        return Err(SpfError::TooManyLookups {
            name: name.to_string(),
            count,
        });
    }
    Ok(value)
}

/// Renders the operator's record for `name`, for example
/// `v=spf1 ip4:192.0.2.10 include:_spf.example.net -all`.
pub fn render(name: &str, policy: &SpfPolicy) -> Result<String, SpfError> {
    if let Some(bad) = policy.includes.iter().find(|i| !super::is_dns_name(i)) {
        return Err(SpfError::InvalidInclude {
            include: bad.clone(),
        });
    }
    let mut terms = vec!["v=spf1".to_string()];
    terms.extend(own_terms(policy));
    terms.push(all_term(policy.all).to_string());
    checked(name, terms.join(" "))
}

/// Combines the operator's record with the foreign SPF values found at `name`: the operator's
/// terms first, then the foreign terms it lacks in their order, then the operator's `all`.
/// The foreign `all` is dropped: the spec decides how strict the domain is.
pub fn combine(
    name: &str,
    policy: &SpfPolicy,
    foreign: &[String],
    conflict_policy: ConflictPolicy,
) -> Result<String, SpfError> {
    let foreign: Vec<&String> = foreign.iter().filter(|value| is_spf(value)).collect();
    let Some(foreign_value) = foreign.first() else {
        return render(name, policy);
    };
    if foreign.len() > 1 {
        return Err(SpfError::SeveralForeign {
            name: name.to_string(),
        });
    }
    if conflict_policy == ConflictPolicy::Refuse {
        return Err(SpfError::Conflict {
            name: name.to_string(),
            foreign: foreign_value.to_string(),
        });
    }
    render(name, policy)?;

    let mut terms = vec!["v=spf1".to_string()];
    terms.extend(own_terms(policy));
    for term in foreign_value.split_whitespace().skip(1) {
        let lower = term.to_ascii_lowercase();
        if lower.starts_with("redirect=") {
            let foreign = foreign_value.to_string();
            return Err(SpfError::ForeignRedirect {
                name: name.to_string(),
                foreign,
            });
        }
        let is_all = lower.trim_start_matches(['+', '-', '~', '?']) == "all";
        if !is_all && !terms.iter().any(|t| t.eq_ignore_ascii_case(term)) {
            terms.push(term.to_string());
        }
    }
    terms.push(all_term(policy.all).to_string());
    checked(name, terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SpfPolicy {
        SpfPolicy {
            addresses: vec![
                "192.0.2.10".parse().unwrap(),
                "2001:db8::10".parse().unwrap(),
            ],
            includes: vec!["_spf.example.net".to_string()],
            all: AllQualifier::Fail,
        }
    }

    #[test]
    fn renders_addresses_then_includes_then_all() {
        assert_eq!(
            render("example.org", &policy()).unwrap(),
            "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 include:_spf.example.net -all"
        );
    }

    #[test]
    fn recognises_spf_values_only() {
        assert!(is_spf("v=spf1 -all"));
        assert!(is_spf("V=SPF1 include:x.org ~all"));
        assert!(is_spf("v=spf1"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("google-site-verification=abc"));
    }

    #[test]
    fn counts_lookup_terms_with_qualifiers() {
        let value = "v=spf1 ip4:192.0.2.1 a mx:mx.example.org ~include:x.org ?exists:%{i}.x.org \
                     ptr a/24 redirect=y.org -all";
        assert_eq!(lookup_count(value), 7);
    }

    #[test]
    fn refuses_more_than_ten_lookups() {
        let mut too_many = policy();
        too_many.includes = (0..11).map(|i| format!("i{i}.example.net")).collect();
        assert_eq!(
            render("example.org", &too_many),
            Err(SpfError::TooManyLookups {
                name: "example.org".into(),
                count: 11
            })
        );
        too_many.includes.pop();
        assert!(render("example.org", &too_many).is_ok());
    }

    #[test]
    fn merges_foreign_terms_once_and_keeps_own_all() {
        let foreign = vec!["v=spf1 include:_spf.google.com ip4:192.0.2.10 ~all".to_string()];
        let merged = combine("example.org", &policy(), &foreign, ConflictPolicy::Merge).unwrap();
        assert_eq!(
            merged,
            "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 include:_spf.example.net \
             include:_spf.google.com -all"
        );
    }

    #[test]
    fn refuse_policy_reports_the_foreign_value() {
        let foreign = vec![
            "v=spf1 include:_spf.google.com ~all".to_string(),
            "other".into(),
        ];
        let err = combine("example.org", &policy(), &foreign, ConflictPolicy::Refuse).unwrap_err();
        assert_eq!(
            err.to_string(),
            "example.org already has an spf record not owned by mailwarden: \
             v=spf1 include:_spf.google.com ~all"
        );
    }

    #[test]
    fn merge_refuses_redirect_and_lookup_overflow() {
        let redirect = vec!["v=spf1 redirect=_spf.example.com".to_string()];
        assert!(matches!(
            combine("example.org", &policy(), &redirect, ConflictPolicy::Merge),
            Err(SpfError::ForeignRedirect { .. })
        ));
        let includes: Vec<String> = (0..10)
            .map(|i| format!("include:f{i}.example.com"))
            .collect();
        let heavy = vec![format!("v=spf1 {} -all", includes.join(" "))];
        assert_eq!(
            combine("example.org", &policy(), &heavy, ConflictPolicy::Merge),
            Err(SpfError::TooManyLookups {
                name: "example.org".into(),
                count: 11
            })
        );
    }

    #[test]
    fn no_foreign_record_renders_own() {
        let foreign = vec!["google-site-verification=abc".to_string()];
        assert_eq!(
            combine("example.org", &policy(), &foreign, ConflictPolicy::Refuse).unwrap(),
            render("example.org", &policy()).unwrap()
        );
    }
}
