//! The API server goes away under the operator (issue 8 §2): killed in the middle of a
//! rollout and started again on the same etcd, then killed again with etcd compacted past
//! everything the operator had seen, so every watch it resumes gets 410 Gone. Measured from
//! outside: the budget by the sampler, the operator's requests by the API server's audit log
//! (the operator runs as a ServiceAccount), the nodes by `check_exact`.
//!
//! 120 kwok nodes in one pool with `maxUnavailable: 10%` (12); adding the pool's NoSchedule
//! taint is disruptive, so the first convergence is a rollout of ten batches.
//!
//! The Lease is 30 s with a 20 s renew deadline here: an outage longer than the renew deadline
//! makes the operator exit on purpose (it can no longer prove it leads; client-go's rule, and
//! kubelet restarts it), which is not what this test is about.
//!
//! A file of its own: it stops its control plane's API server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test: a failure is the report

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use common::{
    Baseline, Operator, Sampler,
    audit::{Call, calls_of, service_account_user},
    check_exact, grant_access_rules, kubectl_apply, list_nodes, live_budgets, plan_live,
    rollout_progress, rollout_spec, settled_nodes, wait_converged, wait_mid_rollout, write_spec,
};
use k8s_openapi::jiff::Timestamp;
use kelvin_e2e::cluster;

const NODES: usize = 120;

const ARGS: [&str; 6] = [
    "--leader-elect-lease-duration",
    "30s",
    "--leader-elect-renew-deadline",
    "20s",
    "--leader-elect-retry-period",
    "1s",
];

/// The operator's calls the API server received at or after `since`.
fn calls_since(c: &kelvin_e2e::Cluster, user: &str, since: Timestamp) -> Result<Vec<Call>> {
    let log = c
        .audit_log()
        .context("this test reads the audit log of its own control plane")?;
    Ok(calls_of(&log, user)?
        .into_iter()
        .filter(|call| call.at >= since)
        .collect())
}

fn is_watch(call: &Call) -> bool {
    call.verb == "watch"
}

/// The resourceVersion a watch resumed from (`resourceVersion=N` in its URI).
fn watch_version(call: &Call) -> Option<u64> {
    let query = call.uri.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("resourceVersion="))?
        .parse()
        .ok()
}

#[tokio::test]
async fn the_operator_rides_out_an_api_server_restart_and_relists_once_after_compaction()
-> Result<()> {
    let c = cluster()?;
    if c.is_external() {
        bail!("this test stops the API server: it needs the harness's own control plane");
    }
    let client = c.client().await?;
    let before: BTreeMap<String, Baseline> = settled_nodes(c, &client, "af", NODES).await?;

    let v1 = write_spec(
        c,
        "outage-1.yaml",
        &rollout_spec("outage", "{example.com/purpose: training}"),
    )?;
    let v2 = write_spec(
        c,
        "outage-2.yaml",
        &rollout_spec("outage", "{example.com/purpose: inference}"),
    )?;
    let budget = live_budgets(&client, &v1).await?;
    assert_eq!(budget, BTreeMap::from([("h100".into(), 12)]));
    let sampler = Sampler::start(&client, Duration::from_millis(200), budget);

    let (_, kubeconfig) = c
        .service_account_client("default", "kelvin-operator")
        .await?;
    grant_access_rules(&client, "default", "kelvin-operator").await?;
    let user = service_account_user("default", "kelvin-operator");
    let mut operator = Operator::start_with(c, "outage", &kubeconfig, &ARGS)?;

    // ---- 1. the API server killed mid-rollout, started again on the same etcd -----------
    kubectl_apply(c, &v1)?;
    wait_mid_rollout(&client, NODES, &operator).await?;
    c.apiserver("stop")?;
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.apiserver("start")?;
    let answering = Instant::now();
    let outage = answering - stopped;
    let (tainted, in_flight) = rollout_progress(&client).await?;
    eprintln!(
        "apiserver_faults: API server down for {outage:?} with {tainted} of {NODES} nodes done, {} in transition",
        in_flight.len()
    );
    // The rollout goes on: the next node write the operator makes, seen from outside.
    let resumed = loop {
        let now = rollout_progress(&client).await?;
        if now != (tainted, in_flight.clone()) {
            break answering.elapsed();
        }
        if answering.elapsed() > Duration::from_secs(60) {
            bail!(
                "the operator made no progress in 60 s after the API server answered again\n{}",
                operator.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("apiserver_faults: the rollout resumed {resumed:?} after the API server answered");
    ensure!(
        resumed <= Duration::from_secs(10),
        "the operator resumed {resumed:?} after the API server answered again (at most 10 s)\n{}",
        operator.log_tail(30)
    );
    wait_converged(c, &client, "outage", &operator, Duration::from_secs(120)).await?;
    operator.check_running()?;
    let (_, live) = plan_live(&client, "outage").await?;
    ensure!(live.rollout.writes.is_empty(), "{:?}", live.rollout.writes);
    check_exact(&list_nodes(&client).await?, &before, &live).context("after the restart")?;

    // ---- 2. etcd compacted while the API server is down: every resumed watch gets 410 --
    // Let the watches settle on their newest resourceVersions (bookmarks), then cut.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cut = Timestamp::now();
    c.apiserver("stop")?;
    let compacted = c.etcd_compact()?;
    c.apiserver("start")?;
    kubectl_apply(c, &v2)?;
    wait_converged(c, &client, "outage", &operator, Duration::from_secs(120)).await?;
    // A few seconds more: a watch that failed to relist would go on retrying meanwhile.
    tokio::time::sleep(Duration::from_secs(5)).await;
    operator.check_running()?;
    let (_, live) = plan_live(&client, "outage").await?;
    ensure!(live.rollout.writes.is_empty(), "{:?}", live.rollout.writes);
    check_exact(&list_nodes(&client).await?, &before, &live).context("after the compaction")?;
    let relabelled = list_nodes(&client)
        .await?
        .iter()
        .filter(|n| {
            common::labels_of(n)
                .get("example.com/purpose")
                .map(String::as_str)
                == Some("inference")
        })
        .count();
    assert_eq!(
        relabelled, NODES,
        "the change after the relist reached every node"
    );

    let calls = calls_since(c, &user, cut)?;
    // A relist of the node cache is a streaming list (a watch asking for the initial events,
    // where the API server offers it, as this one does); of the GpuCluster controller's
    // watch, a LIST (its first page: no continue token).
    let is_relist = |resource: &str, call: &Call| {
        call.resource == resource
            && match resource {
                "nodes" => is_watch(call) && call.uri.contains("sendInitialEvents=true"),
                _ => call.verb == "list" && !call.uri.contains("continue="),
            }
    };
    for resource in ["nodes", "gpuclusters"] {
        let watches: Vec<&Call> = calls
            .iter()
            .filter(|call| call.resource == resource && is_watch(call))
            .collect();
        // The first watch after the restart resumed from before the compaction: that is the
        // one the API server answered 410 Gone (inside the watch stream, so its status is 200).
        let resumed_from = watches.first().and_then(|w| watch_version(w));
        ensure!(
            resumed_from.is_some_and(|rv| rv < compacted),
            "the first {resource} watch after the restart resumed from {resumed_from:?}, \
             expected a resourceVersion before the compaction at {compacted}: {watches:#?}"
        );
        let relists: Vec<&Call> = calls
            .iter()
            .filter(|call| is_relist(resource, call))
            .collect();
        eprintln!(
            "apiserver_faults: after the compaction at {compacted}: {} {resource} watch(es) (the first from {resumed_from:?}), {} relist(s)",
            watches.len(),
            relists.len()
        );
        ensure!(
            relists.len() == 1,
            "expected exactly one relist of {resource} after the compaction, saw {}: {relists:#?}",
            relists.len()
        );
    }
    let node_lists: Vec<&Call> = calls
        .iter()
        .filter(|call| call.resource == "nodes" && call.verb == "list")
        .collect();
    ensure!(
        node_lists.is_empty(),
        "the operator listed nodes beside its watch (the cache's fallback): {node_lists:#?}"
    );

    let seen = sampler.stop().await;
    eprintln!(
        "apiserver_faults: {} samples ({} failed while the API server was down), {} watched states, most unavailable {:?}, most in transition {:?}",
        seen.samples, seen.errors, seen.watched, seen.most, seen.most_in_transition
    );
    seen.check(20).with_context(|| operator.log_tail(30))?;
    ensure!(
        seen.most_in_transition.get("h100").copied().unwrap_or(0) > 1,
        "the rollout never had more than one node in transition: {seen:?}"
    );
    let reconcile_errors = operator.metric_sum("kelvin_reconcile_errors_total")? + 0.0;
    eprintln!("apiserver_faults: {reconcile_errors} failed reconciles over both outages");
    drop(operator);
    Ok(())
}
