//! Pools' selectors change under the real `kelvin-operator` process (issue 7 §3, scenarios 2
//! and 3): nodes move from pool `alpha` to pool `beta`, then some leave Kelvin entirely; a node
//! matched by both pools is left untouched throughout and reported in status; someone else's
//! labels and taints — including a taint with the very key and effect of the pools' own —
//! survive every step; and the disruption budget holds, sampled from outside.
//!
//! 24 kwok nodes, `mv-00000`..`mv-00023`, 4 per rack (racks 0–5); pools select by rack:
//!
//! | step | alpha        | beta            | what moves                          |
//! |------|--------------|-----------------|-------------------------------------|
//! | 1    | racks 0,1,2  | racks 3,4,5     | (first convergence)                 |
//! | 2    | racks 0,1    | racks 2,3,4,5   | rack 2 (mv-00008..11): alpha -> beta |
//! | 3    | racks 0,1    | racks 2,3,4     | rack 5 (mv-00020..23): beta -> none  |
//!
//! plus `mvx-01000` on rack "99", which both pools list in every step.
//!
//! A file of its own, so its control plane holds no other test's nodes or GpuClusters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test: a failure is the report

mod common;

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, ensure};
use common::{
    Baseline, Operator, Sampler, TaintId, baselines, budgets, check_exact, condition, condition_is,
    edit, fingerprint, kelvin_label_keys, kubectl_apply, labels_of, list_nodes, load_spec, name_of,
    plan_live, resource_version, taints_of, wait_converged, wait_nodes_settled, write_spec,
};
use k8s_openapi::api::core::v1::Node;
use kelvin_crds::node::kelvin_annotations;
use kelvin_e2e::{
    GpuNodes, cluster,
    crd::{gpucluster_crd, install_crd},
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};

const SPEC: &str = r#"apiVersion: kelvin.dev/v1alpha1
kind: GpuCluster
metadata:
  name: moves
spec:
  site: {powerBudgetMW: 1, pue: 1.2}
  coolingZones:
  - name: hall-a
    cooling: Liquid
    capacityKW: 500
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
  - name: alpha
    nodeSelector:
      matchLabels: {kelvin.dev/sku: hgx-h100}
      matchExpressions: [{key: kelvin.dev/rack, operator: In, values: ["0", "1", "2", "99"]}]
    expectedNodes: 12
    accelerator: {vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}
    hostPowerWatts: 4600
    fabric: ib
    labels: {team.example.com/pool: alpha}
    taints: [{key: kelvin.dev/dedicated, value: alpha, effect: NoSchedule}]
    maxUnavailable: 2
  - name: beta
    nodeSelector:
      matchLabels: {kelvin.dev/sku: hgx-h100}
      matchExpressions: [{key: kelvin.dev/rack, operator: In, values: ["3", "4", "5", "99"]}]
    expectedNodes: 12
    accelerator: {vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}
    hostPowerWatts: 4600
    fabric: ib
    labels: {team.example.com/pool: beta}
    taints: [{key: kelvin.dev/dedicated, value: beta, effect: NoSchedule}]
    maxUnavailable: 2
"#;

/// The node both pools match.
const CONFLICT: &str = "mvx-01000";
/// Someone else's label and PreferNoSchedule taint: on a node that stays in alpha, one that
/// moves to beta, one that leaves Kelvin.
const FOREIGN: [&str; 3] = ["mv-00000", "mv-00008", "mv-00020"];
/// A foreign `kelvin.dev/dedicated=foreign:NoSchedule` (the pools' taint key and effect), on a
/// node that stays, one that moves, one that leaves.
const SAME_KEY: [&str; 3] = ["mv-00001", "mv-00009", "mv-00021"];

fn foreign_label() -> (String, String) {
    ("team.example.com/owner".into(), "infra".into())
}

fn foreign_taint() -> TaintId {
    (
        "lab.example.com/ci".into(),
        Some("manual".into()),
        "PreferNoSchedule".into(),
    )
}

fn same_key_taint() -> TaintId {
    (
        "kelvin.dev/dedicated".into(),
        Some("foreign".into()),
        "NoSchedule".into(),
    )
}

fn pool_taint(pool: &str) -> TaintId {
    (
        "kelvin.dev/dedicated".into(),
        Some(pool.into()),
        "NoSchedule".into(),
    )
}

/// The node at `name` in `nodes`.
fn node<'a>(nodes: &'a [Node], name: &str) -> &'a Node {
    nodes
        .iter()
        .find(|n| name_of(n) == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

/// Checks what every step must keep: foreign labels and taints where they were put, the
/// same-key foreign taint alone in its key and effect, the conflicting node untouched.
fn check_kept(nodes: &[Node], conflict_before: &serde_json::Value, step: &str) -> Result<()> {
    let (key, value) = foreign_label();
    for name in FOREIGN {
        let n = node(nodes, name);
        ensure!(
            labels_of(n).get(&key) == Some(&value),
            "{step}: {name} lost the foreign label: {:?}",
            labels_of(n)
        );
        ensure!(
            taints_of(n).contains(&foreign_taint()),
            "{step}: {name} lost the foreign taint: {:?}",
            taints_of(n)
        );
    }
    for name in SAME_KEY {
        let same: Vec<TaintId> = taints_of(node(nodes, name))
            .into_iter()
            .filter(|(k, _, e)| k == "kelvin.dev/dedicated" && e == "NoSchedule")
            .collect();
        ensure!(
            same == [same_key_taint()],
            "{step}: {name}: the foreign kelvin.dev/dedicated=foreign:NoSchedule was replaced or removed: {same:?}"
        );
    }
    // kwok's heartbeat may rewrite the node's status in between (nodes/status, every
    // 600–1,210 s): everything but status must be as before, resourceVersion included unless
    // only the status subresource moved it.
    let after = serde_json::to_value(node(nodes, CONFLICT))?;
    if resource_version(&after) != resource_version(conflict_before) {
        ensure!(
            fingerprint(&after) == fingerprint(conflict_before),
            "{step}: {CONFLICT}, matched by both pools, was written:\nbefore {}\nafter  {}",
            fingerprint(conflict_before),
            fingerprint(&after)
        );
        eprintln!("{step}: {CONFLICT}'s resourceVersion moved by a status write only");
    }
    Ok(())
}

#[tokio::test]
async fn selector_changes_move_nodes_between_pools_and_out_within_the_budget() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let (crd, _) = gpucluster_crd()?;
    install_crd(&client, &crd).await?;

    let pool_nodes = GpuNodes::new("mv", 24);
    let mut conflict = GpuNodes::new("mvx", 1).label("kelvin.dev/rack", "99");
    conflict.start = 1000;
    pool_nodes.create(&client).await?;
    conflict.create(&client).await?;
    pool_nodes
        .wait_ready(&client, Duration::from_secs(60))
        .await
        .with_context(|| c.describe())?;
    conflict
        .wait_ready(&client, Duration::from_secs(60))
        .await
        .with_context(|| c.describe())?;

    // Someone else's label and taints, before Kelvin starts.
    let nodes_api: Api<Node> = Api::all(client.clone());
    for name in FOREIGN {
        let (key, value) = foreign_label();
        let (tk, tv, te) = foreign_taint();
        let patch = serde_json::json!({
            "metadata": {"labels": {key: value}},
            "spec": {"taints": [{"key": tk, "value": tv, "effect": te}]},
        });
        nodes_api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    for name in SAME_KEY {
        let (tk, tv, te) = same_key_taint();
        let patch =
            serde_json::json!({"spec": {"taints": [{"key": tk, "value": tv, "effect": te}]}});
        nodes_api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let listed = wait_nodes_settled(&client, Duration::from_secs(60)).await?;
    assert_eq!(listed.len(), 25);
    let before: BTreeMap<String, Baseline> = baselines(&listed);
    let conflict_before = serde_json::to_value(node(&listed, CONFLICT))?;

    let v1 = write_spec(c, "moves-1.yaml", SPEC)?;
    let v2_text = edit(
        SPEC,
        r#"values: ["0", "1", "2", "99"]"#,
        r#"values: ["0", "1", "99"]"#,
        1,
    )?;
    let v2_text = edit(
        &v2_text,
        r#"values: ["3", "4", "5", "99"]"#,
        r#"values: ["2", "3", "4", "5", "99"]"#,
        1,
    )?;
    let v2 = write_spec(c, "moves-2.yaml", &v2_text)?;
    let v3_text = edit(
        &v2_text,
        r#"values: ["2", "3", "4", "5", "99"]"#,
        r#"values: ["2", "3", "4", "99"]"#,
        1,
    )?;
    let v3 = write_spec(c, "moves-3.yaml", &v3_text)?;

    let slim: Vec<_> = listed
        .iter()
        .cloned()
        .map(kelvin_operator::observe::slim)
        .collect();
    // maxUnavailable 2 (a count) in every step, whatever the pools' sizes.
    let budget = budgets(&load_spec(&v1)?, &slim)?;
    assert_eq!(
        budget,
        BTreeMap::from([("alpha".into(), 2), ("beta".into(), 2)])
    );
    for spec in [&v2, &v3] {
        assert_eq!(budgets(&load_spec(spec)?, &slim)?, budget);
    }

    let operator = Operator::start(c, "moves")?;
    let sampler = Sampler::start(&client, Duration::from_millis(50), budget.clone());

    // ---- step 1 -----------------------------------------------------------------------
    kubectl_apply(c, &v1)?;
    let gc = wait_converged(c, &client, "moves", &operator, Duration::from_secs(90)).await?;
    let status = gc.status.clone().unwrap_or_default();
    let counts: Vec<(String, u64)> = status
        .pools
        .iter()
        .map(|p| (p.name.clone(), p.matched_nodes))
        .collect();
    assert_eq!(counts, [("alpha".into(), 12), ("beta".into(), 12)]);
    // Scenario 3: the node matched by both pools is reported, named with both pools.
    assert_eq!(
        condition_is(&status, "NodeConflicts"),
        Some(("True".into(), "NodesLeftAlone".into()))
    );
    let message = &condition(&status, "NodeConflicts").unwrap().message;
    assert!(
        message.starts_with("1 node is left alone: ")
            && message.contains(&format!("node {CONFLICT} is matched by both"))
            && message.contains("(alpha)")
            && message.contains("(beta)"),
        "{message}"
    );
    assert_eq!(
        condition_is(&status, "Ready"),
        Some(("True".into(), "Converged".into())),
        "a conflict leaves the spec valid and the rest converged"
    );
    let (_, live) = plan_live(&client, "moves").await?;
    assert_eq!(live.plan.nodes_left_alone.len(), 1);
    assert!(live.rollout.writes.is_empty(), "{:?}", live.rollout.writes);
    let nodes = list_nodes(&client).await?;
    check_exact(&nodes, &before, &live).context("step 1")?;
    check_kept(&nodes, &conflict_before, "step 1")?;
    for name in ["mv-00000", "mv-00008", "mv-00011"] {
        assert!(
            taints_of(node(&nodes, name)).contains(&pool_taint("alpha")),
            "{name}"
        );
    }
    assert_eq!(
        labels_of(node(&nodes, "mv-00020"))["kelvin.dev/pool"],
        "beta"
    );
    let conflicted = node(&nodes, CONFLICT);
    assert!(
        !labels_of(conflicted).contains_key("kelvin.dev/pool")
            && kelvin_label_keys(conflicted).is_empty()
    );

    // ---- step 2: rack 2 moves from alpha to beta ---------------------------------------
    kubectl_apply(c, &v2)?;
    let gc = wait_converged(c, &client, "moves", &operator, Duration::from_secs(90)).await?;
    let status = gc.status.clone().unwrap_or_default();
    let counts: Vec<(String, u64)> = status
        .pools
        .iter()
        .map(|p| (p.name.clone(), p.matched_nodes))
        .collect();
    assert_eq!(counts, [("alpha".into(), 8), ("beta".into(), 16)]);
    let (_, live) = plan_live(&client, "moves").await?;
    assert!(live.rollout.writes.is_empty(), "{:?}", live.rollout.writes);
    let nodes = list_nodes(&client).await?;
    check_exact(&nodes, &before, &live).context("step 2")?;
    check_kept(&nodes, &conflict_before, "step 2")?;
    for i in 8..12 {
        let name = format!("mv-{i:05}");
        let n = node(&nodes, &name);
        let labels = labels_of(n);
        assert_eq!(labels["kelvin.dev/pool"], "beta", "{name}");
        assert_eq!(labels["team.example.com/pool"], "beta", "{name}");
        let taints = taints_of(n);
        assert!(!taints.contains(&pool_taint("alpha")), "{name}: {taints:?}");
        // mv-00009's own kelvin.dev/dedicated blocks beta's as it blocked alpha's.
        assert_eq!(
            taints.contains(&pool_taint("beta")),
            name != "mv-00009",
            "{name}: {taints:?}"
        );
    }

    // ---- step 3: rack 5 leaves Kelvin ------------------------------------------------------
    kubectl_apply(c, &v3)?;
    let gc = wait_converged(c, &client, "moves", &operator, Duration::from_secs(90)).await?;
    let status = gc.status.clone().unwrap_or_default();
    let counts: Vec<(String, u64)> = status
        .pools
        .iter()
        .map(|p| (p.name.clone(), p.matched_nodes))
        .collect();
    assert_eq!(counts, [("alpha".into(), 8), ("beta".into(), 12)]);
    let (_, live) = plan_live(&client, "moves").await?;
    assert!(live.rollout.writes.is_empty(), "{:?}", live.rollout.writes);
    let nodes = list_nodes(&client).await?;
    check_exact(&nodes, &before, &live).context("step 3")?;
    check_kept(&nodes, &conflict_before, "step 3")?;
    for i in 20..24 {
        // Exactly as before Kelvin: no label, taint or annotation of Kelvin's left.
        let name = format!("mv-{i:05}");
        let n = node(&nodes, &name);
        assert_eq!(labels_of(n), before[&name].labels, "{name}");
        assert_eq!(taints_of(n), before[&name].taints, "{name}");
        let annotations = kelvin_annotations(n.metadata.annotations.as_ref().into_iter().flatten());
        assert!(annotations.is_empty(), "{name}: {annotations:?}");
    }

    let seen = sampler.stop().await;
    eprintln!(
        "moves: {} samples, {} watched states, most unavailable {:?}, most in transition {:?}",
        seen.samples, seen.watched, seen.most, seen.most_in_transition
    );
    seen.check(10).with_context(|| operator.log_tail(30))?;
    // The moves went through the budget: beta's taint on rack 2 is disruptive.
    ensure!(
        seen.most_in_transition.get("beta").copied().unwrap_or(0) >= 1,
        "the sampler never saw beta in transition: {seen:?}"
    );
    drop(operator);
    Ok(())
}
