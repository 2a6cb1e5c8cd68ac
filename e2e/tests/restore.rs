//! Restoring a tenant's CA from a backup: a Secret restored without owner references, but with
//! the tenant's label, is adopted by the re-created MailTenant, which keeps that CA and issues
//! under it. An unlabelled Secret of the same name is never taken over, by a tenant or by a
//! SendingDomain.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use mailwarden_e2e::{kubectl, kubectl_stdin, wait_for};
use mailwarden_operator::crd::sending_domain::SendingDomain;
use mailwarden_operator::crd::{Condition, MailTenant, find_condition};

fn tenant(ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n\
         apiVersion: mailwarden.io/v1alpha1\nkind: MailTenant\nmetadata:\n  name: t\n  namespace: {ns}\n\
         spec:\n  relay:\n    hostname: relay.{ns}.example\n    replicas: 1\n    spoolSize: 1Gi\n"
    )
}

async fn ready(client: &Client, ns: &str) -> Condition {
    let tenants: Api<MailTenant> = Api::namespaced(client.clone(), ns);
    let status = tenants.get("t").await.unwrap().status.unwrap_or_default();
    find_condition(&status.conditions, "Ready")
        .cloned()
        .unwrap_or_default()
}

/// The Secret as a backup holds it: data, type and labels, nothing the cluster assigned.
fn as_backed_up(secret: &Secret) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: secret.metadata.name.clone(),
            namespace: secret.metadata.namespace.clone(),
            labels: secret.metadata.labels.clone(),
            ..Default::default()
        },
        type_: secret.type_.clone(),
        data: secret.data.clone(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_restored_ca_is_adopted_and_a_foreign_secret_is_refused() {
    let client = mailwarden_e2e::client().await;
    let ns = "e2e-restore";
    kubectl_stdin(&["apply", "-f", "-"], Some(&tenant(ns))).expect("tenant applies");
    wait_for("the tenant to be Ready", || async {
        Ok((ready(&client, ns).await.status == "True").then_some(()))
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let backup = as_backed_up(&secrets.get("t-ca").await.unwrap());

    // The tenant and everything it owned go; the backup comes back first.
    let tenants: Api<MailTenant> = Api::namespaced(client.clone(), ns);
    tenants.delete("t", &DeleteParams::default()).await.unwrap();
    wait_for("the CA Secret to be collected with its tenant", || async {
        Ok(secrets.get_opt("t-ca").await?.is_none().then_some(()))
    })
    .await;
    secrets
        .create(&PostParams::default(), &backup)
        .await
        .unwrap();
    kubectl_stdin(&["apply", "-f", "-"], Some(&tenant(ns))).expect("tenant applies again");
    wait_for("the re-created tenant to be Ready", || async {
        let c = ready(&client, ns).await;
        if c.status == "True" {
            return Ok(Some(()));
        }
        anyhow::bail!("{} {}: {}", c.status, c.reason, c.message)
    })
    .await;

    let adopted = secrets.get("t-ca").await.unwrap();
    assert_eq!(
        adopted.data, backup.data,
        "the restored CA is kept as it was"
    );
    let uid = tenants.get("t").await.unwrap().meta().uid.clone();
    assert_eq!(
        adopted.owner_references().first().map(|r| r.uid.clone()),
        uid,
        "the re-created tenant owns the restored CA"
    );
    let ca = String::from_utf8(backup.data.as_ref().unwrap()["ca.crt"].0.clone()).unwrap();
    let server = secrets.get("t-relay-tls").await.unwrap();
    let bundle = String::from_utf8(server.data.as_ref().unwrap()["ca.crt"].0.clone()).unwrap();
    assert!(
        bundle.contains(ca.trim()),
        "the relay's trust bundle is the restored CA"
    );

    // A Secret of the CA's name that nobody labelled as this tenant's is left alone.
    let foreign_ns = "e2e-restore-foreign";
    kubectl(&["create", "namespace", foreign_ns]).unwrap();
    kubectl(&[
        "-n",
        foreign_ns,
        "create",
        "secret",
        "generic",
        "t-ca",
        "--from-literal=ca.crt=not mine",
    ])
    .unwrap();
    kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&tenant(foreign_ns).replace(
            &format!("kind: Namespace\nmetadata:\n  name: {foreign_ns}\n---\n"),
            "",
        )),
    )
    .expect("tenant applies");
    let refused = wait_for("the tenant to refuse the foreign Secret", || async {
        let c = ready(&client, foreign_ns).await;
        Ok((c.reason == "ApplyFailed").then_some(c.message))
    })
    .await;
    assert_eq!(
        refused,
        "failed to apply Secret t-ca: it already exists and is not owned by this MailTenant; \
         rename or remove it"
    );
    let untouched: Api<Secret> = Api::namespaced(client.clone(), foreign_ns);
    let untouched = untouched.get("t-ca").await.unwrap();
    assert_eq!(untouched.data.unwrap()["ca.crt"].0, b"not mine");
    assert!(untouched.metadata.owner_references.is_none());

    for namespace in [ns, foreign_ns] {
        kubectl(&["delete", "namespace", namespace, "--wait=false"]).unwrap();
    }
}

/// A Secret that happens to have a SendingDomain's key Secret name, but is somebody else's, is
/// neither written nor deleted with the domain.
#[tokio::test]
async fn a_foreign_secret_under_the_dkim_name_is_left_alone() {
    let client = mailwarden_e2e::client().await;
    let ns = "e2e-foreign-dkim";
    kubectl(&["create", "namespace", ns]).unwrap();
    kubectl(&[
        "-n",
        ns,
        "create",
        "secret",
        "generic",
        "z-dkim",
        "--from-literal=foo=precious-user-data",
    ])
    .unwrap();
    let domain = format!(
        "apiVersion: mailwarden.io/v1alpha1\nkind: SendingDomain\nmetadata:\n  name: z\n  namespace: {ns}\n\
         spec:\n  domain: z.example\n  dns:\n    provider: Manual\n  spf:\n    conflictPolicy: Refuse\n    \
         includes: [_spf.z.example]\n  dmarc:\n    policy: reject\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], Some(&domain)).expect("domain applies");
    let domains: Api<SendingDomain> = Api::namespaced(client.clone(), ns);
    let ready = wait_for("the domain to refuse the foreign Secret", || async {
        let status = domains.get("z").await?.status.unwrap_or_default();
        Ok(find_condition(&status.conditions, "Ready")
            .filter(|c| c.reason == "KeySecretConflict")
            .cloned())
    })
    .await;
    assert_eq!(
        ready.message,
        format!(
            "DKIMReady: step keys: secret {ns}/z-dkim already exists and is not this \
             SendingDomain's; rename or remove it, since the domain keeps its DKIM keys under \
             that name"
        )
    );

    kubectl(&["-n", ns, "delete", "sendingdomain", "z", "--wait=true"]).unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let kept = secrets.get("z-dkim").await.unwrap();
    let data = kept.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["foo"]);
    assert_eq!(data["foo"].0, b"precious-user-data");
    assert!(kept.metadata.owner_references.is_none());
    kubectl(&["delete", "namespace", ns, "--wait=false"]).unwrap();
}
