//! Per-node desired state (labels and taints Kelvin owns) and the changes that take each node
//! there, summarized per pool. Labels are never disruptive and go to every node at once; new
//! taints that repel pods go to at most `maxUnavailable` nodes of a pool per plan, after the
//! nodes cooling takes out of service.

use std::collections::{BTreeMap, BTreeSet};

use kelvin_crds::{
    model::{
        Analysis,
        nodes::{NodeInfo, NodeTaint},
    },
    v1alpha1::{DevicePluginManager, GpuClusterSpec, SharingStrategy, ZoneState},
};
use serde::Serialize;

use crate::{
    constants::{
        FABRIC_LABEL, GPU_OPERATOR_CONFIG_LABEL, MIG_CONFIG_LABEL, OUT_OF_SERVICE_TAINT,
        POOL_LABEL, POWER_CAP_LABEL, ZONE_LABEL,
    },
    topology,
};

/// What Kelvin wants on one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeDesired {
    /// Index of the node's pool in the spec.
    pub pool: usize,
    /// Labels Kelvin sets.
    pub labels: BTreeMap<String, String>,
    /// Taints Kelvin sets (merged with the node's others).
    pub taints: Vec<NodeTaint>,
}

/// The change to one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeChange {
    /// Node name.
    pub node: String,
    /// Index of its pool in the spec.
    #[serde(skip)]
    pub pool: usize,
    /// Labels added or changed.
    pub set_labels: BTreeMap<String, String>,
    /// Taints added.
    pub add_taints: Vec<NodeTaint>,
    /// Kelvin-owned taints removed.
    pub remove_taints: Vec<NodeTaint>,
}

impl NodeChange {
    fn is_empty(&self) -> bool {
        self.set_labels.is_empty() && self.add_taints.is_empty() && self.remove_taints.is_empty()
    }
}

/// All node changes, and the new taints held back by disruption budgets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeChanges {
    /// Changes to make now, in node order.
    pub changes: Vec<NodeChange>,
    /// Per pool: nodes whose new taints wait for a later step (maxUnavailable).
    pub deferred: Vec<u64>,
}

/// Desired state of each node (None for nodes in no pool, which Kelvin leaves alone).
pub fn desired_nodes(
    spec: &GpuClusterSpec,
    analysis: &Analysis,
    nodes: &[NodeInfo],
) -> Vec<Option<NodeDesired>> {
    let leaving: BTreeMap<usize, &'static str> = analysis
        .zones
        .iter()
        .flat_map(|zone| {
            let reason = if zone.state == ZoneState::Maintenance {
                "cooling-maintenance"
            } else {
                "cooling-degraded"
            };
            zone.leaving.iter().map(move |node| (*node, reason))
        })
        .collect();
    nodes
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let pool_index = analysis.placement.pool_of[index]?;
            let pool = &spec.gpu_pools[pool_index];
            let mut labels = BTreeMap::from([
                (POOL_LABEL.to_owned(), pool.name.clone()),
                (FABRIC_LABEL.to_owned(), pool.fabric.clone()),
            ]);
            labels.extend(pool.labels.clone());
            if let Some(zone_index) = analysis.placement.zone_of[index] {
                labels.insert(
                    ZONE_LABEL.to_owned(),
                    spec.cooling_zones[zone_index].name.clone(),
                );
                if let Some(cap) = analysis.zones[zone_index].gpu_power_cap_watts {
                    labels.insert(POWER_CAP_LABEL.to_owned(), cap.to_string());
                }
            }
            if let Some((fabric, Some(design))) = spec
                .fabrics
                .iter()
                .zip(&analysis.fabrics)
                .find(|(f, _)| f.name == pool.fabric)
            {
                labels.extend(topology::labels(node, pool, fabric, design).unwrap_or_default());
            }
            if pool.device_plugin.managed_by == DevicePluginManager::GpuOperator {
                labels.insert(GPU_OPERATOR_CONFIG_LABEL.to_owned(), pool.name.clone());
            }
            if pool.sharing.strategy == SharingStrategy::Mig
                && let Some(profile) = &pool.sharing.profile
            {
                labels.insert(MIG_CONFIG_LABEL.to_owned(), format!("all-{profile}"));
            }
            let mut taints: Vec<NodeTaint> = pool
                .taints
                .iter()
                .map(|t| NodeTaint {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: t.effect.as_str().to_owned(),
                })
                .collect();
            if let Some(reason) = leaving.get(&index) {
                taints.push(NodeTaint {
                    key: OUT_OF_SERVICE_TAINT.into(),
                    value: Some((*reason).into()),
                    effect: "NoExecute".into(),
                });
            }
            Some(NodeDesired {
                pool: pool_index,
                labels,
                taints,
            })
        })
        .collect()
}

/// Taint keys Kelvin owns under this spec: it may remove them from nodes.
pub fn owned_taint_keys(spec: &GpuClusterSpec) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = spec
        .gpu_pools
        .iter()
        .flat_map(|p| p.taints.iter().map(|t| t.key.clone()))
        .collect();
    keys.insert(OUT_OF_SERVICE_TAINT.to_owned());
    keys
}

fn repels_pods(taint: &NodeTaint) -> bool {
    taint.effect == "NoSchedule" || taint.effect == "NoExecute"
}

/// The changes from `nodes` to `desired`. `budgets[pool]` is how many nodes of each pool may
/// get new pod-repelling taints; out-of-service taints are never held back here, because
/// cooling already spent the budget on them.
pub fn diff(
    spec: &GpuClusterSpec,
    nodes: &[NodeInfo],
    desired: &[Option<NodeDesired>],
    budgets: &[u64],
) -> NodeChanges {
    let owned = owned_taint_keys(spec);
    let mut remaining = budgets.to_vec();
    let mut deferred = vec![0u64; spec.gpu_pools.len()];
    let mut changes = Vec::new();
    for (node, want) in nodes.iter().zip(desired) {
        let Some(want) = want else { continue };
        let pool = want.pool;
        let mut change = NodeChange {
            node: node.name.clone(),
            pool,
            ..NodeChange::default()
        };
        for (key, value) in &want.labels {
            if node.labels.get(key) != Some(value) {
                change.set_labels.insert(key.clone(), value.clone());
            }
        }
        let mut new_taints: Vec<NodeTaint> = want
            .taints
            .iter()
            .filter(|t| !node.taints.contains(t))
            .cloned()
            .collect();
        change.remove_taints = node
            .taints
            .iter()
            .filter(|t| owned.contains(&t.key) && !want.taints.contains(t))
            .cloned()
            .collect();
        let out_of_service = new_taints.iter().any(|t| t.key == OUT_OF_SERVICE_TAINT);
        if new_taints.iter().any(repels_pods) && !out_of_service {
            if remaining[pool] > 0 {
                remaining[pool] -= 1;
            } else {
                new_taints.retain(|t| !repels_pods(t));
                deferred[pool] += 1;
            }
        }
        change.add_taints = new_taints;
        if !change.is_empty() {
            changes.push(change);
        }
    }
    NodeChanges { changes, deferred }
}

/// One pool's node changes, counted (never one line per node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolNodeChanges {
    /// Pool name.
    pub pool: String,
    /// Nodes that change.
    pub nodes: u64,
    /// e.g. `+label kelvin.dev/pool` -> 8,750.
    pub items: BTreeMap<String, u64>,
    /// Nodes whose new taints wait for a later step.
    pub deferred: u64,
}

/// Counts `changes` per pool and per kind of change.
pub fn summarize(
    spec: &GpuClusterSpec,
    nodes: &[NodeInfo],
    changes: &NodeChanges,
) -> Vec<PoolNodeChanges> {
    let mut pools: Vec<PoolNodeChanges> = spec
        .gpu_pools
        .iter()
        .zip(&changes.deferred)
        .map(|(pool, deferred)| PoolNodeChanges {
            pool: pool.name.clone(),
            deferred: *deferred,
            ..PoolNodeChanges::default()
        })
        .collect();
    let by_name: BTreeMap<&str, &NodeInfo> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    for change in &changes.changes {
        let summary = &mut pools[change.pool];
        summary.nodes += 1;
        let before = by_name.get(change.node.as_str());
        for key in change.set_labels.keys() {
            let verb = if before.is_some_and(|n| n.labels.contains_key(key)) {
                "~label"
            } else {
                "+label"
            };
            *summary.items.entry(format!("{verb} {key}")).or_default() += 1;
        }
        for taint in &change.add_taints {
            *summary
                .items
                .entry(format!("+taint {}", taint_text(taint)))
                .or_default() += 1;
        }
        for taint in &change.remove_taints {
            *summary
                .items
                .entry(format!("-taint {}", taint_text(taint)))
                .or_default() += 1;
        }
    }
    pools
}

/// `key=value:Effect`, as kubectl prints taints.
pub fn taint_text(taint: &NodeTaint) -> String {
    match &taint.value {
        Some(value) => format!("{}={}:{}", taint.key, value, taint.effect),
        None => format!("{}:{}", taint.key, taint.effect),
    }
}
