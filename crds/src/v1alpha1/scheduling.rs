use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Priorities, tenants with GPU quotas, and topology-aware scheduling.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scheduling {
    /// PriorityClasses Kelvin creates.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 32))]
    pub priority_classes: Vec<PriorityClassSpec>,

    /// Tenants: each gets its namespaces, a ResourceQuota per namespace and, with Kueue, a
    /// ClusterQueue holding its GPU quota.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 128))]
    pub tenants: Vec<Tenant>,

    /// Which scheduler gets the fabric topology: Kueue (ResourceFlavors, ClusterQueues,
    /// LocalQueues, Topology) or Volcano (HyperNodes), or None.
    #[serde(default)]
    pub topology_aware_scheduling: TopologyAwareScheduling,
}

/// A PriorityClass Kelvin creates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriorityClassSpec {
    /// PriorityClass name, a DNS subdomain without dots.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Priority; higher runs first. Values above 1e9 are reserved for system classes.
    #[schemars(range(min = -2147483648, max = 1000000000))]
    pub value: i32,
    /// Whether pods of this class preempt lower-priority pods.
    #[serde(default)]
    pub preemption_policy: PreemptionPolicy,
    /// What the class is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
}

/// Preemption policy of a PriorityClass.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PreemptionPolicy {
    /// Preempt lower-priority pods.
    #[default]
    PreemptLowerPriority,
    /// Never preempt.
    Never,
}

/// A tenant: a team with namespaces and GPU quotas.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tenant {
    /// Tenant name, a DNS label.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Namespaces of the tenant; Kelvin creates them. A namespace belongs to one tenant.
    #[schemars(
        length(min = 1, max = 64),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub namespaces: Vec<String>,
    /// Physical GPUs per pool (keys are spec.gpuPools names). Quotas on shared pools are
    /// multiplied by the pool's shares per GPU (TimeSlicing/MPS replicas, MIG instances).
    #[serde(default)]
    // Bounds the cost of the CEL rule checking its keys (as spec.gpuPools' maxItems does).
    #[schemars(extend("maxProperties" = 64))]
    pub gpu_quota: BTreeMap<String, u64>,
}

/// Scheduler that receives the fabric topology.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TopologyAwareScheduling {
    /// Kueue: ResourceFlavor per pool, ClusterQueue per tenant, LocalQueue per namespace,
    /// Topology per fabric.
    Kueue,
    /// Volcano: HyperNodes per fabric tier.
    Volcano,
    /// No topology-aware scheduling objects.
    #[default]
    None,
}
