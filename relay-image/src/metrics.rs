//! Counters exported on `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($field:ident => $help:literal),* $(,)?) => {
        /// The relay's counters; all only ever grow except `connections_open` and `spool_messages`.
        #[derive(Default)]
        pub struct Metrics {
            $(pub $field: AtomicU64,)*
        }

        impl Metrics {
            /// The Prometheus text exposition of every counter.
            pub fn render(&self) -> String {
                let mut out = String::new();
                $(
                    let kind = if matches!(stringify!($field), "connections_open" | "spool_messages") {
                        "gauge"
                    } else {
                        "counter"
                    };
                    let name = concat!("mailwarden_relay_", stringify!($field));
                    let _ = writeln!(out, "# HELP {name} {}", $help);
                    let _ = writeln!(out, "# TYPE {name} {kind}");
                    let _ = writeln!(out, "{name} {}", self.$field.load(Ordering::Relaxed));
                )*
                out
            }
        }
    };
}

counters! {
    connections_total => "Client connections accepted.",
    connections_open => "Client connections open now.",
    auth_failures_total => "Failed client authentications (handshake or missing certificate).",
    peers_blocked_total => "Peer addresses blocked after repeated authentication failures.",
    messages_accepted_total => "Messages spooled and answered with 250.",
    messages_refused_total => "Transactions refused with a 4xx or 5xx reply.",
    accepted_bytes_total => "Bytes of accepted messages, after signing.",
    deliveries_total => "Recipient deliveries that succeeded.",
    delivery_deferrals_total => "Delivery attempts that failed temporarily.",
    delivery_failures_total => "Recipients refused permanently or expired.",
    bounces_total => "Delivery status notifications generated.",
    spool_messages => "Messages in the spool.",
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
