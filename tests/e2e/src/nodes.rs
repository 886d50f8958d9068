//! Fake GPU nodes: Node objects as a provisioning system would leave them, kept alive by kwok.
//!
//! Each node gets a name with its position number (`gpu-h100-00042`), labels for its place in
//! the building (`kelvin.dev/hall`, `kelvin.dev/loop`, `kelvin.dev/rack`) derived from that
//! position by a [`Layout`], its SKU (`kelvin.dev/sku`, `nvidia.com/gpu.product`,
//! `nvidia.com/gpu.count`), the GPUs in `status.capacity` and `status.allocatable`, and the
//! annotation `kwok.x-k8s.io/node: fake` that tells kwok to manage it. kwok's node-initialize
//! stage keeps the capacity we set and marks the node Ready; its pod stages run the pods the
//! scheduler binds to it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
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
    /// Labels by range of nodes: `(i, labels)` adds `labels` to node `i` and the nodes after
    /// it, until the next entry (used to place a pool's nodes in successive cooling zones).
    pub segments: Vec<(usize, BTreeMap<String, String>)>,
    /// Generated labels to leave out (e.g. the keys cooling zones select on, when the zones'
    /// labels are set through `segments`).
    pub omit: Vec<String>,
    pub taints: Vec<Taint>,
    /// Concurrent create/delete requests.
    pub parallelism: usize,
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
            segments: Vec::new(),
            omit: Vec::new(),
            taints: Vec::new(),
            parallelism: 32,
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
        labels.retain(|k, _| !self.omit.contains(k));
        labels.extend(self.labels.clone());
        if let Some((_, extra)) = self.segments.iter().rev().find(|(from, _)| *from <= i) {
            labels.extend(extra.clone());
        }

        let resources: BTreeMap<String, Quantity> = [
            ("cpu", "224".to_string()),
            ("memory", "2Ti".to_string()),
            ("ephemeral-storage", "30Ti".to_string()),
            ("pods", "110".to_string()),
            (self.resource.as_str(), self.gpus_per_node.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Quantity(v)))
        .collect();

        Node {
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
        }
    }

    /// Creates the nodes, `parallelism` requests at a time. Nodes that already exist are
    /// counted, not replaced. Returns how many were created.
    pub async fn create(&self, client: &Client) -> Result<usize> {
        let api: Api<Node> = Api::all(client.clone());
        let this = Arc::new(self.clone());
        let results = for_each_parallel(self.count, self.parallelism, move |i| {
            let api = api.clone();
            let this = this.clone();
            async move {
                let node = this.node(i);
                match api.create(&PostParams::default(), &node).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
                    Err(e) => Err(anyhow!(e).context(format!("creating node {}", this.name(i)))),
                }
            }
        })
        .await?;
        Ok(results.into_iter().filter(|created| *created).count())
    }

    /// Counts the nodes of this set that exist and that are Ready.
    pub async fn count_ready(&self, client: &Client) -> Result<(usize, usize)> {
        let api: Api<Node> = Api::all(client.clone());
        let mut params = ListParams::default().labels(&self.selector()).limit(1000);
        let (mut total, mut ready) = (0, 0);
        loop {
            let list = api.list(&params).await.context("listing nodes")?;
            total += list.items.len();
            ready += list.items.iter().filter(|n| is_ready(n)).count();
            match list.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        Ok((total, ready))
    }

    /// Waits until all `count` nodes are Ready; returns how long that took.
    pub async fn wait_ready(&self, client: &Client, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        let mut last = (0, 0);
        while started.elapsed() < timeout {
            last = self.count_ready(client).await?;
            if last.1 >= self.count {
                return Ok(started.elapsed());
            }
            let pause = if self.count > 1000 { 1000 } else { 250 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        bail!(
            "{} of {} nodes {}* Ready after {timeout:?} ({} exist)",
            last.1,
            self.count,
            self.prefix,
            last.0
        )
    }

    /// Deletes the nodes of this set, `parallelism` requests at a time.
    pub async fn delete(&self, client: &Client) -> Result<()> {
        let api: Api<Node> = Api::all(client.clone());
        let this = Arc::new(self.clone());
        for_each_parallel(self.count, self.parallelism, move |i| {
            let api = api.clone();
            let name = this.name(i);
            async move {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
                    Err(e) => Err(anyhow!(e).context(format!("deleting node {name}"))),
                }
            }
        })
        .await?;
        Ok(())
    }
}

/// The nodes a GpuCluster spec describes, one set per pool, as the site's provisioning would
/// leave them: named `{pool}-{position}` with positions running on across pools, labelled with
/// the pool's `nodeSelector.matchLabels`, with `accelerator.perNode` accelerators of the pool's
/// resource, and placed in the cooling zones in order: each zone (whose selector has only
/// `matchLabels` not contradicting the pool's) takes nodes until their IT power
/// (`perNode x tdpWatts + hostPowerWatts`) reaches its `capacityKW`; the zone's labels go on
/// them. Nodes that fit no zone get none of the labels zones select on. `max_per_pool` caps
/// `expectedNodes`.
pub fn sets_from_spec(
    cluster: &serde_json::Value,
    max_per_pool: Option<usize>,
) -> Result<Vec<GpuNodes>> {
    let spec = &cluster["spec"];
    let pools = spec["gpuPools"]
        .as_array()
        .context("spec.gpuPools is missing or not a list")?;
    let mut zones: Vec<(BTreeMap<String, String>, f64)> = spec["coolingZones"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|z| z["nodeSelector"]["matchExpressions"].is_null())
        .filter_map(|z| {
            let labels = string_map(&z["nodeSelector"]["matchLabels"]);
            let watts = z["capacityKW"].as_f64()? * 1000.0;
            (!labels.is_empty()).then_some((labels, watts))
        })
        .collect();
    let mut position = 0;
    let mut sets = Vec::new();
    for (p, pool) in pools.iter().enumerate() {
        let path = format!("spec.gpuPools[{p}]");
        let name = pool["name"]
            .as_str()
            .with_context(|| format!("{path}.name is missing"))?;
        let expected = pool["expectedNodes"]
            .as_u64()
            .with_context(|| format!("{path}.expectedNodes is missing"))?;
        let count = usize::try_from(expected)?.min(max_per_pool.unwrap_or(usize::MAX));
        let acc = &pool["accelerator"];
        let vendor = acc["vendor"].as_str().unwrap_or("nvidia");
        let per_node = acc["perNode"]
            .as_u64()
            .with_context(|| format!("{path}.accelerator.perNode is missing"))?;
        let model = acc["model"].as_str().unwrap_or(name);
        let pool_labels = string_map(&pool["nodeSelector"]["matchLabels"]);

        let mut set = GpuNodes::new(name, count);
        set.start = position;
        set.gpus_per_node = u32::try_from(per_node)?;
        set.resource = match acc["resourceName"].as_str() {
            Some(r) => r.to_string(),
            None => match vendor {
                "amd" => "amd.com/gpu",
                "intel" => "gpu.intel.com/i915",
                _ => "nvidia.com/gpu",
            }
            .to_string(),
        };
        set.gpu_product = if vendor == "nvidia" {
            format!("NVIDIA-{model}")
        } else {
            model.to_string()
        };
        set.sku = pool_labels
            .get("kelvin.dev/sku")
            .cloned()
            .unwrap_or_else(|| name.to_string());
        set.labels = pool_labels.clone();
        set.omit = zones.iter().flat_map(|(l, _)| l.keys().cloned()).collect();

        let node_watts = per_node as f64 * acc["tdpWatts"].as_f64().unwrap_or(0.0)
            + pool["hostPowerWatts"].as_f64().unwrap_or(0.0);
        let mut i = 0;
        for (zone_labels, left) in zones.iter_mut() {
            if i >= count {
                break;
            }
            let conflicts = zone_labels
                .iter()
                .any(|(k, v)| pool_labels.get(k).is_some_and(|pv| pv != v));
            if conflicts || *left < node_watts {
                continue;
            }
            let fit = if node_watts > 0.0 {
                ((*left / node_watts).floor() as usize).min(count - i)
            } else {
                count - i
            };
            set.segments.push((i, zone_labels.clone()));
            *left -= fit as f64 * node_watts;
            i += fit;
        }
        if i < count {
            // The rest fit no zone.
            set.segments.push((i, BTreeMap::new()));
        }
        position += count;
        sets.push(set);
    }
    Ok(sets)
}

fn string_map(value: &serde_json::Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
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
    fn spec_pools_become_node_sets_filling_cooling_zones_in_order() {
        let spec = serde_json::json!({"spec": {
            "coolingZones": [
                {"name": "z1", "capacityKW": 25, "nodeSelector": {"matchLabels": {"kelvin.dev/loop": 1}}},
                {"name": "z2", "capacityKW": 100, "nodeSelector": {"matchLabels": {"kelvin.dev/loop": "2"}}},
            ],
            "gpuPools": [
                {"name": "h100", "expectedNodes": 4,
                 "nodeSelector": {"matchLabels": {"kelvin.dev/sku": "hgx-h100"}},
                 "accelerator": {"vendor": "nvidia", "model": "H100-SXM5-80GB", "perNode": 8, "tdpWatts": 700},
                 "hostPowerWatts": 4400},
                {"name": "mi300", "expectedNodes": 50,
                 "nodeSelector": {"matchLabels": {"kelvin.dev/sku": "mi300x"}},
                 "accelerator": {"vendor": "amd", "model": "MI300X", "perNode": 8, "tdpWatts": 750},
                 "hostPowerWatts": 4000},
            ],
        }});
        let sets = sets_from_spec(&spec, Some(20)).unwrap();
        assert_eq!(sets.len(), 2);
        let (h100, mi300) = (&sets[0], &sets[1]);
        assert_eq!((h100.count, h100.start), (4, 0));
        assert_eq!((mi300.count, mi300.start), (20, 4));
        assert_eq!(h100.resource, "nvidia.com/gpu");
        assert_eq!(mi300.resource, "amd.com/gpu");
        assert_eq!(h100.name(0), "h100-00000");
        assert_eq!(mi300.name(0), "mi300-00004");
        // 10 kW per H100 node: two fit the 25 kW zone, the other two go to the next one.
        let loop_of =
            |set: &GpuNodes, i| set.node(i).metadata.labels.unwrap()["kelvin.dev/loop"].clone();
        assert_eq!(loop_of(h100, 1), "1");
        assert_eq!(loop_of(h100, 2), "2");
        assert_eq!(
            h100.node(0).metadata.labels.unwrap()["kelvin.dev/sku"],
            "hgx-h100"
        );
        // 10 kW per MI300 node: 80 kW left in z2 holds 8, the other 12 fit nowhere and get no
        // loop label at all (not even the one their position would give).
        assert_eq!(loop_of(mi300, 7), "2");
        let unzoned = mi300.node(8).metadata.labels.unwrap();
        assert!(!unzoned.contains_key("kelvin.dev/loop"), "{unzoned:?}");
        assert!(unzoned.contains_key("kelvin.dev/hall"));
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
