//! The CRD YAML committed in crds/ and charts/kelvin/crds/ is what the Rust types generate.
//! `UPDATE_GOLDEN=1 cargo test -p kelvin-crds --test crd_drift` rewrites it.

use std::path::PathBuf;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn committed_crds_match_the_types() {
    let crd = kelvin_crds::crd::all().remove(0);
    let expected = format!(
        "{}{}",
        kelvin_crds::crd::GENERATED_HEADER,
        kelvin_crds::crd::yaml().unwrap()
    );
    let name = kelvin_crds::crd::file_name(&crd);
    for dir in ["crds", "charts/kelvin/crds"] {
        let path = workspace().join(dir).join(&name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &expected).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == expected,
            "{} drifted from the Rust types; run UPDATE_GOLDEN=1 cargo test -p kelvin-crds --test crd_drift",
            path.display()
        );
    }
}

#[test]
fn crd_has_the_designed_names_and_columns() {
    let crd = kelvin_crds::crd::all().remove(0);
    assert_eq!(crd.metadata.name.as_deref(), Some("gpuclusters.kelvin.dev"));
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["gpuc".to_owned()][..])
    );
    let version = &crd.spec.versions[0];
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        ["Pools", "Nodes", "GPUs", "Power-MW", "Ready", "Age"]
    );
}

#[test]
fn every_spec_field_has_a_description_for_kubectl_explain() {
    fn walk(schema: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        if let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, child) in properties {
                let child_path = format!("{path}.{name}");
                if child.get("description").is_none() {
                    missing.push(child_path.clone());
                }
                walk(child, &child_path, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
    }
    let schema = kelvin_crds::load::gpu_cluster_schema();
    let mut missing = Vec::new();
    walk(&schema["properties"]["spec"], "spec", &mut missing);
    walk(&schema["properties"]["status"], "status", &mut missing);
    // Condition's fields come from k8s-openapi and are described there.
    missing.retain(|path| !path.starts_with("status.conditions"));
    assert!(
        missing.is_empty(),
        "fields without a doc comment: {missing:?}"
    );
}
