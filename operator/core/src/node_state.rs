//! Whole desired node state (DESIGN.md §4): per node, the complete set of labels and taints
//! Kelvin wants there, prepared once per (spec generation, node set) and looked up by name in
//! O(1), and the diff of that state against the node as observed.
//!
//! Labels: the whole set is applied (server-side apply, field manager `kelvin`), so a label
//! Kelvin stops wanting is removed — only labels Kelvin owns: those its field manager holds
//! (from managedFields), or offline, the keys its spec can produce. Taints: merged; Kelvin
//! removes only taints recorded in `kelvin.dev/owned-taints` (key:effect), so a foreign taint
//! with the same key stays and a taint dropped from the spec goes.
//!
//! Built for 70,000 nodes: label keys and the values nodes share (pool, fabric, zone, leaf
//! group) are allocated once and shared between nodes.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use rustc_hash::FxHashMap;

use kelvin_crds::{
    node::{NodeInfo, NodeTaint},
    v1alpha1::{DevicePluginManager, GpuClusterSpec, SharingStrategy},
};

use crate::{
    analysis::Analysis,
    constants::{
        FABRIC_LABEL, GPU_OPERATOR_CONFIG_LABEL, MIG_CONFIG_LABEL, OUT_OF_SERVICE_TAINT,
        OWNED_TAINTS_ANNOTATION, POOL_LABEL, POWER_CAP_LABEL, ZONE_LABEL,
    },
    model::topology::{self, position},
    observed::Observed,
};

/// A label as Kelvin writes it; keys and common values are shared between nodes.
pub type Label = (Arc<str>, Arc<str>);

/// Label keys whose change is disruptive: they reconfigure the node's GPUs.
pub const DISRUPTIVE_LABELS: [&str; 2] = [MIG_CONFIG_LABEL, GPU_OPERATOR_CONFIG_LABEL];

/// What Kelvin wants on one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeState {
    /// The node's pool (None: in no pool, so Kelvin wants none of its labels or taints there).
    pub pool: Option<usize>,
    /// The node's cooling zone.
    pub zone: Option<usize>,
    /// The labels Kelvin wants that the node shares with its pool, zone and leaf group, sorted
    /// by key: one allocation per leaf group, not per node.
    shared: Arc<[Label]>,
    /// The one label nearly unique per node (its NVLink domain), when it has a position.
    own: Option<Label>,
    /// Every taint Kelvin wants.
    pub taints: Arc<[NodeTaint]>,
    /// Where the node is in its zone's leaving order (0 leaves first), when it must leave
    /// service.
    pub leave_rank: Option<usize>,
}

impl NodeState {
    /// Every label Kelvin wants on the node, sorted by key, without allocating.
    pub fn labels(&self) -> impl Iterator<Item = &Label> {
        let own = self.own.as_ref();
        let split = own.map_or(self.shared.len(), |(key, _)| {
            self.shared.partition_point(|(k, _)| k < key)
        });
        self.shared[..split]
            .iter()
            .chain(own)
            .chain(self.shared[split..].iter())
    }

    /// Whether Kelvin wants label `key` on the node.
    pub fn wants_label(&self, key: &str) -> bool {
        self.own.as_ref().is_some_and(|(k, _)| k.as_ref() == key)
            || self
                .shared
                .binary_search_by(|(k, _)| k.as_ref().cmp(key))
                .is_ok()
    }

    /// Whether `node` carries every label Kelvin wants with Kelvin's value.
    pub fn is_labelled(&self, node: &NodeInfo) -> bool {
        self.labels().all(|(k, v)| node.labels.get(k) == Some(&**v))
    }
}

/// Desired state of every observed node, by name.
#[derive(Clone, Debug, Default)]
pub struct DesiredNodes {
    /// Node names, in the order of the snapshot they were prepared from (sorted).
    names: Vec<Arc<str>>,
    /// Per node, aligned with `names`: None when Kelvin leaves the node alone.
    states: Vec<Option<NodeState>>,
    /// Name -> position in `names`.
    index: FxHashMap<Arc<str>, u32>,
    /// Label keys this spec can make Kelvin write: what Kelvin owns when managedFields are
    /// not known (inventories, simulated nodes).
    producible_keys: BTreeSet<Arc<str>>,
}

/// Shares equal strings.
#[derive(Default)]
struct Interner(FxHashMap<Arc<str>, ()>);

impl Interner {
    fn get(&mut self, text: &str) -> Arc<str> {
        if let Some((shared, _)) = self.0.get_key_value(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.0.insert(shared.clone(), ());
        shared
    }
}

impl DesiredNodes {
    /// Prepares every node's desired state: labels a pool or zone shares are made once, per
    /// node only topology and out-of-service differ.
    pub fn prepare(spec: &GpuClusterSpec, analysis: &Analysis, observed: &Observed) -> Self {
        let mut strings = Interner::default();
        let pool_labels: Vec<Vec<Label>> = spec
            .gpu_pools
            .iter()
            .map(|pool| {
                let mut labels = vec![
                    (strings.get(POOL_LABEL), strings.get(&pool.name)),
                    (strings.get(FABRIC_LABEL), strings.get(&pool.fabric)),
                ];
                labels.extend(
                    pool.labels
                        .iter()
                        .map(|(k, v)| (strings.get(k), strings.get(v))),
                );
                if pool.device_plugin.managed_by == DevicePluginManager::GpuOperator {
                    labels.push((
                        strings.get(GPU_OPERATOR_CONFIG_LABEL),
                        strings.get(&pool.name),
                    ));
                }
                if let (SharingStrategy::Mig, Some(profile)) =
                    (pool.sharing.strategy, &pool.sharing.profile)
                {
                    labels.push((
                        strings.get(MIG_CONFIG_LABEL),
                        strings.get(&format!("all-{profile}")),
                    ));
                }
                labels
            })
            .collect();
        let zone_labels: Vec<Vec<Label>> = spec
            .cooling_zones
            .iter()
            .zip(&analysis.zones)
            .map(|(zone, plan)| {
                let mut labels = vec![(strings.get(ZONE_LABEL), strings.get(&zone.name))];
                if let Some(cap) = plan.gpu_power_cap_watts {
                    labels.push((strings.get(POWER_CAP_LABEL), strings.get(&cap.to_string())));
                }
                labels
            })
            .collect();
        let pool_taints: Vec<Arc<[NodeTaint]>> = spec
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
        // Per (pool, zone): the pool's taints and that zone's out-of-service taint, shared by
        // every leaving node of the pair.
        let mut leaving_taints: HashMap<(usize, usize), Arc<[NodeTaint]>> = HashMap::new();
        let mut leave_rank: HashMap<usize, (usize, usize)> = HashMap::new();
        for (zone, plan) in analysis.zones.iter().enumerate() {
            for (rank, node) in plan.leaving.iter().enumerate() {
                leave_rank.insert(*node, (zone, rank));
            }
        }
        let fabric_of: Vec<Option<usize>> = spec
            .gpu_pools
            .iter()
            .map(|pool| spec.fabrics.iter().position(|f| f.name == pool.fabric))
            .collect();

        let nodes = observed.nodes();
        let mut names: Vec<Arc<str>> = Vec::with_capacity(nodes.len());
        let mut states: Vec<Option<NodeState>> = Vec::with_capacity(nodes.len());
        // (pool, zone, leaf group) -> the labels those nodes share.
        type Group = (usize, Option<usize>, Option<u64>);
        let mut shared_labels: FxHashMap<Group, Arc<[Label]>> = FxHashMap::default();
        for (index, node) in nodes.iter().enumerate() {
            let placement = &analysis.placement;
            // Left alone: matched by two pools or zones, or in none of this GpuCluster's
            // pools while carrying another's pool label (that GpuCluster's node: one field
            // manager writes for all of them, so an empty state here would undo its work).
            let pool_of = placement.pool_of.get(index).copied().flatten();
            let others = pool_of.is_none()
                && node
                    .labels
                    .get(POOL_LABEL)
                    .is_some_and(|p| !spec.gpu_pools.iter().any(|pool| pool.name == *p));
            if others || placement.left_alone.get(index).copied().unwrap_or(true) {
                names.push(Arc::from(node.name.as_str()));
                states.push(None);
                continue;
            }
            let mut state = NodeState::default();
            if let Some(pool_index) = pool_of {
                let pool = &spec.gpu_pools[pool_index];
                state.pool = Some(pool_index);
                state.taints = pool_taints[pool_index].clone();
                state.zone = placement.zone_of.get(index).copied().flatten();
                let fabric = fabric_of[pool_index]
                    .and_then(|f| Some((&spec.fabrics[f], analysis.fabrics.get(f)?.as_ref()?)));
                let placed = fabric
                    .and_then(|(fabric, design)| Some((fabric, design, position(node, fabric)?)));
                if let Some((fabric, _, position)) = placed {
                    // The NVLink domain is nearly unique per node: sharing it would only cost.
                    let (key, value) = topology::nvlink_label(position, pool, fabric);
                    state.own = Some((strings.get(key), Arc::from(value)));
                }
                let group =
                    placed.map(|(fabric, _, position)| topology::leaf_group(position, fabric));
                state.shared = shared_labels
                    .entry((pool_index, state.zone, group))
                    .or_insert_with(|| {
                        let mut labels: Vec<Label> = pool_labels[pool_index].clone();
                        if let Some(zone) = state.zone {
                            labels.extend(zone_labels[zone].iter().cloned());
                        }
                        if let (Some((fabric, design, _)), Some(group)) = (placed, group) {
                            labels.extend(
                                topology::switch_labels(group, fabric, design)
                                    .into_iter()
                                    .map(|(k, v)| (strings.get(k), strings.get(&v))),
                            );
                        }
                        labels.sort();
                        labels.dedup_by(|a, b| a.0 == b.0);
                        labels.into()
                    })
                    .clone();
                if let Some(&(zone, rank)) = leave_rank.get(&index) {
                    state.leave_rank = Some(rank);
                    state.taints = leaving_taints
                        .entry((pool_index, zone))
                        .or_insert_with(|| {
                            let mut taints = pool_taints[pool_index].to_vec();
                            taints.push(NodeTaint {
                                key: OUT_OF_SERVICE_TAINT.into(),
                                value: Some(spec.cooling_zones[zone].name.clone()),
                                effect: "NoSchedule".into(),
                            });
                            taints.into()
                        })
                        .clone();
                }
            }
            names.push(Arc::from(node.name.as_str()));
            states.push(Some(state));
        }
        let index = names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| Some((name.clone(), u32::try_from(i).ok()?)))
            .collect();
        Self {
            names,
            states,
            index,
            producible_keys: producible_key_set(spec, &mut strings),
        }
    }

    /// The desired state of node `name`: `None` when the node is unknown, `Some(None)` when
    /// Kelvin leaves it alone.
    pub fn get(&self, name: &str) -> Option<Option<&NodeState>> {
        let at = *self.index.get(name)? as usize;
        self.states.get(at).map(Option::as_ref)
    }

    /// [`Self::get`] for the node at `position` of the snapshot these states were prepared
    /// from: no hashing when the snapshot is the same one.
    pub fn get_at(&self, position: usize, name: &str) -> Option<Option<&NodeState>> {
        match (self.names.get(position), self.states.get(position)) {
            (Some(at), Some(state)) if at.as_ref() == name => Some(state.as_ref()),
            _ => self.get(name),
        }
    }

    /// Nodes prepared.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether no node was prepared.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Whether Kelvin owns label `key` on `node`: its field manager holds it, or, when
    /// managedFields are unknown, the spec can produce the key and the node is one Kelvin
    /// managed (a `kelvin.dev/` key, or the node carries `kelvin.dev/pool`).
    fn owns_label(&self, node: &NodeInfo, managed: bool, key: &str) -> bool {
        match &node.kelvin_label_keys {
            Some(keys) => keys.iter().any(|k| **k == *key),
            None => {
                (managed || key.starts_with("kelvin.dev/")) && self.producible_keys.contains(key)
            }
        }
    }

    /// The diff taking `node` to `state`.
    pub fn diff(&self, state: &NodeState, node: &NodeInfo) -> NodeDiff {
        let managed = node.labels.contains_key(POOL_LABEL);
        let remove_labels: Vec<String> = node
            .labels
            .keys()
            .filter(|key| self.owns_label(node, managed, key))
            .filter(|key| !state.wants_label(key))
            .map(str::to_owned)
            .collect();
        let owned_before = owned_taints(node);
        let mut add_taints = Vec::new();
        let mut remove_taints = Vec::new();
        let mut blocked_taints = Vec::new();
        for wanted in state.taints.iter() {
            match node
                .taints
                .iter()
                .find(|t| t.key == wanted.key && t.effect == wanted.effect)
            {
                Some(present) if present == wanted => {}
                Some(present) if owned_before.contains(&present.identity()) => {
                    remove_taints.push(present.clone());
                    add_taints.push(wanted.clone());
                }
                Some(_) => blocked_taints.push(wanted.clone()),
                None => add_taints.push(wanted.clone()),
            }
        }
        for present in &node.taints {
            let wanted = state
                .taints
                .iter()
                .any(|t| t.key == present.key && t.effect == present.effect);
            if !wanted && owned_before.contains(&present.identity()) {
                remove_taints.push(present.clone());
            }
        }
        // The whole label set is materialized only for a node whose labels change.
        let (labels, set) = if !remove_labels.is_empty() || !state.is_labelled(node) {
            let (labels, set) = labels_to_set(state.labels().cloned().collect(), node);
            (Some(labels), set)
        } else {
            (None, Vec::new())
        };
        NodeDiff {
            labels,
            set,
            remove_labels,
            add_taints,
            remove_taints,
            blocked_taints,
        }
    }
}

/// Every label key a spec can make Kelvin write on a node, as plain strings.
pub(crate) fn producible_keys(spec: &GpuClusterSpec) -> impl Iterator<Item = String> {
    producible_key_set(spec, &mut Interner::default())
        .into_iter()
        .map(|k| k.to_string())
}

/// Every label key a spec can make Kelvin write on a node.
fn producible_key_set(spec: &GpuClusterSpec, strings: &mut Interner) -> BTreeSet<Arc<str>> {
    let mut keys: BTreeSet<Arc<str>> = [
        POOL_LABEL,
        ZONE_LABEL,
        FABRIC_LABEL,
        POWER_CAP_LABEL,
        GPU_OPERATOR_CONFIG_LABEL,
        MIG_CONFIG_LABEL,
    ]
    .into_iter()
    .map(|k| strings.get(k))
    .collect();
    for pool in &spec.gpu_pools {
        keys.extend(pool.labels.keys().map(|k| strings.get(k)));
    }
    for fabric in &spec.fabrics {
        let t = &fabric.topology.labels;
        for key in [&t.accelerator, &t.leaf, &t.spine, &t.core] {
            keys.insert(strings.get(key));
        }
    }
    keys
}

/// `labels`, and the indices of those the node does not carry with that value.
fn labels_to_set(labels: Arc<[Label]>, node: &NodeInfo) -> (Arc<[Label]>, Vec<u32>) {
    let set = labels
        .iter()
        .enumerate()
        .filter(|(_, (key, value))| node.labels.get(key) != Some(&**value))
        .filter_map(|(i, _)| u32::try_from(i).ok())
        .collect();
    (labels, set)
}

/// The taint identities (`key:effect`) recorded in the node's `kelvin.dev/owned-taints`.
pub fn owned_taints(node: &NodeInfo) -> BTreeSet<String> {
    node.annotations
        .get(OWNED_TAINTS_ANNOTATION)
        .map(|text| {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// What differs between a node and its desired state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeDiff {
    /// The whole label set the node is taken to (applied by server-side apply), when its
    /// labels change; None leaves them as they are.
    pub labels: Option<Arc<[Label]>>,
    /// Which of `labels` are added or changed (indices: a fresh node's diff does not copy its
    /// whole label set).
    set: Vec<u32>,
    /// Kelvin-owned labels Kelvin no longer wants.
    pub remove_labels: Vec<String>,
    /// Taints to add.
    pub add_taints: Vec<NodeTaint>,
    /// Kelvin-owned taints to remove (dropped from the spec, or replaced by a new value).
    pub remove_taints: Vec<NodeTaint>,
    /// Wanted taints a foreign taint with the same key and effect is in the way of: Kelvin
    /// never removes a taint it did not add, so these wait for a person.
    pub blocked_taints: Vec<NodeTaint>,
}

impl NodeDiff {
    /// Labels added or changed.
    pub fn set_labels(&self) -> impl Iterator<Item = &Label> {
        let labels = self.labels.as_deref().unwrap_or_default();
        self.set.iter().filter_map(|&i| labels.get(i as usize))
    }

    /// Takes the node to `labels` instead (a write that holds some labels back).
    pub fn retarget_labels(&mut self, labels: Arc<[Label]>, node: &NodeInfo) {
        let (labels, set) = labels_to_set(labels, node);
        (self.labels, self.set) = (Some(labels), set);
    }

    /// Whether nothing would be written.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.remove_labels.is_empty()
            && self.add_taints.is_empty()
            && self.remove_taints.is_empty()
    }
}
