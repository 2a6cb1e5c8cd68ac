//! Helpers for the end-to-end tests: a client for the local control plane that
//! `e2e/test-all.sh` started, polling with a deadline, kubectl, and the operator's metrics.
//!
//! The tests expect these variables, which the script sets:
//! - `KUBECONFIG`: the admin kubeconfig of the local cluster;
//! - `MAILWARDEN_OPERATOR_ADMIN`: `host:port` of the running operator's admin endpoint;
//! - `MAILWARDEN_OPERATOR_BIN`: the operator binary, for tests that start more replicas;
//! - `MAILWARDEN_KUBECTL`: the kubectl binary.

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kube::Client;

/// How long a condition may take to become true before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(180);

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the end-to-end tests through e2e/test-all.sh")
    })
}

pub async fn client() -> Client {
    Client::try_default()
        .await
        .expect("the local cluster's kubeconfig (KUBECONFIG) works")
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Polls `probe` until it returns `Some`, or fails after [`DEADLINE`] with `what` and the last
/// value `describe` gives.
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = tokio::time::Instant::now();
    loop {
        let last = match probe().await {
            Ok(Some(value)) => return value,
            Ok(None) => "not yet".to_string(),
            Err(error) => format!("{error:#}"),
        };
        if started.elapsed() > DEADLINE {
            panic!("timed out after {DEADLINE:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs kubectl against the local cluster; returns stdout, or an error with stderr.
pub fn kubectl(args: &[&str]) -> anyhow::Result<String> {
    kubectl_stdin(args, None)
}

pub fn kubectl_stdin(args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new(env("MAILWARDEN_KUBECTL"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("failed to start kubectl")?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())?;
    }
    drop(child.stdin.take());
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Reads an operator's admin endpoint with curl; returns the HTTP status and body.
pub fn admin_get(address: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let output = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            &format!("http://{address}{path}"),
        ])
        .output()
        .context("failed to run curl")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    Ok((code.trim().parse().unwrap_or(0), body.to_string()))
}

/// Sum of a Prometheus counter over every label set whose labels contain `filter`.
pub fn counter(metrics: &str, name: &str, filter: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(filter))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The running operator's metrics text.
pub fn operator_metrics() -> String {
    let (code, body) = admin_get(&env("MAILWARDEN_OPERATOR_ADMIN"), "/metrics").expect("metrics");
    assert_eq!(code, 200, "operator /metrics answered {code}");
    body
}

/// A counter of the running operator for one controller, such as `mailwarden_writes_total`.
pub fn operator_counter(name: &str, controller: &str) -> f64 {
    counter(
        &operator_metrics(),
        name,
        &format!("controller=\"{controller}\""),
    )
}

/// Annotates a MailTenant twice and waits for a reconcile after each. The second proves that
/// the first has finished, since reconciles of one object never overlap: what was counted
/// after this returns includes both.
pub async fn reconcile_tenant_twice(namespace: &str, name: &str) {
    for poke in ["1", "2"] {
        let seen = operator_counter("mailwarden_reconciles_total", "mailtenant");
        kubectl(&[
            "-n",
            namespace,
            "annotate",
            "--overwrite",
            "mailtenant",
            name,
            &format!("e2e.mailwarden.io/poke={poke}"),
        ])
        .expect("the tenant can be annotated");
        wait_for("a reconcile after the annotation", || async {
            let now = operator_counter("mailwarden_reconciles_total", "mailtenant");
            Ok((now > seen).then_some(()))
        })
        .await;
    }
}
