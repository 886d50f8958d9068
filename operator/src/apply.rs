//! Apply: what the plan decided, written to the cluster. Objects by server-side apply (field
//! manager `kelvin`, force), in the plan's order (namespaces and cluster-wide objects, config,
//! workloads, scheduling objects that reference them); then node writes; then orphans deleted
//! (never a Namespace). Status last, through the status subresource.

use std::collections::BTreeMap;

use futures::{StreamExt, stream::FuturesUnordered};
use k8s_openapi::api::core::v1::Node;
use kelvin_core::{
    constants::{FIELD_MANAGER, FINALIZER},
    desired::{Desired, Manifest, ObjectKey},
    node_state::DesiredNodes,
    observed::Observed,
    rollout::NodeWrite,
};
use kelvin_crds::{
    node::kelvin_annotations,
    v1alpha1::{GpuCluster, GpuClusterStatus},
};
use kube::{
    Api,
    api::{DeleteParams, DynamicObject, Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{
    api_client::{ApiClient, Request},
    node_cache::NodeCache,
    observe::{api_resource, taints},
};

/// A merge patch under Kelvin's field manager (for what server-side apply cannot own: the
/// atomic taint list, the finalizer list).
fn update_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// Attempts at a taint write whose resourceVersion precondition failed (someone else wrote
/// the node in between): read again, merge again.
const TAINT_ATTEMPTS: usize = 5;

/// Why applying failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A server-side apply of an object failed.
    #[error("applying {key}")]
    ApplyObject {
        /// The object.
        key: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The object's kind is not one `Desired` holds (a bug).
    #[error("{key} is of a kind Kelvin does not write")]
    UnknownKind {
        /// The object.
        key: String,
    },
    /// Deleting an orphan failed.
    #[error("deleting {key}")]
    DeleteOrphan {
        /// The object.
        key: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Writing a node's labels and annotations failed.
    #[error("writing labels and annotations of node {node}")]
    WriteNodeLabels {
        /// The node.
        node: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Writing a node's taints failed.
    #[error("writing taints of node {node}")]
    WriteNodeTaints {
        /// The node.
        node: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// A node's taints kept changing under Kelvin's writes.
    #[error("writing taints of node {node}: it changed {TAINT_ATTEMPTS} times while Kelvin wrote")]
    NodeKeptChanging {
        /// The node.
        node: String,
    },
    /// A write without a label set for a node Kelvin has no desired state of (a bug: applying
    /// no labels would remove Kelvin's).
    #[error("node {node} has no desired state to apply")]
    NoDesiredState {
        /// The node.
        node: String,
    },
    /// Adding or removing the finalizer failed.
    #[error("writing the finalizer of GpuCluster {cluster}")]
    WriteFinalizer {
        /// The GpuCluster.
        cluster: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Writing the GpuCluster's status failed.
    #[error("writing the status of GpuCluster {cluster}")]
    WriteStatus {
        /// The GpuCluster.
        cluster: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

impl ApplyError {
    /// Short, stable label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::ApplyObject { .. } => "apply_object",
            Self::UnknownKind { .. } => "unknown_kind",
            Self::DeleteOrphan { .. } => "delete_orphan",
            Self::WriteNodeLabels { .. } => "write_node_labels",
            Self::WriteNodeTaints { .. } => "write_node_taints",
            Self::NodeKeptChanging { .. } => "node_kept_changing",
            Self::NoDesiredState { .. } => "no_desired_state",
            Self::WriteFinalizer { .. } => "write_finalizer",
            Self::WriteStatus { .. } => "write_status",
        }
    }
}

fn api_for(client: &kube::Client, key: &ObjectKey) -> Result<Api<DynamicObject>, ApplyError> {
    let kind = Desired::kinds()
        .into_iter()
        .find(|k| k.kind == key.kind && k.api_version == key.api_version)
        .ok_or_else(|| ApplyError::UnknownKind {
            key: key.to_string(),
        })?;
    let resource = api_resource(&kind);
    Ok(match (&key.namespace, kind.namespaced) {
        (Some(namespace), true) => Api::namespaced_with(client.clone(), namespace, &resource),
        _ => Api::all_with(client.clone(), &resource),
    })
}

/// Server-side applies every manifest, in order.
pub async fn apply_objects(
    client: &ApiClient,
    manifests: &[Manifest],
) -> Result<usize, ApplyError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for manifest in manifests {
        let api = api_for(&client.client, &manifest.key)?;
        let write = Request::Write {
            verb: "apply",
            kind: &manifest.key.kind,
        };
        let body = Patch::Apply(&manifest.body);
        client
            .call(write, || api.patch(&manifest.key.name, &params, &body))
            .await
            .map_err(|source| ApplyError::ApplyObject {
                key: manifest.key.to_string(),
                source,
            })?;
    }
    Ok(manifests.len())
}

/// Deletes `orphans` (the plan never lists a Namespace). Gone already counts as deleted.
pub async fn delete_orphans<'a>(
    client: &ApiClient,
    orphans: impl Iterator<Item = &'a ObjectKey>,
) -> Result<usize, ApplyError> {
    let mut deleted = 0;
    let background = DeleteParams::background();
    for key in orphans {
        let api = api_for(&client.client, key)?;
        let write = Request::Write {
            verb: "delete",
            kind: &key.kind,
        };
        match client
            .call(write, || api.delete(&key.name, &background))
            .await
        {
            Ok(_) => deleted += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(ApplyError::DeleteOrphan {
                    key: key.to_string(),
                    source,
                });
            }
        }
    }
    Ok(deleted)
}

/// One node write: the whole Kelvin label set and Kelvin's annotations by server-side apply,
/// then, when taints change, the taint list merged into the node the apply returned, with its
/// resourceVersion as precondition (on conflict: read again, merge again). Returns the
/// resourceVersion of the last write.
pub async fn write_node(
    client: &ApiClient,
    nodes: &DesiredNodes,
    write: &NodeWrite,
    current_annotations: &BTreeMap<String, String>,
) -> Result<Option<String>, ApplyError> {
    let api: Api<Node> = Api::all(client.client.clone());
    let node = write.node.as_str();
    // Server-side apply owns what it is given: always the whole set Kelvin wants.
    let labels: serde_json::Map<String, Value> = match &write.diff.labels {
        Some(labels) => labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.as_ref())))
            .collect(),
        // An apply without Kelvin's labels would remove them: no state, no write.
        None => nodes
            .get(node)
            .flatten()
            .map(|state| {
                state
                    .labels()
                    .map(|(k, v)| (k.to_string(), json!(v.as_ref())))
                    .collect()
            })
            .ok_or_else(|| ApplyError::NoDesiredState {
                node: node.to_owned(),
            })?,
    };
    let mut annotations: BTreeMap<String, String> = kelvin_annotations(current_annotations);
    for (key, value) in &write.annotations {
        match value {
            Some(value) => annotations.insert((*key).to_owned(), value.clone()),
            None => annotations.remove(*key),
        };
    }
    let body = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node, "labels": labels, "annotations": annotations},
    });
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let labels_write = Request::Write {
        verb: "apply",
        kind: "Node",
    };
    let body = Patch::Apply(&body);
    let mut current = client
        .call(labels_write, || api.patch(node, &apply, &body))
        .await
        .map_err(|source| ApplyError::WriteNodeLabels {
            node: node.to_owned(),
            source,
        })?;
    if write.diff.add_taints.is_empty() && write.diff.remove_taints.is_empty() {
        return Ok(current.metadata.resource_version);
    }
    let taints_write = Request::Write {
        verb: "patch",
        kind: "Node",
    };
    let merge = update_params();
    for _ in 0..TAINT_ATTEMPTS {
        let version = current.metadata.resource_version.clone();
        let Some(merged) = write.merge_taints(&taints(current.spec.take())) else {
            return Ok(version);
        };
        let patch = Patch::Merge(json!({
            "metadata": {"resourceVersion": version},
            "spec": {"taints": merged},
        }));
        match client
            .call(taints_write, || api.patch(node, &merge, &patch))
            .await
        {
            Ok(written) => return Ok(written.metadata.resource_version),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                current = client
                    .call(Request::Read, || api.get(node))
                    .await
                    .map_err(|source| ApplyError::WriteNodeTaints {
                        node: node.to_owned(),
                        source,
                    })?;
            }
            Err(source) => {
                return Err(ApplyError::WriteNodeTaints {
                    node: node.to_owned(),
                    source,
                });
            }
        }
    }
    Err(ApplyError::NodeKeptChanging {
        node: node.to_owned(),
    })
}

/// Every node write, `concurrency` at a time: first those that start no transition (clearing
/// settled ones among them), and only when all of them are done those that start one, so the
/// nodes never carry more transitions than the budget allows, even for a moment.
/// Kelvin's annotations on each node are taken from `observed` (server-side apply sends the
/// whole set it owns). Each write's resourceVersion goes to `cache`, so the next snapshot
/// shows it.
pub struct NodeWriter<'a> {
    /// The client.
    pub client: &'a ApiClient,
    /// Where writes are expected.
    pub cache: &'a NodeCache,
    /// Writes in flight at once.
    pub concurrency: usize,
}

impl NodeWriter<'_> {
    /// Every write of `writes`, starting ones last.
    pub async fn write_nodes(
        &self,
        nodes: &DesiredNodes,
        writes: &[NodeWrite],
        observed: &Observed,
    ) -> Result<usize, ApplyError> {
        let starting = writes.partition_point(|w| w.starts.is_none());
        let (others, starts) = writes.split_at(starting);
        let done = self.write_batch(nodes, others, observed).await?;
        Ok(done + self.write_batch(nodes, starts, observed).await?)
    }

    async fn write_batch(
        &self,
        nodes: &DesiredNodes,
        writes: &[NodeWrite],
        observed: &Observed,
    ) -> Result<usize, ApplyError> {
        let empty = BTreeMap::new();
        let mut pending = writes.iter();
        let mut running = FuturesUnordered::new();
        let mut done = 0;
        loop {
            while running.len() < self.concurrency.max(1) {
                let Some(write) = pending.next() else { break };
                let current = observed
                    .node_index(&write.node)
                    .map_or(&empty, |i| &observed.nodes()[i].annotations);
                running.push(async move {
                    let version = write_node(self.client, nodes, write, current).await?;
                    self.cache.expect(&write.node, version);
                    Ok::<_, ApplyError>(())
                });
            }
            match running.next().await {
                Some(result) => {
                    result?;
                    done += 1;
                }
                None => return Ok(done),
            }
        }
    }
}

fn finalizers_patch(cluster: &GpuCluster, finalizers: Vec<String>) -> Value {
    // The resourceVersion makes it a compare-and-swap: a list changed meanwhile is not lost.
    json!({"metadata": {"finalizers": finalizers, "resourceVersion": cluster.metadata.resource_version}})
}

/// Adds `kelvin.dev/cleanup` to the GpuCluster when it is missing.
pub async fn add_finalizer(client: &ApiClient, cluster: &GpuCluster) -> Result<(), ApplyError> {
    let mut finalizers = cluster.metadata.finalizers.clone().unwrap_or_default();
    if finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    finalizers.push(FINALIZER.to_owned());
    patch_finalizers(client, cluster, finalizers).await
}

/// Removes `kelvin.dev/cleanup`: Kelvin is off the cluster's nodes, its objects are gone.
pub async fn remove_finalizer(client: &ApiClient, cluster: &GpuCluster) -> Result<(), ApplyError> {
    let finalizers: Vec<String> = cluster
        .metadata
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    patch_finalizers(client, cluster, finalizers).await
}

async fn patch_finalizers(
    client: &ApiClient,
    cluster: &GpuCluster,
    finalizers: Vec<String>,
) -> Result<(), ApplyError> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let api: Api<GpuCluster> = Api::all(client.client.clone());
    let patch = Patch::Merge(finalizers_patch(cluster, finalizers));
    let params = update_params();
    let write = Request::Write {
        verb: "patch",
        kind: "GpuCluster",
    };
    client
        .call(write, || api.patch(&name, &params, &patch))
        .await
        .map_err(|source| ApplyError::WriteFinalizer {
            cluster: name.clone(),
            source,
        })?;
    Ok(())
}

/// Writes `status` through the status subresource.
pub async fn write_status(
    client: &ApiClient,
    cluster: &GpuCluster,
    status: &GpuClusterStatus,
) -> Result<(), ApplyError> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let api: Api<GpuCluster> = Api::all(client.client.clone());
    let patch = Patch::Merge(json!({"status": status}));
    let params = PatchParams::default();
    let write = Request::Write {
        verb: "patch",
        kind: "GpuCluster/status",
    };
    client
        .call(write, || api.patch_status(&name, &params, &patch))
        .await
        .map_err(|source| ApplyError::WriteStatus {
            cluster: name.clone(),
            source,
        })?;
    Ok(())
}
