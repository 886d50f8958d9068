//! Which pool and which cooling zone each node belongs to. A node matched by two pools (or
//! two zones) belongs to neither: it is an error naming the node and both owners, and Kelvin
//! never touches it.

use std::collections::BTreeMap;

use super::{nodes::NodeInfo, pool_path, selector, zone_path};
use crate::{diagnostics::Diagnostic, v1alpha1::GpuClusterSpec};

/// Node -> pool and node -> zone, by index into the spec's lists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    /// Pool of node i, if exactly one pool matches it.
    pub pool_of: Vec<Option<usize>>,
    /// Zone of node i, if exactly one zone matches it.
    pub zone_of: Vec<Option<usize>>,
    /// Nodes matched by two owners, one error per pair of owners.
    pub conflicts: Vec<Diagnostic>,
}

impl Placement {
    /// Indices of the nodes in pool `pool`.
    pub fn nodes_in_pool(&self, pool: usize) -> impl Iterator<Item = usize> + '_ {
        self.pool_of
            .iter()
            .enumerate()
            .filter(move |(_, p)| **p == Some(pool))
            .map(|(i, _)| i)
    }
}

/// How many example node names a conflict lists.
const EXAMPLES: usize = 5;

/// Places `nodes` into the spec's pools and zones.
pub fn place(spec: &GpuClusterSpec, nodes: &[NodeInfo]) -> Placement {
    let mut pool_clashes: BTreeMap<(usize, usize), Vec<&str>> = BTreeMap::new();
    let mut zone_clashes: BTreeMap<(usize, usize), Vec<&str>> = BTreeMap::new();
    let mut placement = Placement {
        pool_of: Vec::with_capacity(nodes.len()),
        zone_of: Vec::with_capacity(nodes.len()),
        conflicts: Vec::new(),
    };
    for node in nodes {
        let pools = spec.gpu_pools.iter().map(|p| &p.node_selector);
        placement
            .pool_of
            .push(owner(pools, node, &mut pool_clashes));
        let zones = spec.cooling_zones.iter().map(|z| &z.node_selector);
        placement
            .zone_of
            .push(owner(zones, node, &mut zone_clashes));
    }
    for ((first, second), names) in pool_clashes {
        placement.conflicts.push(clash(
            &names,
            &pool_path(first),
            &spec.gpu_pools[first].name,
            &pool_path(second),
            &spec.gpu_pools[second].name,
            "pools",
        ));
    }
    for ((first, second), names) in zone_clashes {
        placement.conflicts.push(clash(
            &names,
            &zone_path(first),
            &spec.cooling_zones[first].name,
            &zone_path(second),
            &spec.cooling_zones[second].name,
            "cooling zones",
        ));
    }
    placement
}

fn owner<'a, 'n>(
    selectors: impl Iterator<Item = &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    node: &'n NodeInfo,
    clashes: &mut BTreeMap<(usize, usize), Vec<&'n str>>,
) -> Option<usize> {
    let mut found: Option<usize> = None;
    let mut clashed = false;
    for (index, selector) in selectors.enumerate() {
        if selector::matches(selector, &node.labels) {
            match found {
                None => found = Some(index),
                Some(first) => {
                    clashes.entry((first, index)).or_default().push(&node.name);
                    clashed = true;
                }
            }
        }
    }
    if clashed { None } else { found }
}

fn clash(
    names: &[&str],
    first_path: &str,
    first: &str,
    second_path: &str,
    second: &str,
    what: &str,
) -> Diagnostic {
    let examples = names
        .iter()
        .take(EXAMPLES)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if names.len() > EXAMPLES {
        format!(" and {} more", names.len() - EXAMPLES)
    } else {
        String::new()
    };
    let subject = if names.len() == 1 {
        format!("node {examples} is")
    } else {
        format!("{} nodes ({examples}{more}) are", names.len())
    };
    Diagnostic::error(
        format!("{second_path}.nodeSelector"),
        format!("{subject} matched by both {first_path} ({first}) and {second_path} ({second}); Kelvin leaves such nodes untouched"),
    )
    .with_fix(format!("make the nodeSelectors of the two {what} disjoint, e.g. add a label only one of them matches"))
}
