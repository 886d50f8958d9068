//! Two `kelvin-operator` replicas against one real control plane: one holds the Lease and
//! acts, the other stands by and writes nothing; kill -9 of the leader hands over within the
//! lease duration; SIGTERM releases the Lease at once. Checked from the Lease object, the
//! replicas' `/metrics` and `/readyz`, and the nodes (4 s leases: `common::LEASE`).
//!
//! A file of its own, so its control plane holds no other test's nodes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a failure is the report

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Node};
use kelvin_e2e::{
    OperatorProcess, SpecNodes, cluster,
    crd::{gpucluster_crd, install_crd},
    repo_root, run, wait_for,
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};

fn holder(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty())
}

#[tokio::test]
async fn one_replica_acts_and_a_standby_takes_over_when_it_dies() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let (crd, _) = gpucluster_crd()?;
    install_crd(&client, &crd).await?;
    let spec = repo_root().join("examples/small/cluster.yaml");
    let set = SpecNodes::from_file(&spec, None)?;
    set.create(&client).await?;
    set.wait_ready(&client, Duration::from_secs(30)).await?;

    let binary = env!("CARGO_BIN_EXE_kelvin-operator");
    let mut replicas = [
        OperatorProcess::start(c, binary.as_ref(), &common::LEASE)?,
        OperatorProcess::start(c, binary.as_ref(), &common::LEASE)?,
    ];
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let first = wait_for("a leader", Duration::from_secs(20), || async {
        Ok(leases
            .get_opt("kelvin-operator")
            .await?
            .as_ref()
            .and_then(holder))
    })
    .await?;
    let (leader, standby) = match replicas
        .iter()
        .position(|r| first.ends_with(&format!("_{}", r.pid())))
    {
        Some(0) => (0, 1),
        Some(_) => (1, 0),
        None => panic!("Lease holder {first} is neither replica"),
    };

    run(c
        .kubectl()
        .args(["apply", "--server-side", "-f"])
        .arg(&spec))?;
    let nodes: Api<Node> = Api::all(client.clone());
    let labelled = |value: &'static str| {
        let nodes = nodes.clone();
        move || {
            let nodes = nodes.clone();
            async move {
                let list = nodes.list(&Default::default()).await?;
                let done = list
                    .items
                    .iter()
                    .filter(|n| {
                        n.metadata.labels.as_ref().is_some_and(|l| {
                            l.get("lab.example.com/purpose").map(String::as_str) == Some(value)
                        })
                    })
                    .count();
                Ok((done == 4).then_some(()))
            }
        }
    };
    wait_for(
        "the leader to label the a100 pool",
        Duration::from_secs(60),
        labelled("notebooks"),
    )
    .await
    .with_context(|| replicas[leader].log_tail(30))?;

    // Exactly one acts: the standby is ready (a healthy standby), leads nothing, wrote no node.
    assert_eq!(replicas[leader].metric("kelvin_leader")?, 1.0);
    assert_eq!(replicas[standby].metric("kelvin_leader")?, 0.0);
    let (code, body) = replicas[standby].get("/readyz")?;
    assert_eq!(
        (code, body.trim()),
        (200, "ok: standby (another replica leads)")
    );
    assert_eq!(
        replicas[standby].metric_sum(r#"kelvin_api_writes_total{verb="apply""#)?,
        0.0,
        "the standby applied nothing"
    );
    assert!(
        replicas[leader].metric(r#"kelvin_api_writes_total{verb="apply",kind="Node"}"#)? >= 8.0
    );

    // kill -9 of the leader: the standby takes the Lease once it expires, and acts.
    replicas[leader].kill()?;
    let killed = std::time::Instant::now();
    let second = wait_for(
        "the standby to take the Lease",
        Duration::from_secs(20),
        || async {
            let lease = leases.get("kelvin-operator").await?;
            Ok(holder(&lease).filter(|h| *h != first))
        },
    )
    .await?;
    let handover = killed.elapsed();
    assert!(
        second.ends_with(&format!("_{}", replicas[standby].pid())),
        "{second}"
    );
    assert!(
        handover >= Duration::from_secs(3),
        "the Lease was taken before it could have expired ({handover:?}): two leaders possible"
    );
    let lease = leases.get("kelvin-operator").await?;
    assert!(lease.spec.as_ref().and_then(|s| s.lease_transitions) >= Some(1));
    eprintln!("leader: kill -9 to hand-over in {handover:?}");

    // The new leader acts on a spec change.
    let clusters: Api<kelvin_crds::v1alpha1::GpuCluster> = Api::all(client.clone());
    let mut lab = clusters.get("lab").await?;
    lab.spec.gpu_pools[0]
        .labels
        .insert("lab.example.com/purpose".into(), "training".into());
    lab.metadata.managed_fields = None;
    lab.status = None;
    clusters
        .patch(
            "lab",
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(&lab),
        )
        .await?;
    wait_for(
        "the new leader to relabel the a100 pool",
        Duration::from_secs(60),
        labelled("training"),
    )
    .await
    .with_context(|| replicas[standby].log_tail(30))?;
    assert_eq!(replicas[standby].metric("kelvin_leader")?, 1.0);

    // SIGTERM: a clean exit that gives the Lease up, so no one waits for it to expire.
    let status = replicas[standby].terminate(Duration::from_secs(20))?;
    assert!(status.success(), "{status}");
    let lease = leases.get("kelvin-operator").await?;
    assert_eq!(holder(&lease), None, "the Lease was released on SIGTERM");
    Ok(())
}
