//! Fake GPU nodes: Node objects as a provisioning system would leave them, kept alive by kwok.
//!
//! Each node gets a name with its position number (`gpu-h100-00042`), labels for its place in
//! the building (`kelvin.dev/hall`, `kelvin.dev/loop`, `kelvin.dev/rack`) derived from that
//! position by a [`Layout`], its SKU (`kelvin.dev/sku`, `nvidia.com/gpu.product`,
//! `nvidia.com/gpu.count`), the GPUs in `status.capacity` and `status.allocatable`, and the
//! annotation `kwok.x-k8s.io/node: fake` that tells kwok to manage it. kwok's node-initialize
//! stage keeps the capacity we set and marks the node Ready; its pod stages run the pods the
//! scheduler binds to it.
//!
//! [`SpecNodes`] are the other kind: the nodes `kelvin plan --offline` simulates for a spec
//! (kelvin-core's `observed::simulate`), created as they are, so a live plan and an offline
//! plan of one spec see the same nodes.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::retry_unanswered;
use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kelvin_crds::diagnostics::has_errors;
use kelvin_crds::node::NodeInfo;
use kelvin_crds::sorted_map::Resources;
use kelvin_crds::v1alpha1::GpuClusterSpec;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};

/// Label every node of a set carries, with the set's prefix as value, so a set can be listed,
/// waited for and deleted as one.
pub const NODE_SET_LABEL: &str = "e2e.kelvin.dev/node-set";
/// The annotation kwok's `--manage-nodes-with-annotation-selector` looks for.
pub const KWOK_ANNOTATION: &str = "kwok.x-k8s.io/node";

/// Where a node's position puts it: `position / nodes_per_rack` is its rack; consecutive racks
/// fill a cooling loop, consecutive loops fill a hall. Halls are letters (`a`, `b`, ...),
/// loops count from 1 within a hall, racks count from 0 across the site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub nodes_per_rack: usize,
    pub racks_per_loop: usize,
    pub loops_per_hall: usize,
}

impl Default for Layout {
    /// 4 HGX servers per rack, 256 racks (1,024 nodes) per loop, 4 loops per hall.
    fn default() -> Self {
        Layout {
            nodes_per_rack: 4,
            racks_per_loop: 256,
            loops_per_hall: 4,
        }
    }
}

/// The place of the node at `position`: (hall, loop, rack).
impl Layout {
    pub fn place(&self, position: usize) -> (String, usize, usize) {
        let rack = position / self.nodes_per_rack.max(1);
        let global_loop = rack / self.racks_per_loop.max(1);
        let hall = global_loop / self.loops_per_hall.max(1);
        let cooling_loop = global_loop % self.loops_per_hall.max(1) + 1;
        (hall_name(hall), cooling_loop, rack)
    }
}

/// 0 -> "a", 25 -> "z", 26 -> "aa", ...
fn hall_name(mut index: usize) -> String {
    let mut name = Vec::new();
    loop {
        name.push(b'a' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    name.reverse();
    String::from_utf8_lossy(&name).into_owned()
}

/// A set of fake GPU nodes: `count` nodes named `{prefix}-{position}`, positions `start..`.
#[derive(Clone, Debug)]
pub struct GpuNodes {
    pub prefix: String,
    pub count: usize,
    /// First position number.
    pub start: usize,
    /// Digits of the zero-padded position in names.
    pub digits: usize,
    /// `kelvin.dev/sku`.
    pub sku: String,
    /// `nvidia.com/gpu.product`, as NVIDIA's GPU feature discovery spells it.
    pub gpu_product: String,
    /// Accelerator resource name in capacity/allocatable.
    pub resource: String,
    pub gpus_per_node: u32,
    pub layout: Layout,
    /// Extra labels; they override the generated ones.
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// Concurrent create/delete requests.
    pub parallelism: usize,
    /// Dress each node as a production GPU node is ([`crate::realistic::dress`]: ~100
    /// labels, annotations, images; 10-20 KB), for benchmarks.
    pub realistic: bool,
}

impl GpuNodes {
    /// `count` HGX H100 nodes (8 x `nvidia.com/gpu`) named `{prefix}-00000`, ...
    pub fn new(prefix: &str, count: usize) -> Self {
        GpuNodes {
            prefix: prefix.to_string(),
            count,
            start: 0,
            digits: 5,
            sku: "hgx-h100".to_string(),
            gpu_product: "NVIDIA-H100-80GB-HBM3".to_string(),
            resource: "nvidia.com/gpu".to_string(),
            gpus_per_node: 8,
            layout: Layout::default(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            parallelism: 32,
            realistic: false,
        }
    }

    /// Adds (or overrides) a label on every node.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    /// The name of the `i`-th node of the set (position `start + i`).
    pub fn name(&self, i: usize) -> String {
        format!(
            "{}-{:0width$}",
            self.prefix,
            self.start + i,
            width = self.digits
        )
    }

    /// Label selector matching exactly this set.
    pub fn selector(&self) -> String {
        format!("{NODE_SET_LABEL}={}", self.prefix)
    }

    /// The `i`-th Node object (pure).
    pub fn node(&self, i: usize) -> Node {
        let name = self.name(i);
        let (hall, cooling_loop, rack) = self.layout.place(self.start + i);
        let mut labels: BTreeMap<String, String> = [
            ("kubernetes.io/hostname", name.clone()),
            ("kubernetes.io/os", "linux".to_string()),
            ("kubernetes.io/arch", "amd64".to_string()),
            ("type", "kwok".to_string()),
            ("kelvin.dev/hall", hall),
            ("kelvin.dev/loop", cooling_loop.to_string()),
            ("kelvin.dev/rack", rack.to_string()),
            ("kelvin.dev/sku", self.sku.clone()),
            ("nvidia.com/gpu.product", self.gpu_product.clone()),
            ("nvidia.com/gpu.count", self.gpus_per_node.to_string()),
            (NODE_SET_LABEL, self.prefix.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        labels.extend(self.labels.clone());

        let mut resources = host_resources();
        resources.insert(
            self.resource.clone(),
            Quantity(self.gpus_per_node.to_string()),
        );

        let mut node = Node {
            metadata: ObjectMeta {
                name: Some(name),
                labels: Some(labels),
                annotations: Some([(KWOK_ANNOTATION.to_string(), "fake".to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                taints: (!self.taints.is_empty()).then(|| self.taints.clone()),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                capacity: Some(resources.clone()),
                allocatable: Some(resources),
                ..NodeStatus::default()
            }),
        };
        if self.realistic {
            crate::realistic::dress(&mut node, self.start + i);
        }
        node
    }

    /// Creates the nodes, `parallelism` requests at a time. Nodes that already exist are
    /// counted, not replaced. Returns how many were created.
    pub async fn create(&self, client: &Client) -> Result<usize> {
        let this = Arc::new(self.clone());
        create_nodes(client, self.count, self.parallelism, move |i| this.node(i)).await
    }

    /// Counts the nodes of this set that exist and that are Ready.
    pub async fn count_ready(&self, client: &Client) -> Result<(usize, usize)> {
        count_ready(client, Some(&self.selector()), |_| true).await
    }

    /// Waits until all `count` nodes are Ready; returns how long that took.
    pub async fn wait_ready(&self, client: &Client, timeout: Duration) -> Result<Duration> {
        wait_ready(&format!("{}*", self.prefix), self.count, timeout, || {
            self.count_ready(client)
        })
        .await
    }

    /// Deletes the nodes of this set, `parallelism` requests at a time.
    pub async fn delete(&self, client: &Client) -> Result<()> {
        let this = Arc::new(self.clone());
        delete_nodes(client, self.count, self.parallelism, move |i| this.name(i)).await
    }
}

/// What every fake node has besides its accelerators, so that pods asking for CPU and memory
/// schedule (a node without `pods` capacity takes none).
fn host_resources() -> BTreeMap<String, Quantity> {
    [
        ("cpu", "224"),
        ("memory", "2Ti"),
        ("ephemeral-storage", "30Ti"),
        ("pods", "110"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
    .collect()
}

/// The nodes `kelvin plan --offline` plans a spec against when it has no inventory
/// (kelvin-core's [`kelvin_core::observed::simulate`]), to be created as kwok nodes: the same
/// names, labels, taints and accelerators, so that planning against them live (or against
/// `kubectl get nodes` of them) gives the offline plan. There is one implementation of what a
/// spec's nodes look like, and it is kelvin-core's.
#[derive(Clone, Debug)]
pub struct SpecNodes {
    /// The simulated nodes, in kelvin-core's order.
    pub nodes: Vec<NodeInfo>,
    /// Concurrent create/delete requests.
    pub parallelism: usize,
}

impl SpecNodes {
    /// The nodes of `spec` (defaults applied), at most `max_per_pool` of each pool (the first
    /// ones, as `simulate_at_most` picks them).
    pub fn simulate(spec: &GpuClusterSpec, max_per_pool: Option<usize>) -> Self {
        SpecNodes {
            nodes: kelvin_core::observed::simulate_at_most(
                spec,
                max_per_pool.unwrap_or(usize::MAX),
            ),
            parallelism: 32,
        }
    }

    /// The nodes of the one GpuCluster in `path`, read by the loader `kelvin` uses (schema,
    /// defaults, CEL). A spec failing those checks is refused with the loader's findings
    /// (file:line: path: message); the physics checks of `kelvin validate` do not apply.
    pub fn from_file(path: &Path, max_per_pool: Option<usize>) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let file = path.display().to_string();
        let (clusters, diagnostics) = kelvin_crds::load::load_gpu_clusters(&file, &bytes);
        if has_errors(&diagnostics) {
            let findings: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            bail!("{file} is not a valid spec:\n{}", findings.join("\n"));
        }
        match clusters.as_slice() {
            [(cluster, _)] => Ok(Self::simulate(&cluster.spec, max_per_pool)),
            // Names of two sites' simulated nodes can collide; one at a time.
            other => bail!(
                "{file} holds {} GpuClusters; from-spec reads a file with exactly one",
                other.len()
            ),
        }
    }

    /// The Node object of the `i`-th node (pure): its labels, taints and Kelvin annotations as
    /// simulated, its accelerators added to [`host_resources`], and kwok's annotation. kwok
    /// marks every node Ready, as `simulate` does.
    pub fn node(&self, i: usize) -> Node {
        kwok_node(&self.nodes[i])
    }

    /// Creates the nodes, `parallelism` requests at a time; existing ones are counted, not
    /// replaced. Returns how many were created.
    pub async fn create(&self, client: &Client) -> Result<usize> {
        let this = Arc::new(self.clone());
        create_nodes(client, self.nodes.len(), self.parallelism, move |i| {
            this.node(i)
        })
        .await
    }

    /// Counts the nodes of this set that exist and that are Ready.
    pub async fn count_ready(&self, client: &Client) -> Result<(usize, usize)> {
        // The labels are the simulated ones and nothing else, so the set is known by its names.
        let names: HashSet<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        count_ready(client, None, |node| {
            node.metadata
                .name
                .as_deref()
                .is_some_and(|name| names.contains(name))
        })
        .await
    }

    /// Waits until every node is Ready; returns how long that took.
    pub async fn wait_ready(&self, client: &Client, timeout: Duration) -> Result<Duration> {
        wait_ready("simulated from the spec", self.nodes.len(), timeout, || {
            self.count_ready(client)
        })
        .await
    }

    /// Deletes the nodes, `parallelism` requests at a time.
    pub async fn delete(&self, client: &Client) -> Result<()> {
        let this = Arc::new(self.clone());
        delete_nodes(client, self.nodes.len(), self.parallelism, move |i| {
            this.nodes[i].name.clone()
        })
        .await
    }
}

/// A simulated node as a kwok-managed Node object.
fn kwok_node(info: &NodeInfo) -> Node {
    let with_host = |extended: &Resources| {
        let mut resources = host_resources();
        resources.extend(
            extended
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string()))),
        );
        resources
    };
    // NodeInfo's allocatable defaults to its capacity when empty.
    let allocatable = if info.allocatable.is_empty() {
        &info.capacity
    } else {
        &info.allocatable
    };
    let mut annotations = info.annotations.clone();
    annotations.insert(KWOK_ANNOTATION.to_string(), "fake".to_string());
    let taints: Vec<Taint> = info
        .taints
        .iter()
        .map(|t| Taint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            time_added: None,
        })
        .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(info.name.clone()),
            labels: Some(BTreeMap::from(&info.labels)),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then_some(taints),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            capacity: Some(with_host(&info.capacity)),
            allocatable: Some(with_host(allocatable)),
            ..NodeStatus::default()
        }),
    }
}

/// Creates `make(0..count)`, `parallelism` requests at a time; a node that already exists is
/// left as it is. Returns how many were created.
async fn create_nodes<F>(
    client: &Client,
    count: usize,
    parallelism: usize,
    make: F,
) -> Result<usize>
where
    F: Fn(usize) -> Node + Send + Sync + 'static,
{
    let api: Api<Node> = Api::all(client.clone());
    let make = Arc::new(make);
    let results = for_each_parallel(count, parallelism, move |i| {
        let api = api.clone();
        let node = make(i);
        async move {
            let params = PostParams::default();
            match retry_unanswered(|| api.create(&params, &node)).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
                Err(e) => {
                    let name = node.metadata.name.unwrap_or_default();
                    Err(anyhow!(e).context(format!("creating node {name}")))
                }
            }
        }
    })
    .await?;
    Ok(results.into_iter().filter(|created| *created).count())
}

/// Deletes the nodes called `name(0..count)`, `parallelism` requests at a time; missing ones
/// are fine.
async fn delete_nodes<F>(client: &Client, count: usize, parallelism: usize, name: F) -> Result<()>
where
    F: Fn(usize) -> String + Send + Sync + 'static,
{
    let api: Api<Node> = Api::all(client.clone());
    let name = Arc::new(name);
    for_each_parallel(count, parallelism, move |i| {
        let api = api.clone();
        let name = name(i);
        async move {
            let params = DeleteParams::default();
            match retry_unanswered(|| api.delete(&name, &params)).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
                Err(e) => Err(anyhow!(e).context(format!("deleting node {name}"))),
            }
        }
    })
    .await?;
    Ok(())
}

/// Counts the nodes (those matching `selector`, if given) for which `keep` holds, and how many
/// of them are Ready; lists in pages of 1,000.
async fn count_ready(
    client: &Client,
    selector: Option<&str>,
    keep: impl Fn(&Node) -> bool,
) -> Result<(usize, usize)> {
    let api: Api<Node> = Api::all(client.clone());
    let mut params = ListParams::default().limit(1000);
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let (mut total, mut ready) = (0, 0);
    loop {
        let list = retry_unanswered(|| api.list(&params))
            .await
            .context("listing nodes")?;
        let kept: Vec<&Node> = list.items.iter().filter(|n| keep(n)).collect();
        total += kept.len();
        ready += kept.iter().filter(|n| is_ready(n)).count();
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok((total, ready))
}

/// Polls `count` (existing, Ready) until `expected` nodes are Ready or `timeout` passes;
/// returns how long it took. `what` names the nodes in the error.
async fn wait_ready<F, Fut>(
    what: &str,
    expected: usize,
    timeout: Duration,
    mut count: F,
) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(usize, usize)>>,
{
    let started = Instant::now();
    let mut last = (0, 0);
    while started.elapsed() < timeout {
        last = count().await?;
        if last.1 >= expected {
            return Ok(started.elapsed());
        }
        let pause = if expected > 1000 { 1000 } else { 250 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    bail!(
        "{} of {expected} nodes {what} Ready after {timeout:?} ({} exist)",
        last.1,
        last.0
    )
}

/// True when the node's `Ready` condition is `True`.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Runs `f(0..count)` on `workers` tokio tasks that take the next index as they finish;
/// returns the results in index order, or the first error.
async fn for_each_parallel<T, F, Fut>(count: usize, workers: usize, f: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let f = Arc::new(f);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.clamp(1, count.max(1)) {
        let next = next.clone();
        let f = f.clone();
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(done);
                }
                match f(i).await {
                    Ok(v) => done.push((i, v)),
                    Err(e) => {
                        // Stop the other workers early.
                        next.store(count, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.context("node worker task failed")??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, v)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_position() {
        let mut set = GpuNodes::new("gpu-h100", 3);
        set.start = 42;
        assert_eq!(set.name(0), "gpu-h100-00042");
        assert_eq!(set.name(2), "gpu-h100-00044");
    }

    #[test]
    fn layout_places_racks_loops_and_halls() {
        let l = Layout {
            nodes_per_rack: 4,
            racks_per_loop: 2,
            loops_per_hall: 3,
        };
        assert_eq!(l.place(0), ("a".to_string(), 1, 0));
        assert_eq!(l.place(7), ("a".to_string(), 1, 1));
        assert_eq!(l.place(8), ("a".to_string(), 2, 2));
        assert_eq!(l.place(23), ("a".to_string(), 3, 5));
        assert_eq!(l.place(24), ("b".to_string(), 1, 6));
        assert_eq!(hall_name(25), "z");
        assert_eq!(hall_name(26), "aa");
        assert_eq!(hall_name(27), "ab");
    }

    #[test]
    fn node_has_gpu_capacity_labels_and_kwok_annotation() {
        let set = GpuNodes::new("gpu-b200", 1).label("team", "fsd");
        let node = set.node(0);
        let labels = node.metadata.labels.clone().unwrap();
        assert_eq!(labels["kelvin.dev/sku"], "hgx-h100");
        assert_eq!(labels["kelvin.dev/hall"], "a");
        assert_eq!(labels["kelvin.dev/loop"], "1");
        assert_eq!(labels["kelvin.dev/rack"], "0");
        assert_eq!(labels["team"], "fsd");
        assert_eq!(labels[NODE_SET_LABEL], "gpu-b200");
        assert_eq!(node.metadata.annotations.unwrap()[KWOK_ANNOTATION], "fake");
        let status = node.status.unwrap();
        assert_eq!(status.capacity.unwrap()["nvidia.com/gpu"].0, "8");
        assert_eq!(status.allocatable.unwrap()["nvidia.com/gpu"].0, "8");
    }

    #[test]
    fn extra_labels_override_generated_ones() {
        let node = GpuNodes::new("n", 1).label("kelvin.dev/hall", "z").node(0);
        assert_eq!(node.metadata.labels.unwrap()["kelvin.dev/hall"], "z");
    }

    #[test]
    fn spec_nodes_are_kelvin_cores_simulated_nodes_as_kwok_nodes() {
        let file = crate::repo_root().join("examples/small/cluster.yaml");
        let set = SpecNodes::from_file(&file, Some(3)).unwrap();
        // examples/small: two pools of 4, capped at 3 each.
        assert_eq!(set.nodes.len(), 6);
        for (i, info) in set.nodes.iter().enumerate() {
            let node = set.node(i);
            assert_eq!(node.metadata.name.as_ref(), Some(&info.name));
            // Labels exactly as simulated: nothing added that a plan could see.
            assert_eq!(
                node.metadata.labels.as_ref(),
                Some(&BTreeMap::from(&info.labels))
            );
            assert_eq!(node.metadata.annotations.unwrap()[KWOK_ANNOTATION], "fake");
            let status = node.status.unwrap();
            let (capacity, allocatable) = (status.capacity.unwrap(), status.allocatable.unwrap());
            for (resource, count) in &info.capacity {
                assert_eq!(capacity[&**resource].0, count.to_string(), "{resource}");
            }
            for (resource, count) in &info.allocatable {
                assert_eq!(allocatable[&**resource].0, count.to_string(), "{resource}");
            }
            assert_eq!(capacity["pods"].0, "110");
            assert_eq!(allocatable["cpu"].0, "224");
        }
    }

    #[test]
    fn a_spec_kelvin_refuses_is_refused_with_its_findings() {
        let dir = std::env::temp_dir().join(format!("kelvin-e2e-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.yaml");
        let text = std::fs::read_to_string(crate::repo_root().join("examples/small/cluster.yaml"))
            .unwrap()
            .replacen("expectedNodes: 4", "expectedNode: 4", 1);
        std::fs::write(&file, text).unwrap();
        let err = SpecNodes::from_file(&file, None).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        // The loader's finding, with file:line.
        assert!(err.contains("expectedNode"), "{err}");
        assert!(err.contains("bad.yaml:"), "{err}");
    }

    #[tokio::test]
    async fn parallel_runner_keeps_order_and_stops_on_error() {
        let out = for_each_parallel(100, 7, |i| async move { Ok(i * 2) })
            .await
            .unwrap();
        assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        let err = for_each_parallel(100, 7, |i| async move {
            if i == 50 { bail!("boom at {i}") } else { Ok(i) }
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("boom at 50"));
    }
}
