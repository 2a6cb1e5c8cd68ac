//! Delivery of spooled messages: scheduling, per-destination limits, retries and bounces.
//!
//! Every spooled message is scheduled at start and whenever the submission side queues one.
//! An attempt delivers each recipient domain in turn and saves progress after each domain, so a
//! crash re-sends at most the domain whose `250` had not yet been recorded. Temporary failures are
//! retried after `initial-retry-seconds`, doubling up to `max-retry-seconds`; after
//! `max-age-seconds` the remaining recipients are bounced with a DSN to the sender.

pub mod client;
pub mod dane;
pub mod dsn;
pub mod mta_sts;
pub mod route;
pub mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use crate::audit::Event;
use crate::metrics::Metrics;
use crate::relay::Relay;
use crate::spool::{DeliveryState, Envelope};
use client::{Handover, RecipientResult, hand_over};
use route::Router;

/// Runs the queue until the task is aborted.
pub async fn run(relay: Arc<Relay>, mut queued: mpsc::UnboundedReceiver<String>) {
    let router = match Router::new(&relay.snapshot().config) {
        Ok(router) => Arc::new(router),
        Err(error) => {
            tracing::error!(%error, "delivery cannot start; messages stay spooled");
            return;
        }
    };
    let queue = Arc::new(Queue {
        relay: relay.clone(),
        router,
        limits: Mutex::default(),
    });
    let mut schedule: HashMap<String, u64> = HashMap::new();
    for id in relay.spool.message_ids().unwrap_or_default() {
        let next = relay.spool.state(&id).map(|s| s.next_attempt).unwrap_or(0);
        schedule.insert(id, next);
    }
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, Option<u64>)>();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        relay
            .metrics
            .spool_messages
            .store(schedule.len() as u64, std::sync::atomic::Ordering::Relaxed);
        tokio::select! {
            Some(id) = queued.recv() => { schedule.insert(id, 0); }
            Some((id, next)) = done_rx.recv() => {
                in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                match next {
                    Some(next) => { schedule.insert(id, next); }
                    None => { schedule.remove(&id); }
                }
            }
            _ = tick.tick() => {}
        }
        let now = unix_now();
        let mut busy = in_flight.lock().unwrap_or_else(|e| e.into_inner());
        for (id, next) in &schedule {
            if *next <= now && busy.insert(id.clone()) {
                let (queue, id, done) = (queue.clone(), id.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let next = queue.attempt(&id).await;
                    let _ = done.send((id, next));
                });
            }
        }
    }
}

struct Queue {
    relay: Arc<Relay>,
    router: Arc<Router>,
    /// One semaphore per destination domain (or the smarthost).
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Queue {
    /// One delivery attempt; returns when to try again, or None when the message is done.
    async fn attempt(&self, id: &str) -> Option<u64> {
        let spool = &self.relay.spool;
        let (envelope, message) = match spool.load(id) {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(%error, %id, "failed to load a spooled message");
                return Some(unix_now() + 300);
            }
        };
        let mut state = spool.state(id).unwrap_or_default();
        let snapshot = self.relay.snapshot();
        let config = &snapshot.config;

        let mut by_domain: Vec<(String, Vec<String>)> = Vec::new();
        for recipient in state.pending(&envelope) {
            let domain = recipient
                .rsplit_once('@')
                .map_or("", |(_, d)| d)
                .to_ascii_lowercase();
            match by_domain.iter_mut().find(|(d, _)| *d == domain) {
                Some((_, list)) => list.push(recipient.to_string()),
                None => by_domain.push((domain, vec![recipient.to_string()])),
            }
        }
        for (domain, recipients) in by_domain {
            let outcome = self
                .deliver_domain(&envelope, &message, &domain, &recipients)
                .await;
            for (recipient, result) in recipients.iter().zip(outcome) {
                match result {
                    RecipientResult::Delivered => {
                        Metrics::add(&self.relay.metrics.deliveries_total, 1);
                        state.delivered.push(recipient.clone());
                    }
                    RecipientResult::Refused(reply) => {
                        Metrics::add(&self.relay.metrics.delivery_failures_total, 1);
                        state.failed.push((recipient.clone(), reply));
                    }
                    RecipientResult::Deferred(reply) => {
                        Metrics::add(&self.relay.metrics.delivery_deferrals_total, 1);
                        state.last_error = reply;
                    }
                }
            }
            if let Err(error) = spool.save_state(id, &state) {
                tracing::error!(%error, %id, "failed to record delivery progress");
            }
        }

        state.attempts += 1;
        let now = unix_now();
        let expired = now.saturating_sub(envelope.received_at) >= config.delivery.max_age_seconds;
        let pending: Vec<String> = state
            .pending(&envelope)
            .into_iter()
            .map(String::from)
            .collect();
        if !pending.is_empty() && !expired {
            let shift = (state.attempts - 1).min(30);
            let delay = config
                .delivery
                .initial_retry_seconds
                .saturating_mul(1 << shift);
            state.next_attempt = now + delay.min(config.delivery.max_retry_seconds);
            if let Err(error) = spool.save_state(id, &state) {
                tracing::error!(%error, %id, "failed to record the next attempt");
            }
            return Some(state.next_attempt);
        }
        for recipient in pending {
            let reason = format!(
                "message expired in the queue; last error: {}",
                state.last_error
            );
            state.failed.push((recipient, reason));
        }
        if !state.failed.is_empty() && !envelope.sender.is_empty() {
            self.bounce(&envelope, &message, &state);
        }
        if let Err(error) = spool.remove(id) {
            tracing::error!(%error, %id, "failed to remove a finished message");
        }
        None
    }

    async fn deliver_domain(
        &self,
        envelope: &Envelope,
        message: &[u8],
        domain: &str,
        recipients: &[String],
    ) -> Vec<RecipientResult> {
        let snapshot = self.relay.snapshot();
        let config = &snapshot.config;
        let limit_key = match &config.delivery.mode {
            mailwarden_relay_config::DeliveryMode::Smarthost { host, .. } => host.clone(),
            _ => domain.to_string(),
        };
        let semaphore = {
            let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
            let per_destination = config.delivery.per_destination_concurrency as usize;
            limits
                .entry(limit_key)
                .or_insert_with(|| Arc::new(Semaphore::new(per_destination)))
                .clone()
        };
        let _permit = semaphore
            .acquire_owned()
            .await
            .expect("semaphores are never closed");

        let all = |result: RecipientResult| vec![result; recipients.len()];
        let destinations = match self.router.destinations(config, domain).await {
            Ok(destinations) => destinations,
            Err(error) if error.is_permanent() => {
                return all(RecipientResult::Refused(error.to_string()));
            }
            Err(error) => return all(RecipientResult::Deferred(error.to_string())),
        };
        let credentials = smarthost_credentials(config);
        let recipient_refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
        let mut last = format!("no usable MX host for {domain}");
        let sources = &config.delivery.source_addresses;
        for destination in &destinations {
            for (i, address) in destination.addresses.iter().enumerate() {
                let handover = Handover {
                    host: &destination.host,
                    address: *address,
                    source: sources.get(i % sources.len().max(1)).copied(),
                    helo: &config.hostname,
                    verifier: destination.verifier.clone(),
                    credentials: credentials.clone(),
                    sender: &envelope.sender,
                    recipients: &recipient_refs,
                    require_tls: envelope.require_tls,
                    message,
                };
                let result = hand_over(&handover).await;
                let (label, reply) = match &result {
                    Ok(results) if results.iter().all(|r| *r == RecipientResult::Delivered) => {
                        ("delivered", String::new())
                    }
                    Ok(_) => ("partial", String::new()),
                    Err(error) => ("failed", error.to_string()),
                };
                let _ = self.relay.audit.record(&Event::DeliveryAttempt {
                    id: &envelope.id,
                    domain,
                    host: &destination.host,
                    tls_policy: destination.policy,
                    result: label,
                    reply: &reply,
                });
                match result {
                    Ok(results) => return results,
                    Err(error) if error.is_permanent() => {
                        return all(RecipientResult::Refused(error.to_string()));
                    }
                    Err(error) => last = error.to_string(),
                }
            }
        }
        all(RecipientResult::Deferred(last))
    }

    /// Spools a DSN to the sender for the failed recipients.
    fn bounce(&self, envelope: &Envelope, message: &[u8], state: &DeliveryState) {
        let snapshot = self.relay.snapshot();
        let sender_domain = envelope.sender.rsplit_once('@').map_or("", |(_, d)| d);
        let id = crate::submission::new_message_id();
        let report = dsn::build(
            &snapshot.config.hostname,
            &envelope.id,
            &envelope.sender,
            sender_domain,
            &state.failed,
            message,
        );
        let signed = match snapshot.signer.sign(sender_domain, &report) {
            Ok((signatures, _)) => [signatures.into_bytes(), report].concat(),
            Err(error) => {
                tracing::error!(%error, "failed to sign a DSN; sending it unsigned");
                report
            }
        };
        let dsn = Envelope {
            id: id.clone(),
            sender: String::new(),
            recipients: vec![envelope.sender.clone()],
            received_at: unix_now(),
            client: "mailer-daemon".into(),
            require_tls: false,
        };
        match self.relay.spool.store(&dsn, &[&signed]) {
            Ok(()) => {
                Metrics::add(&self.relay.metrics.bounces_total, 1);
                let _ = self.relay.audit.record(&Event::MessageBounced {
                    id: &envelope.id,
                    recipients: state.failed.len(),
                    dsn: &id,
                });
                let _ = self.relay.queued.send(id);
            }
            Err(error) => tracing::error!(%error, "failed to spool a DSN"),
        }
    }
}

/// Reads the smarthost's `username` and `password` files, if configured.
fn smarthost_credentials(
    config: &mailwarden_relay_config::RelayConfig,
) -> Option<(String, String)> {
    let mailwarden_relay_config::DeliveryMode::Smarthost {
        credentials_dir: Some(dir),
        ..
    } = &config.delivery.mode
    else {
        return None;
    };
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .map(|s| s.trim().to_string())
    };
    Some((read("username")?, read("password")?))
}

fn unix_now() -> u64 {
    chrono::Utc::now().timestamp() as u64
}
