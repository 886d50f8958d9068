//! The rollout, walked step by step: each step plans from an `Observed` snapshot built only
//! from the nodes (as a freshly restarted operator would), the writes are applied to the nodes
//! as the API server would, and the next step observes the result. The disruption budget is
//! checked from the nodes themselves after every step, not from the rollout's own counts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a failure is the report

use std::collections::BTreeMap;

use kelvin_core::{
    constants::{OUT_OF_SERVICE_TAINT, POOL_LABEL, POWER_CAP_LABEL, TRANSITION_ANNOTATION},
    observed::{NodeWorkload, Observed, Timestamp, simulate},
    plan::{Planned, plan},
    rollout::DRAIN_TIMEOUT,
};
use kelvin_crds::{load, node::NodeInfo, v1alpha1::GpuCluster};

/// One pool of 100 HGX H100 nodes (DESIGN.md §7: 8 x 700 W + 4.6 kW host = 10.2 kW), two
/// cooling zones of 50, maxUnavailable 10%. `extra` is appended to the pool.
fn spec(zone_b_state: &str, extra: &str) -> GpuCluster {
    let text = format!(
        r#"apiVersion: kelvin.dev/v1alpha1
kind: GpuCluster
metadata: {{name: walk}}
spec:
  site: {{powerBudgetMW: 2, pue: 1.2}}
  coolingZones:
  - {{name: loop-a, cooling: Liquid, capacityKW: 520, nodeSelector: {{matchLabels: {{loop: a}}}}}}
  - {{name: loop-b, cooling: Liquid, capacityKW: 520, {zone_b_state}nodeSelector: {{matchLabels: {{loop: b}}}}}}
  fabrics:
  - {{name: ib, type: InfiniBand, linkGbps: 400, railsPerNode: 8, switchRadix: 64, nodesPerLeaf: 16, nvlinkDomainSize: 8}}
  gpuPools:
  - name: h100
    nodeSelector: {{matchLabels: {{sku: hgx-h100}}}}
    expectedNodes: 100
    accelerator: {{vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}}
    hostPowerWatts: 4600
    fabric: ib
    maxUnavailable: 10%
{extra}"#
    );
    let (mut clusters, diagnostics) = load::load_gpu_clusters("walk.yaml", text.as_bytes());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    clusters.remove(0).0
}

/// 100 nodes: the first 50 in loop a, the rest in loop b (as the zones' capacity fills).
fn nodes(cluster: &GpuCluster) -> Vec<NodeInfo> {
    let nodes = simulate(&cluster.spec);
    assert_eq!(nodes.len(), 100);
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n.labels.get("loop") == Some("a"))
            .count(),
        50
    );
    nodes
}

fn at(minute: i64) -> Timestamp {
    Timestamp::from_second(1_796_000_000 + minute * 60).unwrap()
}

/// Plans from `nodes` alone, checks the plan, applies every write.
fn step(
    cluster: &GpuCluster,
    nodes: &mut [NodeInfo],
    now: Timestamp,
    workloads: &BTreeMap<String, NodeWorkload>,
) -> Planned {
    let mut observed = Observed::new(nodes.to_vec(), now).unwrap();
    observed.workloads = workloads.clone();
    let planned = plan(cluster, &observed).unwrap();
    assert!(planned.plan.valid, "{:?}", planned.plan.errors);
    // In the order given, each write landing before the next: never more transitions on the
    // nodes than the budget, even between two writes of one step.
    let budget = planned.rollout.pools[0].max_unavailable as usize;
    for write in &planned.rollout.writes {
        let node = nodes.iter_mut().find(|n| n.name == write.node).unwrap();
        write.apply_to(node);
        assert!(
            in_transition(nodes) <= budget,
            "{} in transition after {}",
            in_transition(nodes),
            write.node
        );
    }
    planned
}

/// Nodes unavailable as the budget counts them, measured on the nodes: NotReady, or carrying a
/// transition.
fn unavailable(nodes: &[NodeInfo]) -> usize {
    nodes
        .iter()
        .filter(|n| !n.ready || n.annotations.contains_key(TRANSITION_ANNOTATION))
        .count()
}

fn in_transition(nodes: &[NodeInfo]) -> usize {
    nodes
        .iter()
        .filter(|n| n.annotations.contains_key(TRANSITION_ANNOTATION))
        .count()
}

fn tainted(nodes: &[NodeInfo], key: &str) -> usize {
    nodes
        .iter()
        .filter(|n| n.taints.iter().any(|t| t.key == key))
        .count()
}

const TAINT: &str =
    "    taints: [{key: example.com/dedicated, value: training, effect: NoSchedule}]\n";

#[test]
fn a_new_pool_taint_rolls_out_ten_percent_at_a_time() {
    let cluster = spec("", TAINT);
    let mut nodes = nodes(&cluster);
    let none = BTreeMap::new();

    // Step 1: every node gets its labels at once (not disruptive); 10 get the taint.
    let first = step(&cluster, &mut nodes, at(0), &none);
    assert_eq!(first.rollout.writes.len(), 100);
    assert_eq!(first.rollout.pools[0].max_unavailable, 10);
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n.labels.contains_key(POOL_LABEL))
            .count(),
        100
    );
    assert_eq!(
        (
            tainted(&nodes, "example.com/dedicated"),
            in_transition(&nodes)
        ),
        (10, 10)
    );
    assert_eq!(first.plan.node_changes[0].deferred, 90);

    // The first ten are the first by name, each annotated `taint@<now>` in the same write.
    assert_eq!(
        nodes[0].annotations[TRANSITION_ANNOTATION],
        format!("taint@{}", at(0))
    );
    assert!(!nodes[10].annotations.contains_key(TRANSITION_ANNOTATION));

    // Then batch after batch: each step clears the settled batch and starts the next.
    let mut steps = 1;
    loop {
        let planned = step(&cluster, &mut nodes, at(steps), &none);
        steps += 1;
        assert!(
            unavailable(&nodes) <= 10,
            "step {steps}: {} unavailable",
            unavailable(&nodes)
        );
        if planned.rollout.writes.is_empty() {
            assert!(planned.rollout.is_settled());
            break;
        }
        assert!(steps < 20, "the rollout does not finish");
    }
    // 10 batches, one step to clear the last, one that finds nothing to do.
    assert_eq!(steps, 12);
    assert_eq!(
        (
            tainted(&nodes, "example.com/dedicated"),
            in_transition(&nodes)
        ),
        (100, 0)
    );
    // Steady state: nothing to write.
    assert!(
        step(&cluster, &mut nodes, at(99), &none)
            .rollout
            .writes
            .is_empty()
    );
}

#[test]
fn not_ready_nodes_and_unsettled_agents_eat_the_budget() {
    let cluster = spec("", TAINT);
    let mut nodes = nodes(&cluster);
    // Labels first, with no taint in the spec, so the taint rollout is all that is left.
    step(
        &cluster_without_taint(),
        &mut nodes,
        at(0),
        &BTreeMap::new(),
    );
    for name in ["h100-00090", "h100-00091", "h100-00092"] {
        nodes.iter_mut().find(|n| n.name == name).unwrap().ready = false;
    }
    let first = step(&cluster, &mut nodes, at(1), &BTreeMap::new());
    // 3 NotReady leave 7 for Ready nodes. The NotReady ones take their taint too: they are
    // unavailable already, and their transitions still count (at most 10 carry one).
    assert_eq!(first.rollout.pools[0].not_ready, 3);
    assert_eq!(first.rollout.pools[0].starting, 10);
    let ready_started = nodes
        .iter()
        .filter(|n| n.ready && n.annotations.contains_key(TRANSITION_ANNOTATION))
        .count();
    assert_eq!(
        (ready_started, unavailable(&nodes), in_transition(&nodes)),
        (7, 10, 10)
    );

    // The device plugin on two of the seven is not Ready yet: they stay in transition, as do
    // the NotReady three, so only five new nodes may start.
    let workloads: BTreeMap<String, NodeWorkload> = ["h100-00000", "h100-00001"]
        .into_iter()
        .map(|n| {
            (
                n.to_owned(),
                NodeWorkload {
                    unready_kelvin_pods: 1,
                    evictable_pods: 0,
                },
            )
        })
        .collect();
    let second = step(&cluster, &mut nodes, at(2), &workloads);
    assert_eq!(second.rollout.pools[0].in_transition, 5);
    assert_eq!(second.rollout.pools[0].starting, 5);
    assert_eq!(unavailable(&nodes), 10);
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n.ready && n.annotations.contains_key(TRANSITION_ANNOTATION))
            .map(|n| n.name.as_str())
            .take(3)
            .collect::<Vec<_>>(),
        ["h100-00000", "h100-00001", "h100-00007"]
    );
}

fn cluster_without_taint() -> GpuCluster {
    spec("", "")
}

#[test]
fn a_restart_mid_rollout_knows_what_is_in_flight_from_the_nodes() {
    let cluster = spec("", TAINT);
    let mut nodes = nodes(&cluster);
    let none = BTreeMap::new();
    step(&cluster, &mut nodes, at(0), &none);
    // Killed mid-write: only half of the next step's writes reached the API server.
    let observed = Observed::new(nodes.clone(), at(1)).unwrap();
    let planned = plan(&cluster, &observed).unwrap();
    for write in planned
        .rollout
        .writes
        .iter()
        .take(planned.rollout.writes.len() / 2)
    {
        write.apply_to(nodes.iter_mut().find(|n| n.name == write.node).unwrap());
    }
    // A new process plans from the nodes alone, over and over: never more than 10 in flight.
    for minute in 2..30 {
        step(&cluster, &mut nodes, at(minute), &none);
        assert!(
            unavailable(&nodes) <= 10,
            "minute {minute}: {}",
            unavailable(&nodes)
        );
    }
    assert_eq!(
        (
            tainted(&nodes, "example.com/dedicated"),
            in_transition(&nodes)
        ),
        (100, 0)
    );
}

#[test]
fn a_maintenance_zone_drains_fully_in_batches_and_comes_back() {
    let cluster = spec("state: Maintenance, ", "");
    let mut nodes = nodes(&cluster);
    // Every loop-b node runs 3 evictable pods until the step after it goes out of service.
    let mut workloads: BTreeMap<String, NodeWorkload> = nodes
        .iter()
        .filter(|n| n.labels.get("loop") == Some("b"))
        .map(|n| {
            (
                n.name.clone(),
                NodeWorkload {
                    unready_kelvin_pods: 0,
                    evictable_pods: 3,
                },
            )
        })
        .collect();
    let mut batches = Vec::new();
    for minute in 0..30 {
        let planned = step(&cluster, &mut nodes, at(minute), &workloads);
        assert!(
            unavailable(&nodes) <= 10,
            "minute {minute}: {}",
            unavailable(&nodes)
        );
        let started = planned.plan.leaving_now[1];
        if started > 0 {
            batches.push(started);
        }
        // The Eviction API empties nodes once they are tainted (issue 12 does it for real).
        for node in &nodes {
            if node.taints.iter().any(|t| t.key == OUT_OF_SERVICE_TAINT) {
                workloads.remove(&node.name);
            }
        }
        if planned.rollout.is_settled() {
            let zone = &planned.plan.cooling_zones[1];
            assert_eq!((zone.nodes_must_leave, zone.out_of_service), (50, 50));
            assert_eq!(zone.deficit_kw, 0.0);
            break;
        }
    }
    assert_eq!(batches, [10, 10, 10, 10, 10], "batches of maxUnavailable");
    assert_eq!(tainted(&nodes, OUT_OF_SERVICE_TAINT), 50);
    // Nodes leave from the highest position down.
    let first_out = nodes
        .iter()
        .rev()
        .find(|n| n.taints.iter().any(|t| t.key == OUT_OF_SERVICE_TAINT))
        .unwrap();
    assert_eq!(first_out.name, "h100-00099");

    // Recovery is not disruptive: every out-of-service taint goes in one step.
    let recovered = spec("", "");
    let planned = step(&recovered, &mut nodes, at(40), &BTreeMap::new());
    assert_eq!(planned.rollout.pools[0].starting, 0);
    assert_eq!(
        (tainted(&nodes, OUT_OF_SERVICE_TAINT), in_transition(&nodes)),
        (0, 0)
    );
    assert!(
        step(&recovered, &mut nodes, at(41), &BTreeMap::new())
            .rollout
            .writes
            .is_empty()
    );
}

#[test]
fn a_drain_that_does_not_finish_settles_after_the_timeout_and_is_reported() {
    let cluster = spec("state: Maintenance, ", "");
    let mut nodes = nodes(&cluster);
    let stuck: BTreeMap<String, NodeWorkload> = nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                NodeWorkload {
                    unready_kelvin_pods: 0,
                    evictable_pods: 1,
                },
            )
        })
        .collect();
    step(&cluster, &mut nodes, at(0), &stuck);
    assert_eq!(in_transition(&nodes), 10);
    // Within the timeout the batch holds the budget.
    let waiting = step(&cluster, &mut nodes, at(1), &stuck);
    assert_eq!(
        (
            waiting.rollout.pools[0].starting,
            waiting.rollout.pools[0].in_transition
        ),
        (0, 10)
    );
    // Past it, the batch settles (reported by name) and the next one starts.
    let later = at(0) + DRAIN_TIMEOUT + k8s_openapi::jiff::SignedDuration::from_secs(1);
    let next = step(&cluster, &mut nodes, later, &stuck);
    assert_eq!(next.rollout.pools[0].drain_timeouts.len(), 10);
    assert_eq!(next.rollout.pools[0].starting, 10);
}

#[test]
fn a_degraded_zone_caps_every_node_at_once_and_recovery_removes_the_cap() {
    // 50 nodes x 4.6 kW host + 400 GPUs: 400 kW leaves 170 kW, 425 W per GPU; no one leaves.
    let cluster = spec("state: Degraded, degradedCapacityKW: 400, ", "");
    let mut nodes = nodes(&cluster);
    let planned = step(&cluster, &mut nodes, at(0), &BTreeMap::new());
    assert_eq!(planned.plan.cooling_zones[1].gpu_power_cap_watts, Some(425));
    let capped = nodes
        .iter()
        .filter(|n| n.labels.get(POWER_CAP_LABEL) == Some("425"))
        .count();
    assert_eq!((capped, in_transition(&nodes)), (50, 0));
    // Back to Normal: the cap label goes from every node (whole desired state, not a delta).
    let planned = step(&spec("", ""), &mut nodes, at(1), &BTreeMap::new());
    assert_eq!(
        planned.plan.node_changes[0]
            .items
            .get("-label kelvin.dev/gpu-power-cap-watts"),
        Some(&50)
    );
    assert!(
        nodes
            .iter()
            .all(|n| !n.labels.contains_key(POWER_CAP_LABEL))
    );
}
