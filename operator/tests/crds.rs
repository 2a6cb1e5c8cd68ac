//! The committed CRD YAML in `crds/` is exactly what the Rust types generate.

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let mut stale = Vec::new();
    for (file, crd) in mailwarden_operator::crd::all() {
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if committed != mailwarden_operator::crd::to_yaml(&crd) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "crds/{stale:?} differ from the types; run `cargo run -p mailwarden-operator -- crdgen --out crds`"
    );
}

#[test]
fn every_kind_has_a_status_subresource_and_short_name() {
    for (file, crd) in mailwarden_operator::crd::all() {
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1", "{file}");
        assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(), "{file}");
        assert!(!crd.spec.names.short_names.clone().unwrap_or_default().is_empty(), "{file}");
        assert_eq!(crd.spec.group, "mailwarden.io");
    }
}
