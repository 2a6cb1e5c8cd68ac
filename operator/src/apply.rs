//! Server-side apply that stays quiet in steady state and still corrects drift.
//!
//! Before applying, the object is applied as a dry run: the API server computes what the object
//! would become (with its defaults and every other field manager's fields) without storing it.
//! When that equals the live object, nothing is written. When someone edited a field the
//! operator owns, the dry run differs, and the real apply puts the operator's value back. A
//! reconcile of an unchanged tenant therefore reads and dry-runs but never writes. Fields the
//! operator never sets survive an apply, so an object whose spec another manager extended is
//! replaced whole.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::tenant::{FIELD_MANAGER, TENANT_LABEL};

/// What [`apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Applied,
}

/// Why an object could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{}", api_message(.0))]
    Api(#[from] kube::Error),
    #[error("it already exists and is not owned by this {owner_kind}; rename or remove it")]
    NotOwned { owner_kind: String },
}

/// The API server's own message for a refused request, without the debug dump of the response.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// Applies `object` with server-side apply under the operator's field manager, unless the live
/// object already is what the apply would make of it. An object of the same name that another
/// owner controls is never taken over.
pub async fn apply<K>(api: &Api<K>, object: K) -> Result<Outcome, ApplyError>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = object.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    if let Some(live) = api.get_opt(&name).await? {
        if let Some(wanted) = controller_uid(&object)
            && controller_uid(&live) != Some(wanted)
            && !restored(&object, &live)
        {
            let owner_kind = object
                .meta()
                .owner_references
                .iter()
                .flatten()
                .next()
                .map(|r| r.kind.clone())
                .unwrap_or_default();
            return Err(ApplyError::NotOwned { owner_kind });
        }
        if let Some(manager) = foreign_spec_manager(&live) {
            // Someone added to the spec (a sidecar, hostNetwork, an open ingress rule) where
            // the operator sets nothing, so an apply would leave it: replace the whole object.
            tracing::warn!(object = %name, manager, "replacing an object whose spec was extended by hand");
            let mut replacement = object;
            replacement.meta_mut().resource_version = live.meta().resource_version.clone();
            let post = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            api.replace(&name, &post, &replacement).await?;
            return Ok(Outcome::Applied);
        }
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

/// Whether `live` is a restored copy of the object the operator wants: it has no controller
/// (a backup restored without owner references) and carries the same tenant label. Such an
/// object is adopted, so a CA restored from a backup before its MailTenant keeps every
/// certificate valid. An object another controller owns, or an unlabelled one, is never taken.
fn restored<K: Resource>(wanted: &K, live: &K) -> bool {
    let tenant = |o: &K| o.meta().labels.as_ref()?.get(TENANT_LABEL).cloned();
    controller_uid(live).is_none() && tenant(wanted).is_some() && tenant(live) == tenant(wanted)
}

/// The uid of the object's controller, if it has one.
pub fn controller_uid<K: Resource>(object: &K) -> Option<String> {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

/// A field manager other than the operator that owns part of the object's `spec`. After a
/// forced apply the operator owns every field it sets, so such a manager owns only fields the
/// operator does not set.
fn foreign_spec_manager<K: Resource>(live: &K) -> Option<String> {
    live.meta()
        .managed_fields
        .as_ref()?
        .iter()
        .find_map(|entry| {
            let manager = entry.manager.clone().unwrap_or_default();
            let on_status = entry.subresource.as_deref() == Some("status");
            let touches_spec = entry
                .fields_v1
                .as_ref()
                .is_some_and(|fields| fields.0.get("f:spec").is_some());
            (manager != FIELD_MANAGER && !on_status && touches_spec).then_some(manager)
        })
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

    use super::{comparable, restored};

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

    #[test]
    fn only_a_labelled_object_without_controller_is_adopted() {
        let object = |labels: serde_json::Value, owners: serde_json::Value| -> ConfigMap {
            serde_json::from_value(json!({
                "metadata": { "name": "c", "labels": labels, "ownerReferences": owners },
            }))
            .unwrap()
        };
        let tenant = json!({ "mailwarden.io/tenant": "st-olaf" });
        let ours = json!([{ "apiVersion": "mailwarden.io/v1alpha1", "kind": "MailTenant",
            "name": "st-olaf", "uid": "new", "controller": true }]);
        let theirs = json!([{ "apiVersion": "apps/v1", "kind": "Deployment",
            "name": "x", "uid": "other", "controller": true }]);
        let wanted = object(tenant.clone(), ours);

        assert!(restored(&wanted, &object(tenant.clone(), json!([]))));
        assert!(!restored(&wanted, &object(json!({}), json!([]))));
        assert!(!restored(
            &wanted,
            &object(json!({ "mailwarden.io/tenant": "other" }), json!([]))
        ));
        assert!(!restored(&wanted, &object(tenant, theirs)));
    }
}
