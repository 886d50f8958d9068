//! Power: IT load = sum over pools of expectedNodes x (perNode x tdpWatts + hostPowerWatts);
//! facility load = IT load x pue, which must not exceed the budget. Compared in whole watts, so a
//! budget met exactly is met; the fix names the pool whose nodes cost the most and never more
//! nodes than it has (DESIGN.md §3).

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

/// IT power of the nodes matched now, in watts: each node of a pool at its zone's GPU power
/// cap (full power without one), nodes out of service (carrying `kelvin.dev/out-of-service`)
/// not counted. What the site draws while a zone is capped or shedding, against the budget
/// that the design figures (at `expectedNodes`) are checked against.
pub fn live_it_watts(
    spec: &GpuClusterSpec,
    nodes: &[std::sync::Arc<kelvin_crds::node::NodeInfo>],
    pool_of: &[Option<usize>],
    zone_of: &[Option<usize>],
    zone_caps: &[Option<u64>],
) -> u64 {
    nodes
        .iter()
        .zip(pool_of.iter().zip(zone_of))
        .filter(|(node, _)| {
            !node
                .taints
                .iter()
                .any(|t| t.key == crate::constants::OUT_OF_SERVICE_TAINT)
        })
        .filter_map(|(_, (pool, zone))| {
            let pool = &spec.gpu_pools[(*pool)?];
            let tdp = u64::from(pool.accelerator.tdp_watts);
            let cap = zone
                .and_then(|z| zone_caps.get(z).copied().flatten())
                .map_or(tdp, |cap| cap.min(tdp));
            Some(u64::from(pool.host_power_watts) + u64::from(pool.accelerator.per_node) * cap)
        })
        .sum()
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
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
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
    /// Budget - facility power, in megawatts (negative when over, never negative when within).
    #[serde(rename = "headroomMW")]
    pub headroom_mw: f64,
    /// Per pool.
    pub pools: Vec<PoolPower>,
    /// IT power, in watts (exact: node watts are whole).
    #[serde(skip)]
    pub it_watts: u64,
    /// IT power x PUE, rounded to whole watts.
    #[serde(skip)]
    pub facility_watts: u64,
    /// The budget, rounded to whole watts.
    #[serde(skip)]
    pub budget_watts: u64,
}

impl PowerReport {
    /// Whether facility power fits the budget, compared in whole watts so that a budget met
    /// exactly (3.06 MW x 1.1 = 3.366 MW) is met, whatever floating point makes of the product.
    /// The one place the power rule is decided: the diagnostic and the status use it.
    pub fn within_budget(&self) -> bool {
        self.facility_watts <= self.budget_watts
    }
}

/// Megawatts as whole watts (rounded; the schema keeps them finite and non-negative, and `as`
/// saturates what it would not).
fn whole_watts(megawatts: f64) -> u64 {
    (megawatts * 1e6).round() as u64
}

/// Facility power of `it_watts` of IT load, in whole watts.
fn facility_watts(it_watts: u64, pue: f64) -> u64 {
    (it_watts as f64 * pue).round() as u64
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
    let facility_watts = facility_watts(it_watts, spec.site.pue);
    let budget_watts = whole_watts(spec.site.power_budget_mw);
    let mut headroom_mw = spec.site.power_budget_mw - facility_mw;
    if facility_watts <= budget_watts {
        // Within the budget to the watt: a rounding residue is no deficit (nor "-0.000").
        headroom_mw = headroom_mw.max(0.0);
    }
    PowerReport {
        it_mw,
        facility_mw,
        budget_mw: spec.site.power_budget_mw,
        headroom_mw,
        pools,
        it_watts,
        facility_watts,
        budget_watts,
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

/// `watts` as megawatts rounded up at the precision [`mw`] prints, so that a suggested budget
/// really fits and an excess is never shown as 0.
fn mw_up(watts: u64) -> String {
    mw_at_precision(watts, u64::div_ceil)
}

/// `watts` as megawatts rounded down at the precision [`mw`] prints (a part of an excess
/// printed beside it is then shown smaller than it).
fn mw_down(watts: u64) -> String {
    mw_at_precision(watts, |watts, unit| watts / unit)
}

fn mw_at_precision(watts: u64, divide: impl Fn(u64, u64) -> u64) -> String {
    if watts < 10_000_000 {
        let kw = divide(watts, 1_000);
        format!("{}.{:03}", kw / 1_000, kw % 1_000)
    } else {
        let tens_of_kw = divide(watts, 10_000);
        format!("{}.{:02}", tens_of_kw / 100, tens_of_kw % 100)
    }
}

fn plural(count: u64, word: &str) -> String {
    if count == 1 {
        format!("{count} {word}")
    } else {
        format!("{count} {word}s")
    }
}

/// The fewest nodes of `node_watts` each, out of `nodes`, whose removal brings the facility load
/// within the budget (the same whole-watt comparison as [`PowerReport::within_budget`]); None
/// when even all of them are not enough.
fn fewest_to_remove(power: &PowerReport, pue: f64, node_watts: u64, nodes: u64) -> Option<u64> {
    let fits = |removed: u64| {
        facility_watts(power.it_watts - removed * node_watts, pue) <= power.budget_watts
    };
    if !fits(nodes) {
        return None;
    }
    // Removing more never raises the load: the smallest count that fits, by bisection.
    let (mut low, mut high) = (0, nodes);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if fits(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    Some(high)
}

/// The power rule: facility load within the budget.
pub fn check(spec: &GpuClusterSpec, power: &PowerReport, out: &mut Vec<Diagnostic>) {
    if power.within_budget() {
        return;
    }
    let pue = spec.site.pue;
    let over_watts = power.facility_watts - power.budget_watts;
    let mut fix = format!(
        "raise spec.site.powerBudgetMW to at least {}",
        mw_up(power.facility_watts)
    );
    // The pool whose nodes cost the most (DESIGN §3): the fewest nodes to give up. Among equals
    // the larger pool, then the later one.
    let costliest = spec
        .gpu_pools
        .iter()
        .enumerate()
        .filter(|(_, pool)| pool.expected_nodes > 0)
        .max_by_key(|(_, pool)| (node_watts(pool), pool.expected_nodes));
    if let Some((index, pool)) = costliest {
        let node_watts = node_watts(pool);
        let nodes = u64::from(pool.expected_nodes);
        let node_kw = node_watts as f64 * pue / 1e3;
        match fewest_to_remove(power, pue, node_watts, nodes) {
            Some(fewer) => fix.push_str(&format!(
                ", or lower {}.expectedNodes ({}) by {} ({node_kw:.1} kW each at the facility)",
                pool_path(index),
                pool.name,
                plural(fewer, "node"),
            )),
            None => fix.push_str(&format!(
                "; lowering one pool's expectedNodes is not enough: even all {} of {} ({}), \
                 the pool whose nodes cost the most ({node_kw:.1} kW each at the facility), \
                 are {} MW of the {} MW over",
                plural(nodes, "node"),
                pool_path(index),
                pool.name,
                mw_down(facility_watts(nodes * node_watts, pue)),
                mw_up(over_watts),
            )),
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
                mw_up(over_watts)
            ),
        )
        .with_fix(fix),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelvin_crds::load;

    /// The small example (a100-mig: 4 nodes of 6,500 W; l40s-shared: 4 of 2,600 W; PUE 1.5)
    /// with each `(find, replace)` applied once.
    fn small_with(edits: &[(&str, &str)]) -> GpuClusterSpec {
        let mut text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/small/cluster.yaml"
        ))
        .unwrap();
        for (find, replace) in edits {
            assert_eq!(text.matches(find).count(), 1, "{find}");
            text = text.replacen(find, replace, 1);
        }
        let (mut clusters, diagnostics) = load::load_gpu_clusters("small.yaml", text.as_bytes());
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        clusters.remove(0).0.spec
    }

    /// The power findings of `spec` as `message / fix: fix`.
    fn findings(spec: &GpuClusterSpec) -> Vec<String> {
        let mut out = Vec::new();
        check(spec, &power(spec), &mut out);
        out.iter()
            .map(|d| format!("{} / fix: {}", d.message, d.fix.as_deref().unwrap_or("")))
            .collect()
    }

    /// 3.06 MW of IT load: 400 a100-mig nodes of 8 x 400 + 4,424 = 7,624 W (3,049,600 W) and
    /// the 4 l40s-shared nodes of 2,600 W (10,400 W), at PUE 1.1; in floating point
    /// 3.06 x 1.1 = 3.3660000000000005.
    fn three_point_zero_six_mw(budget: &str) -> GpuClusterSpec {
        small_with(&[
            (
                "expectedNodes: 4\n    accelerator:\n      vendor: nvidia\n      model: A100",
                "expectedNodes: 400\n    accelerator:\n      vendor: nvidia\n      model: A100",
            ),
            ("hostPowerWatts: 3300", "hostPowerWatts: 4424"),
            ("pue: 1.5 ", "pue: 1.1 "),
            ("powerBudgetMW: 0.2 ", &format!("powerBudgetMW: {budget} ")),
        ])
    }

    #[test]
    fn a_budget_met_exactly_is_met() {
        let spec = three_point_zero_six_mw("3.366");
        let report = power(&spec);
        assert_eq!(report.it_watts, 3_060_000);
        assert!(
            report.it_mw * spec.site.pue > spec.site.power_budget_mw,
            "the float trap"
        );
        assert_eq!(
            (report.facility_watts, report.budget_watts),
            (3_366_000, 3_366_000)
        );
        assert!(report.within_budget());
        assert_eq!(report.headroom_mw, 0.0, "no -0.000 MW headroom");
        assert!(report.headroom_mw.is_sign_positive());
        assert_eq!(findings(&spec), Vec::<String>::new());
    }

    #[test]
    fn one_watt_over_is_over_and_says_by_how_much() {
        let spec = three_point_zero_six_mw("3.365999");
        assert!(!power(&spec).within_budget());
        let found = findings(&spec);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "facility load 3.366 MW (IT 3.060 MW x PUE 1.1) exceeds the budget of 3.366 MW by 0.001 MW / \
                 fix: raise spec.site.powerBudgetMW to at least 3.366, or lower spec.gpuPools[0].expectedNodes (a100-mig) by 1 node ("
            ),
            "{found:?}"
        );
    }

    /// a100-mig: 4 nodes of 6,500 W (9,750 W at the facility); l40s-shared: 40 nodes of 2,600 W.
    /// IT 130 kW, facility 195 kW.
    fn costly_few_and_cheap_many(budget: &str) -> GpuClusterSpec {
        small_with(&[
            (
                "expectedNodes: 4\n    accelerator:\n      vendor: nvidia\n      model: L40S",
                "expectedNodes: 40\n    accelerator:\n      vendor: nvidia\n      model: L40S",
            ),
            ("powerBudgetMW: 0.2 ", &format!("powerBudgetMW: {budget} ")),
        ])
    }

    #[test]
    fn the_fix_names_the_pool_whose_nodes_cost_the_most_not_the_largest() {
        // 195 - 180 = 15 kW over: two a100-mig nodes (19.5 kW), not six l40s-shared ones.
        let found = findings(&costly_few_and_cheap_many("0.18"));
        assert_eq!(
            found,
            [
                "facility load 0.195 MW (IT 0.130 MW x PUE 1.5) exceeds the budget of 0.180 MW by 0.015 MW / \
              fix: raise spec.site.powerBudgetMW to at least 0.195, or lower spec.gpuPools[0].expectedNodes (a100-mig) by 2 nodes (9.8 kW each at the facility)"
            ]
        );
        // Exactly two nodes' worth over: two nodes meet the budget exactly, and are enough.
        let found = findings(&costly_few_and_cheap_many("0.1755"));
        assert!(found[0].contains("(a100-mig) by 2 nodes ("), "{found:?}");
    }

    #[test]
    fn the_fix_never_removes_more_nodes_than_the_pool_has() {
        // 195 - 150 = 45 kW over; all 4 a100-mig nodes are 39 kW.
        let found = findings(&costly_few_and_cheap_many("0.15"));
        assert_eq!(
            found,
            [
                "facility load 0.195 MW (IT 0.130 MW x PUE 1.5) exceeds the budget of 0.150 MW by 0.045 MW / \
              fix: raise spec.site.powerBudgetMW to at least 0.195; lowering one pool's expectedNodes is not enough: \
              even all 4 nodes of spec.gpuPools[0] (a100-mig), the pool whose nodes cost the most (9.8 kW each at the facility), \
              are 0.039 MW of the 0.045 MW over"
            ]
        );
        // All of them, exactly enough: 195 - 39 = 156 kW.
        let found = findings(&costly_few_and_cheap_many("0.156"));
        assert!(found[0].contains("(a100-mig) by 4 nodes ("), "{found:?}");

        // The costliest pool is also the largest: 8 a100-mig nodes (78 kW at the facility) of
        // 93.6 kW, against 10 kW. Not "by 9 nodes" of its 8.
        let spec = small_with(&[
            (
                "expectedNodes: 4\n    accelerator:\n      vendor: nvidia\n      model: A100",
                "expectedNodes: 8\n    accelerator:\n      vendor: nvidia\n      model: A100",
            ),
            ("powerBudgetMW: 0.2 ", "powerBudgetMW: 0.01 "),
        ]);
        let found = findings(&spec);
        assert!(
            found[0].ends_with(
                "lowering one pool's expectedNodes is not enough: even all 8 nodes of spec.gpuPools[0] (a100-mig), \
                 the pool whose nodes cost the most (9.8 kW each at the facility), are 0.078 MW of the 0.084 MW over"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn megawatts_round_up_and_down_at_the_printed_precision() {
        assert_eq!(mw_up(116_025_000), "116.03");
        assert_eq!(mw_up(116_020_000), "116.02");
        assert_eq!(mw_up(1), "0.001");
        assert_eq!(mw_up(54_600), "0.055");
        assert_eq!(mw_down(39_999), "0.039");
        assert_eq!(mw_down(10_009_999), "10.00");
    }

    #[test]
    fn live_load_counts_nodes_at_their_zones_caps_and_not_those_out_of_service() {
        use kelvin_crds::node::{NodeInfo, NodeTaint};
        let spec = small_with(&[]);
        let node = |name: &str| NodeInfo {
            name: name.into(),
            ..NodeInfo::default()
        };
        let mut out = node("c");
        out.taints.push(NodeTaint {
            key: crate::constants::OUT_OF_SERVICE_TAINT.into(),
            value: Some("lab-row-1".into()),
            effect: "NoSchedule".into(),
        });
        let nodes = [node("a"), node("b"), out, node("d")].map(std::sync::Arc::new);
        // a: a100 in zone 0, capped at 250 W: 3,300 + 8 x 250 = 5,300 W.
        // b: l40s in no zone: full power, 1,200 + 4 x 350 = 2,600 W.
        // c: out of service: 0. d: in no pool: 0.
        let watts = live_it_watts(
            &spec,
            &nodes,
            &[Some(0), Some(1), Some(0), None],
            &[Some(0), None, Some(0), None],
            &[Some(250)],
        );
        assert_eq!(watts, 5_300 + 2_600);
        // Without a cap, a runs at full power: 3,300 + 8 x 400 = 6,500 W.
        let watts = live_it_watts(
            &spec,
            &nodes,
            &[Some(0), None, None, None],
            &[Some(0), None, None, None],
            &[None],
        );
        assert_eq!(watts, 6_500);
    }
}
