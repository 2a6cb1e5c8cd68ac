//! Status conditions shared by every kind: a list keyed on `type`, each stamped with the
//! generation it was computed from, so that `kubectl wait --for=condition=Ready` and GitOps
//! health checks read the same truth.

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One observation about an object, in the shape of the Kubernetes `metav1.Condition`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// What is observed, for example `Ready`, `PKIReady`, `RelayReady`, `NetworkIsolated`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase word a program can match on, for example `CertificatesIssued` or
    /// `ReplicasNotReady`.
    pub reason: String,
    /// What a person needs to know, including what to do when the status is not `True`.
    #[serde(default)]
    pub message: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default)]
    pub observed_generation: i64,
    /// When `status` last changed (RFC 3339).
    #[serde(default)]
    pub last_transition_time: String,
}

impl Condition {
    pub fn new(type_: &str, ok: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.to_string(),
            status: if ok { "True" } else { "False" }.to_string(),
            reason: reason.to_string(),
            message: message.into(),
            observed_generation: 0,
            last_transition_time: String::new(),
        }
    }

    pub fn unknown(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            status: "Unknown".to_string(),
            ..Self::new(type_, false, reason, message)
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Merges freshly computed conditions into the previous ones: a condition whose status did not
/// change keeps its transition time, so that an unchanged object yields an identical status and
/// no write. Returns the merged list and the conditions whose status changed (for Events).
pub fn merge(
    previous: &[Condition],
    fresh: Vec<Condition>,
    generation: i64,
    now: DateTime<Utc>,
) -> (Vec<Condition>, Vec<Condition>) {
    let now = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut changed = Vec::new();
    let merged = fresh
        .into_iter()
        .map(|mut condition| {
            condition.observed_generation = generation;
            match previous.iter().find(|old| old.type_ == condition.type_) {
                Some(old) if old.status == condition.status => {
                    condition.last_transition_time = old.last_transition_time.clone();
                }
                _ => {
                    condition.last_transition_time = now.clone();
                    changed.push(condition.clone());
                }
            }
            condition
        })
        .collect();
    (merged, changed)
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let earlier = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let later = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        let first = vec![Condition::new("Ready", false, "Pending", "waiting")];
        let (merged, changed) = merge(&[], first, 1, earlier);
        assert_eq!(merged[0].last_transition_time, "2026-01-01T00:00:00Z");
        assert_eq!(changed.len(), 1);

        let again = vec![Condition::new("Ready", false, "Pending", "still waiting")];
        let (merged, changed) = merge(&merged, again, 2, later);
        assert_eq!(merged[0].last_transition_time, "2026-01-01T00:00:00Z");
        assert_eq!(merged[0].observed_generation, 2);
        assert_eq!(merged[0].message, "still waiting");
        assert!(changed.is_empty());

        let ready = vec![Condition::new("Ready", true, "Ready", "all good")];
        let (merged, changed) = merge(&merged, ready, 2, later);
        assert_eq!(merged[0].last_transition_time, "2026-02-01T00:00:00Z");
        assert_eq!(changed[0].reason, "Ready");
    }
}
