//! Kueue: a ResourceFlavor per pool, a ClusterQueue per tenant (all in one cohort named after
//! the site), a LocalQueue per tenant namespace, and a Topology per fabric whose levels are the
//! fabric's tiers (Topograph label keys), ending at the hostname as Kueue requires.
//!
//! A tenant's `gpuQuota` is a cap, so its ClusterQueue never borrows (`borrowingLimit: 0`):
//! each tenant namespace's ResourceQuota holds the same number, and Kubernetes enforces it at
//! pod creation, so a workload Kueue admitted by borrowing would have the pods past the quota
//! refused — a gang half created. Without the limit the real Kueue admitted a 776-GPU Job of a
//! tenant with 768 by borrowing from another tenant's idle quota (`operator/tests/kueue.rs`).
//! Preemption within a ClusterQueue follows the spec's PriorityClasses: `LowerPriority` when
//! one of them may preempt (`PreemptLowerPriority`), else `Never` (Kueue's default). Kueue
//! reads a workload's priority from its PriorityClass but not the class's preemptionPolicy,
//! so with mixed classes a `Never` class's workloads preempt in Kueue too (docs/kueue.md).

use std::collections::BTreeMap;

use kelvin_crds::v1alpha1::{GpuClusterSpec, PreemptionPolicy};
use serde_json::{Value, json};

use super::{CustomObject, Desired, Owner};
use crate::{
    analysis::Analysis,
    constants::{POOL_LABEL, TENANT_LABEL},
    model::devices,
};

pub(super) fn build(spec: &GpuClusterSpec, analysis: &Analysis, owner: &Owner, out: &mut Desired) {
    for (fabric, design) in spec.fabrics.iter().zip(&analysis.fabrics) {
        let Some(design) = design else { continue };
        let keys = &fabric.topology.labels;
        let mut levels = Vec::new();
        if design.tiers >= 3 {
            levels.push(keys.core.as_str());
        }
        if design.tiers >= 2 {
            levels.push(keys.spine.as_str());
        }
        levels.push(keys.leaf.as_str());
        let smallest_node = spec
            .gpu_pools
            .iter()
            .filter(|p| p.fabric == fabric.name)
            .map(|p| p.accelerator.per_node)
            .min();
        if smallest_node.is_some_and(|per_node| fabric.nvlink_domain_size > per_node) {
            levels.push(keys.accelerator.as_str());
        }
        levels.push("kubernetes.io/hostname");
        let levels: Vec<Value> = levels
            .into_iter()
            .map(|label| json!({"nodeLabel": label}))
            .collect();
        out.topologies.push(CustomObject::new(
            &fabric.name,
            None,
            owner,
            json!({"levels": levels}),
        ));
    }
    for pool in &spec.gpu_pools {
        let tolerations: Vec<Value> = pool
            .taints
            .iter()
            .map(|t| json!({"key": t.key, "operator": "Equal", "value": t.value.clone().unwrap_or_default(), "effect": t.effect.as_str()}))
            .collect();
        let mut flavor =
            json!({"nodeLabels": {POOL_LABEL: pool.name}, "topologyName": pool.fabric});
        if !tolerations.is_empty() {
            flavor["tolerations"] = Value::Array(tolerations);
        }
        out.resource_flavors
            .push(CustomObject::new(&pool.name, None, owner, flavor));
    }
    let Some(scheduling) = &spec.scheduling else {
        return;
    };
    let within_cluster_queue = if scheduling
        .priority_classes
        .iter()
        .any(|c| c.preemption_policy == PreemptionPolicy::PreemptLowerPriority)
    {
        "LowerPriority"
    } else {
        "Never"
    };
    for tenant in &scheduling.tenants {
        // Flavors in one resource group must cover the same resources: group pools by resource.
        let mut groups: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for (pool_name, gpus) in &tenant.gpu_quota {
            let Some(pool) = spec.gpu_pools.iter().find(|p| &p.name == pool_name) else {
                continue;
            };
            let resource = devices::resource_name(&pool.accelerator);
            groups.entry(resource).or_default().push(json!({
                "name": pool.name,
                "resources": [{
                    "name": resource,
                    "nominalQuota": gpus * devices::shares_per_gpu(pool),
                    "borrowingLimit": 0,
                }],
            }));
        }
        let resource_groups: Vec<Value> = groups
            .into_iter()
            .map(|(resource, flavors)| json!({"coveredResources": [resource], "flavors": flavors}))
            .collect();
        out.cluster_queues.push(CustomObject::new(
            &tenant.name,
            None,
            owner,
            json!({
                "cohortName": owner.cluster_name(),
                "namespaceSelector": {"matchLabels": {TENANT_LABEL: tenant.name}},
                "preemption": {"withinClusterQueue": within_cluster_queue},
                "resourceGroups": resource_groups,
            }),
        ));
        for namespace in &tenant.namespaces {
            out.local_queues.push(CustomObject::new(
                &tenant.name,
                Some(namespace),
                owner,
                json!({"clusterQueue": tenant.name}),
            ));
        }
    }
}
