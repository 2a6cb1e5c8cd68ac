//! Sending addresses on a real control plane: each address belongs to one tenant, oldest
//! first; a shortage and an address listed by two pools are reported, never papered over; a
//! tenant's deletion frees its addresses for the next; the relay binds what it was given.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use mailwarden_e2e::{kubectl, kubectl_stdin, wait_for};
use mailwarden_operator::crd::sending_domain::SendingDomain;
use mailwarden_operator::crd::{Condition, MailTenant, SendingIPPool, find_condition};
use mailwarden_relay_config::RelayConfig;

fn pool(name: &str, addresses: &[&str]) -> String {
    format!(
        "apiVersion: mailwarden.io/v1alpha1\nkind: SendingIPPool\nmetadata:\n  name: {name}\nspec:\n  \
         addresses: [{}]\n  egress:\n    mode: SourceBinding\n",
        addresses.join(", ")
    )
}

fn tenant(ns: &str, count: u32) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n\
         apiVersion: mailwarden.io/v1alpha1\nkind: MailTenant\nmetadata:\n  name: t\n  namespace: {ns}\n\
         spec:\n  relay:\n    hostname: relay.{ns}.example\n    replicas: 1\n    spoolSize: 1Gi\n  \
         sendingIPPool:\n    name: e2e-pool\n    count: {count}\n"
    )
}

async fn tenant_condition(client: &kube::Client, ns: &str, type_: &'static str) -> Condition {
    let tenants: Api<MailTenant> = Api::namespaced(client.clone(), ns);
    let status = tenants.get("t").await.unwrap().status.unwrap_or_default();
    find_condition(&status.conditions, type_)
        .cloned()
        .unwrap_or_default()
}

async fn wait_tenant(client: &kube::Client, ns: &str, reason: &str, message: &str) {
    wait_for(&format!("{ns} IPsAllocated {reason}"), || async {
        let c = tenant_condition(client, ns, "IPsAllocated").await;
        if c.reason == reason && c.message == message {
            return Ok(Some(()));
        }
        anyhow::bail!("{} {}: {}", c.status, c.reason, c.message)
    })
    .await;
}

async fn wait_pool(client: &kube::Client, name: &str, type_: &str, reason: &str, message: &str) {
    let pools: Api<SendingIPPool> = Api::all(client.clone());
    wait_for(&format!("pool {name} {type_} {reason}"), || async {
        let status = pools.get(name).await?.status.unwrap_or_default();
        let c = find_condition(&status.conditions, type_)
            .cloned()
            .unwrap_or_default();
        if c.reason == reason && c.message == message {
            return Ok(Some(()));
        }
        anyhow::bail!("{} {}: {}", c.status, c.reason, c.message)
    })
    .await;
}

#[tokio::test]
async fn addresses_are_exclusive_reported_and_handed_on() {
    let client = mailwarden_e2e::client().await;
    let apply = |manifest: String| kubectl_stdin(&["apply", "-f", "-"], Some(&manifest)).unwrap();
    apply(pool("e2e-pool", &["192.0.2.32/31", "198.51.100.7"]));

    // The older tenant gets the lowest two; the newer one gets what is left and waits.
    apply(tenant("e2e-ip-a", 2));
    wait_tenant(
        &client,
        "e2e-ip-a",
        "Allocated",
        "192.0.2.32, 192.0.2.33 from SendingIPPool e2e-pool",
    )
    .await;
    apply(tenant("e2e-ip-b", 2));
    wait_tenant(
        &client,
        "e2e-ip-b",
        "WaitingForAddresses",
        "1 of 2 addresses allocated from SendingIPPool e2e-pool; its status says why",
    )
    .await;
    wait_pool(
        &client,
        "e2e-pool",
        "Ready",
        "AddressesExhausted",
        "not enough free addresses for e2e-ip-b/t (1 missing)",
    )
    .await;
    // Once its relay runs, the shortage is what keeps the newer tenant from Ready.
    wait_for("e2e-ip-b Ready to name the shortage", || async {
        let ready = tenant_condition(&client, "e2e-ip-b", "Ready").await;
        Ok((ready.status == "False" && ready.reason == "WaitingForAddresses").then_some(()))
    })
    .await;

    // The relay binds exactly the allocated addresses.
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "e2e-ip-a");
    let toml = maps.get("t-relay-config").await.unwrap().data.unwrap()["relay.toml"].clone();
    let config = RelayConfig::from_toml(&toml).unwrap();
    let bound: Vec<String> = config
        .delivery
        .source_addresses
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(bound, ["192.0.2.32", "192.0.2.33"]);
    let tenants: Api<MailTenant> = Api::namespaced(client.clone(), "e2e-ip-a");
    let status = tenants.get("t").await.unwrap().status.unwrap();
    assert_eq!(status.allocated_ips, ["192.0.2.32", "192.0.2.33"]);

    // An address listed by a second pool is reported by both, stays with the tenant that holds
    // it (its reputation is that tenant's), and is handed to nobody else.
    apply(pool("e2e-pool-2", &["198.51.100.7"]));
    let shared = "198.51.100.7 also listed in pool(s) e2e-pool-2; these addresses are held back until only one pool lists them";
    wait_pool(&client, "e2e-pool", "Exclusive", "AddressesShared", shared).await;
    let pools: Api<SendingIPPool> = Api::all(client.clone());
    let second = pools
        .get("e2e-pool-2")
        .await
        .unwrap()
        .status
        .unwrap_or_default();
    assert!(second.allocations.is_empty(), "{:?}", second.allocations);
    wait_tenant(
        &client,
        "e2e-ip-b",
        "WaitingForAddresses",
        "1 of 2 addresses allocated from SendingIPPool e2e-pool; its status says why",
    )
    .await;
    let tenants_b: Api<MailTenant> = Api::namespaced(client.clone(), "e2e-ip-b");
    let kept = tenants_b
        .get("t")
        .await
        .unwrap()
        .status
        .unwrap()
        .allocated_ips;
    assert_eq!(kept, ["198.51.100.7"]);

    // Deleting the older tenant hands its addresses on; the newer one keeps its own.
    kubectl(&["delete", "namespace", "e2e-ip-a", "--wait=false"]).unwrap();
    wait_tenant(
        &client,
        "e2e-ip-b",
        "Allocated",
        "192.0.2.32, 198.51.100.7 from SendingIPPool e2e-pool",
    )
    .await;

    kubectl(&["delete", "namespace", "e2e-ip-b", "--wait=false"]).unwrap();
    kubectl(&["delete", "sendingippool", "e2e-pool", "e2e-pool-2"]).unwrap();
}

/// A domain refused because its tenant has no sending addresses yet (applied together, as a
/// GitOps sync does) is rendered as soon as the tenant gets them, with no edit to the domain.
#[tokio::test]
async fn a_domain_waiting_for_addresses_renders_when_the_tenant_gets_them() {
    let ns = "e2e-late-pool";
    let domain = format!(
        "apiVersion: mailwarden.io/v1alpha1\nkind: SendingDomain\nmetadata:\n  name: late\n  namespace: {ns}\n\
         spec:\n  domain: late.example\n  dns:\n    provider: Manual\n  spf:\n    conflictPolicy: Refuse\n  \
         dmarc:\n    policy: reject\n"
    );
    let manifest = tenant(ns, 1).replace("e2e-pool", "e2e-late-pool") + "---\n" + &domain;
    kubectl_stdin(&["apply", "-f", "-"], Some(&manifest)).expect("tenant and domain apply");
    let client = mailwarden_e2e::client().await;
    let domains: Api<SendingDomain> = Api::namespaced(client.clone(), ns);
    wait_for("the domain to be refused for want of addresses", || async {
        let status = domains.get("late").await?.status.unwrap_or_default();
        let ready = find_condition(&status.conditions, "Ready")
            .cloned()
            .unwrap_or_default();
        Ok((ready.reason == "InvalidSpec").then_some(ready.message))
    })
    .await;

    kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&pool("e2e-late-pool", &["198.51.100.77"])),
    )
    .expect("pool applies");
    let spf = wait_for("the domain's SPF record to carry the address", || async {
        let status = domains.get("late").await?.status.unwrap_or_default();
        Ok(status
            .records
            .iter()
            .find(|r| r.purpose == "SPF")
            .map(|r| r.value.clone()))
    })
    .await;
    assert_eq!(spf, "v=spf1 ip4:198.51.100.77 -all");

    kubectl(&["delete", "namespace", ns, "--wait=false"]).unwrap();
    kubectl(&["delete", "sendingippool", "e2e-late-pool", "--wait=false"]).unwrap();
}
