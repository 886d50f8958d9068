//! Two `kelvin-operator` replicas, each its own ServiceAccount, so the API server's audit log
//! tells their requests apart (issue 8 §2): while one leads only it writes; kill -9 of the
//! leader in the middle of a rollout, and the standby takes the Lease once it has expired and
//! finishes the rollout without the budget ever exceeded (the sampler, from outside, over
//! both replicas).
//!
//! 120 kwok nodes in one pool with `maxUnavailable: 10%` (12): adding the pool's NoSchedule
//! taint is disruptive, a rollout of ten batches. Lease timings `common::LEASE` (4 s).
//!
//! A file of its own, so its control plane holds no other test's nodes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test: a failure is the report

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use common::{
    Baseline, LEASE, Operator, Sampler,
    audit::{calls_of, service_account_user},
    check_exact, grant_access_rules, kubectl_apply, list_nodes, live_budgets, plan_live,
    rollout_progress, rollout_spec, settled_nodes, wait_converged, wait_mid_rollout, write_spec,
};
use k8s_openapi::api::coordination::v1::Lease;
use kelvin_e2e::{cluster, wait_for};
use kube::Api;

const NODES: usize = 120;

fn holder(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty())
}

/// Writes (anything but get/list/watch) of `user` other than its Lease's, from the audit log.
fn writes_of(c: &kelvin_e2e::Cluster, user: &str) -> Result<Vec<String>> {
    let log = c.audit_log().context("this test reads the audit log")?;
    Ok(calls_of(&log, user)?
        .into_iter()
        .filter(|call| !matches!(call.verb.as_str(), "get" | "list" | "watch"))
        .filter(|call| call.resource != "leases")
        .map(|call| format!("{} {} {} -> {}", call.at, call.verb, call.uri, call.code))
        .collect())
}

#[tokio::test]
async fn only_the_leader_writes_and_a_standby_finishes_a_rollout_its_leader_died_in() -> Result<()>
{
    let c = cluster()?;
    let client = c.client().await?;
    let before: BTreeMap<String, Baseline> = settled_nodes(c, &client, "fo", NODES).await?;
    let spec = write_spec(c, "failover.yaml", &rollout_spec("failover", "{}"))?;
    let budget = live_budgets(&client, &spec).await?;
    assert_eq!(budget, BTreeMap::from([("h100".into(), 12)]));

    let mut replicas = Vec::new();
    let mut users = Vec::new();
    for name in ["kelvin-a", "kelvin-b"] {
        let (_, kubeconfig) = c.service_account_client("default", name).await?;
        grant_access_rules(&client, "default", name).await?;
        replicas.push(Operator::start_with(c, name, &kubeconfig, &LEASE)?);
        users.push(service_account_user("default", name));
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let first = wait_for("a leader", Duration::from_secs(30), || async {
        Ok(leases
            .get_opt("kelvin-operator")
            .await?
            .as_ref()
            .and_then(holder))
    })
    .await?;
    let leader = replicas
        .iter()
        .position(|r| first.ends_with(&format!("_{}", r.pid())))
        .with_context(|| format!("Lease holder {first} is neither replica"))?;
    let standby = 1 - leader;
    eprintln!(
        "failover: {first} leads ({} pid {}); {} (pid {}) stands by",
        users[leader],
        replicas[leader].pid(),
        users[standby],
        replicas[standby].pid()
    );

    let sampler = Sampler::start(&client, Duration::from_millis(200), budget);
    kubectl_apply(c, &spec)?;
    wait_mid_rollout(&client, NODES, &replicas[leader]).await?;

    // While both ran, only the leader wrote (the audit log, not the replicas' own word).
    let standby_writes = writes_of(c, &users[standby])?;
    ensure!(
        standby_writes.is_empty(),
        "the standby wrote while another replica led:\n{}",
        standby_writes.join("\n")
    );
    ensure!(
        !writes_of(c, &users[leader])?.is_empty(),
        "the leader wrote nothing"
    );
    replicas[leader].kill_9()?;
    let killed = Instant::now();
    let (tainted, in_flight) = rollout_progress(&client).await?;
    eprintln!(
        "failover: SIGKILLed the leader with {tainted} of {NODES} nodes done and {} in transition",
        in_flight.len()
    );

    let second = wait_for(
        "the standby to take the Lease",
        Duration::from_secs(30),
        || async {
            let lease = leases.get("kelvin-operator").await?;
            Ok(holder(&lease).filter(|h| *h != first))
        },
    )
    .await
    .with_context(|| replicas[standby].log_tail(30))?;
    let handover = killed.elapsed();
    ensure!(
        second.ends_with(&format!("_{}", replicas[standby].pid())),
        "the Lease went to {second}, not the standby"
    );
    eprintln!("failover: kill -9 to hand-over in {handover:?}");
    // Not before the Lease (4 s) could have expired, and within it plus two retry periods.
    ensure!(
        (Duration::from_secs(3)..=Duration::from_secs(8)).contains(&handover),
        "hand-over took {handover:?} with a 4 s Lease"
    );

    wait_converged(
        c,
        &client,
        "failover",
        &replicas[standby],
        Duration::from_secs(120),
    )
    .await?;
    replicas[standby].check_running()?;
    let (_, live) = plan_live(&client, "failover").await?;
    ensure!(live.rollout.writes.is_empty(), "{:?}", live.rollout.writes);
    check_exact(&list_nodes(&client).await?, &before, &live)?;
    let (tainted, in_flight) = rollout_progress(&client).await?;
    assert_eq!((tainted, in_flight.len()), (NODES, 0));

    let seen = sampler.stop().await;
    eprintln!(
        "failover: {} samples, {} watched states, most unavailable {:?}, most in transition {:?}",
        seen.samples, seen.watched, seen.most, seen.most_in_transition
    );
    seen.check(20)
        .with_context(|| replicas[standby].log_tail(30))?;
    ensure!(
        seen.most_in_transition.get("h100").copied().unwrap_or(0) > 1,
        "the rollout never had more than one node in transition: {seen:?}"
    );
    Ok(())
}
