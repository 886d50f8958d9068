//! `kelvin.dev/v1alpha1`: the `GpuCluster` kind. One object describes one site.
//!
//! Doc comments here become the CRD's descriptions (`kubectl explain gpucluster.spec...`).
//! CEL rules (`x-kubernetes-validations`) reject what one object can check on its own; the
//! physics (power, cooling, fabric) lives in kelvin-core.

mod cooling;
mod fabric;
mod pool;
mod scheduling;
mod status;

pub use cooling::*;
pub use fabric::*;
pub use pool::*;
pub use scheduling::*;
pub use status::*;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// API group of every Kelvin kind.
pub const GROUP: &str = "kelvin.dev";
/// API version of this module's kinds.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of this module's kinds.
pub const API_VERSION: &str = "kelvin.dev/v1alpha1";

/// A GPU site: its GPU pools, network fabrics and cooling zones within a power budget.
/// Kelvin validates it against physics and reconciles it into node labels and taints,
/// device plugins and scheduling policies.
// Several printcolumn(...) share keys; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kelvin.dev",
    version = "v1alpha1",
    kind = "GpuCluster",
    plural = "gpuclusters",
    shortname = "gpuc",
    category = "kelvin",
    status = "GpuClusterStatus",
    derive = "PartialEq",
    doc = "A GPU site: GPU pools, network fabrics and cooling zones within a power budget.",
    printcolumn(name = "Pools", type_ = "integer", json_path = ".status.summary.pools"),
    printcolumn(name = "Nodes", type_ = "integer", json_path = ".status.summary.nodes"),
    printcolumn(name = "GPUs", type_ = "integer", json_path = ".status.summary.gpus"),
    printcolumn(
        name = "Power-MW",
        type_ = "number",
        json_path = ".status.power.facilityMW"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("self.gpuPools.all(p, self.fabrics.exists(f, f.name == p.fabric))")
        .message("every spec.gpuPools[].fabric must name an entry of spec.fabrics: add the fabric or fix the pool's fabric name")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.scheduling) || self.scheduling.tenants.all(t, t.gpuQuota.all(k, self.gpuPools.exists(p, p.name == k)))")
        .message("every key of spec.scheduling.tenants[].gpuQuota must name an entry of spec.gpuPools: add the pool or fix the quota's pool name")
        .reason(Reason::FieldValueInvalid),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuClusterSpec {
    /// Facility-wide figures: the power budget and the power usage effectiveness.
    pub site: Site,

    /// Cooling zones (loops, halls, immersion tanks). A zone's heat load is the IT power of
    /// the nodes its selector matches; it must fit the zone's capacity.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 256))]
    pub cooling_zones: Vec<CoolingZone>,

    /// Network fabrics (rail-optimized, non-blocking fat trees). Pools name the fabric
    /// their nodes attach to.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(min = 1, max = 32))]
    pub fabrics: Vec<Fabric>,

    /// GPU pools: sets of identical GPU servers, selected by node labels.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(min = 1, max = 64))]
    pub gpu_pools: Vec<GpuPool>,

    /// Priorities, tenants with GPU quotas, and topology-aware scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
}

/// Facility-wide power figures.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Site {
    /// Facility power available for IT load plus cooling overhead, in megawatts.
    /// Facility load = IT load x pue, and must not exceed this.
    #[serde(rename = "powerBudgetMW")]
    #[schemars(range(min = 0.0, max = 100000.0))]
    pub power_budget_mw: f64,

    /// Power usage effectiveness: facility power / IT power. 1.0 is ideal; liquid-cooled
    /// halls run near 1.1-1.3.
    #[schemars(range(min = 1.0, max = 3.0))]
    pub pue: f64,
}

/// Helpers on label selectors.
pub trait LabelSelectorExt {
    /// Labels a node would carry to satisfy this selector: matchLabels, the first value of
    /// each `In` expression, and `"true"` for each `Exists`.
    fn example_labels(&self) -> std::collections::BTreeMap<String, String>;
}

impl LabelSelectorExt for k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
    fn example_labels(&self) -> std::collections::BTreeMap<String, String> {
        let mut labels = self.match_labels.clone().unwrap_or_default();
        for requirement in self.match_expressions.iter().flatten() {
            let value = match requirement.operator.as_str() {
                "In" => requirement.values.as_ref().and_then(|v| v.first()).cloned(),
                "Exists" => Some("true".to_owned()),
                _ => None,
            };
            if let Some(value) = value {
                labels.entry(requirement.key.clone()).or_insert(value);
            }
        }
        labels
    }
}
