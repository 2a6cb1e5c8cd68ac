//! The tenant's private PKI: a CA, the relay's server certificate and one client certificate per
//! identity.
//!
//! [`plan`] is pure: from what the Secrets hold now, the wanted names and the time, it decides
//! what to keep and what to issue. Renewal happens when a third of a certificate's lifetime is
//! left. CA rotation is two-phased so that trust never breaks: the reconcile that creates a new
//! CA only publishes a bundle of old and new CA to every holder; leaves move to the new CA on a
//! later reconcile, once every Secret already carries that bundle. A retired CA's key is dropped
//! at once and its certificate stays in the bundle until it expires.

use std::collections::BTreeMap;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;
use x509_parser::pem::Pem;

/// After a CA rotation, how long the bundle of old and new CA is handed out before leaves move
/// to the new CA: time for kubelets to update mounted Secrets and for applications that read
/// their trust bundle only at start to be restarted.
pub const BUNDLE_GRACE_SECONDS: i64 = 24 * 3600;

/// Certificates are dated this many seconds into the past, to absorb clock skew between nodes.
const BACKDATE_SECONDS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("failed to generate a key pair: {0}")]
    Key(#[source] rcgen::Error),
    #[error("failed to issue the {what} certificate: {source}")]
    Issue {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("failed to load the tenant CA from its Secret: {0}")]
    LoadCa(#[source] rcgen::Error),
}

/// What a CA Secret holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredCa {
    pub cert_pem: String,
    pub key_pem: String,
    /// Certificates of earlier CAs, still trusted until they expire.
    pub retired_pem: String,
    /// When this CA replaced an earlier one (unix seconds); leaves move to it
    /// [`BUNDLE_GRACE_SECONDS`] later.
    pub rotated_at: Option<i64>,
}

/// What a leaf Secret holds: its certificate, key and the CA bundle handed out with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredLeaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub bundle_pem: String,
}

/// The names and lifetimes the tenant's spec asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub tenant: String,
    pub server_names: Vec<String>,
    pub clients: Vec<String>,
    pub ca_days: u32,
    pub leaf_days: u32,
}

/// The material every Secret must hold after this reconcile, and what changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub ca: StoredCa,
    pub bundle_pem: String,
    pub server: StoredLeaf,
    pub clients: BTreeMap<String, StoredLeaf>,
    /// Human-readable changes, for Events ("issued the server certificate").
    pub changes: Vec<String>,
}

/// Validity and names of a certificate, read from its PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    pub not_before: i64,
    pub not_after: i64,
    pub subject: String,
    pub issuer: String,
    pub dns_names: Vec<String>,
}

impl CertInfo {
    /// True when less than a third of the lifetime is left at `now`.
    pub fn due_for_renewal(&self, now: i64) -> bool {
        let lifetime = self.not_after - self.not_before;
        self.not_after - now < lifetime / 3
    }
}

/// Parses every certificate in a PEM text; unreadable blocks are skipped.
pub fn parse_certs(pem: &str) -> Vec<CertInfo> {
    Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .filter_map(|block| {
            let cert = block.parse_x509().ok()?;
            let dns_names = cert
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|ext| {
                    ext.value
                        .general_names
                        .iter()
                        .filter_map(|name| match name {
                            x509_parser::extensions::GeneralName::DNSName(dns) => {
                                Some(dns.to_string())
                            }
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(CertInfo {
                not_before: cert.validity().not_before.timestamp(),
                not_after: cert.validity().not_after.timestamp(),
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                dns_names,
            })
        })
        .collect()
}

/// Decides and performs the issuance for one reconcile.
pub fn plan(
    wanted: &Wanted,
    now: OffsetDateTime,
    ca: Option<&StoredCa>,
    server: Option<&StoredLeaf>,
    clients: &BTreeMap<String, StoredLeaf>,
) -> Result<Issued, PkiError> {
    let now_ts = now.unix_timestamp();
    let mut changes = Vec::new();

    let current = ca.and_then(|stored| {
        let info = parse_certs(&stored.cert_pem).into_iter().next()?;
        Some((stored.clone(), info))
    });
    let ca = match current {
        Some((stored, info))
            if !info.due_for_renewal(now_ts) && key_matches(&stored.cert_pem, &stored.key_pem) =>
        {
            stored
        }
        Some((stored, info)) => {
            changes.push(if info.due_for_renewal(now_ts) {
                "rotated the tenant CA; leaves move to it once the bundle is published".into()
            } else {
                "replaced the tenant CA because its key does not match its certificate; leaves \
                 move to the new CA once the bundle is published"
                    .into()
            });
            let mut fresh = new_ca(wanted, now)?;
            fresh.retired_pem = format!("{}{}", stored.retired_pem, stored.cert_pem);
            fresh.rotated_at = Some(now_ts);
            fresh
        }
        None => {
            changes.push("issued the tenant CA".into());
            new_ca(wanted, now)?
        }
    };
    let ca_info = parse_certs(&ca.cert_pem).remove(0);
    let bundle_pem = bundle(&ca, now_ts);

    // Leaves move to a new CA only once every holder has carried the bundle that trusts it for
    // the grace period.
    let published = std::iter::once(server)
        .chain(wanted.clients.iter().map(|name| clients.get(name)))
        .all(|leaf| leaf.is_none_or(|leaf| leaf.bundle_pem.contains(ca.cert_pem.trim())))
        && ca
            .rotated_at
            .is_none_or(|rotated| now_ts >= rotated + BUNDLE_GRACE_SECONDS);

    let issuer_key = KeyPair::from_pem(&ca.key_pem).map_err(PkiError::LoadCa)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, issuer_key).map_err(PkiError::LoadCa)?;

    let mut leaf = |what: &str, names: &[String], usage, stored: Option<&StoredLeaf>| {
        let keep = stored.and_then(|stored| {
            let info = parse_certs(&stored.cert_pem).into_iter().next()?;
            let current_names = info.dns_names == names;
            let current_issuer = info.issuer == ca_info.subject || !published;
            let fresh = !info.due_for_renewal(now_ts) && info.not_after <= ca_info.not_after;
            // A leaf naming the current CA must carry its signature, and every leaf its own key.
            let genuine = key_matches(&stored.cert_pem, &stored.key_pem)
                && (info.issuer != ca_info.subject || signed_by(&stored.cert_pem, &ca.cert_pem));
            (current_names && current_issuer && fresh && genuine).then(|| stored.clone())
        });
        match keep {
            Some(stored) => Ok(StoredLeaf {
                bundle_pem: bundle_pem.clone(),
                ..stored
            }),
            None => {
                changes.push(format!("issued the {what} certificate"));
                let not_after = (now + time::Duration::days(i64::from(wanted.leaf_days)))
                    .min(OffsetDateTime::from_unix_timestamp(ca_info.not_after).unwrap_or(now));
                issue_leaf(what, names, usage, not_after, now, &issuer, &bundle_pem)
            }
        }
    };

    let server = leaf(
        "server",
        &wanted.server_names,
        ExtendedKeyUsagePurpose::ServerAuth,
        server,
    )?;
    let clients = wanted
        .clients
        .iter()
        .map(|name| {
            let names = vec![name.clone()];
            let issued = leaf(
                &format!("client {name}"),
                &names,
                ExtendedKeyUsagePurpose::ClientAuth,
                clients.get(name),
            )?;
            Ok((name.clone(), issued))
        })
        .collect::<Result<_, PkiError>>()?;

    Ok(Issued {
        ca,
        bundle_pem,
        server,
        clients,
        changes,
    })
}

/// Whether `key_pem` is the private key of the first certificate in `cert_pem`.
pub fn key_matches(cert_pem: &str, key_pem: &str) -> bool {
    let Ok(key) = KeyPair::from_pem(key_pem) else {
        return false;
    };
    let Some(Ok(block)) = Pem::iter_from_buffer(cert_pem.as_bytes()).next() else {
        return false;
    };
    let Ok(cert) = block.parse_x509() else {
        return false;
    };
    cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
}

/// Whether the first certificate in `cert_pem` carries a valid signature of the CA in `ca_pem`.
pub fn signed_by(cert_pem: &str, ca_pem: &str) -> bool {
    let first = |pem: &str| {
        Pem::iter_from_buffer(pem.as_bytes())
            .next()
            .and_then(Result::ok)
    };
    let (Some(cert), Some(ca)) = (first(cert_pem), first(ca_pem)) else {
        return false;
    };
    let (Ok(cert), Ok(ca)) = (cert.parse_x509(), ca.parse_x509()) else {
        return false;
    };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// The current CA followed by every retired CA that has not expired.
fn bundle(ca: &StoredCa, now: i64) -> String {
    let mut bundle = ca.cert_pem.clone();
    for block in Pem::iter_from_buffer(ca.retired_pem.as_bytes()).filter_map(Result::ok) {
        let Ok(cert) = block.parse_x509() else {
            continue;
        };
        if cert.validity().not_after.timestamp() > now {
            bundle.push_str(&pem_block("CERTIFICATE", &block.contents));
        }
    }
    bundle
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn new_ca(wanted: &Wanted, now: OffsetDateTime) -> Result<StoredCa, PkiError> {
    let key = KeyPair::generate().map_err(PkiError::Key)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "mailwarden");
    name.push(
        DnType::CommonName,
        format!("{} tenant CA {}", wanted.tenant, now.unix_timestamp()),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - time::Duration::seconds(BACKDATE_SECONDS);
    params.not_after = now + time::Duration::days(i64::from(wanted.ca_days));
    params.use_authority_key_identifier_extension = false;
    let cert = params.self_signed(&key).map_err(|source| PkiError::Issue {
        what: "CA".into(),
        source,
    })?;
    Ok(StoredCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        retired_pem: String::new(),
        rotated_at: None,
    })
}

fn issue_leaf(
    what: &str,
    names: &[String],
    usage: ExtendedKeyUsagePurpose,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
    issuer: &Issuer<'_, KeyPair>,
    bundle_pem: &str,
) -> Result<StoredLeaf, PkiError> {
    let key = KeyPair::generate().map_err(PkiError::Key)?;
    let error = |source| PkiError::Issue {
        what: what.to_string(),
        source,
    };
    let mut params = CertificateParams::new(names.to_vec()).map_err(error)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "mailwarden");
    // RFC 5280 caps a common name at 64 characters; the names live in the SANs anyway.
    if names[0].len() <= 64 {
        name.push(DnType::CommonName, names[0].clone());
    }
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - time::Duration::seconds(BACKDATE_SECONDS);
    params.not_after = not_after;
    let cert = params.signed_by(&key, issuer).map_err(error)?;
    Ok(StoredLeaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        bundle_pem: bundle_pem.to_string(),
    })
}

#[cfg(test)]
mod tests;
