//! A node's place in its fabric, as labels: NVLink domain (accelerator), leaf group, spine
//! block and core, computed from the node's position (DESIGN §4).

use kelvin_crds::{
    model::{fabric::FabricDesign, nodes},
    v1alpha1::{Fabric, GpuPool},
};

/// Topology labels of one node, as (key, value). The accelerator (NVLink domain) comes first:
/// it is the one value most nodes do not share.
pub fn labels(
    node: &nodes::NodeInfo,
    pool: &GpuPool,
    fabric: &Fabric,
    design: &FabricDesign,
) -> Option<Vec<(String, String)>> {
    let position = nodes::position(node, fabric)?;
    let keys = &fabric.topology.labels;
    let name = &fabric.name;
    let group = position / u64::from(fabric.nodes_per_leaf);
    let domain = position * u64::from(pool.accelerator.per_node)
        / u64::from(fabric.nvlink_domain_size.max(1));
    let mut labels = vec![
        (keys.accelerator.clone(), format!("{name}-nvl-{domain}")),
        (keys.leaf.clone(), format!("{name}-leaf-{group}")),
    ];
    match design.tiers {
        2 => labels.push((keys.spine.clone(), format!("{name}-spine-0"))),
        3 => {
            let block = group / design.leaf_groups_per_block.max(1);
            labels.push((keys.spine.clone(), format!("{name}-spine-{block}")));
            labels.push((keys.core.clone(), format!("{name}-core-0")));
        }
        _ => {}
    }
    Some(labels)
}
