//! testssl.sh (Debian's package) against both submission ports: no protocol or cipher category
//! below the relay's policy is offered.

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::{Fixture, require_tool};

/// testssl.sh findings by id: (severity, finding).
fn scan(fixture: &Fixture, port: u16, starttls: bool, name: &str) -> HashMap<String, String> {
    require_tool("testssl", "testssl.sh");
    let json = fixture.dir.join(format!("testssl-{name}.json"));
    let mut command = Command::new("testssl");
    command.args([
        "--quiet",
        "--color",
        "0",
        "--warnings",
        "off",
        "--fast",
        "--ip",
        "127.0.0.1",
    ]);
    command.args(["--protocols", "--std", "--fs"]);
    command.arg("--jsonfile").arg(&json);
    if starttls {
        command.args(["--starttls", "smtp"]);
    }
    command.arg(format!("localhost:{port}"));
    let output = command.output().unwrap();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "testssl wrote no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let findings: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    findings
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["finding"].as_str().unwrap().to_string(),
            )
        })
        .collect::<HashMap<_, _>>()
        .tap_missing(&json)
}

trait TapMissing {
    fn tap_missing(self, path: &std::path::Path) -> Self;
}

impl TapMissing for HashMap<String, String> {
    /// Fails with the file's path when testssl.sh reported none of the expected findings.
    fn tap_missing(self, path: &std::path::Path) -> Self {
        assert!(
            self.contains_key("TLS1_2"),
            "no protocol findings in {}",
            path.display()
        );
        self
    }
}

fn assert_policy(findings: &HashMap<String, String>) {
    for id in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert_eq!(findings[id], "not offered", "{id}");
    }
    assert_eq!(findings["TLS1_2"], "offered");
    assert_eq!(findings["TLS1_3"], "offered with final");
    for id in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        // testssl.sh 3.0 calls the obsolete CBC suites AVERAGE.
        "cipherlist_AVERAGE",
    ] {
        assert_eq!(findings[id], "not offered", "{id}");
    }
    assert_eq!(findings["cipherlist_STRONG"], "offered");
    assert_eq!(findings["PFS"], "offered");
    // The server key is ECDSA P-256 (rcgen's default), so the ECDHE-RSA suites cannot appear.
    assert_eq!(
        findings["PFS_ciphers"],
        "TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256 TLS_AES_128_GCM_SHA256 \
         ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305"
    );
    assert_eq!(findings["PFS_ECDHE_curves"], "prime256v1 secp384r1 X25519");
}

#[test]
fn testssl_finds_nothing_below_policy_on_either_port() {
    let mut fixture = Fixture::new("testssl", "");
    fixture.start_relay();
    let implicit = scan(&fixture, fixture.ports.submissions, false, "465");
    assert_policy(&implicit);
    let starttls = scan(&fixture, fixture.ports.submission, true, "587");
    assert_policy(&starttls);
}
