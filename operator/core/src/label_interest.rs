//! Which node labels Kelvin reads. A production GPU node carries ~100 labels (node feature
//! discovery, GPU feature discovery, the cloud's), of which a plan reads a handful: the keys
//! of the pools' and zones' selectors, the fabrics' position labels, and the labels Kelvin
//! writes or the power agent reports. The operator's node cache keeps only those (plus the keys
//! Kelvin's field manager owns on each node), which is most of its memory per node at scale.
//!
//! A plan of nodes reduced to [`LabelInterest::wants`] is the plan of the full nodes: the test
//! below checks that on the examples, with nodes carrying many labels Kelvin does not read.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kelvin_crds::{node::NodeInfo, v1alpha1::GpuClusterSpec};

use crate::node_state::producible_keys;

/// Every label key Kelvin writes or the power agent reports starts with this, or is one of the
/// keys [`producible_keys`] lists.
const KELVIN_PREFIX: &str = "kelvin.dev/";

/// The node label keys the plans of a set of GpuClusters read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelInterest {
    keys: BTreeSet<String>,
}

fn selector_keys(selector: &LabelSelector, keys: &mut BTreeSet<String>) {
    keys.extend(
        selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, _)| k.clone()),
    );
    keys.extend(
        selector
            .match_expressions
            .iter()
            .flatten()
            .map(|r| r.key.clone()),
    );
}

impl LabelInterest {
    /// What the plans of `specs` read (every GpuCluster the operator serves: one node cache
    /// serves them all).
    pub fn of<'a>(specs: impl IntoIterator<Item = &'a GpuClusterSpec>) -> Self {
        let mut keys = BTreeSet::new();
        for spec in specs {
            for pool in &spec.gpu_pools {
                selector_keys(&pool.node_selector, &mut keys);
            }
            for zone in &spec.cooling_zones {
                selector_keys(&zone.node_selector, &mut keys);
            }
            for fabric in &spec.fabrics {
                keys.extend(fabric.topology.position_label.clone());
            }
            keys.extend(producible_keys(spec));
        }
        Self { keys }
    }

    /// Whether a plan may read label `key`.
    pub fn wants(&self, key: &str) -> bool {
        key.starts_with(KELVIN_PREFIX) || self.keys.contains(key)
    }

    /// Whether every key `other` reads is read here too (else a cache reduced to `self` lacks
    /// labels `other`'s plans need, and must be listed again).
    pub fn covers(&self, other: &LabelInterest) -> bool {
        other.keys.is_subset(&self.keys)
    }

    /// Both sets of keys.
    pub fn union(&self, other: &LabelInterest) -> Self {
        Self {
            keys: self.keys.union(&other.keys).cloned().collect(),
        }
    }

    /// Drops the labels of `node` no plan reads, keeping those Kelvin's field manager owns
    /// (to remove them, a plan must see them).
    pub fn reduce(&self, node: &mut NodeInfo) {
        let owned = node.kelvin_label_keys.as_deref().unwrap_or_default();
        node.labels
            .retain(|key, _| self.wants(key) || owned.iter().any(|o| **o == *key));
        // ~100 labels read, ~10 kept: the rest of the room would stay with the node.
        node.labels.shrink_to_fit();
    }

    /// The keys, for logs.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is of interest but Kelvin's own prefix.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use kelvin_crds::load::load_gpu_clusters;

    use super::*;
    use crate::{
        observed::{Observed, Timestamp, simulate_at_most},
        plan::plan,
    };

    fn spec(path: &str) -> kelvin_crds::v1alpha1::GpuCluster {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let file = format!("{root}/{path}");
        let bytes = std::fs::read(&file).unwrap();
        let (mut clusters, _) = load_gpu_clusters(&file, &bytes);
        clusters.remove(0).0
    }

    /// Nodes as a site has them: the simulated ones plus 60 labels no plan reads, and a
    /// label Kelvin's field manager owns that the spec no longer produces.
    fn dressed(nodes: Vec<NodeInfo>) -> Vec<NodeInfo> {
        nodes
            .into_iter()
            .map(|mut node| {
                for i in 0..60 {
                    node.labels.insert(
                        format!("feature.node.kubernetes.io/cpu-cpuid.F{i}"),
                        "true".into(),
                    );
                }
                node.labels.insert("example.com/retired", "yes".into());
                node.kelvin_label_keys = Some(vec!["example.com/retired".into()]);
                node
            })
            .collect()
    }

    #[test]
    fn a_plan_of_reduced_nodes_is_the_plan_of_the_full_nodes() {
        for path in [
            "examples/small/cluster.yaml",
            "examples/cortex/cluster.yaml",
        ] {
            let cluster = spec(path);
            let full = dressed(simulate_at_most(&cluster.spec, 300));
            let interest = LabelInterest::of([&cluster.spec]);
            let mut reduced = full.clone();
            for node in &mut reduced {
                interest.reduce(node);
            }
            let kept: usize = reduced.iter().map(|n| n.labels.len()).sum();
            let all: usize = full.iter().map(|n| n.labels.len()).sum();
            assert!(kept * 3 < all, "{path}: kept {kept} of {all} labels");
            assert!(
                reduced
                    .iter()
                    .all(|n| n.labels.contains_key("example.com/retired")),
                "owned keys stay"
            );
            let names: Vec<String> = full.iter().map(|n| n.name.clone()).collect();
            let now = Timestamp::now();
            let a = plan(&cluster, &Observed::new(full, now).unwrap()).unwrap();
            let b = plan(&cluster, &Observed::new(reduced, now).unwrap()).unwrap();
            for name in &names {
                assert_eq!(a.nodes.get(name), b.nodes.get(name), "{path}: {name}");
            }
            assert_eq!(a.rollout.writes, b.rollout.writes, "{path}: node writes");
            assert_eq!(a.plan, b.plan, "{path}: the plan shown");
        }
    }

    #[test]
    fn interest_is_the_selectors_the_position_labels_and_what_kelvin_writes() {
        let cluster = spec("examples/small/cluster.yaml");
        let interest = LabelInterest::of([&cluster.spec]);
        for key in [
            "kelvin.dev/sku",                   // a pool's selector
            "kelvin.dev/row",                   // a zone's selector
            "lab.example.com/purpose",          // a pool's labels
            "nvidia.com/device-plugin.config",  // Kelvin writes it
            "network.topology.nvidia.com/leaf", // a fabric's topology label
            "kelvin.dev/gpu-power-cap-applied", // the power agent reports it
        ] {
            assert!(interest.wants(key), "{key}");
        }
        assert!(!interest.wants("feature.node.kubernetes.io/cpu-cpuid.AVX"));
        assert!(!interest.wants("kubernetes.io/hostname"));
        let cortex = spec("examples/cortex/cluster.yaml");
        let both = interest.union(&LabelInterest::of([&cortex.spec]));
        assert!(both.covers(&interest) && !interest.covers(&both));
    }
}
