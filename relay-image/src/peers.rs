//! Blocking of peer addresses that keep failing to authenticate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mailwarden_relay_config::AuthFailures;

/// What a recorded failure led to.
#[derive(Debug, PartialEq, Eq)]
pub enum FailureOutcome {
    Counted,
    /// This failure crossed the limit; the address is blocked for the configured time.
    Blocked,
}

#[derive(Default)]
struct Peer {
    failures: Vec<Instant>,
    blocked_until: Option<Instant>,
}

/// Failure counts and blocks per peer address.
#[derive(Default)]
pub struct PeerBlocks {
    peers: Mutex<HashMap<IpAddr, Peer>>,
}

impl PeerBlocks {
    /// Whether the address is blocked now.
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers
            .get(&ip)
            .and_then(|p| p.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Counts a failure within the policy's window.
    pub fn record_failure(
        &self,
        ip: IpAddr,
        now: Instant,
        policy: &AuthFailures,
    ) -> FailureOutcome {
        let window = Duration::from_secs(policy.window_seconds);
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.retain(|_, p| {
            p.blocked_until.is_some_and(|u| now < u)
                || p.failures
                    .last()
                    .is_some_and(|&t| now.duration_since(t) < window)
        });
        let peer = peers.entry(ip).or_default();
        peer.failures.retain(|&t| now.duration_since(t) < window);
        peer.failures.push(now);
        if peer.failures.len() >= policy.max_failures as usize {
            peer.failures.clear();
            peer.blocked_until = Some(now + Duration::from_secs(policy.block_seconds));
            return FailureOutcome::Blocked;
        }
        FailureOutcome::Counted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: AuthFailures = AuthFailures {
        max_failures: 3,
        window_seconds: 60,
        block_seconds: 600,
    };

    #[test]
    fn the_third_failure_in_the_window_blocks_for_the_block_time() {
        let blocks = PeerBlocks::default();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(
            blocks.record_failure(ip, t0, &POLICY),
            FailureOutcome::Counted
        );
        assert_eq!(
            blocks.record_failure(ip, t0 + Duration::from_secs(10), &POLICY),
            FailureOutcome::Counted
        );
        assert!(!blocks.is_blocked(ip, t0 + Duration::from_secs(10)));
        assert_eq!(
            blocks.record_failure(ip, t0 + Duration::from_secs(20), &POLICY),
            FailureOutcome::Blocked
        );
        assert!(blocks.is_blocked(ip, t0 + Duration::from_secs(619)));
        assert!(!blocks.is_blocked(ip, t0 + Duration::from_secs(620)));
        assert!(!blocks.is_blocked("10.1.2.4".parse().unwrap(), t0 + Duration::from_secs(30)));
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let blocks = PeerBlocks::default();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        blocks.record_failure(ip, t0, &POLICY);
        blocks.record_failure(ip, t0 + Duration::from_secs(1), &POLICY);
        let outcome = blocks.record_failure(ip, t0 + Duration::from_secs(61), &POLICY);
        assert_eq!(outcome, FailureOutcome::Counted);
    }
}
