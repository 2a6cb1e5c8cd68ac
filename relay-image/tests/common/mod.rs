//! A relay on loopback with its own PKI, DKIM keys and a sink MX, for tests with real peers.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mailwarden_relay_config::SmtpAuth;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

pub const DOMAIN: &str = "mail.st-olaf.test";
pub const RSA_SELECTOR: &str = "mw-rsa-1";
pub const ED_SELECTOR: &str = "mw-ed-1";
pub const CLIENT: &str = "billing.st-olaf.test";

/// Fails the test unless a program is installed, naming the package that provides it.
pub fn require_tool(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{program} is not installed: run `apt-get install {package}` (see e2e/setup.sh)"
    );
}

/// The Python with aiosmtpd, dkimpy and pynacl: $MW_PYTHON or the project venv.
pub fn python() -> PathBuf {
    let python = std::env::var_os("MW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/mailwarden/venv/bin/python")
        });
    let ok = Command::new(&python)
        .args(["-c", "import aiosmtpd, dkim, nacl"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} lacks aiosmtpd, dkimpy or pynacl: run `python3 -m venv ~/.cache/mailwarden/venv && \
         ~/.cache/mailwarden/venv/bin/pip install aiosmtpd dkimpy pynacl` (see e2e/setup.sh)",
        python.display()
    );
    python
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Ports {
    pub submissions: u16,
    pub submission: u16,
    pub admin: u16,
    pub sink: u16,
}

/// Files of one test's world.
pub struct Fixture {
    pub dir: PathBuf,
    pub ports: Ports,
    pub sink_dir: PathBuf,
    relay: Option<Child>,
    sink: Option<Child>,
}

fn write_pem(path: &Path, pem: &str) {
    fs::write(path, pem).unwrap();
}

fn leaf(name: &str, client: bool, issuer: &Issuer<'_, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Fixture {
    /// Creates the PKI, DKIM keys and configuration, and starts the sink (not yet the relay).
    pub fn new(name: &str, extra_config: &str) -> Self {
        require_tool("openssl", "openssl");
        let dir = std::env::temp_dir().join(format!("mw-relay-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sink")).unwrap();

        let (ca_pem, issuer) = ca("St Olaf tenant CA");
        write_pem(&dir.join("ca.pem"), &ca_pem);
        let (cert, key) = leaf("localhost", false, &issuer);
        write_pem(&dir.join("server.pem"), &cert);
        write_pem(&dir.join("server.key"), &key);
        let (cert, key) = leaf(CLIENT, true, &issuer);
        write_pem(&dir.join("client.pem"), &cert);
        write_pem(&dir.join("client.key"), &key);
        let (cert, key) = leaf("localhost", false, &issuer);
        write_pem(&dir.join("sink.pem"), &cert);
        write_pem(&dir.join("sink.key"), &key);
        let (other_pem, other) = ca("Someone else's CA");
        write_pem(&dir.join("other-ca.pem"), &other_pem);
        let (cert, key) = leaf(CLIENT, true, &other);
        write_pem(&dir.join("other-client.pem"), &cert);
        write_pem(&dir.join("other-client.key"), &key);

        let rsa = dir.join("dkim-rsa.pem");
        let ed = dir.join("dkim-ed.pem");
        fs::write(
            &rsa,
            openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ]),
        )
        .unwrap();
        fs::write(&ed, openssl(&["genpkey", "-algorithm", "ed25519"])).unwrap();
        let rsa_pub = openssl(&[
            "pkey",
            "-in",
            rsa.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ]);
        let ed_pub = openssl(&[
            "pkey",
            "-in",
            ed.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ]);
        let records = serde_json::json!({
            format!("{RSA_SELECTOR}._domainkey.{DOMAIN}"): format!("v=DKIM1; k=rsa; p={}", base64(&rsa_pub)),
            format!("{ED_SELECTOR}._domainkey.{DOMAIN}"):
                format!("v=DKIM1; k=ed25519; p={}", base64(&ed_pub[ed_pub.len() - 32..])),
        });
        fs::write(dir.join("dkim-records.json"), records.to_string()).unwrap();

        let ports = Ports {
            submissions: free_port(),
            submission: free_port(),
            admin: free_port(),
            sink: free_port(),
        };
        let d = dir.display();
        let config = format!(
            r#"tenant = "st-olaf"
hostname = "relay.st-olaf.test"

[listen]
address = "127.0.0.1"
submissions-port = {submissions}
submission-port = {submission}
admin-port = {admin}

[tls]
cert-file = "{d}/server.pem"
key-file = "{d}/server.key"
client-ca-file = "{d}/ca.pem"

[[sending-domains]]
domain = "{DOMAIN}"

[[sending-domains.selectors]]
name = "{RSA_SELECTOR}"
algorithm = "rsa-sha256"
key-file = "{d}/dkim-rsa.pem"

[[sending-domains.selectors]]
name = "{ED_SELECTOR}"
algorithm = "ed25519-sha256"
key-file = "{d}/dkim-ed.pem"

[[sending-domains]]
domain = "pending.st-olaf.test"

[limits]
max-message-bytes = 200000
max-recipients = 3
max-connections = 50

[spool]
dir = "{d}/spool"

[delivery]
per-destination-concurrency = 4
initial-retry-seconds = 1
max-retry-seconds = 2
max-age-seconds = 3600
mx-override = "localhost:{sink}"
trust-anchors-file = "{d}/ca.pem"

[delivery.mode]
kind = "direct"
fallback-tls = "verify"

[audit]
file = "{d}/audit.jsonl"

[auth-failures]
max-failures = 5
window-seconds = 60
block-seconds = 600
{extra_config}"#,
            submissions = ports.submissions,
            submission = ports.submission,
            admin = ports.admin,
            sink = ports.sink,
        );
        fs::write(dir.join("relay.toml"), config).unwrap();

        let mut fixture = Self {
            sink_dir: dir.join("sink"),
            dir,
            ports,
            relay: None,
            sink: None,
        };
        fixture.start_sink();
        fixture
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Stops the sink MX, so that deliveries fail temporarily.
    pub fn stop_sink(&mut self) {
        if let Some(mut sink) = self.sink.take() {
            let _ = sink.kill();
            let _ = sink.wait();
        }
    }

    pub fn start_sink(&mut self) {
        let mut child = Command::new(python())
            .arg(script("sink.py"))
            .args([
                &self.ports.sink.to_string(),
                &self.path("sink.pem"),
                &self.path("sink.key"),
            ])
            .arg(&self.sink_dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the sink starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "sink did not start");
        self.sink = Some(child);
    }

    /// Starts the relay and waits until its admin port answers.
    pub fn start_relay(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("relay.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mailwarden-relay"))
            .args(["run", "--config", &self.path("relay.toml")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the relay starts");
        self.relay = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(self.ports.admin, "/healthz").is_none() {
            if let Some(status) = self.relay.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "relay exited with {status}: {}",
                    fs::read_to_string(self.dir.join("relay.log")).unwrap()
                );
            }
            assert!(Instant::now() < deadline, "relay did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the relay.
    pub fn kill_relay(&mut self) {
        if let Some(mut child) = self.relay.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERMs the relay and returns its exit status.
    pub fn terminate_relay(&mut self) -> std::process::ExitStatus {
        let mut child = self.relay.take().expect("relay running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap()
    }

    /// Messages the sink has stored, as (envelope JSON, message bytes).
    pub fn delivered(&self) -> Vec<(serde_json::Value, Vec<u8>)> {
        let mut out = Vec::new();
        let mut entries: Vec<_> = fs::read_dir(&self.sink_dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.extension().is_some_and(|e| e == "eml") {
                let envelope = fs::read_to_string(path.with_extension("json")).unwrap();
                out.push((
                    serde_json::from_str(&envelope).unwrap(),
                    fs::read(&path).unwrap(),
                ));
            }
        }
        out
    }

    /// Waits until the sink has at least `count` messages (delivery runs in the background).
    pub fn wait_for_delivered(&self, count: usize) -> Vec<(serde_json::Value, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let delivered = self.delivered();
            if delivered.len() >= count || Instant::now() > deadline {
                return delivered;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the spool holds no message.
    pub fn wait_for_empty_spool(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = fs::read_dir(self.dir.join("spool/queue"))
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().extension().is_some_and(|x| x == "msg"))
                        .count()
                })
                .unwrap_or(0);
            if left == 0 || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Requires SMTP AUTH after the client certificate, with these (username, password) pairs;
    /// call before starting the relay.
    pub fn require_smtp_auth(&self, credentials: &[(&str, &str)]) {
        let lines: String = credentials
            .iter()
            .map(|(user, password)| SmtpAuth::credentials_line(user, password) + "\n")
            .collect();
        let file = self.dir.join("credentials");
        fs::write(&file, lines).unwrap();
        let mut config = fs::read_to_string(self.dir.join("relay.toml")).unwrap();
        config.push_str(&format!(
            "\n[smtp-auth]\ncredentials-file = \"{}\"\n",
            file.display()
        ));
        fs::write(self.dir.join("relay.toml"), config).unwrap();
    }

    /// Runs the smtplib submitter; returns its printed reply lines.
    pub fn submit_python(
        &self,
        implicit: bool,
        cert: Option<&str>,
        from: &str,
        to: &str,
        message: &str,
    ) -> Vec<String> {
        self.submit_python_as(None, implicit, cert, from, to, message)
    }

    /// Runs the smtplib submitter, logging in with SMTP AUTH as `auth` (user, password) first.
    pub fn submit_python_as(
        &self,
        auth: Option<(&str, &str)>,
        implicit: bool,
        cert: Option<&str>,
        from: &str,
        to: &str,
        message: &str,
    ) -> Vec<String> {
        let port = if implicit {
            self.ports.submissions
        } else {
            self.ports.submission
        };
        let mut command = Command::new(python());
        command
            .arg(script("submit.py"))
            .arg(port.to_string())
            .arg(if implicit { "implicit" } else { "starttls" })
            .arg(self.path("ca.pem"))
            .env("MW_FROM", from)
            .env("MW_TO", to)
            .env(
                "MW_AUTH",
                auth.map(|(user, password)| format!("{user}:{password}"))
                    .unwrap_or_default(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(cert) = cert {
            command.args([
                self.path(&format!("{cert}.pem")),
                self.path(&format!("{cert}.key")),
            ]);
        }
        let mut child = command.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(message.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Runs a Python script after a preamble that defines `connect()`: a socket over implicit
    /// TLS to the relay, with the fixture's client certificate when `certificate` is set.
    pub fn python_over_tls(&self, body: &str, certificate: bool, args: &[&str]) -> Output {
        let cert = if certificate {
            format!(
                "ctx.load_cert_chain({:?}, {:?})\n",
                self.path("client.pem"),
                self.path("client.key")
            )
        } else {
            String::new()
        };
        let script = format!(
            "import select, socket, ssl, sys, time\n\
             ctx = ssl.create_default_context(cafile={ca:?})\n{cert}\
             def connect():\n    \
             return ctx.wrap_socket(socket.create_connection((\"localhost\", {port})), \
             server_hostname=\"localhost\")\n{body}",
            ca = self.path("ca.pem"),
            port = self.ports.submissions,
        );
        Command::new(python())
            .args(["-c", &script])
            .args(args)
            .output()
            .unwrap()
    }

    /// Sends `lines` one at a time over implicit TLS with the client certificate and returns
    /// every reply line (the greeting first), so each reply can be matched to its command.
    pub fn dialogue(&self, lines: &[&str]) -> Vec<String> {
        let body = r#"
s = connect()
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline().decode(errors="replace").rstrip("\r\n")
        print(line)
        if len(line) < 4 or line[3] != "-":
            return
reply()
for line in sys.argv[1:]:
    s.sendall(line.encode("utf-8", "surrogateescape") + b"\r\n")
    reply()
"#;
        let output = self.python_over_tls(body, true, lines);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Runs swaks against the STARTTLS port with the given extra arguments.
    pub fn swaks(&self, args: &[&str]) -> Output {
        require_tool("swaks", "swaks");
        let output = Command::new("swaks")
            .args([
                "--server",
                &format!("localhost:{}", self.ports.submission),
                "--helo",
                "swaks.test",
            ])
            .args(["--timeout", "30"])
            .args(args)
            .output()
            .unwrap();
        // Without Net::SSLeay, swaks prints this and never connects.
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("TLS not available"),
            "swaks cannot speak TLS: run `apt-get install libnet-ssleay-perl libio-socket-ssl-perl` \
             (see e2e/setup.sh): {stderr}"
        );
        output
    }

    /// Runs swaks over STARTTLS with the fixture's client certificate.
    pub fn swaks_with_certificate(&self, args: &[&str]) -> Output {
        let (cert, key) = (self.path("client.pem"), self.path("client.key"));
        let tls = ["--tls", "--tls-cert", &cert, "--tls-key", &key];
        self.swaks(&[&tls[..], args].concat())
    }

    /// Asserts that the relay greets this peer with the 421 of a blocked address.
    pub fn assert_peer_blocked(&self) {
        let output = self.swaks(&["--quit-after", "BANNER"]);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains(
                "<** 421 4.7.0 relay.st-olaf.test too many authentication failures, try later"
            ),
            "{text}"
        );
    }

    /// Verifies a delivered message's DKIM signatures with dkimpy; returns its printed lines.
    pub fn dkim_verify(&self, message: &[u8]) -> (bool, Vec<String>) {
        let path = self.dir.join("verify.eml");
        fs::write(&path, message).unwrap();
        let output = Command::new(python())
            .arg(script("dkim_verify.py"))
            .arg(&path)
            .arg(self.dir.join("dkim-records.json"))
            .output()
            .unwrap();
        let lines = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        (output.status.success(), lines)
    }

    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.dir.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.kill_relay();
        if let Some(mut sink) = self.sink.take() {
            let _ = sink.kill();
            let _ = sink.wait();
        }
    }
}

/// A plain HTTP GET on loopback; the body when the status is 200.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// A test message with a From header in the sending domain.
pub fn message(subject: &str) -> String {
    format!(
        "From: Billing <billing@{DOMAIN}>\r\nTo: <patient@dest.test>\r\nSubject: {subject}\r\n\
         Date: Thu, 03 Dec 2026 19:00:00 +0000\r\nMessage-ID: <{subject}@{DOMAIN}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nYour statement is ready.\r\n.leading dot\r\n"
    )
}
