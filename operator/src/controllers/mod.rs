//! The controllers and what they share: the client, the Event recorder and the metrics.

pub mod mail_tenant;
pub mod sending_domain;
pub mod sending_ip_pool;

use std::sync::Arc;

use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::metrics::Metrics;

/// Name under which the operator reports Events and applies objects.
pub const CONTROLLER_NAME: &str = "mailwarden";

/// The API server refuses Event notes longer than 1 kB.
const EVENT_NOTE_LIMIT: usize = 1000;

/// Cuts `text` to at most `limit` bytes on a character boundary, marking the cut.
fn truncate(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER_NAME.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
        }
    }

    /// Publishes an Event about `object`; a failure to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(truncate(note, EVENT_NOTE_LIMIT)),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &object.object_ref(&())).await {
            let error = crate::apply::api_message(&error);
            tracing::warn!(%error, reason, "failed to publish an Event");
        }
    }
}

/// Runs every controller until one stops (at shutdown).
pub async fn run(context: Arc<Context>) {
    tokio::join!(
        mail_tenant::run(context.clone()),
        sending_domain::run(context.clone()),
        sending_ip_pool::run(context),
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        assert_eq!(super::truncate("short".into(), 10), "short");
        let cut = super::truncate("é".repeat(600), 1000);
        assert_eq!(cut.len(), 999);
        assert!(cut.ends_with("é..."));
    }
}
