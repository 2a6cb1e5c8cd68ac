//! The committed CRD YAML in `crds/` and in the operator chart is exactly what the Rust types
//! generate.

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut stale = Vec::new();
    for dir in ["crds", "charts/mailwarden-operator/crds"] {
        for (file, crd) in mailwarden_operator::crd::all() {
            let committed = std::fs::read_to_string(root.join(dir).join(file)).unwrap_or_default();
            if committed != mailwarden_operator::crd::to_yaml(&crd) {
                stale.push(format!("{dir}/{file}"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from the types; run `cargo run -p mailwarden-operator -- crdgen`"
    );
}

#[test]
fn every_kind_has_a_status_subresource_and_short_name() {
    for (file, crd) in mailwarden_operator::crd::all() {
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1", "{file}");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{file}"
        );
        assert!(
            !crd.spec
                .names
                .short_names
                .clone()
                .unwrap_or_default()
                .is_empty(),
            "{file}"
        );
        assert_eq!(crd.spec.group, "mailwarden.io");
    }
}
