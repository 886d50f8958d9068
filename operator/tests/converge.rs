//! The real `kelvin-operator` process against a real control plane (DESIGN.md §6): a
//! GpuCluster applied with kubectl converges the nodes kwok runs, and the properties that
//! matter are checked from outside, by polling the API server — never from the operator's log:
//! the disruption budget (nodes carrying `kelvin.dev/transition` per pool), foreign labels and
//! taints kept, tenant namespaces without owner references.
//!
//! A file of its own, so its control plane holds no other test's nodes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a failure is the report

mod common;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result};
use k8s_openapi::api::{
    apps::v1::DaemonSet,
    core::v1::{Namespace, Node},
};
use kelvin_core::constants::{POOL_LABEL, TRANSITION_ANNOTATION};
use kelvin_crds::v1alpha1::GpuCluster;
use kelvin_e2e::{
    OperatorProcess, SpecNodes, cluster,
    crd::{gpucluster_crd, install_crd},
    repo_root, run, wait_for,
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};

#[tokio::test]
async fn a_gpucluster_converges_within_the_budget_and_keeps_what_is_not_kelvins() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let (crd, _) = gpucluster_crd()?;
    install_crd(&client, &crd).await?;

    let spec = repo_root().join("examples/small/cluster.yaml");
    let set = SpecNodes::from_file(&spec, None)?;
    set.create(&client).await?;
    set.wait_ready(&client, Duration::from_secs(30))
        .await
        .with_context(|| c.describe())?;
    let nodes: Api<Node> = Api::all(client.clone());
    // Someone else's label and taint on a pool node, with a key Kelvin also uses for taints.
    let foreign = &set.nodes[0].name;
    let patch = serde_json::json!({
        "metadata": {"labels": {"team.example.com/owner": "infra"}},
        "spec": {"taints": [{"key": "lab.example.com/ci", "value": "manual", "effect": "PreferNoSchedule"}]},
    });
    nodes
        .patch(foreign, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;

    // The operator runs as a ServiceAccount with exactly the rules kelvin-core lists (what
    // docs/operator.md and the chart grant): a missing rule fails this test.
    let (_, kubeconfig) = c
        .service_account_client("default", "kelvin-operator")
        .await?;
    common::grant_access_rules(&client, "default", "kelvin-operator").await?;
    let operator = OperatorProcess::start_as(
        c,
        &kubeconfig,
        env!("CARGO_BIN_EXE_kelvin-operator").as_ref(),
        &[],
    )?;

    // The sampler: how many nodes of each pool carry a transition at once, from outside.
    let stop = Arc::new(AtomicBool::new(false));
    let most_in_flight = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (nodes, stop, most, samples) = (
            nodes.clone(),
            stop.clone(),
            most_in_flight.clone(),
            samples.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(list) = nodes.list(&ListParams::default()).await {
                    let mut per_pool: BTreeMap<String, usize> = BTreeMap::new();
                    for node in &list.items {
                        let in_flight = node
                            .metadata
                            .annotations
                            .as_ref()
                            .is_some_and(|a| a.contains_key(TRANSITION_ANNOTATION));
                        let pool = node
                            .metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(POOL_LABEL))
                            .cloned();
                        if let (true, Some(pool)) = (in_flight, pool) {
                            *per_pool.entry(pool).or_default() += 1;
                        }
                    }
                    let worst = per_pool.values().copied().max().unwrap_or(0);
                    most.fetch_max(worst, Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    run(c
        .kubectl()
        .args(["apply", "--server-side", "-f"])
        .arg(&spec))?;
    let clusters: Api<GpuCluster> = Api::all(client.clone());
    // Kueue is not installed here: everything else converges, and the status says what is missing.
    let ready = wait_for(
        "GpuCluster lab to converge",
        Duration::from_secs(60),
        || async {
            let lab = clusters.get("lab").await?;
            let status = lab.status.clone().unwrap_or_default();
            let condition = |type_: &str| {
                status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == type_)
                    .map(|c| (c.status.clone(), c.reason.clone()))
            };
            let converged = condition("Progressing") == Some(("False".into(), "Converged".into()));
            let plugins_ready = !status.pools.is_empty()
                && status
                    .pools
                    .iter()
                    .all(|p| p.device_plugin_desired == 4 && p.device_plugin_ready == 4);
            Ok((converged
                && plugins_ready
                && status.observed_generation == lab.metadata.generation)
                .then_some(status))
        },
    )
    .await
    .with_context(|| {
        let status =
            run(c
                .kubectl()
                .args(["get", "gpuc", "lab", "-o", "jsonpath={.status.conditions}"]));
        format!(
            "{}\nconditions: {status:?}\noperator log:\n{}",
            c.describe(),
            operator.log_tail(40)
        )
    });
    stop.store(true, Ordering::Relaxed);
    sampler.await?;
    let status = ready?;
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap()
            .clone()
    };
    let scheduling = condition("SchedulingPolicies");
    assert_eq!(
        (scheduling.status.as_str(), scheduling.reason.as_str()),
        ("False", "ApiNotServed")
    );
    assert!(
        scheduling
            .message
            .starts_with("kueue.x-k8s.io/v1beta2 is not served"),
        "{}",
        scheduling.message
    );
    let ready = condition("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "SchedulingPoliciesMissing")
    );

    // Every pool node labelled; the a100 pool's MIG layout came one node at a time.
    let list = nodes.list(&ListParams::default()).await?;
    let pooled: Vec<&Node> = list
        .items
        .iter()
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(POOL_LABEL))
        })
        .collect();
    assert_eq!(pooled.len(), 8);
    for pool in &status.pools {
        assert_eq!(
            (pool.matched_nodes, pool.labelled_nodes, pool.in_transition),
            (4, 4, 0),
            "{pool:?}"
        );
    }
    assert!(samples.load(Ordering::Relaxed) > 5, "the sampler ran");
    assert_eq!(
        most_in_flight.load(Ordering::Relaxed),
        1,
        "maxUnavailable of 4-node pools is 1: at most one node of a pool in transition at any sample"
    );

    // Someone else's label and taint stayed; Kelvin's taint was added beside it.
    let node = nodes.get(foreign).await?;
    assert_eq!(
        node.metadata.labels.as_ref().unwrap()["team.example.com/owner"],
        "infra"
    );
    let taints: Vec<String> = node
        .spec
        .unwrap()
        .taints
        .unwrap_or_default()
        .iter()
        .map(|t| {
            format!(
                "{}={}:{}",
                t.key,
                t.value.clone().unwrap_or_default(),
                t.effect
            )
        })
        .collect();
    assert!(
        taints.contains(&"lab.example.com/ci=manual:PreferNoSchedule".to_owned()),
        "{taints:?}"
    );

    // Tenant namespaces exist, labelled, with no owner reference; the plugins run.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in ["research", "ci", "ci-nightly"] {
        let ns = namespaces.get(name).await?;
        assert!(
            ns.metadata.owner_references.is_none(),
            "{name}: {:?}",
            ns.metadata.owner_references
        );
    }
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), "kelvin-system");
    let plugin = daemon_sets.get("kelvin-device-plugin-a100-mig").await?;
    assert_eq!(plugin.status.map(|s| s.number_ready), Some(4));

    // The operator's own view, from its endpoints: it leads, it is ready, it counted its
    // writes and the pools' nodes.
    assert_eq!(operator.get("/readyz")?.0, 200);
    assert_eq!(operator.metric("kelvin_leader")?, 1.0);
    assert!(
        operator.metric(r#"kelvin_api_writes_total{verb="apply",kind="Node"}"#)? >= 8.0,
        "every pool node had its labels applied"
    );
    for pool in ["a100-mig", "l40s-shared"] {
        let series = format!(r#"kelvin_nodes_managed{{cluster="lab",pool="{pool}"}}"#);
        assert_eq!(operator.metric(&series)?, 4.0, "{series}");
    }
    assert!(operator.metric(r#"kelvin_reconciles_total{controller="gpucluster"}"#)? >= 2.0);
    // Events tell people what changed: the missing Kueue API is a Warning.
    let events = run(c.kubectl().args([
        "get",
        "events",
        "-A",
        "--field-selector",
        "involvedObject.kind=GpuCluster,involvedObject.name=lab",
        "-o",
        r#"jsonpath={range .items[*]}{.type} {.reason}{"\n"}{end}"#,
    ]))?;
    assert!(events.contains("Warning ApiNotServed"), "{events}");
    assert!(events.contains("Normal Converged"), "{events}");

    // Deleting the GpuCluster takes Kelvin off every node (finalizer kelvin.dev/cleanup) and
    // deletes its objects, but never the tenants' namespaces.
    let lab = clusters.get("lab").await?;
    assert_eq!(
        lab.metadata.finalizers.as_deref(),
        Some(&["kelvin.dev/cleanup".to_owned()][..])
    );
    clusters.delete("lab", &Default::default()).await?;
    wait_for(
        "GpuCluster lab to be gone",
        Duration::from_secs(60),
        || async {
            Ok(match clusters.get_opt("lab").await? {
                None => Some(()),
                Some(_) => None,
            })
        },
    )
    .await
    .with_context(|| c.describe())?;
    drop(operator);
    let kelvins = |key: &str| {
        key.starts_with("kelvin.dev/pool")
            || key.starts_with("kelvin.dev/fabric")
            || key.starts_with("kelvin.dev/cooling-zone")
            || key.starts_with("network.topology.nvidia.com/")
            || key == "nvidia.com/mig.config"
            || key == "lab.example.com/purpose"
    };
    for node in nodes.list(&ListParams::default()).await?.items {
        let name = node.metadata.name.clone().unwrap_or_default();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let left: Vec<&String> = labels.keys().filter(|k| kelvins(k)).collect();
        assert!(left.is_empty(), "{name} keeps Kelvin's labels {left:?}");
        let annotations = node.metadata.annotations.clone().unwrap_or_default();
        assert!(
            !annotations.keys().any(|k| k.starts_with("kelvin.dev/")),
            "{name} keeps Kelvin's annotations {annotations:?}"
        );
        let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
        assert!(
            !taints
                .iter()
                .any(|t| t.key == "lab.example.com/ci" && t.effect == "NoSchedule"),
            "{name} keeps Kelvin's taint: {taints:?}"
        );
        if &name == foreign {
            assert_eq!(labels["team.example.com/owner"], "infra");
            assert!(
                taints.iter().any(|t| t.effect == "PreferNoSchedule"),
                "{taints:?}"
            );
        }
    }
    for name in ["research", "ci", "ci-nightly"] {
        assert!(
            namespaces.get_opt(name).await?.is_some(),
            "namespace {name} was deleted"
        );
    }
    assert!(
        daemon_sets
            .get_opt("kelvin-device-plugin-a100-mig")
            .await?
            .is_none()
    );
    Ok(())
}
