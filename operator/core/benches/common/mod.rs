//! What the benchmark programs share: the generated spec and the process's own figures.

// Each bench uses part of this module.
#![allow(dead_code)]

use std::fmt::Write as _;

/// Nodes per pool and fabric: 8,000 x 8 rails = 64,000 endpoints, within three tiers of
/// radix-64 switches (65,536).
const POOL_NODES: u64 = 8_000;

/// A Cortex-like site of `nodes` HGX H100 servers: one pool, fabric and cooling zone per
/// 8,000 nodes.
pub fn spec(nodes: u64) -> String {
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

/// CPU time this process has run, in ms (/proc/self/schedstat): unlike wall time, it does not
/// grow when other work shares the machine.
pub fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}

pub fn peak_rss_mib() -> f64 {
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
