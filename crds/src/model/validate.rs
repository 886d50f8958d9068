//! Every physics and cross-reference rule of the design, run on a schema-valid spec and a set
//! of nodes (from a cluster, an inventory, or simulated). All findings are reported, not only
//! the first.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    cooling::{self, NodeLoad, ZonePlan},
    devices,
    fabric::{self, FabricDesign, FabricError},
    fabric_path,
    nodes::{NodeInfo, position},
    placement::{self, Placement},
    pool_path,
    power::{self, PowerReport},
    selector, zone_path,
};
use crate::{
    diagnostics::Diagnostic,
    v1alpha1::{GpuClusterSpec, GpuPool, SharingStrategy, ZoneState},
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
    /// Most nodes the pool may have disrupted at once.
    pub max_unavailable: u64,
}

/// Everything the model concluded about a spec and its nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
    /// Power at design capacity.
    pub power: PowerReport,
    /// Per fabric, in spec order; None where the fabric cannot be built.
    pub fabrics: Vec<Option<FabricDesign>>,
    /// Per cooling zone, in spec order.
    pub zones: Vec<ZonePlan>,
    /// Per pool, in spec order.
    pub pools: Vec<PoolReport>,
    /// Node -> pool and zone.
    pub placement: Placement,
}

impl Analysis {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        crate::diagnostics::has_errors(&self.diagnostics)
    }
}

/// Resolves `maxUnavailable` against a pool of `nodes` nodes: percentages round down, and at
/// least one node may always be disrupted so that a rollout can make progress.
pub fn max_unavailable(pool: &GpuPool, nodes: u64) -> u64 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let allowed = match &pool.max_unavailable {
        IntOrString::Int(count) => u64::try_from(*count).unwrap_or(0),
        IntOrString::String(text) => match text.strip_suffix('%') {
            Some(percent) => nodes * percent.parse::<u64>().unwrap_or(0).min(100) / 100,
            None => text.parse().unwrap_or(0),
        },
    };
    allowed.max(1)
}

/// Runs every rule on `spec` with `nodes`.
pub fn analyze(spec: &GpuClusterSpec, nodes: &[NodeInfo]) -> Analysis {
    let mut diagnostics = Vec::new();
    let power = power::power(spec);
    check_power(spec, &power, &mut diagnostics);
    let fabrics = check_fabrics(spec, &mut diagnostics);
    check_devices(spec, &mut diagnostics);
    check_tenants(spec, &mut diagnostics);
    check_selectors_and_labels(spec, &mut diagnostics);

    let placement = placement::place(spec, nodes);
    diagnostics.extend(placement.conflicts.iter().cloned());
    let pools = pool_reports(spec, nodes, &placement);
    let zones = plan_cooling(spec, nodes, &placement, &pools, &mut diagnostics);
    check_unzoned(spec, &placement, &mut diagnostics);
    Analysis {
        diagnostics,
        power,
        fabrics,
        zones,
        pools,
        placement,
    }
}

/// Megawatts with enough decimals to see the difference at this scale (kW for small sites).
fn mw(value: f64) -> String {
    if value.abs() < 10.0 {
        format!("{value:.3}")
    } else {
        format!("{value:.2}")
    }
}

/// `value` rounded up at the precision [`mw`] prints, so a suggested budget really fits.
fn mw_up(value: f64) -> String {
    if value.abs() < 10.0 {
        mw((value * 1000.0).ceil() / 1000.0)
    } else {
        mw((value * 100.0).ceil() / 100.0)
    }
}

fn check_power(spec: &GpuClusterSpec, power: &PowerReport, out: &mut Vec<Diagnostic>) {
    if power.within_budget() {
        return;
    }
    let over = power.facility_mw - power.budget_mw;
    let mut fix = format!(
        "raise spec.site.powerBudgetMW to at least {}",
        mw_up(power.facility_mw)
    );
    if let Some((index, pool)) = spec
        .gpu_pools
        .iter()
        .enumerate()
        .max_by_key(|(_, p)| p.expected_nodes)
    {
        let node_mw = power::node_watts(pool) as f64 * spec.site.pue / 1e6;
        if node_mw > 0.0 {
            let fewer = (over / node_mw).ceil() as u64;
            fix.push_str(&format!(
                ", or lower {}.expectedNodes ({}) by {fewer} nodes ({:.1} kW each at the facility)",
                pool_path(index),
                pool.name,
                node_mw * 1000.0
            ));
        }
    }
    out.push(
        Diagnostic::error(
            "spec.site.powerBudgetMW",
            format!(
                "facility load {} MW (IT {} MW x PUE {}) exceeds the budget of {} MW by {} MW",
                mw(power.facility_mw),
                mw(power.it_mw),
                spec.site.pue,
                mw(power.budget_mw),
                mw(over)
            ),
        )
        .with_fix(fix),
    );
}

fn check_fabrics(spec: &GpuClusterSpec, out: &mut Vec<Diagnostic>) -> Vec<Option<FabricDesign>> {
    spec.fabrics
        .iter()
        .enumerate()
        .map(|(index, fabric)| {
            let path = fabric_path(index);
            let mut nodes = 0u64;
            let mut domains = 0u64;
            for (pool_index, pool) in spec.gpu_pools.iter().enumerate().filter(|(_, p)| p.fabric == fabric.name) {
                let per_node = u64::from(pool.accelerator.per_node);
                let size = u64::from(fabric.nvlink_domain_size);
                if size % per_node != 0 {
                    out.push(
                        Diagnostic::error(
                            format!("{path}.nvlinkDomainSize"),
                            format!(
                                "an NVLink domain spans whole nodes, but {size} GPUs is not a multiple of {}.accelerator.perNode {per_node} ({})",
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
            match fabric::design(fabric, nodes, domains) {
                Ok(design) => Some(design),
                Err(error) => {
                    let (field, fix) = match &error {
                        FabricError::TooManyEndpoints { rails, radix, max, .. } => (
                            "",
                            format!(
                                "split the pools on this fabric over more fabrics (radix {radix} holds {} nodes of {rails} rails per fabric), or use switches with a higher radix",
                                max / rails
                            ),
                        ),
                        FabricError::LeafGroupTooLarge { down_ports, .. } => {
                            (".nodesPerLeaf", format!("use at most {down_ports} nodes per leaf group"))
                        }
                        FabricError::NoLeafGroupPerBlock { radix, .. } => {
                            (".railsPerNode", format!("use at most {} rails with radix-{radix} switches", radix / 2))
                        }
                    };
                    out.push(Diagnostic::error(format!("{path}{field}"), error.to_string()).with_fix(fix));
                    None
                }
            }
        })
        .collect()
}

fn check_devices(spec: &GpuClusterSpec, out: &mut Vec<Diagnostic>) {
    use crate::v1alpha1::Vendor;
    for (index, pool) in spec.gpu_pools.iter().enumerate() {
        // What each vendor's device plugin can share (Kelvin configures only these).
        let supported: &[SharingStrategy] = match pool.accelerator.vendor {
            Vendor::Nvidia | Vendor::Custom => &[],
            Vendor::Amd => &[SharingStrategy::Exclusive],
            Vendor::Intel => &[SharingStrategy::Exclusive, SharingStrategy::TimeSlicing],
        };
        if !supported.is_empty() && !supported.contains(&pool.sharing.strategy) {
            out.push(
                Diagnostic::error(
                    format!("{}.sharing.strategy", pool_path(index)),
                    format!(
                        "the {:?} device plugin cannot share GPUs with {:?}",
                        pool.accelerator.vendor, pool.sharing.strategy
                    ),
                )
                .with_fix(format!("use one of {supported:?}")),
            );
        }
        if pool.sharing.strategy != SharingStrategy::Mig {
            continue;
        }
        let Some(profile) = pool.sharing.profile.as_deref() else {
            continue;
        };
        let path = format!("{}.sharing.profile", pool_path(index));
        match devices::mig_profiles(&pool.accelerator.model) {
            None => out.push(
                Diagnostic::error(path, format!("Kelvin knows no MIG profiles for model {:?}", pool.accelerator.model))
                    .with_fix("use a MIG-capable model name such as H100-SXM5-80GB or A100-SXM4-40GB, or another sharing strategy"),
            ),
            Some(profiles) if !profiles.iter().any(|(p, _)| *p == profile) => {
                let known: Vec<&str> = profiles.iter().map(|(p, _)| *p).collect();
                out.push(
                    Diagnostic::error(path, format!("MIG profile {profile:?} does not exist on {}", pool.accelerator.model))
                        .with_fix(format!("use one of {}", known.join(", "))),
                );
            }
            Some(_) => {}
        }
    }
}

fn check_tenants(spec: &GpuClusterSpec, out: &mut Vec<Diagnostic>) {
    let Some(scheduling) = &spec.scheduling else {
        return;
    };
    let mut owner_of_namespace: BTreeMap<&str, usize> = BTreeMap::new();
    let mut quota_by_pool: BTreeMap<&str, u64> = BTreeMap::new();
    for (index, tenant) in scheduling.tenants.iter().enumerate() {
        let path = format!("spec.scheduling.tenants[{index}]");
        for (ns_index, namespace) in tenant.namespaces.iter().enumerate() {
            if let Some(first) = owner_of_namespace.insert(namespace, index)
                && first != index
            {
                out.push(
                    Diagnostic::error(
                        format!("{path}.namespaces[{ns_index}]"),
                        format!(
                            "namespace {namespace:?} already belongs to tenant {}",
                            scheduling.tenants[first].name
                        ),
                    )
                    .with_fix("give each namespace to one tenant"),
                );
            }
        }
        for (pool_name, quota) in &tenant.gpu_quota {
            let Some(pool) = spec.gpu_pools.iter().find(|p| &p.name == pool_name) else {
                continue;
            };
            let held = u64::from(pool.expected_nodes) * u64::from(pool.accelerator.per_node);
            *quota_by_pool.entry(pool_name).or_default() += quota;
            if *quota > held {
                out.push(
                    Diagnostic::error(
                        format!("{path}.gpuQuota.{pool_name}"),
                        format!(
                            "quota of {quota} GPUs exceeds the {held} GPUs pool {pool_name} holds ({} nodes x {})",
                            pool.expected_nodes, pool.accelerator.per_node
                        ),
                    )
                    .with_fix(format!("lower the quota to at most {held}, or grow the pool")),
                );
            }
        }
    }
    for (pool_name, total) in quota_by_pool {
        let Some((index, pool)) = spec
            .gpu_pools
            .iter()
            .enumerate()
            .find(|(_, p)| p.name == pool_name)
        else {
            continue;
        };
        let held = u64::from(pool.expected_nodes) * u64::from(pool.accelerator.per_node);
        if total > held {
            out.push(Diagnostic::warning(
                pool_path(index),
                format!("tenants' quotas on pool {pool_name} add up to {total} GPUs, more than the {held} it holds: tenants compete for the difference"),
            ));
        }
    }
}

fn check_selectors_and_labels(spec: &GpuClusterSpec, out: &mut Vec<Diagnostic>) {
    for (index, pool) in spec.gpu_pools.iter().enumerate() {
        let path = pool_path(index);
        out.extend(selector::check(
            &pool.node_selector,
            &format!("{path}.nodeSelector"),
        ));
        if pool
            .node_selector
            .match_labels
            .as_ref()
            .is_none_or(|l| l.is_empty())
            && pool
                .node_selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty())
        {
            out.push(
                Diagnostic::error(format!("{path}.nodeSelector"), "an empty selector matches every node in the cluster")
                    .with_fix("select the pool's nodes by a label, e.g. matchLabels: {kelvin.dev/sku: hgx-h100}"),
            );
        }
        for (key, value) in &pool.labels {
            let at = format!("{path}.labels.{key}");
            if key.starts_with("kelvin.dev/") {
                out.push(
                    Diagnostic::error(
                        &at,
                        "the kelvin.dev/ prefix is reserved for labels Kelvin computes",
                    )
                    .with_fix("use another prefix"),
                );
            } else if !crate::names::is_label_key(key) {
                out.push(Diagnostic::error(&at, "not a valid label key").with_fix("use [prefix/]name: name up to 63 alphanumerics, '-', '_' or '.', prefix a DNS subdomain"));
            }
            if !crate::names::is_label_value(value) {
                out.push(Diagnostic::error(&at, format!("{value:?} is not a valid label value")).with_fix("use up to 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"));
            }
        }
    }
    for (index, zone) in spec.cooling_zones.iter().enumerate() {
        out.extend(selector::check(
            &zone.node_selector,
            &format!("{}.nodeSelector", zone_path(index)),
        ));
    }
}

fn pool_reports(
    spec: &GpuClusterSpec,
    nodes: &[NodeInfo],
    placement: &Placement,
) -> Vec<PoolReport> {
    let mut counts = vec![(0u64, 0u64, 0u64); spec.gpu_pools.len()];
    for (node, pool) in nodes.iter().zip(&placement.pool_of) {
        let Some(pool) = *pool else { continue };
        let resource = devices::resource_name(&spec.gpu_pools[pool].accelerator);
        let gpus = node.capacity.get(resource).copied().unwrap_or(0);
        let allocatable = node.allocatable.get(resource).copied().unwrap_or(gpus);
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
            max_unavailable: max_unavailable(pool, nodes),
        })
        .collect()
}

fn plan_cooling(
    spec: &GpuClusterSpec,
    nodes: &[NodeInfo],
    placement: &Placement,
    pools: &[PoolReport],
    out: &mut Vec<Diagnostic>,
) -> Vec<ZonePlan> {
    let mut loads_by_zone: Vec<Vec<NodeLoad>> = vec![Vec::new(); spec.cooling_zones.len()];
    for (index, (pool, zone)) in placement.pool_of.iter().zip(&placement.zone_of).enumerate() {
        let (Some(pool), Some(zone)) = (*pool, *zone) else {
            continue;
        };
        let spec_pool = &spec.gpu_pools[pool];
        loads_by_zone[zone].push(NodeLoad {
            node: index,
            pool,
            host_watts: u64::from(spec_pool.host_power_watts),
            gpus: u64::from(spec_pool.accelerator.per_node),
            tdp_watts: u64::from(spec_pool.accelerator.tdp_watts),
            min_power_watts: u64::from(spec_pool.accelerator.min_power_watts),
        });
    }
    let mut budgets: Vec<u64> = pools.iter().map(|p| p.max_unavailable).collect();
    spec.cooling_zones
        .iter()
        .enumerate()
        .zip(loads_by_zone)
        .map(|((index, zone), mut loads)| {
            // Nodes leave from the highest position down (then by name): stable and explainable.
            loads.sort_by_cached_key(|load| {
                let node = &nodes[load.node];
                let fabric = spec.fabrics.iter().find(|f| f.name == spec.gpu_pools[load.pool].fabric);
                (fabric.and_then(|f| position(node, f)), node.name.clone())
            });
            let plan = cooling::plan_zone(zone, &loads, &mut budgets);
            let path = zone_path(index);
            match zone.state {
                ZoneState::Normal if plan.headroom_kw < 0.0 => out.push(
                    Diagnostic::error(
                        format!("{path}.capacityKW"),
                        format!(
                            "heat load {:.1} kW of {} nodes exceeds the zone's {:.1} kW by {:.1} kW",
                            plan.heat_load_kw, plan.nodes, plan.capacity_kw, -plan.headroom_kw
                        ),
                    )
                    .with_fix("raise capacityKW, move nodes to another zone, or plan fewer nodes for this zone"),
                ),
                ZoneState::Normal => {}
                ZoneState::Degraded | ZoneState::Maintenance => out.push(zone_warning(&path, &plan)),
            }
            plan
        })
        .collect()
}

fn zone_warning(path: &str, plan: &ZonePlan) -> Diagnostic {
    let mut message = match plan.state {
        ZoneState::Maintenance => format!("in Maintenance: all {} nodes leave service", plan.nodes),
        _ => format!(
            "Degraded to {:.1} kW for a heat load of {:.1} kW",
            plan.capacity_kw, plan.heat_load_kw
        ),
    };
    if let Some(cap) = plan.gpu_power_cap_watts {
        message.push_str(&format!("; GPUs capped at {cap} W"));
    }
    if plan.nodes_must_leave > 0 && plan.state != ZoneState::Maintenance {
        message.push_str(&format!(
            "; {} nodes must leave service",
            plan.nodes_must_leave
        ));
    }
    if plan.nodes_must_leave > 0 {
        message.push_str(&format!(
            ", {} now (maxUnavailable)",
            plan.nodes_out_of_service
        ));
    }
    if plan.deficit_kw > 0.0 {
        message.push_str(&format!(
            "; {:.1} kW still over capacity until more nodes may leave",
            plan.deficit_kw
        ));
    }
    Diagnostic::warning(format!("{path}.state"), message)
}

fn check_unzoned(spec: &GpuClusterSpec, placement: &Placement, out: &mut Vec<Diagnostic>) {
    if spec.cooling_zones.is_empty() {
        return;
    }
    let mut unzoned: BTreeMap<usize, u64> = BTreeMap::new();
    for (pool, zone) in placement.pool_of.iter().zip(&placement.zone_of) {
        if let (Some(pool), None) = (pool, zone) {
            *unzoned.entry(*pool).or_default() += 1;
        }
    }
    for (pool, count) in unzoned {
        out.push(
            Diagnostic::warning(
                pool_path(pool),
                format!(
                    "{count} nodes of pool {} are in no cooling zone; their heat is not accounted for",
                    spec.gpu_pools[pool].name
                ),
            )
            .with_fix("add a cooling zone whose nodeSelector matches them"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load;

    fn small_with(find: &str, replace: &str) -> GpuClusterSpec {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/small/cluster.yaml"
        ))
        .unwrap();
        assert_eq!(text.matches(find).count(), 1, "{find}");
        let (mut clusters, diagnostics) =
            load::load_gpu_clusters("small.yaml", text.replace(find, replace).as_bytes());
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        clusters.remove(0).0.spec
    }

    fn errors(spec: &GpuClusterSpec) -> Vec<String> {
        let nodes = crate::model::nodes::simulate(spec);
        analyze(spec, &nodes)
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
                "spec.gpuPools[1].sharing.strategy: the Amd device plugin cannot share GPUs with TimeSlicing"
            ]
        );
    }

    #[test]
    fn a_tenant_quota_larger_than_its_pool_is_an_error() {
        let spec = small_with("gpuQuota: {a100-mig: 32}", "gpuQuota: {a100-mig: 33}");
        assert_eq!(
            errors(&spec),
            [
                "spec.scheduling.tenants[0].gpuQuota.a100-mig: quota of 33 GPUs exceeds the 32 GPUs pool a100-mig holds (4 nodes x 8)"
            ]
        );
    }

    #[test]
    fn a_namespace_belongs_to_one_tenant() {
        let spec = small_with("namespaces: [ci, ci-nightly]", "namespaces: [ci, research]");
        assert_eq!(
            errors(&spec),
            [
                "spec.scheduling.tenants[1].namespaces[1]: namespace \"research\" already belongs to tenant research"
            ]
        );
    }

    #[test]
    fn nvlink_domains_span_whole_nodes() {
        let spec = small_with("    nvlinkDomainSize: 4\n", "    nvlinkDomainSize: 6\n");
        assert_eq!(errors(&spec).len(), 1);
        assert!(errors(&spec)[0].starts_with(
            "spec.fabrics[1].nvlinkDomainSize: an NVLink domain spans whole nodes, but 6 GPUs"
        ));
    }

    #[test]
    fn an_overloaded_normal_zone_is_an_error() {
        let spec = small_with("capacityKW: 60 ", "capacityKW: 30 ");
        assert_eq!(
            errors(&spec),
            [
                "spec.coolingZones[0].capacityKW: heat load 36.4 kW of 8 nodes exceeds the zone's 30.0 kW by 6.4 kW"
            ]
        );
    }
}
