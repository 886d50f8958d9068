//! Kelvin's scheduling output proven with the real Kueue (issue 13): Kueue 0.17's controller
//! manager (built from `sigs.k8s.io/kueue`, its webhooks registered, `tests/cluster.sh up
//! --kueue`), the real `kelvin-operator`, the real kube-scheduler binding every pod, kwok
//! running them. One test, because each step starts where the last one left:
//!
//! 1. Kelvin converges a site of two pools (128 HGX H100 nodes on a three-tier InfiniBand
//!    fabric of 16 nodes per leaf and 2 leaf groups per spine block; 16 L40S nodes on
//!    Ethernet), two tenants and `topologyAwareScheduling: Kueue`; one cooling zone, holding
//!    node 0 only, is in Maintenance, so that node carries Kelvin's out-of-service taint.
//!    Kueue takes every object Kelvin wrote (through its own webhooks) and reports each
//!    ClusterQueue and LocalQueue Active.
//! 2. A Job of 16 pods x 8 GPUs asking `podset-required-topology` at the leaf label Kelvin
//!    writes is admitted and every pod is bound to a node of one leaf group — not leaf 0,
//!    whose node 0 is out of service (a Kueue ignoring the taint would pick leaf 0 first,
//!    and its pod there could never be bound).
//! 3. A Job of 64 pods x 4 GPUs (one spine block's worth) asking `podset-preferred-topology`
//!    at the spine label lands in one spine block, not block 0 (node 0 again).
//! 4. Quota: a Job of 97 x 8 GPUs in tenant `fsd` (quota 768) stays pending though tenant
//!    `optimus`'s quota sits idle in the cohort — the generated ClusterQueue has
//!    `borrowingLimit: 0` — while a Job within `optimus`'s quota is admitted.
//! 5. Preemption: a low-priority pod group fills `optimus`'s quota; a Job of PriorityClass
//!    `training-critical` preempts it (the generated `withinClusterQueue: LowerPriority`)
//!    and runs; no pod of either ever ran on node 0.
//!
//! A file of its own: its control plane runs Kueue, which no other test binary's does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test: a failure is the report

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use common::{
    Operator, labels_of, list_nodes, load_spec, name_of, taints_of, wait_converged,
    wait_nodes_settled, write_spec,
};
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kelvin_core::constants::{OUT_OF_SERVICE_TAINT, POOL_LABEL};
use kelvin_e2e::{Cluster, SpecNodes, cluster_with_kueue, crd, wait_for};
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams},
};
use serde_json::{Value, json};

/// The site: node 0 of pool h100 is the only node of zone `row-0` (11 kW holds one 8.6 kW
/// node; kelvin-core's simulated nodes fill zones in order), which is in Maintenance.
const SPEC: &str = r#"
apiVersion: kelvin.dev/v1alpha1
kind: GpuCluster
metadata: {name: tas}
spec:
  site: {powerBudgetMW: 2, pue: 1.2}
  coolingZones:
  - name: row-0
    cooling: Liquid
    capacityKW: 11
    state: Maintenance
    nodeSelector: {matchLabels: {kelvin.dev/hall: a, kelvin.dev/loop: "0"}}
  - name: loop-1
    cooling: Liquid
    capacityKW: 1500
    nodeSelector: {matchLabels: {kelvin.dev/hall: a, kelvin.dev/loop: "1"}}
  fabrics:
  - name: ib
    type: InfiniBand
    linkGbps: 400
    railsPerNode: 8
    switchRadix: 32
    nodesPerLeaf: 16
    nvlinkDomainSize: 8
  - name: eth
    type: Ethernet
    linkGbps: 100
    railsPerNode: 1
    switchRadix: 32
    nodesPerLeaf: 16
    nvlinkDomainSize: 4
  gpuPools:
  - name: h100
    nodeSelector: {matchLabels: {kelvin.dev/sku: hgx-h100}}
    expectedNodes: 128
    accelerator: {vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}
    hostPowerWatts: 3000
    fabric: ib
    maxUnavailable: 10%
  - name: l40s
    nodeSelector: {matchLabels: {kelvin.dev/sku: l40s-2u}}
    expectedNodes: 16
    accelerator: {vendor: nvidia, model: L40S-48GB, perNode: 4, tdpWatts: 350, minPowerWatts: 100}
    hostPowerWatts: 1200
    fabric: eth
    taints: [{key: kelvin.dev/dedicated, value: inference, effect: NoSchedule}]
    maxUnavailable: 25%
  scheduling:
    priorityClasses:
    - {name: training-critical, value: 100000, preemptionPolicy: PreemptLowerPriority}
    tenants:
    - name: fsd
      namespaces: [fsd-train]
      gpuQuota: {h100: 768, l40s: 64}
    - name: optimus
      namespaces: [optimus-train]
      gpuQuota: {h100: 256}
    topologyAwareScheduling: Kueue
"#;

const LEAF: &str = "network.topology.nvidia.com/leaf";
const SPINE: &str = "network.topology.nvidia.com/spine";
const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// The one node of zone `row-0` (in Maintenance).
const OUT_NODE: &str = "h100-00000";

fn kueue_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kueue.x-k8s.io", "v1beta2", kind),
        plural,
    )
}

fn conditions(object: &Value) -> BTreeMap<String, (String, String, String)> {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("type"), (s("status"), s("reason"), s("message")))
        })
        .collect()
}

fn is_true(object: &Value, condition: &str) -> bool {
    conditions(object)
        .get(condition)
        .is_some_and(|(status, _, _)| status == "True")
}

/// The Workload Kueue made for the owner named `owner` in `namespace` (a Job, or the pod group
/// name for plain pods, which Kueue names the Workload after).
async fn workload(client: &Client, namespace: &str, owner: &str) -> Result<Option<Value>> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &kueue_resource("Workload", "workloads"),
    );
    for w in api.list(&ListParams::default()).await?.items {
        let value = serde_json::to_value(&w)?;
        let owned = value["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["kind"] == "Job" && r["name"] == owner);
        if owned || w.metadata.name.as_deref() == Some(owner) {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

async fn wait_workload(
    client: &Client,
    namespace: &str,
    owner: &str,
    condition: &str,
    timeout: Duration,
) -> Result<Value> {
    wait_for(
        &format!("the Workload of {namespace}/{owner} to be {condition}"),
        timeout,
        || async {
            Ok(workload(client, namespace, owner)
                .await?
                .filter(|w| is_true(w, condition)))
        },
    )
    .await
}

/// A Job of `pods` pods asking `gpus` GPUs each, queued to `queue`, with `annotations` on its
/// pod template; created suspended, as Kueue's docs ask (Kueue's webhook would suspend it).
fn job(
    name: &str,
    queue: &str,
    pods: u32,
    gpus: u32,
    annotations: Value,
    priority: Option<&str>,
) -> Job {
    let mut spec = json!({
        "containers": [{
            "name": "train",
            "image": "registry.invalid/train:1",
            "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}},
        }],
        "restartPolicy": "Never",
    });
    if let Some(class) = priority {
        spec["priorityClassName"] = json!(class);
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {QUEUE_LABEL: queue}},
        "spec": {
            "parallelism": pods,
            "completions": pods,
            "completionMode": "Indexed",
            "suspend": true,
            "template": {"metadata": {"annotations": annotations}, "spec": spec},
        },
    }))
    .expect("a Job")
}

async fn create_job(client: &Client, namespace: &str, job: &Job) -> Result<()> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    jobs.create(&PostParams::default(), job)
        .await
        .with_context(|| format!("creating Job {namespace}/{:?}", job.metadata.name))?;
    Ok(())
}

async fn delete_job(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    jobs.delete(name, &DeleteParams::background()).await?;
    Ok(())
}

/// The nodes the pods matching `selector` in `namespace` are bound to, once `count` of them
/// are; pod name -> node name.
async fn wait_bound(
    client: &Client,
    namespace: &str,
    selector: &str,
    count: usize,
    timeout: Duration,
) -> Result<BTreeMap<String, String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(selector);
    wait_for(
        &format!("{count} pods {selector} in {namespace} bound to nodes"),
        timeout,
        || async {
            let bound: BTreeMap<String, String> = pods
                .list(&params)
                .await?
                .items
                .into_iter()
                .filter_map(|p| {
                    let node = p.spec.as_ref()?.node_name.clone()?;
                    Some((p.metadata.name.clone()?, node))
                })
                .collect();
            Ok((bound.len() >= count).then_some(bound))
        },
    )
    .await
}

/// Label `key` of every node in `bound`, as the set of values.
fn values_of(
    bound: &BTreeMap<String, String>,
    nodes: &BTreeMap<String, BTreeMap<String, String>>,
    key: &str,
) -> BTreeSet<String> {
    bound
        .values()
        .map(|node| {
            nodes
                .get(node)
                .and_then(|l| l.get(key))
                .cloned()
                .unwrap_or_else(|| format!("<{node} has no {key}>"))
        })
        .collect()
}

/// Failure context: Kueue's log tail and the Workloads' conditions.
async fn kueue_context(c: &Cluster, client: &Client) -> String {
    let mut out = String::new();
    for ns in ["fsd-train", "optimus-train"] {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &kueue_resource("Workload", "workloads"));
        if let Ok(list) = api.list(&ListParams::default()).await {
            for w in list.items {
                let value = serde_json::to_value(&w).unwrap_or_default();
                out.push_str(&format!(
                    "workload {ns}/{}: {:?}\n",
                    w.metadata.name.unwrap_or_default(),
                    conditions(&value)
                ));
            }
        }
    }
    if let Some(dir) = c.dir() {
        let log = std::fs::read_to_string(dir.join("logs/kueue.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        out.push_str("--- kueue.log (tail)\n");
        out.push_str(&lines[lines.len().saturating_sub(15)..].join("\n"));
    }
    out
}

/// Failure context: every pod of `namespace` (phase, node, deletion, finalizers, gates, why
/// not scheduled) and the namespace's last Events.
async fn pods_context(client: &Client, namespace: &str) -> String {
    let mut out = String::new();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = pods.list(&ListParams::default()).await {
        for p in list.items {
            let spec = p.spec.clone().unwrap_or_default();
            let status = p.status.clone().unwrap_or_default();
            let unscheduled = status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                .and_then(|c| c.message);
            out.push_str(&format!(
                "pod {}: {:?} node {:?} deleting {} finalizers {:?} gates {:?} nodeSelector {:?} {unscheduled:?}\n",
                p.metadata.name.unwrap_or_default(),
                status.phase,
                spec.node_name,
                p.metadata.deletion_timestamp.is_some(),
                p.metadata.finalizers.unwrap_or_default(),
                spec.scheduling_gates.unwrap_or_default().iter().map(|g| g.name.clone()).collect::<Vec<_>>(),
                spec.node_selector.unwrap_or_default(),
            ));
        }
    }
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = events.list(&ListParams::default()).await {
        let n = list.items.len();
        for e in list.items.into_iter().skip(n.saturating_sub(25)) {
            out.push_str(&format!(
                "event {:?} {:?}: {:?}\n",
                e.involved_object.name, e.reason, e.message
            ));
        }
    }
    out
}

#[tokio::test]
async fn kueue_admits_gangs_on_one_leaf_and_spine_keeps_quotas_and_preempts_by_priority()
-> Result<()> {
    let c = cluster_with_kueue()?;
    let client = c.client().await?;
    let (gc_crd, _) = crd::gpucluster_crd()?;
    crd::install_crd(&client, &gc_crd).await?;

    // ---- 1. Kelvin converges; Kueue takes its objects ---------------------------------------
    let spec_path = write_spec(c, "tas.yaml", SPEC)?;
    let gc_spec = load_spec(&spec_path)?.spec;
    assert_eq!(
        gc_spec.fabrics[0].topology.labels.leaf, LEAF,
        "Kelvin's leaf label"
    );
    assert_eq!(
        gc_spec.fabrics[0].topology.labels.spine, SPINE,
        "Kelvin's spine label"
    );
    let set = SpecNodes::from_file(&spec_path, None)?;
    assert_eq!(set.nodes.len(), 144);
    set.create(&client).await?;
    set.wait_ready(&client, Duration::from_secs(90))
        .await
        .with_context(|| c.describe())?;
    wait_nodes_settled(&client, Duration::from_secs(90)).await?;
    let operator = Operator::start(c, "kueue")?;
    let started = Instant::now();
    common::kubectl_apply(c, &spec_path)?;
    let gc = wait_converged(c, &client, "tas", &operator, Duration::from_secs(300)).await?;
    eprintln!(
        "kueue: 144 nodes converged in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let status = gc.status.clone().unwrap_or_default();
    assert_eq!(
        common::condition_is(&status, "SchedulingPolicies"),
        Some(("True".into(), "Applied".into())),
        "{}",
        common::describe_status(Some(&status))
    );

    let nodes: BTreeMap<String, BTreeMap<String, String>> = list_nodes(&client)
        .await?
        .iter()
        .map(|n| (name_of(n), labels_of(n)))
        .collect();
    let out_of_service: BTreeSet<String> = list_nodes(&client)
        .await?
        .iter()
        .filter(|n| {
            taints_of(n)
                .iter()
                .any(|(k, _, _)| k == OUT_OF_SERVICE_TAINT)
        })
        .map(name_of)
        .collect();
    assert_eq!(
        out_of_service,
        BTreeSet::from([OUT_NODE.to_owned()]),
        "zone row-0 (in Maintenance) holds node 0 only"
    );
    // The fabric as Kelvin labelled it: 8 leaf groups of 16, 4 spine blocks of 2 leaf groups.
    let h100: BTreeMap<String, String> = nodes
        .iter()
        .filter(|(_, l)| l.get(POOL_LABEL).map(String::as_str) == Some("h100"))
        .map(|(n, _)| (n.clone(), n.clone()))
        .collect();
    assert_eq!(h100.len(), 128);
    assert_eq!(values_of(&h100, &nodes, LEAF).len(), 8);
    assert_eq!(values_of(&h100, &nodes, SPINE).len(), 4);
    assert_eq!(nodes[OUT_NODE][LEAF], "ib-leaf-0");
    assert_eq!(nodes[OUT_NODE][SPINE], "ib-spine-0");

    // Kueue's own view of Kelvin's objects: every ClusterQueue and LocalQueue Active (a
    // flavor, a Topology or a quota Kueue could not use would say so here).
    let cqs: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kueue_resource("ClusterQueue", "clusterqueues"),
    );
    for name in ["fsd", "optimus"] {
        wait_for(
            &format!("ClusterQueue {name} Active"),
            Duration::from_secs(60),
            || async {
                let cq = serde_json::to_value(cqs.get(name).await?)?;
                Ok(is_true(&cq, "Active").then_some(()))
            },
        )
        .await?;
    }
    for (ns, name) in [("fsd-train", "fsd"), ("optimus-train", "optimus")] {
        let lqs: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            ns,
            &kueue_resource("LocalQueue", "localqueues"),
        );
        wait_for(
            &format!("LocalQueue {ns}/{name} Active"),
            Duration::from_secs(60),
            || async {
                let lq = serde_json::to_value(lqs.get(name).await?)?;
                Ok(is_true(&lq, "Active").then_some(()))
            },
        )
        .await?;
    }

    // The Topology Kueue uses for the InfiniBand fabric: its three tiers, then the hostname.
    let topologies: Api<DynamicObject> =
        Api::all_with(client.clone(), &kueue_resource("Topology", "topologies"));
    let ib = serde_json::to_value(topologies.get("ib").await?)?;
    let levels: Vec<&str> = ib["spec"]["levels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["nodeLabel"].as_str())
        .collect();
    assert_eq!(
        levels,
        [
            "network.topology.nvidia.com/core",
            SPINE,
            LEAF,
            "kubernetes.io/hostname"
        ]
    );
    // The second pool's flavor tolerates the pool's taint, so Kueue's pods can land there.
    let flavors: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kueue_resource("ResourceFlavor", "resourceflavors"),
    );
    let l40s = serde_json::to_value(flavors.get("l40s").await?)?;
    assert_eq!(l40s["spec"]["topologyName"], "eth");
    assert_eq!(
        l40s["spec"]["tolerations"][0]["key"], "kelvin.dev/dedicated",
        "{}",
        l40s["spec"]
    );

    // Kueue's webhooks default fields of what Kelvin applies (flavorFungibility, queueing
    // strategy, ...): Kelvin must not fight them. Over 15 s nobody writes any object Kelvin
    // owns but its status (Kueue writes the queues' status).
    let before = common::Snapshot::take(&client, "tas").await?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let after = common::Snapshot::take(&client, "tas").await?;
    let rewritten: Vec<&String> = before
        .objects
        .iter()
        .filter(|(key, old)| {
            after
                .objects
                .get(*key)
                .is_none_or(|new| common::fingerprint(old) != common::fingerprint(new))
        })
        .map(|(key, _)| key)
        .collect();
    ensure!(
        rewritten.is_empty(),
        "objects rewritten in a steady state: {rewritten:?}\n{}",
        operator.log_tail(20)
    );

    // ---- 2. A 16 x 8 GPU gang, required on one leaf ---------------------------------------
    let t = Instant::now();
    create_job(
        &client,
        "fsd-train",
        &job(
            "leaf-gang",
            "fsd",
            16,
            8,
            json!({"kueue.x-k8s.io/podset-required-topology": LEAF}),
            None,
        ),
    )
    .await?;
    let admitted = match wait_workload(
        &client,
        "fsd-train",
        "leaf-gang",
        "Admitted",
        Duration::from_secs(60),
    )
    .await
    {
        Ok(w) => w,
        Err(e) => bail!("{e:#}\n{}", kueue_context(c, &client).await),
    };
    let bound = wait_bound(
        &client,
        "fsd-train",
        "batch.kubernetes.io/job-name=leaf-gang",
        16,
        Duration::from_secs(90),
    )
    .await?;
    let leaves = values_of(&bound, &nodes, LEAF);
    ensure!(
        leaves.len() == 1,
        "the leaf gang spans leaves {leaves:?}: {bound:?}\nadmission {}",
        admitted["status"]["admission"]
    );
    ensure!(
        !bound.values().any(|n| n == OUT_NODE) && !leaves.contains("ib-leaf-0"),
        "the leaf gang uses leaf 0, whose {OUT_NODE} is out of service: {bound:?}"
    );
    let distinct: BTreeSet<&String> = bound.values().collect();
    assert_eq!(distinct.len(), 16, "one pod per node (8 GPUs each)");
    eprintln!(
        "kueue: 16 x 8 GPUs on leaf {leaves:?} in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // ---- 3. 64 x 4 GPUs, preferred in one spine block -------------------------------------
    let t = Instant::now();
    create_job(
        &client,
        "fsd-train",
        &job(
            "spine-gang",
            "fsd",
            64,
            4,
            json!({"kueue.x-k8s.io/podset-preferred-topology": SPINE}),
            None,
        ),
    )
    .await?;
    wait_workload(
        &client,
        "fsd-train",
        "spine-gang",
        "Admitted",
        Duration::from_secs(60),
    )
    .await?;
    let bound = wait_bound(
        &client,
        "fsd-train",
        "batch.kubernetes.io/job-name=spine-gang",
        64,
        Duration::from_secs(120),
    )
    .await?;
    let spines = values_of(&bound, &nodes, SPINE);
    ensure!(spines.len() == 1, "the spine gang spans blocks {spines:?}");
    ensure!(
        !spines.contains("ib-spine-0") && !bound.values().any(|n| n == OUT_NODE),
        "the spine gang uses block 0, whose {OUT_NODE} is out of service: {spines:?}"
    );
    eprintln!(
        "kueue: 64 x 4 GPUs in spine block {spines:?} ({} nodes) in {:.1} s",
        bound.values().collect::<BTreeSet<_>>().len(),
        t.elapsed().as_secs_f64()
    );
    delete_job(&client, "fsd-train", "leaf-gang").await?;
    delete_job(&client, "fsd-train", "spine-gang").await?;

    // ---- 4. Quota: beyond gpuQuota stays pending, no borrowing ----------------------------
    create_job(
        &client,
        "fsd-train",
        &job("over-quota", "fsd", 97, 8, json!({}), None),
    )
    .await?;
    create_job(
        &client,
        "optimus-train",
        &job("in-quota", "optimus", 32, 8, json!({}), None),
    )
    .await?;
    wait_workload(
        &client,
        "optimus-train",
        "in-quota",
        "Admitted",
        Duration::from_secs(60),
    )
    .await?;
    wait_bound(
        &client,
        "optimus-train",
        "batch.kubernetes.io/job-name=in-quota",
        32,
        Duration::from_secs(90),
    )
    .await?;
    // The in-quota Job has finished (kwok completes Job pods): optimus's quota is idle again,
    // and fsd's 776 GPUs would fit by borrowing 8 of it. Kueue keeps it pending.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let over = workload(&client, "fsd-train", "over-quota")
        .await?
        .context("no Workload for over-quota")?;
    if is_true(&over, "QuotaReserved") || is_true(&over, "Admitted") {
        // What became of it: how many pods the Job controller could create, and why not more.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "fsd-train");
        let created = pods
            .list(&ListParams::default().labels("batch.kubernetes.io/job-name=over-quota"))
            .await?
            .items
            .len();
        let events: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(client.clone(), "fsd-train");
        let messages: BTreeSet<String> = events
            .list(&ListParams::default().fields("involvedObject.name=over-quota"))
            .await?
            .items
            .into_iter()
            .filter_map(|e| e.message)
            .take(5)
            .collect();
        bail!(
            "the over-quota Job was admitted: {:?}\nadmission {}\n{created} of its 97 pods created; events {messages:#?}\n{}",
            conditions(&over),
            over["status"]["admission"]["podSetAssignments"][0]["flavors"],
            kueue_context(c, &client).await
        );
    }
    let pending = conditions(&over)
        .get("QuotaReserved")
        .map(|(_, _, message)| message.clone())
        .unwrap_or_default();
    eprintln!("kueue: over-quota pending: {pending}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "fsd-train");
    let created = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=over-quota"))
        .await?
        .items
        .len();
    assert_eq!(created, 0, "a pending Job stays suspended: no pod");
    delete_job(&client, "fsd-train", "over-quota").await?;
    // What the generated ClusterQueue says, and so what was proven: no borrowing.
    let fsd = serde_json::to_value(cqs.get("fsd").await?)?;
    let h100_quota = &fsd["spec"]["resourceGroups"][0]["flavors"][0];
    assert_eq!(h100_quota["name"], "h100");
    assert_eq!(h100_quota["resources"][0]["nominalQuota"], json!("768"));
    assert_eq!(
        h100_quota["resources"][0]["borrowingLimit"],
        json!("0"),
        "gpuQuota is a cap: the ClusterQueue does not borrow"
    );

    // ---- 5. Preemption by priority within the ClusterQueue --------------------------------
    // 32 plain pods x 8 GPUs, one pod group: optimus's whole quota, Running until evicted.
    let group = 32;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "optimus-train");
    for i in 0..group {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": format!("low-{i}"),
                "labels": {QUEUE_LABEL: "optimus", "kueue.x-k8s.io/pod-group-name": "low", "app": "low"},
                "annotations": {"kueue.x-k8s.io/pod-group-total-count": group.to_string()},
            },
            "spec": {
                "containers": [{"name": "train", "image": "registry.invalid/train:1",
                    "resources": {"limits": {"nvidia.com/gpu": "8"}}}],
                "restartPolicy": "Never",
            },
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    wait_workload(
        &client,
        "optimus-train",
        "low",
        "Admitted",
        Duration::from_secs(60),
    )
    .await?;
    let low = wait_bound(
        &client,
        "optimus-train",
        "app=low",
        group,
        Duration::from_secs(90),
    )
    .await?;
    ensure!(
        !low.values().any(|n| n == OUT_NODE),
        "a low pod on {OUT_NODE}"
    );
    let t = Instant::now();
    create_job(
        &client,
        "optimus-train",
        &job(
            "critical",
            "optimus",
            4,
            8,
            json!({}),
            Some("training-critical"),
        ),
    )
    .await?;
    let evicted = wait_for(
        "the low pod group preempted",
        Duration::from_secs(90),
        || async {
            let w = workload(&client, "optimus-train", "low").await?;
            Ok(w.filter(|w| {
                conditions(w)
                    .get("Evicted")
                    .is_some_and(|(s, reason, _)| s == "True" && reason == "Preempted")
            }))
        },
    )
    .await;
    let optimus = serde_json::to_value(cqs.get("optimus").await?)?;
    let evicted = match evicted {
        Ok(w) => w,
        Err(e) => bail!(
            "{e:#}\nClusterQueue optimus: preemption {}\n{}",
            optimus["spec"]["preemption"],
            kueue_context(c, &client).await
        ),
    };
    assert_eq!(
        optimus["spec"]["preemption"]["withinClusterQueue"], "LowerPriority",
        "{}",
        optimus["spec"]
    );
    wait_workload(
        &client,
        "optimus-train",
        "critical",
        "Admitted",
        Duration::from_secs(90),
    )
    .await?;
    let critical = match wait_bound(
        &client,
        "optimus-train",
        "batch.kubernetes.io/job-name=critical",
        4,
        Duration::from_secs(120),
    )
    .await
    {
        Ok(bound) => bound,
        Err(e) => bail!("{e:#}\n{}", pods_context(&client, "optimus-train").await),
    };
    ensure!(
        !critical.values().any(|n| n == OUT_NODE),
        "a critical pod on {OUT_NODE}"
    );
    eprintln!(
        "kueue: training-critical preempted the low group ({:?}) and ran in {:.1} s",
        conditions(&evicted).get("Preempted"),
        t.elapsed().as_secs_f64()
    );
    // Kueue's peak memory over the run (for docs/testing.md).
    if let Some(dir) = c.dir() {
        let pid = std::fs::read_to_string(dir.join("pids/kueue")).unwrap_or_default();
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap_or_default();
        let peak = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .unwrap_or("VmHWM: ?");
        eprintln!(
            "kueue: Kueue's peak RSS over the test: {}",
            peak.trim_start_matches("VmHWM:").trim()
        );
    }
    if !operator.warnings().is_empty() {
        bail!("the operator logged warnings: {:?}", operator.warnings());
    }
    Ok(())
}
