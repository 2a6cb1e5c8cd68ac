//! Server-side apply that stays quiet in steady state and still corrects drift.
//!
//! Before applying, the object is applied as a dry run: the API server computes what the object
//! would become (with its defaults and every other field manager's fields) without storing it.
//! When that equals the live object, nothing is written. When someone edited a field the
//! operator owns, the dry run differs, and the real apply puts the operator's value back. A
//! reconcile of an unchanged tenant therefore reads and dry-runs but never writes.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::tenant::FIELD_MANAGER;

/// What [`apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Applied,
}

/// Applies `object` with server-side apply under the operator's field manager, unless the live
/// object already is what the apply would make of it.
pub async fn apply<K>(api: &Api<K>, object: K) -> Result<Outcome, kube::Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = object.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    if let Some(live) = api.get_opt(&name).await? {
        let planned = api
            .patch(&name, &params.clone().dry_run(), &Patch::Apply(&object))
            .await?;
        if comparable(&planned) == comparable(&live) {
            return Ok(Outcome::Unchanged);
        }
    }
    api.patch(&name, &params, &Patch::Apply(&object)).await?;
    Ok(Outcome::Applied)
}

/// An object's JSON without the bookkeeping a dry run may report differently. A dry run bumps
/// `metadata.generation` for changes that leave no trace in the stored object (an empty list
/// where the live object has none), so the generation is no evidence of a difference.
fn comparable<K: Serialize>(object: &K) -> serde_json::Value {
    let mut value = serde_json::to_value(object).expect("API objects serialize");
    if let Some(object) = value.as_object_mut() {
        object.remove("status");
    }
    if let Some(metadata) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        metadata.remove("managedFields");
        metadata.remove("resourceVersion");
        metadata.remove("generation");
    }
    value
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    use super::comparable;

    #[test]
    fn bookkeeping_is_ignored_and_content_is_not() {
        let live: ConfigMap = serde_json::from_value(json!({
            "metadata": { "name": "c", "resourceVersion": "7", "managedFields": [{ "manager": "a" }] },
            "data": { "relay.toml": "x" },
        }))
        .unwrap();
        let mut planned = live.clone();
        planned.metadata.resource_version = Some("8".into());
        planned.metadata.generation = Some(2);
        planned.metadata.managed_fields = None;
        assert_eq!(comparable(&planned), comparable(&live));
        planned.data = Some([("relay.toml".to_string(), "y".to_string())].into());
        assert_ne!(comparable(&planned), comparable(&live));
    }
}
