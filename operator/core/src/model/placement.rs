//! Which pool and which cooling zone each node belongs to. Conflicts are node-scoped
//! (DESIGN.md §3): a node matched by two pools (or two zones) belongs to neither and Kelvin
//! never touches it, reported naming the nodes and both owners; the spec stays valid, so one
//! mislabelled node of 70,000 does not stop the others.

use std::{collections::BTreeMap, sync::Arc};

use kelvin_crds::{diagnostics::Diagnostic, node::NodeInfo, v1alpha1::GpuClusterSpec};

use super::{pool_path, selector, topology::examples, zone_path};

/// Node -> pool and node -> zone, by index into the spec's lists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    /// Pool of node i, if exactly one pool matches it.
    pub pool_of: Vec<Option<usize>>,
    /// Zone of node i, if exactly one zone matches it.
    pub zone_of: Vec<Option<usize>>,
    /// Whether node i is matched by two pools or two zones: Kelvin leaves it alone.
    pub left_alone: Vec<bool>,
    /// Nodes left alone, one warning per pair of owners.
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

/// Places `nodes` into the spec's pools and zones.
pub fn place(spec: &GpuClusterSpec, nodes: &[Arc<NodeInfo>]) -> Placement {
    let mut pool_clashes: BTreeMap<(usize, usize), Vec<&str>> = BTreeMap::new();
    let mut zone_clashes: BTreeMap<(usize, usize), Vec<&str>> = BTreeMap::new();
    let mut placement = Placement {
        pool_of: Vec::with_capacity(nodes.len()),
        zone_of: Vec::with_capacity(nodes.len()),
        left_alone: Vec::with_capacity(nodes.len()),
        conflicts: Vec::new(),
    };
    for node in nodes {
        let pools = spec.gpu_pools.iter().map(|p| &p.node_selector);
        let pool = owner(pools, node, &mut pool_clashes);
        let zones = spec.cooling_zones.iter().map(|z| &z.node_selector);
        let zone = owner(zones, node, &mut zone_clashes);
        let clashed = pool.is_err() || zone.is_err();
        placement.left_alone.push(clashed);
        placement
            .pool_of
            .push(pool.ok().flatten().filter(|_| !clashed));
        placement
            .zone_of
            .push(zone.ok().flatten().filter(|_| !clashed));
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
) -> Result<Option<usize>, ()> {
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
    if clashed { Err(()) } else { Ok(found) }
}

fn clash(
    names: &[&str],
    first_path: &str,
    first: &str,
    second_path: &str,
    second: &str,
    what: &str,
) -> Diagnostic {
    let subject = if names.len() == 1 {
        format!("node {} is", names[0])
    } else {
        format!("{} nodes ({}) are", names.len(), examples(names))
    };
    Diagnostic::warning(
        format!("{second_path}.nodeSelector"),
        format!("{subject} matched by both {first_path} ({first}) and {second_path} ({second}); Kelvin leaves such nodes untouched"),
    )
    .with_fix(format!("make the nodeSelectors of the two {what} disjoint, e.g. add a label only one of them matches"))
}
