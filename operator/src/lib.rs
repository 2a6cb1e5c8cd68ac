//! mailwarden: a Kubernetes operator that gives every mail tenant its own isolated relay,
//! certificate authority, DKIM keys, DNS records, sending addresses and backups.

pub mod crd;
pub mod dkim;
pub mod dns;
pub mod pki;
pub mod tenant;
