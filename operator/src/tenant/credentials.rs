//! SMTP AUTH passwords of the tenant's clients, where `spec.relay.smtpAuth` is `Required`.
//!
//! Each client's password is generated once, kept in its client Secret, and reused on every
//! reconcile; the relay gets only their digests, in the Secret `<tenant>-relay-credentials`.

use std::collections::BTreeMap;

use base64::Engine;
use mailwarden_relay_config::SmtpAuth;
use rand_core::{OsRng, RngCore};

use crate::crd::MailTenant;
use crate::crd::mail_tenant::SmtpAuthMode;

/// Key of the credentials file in the relay's credentials Secret.
pub const CREDENTIALS_KEY: &str = "credentials";

/// Whether the tenant's relay requires SMTP AUTH after the client certificate.
pub fn smtp_auth_required(tenant: &MailTenant) -> bool {
    tenant.spec.relay.smtp_auth == SmtpAuthMode::Required
}

/// The password of every client in the spec: the one its Secret already holds, or a new one
/// of 32 random bytes. Empty when SMTP AUTH is not required.
pub fn client_passwords(
    tenant: &MailTenant,
    existing: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    if !smtp_auth_required(tenant) {
        return BTreeMap::new();
    }
    tenant
        .spec
        .clients
        .iter()
        .map(|client| {
            let password = existing
                .get(&client.name)
                .filter(|p| !p.is_empty())
                .cloned()
                .unwrap_or_else(new_password);
            (client.name.clone(), password)
        })
        .collect()
}

fn new_password() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The relay's credentials file: one digest line per client, in name order. The username is
/// the client's name, which is also the identity of its certificate.
pub fn credentials_file(passwords: &BTreeMap<String, String>) -> String {
    passwords
        .iter()
        .map(|(name, password)| SmtpAuth::credentials_line(name, password) + "\n")
        .collect()
}
