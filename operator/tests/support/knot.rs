//! A Knot DNS authoritative server for one zone, accepting TSIG-signed dynamic updates.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::require;

pub const ZONE: &str = "example.test";
pub const KEY_NAME: &str = "mailwarden-test";
/// base64 of 32 bytes; a test key, not a secret.
pub const KEY_SECRET: &str = "bWFpbHdhcmRlbi10ZXN0LXRzaWcta2V5LTMyLWJ5dGU=";

pub struct Knot {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a loopback tcp port");
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Knot {
    /// Starts knotd with the zone holding `extra` records (zone-file lines) besides SOA and NS.
    pub fn start(extra: &[&str]) -> Knot {
        let knotd = require("knotd", "knot");
        require("kdig", "knot-dnsutils");
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let path = dir.path().display().to_string();
        let config = format!(
            "server:\n    rundir: \"{path}\"\n    listen: 127.0.0.1@{port}\n\
             log:\n  - target: stderr\n    any: warning\n\
             database:\n    storage: \"{path}\"\n\
             key:\n  - id: {KEY_NAME}\n    algorithm: hmac-sha256\n    secret: {KEY_SECRET}\n\
             acl:\n  - id: tsig-update\n    key: {KEY_NAME}\n    action: update\n\
             template:\n  - id: default\n    storage: \"{path}\"\n    zonefile-sync: -1\n\
             \x20   journal-content: changes\n\
             zone:\n  - domain: {ZONE}\n    file: {ZONE}.zone\n    acl: tsig-update\n"
        );
        let mut zone = format!(
            "$ORIGIN {ZONE}.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\n\
             ns1 A 127.0.0.1\n"
        );
        for line in extra {
            zone.push_str(line);
            zone.push('\n');
        }
        std::fs::write(dir.path().join("knot.conf"), config).unwrap();
        std::fs::write(dir.path().join(format!("{ZONE}.zone")), zone).unwrap();
        let child = Command::new(knotd)
            .arg("-c")
            .arg(dir.path().join("knot.conf"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start knotd");
        let knot = Knot {
            addr: ([127, 0, 0, 1], port).into(),
            child,
            _dir: dir,
        };
        knot.wait_for_zone();
        knot
    }

    fn wait_for_zone(&self) {
        for _ in 0..100 {
            if self.dig("SOA", ZONE).starts_with("ns1.") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("knotd did not serve {ZONE} on {}", self.addr);
    }

    /// `kdig +short` output for `name` and `rtype`, lines sorted.
    pub fn dig(&self, rtype: &str, name: &str) -> String {
        let output = Command::new("kdig")
            .arg(format!("@{}", self.addr.ip()))
            .args([
                "-p",
                &self.addr.port().to_string(),
                "+short",
                "+tcp",
                rtype,
                name,
            ])
            .output()
            .expect("run kdig");
        let text = String::from_utf8_lossy(&output.stdout);
        let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        lines.sort();
        lines.join("\n")
    }

    /// The zone's SOA serial: it changes with every accepted update.
    pub fn serial(&self) -> u32 {
        let soa = self.dig("SOA", ZONE);
        soa.split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .expect("soa serial")
    }

    pub fn tsig_secret() -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(KEY_SECRET)
            .unwrap()
    }

    pub fn path(&self) -> PathBuf {
        self._dir.path().to_path_buf()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
