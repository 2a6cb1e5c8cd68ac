//! A SendingDomain on a real control plane with the RFC 2136 provider against a real Knot
//! server: it reaches Ready, Knot serves exactly the rendered records, a message signed with
//! the key from the Secret verifies with dkimpy against them, an unchanged domain makes no
//! writes, an on-demand rotation keeps both generations verifying, and deletion removes only
//! the operator's records.

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use mailwarden_e2e::{counter, kubectl_stdin, operator_metrics, repo, wait_for};
use mailwarden_operator::crd::find_condition;
use mailwarden_operator::crd::sending_domain::{SendingDomain, SendingDomainStatus};
use mailwarden_operator::dkim::rotation::Phase;
use mailwarden_operator::dns::record::quoted_character_strings;
use serde_json::json;

const NS: &str = "e2e-sending-domain";
const NAME: &str = "example-test";
const ZONE: &str = "example.test";
const TSIG: &str = "bWFpbHdhcmRlbi10ZXN0LXRzaWcta2V5LTMyLWJ5dGU=";
const VERIFICATION: &str = "\"site-verification=abc\"";
const LEGACY_SPF: &str = "\"v=spf1 include:_spf.legacy.example -all\"";

struct Knot {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl Knot {
    fn start() -> Knot {
        let port = loop {
            let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = tcp.local_addr().unwrap().port();
            if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
                break port;
            }
        };
        let dir = std::env::temp_dir().join(format!("mailwarden-e2e-knot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.display();
        let config = format!(
            "server:\n    rundir: \"{path}\"\n    listen: 127.0.0.1@{port}\n\
             database:\n    storage: \"{path}\"\n\
             key:\n  - id: mailwarden-e2e\n    algorithm: hmac-sha256\n    secret: {TSIG}\n\
             acl:\n  - id: update\n    key: mailwarden-e2e\n    action: update\n\
             template:\n  - id: default\n    storage: \"{path}\"\n    zonefile-sync: -1\n\
             zone:\n  - domain: {ZONE}\n    file: {ZONE}.zone\n    acl: update\n"
        );
        let zone = format!(
            "$ORIGIN {ZONE}.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\n\
             ns1 A 127.0.0.1\n@ TXT {VERIFICATION}\nlegacy TXT {LEGACY_SPF}\n"
        );
        std::fs::write(dir.join("knot.conf"), config).unwrap();
        std::fs::write(dir.join(format!("{ZONE}.zone")), zone).unwrap();
        let child = Command::new("knotd")
            .arg("-c")
            .arg(dir.join("knot.conf"))
            .stdout(Stdio::null())
            .spawn()
            .expect("knotd is not installed: run `apt-get install -y knot knot-dnsutils`");
        Knot { port, child, dir }
    }

    fn dig(&self, rtype: &str, name: &str) -> String {
        let output = Command::new("kdig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+short",
                "+tcp",
                rtype,
                name,
            ])
            .output()
            .expect("kdig is not installed: run `apt-get install -y knot-dnsutils`");
        let text = String::from_utf8_lossy(&output.stdout);
        let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        lines.sort();
        lines.join("\n")
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn manifest(port: u16) -> String {
    json!({
        "apiVersion": "mailwarden.io/v1alpha1", "kind": "SendingDomain",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "domain": ZONE,
            "dns": {"provider": "RFC2136", "rfc2136": {
                "server": format!("127.0.0.1:{port}"), "zone": ZONE,
                "tsigKeyName": "mailwarden-e2e", "tsigSecretRef": {"name": "tsig", "key": "secret"}}},
            "resolvers": [format!("127.0.0.1:{port}")],
            "spf": {"conflictPolicy": "Refuse", "includes": ["_spf.example.net"]},
            "dmarc": {"policy": "reject", "aggregateReports": [format!("mailto:dmarc@{ZONE}")]},
            "mtaSts": {"mode": "enforce", "mx": [format!("mx.{ZONE}")]},
            "tlsReports": [format!("mailto:tls@{ZONE}")]
        }
    })
    .to_string()
}

async fn status_when(
    domains: &Api<SendingDomain>,
    what: &str,
    done: impl Fn(&SendingDomainStatus) -> bool,
) -> SendingDomainStatus {
    wait_for(what, || async {
        let status = domains.get(NAME).await?.status.unwrap_or_default();
        let ready = find_condition(&status.conditions, "Ready")
            .cloned()
            .unwrap_or_default();
        if done(&status) {
            return Ok(Some(status));
        }
        anyhow::bail!(
            "Ready={} reason={} message={}",
            ready.status,
            ready.reason,
            ready.message
        )
    })
    .await
}

fn dkimpy(port: u16, selector: &str, algorithm: &str, pem: &[u8]) {
    let key = std::env::temp_dir().join(format!("mailwarden-e2e-{selector}.pem"));
    std::fs::write(&key, pem).unwrap();
    let cache = std::env::var("MAILWARDEN_CACHE")
        .unwrap_or_else(|_| format!("{}/.cache/mailwarden", std::env::var("HOME").unwrap()));
    let output = Command::new(format!("{cache}/venv/bin/python"))
        .arg(repo().join("operator/tests/support/dkim_sign_verify.py"))
        .args(["127.0.0.1", &port.to_string(), ZONE, selector, algorithm])
        .arg(&key)
        .output()
        .expect("the venv with dkimpy is missing: run e2e/setup.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stdout.trim(), format!("verified {selector}"), "{stderr}");
}

async fn verify_signing(secrets: &Api<Secret>, status: &SendingDomainStatus, port: u16) {
    let signing = status.relay_signing.as_ref().expect("relaySigning");
    let secret = secrets.get(&signing.secret_name).await.unwrap();
    let data = secret.data.unwrap();
    for generation in &status.dkim {
        for selector in &generation.selectors {
            dkimpy(
                port,
                &selector.name,
                selector.algorithm.as_str(),
                &data[&selector.key].0,
            );
        }
    }
}

#[tokio::test]
async fn sending_domain_publishes_verifies_rotates_and_cleans_up() {
    let knot = Knot::start();
    let client = mailwarden_e2e::client().await;
    kubectl_stdin(&["create", "namespace", NS], None).expect("namespace");
    let tsig = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: tsig\n  namespace: {NS}\n\
         stringData:\n  secret: {TSIG}\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], Some(&tsig)).expect("tsig secret");
    kubectl_stdin(&["apply", "-f", "-"], Some(&manifest(knot.port))).expect("sendingdomain");
    let domains: Api<SendingDomain> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);

    // Ready, with exactly the rendered records served.
    let is_ready = |s: &SendingDomainStatus| {
        find_condition(&s.conditions, "Ready").is_some_and(|c| c.is_true())
    };
    let status = status_when(&domains, "the domain to be Ready", is_ready).await;
    assert_eq!(
        knot.dig("TXT", ZONE),
        format!("{VERIFICATION}\n\"v=spf1 include:_spf.example.net -all\"")
    );
    assert_eq!(
        knot.dig("TXT", "_dmarc.example.test"),
        "\"v=DMARC1; p=reject; rua=mailto:dmarc@example.test\""
    );
    for record in &status.records {
        assert_eq!(record.verification, "Verified", "{}", record.name);
        let served = knot.dig("TXT", &record.name);
        let quoted = quoted_character_strings(&record.value);
        assert!(
            served.lines().any(|line| line == quoted),
            "{}: {served}",
            record.name
        );
    }
    verify_signing(&secrets, &status, knot.port).await;

    // Steady state: a reconcile of the unchanged domain writes nothing, to DNS or the API.
    let before = operator_metrics();
    let writes = counter(
        &before,
        "mailwarden_writes_total",
        "controller=\"sendingdomain\"",
    );
    let reconciles = counter(
        &before,
        "mailwarden_reconciles_total",
        "controller=\"sendingdomain\"",
    );
    let serial = knot.dig("SOA", ZONE);
    let touch = json!({"metadata": {"labels": {"e2e-touch": "1"}}});
    domains
        .patch(NAME, &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .unwrap();
    wait_for("a reconcile of the unchanged domain", || async {
        let now = counter(
            &operator_metrics(),
            "mailwarden_reconciles_total",
            "controller=\"sendingdomain\"",
        );
        Ok((now > reconciles).then_some(()))
    })
    .await;
    let after = operator_metrics();
    assert_eq!(
        counter(
            &after,
            "mailwarden_writes_total",
            "controller=\"sendingdomain\""
        ),
        writes
    );
    assert_eq!(knot.dig("SOA", ZONE), serial);

    // Rotation on demand: the new generation signs, the old one stays published; both verify.
    let rotate = json!({"metadata": {"annotations": {"mailwarden.io/rotate-dkim": "e2e-1"}}});
    domains
        .patch(NAME, &PatchParams::default(), &Patch::Merge(&rotate))
        .await
        .unwrap();
    let rotated = status_when(&domains, "generation 2 to be active", |s| {
        let phases: Vec<(u32, Phase)> = s.dkim.iter().map(|g| (g.generation, g.phase)).collect();
        phases == [(1, Phase::Retiring), (2, Phase::Active)] && is_ready(s)
    })
    .await;
    let signing = rotated.relay_signing.as_ref().unwrap();
    assert!(signing.selectors.iter().all(|s| s.name.starts_with("mw2-")));
    assert_eq!(
        rotated
            .records
            .iter()
            .filter(|r| r.purpose == "DKIM")
            .count(),
        4
    );
    verify_signing(&secrets, &rotated, knot.port).await;

    // Deletion removes the operator's records and nothing else.
    kubectl_stdin(
        &["-n", NS, "delete", "sendingdomain", NAME, "--wait=true"],
        None,
    )
    .unwrap();
    assert_eq!(knot.dig("TXT", ZONE), VERIFICATION);
    assert_eq!(knot.dig("TXT", "legacy.example.test"), LEGACY_SPF);
    for record in &rotated.records {
        let served = knot.dig("TXT", &record.name);
        let quoted = quoted_character_strings(&record.value);
        assert!(
            !served.lines().any(|line| line == quoted),
            "{} left behind",
            record.name
        );
    }
    assert_eq!(knot.dig("TXT", "_dmarc.example.test"), "");
    kubectl_stdin(&["delete", "namespace", NS, "--wait=false"], None).unwrap();
}
