//! Objects of third-party kinds (Kueue, Volcano) that k8s-openapi has no types for: JSON bodies
//! tagged with a marker type per kind, so `Desired` still has one typed list per kind and the
//! kinds can be read off the type.

use std::marker::PhantomData;

use serde_json::{Value, json};

use super::{KindInfo, Manifest, ObjectKey, Owner};

/// Kueue's API version Kelvin writes.
pub const KUEUE_API_VERSION: &str = "kueue.x-k8s.io/v1beta2";
/// Volcano's topology API version.
pub const VOLCANO_API_VERSION: &str = "topology.volcano.sh/v1alpha1";

/// A kind Kelvin writes as JSON.
pub trait CustomKind {
    /// API group.
    const GROUP: &'static str;
    /// `group/version`.
    const API_VERSION: &'static str;
    /// Kind.
    const KIND: &'static str;
    /// Resource name in URLs and RBAC.
    const PLURAL: &'static str;
    /// Whether objects live in a namespace.
    const NAMESPACED: bool;

    /// The kind as [`KindInfo`].
    fn info() -> KindInfo {
        KindInfo {
            group: Self::GROUP,
            api_version: Self::API_VERSION,
            kind: Self::KIND,
            plural: Self::PLURAL,
            namespaced: Self::NAMESPACED,
        }
    }
}

macro_rules! custom_kind {
    ($(#[$doc:meta])* $name:ident, $group:literal, $api_version:expr, $plural:literal, $namespaced:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;
        impl CustomKind for $name {
            const GROUP: &'static str = $group;
            const API_VERSION: &'static str = $api_version;
            const KIND: &'static str = stringify!($name);
            const PLURAL: &'static str = $plural;
            const NAMESPACED: bool = $namespaced;
        }
    };
}

custom_kind!(
    /// Kueue ResourceFlavor (cluster-scoped).
    ResourceFlavor, "kueue.x-k8s.io", KUEUE_API_VERSION, "resourceflavors", false
);
custom_kind!(
    /// Kueue ClusterQueue (cluster-scoped).
    ClusterQueue, "kueue.x-k8s.io", KUEUE_API_VERSION, "clusterqueues", false
);
custom_kind!(
    /// Kueue LocalQueue (namespaced).
    LocalQueue, "kueue.x-k8s.io", KUEUE_API_VERSION, "localqueues", true
);
custom_kind!(
    /// Kueue Topology (cluster-scoped).
    Topology, "kueue.x-k8s.io", KUEUE_API_VERSION, "topologies", false
);
custom_kind!(
    /// Volcano HyperNode (cluster-scoped).
    HyperNode, "topology.volcano.sh", VOLCANO_API_VERSION, "hypernodes", false
);

/// One object of kind `K`: its name, namespace and `spec`.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomObject<K> {
    /// Name.
    pub name: String,
    /// Namespace (namespaced kinds only).
    pub namespace: Option<String>,
    /// The whole object, metadata included.
    pub body: Value,
    kind: PhantomData<K>,
}

impl<K: CustomKind> CustomObject<K> {
    /// An object owned by `owner` with `spec`.
    pub(crate) fn new(name: &str, namespace: Option<&str>, owner: &Owner, spec: Value) -> Self {
        let meta = owner.meta(name, namespace);
        let mut metadata = json!({"name": name, "labels": meta.labels});
        if let Some(namespace) = namespace {
            metadata["namespace"] = Value::String(namespace.to_owned());
        }
        if let Some(reference) = meta.owner_references.and_then(|r| r.into_iter().next()) {
            metadata["ownerReferences"] = json!([{
                "apiVersion": reference.api_version,
                "kind": reference.kind,
                "name": reference.name,
                "uid": reference.uid,
                "controller": reference.controller,
                "blockOwnerDeletion": reference.block_owner_deletion,
            }]);
        }
        Self {
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            body: json!({"apiVersion": K::API_VERSION, "kind": K::KIND, "metadata": metadata, "spec": spec}),
            kind: PhantomData,
        }
    }

    /// The object's identity.
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            api_version: K::API_VERSION.to_owned(),
            kind: K::KIND.to_owned(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    pub(super) fn manifest(&self) -> Manifest {
        Manifest {
            key: self.key(),
            body: self.body.clone(),
        }
    }
}
