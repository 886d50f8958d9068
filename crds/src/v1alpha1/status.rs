use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// What the operator observed and did. Written only by the operator (status subresource).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GpuClusterStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Valid, Ready, Progressing, Degraded, PowerWithinBudget, CoolingWithinCapacity,
    /// SchedulingPolicies, NodeConflicts.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Totals for the printer columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SummaryStatus>,
    /// IT and facility power against the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<PowerStatus>,
    /// Per pool.
    #[serde(default)]
    pub pools: Vec<PoolStatus>,
    /// Per cooling zone.
    #[serde(default)]
    pub cooling_zones: Vec<CoolingZoneStatus>,
    /// Per fabric.
    #[serde(default)]
    pub fabrics: Vec<FabricStatus>,
}

/// Totals over the site.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SummaryStatus {
    /// Number of pools.
    pub pools: u32,
    /// Nodes matched by the pools.
    pub nodes: u64,
    /// GPUs on those nodes.
    pub gpus: u64,
}

/// Power against the budget, in megawatts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PowerStatus {
    /// IT power at design capacity.
    #[serde(rename = "itMW")]
    pub it_mw: f64,
    /// IT power x PUE.
    #[serde(rename = "facilityMW")]
    pub facility_mw: f64,
    /// spec.site.powerBudgetMW.
    #[serde(rename = "budgetMW")]
    pub budget_mw: f64,
    /// IT power of the nodes matched now, at their zones' GPU caps, nodes out of service not
    /// counted.
    #[serde(rename = "liveItMW", default)]
    pub live_it_mw: f64,
    /// liveItMW x PUE.
    #[serde(rename = "liveFacilityMW", default)]
    pub live_facility_mw: f64,
}

/// One pool's nodes and device plugin.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// Pool name.
    pub name: String,
    /// Nodes the selector matches.
    pub matched_nodes: u64,
    /// spec expectedNodes.
    pub expected_nodes: u64,
    /// Matched nodes that are Ready.
    pub ready_nodes: u64,
    /// Matched nodes that carry every label Kelvin wants on them.
    pub labelled_nodes: u64,
    /// Matched nodes in a disruptive change Kelvin started that has not settled.
    pub in_transition: u64,
    /// Most matched nodes that may be unavailable at once (maxUnavailable resolved).
    pub max_unavailable: u64,
    /// Physical GPUs on matched nodes.
    pub gpus: u64,
    /// GPUs the nodes report allocatable.
    pub allocatable_gpus: u64,
    /// Device-plugin pods desired.
    pub device_plugin_desired: u64,
    /// Device-plugin pods ready.
    pub device_plugin_ready: u64,
}

/// One cooling zone's load and what Kelvin does about it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CoolingZoneStatus {
    /// Zone name.
    pub name: String,
    /// The zone's state as last reconciled: Normal, Degraded or Maintenance.
    #[serde(default)]
    pub state: String,
    /// Nodes in the zone.
    pub nodes: u64,
    /// IT power of those nodes, in kilowatts.
    #[serde(rename = "heatLoadKW")]
    pub heat_load_kw: f64,
    /// Capacity in the zone's current state, in kilowatts.
    #[serde(rename = "capacityKW")]
    pub capacity_kw: f64,
    /// capacityKW - heatLoadKW.
    #[serde(rename = "headroomKW")]
    pub headroom_kw: f64,
    /// GPU power cap that makes the load fit, when one is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_power_cap_watts: Option<u32>,
    /// Nodes whose agent reports the cap applied (`kelvin.dev/gpu-power-cap-applied`).
    #[serde(default)]
    pub cap_applied: u64,
    /// Nodes that must leave service for the load to fit.
    #[serde(default)]
    pub nodes_must_leave: u64,
    /// Nodes out of service (carrying `kelvin.dev/out-of-service`).
    #[serde(default)]
    pub out_of_service: u64,
    /// Heat of the nodes still in service, at the GPU cap (full power without one), in
    /// kilowatts: what the zone must reject now, against capacityKW.
    #[serde(rename = "heatInServiceKW", default)]
    pub heat_in_service_kw: f64,
    /// Heat over capacity while nodes that must leave are still in service, in kilowatts.
    #[serde(rename = "deficitKW", default)]
    pub deficit_kw: f64,
}

/// One fabric's size.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FabricStatus {
    /// Fabric name.
    pub name: String,
    /// Nodes on the fabric.
    pub nodes: u64,
    /// Switch tiers (1-3).
    #[serde(default)]
    pub tiers: u32,
    /// Leaf switches.
    pub leaves: u64,
    /// NVLink domains.
    pub nvlink_domains: u64,
}
