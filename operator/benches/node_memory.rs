//! The operator's memory per node, without a cluster: heap bytes (a counting allocator, not RSS)
//! of what it keeps for N production-sized nodes at each stage of its first convergence: the
//! watch cache (each Node slimmed and reduced to the labels of interest on arrival, as
//! `node_cache` does), the snapshot a reconcile takes of it, and the plan (per-node desired
//! state and the node writes of a fresh site). `tests/bench/converge.sh` measures the same
//! process live (RSS, against a real API server); this isolates the data structures, in a second.
//!
//! Run: `cargo bench -p kelvin-operator --bench node_memory [-- NODES…]` (default 1000 10000).

// A program like a main: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::jiff::Timestamp;
use kelvin_core::{label_interest::LabelInterest, observed::Observed, plan::plan};
use kelvin_crds::{load::load_gpu_clusters, sorted_map::Strings};
use kelvin_e2e::GpuNodes;
use kelvin_operator::observe::slim;
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

fn heap_bytes() -> f64 {
    ALLOCATOR.current_usage() as f64
}

/// The spec `tests/bench/converge.sh` generates: two pools of HGX H100 nodes (half each),
/// one zone, labels only.
fn spec(nodes: usize) -> String {
    let half = nodes / 2;
    let budget_mw = nodes as f64 * 10.2 * 1.2 * 1.25 / 1000.0 + 1.0;
    let zone_kw = nodes as f64 * 10.2 * 1.1 + 1.0;
    let pool = |name: &str, count: usize, purpose: &str| {
        format!(
            "  - name: {name}\n    nodeSelector: {{matchLabels: {{bench.kelvin.dev/role: {name}}}}}\n    expectedNodes: {count}\n    accelerator: {{vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}}\n    hostPowerWatts: 4600\n    fabric: ib-{name}\n    devicePlugin: {{managedBy: None}}\n    labels: {{example.com/purpose: {purpose}}}\n"
        )
    };
    let fabric = |name: &str| {
        format!(
            "  - {{name: ib-{name}, type: InfiniBand, linkGbps: 400, railsPerNode: 8, switchRadix: 64, nodesPerLeaf: 32, nvlinkDomainSize: 8}}\n"
        )
    };
    format!(
        "apiVersion: kelvin.dev/v1alpha1\nkind: GpuCluster\nmetadata: {{name: bench}}\nspec:\n  site: {{powerBudgetMW: {budget_mw:.0}, pue: 1.2}}\n  coolingZones:\n  - {{name: hall-a, cooling: Liquid, capacityKW: {zone_kw:.0}, nodeSelector: {{matchLabels: {{kelvin.dev/sku: hgx-h100}}}}}}\n  fabrics:\n{}{}  gpuPools:\n{}{}",
        fabric("train"),
        fabric("infer"),
        pool("train", half, "training"),
        pool("infer", nodes - half, "inference"),
    )
}

fn measure(nodes: usize) {
    let (mut clusters, diagnostics) = load_gpu_clusters("bench.yaml", spec(nodes).as_bytes());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let cluster = clusters.remove(0).0;
    let interest = LabelInterest::of([&cluster.spec]);
    let half = nodes / 2;
    let sets = [
        GpuNodes {
            realistic: true,
            ..GpuNodes::new("train", half).label("bench.kelvin.dev/role", "train")
        },
        GpuNodes {
            realistic: true,
            ..GpuNodes::new("infer", nodes - half).label("bench.kelvin.dev/role", "infer")
        },
    ];

    let base = heap_bytes();
    let mut json_bytes = 0usize;
    // The cache: one node at a time arrives whole and is slimmed; only the slim view stays.
    let mut cache = BTreeMap::new();
    let mut strings = Strings::default();
    for set in &sets {
        for i in 0..set.count {
            let node = set.node(i);
            if i == 0 {
                json_bytes = serde_json::to_vec(&node).unwrap().len();
            }
            let mut info = slim(node);
            interest.reduce(&mut info);
            info.intern(&mut strings);
            cache.insert(info.name.clone(), Arc::new(info));
        }
    }
    let cached = heap_bytes();
    let kept_labels = cache.values().next().map_or(0, |n| n.labels.len());

    // As `NodeCache::snapshot`: the cache's nodes shared, not copied.
    let snapshot: Vec<_> = cache.values().map(Arc::clone).collect();
    let observed = Observed::from_shared(snapshot, Timestamp::UNIX_EPOCH).unwrap();
    let snapshotted = heap_bytes();

    let planned = plan(&cluster, &observed).unwrap();
    assert!(planned.plan.valid, "{:?}", planned.plan.errors);
    assert_eq!(
        planned.rollout.writes.len(),
        nodes,
        "a fresh site: one write per node"
    );
    let planning = heap_bytes();
    drop(planned);
    drop(observed);

    let per_node = |bytes: f64| bytes / nodes as f64;
    println!(
        "{nodes:>6} nodes ({:.1} KB of JSON each, {kept_labels} labels kept): cache {:>6.0} B/node  snapshot {:>5.0} B/node  plan {:>6.0} B/node  total {:>6.0} B/node ({:.2} KiB)",
        json_bytes as f64 / 1000.0,
        per_node(cached - base),
        per_node(snapshotted - cached),
        per_node(planning - snapshotted),
        per_node(planning - base),
        per_node(planning - base) / 1024.0,
    );
    drop(cache);
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.parse().expect("NODES must be a number"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000]
    } else {
        sizes
    };
    for nodes in sizes {
        measure(nodes);
    }
}
