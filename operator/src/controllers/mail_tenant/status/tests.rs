use k8s_openapi::api::apps::v1::StatefulSetStatus;
use serde_json::json;

use super::*;
use crate::crd::find_condition;

fn tenant(name: &str, created: &str) -> MailTenant {
    serde_json::from_value(json!({
        "apiVersion": "mailwarden.io/v1alpha1",
        "kind": "MailTenant",
        "metadata": {
            "name": name, "namespace": "tenant-a", "uid": format!("uid-{name}"),
            "creationTimestamp": created,
        },
        "spec": { "relay": { "hostname": "relay.a.example", "replicas": 2 } },
    }))
    .unwrap()
}

fn set(generation: i64, status: StatefulSetStatus) -> StatefulSet {
    StatefulSet {
        metadata: kube::api::ObjectMeta {
            generation: Some(generation),
            ..Default::default()
        },
        status: Some(status),
        ..Default::default()
    }
}

fn rolled(ready: i32) -> StatefulSetStatus {
    StatefulSetStatus {
        observed_generation: Some(4),
        replicas: 2,
        ready_replicas: Some(ready),
        updated_replicas: Some(2),
        current_revision: Some("relay-7c9".into()),
        update_revision: Some("relay-7c9".into()),
        ..Default::default()
    }
}

/// Certificates of tenant `a`, issued now, with these client identities.
fn issued(clients: &[&str]) -> crate::pki::Issued {
    let wanted = crate::pki::Wanted {
        tenant: "a".into(),
        server_names: vec!["relay.a.example".into()],
        clients: clients.iter().map(|c| c.to_string()).collect(),
        ca_days: 365,
        leaf_days: 90,
    };
    let now = time::OffsetDateTime::now_utc();
    crate::pki::plan(&wanted, now, None, None, &Default::default()).unwrap()
}

#[test]
fn oldest_tenant_owns_the_namespace() {
    let tenants = [
        tenant("second", "2026-05-02T00:00:00Z"),
        tenant("first", "2026-05-01T00:00:00Z"),
        tenant("also-first", "2026-05-01T00:00:00Z"),
    ];
    assert_eq!(namespace_owner(&tenants).unwrap().name_any(), "also-first");

    // A tenant already admitted keeps the namespace, even against an older arrival.
    let mut admitted = tenants.clone();
    admitted[0].status = Some(MailTenantStatus {
        conditions: vec![Condition::new("PKIReady", true, "CertificatesIssued", "")],
        ..Default::default()
    });
    assert_eq!(namespace_owner(&admitted).unwrap().name_any(), "second");
    let refused = &duplicate("tenant-a", "also-first")[0];
    assert_eq!(
        (refused.type_.as_str(), refused.status.as_str()),
        ("Ready", "False")
    );
    assert_eq!(refused.reason, "DuplicateTenant");
    assert!(
        refused
            .message
            .starts_with("namespace tenant-a already has MailTenant also-first;")
    );
}

#[test]
fn relay_readiness_follows_the_stateful_set() {
    let t = tenant("a", "2026-05-01T00:00:00Z");
    let (missing, _) = relay_condition(&t, None);
    assert_eq!(
        (missing.status.as_str(), missing.reason.as_str()),
        ("False", "RelayPending")
    );

    let (ready, replicas) = relay_condition(&t, Some(&set(4, rolled(2))));
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "ReplicasReady")
    );
    assert_eq!(
        (ready.message.as_str(), replicas),
        ("2 of 2 relay pods are ready", 2)
    );

    let (one, _) = relay_condition(&t, Some(&set(4, rolled(1))));
    assert_eq!(
        (one.reason.as_str(), one.message.as_str()),
        ("ReplicasNotReady", "1 of 2 relay pods are ready")
    );

    let (stale, _) = relay_condition(&t, Some(&set(5, rolled(2))));
    assert_eq!(stale.reason, "RollingOut");

    let mut rolling = rolled(2);
    rolling.updated_replicas = Some(1);
    rolling.update_revision = Some("relay-8d0".into());
    let (rolling, _) = relay_condition(&t, Some(&set(4, rolling)));
    assert_eq!(
        (rolling.reason.as_str(), rolling.message.as_str()),
        (
            "RollingOut",
            "1 of 2 relay pods run the current configuration, 2 ready"
        )
    );
}

#[test]
fn ready_names_the_first_failing_condition() {
    let t = tenant("a", "2026-05-01T00:00:00Z");
    let issued = issued(&["ehr"]);

    let pending = observed(
        &t,
        &issued,
        Some(&set(4, rolled(1))),
        &[],
        &Addresses::NotRequested,
        &[],
    );
    let ready = &pending.conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ReplicasNotReady")
    );
    assert_eq!(ready.message, "RelayReady: 1 of 2 relay pods are ready");
    let types: Vec<&str> = pending
        .conditions
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(
        types,
        ["Ready", "PKIReady", "RelayReady", "NetworkIsolated"]
    );

    let done = observed(
        &t,
        &issued,
        Some(&set(4, rolled(2))),
        &["mail.a.example".into()],
        &Addresses::NotRequested,
        &[],
    );
    assert_eq!(done.conditions[0].status, "True");
    assert_eq!(
        done.conditions[0].message,
        "relay running; mail from mail.a.example is refused until its DKIM keys are verified"
    );
    let certificates = done.fields.certificates.unwrap();
    assert_eq!(certificates.clients[0].name, "ehr");
    assert_eq!(certificates.trusted_cas, 1);
    assert_eq!(
        done.fields.submission_endpoint.as_deref(),
        Some("a-relay.tenant-a.svc:465")
    );
}

#[test]
fn signing_domains_come_from_relay_signing_status() {
    let verified: SendingDomain = serde_json::from_value(json!({
        "apiVersion": "mailwarden.io/v1alpha1", "kind": "SendingDomain",
        "metadata": { "name": "mail", "namespace": "tenant-a" },
        "spec": {
            "domain": "mail.a.example",
            "dns": { "provider": "Manual" },
            "spf": { "conflictPolicy": "Refuse" },
            "dmarc": { "policy": "reject" },
        },
        "status": { "relaySigning": { "secretName": "mail-dkim", "selectors": [
            { "name": "mw1r", "algorithm": "rsa-sha256", "key": "mw1r.pem" },
            { "name": "mw1e", "algorithm": "ed25519-sha256", "key": "mw1e.pem" },
        ]}},
    }))
    .unwrap();
    let mut pending = verified.clone();
    pending.spec.domain = "news.a.example".into();
    pending.status = None;

    let result = signing_domains(&[pending, verified]);
    assert_eq!(result.waiting, ["news.a.example"]);
    assert_eq!(
        result.signing,
        [SigningDomain {
            domain: "mail.a.example".into(),
            secret_name: "mail-dkim".into(),
            selectors: vec![
                SigningSelector {
                    name: "mw1r".into(),
                    algorithm: RelayAlgorithm::RsaSha256,
                    secret_key: "mw1r.pem".into()
                },
                SigningSelector {
                    name: "mw1e".into(),
                    algorithm: RelayAlgorithm::Ed25519Sha256,
                    secret_key: "mw1e.pem".into()
                },
            ],
        }]
    );
}

#[test]
fn sending_addresses_gate_readiness_when_requested() {
    let t = tenant("a", "2026-05-01T00:00:00Z");
    let issued = issued(&[]);
    let running = set(4, rolled(2));

    let one = "192.0.2.17".parse().unwrap();
    let waiting = Addresses::Allocated {
        pool: "egress".into(),
        wanted: 2,
        addresses: vec![one],
    };
    let result = observed(&t, &issued, Some(&running), &[], &waiting, &[]);
    let ready = &result.conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "WaitingForAddresses")
    );
    assert_eq!(
        ready.message,
        "IPsAllocated: 1 of 2 addresses allocated from SendingIPPool egress; its status says why"
    );
    assert_eq!(result.fields.allocated_ips, ["192.0.2.17"]);

    let two = "192.0.2.18".parse().unwrap();
    let done = Addresses::Allocated {
        pool: "egress".into(),
        wanted: 2,
        addresses: vec![one, two],
    };
    let result = observed(&t, &issued, Some(&running), &[], &done, &[]);
    assert_eq!(result.conditions[0].status, "True");
    let ips = find_condition(&result.conditions, "IPsAllocated").unwrap();
    assert_eq!(
        ips.message,
        "192.0.2.17, 192.0.2.18 from SendingIPPool egress"
    );

    let missing = Addresses::PoolMissing {
        pool: "nope".into(),
    };
    let result = observed(&t, &issued, Some(&running), &[], &missing, &[]);
    assert_eq!(result.conditions[0].reason, "PoolNotFound");
    assert!(result.fields.allocated_ips.is_empty());
}

#[test]
fn policies_selecting_the_relay_from_outside_are_reported() {
    let names = Names {
        tenant: "a".into(),
        namespace: "tenant-a".into(),
    };
    let policy = |name: &str,
                  selector: serde_json::Value|
     -> k8s_openapi::api::networking::v1::NetworkPolicy {
        serde_json::from_value(
            json!({ "metadata": { "name": name }, "spec": { "podSelector": selector } }),
        )
        .unwrap()
    };
    let policies = [
        policy(
            "a-relay-deny-all",
            json!({ "matchLabels": { "app.kubernetes.io/instance": "a" } }),
        ),
        policy("allow-everything", json!({})),
        policy("web-only", json!({ "matchLabels": { "app": "web" } })),
        policy(
            "by-instance",
            json!({ "matchLabels": { "app.kubernetes.io/instance": "a" } }),
        ),
        policy(
            "by-expression",
            json!({ "matchExpressions": [{ "key": "tier", "operator": "Exists" }] }),
        ),
    ];
    assert_eq!(
        foreign_policies(&policies, &names),
        ["allow-everything", "by-expression", "by-instance"]
    );
}
