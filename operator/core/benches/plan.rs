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

mod common;
use common::spec;

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

use common::{cpu_ms, peak_rss_mib};

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
