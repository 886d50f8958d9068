//! Volcano: HyperNodes per fabric tier. Tier 1 is a leaf group (members: nodes by their leaf
//! label), tier 2 a spine block (members: its leaf groups), tier 3 the core (members: blocks).

use kelvin_crds::{model::Analysis, v1alpha1::GpuClusterSpec};
use serde_json::{Value, json};

use super::{Manifest, ObjectKey, Owner};

/// Volcano's topology API version.
pub const VOLCANO_API_VERSION: &str = "topology.volcano.sh/v1alpha1";

fn hyper_node(
    name: &str,
    tier: u8,
    tier_name: &str,
    members: Vec<Value>,
    owner: &Owner,
) -> Manifest {
    Manifest {
        key: ObjectKey {
            api_version: VOLCANO_API_VERSION.into(),
            kind: "HyperNode".into(),
            namespace: None,
            name: name.into(),
        },
        body: json!({
            "apiVersion": VOLCANO_API_VERSION,
            "kind": "HyperNode",
            "metadata": owner.meta_json(name, None),
            "spec": {"tier": tier, "tierName": tier_name, "members": members},
        }),
    }
}

fn member_hyper_node(name: &str) -> Value {
    json!({"type": "HyperNode", "selector": {"exactMatch": {"name": name}}})
}

pub(super) fn build(spec: &GpuClusterSpec, analysis: &Analysis, owner: &Owner) -> Vec<Manifest> {
    let mut out = Vec::new();
    for (fabric, design) in spec.fabrics.iter().zip(&analysis.fabrics) {
        let Some(design) = design else { continue };
        let name = &fabric.name;
        let leaf_label = &fabric.topology.labels.leaf;
        let leaf_names: Vec<String> = (0..design.leaf_groups)
            .map(|g| format!("{name}-leaf-{g}"))
            .collect();
        for leaf in &leaf_names {
            let members = vec![
                json!({"type": "Node", "selector": {"labelMatch": {"matchLabels": {leaf_label.as_str(): leaf}}}}),
            ];
            out.push(hyper_node(leaf, 1, "leaf", members, owner));
        }
        let per_block = match design.tiers {
            2 => design.leaf_groups.max(1),
            3 => design.leaf_groups_per_block.max(1),
            _ => continue,
        };
        let blocks: Vec<String> = leaf_names
            .chunks(usize::try_from(per_block).unwrap_or(usize::MAX))
            .enumerate()
            .map(|(block, leaves)| {
                let block_name = format!("{name}-spine-{block}");
                out.push(hyper_node(
                    &block_name,
                    2,
                    "spine",
                    leaves.iter().map(|l| member_hyper_node(l)).collect(),
                    owner,
                ));
                block_name
            })
            .collect();
        if design.tiers == 3 {
            out.push(hyper_node(
                &format!("{name}-core-0"),
                3,
                "core",
                blocks.iter().map(|b| member_hyper_node(b)).collect(),
                owner,
            ));
        }
    }
    out
}
