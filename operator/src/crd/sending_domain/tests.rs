use kube::CustomResourceExt;

use super::*;

fn validations(schema: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(|v| v.as_array())
    {
        found.extend(
            rules
                .iter()
                .map(|r| r["message"].as_str().unwrap_or_default().to_string()),
        );
    }
    match schema {
        serde_json::Value::Object(map) => map.values().for_each(|v| found.extend(validations(v))),
        serde_json::Value::Array(items) => items.iter().for_each(|v| found.extend(validations(v))),
        _ => {}
    }
    found
}

#[test]
fn crd_identity_and_cel_rules() {
    let crd = SendingDomain::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("sendingdomains.mailwarden.io")
    );
    assert_eq!(crd.spec.names.short_names, Some(vec!["sd".to_string()]));
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = &crd.spec.versions[0];
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let schema = serde_json::to_value(&version.schema).unwrap();
    let messages = validations(&schema);
    for expected in [
        "spec.domain is immutable once set",
        "spec.domain must be a lower-case DNS name such as mail.example.org: labels of letters, \
         digits and inner hyphens separated by dots, no trailing dot",
        "spec.dmarc.aggregateReports must be mailto: URIs such as mailto:dmarc@example.org",
        "spec.dns.cloudflare is required when spec.dns.provider is Cloudflare",
    ] {
        assert!(
            messages.iter().any(|m| m == expected),
            "missing rule {expected:?} in {messages:?}"
        );
    }
    let spf = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["spf"];
    assert_eq!(spf["required"], serde_json::json!(["conflictPolicy"]));
}

#[test]
fn status_contract_for_the_relay_serializes_as_documented() {
    let status = SendingDomainStatus {
        relay_signing: Some(RelaySigning {
            secret_name: "example-org-dkim".into(),
            selectors: vec![crate::dkim::rotation::Selector {
                name: "mw1-20260301-ed".into(),
                algorithm: crate::dkim::DkimAlgorithm::Ed25519Sha256,
                key: "mw1-20260301-ed.pem".into(),
            }],
        }),
        ..Default::default()
    };
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(
        json["relaySigning"],
        serde_json::json!({
            "secretName": "example-org-dkim",
            "selectors": [
                {
                    "name": "mw1-20260301-ed",
                    "algorithm": "ed25519-sha256",
                    "key": "mw1-20260301-ed.pem"
                }
            ]
        })
    );
}
