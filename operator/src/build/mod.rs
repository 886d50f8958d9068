//! Build: a validated spec and its analysis -> every object Kelvin wants in the cluster. Pure.
//!
//! One typed list per kind, so `apply` can destructure [`Desired`] exhaustively and the kinds
//! for orphan clean-up are derived from it, never from a second hand-kept list.

mod device_plugins;
mod kueue;
mod node_agent;
mod rdma;
mod scheduling;
mod volcano;

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::DaemonSet,
        core::v1::{ConfigMap, Namespace, ResourceQuota},
        scheduling::v1::PriorityClass,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kelvin_crds::{model::Analysis, v1alpha1::GpuCluster};
use serde::Serialize;
use serde_json::Value;

use crate::constants::{CLUSTER_LABEL, MANAGED_BY, MANAGED_BY_LABEL, NAMESPACE};

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

/// Everything Kelvin wants in the cluster for one GpuCluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// Kelvin's own namespace and the tenants' namespaces.
    pub namespaces: Vec<Namespace>,
    /// Device-plugin and RDMA plugin configuration.
    pub config_maps: Vec<ConfigMap>,
    /// Device plugins per pool, RDMA shared device plugin per fabric.
    pub daemon_sets: Vec<DaemonSet>,
    /// spec.scheduling.priorityClasses.
    pub priority_classes: Vec<PriorityClass>,
    /// One GPU quota per tenant namespace.
    pub resource_quotas: Vec<ResourceQuota>,
    /// Kueue ResourceFlavors, ClusterQueues, LocalQueues and Topologies.
    pub kueue: Vec<Manifest>,
    /// Volcano HyperNodes.
    pub volcano: Vec<Manifest>,
}

/// Why an object could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A typed object did not serialize (a bug, reported rather than panicking).
    #[error("serializing {key}")]
    SerializeObject {
        /// The object.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl Desired {
    /// Every object as JSON, in apply order: namespaces and cluster-wide objects first, then
    /// configuration, then workloads and scheduling objects that reference them.
    pub fn manifests(&self) -> Result<Vec<Manifest>, BuildError> {
        let Self {
            namespaces,
            config_maps,
            daemon_sets,
            priority_classes,
            resource_quotas,
            kueue,
            volcano,
        } = self;
        let mut out = Vec::new();
        push_typed(&mut out, namespaces)?;
        push_typed(&mut out, priority_classes)?;
        push_typed(&mut out, config_maps)?;
        push_typed(&mut out, resource_quotas)?;
        push_typed(&mut out, daemon_sets)?;
        out.extend(kueue.iter().cloned());
        out.extend(volcano.iter().cloned());
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
        let mut body =
            serde_json::to_value(object).map_err(|source| BuildError::SerializeObject {
                key: key.to_string(),
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

    pub(crate) fn meta(&self, name: impl Into<String>, namespace: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: namespace.map(str::to_owned),
            labels: Some(self.labels()),
            owner_references: self.reference.clone().map(|r| vec![r]),
            ..ObjectMeta::default()
        }
    }

    pub(crate) fn cluster_name(&self) -> &str {
        &self.cluster
    }

    /// Metadata of a custom object as JSON.
    pub(crate) fn meta_json(&self, name: &str, namespace: Option<&str>) -> Value {
        serde_json::to_value(self.meta(name, namespace)).unwrap_or(Value::Null)
    }
}

/// Builds every object for `cluster`, whose spec `analysis` has validated.
pub fn build(cluster: &GpuCluster, analysis: &Analysis) -> Desired {
    let owner = Owner::of(cluster);
    let spec = &cluster.spec;
    let mut desired = Desired::default();
    let plugins = device_plugins::build(spec, &owner);
    let rdma = rdma::build(spec, &owner);
    if !plugins.daemon_sets.is_empty()
        || !rdma.daemon_sets.is_empty()
        || plugins
            .config_maps
            .iter()
            .any(|c| c.metadata.namespace.as_deref() == Some(NAMESPACE))
    {
        // Shared by every GpuCluster and outlives each: labelled, but owned by none.
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
        use kelvin_crds::v1alpha1::TopologyAwareScheduling;
        match scheduling.topology_aware_scheduling {
            TopologyAwareScheduling::Kueue => desired.kueue = kueue::build(spec, analysis, &owner),
            TopologyAwareScheduling::Volcano => {
                desired.volcano = volcano::build(spec, analysis, &owner)
            }
            TopologyAwareScheduling::None => {}
        }
    }
    desired
}
