//! Per-node desired state (labels and taints Kelvin owns) and the changes that take each node
//! there, summarized per pool. Labels are never disruptive and go to every node at once; new
//! taints that repel pods go to at most `maxUnavailable` nodes of a pool per plan, after the
//! nodes cooling takes out of service.
//!
//! Built for 70,000 nodes: label keys and the values nodes share (pool, fabric, zone, leaf
//! group) are allocated once and shared, and no per-node desired map is kept.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use kelvin_crds::{
    model::{
        Analysis,
        nodes::{NodeInfo, NodeTaint},
    },
    v1alpha1::{DevicePluginManager, GpuClusterSpec, SharingStrategy, ZoneState},
};
use serde::{Serialize, Serializer};

use crate::{
    constants::{
        FABRIC_LABEL, GPU_OPERATOR_CONFIG_LABEL, MIG_CONFIG_LABEL, OUT_OF_SERVICE_TAINT,
        POOL_LABEL, POWER_CAP_LABEL, ZONE_LABEL,
    },
    topology,
};

/// A label as Kelvin writes it; keys and common values are shared between nodes.
pub type Label = (Arc<str>, Arc<str>);

/// The change to one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeChange {
    /// Node name.
    pub node: String,
    /// Index of the node in the planned node list.
    #[serde(skip)]
    pub index: usize,
    /// Index of its pool in the spec.
    #[serde(skip)]
    pub pool: usize,
    /// Labels added or changed, by key.
    #[serde(serialize_with = "labels_as_map")]
    pub set_labels: Vec<Label>,
    /// Taints added.
    pub add_taints: Vec<NodeTaint>,
    /// Kelvin-owned taints removed.
    pub remove_taints: Vec<NodeTaint>,
}

fn labels_as_map<S: Serializer>(labels: &[Label], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(labels.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
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
    /// Per pool: nodes whose new taints wait for a later step.
    pub deferred: Vec<u64>,
}

/// Shares equal strings.
#[derive(Default)]
struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    fn get(&mut self, text: String) -> Arc<str> {
        if let Some(shared) = self.0.get(&text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text.as_str());
        self.0.insert(text, shared.clone());
        shared
    }
}

/// Computes what Kelvin wants on each node of one spec: the labels every node of a pool or
/// zone shares are made once; per node only topology and out-of-service differ.
pub struct NodePlanner<'a> {
    spec: &'a GpuClusterSpec,
    analysis: &'a Analysis,
    strings: Interner,
    pool_labels: Vec<Vec<Label>>,
    pool_taints: Vec<Vec<NodeTaint>>,
    zone_labels: Vec<Vec<Label>>,
    leaving: HashMap<usize, &'static str>,
    owned_taints: BTreeSet<String>,
}

impl<'a> NodePlanner<'a> {
    /// Prepares the shared labels of `spec`'s pools and zones.
    pub fn new(spec: &'a GpuClusterSpec, analysis: &'a Analysis) -> Self {
        let mut strings = Interner::default();
        let label = |strings: &mut Interner, key: &str, value: String| {
            (strings.get(key.to_owned()), strings.get(value))
        };
        let pool_labels = spec
            .gpu_pools
            .iter()
            .map(|pool| {
                let mut labels = vec![
                    label(&mut strings, POOL_LABEL, pool.name.clone()),
                    label(&mut strings, FABRIC_LABEL, pool.fabric.clone()),
                ];
                labels.extend(
                    pool.labels
                        .iter()
                        .map(|(k, v)| label(&mut strings, k, v.clone())),
                );
                if pool.device_plugin.managed_by == DevicePluginManager::GpuOperator {
                    labels.push(label(
                        &mut strings,
                        GPU_OPERATOR_CONFIG_LABEL,
                        pool.name.clone(),
                    ));
                }
                if let (SharingStrategy::Mig, Some(profile)) =
                    (pool.sharing.strategy, &pool.sharing.profile)
                {
                    labels.push(label(
                        &mut strings,
                        MIG_CONFIG_LABEL,
                        format!("all-{profile}"),
                    ));
                }
                labels
            })
            .collect();
        let zone_labels = spec
            .cooling_zones
            .iter()
            .zip(&analysis.zones)
            .map(|(zone, plan)| {
                let mut labels = vec![label(&mut strings, ZONE_LABEL, zone.name.clone())];
                if let Some(cap) = plan.gpu_power_cap_watts {
                    labels.push(label(&mut strings, POWER_CAP_LABEL, cap.to_string()));
                }
                labels
            })
            .collect();
        let pool_taints = spec
            .gpu_pools
            .iter()
            .map(|pool| {
                pool.taints
                    .iter()
                    .map(|t| NodeTaint {
                        key: t.key.clone(),
                        value: t.value.clone(),
                        effect: t.effect.as_str().to_owned(),
                    })
                    .collect()
            })
            .collect();
        let leaving = analysis
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
        Self {
            spec,
            analysis,
            strings,
            pool_labels,
            pool_taints,
            zone_labels,
            leaving,
            owned_taints: owned_taint_keys(spec),
        }
    }

    /// Labels and taints Kelvin wants on node `index` (None when it is in no pool: Kelvin
    /// leaves it alone).
    pub fn desired(
        &mut self,
        index: usize,
        node: &NodeInfo,
    ) -> Option<(usize, Vec<Label>, Vec<NodeTaint>)> {
        let pool_index = self
            .analysis
            .placement
            .pool_of
            .get(index)
            .copied()
            .flatten()?;
        let pool = &self.spec.gpu_pools[pool_index];
        let mut labels = self.pool_labels[pool_index].clone();
        if let Some(zone) = self
            .analysis
            .placement
            .zone_of
            .get(index)
            .copied()
            .flatten()
        {
            labels.extend(self.zone_labels[zone].iter().cloned());
        }
        if let Some((fabric, Some(design))) = self
            .spec
            .fabrics
            .iter()
            .zip(&self.analysis.fabrics)
            .find(|(f, _)| f.name == pool.fabric)
        {
            for (position, (key, value)) in topology::labels(node, pool, fabric, design)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                // The NVLink domain is nearly unique per node: sharing it would only cost.
                let value = if position == 0 {
                    Arc::from(value)
                } else {
                    self.strings.get(value)
                };
                labels.push((self.strings.get(key), value));
            }
        }
        let mut taints = self.pool_taints[pool_index].clone();
        if let Some(reason) = self.leaving.get(&index) {
            taints.push(NodeTaint {
                key: OUT_OF_SERVICE_TAINT.into(),
                value: Some((*reason).into()),
                effect: "NoExecute".into(),
            });
        }
        Some((pool_index, labels, taints))
    }

    /// The change taking node `index` to its desired state; `budgets[pool]` is how many more
    /// nodes of each pool may get new pod-repelling taints, and is spent. Out-of-service
    /// taints are never held back here: cooling already spent the budget on them.
    pub fn change(
        &mut self,
        index: usize,
        node: &NodeInfo,
        budgets: &mut [u64],
    ) -> Option<(NodeChange, bool)> {
        let (pool, labels, taints) = self.desired(index, node)?;
        let mut set_labels: Vec<Label> = labels
            .into_iter()
            .filter(|(key, value)| node.labels.get(key.as_ref()).map(String::as_str) != Some(value))
            .collect();
        set_labels.sort();
        let remove_taints: Vec<NodeTaint> = node
            .taints
            .iter()
            .filter(|t| self.owned_taints.contains(&t.key) && !taints.contains(t))
            .cloned()
            .collect();
        let mut add_taints: Vec<NodeTaint> = taints
            .into_iter()
            .filter(|t| !node.taints.contains(t))
            .collect();
        let out_of_service = add_taints.iter().any(|t| t.key == OUT_OF_SERVICE_TAINT);
        let mut deferred = false;
        if add_taints.iter().any(repels_pods) && !out_of_service {
            match budgets.get_mut(pool) {
                Some(budget) if *budget > 0 => *budget -= 1,
                _ => {
                    add_taints.retain(|t| !repels_pods(t));
                    deferred = true;
                }
            }
        }
        Some((
            NodeChange {
                node: node.name.clone(),
                index,
                pool,
                set_labels,
                add_taints,
                remove_taints,
            },
            deferred,
        ))
    }
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

/// Every node's change, with `budgets[pool]` nodes per pool allowed new pod-repelling taints.
pub fn plan_nodes(
    spec: &GpuClusterSpec,
    analysis: &Analysis,
    nodes: &[NodeInfo],
    budgets: &[u64],
) -> NodeChanges {
    let mut planner = NodePlanner::new(spec, analysis);
    let mut remaining = budgets.to_vec();
    let mut result = NodeChanges {
        changes: Vec::new(),
        deferred: vec![0; spec.gpu_pools.len()],
    };
    for (index, node) in nodes.iter().enumerate() {
        let Some((change, deferred)) = planner.change(index, node, &mut remaining) else {
            continue;
        };
        if deferred {
            result.deferred[change.pool] += 1;
        }
        if !change.is_empty() {
            result.changes.push(change);
        }
    }
    result
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
    // Count first, format once per distinct item.
    let mut counts: Vec<HashMap<(&str, &str), u64>> = vec![HashMap::new(); spec.gpu_pools.len()];
    let mut taint_counts: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); spec.gpu_pools.len()];
    let mut changed = vec![0u64; spec.gpu_pools.len()];
    for change in &changes.changes {
        changed[change.pool] += 1;
        let before = &nodes[change.index];
        for (key, _) in &change.set_labels {
            let verb = if before.labels.contains_key(key.as_ref()) {
                "~label"
            } else {
                "+label"
            };
            *counts[change.pool].entry((verb, key.as_ref())).or_default() += 1;
        }
        for taint in &change.add_taints {
            *taint_counts[change.pool]
                .entry(format!("+taint {}", taint_text(taint)))
                .or_default() += 1;
        }
        for taint in &change.remove_taints {
            *taint_counts[change.pool]
                .entry(format!("-taint {}", taint_text(taint)))
                .or_default() += 1;
        }
    }
    spec.gpu_pools
        .iter()
        .enumerate()
        .map(|(index, pool)| {
            let mut items: BTreeMap<String, u64> = counts[index]
                .iter()
                .map(|((verb, key), count)| (format!("{verb} {key}"), *count))
                .collect();
            items.append(&mut taint_counts[index]);
            PoolNodeChanges {
                pool: pool.name.clone(),
                nodes: changed[index],
                items,
                deferred: changes.deferred[index],
            }
        })
        .collect()
}

/// `key=value:Effect`, as kubectl prints taints.
pub fn taint_text(taint: &NodeTaint) -> String {
    match &taint.value {
        Some(value) => format!("{}={}:{}", taint.key, value, taint.effect),
        None => format!("{}:{}", taint.key, taint.effect),
    }
}
