//! `Observed`: one snapshot of what Kelvin looks at — nodes (slim, sorted by name), the objects
//! it owns, what runs on each node, which third-party APIs are served, and `now`. The offline
//! CLI builds it from an inventory or from [`simulate`]d nodes; the operator from its watches.

use std::{collections::BTreeMap, sync::Arc};

pub use k8s_openapi::jiff::Timestamp;
use kelvin_crds::{
    node::NodeInfo,
    v1alpha1::{GpuClusterSpec, LabelSelectorExt},
};
use serde_json::Value;

use crate::{
    desired::ObjectKey,
    model::{devices, power, selector},
};

/// What runs on one node, as far as settling a transition needs (DESIGN.md §4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeWorkload {
    /// Pods of Kelvin's DaemonSets on the node that are not Ready yet.
    pub unready_kelvin_pods: u32,
    /// Pods an out-of-service drain still has to evict (not DaemonSet-owned, not mirror pods,
    /// not tolerating the out-of-service taint).
    pub evictable_pods: u32,
}

/// Which optional APIs the cluster serves. Offline, Kelvin plans as if all were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServedApis {
    /// `kueue.x-k8s.io/v1beta2`.
    pub kueue: bool,
    /// `topology.volcano.sh/v1alpha1`.
    pub volcano: bool,
}

impl Default for ServedApis {
    fn default() -> Self {
        Self {
            kueue: true,
            volcano: true,
        }
    }
}

/// The snapshot every decision is made from.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// Shared with the operator's watch cache: a snapshot clones pointers, not nodes.
    nodes: Vec<Arc<NodeInfo>>,
    /// Objects Kelvin owns for this GpuCluster, by identity (empty offline).
    pub objects: BTreeMap<ObjectKey, Value>,
    /// Per node name; a node not listed runs nothing Kelvin waits for.
    pub workloads: BTreeMap<String, NodeWorkload>,
    /// Optional APIs the cluster serves.
    pub apis: ServedApis,
    /// The time decisions are made at (transitions record it; drain timeouts compare to it).
    pub now: Timestamp,
}

/// Two nodes of one name: the snapshot cannot say which is real.
#[derive(Debug, thiserror::Error)]
#[error("node {name:?} is listed twice")]
pub struct DuplicateNode {
    /// The name.
    pub name: String,
}

impl Observed {
    /// A snapshot of `nodes` (any order: they are sorted by name here) at `now`.
    pub fn new(nodes: Vec<NodeInfo>, now: Timestamp) -> Result<Self, DuplicateNode> {
        Self::from_shared(nodes.into_iter().map(Arc::new).collect(), now)
    }

    /// [`Self::new`] over nodes another owner (the operator's watch cache) keeps too.
    pub fn from_shared(
        mut nodes: Vec<Arc<NodeInfo>>,
        now: Timestamp,
    ) -> Result<Self, DuplicateNode> {
        nodes.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = nodes.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(DuplicateNode {
                name: pair[0].name.clone(),
            });
        }
        Ok(Self {
            nodes,
            objects: BTreeMap::new(),
            workloads: BTreeMap::new(),
            apis: ServedApis::default(),
            now,
        })
    }

    /// The nodes, sorted by name.
    pub fn nodes(&self) -> &[Arc<NodeInfo>] {
        &self.nodes
    }

    /// Position of the node called `name` in [`Self::nodes`] (binary search: they are sorted).
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes
            .binary_search_by(|node| node.name.as_str().cmp(name))
            .ok()
    }

    /// What runs on node `name`.
    pub fn workload(&self, name: &str) -> NodeWorkload {
        self.workloads.get(name).cloned().unwrap_or_default()
    }
}

/// Nodes as a provisioning system would leave them, `expectedNodes` per pool: named
/// `<pool>-<position>` (positions unique within a fabric, zero-padded to at least 5 digits),
/// labelled to match the pool's selector and a cooling zone's, with the pool's accelerators in
/// capacity and allocatable, Ready. `tests/cluster.sh nodes from-spec` creates exactly these.
///
/// Zones are filled in spec order up to their healthy capacity; nodes that fit no zone go to
/// the last compatible zone, so an undersized design shows up as an overloaded zone.
pub fn simulate(spec: &GpuClusterSpec) -> Vec<NodeInfo> {
    simulate_at_most(spec, usize::MAX)
}

/// [`simulate`] with at most `per_pool` nodes of each pool (the first ones).
pub fn simulate_at_most(spec: &GpuClusterSpec, per_pool: usize) -> Vec<NodeInfo> {
    let mut remaining_watts: Vec<f64> = spec
        .cooling_zones
        .iter()
        .map(|z| z.capacity_kw * 1000.0)
        .collect();
    let total: usize = spec
        .gpu_pools
        .iter()
        .map(|p| (p.expected_nodes as usize).min(per_pool))
        .sum();
    let mut nodes = Vec::with_capacity(total);
    // Positions are unique within a fabric, so pools sharing one get consecutive ranges.
    let mut next_position: BTreeMap<&str, u64> = BTreeMap::new();
    for pool in &spec.gpu_pools {
        let first = next_position
            .get(pool.fabric.as_str())
            .copied()
            .unwrap_or(0);
        let count = u64::from(pool.expected_nodes);
        next_position.insert(&pool.fabric, first + count);
        let node_watts = power::node_watts(pool) as f64;
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
        let base = pool.node_selector.example_labels();
        let width = (first + count).to_string().len().max(5);
        let mut zone_cursor = 0;
        let last = first + count.min(u64::try_from(per_pool).unwrap_or(u64::MAX));
        for position in first..last {
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
                labels: labels.into(),
                annotations: BTreeMap::new(),
                taints: Vec::new(),
                capacity: [(resource.as_str(), gpus)].into_iter().collect(),
                allocatable: [(resource.as_str(), shares)].into_iter().collect(),
                ready: true,
                kelvin_label_keys: None,
            });
        }
    }
    nodes
}
