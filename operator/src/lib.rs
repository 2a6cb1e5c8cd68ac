//! mailwarden: a Kubernetes operator that gives every mail tenant its own isolated relay,
//! certificate authority, DKIM keys, DNS records, sending addresses and backups.
//!
//! Pure modules decide ([`crd`], [`pki`], [`tenant`], [`dkim`], [`dns`] rendering); the
//! [`controllers`] read the cluster, call them and apply what they return.

pub mod admin;
pub mod apply;
pub mod controllers;
pub mod crd;
pub mod dkim;
pub mod dns;
pub mod ippool;
pub mod leader;
pub mod metrics;
pub mod pki;
pub mod runtime;
pub mod telemetry;
pub mod tenant;
