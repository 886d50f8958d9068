//! A scaled-down Cortex (`examples/cortex/cluster.yaml`, 200 kwok nodes) run by the real
//! `kelvin-operator` process (issue 7 §3, scenarios 1, 4, 6 and 7), in one test because each
//! step starts from the state the previous one left:
//!
//! 1. it converges within each pool's disruption budget (sampled from outside), every node
//!    carrying exactly the labels and taints kelvin-core plans for it, and `kubectl get gpuc`
//!    fills every printer column;
//! 2. a steady state writes nothing for 60 s;
//! 3. an over-budget spec applied over the good one sets `Valid=False` with the validation
//!    text and writes no node and no object; the good spec back writes nothing either;
//! 4. deleting the GpuCluster takes Kelvin off every node and deletes its objects, but not
//!    the tenants' Namespaces.
//!
//! A file of its own, so its control plane holds no other test's nodes (and no other
//! GpuCluster: every GpuCluster's writes go through the one field manager `kelvin`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test: a failure is the report

mod common;

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, ensure};
use common::{
    Baseline, Operator, Sampler, Snapshot, baselines, budgets, check_exact, condition,
    condition_is, context, describe_status, edit, kelvin_label_keys, kubectl_apply, labels_of,
    list_nodes, load_spec, name_of, plan_live, taints_of, wait_converged, wait_nodes_settled,
    write_spec,
};
use k8s_openapi::{
    api::core::v1::{Namespace, Pod},
    jiff::Timestamp,
};
use kelvin_core::{observed::Observed, plan::plan};
use kelvin_crds::{node::kelvin_annotations, v1alpha1::GpuCluster};
use kelvin_e2e::{
    SpecNodes, cluster,
    crd::{gpucluster_crd, install_crd},
    repo_root, run,
    third_party::install_third_party_crds,
    wait_for,
};
use kube::Api;

/// Nodes per pool: 2 pools, 200 nodes.
const PER_POOL: usize = 100;
/// The tenants' namespaces of examples/cortex.
const TENANT_NAMESPACES: [&str; 4] = ["fsd-train", "fsd-eval", "optimus-train", "optimus-sim"];
/// The 60 s of issue 7 §3 (steady state: zero writes).
const STEADY: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_scaled_down_cortex_converges_holds_still_refuses_an_over_budget_spec_and_cleans_up()
-> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let (crd, _) = gpucluster_crd()?;
    install_crd(&client, &crd).await?;

    // The example's pools select nodes by labels (sku, hall) and declare `expectedNodes` as
    // design capacity (4,375 each), which sizes power, fabric and quota checks, not the
    // rollout: maxUnavailable and status count the nodes actually matched (docs/spec.md,
    // `expectedNodes`). So the example as it is, on 100 nodes per pool, is a valid, smaller
    // site. (Its tenants' quotas — 50,000 GPUs per namespace, stored by the API server as
    // `50k` — once kept the operator re-applying them forever: this test found that.)
    let spec_path = repo_root().join("examples/cortex/cluster.yaml");
    let spec = load_spec(&spec_path)?;
    let set = SpecNodes::from_file(&spec_path, Some(PER_POOL))?;
    assert_eq!(set.nodes.len(), 2 * PER_POOL);
    set.create(&client).await?;
    set.wait_ready(&client, Duration::from_secs(60))
        .await
        .with_context(|| c.describe())?;
    let before: BTreeMap<String, Baseline> =
        baselines(&wait_nodes_settled(&client, Duration::from_secs(60)).await?);
    assert_eq!(before.len(), 2 * PER_POOL, "only the spec's nodes exist");

    // 5% of 100 matched nodes, rounded up: 5 per pool.
    let budget = budgets(&spec, &set.nodes)?;
    assert_eq!(
        budget,
        BTreeMap::from([("h100-hall-a".into(), 5), ("h100-hall-b".into(), 5)])
    );
    let operator = Operator::start(c, "cortex")?;
    let sampler = Sampler::start(&client, Duration::from_millis(200), budget.clone());

    // ---- 1. Convergence ----------------------------------------------------------------
    let started = std::time::Instant::now();
    kubectl_apply(c, &spec_path)?;
    let gc = wait_converged(c, &client, "cortex", &operator, Duration::from_secs(240)).await?;
    let converged_in = started.elapsed();
    let seen = sampler.seen();
    eprintln!(
        "cortex: 200 nodes converged in {:.1} s; sampler: {} samples, {} watched states, most unavailable {:?}, most in transition {:?}",
        converged_in.as_secs_f64(),
        seen.samples,
        seen.watched,
        seen.most,
        seen.most_in_transition
    );
    seen.check(10)
        .with_context(|| format!("during convergence\n{}", operator.log_tail(20)))?;
    // The rollout went through the budget: adding the pools' NoSchedule taint is disruptive.
    for pool in budget.keys() {
        ensure!(
            seen.most_in_transition.get(pool).copied().unwrap_or(0) >= 1,
            "the sampler never saw pool {pool} in transition: {seen:?}"
        );
    }
    let status = gc.status.clone().unwrap_or_default();
    for pool in &status.pools {
        assert_eq!(
            (
                pool.matched_nodes,
                pool.expected_nodes,
                pool.labelled_nodes,
                pool.max_unavailable
            ),
            (PER_POOL as u64, 4375, PER_POOL as u64, 5),
            "{pool:?}"
        );
    }
    // Kueue is not installed on this control plane: the rest converges and status says so.
    assert_eq!(
        condition_is(&status, "SchedulingPolicies"),
        Some(("False".into(), "ApiNotServed".into())),
        "{}",
        describe_status(Some(&status))
    );
    assert_eq!(
        condition_is(&status, "Valid"),
        Some(("True".into(), "SpecValid".into()))
    );

    // Every node exactly as kelvin-core plans it: the operator's own observation (nodes
    // slimmed the way it slims them) planned with the GpuCluster as stored; nothing is left
    // to write, and each node carries the simulated labels plus the desired ones, taints and
    // Kelvin's annotations exactly.
    let (_, live) = plan_live(&client, "cortex").await?;
    ensure!(
        live.plan.valid && live.rollout.writes.is_empty() && live.rollout.is_settled(),
        "a plan of the converged cluster still writes {} nodes: {:?}",
        live.rollout.writes.len(),
        live.rollout.writes.iter().take(3).collect::<Vec<_>>()
    );
    let nodes = list_nodes(&client).await?;
    check_exact(&nodes, &before, &live)?;
    // Kelvin's DaemonSet pods run on their pool's (or fabric's) nodes only, one per node.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kelvin-system");
    let mut per_pin: BTreeMap<(String, String), usize> = BTreeMap::new();
    for pod in pods.list(&Default::default()).await?.items {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let node = nodes
            .iter()
            .find(|n| Some(name_of(n)) == node_name)
            .with_context(|| format!("pod {pod_name} runs on no known node: {node_name:?}"))?;
        let node_labels = labels_of(node);
        let pin = ["kelvin.dev/pool", "kelvin.dev/fabric"]
            .into_iter()
            .find_map(|key| labels.get(key).map(|v| (key.to_owned(), v.clone())))
            .with_context(|| format!("pod {pod_name} carries no pool or fabric label"))?;
        assert_eq!(
            node_labels.get(&pin.0),
            Some(&pin.1),
            "pod {pod_name} runs on {} outside its {}",
            name_of(node),
            pin.0
        );
        *per_pin.entry(pin).or_default() += 1;
    }
    for hall in ["a", "b"] {
        let pool = ("kelvin.dev/pool".to_owned(), format!("h100-hall-{hall}"));
        assert_eq!(per_pin.get(&pool), Some(&PER_POOL), "{per_pin:?}");
    }
    // The same desired state as the offline plan of the spec file over the simulated nodes
    // (`kelvin plan --offline`, no inventory).
    let offline = plan(&spec, &Observed::new(set.nodes.clone(), Timestamp::now())?)?;
    for node in &set.nodes {
        let want = |planned: &kelvin_core::plan::Planned| {
            planned.nodes.get(&node.name).flatten().map(|s| {
                (
                    s.labels()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<Vec<_>>(),
                    s.taints.to_vec(),
                )
            })
        };
        let (o, l) = (want(&offline), want(&live));
        assert!(o.is_some(), "{}: offline plan has no state", node.name);
        assert_eq!(o, l, "{}: offline and live desired state differ", node.name);
    }
    // Spot check of what that means for one node of each pool.
    for (name, hall) in [("h100-hall-a-00000", "a"), ("h100-hall-b-00000", "b")] {
        let node = nodes.iter().find(|n| name_of(n) == name).unwrap();
        let labels = labels_of(node);
        assert_eq!(labels["kelvin.dev/pool"], format!("h100-hall-{hall}"));
        assert_eq!(labels["kelvin.dev/fabric"], format!("ib-hall-{hall}"));
        assert_eq!(
            labels["kelvin.dev/cooling-zone"],
            format!("hall-{hall}-loop-1")
        );
        assert_eq!(labels["cortex.example.com/hall"], hall);
        assert!(
            taints_of(node).contains(&(
                "kelvin.dev/dedicated".into(),
                Some("training".into()),
                "NoSchedule".into()
            )),
            "{name}: {:?}",
            taints_of(node)
        );
    }

    // `kubectl get gpuc`: every printer column filled.
    let table = run(c.kubectl().args(["get", "gpuc", "cortex"]))?;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "POOLS", "NODES", "GPUS", "POWER-MW", "READY", "AGE"],
        "{table}"
    );
    assert!(!table.contains("<none>"), "{table}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row.len(), header.len(), "{table}");
    let power = status.power.clone().unwrap();
    assert_eq!(&row[..4], ["cortex", "2", "200", "1600"], "{table}");
    // 8,750 x 10.2 kW x PUE 1.3 at design capacity.
    assert!((power.facility_mw - 116.025).abs() < 1e-6, "{power:?}");
    assert!(
        (row[4].parse::<f64>()? - power.facility_mw).abs() < 1e-3,
        "{table}"
    );
    assert_eq!(
        row[5],
        condition(&status, "Ready").unwrap().status,
        "{table}"
    );

    // ---- 2. Steady state: 60 s without a write -----------------------------------------
    // kwok's node-heartbeat stage rewrites each node's status every 600–1,210 s
    // (nodes/status; the Lease is renewed more often), and the DaemonSet controller owns
    // DaemonSet status. Within this test (well under 600 s after the nodes were created) no
    // heartbeat has come yet, so in practice every resourceVersion stays put; should one move
    // through a status write only, that node or DaemonSet is compared with its status and the
    // status subresource's managedFields entries dropped (common's `fingerprint`), where any
    // write by Kelvin — labels, annotations, taints, its managedFields entries and their
    // `time` — still shows. Every other object of Kelvin's, and the GpuCluster (whose status
    // only Kelvin writes), must keep its resourceVersion.
    let reconciles_before = operator.reconciles().len();
    let writes_before = writes_but_leases(&operator)?;
    let snapshot = Snapshot::take(&client, "cortex").await?;
    assert!(
        snapshot.count_kind("DaemonSet") >= 4,
        "device plugins and RDMA plugins: {:?}",
        snapshot.objects.keys()
    );
    tokio::time::sleep(STEADY).await;
    let after = Snapshot::take(&client, "cortex").await?;
    let (changes, status_only) = snapshot.changes(&after);
    eprintln!(
        "cortex steady state: {} nodes and {} objects recorded; {status_only} moved by status writes only",
        snapshot.nodes.len(),
        snapshot.objects.len()
    );
    ensure!(
        changes.is_empty(),
        "in a steady state, {} things changed in {STEADY:?}:\n{}\n{}",
        changes.len(),
        changes.join("\n"),
        context(c, &client, "cortex", &operator).await
    );
    // The operator's own count agrees: no write but its Lease renewals.
    let writes_after = writes_but_leases(&operator)?;
    ensure!(
        writes_after == writes_before,
        "kelvin_api_writes_total (Leases aside) went from {writes_before} to {writes_after} in a steady state"
    );
    // And the operator was awake all along (it requeues every 5 s while Ready=False, and node
    // heartbeats wake it), deciding each time to write nothing.
    let reconciles = operator.reconciles();
    let window = &reconciles[reconciles_before..];
    ensure!(
        window.len() >= 5,
        "only {} reconciles in {STEADY:?}",
        window.len()
    );
    for r in window {
        ensure!(
            r["objects"] == 0 && r["node_writes"] == 0 && r["deleted"] == 0,
            "a steady-state reconcile wrote: {r}"
        );
    }

    // ---- 3. An over-budget spec over the good one --------------------------------------
    // 116.025 MW of facility load against 100 MW.
    let good_text = std::fs::read_to_string(&spec_path)?;
    let bad_text = edit(&good_text, "powerBudgetMW: 130", "powerBudgetMW: 100", 1)?;
    let bad_path = write_spec(c, "cortex-over-budget.yaml", &bad_text)?;
    let bad = load_spec(&bad_path)?;
    let snapshot = Snapshot::take(&client, "cortex").await?;
    let reconciles_before = operator.reconciles().len();
    kubectl_apply(c, &bad_path)?;
    let clusters: Api<GpuCluster> = Api::all(client.clone());
    let invalid = wait_for(
        "GpuCluster cortex to be Valid=False",
        Duration::from_secs(60),
        || async {
            let gc = clusters.get("cortex").await?;
            let status = gc.status.clone().unwrap_or_default();
            Ok((status.observed_generation == gc.metadata.generation
                && condition_is(&status, "Valid").is_some_and(|(s, _)| s == "False"))
            .then_some(status))
        },
    )
    .await
    .with_context(|| "over-budget spec".to_owned())?;
    // A few more reconcile periods of the invalid spec (5 s each, node events sooner).
    wait_for(
        "three reconciles of the over-budget spec",
        Duration::from_secs(60),
        || async {
            let invalid_passes = operator.reconciles()[reconciles_before..]
                .iter()
                .filter(|r| r["valid"] == false)
                .count();
            Ok((invalid_passes >= 3).then_some(()))
        },
    )
    .await
    .with_context(|| operator.log_tail(20))?;
    // The message is the validation text: the same findings kelvin-core reports for the spec.
    let valid = condition(&invalid, "Valid").unwrap();
    assert_eq!(valid.reason, "SpecInvalid");
    let expected = plan(&bad, &Observed::new(set.nodes.clone(), Timestamp::now())?)?;
    let errors: Vec<String> = expected.plan.errors.iter().map(|d| d.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(valid.message, errors[0]);
    assert!(
        valid.message.contains(
            "facility load 116.03 MW (IT 89.25 MW x PUE 1.3) exceeds the budget of 100.00 MW by 16.03 MW"
        ),
        "{}",
        valid.message
    );
    assert!(
        valid.message.contains("spec.site.powerBudgetMW"),
        "{}",
        valid.message
    );
    assert_eq!(
        condition_is(&invalid, "PowerWithinBudget"),
        Some(("False".into(), "OverBudget".into()))
    );
    assert_eq!(
        condition_is(&invalid, "Ready"),
        Some(("False".into(), "SpecInvalid".into()))
    );
    // No node written, no object of Kelvin's changed (the GpuCluster itself changed: new spec,
    // new status).
    let after = Snapshot::take(&client, "cortex").await?;
    let (changes, _) = snapshot.changes(&after);
    let changes: Vec<&String> = changes
        .iter()
        .filter(|c| !c.starts_with("the GpuCluster"))
        .collect();
    ensure!(
        changes.is_empty(),
        "an invalid spec changed {} things:\n{changes:#?}\n{}",
        changes.len(),
        operator.log_tail(20)
    );
    for r in &operator.reconciles()[reconciles_before..] {
        if r["valid"] == false {
            ensure!(
                r["objects"] == 0 && r["node_writes"] == 0 && r["deleted"] == 0,
                "a reconcile of the invalid spec wrote: {r}"
            );
        }
    }

    // The good spec back: valid and converged again, and nothing to write on nodes or
    // objects (their desired state never changed).
    kubectl_apply(c, &spec_path)?;
    let gc = wait_converged(c, &client, "cortex", &operator, Duration::from_secs(60)).await?;
    assert_eq!(
        condition_is(gc.status.as_ref().unwrap(), "Valid"),
        Some(("True".into(), "SpecValid".into()))
    );
    let back = Snapshot::take(&client, "cortex").await?;
    let (changes, _) = snapshot.changes(&back);
    let changes: Vec<&String> = changes
        .iter()
        .filter(|c| !c.starts_with("the GpuCluster"))
        .collect();
    ensure!(
        changes.is_empty(),
        "the good spec back changed {} things:\n{changes:#?}",
        changes.len()
    );

    // ---- 3b. Kueue's own CRDs installed: the operator writes its objects, they are
    // accepted, and the GpuCluster turns Ready.
    install_third_party_crds(c, &client).await?;
    let ready = wait_for(
        "GpuCluster cortex to be Ready with Kueue served",
        Duration::from_secs(60),
        || async {
            let gc = clusters.get("cortex").await?;
            let status = gc.status.unwrap_or_default();
            Ok(condition_is(&status, "Ready")
                .is_some_and(|(s, _)| s == "True")
                .then_some(status))
        },
    )
    .await
    .with_context(|| operator.log_tail(20))?;
    assert_eq!(
        condition_is(&ready, "SchedulingPolicies"),
        Some(("True".into(), "Applied".into()))
    );
    let api =
        kelvin_operator::api_client::ApiClient::new(client.clone(), Default::default(), 0.0, 1);
    let apis = kelvin_operator::observe::served_apis(&api).await?;
    assert!(apis.kueue, "Kueue's API is served now");
    let owned = kelvin_operator::observe::owned_objects(&api, "cortex", apis).await?;
    let count = |kind: &str| owned.keys().filter(|k| k.kind == kind).count();
    // 2 pools, 2 tenants over 4 namespaces, 2 fabrics (examples/cortex).
    assert_eq!(
        [
            count("ResourceFlavor"),
            count("ClusterQueue"),
            count("LocalQueue"),
            count("Topology")
        ],
        [2, 2, 4, 2],
        "{:?}",
        owned.keys().collect::<Vec<_>>()
    );
    let table = run(c.kubectl().args(["get", "gpuc", "cortex", "--no-headers"]))?;
    assert!(table.contains("True"), "READY column: {table}");

    let seen = sampler.stop().await;
    seen.check(50).context("over the whole test")?;

    // ---- 4. Delete --------------------------------------------------------------------
    clusters.delete("cortex", &Default::default()).await?;
    wait_for(
        "GpuCluster cortex to be gone",
        Duration::from_secs(90),
        || async { Ok(clusters.get_opt("cortex").await?.is_none().then_some(())) },
    )
    .await
    .with_context(|| operator.log_tail(20))?;
    // Every node back to exactly what it carried before Kelvin.
    for node in list_nodes(&client).await? {
        let name = name_of(&node);
        let base = &before[&name];
        assert_eq!(labels_of(&node), base.labels, "{name}: labels");
        assert_eq!(taints_of(&node), base.taints, "{name}: taints");
        let annotations =
            kelvin_annotations(node.metadata.annotations.as_ref().into_iter().flatten());
        assert!(annotations.is_empty(), "{name}: {annotations:?}");
        assert!(kelvin_label_keys(&node).is_empty(), "{name}");
    }
    // Kelvin's objects gone, but for the Namespaces: tenants' and kelvin-system.
    let api =
        kelvin_operator::api_client::ApiClient::new(client.clone(), Default::default(), 0.0, 1);
    let apis = kelvin_operator::observe::served_apis(&api).await?;
    let left = kelvin_operator::observe::owned_objects(&api, "cortex", apis).await?;
    let not_namespaces: Vec<String> = left
        .keys()
        .filter(|k| k.kind != "Namespace")
        .map(ToString::to_string)
        .collect();
    assert!(not_namespaces.is_empty(), "left behind: {not_namespaces:?}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in TENANT_NAMESPACES {
        let ns = namespaces
            .get_opt(name)
            .await?
            .with_context(|| format!("namespace {name} was deleted"))?;
        assert!(ns.metadata.owner_references.is_none(), "{name}");
        assert!(ns.metadata.deletion_timestamp.is_none(), "{name}");
    }
    let warnings = operator.warnings();
    eprintln!(
        "cortex: operator logged {} warnings{}",
        warnings.len(),
        warnings
            .first()
            .map(|w| format!(", first: {w}"))
            .unwrap_or_default()
    );
    drop(operator);
    Ok(())
}

/// Writes the operator counted, its Lease's aside (renewals go on in any steady state).
fn writes_but_leases(operator: &Operator) -> Result<f64> {
    Ok(operator.metric_sum("kelvin_api_writes_total")?
        - operator.metric_sum(r#"kelvin_api_writes_total{verb="update",kind="Lease"}"#)?
        - operator.metric_sum(r#"kelvin_api_writes_total{verb="create",kind="Lease"}"#)?)
}
