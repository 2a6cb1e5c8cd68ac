//! Server-side apply that stays quiet in steady state.
//!
//! Every object the operator applies carries the hash of what it applied. Before applying, the
//! live object is read; when it already carries the same hash, nothing is sent. A reconcile of
//! an unchanged tenant therefore reads but never writes.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::tenant::FIELD_MANAGER;

/// Annotation holding the hash of the last applied object.
pub const APPLIED_HASH_ANNOTATION: &str = "mailwarden.io/applied-hash";

/// Hex SHA-256 of a value's JSON form.
pub fn hash_of<T: Serialize>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).expect("applied objects serialize");
    hex::encode(Sha256::digest(bytes))
}

/// What [`apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Applied,
}

/// Applies `object` with server-side apply under the operator's field manager, unless the live
/// object already carries the hash of exactly this object.
pub async fn apply<K>(api: &Api<K>, mut object: K) -> Result<Outcome, kube::Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = object.name_any();
    let hash = hash_of(&object);
    if let Some(live) = api.get_opt(&name).await? {
        if live.annotations().get(APPLIED_HASH_ANNOTATION) == Some(&hash) {
            return Ok(Outcome::Unchanged);
        }
    }
    object.annotations_mut().insert(APPLIED_HASH_ANNOTATION.to_string(), hash);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&object)).await?;
    Ok(Outcome::Applied)
}
