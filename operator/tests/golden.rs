//! Golden snapshots of the planning core: tests/golden/<case>/spec.yaml (+ inventory.yaml)
//! -> plan.json (the `kelvin plan -o json` document) and objects.yaml (`kelvin render`).
//! `UPDATE_GOLDEN=1 cargo test -p kelvin-operator --test golden` rewrites them.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the report

use std::path::{Path, PathBuf};

use kelvin_crds::{load, model::nodes};
use kelvin_operator::plan::{ObservedObjects, plan};

fn check(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the plan; review and run UPDATE_GOLDEN=1 cargo test -p kelvin-operator --test golden\n--- actual ---\n{actual}",
        path.display()
    );
}

fn run(case: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case);
    let spec_path = dir.join("spec.yaml");
    let (mut clusters, diagnostics) =
        load::load_gpu_clusters("spec.yaml", &std::fs::read(&spec_path).unwrap());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let (cluster, _) = clusters.remove(0);
    let inventory = dir.join("inventory.yaml");
    let nodes = if inventory.exists() {
        load::load_inventory("inventory.yaml", &std::fs::read(&inventory).unwrap()).unwrap()
    } else {
        nodes::simulate(&cluster.spec)
    };
    let planned = plan(&cluster, &nodes, &ObservedObjects::default()).unwrap();
    assert!(planned.plan.valid, "{:?}", planned.plan.errors);
    let mut node_changes = serde_json::to_value(&planned.node_changes.changes).unwrap();
    let mut document = serde_json::to_value(&planned.plan).unwrap();
    document["nodeChangeDetail"] = node_changes.take();
    check(
        &dir.join("plan.json"),
        &format!("{}\n", serde_json::to_string_pretty(&document).unwrap()),
    );
    let objects: String = planned
        .manifests
        .iter()
        .map(|m| format!("---\n{}", serde_saphyr::to_string(&m.body).unwrap()))
        .collect();
    check(&dir.join("objects.yaml"), &objects);
}

#[test]
fn small_lab_with_mig_and_time_slicing() {
    run("small");
}

#[test]
fn degraded_and_maintenance_zones_within_the_disruption_budget() {
    run("degraded-zone");
}

#[test]
fn volcano_hypernodes_from_a_kubectl_node_list() {
    run("volcano-nodelist");
}
