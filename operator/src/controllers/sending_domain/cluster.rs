//! What the SendingDomain controller reads from and writes to the API server: provider
//! credentials, the tenant's sending addresses, the DKIM Secret and the status.

use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ApiResource, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};

use crate::crd::MailTenant;
use crate::crd::sending_domain::{
    DnsProviderKind, SecretKeyRef, SendingDomain, SendingDomainStatus,
};
use crate::dkim::PrivateKeyPem;
use crate::dns::AnyProvider;
use crate::dns::cloudflare::{CloudflareProvider, Retry};
use crate::dns::manual::ManualProvider;
use crate::dns::rfc2136::{Rfc2136Provider, tsig_algorithm};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "mailwarden";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("failed to read secret {namespace}/{name} key {key:?}: {reason}")]
    Credentials {
        namespace: String,
        name: String,
        key: String,
        reason: &'static str,
    },
    // The API server's message only: kube's own Display carries a debug dump of the response.
    #[error("failed to {action}: {}", crate::apply::api_message(.source))]
    Api { action: String, source: kube::Error },
    #[error(
        "secret {namespace}/{name} already exists and is not this SendingDomain's; rename or \
         remove it, since the domain keeps its DKIM keys under that name"
    )]
    ForeignKeySecret { namespace: String, name: String },
    #[error("failed to set up the dns provider")]
    Provider(#[source] crate::dns::ProviderError),
}

impl ClusterError {
    pub fn category(&self) -> &'static str {
        match self {
            ClusterError::Credentials { .. } => "CredentialsUnavailable",
            ClusterError::Api { .. } => "KubernetesApiError",
            ClusterError::ForeignKeySecret { .. } => "KeySecretConflict",
            ClusterError::Provider(e) => e.category(),
        }
    }
}

fn api_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterError {
    let action = action.into();
    move |source| ClusterError::Api { action, source }
}

/// Reads one key of a Secret in `namespace`. The value is never logged.
pub async fn secret_value(
    client: &Client,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<Vec<u8>, ClusterError> {
    let missing = |reason| ClusterError::Credentials {
        namespace: namespace.to_string(),
        name: reference.name.clone(),
        key: reference.key.clone(),
        reason,
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(&reference.name)
        .await
        .map_err(api_error(format!(
            "read secret {namespace}/{}",
            reference.name
        )))?
        .ok_or_else(|| missing("the secret does not exist"))?;
    let data = secret.data.unwrap_or_default();
    let value = data
        .get(&reference.key)
        .ok_or_else(|| missing("the key does not exist"))?;
    Ok(value.0.clone())
}

/// Builds the provider the spec names, reading its credentials.
pub async fn provider(
    client: &Client,
    domain: &SendingDomain,
) -> Result<AnyProvider, ClusterError> {
    let namespace = domain.namespace().unwrap_or_default();
    let dns = &domain.spec.dns;
    match (dns.provider, &dns.cloudflare, &dns.rfc2136) {
        (DnsProviderKind::Cloudflare, Some(cf), _) => {
            let token = secret_value(client, &namespace, &cf.api_token_secret_ref).await?;
            let token = String::from_utf8_lossy(&token).trim().to_string();
            let owner = format!("{namespace}/{}", domain.name_any());
            let base = cf.api_base_url.as_deref();
            CloudflareProvider::new(token, cf.zone_id.clone(), &owner, base, Retry::default())
                .map(AnyProvider::Cloudflare)
                .map_err(ClusterError::Provider)
        }
        (DnsProviderKind::Rfc2136, _, Some(rfc)) => {
            let raw = secret_value(client, &namespace, &rfc.tsig_secret_ref).await?;
            let secret = STANDARD
                .decode(String::from_utf8_lossy(&raw).trim())
                .map_err(|_| ClusterError::Credentials {
                    namespace: namespace.clone(),
                    name: rfc.tsig_secret_ref.name.clone(),
                    key: rfc.tsig_secret_ref.key.clone(),
                    reason: "the value is not base64",
                })?;
            let server = rfc.server.parse().map_err(|_| {
                ClusterError::Provider(crate::dns::ProviderError::Invalid {
                    provider: "rfc2136",
                    message: format!("server {:?} is not an address", rfc.server),
                })
            })?;
            let algorithm = tsig_algorithm(&rfc.tsig_algorithm)
                .unwrap_or(hickory_client::proto::dnssec::rdata::tsig::TsigAlgorithm::HmacSha256);
            Rfc2136Provider::new(
                server,
                &rfc.zone,
                &rfc.tsig_key_name,
                algorithm,
                secret,
                dns.ttl,
            )
            .map(AnyProvider::Rfc2136)
            .map_err(ClusterError::Provider)
        }
        _ => Ok(AnyProvider::Manual(ManualProvider)),
    }
}

/// The tenant's allocated sending addresses: `status.allocatedIPs` of the namespace's
/// MailTenant (strings, or objects with an `address`).
pub async fn tenant_addresses(
    client: &Client,
    namespace: &str,
) -> Result<Vec<IpAddr>, ClusterError> {
    let resource = ApiResource::erase::<MailTenant>(&());
    let tenants: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let list = match tenants.list(&ListParams::default()).await {
        Ok(list) => list,
        // No MailTenant kind installed: a domain whose mail leaves through includes only.
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Vec::new()),
        Err(error) => return Err(api_error(format!("list mailtenants in {namespace}"))(error)),
    };
    let mut addresses: Vec<IpAddr> = list
        .items
        .iter()
        .filter_map(|t| t.data.pointer("/status/allocatedIPs")?.as_array().cloned())
        .flatten()
        .filter_map(|v| {
            v.as_str()
                .or_else(|| v.get("address")?.as_str())
                .map(str::to_string)
        })
        .filter_map(|s| s.split('/').next()?.parse().ok())
        .collect();
    addresses.sort();
    addresses.dedup();
    Ok(addresses)
}

/// The SendingDomain that claimed `domain.spec.domain` first (oldest, then by namespace and
/// name), as `namespace/name`, when it is another one. A domain has one owner cluster-wide, so
/// a tenant cannot take over another tenant's domain or selectors.
pub async fn earlier_claim(
    client: &Client,
    domain: &SendingDomain,
) -> Result<Option<String>, ClusterError> {
    let all: Api<SendingDomain> = Api::all(client.clone());
    let list = all
        .list(&ListParams::default())
        .await
        .map_err(api_error("list sendingdomains"))?;
    let key = |d: &SendingDomain| {
        let created = d
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string());
        (
            created.unwrap_or_default(),
            d.namespace().unwrap_or_default(),
            d.name_any(),
        )
    };
    let first = list
        .items
        .iter()
        .filter(|d| d.spec.domain == domain.spec.domain && d.metadata.deletion_timestamp.is_none())
        .min_by_key(|d| key(d));
    Ok(first
        .map(key)
        .filter(|first| *first != key(domain))
        .map(|(_, ns, name)| format!("{ns}/{name}")))
}

/// Name of the Secret holding a SendingDomain's DKIM private keys.
pub fn dkim_secret_name(domain: &SendingDomain) -> String {
    format!("{}-dkim", domain.name_any())
}

/// The DKIM keys of a domain's Secret, and whether the domain owns that Secret (one restored
/// from a backup comes back without its owner reference).
pub struct StoredKeys {
    pub keys: BTreeMap<String, PrivateKeyPem>,
    pub owned: bool,
}

/// Reads the DKIM keys, by Secret key.
pub async fn dkim_keys(
    client: &Client,
    domain: &SendingDomain,
) -> Result<StoredKeys, ClusterError> {
    let namespace = domain.namespace().unwrap_or_default();
    let name = dkim_secret_name(domain);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let secret = secrets
        .get_opt(&name)
        .await
        .map_err(api_error(format!("read secret {namespace}/{name}")))?;
    let owned = secret.as_ref().is_some_and(|s| {
        let uid = domain.meta().uid.as_deref();
        s.owner_references()
            .iter()
            .any(|r| Some(r.uid.as_str()) == uid)
    });
    // Only a Secret this domain owns, or one restored from a backup of it (the operator's label,
    // no controller), holds its keys; anything else is somebody's data and is left alone.
    if let Some(secret) = &secret
        && !owned
    {
        let labelled = secret
            .labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str)
            == Some("mailwarden");
        if !labelled || crate::apply::controller_uid(secret).is_some() {
            return Err(ClusterError::ForeignKeySecret { namespace, name });
        }
    }
    let data = secret.and_then(|s| s.data).unwrap_or_default();
    let keys = data
        .into_iter()
        .map(|(key, value)| {
            (
                key,
                PrivateKeyPem(String::from_utf8_lossy(&value.0).into_owned()),
            )
        })
        .collect();
    Ok(StoredKeys { keys, owned })
}

/// Writes the DKIM Secret (owned by the SendingDomain, so it goes with it).
pub async fn write_dkim_keys(
    client: &Client,
    domain: &SendingDomain,
    keys: &BTreeMap<String, PrivateKeyPem>,
) -> Result<(), ClusterError> {
    let namespace = domain.namespace().unwrap_or_default();
    let name = dkim_secret_name(domain);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "mailwarden".to_string(),
            )])),
            owner_references: domain.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(
            keys.iter()
                .map(|(k, v)| (k.clone(), ByteString(v.0.clone().into_bytes())))
                .collect(),
        ),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&secret).expect("a secret serializes");
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    secrets
        .patch(&name, &params, &Patch::Apply(&value))
        .await
        .map_err(api_error(format!("write secret {namespace}/{name}")))?;
    Ok(())
}

/// Applies the status (server-side apply of the status subresource).
pub async fn write_status(
    client: &Client,
    domain: &SendingDomain,
    status: &SendingDomainStatus,
) -> Result<(), ClusterError> {
    let namespace = domain.namespace().unwrap_or_default();
    let name = domain.name_any();
    let api: Api<SendingDomain> = Api::namespaced(client.clone(), &namespace);
    let patch = serde_json::json!({
        "apiVersion": SendingDomain::api_version(&()),
        "kind": SendingDomain::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&name, &params, &Patch::Apply(&patch))
        .await
        .map_err(api_error(format!(
            "write status of sendingdomain {namespace}/{name}"
        )))?;
    Ok(())
}
