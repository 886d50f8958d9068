//! Properties of the model's arithmetic, checked on random specs (proptest): more nodes never
//! lower power, the fabric's bill of materials follows NVIDIA's DGX SuperPOD tables at every
//! full scalable-unit size, and a rollout never takes more of a pool than its budget.

// Test helpers fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use k8s_openapi::{apimachinery::pkg::util::intstr::IntOrString, jiff::Timestamp};
use kelvin_core::{
    model::{
        fabric::{Cables, Switches, design},
        power::power,
    },
    observed::{Observed, simulate},
    plan::plan,
};
use kelvin_crds::{
    load,
    v1alpha1::{Fabric, GpuCluster},
};
use proptest::prelude::*;

/// `examples/small/cluster.yaml`: two pools, both with disruptive changes (MIG, a taint).
fn small() -> GpuCluster {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/small/cluster.yaml"
    );
    let text = std::fs::read(path).unwrap();
    let (mut clusters, diagnostics) = load::load_gpu_clusters("small.yaml", &text);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    clusters.remove(0).0
}

/// A pool's figures.
#[derive(Clone, Debug)]
struct PoolFigures {
    nodes: u32,
    per_node: u32,
    tdp_watts: u32,
    host_watts: u32,
}

fn pool_figures() -> impl Strategy<Value = PoolFigures> {
    (0u32..20_000, 1u32..=8, 100u32..=1_500, 0u32..=10_000).prop_map(
        |(nodes, per_node, tdp_watts, host_watts)| PoolFigures {
            nodes,
            per_node,
            tdp_watts,
            host_watts,
        },
    )
}

fn with_figures(cluster: &GpuCluster, figures: &[PoolFigures; 2], pue: f64) -> GpuCluster {
    let mut cluster = cluster.clone();
    cluster.spec.site.pue = pue;
    for (pool, figures) in cluster.spec.gpu_pools.iter_mut().zip(figures) {
        pool.expected_nodes = figures.nodes;
        pool.accelerator.per_node = figures.per_node;
        pool.accelerator.tdp_watts = figures.tdp_watts;
        pool.accelerator.min_power_watts = figures.tdp_watts.min(100);
        pool.host_power_watts = figures.host_watts;
    }
    cluster
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn more_nodes_never_lower_power(
        figures in [pool_figures(), pool_figures()],
        more in 1u32..5_000,
        pool in 0usize..2,
        pue in 1.0f64..3.0,
    ) {
        let base = small();
        let before = power(&with_figures(&base, &figures, pue).spec);
        let mut grown = figures.clone();
        grown[pool].nodes += more;
        let after = power(&with_figures(&base, &grown, pue).spec);
        prop_assert!(after.it_watts > before.it_watts, "{} -> {}", before.it_watts, after.it_watts);
        prop_assert!(after.facility_watts >= before.facility_watts);
        prop_assert!(after.it_mw >= before.it_mw && after.facility_mw >= before.facility_mw);
        // IT power is exactly the sum of the pools' node power.
        let exact: u64 = grown.iter().map(|f| {
            u64::from(f.nodes) * (u64::from(f.per_node) * u64::from(f.tdp_watts) + u64::from(f.host_watts))
        }).sum();
        prop_assert_eq!(after.it_watts, exact);
    }
}

/// DGX SuperPOD compute fabric (NVIDIA's reference architecture, Quantum-2 NDR, 64 ports, 8
/// rails, 32 nodes per scalable unit): SUs -> (leaf, spine, core) switches and (node-leaf,
/// leaf-spine, spine-core) cables, as its table lists them.
const SUPERPOD: [(u64, [u64; 3], [u64; 3]); 6] = [
    (2, [16, 8, 0], [512, 512, 0]),
    (4, [32, 16, 0], [1_024, 1_024, 0]),
    (8, [64, 32, 0], [2_048, 2_048, 0]),
    (16, [128, 128, 64], [4_096, 4_096, 4_096]),
    (32, [256, 256, 128], [8_192, 8_192, 8_192]),
    (64, [512, 512, 256], [16_384, 16_384, 16_384]),
];

fn ndr_fabric() -> Fabric {
    let mut fabric = small().spec.fabrics[0].clone();
    fabric.rails_per_node = 8;
    fabric.switch_radix = 64;
    fabric.nodes_per_leaf = 32;
    fabric
}

#[test]
fn the_fabric_bill_of_materials_is_the_superpod_table() {
    for (units, [leaf, spine, core], [node_leaf, leaf_spine, spine_core]) in SUPERPOD {
        let built = design(&ndr_fabric(), units * 32, units * 32).unwrap();
        assert_eq!(
            built.switches,
            Switches { leaf, spine, core },
            "{units} SUs"
        );
        assert_eq!(
            built.cables,
            Cables {
                node_leaf,
                leaf_spine,
                spine_core
            },
            "{units} SUs"
        );
    }
}

proptest! {
    /// Every full-SU size from 2 to 64, not only the table's rows: the table's rules.
    #[test]
    fn every_full_superpod_size_follows_the_tables_rules(units in 2u64..=64) {
        let built = design(&ndr_fabric(), units * 32, units * 32).unwrap();
        let two_tiers = units <= 8;
        prop_assert_eq!(built.tiers, if two_tiers { 2 } else { 3 });
        prop_assert_eq!(built.switches.leaf, 8 * units);
        prop_assert_eq!(built.switches.spine, if two_tiers { 4 * units } else { 8 * units });
        prop_assert_eq!(built.switches.core, if two_tiers { 0 } else { 4 * units });
        prop_assert_eq!(built.cables.node_leaf, 256 * units);
        prop_assert_eq!(built.cables.leaf_spine, 256 * units);
        prop_assert_eq!(built.cables.spine_core, if two_tiers { 0 } else { 256 * units });
    }
}

fn budget() -> impl Strategy<Value = IntOrString> {
    prop_oneof![
        (1i32..=20).prop_map(IntOrString::Int),
        (1u32..=100).prop_map(|p| IntOrString::String(format!("{p}%"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A fresh rollout of both pools' disruptive changes (MIG layout, a NoSchedule taint) with
    /// random nodes NotReady: per pool, NotReady nodes plus the transitions started stay within
    /// maxUnavailable, counted from the nodes and the writes, not from the rollout's own counts.
    #[test]
    fn a_rollout_never_takes_more_of_a_pool_than_its_budget(
        nodes in [1u32..120, 1u32..120],
        budgets in [budget(), budget()],
        not_ready in proptest::collection::vec(any::<bool>(), 240),
    ) {
        let mut cluster = small();
        for (pool, (count, budget)) in cluster.spec.gpu_pools.iter_mut().zip(nodes.iter().zip(&budgets)) {
            pool.expected_nodes = *count;
            pool.max_unavailable = budget.clone();
        }
        // No quotas (a pool of one node holds fewer GPUs than the example's), and the cooling
        // zone holds every node: power is not what this tests.
        cluster.spec.scheduling = None;
        cluster.spec.site.power_budget_mw = 100.0;
        cluster.spec.cooling_zones[0].capacity_kw = 10_000.0;
        let mut simulated = simulate(&cluster.spec);
        for (node, down) in simulated.iter_mut().zip(&not_ready) {
            node.ready = !down;
        }
        let ready: BTreeMap<String, bool> = simulated.iter().map(|n| (n.name.clone(), n.ready)).collect();
        let observed = Observed::new(simulated, Timestamp::UNIX_EPOCH).unwrap();
        let planned = plan(&cluster, &observed).unwrap();
        prop_assert!(planned.plan.valid, "{:?}", planned.plan.errors);
        for (index, pool) in planned.rollout.pools.iter().enumerate() {
            let matched = u64::from(nodes[index]);
            let allowed = kelvin_core::rollout::max_unavailable(&budgets[index], matched);
            prop_assert_eq!(pool.max_unavailable, allowed);
            let pool_nodes = observed
                .nodes()
                .iter()
                .filter(|n| matches!(planned.nodes.get(&n.name), Some(Some(s)) if s.pool == Some(index)))
                .count() as u64;
            let down = observed
                .nodes()
                .iter()
                .filter(|n| !n.ready && matches!(planned.nodes.get(&n.name), Some(Some(s)) if s.pool == Some(index)))
                .count() as u64;
            let started = planned
                .rollout
                .writes
                .iter()
                .filter(|w| w.pool == Some(index) && w.starts.is_some() && ready[&w.node])
                .count() as u64;
            prop_assert_eq!(pool_nodes, matched);
            if started > 0 {
                prop_assert!(down + started <= allowed, "pool {index}: {down} down + {started} started > {allowed}");
            }
            // Progress: with room in the budget and a Ready node to change, something starts.
            if down < allowed && down < pool_nodes {
                prop_assert!(started > 0, "pool {index}: {down} down, {allowed} allowed, nothing started");
            }
        }
    }
}
