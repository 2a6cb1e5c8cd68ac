//! Bad manifests are refused by the API server itself, through the CEL rules and schema of the
//! committed CRDs, with a message that names the field and what is wrong. A second tenant in a
//! namespace is refused by the operator with a condition.

use kube::Api;
use mailwarden_e2e::{kubectl, kubectl_stdin, wait_for};
use mailwarden_operator::crd::{MailTenant, find_condition};

const NS: &str = "e2e-admission";

fn namespace() {
    kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n"
        )),
    )
    .expect("namespace applies");
}

fn tenant(name: &str, relay: &str, extra: &str) -> String {
    format!(
        "apiVersion: mailwarden.io/v1alpha1\nkind: MailTenant\nmetadata:\n  name: {name}\n  namespace: {NS}\n\
         spec:\n  relay:\n{relay}{extra}"
    )
}

/// Applies a manifest that must be refused and returns kubectl's error.
fn refused(manifest: &str) -> String {
    match kubectl_stdin(&["apply", "-f", "-"], Some(manifest)) {
        Ok(out) => panic!("the API server accepted a bad manifest ({out}):\n{manifest}"),
        Err(error) => error.to_string(),
    }
}

fn backup_policy(destinations: &str, retention: &str) -> String {
    let recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    format!(
        "apiVersion: mailwarden.io/v1alpha1\nkind: BackupPolicy\nmetadata:\n  name: e2e-bad\nspec:\n{retention}  recipients: [{recipient}]\n  destinations:\n{destinations}"
    )
}

fn destination(name: &str, region: &str) -> String {
    [
        format!("  - name: {name}"),
        format!("    region: {region}"),
        format!("    endpoint: https://s3.{region}.example"),
        format!("    bucket: bucket-{name}"),
        format!("    credentialsSecret: writer-{name}"),
    ]
    .map(|line| format!("  {line}\n"))
    .concat()
}

#[test]
fn invalid_hostname_is_refused() {
    namespace();
    let error = refused(&tenant("bad-host", "    hostname: Relay_1.example\n", ""));
    assert!(
        error
            .contains("spec.relay.hostname must be a lower-case DNS name such as mail.example.org"),
        "{error}"
    );
}

#[test]
fn label_over_63_bytes_is_refused() {
    namespace();
    let hostname = format!("    hostname: {}.example\n", "a".repeat(64));
    let error = refused(&tenant("long-label", &hostname, ""));
    assert!(
        error.contains("spec.relay.hostname has a label longer than 63 bytes"),
        "{error}"
    );

    let client = format!("  clients:\n    - name: {}\n", "c".repeat(64));
    let error = refused(&tenant(
        "long-client",
        "    hostname: relay.a.example\n",
        &client,
    ));
    assert!(
        error.contains("spec.clients[0].name: Too long: may not be more than 63 bytes"),
        "{error}"
    );

    let client = "  clients:\n    - name: EHR_App\n";
    let error = refused(&tenant(
        "bad-client",
        "    hostname: relay.a.example\n",
        client,
    ));
    assert!(
        error.contains("spec.clients[].name must be a DNS label: at most 63"),
        "{error}"
    );
}

#[test]
fn backup_policy_with_one_destination_is_refused() {
    let error = refused(&backup_policy(&destination("east", "us-east-1"), ""));
    assert!(
        error.contains("spec.destinations needs at least two destinations, in different regions"),
        "{error}"
    );
}

#[test]
fn backup_policy_with_two_destinations_in_one_region_is_refused() {
    let destinations = destination("a", "eu-west-1") + &destination("b", "eu-west-1");
    let error = refused(&backup_policy(&destinations, ""));
    assert!(
        error.contains("spec.destinations must each be in a different region"),
        "{error}"
    );
}

#[test]
fn retention_under_six_years_needs_a_waiver() {
    let destinations = destination("a", "eu-west-1") + &destination("b", "eu-central-1");
    let error = refused(&backup_policy(&destinations, "  retentionYears: 3\n"));
    assert!(
        error.contains("spec.retentionYears is below the six-year minimum"),
        "{error}"
    );

    let waived = "  retentionYears: 3\n  retentionWaiver:\n    reason: test data only, no PHI\n    approvedBy: privacy-officer\n";
    kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&backup_policy(&destinations, waived)),
    )
    .expect("waiver accepted");
    kubectl(&["delete", "backuppolicy", "e2e-bad"]).unwrap();
}

#[test]
fn immutable_spool_size_cannot_change() {
    namespace();
    let relay = "    hostname: relay.immutable.example\n    spoolSize: 1Gi\n";
    kubectl_stdin(&["apply", "-f", "-"], Some(&tenant("immutable", relay, "")))
        .expect("first apply");
    let changed = "    hostname: relay.immutable.example\n    spoolSize: 5Gi\n";
    let error = refused(&tenant("immutable", changed, ""));
    assert!(
        error.contains("spec.relay.spoolSize is immutable once set"),
        "{error}"
    );
    kubectl(&[
        "-n",
        NS,
        "delete",
        "mailtenant",
        "immutable",
        "--wait=false",
    ])
    .unwrap();
}

#[test]
fn private_age_key_is_refused() {
    let destinations = destination("a", "eu-west-1") + &destination("b", "eu-central-1");
    let manifest = backup_policy(&destinations, "").replace(
        "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
        "AGE-SECRET-KEY-1QQQ",
    );
    let error = refused(&manifest);
    assert!(
        error.contains("spec.recipients must be age public keys: 'age1' and 58 lower-case"),
        "{error}"
    );
    // A secret key pasted behind the prefix is no public key either.
    let manifest = backup_policy(&destinations, "").replace(
        "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
        "age1AGE-SECRET-KEY-1QQPQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
    );
    let error = refused(&manifest);
    assert!(
        error.contains("spec.recipients must be age public keys"),
        "{error}"
    );
}

#[test]
fn backup_schedules_and_regions_are_checked_field_by_field() {
    let destinations = destination("a", "eu-west-1") + &destination("b", "eu-central-1");
    for schedule in [
        "x y z w v",
        "99 99 99 99 99",
        "61 2 * * *",
        "0 25 * * *",
        "0 2 * * 8",
    ] {
        let manifest = backup_policy(&destinations, &format!("  schedule: \"{schedule}\"\n"));
        let error = refused(&manifest);
        assert!(
            error.contains("spec.schedule must be a five-field cron expression such as '0 2 * * *': minute 0-59"),
            "{schedule}: {error}"
        );
    }
    let good = backup_policy(&destinations, "  schedule: \"*/15 2,14 1-7 */2 1-5\"\n");
    kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], Some(&good))
        .expect("a valid schedule is accepted");

    let upper = destination("a", "eu-west-1") + &destination("b", "EU-WEST-1");
    let error = refused(&backup_policy(&upper, ""));
    assert!(
        error.contains("spec.destinations[].region must be a region name such as us-east-1"),
        "{error}"
    );
}

#[test]
fn pools_refuse_addresses_no_mail_server_sends_from() {
    for address in [
        "169.254.169.254",
        "127.0.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "fe80::1/64",
    ] {
        let pool = format!(
            "apiVersion: mailwarden.io/v1alpha1\nkind: SendingIPPool\nmetadata:\n  name: e2e-bad-pool\n\
             spec:\n  addresses: [\"{address}\"]\n  egress:\n    mode: SourceBinding\n"
        );
        let error = refused(&pool);
        assert!(
            error.contains("spec.addresses must be unicast addresses a mail server can send from"),
            "{address}: {error}"
        );
    }
}

#[test]
fn sending_domain_resolvers_and_mx_patterns_are_checked() {
    namespace();
    let domain = |extra: &str| {
        format!(
            "apiVersion: mailwarden.io/v1alpha1\nkind: SendingDomain\nmetadata:\n  name: e2e-bad-sd\n  namespace: {NS}\n\
             spec:\n  domain: bad-sd.example\n  dns:\n    provider: Manual\n  spf:\n    conflictPolicy: Refuse\n  \
             dmarc:\n    policy: reject\n{extra}"
        )
    };
    for resolvers in [
        "[\"1.1.1.1\"]",
        "[\"8.8.8.8:99999\"]",
        "[\"9.9.9.9:abc\"]",
        "[\"resolver.example:53\"]",
    ] {
        let error = refused(&domain(&format!("  resolvers: {resolvers}\n")));
        assert!(
            error.contains("spec.resolvers must be addresses with a port, such as 192.0.2.53:53"),
            "{resolvers}: {error}"
        );
    }
    kubectl_stdin(
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&domain(
            "  resolvers: [\"192.0.2.53:53\", \"[2001:db8::53]:5353\"]\n",
        )),
    )
    .expect("addresses with ports are accepted");
    for mx in ["\"*.*.example.org\"", "\"10.0.0.1\"", "\"MX.example.org\""] {
        let error = refused(&domain(&format!(
            "  mtaSts:\n    mode: enforce\n    mx: [{mx}]\n"
        )));
        assert!(
            error.contains("spec.mtaSts.mx must be lower-case host names"),
            "{mx}: {error}"
        );
    }
}

#[test]
fn smarthost_port_must_be_submission() {
    namespace();
    let extra = "  delivery:\n    smarthost:\n      host: smtp.upstream.example\n      port: 25\n";
    let error = refused(&tenant(
        "bad-port",
        "    hostname: relay.a.example\n",
        extra,
    ));
    assert!(
        error.contains("spec.delivery.smarthost.port must be 465 or 587"),
        "{error}"
    );
}

#[tokio::test]
async fn second_tenant_in_a_namespace_is_refused_with_a_condition() {
    let ns = "e2e-duplicate";
    kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
        )),
    )
    .unwrap();
    let manifest = |name: &str| {
        format!(
            "apiVersion: mailwarden.io/v1alpha1\nkind: MailTenant\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
             spec:\n  relay:\n    hostname: relay.{name}.example\n    replicas: 1\n    spoolSize: 1Gi\n"
        )
    };
    kubectl_stdin(&["apply", "-f", "-"], Some(&manifest("first"))).unwrap();
    let tenants: Api<MailTenant> = Api::namespaced(mailwarden_e2e::client().await, ns);
    wait_for("the first tenant to get a status", || async {
        Ok(tenants.get("first").await?.status.map(|_| ()))
    })
    .await;
    kubectl_stdin(&["apply", "-f", "-"], Some(&manifest("second"))).unwrap();

    let refused = wait_for("the second tenant to be refused", || async {
        let status = tenants.get("second").await?.status.unwrap_or_default();
        Ok(find_condition(&status.conditions, "Ready").cloned())
    })
    .await;
    assert_eq!(
        (refused.status.as_str(), refused.reason.as_str()),
        ("False", "DuplicateTenant")
    );
    assert!(
        refused
            .message
            .starts_with(&format!("namespace {ns} already has MailTenant first;")),
        "{}",
        refused.message
    );
    let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(tenants.clone().into_client(), ns);
    assert!(
        sets.get_opt("second-relay").await.unwrap().is_none(),
        "nothing is created for the refused tenant"
    );

    kubectl(&["delete", "namespace", ns, "--wait=false"]).unwrap();
}

#[tokio::test]
async fn a_failed_reconcile_shows_in_a_condition_and_an_event() {
    let ns = "e2e-failure";
    kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
        )),
    )
    .unwrap();
    // Accepted by the CRD schema, refused by the API server when the StatefulSet is applied:
    // a memory request above its limit.
    let manifest = |limit: &str| {
        format!(
            "apiVersion: mailwarden.io/v1alpha1\nkind: MailTenant\nmetadata:\n  name: strained\n  namespace: {ns}\n\
             spec:\n  relay:\n    hostname: relay.strained.example\n    replicas: 1\n    spoolSize: 1Gi\n\
             \x20   resources:\n      requests: {{ memory: 1Gi }}\n      limits: {{ memory: {limit} }}\n"
        )
    };
    kubectl_stdin(&["apply", "-f", "-"], Some(&manifest("512Mi"))).unwrap();
    let tenants: Api<MailTenant> = Api::namespaced(mailwarden_e2e::client().await, ns);
    let failed = wait_for("the apply failure to show in Ready", || async {
        let status = tenants.get("strained").await?.status.unwrap_or_default();
        Ok(find_condition(&status.conditions, "Ready")
            .filter(|c| c.reason == "ApplyFailed")
            .cloned())
    })
    .await;
    assert_eq!(failed.status, "False");
    assert!(
        failed
            .message
            .starts_with("failed to apply StatefulSet strained-relay: "),
        "{}",
        failed.message
    );
    let events = kubectl(&[
        "-n",
        ns,
        "get",
        "events",
        "--field-selector",
        "reason=ApplyFailed",
        "-o",
        "jsonpath={.items[*].type}",
    ])
    .unwrap();
    assert!(
        events.split(' ').any(|t| t == "Warning"),
        "no ApplyFailed Warning event: {events:?}"
    );

    // Fixing the spec recovers without anyone restarting anything.
    kubectl_stdin(&["apply", "-f", "-"], Some(&manifest("2Gi"))).unwrap();
    wait_for("the fixed tenant to be Ready", || async {
        let status = tenants.get("strained").await?.status.unwrap_or_default();
        Ok(find_condition(&status.conditions, "Ready")
            .filter(|c| c.status == "True")
            .map(|_| ()))
    })
    .await;
    kubectl(&["delete", "namespace", ns, "--wait=false"]).unwrap();
}

#[test]
fn ip_address_hostname_is_refused() {
    namespace();
    let error = refused(&tenant("ip-host", "    hostname: 10.0.0.1\n", ""));
    assert!(
        error.contains("no trailing dot, not an IP address"),
        "{error}"
    );
}

#[test]
fn spool_size_must_be_a_positive_binary_quantity() {
    namespace();
    for size in ["banana", "0Gi", "-1Gi", "65Ti", "99999999999999999999Ti"] {
        let relay = format!("    hostname: relay.a.example\n    spoolSize: {size}\n");
        let error = refused(&tenant("bad-spool", &relay, ""));
        assert!(
            error.contains(
                "spec.relay.spoolSize must be a whole number of Mi, Gi or Ti above zero and at \
                 most 64Ti"
            ),
            "{size}: {error}"
        );
    }
    let empty_pool = "  sendingIPPool:\n    name: \"\"\n    count: 1\n";
    let error = refused(&tenant(
        "empty-pool",
        "    hostname: relay.a.example\n",
        empty_pool,
    ));
    assert!(error.contains("spec.sendingIPPool.name"), "{error}");
}

#[test]
fn tenant_names_that_cannot_prefix_objects_are_refused() {
    namespace();
    for name in ["a.b", &"n".repeat(41)] {
        let error = refused(&tenant(name, "    hostname: relay.a.example\n", ""));
        assert!(
            error.contains(
                "metadata.name of a MailTenant must be at most 40 characters without dots"
            ),
            "{name}: {error}"
        );
    }
}
