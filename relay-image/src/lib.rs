//! mailwarden-relay: the per-tenant zero-trust SMTP relay.
//!
//! Clients submit over TLS with a certificate from the tenant's CA ([`session`], [`submission`]);
//! accepted messages are DKIM-signed ([`dkim`]), written durably to the [`spool`] before the
//! `250`, and delivered with TLS required ([`delivery`]). Every authentication, message and
//! delivery attempt is written to the hash-chained [`audit`] log.

pub mod admin;
pub mod audit;
pub mod author;
pub mod credentials;
pub mod data;
pub mod delivery;
pub mod dkim;
pub mod metrics;
pub mod peers;
pub mod relay;
pub mod reload;
pub mod server;
pub mod session;
pub mod spool;
pub mod submission;
pub mod tls;
