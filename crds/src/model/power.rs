//! Power: IT load = sum over pools of expectedNodes x (perNode x tdpWatts + hostPowerWatts);
//! facility load = IT load x pue, which must not exceed the budget.

use serde::Serialize;

use crate::v1alpha1::{GpuClusterSpec, GpuPool};

/// IT power of one node of the pool at full GPU power, in watts.
pub fn node_watts(pool: &GpuPool) -> u64 {
    u64::from(pool.accelerator.per_node) * u64::from(pool.accelerator.tdp_watts)
        + u64::from(pool.host_power_watts)
}

/// One pool's share of the IT load.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolPower {
    /// Pool name.
    pub name: String,
    /// Design nodes (expectedNodes).
    pub nodes: u64,
    /// Watts per node at full GPU power.
    pub node_watts: u64,
    /// IT power of the pool, in megawatts.
    #[serde(rename = "itMW")]
    pub it_mw: f64,
}

/// The site's power at design capacity against its budget.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PowerReport {
    /// IT power, in megawatts.
    #[serde(rename = "itMW")]
    pub it_mw: f64,
    /// IT power x PUE, in megawatts.
    #[serde(rename = "facilityMW")]
    pub facility_mw: f64,
    /// The budget, in megawatts.
    #[serde(rename = "budgetMW")]
    pub budget_mw: f64,
    /// Budget - facility power, in megawatts (negative when over).
    #[serde(rename = "headroomMW")]
    pub headroom_mw: f64,
    /// Per pool.
    pub pools: Vec<PoolPower>,
}

impl PowerReport {
    /// Whether facility power fits the budget.
    pub fn within_budget(&self) -> bool {
        self.facility_mw <= self.budget_mw
    }
}

/// Power of the spec at design capacity (expectedNodes).
pub fn power(spec: &GpuClusterSpec) -> PowerReport {
    let pools: Vec<PoolPower> = spec
        .gpu_pools
        .iter()
        .map(|pool| {
            let node_watts = node_watts(pool);
            let nodes = u64::from(pool.expected_nodes);
            PoolPower {
                name: pool.name.clone(),
                nodes,
                node_watts,
                it_mw: (nodes * node_watts) as f64 / 1e6,
            }
        })
        .collect();
    let it_watts: u64 = pools.iter().map(|p| p.nodes * p.node_watts).sum();
    let it_mw = it_watts as f64 / 1e6;
    let facility_mw = it_mw * spec.site.pue;
    PowerReport {
        it_mw,
        facility_mw,
        budget_mw: spec.site.power_budget_mw,
        headroom_mw: spec.site.power_budget_mw - facility_mw,
        pools,
    }
}
