//! A node's place in its fabric (DESIGN.md §4): its position — the fabric's position label, or
//! the number at the end of its name — gives its NVLink domain, leaf group, spine block and
//! core, written as topology labels (NVIDIA Topograph's keys by default).

use std::sync::Arc;

use kelvin_crds::{
    diagnostics::Diagnostic,
    node::NodeInfo,
    v1alpha1::{Fabric, GpuClusterSpec, GpuPool},
};

use super::{fabric::FabricDesign, fabric_path, placement::Placement};

/// Longest label value the API server accepts.
const MAX_LABEL_VALUE: usize = 63;

/// How many example node names a finding lists.
const EXAMPLES: usize = 5;

/// The node's position in `fabric`: the integer value of the fabric's position label, or the
/// number at the end of the node's name. None when there is none, or it does not fit a u64.
pub fn position(node: &NodeInfo, fabric: &Fabric) -> Option<u64> {
    if let Some(label) = &fabric.topology.position_label {
        return node.labels.get(label)?.trim().parse().ok();
    }
    let stem = node.name.trim_end_matches(|c: char| c.is_ascii_digit());
    node.name.get(stem.len()..)?.parse().ok()
}

/// Leaf group of a position.
pub fn leaf_group(position: u64, fabric: &Fabric) -> u64 {
    position / u64::from(fabric.nodes_per_leaf.max(1))
}

/// `<fabric>-leaf-<group>`: a leaf group's label value and Volcano HyperNode name.
pub fn leaf_name(fabric: &str, group: u64) -> String {
    format!("{fabric}-leaf-{group}")
}

/// `<fabric>-spine-<block>`.
pub fn spine_name(fabric: &str, block: u64) -> String {
    format!("{fabric}-spine-{block}")
}

/// `<fabric>-core-0`: a fat tree has one core.
pub fn core_name(fabric: &str) -> String {
    format!("{fabric}-core-0")
}

/// `<pool>-nvl-<domain>`: NVLink domains are made of one pool's nodes, so the pool's name keeps
/// domains of pools with different `perNode` on one fabric apart.
pub fn nvlink_domain_name(pool: &str, domain: u64) -> String {
    format!("{pool}-nvl-{domain}")
}

/// Nodes per NVLink domain (a domain spans whole nodes; at least one).
fn nodes_per_domain(pool: &GpuPool, fabric: &Fabric) -> u64 {
    (u64::from(fabric.nvlink_domain_size) / u64::from(pool.accelerator.per_node.max(1))).max(1)
}

/// Spine block of a leaf group (three tiers), or 0 (two tiers: one block).
fn block(group: u64, design: &FabricDesign) -> u64 {
    if design.tiers >= 3 {
        group / design.leaf_groups_per_block.max(1)
    } else {
        0
    }
}

/// The NVLink-domain label of a node at `position`, as (key, value).
pub fn nvlink_label<'a>(position: u64, pool: &GpuPool, fabric: &'a Fabric) -> (&'a str, String) {
    (
        fabric.topology.labels.accelerator.as_str(),
        nvlink_domain_name(&pool.name, position / nodes_per_domain(pool, fabric)),
    )
}

/// The switch labels every node of leaf group `group` shares, as (key, value): its leaf, and
/// its spine block and core where the fabric has those tiers.
pub fn switch_labels<'a>(
    group: u64,
    fabric: &'a Fabric,
    design: &FabricDesign,
) -> Vec<(&'a str, String)> {
    let keys = &fabric.topology.labels;
    let mut labels = vec![(keys.leaf.as_str(), leaf_name(&fabric.name, group))];
    if design.tiers >= 2 {
        labels.push((
            keys.spine.as_str(),
            spine_name(&fabric.name, block(group, design)),
        ));
    }
    if design.tiers >= 3 {
        labels.push((keys.core.as_str(), core_name(&fabric.name)));
    }
    labels
}

/// Topology label values longer than the API server accepts, for the fabrics as designed:
/// the names are in them, so a long fabric or pool name is an error before any node is written.
pub fn check_label_lengths(
    spec: &GpuClusterSpec,
    designs: &[Option<FabricDesign>],
    out: &mut Vec<Diagnostic>,
) {
    for (index, (fabric, design)) in spec.fabrics.iter().zip(designs).enumerate() {
        let Some(design) = design else { continue };
        let last_group = design.leaf_groups.saturating_sub(1);
        let mut values = vec![leaf_name(&fabric.name, last_group)];
        if design.tiers >= 2 {
            values.push(spine_name(&fabric.name, block(last_group, design)));
        }
        for pool in spec.gpu_pools.iter().filter(|p| p.fabric == fabric.name) {
            let last = design.nodes.saturating_sub(1);
            values.push(nvlink_domain_name(
                &pool.name,
                last / nodes_per_domain(pool, fabric),
            ));
        }
        if let Some(long) = values.iter().find(|v| v.len() > MAX_LABEL_VALUE) {
            out.push(
                Diagnostic::error(
                    format!("{}.name", fabric_path(index)),
                    format!(
                        "fabric {}: topology label value {long:?} is {} characters, more than the {MAX_LABEL_VALUE} a label value may have",
                        fabric.name,
                        long.len()
                    ),
                )
                .with_fix("shorten the fabric's name (or the pool's, for NVLink domain labels)"),
            );
        }
    }
}

/// Warnings about node positions on each fabric: nodes with none (they get no topology labels)
/// and positions held by two nodes (they would share a leaf slot). Names the fabric and nodes.
pub fn check_positions(
    spec: &GpuClusterSpec,
    nodes: &[Arc<NodeInfo>],
    placement: &Placement,
    out: &mut Vec<Diagnostic>,
) {
    for (index, fabric) in spec.fabrics.iter().enumerate() {
        let mut missing: Vec<&str> = Vec::new();
        let mut held: Vec<(u64, &str)> = Vec::new();
        for (node, pool) in nodes.iter().zip(&placement.pool_of) {
            let Some(pool) = pool.and_then(|p| spec.gpu_pools.get(p)) else {
                continue;
            };
            if pool.fabric != fabric.name {
                continue;
            }
            match position(node, fabric) {
                Some(position) => held.push((position, &node.name)),
                None => missing.push(&node.name),
            }
        }
        let path = fabric_path(index);
        let source = match &fabric.topology.position_label {
            Some(label) => format!("an integer label {label}"),
            None => "a number at the end of their names".to_owned(),
        };
        if !missing.is_empty() {
            out.push(
                Diagnostic::warning(
                    &path,
                    format!(
                        "fabric {}: {} without a position ({}) get no topology labels",
                        fabric.name,
                        count(missing.len(), "node", "nodes"),
                        examples(&missing)
                    ),
                )
                .with_fix(format!("give them {source}")),
            );
        }
        // Sorted by position (then name), holders of one position are neighbours.
        held.sort_unstable();
        let mut shared = held
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|holders| holders.len() > 1);
        if let Some(first) = shared.next() {
            let positions = 1 + shared.count();
            let names: Vec<&str> = first.iter().map(|(_, name)| *name).collect();
            out.push(
                Diagnostic::warning(
                    &path,
                    format!(
                        "fabric {}: {} held by more than one node (position {}: {}), so those nodes would share a leaf slot",
                        fabric.name,
                        count(positions, "position is", "positions are"),
                        first[0].0,
                        names.join(", ")
                    ),
                )
                .with_fix(format!("give each node of the fabric its own position ({source})")),
            );
        }
    }
}

/// `1 node`, `3 nodes`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `a, b, c and 7 more`.
pub fn examples(names: &[&str]) -> String {
    let shown = names
        .iter()
        .take(EXAMPLES)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > EXAMPLES {
        format!("{shown} and {} more", names.len() - EXAMPLES)
    } else {
        shown
    }
}
