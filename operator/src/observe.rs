//! Observe: the cluster as one [`Observed`] snapshot — nodes (slim: DESIGN.md §4), the objects
//! Kelvin owns for a GpuCluster, which optional APIs are served, and `now`.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::core::v1::{Node, Pod};
use kelvin_core::{
    constants::{
        CLUSTER_LABEL, FIELD_MANAGER, MANAGED_BY, MANAGED_BY_LABEL, NAMESPACE,
        OUT_OF_SERVICE_TAINT, TRANSITION_ANNOTATION,
    },
    desired::{Desired, KindInfo, ObjectKey},
    observed::{NodeWorkload, Observed, ServedApis, Timestamp},
};
use kelvin_crds::{
    node::{NodeInfo, NodeTaint, kelvin_annotations},
    sorted_map::{Labels, Resources},
};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams},
};
use serde_json::Value;

use crate::api_client::{ApiClient, Request};

/// Nodes listed per page: bounded memory per request at 70,000 nodes.
const PAGE: u32 = 500;

/// Why the cluster could not be observed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// Listing nodes failed.
    #[error("listing nodes")]
    ListNodes(#[source] kube::Error),
    /// Listing Kelvin's objects of a kind failed.
    #[error("listing {kind} objects of GpuCluster {cluster}")]
    ListOwned {
        /// The kind.
        kind: &'static str,
        /// The GpuCluster.
        cluster: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Listing pods failed.
    #[error("listing pods ({what})")]
    ListPods {
        /// Which pods.
        what: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Asking which API groups are served failed.
    #[error("discovering API groups")]
    Discover(#[source] kube::Error),
    /// The API server listed a node twice.
    #[error("building the snapshot")]
    Snapshot(#[from] kelvin_core::observed::DuplicateNode),
    /// An object listed did not serialize back to JSON.
    #[error("reading {key}")]
    ReadObject {
        /// The object.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl ObserveError {
    /// Short, stable label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::ListNodes(_) => "list_nodes",
            Self::ListOwned { .. } => "list_owned",
            Self::ListPods { .. } => "list_pods",
            Self::Discover(_) => "discover",
            Self::Snapshot(_) => "snapshot",
            Self::ReadObject { .. } => "read_object",
        }
    }
}

/// A node's taints in Kelvin's type.
pub fn taints(spec: Option<k8s_openapi::api::core::v1::NodeSpec>) -> Vec<NodeTaint> {
    spec.and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .map(|t| NodeTaint {
            key: t.key,
            value: t.value,
            effect: t.effect,
        })
        .collect()
}

/// The slim view of `node`: what Kelvin decides on, nothing else kept.
pub fn slim(node: Node) -> NodeInfo {
    let Node {
        metadata,
        spec,
        status,
        ..
    } = node;
    let kelvin_label_keys = metadata.managed_fields.as_ref().map(|entries| {
        let mut keys: Vec<Arc<str>> = entries
            .iter()
            .filter(|e| e.manager.as_deref() == Some(FIELD_MANAGER))
            .filter_map(|e| {
                e.fields_v1
                    .as_ref()?
                    .0
                    .get("f:metadata")?
                    .get("f:labels")?
                    .as_object()
            })
            .flat_map(|labels| {
                labels
                    .keys()
                    .filter_map(|k| k.strip_prefix("f:"))
                    .map(Arc::from)
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    });
    let taints = taints(spec);
    let (capacity, allocatable, ready) = match status {
        Some(status) => {
            let count = |resources: Option<
                BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
            >| {
                resources
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(key, _)| key.contains('/'))
                    .filter_map(|(key, q)| Some((key, q.0.parse::<u64>().ok()?)))
                    .collect::<Resources>()
            };
            let ready = status
                .conditions
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (count(status.capacity), count(status.allocatable), ready)
        }
        None => (Resources::new(), Resources::new(), false),
    };
    NodeInfo {
        name: metadata.name.unwrap_or_default(),
        labels: metadata.labels.map(Labels::from).unwrap_or_default(),
        annotations: metadata
            .annotations
            .as_ref()
            .map(kelvin_annotations)
            .unwrap_or_default(),
        taints,
        capacity,
        allocatable,
        ready,
        kelvin_label_keys,
    }
}

/// Every node, listed page by page (when the cache cannot be trusted: see `node_cache`).
pub async fn nodes(client: &ApiClient) -> Result<Vec<Arc<NodeInfo>>, ObserveError> {
    let api: Api<Node> = Api::all(client.client.clone());
    let mut nodes = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = client
            .call(Request::Read, || api.list(&params))
            .await
            .map_err(ObserveError::ListNodes)?;
        nodes.extend(page.items.into_iter().map(|node| Arc::new(slim(node))));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(nodes),
        }
    }
}

/// The `ApiResource` of a kind Kelvin writes.
pub fn api_resource(kind: &KindInfo) -> ApiResource {
    let (group, version) = kind
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", kind.api_version));
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind.kind),
        kind.plural,
    )
}

/// Which optional APIs are served.
pub async fn served_apis(client: &ApiClient) -> Result<ServedApis, ObserveError> {
    let groups = client
        .call(Request::Read, || client.client.list_api_groups())
        .await
        .map_err(ObserveError::Discover)?;
    let serves = |group: &str, version: &str| {
        groups
            .groups
            .iter()
            .any(|g| g.name == group && g.versions.iter().any(|v| v.version == version))
    };
    Ok(ServedApis {
        kueue: serves("kueue.x-k8s.io", "v1beta2"),
        volcano: serves("topology.volcano.sh", "v1alpha1"),
    })
}

/// Kelvin's objects of GpuCluster `cluster`, by identity, of every kind `Desired` can hold
/// whose API is served (a kind that is not served holds nothing).
pub async fn owned_objects(
    client: &ApiClient,
    cluster: &str,
    apis: ServedApis,
) -> Result<BTreeMap<ObjectKey, Value>, ObserveError> {
    let mut objects = BTreeMap::new();
    let selector = format!("{CLUSTER_LABEL}={cluster}");
    // Kelvin's own namespace is shared by every GpuCluster: labelled managed-by only.
    let namespaces = format!("{MANAGED_BY_LABEL}={MANAGED_BY}");
    for kind in Desired::kinds() {
        let served = match kind.group {
            "kueue.x-k8s.io" => apis.kueue,
            "topology.volcano.sh" => apis.volcano,
            _ => true,
        };
        if !served {
            continue;
        }
        let api: Api<DynamicObject> = Api::all_with(client.client.clone(), &api_resource(&kind));
        let params =
            ListParams::default().labels(if kind.kind == "Namespace" && kind.group.is_empty() {
                &namespaces
            } else {
                &selector
            });
        let list = client
            .call(Request::Read, || api.list(&params))
            .await
            .map_err(|source| ObserveError::ListOwned {
                kind: kind.kind,
                cluster: cluster.to_owned(),
                source,
            })?;
        for object in list.items {
            let key = ObjectKey {
                api_version: kind.api_version.to_owned(),
                kind: kind.kind.to_owned(),
                namespace: object.metadata.namespace.clone(),
                name: object.metadata.name.clone().unwrap_or_default(),
            };
            let mut value =
                serde_json::to_value(&object).map_err(|source| ObserveError::ReadObject {
                    key: key.to_string(),
                    source,
                })?;
            if let Some(map) = value.as_object_mut() {
                map.insert("apiVersion".into(), Value::String(kind.api_version.into()));
                map.insert("kind".into(), Value::String(kind.kind.into()));
            }
            objects.insert(key, value);
        }
    }
    Ok(objects)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether a drain must evict `pod`: not finished, not a DaemonSet's or a mirror pod, and not
/// tolerating the out-of-service taint (kubectl drain's rules, plus the taint).
fn evictable(pod: &Pod) -> bool {
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let daemon = pod
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|o| o.kind == "DaemonSet");
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let tolerates = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|t| {
            t.operator.as_deref() == Some("Exists") && t.key.is_none()
                || t.key.as_deref() == Some(OUT_OF_SERVICE_TAINT)
        });
    !(finished || daemon || mirror || tolerates)
}

/// A pod a drain has to evict.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The node it runs on.
    pub node: String,
    /// Whether it is terminating already (evicted before; its grace period runs).
    pub terminating: bool,
}

/// What runs on the nodes, as far as settling transitions needs: per node, Kelvin's DaemonSet
/// pods that are not Ready (one list, in Kelvin's namespace) and, for nodes being taken out of
/// service, the pods a drain still has to evict (one list per such node: at most the budget);
/// and those pods, for the drain to evict.
pub async fn workloads(
    client: &ApiClient,
    cluster: &str,
    nodes: &[Arc<NodeInfo>],
) -> Result<(BTreeMap<String, NodeWorkload>, Vec<PodRef>), ObserveError> {
    let mut workloads: BTreeMap<String, NodeWorkload> = BTreeMap::new();
    let kelvins: Api<Pod> = Api::namespaced(client.client.clone(), NAMESPACE);
    let selector = format!("{CLUSTER_LABEL}={cluster}");
    let params = ListParams::default().labels(&selector);
    let list = client
        .call(Request::Read, || kelvins.list(&params))
        .await
        .map_err(|source| ObserveError::ListPods {
            what: format!("{NAMESPACE} {selector}"),
            source,
        })?;
    for pod in list.items.iter().filter(|p| !is_ready(p)) {
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            workloads.entry(node).or_default().unready_kelvin_pods += 1;
        }
    }
    let all: Api<Pod> = Api::all(client.client.clone());
    let draining = nodes.iter().filter(|n| {
        n.annotations
            .get(TRANSITION_ANNOTATION)
            .is_some_and(|t| t.starts_with("out-of-service@"))
    });
    let mut to_evict = Vec::new();
    for node in draining {
        let field = format!("spec.nodeName={}", node.name);
        let params = ListParams::default().fields(&field);
        let pods = client
            .call(Request::Read, || all.list(&params))
            .await
            .map_err(|source| ObserveError::ListPods {
                what: field.clone(),
                source,
            })?;
        let before = to_evict.len();
        to_evict.extend(pods.items.iter().filter(|p| evictable(p)).map(|p| PodRef {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            node: node.name.clone(),
            terminating: p.metadata.deletion_timestamp.is_some(),
        }));
        workloads
            .entry(node.name.clone())
            .or_default()
            .evictable_pods = u32::try_from(to_evict.len() - before).unwrap_or(u32::MAX);
    }
    to_evict.sort();
    Ok((workloads, to_evict))
}

/// The whole snapshot for GpuCluster `cluster` at `now`, around `nodes` (from the cache), and
/// the pods drains have to evict.
pub async fn observe(
    client: &ApiClient,
    cluster: &str,
    nodes: Vec<Arc<NodeInfo>>,
    now: Timestamp,
) -> Result<(Observed, Vec<PodRef>), ObserveError> {
    let apis = served_apis(client).await?;
    let mut observed = Observed::from_shared(nodes, now)?;
    let (workloads, to_evict) = workloads(client, cluster, observed.nodes()).await?;
    observed.workloads = workloads;
    observed.apis = apis;
    observed.objects = owned_objects(client, cluster, apis).await?;
    Ok((observed, to_evict))
}
