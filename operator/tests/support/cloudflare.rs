//! The Cloudflare v4 DNS contract server (`cloudflare_contract.py`), started per test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use super::require;

pub const TOKEN: &str = "contract-test-token";
pub const ZONE_ID: &str = "0123456789abcdef0123456789abcdef";
pub const ZONE: &str = "example.test";

pub struct Contract {
    pub port: u16,
    child: Child,
}

impl Contract {
    /// Starts the server; `max_per_page` lowers the page size so pagination is exercised.
    pub fn start(max_per_page: u32) -> Contract {
        let python = require("python3", "python3");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/cloudflare_contract.py"
        );
        let mut child = Command::new(python)
            .arg(script)
            .args(["--token", TOKEN, "--zone", &format!("{ZONE_ID}={ZONE}")])
            .args(["--max-per-page", &max_per_page.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the cloudflare contract server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok());
        let port = port.unwrap_or_else(|| panic!("contract server did not start: {line:?}"));
        Contract { port, child }
    }

    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}/client/v4/", self.port)
    }

    fn call(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (_, json) = response.split_once("\r\n\r\n").expect("http response");
        serde_json::from_str(json).expect("json body")
    }

    /// Adds a record owned by someone else (no mailwarden comment).
    pub fn seed(&self, rtype: &str, name: &str, content: &str) {
        let body = serde_json::json!({
            "zone_id": ZONE_ID, "type": rtype, "name": name, "content": content, "ttl": 1,
            "comment": "managed by the hospital's it team"
        });
        self.call("POST", "/__control/seed", &body.to_string());
    }

    /// Makes the next `count` API requests fail with `status`.
    pub fn fail_next(&self, status: u16, count: u32) {
        let body = serde_json::json!({ "status": status, "count": count }).to_string();
        self.call("POST", "/__control/fail", &body);
    }

    /// Successful creates, updates and deletes so far.
    pub fn writes(&self) -> u64 {
        self.call("GET", "/__control/stats", "")["writes"]
            .as_u64()
            .unwrap()
    }

    /// Every record as (name, type, content, comment), in creation order.
    pub fn records(&self) -> Vec<(String, String, String, Option<String>)> {
        let records = self.call("GET", "/__control/records", "");
        records
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let text = |k: &str| r[k].as_str().unwrap().to_string();
                (
                    text("name"),
                    text("type"),
                    text("content"),
                    r["comment"].as_str().map(Into::into),
                )
            })
            .collect()
    }
}

impl Drop for Contract {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
