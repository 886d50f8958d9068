//! Fabric sizing for a rail-optimized, non-blocking folded Clos (fat tree) of radix r
//! (DESIGN.md §3).
//!
//! Endpoints E = nodes x railsPerNode. Leaf groups G = ceil(nodes / nodesPerLeaf), one leaf per
//! rail, so leaves L = G x railsPerNode, and a leaf group must fit a leaf's r/2 down-ports.
//! - One tier: a single leaf group (G = 1).
//! - Two tiers: every leaf reaches every spine, so a spine's r ports bound L <= r;
//!   spines = ceil(L x (r/2) / r).
//! - Three tiers: a block (spine group) holds (r/2) / railsPerNode leaf groups, blocks
//!   B = ceil(G / that), and a core switch has one port per block, so B <= r; spines = L,
//!   core = ceil(spines x (r/2) / r).
//!
//! The fabric has the fewest tiers that can be built; more than three is an error naming the
//! limit hit. Cables: node-leaf = E, leaf-spine = L x r/2 with a spine tier, spine-core =
//! spines x r/2 with a core tier.

use kelvin_crds::{
    diagnostics::Diagnostic,
    v1alpha1::{Fabric, GpuClusterSpec},
};
use serde::Serialize;

use super::{fabric_path, pool_path};

/// Switches per tier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Switches {
    /// Leaf switches.
    pub leaf: u64,
    /// Spine switches (0 without a spine tier).
    pub spine: u64,
    /// Core switches (0 without a core tier).
    pub core: u64,
}

/// Cables per tier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cables {
    /// Node to leaf (one per NIC).
    pub node_leaf: u64,
    /// Leaf to spine.
    pub leaf_spine: u64,
    /// Spine to core.
    pub spine_core: u64,
}

/// The bill of materials and shape of one fabric.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FabricDesign {
    /// Fabric name.
    pub name: String,
    /// Nodes attached (design capacity).
    pub nodes: u64,
    /// NIC endpoints: nodes x railsPerNode.
    pub endpoints: u64,
    /// Switch tiers (1-3; 0 for an empty fabric).
    pub tiers: u8,
    /// Leaf groups (scalable units).
    pub leaf_groups: u64,
    /// Leaf groups under one spine block (three tiers only).
    pub leaf_groups_per_block: u64,
    /// Spine blocks (three tiers only; each takes one port of every core switch).
    pub blocks: u64,
    /// Switches per tier.
    pub switches: Switches,
    /// Cables per tier.
    pub cables: Cables,
    /// NVLink domains across the fabric's pools.
    pub nvlink_domains: u64,
}

/// Why a fabric cannot be built: the limit hit, with its numbers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FabricError {
    /// A leaf group does not fit a leaf's down-ports.
    #[error(
        "nodesPerLeaf {nodes_per_leaf} does not fit the {down_ports} down-ports of a radix-{radix} leaf (half its ports)"
    )]
    LeafGroupTooLarge {
        /// nodesPerLeaf.
        nodes_per_leaf: u64,
        /// r/2.
        down_ports: u64,
        /// r.
        radix: u64,
    },
    /// Two tiers cannot hold the leaves and a block cannot hold even one leaf group.
    #[error(
        "{leaves} leaves exceed the {radix} a radix-{radix} spine connects, and a three-tier block holds (r/2)/railsPerNode = {half}/{rails} = 0 leaf groups"
    )]
    NoLeafGroupPerBlock {
        /// L.
        leaves: u64,
        /// r.
        radix: u64,
        /// r/2.
        half: u64,
        /// railsPerNode.
        rails: u64,
    },
    /// Three tiers cannot hold the blocks: a core switch has one port per block.
    #[error(
        "{nodes} nodes make {leaf_groups} leaf groups of {nodes_per_leaf}, {blocks} spine blocks of {per_block} leaf groups; a radix-{radix} core switch has one port per block, so at most {radix} blocks (more than three tiers would be needed)"
    )]
    TooManyBlocks {
        /// Nodes.
        nodes: u64,
        /// nodesPerLeaf.
        nodes_per_leaf: u64,
        /// G.
        leaf_groups: u64,
        /// (r/2) / railsPerNode.
        per_block: u64,
        /// B.
        blocks: u64,
        /// r.
        radix: u64,
    },
}

/// Sizes `fabric` for `nodes` nodes whose pools make `nvlink_domains` NVLink domains.
pub fn design(
    fabric: &Fabric,
    nodes: u64,
    nvlink_domains: u64,
) -> Result<FabricDesign, FabricError> {
    let radix = u64::from(fabric.switch_radix);
    let rails = u64::from(fabric.rails_per_node);
    let nodes_per_leaf = u64::from(fabric.nodes_per_leaf).max(1);
    let half = radix / 2;
    if nodes_per_leaf > half {
        return Err(FabricError::LeafGroupTooLarge {
            nodes_per_leaf,
            down_ports: half,
            radix,
        });
    }
    let endpoints = nodes * rails;
    let leaf_groups = nodes.div_ceil(nodes_per_leaf);
    let leaf = leaf_groups * rails;
    let (tiers, leaf_groups_per_block, blocks) = match leaf_groups {
        0 => (0, 0, 0),
        1 => (1, 0, 0),
        _ if leaf <= radix => (2, 0, 0),
        _ => {
            let per_block = half / rails.max(1);
            if per_block == 0 {
                return Err(FabricError::NoLeafGroupPerBlock {
                    leaves: leaf,
                    radix,
                    half,
                    rails,
                });
            }
            let blocks = leaf_groups.div_ceil(per_block);
            if blocks > radix {
                return Err(FabricError::TooManyBlocks {
                    nodes,
                    nodes_per_leaf,
                    leaf_groups,
                    per_block,
                    blocks,
                    radix,
                });
            }
            (3, per_block, blocks)
        }
    };
    let spine = match tiers {
        2 => (leaf * half).div_ceil(radix),
        3 => leaf,
        _ => 0,
    };
    let core = if tiers == 3 {
        (spine * half).div_ceil(radix)
    } else {
        0
    };
    Ok(FabricDesign {
        name: fabric.name.clone(),
        nodes,
        endpoints,
        tiers,
        leaf_groups,
        leaf_groups_per_block,
        blocks,
        switches: Switches { leaf, spine, core },
        cables: Cables {
            node_leaf: endpoints,
            leaf_spine: if tiers >= 2 { leaf * half } else { 0 },
            spine_core: if tiers == 3 { spine * half } else { 0 },
        },
        nvlink_domains,
    })
}

/// Sizes every fabric for the pools on it; None (and an error naming the fabric, the limit hit
/// and a fix) where one cannot be built.
pub fn check(spec: &GpuClusterSpec, out: &mut Vec<Diagnostic>) -> Vec<Option<FabricDesign>> {
    spec.fabrics
        .iter()
        .enumerate()
        .map(|(index, fabric)| {
            let path = fabric_path(index);
            let size = u64::from(fabric.nvlink_domain_size);
            let mut nodes = 0u64;
            let mut domains = 0u64;
            for (pool_index, pool) in spec.gpu_pools.iter().enumerate().filter(|(_, p)| p.fabric == fabric.name) {
                let per_node = u64::from(pool.accelerator.per_node).max(1);
                if size % per_node != 0 {
                    out.push(
                        Diagnostic::error(
                            format!("{path}.nvlinkDomainSize"),
                            format!(
                                "fabric {}: an NVLink domain spans whole nodes, but {size} GPUs is not a multiple of {}.accelerator.perNode {per_node} ({})",
                                fabric.name,
                                pool_path(pool_index),
                                pool.name
                            ),
                        )
                        .with_fix(format!("use a multiple of {per_node} (e.g. {per_node} for one HGX board per domain)")),
                    );
                }
                nodes += u64::from(pool.expected_nodes);
                domains += (u64::from(pool.expected_nodes) * per_node).div_ceil(size.max(1));
            }
            match design(fabric, nodes, domains) {
                Ok(design) => Some(design),
                Err(error) => {
                    let (field, fix) = match &error {
                        FabricError::LeafGroupTooLarge { down_ports, .. } => {
                            (".nodesPerLeaf", format!("use at most {down_ports} nodes per leaf group"))
                        }
                        FabricError::NoLeafGroupPerBlock { radix, half, .. } => (
                            ".railsPerNode",
                            format!("use at most {half} rails with radix-{radix} switches, or fewer, larger leaf groups (nodesPerLeaf) so two tiers hold the leaves"),
                        ),
                        FabricError::TooManyBlocks { radix, per_block, nodes_per_leaf, .. } => (
                            "",
                            format!(
                                "with these switches a fabric holds at most {} nodes ({radix} blocks x {per_block} leaf groups x {nodes_per_leaf} nodes): split the pools over more fabrics{}, or use switches with a higher radix",
                                radix * per_block * nodes_per_leaf,
                                if *nodes_per_leaf < radix / 2 {
                                    format!(", use larger leaf groups (nodesPerLeaf up to {})", radix / 2)
                                } else {
                                    String::new()
                                }
                            ),
                        ),
                    };
                    out.push(
                        Diagnostic::error(format!("{path}{field}"), format!("fabric {}: {error}", fabric.name))
                            .with_fix(fix),
                    );
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelvin_crds::v1alpha1::{FabricTopology, FabricType};

    fn fabric(rails_per_node: u32, switch_radix: u32, nodes_per_leaf: u32) -> Fabric {
        Fabric {
            name: "ib".into(),
            fabric_type: FabricType::InfiniBand,
            link_gbps: 400,
            rails_per_node,
            switch_radix,
            nodes_per_leaf,
            nvlink_domain_size: 8,
            rdma: None,
            topology: FabricTopology::default(),
        }
    }

    /// NVIDIA Quantum-2 NDR: 64 ports; DGX SuperPOD: 8 rails.
    fn ndr(nodes_per_leaf: u32) -> Fabric {
        fabric(8, 64, nodes_per_leaf)
    }

    #[test]
    fn one_leaf_group_is_one_tier() {
        // 32 nodes in one leaf group: 8 leaves, one per rail, and nothing above them.
        let design = design(&ndr(32), 32, 32).unwrap();
        assert_eq!((design.tiers, design.leaf_groups), (1, 1));
        assert_eq!(
            design.switches,
            Switches {
                leaf: 8,
                spine: 0,
                core: 0
            }
        );
        assert_eq!(
            design.cables,
            Cables {
                node_leaf: 256,
                leaf_spine: 0,
                spine_core: 0
            }
        );
    }

    #[test]
    fn four_superpod_scalable_units_are_two_tiers_as_nvidia_publishes() {
        // DGX H100 SuperPOD, 4 SUs (128 nodes): 32 leaves and 16 spines in NVIDIA's table.
        // L = 4 x 8 = 32 <= 64; spines = ceil(32 x 32 / 64) = 16.
        let design = design(&ndr(32), 128, 128).unwrap();
        assert_eq!(design.tiers, 2);
        assert_eq!(
            design.switches,
            Switches {
                leaf: 32,
                spine: 16,
                core: 0
            }
        );
        assert_eq!(
            design.cables,
            Cables {
                node_leaf: 1024,
                leaf_spine: 1024,
                spine_core: 0
            }
        );
    }

    #[test]
    fn half_of_cortex_is_three_tiers() {
        // 4,375 nodes: G = 137, L = 1,096 > 64; blocks of 32/8 = 4 groups: B = 35 <= 64.
        let design = design(&ndr(32), 4375, 4375).unwrap();
        assert_eq!(design.tiers, 3);
        assert_eq!(
            (
                design.leaf_groups,
                design.leaf_groups_per_block,
                design.blocks
            ),
            (137, 4, 35)
        );
        assert_eq!(
            design.switches,
            Switches {
                leaf: 1096,
                spine: 1096,
                core: 548
            }
        );
        assert_eq!(
            design.cables,
            Cables {
                node_leaf: 35_000,
                leaf_spine: 35_072,
                spine_core: 35_072
            }
        );
    }

    #[test]
    fn a_core_switch_has_one_port_per_block() {
        // 16 nodes per leaf: G = 274, B = ceil(274 / 4) = 69 > 64 ports of a core switch.
        let error = design(&ndr(16), 4375, 4375).unwrap_err();
        assert_eq!(
            error.to_string(),
            "4375 nodes make 274 leaf groups of 16, 69 spine blocks of 4 leaf groups; a radix-64 core switch has one port per block, so at most 64 blocks (more than three tiers would be needed)"
        );
    }

    #[test]
    fn all_of_cortex_on_one_radix_64_fabric_needs_more_than_three_tiers() {
        // 8,750 nodes: G = 274, B = 69 > 64.
        let error = design(&ndr(32), 8750, 8750).unwrap_err();
        assert!(
            matches!(error, FabricError::TooManyBlocks { blocks: 69, .. }),
            "{error}"
        );
    }

    #[test]
    fn a_spine_connects_at_most_radix_leaves() {
        // 200 single-rail nodes, 4 per leaf, radix 32: L = 50 > 32, so not two tiers; a block
        // holds 16 leaf groups, B = ceil(50 / 16) = 4: three tiers.
        let design = design(&fabric(1, 32, 4), 200, 200).unwrap();
        assert_eq!((design.tiers, design.blocks), (3, 4));
        assert_eq!(
            design.switches,
            Switches {
                leaf: 50,
                spine: 50,
                core: 25
            }
        );
    }

    #[test]
    fn too_many_rails_for_a_block_is_named() {
        // Radix 8 (4 down-ports), 8 rails: 3 groups make 24 leaves > 8, and a block holds 0.
        let error = design(&fabric(8, 8, 4), 12, 12).unwrap_err();
        assert!(
            matches!(error, FabricError::NoLeafGroupPerBlock { leaves: 24, .. }),
            "{error}"
        );
    }

    #[test]
    fn leaf_group_must_fit_half_the_ports() {
        let error = design(&ndr(33), 33, 33).unwrap_err();
        assert!(matches!(
            error,
            FabricError::LeafGroupTooLarge { down_ports: 32, .. }
        ));
    }

    #[test]
    fn an_empty_fabric_has_no_switches() {
        let design = design(&ndr(32), 0, 0).unwrap();
        assert_eq!((design.tiers, design.switches.leaf), (0, 0));
    }
}
