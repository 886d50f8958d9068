//! The slim view of a node the model needs (name, labels, taints, GPU counts), node
//! positions in a fabric, and simulated nodes for planning without a cluster or inventory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{devices, selector};
use crate::v1alpha1::{Fabric, GpuClusterSpec, LabelSelectorExt};

/// A taint as it sits on a node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTaint {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

/// What Kelvin needs to know about a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<NodeTaint>,
    /// Extended-resource capacity (e.g. `nvidia.com/gpu: 8`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, u64>,
    /// Extended-resource allocatable; defaults to capacity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocatable: BTreeMap<String, u64>,
    /// Whether the node is Ready.
    #[serde(default = "ready_by_default")]
    pub ready: bool,
}

fn ready_by_default() -> bool {
    true
}

/// The node's position in `fabric`: the integer value of the fabric's position label, or the
/// number at the end of the node's name.
pub fn position(node: &NodeInfo, fabric: &Fabric) -> Option<u64> {
    if let Some(label) = &fabric.topology.position_label {
        return node.labels.get(label)?.trim().parse().ok();
    }
    let digits = node.name.len()
        - node
            .name
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .len();
    node.name[node.name.len() - digits..].parse().ok()
}

/// Nodes as a provisioning system would leave them, `expectedNodes` per pool: named
/// `<pool>-<position>` (positions unique within a fabric), labelled to match the pool's selector and a cooling zone's.
///
/// Zones are filled in spec order up to their healthy capacity; nodes that fit no zone go to
/// the last compatible zone, so an undersized design shows up as an overloaded zone.
pub fn simulate(spec: &GpuClusterSpec) -> Vec<NodeInfo> {
    let mut remaining_watts: Vec<f64> = spec
        .cooling_zones
        .iter()
        .map(|z| z.capacity_kw * 1000.0)
        .collect();
    let total: usize = spec
        .gpu_pools
        .iter()
        .map(|p| p.expected_nodes as usize)
        .sum();
    let mut nodes = Vec::with_capacity(total);
    // Positions are unique within a fabric, so pools sharing one get consecutive ranges.
    let mut next_position: BTreeMap<&str, u64> = BTreeMap::new();
    for pool in &spec.gpu_pools {
        let first = *next_position.get(pool.fabric.as_str()).unwrap_or(&0);
        next_position.insert(&pool.fabric, first + u64::from(pool.expected_nodes));
        let node_watts = super::power::node_watts(pool) as f64;
        let compatible: Vec<usize> = spec
            .cooling_zones
            .iter()
            .enumerate()
            .filter(|(_, zone)| selector::compatible(&pool.node_selector, &zone.node_selector))
            .map(|(index, _)| index)
            .collect();
        let resource = devices::resource_name(&pool.accelerator).to_owned();
        let gpus = u64::from(pool.accelerator.per_node);
        let shares = gpus * devices::shares_per_gpu(pool);
        let mut base = pool.node_selector.example_labels();
        let width = (first + u64::from(pool.expected_nodes))
            .to_string()
            .len()
            .max(5);
        let mut zone_cursor = 0;
        for position in first..first + u64::from(pool.expected_nodes) {
            while zone_cursor + 1 < compatible.len()
                && remaining_watts[compatible[zone_cursor]] < node_watts
            {
                zone_cursor += 1;
            }
            let mut labels = base.clone();
            if let Some(&zone) = compatible.get(zone_cursor) {
                remaining_watts[zone] -= node_watts;
                for (key, value) in spec.cooling_zones[zone].node_selector.example_labels() {
                    labels.entry(key).or_insert(value);
                }
            }
            let name = format!("{}-{position:0width$}", pool.name);
            labels.insert("kubernetes.io/hostname".into(), name.clone());
            nodes.push(NodeInfo {
                name,
                labels,
                taints: Vec::new(),
                capacity: BTreeMap::from([(resource.clone(), gpus)]),
                allocatable: BTreeMap::from([(resource.clone(), shares)]),
                ready: true,
            });
        }
        base.clear();
    }
    nodes
}
