//! The Helm charts against the real API server: the operator chart's objects pass server-side
//! validation, and a tenant onboarded with the tenant chart becomes Ready and leaves nothing
//! behind when uninstalled.

use std::process::Command;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;
use mailwarden_e2e::{
    env, kubectl_stdin, operator_counter, reconcile_tenant_twice, repo, wait_for,
};
use mailwarden_operator::crd::{MailTenant, find_condition};

fn helm(args: &[&str]) -> Result<String, String> {
    let output = Command::new(format!("{}/helm", env("MAILWARDEN_K8S_BIN")))
        .args(args)
        .output()
        .expect("helm is built by e2e/build-control-plane.sh");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn chart(name: &str) -> String {
    repo().join("charts").join(name).display().to_string()
}

#[test]
fn operator_chart_passes_server_side_validation() {
    let rendered = helm(&[
        "template",
        "mailwarden",
        &chart("mailwarden-operator"),
        "--namespace",
        "mailwarden-system",
    ])
    .expect("the operator chart renders");
    let applied = kubectl_stdin(
        &[
            "apply",
            "--dry-run=server",
            "-n",
            "mailwarden-system",
            "-f",
            "-",
        ],
        Some(&rendered),
    )
    .expect("the API server accepts every object of the operator chart");
    for object in [
        "serviceaccount/mailwarden",
        "clusterrole.rbac.authorization.k8s.io/mailwarden",
        "clusterrolebinding.rbac.authorization.k8s.io/mailwarden",
        "role.rbac.authorization.k8s.io/mailwarden-leader-election",
        "deployment.apps/mailwarden",
        "service/mailwarden-metrics",
    ] {
        assert!(
            applied.contains(&format!("{object} created (server dry run)")),
            "{object} missing:\n{applied}"
        );
    }
}

#[test]
fn tenant_chart_requires_a_hostname() {
    let error = helm(&["template", "acme", &chart("mailwarden-tenant")]).unwrap_err();
    assert!(
        error.contains("relay.hostname is required: the relay's public DNS name"),
        "{error}"
    );
}

#[test]
fn tenant_chart_passes_optional_relay_settings_and_a_pool() {
    let rendered = helm(&[
        "template",
        "acme",
        &chart("mailwarden-tenant"),
        "--set",
        "relay.hostname=relay.acme-clinic.example",
        "--set",
        "relay.smtpAuth=Required",
        "--set",
        "relay.image=registry.example/relay:1",
        "--set",
        "relay.storageClassName=fast",
        "--set",
        "relay.resources.limits.memory=1Gi",
        "--set",
        "sendingIPPool.name=public-egress",
        "--set",
        "sendingIPPool.count=2",
    ])
    .expect("the tenant chart renders");
    let tenant: MailTenant = serde_yaml::from_str(&rendered).expect("a MailTenant");
    let relay = &tenant.spec.relay;
    assert_eq!(
        relay.smtp_auth,
        mailwarden_operator::crd::mail_tenant::SmtpAuthMode::Required
    );
    assert_eq!(relay.image, "registry.example/relay:1");
    assert_eq!(relay.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(relay.max_message_bytes, 26214400);
    let limits = relay.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["memory"].0, "1Gi");
    let pool = tenant.spec.sending_ip_pool.as_ref().unwrap();
    assert_eq!((pool.name.as_str(), pool.count), ("public-egress", 2));
}

#[tokio::test]
async fn tenant_chart_onboards_and_offboards_a_tenant() {
    let ns = "e2e-helm";
    helm(&[
        "install",
        "acme",
        &chart("mailwarden-tenant"),
        "--namespace",
        ns,
        "--create-namespace",
        "--set",
        "relay.hostname=relay.acme-clinic.example",
        "--set",
        "relay.replicas=1",
        "--set",
        "relay.spoolSize=1Gi",
        "--set",
        "clients[0].name=scheduler",
    ])
    .expect("helm install of the tenant chart");

    let client = mailwarden_e2e::client().await;
    let tenants: Api<MailTenant> = Api::namespaced(client.clone(), ns);
    let ready = wait_for("the helm-installed tenant to be Ready", || async {
        let status = tenants.get("acme").await?.status.unwrap_or_default();
        let ready = find_condition(&status.conditions, "Ready")
            .cloned()
            .unwrap_or_default();
        Ok((ready.status == "True").then_some(ready))
    })
    .await;
    assert_eq!(ready.reason, "TenantReady");

    // The chart's tenant has no submitters (an empty ingress list): still no writes at rest.
    let writes = || operator_counter("mailwarden_writes_total", "mailtenant");
    let before = writes();
    reconcile_tenant_twice(ns, "acme").await;
    assert_eq!(
        writes(),
        before,
        "a tenant without submitters must cost no writes at rest"
    );

    helm(&["uninstall", "acme", "--namespace", ns, "--wait"]).expect("helm uninstall");
    let sets: Api<StatefulSet> = Api::namespaced(client, ns);
    wait_for("the tenant and its relay to be gone", || async {
        let gone =
            tenants.get_opt("acme").await?.is_none() && sets.get_opt("acme-relay").await?.is_none();
        Ok(gone.then_some(()))
    })
    .await;
}
