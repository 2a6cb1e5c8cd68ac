//! The DKIM rotation state machine, as pure functions over the recorded key generations and
//! the current time.
//!
//! A generation is one RSA and one Ed25519 selector created together. It moves
//! `Published` (in DNS, not yet verified) → `Active` (the relay signs with it) → `Retiring`
//! (still in DNS so that mail in flight verifies, no longer used for signing) → removed.
//! A new generation is only activated once DNS serves its keys, so there is never a moment
//! where the relay signs with a key receivers cannot find.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DkimAlgorithm;

/// Where a key generation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Published in DNS, waiting until resolvers serve it.
    Published,
    /// The relay signs with these selectors.
    Active,
    /// Still published for mail in flight; removed at `retireAt`.
    Retiring,
}

/// One DKIM selector of a generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// The selector, published at `<name>._domainkey.<domain>`.
    pub name: String,
    /// The signing algorithm: `rsa-sha256` or `ed25519-sha256`.
    pub algorithm: DkimAlgorithm,
    /// The key in the DKIM Secret holding this selector's PKCS#8 PEM private key.
    pub key: String,
}

/// A set of selectors created together, one per algorithm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyGeneration {
    /// Counts rotations; part of every selector name so that names never repeat.
    pub generation: u32,
    /// Where the generation is in its life: `Published`, `Active` or `Retiring`.
    pub phase: Phase,
    /// The selectors of this generation.
    pub selectors: Vec<Selector>,
    /// When the keys were created (RFC 3339).
    pub created_at: String,
    /// When the relay started signing with them (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<String>,
    /// When the selectors are removed from DNS (RFC 3339), set once retiring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<String>,
}

/// What the rotation wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create keys for a new generation and publish them.
    Create { generation: u32 },
    /// The published generation is verified: the relay switches to it and the previous active
    /// generation starts retiring.
    Activate { generation: u32 },
    /// The grace period of a retiring generation is over: unpublish and delete its keys.
    Retire { generation: u32 },
    /// Nothing to do; look again at `recheck` if given.
    Wait { recheck: Option<DateTime<Utc>> },
}

/// Timing of the rotation, from the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub period: Duration,
    pub grace: Duration,
}

pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse(t: &Option<String>) -> Option<DateTime<Utc>> {
    t.as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Selector name for a generation created at `now`: `mw<generation>-<yyyymmdd>-<rsa|ed>`.
pub fn selector_name(generation: u32, algorithm: DkimAlgorithm, now: DateTime<Utc>) -> String {
    format!(
        "mw{generation}-{}-{}",
        now.format("%Y%m%d"),
        algorithm.selector_suffix()
    )
}

/// A new generation in the `Published` phase with one selector per algorithm.
pub fn new_generation(
    generation: u32,
    algorithms: &[DkimAlgorithm],
    now: DateTime<Utc>,
) -> KeyGeneration {
    let selectors = algorithms
        .iter()
        .map(|&algorithm| {
            let name = selector_name(generation, algorithm, now);
            Selector {
                key: format!("{name}.pem"),
                name,
                algorithm,
            }
        })
        .collect();
    KeyGeneration {
        generation,
        phase: Phase::Published,
        selectors,
        created_at: timestamp(now),
        activated_at: None,
        retire_at: None,
    }
}

/// Decides the next step. `verified` tells whether DNS serves a selector's key exactly;
/// `rotation_requested` is true when an on-demand rotation has not been handled yet.
pub fn next_step(
    generations: &[KeyGeneration],
    verified: impl Fn(&Selector) -> bool,
    schedule: Schedule,
    rotation_requested: bool,
    now: DateTime<Utc>,
) -> Step {
    let newest = generations.iter().map(|g| g.generation).max();
    let Some(newest) = newest else {
        return Step::Create { generation: 1 };
    };

    let retire_ats = generations.iter().filter(|g| g.phase == Phase::Retiring);
    if let Some(due) = retire_ats
        .clone()
        .find(|g| parse(&g.retire_at).is_none_or(|t| t <= now))
    {
        return Step::Retire {
            generation: due.generation,
        };
    }

    if let Some(pending) = generations.iter().find(|g| g.phase == Phase::Published) {
        if pending.selectors.iter().all(&verified) {
            return Step::Activate {
                generation: pending.generation,
            };
        }
        return Step::Wait { recheck: None };
    }

    let active = generations.iter().find(|g| g.phase == Phase::Active);
    let rotate_at = active
        .and_then(|g| parse(&g.activated_at))
        .map(|t| t + schedule.period);
    if rotation_requested || rotate_at.is_none_or(|t| t <= now) {
        return Step::Create {
            generation: newest + 1,
        };
    }
    let next_retire = retire_ats.filter_map(|g| parse(&g.retire_at)).min();
    Step::Wait {
        recheck: rotate_at.into_iter().chain(next_retire).min(),
    }
}

/// Applies `Activate` or `Retire` to the generations; `Create` is applied by the caller once
/// the keys exist (see [`new_generation`]).
pub fn apply(
    mut generations: Vec<KeyGeneration>,
    step: &Step,
    schedule: Schedule,
    now: DateTime<Utc>,
) -> Vec<KeyGeneration> {
    match *step {
        Step::Activate { generation } => {
            for g in &mut generations {
                if g.generation == generation {
                    g.phase = Phase::Active;
                    g.activated_at = Some(timestamp(now));
                } else if g.phase == Phase::Active {
                    g.phase = Phase::Retiring;
                    g.retire_at = Some(timestamp(now + schedule.grace));
                }
            }
        }
        Step::Retire { generation } => generations.retain(|g| g.generation != generation),
        Step::Create { .. } | Step::Wait { .. } => {}
    }
    generations
}

/// The selectors the relay must sign with now: those of the active generation.
pub fn signing_selectors(generations: &[KeyGeneration]) -> Vec<Selector> {
    generations
        .iter()
        .filter(|g| g.phase == Phase::Active)
        .flat_map(|g| g.selectors.iter().cloned())
        .collect()
}

/// The selectors that must be in DNS: every generation still recorded.
pub fn published_selectors(generations: &[KeyGeneration]) -> Vec<Selector> {
    generations
        .iter()
        .flat_map(|g| g.selectors.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests;
