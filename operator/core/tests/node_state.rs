//! Whole desired node state and its diff: what Kelvin writes, removes and never touches.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a failure is the report

use kelvin_core::{
    constants::{OWNED_TAINTS_ANNOTATION, POOL_LABEL, TRANSITION_ANNOTATION},
    observed::{Observed, Timestamp, simulate},
    plan::{Planned, plan},
};
use kelvin_crds::{
    load,
    node::{NodeInfo, NodeTaint},
    v1alpha1::GpuCluster,
};

fn cluster(pools: &str, scheduling: &str) -> GpuCluster {
    let text = format!(
        r#"apiVersion: kelvin.dev/v1alpha1
kind: GpuCluster
metadata: {{name: site}}
spec:
  site: {{powerBudgetMW: 5, pue: 1.2}}
  fabrics:
  - {{name: ib, type: InfiniBand, linkGbps: 400, railsPerNode: 8, switchRadix: 64, nodesPerLeaf: 4, nvlinkDomainSize: 8}}
  gpuPools:
{pools}{scheduling}"#
    );
    let (mut clusters, diagnostics) = load::load_gpu_clusters("site.yaml", text.as_bytes());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    clusters.remove(0).0
}

fn pool(name: &str, sku: &str, per_node: u32, nodes: u32, extra: &str) -> String {
    format!(
        "  - name: {name}\n    nodeSelector: {{matchLabels: {{sku: {sku}}}}}\n    expectedNodes: {nodes}\n    accelerator: {{vendor: nvidia, model: H100-SXM5-80GB, perNode: {per_node}, tdpWatts: 700, minPowerWatts: 200}}\n    hostPowerWatts: 4600\n    fabric: ib\n{extra}"
    )
}

const TAINT: &str =
    "    taints: [{key: example.com/dedicated, value: training, effect: NoSchedule}]\n";

fn now() -> Timestamp {
    "2026-12-01T12:00:00Z".parse().unwrap()
}

fn planned(cluster: &GpuCluster, nodes: Vec<NodeInfo>) -> Planned {
    plan(cluster, &Observed::new(nodes, now()).unwrap()).unwrap()
}

/// The node after every write of one step.
fn after(cluster: &GpuCluster, mut nodes: Vec<NodeInfo>) -> Vec<NodeInfo> {
    let planned = planned(cluster, nodes.clone());
    for write in &planned.rollout.writes {
        write.apply_to(nodes.iter_mut().find(|n| n.name == write.node).unwrap());
    }
    nodes
}

fn taint(key: &str, value: &str) -> NodeTaint {
    NodeTaint {
        key: key.into(),
        value: Some(value.into()),
        effect: "NoSchedule".into(),
    }
}

#[test]
fn a_node_that_leaves_its_pool_loses_kelvins_labels_and_taints() {
    let spec = cluster(&pool("h100", "hgx", 8, 4, TAINT), "");
    let mut nodes = simulate(&spec.spec);
    for _ in 0..8 {
        nodes = after(&spec, nodes);
    }
    let node = &mut nodes[0];
    assert_eq!(node.labels.get(POOL_LABEL).unwrap(), "h100");
    assert!(
        node.taints
            .contains(&taint("example.com/dedicated", "training"))
    );
    // Someone relabels it out of the pool; a label of its own stays.
    node.labels.insert("sku", "retired".into());
    node.labels.insert("team", "infra".into());
    let nodes = after(&spec, nodes);
    let node = &nodes[0];
    for key in [
        POOL_LABEL,
        "kelvin.dev/fabric",
        "network.topology.nvidia.com/leaf",
    ] {
        assert!(
            !node.labels.contains_key(key),
            "{key} stays: {:?}",
            node.labels
        );
    }
    assert_eq!(node.labels.get("team").unwrap(), "infra");
    assert!(node.taints.is_empty(), "{:?}", node.taints);
    assert!(!node.annotations.contains_key(OWNED_TAINTS_ANNOTATION));
}

#[test]
fn foreign_taints_stay_and_taints_dropped_from_the_spec_go() {
    let spec = cluster(&pool("h100", "hgx", 8, 1, TAINT), "");
    let mut nodes = simulate(&spec.spec);
    // A person's taint with Kelvin's key but another effect, and one of a device plugin.
    nodes[0].taints.push(NodeTaint {
        key: "example.com/dedicated".into(),
        value: Some("oncall".into()),
        effect: "PreferNoSchedule".into(),
    });
    nodes[0].taints.push(taint("nvidia.com/gpu", "present"));
    let nodes = after(&spec, after(&spec, nodes));
    assert_eq!(nodes[0].taints.len(), 3, "{:?}", nodes[0].taints);
    assert_eq!(
        nodes[0].annotations[OWNED_TAINTS_ANNOTATION],
        "example.com/dedicated:NoSchedule"
    );
    // The spec drops its taint: Kelvin's goes, the others stay.
    let dropped = cluster(&pool("h100", "hgx", 8, 1, ""), "");
    let nodes = after(&dropped, nodes);
    let keys: Vec<String> = nodes[0]
        .taints
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    assert_eq!(
        keys,
        [
            "example.com/dedicated:PreferNoSchedule",
            "nvidia.com/gpu:NoSchedule"
        ]
    );
}

#[test]
fn a_foreign_taint_with_kelvins_key_and_effect_is_never_replaced() {
    let spec = cluster(&pool("h100", "hgx", 8, 1, TAINT), "");
    let mut nodes = simulate(&spec.spec);
    nodes[0]
        .taints
        .push(taint("example.com/dedicated", "someone-else"));
    let first = planned(&spec, nodes.clone());
    let write = &first.rollout.writes[0];
    assert!(
        write.diff.add_taints.is_empty() && write.diff.remove_taints.is_empty(),
        "{write:?}"
    );
    assert_eq!(
        write.diff.blocked_taints,
        [taint("example.com/dedicated", "training")]
    );
    assert!(
        first.plan.node_changes[0]
            .items
            .keys()
            .any(|k| k.starts_with("!taint example.com/dedicated=training:NoSchedule")),
        "{:?}",
        first.plan.node_changes
    );
    // Converged otherwise, the node gets no more writes, and the block is still reported.
    let converged = after(&spec, after(&spec, nodes));
    let again = planned(&spec, converged);
    assert!(
        again.rollout.writes.is_empty(),
        "{:?}",
        again.rollout.writes
    );
    assert_eq!(
        again.plan.node_changes[0].items.get("!taint example.com/dedicated=training:NoSchedule (a foreign taint has its key and effect)"),
        Some(&1)
    );
}

#[test]
fn with_managed_fields_known_only_labels_kelvin_owns_are_removed() {
    let spec = cluster(&pool("h100", "hgx", 8, 1, "    labels: {team: fsd}\n"), "");
    let mut nodes = simulate(&spec.spec);
    nodes[0].labels.insert(POOL_LABEL, "h100".into());
    // `team` was set by a person (another field manager); kelvin owns only the pool label.
    nodes[0].labels.insert("team", "fsd".into());
    nodes[0].kelvin_label_keys = Some(vec![POOL_LABEL.into()]);
    nodes[0].labels.insert("sku", "other".into());
    let planned = planned(&spec, nodes);
    let write = &planned.rollout.writes[0];
    assert_eq!(write.diff.remove_labels, [POOL_LABEL.to_owned()]);
}

#[test]
fn a_node_of_two_pools_is_left_alone_and_the_rest_are_planned() {
    // Pool a selects sku=hgx, pool b rack=b; one of b's nodes also carries sku=hgx.
    let spec = cluster(
        &format!(
            "{}{}",
            pool("a", "hgx", 8, 2, ""),
            pool("b", "other", 8, 2, "").replace("{sku: other}", "{rack: b}")
        ),
        "",
    );
    let mut nodes = simulate(&spec.spec);
    nodes[3].labels.insert("sku", "hgx".into());
    let planned = planned(&spec, nodes.clone());
    assert!(planned.plan.valid, "{:?}", planned.plan.errors);
    assert_eq!(planned.plan.nodes_left_alone.len(), 1);
    let message = &planned.plan.nodes_left_alone[0].message;
    assert!(
        message.contains(&format!(
            "node {} is matched by both spec.gpuPools[0] (a) and spec.gpuPools[1] (b)",
            nodes[3].name
        )),
        "{message}"
    );
    let written: Vec<&str> = planned
        .rollout
        .writes
        .iter()
        .map(|w| w.node.as_str())
        .collect();
    assert_eq!(
        written,
        [nodes[0].name.as_str(), &nodes[1].name, &nodes[2].name]
    );
}

#[test]
fn the_same_nodes_in_any_order_give_the_same_plan() {
    let spec = cluster(&pool("h100", "hgx", 8, 64, TAINT), "");
    let nodes = simulate(&spec.spec);
    let mut shuffled = nodes.clone();
    shuffled.reverse();
    shuffled.swap(3, 40);
    let a = planned(&spec, nodes);
    let b = planned(&spec, shuffled);
    assert_eq!(a.plan, b.plan);
    assert_eq!(a.rollout, b.rollout);
}

#[test]
fn nvlink_domains_of_pools_with_different_node_sizes_do_not_collide() {
    // 8-GPU and 4-GPU nodes on one fabric, 8 GPUs per domain: a 4-GPU pool pairs nodes.
    let spec = cluster(
        &format!(
            "{}{}",
            pool("big", "hgx", 8, 4, ""),
            pool("half", "half", 4, 4, "")
        ),
        "",
    );
    let nodes = after(&spec, simulate(&spec.spec));
    let domain = |n: &NodeInfo| {
        n.labels
            .get("network.topology.nvidia.com/accelerator")
            .unwrap()
            .to_owned()
    };
    let big: Vec<String> = nodes[..4].iter().map(domain).collect();
    let half: Vec<String> = nodes[4..].iter().map(domain).collect();
    assert_eq!(big, ["big-nvl-0", "big-nvl-1", "big-nvl-2", "big-nvl-3"]);
    // Positions 4..7 on the fabric, two nodes per domain.
    assert_eq!(
        half,
        ["half-nvl-2", "half-nvl-2", "half-nvl-3", "half-nvl-3"]
    );
}

#[test]
fn a_name_with_a_huge_number_gets_no_topology_and_a_warning() {
    let spec = cluster(&pool("h100", "hgx", 8, 2, ""), "");
    let mut nodes = simulate(&spec.spec);
    nodes[1].name = "h100-99999999999999999999999999".into();
    let planned = planned(&spec, nodes);
    let warning = planned
        .plan
        .warnings
        .iter()
        .find(|w| w.message.contains("without a position"))
        .expect("a warning");
    assert!(
        warning.message.contains("h100-99999999999999999999999999")
            && warning.message.contains("fabric ib")
    );
}

#[test]
fn two_nodes_at_one_position_are_reported() {
    let spec = cluster(&pool("h100", "hgx", 8, 2, ""), "");
    let mut nodes = simulate(&spec.spec);
    nodes[1].name = "rack9-h100-00000".into();
    let planned = planned(&spec, nodes);
    assert!(
        planned.plan.warnings.iter().any(|w| w
            .message
            .contains("position 0: h100-00000, rack9-h100-00000")),
        "{:?}",
        planned.plan.warnings
    );
}

#[test]
fn volcano_hypernodes_cover_observed_leaves_beyond_the_design() {
    let spec = cluster(
        &pool("h100", "hgx", 8, 8, ""),
        "  scheduling: {topologyAwareScheduling: Volcano}\n",
    );
    let mut nodes = simulate(&spec.spec);
    // A node racked at position 40: leaf group 10, beyond the 2 groups of expectedNodes.
    let mut extra = nodes[0].clone();
    extra.name = "h100-00040".into();
    nodes.push(extra);
    let planned = planned(&spec, nodes);
    let names: Vec<&str> = planned
        .desired
        .hyper_nodes
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["ib-leaf-0", "ib-leaf-1", "ib-leaf-10", "ib-spine-0"]
    );
}

#[test]
fn two_gpuclusters_leave_each_others_nodes_alone() {
    // One field manager writes for every GpuCluster: a node of the other's pool must get no
    // desired state here, or this plan would remove the other's labels, taints and transition.
    let a = cluster(&pool("h100", "hgx", 8, 2, TAINT), "");
    let b_text = pool("b200", "dgx-b200", 8, 2, TAINT).replace("h100", "b200");
    let b = cluster(&b_text, "");
    let mut nodes = simulate(&a.spec);
    nodes.extend(simulate(&b.spec));
    for _ in 0..4 {
        nodes = after(&a, nodes);
        nodes = after(&b, nodes);
    }
    let b_node = nodes
        .iter()
        .find(|n| n.labels.get(POOL_LABEL) == Some("b200"))
        .unwrap()
        .clone();
    assert!(
        b_node
            .taints
            .contains(&taint("example.com/dedicated", "training"))
    );
    let planned_a = planned(&a, nodes.clone());
    assert!(
        planned_a
            .rollout
            .writes
            .iter()
            .all(|w| w.node != b_node.name),
        "GpuCluster site (a) writes b's node {}",
        b_node.name
    );
    assert!(planned_a.nodes.get(&b_node.name).flatten().is_none());
    // A transition of b's survives a's pass.
    let mut with_transition = nodes.clone();
    let node = with_transition
        .iter_mut()
        .find(|n| n.name == b_node.name)
        .unwrap();
    node.annotations.insert(
        TRANSITION_ANNOTATION.into(),
        "taint@2026-12-01T11:59:00Z".into(),
    );
    let after_a = after(&a, with_transition);
    let node = after_a.iter().find(|n| n.name == b_node.name).unwrap();
    assert!(node.annotations.contains_key(TRANSITION_ANNOTATION));
    assert_eq!(node.labels.get(POOL_LABEL).unwrap(), "b200");
}

#[test]
fn a_transition_on_a_node_that_left_the_pools_is_cleared() {
    let spec = cluster(&pool("h100", "hgx", 8, 1, ""), "");
    let mut nodes = simulate(&spec.spec);
    nodes[0].labels.insert("sku", "gone".into());
    nodes[0].annotations.insert(
        TRANSITION_ANNOTATION.into(),
        "taint@2026-12-01T11:00:00Z".into(),
    );
    let nodes = after(&spec, nodes);
    assert!(!nodes[0].annotations.contains_key(TRANSITION_ANNOTATION));
}

#[test]
fn cleanup_takes_kelvin_off_its_nodes_and_leaves_the_rest() {
    let spec = cluster(&pool("h100", "hgx", 8, 2, TAINT), "");
    let mut nodes = simulate(&spec.spec);
    nodes[0].taints.push(taint("nvidia.com/gpu", "present"));
    nodes[0].labels.insert("team", "infra".into());
    let mut nodes = after(&spec, after(&spec, after(&spec, nodes)));
    assert!(nodes.iter().all(|n| n.labels.contains_key(POOL_LABEL)));
    let observed = Observed::new(nodes.clone(), now()).unwrap();
    let analysis = kelvin_core::analyze(&spec.spec, &observed);
    let writes = kelvin_core::rollout::cleanup(&spec.spec, &analysis, &observed);
    assert_eq!(writes.len(), 2);
    for write in &writes {
        write.apply_to(nodes.iter_mut().find(|n| n.name == write.node).unwrap());
    }
    for node in &nodes {
        let kelvins: Vec<&str> = node
            .labels
            .keys()
            .filter(|k| k.starts_with("kelvin.dev/") || k.starts_with("network.topology"))
            .collect();
        assert!(kelvins.is_empty(), "{kelvins:?}");
        assert!(node.annotations.is_empty(), "{:?}", node.annotations);
        assert!(!node.taints.iter().any(|t| t.key == "example.com/dedicated"));
    }
    assert_eq!(nodes[0].labels.get("team").unwrap(), "infra");
    assert_eq!(nodes[0].taints, [taint("nvidia.com/gpu", "present")]);
    // Nothing left to clean.
    let observed = Observed::new(nodes, now()).unwrap();
    let analysis = kelvin_core::analyze(&spec.spec, &observed);
    assert!(kelvin_core::rollout::cleanup(&spec.spec, &analysis, &observed).is_empty());
}
