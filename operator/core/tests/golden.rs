//! Golden snapshots of the pure core: tests/golden/<case>/spec.yaml (+ inventory.yaml)
//! -> plan.json (the `kelvin plan -o json` document, plus every node write in
//! `nodeWrites`), objects.yaml (`kelvin render`) and status.json (what the operator would
//! write to the GpuCluster's status).
//! `UPDATE_GOLDEN=1 cargo test -p kelvin-core --test golden` rewrites them.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the report

use std::path::{Path, PathBuf};

use kelvin_core::{
    observed::{Observed, simulate},
    plan::plan,
    rollout::NodeWrite,
    status::status,
};
use kelvin_crds::load;
use serde_json::{Value, json};

fn check(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the plan; review and run UPDATE_GOLDEN=1 cargo test -p kelvin-core --test golden\n--- actual ---\n{actual}",
        path.display()
    );
}

fn write_json(write: &NodeWrite) -> Value {
    json!({
        "node": write.node,
        "setLabels": write.diff.set_labels().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect::<serde_json::Map<_, _>>(),
        "removeLabels": write.diff.remove_labels,
        "addTaints": write.diff.add_taints.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "removeTaints": write.diff.remove_taints.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "annotations": write.annotations.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "starts": write.starts.map(|t| t.as_str()),
        "holds": write.holds.map(|t| t.as_str()),
    })
}

fn run(case: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case);
    let spec_path = dir.join("spec.yaml");
    let (mut clusters, diagnostics) =
        load::load_gpu_clusters("spec.yaml", &std::fs::read(&spec_path).unwrap());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let (mut cluster, _) = clusters.remove(0);
    cluster.metadata.generation = Some(1);
    let inventory = dir.join("inventory.yaml");
    let nodes = if inventory.exists() {
        load::load_inventory("inventory.yaml", &std::fs::read(&inventory).unwrap()).unwrap()
    } else {
        simulate(&cluster.spec)
    };
    let observed = Observed::new(nodes, "2026-12-01T10:00:00Z".parse().unwrap()).unwrap();
    let planned = plan(&cluster, &observed).unwrap();
    assert!(planned.plan.valid, "{:?}", planned.plan.errors);
    let mut document = serde_json::to_value(&planned.plan).unwrap();
    document["nodeWrites"] = planned.rollout.writes.iter().map(write_json).collect();
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
    let status = status(&cluster, &planned, &observed);
    check(
        &dir.join("status.json"),
        &format!("{}\n", serde_json::to_string_pretty(&status).unwrap()),
    );
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
