//! Cooling: a zone's heat load is the IT power of its nodes. Normal zones must hold it (a design
//! error otherwise). A Degraded zone gets a GPU power cap that fits, (degradedCapacity - host
//! power) / GPUs, and where that cap would fall below the parts' minimum, nodes must leave
//! service; a Maintenance zone takes all its nodes out of service. How many leave *at once* is
//! the rollout's business (each pool's disruption budget); the zone plan says which nodes and
//! in what order, and what is still over capacity while nodes in service remain.

use std::{collections::BTreeMap, sync::Arc};

use kelvin_crds::{
    diagnostics::Diagnostic,
    node::NodeInfo,
    v1alpha1::{CoolingZone, GpuClusterSpec, ZoneState},
};
use serde::Serialize;

use super::{placement::Placement, pool_path, topology::position, zone_path};
use crate::constants::OUT_OF_SERVICE_TAINT;

/// One node's electrical figures, in watts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeLoad {
    /// Index of the node in the node list.
    pub node: usize,
    /// Host power (everything but the GPUs).
    pub host_watts: u64,
    /// GPUs in the node.
    pub gpus: u64,
    /// Per-GPU TDP.
    pub tdp_watts: u64,
    /// Per-GPU lowest power cap.
    pub min_power_watts: u64,
    /// Whether the node already carries Kelvin's out-of-service taint (draws nothing Kelvin
    /// counts: its workloads are gone or going).
    pub out_of_service: bool,
}

impl NodeLoad {
    fn full(&self) -> u64 {
        self.host_watts + self.gpus * self.tdp_watts
    }
    fn at_cap(&self, cap: u64) -> u64 {
        self.host_watts + self.gpus * cap.min(self.tdp_watts)
    }
}

/// What the plan does about one zone.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZonePlan {
    /// Zone name.
    pub name: String,
    /// Operating state.
    pub state: ZoneState,
    /// Nodes in the zone.
    pub nodes: u64,
    /// IT power of the zone's nodes at full GPU power, in kW.
    #[serde(rename = "heatLoadKW")]
    pub heat_load_kw: f64,
    /// Capacity in the current state, in kW (0 in Maintenance).
    #[serde(rename = "capacityKW")]
    pub capacity_kw: f64,
    /// capacityKW - heatLoadKW.
    #[serde(rename = "headroomKW")]
    pub headroom_kw: f64,
    /// GPU power cap that makes the load fit (Degraded zones, when one is needed).
    pub gpu_power_cap_watts: Option<u64>,
    /// Nodes that must leave service for the load to fit.
    pub nodes_must_leave: u64,
    /// Nodes that already carry the out-of-service taint.
    pub out_of_service: u64,
    /// Heat, in kW, over capacity while the nodes that must leave are still in service.
    #[serde(rename = "deficitKW")]
    pub deficit_kw: f64,
    /// Indices of the nodes that must leave service, the first to leave first (highest
    /// fabric position first).
    #[serde(skip)]
    pub leaving: Vec<usize>,
    /// Heat of the nodes still in service, at the cap (full power without one), in kW: what
    /// the zone must reject now, against `capacity_kw`.
    #[serde(skip)]
    pub heat_in_service_kw: f64,
}

/// Plans `zone` for `loads`: its nodes, in the order they should stay in service (nodes leave
/// from the back).
pub fn plan_zone(zone: &CoolingZone, loads: &[NodeLoad]) -> ZonePlan {
    let full: u64 = loads.iter().map(NodeLoad::full).sum();
    let capacity_watts = match zone.state {
        ZoneState::Normal => zone.capacity_kw * 1000.0,
        ZoneState::Degraded => zone.degraded_capacity_kw.unwrap_or(0.0) * 1000.0,
        ZoneState::Maintenance => 0.0,
    };
    let mut plan = ZonePlan {
        name: zone.name.clone(),
        state: zone.state,
        nodes: loads.len() as u64,
        heat_load_kw: full as f64 / 1000.0,
        capacity_kw: capacity_watts / 1000.0,
        headroom_kw: (capacity_watts - full as f64) / 1000.0,
        gpu_power_cap_watts: None,
        nodes_must_leave: 0,
        out_of_service: loads.iter().filter(|l| l.out_of_service).count() as u64,
        deficit_kw: 0.0,
        leaving: Vec::new(),
        heat_in_service_kw: loads
            .iter()
            .filter(|l| !l.out_of_service)
            .map(NodeLoad::full)
            .sum::<u64>() as f64
            / 1000.0,
    };
    let fits = full as f64 <= capacity_watts;
    if zone.state == ZoneState::Normal || (zone.state == ZoneState::Degraded && fits) {
        return plan;
    }
    // The lowest cap every part in the zone accepts.
    let floor = loads.iter().map(|l| l.min_power_watts).max().unwrap_or(0);
    let must_stay = if zone.state == ZoneState::Maintenance {
        0
    } else {
        // Keep the longest prefix that fits at the floor cap.
        let mut kept_watts = 0u64;
        loads
            .iter()
            .take_while(|l| {
                kept_watts += l.at_cap(floor);
                kept_watts as f64 <= capacity_watts
            })
            .count()
    };
    let (staying, leaving) = loads.split_at(must_stay);
    plan.nodes_must_leave = leaving.len() as u64;
    plan.leaving = leaving.iter().rev().map(|l| l.node).collect();
    if zone.state == ZoneState::Degraded {
        // The cap the nodes that stay can run at; the leaving ones get it too while they go.
        let host: u64 = staying.iter().map(|l| l.host_watts).sum();
        let gpus: u64 = staying.iter().map(|l| l.gpus).sum();
        let tdp = loads.iter().map(|l| l.tdp_watts).max().unwrap_or(0);
        let fitting = if gpus == 0 {
            floor
        } else {
            ((capacity_watts - host as f64).max(0.0) / gpus as f64).floor() as u64
        };
        plan.gpu_power_cap_watts = Some(fitting.clamp(floor, tdp.max(floor)));
    }
    // Degraded: nodes in service run at the cap. Maintenance sets no cap: full power.
    let cap = match zone.state {
        ZoneState::Maintenance => u64::MAX,
        _ => plan.gpu_power_cap_watts.unwrap_or(floor),
    };
    let in_service: u64 = loads
        .iter()
        .filter(|l| !l.out_of_service)
        .map(|l| l.at_cap(cap))
        .sum();
    plan.heat_in_service_kw = in_service as f64 / 1000.0;
    plan.deficit_kw = ((in_service as f64 - capacity_watts) / 1000.0).max(0.0);
    plan
}

/// Plans every zone for the nodes placed in it, and reports overloaded Normal zones (errors)
/// and Degraded / Maintenance zones (warnings: the plan acts on them).
pub fn plan(
    spec: &GpuClusterSpec,
    nodes: &[Arc<NodeInfo>],
    placement: &Placement,
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
            host_watts: u64::from(spec_pool.host_power_watts),
            gpus: u64::from(spec_pool.accelerator.per_node),
            tdp_watts: u64::from(spec_pool.accelerator.tdp_watts),
            min_power_watts: u64::from(spec_pool.accelerator.min_power_watts),
            out_of_service: nodes[index]
                .taints
                .iter()
                .any(|t| t.key == OUT_OF_SERVICE_TAINT),
        });
    }
    spec.cooling_zones
        .iter()
        .enumerate()
        .zip(loads_by_zone)
        .map(|((index, zone), mut loads)| {
            // Nodes leave from the highest position down (then by name: node indices follow
            // names): whole leaf groups go together, so gangs keep intact leaves.
            loads.sort_by_cached_key(|load| {
                let fabric = placement.pool_of[load.node]
                    .and_then(|p| spec.fabrics.iter().find(|f| f.name == spec.gpu_pools[p].fabric));
                (fabric.and_then(|f| position(&nodes[load.node], f)), load.node)
            });
            let plan = plan_zone(zone, &loads);
            let path = zone_path(index);
            match zone.state {
                ZoneState::Normal if plan.headroom_kw < 0.0 => out.push(
                    Diagnostic::error(
                        format!("{path}.capacityKW"),
                        format!(
                            "zone {}: heat load {:.1} kW of {} exceeds the zone's {:.1} kW by {:.1} kW",
                            zone.name, plan.heat_load_kw, super::nodes(plan.nodes), plan.capacity_kw, -plan.headroom_kw
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
        ZoneState::Maintenance => format!(
            "zone {} is in Maintenance: {} leave service",
            plan.name,
            match plan.nodes {
                1 => "its 1 node".to_owned(),
                n => format!("all {n} nodes"),
            }
        ),
        _ => format!(
            "zone {} is Degraded to {:.1} kW for a heat load of {:.1} kW",
            plan.name, plan.capacity_kw, plan.heat_load_kw
        ),
    };
    if let Some(cap) = plan.gpu_power_cap_watts {
        message.push_str(&format!("; GPUs capped at {cap} W"));
    }
    if plan.nodes_must_leave > 0 && plan.state != ZoneState::Maintenance {
        message.push_str(&format!(
            "; {} must leave service",
            super::nodes(plan.nodes_must_leave)
        ));
    }
    if plan.nodes_must_leave > 0 {
        message.push_str(", in batches within each pool's maxUnavailable");
    }
    if plan.deficit_kw > 0.0 {
        message.push_str(&format!(
            "; {:.1} kW over capacity until they have left",
            plan.deficit_kw
        ));
    }
    Diagnostic::warning(format!("{path}.state"), message)
}

/// Pools with nodes in no cooling zone: their heat is not accounted for.
pub fn check_unzoned(spec: &GpuClusterSpec, placement: &Placement, out: &mut Vec<Diagnostic>) {
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
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use super::*;
    use kelvin_crds::v1alpha1::CoolingKind;

    fn zone(state: ZoneState, capacity_kw: f64, degraded_kw: Option<f64>) -> CoolingZone {
        CoolingZone {
            name: "loop".into(),
            cooling: CoolingKind::Liquid,
            capacity_kw,
            state,
            degraded_capacity_kw: degraded_kw,
            node_selector: LabelSelector::default(),
        }
    }

    /// HGX H100: 8 x 700 W GPUs (200 W minimum cap) and 4.6 kW of host.
    fn hgx(count: usize) -> Vec<NodeLoad> {
        (0..count)
            .map(|node| NodeLoad {
                node,
                host_watts: 4600,
                gpus: 8,
                tdp_watts: 700,
                min_power_watts: 200,
                out_of_service: false,
            })
            .collect()
    }

    #[test]
    fn a_normal_zone_only_reports_its_headroom() {
        let plan = plan_zone(&zone(ZoneState::Normal, 120.0, None), &hgx(10));
        assert_eq!(plan.heat_load_kw, 102.0);
        assert_eq!(plan.headroom_kw, 18.0);
        assert_eq!((plan.gpu_power_cap_watts, plan.nodes_must_leave), (None, 0));
    }

    #[test]
    fn a_degraded_zone_caps_gpu_power_to_fit() {
        // 10 nodes: host 46 kW, 80 GPUs. 80 kW of cooling leaves 34 kW: 425 W per GPU.
        let plan = plan_zone(&zone(ZoneState::Degraded, 120.0, Some(80.0)), &hgx(10));
        assert_eq!(plan.gpu_power_cap_watts, Some(425));
        assert_eq!((plan.nodes_must_leave, plan.deficit_kw), (0, 0.0));
    }

    #[test]
    fn below_the_minimum_cap_nodes_leave_from_the_back() {
        // At the 200 W floor a node draws 6.2 kW; 40 kW holds 6 nodes (37.2 kW), so 4 leave.
        // While all 10 are in service at 200 W they draw 62 kW: 22 kW over.
        let plan = plan_zone(&zone(ZoneState::Degraded, 120.0, Some(40.0)), &hgx(10));
        assert_eq!(plan.nodes_must_leave, 4);
        assert_eq!(plan.leaving, vec![9, 8, 7, 6]);
        // The 6 that stay: host 27.6 kW, 48 GPUs, (40 - 27.6) kW / 48 = 258 W.
        assert_eq!(plan.gpu_power_cap_watts, Some(258));
        // 10 nodes x (4.6 kW + 8 x 258 W) = 66.64 kW in service: 26.64 kW over.
        assert!(
            (plan.deficit_kw - 26.64).abs() < 1e-9,
            "{}",
            plan.deficit_kw
        );
    }

    #[test]
    fn the_deficit_shrinks_as_nodes_leave() {
        // As above, with the 4 leaving nodes already out: 6 x 6.664 kW = 39.984 kW <= 40 kW.
        let mut loads = hgx(10);
        for load in &mut loads[6..] {
            load.out_of_service = true;
        }
        let plan = plan_zone(&zone(ZoneState::Degraded, 120.0, Some(40.0)), &loads);
        assert_eq!((plan.nodes_must_leave, plan.out_of_service), (4, 4));
        assert_eq!(plan.deficit_kw, 0.0);
    }

    #[test]
    fn maintenance_takes_every_node_out_at_full_power_until_they_leave() {
        // 4 nodes at 10.2 kW with no cooling: 40.8 kW over until they are out.
        let mut loads = hgx(4);
        let plan = plan_zone(&zone(ZoneState::Maintenance, 120.0, None), &loads);
        assert_eq!((plan.nodes_must_leave, plan.gpu_power_cap_watts), (4, None));
        assert_eq!(plan.leaving, vec![3, 2, 1, 0]);
        assert!((plan.deficit_kw - 40.8).abs() < 1e-9, "{}", plan.deficit_kw);
        // One left: 3 x 10.2 kW = 30.6 kW.
        loads[3].out_of_service = true;
        let plan = plan_zone(&zone(ZoneState::Maintenance, 120.0, None), &loads);
        assert!((plan.deficit_kw - 30.6).abs() < 1e-9, "{}", plan.deficit_kw);
    }
}
