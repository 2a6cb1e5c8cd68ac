use super::*;

const EXAMPLE: &str = r#"
tenant = "st-olaf"
hostname = "relay.st-olaf.example"

[listen]
address = "0.0.0.0"
submissions-port = 465
submission-port = 587
admin-port = 9090

[tls]
cert-file = "/etc/mailwarden/tls/tls.crt"
key-file = "/etc/mailwarden/tls/tls.key"
client-ca-file = "/etc/mailwarden/tls/ca-bundle.crt"

[[sending-domains]]
domain = "mail.st-olaf.example"

[[sending-domains.selectors]]
name = "mw-rsa-20261203"
algorithm = "rsa-sha256"
key-file = "/etc/mailwarden/dkim/mail.st-olaf.example/mw-rsa-20261203.pem"

[limits]
max-message-bytes = 26214400
max-recipients = 100
max-connections = 200

[spool]
dir = "/var/spool/mailwarden/queue"

[delivery]
per-destination-concurrency = 4
initial-retry-seconds = 60
max-retry-seconds = 3600
max-age-seconds = 432000

[delivery.mode]
kind = "direct"
fallback-tls = "verify"

[audit]
file = "/var/spool/mailwarden/audit/audit.jsonl"

[auth-failures]
max-failures = 5
window-seconds = 300
block-seconds = 900
"#;

fn example() -> RelayConfig {
    RelayConfig::from_toml(EXAMPLE).expect("example parses")
}

fn reason(config: &RelayConfig) -> String {
    config
        .validate()
        .expect_err("configuration must be refused")
        .to_string()
}

#[test]
fn example_round_trips_through_toml() {
    let config = example();
    assert_eq!(
        config.sending_domains[0].selectors[0].algorithm,
        DkimAlgorithm::RsaSha256
    );
    assert_eq!(
        config.delivery.mode,
        DeliveryMode::Direct {
            fallback_tls: FallbackTls::Verify
        }
    );
    assert_eq!(RelayConfig::from_toml(&config.to_toml()).unwrap(), config);
}

#[test]
fn unknown_field_is_refused_by_name() {
    let text = EXAMPLE.replace("max-recipients = 100", "max-recipients = 100\nmax-rcpt = 5");
    let error = RelayConfig::from_toml(&text).unwrap_err().to_string();
    assert!(error.contains("unknown field `max-rcpt`"), "{error}");
}

#[test]
fn bad_values_name_their_field() {
    let mut config = example();
    config.hostname = "relay".into();
    assert_eq!(
        reason(&config),
        "invalid relay configuration: hostname: \"relay\" is not a DNS name"
    );

    let mut config = example();
    config.listen.admin_port = 465;
    assert_eq!(
        reason(&config),
        "invalid relay configuration: listen.admin-port: port 465 is used twice"
    );

    let mut config = example();
    config.sending_domains[0].selectors[0].name = "bad_selector".into();
    assert_eq!(
        reason(&config),
        "invalid relay configuration: sending-domains[0].selectors[0].name: \
         \"bad_selector\" is not a DNS label"
    );

    let mut config = example();
    config
        .sending_domains
        .push(config.sending_domains[0].clone());
    config.sending_domains[1].domain = "MAIL.st-olaf.example".into();
    assert_eq!(
        reason(&config),
        "invalid relay configuration: sending-domains[1].domain: \
         mail.st-olaf.example is listed twice"
    );

    let mut config = example();
    config.delivery.resolvers = vec!["127.0.0.1".into()];
    assert_eq!(
        reason(&config),
        "invalid relay configuration: delivery.resolvers[0]: \"127.0.0.1\" is not an ip:port address"
    );

    let mut config = example();
    config.delivery.max_retry_seconds = 10;
    assert_eq!(
        reason(&config),
        "invalid relay configuration: delivery.max-retry-seconds: \
         must not be below delivery.initial-retry-seconds"
    );
}

#[test]
fn dns_names_follow_label_rules() {
    assert!(is_dns_name("a.example"));
    assert!(is_dns_name(&format!("{}.example", "a".repeat(63))));
    assert!(!is_dns_name(&format!("{}.example", "a".repeat(64))));
    assert!(!is_dns_name("-a.example"));
    assert!(!is_dns_name("a..example"));
    assert!(!is_dns_name("example."));
    assert!(!is_dns_name("localhost"));
}

#[test]
fn domain_lookup_ignores_case() {
    let config = example();
    assert!(config.domain("Mail.St-Olaf.Example").is_some());
    assert!(config.domain("other.example").is_none());
}

#[test]
fn added_delivery_and_drain_fields_default_and_validate() {
    let config = RelayConfig::from_toml(EXAMPLE).unwrap();
    assert_eq!(config.limits.drain_seconds, 25);
    assert_eq!(config.delivery.mx_override, None);
    assert_eq!(config.delivery.trust_anchors_file, None);

    let with_override = EXAMPLE.replace(
        "[delivery]\n",
        "[delivery]\nmx-override = \"localhost:2525\"\ntrust-anchors-file = \"/tmp/ca.pem\"\n",
    );
    let config = RelayConfig::from_toml(&with_override).unwrap();
    assert_eq!(
        config.delivery.mx_override.as_deref(),
        Some("localhost:2525")
    );
    assert_eq!(RelayConfig::from_toml(&config.to_toml()).unwrap(), config);

    let bad = EXAMPLE.replace("[delivery]\n", "[delivery]\nmx-override = \"localhost\"\n");
    let error = RelayConfig::from_toml(&bad).unwrap_err().to_string();
    assert_eq!(
        error,
        "invalid relay configuration: delivery.mx-override: \"localhost\" is not a host:port address"
    );
}

#[test]
fn the_receive_buffer_budget_defaults_and_must_hold_one_message() {
    let config = RelayConfig::from_toml(EXAMPLE).unwrap();
    assert_eq!(config.limits.max_buffered_bytes, 128 * 1024 * 1024);
    let small = EXAMPLE.replace("[limits]\n", "[limits]\nmax-buffered-bytes = 1024\n");
    assert_eq!(
        RelayConfig::from_toml(&small).unwrap_err().to_string(),
        "invalid relay configuration: limits.max-buffered-bytes: must be at least \
         limits.max-message-bytes"
    );
}
