//! The example tenant's whole life on a real control plane: applied, Ready, relay pods
//! running on kwok nodes, certificates that verify, exactly the intended NetworkPolicies, no
//! writes in steady state, a spec edit that rolls the relay, and deletion that removes it all.

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use mailwarden_e2e::{
    kubectl, kubectl_stdin, operator_counter, reconcile_tenant_twice, repo, wait_for,
};
use mailwarden_operator::crd::{MailTenant, find_condition};
use serde_json::json;

const NS: &str = "tenant-st-olaf";
const TENANT: &str = "st-olaf";
const SELECTOR: &str = "mailwarden.io/tenant=st-olaf";

async fn condition(client: &Client, type_: &str) -> Option<(String, String, String)> {
    let tenants: Api<MailTenant> = Api::namespaced(client.clone(), NS);
    let tenant = tenants.get_opt(TENANT).await.ok()??;
    let status = tenant.status?;
    let c = find_condition(&status.conditions, type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn wait_ready(client: &Client, generation: i64) {
    let tenants: Api<MailTenant> = Api::namespaced(client.clone(), NS);
    wait_for(
        "the tenant to be Ready at the current generation",
        || async {
            let tenant = tenants.get(TENANT).await?;
            let status = tenant.status.unwrap_or_default();
            let ready = find_condition(&status.conditions, "Ready")
                .cloned()
                .unwrap_or_default();
            if ready.status == "True" && ready.observed_generation >= generation {
                return Ok(Some(()));
            }
            anyhow::bail!(
                "Ready={} reason={} message={}",
                ready.status,
                ready.reason,
                ready.message
            )
        },
    )
    .await;
}

fn write_temp(name: &str, content: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("mailwarden-e2e-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

fn secret_text(secret: &Secret, key: &str) -> String {
    let data = secret.data.as_ref().expect("secret data");
    String::from_utf8(data[key].0.clone()).unwrap()
}

fn openssl_verify(bundle: &str, cert: &str, purpose: &str) -> String {
    let bundle = write_temp("bundle.pem", bundle);
    let cert = write_temp(&format!("{purpose}.pem"), cert);
    let output = Command::new("openssl")
        .args(["verify", "-purpose", purpose, "-CAfile"])
        .arg(&bundle)
        .arg(&cert)
        .output()
        .expect("openssl (Debian package openssl) is installed");
    let text = String::from_utf8_lossy(&output.stdout)
        .trim()
        .replace(&cert.display().to_string(), "CERT");
    std::fs::remove_file(bundle).ok();
    std::fs::remove_file(cert).ok();
    text
}

/// resourceVersion of every object of the tenant, by kind and name: what it owns (by label),
/// the MailTenant itself and, with `workload`, the pods and volume claims the StatefulSet made.
async fn objects(client: &Client, workload: bool) -> anyhow::Result<BTreeMap<String, String>> {
    let by_label = ListParams::default().labels(SELECTOR);
    let by_instance = ListParams::default().labels("app.kubernetes.io/instance=st-olaf");
    let mut all = BTreeMap::new();
    macro_rules! collect {
        ($kind:ty, $list:expr) => {
            for object in Api::<$kind>::namespaced(client.clone(), NS)
                .list($list)
                .await?
            {
                let key = format!("{}/{}", stringify!($kind), object.name_any());
                all.insert(key, object.resource_version().unwrap_or_default());
            }
        };
    }
    collect!(Secret, &by_label);
    collect!(ConfigMap, &by_label);
    collect!(Service, &by_label);
    collect!(NetworkPolicy, &by_label);
    collect!(PodDisruptionBudget, &by_label);
    collect!(StatefulSet, &by_label);
    collect!(MailTenant, &ListParams::default());
    if workload {
        collect!(Pod, &by_instance);
        collect!(PersistentVolumeClaim, &by_instance);
    }
    Ok(all)
}

#[tokio::test]
async fn example_tenant_lives_and_dies_cleanly() {
    let client = mailwarden_e2e::client().await;
    // The example tenant draws one sending address from the example pool.
    for example in [
        "examples/20-sending-ip-pool.yaml",
        "examples/30-tenant.yaml",
    ] {
        let path = repo().join(example);
        kubectl(&["apply", "-f", path.to_str().unwrap()]).expect("the example applies");
    }

    // Ready, from the StatefulSet's real readiness.
    wait_ready(&client, 1).await;
    for type_ in ["PKIReady", "RelayReady", "NetworkIsolated", "IPsAllocated"] {
        let (status, _, message) = condition(&client, type_).await.unwrap();
        assert_eq!(status, "True", "{type_}: {message}");
    }
    let (_, reason, message) = condition(&client, "RelayReady").await.unwrap();
    assert_eq!(
        (reason.as_str(), message.as_str()),
        ("ReplicasReady", "2 of 2 relay pods are ready")
    );

    // The relay pods are scheduled on kwok nodes, in different zones, and running.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pods = pods
        .list(&ListParams::default().labels("app.kubernetes.io/instance=st-olaf"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 2);
    let mut zones = Vec::new();
    for pod in &pods.items {
        assert_eq!(
            pod.status.as_ref().unwrap().phase.as_deref(),
            Some("Running")
        );
        let node = pod
            .spec
            .as_ref()
            .unwrap()
            .node_name
            .clone()
            .expect("scheduled");
        let node = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
            .get(&node)
            .await
            .unwrap();
        assert_eq!(
            node.annotations()
                .get("kwok.x-k8s.io/node")
                .map(String::as_str),
            Some("fake")
        );
        zones.push(node.labels()["topology.kubernetes.io/zone"].clone());
    }
    zones.dedup();
    assert_eq!(
        zones.len(),
        2,
        "anti-affinity spreads the relay pods across zones: {zones:?}"
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let claims = claims
        .list(&ListParams::default().labels("app.kubernetes.io/instance=st-olaf"))
        .await
        .unwrap();
    assert_eq!(claims.items.len(), 2);
    assert!(
        claims
            .items
            .iter()
            .all(|c| c.status.as_ref().unwrap().phase.as_deref() == Some("Bound"))
    );

    // The certificate chain verifies with openssl, for the server and for each client.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let server = secrets.get("st-olaf-relay-tls").await.unwrap();
    assert_eq!(server.type_.as_deref(), Some("kubernetes.io/tls"));
    let bundle = secret_text(&server, "ca.crt");
    assert_eq!(
        openssl_verify(&bundle, &secret_text(&server, "tls.crt"), "sslserver"),
        "CERT: OK"
    );
    for client_name in ["ehr", "patient-portal"] {
        let secret = secrets
            .get(&format!("st-olaf-client-{client_name}"))
            .await
            .unwrap();
        assert_eq!(
            openssl_verify(&bundle, &secret_text(&secret, "tls.crt"), "sslclient"),
            "CERT: OK"
        );
    }
    let ca = secrets.get("st-olaf-ca").await.unwrap();
    assert_eq!(secret_text(&ca, "ca.crt"), bundle);

    // Exactly the intended NetworkPolicies.
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), NS);
    let mut names: Vec<String> = policies
        .list(&ListParams::default().labels(SELECTOR))
        .await
        .unwrap()
        .iter()
        .map(|p| p.name_any())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "st-olaf-relay-allow-egress",
            "st-olaf-relay-allow-submission",
            "st-olaf-relay-deny-all"
        ]
    );
    let pods_selector = json!({ "matchLabels": {
        "app.kubernetes.io/instance": "st-olaf", "app.kubernetes.io/name": "mailwarden-relay" } });
    let deny =
        serde_json::to_value(policies.get("st-olaf-relay-deny-all").await.unwrap().spec).unwrap();
    assert_eq!(
        deny,
        json!({ "podSelector": pods_selector, "policyTypes": ["Ingress", "Egress"] })
    );
    let submission = serde_json::to_value(
        policies
            .get("st-olaf-relay-allow-submission")
            .await
            .unwrap()
            .spec,
    )
    .unwrap();
    assert_eq!(
        submission,
        json!({
            "podSelector": pods_selector,
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{ "podSelector": { "matchLabels": { "app.kubernetes.io/name": "ehr" } } }],
                "ports": [{ "protocol": "TCP", "port": 465 }, { "protocol": "TCP", "port": 587 }],
            }],
        })
    );
    let egress = serde_json::to_value(
        policies
            .get("st-olaf-relay-allow-egress")
            .await
            .unwrap()
            .spec,
    )
    .unwrap();
    assert_eq!(
        egress["egress"][1],
        json!({
            "to": [
                { "ipBlock": { "cidr": "0.0.0.0/0", "except": [
                        "169.254.0.0/16", "100.100.100.200/32",
                        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                    ] } },
                { "ipBlock": { "cidr": "::/0", "except": ["fe80::/10", "fd00:ec2::254/128", "fc00::/7"] } },
            ],
            "ports": [{ "protocol": "TCP", "port": 25 }, { "protocol": "TCP", "port": 443 }],
        })
    );

    // Steady state: a reconcile of the unchanged tenant writes nothing.
    let before = objects(&client, false).await.unwrap();
    let writes = operator_counter("mailwarden_writes_total", "mailtenant");
    reconcile_tenant_twice(NS, TENANT).await;
    let after_writes = operator_counter("mailwarden_writes_total", "mailtenant");
    assert_eq!(
        after_writes, writes,
        "an unchanged tenant must cost no writes"
    );
    let mut after = objects(&client, false).await.unwrap();
    let mut before = before;
    // The annotations themselves changed the tenant's resourceVersion; nothing else may move.
    let tenant_key = format!("MailTenant/{TENANT}");
    after.remove(&tenant_key);
    before.remove(&tenant_key);
    assert_eq!(after, before);

    // Drift is corrected: a hand edit that opens the submission policy to everyone, and a
    // deleted ConfigMap, are put back.
    let intended = submission.clone();
    kubectl(&[
        "-n",
        NS,
        "patch",
        "networkpolicy",
        "st-olaf-relay-allow-submission",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"ingress":[{}]}}"#,
    ])
    .unwrap();
    kubectl(&["-n", NS, "delete", "configmap", "st-olaf-relay-config"]).unwrap();
    wait_for("the submission policy to be restored", || async {
        let spec =
            serde_json::to_value(policies.get("st-olaf-relay-allow-submission").await?.spec)?;
        Ok((spec == intended).then_some(()))
    })
    .await;
    let config: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    wait_for("the relay ConfigMap to be recreated", || async {
        Ok(config.get_opt("st-olaf-relay-config").await?.map(|_| ()))
    })
    .await;

    // A spec extended where the operator sets nothing (hostNetwork bypasses every policy) is
    // replaced whole.
    kubectl(&[
        "-n",
        NS,
        "patch",
        "statefulset",
        "st-olaf-relay",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"hostNetwork":true}}}}"#,
    ])
    .unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    wait_for("hostNetwork to be removed from the relay", || async {
        let set = sets.get("st-olaf-relay").await?;
        let host_network = set.spec.template.spec.and_then(|pod| pod.host_network);
        Ok((host_network.is_none()).then_some(()))
    })
    .await;

    // A policy of someone else's that selects the relay pods is reported.
    let open = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-everything\n\
                spec:\n  podSelector: {}\n  ingress: [{}]\n  policyTypes: [Ingress]\n";
    kubectl_stdin(&["-n", NS, "apply", "-f", "-"], Some(open)).unwrap();
    wait_for("NetworkIsolated to report the foreign policy", || async {
        let c = condition(&client, "NetworkIsolated").await;
        Ok(c.filter(|(status, reason, _)| {
            status == "False" && reason == "ForeignPolicySelectsRelay"
        }))
    })
    .await;
    kubectl(&["-n", NS, "delete", "networkpolicy", "allow-everything"]).unwrap();
    wait_ready(&client, 1).await;

    // A spec edit rolls the relay: new configuration, new pod template hash, Ready again.
    let old_hash = sets
        .get("st-olaf-relay")
        .await
        .unwrap()
        .spec
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap()["mailwarden.io/config-hash"]
        .clone();
    let tenants: Api<MailTenant> = Api::namespaced(client.clone(), NS);
    let patch =
        json!({ "spec": { "relay": { "maxRecipients": 20 }, "clients": [{ "name": "ehr" }] } });
    tenants
        .patch(TENANT, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let generation = tenants
        .get(TENANT)
        .await
        .unwrap()
        .metadata
        .generation
        .unwrap();
    wait_ready(&client, generation).await;
    let set = sets.get("st-olaf-relay").await.unwrap();
    let new_hash =
        set.spec.template.metadata.unwrap().annotations.unwrap()["mailwarden.io/config-hash"]
            .clone();
    assert_ne!(new_hash, old_hash);
    let status = set.status.unwrap();
    assert_eq!(status.current_revision, status.update_revision);
    let toml = config
        .get("st-olaf-relay-config")
        .await
        .unwrap()
        .data
        .unwrap()["relay.toml"]
        .clone();
    assert!(toml.contains("max-recipients = 20\n"), "{toml}");
    // The identity removed from spec.clients lost its Secret; the other kept its certificate.
    assert!(
        secrets
            .get_opt("st-olaf-client-patient-portal")
            .await
            .unwrap()
            .is_none()
    );
    let ehr = secrets.get("st-olaf-client-ehr").await.unwrap();
    assert_eq!(
        openssl_verify(&bundle, &secret_text(&ehr, "tls.crt"), "sslclient"),
        "CERT: OK"
    );

    // Deletion removes everything the tenant created; the namespace stays.
    tenants.delete(TENANT, &Default::default()).await.unwrap();
    wait_for("every object of the tenant to be gone", || async {
        let left: Vec<String> = objects(&client, true).await?.into_keys().collect();
        if left.is_empty() {
            Ok(Some(()))
        } else {
            anyhow::bail!("still present: {left:?}")
        }
    })
    .await;
    kubectl(&["delete", "sendingippool", "public-egress"]).unwrap();
}
