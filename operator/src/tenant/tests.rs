use mailwarden_relay_config::{DeliveryMode, RelayConfig};
use serde_json::json;

use super::*;

const TENANT: &str = r#"
apiVersion: mailwarden.io/v1alpha1
kind: MailTenant
metadata:
  name: st-olaf
  namespace: tenant-st-olaf
  uid: 6f1c1c53-9a59-4a4a-9d1a-1b1f2f3e4d5c
  generation: 3
spec:
  relay:
    hostname: relay.st-olaf.example
    replicas: 2
  submitters:
    - podSelector:
        matchLabels: { app: ehr }
    - namespaceSelector:
        matchLabels: { mailwarden.io/submit-for: st-olaf }
  clients:
    - name: ehr
"#;

fn tenant() -> MailTenant {
    serde_yaml::from_str(TENANT).unwrap()
}

fn domains() -> Vec<SigningDomain> {
    vec![SigningDomain {
        domain: "mail.st-olaf.example".into(),
        secret_name: "mail-st-olaf-example-dkim".into(),
        selectors: vec![
            SigningSelector {
                name: "mw202612r".into(),
                algorithm: DkimAlgorithm::RsaSha256,
                secret_key: "mw202612r.pem".into(),
            },
            SigningSelector {
                name: "mw202612e".into(),
                algorithm: DkimAlgorithm::Ed25519Sha256,
                secret_key: "mw202612e.pem".into(),
            },
        ],
    }]
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap()
}

#[test]
fn relay_config_is_valid_and_points_at_mounted_files() {
    let config = relay_config(&tenant(), &domains(), &["192.0.2.17".parse().unwrap()]);
    let parsed = RelayConfig::from_toml(&config.to_toml()).expect("operator renders valid config");
    assert_eq!(parsed, config);
    assert_eq!(config.hostname, "relay.st-olaf.example");
    assert_eq!(
        config.sending_domains[0].selectors[1].key_file.to_str(),
        Some("/etc/mailwarden/dkim/mail.st-olaf.example/mw202612e.pem")
    );
    assert_eq!(
        config.tls.client_ca_file.to_str(),
        Some("/etc/mailwarden/tls/ca.crt")
    );
    assert!(matches!(config.delivery.mode, DeliveryMode::Direct { .. }));
    assert_eq!(config.limits.max_buffered_bytes, 128 * 1024 * 1024);
    assert_eq!(
        config.delivery.source_addresses,
        ["192.0.2.17".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn stateful_set_runs_restricted_and_rolls_on_hash() {
    let set = stateful_set(&tenant(), &domains(), "abc123");
    let set = to_json(&set);
    let pod = &set["spec"]["template"]["spec"];
    assert_eq!(set["metadata"]["ownerReferences"][0]["kind"], "MailTenant");
    assert_eq!(set["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        set["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION],
        "abc123"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        pod["securityContext"],
        json!({
            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": { "type": "RuntimeDefault" },
        })
    );
    let container = &pod["containers"][0];
    assert_eq!(
        container["securityContext"],
        json!({
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "runAsNonRoot": true, "capabilities": { "drop": ["ALL"] },
            "seccompProfile": { "type": "RuntimeDefault" },
        })
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"],
        json!({ "path": "/readyz", "port": "admin" })
    );
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
            ["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "10Gi"
    );
    assert_eq!(
        pod["volumes"][3],
        json!({ "name": "dkim", "projected": { "defaultMode": 0o440, "sources": [{ "secret": {
            "name": "mail-st-olaf-example-dkim",
            "items": [
                { "key": "mw202612r.pem", "path": "mail.st-olaf.example/mw202612r.pem" },
                { "key": "mw202612e.pem", "path": "mail.st-olaf.example/mw202612e.pem" },
            ],
        }}]}})
    );
}

#[test]
fn stateful_set_without_domains_mounts_no_dkim_volume() {
    let set = to_json(&stateful_set(&tenant(), &[], "h"));
    let volumes = set["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = volumes
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["config", "tls", "tmp"]);
}

#[test]
fn network_policies_hold_exactly_the_intended_rules() {
    let [deny, submission, egress] = network_policies(&tenant()).map(|p| to_json(&p));
    let pods = json!({ "matchLabels": {
        "app.kubernetes.io/instance": "st-olaf", "app.kubernetes.io/name": "mailwarden-relay",
    }});
    assert_eq!(deny["metadata"]["name"], "st-olaf-relay-deny-all");
    assert_eq!(
        deny["spec"],
        json!({ "podSelector": pods, "policyTypes": ["Ingress", "Egress"] })
    );
    assert_eq!(
        submission["spec"],
        json!({
            "podSelector": pods,
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [
                    { "podSelector": { "matchLabels": { "app": "ehr" } } },
                    {
                        "namespaceSelector": { "matchLabels": { "mailwarden.io/submit-for": "st-olaf" } },
                        "podSelector": {},
                    },
                ],
                "ports": [{ "protocol": "TCP", "port": 465 }, { "protocol": "TCP", "port": 587 }],
            }],
        })
    );
    assert_eq!(
        egress["spec"]["egress"],
        json!([
            {
                "to": [{
                    "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } },
                    "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } },
                }],
                "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }],
            },
            {
                "to": [
                    { "ipBlock": { "cidr": "0.0.0.0/0", "except": [
                        "169.254.0.0/16", "100.100.100.200/32",
                        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                    ] } },
                    { "ipBlock": { "cidr": "::/0", "except": ["fe80::/10", "fd00:ec2::254/128", "fc00::/7"] } },
                ],
                "ports": [{ "protocol": "TCP", "port": 25 }, { "protocol": "TCP", "port": 443 }],
            },
        ])
    );
}

#[test]
fn smarthost_egress_allows_only_its_port() {
    let mut tenant = tenant();
    tenant.spec.delivery.smarthost = Some(crate::crd::mail_tenant::Smarthost {
        host: "smtp.upstream.example".into(),
        port: 587,
        credentials_secret: Some("upstream".into()),
    });
    let [_, _, egress] = network_policies(&tenant).map(|p| to_json(&p));
    assert_eq!(
        egress["spec"]["egress"][1]["ports"],
        json!([{ "protocol": "TCP", "port": 587 }])
    );
    let config = relay_config(&tenant, &[], &[]);
    assert_eq!(
        config.delivery.mode,
        DeliveryMode::Smarthost {
            host: "smtp.upstream.example".into(),
            port: 587,
            credentials_dir: Some("/etc/mailwarden/smarthost".into()),
        }
    );
}

#[test]
fn no_submitters_admits_nobody() {
    let mut tenant = tenant();
    tenant.spec.submitters.clear();
    let [_, submission, _] = network_policies(&tenant).map(|p| to_json(&p));
    assert_eq!(submission["spec"]["ingress"], json!([]));
}

#[test]
fn services_expose_both_submission_ports() {
    let [submission, headless] = services(&tenant()).map(|s| to_json(&s));
    assert_eq!(submission["metadata"]["name"], "st-olaf-relay");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    let ports: Vec<i64> = submission["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [465, 587]);
}

#[test]
fn server_certificate_names_cover_public_and_service_names() {
    assert_eq!(
        Names::of(&tenant()).server_dns_names("relay.st-olaf.example"),
        [
            "relay.st-olaf.example",
            "st-olaf-relay.tenant-st-olaf.svc",
            "st-olaf-relay.tenant-st-olaf.svc.cluster.local"
        ]
    );
}

fn requiring_smtp_auth() -> MailTenant {
    let mut tenant = tenant();
    tenant.spec.relay.smtp_auth = crate::crd::mail_tenant::SmtpAuthMode::Required;
    tenant
        .spec
        .clients
        .push(crate::crd::mail_tenant::ClientIdentity {
            name: "portal".into(),
        });
    tenant
}

#[test]
fn smtp_auth_is_off_unless_required() {
    let tenant = tenant();
    assert_eq!(relay_config(&tenant, &domains(), &[]).smtp_auth, None);
    assert!(client_passwords(&tenant, &Default::default()).is_empty());
    let set = to_json(&stateful_set(&tenant, &domains(), "h"));
    let volumes = set["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    assert!(volumes.iter().all(|v| v["name"] != "credentials"));
}

#[test]
fn required_smtp_auth_keeps_passwords_and_mounts_their_digests() {
    let tenant = requiring_smtp_auth();
    let stored = std::collections::BTreeMap::from([("ehr".to_string(), "kept".to_string())]);
    let passwords = client_passwords(&tenant, &stored);
    assert_eq!(passwords["ehr"], "kept", "a stored password is reused");
    assert_eq!(passwords["portal"].len(), 43, "32 random bytes, base64url");
    assert_ne!(
        passwords["portal"],
        client_passwords(&tenant, &stored)["portal"],
        "a missing password is generated afresh"
    );

    let file = credentials_file(&passwords);
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), 2);
    // SHA-256 of "kept".
    assert_eq!(
        lines[0],
        "ehr:sha256:79f076abdd19a752db7267bfff2f9022161d120dea919fdaca2ffdfc24ca8c96"
    );
    assert!(lines[1].starts_with("portal:sha256:"));
    assert!(
        !file.contains(&passwords["portal"]),
        "only digests reach the relay"
    );

    let config = relay_config(&tenant, &domains(), &[]);
    assert_eq!(
        config.smtp_auth.unwrap().credentials_file.to_str(),
        Some("/etc/mailwarden/credentials/credentials")
    );
    let set = to_json(&stateful_set(&tenant, &domains(), "h"));
    let pod = &set["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "credentials")
        .unwrap();
    assert_eq!(
        volume["secret"],
        json!({ "secretName": "st-olaf-relay-credentials", "defaultMode": 0o440 })
    );
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    assert!(mounts.contains(&json!({
        "name": "credentials", "mountPath": "/etc/mailwarden/credentials", "readOnly": true
    })));
}

#[test]
fn client_secrets_carry_their_login_only_when_given_a_password() {
    let tenant = requiring_smtp_auth();
    let leaf = crate::pki::StoredLeaf {
        cert_pem: "CERT".into(),
        key_pem: "KEY".into(),
        bundle_pem: "BUNDLE".into(),
    };
    let with = client_secret(
        &tenant,
        "st-olaf-client-ehr".into(),
        "ehr",
        &leaf,
        Some("pw"),
    );
    let data = with.data.as_ref().unwrap();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["ca.crt", "password", "tls.crt", "tls.key", "username"]
    );
    assert_eq!(data["username"].0, b"ehr");
    assert_eq!(read_password(&with).as_deref(), Some("pw"));

    let without = client_secret(&tenant, "st-olaf-client-ehr".into(), "ehr", &leaf, None);
    let keys: Vec<&str> = without
        .data
        .as_ref()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(read_password(&without), None);
}
