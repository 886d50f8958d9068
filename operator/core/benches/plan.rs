//! Offline plan at 700, 7,000 and 70,000 nodes: wall time and peak memory (VmHWM) of each
//! size, measured in a fresh child process so peaks do not carry over. Two node sources:
//! simulated from expectedNodes, and an inventory file parsed from YAML (the heavier path).
//!
//! Run: `cargo bench -p kelvin-core --bench plan`. Figures go in docs/performance.md.

// A program like a main: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{fmt::Write as _, process::Command, time::Instant};

use peak_alloc::PeakAlloc;

/// Counts live heap bytes and their peak: unlike RSS, not blurred by pages the allocator keeps.
#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

fn heap_peak_mib() -> f64 {
    f64::from(ALLOCATOR.peak_usage_as_mb())
}

use k8s_openapi::jiff::Timestamp;
use kelvin_core::{
    observed::{Observed, simulate},
    plan::plan,
};
use kelvin_crds::{load, node::NodeInfo};

const SIZES: [u64; 3] = [700, 7_000, 70_000];
/// Nodes per pool and fabric: 8,000 x 8 rails = 64,000 endpoints, within three tiers of
/// radix-64 switches (65,536).
const POOL_NODES: u64 = 8_000;

/// A Cortex-like site of `nodes` HGX H100 servers: one pool, fabric and cooling zone per
/// 8,000 nodes.
fn spec(nodes: u64) -> String {
    let pools = nodes.div_ceil(POOL_NODES);
    let mut zones = String::new();
    let mut fabrics = String::new();
    let mut gpu_pools = String::new();
    for index in 0..pools {
        let count = POOL_NODES.min(nodes - index * POOL_NODES);
        let capacity_kw = count as f64 * 10.2 * 1.05;
        let _ = writeln!(
            zones,
            "  - {{name: zone-{index}, cooling: Liquid, capacityKW: {capacity_kw:.0}, nodeSelector: {{matchLabels: {{hall: \"{index}\"}}}}}}"
        );
        let _ = writeln!(
            fabrics,
            "  - {{name: ib-{index}, type: InfiniBand, linkGbps: 400, railsPerNode: 8, switchRadix: 64, nodesPerLeaf: 32, nvlinkDomainSize: 8}}"
        );
        let _ = write!(
            gpu_pools,
            "  - name: pool-{index}\n    nodeSelector: {{matchLabels: {{sku: hgx-h100, hall: \"{index}\"}}}}\n    expectedNodes: {count}\n    accelerator: {{vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}}\n    hostPowerWatts: 4600\n    fabric: ib-{index}\n    taints: [{{key: example.com/dedicated, value: training, effect: NoSchedule}}]\n"
        );
    }
    let budget_mw = nodes as f64 * 10.2 * 1.3 / 1000.0 * 1.1;
    format!(
        "apiVersion: kelvin.dev/v1alpha1\nkind: GpuCluster\nmetadata: {{name: bench}}\nspec:\n  site: {{powerBudgetMW: {budget_mw:.1}, pue: 1.3}}\n  coolingZones:\n{zones}  fabrics:\n{fabrics}  gpuPools:\n{gpu_pools}  scheduling:\n    tenants: [{{name: t, namespaces: [t], gpuQuota: {{pool-0: 1000}}}}]\n    topologyAwareScheduling: Kueue\n"
    )
}

fn inventory(nodes: &[NodeInfo]) -> String {
    let mut out = String::from("apiVersion: kelvin.dev/v1alpha1\nkind: Inventory\nnodes:\n");
    for node in nodes {
        let labels: Vec<String> = node
            .labels
            .iter()
            .map(|(k, v)| format!("{k}: \"{v}\""))
            .collect();
        let _ = writeln!(
            out,
            "- name: {}\n  labels: {{{}}}\n  capacity: {{nvidia.com/gpu: 8}}",
            node.name,
            labels.join(", ")
        );
    }
    out
}

/// CPU time this process has run, in ms (/proc/self/schedstat): unlike wall time, it does not
/// grow when other work shares the machine.
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One measurement, in this process: load the spec, get nodes, plan, print the JSON plan.
fn measure(size: u64, source: &str) {
    let text = spec(size);
    // The inventory is written before the clock starts: reading it is part of the plan.
    let inventory_text = (source == "inventory").then(|| {
        let (mut clusters, _) = load::load_gpu_clusters("bench.yaml", text.as_bytes());
        inventory(&simulate(&clusters.remove(0).0.spec))
    });
    let start = Instant::now();
    let cpu_start = cpu_ms();
    let (mut clusters, diagnostics) = load::load_gpu_clusters("bench.yaml", text.as_bytes());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let cluster = clusters.remove(0).0;
    let nodes = match &inventory_text {
        Some(text) => load::load_inventory("inventory.yaml", text.as_bytes()).unwrap(),
        None => simulate(&cluster.spec),
    };
    let observed = Observed::new(nodes, Timestamp::now()).unwrap();
    let planned = plan(&cluster, &observed).unwrap();
    let json = serde_json::to_string(&planned.plan).unwrap();
    let elapsed = start.elapsed();
    let cpu = cpu_ms() - cpu_start;
    assert!(planned.plan.valid, "{:?}", planned.plan.errors);
    assert_eq!(planned.rollout.writes.len() as u64, size);
    println!(
        "{source:>9} {size:>7} nodes  wall {:>7.1} ms  cpu {:>7.1} ms  peak RSS {:>6.1} MiB  heap {:>6.1} MiB  ({} objects, {} KiB of JSON)",
        elapsed.as_secs_f64() * 1000.0,
        cpu,
        peak_rss_mib(),
        heap_peak_mib(),
        planned.manifests.len(),
        json.len() / 1024
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--one") {
        measure(args[at + 1].parse().unwrap(), &args[at + 2]);
        return;
    }
    let exe = std::env::current_exe().unwrap();
    println!("offline plan: spec load + nodes + plan + JSON, one child process per row");
    for source in ["simulated", "inventory"] {
        for size in SIZES {
            let status = Command::new(&exe)
                .args(["--one", &size.to_string(), source])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
}
