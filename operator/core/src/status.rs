//! Status: one pure function from the plan (analysis, desired state, rollout) and the
//! observed snapshot to `GpuClusterStatus` — conditions with reasons and messages a person can
//! act on, and per pool / zone / fabric figures. The model's reports are converted here, in
//! one place; nothing else keeps a copy.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kelvin_crds::{
    diagnostics::Diagnostic,
    v1alpha1::{
        CoolingZoneStatus, FabricStatus, GpuCluster, GpuClusterStatus, PoolStatus, PowerStatus,
        SummaryStatus, TopologyAwareScheduling, ZoneState,
    },
};
use serde_json::Value;

use crate::{
    constants::{NAMESPACE, POWER_CAP_APPLIED_LABEL, TRANSITION_ANNOTATION},
    desired::{KUEUE_API_VERSION, ObjectKey, VOLCANO_API_VERSION, plugin_name},
    model::{cooling::ZonePlan, fabric::FabricDesign, power::PowerReport},
    observed::Observed,
    plan::Planned,
};

/// How many findings or names a condition message lists before "and N more".
const LISTED: usize = 5;

/// The status of `cluster` after `planned`, as observed in `observed`. Conditions whose status
/// did not change keep their lastTransitionTime from the cluster's current status.
pub fn status(cluster: &GpuCluster, planned: &Planned, observed: &Observed) -> GpuClusterStatus {
    let analysis = &planned.analysis;
    let generation = cluster.metadata.generation;
    let previous = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let condition = |type_: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" };
        let since = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| Time(observed.now), |c| c.last_transition_time.clone());
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            last_transition_time: since,
            observed_generation: generation,
        }
    };

    let pools = pool_statuses(cluster, planned, observed);
    let zones: Vec<CoolingZoneStatus> = analysis
        .zones
        .iter()
        .enumerate()
        .map(|(index, zone)| zone_status(zone, index, planned, observed))
        .collect();
    let mut conditions = Vec::new();

    let errors: Vec<&Diagnostic> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    let valid = errors.is_empty();
    conditions.push(if valid {
        condition(
            "Valid",
            true,
            "SpecValid",
            "the spec passes every schema, CEL and physics rule".into(),
        )
    } else {
        condition(
            "Valid",
            false,
            "SpecInvalid",
            listed(errors.iter().map(|d| d.to_string()), "\n"),
        )
    });
    let caps: Vec<Option<u64>> = analysis
        .zones
        .iter()
        .map(|z| z.gpu_power_cap_watts)
        .collect();
    let live_it_watts = crate::model::power::live_it_watts(
        &cluster.spec,
        observed.nodes(),
        &analysis.placement.pool_of,
        &analysis.placement.zone_of,
        &caps,
    );
    let live = LivePower {
        it_mw: live_it_watts as f64 / 1e6,
        facility_mw: live_it_watts as f64 * cluster.spec.site.pue / 1e6,
    };
    conditions.push(power_condition(&analysis.power, &live, &condition));
    conditions.push(cooling_condition(&analysis.zones, &condition));

    let conflicts = &analysis.node_conflicts;
    let left_alone = analysis.placement.left_alone.iter().filter(|l| **l).count();
    conditions.push(if conflicts.is_empty() {
        condition(
            "NodeConflicts",
            false,
            "NoConflicts",
            "every node is matched by at most one pool and one zone".into(),
        )
    } else {
        condition(
            "NodeConflicts",
            true,
            "NodesLeftAlone",
            format!(
                "{left_alone} {} left alone: {}",
                if left_alone == 1 {
                    "node is"
                } else {
                    "nodes are"
                },
                listed(conflicts.iter().map(|d| d.message.clone()), "; ")
            ),
        )
    });

    let missing_api = missing_scheduling_api(cluster, observed);
    conditions.push(match missing_api {
        Some(api) => condition(
            "SchedulingPolicies",
            false,
            "ApiNotServed",
            format!("{api} is not served: install it, or set spec.scheduling.topologyAwareScheduling to None; everything else still converges"),
        ),
        None => condition("SchedulingPolicies", true, "Applied", "every API the spec's scheduling needs is served".into()),
    });

    let rollout = &planned.rollout;
    let held: u64 = rollout.pools.iter().map(|p| p.held).sum();
    let in_transition: u64 = rollout.pools.iter().map(|p| p.in_transition).sum();
    let objects = planned.plan.objects.len();
    let progressing = valid && (!rollout.is_settled() || objects > 0);
    conditions.push(if progressing {
        condition(
            "Progressing",
            true,
            "Converging",
            format!(
                "{} node writes now, {held} nodes waiting for their pool's maxUnavailable, {in_transition} nodes settling; {objects} objects to apply",
                rollout.writes.len()
            ),
        )
    } else {
        condition("Progressing", false, if valid { "Converged" } else { "SpecInvalid" }, "nothing left to do".into())
    });

    let not_normal: Vec<String> = zones
        .iter()
        .enumerate()
        .filter(|(_, z)| z.state != "Normal")
        .map(|(index, z)| zone_summary(z, zone_budget(index, planned, &pools)))
        .collect();
    let not_ready: Vec<String> = pools
        .iter()
        .filter(|p| p.ready_nodes < p.matched_nodes)
        .map(|p| {
            format!(
                "pool {}: {} of {} NotReady",
                p.name,
                p.matched_nodes - p.ready_nodes,
                crate::model::nodes(p.matched_nodes)
            )
        })
        .collect();
    let degraded: Vec<String> = not_normal.into_iter().chain(not_ready).collect();
    conditions.push(if degraded.is_empty() {
        condition(
            "Degraded",
            false,
            "AllHealthy",
            "every zone is Normal and every matched node Ready".into(),
        )
    } else {
        condition(
            "Degraded",
            true,
            "CapacityReduced",
            listed(degraded.into_iter(), "; "),
        )
    });

    let plugins_pending: Vec<String> = pools
        .iter()
        .filter(|p| p.device_plugin_ready < p.device_plugin_desired)
        .map(|p| {
            format!(
                "pool {}: device plugin {} of {} ready",
                p.name, p.device_plugin_ready, p.device_plugin_desired
            )
        })
        .collect();
    conditions.push(match () {
        _ if !valid => condition(
            "Ready",
            false,
            "SpecInvalid",
            "the spec is invalid; see the Valid condition".into(),
        ),
        _ if progressing => condition(
            "Ready",
            false,
            "Progressing",
            "Kelvin is still converging; see the Progressing condition".into(),
        ),
        _ if !plugins_pending.is_empty() => condition(
            "Ready",
            false,
            "DevicePluginsNotReady",
            listed(plugins_pending.into_iter(), "; "),
        ),
        _ if missing_api.is_some() => condition(
            "Ready",
            false,
            "SchedulingPoliciesMissing",
            "see the SchedulingPolicies condition".into(),
        ),
        _ => condition(
            "Ready",
            true,
            "Converged",
            "every node and object is as the spec asks".into(),
        ),
    });

    GpuClusterStatus {
        observed_generation: generation,
        conditions,
        summary: Some(SummaryStatus {
            pools: u32::try_from(pools.len()).unwrap_or(u32::MAX),
            nodes: pools.iter().map(|p| p.matched_nodes).sum(),
            gpus: pools.iter().map(|p| p.gpus).sum(),
        }),
        power: Some(power_status(&analysis.power, &live)),
        pools,
        cooling_zones: zones,
        fabrics: analysis
            .fabrics
            .iter()
            .flatten()
            .map(fabric_status)
            .collect(),
    }
}

/// `a\nb\nc and 4 more`.
fn listed(items: impl Iterator<Item = String>, separator: &str) -> String {
    let items: Vec<String> = items.collect();
    let mut text = items
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(separator);
    if items.len() > LISTED {
        text.push_str(&format!("{separator}and {} more", items.len() - LISTED));
    }
    text
}

type MakeCondition<'a> = dyn Fn(&str, bool, &str, String) -> Condition + 'a;

/// What the nodes matched now draw, at their zones' caps.
struct LivePower {
    it_mw: f64,
    facility_mw: f64,
}

fn power_condition(
    power: &PowerReport,
    live: &LivePower,
    condition: &MakeCondition<'_>,
) -> Condition {
    let figures = format!(
        "facility load {:.3} MW (IT {:.3} MW) against a budget of {:.3} MW",
        power.facility_mw, power.it_mw, power.budget_mw
    );
    let live_figures = format!(
        "the nodes matched now draw {:.3} MW (IT {:.3} MW at their zones' GPU caps)",
        live.facility_mw, live.it_mw
    );
    if !power.within_budget() {
        condition(
            "PowerWithinBudget",
            false,
            "OverBudget",
            format!("{figures}: see the Valid condition for the fix"),
        )
    } else if live.facility_mw > power.budget_mw {
        condition(
            "PowerWithinBudget",
            false,
            "LiveOverBudget",
            format!(
                "{live_figures}, over the budget of {:.3} MW (more nodes match the pools than expectedNodes): raise expectedNodes and the budget, or narrow the pools' selectors",
                power.budget_mw
            ),
        )
    } else {
        condition(
            "PowerWithinBudget",
            true,
            "WithinBudget",
            format!("{figures}; {live_figures}"),
        )
    }
}

fn cooling_condition(zones: &[ZonePlan], condition: &MakeCondition<'_>) -> Condition {
    let over: Vec<String> = zones
        .iter()
        .filter_map(|z| match z.state {
            ZoneState::Normal if z.headroom_kw < 0.0 => Some(format!(
                "zone {}: heat {:.1} kW exceeds {:.1} kW",
                z.name, z.heat_load_kw, z.capacity_kw
            )),
            _ if z.deficit_kw > 0.0 => Some(format!(
                "zone {}: {:.1} kW over its {:.1} kW until {} more nodes have left service",
                z.name,
                z.deficit_kw,
                z.capacity_kw,
                z.nodes_must_leave.saturating_sub(z.out_of_service)
            )),
            _ => None,
        })
        .collect();
    if !over.is_empty() {
        return condition(
            "CoolingWithinCapacity",
            false,
            "OverCapacity",
            listed(over.into_iter(), "; "),
        );
    }
    let capped: Vec<String> = zones
        .iter()
        .filter_map(|z| {
            Some(format!(
                "zone {}: GPUs capped at {} W",
                z.name, z.gpu_power_cap_watts?
            ))
        })
        .collect();
    if capped.is_empty() {
        condition(
            "CoolingWithinCapacity",
            true,
            "WithinCapacity",
            "every zone holds its heat load".into(),
        )
    } else {
        condition(
            "CoolingWithinCapacity",
            true,
            "PowerCapped",
            listed(capped.into_iter(), "; "),
        )
    }
}

fn missing_scheduling_api(cluster: &GpuCluster, observed: &Observed) -> Option<&'static str> {
    match cluster.spec.scheduling.as_ref()?.topology_aware_scheduling {
        TopologyAwareScheduling::Kueue if !observed.apis.kueue => Some(KUEUE_API_VERSION),
        TopologyAwareScheduling::Volcano if !observed.apis.volcano => Some(VOLCANO_API_VERSION),
        _ => None,
    }
}

fn pool_statuses(cluster: &GpuCluster, planned: &Planned, observed: &Observed) -> Vec<PoolStatus> {
    let analysis = &planned.analysis;
    let mut counts = vec![(0u64, 0u64, 0u64); cluster.spec.gpu_pools.len()];
    for (index, (node, pool)) in observed
        .nodes()
        .iter()
        .zip(&analysis.placement.pool_of)
        .enumerate()
    {
        let Some(pool) = *pool else { continue };
        let labelled = planned
            .nodes
            .get_at(index, &node.name)
            .flatten()
            .is_some_and(|state| state.is_labelled(node));
        let entry = &mut counts[pool];
        entry.0 += u64::from(node.ready);
        entry.1 += u64::from(labelled);
        entry.2 += u64::from(node.annotations.contains_key(TRANSITION_ANNOTATION));
    }
    cluster
        .spec
        .gpu_pools
        .iter()
        .zip(&analysis.pools)
        .zip(counts)
        .map(|((pool, report), (ready, labelled, in_transition))| {
            let (desired, ready_plugins) = daemon_set_counts(observed, &plugin_name(&pool.name));
            PoolStatus {
                name: report.name.clone(),
                matched_nodes: report.nodes,
                expected_nodes: report.expected_nodes,
                ready_nodes: ready,
                labelled_nodes: labelled,
                in_transition,
                max_unavailable: report.max_unavailable,
                gpus: report.gpus,
                allocatable_gpus: report.allocatable_gpus,
                device_plugin_desired: desired,
                device_plugin_ready: ready_plugins,
            }
        })
        .collect()
}

/// (desiredNumberScheduled, numberReady) of Kelvin's DaemonSet `name`, as observed.
fn daemon_set_counts(observed: &Observed, name: &str) -> (u64, u64) {
    use k8s_openapi::{Resource, api::apps::v1::DaemonSet};
    let key = ObjectKey {
        api_version: DaemonSet::API_VERSION.to_owned(),
        kind: DaemonSet::KIND.to_owned(),
        namespace: Some(NAMESPACE.to_owned()),
        name: name.to_owned(),
    };
    let Some(status) = observed.objects.get(&key).and_then(|o| o.get("status")) else {
        return (0, 0);
    };
    let count = |field: &str| status.get(field).and_then(Value::as_u64).unwrap_or(0);
    (count("desiredNumberScheduled"), count("numberReady"))
}

/// The smallest `maxUnavailable` among the pools with nodes in zone `index` (nodes leave it
/// in batches of at most that), 1 when no pool has.
fn zone_budget(index: usize, planned: &Planned, pools: &[PoolStatus]) -> u64 {
    let placement = &planned.analysis.placement;
    let mut in_zone = vec![false; pools.len()];
    for (zone, pool) in placement.zone_of.iter().zip(&placement.pool_of) {
        if let (Some(zone), Some(pool)) = (zone, pool)
            && *zone == index
            && let Some(flag) = in_zone.get_mut(*pool)
        {
            *flag = true;
        }
    }
    pools
        .iter()
        .zip(in_zone)
        .filter(|(_, has)| *has)
        .map(|(p, _)| p.max_unavailable.max(1))
        .min()
        .unwrap_or(1)
}

/// What a zone that is not Normal means now, for the Degraded condition (and its Event): the
/// cap and how many nodes report it, who must leave and how many have, the heat over capacity
/// and how long it is expected to last (batches within the budget, each until its drains are
/// done, at most the drain timeout).
fn zone_summary(zone: &CoolingZoneStatus, budget: u64) -> String {
    let mut text = format!(
        "zone {} is {} (capacity {:.1} kW for {:.1} kW of heat at full power)",
        zone.name, zone.state, zone.capacity_kw, zone.heat_load_kw
    );
    if let Some(cap) = zone.gpu_power_cap_watts {
        text += &format!(
            ": GPUs capped at {cap} W ({:.1} kW in service at the cap), {} of {} report it",
            zone.heat_in_service_kw,
            zone.cap_applied,
            crate::model::nodes(zone.nodes)
        );
    }
    if zone.nodes_must_leave > 0 {
        let left = zone.nodes_must_leave.saturating_sub(zone.out_of_service);
        text += &format!(
            "; {} must leave service, {} out",
            crate::model::nodes(zone.nodes_must_leave),
            zone.out_of_service
        );
        if left > 0 {
            let batches = left.div_ceil(budget);
            text += &format!(
                "; {:.1} kW over capacity until the other {left} leave: {batches} more batch{} of at most {budget}, each until its drains finish (at most {} s)",
                zone.deficit_kw,
                if batches == 1 { "" } else { "es" },
                crate::rollout::DRAIN_TIMEOUT.as_secs()
            );
        }
    }
    text
}

fn zone_status(
    zone: &ZonePlan,
    index: usize,
    planned: &Planned,
    observed: &Observed,
) -> CoolingZoneStatus {
    let cap = zone.gpu_power_cap_watts.map(|w| w.to_string());
    let cap_applied = cap.as_ref().map_or(0, |cap| {
        observed
            .nodes()
            .iter()
            .zip(&planned.analysis.placement.zone_of)
            .filter(|(node, z)| {
                **z == Some(index) && node.labels.get(POWER_CAP_APPLIED_LABEL) == Some(cap)
            })
            .count() as u64
    });
    CoolingZoneStatus {
        name: zone.name.clone(),
        state: match zone.state {
            ZoneState::Normal => "Normal",
            ZoneState::Degraded => "Degraded",
            ZoneState::Maintenance => "Maintenance",
        }
        .to_owned(),
        nodes: zone.nodes,
        heat_load_kw: zone.heat_load_kw,
        capacity_kw: zone.capacity_kw,
        headroom_kw: zone.headroom_kw,
        gpu_power_cap_watts: zone.gpu_power_cap_watts.and_then(|w| u32::try_from(w).ok()),
        cap_applied,
        nodes_must_leave: zone.nodes_must_leave,
        out_of_service: zone.out_of_service,
        heat_in_service_kw: zone.heat_in_service_kw,
        deficit_kw: zone.deficit_kw,
    }
}

fn power_status(power: &PowerReport, live: &LivePower) -> PowerStatus {
    PowerStatus {
        it_mw: power.it_mw,
        facility_mw: power.facility_mw,
        budget_mw: power.budget_mw,
        live_it_mw: live.it_mw,
        live_facility_mw: live.facility_mw,
    }
}

fn fabric_status(design: &FabricDesign) -> FabricStatus {
    FabricStatus {
        name: design.name.clone(),
        nodes: design.nodes,
        tiers: u32::from(design.tiers),
        leaves: design.switches.leaf,
        nvlink_domains: design.nvlink_domains,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shedding_zone_says_how_much_is_over_and_how_many_batches_are_left() {
        // The cooling e2e's zone: 100 HGX H100 (10.2 kW each) Degraded to 546 kW; 12 must leave
        // (88 x 6.2 kW at the 200 W floor fit), 5 are out; 95 x 6.2 kW - 546 kW = 43 kW over.
        let zone = CoolingZoneStatus {
            name: "hall-a-loop-1".into(),
            state: "Degraded".into(),
            nodes: 100,
            heat_load_kw: 1020.0,
            capacity_kw: 546.0,
            headroom_kw: -474.0,
            gpu_power_cap_watts: Some(200),
            cap_applied: 97,
            nodes_must_leave: 12,
            out_of_service: 5,
            heat_in_service_kw: 589.0,
            deficit_kw: 43.0,
        };
        assert_eq!(
            zone_summary(&zone, 5),
            "zone hall-a-loop-1 is Degraded (capacity 546.0 kW for 1020.0 kW of heat at full power): \
             GPUs capped at 200 W (589.0 kW in service at the cap), 97 of 100 nodes report it; 12 nodes must leave service, 5 out; \
             43.0 kW over capacity until the other 7 leave: 2 more batches of at most 5, each until \
             its drains finish (at most 300 s)"
        );
        let all_out = CoolingZoneStatus {
            out_of_service: 12,
            deficit_kw: 0.0,
            ..zone
        };
        assert!(zone_summary(&all_out, 5).ends_with("12 nodes must leave service, 12 out"));
    }
}
