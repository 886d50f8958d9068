//! Cooling: a zone's heat load is the IT power of its nodes. Normal zones must hold it. A
//! Degraded zone gets a GPU power cap that fits, (degradedCapacity - host power) / GPUs, and
//! where that cap would fall below the parts' minimum, nodes leave service; a Maintenance zone
//! takes all its nodes out of service. Nodes leave at most `maxUnavailable` of a pool at a
//! time; what still does not fit is a deficit.

use serde::Serialize;

use crate::v1alpha1::{CoolingZone, ZoneState};

/// One node's electrical figures, in watts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeLoad {
    /// Index of the node in the node list.
    pub node: usize,
    /// Index of its pool (for the pool's disruption budget).
    pub pool: usize,
    /// Host power (everything but the GPUs).
    pub host_watts: u64,
    /// GPUs in the node.
    pub gpus: u64,
    /// Per-GPU TDP.
    pub tdp_watts: u64,
    /// Per-GPU lowest power cap.
    pub min_power_watts: u64,
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
    /// Nodes taken out of service by this plan (bounded by the pools' maxUnavailable).
    pub nodes_out_of_service: u64,
    /// Heat, in kW, still over capacity after this plan's step.
    #[serde(rename = "deficitKW")]
    pub deficit_kw: f64,
    /// Indices of the nodes this plan takes out of service.
    #[serde(skip)]
    pub leaving: Vec<usize>,
}

/// Plans `zone` for `loads` (its nodes, in the order they should stay in service: nodes leave
/// from the back). `budgets[pool]` is how many more nodes of each pool may leave; it is spent.
pub fn plan_zone(zone: &CoolingZone, loads: &[NodeLoad], budgets: &mut [u64]) -> ZonePlan {
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
        nodes_out_of_service: 0,
        deficit_kw: 0.0,
        leaving: Vec::new(),
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
    plan.nodes_must_leave = (loads.len() - must_stay) as u64;
    let mut in_service: Vec<&NodeLoad> = loads[..must_stay].iter().collect();
    for load in loads[must_stay..].iter().rev() {
        match budgets.get_mut(load.pool) {
            Some(budget) if *budget > 0 => {
                *budget -= 1;
                plan.leaving.push(load.node);
            }
            _ => in_service.push(load),
        }
    }
    plan.nodes_out_of_service = plan.leaving.len() as u64;
    if zone.state == ZoneState::Degraded {
        let host: u64 = in_service.iter().map(|l| l.host_watts).sum();
        let gpus: u64 = in_service.iter().map(|l| l.gpus).sum();
        let tdp = in_service.iter().map(|l| l.tdp_watts).max().unwrap_or(0);
        let fitting = if gpus == 0 {
            tdp
        } else {
            ((capacity_watts - host as f64).max(0.0) / gpus as f64).floor() as u64
        };
        plan.gpu_power_cap_watts = Some(fitting.clamp(floor, tdp.max(floor)));
    }
    // Degraded: nodes still in service run at the cap. Maintenance sets no cap: full power.
    let cap = match zone.state {
        ZoneState::Maintenance => u64::MAX,
        _ => plan.gpu_power_cap_watts.unwrap_or(floor),
    };
    let remaining: u64 = in_service.iter().map(|l| l.at_cap(cap)).sum();
    plan.deficit_kw = ((remaining as f64 - capacity_watts) / 1000.0).max(0.0);
    plan
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use super::*;
    use crate::v1alpha1::CoolingKind;

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
                pool: 0,
                host_watts: 4600,
                gpus: 8,
                tdp_watts: 700,
                min_power_watts: 200,
            })
            .collect()
    }

    #[test]
    fn a_normal_zone_only_reports_its_headroom() {
        let plan = plan_zone(&zone(ZoneState::Normal, 120.0, None), &hgx(10), &mut [10]);
        assert_eq!(plan.heat_load_kw, 102.0);
        assert_eq!(plan.headroom_kw, 18.0);
        assert_eq!((plan.gpu_power_cap_watts, plan.nodes_must_leave), (None, 0));
    }

    #[test]
    fn a_degraded_zone_caps_gpu_power_to_fit() {
        // 10 nodes: host 46 kW, 80 GPUs. 80 kW of cooling leaves 34 kW: 425 W per GPU.
        let plan = plan_zone(
            &zone(ZoneState::Degraded, 120.0, Some(80.0)),
            &hgx(10),
            &mut [10],
        );
        assert_eq!(plan.gpu_power_cap_watts, Some(425));
        assert_eq!((plan.nodes_must_leave, plan.deficit_kw), (0, 0.0));
    }

    #[test]
    fn below_the_minimum_cap_nodes_leave_within_the_budget() {
        // At the 200 W floor a node draws 6.2 kW; 40 kW holds 6 nodes, so 4 must leave.
        // The pool may lose 3 now: 7 stay at 200 W = 43.4 kW, a 3.4 kW deficit.
        let plan = plan_zone(
            &zone(ZoneState::Degraded, 120.0, Some(40.0)),
            &hgx(10),
            &mut [3],
        );
        assert_eq!(plan.nodes_must_leave, 4);
        assert_eq!(plan.leaving, vec![9, 8, 7]);
        assert_eq!(plan.gpu_power_cap_watts, Some(200));
        assert!((plan.deficit_kw - 3.4).abs() < 1e-9, "{}", plan.deficit_kw);
    }

    #[test]
    fn maintenance_counts_nodes_waiting_to_leave_at_full_power() {
        // 4 nodes at 10.2 kW; only 1 may leave now: 3 still draw 30.6 kW with no cooling.
        let plan = plan_zone(
            &zone(ZoneState::Maintenance, 120.0, None),
            &hgx(4),
            &mut [1],
        );
        assert_eq!((plan.nodes_must_leave, plan.nodes_out_of_service), (4, 1));
        assert!((plan.deficit_kw - 30.6).abs() < 1e-9, "{}", plan.deficit_kw);
    }

    #[test]
    fn maintenance_takes_every_node_out() {
        let mut budget = [100];
        let plan = plan_zone(
            &zone(ZoneState::Maintenance, 120.0, None),
            &hgx(4),
            &mut budget,
        );
        assert_eq!(
            (
                plan.nodes_must_leave,
                plan.nodes_out_of_service,
                plan.deficit_kw
            ),
            (4, 4, 0.0)
        );
        assert_eq!(budget, [96]);
    }
}
