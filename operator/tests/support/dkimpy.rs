//! dkimpy as the independent DKIM verifier: signs with the key from the Secret and verifies
//! against the record the real DNS server serves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

fn python() -> PathBuf {
    let home = std::env::var("MAILWARDEN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/mailwarden")
        });
    let python = home.join("venv/bin/python");
    let probe = Command::new(&python)
        .args(["-c", "import dkim, nacl"])
        .output();
    match probe {
        Ok(out) if out.status.success() => python,
        _ => panic!(
            "dkimpy with pynacl is not installed in {}: run `{} -m pip install dkimpy pynacl` \
             (or e2e/setup.sh)",
            python.display(),
            python.display()
        ),
    }
}

/// Signs a message with `pem` as `selector` and verifies it through the DNS server at `dns`.
pub fn sign_and_verify(dns: SocketAddr, domain: &str, selector: &str, algorithm: &str, pem: &str) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, pem).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/dkim_sign_verify.py"
    );
    let port = dns.port().to_string();
    let output = Command::new(python())
        .arg(script)
        .args([&dns.ip().to_string(), &port, domain, selector, algorithm])
        .arg(&key)
        .output()
        .expect("run dkimpy");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dkimpy failed for {selector}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), format!("verified {selector}"));
}
