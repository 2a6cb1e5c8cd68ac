//! DMARC (RFC 7489): the `_dmarc` record, its `mailto:` report URIs, and the authorization a
//! report domain outside the sending domain must publish (section 7.1).

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum DmarcError {
    #[error("dmarc report address {uri:?} in {field} is not a mailto: uri")]
    NotMailto { field: &'static str, uri: String },
    #[error("dmarc report address {uri:?} in {field} has no valid address after mailto:")]
    InvalidAddress { field: &'static str, uri: String },
    #[error("dmarc pct must be between 0 and 100, got {0}")]
    InvalidPercent(u8),
}

/// What receivers do with mail that fails DMARC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    None,
    Quarantine,
    Reject,
}

impl Disposition {
    fn tag(self) -> &'static str {
        match self {
            Disposition::None => "none",
            Disposition::Quarantine => "quarantine",
            Disposition::Reject => "reject",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmarcPolicy {
    pub policy: Disposition,
    pub subdomain_policy: Option<Disposition>,
    pub percent: Option<u8>,
    pub aggregate_reports: Vec<String>,
    pub failure_reports: Vec<String>,
    pub strict_alignment: bool,
}

/// A validated `mailto:` report URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportAddress {
    pub uri: String,
    pub domain: String,
}

/// Checks one report URI: `mailto:local@domain`, optionally with a `!size` limit; commas,
/// semicolons and spaces are refused because they end the URI list or the tag.
pub fn parse_report_uri(field: &'static str, uri: &str) -> Result<ReportAddress, DmarcError> {
    let Some(rest) = uri.strip_prefix("mailto:") else {
        return Err(DmarcError::NotMailto {
            field,
            uri: uri.to_string(),
        });
    };
    let invalid = || DmarcError::InvalidAddress {
        field,
        uri: uri.to_string(),
    };
    let address = match rest.split_once('!') {
        Some((address, limit)) => {
            let digits = limit.trim_end_matches(['k', 'm', 'g', 't']);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            address
        }
        None => rest,
    };
    let (local, domain) = address.rsplit_once('@').ok_or_else(invalid)?;
    let bad_local = local.is_empty()
        || local.len() > 64
        || local
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ',' | ';' | '@' | '!'));
    let domain = domain.to_ascii_lowercase();
    if bad_local || !super::is_dns_name(&domain) {
        return Err(invalid());
    }
    Ok(ReportAddress {
        uri: uri.to_string(),
        domain,
    })
}

/// Validates every report URI of the policy.
pub fn report_addresses(policy: &DmarcPolicy) -> Result<Vec<ReportAddress>, DmarcError> {
    let aggregate = policy
        .aggregate_reports
        .iter()
        .map(|u| parse_report_uri("spec.dmarc.aggregateReports", u));
    let failure = policy
        .failure_reports
        .iter()
        .map(|u| parse_report_uri("spec.dmarc.failureReports", u));
    aggregate.chain(failure).collect()
}

/// Renders the record value: `v=DMARC1` first, `p=` second, then the optional tags.
pub fn render(policy: &DmarcPolicy) -> Result<String, DmarcError> {
    report_addresses(policy)?;
    let mut tags = vec!["v=DMARC1".to_string(), format!("p={}", policy.policy.tag())];
    if let Some(sp) = policy.subdomain_policy {
        tags.push(format!("sp={}", sp.tag()));
    }
    if let Some(pct) = policy.percent {
        if pct > 100 {
            return Err(DmarcError::InvalidPercent(pct));
        }
        tags.push(format!("pct={pct}"));
    }
    if !policy.aggregate_reports.is_empty() {
        tags.push(format!("rua={}", policy.aggregate_reports.join(",")));
    }
    if !policy.failure_reports.is_empty() {
        tags.push(format!("ruf={}", policy.failure_reports.join(",")));
    }
    if policy.strict_alignment {
        tags.push("adkim=s".to_string());
        tags.push("aspf=s".to_string());
    }
    Ok(tags.join("; "))
}

/// Names of the authorization records (`<domain>._report._dmarc.<report-domain>`) that report
/// domains outside `domain` must publish, one per distinct foreign report domain.
pub fn external_authorization_names(domain: &str, addresses: &[ReportAddress]) -> Vec<String> {
    let mut names: Vec<String> = addresses
        .iter()
        .filter(|a| a.domain != domain && !a.domain.ends_with(&format!(".{domain}")))
        .map(|a| format!("{domain}._report._dmarc.{}", a.domain))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// True when a TXT value found at an authorization name authorizes reports (`v=DMARC1`).
pub fn is_authorization(value: &str) -> bool {
    let first = value.split(';').next().unwrap_or_default().trim();
    first.eq_ignore_ascii_case("v=DMARC1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> DmarcPolicy {
        DmarcPolicy {
            policy: Disposition::Reject,
            subdomain_policy: Some(Disposition::Quarantine),
            percent: None,
            aggregate_reports: vec!["mailto:dmarc@example.org".into()],
            failure_reports: vec!["mailto:forensic@reports.example.net!10m".into()],
            strict_alignment: true,
        }
    }

    #[test]
    fn renders_version_then_policy_then_tags() {
        assert_eq!(
            render(&policy()).unwrap(),
            "v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@example.org; \
             ruf=mailto:forensic@reports.example.net!10m; adkim=s; aspf=s"
        );
        let minimal = DmarcPolicy {
            policy: Disposition::None,
            subdomain_policy: None,
            percent: Some(50),
            aggregate_reports: vec![],
            failure_reports: vec![],
            strict_alignment: false,
        };
        assert_eq!(render(&minimal).unwrap(), "v=DMARC1; p=none; pct=50");
    }

    #[test]
    fn refuses_report_address_without_mailto() {
        let mut bad = policy();
        bad.aggregate_reports = vec!["dmarc@example.org".into()];
        assert_eq!(
            render(&bad).unwrap_err().to_string(),
            "dmarc report address \"dmarc@example.org\" in spec.dmarc.aggregateReports is not a \
             mailto: uri"
        );
    }

    #[test]
    fn refuses_malformed_addresses() {
        for uri in [
            "mailto:",
            "mailto:@example.org",
            "mailto:a@",
            "mailto:a;b@example.org",
            "mailto:a@exa mple.org",
            "mailto:a@example.org!",
            "mailto:a@example.org!x",
        ] {
            assert_eq!(
                parse_report_uri("failureReports", uri),
                Err(DmarcError::InvalidAddress {
                    field: "failureReports",
                    uri: uri.into()
                }),
                "{uri}"
            );
        }
    }

    #[test]
    fn foreign_report_domain_needs_authorization() {
        let addresses = report_addresses(&policy()).unwrap();
        assert_eq!(
            external_authorization_names("example.org", &addresses),
            vec!["example.org._report._dmarc.reports.example.net".to_string()]
        );
        let sub = vec![parse_report_uri("aggregateReports", "mailto:d@sub.example.org").unwrap()];
        assert!(external_authorization_names("example.org", &sub).is_empty());
        assert!(is_authorization("v=DMARC1"));
        assert!(is_authorization("v=DMARC1; rua=mailto:x@y.org"));
        assert!(!is_authorization("v=spf1 -all"));
    }
}
