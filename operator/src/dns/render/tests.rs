use super::*;
use crate::dns::dmarc::{Disposition, DmarcPolicy};
use crate::dns::mta_sts::{Mode, MtaStsPolicy};
use crate::dns::spf::{AllQualifier, ConflictPolicy, SpfError, SpfPolicy};

pub fn settings() -> DomainSettings {
    DomainSettings {
        domain: "example.org".into(),
        spf: SpfPolicy {
            addresses: vec![],
            includes: vec![],
            all: AllQualifier::Fail,
        },
        spf_conflict: ConflictPolicy::Refuse,
        dmarc: DmarcPolicy {
            policy: Disposition::Reject,
            subdomain_policy: None,
            percent: None,
            aggregate_reports: vec!["mailto:dmarc@reports.example.net".into()],
            failure_reports: vec![],
            strict_alignment: false,
        },
        mta_sts: Some(MtaStsPolicy {
            mode: Mode::Enforce,
            mx: vec!["mx.example.org".into()],
            max_age_seconds: 86400,
        }),
        tls_reports: vec!["mailto:tls@example.org".into()],
        relay_host: Some("relay.example.org".into()),
        relay_addresses: vec![
            "192.0.2.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ],
    }
}

fn selector() -> PublicSelector {
    PublicSelector {
        name: "mw1-20260301-ed".into(),
        algorithm: DkimAlgorithm::Ed25519Sha256,
        public_key_base64: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".into(),
    }
}

#[test]
fn renders_exact_zone_lines() {
    let rendered = render(&settings(), &[selector()], &[]).unwrap();
    let lines: Vec<String> = rendered
        .records
        .iter()
        .map(|r| r.record.zone_file_line(300))
        .collect();
    let policy_id = mta_sts::policy_id(rendered.mta_sts_policy.as_deref().unwrap());
    assert_eq!(
        lines,
        vec![
            r#"example.org. 300 IN TXT "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all""#.to_string(),
            r#"mw1-20260301-ed._domainkey.example.org. 300 IN TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=""#.into(),
            r#"_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@reports.example.net""#.into(),
            format!(r#"_mta-sts.example.org. 300 IN TXT "v=STSv1; id={policy_id}""#),
            r#"_smtp._tls.example.org. 300 IN TXT "v=TLSRPTv1; rua=mailto:tls@example.org""#.into(),
            "relay.example.org. 300 IN A 192.0.2.10".into(),
            "relay.example.org. 300 IN AAAA 2001:db8::10".into(),
        ]
    );
    assert_eq!(
        rendered.report_authorizations,
        vec!["example.org._report._dmarc.reports.example.net".to_string()]
    );
    assert_eq!(rendered.spf_problem, None);
}

#[test]
fn foreign_spf_with_refuse_drops_only_spf() {
    let foreign = vec!["v=spf1 include:_spf.google.com ~all".to_string()];
    let rendered = render(&settings(), &[selector()], &foreign).unwrap();
    assert_eq!(
        rendered.spf_problem,
        Some(SpfError::Conflict {
            name: "example.org".into(),
            foreign: foreign[0].clone()
        })
    );
    assert!(rendered.records.iter().all(|r| r.purpose != Purpose::Spf));
    assert_eq!(rendered.records.len(), 6);
}

#[test]
fn bad_specs_are_refused_with_what_and_where() {
    let mut bad = settings();
    bad.domain = "Example..org".into();
    assert_eq!(
        render(&bad, &[], &[]).unwrap_err().to_string(),
        "domain \"Example..org\" is not a valid domain name"
    );
    let mut bad = settings();
    bad.tls_reports = vec!["https://example.org/tls".into()];
    assert_eq!(
        render(&bad, &[], &[]).unwrap_err().to_string(),
        "dmarc report address \"https://example.org/tls\" in spec.tlsReports is not a mailto: uri"
    );
    let mut bad = settings();
    bad.relay_host = Some("relay.example.com".into());
    assert_eq!(
        render(&bad, &[], &[]).unwrap_err().to_string(),
        "relay host \"relay.example.com\" is not a name inside example.org"
    );
}
