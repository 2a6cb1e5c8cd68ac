//! The relay runs with exactly what the operator wrote into the API server. Nothing runs inside
//! kwok's pods, so the relay is started here as a local process from the tenant's ConfigMap and
//! Secrets (paths and ports moved to a temporary directory and loopback), and real TLS clients
//! talk to it: the operator's client certificate is accepted, a missing one is refused, a
//! domain whose DKIM keys are not verified yet gets a temporary error. With SMTP AUTH required,
//! the password the operator put in the client's Secret logs in and the certificate alone does
//! not.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use mailwarden_e2e::{admin_get, env, kubectl_stdin, wait_for};
use mailwarden_operator::crd::{MailTenant, find_condition};
use mailwarden_relay_config::RelayConfig;

const NS: &str = "e2e-relay";

struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_secret(secret: &Secret, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (key, value) in secret.data.as_ref().unwrap() {
        std::fs::write(dir.join(key), &value.0).unwrap();
    }
}

/// One SMTP conversation with Python's smtplib over implicit TLS; prints each reply code. With
/// a seventh argument `user:password`, it logs in with SMTP AUTH before MAIL FROM.
const CLIENT: &str = r#"
import smtplib, socket, ssl, sys
port, ca, name, cert, key, sender = sys.argv[1:7]
login = sys.argv[7] if len(sys.argv) > 7 else None
context = ssl.create_default_context(cafile=ca)
if cert != "-":
    context.load_cert_chain(cert, key)

class LoopbackSMTP(smtplib.SMTP_SSL):
    """Connects to loopback but verifies the relay's certificate against its public name."""
    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection(("127.0.0.1", port), timeout)
        return self.context.wrap_socket(sock, server_hostname=name)

with LoopbackSMTP(name, int(port), context=context) as smtp:
    print(smtp.ehlo("e2e.client")[0])
    if login:
        user, password = login.split(":", 1)
        code, text = smtp.login(user, password)
        print(code, text.decode())
    code, text = smtp.mail(sender)
    print(code, text.decode())
"#;

fn converse(port: u16, dir: &Path, client_cert: bool, sender: &str) -> String {
    converse_as(port, dir, client_cert, sender, None)
}

fn converse_as(
    port: u16,
    dir: &Path,
    client_cert: bool,
    sender: &str,
    login: Option<&str>,
) -> String {
    let (cert, key) = if client_cert {
        (dir.join("client/tls.crt"), dir.join("client/tls.key"))
    } else {
        (PathBuf::from("-"), PathBuf::from("-"))
    };
    let output = Command::new("python3")
        .args(["-c", CLIENT, &port.to_string()])
        .arg(dir.join("tls/ca.crt"))
        .arg("relay.e2e-relay.example")
        .args([cert, key])
        .arg(sender)
        .args(login)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The configuration with its ports on free loopback ports and its files under `dir`.
fn moved(mut config: RelayConfig, dir: &Path) -> RelayConfig {
    config.listen.address = "127.0.0.1".parse().unwrap();
    config.listen.submissions_port = free_port();
    config.listen.submission_port = free_port();
    config.listen.admin_port = free_port();
    config.tls.cert_file = dir.join("tls/tls.crt");
    config.tls.key_file = dir.join("tls/tls.key");
    config.tls.client_ca_file = dir.join("tls/ca.crt");
    config.spool.dir = dir.join("spool");
    config.audit.file = dir.join("audit/audit.jsonl");
    config
}

/// Starts the relay binary with `config` and waits until it is ready.
async fn start_relay(config: &RelayConfig, dir: &Path) -> Relay {
    std::fs::write(dir.join("relay.toml"), config.to_toml()).unwrap();
    let relay = Relay(
        Command::new(env("MAILWARDEN_RELAY_BIN"))
            .args(["run", "--config"])
            .arg(dir.join("relay.toml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("relay.log")).unwrap())
            .spawn()
            .expect("the relay binary starts"),
    );
    let admin = format!("127.0.0.1:{}", config.listen.admin_port);
    wait_for("the relay to be ready", || async {
        Ok(matches!(admin_get(&admin, "/readyz"), Ok((200, _))).then_some(()))
    })
    .await;
    relay
}

#[tokio::test]
async fn relay_serves_with_the_operators_configuration_and_certificates() {
    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n---\n\
         apiVersion: mailwarden.io/v1alpha1\nkind: SendingDomain\nmetadata:\n  name: clinic\n  namespace: {NS}\n\
         spec:\n  domain: e2e-relay.example\n  dns:\n    provider: Manual\n  spf:\n    conflictPolicy: Refuse\n  dmarc:\n    policy: reject\n---\n\
         apiVersion: mailwarden.io/v1alpha1\nkind: MailTenant\nmetadata:\n  name: clinic\n  namespace: {NS}\n\
         spec:\n  relay:\n    hostname: relay.e2e-relay.example\n    replicas: 1\n    spoolSize: 1Gi\n  clients:\n    - name: scheduler\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], Some(&manifest)).expect("tenant and domain apply");
    let client = mailwarden_e2e::client().await;
    let tenants: Api<MailTenant> = Api::namespaced(client.clone(), NS);
    wait_for("the tenant to be Ready", || async {
        let status = tenants.get("clinic").await?.status.unwrap_or_default();
        Ok(find_condition(&status.conditions, "Ready")
            .filter(|c| c.status == "True")
            .map(|_| ()))
    })
    .await;

    // What the pods would mount, moved to a temporary directory.
    let dir = std::env::temp_dir().join(format!("mailwarden-e2e-relay-{}", std::process::id()));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    write_secret(
        &secrets.get("clinic-relay-tls").await.unwrap(),
        &dir.join("tls"),
    );
    write_secret(
        &secrets.get("clinic-client-scheduler").await.unwrap(),
        &dir.join("client"),
    );
    let maps: Api<ConfigMap> = Api::namespaced(client, NS);
    let toml = maps.get("clinic-relay-config").await.unwrap().data.unwrap()["relay.toml"].clone();
    let config = RelayConfig::from_toml(&toml).expect("the operator's configuration is valid");
    assert_eq!(config.sending_domains.len(), 1);
    assert_eq!(config.sending_domains[0].domain, "e2e-relay.example");
    assert!(
        config.sending_domains[0].selectors.is_empty(),
        "keys are not verified yet"
    );

    let config = moved(config, &dir);
    let relay = start_relay(&config, &dir).await;

    let port = config.listen.submissions_port;
    assert_eq!(
        converse(port, &dir, true, "scheduling@e2e-relay.example"),
        "250\n451 4.7.1 sending domain has no active DKIM selector yet"
    );
    assert_eq!(
        converse(port, &dir, true, "someone@elsewhere.example"),
        "250\n553 5.7.1 sender domain is not a sending domain of this relay"
    );
    assert_eq!(
        converse(port, &dir, false, "scheduling@e2e-relay.example"),
        "250\n530 5.7.0 authentication required: present a client certificate"
    );
    drop(relay);

    // SMTP AUTH required: the operator adds a password to the client's Secret and gives the
    // relay its digest; the relay then wants both factors.
    let required = serde_json::json!({"spec": {"relay": {"smtpAuth": "Required"}}});
    tenants
        .patch("clinic", &PatchParams::default(), &Patch::Merge(&required))
        .await
        .unwrap();
    let toml = wait_for("the configuration to require SMTP AUTH", || async {
        let map = maps.get("clinic-relay-config").await?;
        let toml = map.data.unwrap_or_default()["relay.toml"].clone();
        Ok(toml.contains("[smtp-auth]").then_some(toml))
    })
    .await;
    let client_secret = wait_for("the client Secret to hold a password", || async {
        let secret = secrets.get("clinic-client-scheduler").await?;
        Ok(secret
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key("password"))
            .then_some(secret))
    })
    .await;
    let data = client_secret.data.as_ref().unwrap();
    assert_eq!(data["username"].0, b"scheduler");
    let password = String::from_utf8(data["password"].0.clone()).unwrap();
    write_secret(&client_secret, &dir.join("client"));
    write_secret(
        &secrets.get("clinic-relay-credentials").await.unwrap(),
        &dir.join("credentials"),
    );
    let credentials = std::fs::read_to_string(dir.join("credentials/credentials")).unwrap();
    assert!(
        credentials.starts_with("scheduler:sha256:"),
        "{credentials}"
    );
    assert!(
        !credentials.contains(&password),
        "the relay gets only digests"
    );

    let mut config = moved(RelayConfig::from_toml(&toml).unwrap(), &dir);
    config.smtp_auth.as_mut().unwrap().credentials_file = dir.join("credentials/credentials");
    let relay = start_relay(&config, &dir).await;
    let port = config.listen.submissions_port;
    assert_eq!(
        converse(port, &dir, true, "scheduling@e2e-relay.example"),
        "250\n530 5.7.0 authentication required: AUTH PLAIN first"
    );
    assert_eq!(
        converse_as(
            port,
            &dir,
            true,
            "scheduling@e2e-relay.example",
            Some(&format!("scheduler:{password}"))
        ),
        "250\n235 2.7.0 authentication successful\n\
         451 4.7.1 sending domain has no active DKIM selector yet"
    );
    drop(relay);

    std::fs::remove_dir_all(&dir).ok();
    mailwarden_e2e::kubectl(&["delete", "namespace", NS, "--wait=false"]).unwrap();
}
