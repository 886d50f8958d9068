//! Fabric sizing for a rail-optimized, non-blocking fat tree.
//!
//! Endpoints E = nodes x railsPerNode. Leaves and spines use half their ports down and half up;
//! one tier holds r ports, two tiers r^2/2, three tiers r^3/4 (r = switchRadix), and the fabric
//! has the fewest tiers that hold E. Leaf groups = ceil(nodes / nodesPerLeaf), one leaf per rail.

use serde::Serialize;

use crate::v1alpha1::Fabric;

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
    /// Endpoints the chosen number of tiers holds.
    pub capacity: u64,
    /// Leaf groups (scalable units).
    pub leaf_groups: u64,
    /// Leaf groups under one spine block (three tiers only).
    pub leaf_groups_per_block: u64,
    /// Switches per tier.
    pub switches: Switches,
    /// Cables per tier.
    pub cables: Cables,
    /// NVLink domains across the fabric's pools.
    pub nvlink_domains: u64,
}

/// Why a fabric cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FabricError {
    /// Needs more than three tiers.
    #[error(
        "{endpoints} endpoints ({nodes} nodes x {rails} rails) exceed what three tiers of radix-{radix} switches hold ({max})"
    )]
    TooManyEndpoints {
        /// Endpoints asked for.
        endpoints: u64,
        /// Nodes.
        nodes: u64,
        /// Rails per node.
        rails: u64,
        /// Switch radix.
        radix: u64,
        /// r^3/4.
        max: u64,
    },
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
    /// A spine block cannot hold one leaf group.
    #[error(
        "a spine block of radix-{radix} switches holds (r/2)/railsPerNode = 0 leaf groups with {rails} rails"
    )]
    NoLeafGroupPerBlock {
        /// r.
        radix: u64,
        /// railsPerNode.
        rails: u64,
    },
}

/// Endpoints held by `tiers` tiers of radix-`radix` switches.
pub fn tier_capacity(radix: u64, tiers: u8) -> u64 {
    match tiers {
        0 => 0,
        1 => radix,
        2 => radix * radix / 2,
        _ => radix * radix * radix / 4,
    }
}

/// Sizes `fabric` for `nodes` nodes whose pools make `nvlink_domains` NVLink domains.
pub fn design(
    fabric: &Fabric,
    nodes: u64,
    nvlink_domains: u64,
) -> Result<FabricDesign, FabricError> {
    let radix = u64::from(fabric.switch_radix);
    let rails = u64::from(fabric.rails_per_node);
    let nodes_per_leaf = u64::from(fabric.nodes_per_leaf);
    let half = radix / 2;
    if nodes_per_leaf > half {
        return Err(FabricError::LeafGroupTooLarge {
            nodes_per_leaf,
            down_ports: half,
            radix,
        });
    }
    let endpoints = nodes * rails;
    let tiers = if endpoints == 0 {
        0
    } else {
        (1..=3u8)
            .find(|tiers| endpoints <= tier_capacity(radix, *tiers))
            .ok_or(FabricError::TooManyEndpoints {
                endpoints,
                nodes,
                rails,
                radix,
                max: tier_capacity(radix, 3),
            })?
    };
    let leaf_groups_per_block = if tiers == 3 {
        match half / rails {
            0 => return Err(FabricError::NoLeafGroupPerBlock { radix, rails }),
            groups => groups,
        }
    } else {
        0
    };
    let leaf_groups = nodes.div_ceil(nodes_per_leaf);
    let leaf = leaf_groups * rails;
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
        capacity: tier_capacity(radix, tiers),
        leaf_groups,
        leaf_groups_per_block,
        switches: Switches { leaf, spine, core },
        cables: Cables {
            node_leaf: endpoints,
            leaf_spine: if tiers >= 2 { leaf * half } else { 0 },
            spine_core: if tiers == 3 { spine * half } else { 0 },
        },
        nvlink_domains,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1alpha1::{FabricTopology, FabricType};

    fn ndr(nodes_per_leaf: u32) -> Fabric {
        Fabric {
            name: "ib".into(),
            fabric_type: FabricType::InfiniBand,
            link_gbps: 400,
            rails_per_node: 8,
            switch_radix: 64,
            nodes_per_leaf,
            nvlink_domain_size: 8,
            rdma: None,
            topology: FabricTopology::default(),
        }
    }

    #[test]
    fn one_superpod_scalable_unit_is_two_tiers() {
        // 32 nodes x 8 rails = 256 endpoints: more than one radix-64 tier (64), within two (2048).
        let design = design(&ndr(32), 32, 32).unwrap();
        assert_eq!(design.tiers, 2);
        assert_eq!(
            design.switches,
            Switches {
                leaf: 8,
                spine: 4,
                core: 0
            }
        );
        assert_eq!(
            design.cables,
            Cables {
                node_leaf: 256,
                leaf_spine: 256,
                spine_core: 0
            }
        );
    }

    #[test]
    fn half_of_cortex_is_three_tiers() {
        // 4,375 nodes x 8 rails = 35,000 endpoints <= 64^3/4 = 65,536.
        let design = design(&ndr(32), 4375, 4375).unwrap();
        assert_eq!(design.tiers, 3);
        assert_eq!(design.leaf_groups, 137);
        assert_eq!(design.leaf_groups_per_block, 4);
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
    fn all_of_cortex_on_one_radix_64_fabric_needs_four_tiers() {
        let error = design(&ndr(32), 8750, 8750).unwrap_err();
        assert_eq!(
            error.to_string(),
            "70000 endpoints (8750 nodes x 8 rails) exceed what three tiers of radix-64 switches hold (65536)"
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
