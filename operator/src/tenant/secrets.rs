//! Secrets holding the tenant's PKI, and reading them back into [`crate::pki`] inputs.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::owned_meta;
use crate::crd::MailTenant;
use crate::pki::{StoredCa, StoredLeaf};

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const RETIRED: &str = "retired-ca.crt";
const ROTATED_AT: &str = "rotated-at";
const TLS_CERT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";
const USERNAME: &str = "username";
const PASSWORD: &str = "password";

fn secret(tenant: &MailTenant, name: String, type_: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: owned_meta(tenant, name),
        type_: Some(type_.to_string()),
        data: Some(
            data.iter()
                .map(|(key, value)| (key.to_string(), ByteString(value.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// The CA Secret: the current CA's certificate and key, and retired CA certificates.
pub fn ca_secret(tenant: &MailTenant, name: String, ca: &StoredCa) -> Secret {
    secret(
        tenant,
        name,
        "Opaque",
        &[
            (CA_CERT, &ca.cert_pem),
            (CA_KEY, &ca.key_pem),
            (RETIRED, &ca.retired_pem),
            (
                ROTATED_AT,
                &ca.rotated_at.map(|t| t.to_string()).unwrap_or_default(),
            ),
        ],
    )
}

/// A leaf Secret in the `kubernetes.io/tls` layout, with the CA bundle as `ca.crt`.
pub fn leaf_secret(tenant: &MailTenant, name: String, leaf: &StoredLeaf) -> Secret {
    secret(
        tenant,
        name,
        "kubernetes.io/tls",
        &[
            (TLS_CERT, &leaf.cert_pem),
            (TLS_KEY, &leaf.key_pem),
            (CA_CERT, &leaf.bundle_pem),
        ],
    )
}

/// A client's Secret: its leaf in the `kubernetes.io/tls` layout and, where SMTP AUTH is
/// required, the `username` and `password` it logs in with.
pub fn client_secret(
    tenant: &MailTenant,
    name: String,
    client: &str,
    leaf: &StoredLeaf,
    password: Option<&str>,
) -> Secret {
    let mut secret = leaf_secret(tenant, name, leaf);
    if let (Some(password), Some(data)) = (password, secret.data.as_mut()) {
        data.insert(USERNAME.into(), ByteString(client.as_bytes().to_vec()));
        data.insert(PASSWORD.into(), ByteString(password.as_bytes().to_vec()));
    }
    secret
}

/// The relay's Secret of SMTP AUTH password digests.
pub fn credentials_secret(tenant: &MailTenant, name: String, credentials_file: &str) -> Secret {
    secret(
        tenant,
        name,
        "Opaque",
        &[(super::credentials::CREDENTIALS_KEY, credentials_file)],
    )
}

fn field(data: &BTreeMap<String, ByteString>, key: &str) -> String {
    data.get(key)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default()
}

pub fn read_ca(secret: &Secret) -> Option<StoredCa> {
    let data = secret.data.as_ref()?;
    Some(StoredCa {
        cert_pem: field(data, CA_CERT),
        key_pem: field(data, CA_KEY),
        retired_pem: field(data, RETIRED),
        rotated_at: field(data, ROTATED_AT).parse().ok(),
    })
}

pub fn read_leaf(secret: &Secret) -> Option<StoredLeaf> {
    let data = secret.data.as_ref()?;
    Some(StoredLeaf {
        cert_pem: field(data, TLS_CERT),
        key_pem: field(data, TLS_KEY),
        bundle_pem: field(data, CA_CERT),
    })
}

/// The SMTP AUTH password a client Secret holds, if any.
pub fn read_password(secret: &Secret) -> Option<String> {
    let password = field(secret.data.as_ref()?, PASSWORD);
    (!password.is_empty()).then_some(password)
}
