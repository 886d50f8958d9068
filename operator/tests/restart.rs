//! kill -9 mid-rollout (issue 7 §3, scenario 5): the real `kelvin-operator` process is
//! SIGKILLed while nodes carry `kelvin.dev/transition`, a fresh process takes over from what
//! the nodes say, and the disruption budget holds across the processes (one sampler, from
//! outside, over all of them), and nothing is lost: every node ends with exactly the labels
//! and taints kelvin-core plans, no transition left, the replaced taint gone everywhere.
//!
//! 120 kwok nodes in one pool with `maxUnavailable: 10%` (12 nodes). Two rollouts, one kill
//! in each: the first convergence (adding the pool's NoSchedule taint is disruptive), then a
//! taint change (`kelvin.dev/dedicated=training` -> `training-v2`: Kelvin's own taint removed
//! and the new one added in one write).
//!
//! A file of its own, so its control plane holds no other test's nodes or GpuClusters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test: a failure is the report

mod common;

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use common::{
    Baseline, Operator, Sampler, check_exact, edit, kubectl_apply, list_nodes, live_budgets,
    plan_live, settled_nodes, taints_of, wait_converged, write_spec,
};
use kelvin_core::constants::TRANSITION_ANNOTATION;
use kelvin_e2e::{Cluster, cluster};
use kube::Client;

const NODES: usize = 120;

const SPEC: &str = r#"apiVersion: kelvin.dev/v1alpha1
kind: GpuCluster
metadata:
  name: restart
spec:
  site: {powerBudgetMW: 5, pue: 1.2}
  coolingZones:
  - name: hall-a
    cooling: Liquid
    capacityKW: 2000
    nodeSelector: {matchLabels: {kelvin.dev/hall: a}}
  fabrics:
  - name: ib
    type: InfiniBand
    linkGbps: 400
    railsPerNode: 8
    switchRadix: 64
    nodesPerLeaf: 32
    nvlinkDomainSize: 8
  gpuPools:
  - name: h100
    nodeSelector: {matchLabels: {kelvin.dev/sku: hgx-h100}}
    expectedNodes: 120
    accelerator: {vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}
    hostPowerWatts: 4600
    fabric: ib
    taints: [{key: kelvin.dev/dedicated, value: training, effect: NoSchedule}]
    maxUnavailable: 10%
"#;

/// How many nodes carry `taint` (as `value` of `kelvin.dev/dedicated`) and how many carry a
/// transition.
async fn progress(client: &Client, value: &str) -> Result<(usize, usize)> {
    let nodes = list_nodes(client).await?;
    let tainted = nodes
        .iter()
        .filter(|n| {
            taints_of(n).contains(&(
                "kelvin.dev/dedicated".into(),
                Some(value.into()),
                "NoSchedule".into(),
            ))
        })
        .count();
    let in_flight = nodes
        .iter()
        .filter(|n| {
            n.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(TRANSITION_ANNOTATION))
        })
        .count();
    Ok((tainted, in_flight))
}

/// Waits until the rollout towards taint value `value` is under way (at least two batches
/// done, not near its end, a transition in flight), SIGKILLs `operator` there, and checks the
/// nodes still carry transitions now that nobody clears them. A kill that lands between two
/// passes, with no transition on any node, does not count: a fresh process is started and
/// the kill tried again.
async fn kill_mid_rollout(
    c: &Cluster,
    client: &Client,
    operator: &mut Operator,
    value: &str,
    name: &str,
) -> Result<(usize, usize)> {
    for attempt in 0..3 {
        let started = std::time::Instant::now();
        loop {
            let (tainted, in_flight) = progress(client, value).await?;
            if in_flight > 0 && (24..NODES - 24).contains(&tainted) {
                break;
            }
            if tainted >= NODES - 24 || started.elapsed() > Duration::from_secs(90) {
                bail!(
                    "the rollout to {value} got to {tainted} of {NODES} nodes without a moment to kill it (attempt {attempt})\n{}",
                    operator.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        operator.kill_9()?;
        let (tainted, in_flight) = progress(client, value).await?;
        eprintln!(
            "{name}: SIGKILLed pid {} with {tainted} of {NODES} nodes done and {in_flight} in transition",
            operator.pid()
        );
        if in_flight > 0 {
            return Ok((tainted, in_flight));
        }
        *operator = Operator::start(c, &format!("{name}-retry-{attempt}"))?;
    }
    bail!("three kills landed between passes")
}

#[tokio::test]
async fn a_rollout_killed_mid_way_is_finished_by_a_fresh_process_within_the_budget() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let before: BTreeMap<String, Baseline> = settled_nodes(c, &client, "rs", NODES).await?;

    let v1 = write_spec(c, "restart-1.yaml", SPEC)?;
    let v2 = write_spec(
        c,
        "restart-2.yaml",
        &edit(SPEC, "value: training,", "value: training-v2,", 1)?,
    )?;
    let budget = live_budgets(&client, &v1).await?;
    assert_eq!(budget, BTreeMap::from([("h100".into(), 12)]));
    let sampler = Sampler::start(&client, Duration::from_millis(200), budget.clone());

    // ---- the first convergence, killed mid-way ---------------------------------------
    let mut operator = Operator::start(c, "restart-1")?;
    kubectl_apply(c, &v1)?;
    kill_mid_rollout(c, &client, &mut operator, "training", "first rollout").await?;
    let mut operator = Operator::start(c, "restart-2")?;
    wait_converged(c, &client, "restart", &operator, Duration::from_secs(120)).await?;
    let (_, live) = plan_live(&client, "restart").await?;
    ensure!(live.rollout.writes.is_empty(), "{:?}", live.rollout.writes);
    check_exact(&list_nodes(&client).await?, &before, &live).context("after the first rollout")?;

    // ---- a taint change, killed mid-way ----------------------------------------------
    kubectl_apply(c, &v2)?;
    kill_mid_rollout(c, &client, &mut operator, "training-v2", "taint change").await?;
    let (old, _) = progress(&client, "training").await?;
    ensure!(
        old > 0,
        "the kill left no node with the old taint to replace"
    );
    let operator = Operator::start(c, "restart-3")?;
    wait_converged(c, &client, "restart", &operator, Duration::from_secs(120)).await?;

    // Nothing lost: every node exactly as planned (the new taint, Kelvin's owned-taints
    // annotation naming it, no transition), the old taint on none.
    let (_, live) = plan_live(&client, "restart").await?;
    ensure!(live.rollout.writes.is_empty(), "{:?}", live.rollout.writes);
    let nodes = list_nodes(&client).await?;
    check_exact(&nodes, &before, &live).context("after the taint change")?;
    let (old, in_flight) = progress(&client, "training").await?;
    let (new, _) = progress(&client, "training-v2").await?;
    assert_eq!((old, new, in_flight), (0, NODES, 0));

    let seen = sampler.stop().await;
    eprintln!(
        "restart: {} samples, {} watched states, most unavailable {:?}, most in transition {:?}",
        seen.samples, seen.watched, seen.most, seen.most_in_transition
    );
    seen.check(20).with_context(|| operator.log_tail(30))?;
    ensure!(
        seen.most_in_transition.get("h100").copied().unwrap_or(0) > 1,
        "the rollouts never had more than one node in transition: {seen:?}"
    );
    drop(operator);
    Ok(())
}
