//! Power: IT load = sum over pools of expectedNodes x (perNode x tdpWatts + hostPowerWatts);
//! facility load = IT load x pue, which must not exceed the budget.

use serde::Serialize;

use kelvin_crds::{
    diagnostics::Diagnostic,
    v1alpha1::{GpuClusterSpec, GpuPool},
};

use super::pool_path;

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

/// The power rule: facility load within the budget.
pub fn check(spec: &GpuClusterSpec, power: &PowerReport, out: &mut Vec<Diagnostic>) {
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
        let node_mw = node_watts(pool) as f64 * spec.site.pue / 1e6;
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
