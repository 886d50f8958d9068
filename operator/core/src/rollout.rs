//! Rollout (DESIGN.md §4): from the desired node state and the observed nodes, the node writes
//! allowed now. Pure: the same snapshot always gives the same writes.
//!
//! Per pool at most `maxUnavailable` nodes may be unavailable at once, where unavailable =
//! NotReady (for any reason) + in a disruptive transition Kelvin started that has not settled.
//! A transition is recorded on the node (`kelvin.dev/transition: <what>@<RFC3339>`) in the
//! same write that starts it, and cleared once the node has settled, so a restarted operator
//! counts what is in flight from the nodes alone. Non-disruptive changes (labels other than
//! MIG / device-plugin config, removing taints, power caps) never wait. Cooling's
//! out-of-service taints and the pool's own taints share the pool's budget; nodes cooling
//! must take out go first, in the zone's leaving order, then the rest by name.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use k8s_openapi::{
    apimachinery::pkg::util::intstr::IntOrString,
    jiff::{SignedDuration, Timestamp},
};
use kelvin_crds::{
    node::{NodeInfo, NodeTaint},
    v1alpha1::GpuClusterSpec,
};

use crate::{
    analysis::Analysis,
    constants::{OUT_OF_SERVICE_TAINT, OWNED_TAINTS_ANNOTATION, TRANSITION_ANNOTATION},
    node_state::{DISRUPTIVE_LABELS, DesiredNodes, NodeDiff, NodeState, owned_taints},
    observed::Observed,
};

/// How long an out-of-service drain may take before the node counts as settled anyway (and
/// the timeout is reported): the GPU Operator's default `upgradePolicy.drain.timeoutSeconds`.
pub const DRAIN_TIMEOUT: SignedDuration = SignedDuration::from_secs(300);

/// Resolves `maxUnavailable` against a pool of `nodes` nodes: percentages round up, and at
/// least one node may always be unavailable so a rollout can progress (Karpenter's and the
/// DaemonSet controller's convention). The one rounding used everywhere.
pub fn max_unavailable(value: &IntOrString, nodes: u64) -> u64 {
    let allowed = match value {
        IntOrString::Int(count) => u64::try_from(*count).unwrap_or(0),
        IntOrString::String(text) => match text.strip_suffix('%') {
            Some(percent) => {
                let percent = percent.parse::<u64>().unwrap_or(0).min(100);
                (nodes * percent).div_ceil(100)
            }
            None => text.parse().unwrap_or(0),
        },
    };
    allowed.max(1)
}

/// A disruptive change, as named in `kelvin.dev/transition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transition {
    /// Taken out of service by cooling (`kelvin.dev/out-of-service` taint).
    OutOfService,
    /// A NoSchedule / NoExecute taint of the pool added.
    Taint,
    /// `nvidia.com/mig.config` changed: the GPUs are re-partitioned.
    MigConfig,
    /// `nvidia.com/device-plugin.config` changed: the device plugin restarts.
    DevicePluginConfig,
}

impl Transition {
    /// The name written in the annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfService => "out-of-service",
            Self::Taint => "taint",
            Self::MigConfig => "mig-config",
            Self::DevicePluginConfig => "device-plugin-config",
        }
    }
}

/// A transition found on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// What it is (as written; an unknown name still counts against the budget).
    pub what: String,
    /// When it started; None when the annotation does not parse (it still counts).
    pub since: Option<Timestamp>,
}

impl InFlight {
    /// Reads `kelvin.dev/transition` off a node.
    pub fn of(node: &NodeInfo) -> Option<Self> {
        let text = node.annotations.get(TRANSITION_ANNOTATION)?;
        let (what, since) = text.split_once('@').unwrap_or((text, ""));
        Some(Self {
            what: what.to_owned(),
            since: since.parse().ok(),
        })
    }
}

/// Why a transition counts as settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Ready, Kelvin's DaemonSet pods Ready, and for out-of-service no evictable pod left.
    Done,
    /// Out-of-service whose drain passed [`DRAIN_TIMEOUT`] with pods left (reported).
    DrainTimedOut,
}

fn settled(node: &NodeInfo, flight: &InFlight, observed: &Observed) -> Option<Settled> {
    let workload = observed.workload(&node.name);
    if !node.ready || workload.unready_kelvin_pods > 0 {
        return None;
    }
    if flight.what != Transition::OutOfService.as_str() || workload.evictable_pods == 0 {
        return Some(Settled::Done);
    }
    let since = flight.since?;
    (observed.now.duration_since(since) >= DRAIN_TIMEOUT).then_some(Settled::DrainTimedOut)
}

/// What a diff would disrupt, the most serious first.
fn disruption(diff: &NodeDiff) -> Option<Transition> {
    let repels = |t: &NodeTaint| t.repels_pods();
    if diff
        .add_taints
        .iter()
        .any(|t| t.key == OUT_OF_SERVICE_TAINT)
    {
        Some(Transition::OutOfService)
    } else if diff.add_taints.iter().any(repels) {
        Some(Transition::Taint)
    } else if diff
        .set_labels()
        .any(|(k, _)| k.as_ref() == DISRUPTIVE_LABELS[0])
    {
        Some(Transition::MigConfig)
    } else if diff
        .set_labels()
        .any(|(k, _)| k.as_ref() == DISRUPTIVE_LABELS[1])
    {
        Some(Transition::DevicePluginConfig)
    } else {
        None
    }
}

/// One node write: everything Kelvin changes on the node in one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeWrite {
    /// Node name.
    pub node: String,
    /// Its pool, if any.
    pub pool: Option<usize>,
    /// Its cooling zone, if any.
    pub zone: Option<usize>,
    /// What this write changes (labels, taints): the taints to add and remove are merged into
    /// the node's list as it is at write time ([`NodeWrite::merge_taints`]).
    pub diff: NodeDiff,
    /// Kelvin's annotations that change, by key (at most two): Some(value) sets, None removes.
    pub annotations: Vec<(&'static str, Option<String>)>,
    /// The disruptive change this write starts.
    pub starts: Option<Transition>,
    /// The transition this write clears, and why.
    pub settles: Option<Settled>,
    /// Disruptive changes left for a later write (no budget, or the node is still settling).
    pub holds: Option<Transition>,
}

impl NodeWrite {
    /// The taint list to write over `current` (the node's list as read just before the write,
    /// which is sent with its resourceVersion): every taint Kelvin did not add kept in its
    /// order, Kelvin's changes made. None when this write changes no taint.
    pub fn merge_taints(&self, current: &[NodeTaint]) -> Option<Vec<NodeTaint>> {
        let NodeDiff {
            add_taints,
            remove_taints,
            ..
        } = &self.diff;
        if add_taints.is_empty() && remove_taints.is_empty() {
            return None;
        }
        let mut list: Vec<NodeTaint> = current
            .iter()
            .filter(|t| !remove_taints.contains(t) && !add_taints.contains(t))
            .cloned()
            .collect();
        list.extend(add_taints.iter().cloned());
        Some(list)
    }

    /// `node` as the API server leaves it after this write: the label set applied by
    /// server-side apply (Kelvin's labels it left out removed, others untouched), the taint
    /// list replaced, Kelvin's annotations set or removed. For tests, and for a caller that
    /// wants to see the next step before the watch delivers it.
    pub fn apply_to(&self, node: &mut NodeInfo) {
        if let Some(labels) = &self.diff.labels {
            let owned: Vec<&str> = match &node.kelvin_label_keys {
                Some(keys) => keys.iter().map(|k| &**k).collect(),
                None => self.diff.remove_labels.iter().map(String::as_str).collect(),
            };
            for key in owned {
                if !labels.iter().any(|(k, _)| **k == *key) {
                    node.labels.remove(key);
                }
            }
            for key in &self.diff.remove_labels {
                node.labels.remove(key);
            }
            for (key, value) in labels.iter() {
                node.labels.insert(Arc::clone(key), Arc::clone(value));
            }
            node.kelvin_label_keys = Some(labels.iter().map(|(k, _)| Arc::clone(k)).collect());
        }
        if let Some(taints) = self.merge_taints(&node.taints) {
            node.taints = taints;
        }
        for (key, value) in &self.annotations {
            match value {
                Some(value) => node.annotations.insert((*key).to_owned(), value.clone()),
                None => node.annotations.remove(*key),
            };
        }
    }
}

/// One pool's budget in this step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolRollout {
    /// maxUnavailable resolved against the pool's matched nodes.
    pub max_unavailable: u64,
    /// Matched nodes that are NotReady.
    pub not_ready: u64,
    /// Nodes in an unsettled transition (before this step's writes).
    pub in_transition: u64,
    /// Transitions this step starts.
    pub starting: u64,
    /// Nodes whose disruptive change waits.
    pub held: u64,
    /// Nodes whose out-of-service drain timed out with pods left.
    pub drain_timeouts: Vec<String>,
}

/// The node writes allowed now, and each pool's budget.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// Writes, in node-name order, those that start a transition after all the others: a
    /// caller must finish the others (which clear settled transitions) before it sends these,
    /// or two transitions may be on a pool's nodes for a moment where the budget allows one.
    pub writes: Vec<NodeWrite>,
    /// Per pool, in spec order.
    pub pools: Vec<PoolRollout>,
    /// Per pool: wanted taints (as kubectl prints them) blocked by a foreign taint with the
    /// same key and effect, and on how many nodes — whether or not those nodes get a write.
    pub blocked_taints: Vec<BTreeMap<String, u64>>,
}

impl Rollout {
    /// Whether Kelvin has nothing left to do on nodes (nothing to write, nothing held, nothing
    /// in flight).
    pub fn is_settled(&self) -> bool {
        self.writes.is_empty()
            && self
                .pools
                .iter()
                .all(|p| p.held == 0 && p.in_transition == 0)
    }
}

struct Candidate<'a> {
    index: usize,
    node: &'a NodeInfo,
    state: &'a NodeState,
    diff: NodeDiff,
    flight: Option<InFlight>,
    settled: Option<Settled>,
}

/// The writes that take `observed` towards `desired` now.
pub fn rollout(
    spec: &GpuClusterSpec,
    analysis: &Analysis,
    desired: &DesiredNodes,
    observed: &Observed,
) -> Rollout {
    let mut pools: Vec<PoolRollout> = analysis
        .pools
        .iter()
        .map(|pool| PoolRollout {
            max_unavailable: pool.max_unavailable,
            ..PoolRollout::default()
        })
        .collect();
    let mut blocked: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); spec.gpu_pools.len()];
    // Per pool: (unavailable, annotated) after this step, each at most maxUnavailable.
    let mut unavailable = vec![0u64; pools.len()];
    let mut annotated = vec![0u64; pools.len()];
    let mut candidates = Vec::new();
    for (index, node) in observed.nodes().iter().enumerate() {
        // Unknown (not prepared) or left alone: never touched.
        let Some(Some(state)) = desired.get_at(index, &node.name) else {
            continue;
        };
        let diff = desired.diff(state, node);
        let flight = InFlight::of(node);
        let settled = flight.as_ref().and_then(|f| settled(node, f, observed));
        if let Some(pool) = state.pool {
            for taint in &diff.blocked_taints {
                *blocked[pool].entry(taint.to_string()).or_default() += 1;
            }
            let in_flight = flight.is_some() && settled.is_none();
            if !node.ready {
                pools[pool].not_ready += 1;
            }
            if in_flight {
                pools[pool].in_transition += 1;
                annotated[pool] += 1;
            }
            if !node.ready || in_flight {
                unavailable[pool] += 1;
            }
            if settled == Some(Settled::DrainTimedOut) {
                pools[pool].drain_timeouts.push(node.name.clone());
            }
        }
        candidates.push(Candidate {
            index,
            node,
            state,
            diff,
            flight,
            settled,
        });
    }

    // Who may start a disruptive change: out-of-service in leaving order first, then by name.
    let mut wanting: Vec<(usize, Transition)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.flight.is_none() || c.settled.is_some())
        .filter_map(|(i, c)| Some((i, disruption(&c.diff)?)))
        .collect();
    wanting.sort_by_key(|(i, what)| {
        let c = &candidates[*i];
        (
            *what != Transition::OutOfService,
            c.state.leave_rank,
            c.index,
        )
    });
    let mut granted: BTreeSet<usize> = BTreeSet::new();
    for (i, _) in &wanting {
        let c = &candidates[*i];
        let Some(pool) = c.state.pool else {
            continue;
        };
        let max = pools[pool].max_unavailable;
        let adds_unavailable = u64::from(c.node.ready);
        if unavailable[pool] + adds_unavailable <= max && annotated[pool] < max {
            unavailable[pool] += adds_unavailable;
            annotated[pool] += 1;
            pools[pool].starting += 1;
            granted.insert(*i);
        }
    }

    let now = observed.now;
    // Sized once (a fresh cluster writes every node), trimmed after: no doubling slack.
    let mut writes = Vec::with_capacity(candidates.len());
    for (i, c) in candidates.into_iter().enumerate() {
        let wants = disruption(&c.diff);
        let may_disrupt = granted.contains(&i);
        let holds = wants.filter(|_| !may_disrupt);
        if let (Some(_), Some(pool)) = (holds, c.state.pool) {
            pools[pool].held += 1;
        }
        let write = node_write(c, holds, may_disrupt.then_some(wants).flatten(), now);
        if let Some(write) = write {
            writes.push(write);
        }
    }
    writes.sort_by_key(|w| w.starts.is_some());
    writes.shrink_to_fit();
    Rollout {
        writes,
        pools,
        blocked_taints: blocked,
    }
}

/// The write for one node, holding back its disruptive part when `holds` says so.
fn node_write(
    c: Candidate<'_>,
    holds: Option<Transition>,
    starts: Option<Transition>,
    now: Timestamp,
) -> Option<NodeWrite> {
    let Candidate {
        node,
        state,
        mut diff,
        flight,
        settled,
        ..
    } = c;
    // Only a disruptive label that would change needs the label set rebuilt.
    let holds_labels = diff
        .set_labels()
        .any(|(k, _)| DISRUPTIVE_LABELS.contains(&k.as_ref()));
    if holds.is_some()
        && holds_labels
        && let Some(labels) = diff.labels.clone()
    {
        let mut held_labels = labels.to_vec();
        // Keep the node's current value of a disruptive label (or leave it unset).
        let held = |key: &str| DISRUPTIVE_LABELS.contains(&key);
        held_labels.retain(|(k, _)| !held(k) || node.labels.contains_key(k.as_ref()));
        for (key, value) in held_labels.iter_mut() {
            if held(key)
                && let Some(current) = node.labels.get(key.as_ref())
            {
                *value = current.into();
            }
        }
        diff.retarget_labels(held_labels.into(), node);
    }
    if holds.is_some() {
        // Hold the repelling taints back, and keep what they would have replaced.
        let repelling: Vec<NodeTaint> = diff
            .add_taints
            .iter()
            .filter(|t| t.repels_pods())
            .cloned()
            .collect();
        diff.add_taints.retain(|t| !t.repels_pods());
        diff.remove_taints.retain(|old| {
            !repelling
                .iter()
                .any(|t| t.key == old.key && t.effect == old.effect)
        });
    }

    let mut annotations: Vec<(&'static str, Option<String>)> = Vec::new();
    let owned_before = owned_taints(node);
    // Kelvin's taints after the write: those it owned and keeps, and those it adds.
    let owned_after: BTreeSet<String> = node
        .taints
        .iter()
        .filter(|t| owned_before.contains(&t.identity()) && !diff.remove_taints.contains(t))
        .chain(diff.add_taints.iter())
        .map(NodeTaint::identity)
        .collect();
    if owned_after != owned_before {
        let value = (!owned_after.is_empty())
            .then(|| owned_after.into_iter().collect::<Vec<_>>().join(","));
        annotations.push((OWNED_TAINTS_ANNOTATION, value));
    }
    let settles = settled.filter(|_| flight.is_some());
    match (starts, settles) {
        (Some(what), _) => {
            annotations.push((
                TRANSITION_ANNOTATION,
                Some(format!("{}@{now}", what.as_str())),
            ));
        }
        (None, Some(_)) => {
            annotations.push((TRANSITION_ANNOTATION, None));
        }
        (None, None) if flight.is_some() && state.pool.is_none() => {
            // The node left Kelvin's pools mid-transition: nothing of Kelvin's is pending.
            annotations.push((TRANSITION_ANNOTATION, None));
        }
        (None, None) => {}
    }
    if diff.is_empty() && annotations.is_empty() {
        return None;
    }
    Some(NodeWrite {
        node: node.name.clone(),
        pool: state.pool,
        zone: state.zone,
        diff,
        annotations,
        starts,
        settles,
        holds,
    })
}

/// The writes that take Kelvin off every node of `spec` (the GpuCluster is being deleted):
/// its labels (the whole set applied empty), the taints it recorded as its own, and its
/// annotations. Not disruptive, so all at once; nodes left alone stay untouched, and nodes of
/// no pool of this spec too (another GpuCluster's).
pub fn cleanup(spec: &GpuClusterSpec, analysis: &Analysis, observed: &Observed) -> Vec<NodeWrite> {
    let pools: BTreeSet<&str> = spec.gpu_pools.iter().map(|p| p.name.as_str()).collect();
    observed
        .nodes()
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            !analysis
                .placement
                .left_alone
                .get(*i)
                .copied()
                .unwrap_or(true)
        })
        .filter(|(i, node)| {
            analysis
                .placement
                .pool_of
                .get(*i)
                .copied()
                .flatten()
                .is_some()
                || node
                    .labels
                    .get(crate::constants::POOL_LABEL)
                    .is_some_and(|p| pools.contains(p))
        })
        .filter_map(|(_, node)| {
            let owned = owned_taints(node);
            let remove_taints: Vec<NodeTaint> = node
                .taints
                .iter()
                .filter(|t| owned.contains(&t.identity()))
                .cloned()
                .collect();
            let annotations: Vec<(&'static str, Option<String>)> =
                [OWNED_TAINTS_ANNOTATION, TRANSITION_ANNOTATION]
                    .into_iter()
                    .filter(|key| node.annotations.contains_key(*key))
                    .map(|key| (key, None))
                    .collect();
            let labels_owned = match &node.kelvin_label_keys {
                Some(keys) => keys.iter().any(|k| node.labels.contains_key(k)),
                None => node.labels.contains_key(crate::constants::POOL_LABEL),
            };
            if !labels_owned && remove_taints.is_empty() && annotations.is_empty() {
                return None;
            }
            let remove_labels = match &node.kelvin_label_keys {
                Some(keys) => keys
                    .iter()
                    .filter(|k| node.labels.contains_key(k))
                    .map(|k| k.to_string())
                    .collect(),
                None => Vec::new(),
            };
            let mut diff = NodeDiff::default();
            diff.remove_labels = remove_labels;
            diff.remove_taints = remove_taints;
            diff.retarget_labels(std::sync::Arc::from([]), node);
            Some(NodeWrite {
                node: node.name.clone(),
                pool: None,
                zone: None,
                diff,
                annotations,
                starts: None,
                settles: None,
                holds: None,
            })
        })
        .collect()
}
