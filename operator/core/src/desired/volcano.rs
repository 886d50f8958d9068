//! Volcano: HyperNodes per fabric tier. Tier 1 is a leaf group (members: nodes by their leaf
//! label), tier 2 a spine block (members: its leaf groups), tier 3 the core (members: blocks).
//! Leaf groups are those of the design (`expectedNodes`) and every one an observed node sits
//! in, so no node is left outside the tree.

use std::collections::BTreeMap;

use kelvin_crds::v1alpha1::GpuClusterSpec;
use serde_json::{Value, json};

use super::{CustomObject, Desired, Owner};
use crate::{
    analysis::Analysis,
    model::topology::{core_name, leaf_name, spine_name},
};

/// Tier numbers only: `spec.tierName` is not in volcano.sh/apis v1.13.0, whose CRD refuses it
/// (a server-side apply fails with "field not declared in schema"); the names say the tier.
fn hyper_node(
    name: &str,
    tier: u8,
    members: Vec<Value>,
    owner: &Owner,
) -> CustomObject<super::HyperNode> {
    CustomObject::new(name, None, owner, json!({"tier": tier, "members": members}))
}

fn member_hyper_node(name: &str) -> Value {
    json!({"type": "HyperNode", "selector": {"exactMatch": {"name": name}}})
}

pub(super) fn build(spec: &GpuClusterSpec, analysis: &Analysis, owner: &Owner, out: &mut Desired) {
    let designs = analysis.fabrics.iter().zip(&analysis.observed_leaf_groups);
    for (fabric, (design, observed)) in spec.fabrics.iter().zip(designs) {
        let Some(design) = design else { continue };
        let name = &fabric.name;
        let leaf_label = &fabric.topology.labels.leaf;
        let mut groups: std::collections::BTreeSet<u64> = (0..design.leaf_groups).collect();
        groups.extend(observed.iter().copied());
        let per_block = match design.tiers {
            3 => design.leaf_groups_per_block.max(1),
            _ => u64::MAX,
        };
        let mut blocks: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
        for group in groups {
            let leaf = leaf_name(name, group);
            let members = vec![
                json!({"type": "Node", "selector": {"labelMatch": {"matchLabels": {leaf_label.as_str(): leaf}}}}),
            ];
            out.hyper_nodes.push(hyper_node(&leaf, 1, members, owner));
            blocks
                .entry(group / per_block)
                .or_default()
                .push(member_hyper_node(&leaf));
        }
        if design.tiers < 2 {
            continue;
        }
        let mut block_members = Vec::new();
        for (block, leaves) in blocks {
            let block_name = spine_name(name, block);
            out.hyper_nodes
                .push(hyper_node(&block_name, 2, leaves, owner));
            block_members.push(member_hyper_node(&block_name));
        }
        if design.tiers == 3 {
            out.hyper_nodes
                .push(hyper_node(&core_name(name), 3, block_members, owner));
        }
    }
}
