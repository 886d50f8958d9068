//! Desired objects: a validated spec and its analysis -> every object Kelvin wants in the
//! cluster. Pure.
//!
//! One typed list per kind — Kueue's and Volcano's kinds too — so `apply` destructures
//! [`Desired`] exhaustively and the kinds for orphan clean-up and RBAC come from the type
//! ([`Desired::kinds`]), never from a second hand-kept list.

mod custom;
mod device_plugins;
mod kueue;
mod node_agent;
mod rdma;
mod scheduling;
mod volcano;

use std::collections::BTreeMap;

use k8s_openapi::{
    ClusterResourceScope, NamespaceResourceScope,
    api::{
        apps::v1::DaemonSet,
        core::v1::{ConfigMap, Namespace, ResourceQuota},
        scheduling::v1::PriorityClass,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kelvin_crds::v1alpha1::{GpuCluster, TopologyAwareScheduling};
use serde::Serialize;
use serde_json::Value;

pub use custom::{
    ClusterQueue, CustomKind, CustomObject, HyperNode, KUEUE_API_VERSION, LocalQueue,
    ResourceFlavor, Topology, VOLCANO_API_VERSION,
};
pub use device_plugins::{GPU_OPERATOR_CONFIG_MAP, plugin_name};
pub use rdma::rdma_name;
pub use scheduling::QUOTA_NAME;

use crate::{
    analysis::Analysis,
    constants::{CLUSTER_LABEL, MANAGED_BY, MANAGED_BY_LABEL, NAMESPACE},
    observed::ServedApis,
};

/// Identity of an object: what `kubectl get` needs to find it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectKey {
    /// e.g. `apps/v1`.
    pub api_version: String,
    /// e.g. `DaemonSet`.
    pub kind: String,
    /// Namespace, for namespaced kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{}/{}/{}", self.kind, namespace, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// An object as JSON, with its identity.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// Identity.
    pub key: ObjectKey,
    /// The full object.
    pub body: Value,
}

/// One kind Kelvin writes: what listing, watching and RBAC need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindInfo {
    /// API group ("" for the core group).
    pub group: &'static str,
    /// e.g. `apps/v1`.
    pub api_version: &'static str,
    /// e.g. `DaemonSet`.
    pub kind: &'static str,
    /// Resource name in URLs and RBAC, e.g. `daemonsets`.
    pub plural: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

/// Everything Kelvin wants in the cluster for one GpuCluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// Kelvin's own namespace and the tenants' namespaces (never owner-referenced, never
    /// deleted: they hold the tenants' jobs and data).
    pub namespaces: Vec<Namespace>,
    /// Device-plugin and RDMA plugin configuration.
    pub config_maps: Vec<ConfigMap>,
    /// Device plugins per pool, RDMA shared device plugin per fabric.
    pub daemon_sets: Vec<DaemonSet>,
    /// spec.scheduling.priorityClasses.
    pub priority_classes: Vec<PriorityClass>,
    /// One GPU quota per tenant namespace.
    pub resource_quotas: Vec<ResourceQuota>,
    /// Kueue: one per pool.
    pub resource_flavors: Vec<CustomObject<ResourceFlavor>>,
    /// Kueue: one per tenant, in one cohort.
    pub cluster_queues: Vec<CustomObject<ClusterQueue>>,
    /// Kueue: one per tenant namespace.
    pub local_queues: Vec<CustomObject<LocalQueue>>,
    /// Kueue: one per fabric, levels = the fabric's tiers.
    pub topologies: Vec<CustomObject<Topology>>,
    /// Volcano: per fabric tier, covering every observed leaf group.
    pub hyper_nodes: Vec<CustomObject<HyperNode>>,
}

/// Why an object could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An object or a config file did not serialize (a bug, reported rather than panicking).
    #[error("serializing {what}")]
    Serialize {
        /// What was being serialized.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A plugin config file did not serialize as YAML.
    #[error("writing {what} as YAML")]
    SerializeYaml {
        /// What was being serialized.
        what: String,
        /// The cause.
        #[source]
        source: serde_saphyr::SerializeError,
    },
}

impl BuildError {
    /// Short, stable label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Serialize { .. } | Self::SerializeYaml { .. } => "serialize",
        }
    }
}

/// Whether a k8s-openapi kind is namespaced, from its scope type.
trait Scope {
    const NAMESPACED: bool;
}
impl Scope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

fn typed_kind<K>(_: &[K]) -> KindInfo
where
    K: k8s_openapi::Resource,
    K::Scope: Scope,
{
    KindInfo {
        group: K::GROUP,
        api_version: K::API_VERSION,
        kind: K::KIND,
        plural: K::URL_PATH_SEGMENT,
        namespaced: <K::Scope as Scope>::NAMESPACED,
    }
}

fn custom_kind<K: CustomKind>(_: &[CustomObject<K>]) -> KindInfo {
    K::info()
}

impl Desired {
    /// Every kind a `Desired` can hold, in apply order, whether or not this one holds any.
    pub fn kinds() -> Vec<KindInfo> {
        let Self {
            namespaces,
            config_maps,
            daemon_sets,
            priority_classes,
            resource_quotas,
            resource_flavors,
            cluster_queues,
            local_queues,
            topologies,
            hyper_nodes,
        } = &Self::default();
        vec![
            typed_kind(namespaces),
            typed_kind(priority_classes),
            typed_kind(config_maps),
            typed_kind(resource_quotas),
            typed_kind(daemon_sets),
            custom_kind(topologies),
            custom_kind(resource_flavors),
            custom_kind(cluster_queues),
            custom_kind(local_queues),
            custom_kind(hyper_nodes),
        ]
    }

    /// Every object as JSON, in apply order: namespaces and cluster-wide objects first, then
    /// configuration, then workloads, then scheduling objects that reference them (a Kueue
    /// ResourceFlavor names its Topology; a LocalQueue its ClusterQueue).
    pub fn manifests(&self) -> Result<Vec<Manifest>, BuildError> {
        let Self {
            namespaces,
            config_maps,
            daemon_sets,
            priority_classes,
            resource_quotas,
            resource_flavors,
            cluster_queues,
            local_queues,
            topologies,
            hyper_nodes,
        } = self;
        let mut out = Vec::new();
        push_typed(&mut out, namespaces)?;
        push_typed(&mut out, priority_classes)?;
        push_typed(&mut out, config_maps)?;
        push_typed(&mut out, resource_quotas)?;
        push_typed(&mut out, daemon_sets)?;
        push_custom(&mut out, topologies);
        push_custom(&mut out, resource_flavors);
        push_custom(&mut out, cluster_queues);
        push_custom(&mut out, local_queues);
        push_custom(&mut out, hyper_nodes);
        Ok(out)
    }
}

fn push_typed<K>(out: &mut Vec<Manifest>, objects: &[K]) -> Result<(), BuildError>
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta> + Serialize,
{
    for object in objects {
        let meta = object.metadata();
        let key = ObjectKey {
            api_version: K::API_VERSION.to_owned(),
            kind: K::KIND.to_owned(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
        };
        let mut body = serde_json::to_value(object).map_err(|source| BuildError::Serialize {
            what: key.to_string(),
            source,
        })?;
        if let Some(map) = body.as_object_mut() {
            map.insert("apiVersion".into(), Value::String(K::API_VERSION.into()));
            map.insert("kind".into(), Value::String(K::KIND.into()));
        }
        out.push(Manifest { key, body });
    }
    Ok(())
}

fn push_custom<K: CustomKind>(out: &mut Vec<Manifest>, objects: &[CustomObject<K>]) {
    out.extend(objects.iter().map(CustomObject::manifest));
}

/// Metadata shared by everything Kelvin creates: managed-by and cluster labels, and an owner
/// reference to the GpuCluster when it exists in a cluster (offline renders have no UID).
pub(crate) struct Owner {
    cluster: String,
    reference: Option<OwnerReference>,
}

impl Owner {
    pub(crate) fn of(cluster: &GpuCluster) -> Self {
        let reference = cluster.metadata.uid.as_ref().map(|uid| OwnerReference {
            api_version: kelvin_crds::v1alpha1::API_VERSION.into(),
            kind: "GpuCluster".into(),
            name: cluster.metadata.name.clone().unwrap_or_default(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        });
        Self {
            cluster: cluster.metadata.name.clone().unwrap_or_default(),
            reference,
        }
    }

    pub(crate) fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
            (CLUSTER_LABEL.to_owned(), self.cluster.clone()),
        ])
    }

    /// Metadata of an owned object: labels and the owner reference.
    pub(crate) fn meta(&self, name: impl Into<String>, namespace: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: namespace.map(str::to_owned),
            labels: Some(self.labels()),
            owner_references: self.reference.clone().map(|r| vec![r]),
            ..ObjectMeta::default()
        }
    }

    /// Metadata of a tenant Namespace: labelled, never owner-referenced, so deleting the
    /// GpuCluster never garbage-collects a tenant's jobs and data.
    pub(crate) fn namespace_meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(self.labels()),
            ..ObjectMeta::default()
        }
    }

    pub(crate) fn cluster_name(&self) -> &str {
        &self.cluster
    }
}

/// Builds every object for `cluster`, whose spec `analysis` has validated. Kueue and Volcano
/// objects only when `apis` says their API is served.
pub fn build(
    cluster: &GpuCluster,
    analysis: &Analysis,
    apis: ServedApis,
) -> Result<Desired, BuildError> {
    let owner = Owner::of(cluster);
    let spec = &cluster.spec;
    let mut desired = Desired::default();
    let plugins = device_plugins::build(spec, &owner)?;
    let rdma = rdma::build(spec, &owner)?;
    if !plugins.daemon_sets.is_empty()
        || !rdma.daemon_sets.is_empty()
        || plugins
            .config_maps
            .iter()
            .any(|c| c.metadata.namespace.as_deref() == Some(NAMESPACE))
    {
        // Shared by every GpuCluster and outlives each: labelled managed-by, owned by none.
        let metadata = ObjectMeta {
            name: Some(NAMESPACE.into()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY.to_owned(),
            )])),
            ..ObjectMeta::default()
        };
        desired.namespaces.push(Namespace {
            metadata,
            ..Namespace::default()
        });
    }
    desired.config_maps.extend(plugins.config_maps);
    desired.daemon_sets.extend(plugins.daemon_sets);
    desired.config_maps.extend(rdma.config_maps);
    desired.daemon_sets.extend(rdma.daemon_sets);
    scheduling::build(spec, &owner, &mut desired);
    if let Some(scheduling) = &spec.scheduling {
        match scheduling.topology_aware_scheduling {
            TopologyAwareScheduling::Kueue if apis.kueue => {
                kueue::build(spec, analysis, &owner, &mut desired)
            }
            TopologyAwareScheduling::Volcano if apis.volcano => {
                volcano::build(spec, analysis, &owner, &mut desired)
            }
            TopologyAwareScheduling::Kueue
            | TopologyAwareScheduling::Volcano
            | TopologyAwareScheduling::None => {}
        }
    }
    Ok(desired)
}
