//! The analysis: every rule of DESIGN.md §3 run on a schema-valid spec and an [`Observed`]
//! snapshot (nodes from a cluster, an inventory, or simulated). All findings are reported, not
//! only the first. Each rule lives next to its formula in [`crate::model`]; this ties them.

use std::{collections::BTreeSet, sync::Arc};

use kelvin_crds::{diagnostics::Diagnostic, node::NodeInfo, v1alpha1::GpuClusterSpec};
use serde::Serialize;

use crate::{
    model::{
        cooling::{self, ZonePlan},
        devices,
        fabric::{self, FabricDesign},
        placement::{self, Placement},
        power::{self, PowerReport},
        selector, tenants,
        topology::{self, leaf_group, position},
    },
    observed::Observed,
    rollout::max_unavailable,
};

/// A pool's nodes as found.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolReport {
    /// Pool name.
    pub name: String,
    /// Nodes the selector matches (and no other pool does).
    pub nodes: u64,
    /// spec expectedNodes.
    pub expected_nodes: u64,
    /// Physical GPUs on those nodes.
    pub gpus: u64,
    /// Schedulable GPU shares the device plugin advertises (GPUs x shares per GPU).
    pub allocatable_gpus: u64,
    /// Most nodes the pool may have unavailable at once (maxUnavailable resolved).
    pub max_unavailable: u64,
}

/// Everything the model concluded about a spec and its nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Findings about the spec: errors (nothing is applied) and warnings (the plan acts).
    pub diagnostics: Vec<Diagnostic>,
    /// Node-scoped conflicts (warnings): nodes Kelvin leaves alone. The spec stays valid.
    pub node_conflicts: Vec<Diagnostic>,
    /// Power at design capacity.
    pub power: PowerReport,
    /// Per fabric, in spec order; None where the fabric cannot be built.
    pub fabrics: Vec<Option<FabricDesign>>,
    /// Per fabric, in spec order: the leaf groups observed nodes sit in.
    pub observed_leaf_groups: Vec<BTreeSet<u64>>,
    /// Per cooling zone, in spec order.
    pub zones: Vec<ZonePlan>,
    /// Per pool, in spec order.
    pub pools: Vec<PoolReport>,
    /// Node -> pool and zone.
    pub placement: Placement,
}

impl Analysis {
    /// Whether any finding is an error (the spec is invalid).
    pub fn has_errors(&self) -> bool {
        kelvin_crds::diagnostics::has_errors(&self.diagnostics)
    }
}

/// Runs every rule on `spec` with the nodes of `observed`.
pub fn analyze(spec: &GpuClusterSpec, observed: &Observed) -> Analysis {
    let nodes = observed.nodes();
    let mut diagnostics = Vec::new();
    let power = power::power(spec);
    power::check(spec, &power, &mut diagnostics);
    let fabrics = fabric::check(spec, &mut diagnostics);
    topology::check_label_lengths(spec, &fabrics, &mut diagnostics);
    devices::check(spec, &mut diagnostics);
    tenants::check(spec, &mut diagnostics);
    selector::check_spec(spec, &mut diagnostics);

    let placement = placement::place(spec, nodes);
    let pools = pool_reports(spec, nodes, &placement);
    let zones = cooling::plan(spec, nodes, &placement, &mut diagnostics);
    cooling::check_unzoned(spec, &placement, &mut diagnostics);
    topology::check_positions(spec, nodes, &placement, &mut diagnostics);
    let observed_leaf_groups = leaf_groups(spec, nodes, &placement);
    Analysis {
        diagnostics,
        node_conflicts: placement.conflicts.clone(),
        power,
        fabrics,
        observed_leaf_groups,
        zones,
        pools,
        placement,
    }
}

fn pool_reports(
    spec: &GpuClusterSpec,
    nodes: &[Arc<NodeInfo>],
    placement: &Placement,
) -> Vec<PoolReport> {
    let mut counts = vec![(0u64, 0u64, 0u64); spec.gpu_pools.len()];
    for (node, pool) in nodes.iter().zip(&placement.pool_of) {
        let Some(pool) = *pool else { continue };
        let resource = devices::resource_name(&spec.gpu_pools[pool].accelerator);
        let gpus = node.capacity.get(resource).unwrap_or(0);
        let allocatable = node.allocatable.get(resource).unwrap_or(gpus);
        let entry = &mut counts[pool];
        *entry = (entry.0 + 1, entry.1 + gpus, entry.2 + allocatable);
    }
    spec.gpu_pools
        .iter()
        .zip(counts)
        .map(|(pool, (nodes, gpus, allocatable_gpus))| PoolReport {
            name: pool.name.clone(),
            nodes,
            expected_nodes: u64::from(pool.expected_nodes),
            gpus,
            allocatable_gpus,
            max_unavailable: max_unavailable(&pool.max_unavailable, nodes),
        })
        .collect()
}

fn leaf_groups(
    spec: &GpuClusterSpec,
    nodes: &[Arc<NodeInfo>],
    placement: &Placement,
) -> Vec<BTreeSet<u64>> {
    let mut groups = vec![BTreeSet::new(); spec.fabrics.len()];
    for (node, pool) in nodes.iter().zip(&placement.pool_of) {
        let Some(pool) = pool.and_then(|p| spec.gpu_pools.get(p)) else {
            continue;
        };
        let Some((index, fabric)) = spec
            .fabrics
            .iter()
            .enumerate()
            .find(|(_, f)| f.name == pool.fabric)
        else {
            continue;
        };
        if let Some(position) = position(node, fabric) {
            groups[index].insert(leaf_group(position, fabric));
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::simulate;
    use kelvin_crds::load;

    fn observed(spec: &GpuClusterSpec) -> Observed {
        Observed::new(simulate(spec), "2026-12-01T00:00:00Z".parse().unwrap()).unwrap()
    }

    fn small_with(find: &str, replace: &str) -> GpuClusterSpec {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/small/cluster.yaml"
        ))
        .unwrap();
        assert_eq!(text.matches(find).count(), 1, "{find}");
        let (mut clusters, diagnostics) =
            load::load_gpu_clusters("small.yaml", text.replace(find, replace).as_bytes());
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        clusters.remove(0).0.spec
    }

    fn errors(spec: &GpuClusterSpec) -> Vec<String> {
        analyze(spec, &observed(spec))
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect()
    }

    #[test]
    fn the_small_example_has_no_errors() {
        assert_eq!(
            errors(&small_with("pue: 1.5", "pue: 1.5")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn amd_pools_cannot_time_slice() {
        let spec = small_with(
            "      vendor: nvidia\n      model: L40S-48GB",
            "      vendor: amd\n      model: MI210",
        );
        assert_eq!(
            errors(&spec),
            [
                "spec.gpuPools[1].sharing.strategy: pool l40s-shared: the amd device plugin cannot share GPUs with TimeSlicing"
            ]
        );
    }

    #[test]
    fn a_tenant_quota_larger_than_its_pool_is_an_error() {
        let spec = small_with("gpuQuota: {a100-mig: 32}", "gpuQuota: {a100-mig: 33}");
        assert_eq!(
            errors(&spec),
            [
                "spec.scheduling.tenants[0].gpuQuota.a100-mig: tenant research: quota of 33 GPUs exceeds the 32 GPUs pool a100-mig holds (4 nodes x 8)"
            ]
        );
    }

    #[test]
    fn a_namespace_belongs_to_one_tenant() {
        let spec = small_with("namespaces: [ci, ci-nightly]", "namespaces: [ci, research]");
        assert_eq!(
            errors(&spec),
            [
                "spec.scheduling.tenants[1].namespaces[1]: tenant ci: namespace \"research\" already belongs to tenant research"
            ]
        );
    }

    #[test]
    fn nvlink_domains_span_whole_nodes() {
        let spec = small_with("    nvlinkDomainSize: 4\n", "    nvlinkDomainSize: 6\n");
        assert_eq!(errors(&spec).len(), 1);
        assert!(errors(&spec)[0].starts_with(
            "spec.fabrics[1].nvlinkDomainSize: fabric lab-eth: an NVLink domain spans whole nodes, but 6 GPUs"
        ));
    }

    #[test]
    fn an_overloaded_normal_zone_is_an_error() {
        let spec = small_with("capacityKW: 60 ", "capacityKW: 30 ");
        assert_eq!(
            errors(&spec),
            [
                "spec.coolingZones[0].capacityKW: zone lab-row-1: heat load 36.4 kW of 8 nodes exceeds the zone's 30.0 kW by 6.4 kW"
            ]
        );
    }

    #[test]
    fn a_fabric_that_cannot_be_built_names_itself_and_the_limit() {
        // l40s-shared on lab-eth (radix 32, 16 per leaf, 1 rail): 8,200 nodes make 513 leaf
        // groups, blocks of 16 groups: 33 blocks > 32 ports of a core switch.
        let spec = small_with(
            "    expectedNodes: 4\n    accelerator:\n      vendor: nvidia\n      model: L40S",
            "    expectedNodes: 8200\n    accelerator:\n      vendor: nvidia\n      model: L40S",
        );
        let fabric: Vec<String> = errors(&spec)
            .into_iter()
            .filter(|e| e.starts_with("spec.fabrics"))
            .collect();
        assert_eq!(
            fabric,
            [
                "spec.fabrics[1]: fabric lab-eth: 8200 nodes make 513 leaf groups of 16, 33 spine blocks of 16 leaf groups; a radix-32 core switch has one port per block, so at most 32 blocks (more than three tiers would be needed)"
            ]
        );
    }

    #[test]
    fn long_names_that_make_topology_labels_too_long_are_errors() {
        let long = "a".repeat(60);
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/small/cluster.yaml"
        ))
        .unwrap()
        .replace("lab-eth", &long);
        let (mut clusters, diagnostics) = load::load_gpu_clusters("small.yaml", text.as_bytes());
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let spec = clusters.remove(0).0.spec;
        let found = errors(&spec);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(&format!(
                "spec.fabrics[1].name: fabric {long}: topology label value"
            )),
            "{found:?}"
        );
    }

    #[test]
    fn a_pool_label_kelvin_computes_is_an_error() {
        let spec = small_with(
            "labels: {lab.example.com/purpose: notebooks}",
            "labels: {network.topology.nvidia.com/leaf: rack-7}",
        );
        assert_eq!(
            errors(&spec),
            [
                "spec.gpuPools[0].labels.network.topology.nvidia.com/leaf: pool a100-mig: network.topology.nvidia.com/leaf is a label Kelvin computes (a fabric topology label, from the node's position); two values would compete"
            ]
        );
    }

    #[test]
    fn two_taints_of_one_key_and_effect_are_an_error() {
        let spec = small_with(
            "taints: [{key: lab.example.com/ci, value: \"true\", effect: NoSchedule}]",
            "taints: [{key: lab.example.com/ci, value: \"true\", effect: NoSchedule}, {key: lab.example.com/ci, value: \"false\", effect: NoSchedule}]",
        );
        assert_eq!(
            errors(&spec),
            [
                "spec.gpuPools[1].taints[1]: pool l40s-shared: a second taint with key lab.example.com/ci and effect NoSchedule; a node can carry only one"
            ]
        );
    }
}
