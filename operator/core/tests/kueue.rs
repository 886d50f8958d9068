//! The Kueue ClusterQueues Kelvin generates: a tenant's quota is a cap (no borrowing), and
//! preemption within a tenant follows the spec's PriorityClasses. `operator/tests/kueue.rs`
//! proves both with the real Kueue; these pin the generated fields.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a failure is the report

use kelvin_core::{
    observed::{Observed, ServedApis, simulate},
    plan::plan,
};
use kelvin_crds::{
    load,
    v1alpha1::{GpuCluster, PreemptionPolicy},
};
use serde_json::Value;

fn small() -> GpuCluster {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/small/cluster.yaml"
    ))
    .unwrap();
    let (mut clusters, diagnostics) = load::load_gpu_clusters("cluster.yaml", &text);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    clusters.remove(0).0
}

/// The spec of every generated ClusterQueue.
fn cluster_queues(cluster: &GpuCluster) -> Vec<Value> {
    let mut observed = Observed::new(
        simulate(&cluster.spec),
        "2026-12-01T10:00:00Z".parse().unwrap(),
    )
    .unwrap();
    observed.apis = ServedApis {
        kueue: true,
        volcano: false,
    };
    let planned = plan(cluster, &observed).unwrap();
    assert!(planned.plan.valid, "{:?}", planned.plan.errors);
    let queues: Vec<Value> = planned
        .desired
        .cluster_queues
        .iter()
        .map(|q| q.body["spec"].clone())
        .collect();
    assert_eq!(queues.len(), 2, "one per tenant");
    queues
}

#[test]
fn a_tenants_quota_is_a_cap_no_cluster_queue_borrows() {
    for queue in cluster_queues(&small()) {
        let resources: Vec<&Value> = queue["resourceGroups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["flavors"].as_array().unwrap())
            .flat_map(|f| f["resources"].as_array().unwrap())
            .collect();
        assert!(!resources.is_empty(), "{queue}");
        for resource in resources {
            assert_eq!(resource["borrowingLimit"], 0, "{queue}");
            assert!(resource["nominalQuota"].as_u64().unwrap() > 0, "{queue}");
        }
        // Still one cohort for the site's tenants.
        assert_eq!(queue["cohortName"], "lab");
    }
}

#[test]
fn preemption_within_a_tenant_follows_the_priority_classes() {
    // examples/small's one class preempts (the default policy).
    let mut cluster = small();
    for queue in cluster_queues(&cluster) {
        assert_eq!(queue["preemption"]["withinClusterQueue"], "LowerPriority");
    }
    // No class may preempt: neither does Kueue within a tenant.
    let scheduling = cluster.spec.scheduling.as_mut().unwrap();
    for class in &mut scheduling.priority_classes {
        class.preemption_policy = PreemptionPolicy::Never;
    }
    for queue in cluster_queues(&cluster) {
        assert_eq!(queue["preemption"]["withinClusterQueue"], "Never");
    }
    // No classes at all: all workloads have one priority; nothing to preempt for.
    cluster
        .spec
        .scheduling
        .as_mut()
        .unwrap()
        .priority_classes
        .clear();
    for queue in cluster_queues(&cluster) {
        assert_eq!(queue["preemption"]["withinClusterQueue"], "Never");
    }
}
